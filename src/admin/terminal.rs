//! Where `kapauth user add` and `user passwd` get a password: never from the command line
//! (where `ps` and shell history see it). When stdin is a terminal, from a prompt on
//! `/dev/tty` with echo off, asked twice; otherwise one line of stdin, so a script can
//! pipe it in. No libc and no `unsafe` (`#![forbid(unsafe_code)]`): the terminal is
//! switched with `stty` run on `/dev/tty`, and `TerminalMode`'s `Drop` puts back the
//! exact settings `stty -g` saved, on every way out of the prompt (a password, an
//! error, a panic). Signals are off while the prompt reads (`-isig`), so Ctrl-C arrives
//! as a byte that cancels the prompt through that same path, instead of killing the
//! process with echo still off. A signal sent from elsewhere (SIGTERM, SIGKILL, a hangup)
//! still ends the process at once: without libc there is no handler to restore from, and
//! `stty sane` repairs the terminal. The line editing is the pure `edit`.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::process::{Command, Stdio};

use crate::secret::password::Password;

/// The longest password line read; bcrypt uses 72 bytes and the meta API refuses more.
const MAX_LINE: usize = 1024;

/// No password could be read.
#[derive(Debug)]
pub enum PasswordError {
    /// stdin was empty, or the line was.
    Empty,
    /// The line was longer than `MAX_LINE`.
    TooLong,
    /// The two typed passwords differ.
    Mismatch,
    /// Ctrl-C or Ctrl-D at the prompt.
    Cancelled,
    /// The terminal could not be switched to no-echo and back.
    Terminal(String),
    /// Reading stdin or the terminal failed.
    Read(io::Error),
}

impl fmt::Display for PasswordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordError::Empty => f.write_str(
                "no password given: type it at the prompt, or pipe one line on stdin (e.g. from a file readable only by you)",
            ),
            PasswordError::TooLong => write!(
                f,
                "the password line is longer than {MAX_LINE} bytes; the meta API takes at most 72"
            ),
            PasswordError::Mismatch => f.write_str("the two passwords differ; nothing was sent"),
            PasswordError::Cancelled => f.write_str("cancelled at the password prompt; nothing was sent"),
            PasswordError::Terminal(problem) => write!(
                f,
                "cannot turn off echo on the terminal ({problem}); pipe the password on stdin instead"
            ),
            PasswordError::Read(error) => write!(f, "cannot read the password: {error}"),
        }
    }
}

/// The password for user `name`: from a no-echo prompt typed twice when stdin is a
/// terminal, else the first line of stdin (without its line ending).
pub fn read_password(name: &str) -> Result<Password, PasswordError> {
    if io::stdin().is_terminal() {
        prompt_twice(name)
    } else {
        let mut line = Vec::new();
        io::stdin()
            .lock()
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(PasswordError::Read)?;
        password_from_line(line)
    }
}

fn prompt_twice(name: &str) -> Result<Password, PasswordError> {
    let mut tty = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|error| PasswordError::Terminal(format!("cannot open /dev/tty: {error}")))?;
    let first = prompt(&mut tty, &format!("Password for {name:?}: "))?;
    let second = prompt(&mut tty, "Type it again: ")?;
    if first != second {
        return Err(PasswordError::Mismatch);
    }
    password_from_line(first)
}

/// One line typed with echo off. The mode is restored before this returns, whatever
/// happens: `mode` is dropped on each path out.
fn prompt(tty: &mut File, text: &str) -> Result<Vec<u8>, PasswordError> {
    let mode = TerminalMode::no_echo(tty)?;
    tty.write_all(text.as_bytes())
        .and_then(|()| tty.flush())
        .map_err(PasswordError::Read)?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    let outcome = loop {
        match tty.read(&mut byte) {
            Ok(0) => break Edit::Cancel,
            Ok(_) => match edit(&mut line, byte[0]) {
                Edit::Continue if line.len() > MAX_LINE => break Edit::Done,
                Edit::Continue => continue,
                done_or_cancel => break done_or_cancel,
            },
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(PasswordError::Read(error)),
        }
    };
    drop(mode);
    // Echo was off, so the Enter the user typed did not move the cursor.
    let _ = tty.write_all(b"\n");
    match outcome {
        Edit::Done => Ok(line),
        Edit::Cancel | Edit::Continue => Err(PasswordError::Cancelled),
    }
}

/// What one typed byte does to the line being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edit {
    Continue,
    Done,
    Cancel,
}

/// Applies one byte read from a terminal in non-canonical mode, doing the terminal's
/// line editing by hand: Enter ends the line; Ctrl-C cancels, and Ctrl-D on an empty
/// line too; Backspace (DEL or ^H) removes the last character, all of its UTF-8 bytes;
/// Ctrl-U clears the line; other control bytes are ignored.
fn edit(line: &mut Vec<u8>, byte: u8) -> Edit {
    match byte {
        b'\r' | b'\n' => Edit::Done,
        0x03 => Edit::Cancel,
        0x04 if line.is_empty() => Edit::Cancel,
        0x7f | 0x08 => {
            // UTF-8 continuation bytes are 0b10xxxxxx: drop them, then the lead byte.
            while line.last().is_some_and(|b| b & 0xC0 == 0x80) {
                line.pop();
            }
            line.pop();
            Edit::Continue
        }
        0x15 => {
            line.clear();
            Edit::Continue
        }
        control if control < 0x20 => Edit::Continue,
        _ => {
            line.push(byte);
            Edit::Continue
        }
    }
}

