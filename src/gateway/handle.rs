//! One request's whole story, top to bottom (SPEC §1–§7): the only file that sequences a
//! request. Each step is a call into the file that owns it; what happens next is the
//! next line here. Writes the access line at the end, naming the outcome and never a
//! credential.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::gateway::authenticate::{AuthError, Authenticator};
use crate::gateway::authorize::{self, Decision, Denial};
use crate::gateway::credentials::{Credentials, parse_credentials};
use crate::gateway::forward::{self, ForwardError};
use crate::gateway::metrics::{self, RequestStats};
use crate::gateway::request_path::{NonCanonical, canonical_path, split_target};
use crate::gateway::respond::{self, Reply};
use crate::http::client::Upstream;
use crate::http::server::CoreStats;
use crate::http::{Body, Delivered, Fields, Request, RequestHead, Response};
use crate::log;
use crate::query::query_value;

/// Everything a request needs, shared by all connection threads.
pub struct Gateway {
    /// `None` when auth is off: every request is forwarded.
    pub authenticator: Option<Authenticator>,
    pub upstream: Upstream,
    /// `[http] log-enabled`; a reload may change it.
    pub log_enabled: AtomicBool,
    pub ids: RequestIds,
    /// `[gateway] metrics-enabled`: whether `/kapauth/metrics` answers.
    pub metrics_enabled: bool,
    pub requests: RequestStats,
    /// The gateway listener's own counts, shared with the HTTP core.
    pub core: Arc<CoreStats>,
}

/// What the checks decided: answer here, or forward. Forwarding is the outcome the code
/// must name; nothing reaches Kapacitor by falling through.
#[must_use]
#[derive(Debug)]
pub enum Verdict {
    Answer(Reply),
    Forward,
}

/// What the access line says of a request.
struct Story {
    user: String,
    reason: Option<String>,
}

/// Serves one request: decides, answers or forwards, writes one access line.
pub fn handle(gateway: &Gateway, mut request: Request<'_>) -> Delivered {
    let started = Instant::now();
    let start = SystemTime::now();
    let id = gateway.ids.next();
    let mut story = Story {
        user: "-".to_string(),
        reason: None,
    };
    // Owned copies: the request's body is read, mutably, while these are still in use.
    let target = request.head.target.clone();
    let method = request.head.method.clone();
    let split = split_target(&target);
    let (raw_path, raw_query) = match &split {
        Ok((path, query)) => (*path, *query),
        // Only what comes before a query or fragment is ever logged: a `#` in an unencoded
        // password must not carry it into the access line.
        Err(_) => (target.split(['?', '#']).next().unwrap_or_default(), None),
    };
    let mut forwarded = false;
    let response = match decide(
        gateway,
        &request.head,
        request.remote.ip(),
        split,
        &mut story,
    ) {
        Verdict::Answer(reply) => reply_response(reply),
        Verdict::Forward => {
            forwarded = true;
            let forward_target = forward::forward_target(raw_path, raw_query);
            match forward::forward(&gateway.upstream, &mut request, &method, &forward_target) {
                Ok(response) => response,
                Err(error) => {
                    forwarded = false;
                    let (reason, reply) = forward_failure(gateway.upstream.name(), error);
                    story.reason = Some(reason);
                    reply_response(reply)
                }
            }
        }
    };
    // The id the client receives is the one logged: Kapacitor's own when it sent one (it
    // makes a new one for every request), else kapauth's, added to the answer.
    let mut response = response;
    let request_id = match response.fields.get_str("Request-Id") {
        Some(upstream_id) => upstream_id.to_string(),
        None => {
            response.fields.push("Request-Id", id.as_bytes());
            id
        }
    };
    let line = gateway
        .log_enabled
        .load(Ordering::Relaxed)
        .then(|| AccessLine {
            host: request.remote.ip(),
            start,
            method: &method,
            uri: logged_uri(raw_path, raw_query),
            protocol: request.head.version.as_str(),
            referer: request.head.fields.get_str("Referer").map(str::to_string),
            user_agent: request
                .head
                .fields
                .get_str("User-Agent")
                .map(str::to_string),
        });
    let delivered = request.respond(response);
    gateway.requests.count(forwarded, delivered.status());
    gateway.requests.duration.observe(started.elapsed());
    if let Some(error) = delivered.error() {
        story.reason = Some(format!("response not delivered: {error}"));
    }
    if let Some(line) = line {
        line.emit(&story, delivered.status(), &request_id, started.elapsed());
    }
    delivered
}

/// The checks of SPEC §1–§7 in order, each a call into the file that owns it.
fn decide(
    gateway: &Gateway,
    head: &RequestHead,
    remote: IpAddr,
    split: Result<(&str, Option<&str>), NonCanonical>,
    story: &mut Story,
) -> Verdict {
    let method = head.method.as_str();
    // The path authorized must be the path Kapacitor routes (SPEC §7).
    let (raw_path, raw_query) = match split {
        Ok(parts) => parts,
        Err(problem) => {
            story.reason = Some(problem.to_string());
            return Verdict::Answer(respond::non_canonical_path());
        }
    };
    let path = match canonical_path(raw_path) {
        Ok(path) => path,
        Err(problem) => {
            story.reason = Some(problem.to_string());
            return Verdict::Answer(respond::non_canonical_path());
        }
    };
    // kapauth's own endpoints never reach Kapacitor (SPEC §6).
    if path == "/kapauth" || path.starts_with("/kapauth/") {
        return Verdict::Answer(match (method, path.as_ref()) {
            ("GET", "/kapauth/health") => respond::health(),
            ("GET", "/kapauth/metrics") if gateway.metrics_enabled => {
                respond::metrics(metrics::render(
                    &gateway.requests,
                    gateway.authenticator.as_ref(),
                    &gateway.core,
                    &gateway.upstream,
                ))
            }
            _ => respond::own_path_not_found(),
        });
    }
    // Kapacitor answers every preflight before authentication (SPEC §2). Exactly
    // `OPTIONS`, as Go compares it: `options` is another method, which needs credentials.
    if method == "OPTIONS" {
        return Verdict::Forward;
    }
    let Some(authenticator) = gateway.authenticator.as_ref() else {
        // Auth is off ([http] auth-enabled or [auth] enabled is false), which serve.rs
        // warns about at every start: every request is forwarded unchecked.
        return Verdict::Forward;
    };
    authenticate_and_authorize(authenticator, head, remote, &path, raw_query, story)
}

