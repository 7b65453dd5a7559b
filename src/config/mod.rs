//! The configuration: every key kapauth reads, its default, and the validated `Config`
//! that the rest of the program takes (SPEC §9). Settings are layered defaults < file <
//! environment < flags; `file.rs` and `env.rs` turn each source into `Setting`s, this file
//! checks them against the key table and builds the typed result. Pure: no I/O here.

pub mod duration;
pub mod env;
pub mod file;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::secret::SecretText;
use duration::{format_duration, parse_duration};

/// The validated configuration. Every rule of SPEC §9 holds for a value of this type.
#[derive(Debug, Clone)]
pub struct Config {
    pub http: Http,
    pub auth: Auth,
    pub gateway: Gateway,
    pub meta: Meta,
}

/// `[http]`: Kapacitor's key names, so the block can be copied from a kapacitor.conf.
#[derive(Debug, Clone)]
pub struct Http {
    pub bind_address: String,
    pub auth_enabled: bool,
    pub shared_secret: SecretText,
    pub log_enabled: bool,
    /// `https-enabled`: the gateway's certificate and key.
    pub tls: Option<ListenerTls>,
    pub limits: HttpLimits,
    /// How long a stop (SIGTERM, SIGINT) waits for requests in flight (Kapacitor's key).
    pub shutdown_timeout: Duration,
}

/// The HTTP core's bounds on a listener's connections (SPEC §10), for both listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    pub read_header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_client: usize,
}

/// The certificate chain and key of an HTTPS listener, as Kapacitor names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTls {
    pub certificate: PathBuf,
    /// `None`: the key is in the certificate file.
    pub private_key: Option<PathBuf>,
}

/// `[auth]`: Kapacitor's meta-authentication keys plus kapauth's `meta-timeout` and
/// `resolve-roles`.
#[derive(Debug, Clone)]
pub struct Auth {
    pub enabled: bool,
    pub cache_expiration: Duration,
    pub bcrypt_cost: u32,
    /// Trimmed; empty means the embedded meta store.
    pub meta_addr: String,
    pub meta_username: String,
    pub meta_password: SecretText,
    pub meta_internal_shared_secret: SecretText,
    pub meta_tls: Option<MetaTls>,
    pub meta_timeout: Duration,
    pub resolve_roles: bool,
    /// How long a name meta does not know is remembered (zero: not at all).
    pub negative_cache_expiration: Duration,
    pub meta_max_lookups: usize,
    /// `None` when `login-throttling` is off.
    pub failed_logins: Option<FailedLogins>,
}

/// The failed-login budget of one username at one client address (SPEC §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailedLogins {
    pub burst: u32,
    pub interval: Duration,
}

/// TLS towards the meta API, present when `meta-use-tls` is true.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaTls {
    /// CA bundle to trust; `None` trusts the bundled web PKI roots.
    pub ca: Option<PathBuf>,
    /// Client certificate chain and its private key.
    pub client_identity: Option<(PathBuf, PathBuf)>,
    pub insecure_skip_verify: bool,
}

/// `[gateway]`: where allowed requests go and how many may be in flight.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// `http://host:port` or `https://host:port`, without a trailing slash.
    pub upstream: String,
    pub max_concurrent_requests: usize,
    pub upstream_timeout: Duration,
    /// CA bundle for an `https://` upstream; `None` trusts the web PKI roots.
    pub upstream_ca: Option<PathBuf>,
    /// Whether `GET /kapauth/metrics` answers (else 404).
    pub metrics_enabled: bool,
}

/// `[meta]`: the meta server, run by `kapauth meta` or embedded in `serve`.
#[derive(Debug, Clone)]
pub struct Meta {
    pub bind_address: String,
    pub dir: PathBuf,
    pub bcrypt_cost: u32,
    pub internal_shared_secret: SecretText,
    /// `https-enabled`: the meta API's certificate and key.
    pub tls: Option<ListenerTls>,
}

impl Config {
    /// Authentication applies only when both Kapacitor switches are on, as in Kapacitor.
    pub fn auth_on(&self) -> bool {
        self.http.auth_enabled && self.auth.enabled
    }
}

/// Where a setting came from, so an error can point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    File { path: PathBuf, line: usize },
    Env { name: String },
    Flag,
}

/// A value as written, before it is checked against the key's kind.
#[derive(Debug, Clone, PartialEq)]
pub enum RawValue {
    /// From the TOML file: already typed by the TOML grammar.
    Toml(toml::Value),
    /// From the environment or a flag: text to be read by the key's kind.
    Text(String),
}

/// One value for one key from one source.
#[derive(Debug, Clone)]
pub struct Setting {
    pub section: String,
    pub key: String,
    pub value: RawValue,
    pub origin: Origin,
}

