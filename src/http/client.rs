//! The forward path's side of the HTTP core (SPEC §7, §10): a pool of keep-alive
//! connections to the upstream (plain, or rustls for `https://`), one request written with
//! the core's own framing, the response head awaited for at most `upstream-timeout`, and
//! the response body handed back as a `Source` that returns its connection to the pool
//! once read whole. A pooled connection is reused only if it holds no unread byte, and a
//! request that finds it closed is sent again on a fresh one only when it has no body and
//! a method safe to repeat. Decides nothing about access or about which fields to send.

use std::io::{self, Read};
use std::net::TcpStream;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use super::body::{Decoder, Input, LAST_CHUNK, chunk_size_line};
use super::head::{
    Fields, FramingError, MAX_HEAD, ResponseBody, find_head_end, keeps_alive, parse_response_head,
    response_framing,
};
use super::server::{Body, Source, is_timeout, push_decimal, push_field};
use super::wire::{self, BUFFER, Stream, Wire};

/// A body up to this size is read whole and written with the head, in one system call.
const WRITE_WITH_HEAD: u64 = 16 * 1024;
/// How often a wait on the upstream wakes to check its deadline or its client.
const POLL: Duration = Duration::from_secs(1);
/// The longest wait for a TCP connection to the upstream.
const MAX_CONNECT: Duration = Duration::from_secs(10);

/// The upstream and its idle connections.
pub struct Upstream {
    /// As configured, for messages.
    url: String,
    /// `host:port`: where to connect, and the `Host` of every request.
    authority: String,
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    timeout: Duration,
    idle: Mutex<Vec<Wire>>,
    max_idle: usize,
}

/// The body of a request to forward, read from the client as it is sent.
pub enum Outgoing<'b> {
    None,
    Length(u64, &'b mut dyn Read),
    Chunked(&'b mut dyn Read),
}

/// The upstream's answer: status, fields without the hop-by-hop and framing ones, and the
/// body, streamed.
pub struct Answer<'u> {
    pub status: u16,
    pub reason: String,
    pub fields: Fields,
    pub body: Body<'u>,
}

/// Why a request got no answer from the upstream.
#[derive(Debug)]
pub enum UpstreamError {
    /// No connection could be made: 502.
    Unreachable(String),
    /// No response head within `upstream-timeout`: 504.
    Timeout,
    /// The connection failed during the exchange, or the answer was not HTTP: 502.
    Broken(String),
    /// The client's request body could not be read: the client's fault, not the upstream's.
    ClientBody(io::Error),
}

/// Response fields that describe one connection, never passed on (RFC 9110 §7.6.1), and
/// the framing ones the core writes itself.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

