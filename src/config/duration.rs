//! Go-style durations (`500ms`, `90s`, `10m`, `1h30m`), as Kapacitor's configuration writes
//! them (SPEC §9). Pure parsing and formatting; never reads a clock.

use std::fmt;
use std::time::Duration;

/// Why a text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurationError {
    /// The text is empty or has a part that is not a number followed by a unit.
    Invalid,
    /// A `-` sign: kapauth has no use for negative durations.
    Negative,
    /// More than about 292 years.
    TooLarge,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurationError::Invalid => f.write_str("is not a duration"),
            DurationError::Negative => f.write_str("is negative"),
            DurationError::TooLarge => f.write_str("is too large"),
        }
    }
}

/// Parses a Go `time.ParseDuration` text: an optional sign, then one or more decimal
/// numbers (a fraction allowed) each followed by a unit among `ns us µs μs ms s m h`; `0`
/// alone needs no unit. A `-` is refused unless the value is zero.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    // One sign, as Go reads it: `+-0` is no duration, and `-0s` is zero like `-0`.
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(DurationError::Invalid);
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let (whole, after_whole) = split_digits(rest);
        let (fraction, after_fraction) = match after_whole.strip_prefix('.') {
            Some(tail) => split_digits(tail),
            None => ("", after_whole),
        };
        if whole.is_empty() && fraction.is_empty() {
            return Err(DurationError::Invalid);
        }
        let unit_len = after_fraction
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after_fraction.len());
        let (unit, tail) = after_fraction.split_at(unit_len);
        let nanos_per_unit = unit_nanos(unit).ok_or(DurationError::Invalid)?;
        total = total
            .checked_add(scaled(whole, fraction, nanos_per_unit)?)
            .ok_or(DurationError::TooLarge)?;
        rest = tail;
    }
    // kapauth has no use for negative durations; a negative zero is zero, as in Go.
    if negative && total > 0 {
        return Err(DurationError::Negative);
    }
    let nanos = u64::try_from(total).map_err(|_| DurationError::TooLarge)?;
    if nanos > i64::MAX as u64 {
        return Err(DurationError::TooLarge);
    }
    Ok(Duration::from_nanos(nanos))
}

/// Formats a duration the way Go's `Duration.String` does (`1h30m0s`, `500ms`, `0s`), so
/// `check-config` prints what an operator would write.
pub fn format_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", trim_fraction(nanos, 1_000));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", trim_fraction(nanos, 1_000_000));
    }
    let hours = nanos / 3_600_000_000_000;
    let minutes = (nanos / 60_000_000_000) % 60;
    let seconds = trim_fraction(nanos % 60_000_000_000, 1_000_000_000);
    match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, _) => format!("{minutes}m{seconds}s"),
        _ => format!("{hours}h{minutes}m{seconds}s"),
    }
}

fn split_digits(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    text.split_at(end)
}

fn unit_nanos(unit: &str) -> Option<u128> {
    match unit {
        "ns" => Some(1),
        "us" | "µs" | "μs" => Some(1_000),
        "ms" => Some(1_000_000),
        "s" => Some(1_000_000_000),
        "m" => Some(60_000_000_000),
        "h" => Some(3_600_000_000_000),
        _ => None,
    }
}

/// `whole.fraction` units in nanoseconds, truncating below a nanosecond as Go does.
fn scaled(whole: &str, fraction: &str, nanos_per_unit: u128) -> Result<u128, DurationError> {
    let mut nanos: u128 = 0;
    for digit in whole.bytes() {
        nanos = nanos
            .checked_mul(10)
            .and_then(|n| n.checked_add(u128::from(digit - b'0')))
            .ok_or(DurationError::TooLarge)?;
        if nanos > u128::from(u64::MAX) {
            return Err(DurationError::TooLarge);
        }
    }
    let total = nanos
        .checked_mul(nanos_per_unit)
        .ok_or(DurationError::TooLarge)?;
    // The fraction's digits as Go's `leadingFraction` reads them (until one more would pass
    // 2^63), as a share of the unit truncated to whole nanoseconds. Scaling each digit on
    // its own would drop the fractions of a nanosecond that unit/10^n leaves for `m` and
    // `h`, and with them whole nanoseconds once they add up. Digits past the 30th, worth
    // less than 10^-17 ns, are not read, so the scale stays within a u128.
    let (mut numerator, mut scale): (u128, u128) = (0, 1);
    for digit in fraction.bytes() {
        let next = numerator * 10 + u128::from(digit - b'0');
        if next > 1 << 63 || scale == MAX_FRACTION_SCALE {
            break;
        }
        numerator = next;
        scale *= 10;
    }
    Ok(total + numerator * nanos_per_unit / scale)
}

