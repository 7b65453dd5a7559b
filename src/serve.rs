//! `kapauth serve`: wires the gateway to its meta source (SPEC §4, §8) and runs it. The
//! one place that knows both programs: with an empty `[auth] meta-addr` the embedded meta
//! store answers lookups in-process and its meta API is served on `[meta] bind-address`.

use std::sync::Arc;

use ring::rand::{SecureRandom, SystemRandom};

use crate::config::Config;
use crate::gateway::authenticate::meta_client::MetaClient;
use crate::gateway::authenticate::{Authenticator, MetaSource, MetaUser, Unavailable};
use crate::gateway::forward::Upstream;
use crate::gateway::handle::{self, Gateway, RequestIds};
use crate::gateway::respond;
use crate::log;
use crate::meta_server::MetaServer;
use crate::secret::jwt::Secret;
use crate::secret::password::Password;
use crate::server;

/// Runs the gateway until its listener fails; returns the exit code.
pub fn run(config: &Config) -> i32 {
    match start(config) {
        Ok(()) => 1,
        Err(message) => {
            log::error("cannot start")
                .field("service", "gateway")
                .field("error", message)
                .emit();
            1
        }
    }
}

fn start(config: &Config) -> Result<(), String> {
    let random = SystemRandom::new();
    let mut key = [0u8; 32];
    let mut prefix = [0u8; 8];
    random
        .fill(&mut key)
        .and_then(|()| random.fill(&mut prefix))
        .map_err(|_| "the operating system's random source failed".to_string())?;

    let source: Arc<dyn MetaSource> = if config.auth.meta_addr.is_empty() {
        let meta_server = Arc::new(MetaServer::open(&config.meta).map_err(|e| e.to_string())?);
        if meta_server.snapshot().users.is_empty() {
            log::warn("the embedded meta store has no users: the first unauthenticated create on the meta API becomes an administrator; create it now")
                .emit();
        }
        meta_server
            .spawn_api(&config.meta)
            .map_err(|e| format!("meta API on {}: {e}", config.meta.bind_address))?;
        Arc::new(Embedded(meta_server))
    } else {
        Arc::new(MetaClient::new(&config.auth).map_err(|e| e.to_string())?)
    };

    let authenticator = if config.auth_on() {
        Some(Authenticator::new(
            source,
            config.auth.cache_expiration,
            config.auth.meta_timeout,
            Secret::new(config.http.shared_secret.expose().as_bytes()),
            config.auth.resolve_roles,
            config.auth.bcrypt_cost,
            &key,
        ))
    } else {
        log::warn("authentication is OFF ([http] auth-enabled or [auth] enabled is false): every request is forwarded unchecked")
            .emit();
        None
    };
    let gateway = Arc::new(Gateway {
        authenticator,
        upstream: Upstream::new(&config.gateway),
        log_enabled: config.http.log_enabled,
        ids: RequestIds::new(u64::from_be_bytes(prefix)),
    });
    let bound = server::bind(
        "gateway",
        &config.http.bind_address,
        config.gateway.upstream_timeout,
    )
    .map_err(|e| format!("listen on {}: {e}", config.http.bind_address))?;
    let handler = Arc::new(move |request| handle::handle(&gateway, request));
    server::serve(
        bound,
        "gateway",
        config.gateway.max_concurrent_requests,
        handler,
        |request| handle::send(request, respond::overloaded(), "-"),
    );
    Ok(())
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
