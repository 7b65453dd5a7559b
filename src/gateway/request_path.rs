//! Request path canonicalization: turns the path of the request target, as received, into the
//! percent-decoded path that kapauth authorizes, or refuses it.
//!
//! It owns one promise (kapauth, SPEC §7 last paragraph): the path kapauth authorizes is the path
//! Kapacitor routes. So it refuses every path that a decoder, a cleaner or a router could read in
//! two ways, instead of guessing which reading Kapacitor will pick. The decoded path it returns is
//! what SPEC §2 "Resource" starts from.
//!
//! It never looks at the query, never decides access and never writes a response: the client
//! always gets `non-canonical request path`, rendered in `respond.rs`; `NonCanonical` only tells
//! the operator log why.

use crate::query::hex_value;
use std::fmt;

/// Why a request path was refused; for the operator log only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonCanonical {
    /// The target does not start with `/`: an absolute URL (`http://x/y`), `*`, or nothing at all.
    NotAbsolute,
    /// A `%` that is not followed by two hex digits, including a `%` at the end.
    InvalidEscape,
    /// `%2F` or `%2f`: an encoded `/` that a decoder would turn into a segment boundary.
    EncodedSlash,
    /// `%00` or a literal NUL byte.
    Nul,
    /// The percent-decoded bytes are not valid UTF-8.
    NotUtf8,
    /// A `#` anywhere in the target: clients never send a fragment, and an HTTP library
    /// would cut the target there, so the request forwarded would not be the one authorized.
    Fragment,
    /// A `.` or `..` segment, written plainly or percent-encoded (`%2e`, `%2E%2e`).
    DotSegment,
    /// An empty segment before the last one: `//`, `/a//b`.
    EmptySegment,
}

impl fmt::Display for NonCanonical {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = match self {
            NonCanonical::NotAbsolute => "request path does not start with \"/\"",
            NonCanonical::InvalidEscape => {
                "request path has a \"%\" that is not followed by two hex digits"
            }
            NonCanonical::EncodedSlash => "request path has an encoded \"/\" (%2F)",
            NonCanonical::Nul => "request path has a NUL byte",
            NonCanonical::NotUtf8 => "request path is not valid UTF-8 once percent-decoded",
            NonCanonical::Fragment => "request target has a \"#\"",
            NonCanonical::DotSegment => "request path has a \".\" or \"..\" segment",
            NonCanonical::EmptySegment => "request path has an empty segment (\"//\")",
        };
        formatter.write_str(message)
    }
}

impl std::error::Error for NonCanonical {}

/// Splits a request target into its raw path and raw query (without the `?`), refusing a
/// target that holds `#` anywhere.
pub fn split_target(target: &str) -> Result<(&str, Option<&str>), NonCanonical> {
    if target.contains('#') {
        return Err(NonCanonical::Fragment);
    }
    Ok(match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    })
}

/// Decodes `raw_path` (the request target before its first `?`, still percent-encoded) into the
/// path that is authorized, or says why it is not canonical.
///
/// `/` and a single trailing slash are canonical; every escape other than `%2F` and `%00` is
/// decoded, and `+` stays a literal `+` as it does in Go's path decoding.
pub fn canonical_path(raw_path: &str) -> Result<String, NonCanonical> {
    // An absolute URL or `*` would be routed by a path we never see here, so only origin-form
    // targets are accepted.
    if !raw_path.starts_with('/') {
        return Err(NonCanonical::NotAbsolute);
    }
    let decoded = percent_decode_path(raw_path)?;
    // Kapacitor's router compares text; bytes that are not UTF-8 have no single text reading.
    let path = String::from_utf8(decoded).map_err(|_| NonCanonical::NotUtf8)?;
    check_segments(&path)?;
    Ok(path)
}

