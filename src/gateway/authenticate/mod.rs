//! Authentication (SPEC §1, §4, §5, §11): from `Credentials` to the user's record and
//! grants, through the cache, a `MetaSource` (the meta API over HTTP, or the embedded
//! store), bcrypt or LDAP for passwords and the shared-secret JWT for tokens. Bounds what
//! meta costs (unknown names remembered, at most `meta-max-lookups` lookups at once, a
//! cached user never waits on meta), throttles failed logins, and spends the same bcrypt
//! work on every failure, so timing does not tell which users exist. Never stores or logs
//! a password: the cache keeps HMAC proofs.

pub mod cache;
pub mod meta_client;
pub mod throttle;

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::gateway::authorize::Grants;
use crate::gateway::credentials::Credentials;
use crate::log;
use crate::meta_api::{RoleDoc, UserDoc};
use crate::metrics::{Counter, Histogram};
use crate::secret::jwt::{self, Secret, Token};
use crate::secret::password::{Password, ProofKey, bcrypt_cost, hash_bcrypt, verify_bcrypt};
use cache::{Begin, Cache, Entry, Outcome, UserRecord};
use throttle::{Budget, Throttle};

/// Where users come from: the meta API, or the embedded store.
pub trait MetaSource: Send + Sync {
    /// The user named `name` and the roles that list it, or `None` when meta does not
    /// know the user.
    fn user(&self, name: &str) -> Result<Option<MetaUser>, Unavailable>;

    /// Checks a password that meta keeps elsewhere (LDAP): `GET /authorized`.
    fn check_password(&self, name: &str, password: &Password) -> Result<bool, Unavailable>;
}

/// A user document and the roles whose `users` list holds it.
#[derive(Debug, Clone, Default)]
pub struct MetaUser {
    pub user: UserDoc,
    pub roles: Vec<RoleDoc>,
}

/// Meta did not answer usefully; the reason names what went wrong for the log, and never
/// holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable(pub String);

/// Why a request is not authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// Unknown user or wrong password: 401 `authorization failed`, never saying which.
    Failed,
    /// Meta unavailable and no live cache entry: 503; the reason is for the log.
    Unavailable(String),
    /// A bearer token was refused: 401 with this exact text (SPEC §5).
    Token(String),
    /// Too many failed logins for this username or from this address: 429 (SPEC §11).
    Throttled { retry_after: Duration },
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Failed => f.write_str("authorization failed"),
            AuthError::Unavailable(reason) => {
                write!(f, "authentication service unavailable: {reason}")
            }
            AuthError::Token(message) => f.write_str(message),
            AuthError::Throttled { .. } => f.write_str("too many failed logins"),
        }
    }
}

/// How authentication behaves; each field is a key of `[auth]` or `[http]` (SPEC §9, §11).
#[derive(Debug, Clone)]
pub struct Settings {
    pub cache_expiration: Duration,
    pub negative_cache_expiration: Duration,
    pub meta_timeout: Duration,
    pub meta_max_lookups: usize,
    pub resolve_roles: bool,
    /// Cost of the hashes kept for LDAP users.
    pub bcrypt_cost: u32,
    /// The cost meta's hashes are expected to have until one is seen: the decoy's cost.
    pub expected_meta_cost: u32,
    /// `None` when `[auth] login-throttling` is off.
    pub throttle: Option<Budget>,
}

/// What authentication counts, for `/kapauth/metrics`.
#[derive(Debug, Default)]
pub struct AuthStats {
    /// A live entry answered.
    pub cache_hits: Counter,
    /// A name meta did not know a moment ago answered.
    pub unknown_hits: Counter,
    /// No entry: this request looked the user up or waited for another's lookup.
    pub cache_misses: Counter,
    pub lookups_found: Counter,
    pub lookups_unknown: Counter,
    pub lookups_unavailable: Counter,
    /// No lookup slot within `LOOKUP_WAIT`.
    pub lookups_refused: Counter,
    pub lookup_duration: Histogram,
    pub bcrypt_runs: Counter,
    pub throttled: Counter,
}

