//! Base64 in the two dialects kapauth reads and writes: standard padded base64 for
//! `Authorization: Basic` (SPEC §1) and unpadded URL-safe base64 for JWT segments
//! (SPEC §4 meta credentials, §5 bearer tokens).
//!
//! Decoding mirrors Go's `encoding/base64` exactly, because Kapacitor decides with Go
//! what a client's bytes mean and kapauth must agree with it byte for byte:
//! `\r` and `\n` are skipped anywhere, any other character outside the alphabet is an
//! error, and unused low bits of the last character are ignored (Go's encodings are
//! not `Strict`). This file never allocates more than its input needs and never
//! panics, whatever the input.

/// Encodes `bytes` as standard base64 with `=` padding (RFC 4648 §4).
pub fn encode_standard(bytes: &[u8]) -> String {
    encode(bytes, STANDARD_ALPHABET, Padding::Required)
}

/// Decodes standard padded base64 as Go's `base64.StdEncoding.DecodeString` does:
/// padding is required and must be correct, `\r` and `\n` are ignored anywhere, and any
/// other character outside the alphabet makes the whole input undecodable (`None`).
pub fn decode_standard(text: &str) -> Option<Vec<u8>> {
    decode(text, STANDARD_ALPHABET, Padding::Required)
}

/// Encodes `bytes` as URL-safe base64 without padding (RFC 4648 §5), the form JWT
/// segments take (RFC 7515 §2).
pub fn encode_url_nopad(bytes: &[u8]) -> String {
    encode(bytes, URL_ALPHABET, Padding::Forbidden)
}

/// Decodes URL-safe base64 without padding as Go's `base64.RawURLEncoding.DecodeString`
/// does, which is how golang-jwt v4.5 (the version Kapacitor pins) decodes every JWT
/// segment: a `=` is an error like any other character outside the alphabet, and a
/// trailing group of one character is an error.
pub fn decode_url_nopad(text: &str) -> Option<Vec<u8>> {
    decode(text, URL_ALPHABET, Padding::Forbidden)
}

const STANDARD_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const PAD: u8 = b'=';

/// Whether a dialect writes and requires `=` padding, or treats `=` as a stray character.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Padding {
    Required,
    Forbidden,
}

fn encode(bytes: &[u8], alphabet: &[u8; 64], padding: Padding) -> String {
    let mut text = String::with_capacity(bytes.len().div_ceil(3).saturating_mul(4));
    for chunk in bytes.chunks(3) {
        let first = chunk.first().copied().unwrap_or(0);
        let second = chunk.get(1).copied().unwrap_or(0);
        let third = chunk.get(2).copied().unwrap_or(0);
        let group = (u32::from(first) << 16) | (u32::from(second) << 8) | u32::from(third);
        // A chunk of n bytes carries n * 8 bits, which need n + 1 characters.
        let characters = chunk.len() + 1;
        for index in 0..4 {
            if index < characters {
                let shift = 18 - 6 * index;
                text.push(sextet_char(alphabet, group >> shift));
            } else if padding == Padding::Required {
                text.push(char::from(PAD));
            }
        }
    }
    text
}

fn sextet_char(alphabet: &[u8; 64], value: u32) -> char {
    // The mask keeps the index below 64, so the lookup always succeeds.
    let index = usize::try_from(value & 0x3f).unwrap_or(0);
    char::from(alphabet.get(index).copied().unwrap_or(b'A'))
}

/// Go's decoder, one group of up to four characters at a time.
fn decode(text: &str, alphabet: &[u8; 64], padding: Padding) -> Option<Vec<u8>> {
    let input = text.as_bytes();
    let mut output = Vec::with_capacity(input.len() / 4 * 3 + 3);
    let mut position = 0;
    loop {
        let mut group = [0u8; 4];
        let mut filled = 0;
        while filled < 4 {
            position = skip_line_breaks(input, position);
            let Some(&character) = input.get(position) else {
                // The input ended inside or just before a group.
                return match (filled, padding) {
                    (0, _) => Some(output),
                    (1, _) | (_, Padding::Required) => None,
                    (_, Padding::Forbidden) => {
                        push_group(&mut output, group, filled);
                        Some(output)
                    }
                };
            };
            position += 1;
            if let Some(value) = sextet_value(alphabet, character) {
                if let Some(slot) = group.get_mut(filled) {
                    *slot = value;
                }
                filled += 1;
                continue;
            }
            if character != PAD || padding == Padding::Forbidden {
                return None;
            }
            // Padding ends the input: it may only follow two or three characters, two
            // characters need `==`, and only line breaks may come after it.
            match filled {
                2 => {
                    position = skip_line_breaks(input, position);
                    if input.get(position) != Some(&PAD) {
                        return None;
                    }
                    position += 1;
                }
                3 => {}
                _ => return None,
            }
            position = skip_line_breaks(input, position);
            if position < input.len() {
                return None;
            }
            push_group(&mut output, group, filled);
            return Some(output);
        }
        push_group(&mut output, group, 4);
    }
}

