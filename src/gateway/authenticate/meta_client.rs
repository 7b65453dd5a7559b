//! The meta API over HTTP (SPEC §4, §11): `GET /user?name=`, `GET /role` and
//! `GET /authorized` with blocking ureq calls, the meta credentials (HS512 JWT or Basic),
//! 307s followed by hand with the credentials, and retries with backoff until
//! `meta-timeout` for what may pass (refused connections, 5xx, timeouts). What will not pass
//! by waiting (meta refusing kapauth's credentials, a TLS failure) is reported at once with
//! its reason. Logs the reason of a failed lookup, never a credential.

use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ureq::Agent;
use ureq::http::StatusCode;

use super::{MetaSource, MetaUser, Unavailable};
use crate::config::Auth;
use crate::http::tls::TlsError;
use crate::log;
use crate::meta_api::{ErrorDoc, RoleDoc, RolesDoc, UserDoc, UsersDoc, resolve_location};
use crate::query::encode_component;
use crate::secret::MetaCredentials;
use crate::secret::password::Password;
use crate::tls::meta_tls_config;

/// Redirects followed per request (SPEC §4).
const MAX_REDIRECTS: usize = 5;

/// The largest meta answer read; a user or role list beyond it is not a sane answer.
const MAX_ANSWER: u64 = 16 * 1024 * 1024;

/// The first pause between attempts; it doubles up to a third of `meta-timeout`.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);

/// A meta API client.
pub struct MetaClient {
    agent: Agent,
    base: String,
    credentials: MetaCredentials,
    timeout: Duration,
    resolve_roles: bool,
}

/// One attempt's result: done, worth another try after a pause, or a failure that waiting
/// will not mend (a configuration problem on one side or the other).
enum Attempt<T> {
    Done(T),
    Retry(String),
    Fail(String),
}

/// Why one GET did not produce an answer to read.
enum GetError {
    /// Another try may succeed: a refused connection, a timeout, a broken answer.
    Transient(String),
    /// Another try will fail the same way: TLS.
    Fatal(String),
}

impl<T> From<GetError> for Attempt<T> {
    fn from(error: GetError) -> Attempt<T> {
        match error {
            GetError::Transient(reason) => Attempt::Retry(reason),
            GetError::Fatal(reason) => Attempt::Fail(reason),
        }
    }
}

impl MetaClient {
    /// A client for `[auth] meta-addr`; reads the TLS files now.
    pub fn new(auth: &Auth) -> Result<MetaClient, TlsError> {
        let mut config = Agent::config_builder()
            // A gateway sets every client default it relies on (STYLE): statuses are data,
            // redirects are followed by hand with the credentials, no proxy from the
            // environment, and no call outlives meta-timeout.
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .https_only(auth.meta_tls.is_some())
            .timeout_global(Some(auth.meta_timeout))
            .user_agent(concat!("kapauth/", env!("CARGO_PKG_VERSION")))
            .accept_encoding(ureq::config::AutoHeaderValue::None);
        if let Some(tls) = &auth.meta_tls {
            config = config.tls_config(meta_tls_config(tls)?);
        }
        let scheme = if auth.meta_tls.is_some() {
            "https"
        } else {
            "http"
        };
        let credentials = MetaCredentials::new(
            &auth.meta_username,
            &auth.meta_password,
            &auth.meta_internal_shared_secret,
        );
        Ok(MetaClient {
            agent: crate::resolve::agent(config.build()),
            base: format!("{scheme}://{}", auth.meta_addr),
            credentials,
            timeout: auth.meta_timeout,
            resolve_roles: auth.resolve_roles,
        })
    }

    /// Retries `attempt` with backoff until `deadline`.
    fn with_retries<T>(
        &self,
        what: &str,
        deadline: Instant,
        mut attempt: impl FnMut(Instant) -> Attempt<T>,
    ) -> Result<T, Unavailable> {
        let cap = self.timeout / 3;
        let mut backoff = FIRST_BACKOFF;
        loop {
            let (reason, retry) = match attempt(deadline) {
                Attempt::Done(value) => return Ok(value),
                Attempt::Retry(reason) => (reason, true),
                Attempt::Fail(reason) => (reason, false),
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            if !retry || remaining.is_zero() {
                let reason = if retry {
                    format!("meta-timeout ran out; last: {reason}")
                } else {
                    reason
                };
                log::warn("meta unavailable")
                    .field("request", what)
                    .field("meta", &self.base)
                    .field("reason", &reason)
                    .emit();
                return Err(Unavailable(reason));
            }
            thread::sleep(backoff.min(remaining));
            backoff = (backoff * 2).min(cap.max(FIRST_BACKOFF));
        }
    }

    /// One GET with the meta credentials, following up to five 307s by hand.
    fn get(
        &self,
        path_and_query: &str,
        deadline: Instant,
    ) -> Result<ureq::http::Response<ureq::Body>, GetError> {
        let mut url = format!("{}{path_and_query}", self.base);
        for _ in 0..=MAX_REDIRECTS {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(GetError::Transient(
                    "no time left for another try".to_string(),
                ));
            }
            let mut request = self.agent.get(&url).header("Accept", "application/json");
            if let Some(authorization) = self.credentials.authorization(unix_now()) {
                request = request.header("Authorization", authorization);
            }
            let response = request
                .config()
                .timeout_global(Some(remaining))
                .build()
                .call()
                .map_err(|error| classify(&error))?;
            if response.status() != StatusCode::TEMPORARY_REDIRECT {
                return Ok(response);
            }
            let location = response
                .headers()
                .get("Location")
                .and_then(|value| value.to_str().ok())
                .ok_or_else(|| GetError::Transient("307 without a Location".to_string()))?;
            url = resolve_location(&url, location);
        }
        Err(GetError::Transient(format!(
            "more than {MAX_REDIRECTS} redirects"
        )))
    }

