//! The command lines of `kapauth user …` and `kapauth role …` (lexopt), each subcommand's
//! `--help`, and their usage errors. `cli.rs` hands over the parser after the word `user`
//! or `role`; this turns the rest into an `Invocation` or a help text. Pure: no I/O, and
//! no flag takes a password, so a password can never be put on the command line.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use super::action::{Change, Kind, Operation, Permission, UnknownPermission};
use crate::cli::Options;

/// A parsed `kapauth user|role` command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Help(String),
    Run(Invocation),
}

/// What to do and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// `--config` and `--set`: where the meta URL, credentials and TLS settings come from.
    pub options: Options,
    /// `--meta URL`, overriding the configuration's meta API.
    pub meta: Option<String>,
    pub operation: Operation,
}

/// The command line is not a `kapauth user|role` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageError {
    /// `kapauth user` with nothing after it.
    MissingSubcommand(Kind),
    /// A subcommand that does not exist.
    UnknownSubcommand { kind: Kind, name: String },
    /// A flag the subcommand does not take.
    UnknownFlag { command: String, flag: String },
    /// A flag without its value.
    MissingValue { flag: String, what: &'static str },
    /// Fewer operands than the subcommand needs.
    MissingOperand { command: String, what: &'static str },
    /// An operand that is empty.
    EmptyOperand { command: String, what: &'static str },
    /// More operands than the subcommand takes.
    ExtraOperand { command: String, value: String },
    /// A permission that is not one of the 19 tokens.
    Permission(UnknownPermission),
    /// An argument that is not UTF-8 (shown with U+FFFD for the bad bytes).
    NotUtf8 { command: String, argument: String },
    /// lexopt could not read an argument.
    Unreadable { command: String, problem: String },
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsageError::MissingSubcommand(kind) => {
                let kind = kind.word();
                write!(
                    f,
                    "'kapauth {kind}' needs a subcommand; run 'kapauth {kind} --help' for the list"
                )
            }
            UsageError::UnknownSubcommand { kind, name } => {
                let kind = kind.word();
                write!(
                    f,
                    "unknown subcommand {name:?} for 'kapauth {kind}'; run 'kapauth {kind} --help' for the list"
                )
            }
            UsageError::UnknownFlag { command, flag } => write!(
                f,
                "unknown flag {flag} for 'kapauth {command}'; run 'kapauth {command} --help'"
            ),
            UsageError::MissingValue { flag, what } => write!(f, "{flag} needs a value ({what})"),
            UsageError::MissingOperand { command, what } => write!(
                f,
                "'kapauth {command}' needs {what}; run 'kapauth {command} --help'"
            ),
            UsageError::EmptyOperand { command, what } => {
                write!(f, "{what} of 'kapauth {command}' is empty")
            }
            UsageError::ExtraOperand { command, value } => write!(
                f,
                "unexpected argument {value:?} for 'kapauth {command}'; run 'kapauth {command} --help'"
            ),
            UsageError::Permission(unknown) => unknown.fmt(f),
            UsageError::NotUtf8 { command, argument } => write!(
                f,
                "argument {argument:?} of 'kapauth {command}' is not UTF-8; names and URLs must be text"
            ),
            UsageError::Unreadable { command, problem } => {
                write!(f, "'kapauth {command}': {problem}")
            }
        }
    }
}

/// One subcommand: its words, operands, whether it takes `--db`, and its help.
struct Subcommand {
    kind: Kind,
    name: &'static str,
    operands: &'static [&'static str],
    database: bool,
    about: &'static str,
}

