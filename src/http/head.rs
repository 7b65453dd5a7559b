//! Message heads (SPEC §10): the request head a client sends and the response head the
//! upstream sends, parsed by `httparse` under kapauth's limits, and the framing rules that
//! say how long a body is. Pure: bytes in, values or a `HeadError`/`FramingError` out; the
//! reading and waiting live in `server.rs` and `client.rs`. Never decides access.

use std::fmt;

/// The longest request line, without its line ending (414 beyond).
pub const MAX_REQUEST_LINE: usize = 8 * 1024;
/// The largest head, request line and header fields together (431 beyond).
pub const MAX_HEAD: usize = 64 * 1024;
/// The most header fields in one head (431 beyond).
pub const MAX_FIELDS: usize = 100;

/// The HTTP versions kapauth speaks; every other one is refused with 505.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// Header fields in the order they were written: names as sent, values as bytes (a value
/// may hold obs-text, which is passed on untouched). One buffer holds every name and value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    bytes: Vec<u8>,
    spans: Vec<Span>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    name: (usize, usize),
    value: (usize, usize),
}

impl Fields {
    pub fn with_capacity(bytes: usize, fields: usize) -> Fields {
        Fields {
            bytes: Vec::with_capacity(bytes),
            spans: Vec::with_capacity(fields),
        }
    }

    /// Appends a field; the caller gives a valid token as the name.
    pub fn push(&mut self, name: &str, value: &[u8]) {
        let name_start = self.bytes.len();
        self.bytes.extend_from_slice(name.as_bytes());
        let value_start = self.bytes.len();
        self.bytes.extend_from_slice(value);
        self.spans.push(Span {
            name: (name_start, value_start),
            value: (value_start, self.bytes.len()),
        });
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Every field in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.spans.iter().map(|span| {
            let name = &self.bytes[span.name.0..span.name.1];
            // Names are tokens (httparse checks them, `push` takes a `&str`), so this
            // cannot fail; an empty name would match nothing.
            let name = std::str::from_utf8(name).unwrap_or("");
            (name, &self.bytes[span.value.0..span.value.1])
        })
    }

    /// Every value of the field `name` (any case), in order.
    pub fn all<'a, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a [u8]> + use<'a, 'n> {
        self.spans
            .iter()
            .filter(move |span| {
                self.bytes[span.name.0..span.name.1].eq_ignore_ascii_case(name.as_bytes())
            })
            .map(|span| &self.bytes[span.value.0..span.value.1])
    }

    /// The first value of the field `name` (any case).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.all(name).next()
    }

    /// The first value of `name` when it is UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name)
            .and_then(|value| std::str::from_utf8(value).ok())
    }

    /// Whether the comma-separated list in the fields `name` holds `token` (any case).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.all(name).any(|value| {
            value
                .split(|b| *b == b',')
                .any(|item| trim(item).eq_ignore_ascii_case(token.as_bytes()))
        })
    }
}

/// A request head as the client wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// As sent: the case is the client's (SPEC §2 upper-cases it only to decide).
    pub method: String,
    /// The raw request target, byte for byte.
    pub target: String,
    pub version: Version,
    pub fields: Fields,
}

/// A response head as the upstream wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub reason: String,
    pub version: Version,
    pub fields: Fields,
}

/// A head kapauth will not read; each maps to the status that answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// The request line is longer than `MAX_REQUEST_LINE`: 414.
    LineTooLong,
    /// The head is larger than `MAX_HEAD`: 431.
    TooLarge,
    /// More than `MAX_FIELDS` header fields: 431.
    TooManyFields,
    /// An HTTP version other than 1.0 and 1.1: 505.
    Version,
    /// Anything else httparse refuses: 400.
    Malformed,
}

impl HeadError {
    pub fn status(self) -> u16 {
        match self {
            HeadError::LineTooLong => 414,
            HeadError::TooLarge | HeadError::TooManyFields => 431,
            HeadError::Version => 505,
            HeadError::Malformed => 400,
        }
    }

