//! Reads the TOML config file into `Setting`s (SPEC §9). The file may be a whole
//! kapacitor.conf: only `[http]`, `[auth]`, `[gateway]` and `[meta]` are read, every other
//! section and top-level key is ignored. Knows nothing of what the keys mean: `config/mod.rs`
//! checks them.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Origin, RawValue, Setting};

type Section = BTreeMap<String, Spanned<toml::Value>>;

/// The sections kapauth reads; serde ignores every other field of the file.
#[derive(Deserialize)]
struct RawFile {
    http: Option<Spanned<Section>>,
    auth: Option<Spanned<Section>>,
    gateway: Option<Spanned<Section>>,
    meta: Option<Spanned<Section>>,
}

/// Reads and parses the file at `path`.
pub fn read_settings(path: &Path) -> Result<Vec<Setting>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    parse_settings(path, &text)
}

/// Parses config text; `path` only names the file in settings and errors.
pub fn parse_settings(path: &Path, text: &str) -> Result<Vec<Setting>, ConfigError> {
    let raw: RawFile = toml::from_str(text).map_err(|error| ConfigError::Syntax {
        path: path.to_path_buf(),
        line: error.span().map(|span| line_of(text, span.start)),
        message: error.message().trim().to_string(),
    })?;
    let sections = [
        ("http", raw.http),
        ("auth", raw.auth),
        ("gateway", raw.gateway),
        ("meta", raw.meta),
    ];
    let mut settings = Vec::new();
    for (name, section) in sections {
        for (key, value) in section.map(Spanned::into_inner).unwrap_or_default() {
            let line = line_of(text, value.span().start);
            settings.push(Setting {
                section: name.to_string(),
                key,
                value: RawValue::Toml(value.into_inner()),
                origin: Origin::File {
                    path: path.to_path_buf(),
                    line,
                },
            });
        }
    }
    Ok(settings)
}

