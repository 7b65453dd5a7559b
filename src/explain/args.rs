//! The command line of `kapauth explain` (lexopt) and its `--help`. `cli.rs` hands over the
//! parser after the word `explain`; this turns the rest into an `Invocation` or the help
//! text. Pure: no I/O. It takes no password: explain looks a user up as an operator, where
//! the config is, and never checks one.

use std::ffi::OsString;

use crate::admin::args::UsageError;
use crate::cli::Options;

/// A parsed `kapauth explain` command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Help(String),
    Run(Invocation),
}

/// The request to explain, and where the configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub options: Options,
    pub user: String,
    /// As a client would send it: `options` and `OPTIONS` are different methods.
    pub method: String,
    /// The request target: a path, and a query when it has one (`/write?db=telegraf`).
    pub target: String,
}

/// Exit code of an allowed request.
pub const ALLOWED: i32 = 0;
/// Exit code of a request kapauth would answer with a refusal.
pub const DENIED: i32 = 1;
/// Exit code when no answer could be worked out: a usage error, a bad configuration, a
/// store or meta API that could not be read.
pub const UNDECIDED: i32 = 2;

/// Reads the arguments after `explain`.
pub fn parse(parser: &mut lexopt::Parser) -> Result<Parsed, UsageError> {
    use lexopt::prelude::*;
    let mut options = Options::default();
    let mut operands = Vec::new();
    while let Some(arg) = parser.next().map_err(|error| UsageError::Unreadable {
        command: COMMAND.to_string(),
        problem: error.to_string(),
    })? {
        match arg {
            Short('h') | Long("help") => return Ok(Parsed::Help(help())),
            Short('c') | Long("config") => {
                let value = flag_value(parser, "--config", "a config file path")?;
                options.config = Some(value.into());
            }
            Long("set") => {
                let value = flag_value(parser, "--set", "section.key=value")?;
                options.sets.push(text(value)?);
            }
            Value(value) if operands.len() < NAMES.len() => operands.push(text(value)?),
            Value(value) => {
                return Err(UsageError::ExtraOperand {
                    command: COMMAND.to_string(),
                    value: value.to_string_lossy().into_owned(),
                });
            }
            Short(flag) => return Err(unknown_flag(format!("-{flag}"))),
            Long(flag) => return Err(unknown_flag(format!("--{flag}"))),
        }
    }
    if let Some(what) = MISSING.get(operands.len()) {
        return Err(UsageError::MissingOperand {
            command: COMMAND.to_string(),
            what,
        });
    }
    if let Some(index) = operands.iter().position(String::is_empty) {
        return Err(UsageError::EmptyOperand {
            command: COMMAND.to_string(),
            what: NAMES[index],
        });
    }
    let mut operands = operands.into_iter();
    let mut next = || operands.next().unwrap_or_default();
    let (user, method, target) = (next(), next(), next());
    Ok(Parsed::Run(Invocation {
        options,
        user,
        method,
        target,
    }))
}

/// `kapauth explain --help`.
pub fn help() -> String {
    "Usage: kapauth explain [--config FILE] [--set SECTION.KEY=VALUE]... USER METHOD TARGET

Says what kapauth serve would answer USER's METHOD TARGET request (e.g. GET
/kapacitor/v1/tasks, or POST '/write?db=telegraf') and why: the user's grants
and the permission and role each came from, the resource walk step by step, the
decision, and the exact status, headers and body a client would get.

USER is looked up as the gateway looks it up: in the embedded store's file in
[meta] dir when [auth] meta-addr is empty (read without taking the lock, so it
works while kapauth serve runs; run it as the user that owns the directory), else
in the meta API at [auth] meta-addr with the [auth] meta credentials. No password
is asked for or checked: the answer is the one for USER's right password or token
(a wrong one gets 401 \"authorization failed\"). An external meta's changes reach a
running gateway only when its cached entry expires ([auth] cache-expiration).

Exit status: 0 the request would be allowed (forwarded to Kapacitor), 1 it would
be refused (the answer is printed), 2 a usage error, a bad configuration, or a
store or meta API that could not be read.

Flags:
  -c, --config FILE        read FILE (TOML; a kapacitor.conf works)
      --set SECTION.KEY=V  override one key, e.g. --set auth.resolve-roles=false
  -h, --help               print this help
"
    .to_string()
}