    /// The message of kapauth's JSON answer, naming the limit.
    pub fn message(self) -> &'static str {
        match self {
            HeadError::LineTooLong => "request line longer than 8 KiB",
            HeadError::TooLarge => "request head larger than 64 KiB",
            HeadError::TooManyFields => "more than 100 header fields",
            HeadError::Version => "HTTP version not supported; use HTTP/1.1 or HTTP/1.0",
            HeadError::Malformed => "malformed request head",
        }
    }
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// The number of blank-line bytes (CR and LF) before a request starts, which a server
/// skips (RFC 9112 §2.2).
pub fn leading_blank_lines(buffer: &[u8]) -> usize {
    buffer
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count()
}

/// Where the head in `buffer` ends (the index just past its empty line), scanning only
/// from `scanned` on, so a head arriving a byte at a time costs linear work. `buffer` must
/// not start with a blank line. Returns `Err(position)` with the position to resume from.
pub fn find_head_end(buffer: &[u8], scanned: usize) -> Result<usize, usize> {
    let mut at = scanned.max(1);
    while at < buffer.len() {
        match memchr(b'\n', &buffer[at..]) {
            None => return Err(buffer.len()),
            Some(offset) => {
                let newline = at + offset;
                // An empty line is `\n\n` or `\n\r\n` (httparse accepts a bare LF).
                let previous = buffer[newline - 1];
                if previous == b'\n'
                    || (previous == b'\r' && newline >= 2 && buffer[newline - 2] == b'\n')
                {
                    return Ok(newline + 1);
                }
                at = newline + 1;
            }
        }
    }
    Err(buffer.len().max(1))
}

/// Checks the limits a head still arriving already breaks: the request line and the head
/// size. `buffer` holds the start of the head, without leading blank lines. The line is
/// scanned only once the buffer could hold too long a line, and never again once it was
/// found whole (`line_whole`), so a head arriving a byte at a time costs linear work.
pub fn check_partial_request(buffer: &[u8], line_whole: &mut bool) -> Result<(), HeadError> {
    let limit = MAX_REQUEST_LINE + 2;
    if !*line_whole && buffer.len() >= limit {
        if memchr(b'\n', &buffer[..limit]).is_none() {
            return Err(HeadError::LineTooLong);
        }
        *line_whole = true;
    }
    if buffer.len() > MAX_HEAD {
        return Err(HeadError::TooLarge);
    }
    Ok(())
}

/// Parses a complete request head (`head` ends with its empty line, as `find_head_end`
/// found it, and starts at the request line).
pub fn parse_request_head(head: &[u8]) -> Result<RequestHead, HeadError> {
    check_partial_request(head, &mut false)?;
    let line_end = memchr(b'\n', head).unwrap_or(head.len());
    let line = head[..line_end]
        .strip_suffix(b"\r")
        .unwrap_or(&head[..line_end]);
    if line.len() > MAX_REQUEST_LINE {
        return Err(HeadError::LineTooLong);
    }
    let mut few = [httparse::EMPTY_HEADER; FEW_FIELDS];
    match request_with(head, &mut few) {
        Err(HeadError::TooManyFields) => {
            request_with(head, &mut vec![httparse::EMPTY_HEADER; MAX_FIELDS])
        }
        parsed => parsed,
    }
}

/// Parses a response head from the start of `buffer`: `Ok(None)` while it is incomplete,
/// else the head and its length. The same size limits as a request head apply.
pub fn parse_response_head(buffer: &[u8]) -> Result<Option<(ResponseHead, usize)>, HeadError> {
    let mut few = [httparse::EMPTY_HEADER; FEW_FIELDS];
    match response_with(buffer, &mut few) {
        Err(HeadError::TooManyFields) => {
            response_with(buffer, &mut vec![httparse::EMPTY_HEADER; MAX_FIELDS])
        }
        parsed => parsed,
    }
}

/// Most heads have fewer fields than this; room for them lives on the stack, and a head
/// with more is parsed again with room for `MAX_FIELDS` on the heap. A connection thread's
/// stack stays small that way, and so does an idle connection's memory.
const FEW_FIELDS: usize = 24;

