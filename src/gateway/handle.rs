//! One request's whole story, top to bottom (SPEC §1–§7): the only file that sequences a
//! request. Each step is a call into the file that owns it; what happens next is the
//! next line here. Writes the access line at the end, naming the outcome and never a
//! credential.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::gateway::authenticate::{AuthError, Authenticator};
use crate::gateway::authorize::{self, Decision, Denial};
use crate::gateway::credentials::parse_credentials;
use crate::gateway::forward::{Client, ForwardError, Upstream};
use crate::gateway::request_path::{canonical_path, split_target};
use crate::gateway::respond::{self, Reply};
use crate::log;
use crate::query::{query_value, strip_credential_params};
use crate::server::request_header;

/// Everything a request needs, shared by all request threads.
pub struct Gateway {
    /// `None` when auth is off: every request is forwarded.
    pub authenticator: Option<Authenticator>,
    pub upstream: Upstream,
    pub log_enabled: bool,
    pub ids: RequestIds,
}

/// What the access line says of a request.
struct Story {
    user: String,
    reason: Option<String>,
}

/// Serves one request.
pub fn handle(gateway: &Arc<Gateway>, mut request: tiny_http::Request) {
    let started = Instant::now();
    let id = gateway.ids.next();
    let method = request.method().as_str().to_string();
    let target = request.url().to_string();
    let split = split_target(&target);
    let (raw_path, raw_query) = match &split {
        Ok((path, query)) => (*path, *query),
        Err(_) => (target.as_str(), None),
    };
    let remote = request.remote_addr().copied();
    let mut story = Story {
        user: "-".to_string(),
        reason: None,
    };

    let decided = match split {
        Err(problem) => {
            story.reason = Some(problem.to_string());
            Some(respond::non_canonical_path())
        }
        Ok(_) => decide(gateway, &request, &method, raw_path, raw_query, &mut story),
    };
    let reply = match decided {
        Some(reply) => reply,
        None => {
            let forward_target = match raw_query.map(strip_credential_params) {
                Some(query) if !query.is_empty() => format!("{raw_path}?{query}"),
                _ => raw_path.to_string(),
            };
            let host = request_header(&request, "Host");
            let client = Client {
                addr: remote,
                host: host.as_deref(),
            };
            match gateway
                .upstream
                .forward(&mut request, &forward_target, &client)
            {
                Ok(answer) => {
                    let status = answer.status_code().0;
                    let result = request.respond(answer);
                    if let Err(error) = result {
                        story.reason = Some(format!("response not delivered: {error}"));
                    }
                    access_line(
                        gateway, &id, remote, &method, raw_path, status, started, &story,
                    );
                    return;
                }
                Err(error) => {
                    let name = gateway.upstream.name();
                    let (reason, reply) = match error {
                        ForwardError::Unreachable(reason) => (
                            format!("upstream unreachable: {reason}"),
                            respond::upstream_unreachable(name, &reason),
                        ),
                        ForwardError::Timeout => (
                            "upstream timeout".to_string(),
                            respond::upstream_timeout(name),
                        ),
                        ForwardError::BadTarget => (
                            "target cannot be forwarded".to_string(),
                            respond::non_canonical_path(),
                        ),
                    };
                    story.reason = Some(reason);
                    reply
                }
            }
        }
    };
    let status = reply.status;
    crate::server::drain_chunked_body(&mut request);
    send(request, reply, &id);
    access_line(
        gateway, &id, remote, &method, raw_path, status, started, &story,
    );
}

