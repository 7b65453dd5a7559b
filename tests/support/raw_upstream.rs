//! A raw upstream stand-in for the forward path's attack tests (SPEC §7, §10): it accepts
//! each connection on 127.0.0.1:0 and hands it, numbered in the order accepted (0 first), to
//! a script the test wrote, on a thread of its own. The script reads requests and writes
//! whatever bytes it chooses: a body past its `Content-Length`, a second answer nobody asked
//! for, a head a byte at a time, a close instead of an answer. Every request read whole is
//! recorded with the connection it came on, and every byte received is kept, so a test can
//! assert what reached the upstream, how often and where. Reads give up after 20 s, so a
//! script never outlives its test by long. Included by test files with
//! `#[path = "support/raw_upstream.rs"] mod raw_upstream;`.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// How long a script's read waits before the connection counts as ended.
const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// A running stand-in; it lives until the test process ends.
pub struct RawUpstream {
    pub addr: SocketAddr,
    log: Arc<Mutex<Log>>,
}

/// One request the stand-in read: its head, and its body when the script read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRequest {
    /// The number of the connection it came on (0 for the first accepted).
    pub connection: usize,
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawRequest {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// One accepted connection, as the script sees it.
pub struct RawConnection {
    pub number: usize,
    stream: TcpStream,
    /// Received and not yet taken by `read_request` or `read_head`.
    buffer: Vec<u8>,
    log: Arc<Mutex<Log>>,
}

#[derive(Default)]
struct Log {
    requests: Vec<RawRequest>,
    /// Every byte received, per connection.
    received: Vec<Vec<u8>>,
    /// Per connection: whether its script has let it go (closed it).
    ended: Vec<bool>,
}

impl RawUpstream {
    /// Starts the stand-in; `script` runs once per accepted connection, on its own thread.
    pub fn start(script: impl Fn(RawConnection) + Send + Sync + 'static) -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the raw upstream");
        let addr = listener.local_addr().expect("the raw upstream's address");
        let log = Arc::new(Mutex::new(Log::default()));
        let script = Arc::new(script);
        {
            let log = Arc::clone(&log);
            thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    let number = {
                        let mut log = lock(&log);
                        log.received.push(Vec::new());
                        log.ended.push(false);
                        log.received.len() - 1
                    };
                    let connection = RawConnection {
                        number,
                        stream,
                        buffer: Vec::new(),
                        log: Arc::clone(&log),
                    };
                    let script = Arc::clone(&script);
                    thread::spawn(move || {
                        if connection.prepare().is_ok() {
                            script(connection);
                        }
                    });
                }
            });
        }
        RawUpstream { addr, log }
    }

    /// `http://127.0.0.1:PORT`, for `gateway.upstream`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request read so far, in the order read.
    pub fn requests(&self) -> Vec<RawRequest> {
        lock(&self.log).requests.clone()
    }

    /// The requests read so far whose target is `target`.
    pub fn requests_for(&self, target: &str) -> Vec<RawRequest> {
        self.requests()
            .into_iter()
            .filter(|seen| seen.target == target)
            .collect()
    }

    /// Every byte received so far, per connection in the order accepted.
    pub fn received(&self) -> Vec<Vec<u8>> {
        lock(&self.log).received.clone()
    }

    /// Per connection in the order accepted: whether its script has closed it. A script
    /// that reads until kapauth closes (`answer_each`) ends when kapauth does, so its bytes
    /// in `received` are then all there will be.
    pub fn ended(&self) -> Vec<bool> {
        lock(&self.log).ended.clone()
    }

    /// Waits until kapauth's end of a connection to this stand-in holds bytes it has not
    /// read, as `/proc/net/tcp` shows them: what a script wrote has then reached kapauth's
    /// socket. The kernel sends no signal for that, so its tables are polled, every 10 ms
    /// for at most `limit`; true if the bytes arrived in time.
    pub fn await_unread_at_gateway(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if unread_from_port(self.addr.port())
                .iter()
                .any(|unread| *unread > 0)
            {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl RawConnection {
    fn prepare(&self) -> io::Result<()> {
        self.stream.set_nodelay(true)?;
        self.stream.set_read_timeout(Some(READ_TIMEOUT))?;
        self.stream.set_write_timeout(Some(READ_TIMEOUT))
    }

    /// Reads one request whole: its head and a `Content-Length` or chunked body. `None` if
    /// the connection ends (or stays silent for 20 s) first; only whole requests are
    /// recorded.
    pub fn read_request(&mut self) -> Option<RawRequest> {
        let mut seen = self.take_head()?;
        let chunked = seen
            .header("Transfer-Encoding")
            .is_some_and(|value| value.eq_ignore_ascii_case("chunked"));
        seen.body = if chunked {
            self.take_chunked()?
        } else {
            let length = seen
                .header("Content-Length")
                .map_or(Some(0), |value| value.parse::<usize>().ok())?;
            self.take(length)?
        };
        lock(&self.log).requests.push(seen.clone());
        Some(seen)
    }

    /// Reads one request head and leaves its body unread (for an upstream that answers
    /// first); the request is recorded with an empty body.
    pub fn read_head(&mut self) -> Option<RawRequest> {
        let seen = self.take_head()?;
        lock(&self.log).requests.push(seen.clone());
        Some(seen)
    }

    /// Writes `bytes` and flushes; an error means kapauth has closed its side.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Answers every request left on the connection with `plain_answer`, until it ends.
    pub fn answer_each(mut self) {
        while let Some(seen) = self.read_request() {
            if self.send(&plain_answer(&seen)).is_err() {
                return;
            }
        }
    }

    /// Ends the connection the way an upstream's `close` does.
    pub fn close(self) {
        drop(self);
    }

    fn take_head(&mut self) -> Option<RawRequest> {
        let end = loop {
            if let Some(at) = find(&self.buffer, b"\r\n\r\n") {
                break at + 4;
            }
            self.fill()?;
        };
        let head: Vec<u8> = self.buffer.drain(..end).collect();
        let (method, target, headers) = head_parts(&head);
        Some(RawRequest {
            connection: self.number,
            method,
            target,
            headers,
            body: Vec::new(),
        })
    }

    fn take(&mut self, length: usize) -> Option<Vec<u8>> {
        while self.buffer.len() < length {
            self.fill()?;
        }
        Some(self.buffer.drain(..length).collect())
    }

    fn take_line(&mut self) -> Option<String> {
        let end = loop {
            if let Some(at) = find(&self.buffer, b"\r\n") {
                break at;
            }
            self.fill()?;
        };
        let line: Vec<u8> = self.buffer.drain(..end + 2).collect();
        Some(String::from_utf8_lossy(&line[..end]).into_owned())
    }

    fn take_chunked(&mut self) -> Option<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line = self.take_line()?;
            let size_text = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_text, 16).ok()?;
            if size == 0 {
                // Trailers, then the empty line.
                while !self.take_line()?.is_empty() {}
                return Some(body);
            }
            body.extend(self.take(size)?);
            if !self.take_line()?.is_empty() {
                return None;
            }
        }
    }

    /// Reads what has arrived into the buffer; `None` at the end of the connection, on an
    /// error, or after 20 s of silence.
    fn fill(&mut self) -> Option<usize> {
        let mut scratch = [0u8; 16 * 1024];
        match self.stream.read(&mut scratch) {
            Ok(0) | Err(_) => None,
            Ok(count) => {
                self.buffer.extend_from_slice(&scratch[..count]);
                lock(&self.log).received[self.number].extend_from_slice(&scratch[..count]);
                Some(count)
            }
        }
    }
}

