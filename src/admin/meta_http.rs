//! The admin commands' side of the meta API (SPEC §4, §8): which URL to talk to (`--meta`,
//! else `[auth] meta-addr` with `meta-use-tls`, else the embedded `[meta] bind-address`),
//! and one request there with ureq: the meta credentials of `[auth]`, the meta client's
//! TLS settings, explicit timeouts, 307s followed by hand with the same credentials and
//! body (Enterprise's meta nodes redirect a change to the leader), at most five times.
//! A change is never retried: a retried `create` could answer "already exists" for a
//! create that worked. An answer that is not 2xx becomes the meta API's own `{"error":…}`
//! text. Never sends credentials it was given in a URL: `--meta` may not hold any.
//!
//! The one place the admin commands use kapauth's meta TLS and credential code:
//! `crate::tls::meta_tls_config` and `crate::secret::MetaCredentials` (see `connect`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ureq::Agent;

use crate::config::{Config, MetaTls, host_port};
use crate::meta_api::{ErrorDoc, resolve_location};
use crate::secret::MetaCredentials;
use crate::tls::meta_tls_config;

/// Redirects followed per request, as the gateway's meta client does (SPEC §4).
const MAX_REDIRECTS: usize = 5;

/// The largest answer read: a user or role list beyond it is not a sane answer.
const MAX_ANSWER: u64 = 16 * 1024 * 1024;

/// How much of an answer that is not the meta API's JSON error is quoted in a message.
const QUOTED: usize = 200;

/// Where the meta API is: `scheme://host:port` with no trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaUrl {
    pub base: String,
    pub https: bool,
}

/// The meta API to use: `flag` (`--meta`) when given, else the configuration's.
pub fn meta_url(flag: Option<&str>, config: &Config) -> Result<MetaUrl, String> {
    let configured_tls = config.auth.meta_tls.is_some();
    let Some(flag) = flag else {
        if !config.auth.meta_addr.is_empty() {
            return Ok(with_scheme(&config.auth.meta_addr, configured_tls));
        }
        // The embedded meta store's API: served over TLS when `[meta] https-enabled`.
        let https = configured_tls || config.meta.tls.is_some();
        return Ok(with_scheme(&reachable(&config.meta.bind_address), https));
    };
    let flag = flag.trim();
    let (https, authority) = if let Some(rest) = flag.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = flag.strip_prefix("http://") {
        (false, rest)
    } else if flag.contains("://") {
        return Err(format!(
            "--meta {flag:?} is not an http:// or https:// URL; write e.g. https://meta1:8091"
        ));
    } else {
        (configured_tls, flag)
    };
    let authority = authority.strip_suffix('/').unwrap_or(authority);
    if authority.contains('@') {
        // The URL is not repeated: it holds a password.
        return Err("--meta holds credentials (user:password@), which the command line shows to every user of this host; set [auth] meta-username and meta-password (or KAPACITOR_AUTH_META_USERNAME and KAPACITOR_AUTH_META_PASSWORD) instead".to_string());
    }
    if host_port(authority).is_none() {
        return Err(format!(
            "--meta {flag:?} is not scheme://host:port; write e.g. http://127.0.0.1:8091"
        ));
    }
    Ok(with_scheme(authority, https))
}

/// A meta API reached over HTTP(S).
pub struct MetaHttp {
    agent: Agent,
    url: MetaUrl,
    credentials: MetaCredentials,
}

/// Why a request did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No answer: the connection, TLS or a timeout failed, or the redirects ran out.
    Unreachable(String),
    /// The meta API answered a status other than 2xx; `message` is its own text.
    Refused { status: u16, message: String },
    /// A 2xx whose body is not what the request expects.
    BadAnswer(String),
}

impl MetaHttp {
    /// A client for `url` with `[auth]`'s credentials, TLS settings and `meta-timeout` per
    /// request; reads the TLS files now, so a bad file is named before any prompt. The
    /// error is the TLS code's own text, so no other admin file depends on its type.
    pub fn connect(url: MetaUrl, config: &Config) -> Result<MetaHttp, String> {
        let auth = &config.auth;
        let mut agent_config = Agent::config_builder()
            // Every client default relied on is set here (STYLE): statuses are answers to
            // read, redirects are followed by hand with the credentials, no proxy from the
            // environment, no downgrade from https, and no call outlives meta-timeout.
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .https_only(url.https)
            .timeout_global(Some(auth.meta_timeout))
            .user_agent(concat!("kapauth/", env!("CARGO_PKG_VERSION")))
            .accept_encoding(ureq::config::AutoHeaderValue::None);
        if url.https {
            // `meta-use-tls` off but an https URL (`--meta https://…`, or an embedded meta
            // API with `[meta] https-enabled`): the bundled web PKI roots, verified.
            let tls = auth.meta_tls.clone().unwrap_or(MetaTls {
                ca: None,
                client_identity: None,
                insecure_skip_verify: false,
            });
            let tls_config = meta_tls_config(&tls).map_err(|error| error.to_string())?;
            agent_config = agent_config.tls_config(tls_config);
        }
        Ok(MetaHttp {
            agent: crate::resolve::agent(agent_config.build()),
            url,
            credentials: MetaCredentials::new(
                &auth.meta_username,
                &auth.meta_password,
                &auth.meta_internal_shared_secret,
            ),
        })
    }

