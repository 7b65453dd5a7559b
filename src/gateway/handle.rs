//! One request's whole story, top to bottom (SPEC §1–§7): the only file that sequences a
//! request. Each step is a call into the file that owns it; what happens next is the
//! next line here. Writes the access line at the end, naming the outcome and never a
//! credential. Forward-auth (`/kapauth/auth`, SPEC §6) decides the request a proxy names
//! with the same `decide_access` that decides a gateway request.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::gateway::authenticate::{AuthError, Authenticator};
use crate::gateway::authorize::{self, Decision, Denial};
use crate::gateway::credentials::{Credentials, parse_credentials};
use crate::gateway::forward::{self, ForwardError};
use crate::gateway::forward_auth;
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
/// must name, with the `Pass` that allows it; nothing reaches Kapacitor by falling through.
#[must_use]
#[derive(Debug)]
pub enum Verdict {
    Answer(Reply),
    Forward(Pass),
}

/// Why a request may reach Kapacitor: each way through has a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pass {
    /// This user is authenticated and authorized for the request (SPEC §1–§3).
    User(String),
    /// An `OPTIONS` preflight, which Kapacitor answers before authentication (SPEC §2).
    Preflight,
    /// Auth is off: nothing is checked.
    AuthOff,
}

/// What the access line says of a request.
struct Story {
    user: String,
    reason: Option<String>,
    /// For forward-auth, the method and URI (without `u` and `p`) of the request decided,
    /// which the line names instead of `/kapauth/auth`.
    original: Option<(String, String)>,
}

/// Serves one request: decides, answers or forwards, writes one access line.
pub fn handle(gateway: &Gateway, mut request: Request<'_>) -> Delivered {
    let started = Instant::now();
    let start = SystemTime::now();
    let mut story = Story {
        user: "-".to_string(),
        reason: None,
        original: None,
    };
    // Owned copies: the request's body is read, mutably, while these are still in use.
    let target = request.head.target.clone();
    let method = request.head.method.clone();
    let split = split_target(&target);
    let (raw_path, raw_query) = target_parts(&target, &split);
    let mut forwarded = false;
    // The target without `u` and `p`: what Kapacitor receives and what the access line logs,
    // made once.
    let forward_target = forward::forward_target(raw_path, raw_query);
    let response = match decide(
        gateway,
        &request.head,
        request.remote.ip(),
        split,
        &mut story,
    ) {
        Verdict::Answer(reply) => reply_response(reply),
        // Every `Pass` is forwarded: the user's, a preflight's, and auth off's.
        Verdict::Forward(_pass) => {
            forwarded = true;
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
            let id = gateway.ids.next();
            response.fields.push("Request-Id", id.as_bytes());
            id
        }
    };
    let original = story.original.take();
    let line = gateway
        .log_enabled
        .load(Ordering::Relaxed)
        .then(|| AccessLine {
            host: request.remote.ip(),
            start,
            method: original.as_ref().map_or(&method, |(method, _)| method),
            uri: match &original {
                Some((_, uri)) => uri.clone(),
                None => forward_target,
            },
            protocol: request.head.version.as_str(),
            referer: request
                .head
                .fields
                .get_str("Referer")
                .map(forward::logged_referer),
            user_agent: request
                .head
                .fields
                .get_str("User-Agent")
                .map(str::to_string),
        });
    let delivered = request.respond(response);
    gateway.requests.count(forwarded, delivered.status());
    let elapsed = started.elapsed();
    gateway.requests.duration.observe(elapsed);
    if let Some(error) = delivered.error() {
        story.reason = Some(format!("response not delivered: {error}"));
    }
    if let Some(line) = line {
        line.emit(&story, delivered.status(), &request_id, elapsed);
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
    let (path, raw_query) = match canonical_request(split, story) {
        Ok(parts) => parts,
        Err(reply) => return Verdict::Answer(reply),
    };
    // kapauth's own endpoints never reach Kapacitor (SPEC §6).
    if is_own_path(&path) {
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
            ("GET", "/kapauth/auth") => forward_auth(gateway, head, remote, story),
            _ => respond::own_path_not_found(),
        });
    }
    let asked = Asked {
        method,
        path: &path,
        raw_query,
        authorization: head.fields.get_str("Authorization"),
    };
    decide_access(gateway, &asked, remote, story)
}

