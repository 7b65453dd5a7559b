//! What both programs share to serve HTTP: a listening socket whose accepted connections
//! inherit `TCP_NODELAY` and read/write timeouts (tiny_http sets neither, see
//! CRATE-NOTES), and a thread-per-request loop with a hard cap on requests in flight.
//! Knows nothing of what a request means.

use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::log;

/// A bound listener, ready to serve.
pub struct Bound {
    pub server: tiny_http::Server,
    pub addr: SocketAddr,
}

/// Binds `address` for `service` and logs `msg=listening service=… addr=…`, the line tests
/// and operators read back when the port is 0.
pub fn bind(service: &str, address: &str, io_timeout: Duration) -> io::Result<Bound> {
    let listener = TcpListener::bind(address)?;
    // Linux copies these options from the listening socket to every accepted one. std
    // offers them only on a stream, so the listener's descriptor is viewed as a stream for
    // the calls and turned back; no unsafe code is needed for either conversion.
    let socket = TcpStream::from(OwnedFd::from(listener));
    socket.set_nodelay(true)?;
    socket.set_read_timeout(Some(io_timeout))?;
    socket.set_write_timeout(Some(io_timeout))?;
    let listener = TcpListener::from(OwnedFd::from(socket));
    let addr = listener.local_addr()?;
    spawn_accept_waker(addr, io_timeout)?;
    let server = tiny_http::Server::from_listener(listener, None)
        .map_err(|error| io::Error::other(error.to_string()))?;
    log::info("listening")
        .field("service", service)
        .field("addr", addr)
        .emit();
    Ok(Bound { server, addr })
}

/// Linux applies the listening socket's receive timeout to `accept()` as well, and
/// tiny_http stops accepting at its first accept error. This thread connects to the
/// listener every third of the timeout, so `accept()` always returns before the timeout can
/// fire; the connection closes at once and carries no request.
fn spawn_accept_waker(addr: SocketAddr, io_timeout: Duration) -> io::Result<()> {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let target = SocketAddr::new(ip, addr.port());
    let period = io_timeout / 3;
    std::thread::Builder::new()
        .name("accept-waker".into())
        .spawn(move || {
            loop {
                std::thread::sleep(period);
                let _ = TcpStream::connect_timeout(&target, period);
            }
        })?;
    Ok(())
}

/// Serves requests until the listener fails: each request on its own thread, at most
/// `max_in_flight` at once; beyond that `overloaded` answers.
pub fn serve<H, O>(
    bound: Bound,
    service: &'static str,
    max_in_flight: usize,
    handler: Arc<H>,
    overloaded: O,
) where
    H: Fn(tiny_http::Request) + Send + Sync + 'static,
    O: Fn(tiny_http::Request) + Send + Sync + 'static,
{
    let in_flight = Arc::new(AtomicUsize::new(0));
    let refusing = Arc::new(AtomicUsize::new(0));
    let overloaded = Arc::new(overloaded);
    loop {
        let request = match bound.server.recv() {
            Ok(request) => request,
            Err(error) => {
                log::error("listener failed")
                    .field("service", service)
                    .field("error", error)
                    .emit();
                return;
            }
        };
        // A 503 waits behind the earlier answers on its connection (tiny_http writes a
        // connection's answers in order), so it too is written off the accepting thread, by
        // a bounded number of threads; past them, the accepting thread writes it and waits.
        match Slot::claim(&in_flight, max_in_flight) {
            Some(slot) => run_in_thread(service, "request", slot, Arc::clone(&handler), request),
            None => match Slot::claim(&refusing, MAX_REFUSING) {
                Some(slot) => {
                    run_in_thread(service, "refuse", slot, Arc::clone(&overloaded), request)
                }
                None => overloaded(request),
            },
        }
    }
}

/// Threads that may be writing 503s at once.
const MAX_REFUSING: usize = 16;

fn run_in_thread<F>(
    service: &'static str,
    role: &str,
    slot: Slot,
    work: Arc<F>,
    request: tiny_http::Request,
) where
    F: Fn(tiny_http::Request) + Send + Sync + 'static,
{
    let spawned = std::thread::Builder::new()
        .name(format!("{service}-{role}"))
        .stack_size(256 * 1024)
        .spawn(move || {
            let _slot = slot;
            work(request);
        });
    if let Err(error) = spawned {
        // The request went down with the closure; the client sees its connection close.
        log::error("cannot start a thread")
            .field("service", service)
            .field("error", error)
            .emit();
    }
}

/// One place in flight, given back when the request's thread ends, even by a panic.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    /// A place under `counter` if fewer than `max` are taken.
    fn claim(counter: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        if counter.fetch_add(1, Ordering::AcqRel) >= max {
            counter.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Slot(Arc::clone(counter)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response header, or `None` when tiny_http refuses the bytes (non-ASCII).
pub fn header(name: &str, value: &str) -> Option<tiny_http::Header> {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

/// The first value of the request header `name` (any case).
pub fn request_header(request: &tiny_http::Request, name: &str) -> Option<String> {
    request
        .headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str().to_string())
}

/// The most of an unwanted chunked body read before a reply; beyond it the client is on its
/// own connection's consequences.
const MAX_DRAINED: u64 = 1024 * 1024;

/// Reads and discards a chunked request body that will not be used. tiny_http skips an
/// unread Content-Length body itself but not a chunked one, whose bytes would otherwise be
/// parsed as the connection's next request. A client waiting for `100 Continue` has sent
/// no body, so none is asked for.
pub fn drain_chunked_body(request: &mut tiny_http::Request) {
    let chunked = request_header(request, "Transfer-Encoding").is_some();
    let waiting =
        request_header(request, "Expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    if chunked && !waiting {
        let _ = std::io::copy(
            &mut request.as_reader().take(MAX_DRAINED),
            &mut std::io::sink(),
        );
    }
}

/// Whether a request's `Transfer-Encoding`, if any, is exactly `chunked`: tiny_http decodes
/// every value as chunked, so any other would be read differently by the next server.
pub fn framing_is_supported(request: &tiny_http::Request) -> bool {
    request_header(request, "Transfer-Encoding")
        .is_none_or(|value| value.trim().eq_ignore_ascii_case("chunked"))
}