    /// Where requests go, for messages.
    pub fn base(&self) -> &str {
        &self.url.base
    }

    /// Which credentials are sent, for the message of a 401 or 403.
    pub fn credentials(&self) -> &MetaCredentials {
        &self.credentials
    }

    /// `GET path` answered 200 with a JSON `T`.
    pub fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        let response = self.send(path, None)?;
        let bytes = response
            .into_body()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_vec()
            .map_err(|error| Failure::Unreachable(format!("reading the answer: {error}")))?;
        serde_json::from_slice(&bytes).map_err(|error| {
            Failure::BadAnswer(format!(
                "the answer is not the meta API's JSON ({error}): {}",
                quote(&bytes)
            ))
        })
    }

    /// `POST path` with a JSON `body`, answered 2xx.
    pub fn post(&self, path: &str, body: &str) -> Result<(), Failure> {
        self.send(path, Some(body)).map(|_| ())
    }

    /// One request, following 307s; an answer other than 2xx is a `Failure::Refused`.
    fn send(
        &self,
        path: &str,
        body: Option<&str>,
    ) -> Result<ureq::http::Response<ureq::Body>, Failure> {
        let mut url = format!("{}{path}", self.url.base);
        for _ in 0..=MAX_REDIRECTS {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
                .as_secs();
            let authorization = self.credentials.authorization(now);
            let result = match body {
                None => {
                    let mut request = self.agent.get(&url).header("Accept", "application/json");
                    if let Some(value) = &authorization {
                        request = request.header("Authorization", value);
                    }
                    request.call()
                }
                Some(body) => {
                    let mut request = self
                        .agent
                        .post(&url)
                        .header("Accept", "application/json")
                        .header("Content-Type", "application/json");
                    if let Some(value) = &authorization {
                        request = request.header("Authorization", value);
                    }
                    request.send(body.as_bytes())
                }
            };
            let response = result.map_err(|error| {
                // A TLS failure names the key to fix, as the gateway's log does.
                Failure::Unreachable(
                    crate::tls::meta_tls_failure(&error).unwrap_or_else(|| error.to_string()),
                )
            })?;
            let status = response.status().as_u16();
            if status == 307 {
                let location = response
                    .headers()
                    .get("Location")
                    .and_then(|value| value.to_str().ok())
                    .ok_or_else(|| {
                        Failure::Unreachable(format!("{url} answered 307 without a Location"))
                    })?;
                url = resolve_location(&url, location);
                continue;
            }
            if (200..300).contains(&status) {
                return Ok(response);
            }
            let bytes = response
                .into_body()
                .with_config()
                .limit(MAX_ANSWER)
                .read_to_vec();
            let message = match bytes {
                Err(error) => format!("(the answer's body could not be read: {error})"),
                Ok(bytes) => match serde_json::from_slice::<ErrorDoc>(&bytes) {
                    Ok(doc) => doc.error,
                    Err(_) if bytes.is_empty() => "(no body)".to_string(),
                    Err(_) => format!("(not the meta API's {{\"error\":…}}) {}", quote(&bytes)),
                },
            };
            return Err(Failure::Refused { status, message });
        }
        Err(Failure::Unreachable(format!(
            "more than {MAX_REDIRECTS} redirects"
        )))
    }
}

/// `scheme://authority`.
fn with_scheme(authority: &str, https: bool) -> MetaUrl {
    let scheme = if https { "https" } else { "http" };
    MetaUrl {
        base: format!("{scheme}://{authority}"),
        https,
    }
}

/// A bind address as an address to connect to: every interface (`0.0.0.0`, `[::]`, as
/// `:8091` normalizes) is reached on the loopback address of the same family.
fn reachable(bind_address: &str) -> String {
    if let Some(port) = bind_address.strip_prefix("0.0.0.0:") {
        format!("127.0.0.1:{port}")
    } else if let Some(port) = bind_address.strip_prefix("[::]:") {
        format!("[::1]:{port}")
    } else {
        bind_address.to_string()
    }
}