impl Upstream {
    /// `url` is `http://host:port` or `https://host:port` (checked by the configuration);
    /// `tls` is the client configuration an `https` upstream needs.
    pub fn new(
        url: &str,
        timeout: Duration,
        tls: Option<Arc<ClientConfig>>,
        max_idle: usize,
    ) -> Result<Upstream, String> {
        let (https, authority) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
            (Some(authority), _) => (true, authority),
            (None, Some(authority)) => (false, authority),
            (None, None) => {
                return Err(format!("upstream {url} is not an http:// or https:// URL"));
            }
        };
        let tls = match (https, tls) {
            (false, _) => None,
            (true, None) => return Err(format!("upstream {url} needs a TLS configuration")),
            (true, Some(config)) => {
                let host = authority
                    .rsplit_once(':')
                    .map_or(authority, |(host, _)| host)
                    .trim_start_matches('[')
                    .trim_end_matches(']');
                let name = ServerName::try_from(host.to_string()).map_err(|_| {
                    format!("upstream host {host:?} is not a valid TLS server name")
                })?;
                Some((config, name))
            }
        };
        Ok(Upstream {
            url: url.to_string(),
            authority: authority.to_string(),
            tls,
            timeout,
            idle: Mutex::new(Vec::new()),
            max_idle,
        })
    }

    /// The upstream as configured, as messages name it.
    pub fn name(&self) -> &str {
        &self.url
    }

    /// Kept-alive connections waiting in the pool, for metrics.
    pub fn idle_connections(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Sends `method target` with `fields` (plus `Host` and the body's framing) and
    /// returns the answer once its head has arrived.
    pub fn send<'u>(
        &'u self,
        method: &str,
        target: &str,
        fields: &Fields,
        body: Outgoing<'_>,
    ) -> Result<Answer<'u>, UpstreamError> {
        let mut out = Vec::with_capacity(256 + target.len() + 64 * fields.len());
        out.extend_from_slice(method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(target.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        push_field(&mut out, "Host", self.authority.as_bytes());
        for (name, value) in fields.iter() {
            push_field(&mut out, name, value);
        }
        let has_body = match &body {
            Outgoing::None | Outgoing::Length(0, _) => false,
            Outgoing::Length(..) | Outgoing::Chunked(_) => true,
        };
        let mut streamed = match body {
            Outgoing::None => {
                out.extend_from_slice(b"\r\n");
                None
            }
            Outgoing::Length(length, reader) => {
                out.extend_from_slice(b"Content-Length: ");
                push_decimal(&mut out, length);
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(b"\r\n");
                if length <= WRITE_WITH_HEAD {
                    let start = out.len();
                    out.resize(start + length as usize, 0);
                    reader
                        .read_exact(&mut out[start..])
                        .map_err(UpstreamError::ClientBody)?;
                    None
                } else {
                    Some((reader, Some(length)))
                }
            }
            Outgoing::Chunked(reader) => {
                push_field(&mut out, "Transfer-Encoding", b"chunked");
                out.extend_from_slice(b"\r\n");
                Some((reader, None))
            }
        };
        // Exactly `HEAD`, as Go reads it: `head` is another method, whose answer has a body.
        let head_request = method == "HEAD";
        // A pooled connection the upstream closed unseen fails a request before any answer;
        // such a request is sent again on a fresh connection only if it has no body and
        // its method is safe to repeat (Go's rule), so nothing is ever done twice.
        let replayable = !has_body && matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE");
        let mut fresh = false;
        loop {
            let (mut wire, reused) = self.connection(fresh)?;
            match self.exchange(&mut wire, &out, streamed.as_mut(), head_request) {
                Ok((status, reason, fields, framing, reusable)) => {
                    return Ok(self.answer(wire, status, reason, fields, framing, reusable));
                }
                Err(Failure::ClosedBeforeAnswer) if reused && replayable && !fresh => {
                    fresh = true;
                }
                Err(Failure::ClosedBeforeAnswer) => {
                    return Err(UpstreamError::Broken(
                        "the upstream closed the connection before answering".to_string(),
                    ));
                }
                Err(Failure::Error(error)) => return Err(error),
            }
        }
    }

    /// A pooled connection, else a new one: `(wire, reused)`. A pooled connection holding
    /// any unread byte (bytes past an answer, a late answer, the upstream's close) is
    /// dropped: its bytes belong to no request and must never be read as this one's answer.
    fn connection(&self, fresh: bool) -> Result<(Wire, bool), UpstreamError> {
        if !fresh {
            while let Some(mut wire) = self.pop_idle() {
                if !wire.holds_unread() {
                    return Ok((wire, true));
                }
            }
        }
        let socket = self.connect()?;
        let stream = match &self.tls {
            None => Stream::Plain(socket),
            Some((config, name)) => self.handshake(config, name, socket)?,
        };
        let poll = POLL.min(self.timeout);
        stream
            .socket()
            .set_read_timeout(Some(poll))
            .map_err(|error| UpstreamError::Unreachable(error.kind().to_string()))?;
        Ok((Wire::new(stream, Some(poll)), false))
    }

    // Not inlined: its frame would otherwise sit in `send`'s, on every connection's stack.
    #[inline(never)]
    fn connect(&self) -> Result<TcpStream, UpstreamError> {
        let unreachable = |error: io::Error| UpstreamError::Unreachable(error.kind().to_string());
        let addresses = crate::resolve::socket_addrs(&self.authority)
            .map_err(|_| UpstreamError::Unreachable("host not found".to_string()))?;
        let mut last = io::Error::new(io::ErrorKind::NotFound, "host not found");
        for address in addresses {
            match TcpStream::connect_timeout(&address, self.timeout.min(MAX_CONNECT)) {
                Ok(socket) => {
                    socket
                        .set_nodelay(true)
                        .and_then(|()| socket.set_write_timeout(Some(self.timeout)))
                        .map_err(unreachable)?;
                    return Ok(socket);
                }
                Err(error) => last = error,
            }
        }
        Err(unreachable(last))
    }

    #[inline(never)]
    fn handshake(
        &self,
        config: &Arc<ClientConfig>,
        name: &ServerName<'static>,
        mut socket: TcpStream,
    ) -> Result<Stream, UpstreamError> {
        let failed = |error: String| UpstreamError::Unreachable(format!("TLS: {error}"));
        let mut tls = ClientConnection::new(Arc::clone(config), name.clone())
            .map_err(|error| failed(error.to_string()))?;
        let deadline = Instant::now() + self.timeout.min(MAX_CONNECT);
        wire::handshake(&mut tls, &mut socket, deadline)
            .map_err(|error| failed(error.to_string()))?;
        Ok(Stream::Client(Box::new(StreamOwned::new(tls, socket))))
    }

    /// Writes the request and reads the response head.
    fn exchange(
        &self,
        wire: &mut Wire,
        out: &[u8],
        streamed: Option<&mut (&mut dyn Read, Option<u64>)>,
        head_request: bool,
    ) -> Result<(u16, String, Fields, ResponseBody, bool), Failure> {
        let broken = |error: io::Error| Failure::Error(UpstreamError::Broken(error.to_string()));
        if let Err(error) = wire.write_all(out) {
            return Err(if streamed.is_none() {
                Failure::ClosedBeforeAnswer
            } else {
                broken(error)
            });
        }
        // An upstream may answer (413, say) and close before it has read a long body: its
        // answer, if one came, is what the client gets, and the connection is not reused.
        let mut cut_short = None;
        if let Some((reader, length)) = streamed {
            match send_body(wire, &mut **reader, *length) {
                Ok(()) => {}
                Err(Failure::Error(UpstreamError::Broken(reason))) => cut_short = Some(reason),
                Err(other) => return Err(other),
            }
        }
        let deadline = Instant::now() + self.timeout;
        wire.set_limit(MAX_HEAD + 1);
        let malformed = || {
            Failure::Error(UpstreamError::Broken(
                "the upstream sent a malformed response head".to_string(),
            ))
        };
        // Where the search for the head's end resumes, so a trickled head costs linear work.
        let mut scanned = 0;
        let head = loop {
            // The deadline holds however the upstream trickles its head or repeats 1xx.
            if Instant::now() >= deadline {
                return Err(Failure::Error(UpstreamError::Timeout));
            }
            let end = match find_head_end(wire.buffered(), scanned) {
                Ok(end) => Some(end),
                Err(resume) => {
                    scanned = resume;
                    None
                }
            };
            if end.is_none() && wire.buffered().len() > MAX_HEAD {
                return Err(malformed());
            }
            match end.map(|end| parse_response_head(&wire.buffered()[..end])) {
                Some(Ok(Some((head, length)))) => {
                    wire.consume(length);
                    scanned = 0;
                    // An interim answer (100 Continue) precedes the real one; a switch of
                    // protocols would leave HTTP, which kapauth does not forward.
                    if head.status == 101 {
                        return Err(Failure::Error(UpstreamError::Broken(
                            "the upstream switched protocols".to_string(),
                        )));
                    }
                    if (100..200).contains(&head.status) {
                        continue;
                    }
                    break head;
                }
                Some(_) => return Err(malformed()),
                None => {}
            }
            let nothing_yet = wire.buffered().is_empty();
            let failed = match wire.fill() {
                Ok(0) => io::ErrorKind::UnexpectedEof.into(),
                Ok(_) => continue,
                Err(error) if is_timeout(&error) => continue,
                Err(error) => error,
            };
            return Err(match cut_short {
                Some(reason) => Failure::Error(UpstreamError::Broken(reason)),
                None if nothing_yet => Failure::ClosedBeforeAnswer,
                None => broken(failed),
            });
        };
        wire.set_limit(BUFFER);
        let framing = response_framing(head_request, &head).map_err(|error| {
            let problem = match error {
                FramingError::UnsupportedEncoding => "a Transfer-Encoding other than chunked",
                FramingError::InvalidLength | FramingError::LengthAndEncoding => {
                    "an invalid Content-Length"
                }
            };
            Failure::Error(UpstreamError::Broken(format!(
                "the upstream's answer has {problem}"
            )))
        })?;
        let reusable = cut_short.is_none()
            && keeps_alive(head.version, &head.fields)
            && framing != ResponseBody::Close;
        let fields = passed_fields(&head.fields, framing);
        Ok((head.status, head.reason, fields, framing, reusable))
    }

    fn answer(
        &self,
        wire: Wire,
        status: u16,
        reason: String,
        fields: Fields,
        framing: ResponseBody,
        reusable: bool,
    ) -> Answer<'_> {
        let decoder = Decoder::response(framing);
        if decoder.is_done() {
            if reusable {
                self.give_back(wire);
            }
            // An empty body still has its length: `Content-Length: 0` frames the answer.
            let body = match framing {
                ResponseBody::Length(0) => Body::Full(Vec::new()),
                _ => Body::None,
            };
            return Answer {
                status,
                reason,
                fields,
                body,
            };
        }
        let source: Box<dyn Source + '_> = Box::new(UpstreamBody {
            upstream: self,
            wire: Some(wire),
            decoder,
            reusable,
        });
        let body = match framing {
            ResponseBody::Length(length) => Body::Sized { length, source },
            ResponseBody::Chunked => Body::Unsized {
                source,
                chunked: true,
            },
            ResponseBody::None | ResponseBody::Close => Body::Unsized {
                source,
                chunked: false,
            },
        };
        Answer {
            status,
            reason,
            fields,
            body,
        }
    }

    fn pop_idle(&self) -> Option<Wire> {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }

    fn give_back(&self, wire: Wire) {
        // Bytes past the end of an answer belong to no request: a connection holding any
        // is closed, never reused, so they cannot be read as the next request's answer.
        if !wire.buffered().is_empty() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.max_idle {
            idle.push(wire);
        }
    }
}