impl Drop for RawConnection {
    fn drop(&mut self) {
        lock(&self.log).ended[self.number] = true;
    }
}

/// A `200` whose body names the request it answers: `answer to METHOD TARGET`.
pub fn plain_answer(seen: &RawRequest) -> Vec<u8> {
    let body = format!("answer to {} {}", seen.method, seen.target);
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn lock(log: &Mutex<Log>) -> MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The bytes waiting unread in each established connection whose remote port is `port`,
/// from `/proc/net/tcp` and `/proc/net/tcp6`: for a stand-in's port, kapauth's ends of the
/// connections to it.
fn unread_from_port(port: u16) -> Vec<u64> {
    let mut unread = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(remote), Some(state), Some(queues)) =
                (fields.get(2), fields.get(3), fields.get(4))
            else {
                continue;
            };
            let remote_port = remote
                .rsplit_once(':')
                .and_then(|(_, hex)| u16::from_str_radix(hex, 16).ok());
            // 01 is ESTABLISHED; the queues are `tx:rx` in hex.
            let rx = queues
                .split_once(':')
                .and_then(|(_, hex)| u64::from_str_radix(hex, 16).ok());
            if let (Some(remote_port), "01", Some(rx)) = (remote_port, *state, rx)
                && remote_port == port
            {
                unread.push(rx);
            }
        }
    }
    unread
}

/// The method, target and header fields of a request head, leniently: what a stand-in
/// needs to say what arrived.
pub fn head_parts(head: &[u8]) -> (String, String, Vec<(String, String)>) {
    let text = String::from_utf8_lossy(head).into_owned();
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_string();
    let target = request_line.next().unwrap_or_default().to_string();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_string(), value.trim().to_string()))
        .collect();
    (method, target, headers)
}
