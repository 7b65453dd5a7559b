//! `request_head`: arbitrary bytes as what a client sends on one connection, read the way
//! `server.rs` reads it: leading blank lines skipped, the end of the head searched for as
//! pieces arrive (resuming where `find_head_end` stopped), `check_partial_request` on each
//! partial head, `parse_request_head` on a whole one, then `request_framing` and
//! `keeps_alive`; the body is read with the server's `Decoder` and the next pipelined
//! request starts where it stopped.
//!
//! Input: `[step, rest...]`: the bytes arrive `step + 1` at a time, and `rest` is
//! stretched as `kapauth_fuzz::stretched` says (a part written up to 1,024 times over,
//! in pieces that many times larger, so a large head costs no million small reads).
//!
//! Asserts, besides "no panic":
//! - the incremental search finds the same head end as one `find_head_end` over all the
//!   bytes and as a naive search for the first empty line, after the same blank lines;
//! - a partial head is refused only for a request line longer than 8 KiB or a head larger
//!   than 64 KiB, and never when a whole head had arrived;
//! - a head larger than 64 KiB, or with a request line longer than 8 KiB, is never
//!   accepted; an accepted head's method, target and version are its request line, and
//!   its fields are its header lines, in order;
//! - `request_framing`: `Chunked` only for HTTP/1.1 with a Transfer-Encoding listing
//!   `chunked` and no Content-Length; `Length(n)` only without Transfer-Encoding and when
//!   every Content-Length field reads `n`; `None` only with neither field; an error only
//!   with one of them;
//! - `keeps_alive` agrees with an independent reading of the Connection tokens.
#![no_main]

use kapauth::http::body::Decoder;
use kapauth::http::head::{
    HeadError, MAX_HEAD, MAX_REQUEST_LINE, RequestBody, check_partial_request, find_head_end,
    keeps_alive, leading_blank_lines, parse_request_head, request_framing,
};
use kapauth::http::{RequestHead, Version};
use kapauth_fuzz::{
    assert_fields_as_written, assert_length_as_written, decode, expected_keep_alive, has_field,
    lines_of, lists_token, stretched,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((step, rest)) = data.split_first() else {
        return;
    };
    let Some((wire, copies)) = stretched(rest) else {
        return;
    };
    let step = (usize::from(*step) + 1) * copies;
    // A stretched input repeats its requests; past a hundred, they check nothing new.
    let mut rest = &wire[..];
    for _ in 0..100 {
        match read_request(rest, step) {
            Some(next) => rest = next,
            None => break,
        }
    }
});

/// What the incremental search for a head's end came to.
enum Scan {
    /// The head ends at `wire[..end]`.
    Head { end: usize },
    /// `check_partial_request` refused the head after `seen` bytes had arrived.
    Refused { seen: usize },
    /// The bytes ended before the head did.
    Ended,
}

/// Reads one request from the start of `wire`, checking every step; returns the bytes
/// after its body when the server would read another request from the connection.
fn read_request(wire: &[u8], step: usize) -> Option<&[u8]> {
    if wire.is_empty() {
        return None;
    }
    let (start, scan) = scan_incrementally(wire, step);
    assert_eq!(
        start,
        leading_blank_lines(wire),
        "blank lines skipped in pieces"
    );
    let whole = find_head_end(&wire[start..], 0);
    let naive = first_empty_line(&wire[start..]);
    assert_eq!(whole.ok(), naive, "one-shot and naive head ends");
    let end = match scan {
        Scan::Head { end } => {
            assert_eq!(whole, Ok(end - start), "incremental and one-shot head ends");
            end
        }
        Scan::Refused { seen } => {
            let arrived = whole.is_ok_and(|end| start + end <= seen);
            assert!(!arrived, "a partial head was refused after it was whole");
            return None;
        }
        Scan::Ended => {
            assert!(
                whole.is_err(),
                "the one-shot scan found a head the pieces did not"
            );
            return None;
        }
    };
    let head = &wire[start..end];
    let request = parse_request_head(head).ok()?;
    assert!(
        head.len() <= MAX_HEAD,
        "a head of {} bytes accepted",
        head.len()
    );
    check_request(head, &request);
    let framing = request_framing(&request).ok()?;
    if !keeps_alive(request.version, &request.fields) {
        return None;
    }
    let (body, next) = decode(Decoder::request(framing), &wire[end..], step, false, 4096);
    body.ok().map(|_| next)
}

