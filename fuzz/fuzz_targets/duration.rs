//! `duration`: `config/duration.rs` (Go-style durations, SPEC §9) on arbitrary text and
//! arbitrary durations, against a reference that follows Go's `time.ParseDuration`.
//!
//! Input: `[n0..n7, text...]`: eight bytes are a little-endian count of nanoseconds (at
//! most `i64::MAX`) to format, the rest (lossy UTF-8) a text to parse.
//!
//! Asserts, besides "no panic":
//! - `parse_duration` accepts exactly what Go accepts and kapauth keeps: Go's grammar
//!   (one optional sign; numbers with an optional fraction, each followed by a unit among
//!   `ns us µs μs ms s m h`; `0` alone), at most `i64::MAX` nanoseconds, and no negative
//!   value (kapauth: a `-` is refused unless the value is zero); the value is Go's, with
//!   the fraction's digits read as far as Go reads them (up to 30) and computed exactly
//!   where Go multiplies in float64 (which can be a nanosecond off);
//! - a refusal is `Negative` only for a text with a `-` sign and a value above zero, and
//!   `TooLarge` only for one Go refuses or reads as negative;
//! - `format_duration` gives text that parses back to the same duration, and formatting
//!   what was parsed and parsing it again gives the same duration.
#![no_main]

use std::time::Duration;

use kapauth::config::duration::{DurationError, format_duration, parse_duration};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((nanos, text)) = data.split_first_chunk::<8>() else {
        return;
    };
    let nanos = u64::from_le_bytes(*nanos) & (i64::MAX as u64);
    let duration = Duration::from_nanos(nanos);
    let formatted = format_duration(duration);
    assert_eq!(parse_duration(&formatted), Ok(duration), "{formatted:?}");

    let text = String::from_utf8_lossy(text);
    let parsed = parse_duration(&text);
    match (&parsed, go_parse_duration(&text)) {
        (Ok(value), Some((false, go))) => {
            assert_eq!(
                value.as_nanos(),
                go,
                "{text:?}: {value:?} against Go's {go} ns"
            );
        }
        (Ok(value), Some((true, 0))) => assert_eq!(*value, Duration::ZERO, "{text:?}"),
        (Err(DurationError::Negative | DurationError::TooLarge), Some((true, go))) => {
            assert!(
                go > 0,
                "{text:?} refused as negative though Go reads it as zero"
            );
        }
        (Err(_), None) => {}
        (outcome, go) => panic!("{text:?}: {outcome:?}, Go: {go:?}"),
    }
    if let Ok(value) = parsed {
        let again = format_duration(value);
        assert_eq!(
            parse_duration(&again),
            Ok(value),
            "{text:?} formatted as {again:?}"
        );
    }
});

/// Go's `time.ParseDuration`, in exact arithmetic: `(negative, nanoseconds)`, or `None`
/// where Go returns an error.
fn go_parse_duration(text: &str) -> Option<(bool, u128)> {
    let mut rest = text;
    let mut negative = false;
    if let Some(sign) = rest.chars().next()
        && (sign == '-' || sign == '+')
    {
        negative = sign == '-';
        rest = &rest[1..];
    }
    if rest == "0" {
        return Some((negative, 0));
    }
    if rest.is_empty() {
        return None;
    }
    let limit: u128 = 1 << 63;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let first = rest.as_bytes()[0];
        if !(first == b'.' || first.is_ascii_digit()) {
            return None;
        }
        let whole_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let whole = &rest[..whole_len];
        rest = &rest[whole_len..];
        let mut fraction = "";
        if let Some(after) = rest.strip_prefix('.') {
            let len = after.bytes().take_while(u8::is_ascii_digit).count();
            fraction = &after[..len];
            rest = &after[len..];
        }
        if whole.is_empty() && fraction.is_empty() {
            return None;
        }
        let unit_len = rest
            .bytes()
            .take_while(|b| !(*b == b'.' || b.is_ascii_digit()))
            .count();
        let unit: u128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        // Go's leadingInt refuses a number above 2^63.
        let mut value: u128 = 0;
        for digit in whole.bytes() {
            value = value * 10 + u128::from(digit - b'0');
            if value > limit {
                return None;
            }
        }
        if value > limit / unit {
            return None;
        }
        value *= unit;
        // Go's leadingFraction reads digits until one more would pass 2^63, then ignores
        // the rest; the fraction adds its share of the unit, truncated to nanoseconds.
        // Digits past the 30th are worth less than 10^-17 ns and are not read.
        let mut scale: u128 = 1;
        let mut numerator: u128 = 0;
        for digit in fraction.bytes().take(30) {
            let next = numerator * 10 + u128::from(digit - b'0');
            if numerator > (limit - 1) / 10 || next > limit {
                break;
            }
            numerator = next;
            scale *= 10;
        }
        value += numerator * unit / scale;
        if value > limit {
            return None;
        }
        total += value;
        if total > limit {
            return None;
        }
    }
    if !negative && total > limit - 1 {
        return None;
    }
    Some((negative, total))
}
