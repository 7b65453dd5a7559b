//! `kapauth serve`: wires the gateway to its meta source (SPEC §4, §8) and runs it. The
//! one place that knows both programs: with an empty `[auth] meta-addr` the embedded meta
//! store answers lookups in-process and its meta API is served on `[meta] bind-address`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};

use crate::config::{Config, Effective};
use crate::gateway::authenticate::meta_client::MetaClient;
use crate::gateway::authenticate::throttle::Budget;
use crate::gateway::authenticate::{Authenticator, MetaSource, MetaUser, Settings, Unavailable};
use crate::gateway::handle::{self, Gateway, RequestIds};
use crate::gateway::metrics::RequestStats;
use crate::gateway::respond;
use crate::http::client::Upstream;
use crate::http::server::{CoreStats, LiveTls, Shutdown};
use crate::http::{self, Limits, Request};
use crate::lifecycle::{self, Reloader};
use crate::log;
use crate::meta_server::MetaServer;
use crate::secret::jwt::Secret;
use crate::secret::password::Password;
use crate::signals::{self, Signal};

/// Runs the gateway until SIGTERM or SIGINT, then lets requests in flight finish and
/// returns 0; SIGHUP reloads what can change live. Returns 1 if it cannot start.
pub fn run(config: &Config, effective: Effective, reloader: Reloader) -> i32 {
    match start(config, effective, reloader) {
        Ok(code) => code,
        Err(message) => {
            log::error("cannot start")
                .field("service", "gateway")
                .field("error", message)
                .emit();
            1
        }
    }
}

/// What a reload can reach in a running gateway.
struct Running {
    gateway: Arc<Gateway>,
    gateway_tls: Arc<LiveTls>,
    /// The embedded meta API's certificate; `None` with an external meta.
    meta_tls: Option<Arc<LiveTls>>,
    shutdown_timeout: Mutex<Duration>,
    /// The configuration in force, to tell what a reload changes.
    in_force: Mutex<Effective>,
    reloader: Reloader,
}

