//! The meta API's HTTP surface (SPEC §8): which request needs which permission, what each
//! body must hold, and the answers. Turns a request into a store `Mutation` or a read of
//! the current state; `mod.rs` owns the state and the disk. Never logs a password, a hash
//! or a token: the access line names the path without its query.

use std::io::Read;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::MetaServer;
use super::access::{Access, Need, Principal, Refusal, access};
use super::store::{Grants, Mutation, State, StoreError, from_wire};
use crate::http::{Body, Delivered, Fields, Request, RequestBody, Response};
use crate::log;
use crate::meta_api::{self, ActionDoc, EntityDoc, ErrorDoc, Permissions, RolesDoc, UsersDoc};
use crate::query::query_value;
use crate::secret::basic_auth;
use crate::secret::jwt::{self, Token};
use crate::secret::password::{MAX_PASSWORD_BYTES, Password, verify_bcrypt};

/// The largest body a POST may carry (SPEC §8).
pub const MAX_BODY: u64 = 1024 * 1024;

/// An answer: status, JSON body (empty for none), and the `Allow` header of a 405.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub allow: Option<&'static str>,
}

/// Serves one request and writes the access line.
pub fn handle(meta: &MetaServer, mut request: Request<'_>) -> Delivered {
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
    // /ping answers whoever asks, as the meta API's does, so credentials are not read.
    let authenticated = if path == "/ping" {
        Ok(Principal::Anonymous)
    } else {
        authenticate(meta, &state, authorization.as_deref())
    };
    let (reply, principal) = match authenticated {
        Err(reply) => (reply, Principal::Anonymous),
        Ok(principal) => {
            let reply = route(
                meta,
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
    let user = match &principal {
        Principal::Anonymous => "-".to_string(),
        Principal::User(name) => name.clone(),
        Principal::Internal => "(internal)".to_string(),
    };
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
        fields.push("Content-Type", b"application/json");
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
        return Err(error(401, "authorization failed"));
    };
    match verify_bcrypt(&password, &user.hash) {
        Ok(true) => Ok(Principal::User(name)),
        Ok(false) => Err(error(401, "authorization failed")),
        Err(_) => {
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
    // A change's body is read before access is decided, so an oversized body is a 413
    // whoever sends it.
    let body = match route {
        Route::Change(_) => match read_body(declared_length, body) {
            Ok(body) => body,
            Err(reply) => return reply,
        },
        Route::Ping | Route::Users | Route::Roles | Route::Authorized => Vec::new(),
    };
    let bootstrap = route == Route::Change(Entity::User) && state.users.is_empty();
    let holds = |user: &str, permission: &str| state.holds(user, permission, "");
    match (access(principal, route.need(), bootstrap, holds), route) {
        (Access::Refused(refusal), _) => refused(&refusal),
        (Access::Bootstrap, Route::Change(Entity::User)) => change(meta, Entity::User, &body, true),
        // `bootstrap` is only ever true for `POST /user`; refuse should that change.
        (Access::Bootstrap, _) => refused(&Refusal::Unauthenticated),
        (Access::Granted, Route::Ping) => Reply {
            status: 204,
            body: String::new(),
            allow: None,
        },
        (Access::Granted, Route::Users) => read_users(state, query),
        (Access::Granted, Route::Roles) => read_roles(state, query),
        (Access::Granted, Route::Authorized) => authorized(state, query),
        (Access::Granted, Route::Change(entity)) => change(meta, entity, &body, false),
    }
}

/// What a request asks the meta API for, by method and path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Ping,
    Users,
    Roles,
    Authorized,
    /// A `POST` of an action on users or roles.
    Change(Entity),
}

/// The entity a `POST` acts on: `/user` or `/role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entity {
    User,
    Role,
}

impl Route {
    /// The route, or the 404 of an unknown path or the 405 of a method the path does not take.
    fn of(method: &str, path: &str) -> Result<Route, Reply> {
        let allow = match path {
            "/ping" => "GET, HEAD",
            "/user" | "/role" => "GET, POST",
            "/authorized" => "GET",
            _ => {
                return Err(error(
                    404,
                    &format!(
                        "no such endpoint {path:?}; the meta API serves /ping, /user, /role and /authorized"
                    ),
                ));
            }
        };
        match (method, path) {
            ("GET" | "HEAD", "/ping") => Ok(Route::Ping),
            ("GET", "/user") => Ok(Route::Users),
            ("GET", "/role") => Ok(Route::Roles),
            ("GET", "/authorized") => Ok(Route::Authorized),
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
    /// need a viewer; a change needs a manager (SPEC §8).
    fn need(self) -> Need {
        match self {
            Route::Ping => Need::Nothing,
            Route::Users | Route::Roles | Route::Authorized => Need::View,
            Route::Change(_) => Need::Manage,
        }
    }
}

/// Applies the action in `body`, or says why not.
fn change(meta: &MetaServer, entity: Entity, body: &[u8], bootstrap: bool) -> Reply {
    let path = match entity {
        Entity::User => "/user",
        Entity::Role => "/role",
    };
    match parse_action(path, body).and_then(|action| mutation(meta, action, bootstrap)) {
        Ok(mutation) => match meta.mutate(&mutation) {
            Ok(()) => Reply {
                status: 200,
                body: String::new(),
                allow: None,
            },
            Err(super::MutateError::Store(store_error)) => store_reply(&store_error),
            Err(super::MutateError::Disk(disk_error)) => {
                log::error("cannot save the meta store")
                    .field("error", disk_error)
                    .emit();
                error(
                    500,
                    "the meta store could not be saved; the change was not made",
                )
            }
        },
        Err(reply) => reply,
    }
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

/// The body as an action on `/user` or `/role`, with the entity that path expects.
fn parse_action(path: &str, body: &[u8]) -> Result<(String, EntityDoc, &'static str), Reply> {
    let (kind, other) = if path == "/user" {
        ("user", "role")
    } else {
        ("role", "user")
    };
    let doc: ActionDoc = serde_json::from_slice(body).map_err(|e| {
        let mut message = if e.is_syntax() || e.is_eof() {
            format!("malformed JSON: {e}")
        } else {
            format!("invalid request body: {e}")
        };
        if path == "/role" && String::from_utf8_lossy(body).contains("\"user\"") {
            message.push_str("; also, /role takes the role under \"role\", not \"user\"");
        }
        error(400, &message)
    })?;
    let (entity, wrong) = if kind == "user" {
        (doc.user, doc.role)
    } else {
        (doc.role, doc.user)
    };
    let entity = match (entity, wrong) {
        (Some(entity), _) => entity,
        (None, Some(_)) => {
            return Err(error(
                400,
                &format!(
                    "{path} takes the {kind} under \"{kind}\", not \"{other}\"; write e.g. {{\"action\":\"create\",\"{kind}\":{{\"name\":\"…\"}}}}"
                ),
            ));
        }
        (None, None) => {
            return Err(error(
                400,
                &format!("missing \"{kind}\" object in the request body"),
            ));
        }
    };
    let action = doc.action.ok_or_else(|| {
        error(
            400,
            &format!("missing \"action\"; one of {}", actions(kind)),
        )
    })?;
    Ok((action, entity, kind))
}

fn mutation(
    meta: &MetaServer,
    (action, entity, kind): (String, EntityDoc, &'static str),
    bootstrap: bool,
) -> Result<Mutation, Reply> {
    let name = entity
        .name
        .clone()
        .filter(|name| !name.is_empty())
        .ok_or_else(|| {
            error(
                400,
                &format!("missing {kind} name; write \"{kind}\":{{\"name\":\"…\"}}"),
            )
        })?;
    let permissions = || -> Result<Grants, Reply> {
        let wire = entity
            .permissions
            .as_ref()
            .ok_or_else(|| error(400, &format!("missing \"permissions\" for {kind} {name:?}")))?;
        checked_permissions(wire)
    };
    let optional_permissions = || match &entity.permissions {
        Some(wire) => checked_permissions(wire),
        None => Ok(Grants::new()),
    };
    let users = || {
        entity
            .users
            .clone()
            .ok_or_else(|| error(400, &format!("missing \"users\" for role {name:?}")))
    };
    let hash = || -> Result<String, Reply> {
        let password = entity
            .password
            .as_deref()
            .ok_or_else(|| error(400, &format!("missing password for user {name:?}")))?;
        if password.is_empty() {
            return Err(error(400, &format!("empty password for user {name:?}")));
        }
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(error(
                400,
                &format!("password for user {name:?} is longer than 72 bytes, bcrypt's limit"),
            ));
        }
        // bcrypt runs here, before the store's lock is taken (SPEC §8 concurrency).
        meta.hash(&Password::new(password.to_string()))
            .map_err(|_| error(500, "cannot hash the password"))
    };
    let mutation = match (kind, action.as_str()) {
        ("user", "create") if bootstrap => Mutation::Bootstrap {
            name: name.clone(),
            hash: hash()?,
        },
        ("user", _) if bootstrap => {
            return Err(error(
                401,
                "the meta store has no users yet: create the first one with {\"action\":\"create\",\"user\":{\"name\":\"…\",\"password\":\"…\"}}",
            ));
        }
        ("user", "create") => {
            let permissions = optional_permissions()?;
            Mutation::CreateUser {
                name: name.clone(),
                hash: hash()?,
                permissions,
            }
        }
        ("user", "delete") => Mutation::DeleteUser { name: name.clone() },
        ("user", "change-password") => Mutation::ChangePassword {
            name: name.clone(),
            hash: hash()?,
        },
        ("user", "add-permissions") => Mutation::AddUserPermissions {
            permissions: permissions()?,
            name: name.clone(),
        },
        ("user", "remove-permissions") => Mutation::RemoveUserPermissions {
            permissions: permissions()?,
            name: name.clone(),
        },
        ("role", "create") => Mutation::CreateRole {
            permissions: optional_permissions()?,
            name: name.clone(),
        },
        ("role", "delete") => Mutation::DeleteRole { name: name.clone() },
        ("role", "add-permissions") => Mutation::AddRolePermissions {
            permissions: permissions()?,
            name: name.clone(),
        },
        ("role", "remove-permissions") => Mutation::RemoveRolePermissions {
            permissions: permissions()?,
            name: name.clone(),
        },
        ("role", "add-users") => Mutation::AddRoleUsers {
            users: users()?,
            name: name.clone(),
        },
        ("role", "remove-users") => Mutation::RemoveRoleUsers {
            users: users()?,
            name: name.clone(),
        },
        (_, other) => {
            return Err(error(
                400,
                &format!(
                    "unknown action {other:?} for /{kind}; one of {}",
                    actions(kind)
                ),
            ));
        }
    };
    Ok(mutation)
}

fn checked_permissions(wire: &Permissions) -> Result<Grants, Reply> {
    if let Some(unknown) = wire
        .values()
        .flatten()
        .find(|token| !meta_api::is_permission(token))
    {
        return Err(error(
            400,
            &format!(
                "unknown permission {unknown:?}; known: {}",
                meta_api::PERMISSIONS.join(", ")
            ),
        ));
    }
    Ok(from_wire(wire))
}

fn read_users(state: &State, query: &str) -> Reply {
    let users = match query_value(query, "name") {
        None => state.user_docs(),
        Some(name) => match state.user_doc(&name) {
            Some(user) => vec![user],
            None => return error(404, "user not found"),
        },
    };
    json(200, &UsersDoc { users })
}

fn read_roles(state: &State, query: &str) -> Reply {
    let roles = match query_value(query, "name") {
        None => state.role_docs(),
        Some(name) => match state.role_doc(&name) {
            Some(role) => vec![role],
            None => return error(404, "role not found"),
        },
    };
    json(200, &RolesDoc { roles })
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
        return error(
            400,
            &format!(
                "unknown permission {permission:?}; known: {}",
                meta_api::PERMISSIONS.join(", ")
            ),
        );
    }
    let password = Password::new(password);
    let Some(user) = state.users.get(&name) else {
        return error(401, "authorization failed");
    };
    if verify_bcrypt(&password, &user.hash) != Ok(true) {
        return error(401, "authorization failed");
    }
    if state.holds(&name, &permission, &resource) {
        Reply {
            status: 200,
            body: String::new(),
            allow: None,
        }
    } else {
        error(
            403,
            &format!("user {name:?} does not hold {permission} on {resource:?}"),
        )
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

fn actions(kind: &str) -> &'static str {
    if kind == "user" {
        "create, delete, change-password, add-permissions, remove-permissions"
    } else {
        "create, delete, add-permissions, remove-permissions, add-users, remove-users"
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
    }
}
