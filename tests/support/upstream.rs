//! An echo upstream standing in for Kapacitor in the gateway's black-box tests: a small
//! HTTP/1.1 server on 127.0.0.1:0 written with std only (a thread per connection,
//! `TCP_NODELAY`, keep-alive). Every request is answered with a one-line JSON description
//! of what arrived: method, raw target, headers in order, body length and the SHA-256 of
//! the body, so a test can assert exactly what the gateway forwarded.
//!
//! Two request headers change the answer, and reach the echo only if the gateway
//! forwarded them: `X-Echo-Bytes: N` streams N bytes of `pattern` back with a
//! `Content-Length` instead of the description, and `X-Echo-Status: S` answers with that
//! status. `Echo::start_with_delay` waits before every answer, for the timeout tests.
//! Included by test files with `#[path = "support/upstream.rs"] mod upstream;`.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use ring::digest::{Context, SHA256};

/// A running echo upstream. It lives until the test process ends.
pub struct Echo {
    pub addr: SocketAddr,
    requests: Arc<AtomicUsize>,
}

impl Echo {
    /// An echo that answers at once.
    pub fn start() -> Echo {
        Echo::start_with_delay(Duration::ZERO)
    }

    /// An echo that reads each request whole, then waits `delay` before answering.
    pub fn start_with_delay(delay: Duration) -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the echo upstream");
        let addr = listener.local_addr().expect("echo upstream address");
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&requests);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let counter = Arc::clone(&counter);
                thread::spawn(move || {
                    let _ = serve_connection(stream, delay, &counter);
                });
            }
        });
        Echo { addr, requests }
    }

    /// `http://127.0.0.1:PORT`, for `gateway.upstream`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many requests have reached the echo so far (counted when their head is read).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// What the echo saw of one request, parsed back from its JSON answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body_length: u64,
    pub body_sha256: String,
}

impl Seen {
    /// Parses the echo's answer; panics with the text when it is not one.
    pub fn parse(body: &[u8]) -> Seen {
        let text = String::from_utf8_lossy(body);
        let value: serde_json::Value = serde_json::from_slice(body)
            .unwrap_or_else(|error| panic!("not an echo answer ({error}): {text}"));
        let field = |name: &str| {
            value
                .get(name)
                .unwrap_or_else(|| panic!("no {name}: {text}"))
        };
        let string = |name: &str| field(name).as_str().expect("a string").to_string();
        Seen {
            method: string("method"),
            target: string("target"),
            headers: field("headers")
                .as_array()
                .expect("headers array")
                .iter()
                .map(|pair| {
                    (
                        pair[0].as_str().expect("name").to_string(),
                        pair[1].as_str().expect("value").to_string(),
                    )
                })
                .collect(),
            body_length: field("body_length").as_u64().expect("a length"),
            body_sha256: string("body_sha256"),
        }
    }

    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// The bytes the tests send and the echo streams: a fixed pseudo-random 64 KiB block,
/// repeated, so that a shifted, dropped or duplicated block changes the checksum.
pub struct Pattern {
    block: Vec<u8>,
    offset: u64,
    left: u64,
}

impl Pattern {
    pub fn new(length: u64) -> Pattern {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let block = (0..64 * 1024 + 7)
            .map(|_| {
                // xorshift64: cheap, deterministic, no crate.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        Pattern {
            block,
            offset: 0,
            left: length,
        }
    }
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let start = (self.offset % self.block.len() as u64) as usize;
        let available = &self.block[start..];
        let n = available.len().min(buf.len()).min(self.left as usize);
        buf[..n].copy_from_slice(&available[..n]);
        self.offset += n as u64;
        self.left -= n as u64;
        Ok(n)
    }
}

/// The SHA-256 (lowercase hex) of `pattern` bytes of `length`.
pub fn pattern_sha256(length: u64) -> String {
    let mut context = Context::new(&SHA256);
    let mut pattern = Pattern::new(length);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = pattern.read(&mut buf).expect("a pattern never fails");
        if n == 0 {
            return hex(context.finish().as_ref());
        }
        context.update(&buf[..n]);
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn serve_connection(stream: TcpStream, delay: Duration, counter: &AtomicUsize) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::with_capacity(256 * 1024, stream);
    loop {
        let Some((method, target, headers)) = read_head(&mut reader)? else {
            return Ok(());
        };
        counter.fetch_add(1, Ordering::SeqCst);
        let header = |name: &str| {
            headers
                .iter()
                .find(|(field, _)| field.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.trim().to_string())
        };
        let chunked =
            header("Transfer-Encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        let length: u64 = header("Content-Length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let (body_length, body_sha256) = if chunked {
            digest_chunked(&mut reader)?
        } else {
            digest(&mut (&mut reader).take(length))?
        };
        if !delay.is_zero() {
            thread::sleep(delay);
        }
        let status = header("X-Echo-Status").unwrap_or_else(|| "200".to_string());
        let close = header("Connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if let Some(bytes) = header("X-Echo-Bytes").and_then(|v| v.parse::<u64>().ok()) {
            write!(
                writer,
                "HTTP/1.1 {status} Echo\r\nContent-Type: application/octet-stream\r\nContent-Length: {bytes}\r\n\r\n"
            )?;
            io::copy(&mut Pattern::new(bytes), &mut writer)?;
        } else {
            let description = serde_json::json!({
                "method": method,
                "target": target,
                "headers": headers.iter().map(|(n, v)| [n, v]).collect::<Vec<_>>(),
                "body_length": body_length,
                "body_sha256": body_sha256,
            })
            .to_string();
            write!(
                writer,
                "HTTP/1.1 {status} Echo\r\nContent-Type: application/json\r\nX-Echo: yes\r\nContent-Length: {}\r\n\r\n",
                description.len()
            )?;
            // A HEAD answer has the headers of a GET and no body.
            if !method.eq_ignore_ascii_case("HEAD") {
                writer.write_all(description.as_bytes())?;
            }
        }
        writer.flush()?;
        if close {
            return Ok(());
        }
    }
}

type Head = (String, String, Vec<(String, String)>);

/// The request line and headers, or `None` at a clean end of the connection.
fn read_head(reader: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.trim_end().splitn(3, ' ');
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            return Ok(Some((method, target, headers)));
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.to_string(), value.trim().to_string()));
        }
    }
}

fn digest(body: &mut impl Read) -> io::Result<(u64, String)> {
    let mut context = Context::new(&SHA256);
    let mut total = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = body.read(&mut buf)?;
        if n == 0 {
            return Ok((total, hex(context.finish().as_ref())));
        }
        total += n as u64;
        context.update(&buf[..n]);
    }
}

fn digest_chunked(reader: &mut impl BufRead) -> io::Result<(u64, String)> {
    let mut context = Context::new(&SHA256);
    let mut total = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let mut size_line = String::new();
        reader.read_line(&mut size_line)?;
        let size_text = size_line.trim().split(';').next().unwrap_or_default();
        let size = u64::from_str_radix(size_text, 16)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
        if size == 0 {
            // Trailers, then the empty line.
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok((total, hex(context.finish().as_ref())));
                }
            }
        }
        let mut chunk = reader.take(size);
        loop {
            let n = chunk.read(&mut buf)?;
            if n == 0 {
                break;
            }
            total += n as u64;
            context.update(&buf[..n]);
        }
        let mut crlf = String::new();
        reader.read_line(&mut crlf)?;
    }
}
