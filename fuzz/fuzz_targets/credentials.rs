//! `credentials`: `parse_credentials` on fuzzed `Authorization` headers and raw queries,
//! against a plain reimplementation of SPEC §1's order.
//!
//! Input: `[mode, header \n query]` (lossy UTF-8; a header never holds `\n` on the wire).
//! `mode` bit 0: no header; bit 1: no query; bit 2: the header is built as
//! `Basic base64(header text)`, with bit 3 writing the scheme word `bAsIc`, so the fuzzer
//! reaches well-formed Basic credentials without learning base64.
//!
//! Asserts, besides "no panic":
//! - the outcome is the reference's: a header that is `Bearer` and a token at its first
//!   space gives that token; else `Basic ` (any case) and Go's padded standard base64 of
//!   UTF-8 `user:pass` gives those (split at the first colon); else the first `u` and `p`
//!   of Go's `ParseQuery`, both non-empty; else `Unparseable`; an empty username is
//!   `UsernameRequired` and a Basic `~subscriber` is `SubscriptionToken`;
//! - the query's `?u=~subscriber` is an ordinary username (SPEC §1 names only Basic);
//! - parsing twice gives the same outcome.
#![no_main]

use kapauth::gateway::credentials::{Credentials, CredentialsError, parse_credentials};
use kapauth::secret::base64::encode_standard;
use kapauth_fuzz::go::{Base64, base64_decode, query_get};
use kapauth_fuzz::{password_is, split_at_byte};
use libfuzzer_sys::fuzz_target;

/// What a parse came to, comparable: secrets hold no `PartialEq`, so a password is a
/// proof that it equals the reference's.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Password { username: String, password: String },
    Bearer(String),
    Error(CredentialsError),
}

/// Where reference credentials came from, for the `~subscriber` rule.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Basic,
    Query,
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    let (header, query) = split_at_byte(rest, b'\n');
    let header = String::from_utf8_lossy(header).into_owned();
    let query = query.map(|query| String::from_utf8_lossy(query).into_owned());
    let header = match mode & 0b1100 {
        0b0100 => format!("Basic {}", encode_standard(header.as_bytes())),
        0b1100 => format!("bAsIc {}", encode_standard(header.as_bytes())),
        _ => header,
    };
    let header = (mode & 1 == 0).then_some(header.as_str());
    let query = if mode & 2 == 0 {
        query.as_deref()
    } else {
        None
    };

    let outcome = seen(header, query);
    assert_eq!(outcome, seen(header, query), "parsing twice");
    let (expected, _) = reference(header, query);
    assert_eq!(outcome, expected, "header {header:?}, query {query:?}");
});

/// `parse_credentials`, made comparable; the password is the reference's text when the
/// proof says they are equal, else a marker.
fn seen(header: Option<&str>, query: Option<&str>) -> Seen {
    let (expected, _) = reference(header, query);
    match parse_credentials(header, query) {
        Ok(Credentials::Password { username, password }) => {
            let password = match &expected {
                Seen::Password { password: text, .. } if password_is(&password, text) => {
                    text.clone()
                }
                _ => "<a password the reference did not read>".to_string(),
            };
            Seen::Password { username, password }
        }
        Ok(Credentials::Bearer(token)) => Seen::Bearer(token.as_str().to_string()),
        Err(error) => Seen::Error(error),
    }
}

/// SPEC §1, written out step by step.
fn reference(header: Option<&str>, query: Option<&str>) -> (Seen, Option<Source>) {
    if let Some(header) = header {
        if let Some((scheme, token)) = header.split_once(' ')
            && scheme == "Bearer"
        {
            return (Seen::Bearer(token.to_string()), None);
        }
        let basic = header.len() >= 6
            && header.is_char_boundary(6)
            && header[..6].eq_ignore_ascii_case("basic ");
        if basic
            && let Some(decoded) = base64_decode(&header[6..], Base64::Standard)
            && let Ok(text) = String::from_utf8(decoded)
            && let Some((username, password)) = text.split_once(':')
        {
            return (
                checked(username, password, Source::Basic),
                Some(Source::Basic),
            );
        }
    }
    if let Some(query) = query {
        let username = query_get(query, "u").unwrap_or_default();
        let password = query_get(query, "p").unwrap_or_default();
        if !username.is_empty() && !password.is_empty() {
            return (
                checked(&username, &password, Source::Query),
                Some(Source::Query),
            );
        }
    }
    (Seen::Error(CredentialsError::Unparseable), None)
}

/// The username rules: empty is refused, and only a Basic `~subscriber` is the
/// subscription token (SPEC §1).
fn checked(username: &str, password: &str, source: Source) -> Seen {
    match username {
        "" => Seen::Error(CredentialsError::UsernameRequired),
        "~subscriber" if source == Source::Basic => {
            Seen::Error(CredentialsError::SubscriptionToken)
        }
        _ => Seen::Password {
            username: username.to_string(),
            password: password.to_string(),
        },
    }
}
