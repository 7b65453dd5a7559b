//! One connection as the HTTP core uses it: a TCP socket, maybe under rustls, with a small
//! read buffer in front. Timeouts are set here and only when they change, so a request on a
//! keep-alive connection costs no extra system call. Knows nothing of HTTP.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use rustls::{ClientConnection, ConnectionCommon, ServerConnection, StreamOwned};

use super::body::Input;

/// What a connection's buffer holds when it is not reading a large head: small, so a
/// thousand idle connections cost little (CRATE-NOTES).
pub const BUFFER: usize = 4 * 1024;

/// The first read after an idle wait goes to the stack: most request heads fit.
const FIRST_READ: usize = 1024;

/// A socket, plain or under TLS.
pub enum Stream {
    Plain(TcpStream),
    Server(Box<StreamOwned<ServerConnection, TcpStream>>),
    Client(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    pub fn socket(&self) -> &TcpStream {
        match self {
            Stream::Plain(socket) => socket,
            Stream::Server(tls) => &tls.sock,
            Stream::Client(tls) => &tls.sock,
        }
    }

    /// Sends a TLS close_notify where there is TLS, then ends the sending half.
    pub fn shutdown(&mut self) {
        match self {
            Stream::Plain(_) => {}
            Stream::Server(tls) => {
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
            Stream::Client(tls) => {
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        }
        let _ = self.socket().shutdown(Shutdown::Write);
    }
}

impl Read for Stream {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(socket) => socket.read(out),
            Stream::Server(tls) => tls.read(out),
            Stream::Client(tls) => tls.read(out),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(socket) => socket.write(bytes),
            Stream::Server(tls) => tls.write(bytes),
            Stream::Client(tls) => tls.write(bytes),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(socket) => socket.flush(),
            Stream::Server(tls) => tls.flush(),
            Stream::Client(tls) => tls.flush(),
        }
    }
}

/// What a peer did while nobody was reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// Nothing: still connected, nothing to read.
    Quiet,
    /// Sent bytes (or a TLS alert) not read yet.
    Sent,
    /// Closed its side, or the socket failed.
    Closed,
}

