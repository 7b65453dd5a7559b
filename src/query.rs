//! Query string reading (shared by the gateway and the meta server), the way Kapacitor reads it: Go's `url.ParseQuery` followed by
//! `Values.Get`. The `u` and `p` credentials (SPEC §1 step 3) and the `db` of a write (SPEC §2
//! "Writes") are read here, and the credentials are removed here before forwarding (SPEC §7).
//!
//! kapauth must read a parameter exactly as Kapacitor does: if the two disagreed on which `db` a
//! write names, kapauth would check one database while Kapacitor writes to another.
//!
//! It never decides access and never sees the path. The raw query is everything after the first
//! `?` of the request target; `handle.rs` refuses a target holding `#` before any of this runs.

/// The first value of `key` in `raw_query`, as Go's `url.ParseQuery(raw_query).Get(key)` reads
/// it, or `None` where Go's `Get` would return `""` for a key it does not hold.
///
/// Pairs are separated by `&`; a pair containing `;` is dropped; a pair without `=` has the value
/// `""`; `+` decodes to a space; a pair with an invalid escape is dropped. The first pair whose
/// key matches wins even when its value is not UTF-8, as in Go: such a value comes back with
/// U+FFFD in place of the bad bytes, so it can never equal a real name and is denied (kapauth),
/// instead of a later pair being checked while Kapacitor uses the first.
pub fn query_value(raw_query: &str, key: &str) -> Option<String> {
    raw_query
        .split('&')
        .filter_map(decode_pair)
        .find(|(pair_key, _)| pair_key == key.as_bytes())
        .map(|(_, value)| String::from_utf8_lossy(&value).into_owned())
}

/// `raw_query` without the pieces whose key decodes to exactly `u` or `p`, so credentials never
/// reach the upstream; every other byte is kept as it was, in the same order and encoding.
///
/// Only the key decides: a `u` or `p` piece whose value Go would drop for an invalid escape is
/// removed all the same, because it may still hold a password. Pieces containing `;` are kept
/// untouched, as Go ignores them and so does credential reading. An empty result means the
/// caller forwards no `?` at all.
pub fn strip_credential_params(raw_query: &str) -> String {
    raw_query
        .split('&')
        .filter(|piece| !is_credential_piece(piece))
        .collect::<Vec<_>>()
        .join("&")
}

/// Decodes one `&`-separated piece into a key and a value, or drops it as Go does.
fn decode_pair(piece: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    // Go 1.17 and later drop a piece containing `;` instead of splitting on it.
    if piece.is_empty() || piece.contains(';') {
        return None;
    }
    let (raw_key, raw_value) = split_key(piece);
    Some((query_unescape(raw_key)?, query_unescape(raw_value)?))
}

/// Whether a piece is a `u` or `p` parameter once its key is decoded.
fn is_credential_piece(piece: &str) -> bool {
    if piece.contains(';') {
        return false;
    }
    let (raw_key, _) = split_key(piece);
    matches!(query_unescape(raw_key).as_deref(), Some(b"u" | b"p"))
}

/// Splits a piece at its first `=`; a piece without one is all key and has the value `""`.
fn split_key(piece: &str) -> (&str, &str) {
    piece.split_once('=').unwrap_or((piece, ""))
}

/// Go's `url.QueryUnescape` on bytes: `+` is a space, `%XX` is a byte, anything else stays as it
/// is; `None` for a `%` not followed by two hex digits.
fn query_unescape(text: &str) -> Option<Vec<u8>> {
    let mut decoded = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(byte) = bytes.next() {
        match byte {
            b'+' => decoded.push(b' '),
            b'%' => {
                let high = bytes.next().and_then(hex_value)?;
                let low = bytes.next().and_then(hex_value)?;
                // Both halves are below 16, so the shift and the OR cannot overflow a byte.
                decoded.push((high << 4) | low);
            }
            other => decoded.push(other),
        }
    }
    Some(decoded)
}

/// The value of one hex digit, in either case.
pub(crate) fn hex_value(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|digit| u8::try_from(digit).ok())
}