enum Failure {
    /// The connection ended before any byte of an answer: a pooled connection the
    /// upstream had closed, if it was pooled.
    ClosedBeforeAnswer,
    Error(UpstreamError),
}

/// Streams a request body to the upstream: `length` bytes, or chunked when `None`.
fn send_body(wire: &mut Wire, reader: &mut dyn Read, length: Option<u64>) -> Result<(), Failure> {
    let broken = |error: io::Error| Failure::Error(UpstreamError::Broken(error.to_string()));
    let mut piece = vec![0u8; 16 * 1024 + 32];
    let mut left = length;
    loop {
        // Room in front for a chunk-size line, so a chunk goes out in one write.
        let room = match left {
            Some(0) => return Ok(()),
            Some(left) => (16 * 1024).min(usize::try_from(left).unwrap_or(usize::MAX)),
            None => 16 * 1024,
        };
        let count = match reader.read(&mut piece[20..20 + room]) {
            Ok(count) => count,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(Failure::Error(UpstreamError::ClientBody(error))),
        };
        match left.as_mut() {
            Some(_) if count == 0 => {
                let error =
                    io::Error::new(io::ErrorKind::UnexpectedEof, "request body ended early");
                return Err(Failure::Error(UpstreamError::ClientBody(error)));
            }
            Some(left) => {
                *left -= count as u64;
                wire.write_all(&piece[20..20 + count]).map_err(broken)?;
            }
            None if count == 0 => return wire.write_all(LAST_CHUNK).map_err(broken),
            None => {
                let (line, used) = chunk_size_line(count);
                let start = 20 - used;
                piece[start..20].copy_from_slice(&line[..used]);
                piece[20 + count..20 + count + 2].copy_from_slice(b"\r\n");
                wire.write_all(&piece[start..20 + count + 2])
                    .map_err(broken)?;
            }
        }
    }
}