    /// What an answer that is not the meta API's means: 401/403 are meta refusing
    /// kapauth's credentials and 400 a meta that does not read kapauth's requests, which no
    /// retry mends; anything else may pass.
    fn unexpected<T>(&self, request: &str, status: u16) -> Attempt<T> {
        let credentials = match self.credentials {
            MetaCredentials::None => {
                "kapauth sends none: set [auth] meta-username and meta-password, or meta-internal-shared-secret"
            }
            MetaCredentials::Basic { .. } => "check [auth] meta-username / meta-password",
            MetaCredentials::Jwt(_) => {
                "check [auth] meta-internal-shared-secret against meta's own"
            }
        };
        match status {
            401 | 403 => Attempt::Fail(format!(
                "meta refused kapauth's credentials ({request} answered {status}): {credentials}"
            )),
            400 => Attempt::Fail(format!(
                "meta answered {request} with 400: check that [auth] meta-addr is a meta node and that meta-use-tls matches whether it serves https"
            )),
            _ => Attempt::Retry(format!("{request} answered {status}")),
        }
    }

    fn roles_of(
        &self,
        name: &str,
        deadline: Instant,
    ) -> Result<Vec<crate::meta_api::RoleDoc>, Unavailable> {
        self.with_retries("GET /role", deadline, |deadline| {
            match self.get("/role", deadline) {
                Ok(response) if response.status() == StatusCode::OK => {
                    match read_body(response).and_then(|body| roles_listing(&body, name)) {
                        Ok(roles) => Attempt::Done(roles),
                        Err(reason) => Attempt::Retry(reason),
                    }
                }
                Ok(response) => self.unexpected("GET /role", response.status().as_u16()),
                Err(error) => error.into(),
            }
        })
    }
}

impl MetaSource for MetaClient {
    fn user(&self, name: &str) -> Result<Option<MetaUser>, Unavailable> {
        // One deadline for the user and its roles: a lookup never outlasts meta-timeout.
        let deadline = Instant::now() + self.timeout;
        let path = format!("/user?name={}", encode_component(name));
        let user = self.with_retries("GET /user", deadline, |deadline| {
            match self.get(&path, deadline) {
                Ok(response)
                    if matches!(response.status(), StatusCode::OK | StatusCode::NOT_FOUND) =>
                {
                    let status = response.status().as_u16();
                    match read_body(response).map(|body| user_from_answer(status, &body, name)) {
                        Ok(UserAnswer::Found(user)) => Attempt::Done(Some(user)),
                        Ok(UserAnswer::Unknown) => Attempt::Done(None),
                        Ok(UserAnswer::Unusable(reason)) | Err(reason) => Attempt::Retry(reason),
                    }
                }
                Ok(response) => self.unexpected("GET /user", response.status().as_u16()),
                Err(error) => error.into(),
            }
        })?;
        let Some(user) = user else {
            return Ok(None);
        };
        let roles = if self.resolve_roles {
            self.roles_of(name, deadline)?
        } else {
            Vec::new()
        };
        Ok(Some(MetaUser { user, roles }))
    }

    fn check_password(&self, name: &str, password: &Password) -> Result<bool, Unavailable> {
        let path = format!(
            "/authorized?name={}&password={}&permission=NoPermissions&resource=_",
            encode_component(name),
            encode_component(password.as_str())
        );
        self.with_retries(
            "GET /authorized",
            Instant::now() + self.timeout,
            |deadline| match self.get(&path, deadline) {
                Ok(response) => match response.status().as_u16() {
                    200 => Attempt::Done(true),
                    401 | 403 | 404 => Attempt::Done(false),
                    other => self.unexpected("GET /authorized", other),
                },
                Err(error) => error.into(),
            },
        )
    }
}

/// Seconds since the Unix epoch, for the meta token's `exp`.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What a `200` or `404` answer to `GET /user?name=NAME` says of NAME.
#[derive(Debug, Clone, PartialEq)]
pub enum UserAnswer {
    Found(UserDoc),
    /// The meta API's own `user not found`, or a list without the name.
    Unknown,
    /// Not an answer the meta API gives: worth another try; the reason is for the log.
    Unusable(String),
}

