//! Forwarding an allowed request to Kapacitor (SPEC §7) with ureq: same method and raw
//! target (minus `u` and `p`), headers minus `Authorization` and hop-by-hop ones plus
//! `X-Forwarded-*`, bodies streamed both ways, upstream status, headers and body passed
//! back as they are, redirects never followed. Decides nothing about access.

use std::io::{self, Read};
use std::time::Duration;

use ureq::Agent;
use ureq::http::{self, HeaderName, HeaderValue};

use crate::config::Gateway;
use crate::server::request_header;

/// Headers that describe one hop, not the message (RFC 9110 §7.6.1), never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The most kapauth buffers of a response whose length it must know first: tiny_http
/// buffers a body of unknown length for HTTP/1.0 clients and for `TE` requests.
const MAX_BUFFERED_RESPONSE: u64 = 16 * 1024 * 1024;

/// Why a request did not reach Kapacitor or its answer did not come back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardError {
    /// Kapacitor could not be reached: 502.
    Unreachable(String),
    /// Kapacitor did not answer within `upstream-timeout`: 504.
    Timeout,
    /// The request target is not one ureq can send: 400.
    BadTarget,
}

/// The client side of a forwarded request, for `X-Forwarded-*`.
pub struct Client<'a> {
    pub addr: Option<std::net::SocketAddr>,
    pub host: Option<&'a str>,
}

/// The upstream Kapacitor and the pool of connections to it.
pub struct Upstream {
    agent: Agent,
    base: String,
}

/// Kapacitor's answer, ready for tiny_http.
pub type Answer = tiny_http::Response<Box<dyn Read + Send>>;

impl Upstream {
    pub fn new(gateway: &Gateway) -> Upstream {
        let timeout = gateway.upstream_timeout;
        let config = Agent::config_builder()
            // Every client default a gateway relies on, set here (STYLE): statuses and
            // redirects are the client's to see, no proxy from the environment, no
            // headers of ureq's own, any method, and a pool as wide as the concurrency.
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .https_only(false)
            .allow_non_standard_methods(true)
            .user_agent(ureq::config::AutoHeaderValue::None)
            .accept(ureq::config::AutoHeaderValue::None)
            .accept_encoding(ureq::config::AutoHeaderValue::None)
            .no_delay(true)
            .max_idle_connections(gateway.max_concurrent_requests)
            .max_idle_connections_per_host(gateway.max_concurrent_requests)
            .timeout_global(None)
            .timeout_connect(Some(timeout.min(Duration::from_secs(10))))
            .timeout_recv_response(Some(timeout))
            .timeout_per_read(Some(timeout))
            .timeout_per_write(Some(timeout))
            .build();
        Upstream {
            agent: config.new_agent(),
            base: gateway.upstream.clone(),
        }
    }

    /// The upstream address, as errors name it.
    pub fn name(&self) -> &str {
        &self.base
    }

    /// Sends `request` to Kapacitor at `target` (path and query, credentials removed) and
    /// returns its answer with a streaming body.
    pub fn forward(
        &self,
        request: &mut tiny_http::Request,
        target: &str,
        client: &Client,
    ) -> Result<Answer, ForwardError> {
        let method = http::Method::from_bytes(request.method().as_str().as_bytes())
            .map_err(|_| ForwardError::BadTarget)?;
        let uri: http::Uri = format!("{}{target}", self.base)
            .parse()
            .map_err(|_| ForwardError::BadTarget)?;
        // The target sent must be the target authorized, byte for byte.
        if uri.path_and_query().map(|pq| pq.as_str()) != Some(target) {
            return Err(ForwardError::BadTarget);
        }
        let mut builder = http::Request::builder().method(method).uri(uri);
        let has_body = request.body_length().is_some_and(|length| length > 0)
            || request_header(request, "Transfer-Encoding").is_some();
        if let Some(headers) = builder.headers_mut() {
            copy_request_headers(request, headers);
            add_forwarded(headers, client);
        }
        let buffered_by_tiny_http = *request.http_version() <= tiny_http::HTTPVersion(1, 0)
            || request_header(request, "TE").is_some();
        // Two arms, not one body value: SendBody's lifetime is invariant, and a request
        // without a body must not turn into a chunked one.
        let response = if has_body {
            let body = ureq::SendBody::from_reader(request.as_reader());
            self.agent
                .run(builder.body(body).map_err(|_| ForwardError::BadTarget)?)
        } else {
            self.agent.run(
                builder
                    .body(ureq::SendBody::none())
                    .map_err(|_| ForwardError::BadTarget)?,
            )
        }
        .map_err(forward_error)?;
        Ok(answer(response, buffered_by_tiny_http))
    }
}

