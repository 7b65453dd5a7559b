//! The only place kapauth writes log lines: one access line per request and operator
//! messages, in Kapacitor's logfmt style (`ts=… lvl=info msg=… key=value`), on stderr.
//! Callers pass outcomes, never secrets: no field here ever holds a password, hash, token
//! or key, and every value is escaped so a client cannot forge a line, reorder what a
//! terminal shows (bidi controls) or make one line huge (values are capped at 1 KiB).

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How loud a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// One log line being built; written whole by `emit`.
#[must_use = "a log line does nothing until emitted"]
pub struct Line {
    text: String,
    /// Each value as written, before `push_value` escapes it: one buffer for the line's
    /// fields instead of one per field.
    scratch: String,
}

impl Line {
    pub fn new(level: Level, msg: &str) -> Line {
        let level = match level {
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        // An access line is about 350 bytes: room for it from the start.
        let mut line = Line {
            text: String::with_capacity(512),
            scratch: String::new(),
        };
        line.text.push_str("ts=");
        line.text.push_str(&rfc3339_millis(SystemTime::now()));
        line.text.push_str(" lvl=");
        line.text.push_str(level);
        line.field("msg", msg)
    }

    pub fn field(mut self, key: &str, value: impl std::fmt::Display) -> Line {
        self.text.push(' ');
        self.text.push_str(key);
        self.text.push('=');
        self.scratch.clear();
        let _ = write!(self.scratch, "{value}");
        push_value(&mut self.text, &self.scratch);
        self
    }

    /// Writes the line to stderr in one call, so lines from concurrent requests never interleave.
    pub fn emit(mut self) {
        self.text.push('\n');
        let _ = std::io::stderr().lock().write_all(self.text.as_bytes());
    }
}

pub fn info(msg: &str) -> Line {
    Line::new(Level::Info, msg)
}

pub fn warn(msg: &str) -> Line {
    Line::new(Level::Warn, msg)
}

pub fn error(msg: &str) -> Line {
    Line::new(Level::Error, msg)
}

/// The most bytes of one value a line holds; the rest is counted, not written.
pub const MAX_VALUE: usize = 1024;

/// A logfmt value: bare when it is a simple token (printable ASCII without a space, `"` or
/// `\`; an `=` stays bare, as Kapacitor writes `uri=/write?db=x`), otherwise quoted with `"` and `\`
/// escaped and control, format and separator characters written as escapes. A value over
/// `MAX_VALUE` bytes is cut at a character boundary and marked with what was left out.
fn push_value(out: &mut String, value: &str) {
    let mut kept = value.len().min(MAX_VALUE);
    while !value.is_char_boundary(kept) {
        kept -= 1;
    }
    let (shown, cut) = value.split_at(kept);
    let bare = !shown.is_empty()
        && cut.is_empty()
        && shown
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\');
    if bare {
        out.push_str(shown);
        return;
    }
    out.push('"');
    for c in shown.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || is_invisible(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    if !cut.is_empty() {
        let _ = write!(out, "...({} more bytes)", cut.len());
    }
    out.push('"');
}

/// Characters that are not control characters but still change what a reader sees: the
/// Unicode format characters (bidi embeddings, overrides and isolates such as U+202E,
/// zero-width characters, the byte-order mark, tags) and the line and paragraph
/// separators U+2028 and U+2029, which some viewers break lines at.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{600}'..='\u{605}'
            | '\u{61c}'
            | '\u{6dd}'
            | '\u{70f}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{e0001}'
            | '\u{e0020}'..='\u{e007f}'
    )
}

/// `2026-11-24T09:37:18.123Z`, computed from the Unix time with the civil-from-days
/// algorithm so no date crate is needed.
pub fn rfc3339_millis(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// `2026-11-24T09:37:18.123456789Z` with trailing zeros of the fraction left out, as Go's
/// `time.RFC3339Nano` writes it (Kapacitor's `start` field).
pub fn rfc3339_nanos(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let mut text = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    );
    text.push_str(&fraction(u128::from(since.subsec_nanos()), 1_000_000_000));
    text.push('Z');
    text
}

/// A duration as Go's `time.Duration.String` writes it (`0s`, `850ns`, `12.5µs`,
/// `1.234567ms`, `2.5s`, `1m30s`, `1h0m5s`): Kapacitor's `duration` field.
pub fn go_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    match nanos {
        0 => "0s".to_string(),
        1..1_000 => format!("{nanos}ns"),
        1_000..1_000_000 => format!("{}{}µs", nanos / 1_000, fraction(nanos % 1_000, 1_000)),
        1_000_000..1_000_000_000 => format!(
            "{}{}ms",
            nanos / 1_000_000,
            fraction(nanos % 1_000_000, 1_000_000)
        ),
        _ => {
            let secs = duration.as_secs();
            let (hours, minutes) = (secs / 3600, (secs / 60) % 60);
            let seconds = format!(
                "{}{}s",
                secs % 60,
                fraction(u128::from(duration.subsec_nanos()), 1_000_000_000)
            );
            match (hours, minutes) {
                (0, 0) => seconds,
                (0, _) => format!("{minutes}m{seconds}"),
                _ => format!("{hours}h{minutes}m{seconds}"),
            }
        }
    }
}