/// Decodes every `%XX` escape, refusing the escapes that would change the path's structure.
fn percent_decode_path(raw_path: &str) -> Result<Vec<u8>, NonCanonical> {
    let mut decoded = Vec::with_capacity(raw_path.len());
    let mut bytes = raw_path.bytes();
    while let Some(byte) = bytes.next() {
        match byte {
            b'%' => {
                let high = bytes.next().and_then(hex_value);
                let low = bytes.next().and_then(hex_value);
                let (Some(high), Some(low)) = (high, low) else {
                    return Err(NonCanonical::InvalidEscape);
                };
                // Both halves are below 16, so the shift and the OR cannot overflow a byte.
                let value = (high << 4) | low;
                // A decoded `/` would split a segment that the raw target keeps whole, and
                // servers disagree on which of the two readings routes the request.
                if value == b'/' {
                    return Err(NonCanonical::EncodedSlash);
                }
                // A NUL ends strings in some layers and not in others.
                if value == 0 {
                    return Err(NonCanonical::Nul);
                }
                decoded.push(value);
            }
            0 => return Err(NonCanonical::Nul),
            other => decoded.push(other),
        }
    }
    Ok(decoded)
}

/// Refuses dot segments and empty segments anywhere but at the end.
fn check_segments(path: &str) -> Result<(), NonCanonical> {
    // The path starts with `/`, so the first piece of the split is the empty text before it.
    let mut segments = path.split('/').skip(1).peekable();
    while let Some(segment) = segments.next() {
        let is_last = segments.peek().is_none();
        match segment {
            // A cleaner would resolve these, so the authorized path and the routed path differ.
            "." | ".." => return Err(NonCanonical::DotSegment),
            // The last segment is empty for `/` and for a single trailing slash, both canonical.
            "" if !is_last => return Err(NonCanonical::EmptySegment),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw_path: &str, expected: Result<&str, NonCanonical>) {
        let expected = expected.map(str::to_owned);
        assert_eq!(canonical_path(raw_path), expected, "raw path {raw_path:?}");
    }

    #[test]
    fn canonical_paths_are_decoded_and_kept() {
        check("/", Ok("/"));
        check("/kapacitor/v1/tasks", Ok("/kapacitor/v1/tasks"));
        check("/kapacitor/v1/", Ok("/kapacitor/v1/"));
        check("/kapacitor/v1/tasks/t1/", Ok("/kapacitor/v1/tasks/t1/"));
        check("/write", Ok("/write"));
        check(
            "/kapacitor/v1/tasks/my%20task",
            Ok("/kapacitor/v1/tasks/my task"),
        );
        check("/%41bc", Ok("/Abc"));
        check("/%4a%4A", Ok("/JJ"));
        check("/a+b", Ok("/a+b"));
        check("/a%2Bb", Ok("/a+b"));
        check("/caf%C3%A9", Ok("/café"));
        check("/café", Ok("/café"));
        check("/%3F", Ok("/?"));
        check("/%23", Ok("/#"));
        check("/a%252Fb", Ok("/a%2Fb"));
        check("/a%5Cb", Ok("/a\\b"));
    }

    #[test]
    fn names_made_of_dots_that_are_not_dot_segments_are_kept() {
        check("/...", Ok("/..."));
        check("/.a", Ok("/.a"));
        check("/a.", Ok("/a."));
        check("/a..b", Ok("/a..b"));
        check("/..a/", Ok("/..a/"));
        check("/%2e%2e%2e", Ok("/..."));
    }

    #[test]
    fn targets_that_do_not_start_with_a_slash_are_refused() {
        check("", Err(NonCanonical::NotAbsolute));
        check("*", Err(NonCanonical::NotAbsolute));
        check("http://x/y", Err(NonCanonical::NotAbsolute));
        check(
            "https://host:9092/kapacitor/v1/ping",
            Err(NonCanonical::NotAbsolute),
        );
        check("kapacitor/v1/tasks", Err(NonCanonical::NotAbsolute));
        check("%2Fkapacitor", Err(NonCanonical::NotAbsolute));
        check(" /", Err(NonCanonical::NotAbsolute));
    }

    #[test]
    fn invalid_escapes_are_refused() {
        check("/%", Err(NonCanonical::InvalidEscape));
        check("/a%", Err(NonCanonical::InvalidEscape));
        check("/%4", Err(NonCanonical::InvalidEscape));
        check("/a%4", Err(NonCanonical::InvalidEscape));
        check("/%zz", Err(NonCanonical::InvalidEscape));
        check("/%4g", Err(NonCanonical::InvalidEscape));
        check("/%g4", Err(NonCanonical::InvalidEscape));
        check("/%%41", Err(NonCanonical::InvalidEscape));
        check("/%-1", Err(NonCanonical::InvalidEscape));
        check("/%+1", Err(NonCanonical::InvalidEscape));
        check("/%é", Err(NonCanonical::InvalidEscape));
    }

    #[test]
    fn encoded_slashes_are_refused_in_either_case() {
        check("/a%2Fb", Err(NonCanonical::EncodedSlash));
        check("/a%2fb", Err(NonCanonical::EncodedSlash));
        check("/%2F", Err(NonCanonical::EncodedSlash));
        check("/kapacitor%2Fv1/tasks", Err(NonCanonical::EncodedSlash));
    }

    #[test]
    fn encoded_and_literal_nul_bytes_are_refused() {
        check("/a%00b", Err(NonCanonical::Nul));
        check("/%00", Err(NonCanonical::Nul));
        check("/a\0b", Err(NonCanonical::Nul));
        check("/\0", Err(NonCanonical::Nul));
    }

    #[test]
    fn decoded_bytes_that_are_not_utf8_are_refused() {
        check("/%FF", Err(NonCanonical::NotUtf8));
        check("/%C3", Err(NonCanonical::NotUtf8));
        check("/%C3%28", Err(NonCanonical::NotUtf8));
        check("/a/%80/b", Err(NonCanonical::NotUtf8));
    }

    #[test]
    fn dot_segments_are_refused_plain_or_encoded() {
        check("/.", Err(NonCanonical::DotSegment));
        check("/..", Err(NonCanonical::DotSegment));
        check("/./", Err(NonCanonical::DotSegment));
        check("/../", Err(NonCanonical::DotSegment));
        check("/a/./b", Err(NonCanonical::DotSegment));
        check("/a/../b", Err(NonCanonical::DotSegment));
        check("/a/.", Err(NonCanonical::DotSegment));
        check("/a/..", Err(NonCanonical::DotSegment));
        check("/kapacitor/v1/../../etc", Err(NonCanonical::DotSegment));
        check("/%2e", Err(NonCanonical::DotSegment));
        check("/%2E", Err(NonCanonical::DotSegment));
        check("/%2e%2e", Err(NonCanonical::DotSegment));
        check("/%2E%2e", Err(NonCanonical::DotSegment));
        check("/.%2e", Err(NonCanonical::DotSegment));
        check("/%2e./", Err(NonCanonical::DotSegment));
        check("/a/%2e%2E/b", Err(NonCanonical::DotSegment));
    }

    #[test]
    fn empty_segments_before_the_end_are_refused() {
        check("//", Err(NonCanonical::EmptySegment));
        check("///", Err(NonCanonical::EmptySegment));
        check("//a", Err(NonCanonical::EmptySegment));
        check("/a//b", Err(NonCanonical::EmptySegment));
        check("/a//", Err(NonCanonical::EmptySegment));
        check("/kapacitor//v1/tasks", Err(NonCanonical::EmptySegment));
    }

    #[test]
    fn an_escape_problem_is_reported_before_a_segment_problem() {
        check("/%2e/%2F", Err(NonCanonical::EncodedSlash));
        check("//%zz", Err(NonCanonical::InvalidEscape));
        check("/../%FF", Err(NonCanonical::NotUtf8));
    }

    #[test]
    fn every_message_is_lowercase_without_a_trailing_period() {
        let all = [
            NonCanonical::NotAbsolute,
            NonCanonical::InvalidEscape,
            NonCanonical::EncodedSlash,
            NonCanonical::Nul,
            NonCanonical::NotUtf8,
            NonCanonical::DotSegment,
            NonCanonical::EmptySegment,
        ];
        for reason in all {
            let message = reason.to_string();
            assert!(message.starts_with("request path "), "{message}");
            assert!(!message.ends_with('.'), "{message}");
        }
    }

    #[test]
    fn targets_split_at_the_first_question_mark_and_never_hold_a_fragment() {
        type Split<'a> = Result<(&'a str, Option<&'a str>), NonCanonical>;
        let cases: &[(&str, Split)] = &[
            ("/a", Ok(("/a", None))),
            ("/a?", Ok(("/a", Some("")))),
            ("/a?x=1?y", Ok(("/a", Some("x=1?y")))),
            ("/kapacitor/v1/config#x", Err(NonCanonical::Fragment)),
            ("/a?x=1#frag&y=2", Err(NonCanonical::Fragment)),
            ("/a%23b", Ok(("/a%23b", None))),
        ];
        for (target, expected) in cases {
            assert_eq!(split_target(target), *expected, "{target}");
        }
    }
}