const COMMAND: &str = "explain";

/// The operands, in order.
const NAMES: [&str; 3] = ["USER", "METHOD", "TARGET"];

/// What is missing when that many operands were given.
const MISSING: [&str; 3] = ["USER, METHOD and TARGET", "METHOD and TARGET", "TARGET"];

fn unknown_flag(flag: String) -> UsageError {
    UsageError::UnknownFlag {
        command: COMMAND.to_string(),
        flag,
    }
}

fn flag_value(
    parser: &mut lexopt::Parser,
    flag: &str,
    what: &'static str,
) -> Result<OsString, UsageError> {
    parser.value().map_err(|_| UsageError::MissingValue {
        flag: flag.to_string(),
        what,
    })
}

/// An argument as text: a byte that is not UTF-8 is refused rather than replaced, since a
/// name or a path with a replaced byte is another name or path.
fn text(argument: OsString) -> Result<String, UsageError> {
    argument
        .into_string()
        .map_err(|argument| UsageError::NotUtf8 {
            command: COMMAND.to_string(),
            argument: argument.to_string_lossy().into_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a command line should give: user, method, target, `--config`, `--set`s.
    type Expected<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, &'a [&'a str]);

    /// The invocation a command line gives, or its usage error's text.
    fn check(args: &[&str], expected: Result<Expected<'_>, &str>) {
        let mut parser = lexopt::Parser::from_args(args.iter().map(OsString::from));
        let parsed = parse(&mut parser).map_err(|error| error.to_string());
        let expected = expected.map(|(user, method, target, config, sets)| {
            Parsed::Run(Invocation {
                options: Options {
                    config: config.map(Into::into),
                    sets: sets.iter().map(|set| set.to_string()).collect(),
                },
                user: user.to_string(),
                method: method.to_string(),
                target: target.to_string(),
            })
        });
        assert_eq!(parsed, expected.map_err(str::to_string), "{args:?}");
    }

    #[rustfmt::skip]
    #[test]
    fn command_lines_parse_to_a_request_or_name_the_problem() {
        check(&["alice", "GET", "/kapacitor/v1/tasks"], Ok(("alice", "GET", "/kapacitor/v1/tasks", None, &[])));
        check(&["-c", "k.conf", "alice", "post", "/write?db=x"], Ok(("alice", "post", "/write?db=x", Some("k.conf"), &[])));
        check(&["alice", "--config=k.conf", "GET", "/", "--set", "auth.resolve-roles=false"], Ok(("alice", "GET", "/", Some("k.conf"), &["auth.resolve-roles=false"])));
        check(&["--", "-alice", "GET", "/"], Ok(("-alice", "GET", "/", None, &[])));
        check(&[], Err("'kapauth explain' needs USER, METHOD and TARGET; run 'kapauth explain --help'"));
        check(&["alice"], Err("'kapauth explain' needs METHOD and TARGET; run 'kapauth explain --help'"));
        check(&["alice", "GET"], Err("'kapauth explain' needs TARGET; run 'kapauth explain --help'"));
        check(&["alice", "GET", "/", "extra"], Err("unexpected argument \"extra\" for 'kapauth explain'; run 'kapauth explain --help'"));
        check(&["", "GET", "/"], Err("USER of 'kapauth explain' is empty"));
        check(&["alice", "GET", ""], Err("TARGET of 'kapauth explain' is empty"));
        check(&["alice", "GET", "/", "--password", "x"], Err("unknown flag --password for 'kapauth explain'; run 'kapauth explain --help'"));
        check(&["-x"], Err("unknown flag -x for 'kapauth explain'; run 'kapauth explain --help'"));
        check(&["--config"], Err("--config needs a value (a config file path)"));
    }

    #[test]
    fn help_says_what_each_exit_code_means() {
        let mut parser = lexopt::Parser::from_args(["alice", "--help"].map(OsString::from));
        let Ok(Parsed::Help(text)) = parse(&mut parser) else {
            panic!("--help gives the help");
        };
        assert!(
            text.contains("Exit status: 0 the request would be allowed"),
            "{text}"
        );
        assert!(text.contains("1 it would\nbe refused"), "{text}");
        assert!(text.contains("2 a usage error"), "{text}");
    }
}
