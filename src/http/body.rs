//! Message bodies (SPEC §10): reading a body by its framing (a length, chunked coding, or
//! until the connection closes) from any buffered `Input`, and writing chunked coding.
//! Chunk-size lines and trailers are bounded; every malformed byte is an `InvalidData`
//! error, never a guess. A `Decoder` only moves past a unit (a size line, a CRLF, a trailer
//! line) once it is whole, so an input error (a read timeout) leaves it ready to resume.

use std::io;

use super::head::{RequestBody, ResponseBody, memchr};

/// The longest chunk-size line, extensions included, and the longest trailer line, each
/// without its CRLF; with its CRLF it fits a connection's smallest read buffer.
pub const MAX_CHUNK_LINE: usize = 1024;
/// The most bytes of trailer fields after the last chunk; they are read and dropped.
pub const MAX_TRAILERS: usize = 16 * 1024;
/// The end of a chunked body with no trailers.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// A byte source with a buffer in front of it: a connection, or bytes in a test.
pub trait Input {
    /// The bytes read but not yet consumed.
    fn buffered(&self) -> &[u8];
    /// Marks `count` buffered bytes as consumed.
    fn consume(&mut self, count: usize);
    /// Reads more bytes into the buffer; `Ok(0)` at the end of the input.
    fn fill(&mut self) -> io::Result<usize>;
    /// Reads into `out`, from the buffer first, else from the source.
    fn read_into(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.buffered().is_empty() && self.fill()? == 0 {
            return Ok(0);
        }
        let count = self.buffered().len().min(out.len());
        out[..count].copy_from_slice(&self.buffered()[..count]);
        self.consume(count);
        Ok(count)
    }
}

/// Where a body being read stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoder {
    Length {
        left: u64,
    },
    Chunked(Chunked),
    /// Until the input ends (a response without length).
    UntilClose,
    Done,
}

/// Where a chunked body being read stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunked {
    state: ChunkState,
    trailer_bytes: usize,
    /// Bytes of size lines, CRLFs and trailers read so far: what a drain counts besides
    /// the data, so tiny chunks with long extensions cannot stretch it without bound.
    framing_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Size,
    Data { left: u64 },
    DataEnd,
    Trailers,
}

impl Decoder {
    pub fn request(framing: RequestBody) -> Decoder {
        match framing {
            RequestBody::None | RequestBody::Length(0) => Decoder::Done,
            RequestBody::Length(left) => Decoder::Length { left },
            RequestBody::Chunked => Decoder::chunked(),
        }
    }

    pub fn response(framing: ResponseBody) -> Decoder {
        match framing {
            ResponseBody::None | ResponseBody::Length(0) => Decoder::Done,
            ResponseBody::Length(left) => Decoder::Length { left },
            ResponseBody::Chunked => Decoder::chunked(),
            ResponseBody::Close => Decoder::UntilClose,
        }
    }

    fn chunked() -> Decoder {
        Decoder::Chunked(Chunked {
            state: ChunkState::Size,
            trailer_bytes: 0,
            framing_bytes: 0,
        })
    }

    /// Whether the whole body has been read.
    pub fn is_done(&self) -> bool {
        *self == Decoder::Done
    }

    /// Reads body bytes into `out`: `Ok(0)` once the body has ended (or `out` is empty).
    /// An input that ends early is `UnexpectedEof`; malformed chunked coding `InvalidData`.
    pub fn read(&mut self, input: &mut impl Input, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        match self {
            Decoder::Done => Ok(0),
            Decoder::Length { left } => {
                let want = out.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                let count = input.read_into(&mut out[..want])?;
                if count == 0 {
                    return Err(truncated());
                }
                *left -= count as u64;
                if *left == 0 {
                    *self = Decoder::Done;
                }
                Ok(count)
            }
            Decoder::UntilClose => {
                let count = input.read_into(out)?;
                if count == 0 {
                    *self = Decoder::Done;
                }
                Ok(count)
            }
            Decoder::Chunked(chunked) => {
                let count = chunked.read(input, out)?;
                if count == 0 {
                    *self = Decoder::Done;
                }
                Ok(count)
            }
        }
    }

    /// Reads and discards the rest of the body, at most about `limit` bytes of it, chunk
    /// framing included: `Ok(true)` when the body ended within the limit.
    pub fn drain(&mut self, input: &mut impl Input, limit: u64) -> io::Result<bool> {
        // Small: this sits on a connection thread's stack, which every idle connection keeps.
        let mut scratch = [0u8; 512];
        let mut data = 0u64;
        while !self.is_done() {
            let framing = match self {
                Decoder::Chunked(chunked) => chunked.framing_bytes,
                _ => 0,
            };
            if data + framing > limit {
                return Ok(false);
            }
            data += self.read(input, &mut scratch)? as u64;
        }
        Ok(true)
    }
}

