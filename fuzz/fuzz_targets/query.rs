//! `query`: `query.rs` (Go's `url.ParseQuery` reading of `u`, `p`, `db`, `name`, and the
//! removal of `u`/`p` before forwarding, SPEC §1, §2, §7) on arbitrary raw queries.
//!
//! Input: `[key_len, bytes...]`: the first `key_len` bytes (lossy UTF-8) are one more key
//! to look up, the rest the raw query.
//!
//! Asserts, besides "no panic":
//! - `query_value` gives what the reference `ParseQuery` + `Get` gives, for `u`, `p`, `db`,
//!   `name` and the fuzzed key;
//! - `strip_credential_params` leaves no `u` or `p` parameter, keeps every other piece
//!   byte for byte and in order (exactly the pieces whose key does not decode to `u` or
//!   `p`, a piece holding `;` always kept), so every other parameter reads the same; and
//!   removing twice removes nothing more;
//! - `encode_component` of any text reads back as that text.
#![no_main]

use kapauth::query::{encode_component, query_value, strip_credential_params};
use kapauth_fuzz::go::{parse_query, query_get, query_unescape};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((key_len, rest)) = data.split_first() else {
        return;
    };
    let key_len = usize::from(*key_len).min(rest.len());
    let key = String::from_utf8_lossy(&rest[..key_len]).into_owned();
    let query = String::from_utf8_lossy(&rest[key_len..]).into_owned();
    let keys = ["u", "p", "db", "name", key.as_str()];

    for key in keys {
        assert_eq!(
            query_value(&query, key),
            query_get(&query, key),
            "{key:?} in {query:?}"
        );
    }

    let stripped = strip_credential_params(&query);
    let credential = |piece: &&str| {
        let key = piece.split('=').next().unwrap_or_default();
        !piece.contains(';') && matches!(query_unescape(key).as_deref(), Some(b"u" | b"p"))
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|piece| !credential(piece))
        .collect();
    assert_eq!(stripped, kept.join("&"), "stripping {query:?}");
    assert!(
        parse_query(&stripped)
            .iter()
            .all(|(key, _)| key != b"u" && key != b"p"),
        "{stripped:?} still holds credentials"
    );
    for key in keys.into_iter().filter(|key| !matches!(*key, "u" | "p")) {
        assert_eq!(
            query_value(&stripped, key),
            query_value(&query, key),
            "{key:?}"
        );
    }
    assert_eq!(
        strip_credential_params(&stripped),
        stripped,
        "stripping twice"
    );

    let encoded = format!("{}={}", encode_component(&key), encode_component(&query));
    assert_eq!(query_value(&encoded, &key).as_deref(), Some(query.as_str()));
});
