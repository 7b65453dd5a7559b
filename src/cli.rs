//! The command line (SPEC §9): `kapauth serve|meta|check-config|version [--config FILE]`,
//! `--set section.key=value` flags, and `--help` for each; `kapauth user|role …` are
//! parsed by `admin::args`, `kapauth explain …` by `explain::args`. Parsing is a pure function
//! of the arguments; `main` loads the configuration and hands it to the program asked for. A
//! usage error is one line on stderr and exit code 2; a bad configuration is exit code 1
//! (2 for explain, whose 1 means "refused").

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use crate::admin::action::Kind;
use crate::admin::args::{Parsed, UsageError};
use crate::config::{self, Config, ConfigError};
use crate::explain::args as explain;

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Serve(Options),
    Meta(Options),
    CheckConfig(Options),
    Version,
    /// Print the help of a program (`None`: the top-level help).
    Help(Option<Program>),
    /// `kapauth user …` or `kapauth role …`.
    Admin(Parsed),
    /// `kapauth explain …`.
    Explain(explain::Parsed),
}

/// The programs that take a configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    Serve,
    Meta,
    CheckConfig,
    Version,
}

/// Flags shared by the programs that read a configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub config: Option<PathBuf>,
    /// `section.key=value` overrides, in the order given.
    pub sets: Vec<String>,
}

/// The command line is not one kapauth understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// No program named.
    MissingCommand,
    /// A program name kapauth does not have.
    UnknownCommand(String),
    /// A flag the program does not take.
    UnknownFlag { program: &'static str, flag: String },
    /// A flag given without its value.
    MissingValue { flag: String, what: &'static str },
    /// A positional argument where none belongs.
    UnexpectedArgument {
        program: &'static str,
        argument: String,
    },
    /// A `kapauth user|role` command line that is not right.
    Admin(UsageError),
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::MissingCommand => {
                f.write_str("no command given; run 'kapauth --help' for the list")
            }
            CliError::UnknownCommand(name) => {
                write!(
                    f,
                    "unknown command {name:?}; run 'kapauth --help' for the list"
                )
            }
            CliError::UnknownFlag { program, flag } => {
                let invocation = invocation(program);
                write!(
                    f,
                    "unknown flag {flag} for '{invocation}'; run '{invocation} --help'"
                )
            }
            CliError::MissingValue { flag, what } => write!(f, "{flag} needs a value ({what})"),
            CliError::UnexpectedArgument { program, argument } => {
                let invocation = invocation(program);
                write!(
                    f,
                    "unexpected argument {argument:?} for '{invocation}'; run '{invocation} --help'"
                )
            }
            CliError::Admin(error) => error.fmt(f),
        }
    }
}