fn start(config: &Config, effective: Effective, reloader: Reloader) -> Result<i32, String> {
    // TLS material first: a bad file stops the start before anything listens.
    let gateway_tls =
        http::tls::listener("http", config.http.tls.as_ref()).map_err(|e| e.to_string())?;
    let upstream_tls = http::tls::upstream(&config.gateway).map_err(|e| e.to_string())?;
    let random = SystemRandom::new();
    let mut key = [0u8; 32];
    let mut prefix = [0u8; 8];
    random
        .fill(&mut key)
        .and_then(|()| random.fill(&mut prefix))
        .map_err(|_| "the operating system's random source failed".to_string())?;

    let shutdown = Arc::new(Shutdown::default());
    let auth = &config.auth;
    let (source, embedded, meta_tls): (Arc<dyn MetaSource>, _, _) = if auth.meta_addr.is_empty() {
        let meta_server = Arc::new(MetaServer::open(&config.meta).map_err(|e| e.to_string())?);
        if meta_server.snapshot().users.is_empty() {
            log::warn("the embedded meta store has no users: the first unauthenticated create on the meta API becomes an administrator; create it now")
                .emit();
        }
        let (_, meta_tls) = meta_server.spawn_api(config, &shutdown)?;
        (
            Arc::new(Embedded(Arc::clone(&meta_server))),
            Some(meta_server),
            Some(meta_tls),
        )
    } else {
        let client = MetaClient::new(auth).map_err(|e| e.to_string())?;
        (Arc::new(client), None, None)
    };
    log_sources(config);

    let authenticator = if config.auth_on() {
        let authenticator = Authenticator::new(
            source,
            &auth_settings(config),
            Secret::new(config.http.shared_secret.expose().as_bytes()),
            &key,
        );
        // In-process, a change to a user or role reaches the cache at once; an external
        // meta's changes wait for cache-expiration, as in Kapacitor.
        if let Some(meta_server) = &embedded {
            meta_server.watch(Box::new(authenticator.forgetter()))?;
        }
        Some(authenticator)
    } else {
        log::warn("authentication is OFF ([http] auth-enabled or [auth] enabled is false): every request is forwarded unchecked")
            .emit();
        None
    };
    let upstream = Upstream::new(
        &config.gateway.upstream,
        config.gateway.upstream_timeout,
        upstream_tls,
        config.gateway.max_concurrent_requests,
    )?;
    let core = Arc::new(CoreStats::default());
    let gateway = Arc::new(Gateway {
        authenticator,
        upstream,
        log_enabled: AtomicBool::new(config.http.log_enabled),
        ids: RequestIds::new(u64::from_be_bytes(prefix)),
        metrics_enabled: config.gateway.metrics_enabled,
        requests: RequestStats::default(),
        core: Arc::clone(&core),
    });
    let listener = http::server::bind("gateway", &config.http.bind_address, gateway_tls)
        .map_err(|e| format!("listen on {}: {e}", config.http.bind_address))?;
    let running = Arc::new(Running {
        gateway: Arc::clone(&gateway),
        gateway_tls: listener.tls(),
        meta_tls,
        shutdown_timeout: Mutex::new(config.http.shutdown_timeout),
        in_force: Mutex::new(effective),
        reloader,
    });
    let stop = Arc::clone(&shutdown);
    let reload = Arc::clone(&running);
    let meta_stats = embedded.as_ref().map(|meta| Arc::clone(&meta.stats.core));
    let stats = stats_of(&core, meta_stats.as_ref());
    signals::spawn(move |signal| match signal {
        Signal::Stop(name) => {
            stop.request();
            let stats: Vec<&CoreStats> = stats.iter().map(Arc::as_ref).collect();
            lifecycle::stopping("gateway", name, &stats);
        }
        Signal::Reload => reload.reload(),
    })?;
    let http_limits = &config.http.limits;
    let limits = Limits {
        read_header_timeout: http_limits.read_header_timeout,
        idle_timeout: http_limits.idle_timeout,
        max_connections: http_limits.max_connections,
        max_connections_per_client: http_limits.max_connections_per_client,
        max_in_flight: config.gateway.max_concurrent_requests,
        busy_message: respond::OVERLOADED,
        log: config.http.log_enabled,
        stats: Arc::clone(&core),
        shutdown,
    };
    let handler = move |request: Request<'_>| handle::handle(&gateway, request);
    http::server::serve(listener, "gateway", limits, Arc::new(handler));
    // Stopping: the listeners are closed; requests in flight, the meta API's included, finish.
    let stats = stats_of(&core, meta_stats.as_ref());
    let stats: Vec<&CoreStats> = stats.iter().map(Arc::as_ref).collect();
    let timeout = *running
        .shutdown_timeout
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    Ok(lifecycle::stopped("gateway", &stats, timeout))
}

fn stats_of(core: &Arc<CoreStats>, meta: Option<&Arc<CoreStats>>) -> Vec<Arc<CoreStats>> {
    std::iter::once(Arc::clone(core))
        .chain(meta.cloned())
        .collect()
}

/// Authentication's settings from the configuration.
fn auth_settings(config: &Config) -> Settings {
    let auth = &config.auth;
    Settings {
        cache_expiration: auth.cache_expiration,
        negative_cache_expiration: auth.negative_cache_expiration,
        meta_timeout: auth.meta_timeout,
        meta_max_lookups: auth.meta_max_lookups,
        resolve_roles: auth.resolve_roles,
        bcrypt_cost: auth.bcrypt_cost,
        // The embedded store hashes at [meta] bcrypt-cost; an external meta's cost is
        // learnt from its first user.
        expected_meta_cost: if auth.meta_addr.is_empty() {
            config.meta.bcrypt_cost
        } else {
            auth.bcrypt_cost
        },
        throttle: auth.failed_logins.map(|failed| Budget {
            burst: failed.burst,
            interval: failed.interval,
        }),
    }
}

