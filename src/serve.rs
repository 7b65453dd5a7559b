//! `kapauth serve`: wires the gateway to its meta source (SPEC §4, §8) and runs it. The
//! one place that knows both programs: with an empty `[auth] meta-addr` the embedded meta
//! store answers lookups in-process and its meta API is served on `[meta] bind-address`.

use std::sync::Arc;

use ring::rand::{SecureRandom, SystemRandom};

use crate::config::Config;
use crate::gateway::authenticate::meta_client::MetaClient;
use crate::gateway::authenticate::throttle::Budget;
use crate::gateway::authenticate::{Authenticator, MetaSource, MetaUser, Settings, Unavailable};
use crate::gateway::handle::{self, Gateway, RequestIds};
use crate::gateway::metrics::RequestStats;
use crate::gateway::respond;
use crate::http::client::Upstream;
use crate::http::server::CoreStats;
use crate::http::{self, Limits, Request};
use crate::log;
use crate::meta_server::MetaServer;
use crate::secret::jwt::Secret;
use crate::secret::password::Password;

/// Runs the gateway for as long as the process lives; returns the exit code of a failed start.
pub fn run(config: &Config) -> i32 {
    if let Err(message) = start(config) {
        log::error("cannot start")
            .field("service", "gateway")
            .field("error", message)
            .emit();
    }
    1
}

fn start(config: &Config) -> Result<(), String> {
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

    let auth = &config.auth;
    let (source, embedded): (Arc<dyn MetaSource>, _) = if auth.meta_addr.is_empty() {
        let meta_server = Arc::new(MetaServer::open(&config.meta).map_err(|e| e.to_string())?);
        if meta_server.snapshot().users.is_empty() {
            log::warn("the embedded meta store has no users: the first unauthenticated create on the meta API becomes an administrator; create it now")
                .emit();
        }
        meta_server.spawn_api(config)?;
        (
            Arc::new(Embedded(Arc::clone(&meta_server))),
            Some(meta_server),
        )
    } else {
        let client = MetaClient::new(auth).map_err(|e| e.to_string())?;
        (Arc::new(client), None)
    };
    log_sources(config);

    let authenticator = if config.auth_on() {
        let settings = Settings {
            cache_expiration: auth.cache_expiration,
            negative_cache_expiration: auth.negative_cache_expiration,
            meta_timeout: auth.meta_timeout,
            meta_max_lookups: auth.meta_max_lookups,
            resolve_roles: auth.resolve_roles,
            bcrypt_cost: auth.bcrypt_cost,
            // The embedded store hashes at [meta] bcrypt-cost; an external meta's cost is
            // learnt from its first user.
            expected_meta_cost: match embedded {
                Some(_) => config.meta.bcrypt_cost,
                None => auth.bcrypt_cost,
            },
            throttle: auth.failed_logins.map(|failed| Budget {
                burst: failed.burst,
                interval: failed.interval,
            }),
        };
        let authenticator = Authenticator::new(
            source,
            &settings,
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
        log_enabled: config.http.log_enabled,
        ids: RequestIds::new(u64::from_be_bytes(prefix)),
        metrics_enabled: config.gateway.metrics_enabled,
        requests: RequestStats::default(),
        core: Arc::clone(&core),
    });
    let listener = http::server::bind("gateway", &config.http.bind_address, gateway_tls)
        .map_err(|e| format!("listen on {}: {e}", config.http.bind_address))?;
    let http_limits = &config.http.limits;
    let limits = Limits {
        read_header_timeout: http_limits.read_header_timeout,
        idle_timeout: http_limits.idle_timeout,
        max_connections: http_limits.max_connections,
        max_connections_per_client: http_limits.max_connections_per_client,
        max_in_flight: config.gateway.max_concurrent_requests,
        busy_message: respond::OVERLOADED,
        log: config.http.log_enabled,
        stats: core,
    };
    let handler = move |request: Request<'_>| handle::handle(&gateway, request);
    http::server::serve(listener, "gateway", limits, Arc::new(handler));
    Ok(())
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
            roles: state
                .role_docs()
                .into_iter()
                .filter(|role| role.users.iter().any(|u| u == name))
                .collect(),
        }))
    }

    /// Embedded users always have a bcrypt hash, so there is no LDAP to ask.
    fn check_password(&self, _name: &str, _password: &Password) -> Result<bool, Unavailable> {
        Ok(false)
    }
}
