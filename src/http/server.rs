//! The server side of the HTTP core (SPEC §10), for both listeners: binding (`":PORT"`
//! dual-stack), the connection caps (503 written by the accepting thread, no thread
//! started), a thread per connection serving its requests in order, the head limits and
//! deadlines, `Expect: 100-continue`, unread bodies (drained up to 64 KiB, else the
//! connection closes), keep-alive, and writing answers in the client's framing with every
//! streamed piece flushed at once. A handler sees a `Request` and gives back what
//! `Request::respond` returns; it never touches the socket.

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection, StreamOwned};

use super::body::{Decoder, Input, LAST_CHUNK, chunk_size_line};
use super::head::{
    self, Fields, HeadError, MAX_HEAD, RequestBody, RequestHead, Version, find_head_end,
    keeps_alive, leading_blank_lines, parse_request_head, request_framing,
};
use super::wire::{self, BUFFER, Stream, Wire};
use crate::log;

/// The most of an unread request body drained so the connection can serve another request.
pub const MAX_DRAINED: u64 = 64 * 1024;

/// How long a closing connection keeps reading (and dropping) what the client still sends,
/// so the client reads the answer before the kernel resets the connection.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 256 * 1024;

/// A `Content-Length` body up to this size is read whole before the request counts as in
/// flight: a client that is slow to send it holds only its own connection.
const READ_BEFORE_HANDLING: u64 = 16 * 1024;

/// How long a kept connection waits for its next request with its read buffer.
const STAY_BUFFERED: Duration = Duration::from_secs(1);

/// The most of a streamed body read and written at once.
const PIECE: usize = 16 * 1024;

/// Stack of a connection thread: it runs a whole request (bcrypt, the meta client).
const STACK: usize = 256 * 1024;

/// The bounds of one listener.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The whole request head must arrive within this (408 beyond).
    pub read_header_timeout: Duration,
    /// A keep-alive connection may wait this long for its next request; also the bound on
    /// each read of a request body and each write to the client.
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    /// Requests being handled at once; beyond, `busy_message` in a 503. One client may hold
    /// at most three quarters of them, so it cannot take them all (kapauth).
    pub max_in_flight: usize,
    pub busy_message: &'static str,
    /// Whether refused requests get a log line.
    pub log: bool,
    /// Where the listener counts its connections and refusals, for metrics.
    pub stats: Arc<CoreStats>,
    /// Asked for by the signal handler: stop accepting, end kept connections.
    pub shutdown: Arc<Shutdown>,
}

/// A stop that the accepting threads and the connections look at: once requested, no new
/// connection is served and a kept connection closes after its current request.
#[derive(Debug, Default)]
pub struct Shutdown {
    requested: AtomicBool,
    /// Where each accepting thread listens, to wake it from `accept` with a connection.
    wake: Mutex<Vec<SocketAddr>>,
    /// Accepting threads still running, and the signal of one ending.
    accepting: Mutex<usize>,
    stopped: Condvar,
}

