//! `content_length`: `request_framing` against an obviously correct reimplementation of
//! its rules, on heads built from fuzzed `Content-Length` and `Transfer-Encoding` fields.
//!
//! Input: `[version, fields...]`, the fields separated by `\n`; a field's first byte picks
//! its name (either field in three spellings, or an unrelated `Host`), the rest is its
//! value. An even `version` is HTTP/1.1, an odd one HTTP/1.0. Heads `parse_request_head`
//! refuses (a value with a control byte, more than 100 fields) are skipped.
//!
//! Asserts that `request_framing` gives what the rules below give: every Content-Length,
//! trimmed, the same 1 to 19 ASCII digits (else `InvalidLength`, whatever else is there);
//! both fields `LengthAndEncoding`; a Transfer-Encoding other than exactly one `chunked`
//! item, or in HTTP/1.0, `UnsupportedEncoding`.
#![no_main]

use kapauth::http::head::{FramingError, RequestBody, parse_request_head, request_framing};
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 7] = [
    "Content-Length",
    "content-length",
    "CONTENT-LENGTH",
    "Transfer-Encoding",
    "transfer-encoding",
    "TRANSFER-ENCODING",
    "Host",
];

fuzz_target!(|data: &[u8]| {
    let [version, specs @ ..] = data else {
        return;
    };
    let http11 = version % 2 == 0;
    let fields: Vec<(&str, &[u8])> = specs
        .split(|b| *b == b'\n')
        .filter_map(|spec| {
            let (pick, value) = spec.split_first()?;
            Some((NAMES[usize::from(*pick) % NAMES.len()], value))
        })
        .collect();

    let mut head = format!("POST / HTTP/1.{}\r\n", u8::from(http11)).into_bytes();
    for (name, value) in &fields {
        head.extend_from_slice(format!("{name}: ").as_bytes());
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    let Ok(request) = parse_request_head(&head) else {
        return;
    };
    assert_eq!(
        request_framing(&request),
        expected(http11, &fields),
        "{}",
        head.escape_ascii()
    );
});

/// RFC 9112 §6 as kapauth applies it, written from the rules rather than from the code.
fn expected(http11: bool, fields: &[(&str, &[u8])]) -> Result<RequestBody, FramingError> {
    let values = |wanted: &str| -> Vec<String> {
        fields
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case(wanted))
            .map(|(_, value)| {
                String::from_utf8_lossy(value)
                    .trim_matches([' ', '\t'])
                    .to_string()
            })
            .collect()
    };
    let lengths = values("Content-Length");
    let encodings = values("Transfer-Encoding");

    let length = match lengths.first() {
        None => None,
        Some(first) => {
            let digits =
                (1..=19).contains(&first.len()) && first.chars().all(|c| c.is_ascii_digit());
            if !digits || lengths.iter().any(|other| other != first) {
                return Err(FramingError::InvalidLength);
            }
            Some(first.parse::<u64>().expect("19 digits fit in a u64"))
        }
    };
    if encodings.is_empty() {
        return Ok(length.map_or(RequestBody::None, RequestBody::Length));
    }
    if length.is_some() {
        return Err(FramingError::LengthAndEncoding);
    }
    let items: Vec<String> = encodings
        .join(",")
        .split(',')
        .map(|item| item.trim_matches([' ', '\t']).to_ascii_lowercase())
        .collect();
    if http11 && items == ["chunked"] {
        Ok(RequestBody::Chunked)
    } else {
        Err(FramingError::UnsupportedEncoding)
    }
}
