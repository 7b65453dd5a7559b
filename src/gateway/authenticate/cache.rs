//! The user cache of SPEC §4 and §11: a HashMap behind a Mutex of entries that expire
//! `cache-expiration` after their lookup, names meta does not know remembered for
//! `negative-cache-expiration` (at most `MAX_UNKNOWN` of them), and single flight: while one
//! request looks a user up, the others for that user wait for its outcome instead of asking
//! meta again. `forget` drops the entries of users the embedded store changed, and a lookup
//! that began before it can no longer publish. Holds proofs of verified passwords (HMAC
//! tags), never a password. The clock comes in as arguments; nothing here does I/O.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use crate::gateway::authorize::Grants;
use crate::secret::password::Proof;

/// What meta said about a user, as the gateway needs it. Its `Debug` never shows the hash.
pub struct UserRecord {
    pub name: String,
    /// bcrypt hash from meta; empty when meta delegates passwords to LDAP.
    pub hash: String,
    pub grants: Grants,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("name", &self.name)
            .field("hash", &"***")
            .field("grants", &self.grants)
            .finish()
    }
}

/// The most unknown names remembered at once; past it, an unknown name is not remembered
/// (it costs a lookup each time, under `meta-max-lookups`), so memory stays bounded.
pub const MAX_UNKNOWN: usize = 10_000;

/// A cached user: the record, and the proof of the last password that verified, so its
/// repeats cost no bcrypt run. A wrong password is never remembered: checking it again
/// costs what checking any wrong password costs (SPEC §11).
#[derive(Debug, Clone)]
pub struct Entry {
    pub record: Arc<UserRecord>,
    pub verified: Option<Arc<Proof>>,
    pub expires: Instant,
}

/// The outcome of one lookup, shared by every request that waited for it.
#[derive(Debug, Clone)]
pub enum Outcome {
    Found(Entry),
    /// Meta does not know the user.
    Unknown,
    /// Meta did not answer usefully; the reason is for the log and holds no secret.
    Unavailable(String),
}

/// What a request must do next for a user.
pub enum Begin<'a> {
    /// A live entry answers.
    Hit(Entry),
    /// Meta did not know the user a moment ago.
    Unknown,
    /// Nobody is looking the user up: this request does, then calls `Leader::finish`.
    Lead(Leader<'a>),
    /// Another request is looking the user up: wait for its outcome.
    Wait(Arc<Flight>),
}

/// The user cache.
pub struct Cache {
    /// `cache-expiration` and `negative-cache-expiration`; a reload may change them, for
    /// entries made afterwards.
    expirations: RwLock<(Duration, Duration)>,
    state: Mutex<State>,
}

/// One lookup in progress.
#[derive(Default)]
pub struct Flight {
    outcome: Mutex<Option<Outcome>>,
    done: Condvar,
}

/// The duty to finish a lookup; dropping it unfinished (an error path or a panic) wakes
/// the waiters with `Unavailable` so none waits for ever.
pub struct Leader<'a> {
    cache: &'a Cache,
    name: String,
    flight: Arc<Flight>,
    /// The cache's generation when the lookup began: if `forget` ran since, what the
    /// lookup read may be older than the change, and it is not kept.
    generation: u64,
    finished: bool,
}

enum Slot {
    Ready(Entry),
    /// A name meta did not know, until this instant.
    Unknown(Instant),
    Loading(Arc<Flight>),
}

struct State {
    slots: HashMap<String, Slot>,
    unknown: usize,
    generation: u64,
    last_sweep: Option<Instant>,
}

impl Cache {
    pub fn new(ttl: Duration, unknown_ttl: Duration) -> Cache {
        Cache {
            expirations: RwLock::new((ttl, unknown_ttl)),
            state: Mutex::new(State {
                slots: HashMap::new(),
                unknown: 0,
                generation: 0,
                last_sweep: None,
            }),
        }
    }