/// The configuration could not be read or is not valid.
#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read.
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The file is not TOML, or a section is not a table.
    Syntax {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    /// A key that kapauth does not know inside a section it owns.
    UnknownKey {
        section: String,
        key: String,
        origin: Origin,
    },
    /// A value of the wrong TOML type, or text that is not of the key's kind.
    Invalid {
        section: &'static str,
        key: &'static str,
        shown: String,
        origin: Origin,
        problem: String,
    },
    /// A flag that is not `section.key=value`.
    BadFlag { text: String },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, error } => {
                write!(f, "cannot read config file {}: {error}", path.display())
            }
            ConfigError::Syntax {
                path,
                line: Some(line),
                message,
            } => {
                write!(f, "{} line {line}: {message}", path.display())
            }
            ConfigError::Syntax {
                path,
                line: None,
                message,
            } => {
                write!(f, "{}: {message}", path.display())
            }
            ConfigError::UnknownKey {
                section,
                key,
                origin,
            } => {
                let known: Vec<&str> = KEYS
                    .iter()
                    .filter(|spec| spec.section == section && spec.kind != Kind::Ignored)
                    .map(|spec| spec.key)
                    .collect();
                write!(
                    f,
                    "unknown key [{section}] {key}{}; known keys: {}",
                    origin_suffix(origin),
                    known.join(", ")
                )
            }
            ConfigError::Invalid {
                section,
                key,
                shown,
                origin,
                problem,
            } => {
                write!(
                    f,
                    "[{section}] {key} = {shown}{} {problem}",
                    origin_suffix(origin)
                )
            }
            ConfigError::BadFlag { text } => {
                // Only the part before `=`: the value may be a secret.
                let name = text.split_once('=').map_or(text.as_str(), |(name, _)| name);
                write!(
                    f,
                    "--set {name:?} is not section.key=value; write e.g. --set http.bind-address=127.0.0.1:9092"
                )
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// What a key holds; decides how its raw value is read and how it is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    /// An integer within the bounds.
    Int {
        min: i64,
        max: i64,
    },
    Duration,
    Text,
    /// Text that is never printed or logged.
    Secret,
    /// A key of Kapacitor's own that kapauth accepts in a copied block and ignores.
    Ignored,
}

/// One row of the key table.
#[derive(Debug)]
pub struct KeySpec {
    pub section: &'static str,
    pub key: &'static str,
    pub kind: Kind,
    /// The default, written as it would be in the file; read by the same code as a file value.
    pub default: &'static str,
}

const COST: Kind = Kind::Int { min: 4, max: 31 };
const CONNECTIONS: Kind = Kind::Int {
    min: 1,
    max: 1_000_000,
};

/// Every key kapauth reads, in the order `check-config` prints them (SPEC §9).
pub const KEYS: &[KeySpec] = &[
    spec("http", "bind-address", Kind::Text, ":9092"),
    // Auth is on by default (kapauth): turning it off is a warning at every start.
    spec("http", "auth-enabled", Kind::Bool, "true"),
    spec("http", "https-enabled", Kind::Bool, "false"),
    spec("http", "https-certificate", Kind::Text, ""),
    spec("http", "https-private-key", Kind::Text, ""),
    spec("http", "shared-secret", Kind::Secret, ""),
    spec("http", "log-enabled", Kind::Bool, "true"),
    spec("http", "read-header-timeout", Kind::Duration, "10s"),
    spec("http", "idle-timeout", Kind::Duration, "120s"),
    spec("http", "max-connections", CONNECTIONS, "1024"),
    spec("http", "max-connections-per-client", CONNECTIONS, "256"),
    spec("http", "write-tracing", Kind::Ignored, ""),
    spec("http", "pprof-enabled", Kind::Ignored, ""),
    spec("http", "shutdown-timeout", Kind::Duration, "10s"),
    spec("http", "gzip", Kind::Ignored, ""),
    spec("auth", "enabled", Kind::Bool, "true"),
    spec("auth", "cache-expiration", Kind::Duration, "10m"),
    spec("auth", "bcrypt-cost", COST, "10"),
    spec("auth", "meta-addr", Kind::Text, ""),
    spec("auth", "meta-username", Kind::Text, ""),
    spec("auth", "meta-password", Kind::Secret, ""),
    spec("auth", "meta-internal-shared-secret", Kind::Secret, ""),
    spec("auth", "meta-use-tls", Kind::Bool, "false"),
    spec("auth", "meta-ca", Kind::Text, ""),
    spec("auth", "meta-cert", Kind::Text, ""),
    spec("auth", "meta-key", Kind::Text, ""),
    spec("auth", "meta-insecure-skip-verify", Kind::Bool, "false"),
    spec("auth", "meta-timeout", Kind::Duration, "10s"),
    spec("auth", "resolve-roles", Kind::Bool, "true"),
    spec("auth", "negative-cache-expiration", Kind::Duration, "10s"),
    spec(
        "auth",
        "meta-max-lookups",
        Kind::Int { min: 1, max: 4096 },
        "16",
    ),
    spec("auth", "login-throttling", Kind::Bool, "true"),
    spec(
        "auth",
        "failed-login-burst",
        Kind::Int {
            min: 1,
            max: 1_000_000,
        },
        "10",
    ),
    spec("auth", "failed-login-interval", Kind::Duration, "1s"),
    spec("gateway", "upstream", Kind::Text, "http://127.0.0.1:9093"),
    spec(
        "gateway",
        "max-concurrent-requests",
        Kind::Int {
            min: 1,
            max: 65_536,
        },
        "256",
    ),
    spec("gateway", "upstream-timeout", Kind::Duration, "60s"),
    spec("gateway", "upstream-ca", Kind::Text, ""),
    spec("gateway", "metrics-enabled", Kind::Bool, "true"),
    spec("meta", "bind-address", Kind::Text, "127.0.0.1:8091"),
    spec("meta", "dir", Kind::Text, "/var/lib/kapauth/meta"),
    spec("meta", "bcrypt-cost", COST, "10"),
    spec("meta", "internal-shared-secret", Kind::Secret, ""),
    spec("meta", "https-enabled", Kind::Bool, "false"),
    spec("meta", "https-certificate", Kind::Text, ""),
    spec("meta", "https-private-key", Kind::Text, ""),
];