const SUBCOMMANDS: &[Subcommand] = &[
    Subcommand {
        kind: Kind::User,
        name: "add",
        operands: &["NAME"],
        database: false,
        about: "Creates user NAME. The password is read from a prompt (typed twice, not\nechoed) when stdin is a terminal, else as one line of stdin; never from the\ncommand line. On an empty kapauth meta store, the first user needs no meta\ncredentials and gets every permission.",
    },
    Subcommand {
        kind: Kind::User,
        name: "passwd",
        operands: &["NAME"],
        database: false,
        about: "Sets the password of user NAME, read as for 'user add'.",
    },
    Subcommand {
        kind: Kind::User,
        name: "rm",
        operands: &["NAME"],
        database: false,
        about: "Deletes user NAME.",
    },
    Subcommand {
        kind: Kind::User,
        name: "grant",
        operands: &["NAME", "PERMISSION"],
        database: true,
        about: "Gives user NAME the PERMISSION on every database, or on DB with --db.",
    },
    Subcommand {
        kind: Kind::User,
        name: "revoke",
        operands: &["NAME", "PERMISSION"],
        database: true,
        about: "Takes PERMISSION away from user NAME on every database (the \"\" scope), or\non DB with --db.",
    },
    Subcommand {
        kind: Kind::User,
        name: "list",
        operands: &[],
        database: false,
        about: "Prints every user with its roles and its permissions by database (never a\nhash).",
    },
    Subcommand {
        kind: Kind::Role,
        name: "add",
        operands: &["NAME"],
        database: false,
        about: "Creates role NAME.",
    },
    Subcommand {
        kind: Kind::Role,
        name: "rm",
        operands: &["NAME"],
        database: false,
        about: "Deletes role NAME.",
    },
    Subcommand {
        kind: Kind::Role,
        name: "grant",
        operands: &["NAME", "PERMISSION"],
        database: true,
        about: "Gives role NAME the PERMISSION on every database, or on DB with --db. kapauth\nmerges a role's permissions into its users' ([auth] resolve-roles); Kapacitor\nitself reads only the user's own.",
    },
    Subcommand {
        kind: Kind::Role,
        name: "revoke",
        operands: &["NAME", "PERMISSION"],
        database: true,
        about: "Takes PERMISSION away from role NAME on every database, or on DB with --db.",
    },
    Subcommand {
        kind: Kind::Role,
        name: "add-user",
        operands: &["ROLE", "USER"],
        database: false,
        about: "Makes USER a member of ROLE.",
    },
    Subcommand {
        kind: Kind::Role,
        name: "remove-user",
        operands: &["ROLE", "USER"],
        database: false,
        about: "Takes USER out of ROLE.",
    },
    Subcommand {
        kind: Kind::Role,
        name: "list",
        operands: &[],
        database: false,
        about: "Prints every role with its users and its permissions by database.",
    },
];

/// Parses what follows `kapauth user` or `kapauth role`.
pub fn parse(kind: Kind, parser: &mut lexopt::Parser) -> Result<Parsed, UsageError> {
    use lexopt::prelude::*;
    let group = kind.word().to_string();
    let name = match parser.next().map_err(|error| unreadable(&group, error))? {
        None => return Err(UsageError::MissingSubcommand(kind)),
        Some(Short('h') | Long("help")) => return Ok(Parsed::Help(group_help(kind))),
        Some(Value(name)) => text(&group, name)?,
        Some(Short(c)) => return Err(unknown_flag(&group, format!("-{c}"))),
        Some(Long(flag)) => return Err(unknown_flag(&group, format!("--{flag}"))),
    };
    if name == "help" {
        return Ok(Parsed::Help(group_help(kind)));
    }
    let Some(subcommand) = SUBCOMMANDS
        .iter()
        .find(|sub| sub.kind == kind && sub.name == name)
    else {
        return Err(UsageError::UnknownSubcommand { kind, name });
    };
    let command = format!("{group} {}", subcommand.name);
    let mut options = Options::default();
    let mut meta = None;
    let mut database = String::new();
    let mut operands: Vec<String> = Vec::new();
    while let Some(arg) = parser.next().map_err(|error| unreadable(&command, error))? {
        match arg {
            Short('h') | Long("help") => return Ok(Parsed::Help(help(subcommand))),
            Short('c') | Long("config") => {
                let path = parser.value().map_err(|_| UsageError::MissingValue {
                    flag: "--config".to_string(),
                    what: "a config file path",
                })?;
                options.config = Some(PathBuf::from(path));
            }
            Long("set") => {
                let set = value(parser, &command, "--set", "section.key=value")?;
                options.sets.push(set);
            }
            Long("meta") => {
                let url = value(
                    parser,
                    &command,
                    "--meta",
                    "the meta API's URL, e.g. http://127.0.0.1:8091",
                )?;
                meta = Some(url);
            }
            Long("db") if subcommand.database => {
                database = value(parser, &command, "--db", "a database name")?;
            }
            Short(c) => return Err(unknown_flag(&command, format!("-{c}"))),
            Long(flag) => return Err(unknown_flag(&command, format!("--{flag}"))),
            Value(operand) => {
                let operand = text(&command, operand)?;
                if operands.len() == subcommand.operands.len() {
                    return Err(UsageError::ExtraOperand {
                        command,
                        value: operand,
                    });
                }
                if operand.is_empty() {
                    return Err(UsageError::EmptyOperand {
                        command,
                        what: subcommand.operands[operands.len()],
                    });
                }
                operands.push(operand);
            }
        }
    }
    if let Some(what) = subcommand.operands.get(operands.len()) {
        return Err(UsageError::MissingOperand { command, what });
    }
    let operation = operation(subcommand, operands, database)?;
    Ok(Parsed::Run(Invocation {
        options,
        meta,
        operation,
    }))
}

