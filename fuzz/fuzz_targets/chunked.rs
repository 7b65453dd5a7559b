//! `chunked`: arbitrary bytes as a chunked request body, read by the server's `Decoder`
//! from `Pieces`, retrying after each `WouldBlock` as the server retries after a read
//! timeout; and chunked coding written with `chunk_size_line` and `LAST_CHUNK`, read back.
//!
//! Input: `[step, flags, chunk, body...]`. The body arrives `step + 1` bytes at a time,
//! with a `WouldBlock` before each piece when `flags` is odd, into a buffer of
//! `flags / 2 + 1` bytes; the round trip cuts it into chunks of `chunk + 1` bytes.
//!
//! Asserts, besides "no panic" (and no hang, which libFuzzer reports as a timeout):
//! - the body read is never longer than the input;
//! - reading in those pieces, a byte at a time with stalls, and all at once give the same
//!   body, or the same error, and leave the same bytes unread;
//! - the round trip gives back exactly the body, and the bytes after the last chunk (the
//!   next request on the connection) stay unread.
#![no_main]

use kapauth::http::body::{Decoder, LAST_CHUNK, chunk_size_line};
use kapauth::http::head::RequestBody;
use kapauth_fuzz::decode;
use libfuzzer_sys::fuzz_target;

const NEXT_REQUEST: &[u8] = b"GET / HTTP/1.1\r\n\r\n";

fuzz_target!(|data: &[u8]| {
    let [step, flags, chunk, body @ ..] = data else {
        return;
    };
    let step = usize::from(*step) + 1;
    let stalls = flags % 2 == 1;
    let out_len = usize::from(flags / 2) + 1;
    let chunked = || Decoder::request(RequestBody::Chunked);

    let pieces = decode(chunked(), body, step, stalls, out_len);
    let bytewise = decode(chunked(), body, 1, true, out_len);
    let at_once = decode(chunked(), body, body.len(), false, 4096);
    if let Ok(decoded) = &at_once.0 {
        assert!(decoded.len() <= body.len(), "more body than input");
    }
    assert_eq!(pieces, at_once, "in pieces of {step} and all at once");
    assert_eq!(bytewise, at_once, "a byte at a time and all at once");

    let mut wire = Vec::with_capacity(body.len() * 2 + 32);
    for piece in body.chunks(usize::from(*chunk) + 1) {
        let (line, used) = chunk_size_line(piece.len());
        wire.extend_from_slice(&line[..used]);
        wire.extend_from_slice(piece);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(LAST_CHUNK);
    wire.extend_from_slice(NEXT_REQUEST);
    let (decoded, rest) = decode(chunked(), &wire, step, stalls, out_len);
    assert_eq!(decoded.as_deref(), Ok(body), "round trip");
    assert_eq!(rest, NEXT_REQUEST, "bytes after the last chunk");
});