/// Authenticates requests for the gateway.
pub struct Authenticator {
    cache: Arc<Cache>,
    proof_key: ProofKey,
    decoy: Decoy,
    lookups: LookupSlots,
    throttle: Throttle,
    /// What a reload may replace, read once per use.
    live: RwLock<Arc<Live>>,
    stats: Arc<AuthStats>,
}

/// The settings a reload replaces whole (SIGHUP): the meta source (new credentials, TLS
/// material, timeout), the shared secret, and how users are read.
struct Live {
    source: Arc<dyn MetaSource>,
    shared_secret: Secret,
    resolve_roles: bool,
    /// Cost of the hashes kept for LDAP users.
    bcrypt_cost: u32,
    /// How long a request waits for another request's lookup of the same user.
    wait_limit: Duration,
}

/// The longest a request waits for a free lookup before it is answered 503 (SPEC §11).
pub const LOOKUP_WAIT: Duration = Duration::from_secs(1);

/// The highest cost a decoy runs at, whatever meta serves: a meta serving cost-31 hashes
/// must not make every unknown name cost hours of CPU.
pub const MAX_DECOY_COST: u32 = 16;

impl Authenticator {
    /// `proof_key_bytes` must be fresh random bytes for this process (SPEC §4).
    pub fn new(
        source: Arc<dyn MetaSource>,
        settings: &Settings,
        shared_secret: Secret,
        proof_key_bytes: &[u8; 32],
    ) -> Authenticator {
        Authenticator {
            cache: Arc::new(Cache::new(
                settings.cache_expiration,
                settings.negative_cache_expiration,
            )),
            proof_key: ProofKey::from_bytes(proof_key_bytes),
            decoy: Decoy::new(settings.expected_meta_cost),
            lookups: LookupSlots::new(settings.meta_max_lookups),
            throttle: Throttle::new(settings.throttle),
            live: RwLock::new(Arc::new(Live::new(source, settings, shared_secret))),
            stats: Arc::default(),
        }
    }

    /// Puts reloaded settings in force (SIGHUP), keeping the cache: `source`, when given,
    /// replaces the meta source (an external meta's new address, credentials or TLS
    /// material). Requests already under way finish with what they started with.
    pub fn reconfigure(
        &self,
        settings: &Settings,
        source: Option<Arc<dyn MetaSource>>,
        shared_secret: Secret,
    ) {
        let source = source.unwrap_or_else(|| Arc::clone(&self.live().source));
        self.cache.set_expirations(
            settings.cache_expiration,
            settings.negative_cache_expiration,
        );
        self.lookups.set_max(settings.meta_max_lookups);
        self.throttle.set_budget(settings.throttle);
        *self.live.write().unwrap_or_else(PoisonError::into_inner) =
            Arc::new(Live::new(source, settings, shared_secret));
    }