/// The help of `kapauth user` or `kapauth role`: every subcommand.
pub fn group_help(kind: Kind) -> String {
    let word = kind.word();
    let mut text = format!(
        "Usage: kapauth {word} <subcommand> [flags]\n\nManages the {word}s of a meta API (InfluxDB Enterprise's, or kapauth meta's).\n\nSubcommands:\n"
    );
    for sub in SUBCOMMANDS.iter().filter(|sub| sub.kind == kind) {
        text.push_str(&format!("  {}\n", usage(sub)));
    }
    text.push_str(&format!(
        "\nRun 'kapauth {word} <subcommand> --help' for one subcommand.\n{FLAGS}"
    ));
    text
}

const FLAGS: &str = "\nFlags:\n      --meta URL           the meta API, e.g. https://meta1:8091 (default: [auth] meta-addr,\n                           https when meta-use-tls; when it is empty, the embedded\n                           [meta] bind-address)\n  -c, --config FILE        read the meta URL, credentials and TLS files from FILE\n      --set SECTION.KEY=V  override one key, e.g. --set auth.meta-username=admin\n  -h, --help               print this help\n\nMeta credentials: [auth] meta-internal-shared-secret (an HS512 token), else\nmeta-username and meta-password (Basic), from the file or the environment\n(KAPACITOR_AUTH_META_USERNAME, KAPACITOR_AUTH_META_PASSWORD, ...). https uses\n[auth] meta-ca, meta-cert, meta-key and meta-insecure-skip-verify.\n";

fn help(sub: &Subcommand) -> String {
    format!("Usage: kapauth {}\n\n{}\n{FLAGS}", usage(sub), sub.about)
}

/// `user grant NAME PERMISSION [--db DB] [flags]`.
fn usage(sub: &Subcommand) -> String {
    let mut line = format!("{} {}", sub.kind.word(), sub.name);
    for operand in sub.operands {
        line.push(' ');
        line.push_str(operand);
    }
    if sub.database {
        line.push_str(" [--db DB]");
    }
    line
}

/// The operation of a subcommand whose operands are all present and non-empty.
fn operation(
    sub: &Subcommand,
    operands: Vec<String>,
    database: String,
) -> Result<Operation, UsageError> {
    let kind = sub.kind;
    let mut operands = operands.into_iter();
    let Some(name) = operands.next() else {
        return Ok(Operation::List(kind));
    };
    let other = operands.next().unwrap_or_default();
    let permissions = |change| -> Result<Operation, UsageError> {
        Ok(Operation::Permissions {
            change,
            kind,
            name: name.clone(),
            permission: Permission::parse(&other).map_err(UsageError::Permission)?,
            database: database.clone(),
        })
    };
    Ok(match (kind, sub.name) {
        (Kind::User, "add") => Operation::CreateUser { name },
        (Kind::User, "passwd") => Operation::ChangePassword { name },
        (Kind::Role, "add") => Operation::CreateRole { name },
        (_, "rm") => Operation::Delete { kind, name },
        (_, "grant") => permissions(Change::Add)?,
        (_, "revoke") => permissions(Change::Remove)?,
        (_, "add-user") => Operation::Members {
            change: Change::Add,
            role: name,
            user: other,
        },
        (_, "remove-user") => Operation::Members {
            change: Change::Remove,
            role: name,
            user: other,
        },
        _ => Operation::List(kind),
    })
}

/// The value of `flag`, as text.
fn value(
    parser: &mut lexopt::Parser,
    command: &str,
    flag: &str,
    what: &'static str,
) -> Result<String, UsageError> {
    let value = parser.value().map_err(|_| UsageError::MissingValue {
        flag: flag.to_string(),
        what,
    })?;
    text(command, value)
}

/// An argument as text: names and URLs go into JSON and HTTP, so a byte that is not UTF-8
/// is refused rather than silently replaced.
fn text(command: &str, argument: OsString) -> Result<String, UsageError> {
    argument
        .into_string()
        .map_err(|argument| UsageError::NotUtf8 {
            command: command.to_string(),
            argument: argument.to_string_lossy().into_owned(),
        })
}

