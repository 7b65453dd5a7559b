//! The meta API's HTTP side (SPEC §8): reads a request (method, path, query, the
//! `Authorization` header, a body of at most 1 MiB), turns its credentials into a
//! `Principal`, asks `access.rs` whether that principal may, `actions.rs` what a body asks
//! for, and the store for a read or a change; then writes the answer and the access line.
//! Who may do what and what a body must hold are decided in those two pure files, never
//! here; the state and the disk belong to `mod.rs`. Never logs a password, a hash or a
//! token: the access line names the path without its query.

use std::io::Read;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::access::{Access, Need, Principal, Refusal, access};
use super::actions::{Action, ActionError, Entity, action, first_user};
use super::audit;
use super::store::{State, StoreError};
use super::{ChangeOutcome, MetaServer};
use crate::http::{Body, Delivered, Fields, Request, RequestBody, Response};
use crate::log;
use crate::meta_api::{self, ClusterDoc, ErrorDoc, NodeDoc, RolesDoc, UsersDoc};
use crate::query::query_value;
use crate::secret::basic_auth;
use crate::secret::jwt::{self, Token};
use crate::secret::password::{Password, verify_bcrypt};

/// The meta API's JSON `Content-Type`, as Enterprise's meta API sends it.
const JSON: &str = "application/json";

/// The largest body a POST may carry (SPEC §8).
pub const MAX_BODY: u64 = 1024 * 1024;

/// An answer: status, JSON body (empty for none), and the `Allow` header of a 405.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub allow: Option<&'static str>,
    /// The body's `Content-Type`: JSON, but for `/metrics`.
    pub content_type: &'static str,
}

/// The meta node this server is, as `GET /show-cluster` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThisNode {
    /// The address the meta API's listener bound.
    pub addr: SocketAddr,
    /// Whether that listener serves TLS.
    pub https: bool,
}

/// Serves one request and writes the access line.
pub fn handle(meta: &MetaServer, node: &ThisNode, mut request: Request<'_>) -> Delivered {
    let started = Instant::now();
    let method = request.head.method.to_ascii_uppercase();
    let url = request.head.target.clone();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let authorization = request.header("Authorization").map(str::to_string);
    let declared_length = match request.framing() {
        RequestBody::Length(length) => Some(length),
        RequestBody::None | RequestBody::Chunked => None,
    };
    let state = meta.snapshot();
    if state.users.is_empty() {
        log::warn("the meta store has no users: the first unauthenticated create becomes an administrator")
            .emit();
    }
    // /ping answers whoever asks, as the meta API's does, so credentials are not read; so
    // does /metrics, which holds counts only (kapauth).
    let authenticated = if path == "/ping" || path == "/metrics" {
        Ok(Principal::Anonymous)
    } else {
        authenticate(meta, &state, authorization.as_deref())
    };
    let (reply, principal) = match authenticated {
        Err(reply) => (reply, Principal::Anonymous),
        Ok(principal) => {
            let reply = route(
                meta,
                node,
                &state,
                &principal,
                &method,
                path,
                query,
                declared_length,
                &mut request.body(),
            );
            (reply, principal)
        }
    };
    let user = actor(&principal);
    let mut line = log::info("meta request")
        .field("service", "meta")
        .field("remote", request.remote)
        .field("user", user)
        .field("method", &method)
        .field("path", path);
    if let Some(name) = query_value(query, "name") {
        line = line.field("name", name);
    }
    line.field("status", reply.status)
        .field(
            "duration",
            format!("{:.3}ms", started.elapsed().as_secs_f64() * 1000.0),
        )
        .emit();
    let mut fields = Fields::default();
    if !reply.body.is_empty() {
        fields.push("Content-Type", reply.content_type.as_bytes());
    }
    if let Some(allow) = reply.allow {
        fields.push("Allow", allow.as_bytes());
    }
    request.respond(Response {
        status: reply.status,
        reason: String::new(),
        fields,
        body: Body::Full(reply.body.into_bytes()),
    })
}