/// Reads the body of a `200` or `404` answer to `GET /user?name=NAME`. Only the meta API's
/// own `{"error":"user not found"}` makes a 404 mean unknown: a 404 from anything else (a
/// wrong meta-addr) is unusable. A 200 lists users; the one named NAME is the answer, and a
/// list naming it twice is unusable. Pure, for tests and fuzzing.
pub fn user_from_answer(status: u16, body: &[u8], name: &str) -> UserAnswer {
    match status {
        404 => match serde_json::from_slice::<ErrorDoc>(body) {
            Ok(doc) if doc.error == "user not found" => UserAnswer::Unknown,
            _ => UserAnswer::Unusable(
                "GET /user answered 404 without {\"error\":\"user not found\"}".to_string(),
            ),
        },
        200 => match parse::<UsersDoc>(body) {
            Ok(doc) => {
                let mut matching = doc.users.into_iter().filter(|user| user.name == name);
                match (matching.next(), matching.next()) {
                    (Some(user), None) => UserAnswer::Found(user),
                    (None, _) => UserAnswer::Unknown,
                    (Some(_), Some(_)) => {
                        UserAnswer::Unusable(format!("meta listed user {name:?} twice"))
                    }
                }
            }
            Err(reason) => UserAnswer::Unusable(reason),
        },
        other => UserAnswer::Unusable(format!("GET /user answered {other}")),
    }
}

/// The roles of a `GET /role` answer whose `users` list holds `name`. Pure.
pub fn roles_listing(body: &[u8], name: &str) -> Result<Vec<RoleDoc>, String> {
    let doc = parse::<RolesDoc>(body)?;
    Ok(doc
        .roles
        .into_iter()
        .filter(|role| role.users.iter().any(|u| u == name))
        .collect())
}

fn read_body(response: ureq::http::Response<ureq::Body>) -> Result<Vec<u8>, String> {
    response
        .into_body()
        .with_config()
        .limit(MAX_ANSWER)
        .read_to_vec()
        .map_err(|error| format!("reading the answer: {error}"))
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body)
        .map_err(|error| format!("the answer is not the expected JSON: {error}"))
}

/// A ureq error for the log, as a fixed text per kind (some ureq errors quote the URI, and
/// the `/authorized` URI holds a password), and whether another try may mend it. A TLS
/// failure, however ureq carries it, names the problem and the key to check.
fn classify(error: &ureq::Error) -> GetError {
    use GetError::{Fatal, Transient};
    if let Some(problem) = crate::tls::meta_tls_failure(error) {
        return Fatal(problem);
    }
    match error {
        ureq::Error::Io(io) => Transient(format!("i/o error: {}", io.kind())),
        ureq::Error::Tls(tls) => Fatal(format!("TLS to meta failed: {tls}")),
        ureq::Error::Timeout(timeout) => Transient(format!("timeout: {timeout:?}")),
        ureq::Error::HostNotFound => Transient("host not found".to_string()),
        ureq::Error::ConnectionFailed => Transient("connection failed".to_string()),
        ureq::Error::RequireHttpsOnly(_) => Fatal("meta redirected away from https".to_string()),
        ureq::Error::Protocol(_) => Transient("http protocol error".to_string()),
        ureq::Error::BodyExceedsLimit(limit) => {
            Transient(format!("answer larger than {limit} bytes"))
        }
        _ => Transient("request failed".to_string()),
    }
}

impl std::fmt::Debug for MetaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(status: u16, body: &str, expected: &str) {
        let seen = match user_from_answer(status, body.as_bytes(), "alice") {
            UserAnswer::Found(user) => format!("found {}", user.name),
            UserAnswer::Unknown => "unknown".to_string(),
            UserAnswer::Unusable(reason) => format!("unusable: {reason}"),
        };
        assert!(seen.starts_with(expected), "{status} {body}: {seen}");
    }

    #[test]
    fn only_the_meta_apis_own_answers_name_or_deny_a_user() {
        check(
            200,
            r#"{"users":[{"name":"alice","hash":"h"}]}"#,
            "found alice",
        );
        check(200, r#"{"users":[{"name":"bob","hash":"h"}]}"#, "unknown");
        check(200, r#"{"users":[]}"#, "unknown");
        check(
            200,
            r#"{"users":[{"name":"alice"},{"name":"alice"}]}"#,
            "unusable: meta listed user \"alice\" twice",
        );
        check(
            200,
            r#"{"users":[{"name":"alice","extra":1}],"more":true}"#,
            "found alice",
        );
        check(
            200,
            "<html>",
            "unusable: the answer is not the expected JSON",
        );
        check(404, r#"{"error":"user not found"}"#, "unknown");
        check(
            404,
            r#"{"error":"not found"}"#,
            "unusable: GET /user answered 404 without",
        );
        check(
            404,
            "404 page not found",
            "unusable: GET /user answered 404 without",
        );
        check(500, "", "unusable: GET /user answered 500");
    }

    #[test]
    fn roles_are_those_that_list_the_user() {
        let body = br#"{"roles":[{"name":"a","users":["alice"]},{"name":"b","users":["bob"]},{"name":"c"}]}"#;
        let roles = roles_listing(body, "alice").unwrap();
        assert_eq!(
            roles.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["a"]
        );
        assert!(roles_listing(b"{", "alice").is_err());
    }
}
