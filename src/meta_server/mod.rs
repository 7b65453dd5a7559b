//! `kapauth meta` (SPEC §8): the meta API's user and role endpoints over a durable store,
//! also run inside `kapauth serve` when `[auth] meta-addr` is empty. This file owns the
//! current state and the order of changes: reads take a snapshot under a brief read lock;
//! writes are serialized by the disk's mutex, saved, and only then published. bcrypt runs
//! before either lock is taken.

mod access;
mod actions;
pub mod disk;
pub mod routes;
pub mod store;

use std::fmt;
use std::sync::{Arc, Mutex, RwLock};

use crate::config::{self, Config};
use crate::http::{self, Limits, Request};
use crate::log;
use crate::secret::jwt::Secret;
use crate::secret::password::{Password, hash_bcrypt};
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
}

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
        })
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
        let next = self
            .snapshot()
            .apply(mutation)
            .map_err(MutateError::Store)?;
        disk.save(&next).map_err(MutateError::Disk)?;
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(next);
        Ok(())
    }

    /// A bcrypt hash at `[meta] bcrypt-cost`; runs outside every lock.
    pub fn hash(&self, password: &Password) -> Result<String, String> {
        hash_bcrypt(password, self.bcrypt_cost).map_err(|error| error.to_string())
    }

    /// Serves the meta API on `[meta] bind-address` on a thread of its own (over TLS when
    /// `[meta] https-enabled`); returns the bound address.
    pub fn spawn_api(self: &Arc<Self>, config: &Config) -> Result<std::net::SocketAddr, String> {
        let listener = bind(config)?;
        let addr = listener.addr;
        let meta_server = Arc::clone(self);
        let limits = limits(config);
        let https = config.meta.tls.is_some();
        std::thread::Builder::new()
            .name("meta-accept".into())
            .spawn(move || serve(listener, https, limits, meta_server))
            .map_err(|error| format!("cannot start the meta API's thread: {error}"))?;
        Ok(addr)
    }
}

/// `kapauth meta`: runs until the listener fails; returns the exit code.
pub fn run(config: &Config) -> i32 {
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
    serve(
        listener,
        config.meta.tls.is_some(),
        limits(config),
        meta_server,
    );
    1
}

/// The meta API's listener, over TLS when `[meta] https-enabled`.
fn bind(config: &Config) -> Result<http::Listener, String> {
    let tls = http::tls::listener("meta", config.meta.tls.as_ref()).map_err(|e| e.to_string())?;
    http::server::bind("meta", &config.meta.bind_address, tls)
        .map_err(|error| format!("cannot listen on {}: {error}", config.meta.bind_address))
}

/// The meta API shares the `[http]` bounds on connections; its own cap on requests in flight.
fn limits(config: &Config) -> Limits {
    let http_limits = &config.http.limits;
    Limits {
        read_header_timeout: http_limits.read_header_timeout,
        idle_timeout: http_limits.idle_timeout,
        max_connections: http_limits.max_connections,
        max_connections_per_client: http_limits.max_connections_per_client,
        max_in_flight: MAX_IN_FLIGHT,
        busy_message: "the meta server is busy; retry shortly",
        log: true,
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