impl Shutdown {
    /// Stops the listeners that share this: wakes every accepting thread, which then sees
    /// the request and closes its socket; returns once they all have (at most a second).
    pub fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
        let addresses = self
            .wake
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for address in addresses {
            let _ = TcpStream::connect_timeout(&address, Duration::from_secs(1));
        }
        let accepting = self
            .accepting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let _ = self
            .stopped
            .wait_timeout_while(accepting, Duration::from_secs(1), |running| *running > 0);
    }

    pub fn requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    fn wake_at(&self, socket: &TcpListener) {
        let Ok(mut address) = socket.local_addr() else {
            return;
        };
        // A socket on every interface is reached on loopback.
        if address.ip().is_unspecified() {
            address.set_ip(match address.ip() {
                IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
        }
        self.wake
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(address);
    }
}

/// A listener's TLS configuration, which a reload may replace: connections that begin
/// afterwards use the new certificate; those already open keep theirs.
#[derive(Debug, Default)]
pub struct LiveTls(RwLock<Option<Arc<ServerConfig>>>);

impl LiveTls {
    /// Whether the listener serves HTTPS; only a restart changes that.
    pub fn serves_https(&self) -> bool {
        self.current().is_some()
    }

    /// Puts `config` in force for a listener that serves HTTPS; a plain listener stays
    /// plain (callers check `serves_https` first and refuse the reload).
    pub fn replace(&self, config: Arc<ServerConfig>) {
        let mut current = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(in_force) = current.as_mut() {
            *in_force = config;
        }
    }

    fn current(&self) -> Option<Arc<ServerConfig>> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The statuses of the answers the core writes itself (SPEC §10).
pub const REFUSAL_STATUSES: [u16; 8] = [400, 408, 413, 414, 431, 501, 503, 505];

/// What a listener counts: its open connections, and the requests it answered itself
/// (framing, limits, capacity), by status. Read by `/kapauth/metrics`.
#[derive(Debug, Default)]
pub struct CoreStats {
    open: AtomicUsize,
    in_flight: AtomicUsize,
    refused: [AtomicU64; REFUSAL_STATUSES.len()],
}

impl CoreStats {
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Requests being handled now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Each status of `REFUSAL_STATUSES` and how many answers had it.
    pub fn refusals(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        REFUSAL_STATUSES
            .iter()
            .zip(&self.refused)
            .map(|(status, count)| (*status, count.load(Ordering::Relaxed)))
    }

    fn count_refusal(&self, status: u16) {
        // A status outside the list counts as a 400, the core's catch-all.
        let index = REFUSAL_STATUSES
            .iter()
            .position(|known| *known == status)
            .unwrap_or(0);
        self.refused[index].fetch_add(1, Ordering::Relaxed);
    }
}

/// A bound listener, ready to serve.
pub struct Listener {
    sockets: Vec<TcpListener>,
    pub addr: SocketAddr,
    tls: Arc<LiveTls>,
}

impl Listener {
    /// The handle a reload replaces the certificate through.
    pub fn tls(&self) -> Arc<LiveTls> {
        Arc::clone(&self.tls)
    }
}

/// Binds `address` for `service` and logs `msg=listening service=… addr=…`, the line tests
/// and operators read back when the port is 0. `[::]:PORT` (what `":PORT"` becomes) takes
/// every interface, IPv4 included, as Go's Kapacitor does.
pub fn bind(service: &str, address: &str, tls: Option<Arc<ServerConfig>>) -> io::Result<Listener> {
    let sockets = match address.strip_prefix("[::]:") {
        Some(port) => bind_every_interface(port.parse().map_err(io::Error::other)?)?,
        None => vec![TcpListener::bind(address)?],
    };
    let addr = sockets[0].local_addr()?;
    log::info("listening")
        .field("service", service)
        .field("addr", addr)
        .field("scheme", if tls.is_some() { "https" } else { "http" })
        .emit();
    Ok(Listener {
        sockets,
        addr,
        tls: Arc::new(LiveTls(RwLock::new(tls))),
    })
}

/// `[::]:port`, which Linux makes dual-stack unless `net.ipv6.bindv6only` is set; then
/// IPv4 needs a socket of its own, and binding it tells which case this is. A host
/// without IPv6 gets IPv4 only.
fn bind_every_interface(port: u16) -> io::Result<Vec<TcpListener>> {
    let v6 = match TcpListener::bind(("::", port)) {
        Ok(v6) => v6,
        Err(_) => return Ok(vec![TcpListener::bind(("0.0.0.0", port))?]),
    };
    let port = v6.local_addr()?.port();
    match TcpListener::bind(("0.0.0.0", port)) {
        Ok(v4) => Ok(vec![v6, v4]),
        Err(error) if error.kind() == io::ErrorKind::AddrInUse => Ok(vec![v6]),
        Err(error) => Err(error),
    }
}

/// What a handler does with a request: answers it through `Request::respond`.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, request: Request<'_>) -> Delivered;
}

impl<F> Handler for F
where
    F: Fn(Request<'_>) -> Delivered + Send + Sync + 'static,
{
    fn handle(&self, request: Request<'_>) -> Delivered {
        self(request)
    }
}

/// Serves `listener` until a shutdown is requested: every socket beyond the first on a
/// thread of its own. Returns once the first socket's accepting loop has stopped; requests
/// in flight go on, and `CoreStats::in_flight` says when they are done.
pub fn serve(listener: Listener, service: &'static str, limits: Limits, handler: Arc<dyn Handler>) {
    for socket in &listener.sockets {
        limits.shutdown.wake_at(socket);
    }
    let shared = Arc::new(Shared {
        service,
        limits,
        handler,
        tls: listener.tls,
        clients: Mutex::new(HashMap::new()),
        refusals_logged: Mutex::new((None, 0)),
    });
    let mut sockets = listener.sockets;
    let first = sockets.remove(0);
    for socket in sockets {
        let shared = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name(format!("{service}-accept"))
            .spawn(move || accept_loop(&shared, socket));
        if let Err(error) = spawned {
            log::error("cannot start an accepting thread")
                .field("service", service)
                .field("error", error)
                .emit();
        }
    }
    accept_loop(&shared, first);
}

/// A request as the handler sees it: the head, who sent it, and its body on demand.
pub struct Request<'c> {
    pub head: RequestHead,
    pub remote: SocketAddr,
    /// Whether it arrived over TLS.
    pub secure: bool,
    framing: RequestBody,
    decoder: Decoder,
    /// The client sent `Expect: 100-continue` and has had no `100` yet.
    continue_pending: bool,
    keep_alive: bool,
    connection: &'c mut Connection,
}

/// An answer to write.
pub struct Response<'a> {
    pub status: u16,
    /// Empty: the standard phrase of the status.
    pub reason: String,
    /// Every field but the framing ones (`Content-Length`, `Transfer-Encoding`,
    /// `Connection`), which the core writes from `body`.
    pub fields: Fields,
    pub body: Body<'a>,
}