fn request_with<'b>(
    head: &'b [u8],
    storage: &mut [httparse::Header<'b>],
) -> Result<RequestHead, HeadError> {
    let mut parsed = httparse::Request::new(storage);
    match parsed.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(HeadError::Malformed),
        Err(error) => return Err(head_error(error)),
    }
    let (Some(method), Some(target), Some(version)) = (parsed.method, parsed.path, parsed.version)
    else {
        return Err(HeadError::Malformed);
    };
    Ok(RequestHead {
        method: method.to_string(),
        target: target.to_string(),
        version: version_of(version)?,
        fields: fields_of(parsed.headers, head.len()),
    })
}

fn response_with<'b>(
    buffer: &'b [u8],
    storage: &mut [httparse::Header<'b>],
) -> Result<Option<(ResponseHead, usize)>, HeadError> {
    let mut parsed = httparse::Response::new(storage);
    let length = match parsed.parse(buffer) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) if buffer.len() > MAX_HEAD => {
            return Err(HeadError::TooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(error) => return Err(head_error(error)),
    };
    if length > MAX_HEAD {
        return Err(HeadError::TooLarge);
    }
    let (Some(status), Some(version)) = (parsed.code, parsed.version) else {
        return Err(HeadError::Malformed);
    };
    Ok(Some((
        ResponseHead {
            status,
            reason: parsed.reason.unwrap_or("").to_string(),
            version: version_of(version)?,
            fields: fields_of(parsed.headers, length),
        },
        length,
    )))
}

/// How a request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestBody {
    None,
    Length(u64),
    Chunked,
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseBody {
    /// No body: a HEAD answer, 1xx, 204 or 304.
    None,
    Length(u64),
    Chunked,
    /// Until the upstream closes the connection.
    Close,
}

/// A request whose body length cannot be known for sure; each maps to its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramingError {
    /// `Content-Length` is not one value of digits: 400.
    InvalidLength,
    /// Both `Content-Length` and `Transfer-Encoding`: 400.
    LengthAndEncoding,
    /// A `Transfer-Encoding` other than exactly `chunked`: 501.
    UnsupportedEncoding,
}

impl FramingError {
    pub fn status(self) -> u16 {
        match self {
            FramingError::InvalidLength | FramingError::LengthAndEncoding => 400,
            FramingError::UnsupportedEncoding => 501,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            FramingError::InvalidLength => "invalid Content-Length; send one value of digits",
            FramingError::LengthAndEncoding => {
                "both Content-Length and Transfer-Encoding; send one"
            }
            FramingError::UnsupportedEncoding => {
                "unsupported Transfer-Encoding; send chunked or a Content-Length"
            }
        }
    }
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// How long a request's body is (RFC 9112 §6, strictly): `Transfer-Encoding` must be
/// exactly `chunked` and only in HTTP/1.1; `Content-Length` one value of digits, repeated
/// only as the same value (as Go accepts); never both.
pub fn request_framing(head: &RequestHead) -> Result<RequestBody, FramingError> {
    let encoding = encoding_of(&head.fields);
    let length = length_of(&head.fields)?;
    match (encoding, length) {
        (Some(_), Some(_)) => Err(FramingError::LengthAndEncoding),
        (Some(Encoding::Chunked), None) if head.version == Version::Http11 => {
            Ok(RequestBody::Chunked)
        }
        (Some(_), None) => Err(FramingError::UnsupportedEncoding),
        (None, Some(length)) => Ok(RequestBody::Length(length)),
        (None, None) => Ok(RequestBody::None),
    }
}

/// How long the upstream's response body is (RFC 9112 §6.3), for a request whose method
/// was HEAD or not.
pub fn response_framing(
    head_request: bool,
    response: &ResponseHead,
) -> Result<ResponseBody, FramingError> {
    let status = response.status;
    if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(ResponseBody::None);
    }
    match encoding_of(&response.fields) {
        Some(Encoding::Chunked) => Ok(ResponseBody::Chunked),
        // A coding kapauth cannot decode (`gzip, chunked`) could only be passed on without
        // the field that names it, which would corrupt the body: refused instead.
        Some(Encoding::Other) => Err(FramingError::UnsupportedEncoding),
        None => match length_of(&response.fields)? {
            Some(length) => Ok(ResponseBody::Length(length)),
            None => Ok(ResponseBody::Close),
        },
    }
}

