//! `kapauth meta` (SPEC §8): the meta API's user and role endpoints over a durable store,
//! also run inside `kapauth serve` when `[auth] meta-addr` is empty. This file owns the
//! current state and the order of changes: reads take a snapshot under a brief read lock;
//! writes are serialized by the disk's mutex, saved, and only then published. bcrypt runs
//! before either lock is taken.

mod access;
pub mod actions;
mod audit;
pub mod disk;
pub mod routes;
pub mod store;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use crate::config::Effective;
use crate::config::{self, Config};
use crate::http::server::{CoreStats, LiveTls, Shutdown};
use crate::http::{self, Limits, Request};
use crate::lifecycle::{self, Reloader};
use crate::log;
use crate::metrics::{Counter, Exposition};
use crate::secret::jwt::Secret;
use crate::secret::password::{Password, hash_bcrypt};
use crate::signals::{self, Signal};
use disk::{Disk, DiskError};
use store::{Mutation, State, StoreError};

/// Requests the meta server handles at once; more get a 503.
const MAX_IN_FLIGHT: usize = 64;

/// The store and what the routes need to serve it.
pub struct MetaServer {
    current: RwLock<Arc<State>>,
    disk: Mutex<Disk>,
    bcrypt_cost: u32,
    internal_secret: Secret,
    /// A hash of a random password at the store's cost, checked for unknown users.
    decoy_hash: String,
    /// Told the users each change affects, after the change is published; `serve` uses it
    /// to drop their cache entries at once (SPEC §4, kapauth).
    on_change: OnceLock<Watcher>,
    /// What `GET /metrics` reports.
    pub stats: MetaStats,
}

/// The actions counted by `kapauth_meta_changes_total`, in the order they are written.
pub const ACTIONS: [&str; 7] = [
    "create",
    "delete",
    "change-password",
    "add-permissions",
    "remove-permissions",
    "add-users",
    "remove-users",
];

/// What the meta API counts (kapauth).
#[derive(Debug, Default)]
pub struct MetaStats {
    /// Changes made, by action (`ACTIONS`).
    pub changes: [Counter; ACTIONS.len()],
    /// Changes asked for and not made: refused, invalid, failed.
    pub rejected_changes: [Counter; REJECTED.len()],
    pub logins_ok: Counter,
    pub logins_failed: Counter,
    pub core: Arc<CoreStats>,
}

impl MetaStats {
    /// The scrape of `GET /metrics`.
    pub fn render(&self) -> String {
        let mut exposition = Exposition::default();
        exposition
            .counters(
                "kapauth_meta_changes_total",
                "Changes the meta API made, by action.",
                "action",
                ACTIONS
                    .iter()
                    .zip(&self.changes)
                    .map(|(action, count)| (*action, count.get())),
            )
            .counters(
                "kapauth_meta_rejected_changes_total",
                "Changes asked for and not made: refused (credentials, or the store), invalid (the body), failed (the disk).",
                "outcome",
                REJECTED
                    .iter()
                    .map(|outcome| outcome.word())
                    .zip(&self.rejected_changes)
                    .map(|(outcome, count)| (outcome, count.get())),
            )
            .counters(
                "kapauth_meta_logins_total",
                "Basic-credential logins to the meta API, by result.",
                "result",
                [
                    ("ok", self.logins_ok.get()),
                    ("failed", self.logins_failed.get()),
                ],
            )
            .gauges(
                "kapauth_meta_open_connections",
                "Client connections open on the meta API listener.",
                "",
                [("", self.core.open_connections() as u64)],
            );
        exposition.into_text()
    }

    /// Counts a change made by its action word, or a rejected one by its outcome.
    pub fn count_change(&self, action: Option<&str>, outcome: ChangeOutcome) {
        match (action, outcome) {
            (Some(action), ChangeOutcome::Made) => {
                if let Some(index) = ACTIONS.iter().position(|known| *known == action) {
                    self.changes[index].inc();
                }
            }
            (None, ChangeOutcome::Made) => {}
            (_, rejected) => {
                if let Some(index) = REJECTED.iter().position(|known| *known == rejected) {
                    self.rejected_changes[index].inc();
                }
            }
        }
    }
}

/// What became of a change asked for: the first word of its audit line's outcome, and the
/// label it is counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOutcome {
    Made,
    /// Credentials or the store refused it.
    Refused,
    /// Its body was not a valid action.
    Invalid,
    /// kapauth could not make it (hashing, the disk).
    Failed,
}

/// The outcomes of `kapauth_meta_rejected_changes_total`, in the order they are written.
const REJECTED: [ChangeOutcome; 3] = [
    ChangeOutcome::Refused,
    ChangeOutcome::Invalid,
    ChangeOutcome::Failed,
];