/// The sections kapauth owns; every other section of a kapacitor.conf is ignored.
pub const SECTIONS: &[&str] = &["http", "auth", "gateway", "meta"];

/// The checked value of one key.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Bool(bool),
    Int(i64),
    Duration(Duration),
    Text(String),
    Ignored,
}

/// The effective value of every key with its origin, in table order.
#[derive(Debug, Clone)]
pub struct Effective {
    entries: Vec<(&'static KeySpec, Value, Origin)>,
}

/// Applies the settings over the defaults (later settings win) and checks each value
/// against its key's kind.
pub fn layer(settings: &[Setting]) -> Result<Effective, ConfigError> {
    let mut values: BTreeMap<(&str, &str), (Value, Origin)> = BTreeMap::new();
    for spec in KEYS {
        let value = read_value(
            spec,
            &RawValue::Text(spec.default.to_string()),
            &Origin::Default,
        )?;
        values.insert((spec.section, spec.key), (value, Origin::Default));
    }
    for setting in settings {
        let spec = KEYS
            .iter()
            .find(|spec| spec.section == setting.section && spec.key == setting.key)
            .ok_or_else(|| ConfigError::UnknownKey {
                section: setting.section.clone(),
                key: setting.key.clone(),
                origin: setting.origin.clone(),
            })?;
        let value = read_value(spec, &setting.value, &setting.origin)?;
        values.insert((spec.section, spec.key), (value, setting.origin.clone()));
    }
    let entries = KEYS
        .iter()
        .filter_map(|spec| {
            let (value, origin) = values.remove(&(spec.section, spec.key))?;
            Some((spec, value, origin))
        })
        .collect();
    Ok(Effective { entries })
}

/// A key as reloads and `check-config` name it: `[auth] meta-addr`.
fn key_name(spec: &KeySpec) -> String {
    format!("[{}] {}", spec.section, spec.key)
}

impl Effective {
    /// Checks the rules that span keys and builds the typed configuration.
    pub fn build(&self) -> Result<Config, ConfigError> {
        let meta_tls = if self.bool("auth", "meta-use-tls") {
            Some(MetaTls {
                ca: self.path("auth", "meta-ca"),
                client_identity: self.client_identity()?,
                insecure_skip_verify: self.bool("auth", "meta-insecure-skip-verify"),
            })
        } else {
            None
        };
        Ok(Config {
            http: Http {
                bind_address: self.bind_address("http", "bind-address")?,
                auth_enabled: self.bool("http", "auth-enabled"),
                shared_secret: self.secret("http", "shared-secret"),
                log_enabled: self.bool("http", "log-enabled"),
                tls: self.listener_tls("http")?,
                shutdown_timeout: self.duration("http", "shutdown-timeout"),
                limits: HttpLimits {
                    read_header_timeout: self.positive_duration("http", "read-header-timeout")?,
                    idle_timeout: self.positive_duration("http", "idle-timeout")?,
                    max_connections: self.int("http", "max-connections") as usize,
                    max_connections_per_client: self.int("http", "max-connections-per-client")
                        as usize,
                },
            },
            auth: Auth {
                enabled: self.bool("auth", "enabled"),
                cache_expiration: self.duration("auth", "cache-expiration"),
                bcrypt_cost: self.cost("auth", "bcrypt-cost"),
                meta_addr: self.meta_addr()?,
                meta_username: self.meta_username()?,
                meta_password: self.secret("auth", "meta-password"),
                meta_internal_shared_secret: self.secret("auth", "meta-internal-shared-secret"),
                meta_tls,
                meta_timeout: self.positive_duration("auth", "meta-timeout")?,
                resolve_roles: self.bool("auth", "resolve-roles"),
                negative_cache_expiration: self.duration("auth", "negative-cache-expiration"),
                meta_max_lookups: self.int("auth", "meta-max-lookups") as usize,
                failed_logins: if self.bool("auth", "login-throttling") {
                    Some(FailedLogins {
                        burst: self.int("auth", "failed-login-burst") as u32,
                        interval: self.positive_duration("auth", "failed-login-interval")?,
                    })
                } else {
                    None
                },
            },
            gateway: Gateway {
                upstream: self.upstream()?,
                max_concurrent_requests: self.int("gateway", "max-concurrent-requests") as usize,
                upstream_timeout: self.positive_duration("gateway", "upstream-timeout")?,
                upstream_ca: self.path("gateway", "upstream-ca"),
                metrics_enabled: self.bool("gateway", "metrics-enabled"),
            },
            meta: Meta {
                bind_address: self.bind_address("meta", "bind-address")?,
                dir: self.dir()?,
                bcrypt_cost: self.cost("meta", "bcrypt-cost"),
                internal_shared_secret: self.secret("meta", "internal-shared-secret"),
                tls: self.listener_tls("meta")?,
            },
        })
    }