/// Runs kapauth with the process's arguments and environment; returns the exit code.
pub fn main() -> i32 {
    let command = match parse_args(std::env::args_os().skip(1)) {
        Ok(command) => command,
        Err(error) => {
            eprintln!("kapauth: {error}");
            return 2;
        }
    };
    match command {
        Command::Help(program) => {
            print!("{}", help(program));
            0
        }
        Command::Version => {
            println!("kapauth {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Command::CheckConfig(options) => match load(&options) {
            Ok((effective, config)) => match crate::tls::check(&config) {
                Ok(()) => {
                    print!("{}", effective.render());
                    0
                }
                Err(error) => {
                    eprintln!("kapauth: config: {error}");
                    1
                }
            },
            Err(error) => config_failed(&error),
        },
        Command::Serve(options) => match load(&options) {
            Ok((effective, config)) => crate::serve::run(&config, effective, reloader(options)),
            Err(error) => config_failed(&error),
        },
        Command::Meta(options) => match load(&options) {
            Ok((effective, config)) => {
                crate::meta_server::run(&config, effective, reloader(options))
            }
            Err(error) => config_failed(&error),
        },
        Command::Admin(Parsed::Help(text)) => {
            print!("{text}");
            0
        }
        Command::Admin(Parsed::Run(invocation)) => match load(&invocation.options) {
            Ok((_, config)) => crate::admin::run(&invocation, &config),
            Err(error) => config_failed(&error),
        },
        Command::Explain(explain::Parsed::Help(text)) => {
            print!("{text}");
            0
        }
        // Exit 1 means "denied" to explain, so a bad configuration is its UNDECIDED.
        Command::Explain(explain::Parsed::Run(invocation)) => match load(&invocation.options) {
            Ok((_, config)) => crate::explain::run(&invocation, &config),
            Err(error) => config_failed(&error).max(explain::UNDECIDED),
        },
    }
}

/// Parses the arguments after the program name.
pub fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Command, CliError> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let program = match parser
        .next()
        .map_err(|error| to_cli_error("kapauth", error))?
    {
        None => return Err(CliError::MissingCommand),
        Some(Short('h') | Long("help")) => return Ok(Command::Help(None)),
        Some(Long("version")) => return Ok(Command::Version),
        Some(Value(name)) => match name.to_string_lossy().as_ref() {
            "serve" => Program::Serve,
            "meta" => Program::Meta,
            "check-config" => Program::CheckConfig,
            "version" => Program::Version,
            "help" => return Ok(Command::Help(None)),
            "user" => return admin(Kind::User, &mut parser),
            "role" => return admin(Kind::Role, &mut parser),
            "explain" => {
                return explain::parse(&mut parser)
                    .map(Command::Explain)
                    .map_err(CliError::Admin);
            }
            other => return Err(CliError::UnknownCommand(other.to_string())),
        },
        Some(Short(c)) => {
            return Err(CliError::UnknownFlag {
                program: "",
                flag: format!("-{c}"),
            });
        }
        Some(Long(flag)) => {
            return Err(CliError::UnknownFlag {
                program: "",
                flag: format!("--{flag}"),
            });
        }
    };
    let name = program_name(program);
    let mut options = Options::default();
    while let Some(arg) = parser.next().map_err(|error| to_cli_error(name, error))? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help(Some(program))),
            Short('c') | Long("config") if program != Program::Version => {
                let value = parser.value().map_err(|_| CliError::MissingValue {
                    flag: "--config".to_string(),
                    what: "a config file path",
                })?;
                options.config = Some(PathBuf::from(value));
            }
            Long("set") if program != Program::Version => {
                let value = parser.value().map_err(|_| CliError::MissingValue {
                    flag: "--set".to_string(),
                    what: "section.key=value",
                })?;
                options.sets.push(value.to_string_lossy().into_owned());
            }
            Short(c) => {
                return Err(CliError::UnknownFlag {
                    program: name,
                    flag: format!("-{c}"),
                });
            }
            Long(flag) => {
                return Err(CliError::UnknownFlag {
                    program: name,
                    flag: format!("--{flag}"),
                });
            }
            Value(value) => {
                return Err(CliError::UnexpectedArgument {
                    program: name,
                    argument: value.to_string_lossy().into_owned(),
                });
            }
        }
    }
    Ok(match program {
        Program::Serve => Command::Serve(options),
        Program::Meta => Command::Meta(options),
        Program::CheckConfig => Command::CheckConfig(options),
        Program::Version => Command::Version,
    })
}

/// The help text of a program, or the top-level help.
pub fn help(program: Option<Program>) -> String {
    const FLAGS: &str = "\nFlags:\n  -c, --config FILE        read FILE (TOML; a kapacitor.conf works: only [http], [auth],\n                           [gateway] and [meta] are read)\n      --set SECTION.KEY=V  override one key, e.g. --set gateway.upstream=http://127.0.0.1:9093\n  -h, --help               print this help\n\nPrecedence: defaults < file < environment (KAPACITOR_HTTP_*, KAPACITOR_AUTH_*,\nKAPAUTH_GATEWAY_*, KAPAUTH_META_*) < --set flags.\n";
    match program {
        None => "kapauth: InfluxDB Enterprise-style authentication in front of Kapacitor\n\nUsage: kapauth <command> [flags]\n\nCommands:\n  serve         run the gateway on [http] bind-address (and the embedded meta store\n                when [auth] meta-addr is empty)\n  meta          run the meta API user and role server on [meta] bind-address\n  check-config  print the effective configuration, secrets redacted\n  user          add, remove, grant, revoke and list the meta API's users\n  role          the same for roles, and their members\n  explain       say what serve would answer USER's METHOD TARGET request, and why\n  version       print the version\n\nRun 'kapauth <command> --help' for a command's flags.\n".to_string(),
        Some(Program::Serve) => format!("Usage: kapauth serve [--config FILE] [--set SECTION.KEY=VALUE]...\n\nAuthenticates requests against the meta API, authorizes them with Kapacitor's\nprivilege rules and forwards the allowed ones to [gateway] upstream.\n{FLAGS}"),
        Some(Program::Meta) => format!("Usage: kapauth meta [--config FILE] [--set SECTION.KEY=VALUE]...\n\nServes the meta API's /user, /role and /authorized endpoints from a durable\nstore in [meta] dir.\n{FLAGS}"),
        Some(Program::CheckConfig) => format!("Usage: kapauth check-config [--config FILE] [--set SECTION.KEY=VALUE]...\n\nPrints the effective configuration with each value's origin and exits 0, or\nnames what is wrong and exits 1. Secrets print as <redacted>.\n{FLAGS}"),
        Some(Program::Version) => "Usage: kapauth version\n\nPrints the version.\n".to_string(),
    }
}