/// SPEC §1–§5 for a request that needs credentials.
fn authenticate_and_authorize(
    authenticator: &Authenticator,
    head: &RequestHead,
    remote: IpAddr,
    path: &str,
    raw_query: Option<&str>,
    story: &mut Story,
) -> Verdict {
    let authorization = head.fields.get_str("Authorization");
    let credentials = match parse_credentials(authorization, raw_query) {
        Ok(credentials) => credentials,
        Err(error) => {
            story.reason = Some(error.to_string());
            return Verdict::Answer(respond::unauthorized(&error.to_string()));
        }
    };
    // The name a client tried is logged, escaped and capped by log.rs, so failures show
    // whom they were aimed at; never the password.
    if let Credentials::Password { username, .. } = &credentials {
        story.user = username.clone();
    }
    // Failed-login budgets count per client as the connection caps do (an IPv6 /64).
    let client = crate::http::client_key(remote);
    let record = match authenticator.authenticate(&credentials, client, unix_now()) {
        Ok(record) => record,
        Err(AuthError::Unavailable(reason)) => {
            story.reason = Some(format!("meta unavailable: {reason}"));
            return Verdict::Answer(respond::authentication_unavailable());
        }
        Err(AuthError::Throttled { retry_after }) => {
            story.reason = Some("too many failed logins".to_string());
            return Verdict::Answer(respond::too_many_failed_logins(retry_after));
        }
        Err(error) => {
            story.reason = Some(error.to_string());
            return Verdict::Answer(respond::unauthorized(&error.to_string()));
        }
    };
    story.user = record.name.clone();
    let db = raw_query.and_then(|query| query_value(query, "db"));
    match authorize::authorize_request(&record.grants, &head.method, path, db.as_deref()) {
        Decision::Allow => Verdict::Forward,
        Decision::Deny(denial) => {
            story.reason = Some(denial_reason(&denial));
            Verdict::Answer(respond::denied(&record.name, &denial))
        }
    }
}

/// The access line's reason and the answer for a request Kapacitor did not answer.
fn forward_failure(upstream: &str, error: ForwardError) -> (String, Reply) {
    match error {
        ForwardError::Unreachable(reason) => (
            format!("upstream unreachable: {reason}"),
            respond::upstream_unreachable(upstream, &reason),
        ),
        ForwardError::Timeout => (
            "upstream timeout".to_string(),
            respond::upstream_timeout(upstream),
        ),
        ForwardError::Broken(reason) => (
            format!("upstream failed: {reason}"),
            respond::upstream_failed(upstream, &reason),
        ),
        ForwardError::ClientBody(reason) => (
            format!("request body unreadable: {reason}"),
            respond::unreadable_body(&reason),
        ),
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

/// A reply kapauth wrote itself; `handle` adds its `Request-Id`.
fn reply_response(reply: Reply) -> Response<'static> {
    let mut fields = Fields::with_capacity(128, reply.headers.len() + 1);
    for (name, value) in &reply.headers {
        fields.push(name, value.as_bytes());
    }
    Response {
        status: reply.status,
        reason: String::new(),
        fields,
        body: Body::Full(reply.body.into_bytes()),
    }
}

/// What Kapacitor's `http request` line says of a request, taken before the body is
/// read; `emit` adds the outcome.
struct AccessLine<'a> {
    host: IpAddr,
    start: SystemTime,
    method: &'a str,
    uri: String,
    protocol: &'static str,
    referer: Option<String>,
    user_agent: Option<String>,
}

impl AccessLine<'_> {
    /// Kapacitor's keys in Kapacitor's order (`services/httpd`), `-` for what is absent,
    /// then kapauth's `reason` when there is one. log.rs escapes and caps each value.
    fn emit(self, story: &Story, status: u16, request_id: &str, duration: Duration) {
        let mut line = log::info("http request")
            .field("service", "http")
            .field("host", self.host)
            .field("username", &story.user)
            .field("start", log::rfc3339_nanos(self.start))
            .field("method", self.method)
            .field("uri", &self.uri)
            .field("protocol", self.protocol)
            .field("status", status)
            .field("referer", self.referer.as_deref().unwrap_or("-"))
            .field("user-agent", self.user_agent.as_deref().unwrap_or("-"))
            .field("request-id", request_id)
            .field("duration", log::go_duration(duration));
        if let Some(reason) = &story.reason {
            line = line.field("reason", reason);
        }
        line.emit();
    }
}

/// The request URI as logged: the path and the query without `u` and `p` (so never a
/// password), as Kapacitor would route it; for a target that was refused, only what comes
/// before a `?` or `#`.
fn logged_uri(raw_path: &str, raw_query: Option<&str>) -> String {
    forward::forward_target(raw_path, raw_query)
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