fn unknown_flag(command: &str, flag: String) -> UsageError {
    UsageError::UnknownFlag {
        command: command.to_string(),
        flag,
    }
}

fn unreadable(command: &str, error: lexopt::Error) -> UsageError {
    UsageError::Unreadable {
        command: command.to_string(),
        problem: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::action::examples::*;
    use super::*;

    fn parsed(kind: Kind, args: &[&str]) -> Result<Parsed, UsageError> {
        let mut parser = lexopt::Parser::from_args(args.iter().map(OsString::from));
        parse(kind, &mut parser)
    }

    /// The operation a command line runs, or its usage error's text.
    fn check(kind: Kind, args: &[&str], expected: Result<Operation, &str>) {
        check_parsed(kind, args, parsed(kind, args), expected);
    }

    /// `check` with the last argument given as raw bytes, replacing the last of `args`.
    fn check_os(kind: Kind, args: &[&str], last: &[u8], expected: Result<Operation, &str>) {
        use std::os::unix::ffi::OsStringExt;
        let mut raw: Vec<OsString> = args.iter().map(OsString::from).collect();
        raw.pop();
        raw.push(OsString::from_vec(last.to_vec()));
        let mut parser = lexopt::Parser::from_args(raw);
        check_parsed(kind, args, parse(kind, &mut parser), expected);
    }

    fn check_parsed(
        kind: Kind,
        args: &[&str],
        parsed: Result<Parsed, UsageError>,
        expected: Result<Operation, &str>,
    ) {
        let actual = match parsed {
            Ok(Parsed::Run(invocation)) => Ok(invocation.operation),
            Ok(Parsed::Help(_)) => panic!("{args:?} printed help"),
            Err(error) => Err(error.to_string()),
        };
        assert_eq!(
            actual,
            expected.map_err(str::to_string),
            "{kind:?} {args:?}"
        );
    }

    #[test]
    #[rustfmt::skip]
    fn every_subcommand_parses_to_its_operation() {
        use Change::*;
        use Kind::*;
        check(User, &["add", "johndoe"], Ok(create_user("johndoe")));
        check(User, &["passwd", "johndoe"], Ok(passwd("johndoe")));
        check(User, &["rm", "johndoe"], Ok(delete(User, "johndoe")));
        check(User, &["grant", "johndoe", "KapacitorAPI"], Ok(grant(User, "johndoe", "KapacitorAPI", "")));
        check(User, &["grant", "w", "WriteData", "--db", "telegraf"], Ok(grant(User, "w", "WriteData", "telegraf")));
        check(User, &["grant", "--db=telegraf", "w", "WriteData"], Ok(grant(User, "w", "WriteData", "telegraf")));
        check(User, &["revoke", "w", "WriteData", "--db", "telegraf"], Ok(revoke(User, "w", "WriteData", "telegraf")));
        check(User, &["list"], Ok(Operation::List(User)));
        check(Role, &["add", "penguin"], Ok(create_role("penguin")));
        check(Role, &["rm", "penguin"], Ok(delete(Role, "penguin")));
        check(Role, &["grant", "penguin", "KapacitorConfigAPI"], Ok(grant(Role, "penguin", "KapacitorConfigAPI", "")));
        check(Role, &["revoke", "penguin", "ReadData", "--db", "db1"], Ok(revoke(Role, "penguin", "ReadData", "db1")));
        check(Role, &["add-user", "penguin", "tux"], Ok(members(Add, "penguin", "tux")));
        check(Role, &["remove-user", "penguin", "tux"], Ok(members(Remove, "penguin", "tux")));
        check(Role, &["list"], Ok(Operation::List(Role)));
        // A name that looks like a flag goes after `--`.
        check(User, &["rm", "--", "-odd"], Ok(delete(User, "-odd")));
    }

    #[test]
    fn flags_give_the_config_and_the_meta_url() {
        let args = [
            "list",
            "--config",
            "k.conf",
            "--meta",
            "https://meta1:8091",
            "--set",
            "auth.meta-username=admin",
        ];
        let expected = Invocation {
            options: Options {
                config: Some(PathBuf::from("k.conf")),
                sets: vec!["auth.meta-username=admin".to_string()],
            },
            meta: Some("https://meta1:8091".to_string()),
            operation: Operation::List(Kind::User),
        };
        assert_eq!(parsed(Kind::User, &args), Ok(Parsed::Run(expected)));
    }

    #[test]
    #[rustfmt::skip]
    fn usage_errors_name_the_problem_and_the_help() {
        use Kind::*;
        check(User, &[], Err("'kapauth user' needs a subcommand; run 'kapauth user --help' for the list"));
        check(Role, &["passwd", "x"], Err("unknown subcommand \"passwd\" for 'kapauth role'; run 'kapauth role --help' for the list"));
        check(User, &["add-user", "r", "u"], Err("unknown subcommand \"add-user\" for 'kapauth user'; run 'kapauth user --help' for the list"));
        check(User, &["add"], Err("'kapauth user add' needs NAME; run 'kapauth user add --help'"));
        check(User, &["grant", "johndoe"], Err("'kapauth user grant' needs PERMISSION; run 'kapauth user grant --help'"));
        check(Role, &["add-user", "penguin"], Err("'kapauth role add-user' needs USER; run 'kapauth role add-user --help'"));
        check(User, &["add", ""], Err("NAME of 'kapauth user add' is empty"));
        check(User, &["add", "a", "b"], Err("unexpected argument \"b\" for 'kapauth user add'; run 'kapauth user add --help'"));
        check(User, &["list", "x"], Err("unexpected argument \"x\" for 'kapauth user list'; run 'kapauth user list --help'"));
        // No subcommand takes a password: it would be in argv, where `ps` shows it.
        check(User, &["add", "johndoe", "--password", "x"], Err("unknown flag --password for 'kapauth user add'; run 'kapauth user add --help'"));
        check(User, &["add", "johndoe", "-p", "x"], Err("unknown flag -p for 'kapauth user add'; run 'kapauth user add --help'"));
        check(User, &["add", "johndoe", "pa5sw0Rd"], Err("unexpected argument \"pa5sw0Rd\" for 'kapauth user add'; run 'kapauth user add --help'"));
        check(User, &["add", "x", "--db", "d"], Err("unknown flag --db for 'kapauth user add'; run 'kapauth user add --help'"));
        check(User, &["list", "--json"], Err("unknown flag --json for 'kapauth user list'; run 'kapauth user list --help'"));
        check(User, &["grant", "x", "ReadData", "--db"], Err("--db needs a value (a database name)"));
        check(User, &["list", "--meta"], Err("--meta needs a value (the meta API's URL, e.g. http://127.0.0.1:8091)"));
        check(User, &["list", "--meta=x=y", "--all"], Err("unknown flag --all for 'kapauth user list'; run 'kapauth user list --help'"));
        check(User, &["list", "--set"], Err("--set needs a value (section.key=value)"));
        check(User, &["--bogus"], Err("unknown flag --bogus for 'kapauth user'; run 'kapauth user --help'"));
        check_os(User, &["rm", "a\u{fffd}b"], b"a\xffb", Err("argument \"a\u{fffd}b\" of 'kapauth user rm' is not UTF-8; names and URLs must be text"));
        check_os(User, &["grant", "a", "ReadData", "--db", "x"], b"d\xff", Err("argument \"d\u{fffd}\" of 'kapauth user grant' is not UTF-8; names and URLs must be text"));
        let all = crate::meta_api::PERMISSIONS.join(", ");
        check(User, &["grant", "johndoe", "kapacitorAPI"], Err(&format!("unknown permission \"kapacitorAPI\" (did you mean KapacitorAPI?); the permissions are {all}")));
        check(Role, &["revoke", "r", "Admin", "--db", "x"], Err(&format!("unknown permission \"Admin\"; the permissions are {all}")));
    }

    #[test]
    fn help_is_printed_for_the_group_and_for_each_subcommand() {
        let help_of = |kind, args: &[&str]| match parsed(kind, args) {
            Ok(Parsed::Help(text)) => text,
            other => panic!("{args:?} gave {other:?}"),
        };
        for kind in [Kind::User, Kind::Role] {
            for args in [&["--help"][..], &["-h"], &["help"]] {
                let text = help_of(kind, args);
                for sub in SUBCOMMANDS.iter().filter(|sub| sub.kind == kind) {
                    assert!(
                        text.contains(&usage(sub)),
                        "{kind:?} help lacks {}",
                        usage(sub)
                    );
                }
            }
        }
        for sub in SUBCOMMANDS {
            let text = help_of(sub.kind, &[sub.name, "--help"]);
            assert!(
                text.starts_with(&format!("Usage: kapauth {}\n", usage(sub))),
                "{text}"
            );
            assert!(text.contains(sub.about));
            assert!(text.contains("--meta URL"));
        }
        assert!(
            help_of(Kind::User, &["grant", "--help"])
                .contains("user grant NAME PERMISSION [--db DB]")
        );
    }
}