fn admin(kind: Kind, parser: &mut lexopt::Parser) -> Result<Command, CliError> {
    crate::admin::args::parse(kind, parser)
        .map(Command::Admin)
        .map_err(CliError::Admin)
}

/// File, then environment, then flags (SPEC §9).
fn load(options: &Options) -> Result<(config::Effective, Config), ConfigError> {
    let mut settings = match &options.config {
        Some(path) => config::file::read_settings(path)?,
        None => Vec::new(),
    };
    let vars = std::env::vars_os().filter_map(|(name, value)| {
        Some((
            name.into_string().ok()?,
            value.to_string_lossy().into_owned(),
        ))
    });
    settings.extend(config::env::settings_from_env(vars)?);
    settings.extend(config::env::settings_from_flags(&options.sets)?);
    let effective = config::layer(&settings)?;
    let config = effective.build()?;
    Ok((effective, config))
}

/// Reads the configuration again as it was read at the start, for SIGHUP; the error also
/// checks the TLS material, as `check-config` does.
fn reloader(options: Options) -> crate::lifecycle::Reloader {
    Box::new(move || {
        let (effective, config) = load(&options).map_err(|error| error.to_string())?;
        crate::tls::check(&config).map_err(|error| error.to_string())?;
        Ok((effective, config))
    })
}

fn config_failed(error: &ConfigError) -> i32 {
    eprintln!("kapauth: config: {error}");
    1
}

fn program_name(program: Program) -> &'static str {
    match program {
        Program::Serve => "serve",
        Program::Meta => "meta",
        Program::CheckConfig => "check-config",
        Program::Version => "version",
    }
}

/// `kapauth` for the top level (`program` empty), else `kapauth PROGRAM`.
fn invocation(program: &str) -> String {
    if program.is_empty() {
        "kapauth".to_string()
    } else {
        format!("kapauth {program}")
    }
}