/// The upstream's fields a client may see: without the hop-by-hop ones, those the
/// `Connection` field names, and the length or coding the core will write itself. A body
/// that is not sent (HEAD, 304) keeps the upstream's `Content-Length`.
fn passed_fields(fields: &Fields, framing: ResponseBody) -> Fields {
    let listed: Vec<&[u8]> = fields
        .all("Connection")
        .flat_map(|value| value.split(|b| *b == b','))
        .map(super::head::trim)
        .collect();
    let mut passed = Fields::with_capacity(512, fields.len());
    for (name, value) in fields.iter() {
        let dropped = HOP_BY_HOP.iter().any(|hop| name.eq_ignore_ascii_case(hop))
            || listed
                .iter()
                .any(|item| item.eq_ignore_ascii_case(name.as_bytes()))
            || (framing != ResponseBody::None && name.eq_ignore_ascii_case("content-length"));
        if !dropped {
            passed.push(name, value);
        }
    }
    passed
}

/// A response body being read from the upstream; its connection goes back to the pool
/// when the body has been read whole, and is closed otherwise.
struct UpstreamBody<'u> {
    upstream: &'u Upstream,
    wire: Option<Wire>,
    decoder: Decoder,
    reusable: bool,
}

impl UpstreamBody<'_> {
    fn after_read(&mut self, result: io::Result<usize>) -> io::Result<usize> {
        match &result {
            Ok(_) if self.decoder.is_done() => {
                if let Some(wire) = self.wire.take().filter(|_| self.reusable) {
                    self.upstream.give_back(wire);
                }
            }
            Ok(_) => {}
            Err(error) if is_timeout(error) => {}
            Err(_) => self.wire = None,
        }
        result
    }
}