/// `GET /kapauth/auth` (SPEC §6, kapauth): the request a proxy names in its headers,
/// decided by `decide_access` exactly as `decide` decides a gateway request, with this
/// request's own `Authorization` (proxies pass the client's on) and the original query.
/// A pass is a 204 naming the user; every other answer is the gateway's own.
fn forward_auth(gateway: &Gateway, head: &RequestHead, remote: IpAddr, story: &mut Story) -> Reply {
    let original = match forward_auth::original_request(&head.fields) {
        Ok(original) => original,
        Err(problem) => {
            // The problem's text starts with `forward-auth`, as every forward-auth reason does.
            story.reason = Some(problem.to_string());
            return respond::forward_auth_unnamed(&problem.to_string());
        }
    };
    let split = split_target(original.uri);
    let (raw_path, raw_query) = target_parts(original.uri, &split);
    story.original = Some((
        original.method.to_string(),
        forward::forward_target(raw_path, raw_query),
    ));
    let verdict = match canonical_request(split, story) {
        Err(reply) => Verdict::Answer(reply),
        Ok((path, _)) if is_own_path(&path) => {
            story.reason = Some("deny own endpoint".to_string());
            Verdict::Answer(respond::forward_auth_own_path())
        }
        Ok((path, raw_query)) => {
            let asked = Asked {
                method: original.method,
                path: &path,
                raw_query,
                authorization: head.fields.get_str("Authorization"),
            };
            decide_access(gateway, &asked, remote, story)
        }
    };
    let (reason, reply) = match verdict {
        Verdict::Answer(reply) => (story.reason.take().unwrap_or_default(), reply),
        Verdict::Forward(Pass::User(user)) => (
            "allow".to_string(),
            respond::forward_auth_allowed(Some(forward_auth::user_header(&user))),
        ),
        Verdict::Forward(Pass::Preflight) => (
            "allow preflight".to_string(),
            respond::forward_auth_allowed(None),
        ),
        Verdict::Forward(Pass::AuthOff) => (
            "allow auth off".to_string(),
            respond::forward_auth_allowed(None),
        ),
    };
    // Every forward-auth line says so, passes included: its status is kapauth's answer to
    // the proxy, while its method and URI are the original request's.
    story.reason = Some(format!("forward-auth: {reason}"));
    reply
}

/// The path authorized must be the path Kapacitor routes (SPEC §7): the decoded path and the
/// raw query, or the 400 for a target that is not canonical.
fn canonical_request<'a>(
    split: Result<(&str, Option<&'a str>), NonCanonical>,
    story: &mut Story,
) -> Result<(String, Option<&'a str>), Reply> {
    let checked =
        split.and_then(|(raw_path, raw_query)| Ok((canonical_path(raw_path)?, raw_query)));
    checked.map_err(|problem| {
        story.reason = Some(problem.to_string());
        respond::non_canonical_path()
    })
}

/// SPEC §1–§3 for a request that is not one of kapauth's own, from the gateway or named by
/// a proxy: a preflight passes, auth off passes, else credentials decide.
fn decide_access(
    gateway: &Gateway,
    asked: &Asked<'_>,
    remote: IpAddr,
    story: &mut Story,
) -> Verdict {
    // Kapacitor answers every preflight before authentication (SPEC §2). Exactly
    // `OPTIONS`, as Go compares it: `options` is another method, which needs credentials.
    if asked.method == "OPTIONS" {
        return Verdict::Forward(Pass::Preflight);
    }
    let Some(authenticator) = gateway.authenticator.as_ref() else {
        // Auth is off ([http] auth-enabled or [auth] enabled is false), which serve.rs
        // warns about at every start: every request passes unchecked.
        return Verdict::Forward(Pass::AuthOff);
    };
    authenticate_and_authorize(authenticator, asked, remote, story)
}

/// What SPEC §1–§5 look at of a request: the gateway's own, or the one a proxy names
/// (its method and URI from the proxy's headers, its `Authorization` the proxy's request's).
struct Asked<'a> {
    method: &'a str,
    /// The decoded, canonical path.
    path: &'a str,
    raw_query: Option<&'a str>,
    /// The first `Authorization` value, when it is UTF-8.
    authorization: Option<&'a str>,
}

/// SPEC §1–§5 for a request that needs credentials.
fn authenticate_and_authorize(
    authenticator: &Authenticator,
    asked: &Asked<'_>,
    remote: IpAddr,
    story: &mut Story,
) -> Verdict {
    let Asked {
        method,
        path,
        raw_query,
        authorization,
    } = *asked;
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
    // A password login's name is logged already; a token names its user only now.
    if let Credentials::Bearer(_) = credentials {
        story.user = record.name.clone();
    }
    let db = raw_query.and_then(|query| query_value(query, "db"));
    match authorize::authorize_request(&record.grants, method, path, db.as_deref()) {
        Decision::Allow => Verdict::Forward(Pass::User(record.name.clone())),
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

/// Whether a decoded path is one of kapauth's own, which never reach Kapacitor (SPEC §6).
pub(crate) fn is_own_path(path: &str) -> bool {
    path == "/kapauth" || path.starts_with("/kapauth/")
}

/// The raw path and query of `target` as split, or for a target refused for its `#`, only
/// what comes before a `?` or `#`: a `#` in an unencoded password must not carry it into
/// the access line.
fn target_parts<'a>(
    target: &'a str,
    split: &Result<(&'a str, Option<&'a str>), NonCanonical>,
) -> (&'a str, Option<&'a str>) {
    match split {
        Ok((path, query)) => (path, *query),
        Err(_) => (target.split(['?', '#']).next().unwrap_or_default(), None),
    }
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