impl Chunked {
    fn read(&mut self, input: &mut impl Input, out: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.state {
                ChunkState::Size => {
                    let (size, length) = take_line(input, MAX_CHUNK_LINE, |line| {
                        parse_chunk_size(line).map(|size| (size, line.len()))
                    })?;
                    self.framing_bytes += length as u64 + 2;
                    self.state = if size == 0 {
                        ChunkState::Trailers
                    } else {
                        ChunkState::Data { left: size }
                    };
                }
                ChunkState::Data { left } => {
                    let want = out.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let count = input.read_into(&mut out[..want])?;
                    if count == 0 {
                        return Err(truncated());
                    }
                    let left = left - count as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data { left }
                    };
                    return Ok(count);
                }
                ChunkState::DataEnd => {
                    while input.buffered().len() < 2 {
                        if input.fill()? == 0 {
                            return Err(truncated());
                        }
                    }
                    if &input.buffered()[..2] != b"\r\n" {
                        return Err(malformed("chunk data not followed by CRLF"));
                    }
                    input.consume(2);
                    self.framing_bytes += 2;
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailers => {
                    let left = MAX_TRAILERS.saturating_sub(self.trailer_bytes);
                    let length = take_line(input, left.min(MAX_CHUNK_LINE), |line| Ok(line.len()))?;
                    self.framing_bytes += length as u64 + 2;
                    if length == 0 {
                        return Ok(0);
                    }
                    self.trailer_bytes += length + 2;
                }
            }
        }
    }
}

/// The hexadecimal size line of a chunk for `length` bytes: `(bytes, used)`.
pub fn chunk_size_line(length: usize) -> ([u8; 18], usize) {
    let mut line = [0u8; 18];
    let digits = if length == 0 {
        1
    } else {
        (usize::BITS - length.leading_zeros()).div_ceil(4) as usize
    };
    for (index, slot) in line[..digits].iter_mut().enumerate() {
        let shift = 4 * (digits - 1 - index);
        *slot = b"0123456789abcdef"[(length >> shift) & 0xf];
    }
    line[digits] = b'\r';
    line[digits + 1] = b'\n';
    (line, digits + 2)
}

/// Waits for a whole CRLF-terminated line of at most `max` bytes, hands it (without CRLF)
/// to `parse`, and consumes it only if `parse` accepts it.
fn take_line<T>(
    input: &mut impl Input,
    max: usize,
    parse: impl FnOnce(&[u8]) -> io::Result<T>,
) -> io::Result<T> {
    loop {
        let buffered = input.buffered();
        if let Some(newline) = memchr(b'\n', &buffered[..buffered.len().min(max + 2)]) {
            let Some(line) = buffered[..newline].strip_suffix(b"\r") else {
                return Err(malformed("line in chunked coding not ended by CRLF"));
            };
            let value = parse(line)?;
            input.consume(newline + 1);
            return Ok(value);
        }
        if buffered.len() >= max + 2 {
            return Err(malformed("chunk-size line or trailers too long"));
        }
        if input.fill()? == 0 {
            return Err(truncated());
        }
    }
}

/// `1*HEXDIG [ BWS ";" chunk-ext ]`: at most 16 digits; extensions are skipped but must
/// hold no control characters.
fn parse_chunk_size(line: &[u8]) -> io::Result<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return Err(malformed("invalid chunk size"));
    }
    let rest = &line[digits..];
    let extension_ok = rest.is_empty()
        || (super::head::trim(rest).first() == Some(&b';')
            && rest
                .iter()
                .all(|b| *b == b'\t' || (b' '..0x7f).contains(b) || *b >= 0x80));
    if !extension_ok {
        return Err(malformed("invalid chunk extension"));
    }
    Ok(line[..digits].iter().fold(0u64, |size, digit| {
        // Each digit is a hex digit, checked above; 16 of them fit in a u64.
        (size << 4) | u64::from((*digit as char).to_digit(16).unwrap_or(0))
    }))
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed chunked body: {what}"),
    )
}

fn truncated() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "body ended early")
}

/// Bytes in memory as an `Input`, handed out `step` at a time, with a `WouldBlock` before
/// each step when `stalls` is set: what a connection that times out between reads looks
/// like. For tests and fuzz targets.
pub struct Pieces<'a> {
    data: &'a [u8],
    given: usize,
    consumed: usize,
    step: usize,
    stalls: bool,
    stalled: bool,
}

