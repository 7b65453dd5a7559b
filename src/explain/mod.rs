//! `kapauth explain USER METHOD TARGET`: what `kapauth serve` would answer a request and why
//! (SPEC §1–§3, §6, §7), for an operator where the config is. This file owns the I/O: it finds
//! the user where the gateway would (the embedded store's file, or the meta API through the
//! gateway's own `MetaClient`), prints `report.rs`'s text and turns the outcome into the exit
//! code. It never asks for, reads or prints a password, hash or secret.
//!
//! Like `serve.rs` it knows both programs: the embedded store is read with `meta_server::disk`.
//! The store file is read without taking the directory's lock, not through the embedded meta
//! API: `kapauth serve` holds the lock for as long as it runs, the file is only ever replaced
//! whole by a rename (so an unlocked read sees one acknowledged state), and reading it needs no
//! meta credentials and works whether or not the gateway is running. What it needs is read
//! access to `[meta] dir`, which is the service user's: run explain as that user.

pub mod args;
pub mod report;

use std::fmt;

use crate::config::Config;
use crate::gateway::authenticate::meta_client::MetaClient;
use crate::gateway::authenticate::{MetaSource, MetaUser, Unavailable};
use crate::meta_server::disk::{DiskError, STORE_FILE, read_store};
use crate::meta_server::store::State;
use args::{DENIED, Invocation, UNDECIDED};
use report::{Outcome, Question, Setup};

/// Explains the invocation's request under `config`; returns the exit code (`args::ALLOWED`,
/// `DENIED` or `UNDECIDED`).
pub fn run(invocation: &Invocation, config: &Config) -> i32 {
    let source = match Source::open(config) {
        Ok(source) => source,
        Err(error) => {
            eprintln!("kapauth: explain: {error}");
            return UNDECIDED;
        }
    };
    let question = Question {
        user: &invocation.user,
        method: &invocation.method,
        target: &invocation.target,
    };
    let description = source.description();
    let setup = Setup {
        auth_on: config.auth_on(),
        resolve_roles: config.auth.resolve_roles,
        upstream: &config.gateway.upstream,
        source: &description,
    };
    match report::explain(question, setup, |name| source.user(name)) {
        Ok(report) => {
            print!("{}", report.text);
            match report.outcome {
                Outcome::Allowed => args::ALLOWED,
                Outcome::Denied => DENIED,
            }
        }
        Err(Unavailable(reason)) => {
            eprintln!(
                "kapauth: explain: cannot look up {:?} in {description}: {reason}; a gateway that cannot either answers 503, unless it holds a live cache entry for the user",
                invocation.user
            );
            UNDECIDED
        }
    }
}

/// Where users come from: the embedded store's file as it is on disk, or the meta API.
enum Source {
    /// `None`: no store file yet, so no users.
    Store {
        path: std::path::PathBuf,
        state: Option<State>,
    },
    Meta {
        client: MetaClient,
        addr: String,
    },
}

/// The user source could not be opened.
#[derive(Debug)]
enum SourceError {
    /// The embedded store's file could not be read or is not a store.
    Store(DiskError),
    /// The meta client's TLS material could not be loaded.
    MetaTls(String),
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceError::Store(error) => {
                error.fmt(f)?;
                if let DiskError::Io { error, .. } = error
                    && error.kind() == std::io::ErrorKind::PermissionDenied
                {
                    f.write_str("; run kapauth explain as the user that owns [meta] dir (the one kapauth serve runs as)")?;
                }
                Ok(())
            }
            SourceError::MetaTls(error) => write!(f, "[auth] meta TLS: {error}"),
        }
    }
}

impl Source {
    fn open(config: &Config) -> Result<Source, SourceError> {
        if config.auth.meta_addr.is_empty() {
            let dir = &config.meta.dir;
            let state = read_store(dir).map_err(SourceError::Store)?;
            Ok(Source::Store {
                path: dir.join(STORE_FILE),
                state,
            })
        } else {
            let client =
                MetaClient::new(&config.auth).map_err(|e| SourceError::MetaTls(e.to_string()))?;
            let scheme = if config.auth.meta_tls.is_some() {
                "https"
            } else {
                "http"
            };
            Ok(Source::Meta {
                client,
                addr: format!("{scheme}://{}", config.auth.meta_addr),
            })
        }
    }

    fn description(&self) -> String {
        match self {
            Source::Store {
                path,
                state: Some(_),
            } => format!("the embedded store {}", path.display()),
            Source::Store { path, state: None } => format!(
                "the embedded store {} (no such file yet: the store is empty)",
                path.display()
            ),
            Source::Meta { addr, .. } => format!("the meta API at {addr}"),
        }
    }

    /// The user and the roles that list it, as the gateway's `MetaSource` gives them.
    fn user(&self, name: &str) -> Result<Option<MetaUser>, Unavailable> {
        match self {
            Source::Store { state, .. } => Ok(state.as_ref().and_then(|state| {
                let user = state.user_doc(name)?;
                let roles = state.roles_of(name);
                Some(MetaUser { user, roles })
            })),
            Source::Meta { client, .. } => client.user(name),
        }
    }
}