/// 10^30: the scale of the last fraction digit read.
const MAX_FRACTION_SCALE: u128 = 1_000_000_000_000_000_000_000_000_000_000;

fn trim_fraction(nanos: u128, per_unit: u128) -> String {
    let whole = nanos / per_unit;
    let remainder = nanos % per_unit;
    if remainder == 0 {
        return whole.to_string();
    }
    let width = per_unit.ilog10() as usize;
    let digits = format!("{remainder:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Result<Duration, DurationError>) {
        assert_eq!(parse_duration(text), expected, "parse_duration({text:?})");
    }

    #[test]
    fn go_style_durations_parse_as_go_parses_them() {
        let ms = Duration::from_millis;
        let s = Duration::from_secs;
        check("0", Ok(Duration::ZERO));
        check("-0", Ok(Duration::ZERO));
        check("0s", Ok(Duration::ZERO));
        check("500ms", Ok(ms(500)));
        check("90s", Ok(s(90)));
        check("10m", Ok(s(600)));
        check("1h", Ok(s(3600)));
        check("1h30m", Ok(s(5400)));
        check("1h30m15s", Ok(s(5415)));
        check("+5s", Ok(s(5)));
        check("1.5h", Ok(s(5400)));
        check(".5s", Ok(ms(500)));
        check("5.s", Ok(s(5)));
        check("2us", Ok(Duration::from_micros(2)));
        check("2µs", Ok(Duration::from_micros(2)));
        check("2μs", Ok(Duration::from_micros(2)));
        check("7ns", Ok(Duration::from_nanos(7)));
        check("1.0000000001s", Ok(s(1)));
        check("1s500ms", Ok(ms(1500)));
    }

    #[test]
    fn texts_that_are_not_durations_are_refused() {
        check("", Err(DurationError::Invalid));
        check("10", Err(DurationError::Invalid));
        check("ten minutes", Err(DurationError::Invalid));
        check("10 m", Err(DurationError::Invalid));
        check("10min", Err(DurationError::Invalid));
        check("1d", Err(DurationError::Invalid));
        check("h", Err(DurationError::Invalid));
        check(".s", Err(DurationError::Invalid));
        check("1.2.3s", Err(DurationError::Invalid));
        check("+", Err(DurationError::Invalid));
        check("-5s", Err(DurationError::Negative));
        check("-1ns", Err(DurationError::Negative));
        check("99999999999999999999h", Err(DurationError::TooLarge));
        check("3000000h", Err(DurationError::TooLarge));
    }

    /// Found by the `duration` fuzz target: `-0s` was refused as negative though `-0` was
    /// taken, and `+-0` was taken though Go reads one sign only.
    #[test]
    fn a_sign_is_read_once_and_a_negative_zero_is_zero() {
        check("-0s", Ok(Duration::ZERO));
        check("-0.0h", Ok(Duration::ZERO));
        check("-.1ns", Ok(Duration::ZERO));
        check("-0", Ok(Duration::ZERO));
        check("+-0", Err(DurationError::Invalid));
        check("-+0", Err(DurationError::Invalid));
        check("--5s", Err(DurationError::Invalid));
        check("-", Err(DurationError::Invalid));
    }

    /// Found by the `duration` fuzz target: each fraction digit of an hour was scaled on
    /// its own, so `.99999999999999h` lost 8 ns against Go.
    #[test]
    fn fractions_of_large_units_are_exact_to_the_nanosecond() {
        let ns = Duration::from_nanos;
        check(".99999999999999h", Ok(ns(3_599_999_999_999)));
        check("0.0000000000001m", Ok(ns(0)));
        check("1.000000000001h", Ok(ns(3_600_000_000_003)));
        check("0.123456789123456789123s", Ok(ns(123_456_789)));
        check("1.99999999999999999999999999ns", Ok(ns(1)));
        // Found by the same target in the first version of this fix: zeros that keep the
        // numerator at 0 made the scale overflow.
        check(
            &format!("1.{}1h", "0".repeat(60)),
            Ok(ns(3_600_000_000_000)),
        );
    }

    #[test]
    fn durations_format_as_go_prints_them() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(7), "7ns"),
            (Duration::from_micros(2), "2µs"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_secs(10), "10s"),
            (Duration::from_millis(10_500), "10.5s"),
            (Duration::from_secs(600), "10m0s"),
            (Duration::from_secs(5400), "1h30m0s"),
        ];
        for (duration, text) in cases {
            assert_eq!(format_duration(duration), text);
            assert_eq!(parse_duration(text), Ok(duration), "round trip of {text}");
        }
    }
}