/// One line as a password: the line ending removed, UTF-8 required, not empty.
fn password_from_line(mut line: Vec<u8>) -> Result<Password, PasswordError> {
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
    // A line cut at `MAX_LINE + 1` bytes has no ending left to remove, so it is caught here.
    if line.len() > MAX_LINE {
        return Err(PasswordError::TooLong);
    }
    if line.is_empty() {
        return Err(PasswordError::Empty);
    }
    String::from_utf8(line)
        .map(Password::new)
        .map_err(|_| PasswordError::Read(io::Error::other("the password is not UTF-8")))
}

/// The terminal switched to no echo, no line editing and no signals; its `Drop` puts
/// back the settings it found.
struct TerminalMode {
    tty: File,
    saved: String,
}

impl TerminalMode {
    fn no_echo(tty: &File) -> Result<TerminalMode, PasswordError> {
        let tty = tty
            .try_clone()
            .map_err(|error| PasswordError::Terminal(error.to_string()))?;
        let saved = stty(&tty, &["-g"])?;
        let mode = TerminalMode {
            tty,
            saved: saved.trim().to_string(),
        };
        // `mode` exists before the change, so a half-applied change is undone too.
        stty(
            &mode.tty,
            &["-echo", "-icanon", "-isig", "min", "1", "time", "0"],
        )?;
        Ok(mode)
    }
}

impl Drop for TerminalMode {
    fn drop(&mut self) {
        // Nothing more can be done if this fails; the error was already seen by stty.
        let _ = stty(&self.tty, &[self.saved.as_str()]);
    }
}

/// Runs `stty ARGS` on `tty` and returns what it printed.
fn stty(tty: &File, args: &[&str]) -> Result<String, PasswordError> {
    let stdin = tty
        .try_clone()
        .map_err(|error| PasswordError::Terminal(error.to_string()))?;
    let output = Command::new("stty")
        .args(args)
        .stdin(Stdio::from(stdin))
        .stderr(Stdio::piped())
        .output()
        .map_err(|error| PasswordError::Terminal(format!("cannot run stty: {error}")))?;
    if !output.status.success() {
        return Err(PasswordError::Terminal(format!(
            "stty {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `typed` to `edit` until it ends the line; returns the outcome and the line.
    fn check(typed: &[u8], expected: (Edit, &[u8])) {
        let mut line = Vec::new();
        let mut outcome = Edit::Continue;
        for byte in typed {
            outcome = edit(&mut line, *byte);
            if outcome != Edit::Continue {
                break;
            }
        }
        assert_eq!((outcome, line.as_slice()), expected, "{typed:?}");
    }

    #[test]
    fn typed_bytes_edit_the_line_as_a_terminal_would() {
        check(b"secret\r", (Edit::Done, b"secret"));
        check(b"secret\n", (Edit::Done, b"secret"));
        check(b"\r", (Edit::Done, b""));
        check(b"secrex\x7ft\r", (Edit::Done, b"secret"));
        check(b"secrex\x08t\r", (Edit::Done, b"secret"));
        check(b"\x7f\x7fok\r", (Edit::Done, b"ok"));
        check("pä\x7f\r".as_bytes(), (Edit::Done, b"p"));
        check("p€\x7fa\r".as_bytes(), (Edit::Done, b"pa"));
        check(b"wrong\x15right\r", (Edit::Done, b"right"));
        check(b"sec\x03ret\r", (Edit::Cancel, b"sec"));
        check(b"\x04", (Edit::Cancel, b""));
        check(b"a\x04b\r", (Edit::Done, b"ab"));
        check(b"a\x1b\x1ab\r", (Edit::Done, b"ab"));
        check(b"no end", (Edit::Continue, b"no end"));
    }

    #[test]
    fn a_piped_line_becomes_the_password_without_its_ending() {
        fn check_line(line: &[u8], expected: Result<&str, &str>) {
            let actual = password_from_line(line.to_vec())
                .map(|password| password.as_str().to_string())
                .map_err(|error| error.to_string());
            assert_eq!(
                actual,
                expected.map(str::to_string).map_err(str::to_string),
                "{line:?}"
            );
        }
        let empty = "no password given: type it at the prompt, or pipe one line on stdin (e.g. from a file readable only by you)";
        check_line(b"pa5sw0Rd\n", Ok("pa5sw0Rd"));
        check_line(b"pa5sw0Rd\r\n", Ok("pa5sw0Rd"));
        check_line(b"pa5sw0Rd", Ok("pa5sw0Rd"));
        check_line(b" spaces kept \n", Ok(" spaces kept "));
        check_line(b"", Err(empty));
        check_line(b"\n", Err(empty));
        check_line(b"\r\n", Err(empty));
        check_line(
            b"\xff\n",
            Err("cannot read the password: the password is not UTF-8"),
        );
        check_line(
            &[b'a'; MAX_LINE + 1],
            Err("the password line is longer than 1024 bytes; the meta API takes at most 72"),
        );
    }
}