fn skip_line_breaks(input: &[u8], mut position: usize) -> usize {
    while matches!(input.get(position), Some(b'\r' | b'\n')) {
        position += 1;
    }
    position
}

/// The value of `character` in `alphabet`. Both alphabets start with the same 62 letters
/// and digits in the same order and differ only in the last two symbols, so those 62 are
/// computed, not searched for: every request with a Basic header comes through here.
fn sextet_value(alphabet: &[u8; 64], character: u8) -> Option<u8> {
    match character {
        b'A'..=b'Z' => Some(character - b'A'),
        b'a'..=b'z' => Some(character - b'a' + 26),
        b'0'..=b'9' => Some(character - b'0' + 52),
        _ if character == alphabet[62] => Some(62),
        _ if character == alphabet[63] => Some(63),
        _ => None,
    }
}

/// Appends the bytes that `filled` (2, 3 or 4) characters carry; the low bits a short
/// group leaves over are dropped unchecked, as Go's non-strict decoder drops them.
fn push_group(output: &mut Vec<u8>, group: [u8; 4], filled: usize) {
    let [first, second, third, fourth] = group.map(u32::from);
    let bits = (first << 18) | (second << 12) | (third << 6) | fourth;
    let bytes = bits.to_be_bytes();
    let carried = filled.saturating_sub(1).min(3);
    output.extend_from_slice(bytes.get(1..1 + carried).unwrap_or(&[]));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Standard encoding round trip: `plain` encodes to `encoded` and decodes back.
    fn check_standard(plain: &[u8], encoded: &str) {
        assert_eq!(encode_standard(plain), encoded, "encoding {plain:?}");
        assert_eq!(
            decode_standard(encoded).as_deref(),
            Some(plain),
            "decoding {encoded:?}"
        );
    }

    /// URL-safe unpadded round trip: `plain` encodes to `encoded` and decodes back.
    fn check_url(plain: &[u8], encoded: &str) {
        assert_eq!(encode_url_nopad(plain), encoded, "encoding {plain:?}");
        assert_eq!(
            decode_url_nopad(encoded).as_deref(),
            Some(plain),
            "decoding {encoded:?}"
        );
    }

    /// Decoding only: what each decoder makes of `text`.
    fn check_decode_standard(text: &str, expected: Option<&[u8]>) {
        assert_eq!(decode_standard(text).as_deref(), expected, "{text:?}");
    }

    fn check_decode_url(text: &str, expected: Option<&[u8]>) {
        assert_eq!(decode_url_nopad(text).as_deref(), expected, "{text:?}");
    }

    #[test]
    fn standard_encoding_matches_the_rfc_4648_vectors() {
        check_standard(b"", "");
        check_standard(b"f", "Zg==");
        check_standard(b"fo", "Zm8=");
        check_standard(b"foo", "Zm9v");
        check_standard(b"foob", "Zm9vYg==");
        check_standard(b"fooba", "Zm9vYmE=");
        check_standard(b"foobar", "Zm9vYmFy");
    }

    #[test]
    fn standard_encoding_uses_plus_and_slash_for_the_last_two_sextets() {
        check_standard(&[0xfb, 0xff, 0xbf], "+/+/");
        check_standard(&[0xff], "/w==");
        check_standard(b"alice:secret", "YWxpY2U6c2VjcmV0");
        check_standard(&[0, 0, 0], "AAAA");
    }

    #[test]
    fn url_encoding_matches_the_rfc_4648_vectors_without_padding() {
        check_url(b"", "");
        check_url(b"f", "Zg");
        check_url(b"fo", "Zm8");
        check_url(b"foo", "Zm9v");
        check_url(b"foob", "Zm9vYg");
        check_url(b"fooba", "Zm9vYmE");
        check_url(b"foobar", "Zm9vYmFy");
        check_url(&[0xfb, 0xff, 0xbf], "-_-_");
        check_url(
            br#"{"alg":"HS512","typ":"JWT"}"#,
            "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9",
        );
    }

    #[test]
    fn standard_decoding_ignores_line_breaks_anywhere() {
        check_decode_standard("Zm9v\nYmFy", Some(b"foobar"));
        check_decode_standard("\r\nZm\r9vYm\nFy\r\n", Some(b"foobar"));
        check_decode_standard("Zg=\n=", Some(b"f"));
        check_decode_standard("Zg==\r\n", Some(b"f"));
        check_decode_standard("Zm8\n=", Some(b"fo"));
        check_decode_standard("\n", Some(b""));
        check_decode_standard("\r\n\r\n", Some(b""));
    }

    #[test]
    fn standard_decoding_rejects_missing_or_wrong_padding() {
        check_decode_standard("Zg", None);
        check_decode_standard("Zg=", None);
        check_decode_standard("Zm8", None);
        check_decode_standard("Zm9vYg", None);
        check_decode_standard("Z", None);
        check_decode_standard("Z===", None);
        check_decode_standard("====", None);
        check_decode_standard("=", None);
        check_decode_standard("Zg===", None);
        check_decode_standard("Zm8==", None);
        check_decode_standard("Zm9v=", None);
        check_decode_standard("Zg=x", None);
        check_decode_standard("Zg=\n", None);
    }

    #[test]
    fn standard_decoding_rejects_anything_after_the_padding() {
        check_decode_standard("Zg==Zg==", None);
        check_decode_standard("Zm8=Zm8=", None);
        check_decode_standard("Zg== ", None);
        check_decode_standard("Zg==\nA", None);
    }

    #[test]
    fn standard_decoding_rejects_characters_outside_the_alphabet() {
        check_decode_standard(" Zg==", None);
        check_decode_standard("Zm9v YmFy", None);
        check_decode_standard("Zm9v\tYmFy", None);
        check_decode_standard("Zm-_", None);
        check_decode_standard("Zm9v!", None);
        check_decode_standard("Zm9vé===", None);
        check_decode_standard("Zm9v\0", None);
    }

    #[test]
    fn standard_decoding_ignores_unused_low_bits_like_go() {
        // `Zh==` and `Zm9=` carry non-zero bits after the data; Go's StdEncoding is
        // not strict and drops them.
        check_decode_standard("Zh==", Some(b"f"));
        check_decode_standard("Zm9=", Some(b"fo"));
    }

    #[test]
    fn url_decoding_rejects_padding_as_a_stray_character() {
        check_decode_url("Zg==", None);
        check_decode_url("Zm8=", None);
        check_decode_url("Zm9v=", None);
        check_decode_url("=", None);
    }

    #[test]
    fn url_decoding_rejects_a_lone_trailing_character() {
        check_decode_url("Z", None);
        check_decode_url("Zm9vY", None);
    }

    #[test]
    fn url_decoding_rejects_the_standard_alphabet_and_other_strangers() {
        check_decode_url("+/+/", None);
        check_decode_url("Zm 9v", None);
        check_decode_url("Zm9v.", None);
        check_decode_url("Zm9vé", None);
    }

    #[test]
    fn url_decoding_ignores_line_breaks_and_unused_low_bits_like_go() {
        check_decode_url("Zm\n9v\r", Some(b"foo"));
        check_decode_url("Zh", Some(b"f"));
        check_decode_url("Zm9", Some(b"fo"));
        check_decode_url("", Some(b""));
    }

    #[test]
    fn every_byte_value_survives_both_round_trips() {
        let all: Vec<u8> = (0..=255).collect();
        for length in 0..all.len() {
            let plain = all.get(..length).unwrap_or(&[]);
            assert_eq!(
                decode_standard(&encode_standard(plain)).as_deref(),
                Some(plain)
            );
            assert_eq!(
                decode_url_nopad(&encode_url_nopad(plain)).as_deref(),
                Some(plain)
            );
        }
    }
}
