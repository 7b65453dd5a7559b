//! Authentication (SPEC §1, §4, §5): from `Credentials` to the user's record and grants,
//! through the cache, a `MetaSource` (the meta API over HTTP, or the embedded store),
//! bcrypt or LDAP for passwords and the shared-secret JWT for tokens. Never stores or logs
//! a password: the cache keeps HMAC proofs.

pub mod cache;
pub mod meta_client;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::gateway::authorize::Grants;
use crate::gateway::credentials::Credentials;
use crate::log;
use crate::meta_api::{RoleDoc, UserDoc};
use crate::secret::jwt::{self, Secret, Token};
use crate::secret::password::{Password, ProofKey, hash_bcrypt, verify_bcrypt};
use cache::{Begin, Cache, Entry, Outcome, UserRecord};

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

/// Meta did not answer usefully within `meta-timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable;

/// Why a request is not authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// Unknown user or wrong password: 401 `authorization failed`, never saying which.
    Failed,
    /// Meta unavailable and no live cache entry: 503.
    Unavailable,
    /// A bearer token was refused: 401 with this exact text (SPEC §5).
    Token(String),
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Failed => f.write_str("authorization failed"),
            AuthError::Unavailable => f.write_str("authentication service unavailable"),
            AuthError::Token(message) => f.write_str(message),
        }
    }
}

/// Authenticates requests for the gateway.
pub struct Authenticator {
    cache: Cache,
    source: Arc<dyn MetaSource>,
    proof_key: ProofKey,
    shared_secret: Secret,
    resolve_roles: bool,
    /// Cost of the hashes kept for LDAP users.
    bcrypt_cost: u32,
    /// A hash at `bcrypt_cost`, checked for unknown users (empty if hashing failed).
    decoy_hash: String,
    /// How long a request waits for another request's lookup of the same user.
    wait_limit: Duration,
}

impl Authenticator {
    /// `proof_key_bytes` must be fresh random bytes for this process (SPEC §4).
    pub fn new(
        source: Arc<dyn MetaSource>,
        cache_expiration: Duration,
        meta_timeout: Duration,
        shared_secret: Secret,
        resolve_roles: bool,
        bcrypt_cost: u32,
        proof_key_bytes: &[u8; 32],
    ) -> Authenticator {
        Authenticator {
            cache: Cache::new(cache_expiration),
            source,
            proof_key: ProofKey::from_bytes(proof_key_bytes),
            shared_secret,
            resolve_roles,
            bcrypt_cost,
            decoy_hash: hash_bcrypt(&Password::new("kapauth decoy".to_string()), bcrypt_cost)
                .unwrap_or_default(),
            // The leader's lookup is bounded by meta-timeout, an LDAP check by another, a
            // bcrypt run by its cost; the margin covers the latter.
            wait_limit: meta_timeout * 2 + Duration::from_secs(5),
        }
    }

    /// The record of the user the credentials prove, or why not.
    pub fn authenticate(
        &self,
        credentials: &Credentials,
        now_unix: i64,
    ) -> Result<Arc<UserRecord>, AuthError> {
        match credentials {
            Credentials::Password { username, password } => self.with_password(username, password),
            Credentials::Bearer(token) => self.with_token(token, now_unix),
        }
    }

    /// Users held by the cache, for tests and health.
    pub fn cached_users(&self) -> usize {
        self.cache.len()
    }

    fn with_password(&self, name: &str, password: &Password) -> Result<Arc<UserRecord>, AuthError> {
        // An empty password proves nothing, and an LDAP server may take it for an anonymous
        // bind that succeeds.
        if password.as_str().is_empty() {
            return Err(AuthError::Failed);
        }
        let entry = match self.entry(name, Some(password)) {
            Err(AuthError::Failed) => {
                // The same bcrypt work as for a known user, so timing does not tell which
                // names exist.
                let _ = verify_bcrypt(password, &self.decoy_hash);
                return Err(AuthError::Failed);
            }
            other => other?,
        };
        let record = &entry.record;
        if entry
            .verified
            .as_deref()
            .is_some_and(|proof| self.proof_key.matches(proof, name, password))
        {
            return Ok(Arc::clone(record));
        }
        if entry
            .rejected
            .as_deref()
            .is_some_and(|proof| self.proof_key.matches(proof, name, password))
        {
            return Err(AuthError::Failed);
        }
        // Another password than the one the entry has seen: verify it against the cached
        // hash (no meta call), and remember the result.
        let valid = self.verify(record, password)?;
        let proof = Some(self.proof_key.prove(name, password));
        if valid {
            self.cache.remember(record, proof, None);
            Ok(Arc::clone(record))
        } else {
            self.cache.remember(record, None, proof);
            Err(AuthError::Failed)
        }
    }

    fn with_token(&self, token: &Token, now_unix: i64) -> Result<Arc<UserRecord>, AuthError> {
        let claims = jwt::verify(token, &self.shared_secret, now_unix)
            .map_err(|error| AuthError::Token(format!("invalid token: {error}")))?;
        let name = jwt::username_from_claims(&claims)
            .map_err(|error| AuthError::Token(error.to_string()))?;
        // A valid token names the user; no password is checked (SPEC §5).
        Ok(self.entry(&name, None)?.record)
    }

