//! Go's readings of base64 and of query strings, written the plain way as references for
//! the fuzz targets: the opposite of kapauth's own code, which decodes in one pass and
//! allocates little. Each follows Go's documented behaviour (`encoding/base64`,
//! `net/url.ParseQuery`), not kapauth's source. Test code only.

/// The two base64 dialects kapauth reads.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Base64 {
    /// `base64.StdEncoding`: `+/`, `=` padding required.
    Standard,
    /// `base64.RawURLEncoding`: `-_`, no padding.
    RawUrl,
}

/// What Go's `DecodeString` gives for `text`: first every `\r` and `\n` is dropped
/// (Go skips them wherever they are); then the standard dialect needs whole groups of
/// four with `=` only as the last one or two characters of the last group, and the raw
/// URL dialect takes no `=` and no lone last character. Unused low bits are ignored.
pub fn base64_decode(text: &str, dialect: Base64) -> Option<Vec<u8>> {
    let alphabet: &[u8] = match dialect {
        Base64::Standard => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        Base64::RawUrl => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
    };
    let mut kept: Vec<u8> = text
        .bytes()
        .filter(|b| *b != b'\r' && *b != b'\n')
        .collect();
    if dialect == Base64::Standard {
        if kept.len() % 4 != 0 {
            return None;
        }
        let padding = if kept.ends_with(b"==") {
            2
        } else if kept.ends_with(b"=") {
            1
        } else {
            0
        };
        kept.truncate(kept.len() - padding);
    }
    if kept.len() % 4 == 1 {
        return None;
    }
    let mut values = Vec::with_capacity(kept.len());
    for byte in &kept {
        values.push(alphabet.iter().position(|a| a == byte)? as u32);
    }
    let mut out = Vec::new();
    for group in values.chunks(4) {
        let mut bits = 0u32;
        for (index, value) in group.iter().enumerate() {
            bits |= value << (18 - 6 * index);
        }
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..group.len()]);
    }
    Some(out)
}

/// `url.QueryUnescape`: `+` is a space, `%` and two hex digits a byte; any other `%` is
/// an error.
pub fn query_unescape(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(at + 1..at + 3)?).ok()?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                at += 3;
            }
            b'+' => {
                out.push(b' ');
                at += 1;
            }
            other => {
                out.push(other);
                at += 1;
            }
        }
    }
    Some(out)
}

/// `url.ParseQuery` as pairs in order (Go keeps them in a map of lists, so the first value
/// of a key is the first pair here): pieces split at `&`, a piece holding `;` dropped, an
/// empty piece skipped, the key and value split at the first `=` and unescaped, a piece
/// that fails to unescape dropped.
pub fn parse_query(raw: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut pairs = Vec::new();
    for piece in raw.split('&') {
        if piece.is_empty() || piece.contains(';') {
            continue;
        }
        let (key, value) = match piece.find('=') {
            Some(at) => (&piece[..at], &piece[at + 1..]),
            None => (piece, ""),
        };
        if let (Some(key), Some(value)) = (query_unescape(key), query_unescape(value)) {
            pairs.push((key, value));
        }
    }
    pairs
}

/// `url.ParseQuery(raw).Get(key)` as kapauth reads it: the first value, `None` when the
/// key is absent, non-UTF-8 bytes replaced by U+FFFD.
pub fn query_get(raw: &str, key: &str) -> Option<String> {
    parse_query(raw)
        .into_iter()
        .find(|(name, _)| name == key.as_bytes())
        .map(|(_, value)| String::from_utf8_lossy(&value).into_owned())
}