/// The start of an unexpected answer, one line, control characters escaped.
fn quote(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut quoted: String = text.chars().take(QUOTED).collect();
    if text.chars().count() > QUOTED {
        quoted.push('…');
    }
    format!("{quoted:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, env::settings_from_flags};

    fn config(sets: &[&str]) -> Config {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        let settings = settings_from_flags(&sets).expect("valid --set flags");
        config::layer(&settings)
            .and_then(|effective| effective.build())
            .expect("a valid configuration")
    }

    fn check(flag: Option<&str>, sets: &[&str], expected: Result<&str, &str>) {
        let actual = meta_url(flag, &config(sets)).map(|url| {
            assert_eq!(url.https, url.base.starts_with("https://"));
            url.base
        });
        let expected = expected.map(str::to_string).map_err(str::to_string);
        assert_eq!(actual, expected, "--meta {flag:?} with {sets:?}");
    }

    #[test]
    fn the_meta_url_comes_from_the_flag_else_meta_addr_else_the_embedded_api() {
        // The embedded meta API, on its own bind address or loopback for every interface.
        check(None, &[], Ok("http://127.0.0.1:8091"));
        check(None, &["meta.bind-address=:9000"], Ok("http://[::1]:9000"));
        check(
            None,
            &["meta.bind-address=0.0.0.0:9000"],
            Ok("http://127.0.0.1:9000"),
        );
        check(
            None,
            &["meta.bind-address=meta.local:9000"],
            Ok("http://meta.local:9000"),
        );
        check(
            None,
            &["meta.https-enabled=true", "meta.https-certificate=/c.pem"],
            Ok("https://127.0.0.1:8091"),
        );
        // [auth] meta-addr, https by meta-use-tls.
        check(
            None,
            &["auth.meta-addr=meta1:8091"],
            Ok("http://meta1:8091"),
        );
        check(
            None,
            &["auth.meta-addr= 172.17.0.2:8091", "auth.meta-use-tls=true"],
            Ok("https://172.17.0.2:8091"),
        );
        // --meta wins; without a scheme it takes meta-use-tls's.
        check(
            Some("http://10.0.0.1:8091"),
            &["auth.meta-addr=meta1:8091"],
            Ok("http://10.0.0.1:8091"),
        );
        check(Some("https://meta2:8091/"), &[], Ok("https://meta2:8091"));
        check(Some("meta3:8091"), &[], Ok("http://meta3:8091"));
        check(
            Some("meta3:8091"),
            &["auth.meta-use-tls=true"],
            Ok("https://meta3:8091"),
        );
        check(Some("http://[::1]:8091"), &[], Ok("http://[::1]:8091"));
    }

    #[test]
    fn a_meta_url_with_credentials_a_path_or_another_scheme_is_refused() {
        check(
            Some("http://admin:changeit@127.0.0.1:8091"),
            &[],
            Err(
                "--meta holds credentials (user:password@), which the command line shows to every user of this host; set [auth] meta-username and meta-password (or KAPACITOR_AUTH_META_USERNAME and KAPACITOR_AUTH_META_PASSWORD) instead",
            ),
        );
        check(
            Some("ftp://meta1:8091"),
            &[],
            Err(
                "--meta \"ftp://meta1:8091\" is not an http:// or https:// URL; write e.g. https://meta1:8091",
            ),
        );
        check(
            Some("http://meta1:8091/user"),
            &[],
            Err(
                "--meta \"http://meta1:8091/user\" is not scheme://host:port; write e.g. http://127.0.0.1:8091",
            ),
        );
        check(
            Some("http://"),
            &[],
            Err("--meta \"http://\" is not scheme://host:port; write e.g. http://127.0.0.1:8091"),
        );
        check(
            Some("http://meta1"),
            &[],
            Err(
                "--meta \"http://meta1\" is not scheme://host:port; write e.g. http://127.0.0.1:8091",
            ),
        );
        check(
            Some("http://meta1:8091?x=1"),
            &[],
            Err(
                "--meta \"http://meta1:8091?x=1\" is not scheme://host:port; write e.g. http://127.0.0.1:8091",
            ),
        );
    }

    #[test]
    fn unexpected_answers_are_quoted_on_one_line_and_cut() {
        assert_eq!(quote(b"<html>\n502</html>"), "\"<html>\\n502</html>\"");
        let long = quote(&[b'x'; 300]);
        assert_eq!(long, format!("\"{}…\"", "x".repeat(200)));
    }
}
