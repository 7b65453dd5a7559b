//! Reading HTTP/1.x responses one at a time off a connection the test keeps open, for the
//! HTTP core's tests (SPEC §10): pipelining, keep-alive, `100 Continue`, streamed chunks and
//! TLS, where `support::request`'s "read to the end of the connection" cannot tell one
//! response from the next. Works over any `BufRead`, so a rustls stream reads the same way.
//! Every read is bounded by the socket's read timeout, which `Connection::open` sets.
//! Included by test files with `#[path = "support/wire.rs"] mod wire;` beside `mod support;`.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::support::Response;

/// One client connection: a buffered reader and a writer over the same socket.
pub struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Connection {
    /// Connects with `timeout` on the connect and on every later read and write.
    pub fn open(addr: SocketAddr, timeout: Duration) -> io::Result<Connection> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        let writer = stream.try_clone()?;
        Ok(Connection {
            reader: BufReader::new(stream),
            writer,
        })
    }

    /// Writes `bytes` as they are.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes)?;
        self.writer.flush()
    }

    /// Reads exactly one response (a `1xx` counts as one) to a request that was not `HEAD`.
    pub fn response(&mut self) -> io::Result<Response> {
        read_response(&mut self.reader, false)
    }

    /// The reader, for tests that read a body piece by piece (`read_chunk`).
    pub fn reader(&mut self) -> &mut BufReader<TcpStream> {
        &mut self.reader
    }

    /// Sets the read timeout of later reads.
    pub fn set_read_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.writer.set_read_timeout(Some(timeout))
    }

    /// Makes later reads give up at `deadline` (at once if it has passed), so that many
    /// reads in a row share one bound.
    pub fn set_deadline(&self, deadline: Instant) -> io::Result<()> {
        let left = deadline.saturating_duration_since(Instant::now());
        self.set_read_timeout(left.max(Duration::from_millis(1)))
    }

    /// Waits for the server to close the connection: `Ok(elapsed)` at the end of the stream
    /// (or a reset) with nothing more read, `Err` naming what came instead (bytes, or the
    /// read timeout running out).
    pub fn closed(&mut self) -> Result<Duration, String> {
        let started = Instant::now();
        let mut byte = [0u8; 1];
        match self.reader.read(&mut byte) {
            Ok(0) => Ok(started.elapsed()),
            Ok(_) => {
                let mut rest = Vec::new();
                let _ = self.reader.read_to_end(&mut rest);
                Err(format!(
                    "more bytes instead of the end of the connection: {:?}",
                    String::from_utf8_lossy(&[&byte[..], &rest].concat())
                ))
            }
            Err(error) if error.kind() == io::ErrorKind::ConnectionReset => Ok(started.elapsed()),
            Err(error) => Err(format!(
                "the connection stayed open for {:?}: {error}",
                started.elapsed()
            )),
        }
    }

    /// Shuts both directions down, so a thread blocked writing on a clone returns.
    pub fn shutdown(&self) {
        let _ = self.writer.shutdown(Shutdown::Both);
    }

    /// A second handle on the socket, for a writer thread.
    pub fn try_clone_stream(&self) -> io::Result<TcpStream> {
        self.writer.try_clone()
    }
}

/// Reads one response off `reader`: the head, then a body framed by `Content-Length`,
/// `chunked` (de-chunked; the terminating chunk must arrive) or the end of the connection.
/// `1xx`, `204` and `304` answers and answers to `HEAD` (`head_only`) have no body.
pub fn read_response(reader: &mut impl BufRead, head_only: bool) -> io::Result<Response> {
    let (status, headers) = read_head(reader)?;
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if head_only || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(response);
    }
    let chunked = response
        .header("Transfer-Encoding")
        .is_some_and(|value| value.eq_ignore_ascii_case("chunked"));
    if chunked {
        while let Some(chunk) = read_chunk(reader)? {
            response.body.extend_from_slice(&chunk);
        }
    } else if let Some(length) = response.header("Content-Length") {
        let length: usize = length
            .parse()
            .map_err(|_| invalid(format!("bad Content-Length {length:?}")))?;
        response.body = vec![0; length];
        reader.read_exact(&mut response.body)?;
    } else if let Err(error) = reader.read_to_end(&mut response.body) {
        // A body delimited by the end of the connection may end in a reset.
        if error.kind() != io::ErrorKind::ConnectionReset {
            return Err(error);
        }
    }
    Ok(response)
}

/// The status and headers of one response head.
pub fn read_head(reader: &mut impl BufRead) -> io::Result<(u16, Vec<(String, String)>)> {
    let status_line = read_line(reader)?;
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader)?;
        if line.is_empty() {
            return Ok((status, headers));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid(format!("bad header line {line:?}")))?;
        headers.push((name.to_string(), value.trim().to_string()));
    }
}

/// One chunk of a chunked body: `Some(data)`, or `None` after the last chunk and its
/// trailers. Fails on a connection that ends inside the body.
pub fn read_chunk(reader: &mut impl BufRead) -> io::Result<Option<Vec<u8>>> {
    let size_line = read_line(reader)?;
    let size_text = size_line.split(';').next().unwrap_or_default().trim();
    let size = usize::from_str_radix(size_text, 16)
        .map_err(|_| invalid(format!("bad chunk size line {size_line:?}")))?;
    if size == 0 {
        while !read_line(reader)?.is_empty() {}
        return Ok(None);
    }
    let mut data = vec![0; size];
    reader.read_exact(&mut data)?;
    let end = read_line(reader)?;
    if !end.is_empty() {
        return Err(invalid(format!("chunk data followed by {end:?}")));
    }
    Ok(Some(data))
}

/// One CRLF- (or LF-) terminated line without its terminator; the end of the connection
/// before the terminator is an error.
fn read_line(reader: &mut impl BufRead) -> io::Result<String> {
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line)?;
    if line.last() != Some(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "the connection ended inside a line: {:?}",
                String::from_utf8_lossy(&line)
            ),
        ));
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| invalid("a line that is not UTF-8".to_string()))
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}
