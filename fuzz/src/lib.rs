//! Helpers shared by the fuzz targets in `fuzz_targets/`: stretching a small input into a
//! large one, reading a body the way the server does (from `Pieces`, retrying after
//! `WouldBlock`), and checking a parsed head against the bytes it came from; `go` holds
//! plain references of Go's base64 and query readings. Test code only: nothing here
//! ships in kapauth.
#![forbid(unsafe_code)]

pub mod go;

use std::io;

use kapauth::http::body::{Decoder, Pieces};
use kapauth::http::head::{MAX_HEAD, trim};
use kapauth::http::{Fields, Version};

/// The bytes a fuzz input `[stretch, from, to, bytes...]` stands for. Mostly `bytes` as
/// they are; one input in sixteen (`stretch` ≥ 240) writes the part `bytes[from..from +
/// to]` 64 to 1,024 times over, the rest once around it, so heads near and past the
/// 64 KiB limit, whole or not, are reached without 64 KiB inputs. Returns the bytes and
/// how many times the part was written.
pub fn stretched(data: &[u8]) -> Option<(Vec<u8>, usize)> {
    let [stretch, from, to, bytes @ ..] = data else {
        return None;
    };
    let copies = match *stretch {
        0..=239 => 1,
        n => usize::from(n - 239) * 64,
    };
    let from = usize::from(*from).min(bytes.len());
    let to = (from + usize::from(*to)).min(bytes.len());
    let part = &bytes[from..to];
    // At most about twice the head limit: enough to cross it.
    let copies = copies.min(2 * MAX_HEAD / part.len().max(1) + 1);
    let mut wire = Vec::with_capacity(bytes.len() + part.len() * copies);
    wire.extend_from_slice(&bytes[..from]);
    for _ in 0..copies {
        wire.extend_from_slice(part);
    }
    wire.extend_from_slice(&bytes[to..]);
    Some((wire, copies))
}

/// What reading a body gave: the body, or the error's kind and text.
pub type Decoded = Result<Vec<u8>, (io::ErrorKind, String)>;

/// Reads `wire` through `decoder`, handed out `step` bytes at a time (with a `WouldBlock`
/// before each step when `stalls`), into a buffer of `out_len` bytes, retrying after each
/// stall as the server does after a read timeout. Returns the body and the unread rest.
pub fn decode(
    mut decoder: Decoder,
    wire: &[u8],
    step: usize,
    stalls: bool,
    out_len: usize,
) -> (Decoded, &[u8]) {
    let mut input = Pieces::new(wire, step, stalls);
    let mut out = vec![0u8; out_len.max(1)];
    let mut body = Vec::new();
    loop {
        match decoder.read(&mut input, &mut out) {
            Ok(0) => {
                assert!(decoder.is_done(), "Ok(0) from a decoder that is not done");
                return (Ok(body), input.rest());
            }
            Ok(count) => body.extend_from_slice(&out[..count]),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
            Err(error) => return (Err((error.kind(), error.to_string())), input.rest()),
        }
    }
}

/// The start line of `head` and its header lines, each without its line ending, up to the
/// empty line that ends the head. Blank lines before the start line are skipped, as a
/// server does.
pub fn lines_of(head: &[u8]) -> (&[u8], Vec<&[u8]>) {
    let mut lines = head
        .split(|b| *b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .skip_while(|line| line.is_empty());
    let start = lines.next().unwrap_or_default();
    (start, lines.take_while(|line| !line.is_empty()).collect())
}

/// Asserts that `fields` are the header lines of `head`, in order and one per line: each
/// line is `name:`, optional whitespace, the value, optional whitespace.
pub fn assert_fields_as_written(head: &[u8], fields: &Fields) {
    let (_, lines) = lines_of(head);
    assert_eq!(lines.len(), fields.len(), "one field per header line");
    for (line, (name, value)) in lines.iter().zip(fields.iter()) {
        let rest = line
            .strip_prefix(name.as_bytes())
            .and_then(|rest| rest.strip_prefix(b":"));
        assert!(
            rest.is_some(),
            "field {name:?} is not where its line starts"
        );
        assert_eq!(trim(rest.unwrap_or_default()), value, "value of {name:?}");
    }
}

/// Whether any field named `name` (any case) holds `token` in its comma-separated list,
/// written here independently of `Fields::has_token`.
pub fn lists_token(fields: &Fields, name: &str, token: &str) -> bool {
    fields.iter().any(|(field, value)| {
        field.eq_ignore_ascii_case(name)
            && String::from_utf8_lossy(value)
                .split(',')
                .any(|item| item.trim_matches([' ', '\t']).eq_ignore_ascii_case(token))
    })
}

/// Whether a sender with this head keeps the connection open, read independently of
/// `keeps_alive`: HTTP/1.1 unless a `Connection` lists `close`; HTTP/1.0 only when one lists
/// `keep-alive` and none lists `close`.
pub fn expected_keep_alive(version: Version, fields: &Fields) -> bool {
    let close = lists_token(fields, "Connection", "close");
    match version {
        Version::Http11 => !close,
        Version::Http10 => lists_token(fields, "Connection", "keep-alive") && !close,
    }
}

/// Whether a field named `name` (any case) is present.
pub fn has_field(fields: &Fields, name: &str) -> bool {
    fields
        .iter()
        .any(|(field, _)| field.eq_ignore_ascii_case(name))
}

/// Asserts that a `Content-Length` framing of `length` is what every `Content-Length`
/// field says: each, trimmed, the same 1 to 19 ASCII digits, whose value is `length`
/// (leading zeros are digits too: `007` is 7).
pub fn assert_length_as_written(fields: &Fields, length: u64) {
    let mut count = 0;
    for (name, value) in fields.iter() {
        if name.eq_ignore_ascii_case("Content-Length") {
            count += 1;
            let text = std::str::from_utf8(trim(value)).unwrap_or("");
            assert!(
                (1..=19).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit()),
                "Content-Length {value:?} accepted as {length}"
            );
            assert_eq!(text.parse::<u64>().ok(), Some(length), "{value:?}");
        }
    }
    assert!(count > 0, "Length({length}) without a Content-Length field");
}

/// Whether `password` is `expected`, told through the cache's keyed proofs, since a
/// `Password` shows its text to no one outside kapauth.
pub fn password_is(password: &kapauth::secret::password::Password, expected: &str) -> bool {
    use kapauth::secret::password::{Password, ProofKey};
    let key = ProofKey::from_bytes(&[7; 32]);
    let proof = key.prove("", &Password::new(expected.to_string()));
    key.matches(&proof, "", password)
}

/// Splits `bytes` at the first `separator` into the part before and the part after; all
/// of it is the first part when there is none.
pub fn split_at_byte(bytes: &[u8], separator: u8) -> (&[u8], Option<&[u8]>) {
    match bytes.iter().position(|b| *b == separator) {
        Some(at) => (&bytes[..at], Some(&bytes[at + 1..])),
        None => (bytes, None),
    }
}