/// `.` and the digits of `part / unit` without trailing zeros, or nothing when `part` is 0.
fn fraction(part: u128, unit: u128) -> String {
    if part == 0 {
        return String::new();
    }
    let width = unit.ilog10() as usize;
    let digits = format!("{part:0width$}");
    format!(".{}", digits.trim_end_matches('0'))
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_value(value: &str, expected: &str) {
        let mut out = String::new();
        push_value(&mut out, value);
        assert_eq!(out, expected, "value {value:?}");
    }

    #[test]
    fn values_are_bare_or_quoted_so_no_line_can_be_forged() {
        check_value("alice", "alice");
        check_value("/kapacitor/v1/tasks", "/kapacitor/v1/tasks");
        check_value("", "\"\"");
        check_value("two words", "\"two words\"");
        check_value("a=b", "a=b");
        check_value("/write?db=x&rp=y", "/write?db=x&rp=y");
        check_value("say \"hi\"", "\"say \\\"hi\\\"\"");
        check_value("x\nts=1 lvl=info", "\"x\\nts=1 lvl=info\"");
        check_value("back\\slash", "\"back\\\\slash\"");
        check_value("bell\u{7}", "\"bell\\u{7}\"");
        check_value("é", "\"é\"");
        check_value("a\u{202e}b", "\"a\\u{202e}b\"");
        check_value("a\u{2028}b\u{2029}", "\"a\\u{2028}b\\u{2029}\"");
        check_value(
            "\u{feff}\u{200b}\u{2066}x",
            "\"\\u{feff}\\u{200b}\\u{2066}x\"",
        );
        check_value("\u{85}", "\"\\u{85}\"");
        check_value("\u{e0041}", "\"\\u{e0041}\"");
    }

    #[test]
    fn long_values_are_cut_at_a_character_boundary_and_marked() {
        let long = "a".repeat(MAX_VALUE + 10);
        check_value(
            &long,
            &format!("\"{}...(10 more bytes)\"", "a".repeat(MAX_VALUE)),
        );
        check_value(&"a".repeat(MAX_VALUE), &"a".repeat(MAX_VALUE));
        // A two-byte character straddling the cap is left out whole.
        let straddling = format!("{}é", "a".repeat(MAX_VALUE - 1));
        check_value(
            &straddling,
            &format!("\"{}...(2 more bytes)\"", "a".repeat(MAX_VALUE - 1)),
        );
    }

    #[test]
    fn durations_read_as_go_writes_them() {
        let check = |nanos: u64, expected: &str| {
            assert_eq!(
                go_duration(Duration::from_nanos(nanos)),
                expected,
                "{nanos}"
            );
        };
        check(0, "0s");
        check(1, "1ns");
        check(999, "999ns");
        check(1_000, "1µs");
        check(12_500, "12.5µs");
        check(1_234_567, "1.234567ms");
        check(100_000_000, "100ms");
        check(1_000_000_000, "1s");
        check(2_500_000_000, "2.5s");
        check(90_000_000_000, "1m30s");
        check(3_600_000_000_000, "1h0m0s");
        check(3_605_000_000_001, "1h0m5.000000001s");
    }

    #[test]
    fn start_times_are_rfc3339_with_nanoseconds_trimmed() {
        let check = |secs: u64, nanos: u32, expected: &str| {
            let time = UNIX_EPOCH + Duration::new(secs, nanos);
            assert_eq!(rfc3339_nanos(time), expected);
        };
        check(0, 0, "1970-01-01T00:00:00Z");
        check(1_795_513_038, 123_000_000, "2026-11-24T09:37:18.123Z");
        check(1_795_513_038, 123_456_789, "2026-11-24T09:37:18.123456789Z");
        check(1_795_513_038, 1, "2026-11-24T09:37:18.000000001Z");
    }

    #[test]
    fn timestamps_are_rfc3339_in_utc() {
        let check = |secs: u64, millis: u64, expected: &str| {
            let time = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis);
            assert_eq!(rfc3339_millis(time), expected);
        };
        check(0, 0, "1970-01-01T00:00:00.000Z");
        check(951_782_400, 5, "2000-02-29T00:00:00.005Z");
        check(1_795_513_038, 123, "2026-11-24T09:37:18.123Z");
        check(4_107_542_399, 999, "2100-02-28T23:59:59.999Z");
    }
}