    /// The live entry for `name`, or the lookup to lead or wait for.
    pub fn begin(&self, name: &str, now: Instant) -> Begin<'_> {
        let mut state = self.lock();
        match state.slots.get(name) {
            Some(Slot::Ready(entry)) if now < entry.expires => return Begin::Hit(entry.clone()),
            Some(Slot::Unknown(expires)) if now < *expires => return Begin::Unknown,
            Some(Slot::Loading(flight)) => return Begin::Wait(Arc::clone(flight)),
            // Expired or absent: this request leads a new lookup. An expired entry is
            // dropped here, so meta being down never extends it (SPEC §4).
            _ => {}
        }
        let flight = Arc::new(Flight::default());
        let generation = state.generation;
        state.replace(name, Slot::Loading(Arc::clone(&flight)));
        Begin::Lead(Leader {
            cache: self,
            name: name.to_string(),
            flight,
            generation,
            finished: false,
        })
    }

    /// Drops what the cache holds for `names`, and keeps lookups already under way from
    /// publishing what they read: the next request for any of them asks meta again.
    pub fn forget<'n>(&self, names: impl IntoIterator<Item = &'n String>) {
        let mut state = self.lock();
        state.generation += 1;
        for name in names {
            if matches!(
                state.slots.get(name),
                Some(Slot::Ready(_) | Slot::Unknown(_))
            ) {
                state.remove(name);
            }
        }
    }

    /// When an entry made `now` expires.
    pub fn expiry(&self, now: Instant) -> Instant {
        now.checked_add(self.expirations().0).unwrap_or(now)
    }

    /// New expirations from a reload; entries already made keep theirs.
    pub fn set_expirations(&self, ttl: Duration, unknown_ttl: Duration) {
        *self
            .expirations
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = (ttl, unknown_ttl);
    }

    fn expirations(&self) -> (Duration, Duration) {
        *self
            .expirations
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records the proof of a verified password on the entry for `record`, if that entry
    /// is still the current one.
    pub fn remember(&self, record: &Arc<UserRecord>, verified: Proof) {
        let mut state = self.lock();
        let Some(Slot::Ready(entry)) = state.slots.get_mut(&record.name) else {
            return;
        };
        if Arc::ptr_eq(&entry.record, record) {
            entry.verified = Some(Arc::new(verified));
        }
    }

    /// How many names the cache holds: users, unknown names and lookups under way.
    pub fn len(&self) -> usize {
        self.lock().slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the map whole, so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Leader<'_> {
    /// Publishes the outcome to the waiters and caches a found user until it expires.
    pub fn finish(mut self, outcome: Outcome, now: Instant) {
        self.publish(outcome, now);
    }

    fn publish(&mut self, outcome: Outcome, now: Instant) {
        self.finished = true;
        {
            let mut state = self.cache.lock();
            let ours = matches!(state.slots.get(&self.name), Some(Slot::Loading(f)) if Arc::ptr_eq(f, &self.flight));
            if ours {
                state.remove(&self.name);
                sweep(&mut state, now);
                // A lookup that began before a `forget` may have read the old user.
                let current = state.generation == self.generation;
                match &outcome {
                    Outcome::Found(entry) if current && now < entry.expires => {
                        state.replace(&self.name, Slot::Ready(entry.clone()));
                    }
                    Outcome::Unknown if current && state.unknown < MAX_UNKNOWN => {
                        if let Some(expires) = now.checked_add(self.cache.expirations().1)
                            && now < expires
                        {
                            state.replace(&self.name, Slot::Unknown(expires));
                        }
                    }
                    _ => {}
                }
            }
        }
        let mut slot = self
            .flight
            .outcome
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *slot = Some(outcome);
        self.flight.done.notify_all();
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.publish(
                Outcome::Unavailable("the lookup ended without an answer".to_string()),
                Instant::now(),
            );
        }
    }
}

impl Flight {
    /// The leader's outcome, or `Unavailable` if it takes longer than `timeout`.
    pub fn wait(&self, timeout: Duration) -> Outcome {
        let waited = |outcome: Option<Outcome>| {
            outcome.unwrap_or_else(|| {
                Outcome::Unavailable("another request's lookup took too long".to_string())
            })
        };
        let guard = self
            .outcome
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (guard, _) = self
            .done
            .wait_timeout_while(guard, timeout, |outcome| outcome.is_none())
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        waited(guard.clone())
    }
}

impl State {
    /// Puts `slot` under `name`, keeping the count of unknown names.
    fn replace(&mut self, name: &str, slot: Slot) {
        if matches!(slot, Slot::Unknown(_)) {
            self.unknown += 1;
        }
        if let Some(Slot::Unknown(_)) = self.slots.insert(name.to_string(), slot) {
            self.unknown -= 1;
        }
    }