/// A body to write.
pub enum Body<'a> {
    /// No body and no length field of the core's own: HEAD answers, 1xx, 204, 304.
    None,
    /// A body held whole, sent with its `Content-Length`.
    Full(Vec<u8>),
    /// `length` bytes streamed from `source`, sent with a `Content-Length`.
    Sized {
        length: u64,
        source: Box<dyn Source + 'a>,
    },
    /// A body that ends where `source` does: chunked to an HTTP/1.1 client when the source
    /// was chunked, else delimited by closing the connection.
    Unsized {
        source: Box<dyn Source + 'a>,
        chunked: bool,
    },
}

/// A streamed body. A read may fail with `TimedOut` or `WouldBlock` while the source is
/// quiet; the core then checks that the client is still there and reads again.
pub trait Source {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize>;
    /// Appends to `out` the bytes there are without waiting, at most `max` of them (to
    /// write them with the head); `Ok(0)` if none.
    fn append_ready(&mut self, _out: &mut Vec<u8>, _max: usize) -> io::Result<usize> {
        Ok(0)
    }
}

/// Proof that a request was answered, and how the answer went.
#[must_use]
#[derive(Debug)]
pub struct Delivered {
    status: u16,
    error: Option<io::Error>,
}

impl Delivered {
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Why the answer did not reach the client whole, if it did not.
    pub fn error(&self) -> Option<&io::Error> {
        self.error.as_ref()
    }
}

impl<'c> Request<'c> {
    pub fn framing(&self) -> RequestBody {
        self.framing
    }