/// `text` percent-encoded for a query value: every byte but the unreserved ones
/// (`A-Z a-z 0-9 - . _ ~`) becomes `%XX`, so Go's `ParseQuery` reads back exactly `text`.
pub fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw_query: &str, key: &str, expected: Option<&str>) {
        assert_eq!(
            query_value(raw_query, key).as_deref(),
            expected,
            "query {raw_query:?}, key {key:?}"
        );
    }

    fn check_strip(raw_query: &str, expected: &str) {
        assert_eq!(
            strip_credential_params(raw_query),
            expected,
            "query {raw_query:?}"
        );
    }

    #[test]
    fn a_value_is_found_by_its_key() {
        check("db=x", "db", Some("x"));
        check("a=1&db=x&b=2", "db", Some("x"));
        check("db=x", "rp", None);
        check("", "db", None);
        check("DB=x", "db", None);
        check("dbx=1", "db", None);
    }

    #[test]
    fn the_first_value_of_a_repeated_key_wins() {
        check("db=x&db=y", "db", Some("x"));
        check("db=&db=y", "db", Some(""));
    }

    #[test]
    fn a_key_without_equals_sign_or_value_has_an_empty_value() {
        check("db", "db", Some(""));
        check("db=", "db", Some(""));
        check("x=1&db", "db", Some(""));
    }

    #[test]
    fn the_pair_splits_at_its_first_equals_sign() {
        check("db=a=b", "db", Some("a=b"));
        check("=x", "", Some("x"));
        check("db==", "db", Some("="));
    }

    #[test]
    fn plus_and_escapes_decode_in_keys_and_values() {
        check("db=my+db", "db", Some("my db"));
        check("db=my%20db", "db", Some("my db"));
        check("db=a%2Bb", "db", Some("a+b"));
        check("db=a%26b", "db", Some("a&b"));
        check("db=a%3Db", "db", Some("a=b"));
        check("db=my%2fdb", "db", Some("my/db"));
        check("db=caf%C3%A9", "db", Some("café"));
        check("db=café", "db", Some("café"));
        check("d%62=x", "db", Some("x"));
        check("db+=x", "db ", Some("x"));
        check("db=x#frag", "db", Some("x#frag"));
    }

    #[test]
    fn a_piece_containing_a_semicolon_is_dropped() {
        check("db=x;y", "db", None);
        check("db=x;y&db=z", "db", Some("z"));
        check("a=1;db=x", "db", None);
        check("db;=x", "db", None);
        check("db=%3B", "db", Some(";"));
    }

    #[test]
    fn empty_pieces_are_skipped() {
        check("&&db=x&", "db", Some("x"));
        check("&", "", None);
    }

    #[test]
    fn an_invalid_escape_drops_the_whole_pair() {
        check("db=%", "db", None);
        check("db=%4", "db", None);
        check("db=%zz", "db", None);
        check("db=%zz&db=ok", "db", Some("ok"));
        check("db%=x&db=ok", "db", Some("ok"));
        check("db%zz=x", "db", None);
    }

    #[test]
    fn the_first_pair_wins_even_when_its_value_is_not_utf8() {
        check("db=%FF", "db", Some("\u{FFFD}"));
        check("db=%C3", "db", Some("\u{FFFD}"));
        check("db=%FF&db=ok", "db", Some("\u{FFFD}"));
        check("db%FF=x", "db", None);
    }

    #[test]
    fn credential_pieces_are_removed_and_the_rest_kept() {
        check_strip("u=a&p=b&db=x", "db=x");
        check_strip("db=x&u=a", "db=x");
        check_strip("u=a&p=b", "");
        check_strip("x=1&u=a&y=2&p=b&z=3", "x=1&y=2&z=3");
        check_strip("u=a&u=b&x=1", "x=1");
        check_strip("u", "");
        check_strip("u=", "");
        check_strip("p", "");
    }

    #[test]
    fn encoded_credential_keys_are_still_credentials() {
        check_strip("%75=a&x=1", "x=1");
        check_strip("x=1&%70=b", "x=1");
        check_strip("%75%3d=a", "%75%3d=a");
    }

    #[test]
    fn only_the_key_decides_what_is_a_credential() {
        check_strip("u=%zz&x=1", "x=1");
        check_strip("p=%FF", "");
        check_strip("x=u&y=p", "x=u&y=p");
        check_strip("user=a&pass=b", "user=a&pass=b");
        check_strip("U=a&P=b", "U=a&P=b");
        check_strip("u+=a", "u+=a");
        check_strip("u%zz=a", "u%zz=a");
    }

    #[test]
    fn pieces_with_a_semicolon_are_kept_untouched() {
        check_strip("u;x=1", "u;x=1");
        check_strip("p=a;b&x=1", "p=a;b&x=1");
        check_strip("u=a&p=b;c", "p=b;c");
    }

    #[test]
    fn every_other_byte_is_kept_as_it_was() {
        check_strip("", "");
        check_strip("db=x", "db=x");
        check_strip("db=my+db&u=a", "db=my+db");
        check_strip("x=1&u=a&y=%zz", "x=1&y=%zz");
        check_strip("a=1&&b=2", "a=1&&b=2");
        check_strip("u=a&&b=2", "&b=2");
        check_strip("db=x&", "db=x&");
        check_strip("%zz=1&u=a", "%zz=1");
        check_strip("q=select+*+from+%22cpu%22#x", "q=select+*+from+%22cpu%22#x");
    }

    #[test]
    fn encoded_components_read_back_as_they_were() {
        for text in ["johndoe", "a b+c&d=e", "é~x/y%z", ""] {
            let query = format!("name={}", encode_component(text));
            assert_eq!(
                query_value(&query, "name").as_deref(),
                Some(text),
                "{text:?}"
            );
        }
        assert_eq!(encode_component("a b"), "a%20b");
    }
}