impl ChangeOutcome {
    pub fn word(self) -> &'static str {
        match self {
            ChangeOutcome::Made => "ok",
            ChangeOutcome::Refused => "refused",
            ChangeOutcome::Invalid => "invalid",
            ChangeOutcome::Failed => "failed",
        }
    }
}

/// What the store tells of each change: the users it affected.
pub type Watcher = Box<dyn Fn(&BTreeSet<String>) + Send + Sync>;

/// A mutation that was not made.
#[derive(Debug)]
pub enum MutateError {
    /// It does not fit the current state.
    Store(StoreError),
    /// It could not be saved; the state is unchanged.
    Disk(DiskError),
}

impl fmt::Display for MutateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MutateError::Store(error) => error.fmt(f),
            MutateError::Disk(error) => error.fmt(f),
        }
    }
}

impl MetaServer {
    /// Opens the store in `[meta] dir`: takes its lock and reads it.
    pub fn open(meta: &config::Meta) -> Result<MetaServer, DiskError> {
        let (disk, state) = Disk::open(&meta.dir)?;
        log::info("meta store opened")
            .field("path", disk.path().display())
            .field("users", state.users.len())
            .field("roles", state.roles.len())
            .emit();
        // Nobody can log in as an unknown user, so the decoy's password need not be secret;
        // its hash gets a random salt like any other.
        let decoy = Password::new("kapauth decoy".to_string());
        let decoy_hash = hash_bcrypt(&decoy, meta.bcrypt_cost).map_err(|_| DiskError::Random)?;
        Ok(MetaServer {
            decoy_hash,
            current: RwLock::new(Arc::new(state)),
            disk: Mutex::new(disk),
            bcrypt_cost: meta.bcrypt_cost,
            internal_secret: Secret::new(meta.internal_shared_secret.expose().as_bytes()),
            on_change: OnceLock::new(),
            stats: MetaStats::default(),
        })
    }

    /// Calls `watcher` with the users each later change affects, after readers can see the
    /// change. One watcher per store; a second call is refused.
    pub fn watch(&self, watcher: Watcher) -> Result<(), String> {
        self.on_change
            .set(watcher)
            .map_err(|_| "the meta store already has a watcher".to_string())
    }