    /// The first value of the header `name` (any case), when it is UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.fields.get_str(name)
    }

    /// The body, read as the handler reads it; the first read sends `100 Continue` to a
    /// client waiting for one, so a body nobody reads is never asked for.
    pub fn body(&mut self) -> RequestBodyReader<'_, 'c> {
        RequestBodyReader { request: self }
    }

    /// Writes `response`: the head and a whole body in one write, a streamed body piece by
    /// piece. A body the handler left unread is drained after the answer, once the request
    /// no longer counts as in flight, if it can be small; otherwise the answer says
    /// `Connection: close` and the connection closes after it.
    pub fn respond(mut self, response: Response<'_>) -> Delivered {
        let status = response.status;
        let whole = match &response.body {
            Body::Full(bytes) => bytes.len(),
            _ => 0,
        };
        let mut close = !self.keep_alive;
        if !self.decoder.is_done() {
            if !close && self.drainable() {
                self.connection.undrained =
                    Some(std::mem::replace(&mut self.decoder, Decoder::Done));
            } else {
                // The rest of the body will not be read: close after the answer, and linger
                // so the client reads the answer instead of a reset.
                close = true;
                self.connection.unread_body = true;
            }
        }
        let mut out = Vec::with_capacity(256 + 32 * response.fields.len() + whole.max(2048));
        let version = self.head.version;
        push_status_line(&mut out, version, status, &response.reason);
        for (name, value) in response.fields.iter() {
            push_field(&mut out, name, value);
        }
        // Exactly `HEAD`, as Go reads it: `head` is another method, whose answer has a body.
        let head_request = self.head.method == "HEAD";
        let mut chunked = false;
        match &response.body {
            Body::None => {}
            Body::Full(bytes) => push_length(&mut out, bytes.len() as u64),
            Body::Sized { length, .. } => push_length(&mut out, *length),
            Body::Unsized { chunked: true, .. } if version == Version::Http11 => {
                push_field(&mut out, "Transfer-Encoding", b"chunked");
                chunked = true;
            }
            Body::Unsized { .. } => close = true,
        }
        if close {
            push_field(&mut out, "Connection", b"close");
        } else if version == Version::Http10 {
            push_field(&mut out, "Connection", b"keep-alive");
        }
        out.extend_from_slice(b"\r\n");
        let connection = &mut *self.connection;
        let (length, mut source) = match response.body {
            Body::Sized { length, source } if !head_request => (Some(length), source),
            Body::Unsized { source, .. } if !head_request => (None, source),
            Body::Full(bytes) => {
                if !head_request {
                    out.extend_from_slice(&bytes);
                }
                let written = connection.wire.write_all(&out);
                return connection.delivered(status, close, written);
            }
            Body::None | Body::Sized { .. } | Body::Unsized { .. } => {
                let written = connection.wire.write_all(&out);
                return connection.delivered(status, close, written);
            }
        };
        // The body that came with the upstream's head goes out with this head, so a small
        // answer is one write; a stream that starts quiet still shows its head at once.
        let head_length = out.len();
        let ready = match source.append_ready(&mut out, PIECE) {
            Ok(ready) => ready,
            Err(error) => {
                // Nothing is written yet: the client gets a 502, not a cut answer.
                out.clear();
                let message = "the upstream's answer could not be read";
                push_error(&mut out, version, 502, message, false);
                let written = connection.wire.write_all(&out).and(Err(error));
                return connection.delivered(502, true, written);
            }
        };
        if chunked && ready > 0 {
            let (line, used) = chunk_size_line(ready);
            out.splice(head_length..head_length, line[..used].iter().copied());
            out.extend_from_slice(b"\r\n");
        }
        let written = connection
            .wire
            .write_all(&out)
            .and_then(|()| connection.stream_body(source, ready as u64, length, chunked));
        connection.delivered(status, close, written)
    }

    /// Whether what is left of the body may be read and dropped so the connection can go
    /// on: a length within `MAX_DRAINED`, or chunks (whose drain stops at that bound). A
    /// client still waiting for `100 Continue` may never send its body, or send it after
    /// the answer: either way its next bytes cannot be trusted as a request.
    fn drainable(&self) -> bool {
        let small = match self.decoder {
            Decoder::Length { left } => left <= MAX_DRAINED,
            Decoder::Chunked(_) | Decoder::UntilClose | Decoder::Done => true,
        };
        small && !self.continue_pending
    }
}

/// The request body as a `Read`.
pub struct RequestBodyReader<'r, 'c> {
    request: &'r mut Request<'c>,
}

impl Read for RequestBodyReader<'_, '_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let request = &mut *self.request;
        if request.decoder.is_done() {
            return Ok(0);
        }
        if request.continue_pending {
            request.continue_pending = false;
            request
                .connection
                .wire
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        request.connection.set_body_timeout()?;
        request.decoder.read(&mut request.connection.wire, out)
    }
}

struct Shared {
    service: &'static str,
    limits: Limits,
    handler: Arc<dyn Handler>,
    tls: Arc<LiveTls>,
    clients: Mutex<HashMap<IpAddr, Arc<Client>>>,
    /// When the last refusal was logged, and how many were not logged since.
    refusals_logged: Mutex<(Option<Instant>, u64)>,
}

/// What one client address holds.
#[derive(Default)]
struct Client {
    /// Changed only under `Shared::clients`.
    connections: AtomicUsize,
    in_flight: AtomicUsize,
}

