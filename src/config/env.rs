//! Turns environment variables and `--set section.key=value` flags into `Setting`s
//! (SPEC §9). `KAPACITOR_HTTP_*` and `KAPACITOR_AUTH_*` are named exactly as Kapacitor names
//! them, `KAPAUTH_GATEWAY_*` and `KAPAUTH_META_*` are kapauth's. Pure: the caller passes the
//! variables in.

use super::{ConfigError, KEYS, Origin, RawValue, SECTIONS, Setting};

/// Each prefix, its section, and whether an unknown key under it is an error. Kapacitor has
/// more `[http]` keys than kapauth reads, so an unknown `KAPACITOR_HTTP_*` variable may be
/// meant for Kapacitor itself; the other prefixes hold only keys kapauth reads.
const PREFIXES: &[(&str, &str, bool)] = &[
    ("KAPACITOR_HTTP_", "http", false),
    ("KAPACITOR_AUTH_", "auth", true),
    ("KAPAUTH_GATEWAY_", "gateway", true),
    ("KAPAUTH_META_", "meta", true),
];

/// The settings named by `vars`, in name order. Names are compared upper-cased with `-`
/// read as `_`, so the seed's `KAPACITOR_AUTH_META_USE-tls` works as meant.
pub fn settings_from_env(
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<Setting>, ConfigError> {
    let mut vars: Vec<(String, String)> = vars.into_iter().collect();
    vars.sort();
    let mut settings = Vec::new();
    for (name, value) in vars {
        let normalized = name.to_ascii_uppercase().replace('-', "_");
        let Some((prefix, section, strict)) = PREFIXES
            .iter()
            .find(|(prefix, _, _)| normalized.starts_with(prefix))
        else {
            continue;
        };
        let key = normalized[prefix.len()..]
            .to_ascii_lowercase()
            .replace('_', "-");
        let known = KEYS
            .iter()
            .any(|spec| spec.section == *section && spec.key == key);
        if !known && !strict {
            continue;
        }
        settings.push(Setting {
            section: section.to_string(),
            key,
            value: RawValue::Text(value),
            origin: Origin::Env { name },
        });
    }
    Ok(settings)
}

/// The settings of `--set section.key=value` flags, in the order given.
pub fn settings_from_flags(flags: &[String]) -> Result<Vec<Setting>, ConfigError> {
    flags
        .iter()
        .map(|text| {
            let bad = || ConfigError::BadFlag { text: text.clone() };
            let (name, value) = text.split_once('=').ok_or_else(bad)?;
            let (section, key) = name.split_once('.').ok_or_else(bad)?;
            if !SECTIONS.contains(&section) {
                return Err(bad());
            }
            Ok(Setting {
                section: section.to_string(),
                key: key.to_string(),
                value: RawValue::Text(value.to_string()),
                origin: Origin::Flag,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_keys(vars: &[(&str, &str)]) -> Vec<(String, String, String)> {
        let owned = vars.iter().map(|(n, v)| (n.to_string(), v.to_string()));
        settings_from_env(owned)
            .expect("env never fails to split")
            .into_iter()
            .map(|s| {
                let RawValue::Text(value) = s.value else {
                    panic!("env gives text")
                };
                (s.section, s.key, value)
            })
            .collect()
    }

    fn triple(section: &str, key: &str, value: &str) -> (String, String, String) {
        (section.to_string(), key.to_string(), value.to_string())
    }

    #[test]
    fn kapacitor_variable_names_map_to_their_keys() {
        assert_eq!(
            env_keys(&[
                ("KAPACITOR_AUTH_META_ADDR", "m:8091"),
                ("KAPACITOR_HTTP_AUTH_ENABLED", "true"),
                ("KAPACITOR_AUTH_META_USE-tls", "true"),
                ("KAPAUTH_GATEWAY_UPSTREAM", "http://127.0.0.1:1"),
                ("KAPAUTH_META_DIR", "/d"),
                ("PATH", "/bin"),
                ("KAPACITOR_HTTP_PPROF_ENABLED", "true"),
                ("KAPACITOR_HTTP_SOMETHING_NEW", "x"),
                ("KAPACITOR_REPLAY_DIR", "/r"),
            ]),
            vec![
                triple("auth", "meta-addr", "m:8091"),
                triple("auth", "meta-use-tls", "true"),
                triple("http", "auth-enabled", "true"),
                triple("http", "pprof-enabled", "true"),
                triple("gateway", "upstream", "http://127.0.0.1:1"),
                triple("meta", "dir", "/d"),
            ]
        );
    }

    #[test]
    fn an_unknown_variable_in_an_owned_prefix_is_reported_by_layer() {
        let settings =
            settings_from_env([("KAPAUTH_META_DRI".to_string(), "/d".to_string())]).unwrap();
        let error = super::super::layer(&settings).unwrap_err().to_string();
        assert_eq!(
            error,
            "unknown key [meta] dri (from KAPAUTH_META_DRI); known keys: bind-address, dir, bcrypt-cost, internal-shared-secret, https-enabled, https-certificate, https-private-key"
        );
    }

    #[test]
    fn set_flags_must_be_section_dot_key_equals_value() {
        let ok = settings_from_flags(&["gateway.upstream=http://h:1".to_string()]).unwrap();
        assert_eq!(ok[0].key, "upstream");
        assert_eq!(ok[0].value, RawValue::Text("http://h:1".to_string()));
        for bad in ["upstream=x", "gateway.upstream", "nope.key=1", ""] {
            let error = settings_from_flags(&[bad.to_string()]).unwrap_err();
            assert!(matches!(error, ConfigError::BadFlag { .. }), "{bad}");
        }
        let error = settings_from_flags(&["auth-meta-password=hunter2".to_string()]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "--set \"auth-meta-password\" is not section.key=value; write e.g. --set http.bind-address=127.0.0.1:9092"
        );
    }
}