fn to_cli_error(program: &'static str, error: lexopt::Error) -> CliError {
    match error {
        lexopt::Error::MissingValue { option } => CliError::MissingValue {
            flag: option.unwrap_or_default(),
            what: "see --help",
        },
        lexopt::Error::UnexpectedValue { option, .. } => CliError::UnknownFlag {
            program,
            flag: format!("{option}=…"),
        },
        other => CliError::UnexpectedArgument {
            program,
            argument: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(args: &[&str], expected: Result<Command, CliError>) {
        let args = args.iter().map(OsString::from);
        assert_eq!(parse_args(args), expected);
    }

    fn options(config: Option<&str>, sets: &[&str]) -> Options {
        Options {
            config: config.map(PathBuf::from),
            sets: sets.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn commands_and_flags_parse() {
        check(&["serve"], Ok(Command::Serve(Options::default())));
        check(
            &["serve", "--config", "k.conf"],
            Ok(Command::Serve(options(Some("k.conf"), &[]))),
        );
        check(
            &["serve", "--config=k.conf"],
            Ok(Command::Serve(options(Some("k.conf"), &[]))),
        );
        check(
            &["meta", "-c", "m.conf"],
            Ok(Command::Meta(options(Some("m.conf"), &[]))),
        );
        check(
            &[
                "check-config",
                "--set",
                "http.bind-address=:1",
                "--set",
                "meta.dir=/d",
            ],
            Ok(Command::CheckConfig(options(
                None,
                &["http.bind-address=:1", "meta.dir=/d"],
            ))),
        );
        check(&["version"], Ok(Command::Version));
        check(&["--version"], Ok(Command::Version));
        check(&["--help"], Ok(Command::Help(None)));
        check(&["-h"], Ok(Command::Help(None)));
        check(&["help"], Ok(Command::Help(None)));
        check(
            &["serve", "--help"],
            Ok(Command::Help(Some(Program::Serve))),
        );
        check(&["meta", "-h"], Ok(Command::Help(Some(Program::Meta))));
        check(
            &["check-config", "--help"],
            Ok(Command::Help(Some(Program::CheckConfig))),
        );
        check(
            &["version", "--help"],
            Ok(Command::Help(Some(Program::Version))),
        );
        // `user` and `role` hand the rest to admin::args.
        check(
            &["user", "list", "-c", "k.conf"],
            Ok(Command::Admin(Parsed::Run(
                crate::admin::args::Invocation {
                    options: options(Some("k.conf"), &[]),
                    meta: None,
                    operation: crate::admin::action::Operation::List(Kind::User),
                },
            ))),
        );
        check(
            &["explain", "alice", "GET", "/kapacitor/v1/tasks"],
            Ok(Command::Explain(explain::Parsed::Run(
                explain::Invocation {
                    options: Options::default(),
                    user: "alice".to_string(),
                    method: "GET".to_string(),
                    target: "/kapacitor/v1/tasks".to_string(),
                },
            ))),
        );
        check(
            &["role", "--help"],
            Ok(Command::Admin(Parsed::Help(
                crate::admin::args::group_help(Kind::Role),
            ))),
        );
    }

    #[test]
    fn usage_errors_name_the_problem() {
        check(&[], Err(CliError::MissingCommand));
        check(
            &["role"],
            Err(CliError::Admin(UsageError::MissingSubcommand(Kind::Role))),
        );
        check(&["srve"], Err(CliError::UnknownCommand("srve".to_string())));
        check(
            &["--bogus"],
            Err(CliError::UnknownFlag {
                program: "",
                flag: "--bogus".to_string(),
            }),
        );
        check(
            &["serve", "--bogus"],
            Err(CliError::UnknownFlag {
                program: "serve",
                flag: "--bogus".to_string(),
            }),
        );
        check(
            &["meta", "-x"],
            Err(CliError::UnknownFlag {
                program: "meta",
                flag: "-x".to_string(),
            }),
        );
        check(
            &["version", "--config", "x"],
            Err(CliError::UnknownFlag {
                program: "version",
                flag: "--config".to_string(),
            }),
        );
        check(
            &["serve", "--config"],
            Err(CliError::MissingValue {
                flag: "--config".to_string(),
                what: "a config file path",
            }),
        );
        check(
            &["serve", "--set"],
            Err(CliError::MissingValue {
                flag: "--set".to_string(),
                what: "section.key=value",
            }),
        );
        check(
            &["serve", "extra"],
            Err(CliError::UnexpectedArgument {
                program: "serve",
                argument: "extra".to_string(),
            }),
        );
        check(
            &["serve", "--config=a", "--set=x", "--bogus=1"],
            Err(CliError::UnknownFlag {
                program: "serve",
                flag: "--bogus".to_string(),
            }),
        );
    }

    #[test]
    fn usage_error_messages_are_one_line_naming_the_flag() {
        let error = CliError::UnknownFlag {
            program: "serve",
            flag: "--bogus".to_string(),
        };
        assert_eq!(
            error.to_string(),
            "unknown flag --bogus for 'kapauth serve'; run 'kapauth serve --help'"
        );
        let error = CliError::MissingValue {
            flag: "--config".to_string(),
            what: "a config file path",
        };
        assert_eq!(
            error.to_string(),
            "--config needs a value (a config file path)"
        );
        let error = CliError::UnknownFlag {
            program: "",
            flag: "-x".to_string(),
        };
        assert_eq!(
            error.to_string(),
            "unknown flag -x for 'kapauth'; run 'kapauth --help'"
        );
    }
}