    /// The cache entry for `name`: a live one, the outcome of another request's lookup, or
    /// a lookup of this request's own. A leading password request verifies its password
    /// before publishing, so identical concurrent requests share one bcrypt run.
    fn entry(&self, name: &str, password: Option<&Password>) -> Result<Entry, AuthError> {
        let outcome = match self.cache.begin(name, Instant::now()) {
            Begin::Hit(entry) => return Ok(entry),
            Begin::Wait(flight) => flight.wait(self.wait_limit),
            Begin::Lead(leader) => {
                let outcome = self.look_up(name, password);
                leader.finish(outcome.clone(), Instant::now());
                outcome
            }
        };
        match outcome {
            Outcome::Found(entry) => Ok(entry),
            Outcome::Unknown => Err(AuthError::Failed),
            Outcome::Unavailable => Err(AuthError::Unavailable),
        }
    }

    fn look_up(&self, name: &str, password: Option<&Password>) -> Outcome {
        let meta_user = match self.source.user(name) {
            Ok(Some(meta_user)) => meta_user,
            Ok(None) => return Outcome::Unknown,
            Err(Unavailable) => return Outcome::Unavailable,
        };
        let grants = grants_of(&meta_user.user, &meta_user.roles, self.resolve_roles);
        let mut hash = meta_user.user.hash;
        let (mut verified, mut rejected) = (None, None);
        if let Some(password) = password {
            let proof = Some(Arc::new(self.proof_key.prove(name, password)));
            match self.check(name, &hash, password) {
                Ok(true) => {
                    if hash.is_empty() {
                        // An LDAP user: keep a bcrypt hash at [auth] bcrypt-cost, so another
                        // password for this entry is checked here, not at meta (SPEC §4).
                        hash = hash_bcrypt(password, self.bcrypt_cost).unwrap_or_default();
                    }
                    verified = proof;
                }
                Ok(false) => rejected = proof,
                // The record is good to cache; the caller checks the password again.
                Err(_) => {}
            }
        }
        let record = Arc::new(UserRecord {
            name: name.to_string(),
            hash,
            grants,
        });
        let expires = self.cache.expiry(Instant::now());
        Outcome::Found(Entry {
            record,
            verified,
            rejected,
            expires,
        })
    }

    fn verify(&self, record: &UserRecord, password: &Password) -> Result<bool, AuthError> {
        self.check(&record.name, &record.hash, password)
    }

    /// Checks `password`: bcrypt against a hash, meta's `/authorized` for an LDAP user
    /// (empty hash).
    fn check(&self, name: &str, hash: &str, password: &Password) -> Result<bool, AuthError> {
        if hash.is_empty() {
            return self
                .source
                .check_password(name, password)
                .map_err(|Unavailable| AuthError::Unavailable);
        }
        match verify_bcrypt(password, hash) {
            Ok(valid) => Ok(valid),
            Err(_) => {
                log::warn("meta returned a malformed password hash; login refused")
                    .field("user", name)
                    .emit();
                Ok(false)
            }
        }
    }
}

/// The grants of a user: its own permissions and, with `resolve_roles`, those of every
/// role whose `users` list holds it (SPEC §3). Independent of the order of anything.
pub fn grants_of(user: &UserDoc, roles: &[RoleDoc], resolve_roles: bool) -> Grants {
    let own = user.permissions.iter();
    let from_roles = roles
        .iter()
        .filter(|role| resolve_roles && role.users.contains(&user.name))
        .flat_map(|role| role.permissions.iter());
    Grants::from_permissions(own.chain(from_roles).flat_map(|(scope, permissions)| {
        permissions
            .iter()
            .map(move |permission| (scope.as_str(), permission.as_str()))
    }))
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
    }

    impl MetaSource for Counting {
        fn user(&self, name: &str) -> Result<Option<MetaUser>, Unavailable> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            if *self.down.lock().unwrap() {
                return Err(Unavailable);
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
        });
        let authenticator = Authenticator::new(
            source.clone(),
            expiration,
            Duration::from_secs(1),
            Secret::new(Vec::new()),
            true,
            4,
            &[1; 32],
        );
        (source, authenticator)
    }

    fn login(
        authenticator: &Authenticator,
        name: &str,
        password: &str,
    ) -> Result<String, AuthError> {
        let credentials = Credentials::Password {
            username: name.to_string(),
            password: Password::new(password.to_string()),
        };
        authenticator
            .authenticate(&credentials, 0)
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
            Err(AuthError::Unavailable)
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
    fn an_empty_password_fails_without_asking_meta_or_ldap() {
        let (source, authenticator) = ldap_authenticator(Duration::from_secs(60), String::new());
        assert_eq!(login(&authenticator, "alice", ""), Err(AuthError::Failed));
        assert_eq!(source.lookups.load(Ordering::SeqCst), 0);
        assert_eq!(source.ldap_checks.load(Ordering::SeqCst), 0);
    }
}
