//! `request_path`: `split_target` and `canonical_path` (SPEC §7, kapauth's non-canonical
//! path rule) on arbitrary request targets, against a reference written position by
//! position.
//!
//! Input: the target, as lossy UTF-8 (the HTTP core hands the gateway a `&str`).
//!
//! Asserts, besides "no panic":
//! - `split_target` refuses exactly the targets holding `#`, and its path and query
//!   join back into the target at its first `?`;
//! - `canonical_path` gives the reference's answer, reason included: not starting with
//!   `/`; else the first bad escape, `%2F` or NUL from the left; else bytes that are not
//!   UTF-8; else a `.` or `..` segment or an empty segment before the last, whichever
//!   comes first;
//! - an accepted path starts with `/`, holds no NUL, no `.` or `..` segment and no `//`,
//!   and came from a target with no `%2F`, `%00` or bad escape;
//! - accepting is idempotent: the accepted path, with each `%` written `%25`, is accepted
//!   as itself, and a path without `%` is accepted as itself.
#![no_main]

use kapauth::gateway::request_path::{NonCanonical, canonical_path, split_target};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let target = String::from_utf8_lossy(data);
    match split_target(&target) {
        Err(reason) => {
            assert_eq!(reason, NonCanonical::Fragment);
            assert!(target.contains('#'), "{target:?} refused as a fragment");
        }
        Ok((path, query)) => {
            assert!(!target.contains('#'), "{target:?} kept its fragment");
            assert!(!path.contains('?'), "path {path:?} holds a `?`");
            let joined = match query {
                Some(query) => format!("{path}?{query}"),
                None => path.to_string(),
            };
            assert_eq!(joined, target, "split and joined");
        }
    }

    let raw_path = target.split('?').next().unwrap_or_default();
    let outcome = canonical_path(raw_path);
    assert_eq!(outcome, reference(raw_path), "{raw_path:?}");
    let Ok(path) = outcome else {
        return;
    };
    assert!(path.starts_with('/'));
    assert!(!path.contains('\0'), "{path:?}");
    assert!(!path.contains("//"), "{path:?}");
    let segments: Vec<&str> = path.split('/').collect();
    assert!(
        !segments.contains(&".") && !segments.contains(&".."),
        "{path:?}"
    );
    let lower = raw_path.to_ascii_lowercase();
    assert!(
        !lower.contains("%2f") && !lower.contains("%00"),
        "{raw_path:?}"
    );

    let escaped = path.replace('%', "%25");
    assert_eq!(canonical_path(&escaped).as_ref(), Ok(&path), "{escaped:?}");
    if !path.contains('%') {
        assert_eq!(canonical_path(&path).as_ref(), Ok(&path), "{path:?} again");
    }
});

/// The rules, one position at a time.
fn reference(raw: &str) -> Result<String, NonCanonical> {
    if raw.as_bytes().first() != Some(&b'/') {
        return Err(NonCanonical::NotAbsolute);
    }
    let bytes = raw.as_bytes();
    let mut decoded = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'%' {
            let pair = bytes
                .get(at + 1..at + 3)
                .ok_or(NonCanonical::InvalidEscape)?;
            if !pair.iter().all(u8::is_ascii_hexdigit) {
                return Err(NonCanonical::InvalidEscape);
            }
            let text = std::str::from_utf8(pair).map_err(|_| NonCanonical::InvalidEscape)?;
            let value = u8::from_str_radix(text, 16).map_err(|_| NonCanonical::InvalidEscape)?;
            match value {
                b'/' => return Err(NonCanonical::EncodedSlash),
                0 => return Err(NonCanonical::Nul),
                _ => decoded.push(value),
            }
            at += 3;
        } else if bytes[at] == 0 {
            return Err(NonCanonical::Nul);
        } else {
            decoded.push(bytes[at]);
            at += 1;
        }
    }
    let path = String::from_utf8(decoded).map_err(|_| NonCanonical::NotUtf8)?;
    let segments: Vec<&str> = path[1..].split('/').collect();
    for (index, segment) in segments.iter().enumerate() {
        if *segment == "." || *segment == ".." {
            return Err(NonCanonical::DotSegment);
        }
        if segment.is_empty() && index + 1 < segments.len() {
            return Err(NonCanonical::EmptySegment);
        }
    }
    Ok(path)
}