/// Whether the sender of a head with these fields keeps its connection open afterwards:
/// HTTP/1.1 unless it says `close`, HTTP/1.0 only when it says `keep-alive`.
pub fn keeps_alive(version: Version, fields: &Fields) -> bool {
    match version {
        Version::Http11 => !fields.has_token("Connection", "close"),
        Version::Http10 => {
            fields.has_token("Connection", "keep-alive") && !fields.has_token("Connection", "close")
        }
    }
}

/// The standard reason phrase of a status, or `""`.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        414 => "URI Too Long",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

enum Encoding {
    Chunked,
    Other,
}

/// The transfer coding the fields announce: exactly one `chunked` is `Chunked`; any other
/// list (`gzip`, `chunked, chunked`, `identity`, empty) is `Other`.
fn encoding_of(fields: &Fields) -> Option<Encoding> {
    let mut items = fields
        .all("Transfer-Encoding")
        .flat_map(|value| value.split(|b| *b == b','))
        .map(trim)
        .peekable();
    items.peek()?;
    let first = items.next().unwrap_or_default();
    if first.eq_ignore_ascii_case(b"chunked") && items.next().is_none() {
        Some(Encoding::Chunked)
    } else {
        Some(Encoding::Other)
    }
}

/// The `Content-Length`, if any: every field must hold the same text, and that text one
/// number of at most 19 digits (no sign, no list, no blanks inside).
fn length_of(fields: &Fields) -> Result<Option<u64>, FramingError> {
    let mut values = fields.all("Content-Length").map(trim);
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.any(|other| other != first) {
        return Err(FramingError::InvalidLength);
    }
    if first.is_empty() || first.len() > 19 || !first.iter().all(u8::is_ascii_digit) {
        return Err(FramingError::InvalidLength);
    }
    Ok(Some(first.iter().fold(0u64, |length, digit| {
        length * 10 + u64::from(digit - b'0')
    })))
}

fn fields_of(headers: &[httparse::Header<'_>], capacity: usize) -> Fields {
    let mut fields = Fields::with_capacity(capacity, headers.len());
    for header in headers {
        fields.push(header.name, header.value);
    }
    fields
}

fn version_of(minor: u8) -> Result<Version, HeadError> {
    match minor {
        0 => Ok(Version::Http10),
        1 => Ok(Version::Http11),
        _ => Err(HeadError::Version),
    }
}

fn head_error(error: httparse::Error) -> HeadError {
    match error {
        httparse::Error::Version => HeadError::Version,
        httparse::Error::TooManyHeaders => HeadError::TooManyFields,
        _ => HeadError::Malformed,
    }
}

/// `bytes` without leading and trailing spaces and tabs (HTTP's optional whitespace).
pub fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| *b != b' ' && *b != b'\t')
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| *b != b' ' && *b != b'\t')
        .map_or(start, |end| end + 1);
    &bytes[start..end]
}