fn answer(response: http::Response<ureq::Body>, buffered_by_tiny_http: bool) -> Answer {
    let status = response.status().as_u16();
    let length = response
        .headers()
        .get("Content-Length")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<usize>().ok());
    let headers: Vec<tiny_http::Header> = response
        .headers()
        .iter()
        .filter(|(name, _)| !is_hop_by_hop(name.as_str()) && *name != http::header::CONTENT_LENGTH)
        .filter_map(|(name, value)| {
            tiny_http::Header::from_bytes(name.as_str().as_bytes(), value.as_bytes()).ok()
        })
        .collect();
    let body = response.into_body().into_reader();
    let reader: Box<dyn Read + Send> = if length.is_none() && buffered_by_tiny_http {
        Box::new(Capped {
            inner: body,
            left: MAX_BUFFERED_RESPONSE,
        })
    } else {
        Box::new(body)
    };
    // A known length stays a Content-Length: tiny_http would otherwise switch large
    // bodies to chunked encoding.
    tiny_http::Response::new(tiny_http::StatusCode(status), headers, reader, length, None)
        .with_chunked_threshold(usize::MAX)
}

fn copy_request_headers(request: &tiny_http::Request, headers: &mut http::HeaderMap) {
    let connection_listed: Vec<String> = request_header(request, "Connection")
        .map(|value| {
            value
                .split(',')
                .map(|name| name.trim().to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default();
    // tiny_http reads a body framed by Transfer-Encoding whatever Content-Length says, as
    // RFC 9112 §6.3 asks; the forwarded request must be framed the same way, or the
    // upstream would read a different body (request smuggling).
    let chunked = request_header(request, "Transfer-Encoding").is_some();
    for incoming in request.headers() {
        let name = incoming.field.as_str().as_str().to_ascii_lowercase();
        let dropped = is_hop_by_hop(&name)
            || connection_listed.contains(&name)
            || (chunked && name == "content-length")
            // Credentials never reach Kapacitor (SPEC §7); Host is the upstream's; tiny_http
            // has already answered any `Expect: 100-continue`.
            || matches!(name.as_str(), "authorization" | "host" | "expect" | "x-forwarded-proto" | "x-forwarded-host");
        if dropped {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(incoming.value.as_str().as_bytes()),
        ) {
            headers.append(name, value);
        }
    }
}

fn add_forwarded(headers: &mut http::HeaderMap, client: &Client) {
    if let Some(addr) = client.addr {
        let forwarded_for = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(earlier) => format!("{earlier}, {}", addr.ip()),
            None => addr.ip().to_string(),
        };
        if let Ok(value) = HeaderValue::from_str(&forwarded_for) {
            headers.insert("x-forwarded-for", value);
        }
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    if let Some(host) = client
        .host
        .and_then(|host| HeaderValue::from_str(host).ok())
    {
        headers.insert("x-forwarded-host", host);
    }
}

fn forward_error(error: ureq::Error) -> ForwardError {
    match error {
        ureq::Error::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve) => {
            ForwardError::Unreachable("connect timed out".to_string())
        }
        ureq::Error::Timeout(_) => ForwardError::Timeout,
        ureq::Error::Io(io)
            if io.kind() == io::ErrorKind::TimedOut || io.kind() == io::ErrorKind::WouldBlock =>
        {
            ForwardError::Timeout
        }
        ureq::Error::Io(io) => ForwardError::Unreachable(io.kind().to_string()),
        ureq::Error::ConnectionFailed => ForwardError::Unreachable("connection failed".to_string()),
        ureq::Error::HostNotFound => ForwardError::Unreachable("host not found".to_string()),
        other => ForwardError::Unreachable(other.to_string()),
    }
}

fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|hop| name.eq_ignore_ascii_case(hop))
}

/// A reader that fails past `left` bytes, so a body tiny_http must buffer stays bounded.
struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            // Anything more would have to sit in memory: fail and let the connection close.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::other(
                    "response too large to buffer for an HTTP/1.0 or TE client",
                )),
            };
        }
        let limit = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let read = self.inner.read(&mut buf[..limit])?;
        self.left -= read as u64;
        Ok(read)
    }
}