    /// The keys whose value differs in `newer`, as `[section] key`, in table order; for a
    /// reload's log line, so secrets are named, never shown.
    pub fn changed(&self, newer: &Effective) -> Vec<String> {
        self.entries
            .iter()
            .zip(&newer.entries)
            .filter(|((_, old, _), (_, new, _))| old != new)
            .map(|((spec, _, _), _)| key_name(spec))
            .collect()
    }

    /// What is in force after a reload that applies `keys` (named as `changed` names them)
    /// of `newer`: those keys take its values, and every other key keeps this one's until a
    /// restart, so the next reload still names it and nothing is built from it.
    pub fn with_applied(&self, newer: &Effective, keys: &[String]) -> Effective {
        let entries = self
            .entries
            .iter()
            .zip(&newer.entries)
            .map(|(old, new)| match keys.contains(&key_name(old.0)) {
                true => new.clone(),
                false => old.clone(),
            })
            .collect();
        Effective { entries }
    }

    /// The effective configuration as TOML, each line commented with its origin; secrets
    /// that are set print as `<redacted>`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut section = "";
        for (spec, value, origin) in &self.entries {
            if *value == Value::Ignored {
                continue;
            }
            if spec.section != section {
                if !section.is_empty() {
                    out.push('\n');
                }
                section = spec.section;
                out.push_str(&format!("[{section}]\n"));
            }
            let shown = match value {
                Value::Text(text) if spec.kind == Kind::Secret && !text.is_empty() => {
                    "\"<redacted>\"".to_string()
                }
                other => show(other),
            };
            let from = match origin {
                Origin::Default => "default".to_string(),
                Origin::File { path, line } => format!("{} line {line}", path.display()),
                Origin::Env { name } => format!("from {name}"),
                Origin::Flag => "from --set".to_string(),
            };
            out.push_str(&format!("  {} = {shown}  # {from}\n", spec.key));
        }
        out
    }

    fn get(&self, section: &str, key: &str) -> (&'static KeySpec, &Value, &Origin) {
        // The table and `layer` hold every key, so a lookup by a name from the table finds it;
        // the fallback keeps this total without a panic.
        self.entries
            .iter()
            .find(|(spec, _, _)| spec.section == section && spec.key == key)
            .map(|(spec, value, origin)| (*spec, value, origin))
            .unwrap_or((&KEYS[0], &Value::Ignored, &Origin::Default))
    }

    fn bool(&self, section: &str, key: &str) -> bool {
        matches!(self.get(section, key).1, Value::Bool(true))
    }

    fn int(&self, section: &str, key: &str) -> i64 {
        match self.get(section, key).1 {
            Value::Int(int) => *int,
            _ => 0,
        }
    }

    fn cost(&self, section: &str, key: &str) -> u32 {
        u32::try_from(self.int(section, key)).unwrap_or(u32::MAX)
    }

    fn duration(&self, section: &str, key: &str) -> Duration {
        match self.get(section, key).1 {
            Value::Duration(duration) => *duration,
            _ => Duration::ZERO,
        }
    }

    fn text(&self, section: &str, key: &str) -> &str {
        match self.get(section, key).1 {
            Value::Text(text) => text,
            _ => "",
        }
    }

    fn secret(&self, section: &str, key: &str) -> SecretText {
        SecretText::new(self.text(section, key))
    }

    fn path(&self, section: &str, key: &str) -> Option<PathBuf> {
        let text = self.text(section, key);
        (!text.is_empty()).then(|| PathBuf::from(text))
    }

    fn invalid(&self, section: &str, key: &str, problem: &str) -> ConfigError {
        let (spec, value, origin) = self.get(section, key);
        let shown = if spec.kind == Kind::Secret {
            "\"<redacted>\"".to_string()
        } else {
            show(value)
        };
        ConfigError::Invalid {
            section: spec.section,
            key: spec.key,
            shown,
            origin: origin.clone(),
            problem: problem.to_string(),
        }
    }

    fn positive_duration(&self, section: &str, key: &str) -> Result<Duration, ConfigError> {
        let duration = self.duration(section, key);
        if duration.is_zero() {
            return Err(self.invalid(section, key, "must be longer than zero; write e.g. \"10s\""));
        }
        Ok(duration)
    }

    fn bind_address(&self, section: &str, key: &str) -> Result<String, ConfigError> {
        normalize_bind_address(self.text(section, key)).ok_or_else(|| {
            self.invalid(
                section,
                key,
                "is not host:port; write e.g. \"127.0.0.1:9092\" or \":9092\"",
            )
        })
    }

    fn meta_addr(&self) -> Result<String, ConfigError> {
        // The seed writes `meta-addr = " 172.17.0.2:8091"`: blanks around it are not meant.
        let addr = self.text("auth", "meta-addr").trim();
        if addr.is_empty() || host_port(addr).is_some() {
            return Ok(addr.to_string());
        }
        let problem = if addr.contains("://") {
            "is not host:port; write the address without a scheme (e.g. \"meta1:8091\") and set meta-use-tls for https"
        } else {
            "is not host:port; write e.g. \"172.17.0.2:8091\", or leave it empty for the embedded meta store"
        };
        Err(self.invalid("auth", "meta-addr", problem))
    }