impl Running {
    /// SIGHUP: reads the configuration again, builds everything that changed and can change
    /// live (certificates, the meta client, authentication's settings, logging), and puts it
    /// in force only if all of it could be built. The cache is kept.
    fn reload(&self) {
        let effective = match (self.reloader)() {
            Ok((effective, _)) => effective,
            Err(error) => return lifecycle::reload_refused("gateway", &error),
        };
        let mut in_force = self.in_force.lock().unwrap_or_else(PoisonError::into_inner);
        let changed = in_force.changed(&effective);
        let (applied, restart) = lifecycle::split_changes(&changed, lifecycle::SERVE_LIVE_KEYS);
        // What is built below is what will run: the live keys' new values, and the values in
        // force of the keys that wait for a restart (a new meta-addr must not ride along
        // with a new meta-password).
        let next = in_force.with_applied(&effective, &applied);
        let config = match next.build() {
            Ok(config) => config,
            Err(error) => return lifecycle::reload_refused("gateway", &error.to_string()),
        };
        let touched = |prefix: &str| applied.iter().any(|key| key.starts_with(prefix));
        // Build first: nothing is replaced unless everything was built.
        let gateway_tls = match touched("[http] https-") {
            true => match http::tls::listener("http", config.http.tls.as_ref()) {
                Ok(Some(tls)) => Some(tls),
                Ok(None) => None,
                Err(error) => return lifecycle::reload_refused("gateway", &error.to_string()),
            },
            false => None,
        };
        let meta_tls = match (touched("[meta] https-"), &self.meta_tls) {
            (true, Some(_)) => match http::tls::listener("meta", config.meta.tls.as_ref()) {
                Ok(tls) => tls,
                Err(error) => return lifecycle::reload_refused("gateway", &error.to_string()),
            },
            _ => None,
        };
        let external = !config.auth.meta_addr.is_empty() && self.meta_tls.is_none();
        let source: Option<Arc<dyn MetaSource>> = match external && touched("[auth] meta-") {
            true => match MetaClient::new(&config.auth) {
                Ok(client) => Some(Arc::new(client)),
                Err(error) => return lifecycle::reload_refused("gateway", &error.to_string()),
            },
            false => None,
        };
        // Checked before anything is replaced, so a refusal leaves every certificate as it was.
        let replacements = [
            gateway_tls.map(|tls| (&*self.gateway_tls, tls)),
            meta_tls.and_then(|tls| self.meta_tls.as_deref().map(|live| (live, tls))),
        ];
        if replacements
            .iter()
            .flatten()
            .any(|(live, _)| !live.serves_https())
        {
            return lifecycle::reload_refused("gateway", lifecycle::PLAIN_LISTENER);
        }
        for (live, tls) in replacements.into_iter().flatten() {
            live.replace(tls);
        }
        if let Some(authenticator) = &self.gateway.authenticator {
            authenticator.reconfigure(
                &auth_settings(&config),
                source,
                Secret::new(config.http.shared_secret.expose().as_bytes()),
            );
        }
        self.gateway
            .log_enabled
            .store(config.http.log_enabled, Ordering::Relaxed);
        *self
            .shutdown_timeout
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = config.http.shutdown_timeout;
        *in_force = next;
        lifecycle::reloaded("gateway", &applied, &restart);
    }
}

/// One line naming where users come from (address, scheme, kind of credentials, never a
/// secret) and where allowed requests go.
fn log_sources(config: &Config) {
    let auth = &config.auth;
    let line = log::info("sources").field("upstream", &config.gateway.upstream);
    let line = if auth.meta_addr.is_empty() {
        line.field("meta", "embedded")
            .field("meta-dir", config.meta.dir.display())
    } else {
        let scheme = if auth.meta_tls.is_some() {
            "https"
        } else {
            "http"
        };
        let credentials = if !auth.meta_internal_shared_secret.expose().is_empty() {
            "internal-shared-secret".to_string()
        } else if !auth.meta_username.is_empty() {
            format!("basic:{}", auth.meta_username)
        } else {
            "none".to_string()
        };
        line.field("meta", format!("{scheme}://{}", auth.meta_addr))
            .field("meta-credentials", credentials)
    };
    line.emit();
}

/// The embedded meta store as a `MetaSource`: a snapshot read, no HTTP.
struct Embedded(Arc<MetaServer>);

impl MetaSource for Embedded {
    fn user(&self, name: &str) -> Result<Option<MetaUser>, Unavailable> {
        let state = self.0.snapshot();
        Ok(state.user_doc(name).map(|user| MetaUser {
            user,
            roles: state.roles_of(name),
        }))
    }

    /// Embedded users always have a bcrypt hash, so there is no LDAP to ask.
    fn check_password(&self, _name: &str, _password: &Password) -> Result<bool, Unavailable> {
        Ok(false)
    }
}