    fn live(&self) -> Arc<Live> {
        Arc::clone(&self.live.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The counters of this authenticator.
    pub fn stats(&self) -> &AuthStats {
        &self.stats
    }

    /// The record of the user the credentials prove, or why not. `client` is the
    /// request's address, for the failed-login budgets.
    pub fn authenticate(
        &self,
        credentials: &Credentials,
        client: IpAddr,
        now_unix: i64,
    ) -> Result<Arc<UserRecord>, AuthError> {
        match credentials {
            Credentials::Password { username, password } => {
                self.with_password(username, password, client)
            }
            Credentials::Bearer(token) => self.with_token(token, now_unix),
        }
    }

    /// Names held by the cache, for tests and health.
    pub fn cached_users(&self) -> usize {
        self.cache.len()
    }

    /// A function that drops what the cache holds for the users a change affected; the
    /// embedded store calls it after each change (SPEC §4, kapauth).
    pub fn forgetter(&self) -> impl Fn(&BTreeSet<String>) + Send + Sync + 'static {
        let cache = Arc::clone(&self.cache);
        move |names| cache.forget(names)
    }

    fn with_password(
        &self,
        name: &str,
        password: &Password,
        client: IpAddr,
    ) -> Result<Arc<UserRecord>, AuthError> {
        self.throttle
            .check(name, client, Instant::now())
            .map_err(|throttled| {
                self.stats.throttled.inc();
                AuthError::Throttled {
                    retry_after: throttled.retry_after,
                }
            })?;
        let outcome = self.check_login(name, password);
        if matches!(outcome, Err(AuthError::Failed)) {
            self.throttle.failed(name, client, Instant::now());
        }
        outcome
    }

    /// One password login. Every failure costs one bcrypt run at the cost of meta's hashes:
    /// against the user's hash, or against the decoy for a name meta does not know.
    fn check_login(&self, name: &str, password: &Password) -> Result<Arc<UserRecord>, AuthError> {
        // An empty password proves nothing, and an LDAP server may take it for an anonymous
        // bind that succeeds.
        if password.as_str().is_empty() {
            self.spend_decoy(password);
            return Err(AuthError::Failed);
        }
        let found = match self.entry(name, Some(password)) {
            Err(AuthError::Failed) => {
                self.spend_decoy(password);
                return Err(AuthError::Failed);
            }
            other => other?,
        };
        let record = &found.entry.record;
        match found.leader_checked {
            // This request led the lookup and already checked its password, or asked meta
            // to and got no answer.
            Some(Ok(true)) => return Ok(Arc::clone(record)),
            Some(Ok(false)) => return Err(AuthError::Failed),
            Some(Err(error)) => return Err(error),
            None => {}
        }
        if found
            .entry
            .verified
            .as_deref()
            .is_some_and(|proof| self.proof_key.matches(proof, name, password))
        {
            return Ok(Arc::clone(record));
        }
        // Another password than the one the entry has seen: verify it against the cached
        // hash (no meta call), and remember it if it is right.
        if self.check(&record.name, &record.hash, password)? {
            self.cache
                .remember(record, self.proof_key.prove(name, password));
            Ok(Arc::clone(record))
        } else {
            Err(AuthError::Failed)
        }
    }

    fn with_token(&self, token: &Token, now_unix: i64) -> Result<Arc<UserRecord>, AuthError> {
        let claims = jwt::verify(token, &self.live().shared_secret, now_unix)
            .map_err(|error| AuthError::Token(format!("invalid token: {error}")))?;
        let name = jwt::username_from_claims(&claims)
            .map_err(|error| AuthError::Token(error.to_string()))?;
        // A valid token names the user; no password is checked (SPEC §5).
        Ok(self.entry(&name, None)?.entry.record)
    }

    /// The cache entry for `name`: a live one, the outcome of another request's lookup, or
    /// a lookup of this request's own, under a lookup slot. A leading password request
    /// verifies its password before publishing, so identical concurrent requests share one
    /// bcrypt run.
    fn entry(&self, name: &str, password: Option<&Password>) -> Result<Found, AuthError> {
        let mut leader_checked = None;
        let begin = self.cache.begin(name, Instant::now());
        match &begin {
            Begin::Hit(_) => self.stats.cache_hits.inc(),
            Begin::Unknown => self.stats.unknown_hits.inc(),
            Begin::Wait(_) | Begin::Lead(_) => self.stats.cache_misses.inc(),
        }
        let outcome = match begin {
            Begin::Hit(entry) => Outcome::Found(entry),
            Begin::Unknown => Outcome::Unknown,
            Begin::Wait(flight) => flight.wait(self.live().wait_limit),
            Begin::Lead(leader) => {
                let outcome = match self.lookups.claim(LOOKUP_WAIT) {
                    Some(_slot) => {
                        let started = Instant::now();
                        let (outcome, checked) = self.look_up(name, password);
                        self.stats.lookup_duration.observe(started.elapsed());
                        match &outcome {
                            Outcome::Found(_) => self.stats.lookups_found.inc(),
                            Outcome::Unknown => self.stats.lookups_unknown.inc(),
                            Outcome::Unavailable(_) => self.stats.lookups_unavailable.inc(),
                        }
                        leader_checked = checked;
                        outcome
                    }
                    None => {
                        self.stats.lookups_refused.inc();
                        Outcome::Unavailable(format!(
                            "meta-max-lookups ({}) lookups already in flight",
                            self.lookups.max()
                        ))
                    }
                };
                leader.finish(outcome.clone(), Instant::now());
                outcome
            }
        };
        match outcome {
            Outcome::Found(entry) => Ok(Found {
                entry,
                leader_checked,
            }),
            Outcome::Unknown => Err(AuthError::Failed),
            Outcome::Unavailable(reason) => Err(AuthError::Unavailable(reason)),
        }
    }

    /// Asks meta for `name`; with a password, also checks it (the second value says how, or
    /// why meta could not say).
    fn look_up(
        &self,
        name: &str,
        password: Option<&Password>,
    ) -> (Outcome, Option<Result<bool, AuthError>>) {
        let live = self.live();
        let meta_user = match live.source.user(name) {
            Ok(Some(meta_user)) => meta_user,
            Ok(None) => return (Outcome::Unknown, None),
            Err(Unavailable(reason)) => return (Outcome::Unavailable(reason), None),
        };
        let grants = grants_of(&meta_user.user, &meta_user.roles, live.resolve_roles);
        let mut hash = meta_user.user.hash;
        self.decoy.track(&hash);
        let mut verified = None;
        let mut checked = None;
        if let Some(password) = password {
            match self.check(name, &hash, password) {
                Ok(true) => {
                    if hash.is_empty() {
                        // An LDAP user: keep a bcrypt hash at [auth] bcrypt-cost, so another
                        // password for this entry is checked here, not at meta (SPEC §4).
                        hash = hash_bcrypt(password, live.bcrypt_cost).unwrap_or_default();
                    }
                    verified = Some(Arc::new(self.proof_key.prove(name, password)));
                    checked = Some(Ok(true));
                }
                Ok(false) => checked = Some(Ok(false)),
                // The record is good to cache; this request answers with meta's failure
                // rather than asking `/authorized` a second time.
                Err(error) => checked = Some(Err(error)),
            }
        }
        let record = Arc::new(UserRecord {
            name: name.to_string(),
            hash,
            grants,
        });
        let expires = self.cache.expiry(Instant::now());
        let entry = Entry {
            record,
            verified,
            expires,
        };
        (Outcome::Found(entry), checked)
    }

    /// Checks `password`: bcrypt against a hash, meta's `/authorized` for an LDAP user
    /// (empty hash).
    fn check(&self, name: &str, hash: &str, password: &Password) -> Result<bool, AuthError> {
        if hash.is_empty() {
            return self
                .live()
                .source
                .check_password(name, password)
                .map_err(|Unavailable(reason)| AuthError::Unavailable(reason));
        }
        match verify_bcrypt(password, hash) {
            Ok(valid) => {
                self.stats.bcrypt_runs.inc();
                Ok(valid)
            }
            // A malformed hash never reaches bcrypt: the decoy's run is the one counted.
            Err(_) => {
                log::warn("meta returned a malformed password hash; login refused")
                    .field("user", name)
                    .emit();
                self.spend_decoy(password);
                Ok(false)
            }
        }
    }

    fn spend_decoy(&self, password: &Password) {
        self.stats.bcrypt_runs.inc();
        self.decoy.spend(password);
    }
}

impl Live {
    fn new(source: Arc<dyn MetaSource>, settings: &Settings, shared_secret: Secret) -> Live {
        Live {
            source,
            shared_secret,
            resolve_roles: settings.resolve_roles,
            bcrypt_cost: settings.bcrypt_cost,
            // The leader's lookup is bounded by meta-timeout, an LDAP check by another, a
            // bcrypt run by its cost; the margin covers the latter.
            wait_limit: settings.meta_timeout * 2 + Duration::from_secs(5),
        }
    }
}

/// A cache entry, and whether this request, leading the lookup, already checked its
/// password against it.
struct Found {
    entry: Entry,
    leader_checked: Option<Result<bool, AuthError>>,
}

/// A bcrypt hash nobody's password matches, at the cost of the hashes meta serves (the
/// last one seen, at most `MAX_DECOY_COST`), checked for every failure that had no real
/// hash to check: the same work as a wrong password for a known user (SPEC §11).
struct Decoy {
    hash: Mutex<(u32, Arc<str>)>,
}

impl Decoy {
    fn new(cost: u32) -> Decoy {
        let cost = cost.min(MAX_DECOY_COST);
        Decoy {
            hash: Mutex::new((cost, Arc::from(make_decoy(cost).as_str()))),
        }
    }

