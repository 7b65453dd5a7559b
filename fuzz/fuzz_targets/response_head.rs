//! `response_head`: arbitrary bytes as what the upstream answers, read the way
//! `client.rs` reads it: `parse_response_head`, then `response_framing` for a request
//! that was HEAD and for one that was not, and `keeps_alive`. The input is stretched as
//! `kapauth_fuzz::stretched` says, so heads past the 64 KiB limit are reached.
//!
//! Asserts, besides "no panic":
//! - an incomplete head is waited for only while it is at most 64 KiB;
//! - a complete head is at most 64 KiB, ends at its empty line, parses the same without
//!   the bytes after it, and is incomplete without its last byte;
//! - its version and status are its status line, and its fields are its header lines;
//! - after a HEAD request, and for 1xx, 204 and 304, there is no body; else `Chunked` only
//!   with a Transfer-Encoding listing `chunked`, `Length(n)` only without
//!   Transfer-Encoding and when every Content-Length reads `n`, `Close` only without
//!   either, `UnsupportedEncoding` only with a Transfer-Encoding that is not exactly
//!   `chunked`, and `InvalidLength` only for an invalid Content-Length without
//!   Transfer-Encoding;
//! - `keeps_alive` agrees with an independent reading of the Connection tokens.
#![no_main]

use kapauth::http::head::{
    FramingError, MAX_HEAD, ResponseBody, ResponseHead, keeps_alive, parse_response_head,
    response_framing,
};
use kapauth_fuzz::{
    assert_fields_as_written, assert_length_as_written, expected_keep_alive, has_field, lines_of,
    lists_token, stretched,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((data, _)) = stretched(data) else {
        return;
    };
    let (response, length) = match parse_response_head(&data) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => {
            assert!(
                data.len() <= MAX_HEAD,
                "waiting on a head of {}",
                data.len()
            );
            return;
        }
        Err(_) => return,
    };
    assert!(
        length <= MAX_HEAD && length <= data.len(),
        "head length {length}"
    );
    let head = &data[..length];
    assert!(head.ends_with(b"\n"), "a head ends with its empty line");
    assert_eq!(
        parse_response_head(head),
        Ok(Some((response.clone(), length)))
    );
    assert_eq!(parse_response_head(&head[..length - 1]), Ok(None));

    let (line, _) = lines_of(head);
    let status = format!("{} {:03}", response.version.as_str(), response.status);
    let reason = format!("{status} {}", response.reason);
    assert!(
        line == reason.as_bytes()
            || (response.reason.is_empty() && line.starts_with(status.as_bytes())),
        "status line {line:?} read as {status:?} {:?}",
        response.reason
    );
    assert_fields_as_written(head, &response.fields);
    check_framing(&response);
    assert_eq!(
        keeps_alive(response.version, &response.fields),
        expected_keep_alive(response.version, &response.fields),
        "keeps_alive"
    );
});

fn check_framing(response: &ResponseHead) {
    assert_eq!(response_framing(true, response), Ok(ResponseBody::None));
    let no_body = matches!(response.status, 100..=199 | 204 | 304);
    let fields = &response.fields;
    let encoding = has_field(fields, "Transfer-Encoding");
    let length = has_field(fields, "Content-Length");
    match response_framing(false, response) {
        Ok(ResponseBody::None) => assert!(no_body, "no body for a {}", response.status),
        framing if no_body => panic!("{framing:?} for a {}", response.status),
        Ok(ResponseBody::Chunked) => {
            assert!(lists_token(fields, "Transfer-Encoding", "chunked"));
        }
        Ok(ResponseBody::Length(n)) => {
            assert!(!encoding, "Length({n}) with a Transfer-Encoding");
            assert_length_as_written(fields, n);
        }
        Ok(ResponseBody::Close) => {
            assert!(
                !encoding && !length,
                "Close with a Transfer-Encoding or a Content-Length"
            )
        }
        Err(FramingError::InvalidLength) => assert!(length && !encoding, "InvalidLength"),
        Err(FramingError::UnsupportedEncoding) => {
            assert!(encoding, "UnsupportedEncoding without a Transfer-Encoding");
        }
        Err(FramingError::LengthAndEncoding) => panic!("a response is never LengthAndEncoding"),
    }
}