    /// The current state; later changes never alter a snapshot already taken.
    pub fn snapshot(&self) -> Arc<State> {
        // A poisoned lock still holds a whole state: every write replaces the Arc in one step.
        Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    /// Applies `mutation` to the newest state, saves it, then publishes it. Returns only
    /// after the change is on disk, so an acknowledged change survives a crash.
    pub fn mutate(&self, mutation: &Mutation) -> Result<(), MutateError> {
        let disk = self
            .disk
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let before = self.snapshot();
        let next = before.apply(mutation).map_err(MutateError::Store)?;
        disk.save(&next).map_err(MutateError::Disk)?;
        let affected = before.affected_users(&next);
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(next);
        // Still under the disk lock, so watchers hear of changes in the order they were made.
        if let Some(watcher) = self.on_change.get() {
            watcher(&affected);
        }
        Ok(())
    }

    /// A bcrypt hash at `[meta] bcrypt-cost`; runs outside every lock.
    pub fn hash(&self, password: &Password) -> Result<String, String> {
        hash_bcrypt(password, self.bcrypt_cost).map_err(|error| error.to_string())
    }

    /// Serves the meta API on `[meta] bind-address` on a thread of its own (over TLS when
    /// `[meta] https-enabled`), until `shutdown` is requested; returns the bound address and
    /// the handle a reload replaces its certificate through.
    pub fn spawn_api(
        self: &Arc<Self>,
        config: &Config,
        shutdown: &Arc<Shutdown>,
    ) -> Result<(std::net::SocketAddr, Arc<LiveTls>), String> {
        let listener = bind(config)?;
        let addr = listener.addr;
        let tls = listener.tls();
        let meta_server = Arc::clone(self);
        let limits = limits(config, self, shutdown);
        let https = config.meta.tls.is_some();
        std::thread::Builder::new()
            .name("meta-accept".into())
            .spawn(move || serve(listener, https, limits, meta_server))
            .map_err(|error| format!("cannot start the meta API's thread: {error}"))?;
        Ok((addr, tls))
    }
}

/// `kapauth meta`: serves until SIGTERM or SIGINT, then lets requests in flight finish and
/// returns 0; SIGHUP reloads its certificate. Returns 1 if it cannot start.
pub fn run(config: &Config, effective: Effective, reloader: Reloader) -> i32 {
    let meta_server = match MetaServer::open(&config.meta) {
        Ok(meta_server) => Arc::new(meta_server),
        Err(error) => {
            log::error("cannot open the meta store")
                .field("error", error)
                .emit();
            return 1;
        }
    };
    if meta_server.snapshot().users.is_empty() {
        log::warn("the meta store has no users: the first unauthenticated create becomes an administrator; create it now")
            .emit();
    }
    let listener = match bind(config) {
        Ok(listener) => listener,
        Err(error) => {
            log::error("cannot start")
                .field("service", "meta")
                .field("error", error)
                .emit();
            return 1;
        }
    };
    let shutdown = Arc::new(Shutdown::default());
    let tls = listener.tls();
    let timeout = Arc::new(Mutex::new(config.http.shutdown_timeout));
    let in_force = Mutex::new(effective);
    let (stop, timeout_in_force) = (Arc::clone(&shutdown), Arc::clone(&timeout));
    let stats = Arc::clone(&meta_server.stats.core);
    let signals = signals::spawn(move |signal| match signal {
        Signal::Stop(name) => {
            stop.request();
            lifecycle::stopping("meta", name, &[&stats]);
        }
        Signal::Reload => reload(&in_force, &reloader, &tls, &timeout_in_force),
    });
    if let Err(error) = signals {
        log::error("cannot start")
            .field("service", "meta")
            .field("error", error)
            .emit();
        return 1;
    }
    let limits = limits(config, &meta_server, &shutdown);
    let stats = Arc::clone(&meta_server.stats.core);
    serve(listener, config.meta.tls.is_some(), limits, meta_server);
    let timeout = *timeout.lock().unwrap_or_else(PoisonError::into_inner);
    lifecycle::stopped("meta", &[&stats], timeout)
}

/// SIGHUP for `kapauth meta`: the certificate and the shutdown timeout change live; every
/// other change is named for a restart.
fn reload(
    in_force: &Mutex<Effective>,
    reloader: &Reloader,
    tls: &LiveTls,
    timeout: &Mutex<std::time::Duration>,
) {
    let effective = match reloader() {
        Ok((effective, _)) => effective,
        Err(error) => return lifecycle::reload_refused("meta", &error),
    };
    let mut in_force = in_force.lock().unwrap_or_else(PoisonError::into_inner);
    let changed = in_force.changed(&effective);
    let (applied, restart) = lifecycle::split_changes(&changed, lifecycle::META_LIVE_KEYS);
    // Built from the live keys' new values and the restart-only keys' values in force.
    let next = in_force.with_applied(&effective, &applied);
    let config = match next.build() {
        Ok(config) => config,
        Err(error) => return lifecycle::reload_refused("meta", &error.to_string()),
    };
    if applied.iter().any(|key| key.starts_with("[meta] https-")) {
        let built = http::tls::listener("meta", config.meta.tls.as_ref())
            .map_err(|error| error.to_string())
            .and_then(|config| match config {
                Some(config) if tls.serves_https() => {
                    tls.replace(config);
                    Ok(())
                }
                Some(_) => Err(lifecycle::PLAIN_LISTENER.to_string()),
                // A plain listener stays plain: `https-enabled` waits for a restart, which
                // the reload names, as `serve` does.
                None => Ok(()),
            });
        if let Err(error) = built {
            return lifecycle::reload_refused("meta", &error);
        }
    }
    *timeout.lock().unwrap_or_else(PoisonError::into_inner) = config.http.shutdown_timeout;
    *in_force = next;
    lifecycle::reloaded("meta", &applied, &restart);
}

/// The meta API's listener, over TLS when `[meta] https-enabled`.
fn bind(config: &Config) -> Result<http::Listener, String> {
    let tls = http::tls::listener("meta", config.meta.tls.as_ref()).map_err(|e| e.to_string())?;
    http::server::bind("meta", &config.meta.bind_address, tls)
        .map_err(|error| format!("cannot listen on {}: {error}", config.meta.bind_address))
}

/// The meta API shares the `[http]` bounds on connections; its own cap on requests in flight.
fn limits(config: &Config, meta_server: &MetaServer, shutdown: &Arc<Shutdown>) -> Limits {
    let http_limits = &config.http.limits;
    Limits {
        read_header_timeout: http_limits.read_header_timeout,
        idle_timeout: http_limits.idle_timeout,
        max_connections: http_limits.max_connections,
        max_connections_per_client: http_limits.max_connections_per_client,
        max_in_flight: MAX_IN_FLIGHT,
        busy_message: "the meta server is busy; retry shortly",
        log: true,
        stats: Arc::clone(&meta_server.stats.core),
        shutdown: Arc::clone(shutdown),
    }
}

fn serve(listener: http::Listener, https: bool, limits: Limits, meta_server: Arc<MetaServer>) {
    let node = routes::ThisNode {
        addr: listener.addr,
        https,
    };
    let handler = move |request: Request<'_>| routes::handle(&meta_server, &node, request);
    http::server::serve(listener, "meta", limits, Arc::new(handler));
}