    /// `meta-username`, which needs `meta-password`, and the other way round: half a pair of
    /// credentials would make every lookup fail at meta.
    fn meta_username(&self) -> Result<String, ConfigError> {
        let username = self.text("auth", "meta-username");
        let password_set = !self.secret("auth", "meta-password").expose().is_empty();
        match (username.is_empty(), password_set) {
            (false, false) => Err(self.invalid(
                "auth",
                "meta-username",
                "is set but meta-password is empty; set both (meta's Basic credentials), or neither",
            )),
            (true, true) => Err(self.invalid(
                "auth",
                "meta-password",
                "is set but meta-username is empty; set both (meta's Basic credentials), or neither",
            )),
            _ => Ok(username.to_string()),
        }
    }

    fn client_identity(&self) -> Result<Option<(PathBuf, PathBuf)>, ConfigError> {
        match (
            self.path("auth", "meta-cert"),
            self.path("auth", "meta-key"),
        ) {
            (Some(cert), Some(key)) => Ok(Some((cert, key))),
            (None, None) => Ok(None),
            (Some(_), None) => Err(self.invalid(
                "auth",
                "meta-cert",
                "is set but meta-key is empty; a client certificate needs both",
            )),
            (None, Some(_)) => Err(self.invalid(
                "auth",
                "meta-key",
                "is set but meta-cert is empty; a client certificate needs both",
            )),
        }
    }

    fn upstream(&self) -> Result<String, ConfigError> {
        let upstream = self.text("gateway", "upstream");
        let trimmed = upstream.strip_suffix('/').unwrap_or(upstream);
        let authority = trimmed
            .strip_prefix("http://")
            .or_else(|| trimmed.strip_prefix("https://"));
        match authority {
            Some(authority) if host_port(authority).is_some() => Ok(trimmed.to_string()),
            _ => Err(self.invalid(
                "gateway",
                "upstream",
                "is not an http://host:port address; write e.g. \"http://127.0.0.1:9093\"",
            )),
        }
    }

    /// `https-enabled` and its files in `[section]`: the certificate is required, the key
    /// may be in the certificate file.
    fn listener_tls(&self, section: &str) -> Result<Option<ListenerTls>, ConfigError> {
        if !self.bool(section, "https-enabled") {
            return Ok(None);
        }
        let certificate = self.path(section, "https-certificate").ok_or_else(|| {
            self.invalid(
                section,
                "https-certificate",
                "is empty but https-enabled is true; write the path of a PEM certificate (and its key, or set https-private-key)",
            )
        })?;
        Ok(Some(ListenerTls {
            certificate,
            private_key: self.path(section, "https-private-key"),
        }))
    }

    fn dir(&self) -> Result<PathBuf, ConfigError> {
        self.path("meta", "dir").ok_or_else(|| {
            self.invalid(
                "meta",
                "dir",
                "is empty; write the directory of the meta store, e.g. \"/var/lib/kapauth/meta\"",
            )
        })
    }
}

/// `":9092"` (Go's all-interfaces form) becomes `"[::]:9092"`, which the HTTP core binds
/// dual-stack, IPv4 included; anything else must be `host:port` with a numeric port.
pub fn normalize_bind_address(text: &str) -> Option<String> {
    let text = text.trim();
    if let Some(port) = text.strip_prefix(':') {
        port.parse::<u16>().ok()?;
        return Some(format!("[::]:{port}"));
    }
    host_port(text).map(|_| text.to_string())
}

/// Splits `host:port` (`[v6]:port` too); the host must be non-empty and free of `/`, `@`,
/// blanks and scheme separators.
pub fn host_port(text: &str) -> Option<(&str, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    let port = port.parse::<u16>().ok()?;
    let host_ok = match host
        .strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
    {
        Some(v6) => {
            !v6.is_empty()
                && v6
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        }
        None => {
            !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        }
    };
    host_ok.then_some((host, port))
}

const fn spec(
    section: &'static str,
    key: &'static str,
    kind: Kind,
    default: &'static str,
) -> KeySpec {
    KeySpec {
        section,
        key,
        kind,
        default,
    }
}

fn origin_suffix(origin: &Origin) -> String {
    match origin {
        Origin::Default => " (default)".to_string(),
        Origin::File { path, line } => format!(" ({} line {line})", path.display()),
        Origin::Env { name } => format!(" (from {name})"),
        Origin::Flag => " (from --set)".to_string(),
    }
}

fn show(value: &Value) -> String {
    match value {
        Value::Bool(b) => b.to_string(),
        Value::Int(int) => int.to_string(),
        Value::Duration(duration) => toml_string(&format_duration(*duration)),
        Value::Text(text) => toml_string(text),
        Value::Ignored => "\"\"".to_string(),
    }
}