impl<'a> Pieces<'a> {
    pub fn new(data: &'a [u8], step: usize, stalls: bool) -> Pieces<'a> {
        Pieces {
            data,
            given: 0,
            consumed: 0,
            step: step.max(1),
            stalls,
            stalled: false,
        }
    }

    /// Bytes not consumed, buffered or not.
    pub fn rest(&self) -> &'a [u8] {
        &self.data[self.consumed..]
    }
}

impl Input for Pieces<'_> {
    fn buffered(&self) -> &[u8] {
        &self.data[self.consumed..self.given]
    }

    fn consume(&mut self, count: usize) {
        self.consumed += count;
    }

    fn fill(&mut self) -> io::Result<usize> {
        if self.stalls && !self.stalled {
            self.stalled = true;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.stalled = false;
        let more = self.step.min(self.data.len() - self.given);
        self.given += more;
        Ok(more)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `wire` fed `step` bytes at a time, retrying after every stall; returns the
    /// body, or the error, and what is left unread.
    fn decode(
        decoder: Decoder,
        wire: &[u8],
        step: usize,
        stalls: bool,
    ) -> (io::Result<Vec<u8>>, Vec<u8>) {
        let mut decoder = decoder;
        let mut input = Pieces::new(wire, step, stalls);
        let mut body = Vec::new();
        let mut out = [0u8; 7];
        loop {
            match decoder.read(&mut input, &mut out) {
                Ok(0) => return (Ok(body), input.rest().to_vec()),
                Ok(count) => body.extend_from_slice(&out[..count]),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                Err(error) => return (Err(error), input.rest().to_vec()),
            }
        }
    }

    fn check_chunked(wire: &str, expected: Result<&str, &str>, rest: &str) {
        for (step, stalls) in [(1, true), (3, false), (wire.len().max(1), false)] {
            let (body, left) = decode(Decoder::chunked(), wire.as_bytes(), step, stalls);
            let body = body
                .map(|b| String::from_utf8(b).unwrap())
                .map_err(|e| e.to_string());
            assert_eq!(
                body.as_deref().map_err(String::as_str),
                expected,
                "{wire:?} step {step}"
            );
            if expected.is_ok() {
                assert_eq!(
                    String::from_utf8(left).unwrap(),
                    rest,
                    "{wire:?} step {step}"
                );
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_exactly_and_leave_the_next_request_alone() {
        let bad_line = "malformed chunked body: line in chunked coding not ended by CRLF";
        let bad_size = "malformed chunked body: invalid chunk size";
        let cases: &[(&str, Result<&str, &str>, &str)] = &[
            ("0\r\n\r\n", Ok(""), ""),
            ("5\r\nhello\r\n0\r\n\r\nGET /", Ok("hello"), "GET /"),
            (
                "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
                Ok("hello world"),
                "",
            ),
            ("A\r\n0123456789\r\n0\r\n\r\n", Ok("0123456789"), ""),
            (
                "a;name=value\r\n0123456789\r\n0\r\n\r\n",
                Ok("0123456789"),
                "",
            ),
            ("5 ; x\r\nhello\r\n0\r\n\r\n", Ok("hello"), ""),
            (
                "5\r\nhello\r\n0\r\nTrailer: x\r\n\r\nnext",
                Ok("hello"),
                "next",
            ),
            ("5\nhello\r\n0\r\n\r\n", Err(bad_line), ""),
            (
                "5\r\nhello\n0\r\n\r\n",
                Err("malformed chunked body: chunk data not followed by CRLF"),
                "",
            ),
            (
                "5\r\nhelloXX0\r\n\r\n",
                Err("malformed chunked body: chunk data not followed by CRLF"),
                "",
            ),
            ("-5\r\nhello\r\n0\r\n\r\n", Err(bad_size), ""),
            ("+5\r\nhello\r\n0\r\n\r\n", Err(bad_size), ""),
            (" 5\r\nhello\r\n0\r\n\r\n", Err(bad_size), ""),
            ("\r\n", Err(bad_size), ""),
            (
                "0x5\r\nhello\r\n0\r\n\r\n",
                Err("malformed chunked body: invalid chunk extension"),
                "",
            ),
            (
                "5x\r\nhello\r\n0\r\n\r\n",
                Err("malformed chunked body: invalid chunk extension"),
                "",
            ),
            ("10000000000000000\r\n", Err(bad_size), ""),
            (
                "5;\u{1}\r\nhello\r\n0\r\n\r\n",
                Err("malformed chunked body: invalid chunk extension"),
                "",
            ),
            ("5\r\nhel", Err("body ended early"), ""),
            ("5\r\nhello\r\n", Err("body ended early"), ""),
            ("5\r\nhello\r\n0\r\n", Err("body ended early"), ""),
        ];
        for (wire, expected, rest) in cases {
            check_chunked(wire, *expected, rest);
        }
    }

    #[test]
    fn size_lines_and_trailers_are_bounded() {
        let long_extension = format!("5;{}\r\nhello\r\n0\r\n\r\n", "x".repeat(MAX_CHUNK_LINE));
        let (body, _) = decode(Decoder::chunked(), long_extension.as_bytes(), 512, false);
        assert_eq!(
            body.unwrap_err().to_string(),
            "malformed chunked body: chunk-size line or trailers too long"
        );
        let fitting = format!("5;{}\r\nhello\r\n0\r\n\r\n", "x".repeat(MAX_CHUNK_LINE - 3));
        let (body, _) = decode(Decoder::chunked(), fitting.as_bytes(), 512, false);
        assert_eq!(body.unwrap(), b"hello");
        let trailers = format!("0\r\n{}\r\n", "T: v\r\n".repeat(MAX_TRAILERS / 6 + 3));
        let (body, _) = decode(Decoder::chunked(), trailers.as_bytes(), 512, false);
        assert_eq!(
            body.unwrap_err().to_string(),
            "malformed chunked body: chunk-size line or trailers too long"
        );
        let long_trailer = format!("0\r\nT: {}\r\n\r\n", "v".repeat(MAX_CHUNK_LINE));
        let (body, _) = decode(Decoder::chunked(), long_trailer.as_bytes(), 512, false);
        assert_eq!(
            body.unwrap_err().to_string(),
            "malformed chunked body: chunk-size line or trailers too long"
        );
    }

    #[test]
    fn a_drain_counts_chunk_framing_too() {
        // One data byte per chunk behind a long extension: 100 chunks are ~100 KiB of wire
        // but 100 bytes of data; the drain must stop near its bound all the same.
        let chunk = format!("1;{}\r\nx\r\n", "e".repeat(1000));
        let wire = format!("{}0\r\n\r\n", chunk.repeat(100));
        let mut input = Pieces::new(wire.as_bytes(), 4096, false);
        let mut decoder = Decoder::chunked();
        assert!(!decoder.drain(&mut input, 64 * 1024).unwrap());
        let consumed = wire.len() - input.rest().len();
        assert!(consumed < 70 * 1024, "drained {consumed} bytes");
    }

    #[test]
    fn length_and_close_delimited_bodies_stop_where_they_should() {
        let (body, rest) = decode(Decoder::Length { left: 5 }, b"helloGET", 2, true);
        assert_eq!((body.unwrap(), rest), (b"hello".to_vec(), b"GET".to_vec()));
        let (body, _) = decode(Decoder::Length { left: 5 }, b"hel", 2, false);
        assert_eq!(body.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        let (body, _) = decode(Decoder::UntilClose, b"all of it", 4, true);
        assert_eq!(body.unwrap(), b"all of it");
        let (body, _) = decode(Decoder::request(RequestBody::None), b"GET", 4, false);
        assert_eq!(body.unwrap(), b"");
    }

    #[test]
    fn drain_stops_at_its_limit() {
        let mut input = Pieces::new(b"5\r\nhello\r\n0\r\n\r\nnext", 64, false);
        let mut decoder = Decoder::chunked();
        assert!(decoder.drain(&mut input, 64).unwrap());
        assert_eq!(input.rest(), b"next");
        let big = vec![b'x'; 10_000];
        let mut input = Pieces::new(&big, 4096, false);
        let mut decoder = Decoder::Length { left: 10_000 };
        assert!(!decoder.drain(&mut input, 100).unwrap());
    }

    #[test]
    fn chunk_size_lines_are_lowercase_hex() {
        let line = |length| {
            let (bytes, used) = chunk_size_line(length);
            String::from_utf8(bytes[..used].to_vec()).unwrap()
        };
        assert_eq!(line(0), "0\r\n");
        assert_eq!(line(1), "1\r\n");
        assert_eq!(line(15), "f\r\n");
        assert_eq!(line(16), "10\r\n");
        assert_eq!(line(0x4000), "4000\r\n");
        assert_eq!(line(usize::MAX), "ffffffffffffffff\r\n");
    }
}
