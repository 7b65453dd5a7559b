//! `base64_basic`: `secret/base64.rs` against a plain reference of Go's rules, and the
//! `Basic` header built by `basic_header` and read by `basic_auth` (SPEC §1, §4).
//!
//! Input: `[split, bytes...]`. `bytes` (lossy UTF-8) is decoded in both dialects and read
//! as a header; as raw bytes it is encoded in both dialects; cut at `split` into a username
//! and a password it is built into a `Basic` header.
//!
//! Asserts, besides "no panic":
//! - `decode_standard` and `decode_url_nopad` give what Go gives: `\r`/`\n` dropped
//!   anywhere, whole groups and `=` only at the end for standard, no `=` and no lone last
//!   character for URL-safe, any other stranger refused, unused low bits ignored;
//! - what decodes re-encodes to text that decodes to the same bytes;
//! - encoding any bytes gives only alphabet characters (and `=` at the end for standard),
//!   of the expected length, and decodes back to those bytes;
//! - `basic_auth` agrees with the reference reading (`Basic ` in any case, padded standard
//!   base64, UTF-8, the first colon);
//! - `basic_header(user, password)` reads back as `(user, password)` when the username
//!   holds no colon, and splits at the username's first colon when it does.
#![no_main]

use kapauth::secret::base64::{
    decode_standard, decode_url_nopad, encode_standard, encode_url_nopad,
};
use kapauth::secret::{SecretText, basic_auth, basic_header};
use kapauth_fuzz::go::{Base64, base64_decode};
use kapauth_fuzz::password_is;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((split, bytes)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(bytes);

    check_decoding(&text, Base64::Standard, decode_standard, encode_standard);
    check_decoding(&text, Base64::RawUrl, decode_url_nopad, encode_url_nopad);
    check_encoding(bytes);
    check_basic_reading(&text);

    let split = usize::from(*split).min(text.len());
    let split = (0..=split)
        .rev()
        .find(|at| text.is_char_boundary(*at))
        .unwrap_or(0);
    let (username, password) = text.split_at(split);
    let header = basic_header(username, &SecretText::new(password));
    let (read_username, read_password) = basic_auth(&header).expect("a built header reads");
    let whole = format!("{username}:{password}");
    let (want_username, want_password) = whole.split_once(':').expect("one colon at least");
    assert_eq!(read_username, want_username, "username of {header:?}");
    assert!(
        password_is(&read_password, want_password),
        "password of {header:?}"
    );
});

/// `decode` against the reference of its dialect; what it decodes re-encodes to text
/// that decodes to the same bytes.
fn check_decoding(
    text: &str,
    dialect: Base64,
    decode: fn(&str) -> Option<Vec<u8>>,
    encode: fn(&[u8]) -> String,
) {
    let decoded = decode(text);
    assert_eq!(
        decoded,
        base64_decode(text, dialect),
        "{dialect:?} {text:?}"
    );
    if let Some(decoded) = &decoded {
        assert_eq!(
            decode(&encode(decoded)).as_ref(),
            Some(decoded),
            "{dialect:?}"
        );
    }
}

fn check_encoding(bytes: &[u8]) {
    let standard = encode_standard(bytes);
    assert_eq!(
        standard.len(),
        bytes.len().div_ceil(3) * 4,
        "standard length"
    );
    let body = standard.trim_end_matches('=');
    assert!(standard.len() - body.len() <= 2, "at most two `=`");
    assert!(
        body.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    );
    assert_eq!(
        decode_standard(&standard).as_deref(),
        Some(bytes),
        "standard round trip"
    );

    let url = encode_url_nopad(bytes);
    assert_eq!(url.len(), (bytes.len() * 8).div_ceil(6), "url-safe length");
    assert!(
        url.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    assert_eq!(
        decode_url_nopad(&url).as_deref(),
        Some(bytes),
        "url-safe round trip"
    );
}

/// `basic_auth` against Go's `BasicAuth` plus kapauth's UTF-8 rule.
fn check_basic_reading(header: &str) {
    let expected = header
        .get(..6)
        .filter(|scheme| scheme.eq_ignore_ascii_case("basic "))
        .and_then(|_| base64_decode(&header[6..], Base64::Standard))
        .and_then(|decoded| String::from_utf8(decoded).ok())
        .and_then(|text| {
            let (username, password) = text.split_once(':')?;
            Some((username.to_string(), password.to_string()))
        });
    match (basic_auth(header), expected) {
        (None, None) => {}
        (Some((username, password)), Some((want_username, want_password))) => {
            assert_eq!(username, want_username, "{header:?}");
            assert!(
                password_is(&password, &want_password),
                "password of {header:?}"
            );
        }
        (got, want) => panic!("basic_auth({header:?}) = {got:?}, expected {want:?}"),
    }
}