/// `text` as a TOML string, so `check-config`'s rendering reads back as a config file: Rust's
/// `{:?}` writes a control character as `\u{7f}`, which TOML refuses.
fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// Reads one raw value by its key's kind; the error names the key, the value and the origin.
fn read_value(spec: &KeySpec, raw: &RawValue, origin: &Origin) -> Result<Value, ConfigError> {
    let shown = match (spec.kind, raw) {
        (Kind::Secret, _) => "\"<redacted>\"".to_string(),
        (_, RawValue::Text(text)) => format!("{text:?}"),
        (_, RawValue::Toml(value)) => value.to_string(),
    };
    let fail = |problem: String| ConfigError::Invalid {
        section: spec.section,
        key: spec.key,
        shown: shown.clone(),
        origin: origin.clone(),
        problem,
    };
    match (spec.kind, raw) {
        (Kind::Ignored, _) => Ok(Value::Ignored),
        (Kind::Bool, RawValue::Toml(toml::Value::Boolean(b))) => Ok(Value::Bool(*b)),
        (Kind::Bool, RawValue::Text(text)) => parse_go_bool(text)
            .map(Value::Bool)
            .ok_or_else(|| fail("is not a boolean; write true or false".to_string())),
        (Kind::Bool, RawValue::Toml(_)) => {
            Err(fail("is not a boolean; write true or false".to_string()))
        }
        (Kind::Int { min, max }, raw) => {
            let int = match raw {
                RawValue::Toml(toml::Value::Integer(int)) => Some(*int),
                RawValue::Text(text) => text.trim().parse::<i64>().ok(),
                RawValue::Toml(_) => None,
            };
            match int {
                Some(int) if (min..=max).contains(&int) => Ok(Value::Int(int)),
                Some(_) => Err(fail(format!(
                    "is out of range; write a whole number from {min} to {max}"
                ))),
                None => Err(fail(format!(
                    "is not a whole number; write one from {min} to {max}"
                ))),
            }
        }
        (Kind::Duration, raw) => {
            let text = match raw {
                RawValue::Toml(toml::Value::String(text)) | RawValue::Text(text) => text,
                RawValue::Toml(_) => {
                    return Err(fail(
                        "is not a duration string; write e.g. \"10m\"".to_string(),
                    ));
                }
            };
            parse_duration(text)
                .map(Value::Duration)
                .map_err(|error| fail(format!("{error}; write e.g. \"10m\"")))
        }
        (
            Kind::Text | Kind::Secret,
            RawValue::Toml(toml::Value::String(text)) | RawValue::Text(text),
        ) => Ok(Value::Text(text.clone())),
        (Kind::Text | Kind::Secret, RawValue::Toml(_)) => Err(fail(
            "is not a string; put the value in double quotes".to_string(),
        )),
    }
}