    fn remove(&mut self, name: &str) {
        if let Some(Slot::Unknown(_)) = self.slots.remove(name) {
            self.unknown -= 1;
        }
    }
}

/// Drops expired entries at most once a second, so memory follows the live users without
/// a scan on every request.
fn sweep(state: &mut State, now: Instant) {
    if state
        .last_sweep
        .is_some_and(|last| now.saturating_duration_since(last) < Duration::from_secs(1))
    {
        return;
    }
    state.last_sweep = Some(now);
    state.slots.retain(|_, slot| match slot {
        Slot::Ready(entry) => now < entry.expires,
        Slot::Unknown(expires) => now < *expires,
        Slot::Loading(_) => true,
    });
    state.unknown = state
        .slots
        .values()
        .filter(|slot| matches!(slot, Slot::Unknown(_)))
        .count();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::password::{Password, ProofKey};

    fn record(name: &str) -> Arc<UserRecord> {
        Arc::new(UserRecord {
            name: name.to_string(),
            hash: String::new(),
            grants: Grants::default(),
        })
    }

    fn found(cache: &Cache, name: &str, now: Instant) -> Outcome {
        Outcome::Found(Entry {
            record: record(name),
            verified: None,
            expires: cache.expiry(now),
        })
    }

    fn lead<'a>(cache: &'a Cache, name: &str, now: Instant) -> Leader<'a> {
        match cache.begin(name, now) {
            Begin::Lead(leader) => leader,
            _ => panic!("expected to lead the lookup of {name}"),
        }
    }

    #[test]
    fn an_entry_answers_until_it_expires_then_a_new_lookup_leads() {
        let cache = Cache::new(Duration::from_secs(10), Duration::from_secs(5));
        let t0 = Instant::now();
        lead(&cache, "alice", t0).finish(found(&cache, "alice", t0), t0);
        assert!(matches!(
            cache.begin("alice", t0 + Duration::from_secs(9)),
            Begin::Hit(_)
        ));
        assert!(matches!(
            cache.begin("alice", t0 + Duration::from_secs(10)),
            Begin::Lead(_)
        ));
    }

    #[test]
    fn an_unknown_name_is_remembered_for_the_negative_expiration() {
        let cache = Cache::new(Duration::from_secs(10), Duration::from_secs(5));
        let t0 = Instant::now();
        lead(&cache, "ghost", t0).finish(Outcome::Unknown, t0);
        assert!(matches!(
            cache.begin("ghost", t0 + Duration::from_secs(4)),
            Begin::Unknown
        ));
        assert!(matches!(
            cache.begin("ghost", t0 + Duration::from_secs(5)),
            Begin::Lead(_)
        ));
        let off = Cache::new(Duration::from_secs(10), Duration::ZERO);
        lead(&off, "ghost", t0).finish(Outcome::Unknown, t0);
        assert!(matches!(off.begin("ghost", t0), Begin::Lead(_)));
    }

    #[test]
    fn unknown_names_are_bounded_in_number() {
        let cache = Cache::new(Duration::from_secs(10), Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..MAX_UNKNOWN + 5 {
            let name = format!("ghost{i}");
            lead(&cache, &name, t0).finish(Outcome::Unknown, t0);
        }
        assert_eq!(cache.len(), MAX_UNKNOWN);
        let name = format!("ghost{}", MAX_UNKNOWN + 1);
        assert!(matches!(cache.begin(&name, t0), Begin::Lead(_)));
        // Once they expire, the sweep makes room again.
        let later = t0 + Duration::from_secs(61);
        lead(&cache, "new", later).finish(Outcome::Unknown, later);
        assert!(matches!(cache.begin("new", later), Begin::Unknown));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn forget_drops_entries_and_unknown_names_and_stale_lookups() {
        let cache = Cache::new(Duration::from_secs(10), Duration::from_secs(10));
        let t0 = Instant::now();
        lead(&cache, "alice", t0).finish(found(&cache, "alice", t0), t0);
        lead(&cache, "ghost", t0).finish(Outcome::Unknown, t0);
        lead(&cache, "bob", t0).finish(found(&cache, "bob", t0), t0);
        let stale = lead(&cache, "carol", t0);
        cache.forget(&["alice".to_string(), "ghost".to_string()]);
        assert!(matches!(cache.begin("alice", t0), Begin::Lead(_)));
        assert!(matches!(cache.begin("ghost", t0), Begin::Lead(_)));
        assert!(matches!(cache.begin("bob", t0), Begin::Hit(_)));
        // carol's lookup began before the change: what it read is not kept.
        stale.finish(found(&cache, "carol", t0), t0);
        assert!(matches!(cache.begin("carol", t0), Begin::Lead(_)));
    }

    #[test]
    fn unavailable_outcomes_are_not_cached() {
        let t0 = Instant::now();
        let cache = Cache::new(Duration::from_secs(10), Duration::from_secs(5));
        lead(&cache, "down", t0).finish(Outcome::Unavailable("down".to_string()), t0);
        assert!(matches!(cache.begin("down", t0), Begin::Lead(_)));
    }

    #[test]
    fn a_zero_expiration_caches_nothing() {
        let cache = Cache::new(Duration::ZERO, Duration::ZERO);
        let t0 = Instant::now();
        lead(&cache, "alice", t0).finish(found(&cache, "alice", t0), t0);
        assert!(matches!(cache.begin("alice", t0), Begin::Lead(_)));
    }

    #[test]
    fn concurrent_first_requests_wait_for_one_leader() {
        let cache = Arc::new(Cache::new(Duration::from_secs(10), Duration::from_secs(5)));
        let t0 = Instant::now();
        let leader = lead(&cache, "alice", t0);
        let waiters: Vec<_> = (0..8)
            .map(|_| {
                let Begin::Wait(flight) = cache.begin("alice", t0) else {
                    panic!("expected to wait")
                };
                std::thread::spawn(move || flight.wait(Duration::from_secs(10)))
            })
            .collect();
        leader.finish(found(&cache, "alice", t0), t0);
        for waiter in waiters {
            assert!(matches!(waiter.join().unwrap(), Outcome::Found(_)));
        }
    }

    #[test]
    fn a_leader_dropped_unfinished_wakes_its_waiters_as_unavailable() {
        let cache = Cache::new(Duration::from_secs(10), Duration::from_secs(5));
        let t0 = Instant::now();
        let leader = lead(&cache, "alice", t0);
        let Begin::Wait(flight) = cache.begin("alice", t0) else {
            panic!("expected to wait")
        };
        drop(leader);
        assert!(matches!(
            flight.wait(Duration::from_secs(1)),
            Outcome::Unavailable(_)
        ));
        assert!(matches!(cache.begin("alice", t0), Begin::Lead(_)));
    }

    #[test]
    fn expired_entries_are_swept_so_memory_follows_live_users() {
        let cache = Cache::new(Duration::from_secs(10), Duration::from_secs(5));
        let t0 = Instant::now();
        for i in 0..100 {
            let name = format!("user{i}");
            lead(&cache, &name, t0).finish(found(&cache, &name, t0), t0);
        }
        assert_eq!(cache.len(), 100);
        let later = t0 + Duration::from_secs(11);
        lead(&cache, "fresh", later).finish(found(&cache, "fresh", later), later);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn proofs_are_remembered_only_on_the_current_entry() {
        let key = ProofKey::from_bytes(&[7; 32]);
        let password = Password::new("pw".to_string());
        let cache = Cache::new(Duration::from_secs(10), Duration::from_secs(5));
        let t0 = Instant::now();
        let old = record("alice");
        let entry = |record: &Arc<UserRecord>, at: Instant| {
            Outcome::Found(Entry {
                record: Arc::clone(record),
                verified: None,
                expires: cache.expiry(at),
            })
        };
        lead(&cache, "alice", t0).finish(entry(&old, t0), t0);
        let later = t0 + Duration::from_secs(20);
        let new = record("alice");
        lead(&cache, "alice", later).finish(entry(&new, later), later);
        cache.remember(&old, key.prove("alice", &password));
        let Begin::Hit(hit) = cache.begin("alice", later) else {
            panic!("expected a hit")
        };
        assert!(
            hit.verified.is_none(),
            "a proof for a replaced record must not land"
        );
        cache.remember(&new, key.prove("alice", &password));
        let Begin::Hit(hit) = cache.begin("alice", later) else {
            panic!("expected a hit")
        };
        assert!(key.matches(hit.verified.as_deref().unwrap(), "alice", &password));
    }
}
