//! `config_file`: the config file on arbitrary text (SPEC §9): `file::parse_settings`,
//! then `layer` over the defaults and `Effective::build`, as `kapauth serve` loads it.
//!
//! Input: the file's text, as lossy UTF-8.
//!
//! Asserts, besides "no panic":
//! - a syntax error names a line of the file; an unknown key names its section, key and
//!   line; an invalid value names its `[section] key`, and its line when the file set it;
//! - every setting read from the file names a line of the file, and a section kapauth owns;
//! - what the configuration comes to never depends on a secret's text: with every
//!   secret string replaced by another non-empty one, the error is the same text, or the
//!   `check-config` rendering is the same (secrets show as `<redacted>`);
//! - layering the same settings twice gives what layering them once gives;
//! - the `check-config` rendering is a config file: read back, it renders the same values.
#![no_main]

use std::path::Path;

use kapauth::config::file::parse_settings;
use kapauth::config::{ConfigError, KEYS, Kind, Origin, RawValue, SECTIONS, Setting, layer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines = text.matches('\n').count() + 1;
    let in_file = |line: usize| (1..=lines).contains(&line);
    let settings = match parse_settings(Path::new("fuzz.conf"), &text) {
        Ok(settings) => settings,
        Err(ConfigError::Syntax { line, message, .. }) => {
            assert!(
                line.is_some_and(in_file),
                "syntax error {message:?} at line {line:?}"
            );
            return;
        }
        Err(error) => panic!("parse_settings gave {error:?}"),
    };
    for setting in &settings {
        assert!(SECTIONS.contains(&setting.section.as_str()), "{setting:?}");
        assert!(
            matches!(setting.origin, Origin::File { line, .. } if in_file(line)),
            "{setting:?}"
        );
    }

    let outcome = loaded(&settings);
    if let Err(error) = layer(&settings).and_then(|effective| effective.build()) {
        check_error(&error, &in_file);
    }
    assert_eq!(
        outcome,
        loaded(&[settings.clone(), settings.clone()].concat()),
        "twice"
    );
    let replaced: Vec<Setting> = settings.iter().cloned().map(replace_secret).collect();
    assert_eq!(
        outcome,
        loaded(&replaced),
        "a secret's text changed the outcome"
    );
    if let Ok(rendered) = outcome {
        let settings = parse_settings(Path::new("rendered.conf"), &rendered);
        let again = settings
            .map_err(|error| error.to_string())
            .and_then(|settings| loaded(&settings));
        let again = again.unwrap_or_else(|error| panic!("{rendered}\nreads back as {error}"));
        assert_eq!(values(&again), values(&rendered), "the rendering read back");
    }
});

/// A rendering without the comments that say where each value came from.
fn values(rendered: &str) -> Vec<&str> {
    rendered
        .lines()
        .map(|line| line.rsplit_once("  # ").map_or(line, |(value, _)| value))
        .collect()
}

/// What loading comes to: the rendering, or the error's text.
fn loaded(settings: &[Setting]) -> Result<String, String> {
    let effective = layer(settings).map_err(|error| error.to_string())?;
    effective.build().map_err(|error| error.to_string())?;
    Ok(effective.render())
}

fn check_error(error: &ConfigError, in_file: &dyn Fn(usize) -> bool) {
    let text = error.to_string();
    let (section, key, origin): (&str, &str, &Origin) = match error {
        ConfigError::UnknownKey {
            section,
            key,
            origin,
        } => (section, key, origin),
        ConfigError::Invalid {
            section,
            key,
            origin,
            ..
        } => (section, key, origin),
        other => panic!("loading settings gave {other:?}"),
    };
    assert!(text.contains(&format!("[{section}] {key}")), "{text}");
    match origin {
        Origin::File { line, .. } => {
            assert!(in_file(*line), "{text}");
            assert!(text.contains(&format!("fuzz.conf line {line}")), "{text}");
        }
        Origin::Default => {}
        other => panic!("a file's setting came from {other:?}"),
    }
}

/// The setting with another text when it is a non-empty secret string.
fn replace_secret(mut setting: Setting) -> Setting {
    let secret = KEYS.iter().any(|spec| {
        spec.kind == Kind::Secret && spec.section == setting.section && spec.key == setting.key
    });
    if let RawValue::Toml(toml::Value::String(text)) = &setting.value
        && secret
        && !text.is_empty()
    {
        setting.value = RawValue::Toml(toml::Value::String(format!("other than {}", text.len())));
    }
    setting
}