/// The 1-based line holding byte `offset`.
fn line_of(text: &str, offset: usize) -> usize {
    let before = text.get(..offset).unwrap_or(text);
    before.bytes().filter(|&b| b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::super::layer;
    use super::*;
    use std::time::Duration;

    /// A config file shaped like a stock kapacitor.conf, with the seed's [auth] block.
    const KAPACITOR_CONF: &str = r#"# The hostname of this node.
hostname = "localhost"
data_dir = "/var/lib/kapacitor"
skip-config-overrides = false
default-retention-policy = ""

[alert]
  persist-topics = true

[http]
  bind-address = ":9092"
  auth-enabled = true
  log-enabled = true
  write-tracing = false
  pprof-enabled = false
  https-enabled = false
  https-certificate = "/etc/ssl/kapacitor.pem"
  shutdown-timeout = "10s"
  shared-secret = ""
  gzip = true

[config-override]
  enabled = true

[logging]
    file = "STDERR"
    level = "INFO"

[load]
  enabled = false
  dir = "/etc/kapacitor/load"

[replay]
  dir = "/var/lib/kapacitor/replay"

[task]
  dir = "/var/lib/kapacitor/tasks"
  snapshot-interval = "60s"

[storage]
  boltdb = "/var/lib/kapacitor/kapacitor.db"

[deadman]
  global = false
  threshold = 0.0
  interval = "10s"
  id = "node 'NODE_NAME' in task '{{ .TaskName }}'"
  message = "{{ .ID }} is {{ if eq .Level \"OK\" }}alive{{ else }}dead{{ end }}: {{ index .Fields \"emitted\" | printf \"%0.3f\" }} points/INTERVAL."

[auth]
  enabled = true
  cache-expiration = "1h"
  bcrypt-cost = 4
  meta-addr = " 172.17.0.2:8091"
  meta-username = "example-influxdb-username"
  meta-password = "example-influxdb-password"
  meta-use-tls = true
  meta-ca = "/path/to/cert.ca"
  meta-cert = "/path/to/cert.cert"
  meta-key = "/path/to/cert.key"
  meta-insecure-skip-verify = false

[[influxdb]]
  enabled = true
  default = true
  name = "localhost"
  urls = ["http://localhost:8086"]
  username = ""
  password = ""
  timeout = 0
  [influxdb.subscriptions]
  [influxdb.excluded-subscriptions]
    _kapacitor = ["autogen"]

[smtp]
  enabled = false
  host = "localhost"
  port = 25

[reporting]
  enabled = true

[stats]
  enabled = true
  stats-interval = "10s"
  database = "_kapacitor"
  retention-policy= "autogen"
"#;

    fn parse(text: &str) -> Result<crate::config::Config, String> {
        parse_settings(Path::new("k.conf"), text)
            .and_then(|settings| layer(&settings))
            .and_then(|effective| effective.build())
            .map_err(|error| error.to_string())
    }

    fn check_error(text: &str, expected: &str) {
        assert_eq!(
            parse(text).err().as_deref(),
            Some(expected),
            "config:\n{text}"
        );
    }

    #[test]
    fn a_stock_kapacitor_conf_is_read_for_http_and_auth_only() {
        let config = parse(KAPACITOR_CONF).expect("a kapacitor.conf loads");
        assert_eq!(config.http.bind_address, "[::]:9092");
        assert!(config.auth_on());
        assert_eq!(config.auth.cache_expiration, Duration::from_secs(3600));
        assert_eq!(config.auth.bcrypt_cost, 4);
        assert_eq!(config.auth.meta_addr, "172.17.0.2:8091");
        assert_eq!(config.auth.meta_username, "example-influxdb-username");
        assert_eq!(
            config.auth.meta_password.expose(),
            "example-influxdb-password"
        );
        let tls = config.auth.meta_tls.expect("meta-use-tls = true");
        assert_eq!(tls.ca.unwrap().to_str(), Some("/path/to/cert.ca"));
        // Keys kapauth owns but the file leaves out keep their defaults.
        assert_eq!(config.gateway.upstream, "http://127.0.0.1:9093");
        assert_eq!(config.meta.bind_address, "127.0.0.1:8091");
    }

    #[test]
    fn invalid_files_name_the_key_and_the_line() {
        check_error(
            "[auth]\n\n  cache-expiration = \"ten minutes\"\n",
            "[auth] cache-expiration = \"ten minutes\" (k.conf line 3) is not a duration; write e.g. \"10m\"",
        );
        check_error(
            "[auth]\nbcrypt-cost = \"4\"\n",
            "[auth] bcrypt-cost = \"4\" (k.conf line 2) is not a whole number; write one from 4 to 31",
        );
        check_error(
            "[http]\nauth-enabled = \"true\"\n",
            "[http] auth-enabled = \"true\" (k.conf line 2) is not a boolean; write true or false",
        );
        check_error(
            "[auth]\nmeta-addr = 8091\n",
            "[auth] meta-addr = 8091 (k.conf line 2) is not a string; put the value in double quotes",
        );
        check_error(
            "[auth]\ncache-expiration = 600\n",
            "[auth] cache-expiration = 600 (k.conf line 2) is not a duration string; write e.g. \"10m\"",
        );
        check_error(
            "[gateway]\nupstrem = \"http://127.0.0.1:9093\"\n",
            "unknown key [gateway] upstrem (k.conf line 2); known keys: upstream, max-concurrent-requests, upstream-timeout, upstream-ca, metrics-enabled",
        );
        check_error(
            "[meta]\ndir = \"/x\"\n[meta]\ndir = \"/y\"\n",
            "k.conf line 3: duplicate key",
        );
        check_error(
            "[http]\nbind-address = \n",
            "k.conf line 2: string values must be quoted, expected literal string",
        );
        check_error(
            "http = 5\n",
            "k.conf line 1: invalid type: integer `5`, expected a map",
        );
        check_error(
            "[http]\nshared-secret = 5\n",
            "[http] shared-secret = \"<redacted>\" (k.conf line 2) is not a string; put the value in double quotes",
        );
    }

    #[test]
    fn an_empty_file_gives_the_defaults() {
        let config = parse("").expect("empty is valid");
        assert_eq!(config.http.bind_address, "[::]:9092");
    }
}