/// The server's loop in `Connection::read_head`, over bytes in memory: `step` more bytes
/// arrive, blank lines are dropped, the search for the end resumes where it stopped, and a
/// partial head is checked against the limits. The buffer never holds more than
/// `MAX_HEAD + 1` bytes, as the server's `Wire` limit says. Returns where the head starts,
/// after the blank lines.
fn scan_incrementally(wire: &[u8], step: usize) -> (usize, Scan) {
    let (mut start, mut given, mut scanned) = (0, 0, 0);
    let mut line_whole = false;
    while given < wire.len() {
        given = (given + step).min(start + MAX_HEAD + 1).min(wire.len());
        let blank = leading_blank_lines(&wire[start..given]);
        if blank > 0 {
            start += blank;
            scanned = 0;
        }
        let buffered = &wire[start..given];
        if buffered.is_empty() {
            continue;
        }
        match find_head_end(buffered, scanned) {
            Ok(end) => return (start, Scan::Head { end: start + end }),
            Err(resume) => scanned = resume,
        }
        match check_partial_request(buffered, &mut line_whole) {
            Ok(()) => {}
            Err(HeadError::LineTooLong) => {
                assert!(line_length(buffered) > MAX_REQUEST_LINE, "LineTooLong");
                return (start, Scan::Refused { seen: given });
            }
            Err(HeadError::TooLarge) => {
                assert!(buffered.len() > MAX_HEAD, "TooLarge at {}", buffered.len());
                return (start, Scan::Refused { seen: given });
            }
            Err(error) => panic!("check_partial_request refused a partial head: {error:?}"),
        }
    }
    (start, Scan::Ended)
}

/// The checks on a head `parse_request_head` accepted.
fn check_request(head: &[u8], request: &RequestHead) {
    let (line, _) = lines_of(head);
    assert!(
        line.len() <= MAX_REQUEST_LINE,
        "request line of {}",
        line.len()
    );
    let written = format!(
        "{} {} {}",
        request.method,
        request.target,
        request.version.as_str()
    );
    assert_eq!(line, written.as_bytes(), "request line");
    assert_fields_as_written(head, &request.fields);

    let fields = &request.fields;
    let encoding = has_field(fields, "Transfer-Encoding");
    let length = has_field(fields, "Content-Length");
    match request_framing(request) {
        Ok(RequestBody::Chunked) => {
            assert!(encoding && !length && request.version == Version::Http11);
            assert!(lists_token(fields, "Transfer-Encoding", "chunked"));
        }
        Ok(RequestBody::Length(n)) => {
            assert!(!encoding, "Length({n}) with a Transfer-Encoding");
            assert_length_as_written(fields, n);
        }
        Ok(RequestBody::None) => assert!(!encoding && !length, "no body with a framing field"),
        Err(error) => assert!(encoding || length, "{error:?} without a framing field"),
    }
    assert_eq!(
        keeps_alive(request.version, fields),
        expected_keep_alive(request.version, fields),
        "keeps_alive"
    );
}

/// Where the first empty line ends, found the obvious way: a `\n` right after `\n` or
/// after `\n\r`. `bytes` does not start with a blank line.
fn first_empty_line(bytes: &[u8]) -> Option<usize> {
    (1..bytes.len())
        .find(|&at| {
            bytes[at] == b'\n'
                && (bytes[at - 1] == b'\n' || (at >= 2 && &bytes[at - 2..at] == b"\n\r"))
        })
        .map(|at| at + 1)
}

/// The length of the first line, without its line ending, as far as it has arrived.
fn line_length(bytes: &[u8]) -> usize {
    match bytes.iter().position(|b| *b == b'\n') {
        Some(newline) => bytes[..newline]
            .strip_suffix(b"\r")
            .map_or(newline, <[u8]>::len),
        None => bytes.len(),
    }
}
