//! `kapauth user …` and `kapauth role …`: the users and roles of any meta API, InfluxDB
//! Enterprise's or `kapauth meta`'s, managed over its HTTP endpoints (SPEC §8) instead of
//! hand-written JSON in curl. This file tells one command's story: find the meta API and
//! read the TLS files, read a password if the command sets one, send one request, print
//! the outcome or the meta API's own error with what was attempted. A third program beside
//! the gateway and the meta server: it imports neither. Never takes a password from the
//! command line, never prints a hash, never retries a change.

pub mod action;
pub mod args;
mod meta_http;
mod table;
mod terminal;

use std::fmt;

use action::{Kind, Request};
use args::Invocation;
use meta_http::{Failure, MetaHttp};

use crate::config::Config;
use crate::meta_api::{RolesDoc, UsersDoc};
use crate::secret::MetaCredentials;

/// Runs one command against the configuration's meta API (or `--meta`); returns the exit
/// code: 0 when the meta API did it, 1 otherwise, with one line on stderr.
pub fn run(invocation: &Invocation, config: &Config) -> i32 {
    match execute(invocation, config) {
        Ok(output) => {
            print!("{output}");
            0
        }
        Err(error) => {
            eprintln!("kapauth: {error}");
            1
        }
    }
}

/// Why a command did not do what it asked.
#[derive(Debug)]
pub enum AdminError {
    /// `--meta` or the configuration names no usable meta API.
    MetaUrl(String),
    /// A TLS file of `[auth]` could not be used (the TLS code's text).
    Tls(String),
    /// No password was read; nothing was sent.
    Password(terminal::PasswordError),
    /// The request failed; `attempt` says what it was for, `request` is its method and URL.
    Request {
        attempt: String,
        request: String,
        failure: Failure,
        /// The credentials sent, named for a 401 or 403.
        credentials: String,
    },
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminError::MetaUrl(problem) => f.write_str(problem),
            AdminError::Tls(error) => write!(f, "TLS for the meta API: {error}"),
            AdminError::Password(error) => error.fmt(f),
            AdminError::Request {
                attempt,
                request,
                failure,
                credentials,
            } => match failure {
                Failure::Unreachable(reason) => write!(
                    f,
                    "cannot {attempt}: {request} got no answer: {reason}; check --meta or [auth] meta-addr"
                ),
                Failure::Refused { status, message } => {
                    write!(
                        f,
                        "cannot {attempt}: {request} answered {status}: {message}"
                    )?;
                    if matches!(status, 401 | 403) {
                        write!(f, " (sent {credentials}")?;
                        f.write_str("; set [auth] meta-username and meta-password, or meta-internal-shared-secret, in the file or as KAPACITOR_AUTH_META_*)")?;
                    }
                    Ok(())
                }
                Failure::BadAnswer(problem) => {
                    write!(f, "cannot {attempt}: {request}: {problem}")
                }
            },
        }
    }
}

fn execute(invocation: &Invocation, config: &Config) -> Result<String, AdminError> {
    let operation = &invocation.operation;
    // Where and how first, so a wrong URL or TLS file is named before any prompt.
    let url =
        meta_http::meta_url(invocation.meta.as_deref(), config).map_err(AdminError::MetaUrl)?;
    let meta = MetaHttp::connect(url, config).map_err(AdminError::Tls)?;
    let failed = |method: &str, path: &str, failure| AdminError::Request {
        attempt: operation.attempt(),
        request: format!("{method} {}{path}", meta.base()),
        failure,
        credentials: match meta.credentials() {
            MetaCredentials::None => "no credentials".to_string(),
            MetaCredentials::Basic { username, .. } => {
                format!("Basic credentials of meta-username {username:?}")
            }
            MetaCredentials::Jwt(_) => {
                "a token signed with meta-internal-shared-secret".to_string()
            }
        },
    };
    let password = match operation.password_for() {
        Some(name) => Some(terminal::read_password(name).map_err(AdminError::Password)?),
        None => None,
    };
    match operation.request(password.as_ref()) {
        Request::List(Kind::User) => {
            let users: UsersDoc = meta.get("/user").map_err(|f| failed("GET", "/user", f))?;
            let roles: RolesDoc = meta.get("/role").map_err(|f| failed("GET", "/role", f))?;
            Ok(table::users(&users.users, &roles.roles))
        }
        Request::List(Kind::Role) => {
            let roles: RolesDoc = meta.get("/role").map_err(|f| failed("GET", "/role", f))?;
            Ok(table::roles(&roles.roles))
        }
        Request::Post { path, body } => {
            meta.post(path, body.expose())
                .map_err(|f| failed("POST", path, f))?;
            Ok(format!("{}\n", operation.outcome()))
        }
    }
}