    /// Notes the cost of a hash meta served; a new cost makes a new decoy, outside the lock.
    fn track(&self, hash: &str) {
        let Some(cost) = bcrypt_cost(hash).map(|cost| cost.min(MAX_DECOY_COST)) else {
            return;
        };
        if self.current().0 == cost {
            return;
        }
        let decoy = make_decoy(cost);
        *self.lock() = (cost, Arc::from(decoy.as_str()));
    }

    /// Runs bcrypt against the decoy; the result is always a failure.
    fn spend(&self, password: &Password) {
        let (_, hash) = self.current();
        let _ = verify_bcrypt(password, &hash);
    }

    fn current(&self) -> (u32, Arc<str>) {
        let guard = self.lock();
        (guard.0, Arc::clone(&guard.1))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u32, Arc<str>)> {
        self.hash
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A decoy hash at `cost`; empty (and so no work) only if the random source failed, which
/// kapauth's start has already checked.
fn make_decoy(cost: u32) -> String {
    hash_bcrypt(&Password::new("kapauth decoy".to_string()), cost).unwrap_or_default()
}

/// At most `max` meta lookups at once (SPEC §11); a claim waits a bounded time.
struct LookupSlots {
    max: AtomicUsize,
    in_use: Mutex<usize>,
    freed: Condvar,
}

/// A claimed lookup slot, given back when dropped.
struct LookupSlot<'a>(&'a LookupSlots);

impl LookupSlots {
    fn new(max: usize) -> LookupSlots {
        LookupSlots {
            max: AtomicUsize::new(max),
            in_use: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    fn max(&self) -> usize {
        self.max.load(Ordering::Relaxed)
    }

    fn set_max(&self, max: usize) {
        self.max.store(max, Ordering::Relaxed);
        self.freed.notify_all();
    }

    fn claim(&self, wait: Duration) -> Option<LookupSlot<'_>> {
        let guard = self
            .in_use
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (mut in_use, _) = self
            .freed
            .wait_timeout_while(guard, wait, |in_use| *in_use >= self.max())
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if *in_use >= self.max() {
            return None;
        }
        *in_use += 1;
        Some(LookupSlot(self))
    }
}

impl Drop for LookupSlot<'_> {
    fn drop(&mut self) {
        let mut in_use = self
            .0
            .in_use
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *in_use -= 1;
        self.0.freed.notify_one();
    }
}

/// The grants of a user: its own permissions and, with `resolve_roles`, those of every
/// role whose `users` list holds it (SPEC §3). Independent of the order of anything.
pub fn grants_of(user: &UserDoc, roles: &[RoleDoc], resolve_roles: bool) -> Grants {
    Grants::from_permissions(
        permissions_held(user, roles, resolve_roles).map(|held| (held.scope, held.permission)),
    )
}

/// Where a user holds a permission: in its own document, or through a role that lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin<'a> {
    Direct,
    Role(&'a str),
}

/// One permission a user holds on one scope, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held<'a> {
    pub origin: Origin<'a>,
    /// A database name, or `""` for every database.
    pub scope: &'a str,
    pub permission: &'a str,
}

/// Every permission that reaches `user`'s grants: its own, then, with `resolve_roles`, those
/// of every role whose `users` list holds it. `grants_of` merges exactly these, and
/// `kapauth explain` shows where each came from.
pub fn permissions_held<'a>(
    user: &'a UserDoc,
    roles: &'a [RoleDoc],
    resolve_roles: bool,
) -> impl Iterator<Item = Held<'a>> {
    let own = user
        .permissions
        .iter()
        .map(|(scope, permissions)| (Origin::Direct, scope, permissions));
    let from_roles = roles
        .iter()
        .filter(move |role| resolve_roles && role.users.contains(&user.name))
        .flat_map(|role| {
            role.permissions
                .iter()
                .map(|(scope, permissions)| (Origin::Role(&role.name), scope, permissions))
        });
    own.chain(from_roles)
        .flat_map(|(origin, scope, permissions)| {
            permissions.iter().map(move |permission| Held {
                origin,
                scope,
                permission,
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::authorize::{Privilege, check};
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn user(name: &str, permissions: &[(&str, &[&str])]) -> UserDoc {
        UserDoc {
            name: name.to_string(),
            hash: String::new(),
            permissions: perms(permissions),
        }
    }

    fn perms(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(s, p)| (s.to_string(), p.iter().map(|x| x.to_string()).collect()))
            .collect()
    }

    fn role(name: &str, permissions: &[(&str, &[&str])], users: &[&str]) -> RoleDoc {
        RoleDoc {
            name: name.to_string(),
            permissions: perms(permissions),
            users: users.iter().map(|u| u.to_string()).collect(),
        }
    }

    #[test]
    fn roles_that_list_the_user_add_their_permissions_when_resolved() {
        let johndoe = user("johndoe", &[]);
        let roles = [
            role(
                "kapacitor",
                &[("", &["KapacitorAPI", "KapacitorConfigAPI"])],
                &["johndoe"],
            ),
            role("other", &[("", &["KapacitorAPI"])], &["someone"]),
        ];
        let check_read = |grants: &Grants| check(grants, Privilege::Read, "/api/tasks");
        assert!(check_read(&grants_of(&johndoe, &roles, true)));
        assert!(!check_read(&grants_of(&johndoe, &roles, false)));
        assert!(!check_read(&grants_of(&johndoe, &roles[1..], true)));
        let direct = user("johndoe", &[("", &["KapacitorAPI"])]);
        assert!(check_read(&grants_of(&direct, &[], false)));
    }

    /// A meta source that counts lookups and answers from a fixed user.
    struct Counting {
        hash: String,
        lookups: AtomicUsize,
        ldap_checks: AtomicUsize,
        down: Mutex<bool>,
        /// `/authorized` gets no answer, while `/user` still does.
        ldap_down: Mutex<bool>,
    }

    impl MetaSource for Counting {
        fn user(&self, name: &str) -> Result<Option<MetaUser>, Unavailable> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            if *self.down.lock().unwrap() {
                return Err(Unavailable("down".to_string()));
            }
            if name != "alice" {
                return Ok(None);
            }
            let mut user = user("alice", &[("", &["KapacitorAPI"])]);
            user.hash = self.hash.clone();
            Ok(Some(MetaUser {
                user,
                roles: vec![],
            }))
        }

        fn check_password(&self, _: &str, password: &Password) -> Result<bool, Unavailable> {
            self.ldap_checks.fetch_add(1, Ordering::SeqCst);
            if *self.ldap_down.lock().unwrap() {
                return Err(Unavailable("ldap down".to_string()));
            }
            Ok(password.as_str() == "right")
        }
    }

    fn authenticator(expiration: Duration) -> (Arc<Counting>, Authenticator) {
        let hash = hash_bcrypt(&Password::new("right".into()), 4).unwrap();
        ldap_authenticator(expiration, hash)
    }

    fn ldap_authenticator(expiration: Duration, hash: String) -> (Arc<Counting>, Authenticator) {
        let source = Arc::new(Counting {
            hash,
            lookups: AtomicUsize::new(0),
            ldap_checks: AtomicUsize::new(0),
            down: Mutex::new(false),
            ldap_down: Mutex::new(false),
        });
        let authenticator = Authenticator::new(
            source.clone(),
            &settings(expiration),
            Secret::new(Vec::new()),
            &[1; 32],
        );
        (source, authenticator)
    }

    fn settings(expiration: Duration) -> Settings {
        Settings {
            cache_expiration: expiration,
            negative_cache_expiration: Duration::from_secs(60),
            meta_timeout: Duration::from_secs(1),
            meta_max_lookups: 16,
            resolve_roles: true,
            bcrypt_cost: 4,
            expected_meta_cost: 4,
            throttle: None,
        }
    }

    const HERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn login(
        authenticator: &Authenticator,
        name: &str,
        password: &str,
    ) -> Result<String, AuthError> {
        login_from(authenticator, name, password, HERE)
    }

    fn login_from(
        authenticator: &Authenticator,
        name: &str,
        password: &str,
        client: IpAddr,
    ) -> Result<String, AuthError> {
        let credentials = Credentials::Password {
            username: name.to_string(),
            password: Password::new(password.to_string()),
        };
        authenticator
            .authenticate(&credentials, client, 0)
            .map(|record| record.name.clone())
    }

    #[test]
    fn a_cached_user_costs_no_lookup_and_a_wrong_password_is_never_accepted() {
        let (source, authenticator) = authenticator(Duration::from_secs(60));
        assert_eq!(
            login(&authenticator, "alice", "right"),
            Ok("alice".to_string())
        );
        assert_eq!(
            login(&authenticator, "alice", "right"),
            Ok("alice".to_string())
        );
        assert_eq!(
            login(&authenticator, "alice", "wrong"),
            Err(AuthError::Failed)
        );
        assert_eq!(
            login(&authenticator, "alice", "wrong"),
            Err(AuthError::Failed)
        );
        assert_eq!(
            login(&authenticator, "alice", "right"),
            Ok("alice".to_string())
        );
        assert_eq!(source.lookups.load(Ordering::SeqCst), 1);
        assert_eq!(
            login(&authenticator, "bob", "right"),
            Err(AuthError::Failed)
        );
    }

    #[test]
    fn meta_down_is_unavailable_but_a_live_entry_still_answers() {
        let (source, authenticator) = authenticator(Duration::from_secs(60));
        assert_eq!(
            login(&authenticator, "alice", "right"),
            Ok("alice".to_string())
        );
        *source.down.lock().unwrap() = true;
        assert_eq!(
            login(&authenticator, "alice", "right"),
            Ok("alice".to_string())
        );
        assert_eq!(
            login(&authenticator, "carol", "right"),
            Err(AuthError::Unavailable("down".to_string()))
        );
    }

    #[test]
    fn concurrent_first_requests_share_one_lookup() {
        let (source, authenticator) = authenticator(Duration::from_secs(60));
        let authenticator = Arc::new(authenticator);
        let threads: Vec<_> = (0..20)
            .map(|_| {
                let authenticator = Arc::clone(&authenticator);
                std::thread::spawn(move || login(&authenticator, "alice", "right"))
            })
            .collect();
        for thread in threads {
            assert_eq!(thread.join().unwrap(), Ok("alice".to_string()));
        }
        assert_eq!(source.lookups.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn an_ldap_user_is_checked_at_meta_once_then_against_a_kept_bcrypt_hash() {
        let (source, authenticator) = ldap_authenticator(Duration::from_secs(60), String::new());
        assert_eq!(
            login(&authenticator, "alice", "right"),
            Ok("alice".to_string())
        );
        assert_eq!(source.ldap_checks.load(Ordering::SeqCst), 1);
        assert_eq!(
            login(&authenticator, "alice", "right"),
            Ok("alice".to_string())
        );
        assert_eq!(
            login(&authenticator, "alice", "wrong"),
            Err(AuthError::Failed)
        );
        assert_eq!(source.ldap_checks.load(Ordering::SeqCst), 1);
        assert_eq!(source.lookups.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn an_ldap_check_meta_cannot_answer_is_asked_once_per_login() {
        let (source, authenticator) = ldap_authenticator(Duration::from_secs(60), String::new());
        *source.ldap_down.lock().unwrap() = true;
        assert_eq!(
            login(&authenticator, "alice", "right"),
            Err(AuthError::Unavailable("ldap down".to_string()))
        );
        assert_eq!(source.ldap_checks.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn an_empty_password_fails_without_asking_meta_or_ldap() {
        let (source, authenticator) = ldap_authenticator(Duration::from_secs(60), String::new());
        assert_eq!(login(&authenticator, "alice", ""), Err(AuthError::Failed));
        assert_eq!(source.lookups.load(Ordering::SeqCst), 0);
        assert_eq!(source.ldap_checks.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn an_unknown_name_costs_one_lookup_per_negative_interval() {
        let (source, authenticator) = authenticator(Duration::from_secs(60));
        for _ in 0..5 {
            assert_eq!(login(&authenticator, "ghost", "x"), Err(AuthError::Failed));
        }
        assert_eq!(source.lookups.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_change_in_the_store_is_seen_on_the_next_request() {
        let (source, authenticator) = authenticator(Duration::from_secs(60));
        assert_eq!(
            login(&authenticator, "alice", "right"),
            Ok("alice".to_string())
        );
        assert_eq!(login(&authenticator, "ghost", "x"), Err(AuthError::Failed));
        let forget = authenticator.forgetter();
        forget(&["alice".to_string(), "ghost".to_string()].into());
        *source.down.lock().unwrap() = true;
        let unavailable = Err(AuthError::Unavailable("down".to_string()));
        assert_eq!(login(&authenticator, "alice", "right"), unavailable);
        assert_eq!(login(&authenticator, "ghost", "x"), unavailable);
    }

    #[test]
    fn failed_logins_are_throttled_per_address_and_never_lock_out_another() {
        let source = Arc::new(Counting {
            hash: hash_bcrypt(&Password::new("right".into()), 4).unwrap(),
            lookups: AtomicUsize::new(0),
            ldap_checks: AtomicUsize::new(0),
            down: Mutex::new(false),
            ldap_down: Mutex::new(false),
        });
        let mut settings = settings(Duration::from_secs(60));
        settings.throttle = Some(Budget {
            burst: 3,
            interval: Duration::from_secs(60),
        });
        let authenticator =
            Authenticator::new(source, &settings, Secret::new(Vec::new()), &[1; 32]);
        for _ in 0..3 {
            assert_eq!(
                login(&authenticator, "alice", "wrong"),
                Err(AuthError::Failed)
            );
        }
        // Past the budget even the right password is refused from here, unchecked...
        assert!(matches!(
            login(&authenticator, "alice", "right"),
            Err(AuthError::Throttled { retry_after }) if retry_after > Duration::ZERO
        ));
        // ...but accepted from another address.
        let elsewhere = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));
        assert_eq!(
            login_from(&authenticator, "alice", "right", elsewhere),
            Ok("alice".to_string())
        );
        // Successes spend nothing.
        for _ in 0..10 {
            assert!(login_from(&authenticator, "alice", "right", elsewhere).is_ok());
        }
    }

    /// A meta source whose lookups wait until the test lets them go.
    struct Stalled {
        release: Mutex<bool>,
        released: Condvar,
        started: AtomicUsize,
    }

    impl MetaSource for Stalled {
        fn user(&self, _: &str) -> Result<Option<MetaUser>, Unavailable> {
            self.started.fetch_add(1, Ordering::SeqCst);
            let guard = self.release.lock().unwrap();
            let _guard = self.released.wait_while(guard, |go| !*go).unwrap();
            Ok(None)
        }

        fn check_password(&self, _: &str, _: &Password) -> Result<bool, Unavailable> {
            Ok(false)
        }
    }

    #[test]
    fn lookups_past_meta_max_lookups_are_unavailable_after_a_bounded_wait() {
        let source = Arc::new(Stalled {
            release: Mutex::new(false),
            released: Condvar::new(),
            started: AtomicUsize::new(0),
        });
        let mut settings = settings(Duration::from_secs(60));
        settings.meta_max_lookups = 2;
        let authenticator = Arc::new(Authenticator::new(
            source.clone(),
            &settings,
            Secret::new(Vec::new()),
            &[1; 32],
        ));
        let stalled: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|name| {
                let authenticator = Arc::clone(&authenticator);
                std::thread::spawn(move || login(&authenticator, name, "x"))
            })
            .collect();
        while source.started.load(Ordering::SeqCst) < 2 {
            std::thread::yield_now();
        }
        let started = Instant::now();
        let third = login(&authenticator, "c", "x");
        assert_eq!(
            third,
            Err(AuthError::Unavailable(
                "meta-max-lookups (2) lookups already in flight".to_string()
            ))
        );
        assert!(started.elapsed() >= LOOKUP_WAIT);
        *source.release.lock().unwrap() = true;
        source.released.notify_all();
        for thread in stalled {
            assert_eq!(thread.join().unwrap(), Err(AuthError::Failed));
        }
        // Slots are given back: a new name is looked up again.
        assert_eq!(login(&authenticator, "d", "x"), Err(AuthError::Failed));
        assert_eq!(source.started.load(Ordering::SeqCst), 3);
    }
}