/// Drives a TLS handshake to its end before `deadline`, setting the read timeout from the
/// deadline before every read, so a peer trickling its handshake cannot outlive it (rustls's
/// own `complete_io` would wait the whole timeout again for every byte).
pub fn handshake<D>(
    tls: &mut ConnectionCommon<D>,
    socket: &mut TcpStream,
    deadline: Instant,
) -> io::Result<()> {
    while tls.is_handshaking() {
        while tls.wants_write() {
            tls.write_tls(socket)?;
        }
        if !tls.is_handshaking() {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        socket.set_read_timeout(Some(left))?;
        if tls.read_tls(socket)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if let Err(error) = tls.process_new_packets() {
            // Send the alert that says why, then give up.
            while tls.wants_write() && tls.write_tls(socket).is_ok() {}
            return Err(io::Error::new(io::ErrorKind::InvalidData, error));
        }
    }
    while tls.wants_write() {
        tls.write_tls(socket)?;
    }
    Ok(())
}

/// A stream and its read buffer.
pub struct Wire {
    pub stream: Stream,
    buffer: Vec<u8>,
    start: usize,
    end: usize,
    /// The most the buffer may grow to while a head is read.
    limit: usize,
    read_timeout: Option<Duration>,
}

impl Wire {
    pub fn new(stream: Stream, read_timeout: Option<Duration>) -> Wire {
        Wire {
            stream,
            buffer: vec![0; BUFFER],
            start: 0,
            end: 0,
            limit: BUFFER,
            read_timeout,
        }
    }

    /// A stream whose buffer comes with its first bytes: a connection that never sends
    /// anything costs no buffer.
    pub fn unbuffered(stream: Stream) -> Wire {
        Wire {
            stream,
            buffer: Vec::new(),
            start: 0,
            end: 0,
            limit: BUFFER,
            read_timeout: None,
        }
    }

    /// Lets the buffer grow to `limit` bytes (a head being read), or back to `BUFFER`.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit.max(BUFFER);
        if self.limit == BUFFER && self.buffer.len() > BUFFER && self.end - self.start <= BUFFER {
            self.compact();
            self.buffer.truncate(BUFFER);
            self.buffer.shrink_to_fit();
        }
    }

    /// Gives the buffer back while it holds nothing, so a connection waiting for its next
    /// request keeps no heap memory; the next `fill` reads into the stack first.
    pub fn release(&mut self) {
        if self.start == self.end {
            self.buffer = Vec::new();
            self.start = 0;
            self.end = 0;
        }
    }

    /// Sets the socket's read timeout if it differs from the one set last.
    pub fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        let timeout = Some(timeout.max(Duration::from_millis(1)));
        if self.read_timeout != timeout {
            self.stream.socket().set_read_timeout(timeout)?;
            self.read_timeout = timeout;
        }
        Ok(())
    }

    pub fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Whether the client of a quiet stream went away: reads, without waiting, whatever it
    /// sent (a pipelined request stays buffered for later), so an end of stream behind
    /// those bytes is seen too. A full buffer counts as still there.
    pub fn client_gone(&mut self) -> bool {
        if self.stream.socket().set_nonblocking(true).is_err() {
            return true;
        }
        let gone = loop {
            match self.fill() {
                Ok(0) => break true,
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break false,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => break error.kind() != io::ErrorKind::OutOfMemory,
            }
        };
        self.stream.socket().set_nonblocking(false).is_err() || gone
    }

    /// Whether the stream holds bytes nobody has read: in the buffer, in rustls, or in the
    /// kernel. A pooled upstream connection holding any belongs to no request.
    pub fn holds_unread(&mut self) -> bool {
        if !self.buffered().is_empty() {
            return true;
        }
        let decrypted = match &mut self.stream {
            Stream::Plain(_) => 0,
            Stream::Server(tls) => plaintext_waiting(&mut tls.conn),
            Stream::Client(tls) => plaintext_waiting(&mut tls.conn),
        };
        decrypted > 0 || self.peer() != Peer::Quiet
    }

    /// What the peer has done since the last read, without waiting.
    pub fn peer(&self) -> Peer {
        let socket = self.stream.socket();
        if socket.set_nonblocking(true).is_err() {
            return Peer::Closed;
        }
        let mut probe = [0u8; 1];
        let peer = match socket.peek(&mut probe) {
            Ok(0) => Peer::Closed,
            Ok(_) => Peer::Sent,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => Peer::Quiet,
            Err(_) => Peer::Closed,
        };
        if socket.set_nonblocking(false).is_err() {
            return Peer::Closed;
        }
        peer
    }

    fn compact(&mut self) {
        if self.start > 0 {
            self.buffer.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }
}

fn plaintext_waiting<D>(tls: &mut ConnectionCommon<D>) -> usize {
    tls.process_new_packets()
        .map_or(1, |state| state.plaintext_bytes_to_read())
}

impl Input for Wire {
    fn buffered(&self) -> &[u8] {
        &self.buffer[self.start..self.end]
    }

    fn consume(&mut self, count: usize) {
        self.start = (self.start + count).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    fn fill(&mut self) -> io::Result<usize> {
        if self.buffer.is_empty() {
            // Released while idle: the wait happens on the stack, and the buffer comes back
            // only once bytes have arrived.
            let mut first = [0u8; FIRST_READ];
            let count = self.stream.read(&mut first)?;
            if count > 0 {
                self.buffer = vec![0; BUFFER];
                self.buffer[..count].copy_from_slice(&first[..count]);
                self.start = 0;
                self.end = count;
            }
            return Ok(count);
        }
        if self.end == self.buffer.len() {
            self.compact();
        }
        if self.end == self.buffer.len() {
            if self.buffer.len() >= self.limit {
                // Callers bound what they buffer below the limit; reaching it is their
                // refusal, reported as running out of room.
                return Err(io::Error::new(
                    io::ErrorKind::OutOfMemory,
                    "read buffer full",
                ));
            }
            let grown = (self.buffer.len() * 2).min(self.limit);
            self.buffer.resize(grown, 0);
        }
        let count = self.stream.read(&mut self.buffer[self.end..])?;
        self.end += count;
        Ok(count)
    }

    fn read_into(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.start == self.end {
            // A large read goes straight to the caller: a body is not copied twice.
            if out.len() >= BUFFER {
                return self.stream.read(out);
            }
            if self.fill()? == 0 {
                return Ok(0);
            }
        }
        let count = (self.end - self.start).min(out.len());
        out[..count].copy_from_slice(&self.buffer[self.start..self.start + count]);
        self.consume(count);
        Ok(count)
    }
}