fn accept_loop(shared: &Arc<Shared>, socket: TcpListener) {
    let shutdown = &shared.limits.shutdown;
    *shutdown
        .accepting
        .lock()
        .unwrap_or_else(PoisonError::into_inner) += 1;
    let mut last_error_logged: Option<Instant> = None;
    loop {
        let accepted = socket.accept();
        if shutdown.requested() {
            // Closing the socket makes the kernel refuse new connections; then say so.
            drop(socket);
            *shutdown
                .accepting
                .lock()
                .unwrap_or_else(PoisonError::into_inner) -= 1;
            shutdown.stopped.notify_all();
            return;
        }
        match accepted {
            Ok((stream, remote)) => admit(shared, stream, remote),
            Err(error) => {
                // Out of descriptors or memory: say so at most once a second, wait a little
                // so the loop does not spin, and keep accepting.
                if last_error_logged.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                    log::error("cannot accept a connection")
                        .field("service", shared.service)
                        .field("error", &error)
                        .emit();
                    last_error_logged = Some(Instant::now());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Takes a new connection: refused with a 503 from this thread if a cap is reached, else
/// served on a thread of its own.
fn admit(shared: &Arc<Shared>, stream: TcpStream, remote: SocketAddr) {
    // An IPv4 client of a dual-stack socket is its IPv4 address, in caps and in logs.
    let remote = SocketAddr::new(remote.ip().to_canonical(), remote.port());
    let slot = match Slot::claim(shared, client_key(remote.ip())) {
        Ok(slot) => slot,
        Err(message) => return refuse(shared, stream, remote, message),
    };
    // The stream stays reachable from here, so a failed spawn can still be answered.
    let handoff = Arc::new(Mutex::new(Some(stream)));
    let taken = Arc::clone(&handoff);
    let thread_shared = Arc::clone(shared);
    let spawned = std::thread::Builder::new()
        .name(format!("{}-conn", shared.service))
        .stack_size(STACK)
        .spawn(move || {
            let stream = taken.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(stream) = stream {
                serve_connection(&thread_shared, stream, remote, slot);
            }
        });
    if let Err(error) = spawned {
        log::error("cannot start a connection thread")
            .field("service", shared.service)
            .field("error", error)
            .emit();
        let stream = handoff
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(stream) = stream {
            refuse(
                shared,
                stream,
                remote,
                "kapauth cannot start a thread; retry shortly",
            );
        }
    }
}

/// A 503 written without waiting and without a thread, then the connection is closed.
/// Over TLS nothing can be written before a handshake, so the connection just closes.
fn refuse(shared: &Shared, stream: TcpStream, remote: SocketAddr, message: &str) {
    shared.limits.stats.count_refusal(503);
    if shared.limits.log {
        // At most one line a second: a flood of refusals must not become a flood of logs.
        let mut logged = shared
            .refusals_logged
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (last, suppressed) = &mut *logged;
        if last.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
            log::warn("connection refused")
                .field("service", shared.service)
                .field("remote", remote)
                .field("reason", message)
                .field("not-logged-since-last", *suppressed)
                .emit();
            *last = Some(Instant::now());
            *suppressed = 0;
        } else {
            *suppressed += 1;
        }
    }
    if shared.tls.serves_https() || stream.set_nonblocking(true).is_err() {
        return;
    }
    let mut out = Vec::with_capacity(256);
    push_error(&mut out, Version::Http11, 503, message, true);
    let mut stream = stream;
    let _ = io::Write::write(&mut stream, &out);
    // Reading what already arrived makes the close a FIN, not a reset that could
    // destroy the answer before the client reads it.
    let mut scratch = [0u8; 1024];
    let _ = stream.read(&mut scratch);
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

/// The address a client's caps count under: its IPv4 address, or the /64 of its IPv6
/// address, since one IPv6 host commonly holds a whole /64 (kapauth).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let network = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(network))
        }
    }
}

/// One place under the connection caps, given back when the connection ends.
struct Slot {
    shared: Arc<Shared>,
    key: IpAddr,
    client: Arc<Client>,
}

impl Slot {
    fn claim(shared: &Arc<Shared>, key: IpAddr) -> Result<Slot, &'static str> {
        let limits = &shared.limits;
        if shared.limits.stats.open.fetch_add(1, Ordering::AcqRel) >= limits.max_connections {
            shared.limits.stats.open.fetch_sub(1, Ordering::AcqRel);
            return Err("kapauth is at max-connections; retry shortly");
        }
        let mut clients = shared
            .clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let client = clients.entry(key).or_default();
        if client.connections.load(Ordering::Acquire) >= limits.max_connections_per_client {
            drop(clients);
            shared.limits.stats.open.fetch_sub(1, Ordering::AcqRel);
            return Err("kapauth is at max-connections-per-client for this address; retry shortly");
        }
        client.connections.fetch_add(1, Ordering::AcqRel);
        Ok(Slot {
            shared: Arc::clone(shared),
            key,
            client: Arc::clone(client),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut clients = self
            .shared
            .clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.client.connections.fetch_sub(1, Ordering::AcqRel) == 1 {
            clients.remove(&self.key);
        }
        drop(clients);
        self.shared.limits.stats.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One request being handled, counted for the listener and for its client; given back
/// when the handler returns, even by a panic.
struct InFlight<'a> {
    listener: &'a AtomicUsize,
    client: &'a AtomicUsize,
}

impl<'a> InFlight<'a> {
    fn claim(shared: &'a Shared, client: &'a Client) -> Option<InFlight<'a>> {
        let max = shared.limits.max_in_flight;
        let client_max = max - max / 4;
        if client.in_flight.fetch_add(1, Ordering::AcqRel) >= client_max {
            client.in_flight.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let in_flight = &shared.limits.stats.in_flight;
        if in_flight.fetch_add(1, Ordering::AcqRel) >= max {
            in_flight.fetch_sub(1, Ordering::AcqRel);
            client.in_flight.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(InFlight {
            listener: &shared.limits.stats.in_flight,
            client: &client.in_flight,
        })
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.listener.fetch_sub(1, Ordering::AcqRel);
        self.client.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection between requests.
struct Connection {
    wire: Wire,
    idle_timeout: Duration,
    /// Set once the connection must close after the current answer.
    close: bool,
    /// The unread rest of the last request's body, to drain before the next request.
    undrained: Option<Decoder>,
    /// Bytes of a request body were left unread: linger before closing.
    unread_body: bool,
}

/// Why no request head could be read.
enum NoHead {
    /// Nothing arrived, or the client went away: close without a word.
    Quiet,
    /// Part of a head arrived, but not all of it within `read-header-timeout`: 408.
    Timeout,
    Refused(HeadError),
}

fn serve_connection(shared: &Shared, socket: TcpStream, remote: SocketAddr, slot: Slot) {
    let limits = &shared.limits;
    let header_deadline = Instant::now() + limits.read_header_timeout;
    let prepared = socket.set_nodelay(true).is_ok()
        && socket.set_write_timeout(Some(limits.idle_timeout)).is_ok()
        && socket
            .set_read_timeout(Some(limits.read_header_timeout))
            .is_ok();
    if !prepared {
        return;
    }
    let tls = shared.tls.current();
    let secure = tls.is_some();
    let stream = match tls {
        None => Stream::Plain(socket),
        Some(config) => match handshake(&config, socket, header_deadline) {
            Ok(stream) => stream,
            Err(_) => return,
        },
    };
    let mut connection = Connection {
        wire: Wire::unbuffered(stream),
        idle_timeout: limits.idle_timeout,
        close: false,
        undrained: None,
        unread_body: false,
    };
    let mut first = Some(header_deadline);
    while !connection.close {
        // Shutting down: a kept connection gets no further request.
        if first.is_none() && limits.shutdown.requested() {
            break;
        }
        let head = match connection.read_head(limits, first.take()) {
            Ok(head) => head,
            Err(NoHead::Quiet) => break,
            Err(NoHead::Timeout) => {
                let message = "request head not received within read-header-timeout";
                connection.refuse(shared, remote, 408, message);
                break;
            }
            Err(NoHead::Refused(error)) => {
                connection.refuse(shared, remote, error.status(), error.message());
                break;
            }
        };
        let framing = match request_framing(&head) {
            Ok(framing) => framing,
            Err(error) => {
                connection.refuse(shared, remote, error.status(), error.message());
                break;
            }
        };
        let has_body = framing != RequestBody::None && framing != RequestBody::Length(0);
        let continue_pending = has_body
            && head.version == Version::Http11
            && head.fields.has_token("Expect", "100-continue");
        // A small body is read before the request counts as in flight.
        if let RequestBody::Length(length) = framing
            && length <= READ_BEFORE_HANDLING
            && !continue_pending
            && !connection.buffer_body(length)
        {
            break;
        }
        let request = Request {
            keep_alive: keeps_alive(head.version, &head.fields),
            continue_pending,
            decoder: Decoder::request(framing),
            framing,
            head,
            remote,
            secure,
            connection: &mut connection,
        };
        // The answer comes first; a small body the handler left unread is drained after it,
        // outside the in-flight count, so a client that never sends it holds only its own
        // connection.
        match InFlight::claim(shared, &slot.client) {
            Some(_in_flight) => {
                let _delivered = shared.handler.handle(request);
            }
            None => {
                shared.limits.stats.count_refusal(503);
                let mut fields = Fields::default();
                fields.push("Content-Type", super::JSON.as_bytes());
                fields.push("Retry-After", b"1");
                let _delivered = request.respond(Response {
                    status: 503,
                    reason: String::new(),
                    fields,
                    body: Body::Full(super::json_error(limits.busy_message).into_bytes()),
                });
            }
        }
        connection.drain();
    }
    connection.finish();
}

/// Completes a TLS handshake before `deadline`, whatever the client does. Not inlined:
/// rustls's large frames would otherwise sit on every plain connection's stack too.
#[inline(never)]
fn handshake(
    config: &Arc<ServerConfig>,
    mut socket: TcpStream,
    deadline: Instant,
) -> io::Result<Stream> {
    let mut tls = ServerConnection::new(Arc::clone(config)).map_err(io::Error::other)?;
    wire::handshake(&mut tls, &mut socket, deadline)?;
    Ok(Stream::Server(Box::new(StreamOwned::new(tls, socket))))
}

impl Connection {
    /// Waits for the next request head: its first byte within `first_deadline` (a new
    /// connection) or `idle-timeout` (keep-alive), all of it within `read-header-timeout`.
    fn read_head(
        &mut self,
        limits: &Limits,
        first_deadline: Option<Instant>,
    ) -> Result<RequestHead, NoHead> {
        if self.wire.buffered().is_empty() && !self.wait_for_request(limits, first_deadline) {
            return Err(NoHead::Quiet);
        }
        let deadline =
            first_deadline.unwrap_or_else(|| Instant::now() + limits.read_header_timeout);
        self.wire.set_limit(MAX_HEAD + 1);
        let mut scanned = 0;
        let mut line_whole = false;
        let head = loop {
            let blank = leading_blank_lines(self.wire.buffered());
            if blank > 0 {
                self.wire.consume(blank);
                scanned = 0;
            }
            if !self.wire.buffered().is_empty() {
                match find_head_end(self.wire.buffered(), scanned) {
                    Ok(end) => {
                        let head = parse_request_head(&self.wire.buffered()[..end]);
                        self.wire.consume(end);
                        break head.map_err(NoHead::Refused);
                    }
                    Err(resume) => scanned = resume,
                }
                head::check_partial_request(self.wire.buffered(), &mut line_whole)
                    .map_err(NoHead::Refused)?;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.wire.set_read_timeout(left).is_err() {
                return Err(NoHead::Timeout);
            }
            match self.wire.fill() {
                Ok(0) => return Err(NoHead::Quiet),
                Ok(_) => {}
                Err(error) if is_timeout(&error) => return Err(NoHead::Timeout),
                Err(_) => return Err(NoHead::Quiet),
            }
        };
        self.wire.set_limit(BUFFER);
        head
    }

    /// Waits for the first byte of a request: false if none came in time or the client
    /// left. A kept connection waits `STAY_BUFFERED` with its buffer, as the next request
    /// of a busy client comes soon; then it gives the buffer back and waits the rest of
    /// `idle-timeout` without one, so an idle connection holds no heap memory.
    fn wait_for_request(&mut self, limits: &Limits, first_deadline: Option<Instant>) -> bool {
        let stages = match first_deadline {
            Some(deadline) => [
                deadline.saturating_duration_since(Instant::now()),
                Duration::ZERO,
            ],
            None => {
                let buffered = limits.idle_timeout.min(STAY_BUFFERED);
                [buffered, limits.idle_timeout - buffered]
            }
        };
        for (stage, wait) in stages.into_iter().enumerate() {
            if wait.is_zero() || self.wire.set_read_timeout(wait).is_err() {
                return false;
            }
            if stage > 0 {
                self.wire.release();
            }
            match self.wire.fill() {
                Ok(0) => return false,
                Ok(_) => return true,
                Err(error) if is_timeout(&error) => {}
                Err(_) => return false,
            }
        }
        false
    }

    fn set_body_timeout(&mut self) -> io::Result<()> {
        self.wire.set_read_timeout(self.idle_timeout)
    }

    /// Reads a small body of `length` bytes into the buffer before the request is handled:
    /// false (and the connection closes) if the client does not send it in time.
    fn buffer_body(&mut self, length: u64) -> bool {
        let length = usize::try_from(length).unwrap_or(usize::MAX);
        self.wire.set_limit(length.max(BUFFER));
        if self.set_body_timeout().is_err() {
            return false;
        }
        while self.wire.buffered().len() < length {
            match self.wire.fill() {
                Ok(0) | Err(_) => {
                    self.close = true;
                    return false;
                }
                Ok(_) => {}
            }
        }
        true
    }

    /// Reads and drops the unread rest of the last body, at most `MAX_DRAINED` bytes of it;
    /// a body that does not end within that bound, or in time, closes the connection, so
    /// its bytes are never read as a request.
    fn drain(&mut self) {
        let Some(mut decoder) = self.undrained.take() else {
            return;
        };
        let drained = !self.close
            && self.set_body_timeout().is_ok()
            && matches!(decoder.drain(&mut self.wire, MAX_DRAINED), Ok(true));
        if !drained {
            self.close = true;
            self.unread_body = true;
        }
    }

    /// Answers a request the core refused itself, then closes.
    fn refuse(&mut self, shared: &Shared, remote: SocketAddr, status: u16, message: &str) {
        shared.limits.stats.count_refusal(status);
        if shared.limits.log {
            log::info("http request refused")
                .field("service", shared.service)
                .field("remote", remote)
                .field("status", status)
                .field("reason", message)
                .emit();
        }
        let mut out = Vec::with_capacity(256);
        push_error(&mut out, Version::Http11, status, message, false);
        let _ = self.wire.write_all(&out);
        self.close = true;
        self.unread_body = true;
    }

    /// The outcome of an answer: the connection closes after it if `close` or if writing
    /// failed.
    fn delivered(&mut self, status: u16, close: bool, written: io::Result<()>) -> Delivered {
        self.close |= close || written.is_err();
        Delivered {
            status,
            error: written.err(),
        }
    }

    /// Writes the rest of a streamed body from `source` (`sent` bytes of it are out), each
    /// piece as it comes.
    fn stream_body(
        &mut self,
        mut source: Box<dyn Source + '_>,
        mut sent: u64,
        length: Option<u64>,
        chunked: bool,
    ) -> io::Result<()> {
        let mut out = Vec::new();
        // Allocated only for a body that did not come whole with the head.
        let mut piece = Vec::new();
        loop {
            if length.is_some_and(|length| sent >= length) {
                return Ok(());
            }
            if piece.is_empty() {
                piece = vec![0u8; PIECE];
            }
            match source.read(&mut piece) {
                Ok(0) => break,
                Ok(count) => {
                    out.clear();
                    push_piece(&mut out, &piece[..count], chunked);
                    self.wire.write_all(&out)?;
                    sent += count as u64;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if is_timeout(&error) => {
                    // A quiet stream lives as long as its client (SPEC §10).
                    if self.wire.client_gone() {
                        return Err(io::Error::new(
                            io::ErrorKind::ConnectionAborted,
                            "client went away during a quiet stream",
                        ));
                    }
                }
                Err(error) => return Err(error),
            }
        }
        if length.is_some_and(|length| sent < length) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "upstream body ended before its Content-Length",
            ));
        }
        if chunked {
            self.wire.write_all(LAST_CHUNK)?;
        }
        Ok(())
    }

    /// Ends the connection: a clean close, after reading for a while what a client with
    /// an unread body still sends, so it sees the answer instead of a reset.
    #[inline(never)]
    fn finish(mut self) {
        self.wire.stream.shutdown();
        if !self.unread_body {
            return;
        }
        let deadline = Instant::now() + LINGER;
        let mut scratch = [0u8; 512];
        let mut socket = self.wire.stream.socket();
        let mut drained = 0;
        while drained < LINGER_BYTES {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || socket.set_read_timeout(Some(left)).is_err() {
                return;
            }
            match socket.read(&mut scratch) {
                Ok(0) | Err(_) => return,
                Ok(count) => drained += count,
            }
        }
    }
}

fn push_piece(out: &mut Vec<u8>, piece: &[u8], chunked: bool) {
    if piece.is_empty() {
        return;
    }
    if chunked {
        let (line, used) = chunk_size_line(piece.len());
        out.extend_from_slice(&line[..used]);
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(piece);
    }
}

fn push_status_line(out: &mut Vec<u8>, version: Version, status: u16, reason: &str) {
    let reason = if reason.is_empty() {
        head::reason_phrase(status)
    } else {
        reason
    };
    out.extend_from_slice(version.as_str().as_bytes());
    out.push(b' ');
    push_decimal(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
}

pub(super) fn push_field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn push_length(out: &mut Vec<u8>, length: u64) {
    out.extend_from_slice(b"Content-Length: ");
    push_decimal(out, length);
    out.extend_from_slice(b"\r\n");
}

/// `number` in decimal, without an allocation.
pub(super) fn push_decimal(out: &mut Vec<u8>, number: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = number;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// A whole answer carrying kapauth's JSON error `message`, closing the connection.
fn push_error(out: &mut Vec<u8>, version: Version, status: u16, message: &str, retry: bool) {
    let body = super::json_error(message);
    push_status_line(out, version, status, "");
    push_field(out, "Content-Type", super::JSON.as_bytes());
    if retry {
        push_field(out, "Retry-After", b"1");
    }
    push_length(out, body.len() as u64);
    push_field(out, "Connection", b"close");
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
}

pub(super) fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}