fn authenticate(
    meta: &MetaServer,
    state: &State,
    authorization: Option<&str>,
) -> Result<Principal, Reply> {
    let Some(authorization) = authorization else {
        return Ok(Principal::Anonymous);
    };
    if let Some(token) = authorization.strip_prefix("Bearer ") {
        if meta.internal_secret.is_empty() {
            return Err(error(
                401,
                "invalid token: no internal shared secret is configured on this meta server",
            ));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let token = Token::new(token.to_string());
        let claims = jwt::verify(&token, &meta.internal_secret, now)
            .map_err(|e| error(401, &format!("invalid token: {e}")))?;
        // SPEC §8: the internal token must carry an expiry.
        if !claims
            .get("exp")
            .is_some_and(|exp| exp.as_f64().is_some_and(|exp| exp > 0.0))
        {
            return Err(error(401, "token expiration required"));
        }
        // SPEC §8: internal tokens are HS512; the other HMACs are refused here.
        match jwt::header_algorithm(&token) {
            Some(algorithm) if algorithm == "HS512" => {}
            other => {
                let algorithm = other.unwrap_or_default();
                return Err(error(
                    401,
                    &format!("invalid token: unexpected signing method: {algorithm}"),
                ));
            }
        }
        return Ok(Principal::Internal);
    }
    let Some((name, password)) = basic_auth(authorization) else {
        return Err(error(401, "unable to parse authentication credentials"));
    };
    if state.users.is_empty() {
        return Err(error(
            401,
            "the meta store has no users yet: create the first one without credentials, e.g. curl -d '{\"action\":\"create\",\"user\":{\"name\":\"admin\",\"password\":\"…\"}}' http://HOST:8091/user",
        ));
    }
    let Some(user) = state.users.get(&name) else {
        // The same bcrypt work as for a known user, so timing does not tell which names exist.
        let _ = verify_bcrypt(&password, &meta.decoy_hash);
        meta.stats.logins_failed.inc();
        return Err(error(401, "authorization failed"));
    };
    match verify_bcrypt(&password, &user.hash) {
        Ok(true) => {
            meta.stats.logins_ok.inc();
            Ok(Principal::User(name))
        }
        Ok(false) => {
            meta.stats.logins_failed.inc();
            Err(error(401, "authorization failed"))
        }
        Err(_) => {
            meta.stats.logins_failed.inc();
            log::warn("stored hash is malformed; login refused")
                .field("user", &name)
                .emit();
            Err(error(401, "authorization failed"))
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn route(
    meta: &MetaServer,
    node: &ThisNode,
    state: &State,
    principal: &Principal,
    method: &str,
    path: &str,
    query: &str,
    declared_length: Option<u64>,
    body: &mut dyn Read,
) -> Reply {
    let route = match Route::of(method, path) {
        Ok(route) => route,
        Err(reply) => return reply,
    };
    let bootstrap = route == Route::Change(Entity::User) && state.users.is_empty();
    let holds = |user: &str, permission: &str| state.holds(user, permission, "");
    let access = access(principal, route.need(), bootstrap, holds);
    // Access is decided before a change's body is read: a body from someone who may not
    // change anything is never waited for (it is drained or the connection closes).
    let body = match (&access, route) {
        (Access::Granted | Access::Bootstrap, Route::Change(_)) => {
            match read_body(declared_length, body) {
                Ok(body) => body,
                Err(reply) => return reply,
            }
        }
        _ => Vec::new(),
    };
    let actor = actor(principal);
    match (access, route) {
        (Access::Refused(refusal), Route::Change(_)) => {
            let reply = refused(&refusal);
            record(
                meta,
                &actor,
                path,
                None,
                ChangeOutcome::Refused,
                &format!("({})", reply.status),
            );
            reply
        }
        (Access::Refused(refusal), _) => refused(&refusal),
        (Access::Bootstrap, Route::Change(Entity::User)) => {
            change(meta, &actor, path, first_user(&body))
        }
        // `bootstrap` is only ever true for `POST /user`; refuse should that change.
        (Access::Bootstrap, _) => refused(&Refusal::Unauthenticated),
        (Access::Granted, Route::Ping) => empty(204),
        (Access::Granted, Route::Metrics) => Reply {
            status: 200,
            body: meta.stats.render(),
            allow: None,
            content_type: crate::metrics::CONTENT_TYPE,
        },
        (Access::Granted, Route::Users) => read_users(state, query),
        (Access::Granted, Route::Roles) => read_roles(state, query),
        (Access::Granted, Route::Authorized) => authorized(state, query),
        (Access::Granted, Route::Cluster) => json(200, &cluster(node)),
        (Access::Granted, Route::Change(entity)) => {
            change(meta, &actor, path, action(entity, &body))
        }
    }
}

/// Who a request came from, for the access and audit lines.
fn actor(principal: &Principal) -> String {
    match principal {
        Principal::Anonymous => "-".to_string(),
        Principal::User(name) => name.clone(),
        Principal::Internal => "(internal)".to_string(),
    }
}

/// What a request asks the meta API for, by method and path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Ping,
    /// kapauth's counts, in the Prometheus text format.
    Metrics,
    Users,
    Roles,
    Authorized,
    /// `GET /show-cluster`, which Chronograf asks before it manages users.
    Cluster,
    /// A `POST` of an action on users or roles.
    Change(Entity),
}

impl Route {
    /// The route, or the 404 of an unknown path or the 405 of a method the path does not take.
    fn of(method: &str, path: &str) -> Result<Route, Reply> {
        let allow = match path {
            "/ping" => "GET, HEAD",
            "/metrics" => "GET",
            "/user" | "/role" => "GET, POST",
            "/authorized" | "/show-cluster" => "GET",
            _ => {
                return Err(error(
                    404,
                    &format!(
                        "no such endpoint {path:?}; the meta API serves /ping, /user, /role, /authorized, /show-cluster and /metrics"
                    ),
                ));
            }
        };
        match (method, path) {
            ("GET" | "HEAD", "/ping") => Ok(Route::Ping),
            ("GET", "/metrics") => Ok(Route::Metrics),
            ("GET", "/user") => Ok(Route::Users),
            ("GET", "/role") => Ok(Route::Roles),
            ("GET", "/authorized") => Ok(Route::Authorized),
            ("GET", "/show-cluster") => Ok(Route::Cluster),
            ("POST", "/user") => Ok(Route::Change(Entity::User)),
            ("POST", "/role") => Ok(Route::Change(Entity::Role)),
            _ => {
                let mut reply = error(
                    405,
                    &format!("method {method} is not allowed on {path}; use {allow}"),
                );
                reply.allow = Some(allow);
                Err(reply)
            }
        }
    }

    /// Reading users and roles shows hashes, and `/authorized` checks passwords, so both
    /// need a viewer; a change needs a manager (SPEC §8). `/show-cluster` shows no secret,
    /// but it is a GET of the cluster's administration like the others, and Chronograf asks
    /// it with the same administrator's credentials it then manages users with, so it takes
    /// the same viewer rule rather than a rule of its own.
    fn need(self) -> Need {
        match self {
            Route::Ping | Route::Metrics => Need::Nothing,
            Route::Users | Route::Roles | Route::Authorized | Route::Cluster => Need::View,
            Route::Change(_) => Need::Manage,
        }
    }
}

/// Makes the change `action` asks for: hashes its password, if any, then applies it, and
/// writes its audit line.
fn change(
    meta: &MetaServer,
    actor: &str,
    path: &str,
    action: Result<Action, ActionError>,
) -> Reply {
    let action = match action {
        Ok(action) => action,
        Err(action_error) => {
            let reply = invalid(&action_error);
            record(
                meta,
                actor,
                path,
                None,
                ChangeOutcome::Invalid,
                &format!("({})", reply.status),
            );
            return reply;
        }
    };
    // bcrypt runs here, before the store's lock is taken (SPEC §8 concurrency).
    let Ok(mutation) = action.into_mutation(|password| meta.hash(password)) else {
        record(
            meta,
            actor,
            path,
            None,
            ChangeOutcome::Failed,
            "(500): cannot hash the password",
        );
        return error(500, "cannot hash the password");
    };
    let described = audit::describe(&mutation);
    let (reply, outcome, detail) = match meta.mutate(&mutation) {
        Ok(()) => (empty(200), ChangeOutcome::Made, String::new()),
        Err(super::MutateError::Store(store_error)) => {
            let reply = store_reply(&store_error);
            let detail = format!("({}): {store_error}", reply.status);
            (reply, ChangeOutcome::Refused, detail)
        }
        Err(super::MutateError::Disk(disk_error)) => {
            log::error("cannot save the meta store")
                .field("error", disk_error)
                .emit();
            let reply = error(
                500,
                "the meta store could not be saved; the change was not made",
            );
            (reply, ChangeOutcome::Failed, "(500): not saved".to_string())
        }
    };
    record(meta, actor, path, Some(&described), outcome, &detail);
    reply
}

/// The audit line of a change asked for, and its count in the meta API's metrics.
fn record(
    meta: &MetaServer,
    actor: &str,
    path: &str,
    change: Option<&audit::Change>,
    outcome: ChangeOutcome,
    detail: &str,
) {
    meta.stats
        .count_change(change.map(|change| change.action), outcome);
    let outcome = match outcome {
        ChangeOutcome::Made => outcome.word().to_string(),
        rejected => format!("{} {detail}", rejected.word()),
    };
    audit::emit(actor, path, change, &outcome);
}

fn refused(refusal: &Refusal) -> Reply {
    match refusal {
        Refusal::Unauthenticated => error(401, "unable to parse authentication credentials"),
        Refusal::Lacks { user, need } => error(
            403,
            &format!(
                "user {user:?} needs the {} permission for this request",
                need.permissions().join(" or ")
            ),
        ),
    }
}

fn read_body(declared_length: Option<u64>, body: &mut dyn Read) -> Result<Vec<u8>, Reply> {
    let too_large = || error(413, "request body is larger than 1 MiB");
    if declared_length.is_some_and(|length| length > MAX_BODY) {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    body.take(MAX_BODY + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| error(400, &format!("cannot read the request body: {e}")))?;
    if bytes.len() as u64 > MAX_BODY {
        return Err(too_large());
    }
    Ok(bytes)
}

fn read_users(state: &State, query: &str) -> Reply {
    let users = match named(query) {
        None => state.user_docs(),
        Some(name) => match state.user_doc(&name) {
            Some(user) => vec![user],
            None => return error(404, "user not found"),
        },
    };
    json(200, &UsersDoc { users })
}

fn read_roles(state: &State, query: &str) -> Reply {
    let roles = match named(query) {
        None => state.role_docs(),
        Some(name) => match state.role_doc(&name) {
            Some(role) => vec![role],
            None => return error(404, "role not found"),
        },
    };
    json(200, &RolesDoc { roles })
}

/// The `name` a read filters by. An empty `name=` filters by nothing, as in the meta API:
/// Kapacitor's meta client lists every user with `GET /user?name=`.
fn named(query: &str) -> Option<String> {
    query_value(query, "name").filter(|name| !name.is_empty())
}

/// `GET /authorized?name&password&permission&resource` (SPEC §8), used for LDAP-style
/// password checks and by operators.
fn authorized(state: &State, query: &str) -> Reply {
    let param = |key| query_value(query, key);
    let (Some(name), Some(password), Some(permission)) =
        (param("name"), param("password"), param("permission"))
    else {
        return error(
            400,
            "/authorized needs name, password and permission query parameters",
        );
    };
    let resource = param("resource").unwrap_or_default();
    if !meta_api::is_permission(&permission) {
        // The same words as an action body's unknown permission.
        return invalid(&ActionError::UnknownPermission(permission));
    }
    let password = Password::new(password);
    let Some(user) = state.users.get(&name) else {
        return error(401, "authorization failed");
    };
    if verify_bcrypt(&password, &user.hash) != Ok(true) {
        return error(401, "authorization failed");
    }
    if state.holds(&name, &permission, &resource) {
        empty(200)
    } else {
        error(
            403,
            &format!("user {name:?} does not hold {permission} on {resource:?}"),
        )
    }
}

/// `GET /show-cluster`: this one meta node and no data nodes.
fn cluster(node: &ThisNode) -> ClusterDoc {
    ClusterDoc {
        data: [],
        meta: vec![NodeDoc {
            id: 1,
            addr: node.addr.to_string(),
            http_scheme: if node.https { "https" } else { "http" }.to_string(),
            tcp_addr: String::new(),
        }],
    }
}

fn store_reply(store_error: &StoreError) -> Reply {
    let status = match store_error {
        StoreError::UserNotFound(_) | StoreError::RoleNotFound(_) => 404,
        StoreError::UserExists(_) | StoreError::RoleExists(_) => 409,
        StoreError::NotEmpty => 401,
    };
    error(status, &store_error.to_string())
}

/// A body that is not a valid action: 400, but 401 for anything other than the first
/// user's `create` on an empty store, since everything else needs credentials.
fn invalid(action_error: &ActionError) -> Reply {
    let status = match action_error {
        ActionError::NotFirstUser => 401,
        _ => 400,
    };
    error(status, &action_error.to_string())
}

/// An answer without a body.
fn empty(status: u16) -> Reply {
    Reply {
        status,
        body: String::new(),
        allow: None,
        content_type: JSON,
    }
}

fn error(status: u16, message: &str) -> Reply {
    json(
        status,
        &ErrorDoc {
            error: message.to_string(),
        },
    )
}

fn json(status: u16, body: &impl serde::Serialize) -> Reply {
    Reply {
        status,
        body: serde_json::to_string(body).unwrap_or_default(),
        allow: None,
        content_type: JSON,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `Route::of` answers: the route, or the status of the refusal.
    fn check(method: &str, path: &str, expected: Result<Route, u16>) {
        let got = Route::of(method, path).map_err(|reply| reply.status);
        assert_eq!(got, expected, "{method} {path}");
    }

    #[test]
    fn every_method_and_path_finds_its_route_or_refusal() {
        check("GET", "/ping", Ok(Route::Ping));
        check("HEAD", "/ping", Ok(Route::Ping));
        check("GET", "/user", Ok(Route::Users));
        check("POST", "/user", Ok(Route::Change(Entity::User)));
        check("GET", "/role", Ok(Route::Roles));
        check("POST", "/role", Ok(Route::Change(Entity::Role)));
        check("GET", "/authorized", Ok(Route::Authorized));
        check("GET", "/show-cluster", Ok(Route::Cluster));
        check("POST", "/show-cluster", Err(405));
        check("HEAD", "/show-cluster", Err(405));
        check("GET", "/show-cluster/", Err(404));
        check("GET", "/show-clusters", Err(404));
        check("DELETE", "/user", Err(405));
    }

    #[test]
    fn show_cluster_needs_a_viewer_like_the_other_reads() {
        assert_eq!(Route::Cluster.need(), Need::View);
    }

    #[test]
    fn show_cluster_lists_this_meta_node_and_no_data_nodes() {
        let check = |https: bool, expected: &str| {
            let node = ThisNode {
                addr: "127.0.0.1:8091".parse().unwrap(),
                https,
            };
            assert_eq!(serde_json::to_string(&cluster(&node)).unwrap(), expected);
        };
        check(
            false,
            r#"{"data":[],"meta":[{"id":1,"addr":"127.0.0.1:8091","httpScheme":"http","tcpAddr":""}]}"#,
        );
        check(
            true,
            r#"{"data":[],"meta":[{"id":1,"addr":"127.0.0.1:8091","httpScheme":"https","tcpAddr":""}]}"#,
        );
    }
}