pub(crate) fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|b| *b == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> RequestHead {
        parse_request_head(text.as_bytes()).expect(text)
    }

    fn check_framing(text: &str, expected: Result<RequestBody, FramingError>) {
        assert_eq!(request_framing(&head(text)), expected, "{text:?}");
    }

    #[test]
    fn request_bodies_are_framed_strictly() {
        use FramingError::*;
        use RequestBody::*;
        let cases: &[(&str, Result<RequestBody, FramingError>)] = &[
            ("GET / HTTP/1.1\r\n\r\n", Ok(None)),
            (
                "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
                Ok(Length(5)),
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
                Ok(Length(0)),
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length:  7 \r\n\r\n",
                Ok(Length(7)),
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
                Ok(Length(5)),
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                Err(InvalidLength),
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n",
                Err(InvalidLength),
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
                Err(InvalidLength),
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
                Err(InvalidLength),
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n",
                Err(InvalidLength),
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n",
                Err(InvalidLength),
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: \r\n\r\n",
                Err(InvalidLength),
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n",
                Err(InvalidLength),
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 9999999999999999999\r\n\r\n",
                Ok(Length(9_999_999_999_999_999_999)),
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                Ok(Chunked),
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: Chunked \r\n\r\n",
                Ok(Chunked),
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
                Err(UnsupportedEncoding),
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                Err(UnsupportedEncoding),
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
                Err(UnsupportedEncoding),
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                Err(UnsupportedEncoding),
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n",
                Err(UnsupportedEncoding),
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: \r\n\r\n",
                Err(UnsupportedEncoding),
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
                Err(LengthAndEncoding),
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: gzip\r\n\r\n",
                Err(LengthAndEncoding),
            ),
            (
                "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                Err(UnsupportedEncoding),
            ),
        ];
        for (text, expected) in cases {
            check_framing(text, *expected);
        }
    }

    #[test]
    fn heads_that_break_a_limit_name_it() {
        let long_line = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_REQUEST_LINE));
        let fitting_line = format!(
            "GET /{} HTTP/1.1\r\n\r\n",
            "a".repeat(MAX_REQUEST_LINE - "GET / HTTP/1.1".len())
        );
        let many = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "A: b\r\n".repeat(MAX_FIELDS + 1)
        );
        let hundred = format!("GET / HTTP/1.1\r\n{}\r\n", "A: b\r\n".repeat(MAX_FIELDS));
        let large = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            format!("A: {}\r\n", "b".repeat(1000)).repeat(70)
        );
        let cases: Vec<(&str, Result<(), HeadError>)> = vec![
            ("GET / HTTP/1.1\r\n\r\n", Ok(())),
            ("GET / HTTP/1.0\n\n", Ok(())),
            (&long_line, Err(HeadError::LineTooLong)),
            (&fitting_line, Ok(())),
            (&many, Err(HeadError::TooManyFields)),
            (&hundred, Ok(())),
            (&large, Err(HeadError::TooLarge)),
            ("GET / HTTP/2.0\r\n\r\n", Err(HeadError::Version)),
            ("GET / HTTP/1.2\r\n\r\n", Err(HeadError::Version)),
            ("GET /\r\n\r\n", Err(HeadError::Malformed)),
            ("GET  / HTTP/1.1\r\n\r\n", Err(HeadError::Malformed)),
            ("GET / HTTP/1.1\r\nA : b\r\n\r\n", Err(HeadError::Malformed)),
            (
                "GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n",
                Err(HeadError::Malformed),
            ),
            (
                "GET / HTTP/1.1\r\nA: b\0\r\n\r\n",
                Err(HeadError::Malformed),
            ),
            ("G\u{e9}T / HTTP/1.1\r\n\r\n", Err(HeadError::Malformed)),
            ("GET / HTTP/1.1\r\n", Err(HeadError::Malformed)),
        ];
        for (text, expected) in cases {
            let got = parse_request_head(text.as_bytes()).map(|_| ());
            assert_eq!(got, expected, "{:?}", &text[..text.len().min(60)]);
        }
        let over = "a".repeat(MAX_REQUEST_LINE + 2);
        assert_eq!(
            check_partial_request(over.as_bytes(), &mut false),
            Err(HeadError::LineTooLong)
        );
        assert_eq!(
            check_partial_request(&over.as_bytes()[..MAX_REQUEST_LINE + 1], &mut false),
            Ok(())
        );
    }

    #[test]
    fn a_parsed_head_keeps_every_byte_as_sent() {
        let parsed = head(
            "pOsT /kapacitor/v1/tasks?u=a&p=b HTTP/1.1\r\nHost: x\r\nX-A: caf\u{e9}\r\nx-a: 2\r\n\r\n",
        );
        assert_eq!(parsed.method, "pOsT");
        assert_eq!(parsed.target, "/kapacitor/v1/tasks?u=a&p=b");
        assert_eq!(parsed.version, Version::Http11);
        let fields: Vec<(&str, &[u8])> = parsed.fields.iter().collect();
        assert_eq!(
            fields,
            vec![
                ("Host", &b"x"[..]),
                ("X-A", "caf\u{e9}".as_bytes()),
                ("x-a", &b"2"[..])
            ]
        );
        assert_eq!(parsed.fields.all("X-A").count(), 2);
        assert_eq!(parsed.fields.get_str("host"), Some("x"));
    }

    #[test]
    fn the_end_of_a_head_is_found_in_linear_time() {
        let cases: &[(&[u8], Result<usize, usize>)] = &[
            (b"GET / HTTP/1.1\r\n\r\n", Ok(18)),
            (b"GET / HTTP/1.1\n\n", Ok(16)),
            (b"GET / HTTP/1.1\r\nA: b\r\n\r\nrest", Ok(24)),
            (b"GET / HTTP/1.1\r\nA: b\r\n", Err(22)),
            (b"GET / HTTP/1.1\r\nA: b\r\n\r", Err(23)),
            (b"G", Err(1)),
        ];
        for (buffer, expected) in cases {
            assert_eq!(find_head_end(buffer, 0), *expected, "{buffer:?}");
        }
        // Resuming where the last scan stopped finds the same end.
        let whole = b"GET / HTTP/1.1\r\nA: b\r\n\r\n";
        let mut scanned = 0;
        let mut found = None;
        for end in 1..=whole.len() {
            match find_head_end(&whole[..end], scanned) {
                Ok(at) => {
                    found = Some(at);
                    break;
                }
                Err(resume) => scanned = resume,
            }
        }
        assert_eq!(found, Some(whole.len()));
        assert_eq!(leading_blank_lines(b"\r\n\r\nGET"), 4);
    }

    fn response(text: &str) -> ResponseHead {
        parse_response_head(text.as_bytes())
            .expect(text)
            .expect("complete")
            .0
    }

    #[test]
    fn response_bodies_are_framed_as_rfc_9112_says() {
        use ResponseBody::*;
        let cases: &[(bool, &str, Result<ResponseBody, FramingError>)] = &[
            (
                false,
                "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
                Ok(Length(3)),
            ),
            (
                true,
                "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
                Ok(None),
            ),
            (false, "HTTP/1.1 204 No Content\r\n\r\n", Ok(None)),
            (
                false,
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                Ok(None),
            ),
            (false, "HTTP/1.1 100 Continue\r\n\r\n", Ok(None)),
            (
                false,
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                Ok(Chunked),
            ),
            (
                false,
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
                Ok(Chunked),
            ),
            (
                false,
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                Err(FramingError::UnsupportedEncoding),
            ),
            (false, "HTTP/1.1 200 OK\r\n\r\n", Ok(Close)),
            (false, "HTTP/1.0 200 OK\r\n\r\n", Ok(Close)),
            (
                false,
                "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
                Err(FramingError::InvalidLength),
            ),
        ];
        for (head_request, text, expected) in cases {
            assert_eq!(
                response_framing(*head_request, &response(text)),
                *expected,
                "{text:?}"
            );
        }
        assert_eq!(
            parse_response_head(b"HTTP/1.1 200 OK\r\nA: b\r\n"),
            Ok(Option::None)
        );
        let parsed = parse_response_head(b"HTTP/1.1 404 Not Found\r\nA: b\r\n\r\nbody")
            .unwrap()
            .unwrap();
        assert_eq!(
            (parsed.0.status, parsed.0.reason.as_str(), parsed.1),
            (404, "Not Found", 32)
        );
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection_tokens() {
        let check = |text: &str, expected: bool| {
            let parsed = head(text);
            assert_eq!(
                keeps_alive(parsed.version, &parsed.fields),
                expected,
                "{text:?}"
            );
        };
        check("GET / HTTP/1.1\r\n\r\n", true);
        check("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false);
        check(
            "GET / HTTP/1.1\r\nConnection: Upgrade, Close\r\n\r\n",
            false,
        );
        check("GET / HTTP/1.0\r\n\r\n", false);
        check("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true);
        check("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true);
        check(
            "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
            false,
        );
    }
}