/// Go's `strconv.ParseBool`, which Kapacitor uses for environment variables.
fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_setting(section: &str, key: &str, value: &str) -> Setting {
        Setting {
            section: section.to_string(),
            key: key.to_string(),
            value: RawValue::Text(value.to_string()),
            origin: Origin::Env {
                name: "TEST_VAR".to_string(),
            },
        }
    }

    fn build(settings: &[Setting]) -> Result<Config, String> {
        layer(settings)
            .and_then(|effective| effective.build())
            .map_err(|error| error.to_string())
    }

    fn check_error(settings: &[Setting], expected: &str) {
        match build(settings) {
            Ok(_) => panic!("expected error {expected:?}"),
            Err(error) => assert_eq!(error, expected),
        }
    }

    #[test]
    fn every_default_is_valid_and_matches_the_spec() {
        let config = build(&[]).expect("defaults are valid");
        assert_eq!(config.http.bind_address, "[::]:9092");
        assert_eq!(
            config.http.limits,
            HttpLimits {
                read_header_timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(120),
                max_connections: 1024,
                max_connections_per_client: 256,
            }
        );
        assert_eq!(config.http.tls, None);
        assert_eq!(config.meta.tls, None);
        assert_eq!(config.gateway.upstream_ca, None);
        assert!(config.http.auth_enabled && config.auth.enabled && config.auth_on());
        assert_eq!(config.auth.cache_expiration, Duration::from_secs(600));
        assert_eq!(config.auth.bcrypt_cost, 10);
        assert_eq!(config.auth.meta_addr, "");
        assert_eq!(config.auth.meta_timeout, Duration::from_secs(10));
        assert!(config.auth.resolve_roles);
        assert_eq!(config.auth.meta_tls, None);
        assert_eq!(config.gateway.upstream, "http://127.0.0.1:9093");
        assert_eq!(config.gateway.max_concurrent_requests, 256);
        assert_eq!(config.gateway.upstream_timeout, Duration::from_secs(60));
        assert_eq!(config.meta.bind_address, "127.0.0.1:8091");
        assert_eq!(config.meta.bcrypt_cost, 10);
    }

    #[test]
    fn a_reload_names_the_keys_that_changed_and_never_their_values() {
        let s = text_setting;
        let old = layer(&[
            s("auth", "meta-password", "old-secret"),
            s("auth", "meta-username", "k"),
        ])
        .unwrap();
        let new = layer(&[
            s("auth", "meta-password", "new-secret"),
            s("auth", "meta-username", "k"),
            s("auth", "cache-expiration", "5m"),
        ])
        .unwrap();
        assert_eq!(
            old.changed(&new),
            ["[auth] cache-expiration", "[auth] meta-password"]
        );
        assert!(old.changed(&old).is_empty());
    }

    #[test]
    fn after_a_reload_only_the_applied_keys_take_their_new_values() {
        let s = text_setting;
        let old = layer(&[
            s("auth", "meta-addr", "meta-a:8091"),
            s("auth", "meta-username", "k"),
            s("auth", "meta-password", "old-secret"),
        ])
        .unwrap();
        let new = layer(&[
            s("auth", "meta-addr", "meta-b:8091"),
            s("auth", "meta-username", "k"),
            s("auth", "meta-password", "new-secret"),
        ])
        .unwrap();
        let applied = ["[auth] meta-password".to_string()];
        let next = old.with_applied(&new, &applied);
        let config = next.build().unwrap();
        assert_eq!(config.auth.meta_addr, "meta-a:8091");
        assert_eq!(config.auth.meta_password.expose(), "new-secret");
        // The key that waits for a restart is still named by the next reload.
        assert_eq!(next.changed(&new), ["[auth] meta-addr"]);
    }

    #[test]
    fn half_a_pair_of_meta_credentials_is_an_error() {
        let s = text_setting;
        check_error(
            &[s("auth", "meta-username", "kapauth")],
            "[auth] meta-username = \"kapauth\" (from TEST_VAR) is set but meta-password is empty; set both (meta's Basic credentials), or neither",
        );
        check_error(
            &[s("auth", "meta-password", "secret")],
            "[auth] meta-password = \"<redacted>\" (from TEST_VAR) is set but meta-username is empty; set both (meta's Basic credentials), or neither",
        );
        let both = build(&[
            s("auth", "meta-username", "kapauth"),
            s("auth", "meta-password", "secret"),
        ])
        .unwrap();
        assert_eq!(both.auth.meta_username, "kapauth");
    }

    #[test]
    fn meta_load_and_throttling_keys_default_as_the_spec_says_and_turn_off() {
        let s = text_setting;
        let config = build(&[]).unwrap();
        assert_eq!(
            config.auth.negative_cache_expiration,
            Duration::from_secs(10)
        );
        assert_eq!(config.auth.meta_max_lookups, 16);
        assert_eq!(
            config.auth.failed_logins,
            Some(FailedLogins {
                burst: 10,
                interval: Duration::from_secs(1)
            })
        );
        let off = build(&[s("auth", "login-throttling", "false")]).unwrap();
        assert_eq!(off.auth.failed_logins, None);
        check_error(
            &[s("auth", "failed-login-interval", "0s")],
            "[auth] failed-login-interval = \"0s\" (from TEST_VAR) must be longer than zero; write e.g. \"10s\"",
        );
        check_error(
            &[s("auth", "meta-max-lookups", "0")],
            "[auth] meta-max-lookups = \"0\" (from TEST_VAR) is out of range; write a whole number from 1 to 4096",
        );
    }

    #[test]
    fn invalid_values_name_the_key_the_value_and_the_fix() {
        let s = text_setting;
        check_error(
            &[s("auth", "cache-expiration", "ten minutes")],
            "[auth] cache-expiration = \"ten minutes\" (from TEST_VAR) is not a duration; write e.g. \"10m\"",
        );
        check_error(
            &[s("auth", "bcrypt-cost", "3")],
            "[auth] bcrypt-cost = \"3\" (from TEST_VAR) is out of range; write a whole number from 4 to 31",
        );
        check_error(
            &[s("meta", "bcrypt-cost", "ten")],
            "[meta] bcrypt-cost = \"ten\" (from TEST_VAR) is not a whole number; write one from 4 to 31",
        );
        check_error(
            &[s("http", "auth-enabled", "yes")],
            "[http] auth-enabled = \"yes\" (from TEST_VAR) is not a boolean; write true or false",
        );
        check_error(
            &[s("auth", "meta-timeout", "0s")],
            "[auth] meta-timeout = \"0s\" (from TEST_VAR) must be longer than zero; write e.g. \"10s\"",
        );
        check_error(
            &[s("auth", "meta-timeout", "-1s")],
            "[auth] meta-timeout = \"-1s\" (from TEST_VAR) is negative; write e.g. \"10m\"",
        );
        check_error(
            &[s("http", "bind-address", "9092")],
            "[http] bind-address = \"9092\" (from TEST_VAR) is not host:port; write e.g. \"127.0.0.1:9092\" or \":9092\"",
        );
        check_error(
            &[s("auth", "meta-addr", "https://meta:8091")],
            "[auth] meta-addr = \"https://meta:8091\" (from TEST_VAR) is not host:port; write the address without a scheme (e.g. \"meta1:8091\") and set meta-use-tls for https",
        );
        check_error(
            &[s("gateway", "upstream", "127.0.0.1:9093")],
            "[gateway] upstream = \"127.0.0.1:9093\" (from TEST_VAR) is not an http://host:port address; write e.g. \"http://127.0.0.1:9093\"",
        );
        check_error(
            &[s("gateway", "max-concurrent-requests", "0")],
            "[gateway] max-concurrent-requests = \"0\" (from TEST_VAR) is out of range; write a whole number from 1 to 65536",
        );
        check_error(
            &[s("meta", "dir", "")],
            "[meta] dir = \"\" (from TEST_VAR) is empty; write the directory of the meta store, e.g. \"/var/lib/kapauth/meta\"",
        );
        check_error(
            &[
                s("auth", "meta-use-tls", "true"),
                s("auth", "meta-cert", "/c.pem"),
            ],
            "[auth] meta-cert = \"/c.pem\" (from TEST_VAR) is set but meta-key is empty; a client certificate needs both",
        );
        check_error(
            &[s("http", "https-enabled", "true")],
            "[http] https-certificate = \"\" (default) is empty but https-enabled is true; write the path of a PEM certificate (and its key, or set https-private-key)",
        );
        check_error(
            &[s("meta", "https-enabled", "true")],
            "[meta] https-certificate = \"\" (default) is empty but https-enabled is true; write the path of a PEM certificate (and its key, or set https-private-key)",
        );
        check_error(
            &[s("http", "max-connections", "0")],
            "[http] max-connections = \"0\" (from TEST_VAR) is out of range; write a whole number from 1 to 1000000",
        );
        check_error(
            &[s("http", "read-header-timeout", "0s")],
            "[http] read-header-timeout = \"0s\" (from TEST_VAR) must be longer than zero; write e.g. \"10s\"",
        );
        check_error(
            &[s("http", "no-such-key", "1")],
            "unknown key [http] no-such-key (from TEST_VAR); known keys: bind-address, auth-enabled, https-enabled, https-certificate, https-private-key, shared-secret, log-enabled, read-header-timeout, idle-timeout, max-connections, max-connections-per-client, shutdown-timeout",
        );
    }

    #[test]
    fn a_secret_never_appears_in_an_error_or_the_rendering() {
        let error = build(&[
            text_setting("auth", "meta-timeout", "x"),
            text_setting("http", "shared-secret", "hunter2"),
        ]);
        assert!(!error.unwrap_err().contains("hunter2"));
        let effective = layer(&[text_setting("http", "shared-secret", "hunter2")]).unwrap();
        let rendered = effective.render();
        assert!(!rendered.contains("hunter2"));
        assert!(
            rendered.contains("shared-secret = \"<redacted>\"  # from TEST_VAR"),
            "{rendered}"
        );
        assert!(
            rendered.contains("meta-password = \"\"  # default"),
            "{rendered}"
        );
    }

    /// Found by the `config_file` fuzz target: a text holding a control character was
    /// rendered with Rust's escapes (`"a\u{7f}b"`), which TOML does not read.
    #[test]
    fn the_rendering_writes_text_as_toml_strings() {
        let effective = layer(&[
            text_setting("auth", "meta-username", "a\u{7f}b\u{85}"),
            text_setting("meta", "dir", "C:\\kapauth \"meta\""),
        ])
        .unwrap();
        let rendered = effective.render();
        let settings = file::parse_settings(std::path::Path::new("r.conf"), &rendered).unwrap();
        let again = layer(&settings).unwrap();
        assert_eq!(again.text("auth", "meta-username"), "a\u{7f}b\u{85}");
        assert_eq!(again.text("meta", "dir"), "C:\\kapauth \"meta\"");
    }

    #[test]
    fn later_settings_override_earlier_ones() {
        let config = build(&[
            text_setting("auth", "meta-addr", " 172.17.0.2:8091"),
            text_setting("gateway", "upstream", "http://127.0.0.1:1/"),
            text_setting("gateway", "upstream", "http://127.0.0.1:2/"),
        ])
        .unwrap();
        assert_eq!(config.auth.meta_addr, "172.17.0.2:8091");
        assert_eq!(config.gateway.upstream, "http://127.0.0.1:2");
    }

    #[test]
    fn meta_tls_is_built_only_when_enabled() {
        let s = text_setting;
        let config = build(&[s("auth", "meta-ca", "/ca.pem")]).unwrap();
        assert_eq!(config.auth.meta_tls, None);
        let config = build(&[
            s("auth", "meta-use-tls", "true"),
            s("auth", "meta-ca", "/ca.pem"),
            s("auth", "meta-cert", "/c.pem"),
            s("auth", "meta-key", "/k.pem"),
            s("auth", "meta-insecure-skip-verify", "1"),
        ])
        .unwrap();
        assert_eq!(
            config.auth.meta_tls,
            Some(MetaTls {
                ca: Some(PathBuf::from("/ca.pem")),
                client_identity: Some((PathBuf::from("/c.pem"), PathBuf::from("/k.pem"))),
                insecure_skip_verify: true,
            })
        );
    }

    #[test]
    fn bind_addresses_and_host_ports_are_checked() {
        let cases: &[(&str, Option<&str>)] = &[
            (":9092", Some("[::]:9092")),
            ("127.0.0.1:0", Some("127.0.0.1:0")),
            ("localhost:9092", Some("localhost:9092")),
            ("[::1]:9092", Some("[::1]:9092")),
            ("::1:9092", None),
            ("9092", None),
            (":x", None),
            ("host:70000", None),
            ("a b:1", None),
            ("user@host:1", None),
            ("host/x:1", None),
            (":", None),
        ];
        for (text, expected) in cases {
            assert_eq!(normalize_bind_address(text).as_deref(), *expected, "{text}");
        }
    }
}