/// The checks of SPEC §1–§7 in order: `Some(reply)` answers the request here, `None`
/// forwards it.
fn decide(
    gateway: &Gateway,
    request: &tiny_http::Request,
    method: &str,
    raw_path: &str,
    raw_query: Option<&str>,
    story: &mut Story,
) -> Option<Reply> {
    // tiny_http reads any Transfer-Encoding as chunked; Kapacitor would not (kapauth).
    if !crate::server::framing_is_supported(request) {
        story.reason = Some("unsupported Transfer-Encoding".to_string());
        return Some(respond::unsupported_framing());
    }
    // The path authorized must be the path Kapacitor routes (SPEC §7).
    let path = match canonical_path(raw_path) {
        Ok(path) => path,
        Err(problem) => {
            story.reason = Some(problem.to_string());
            return Some(respond::non_canonical_path());
        }
    };
    // kapauth's own endpoints never reach Kapacitor (SPEC §6).
    if path == "/kapauth" || path.starts_with("/kapauth/") {
        return Some(if method == "GET" && path == "/kapauth/health" {
            respond::health()
        } else {
            respond::own_path_not_found()
        });
    }
    // Kapacitor answers every preflight before authentication (SPEC §2).
    if method.eq_ignore_ascii_case("OPTIONS") {
        return None;
    }
    let authenticator = gateway.authenticator.as_ref()?;
    let authorization = request_header(request, "Authorization");
    let credentials = match parse_credentials(authorization.as_deref(), raw_query) {
        Ok(credentials) => credentials,
        Err(error) => {
            story.reason = Some(error.to_string());
            return Some(respond::unauthorized(&error.to_string()));
        }
    };
    let record = match authenticator.authenticate(&credentials, unix_now()) {
        Ok(record) => record,
        Err(AuthError::Unavailable) => {
            story.reason = Some("meta unavailable".to_string());
            return Some(respond::authentication_unavailable());
        }
        Err(error) => {
            story.reason = Some(error.to_string());
            return Some(respond::unauthorized(&error.to_string()));
        }
    };
    story.user = record.name.clone();
    let db = raw_query.and_then(|query| query_value(query, "db"));
    let decision = match authorize::authorize(&record.grants, method, &path) {
        Decision::Allow => {
            authorize::authorize_write_database(&record.grants, method, &path, db.as_deref())
        }
        deny => deny,
    };
    match decision {
        Decision::Allow => None,
        Decision::Deny(denial) => {
            story.reason = Some(denial_reason(&denial));
            Some(respond::denied(&record.name, &denial))
        }
    }
}

/// The outcome of a denial for the access line: what was missing, not the inputs.
fn denial_reason(denial: &Denial) -> String {
    match denial {
        Denial::UnknownMethod { method } => format!("deny unknown method {method}"),
        Denial::Missing { privilege, path } => {
            format!("deny priv={} path={path}", privilege.as_str())
        }
        Denial::Database { db } => format!("deny priv=write database={db}"),
    }
}

/// Sends a reply kapauth wrote itself, with its `Request-Id`.
pub fn send(request: tiny_http::Request, reply: Reply, id: &str) {
    let mut response = tiny_http::Response::from_string(reply.body).with_status_code(reply.status);
    let headers = reply
        .headers
        .iter()
        .map(|(name, value)| (*name, value.as_str()));
    for (name, value) in headers.chain([("Request-Id", id)]) {
        if let Some(header) = crate::server::header(name, value) {
            response.add_header(header);
        }
    }
    let _ = request.respond(response);
}

#[allow(clippy::too_many_arguments)]
fn access_line(
    gateway: &Gateway,
    id: &str,
    remote: Option<std::net::SocketAddr>,
    method: &str,
    raw_path: &str,
    status: u16,
    started: Instant,
    story: &Story,
) {
    if !gateway.log_enabled {
        return;
    }
    let mut line = log::info("http request")
        .field("service", "gateway")
        .field("request-id", id)
        .field(
            "remote",
            remote.map(|addr| addr.to_string()).unwrap_or_default(),
        )
        .field("user", &story.user)
        .field("method", method)
        .field("path", raw_path)
        .field("status", status)
        .field(
            "duration",
            format!("{:.3}ms", started.elapsed().as_secs_f64() * 1000.0),
        );
    if let Some(reason) = &story.reason {
        line = line.field("reason", reason);
    }
    line.emit();
}

/// Request ids: a random per-process prefix and a counter, shaped like a UUID.
pub struct RequestIds {
    prefix: u64,
    counter: AtomicU64,
}

impl RequestIds {
    pub fn new(prefix: u64) -> RequestIds {
        RequestIds {
            prefix,
            counter: AtomicU64::new(0),
        }
    }

    fn next(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let p = self.prefix;
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            p >> 32,
            (p >> 16) & 0xffff,
            p & 0xffff,
            (n >> 48) & 0xffff,
            n & 0xffff_ffff_ffff
        )
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