impl Source for UpstreamBody<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let Some(wire) = self.wire.as_mut() else {
            return Ok(0);
        };
        let result = self.decoder.read(wire, out);
        self.after_read(result)
    }

    fn append_ready(&mut self, out: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        let mut appended = 0;
        while appended < max && !self.decoder.is_done() {
            let Some(wire) = self.wire.as_mut() else {
                break;
            };
            // Only what is buffered is zeroed and then overwritten: no large buffer.
            let room = wire.buffered().len().min(max - appended);
            if room == 0 {
                break;
            }
            let start = out.len();
            out.resize(start + room, 0);
            let result = match self.decoder.read(&mut ReadyOnly(wire), &mut out[start..]) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(0),
                other => other,
            };
            let count = self
                .after_read(result)
                .inspect_err(|_| out.truncate(start))?;
            out.truncate(start + count);
            if count == 0 {
                break;
            }
            appended += count;
        }
        Ok(appended)
    }
}

/// A wire that never waits: its buffered bytes, then `WouldBlock`.
struct ReadyOnly<'w>(&'w mut Wire);

impl Input for ReadyOnly<'_> {
    fn buffered(&self) -> &[u8] {
        self.0.buffered()
    }

    fn consume(&mut self, count: usize) {
        self.0.consume(count);
    }

    fn fill(&mut self) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }

    fn read_into(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.0.buffered().is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.0.read_into(out)
    }
}
