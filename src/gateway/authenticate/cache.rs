//! The user cache of SPEC §4: a HashMap behind a Mutex of entries that expire
//! `cache-expiration` after their lookup, with single flight: while one request looks a
//! user up, the others for that user wait for its outcome instead of asking meta again.
//! Holds proofs of verified passwords (HMAC tags), never a password. The clock comes in as
//! arguments; nothing here does I/O.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
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

/// A cached user: the record, and proofs of the last password that verified and the last
/// one that did not, so repeats of either cost no bcrypt run.
#[derive(Debug, Clone)]
pub struct Entry {
    pub record: Arc<UserRecord>,
    pub verified: Option<Arc<Proof>>,
    pub rejected: Option<Arc<Proof>>,
    pub expires: Instant,
}

/// The outcome of one lookup, shared by every request that waited for it.
#[derive(Debug, Clone)]
pub enum Outcome {
    Found(Entry),
    /// Meta does not know the user.
    Unknown,
    /// Meta did not answer within `meta-timeout`.
    Unavailable,
}

/// What a request must do next for a user.
pub enum Begin<'a> {
    /// A live entry answers.
    Hit(Entry),
    /// Nobody is looking the user up: this request does, then calls `Leader::finish`.
    Lead(Leader<'a>),
    /// Another request is looking the user up: wait for its outcome.
    Wait(Arc<Flight>),
}

/// The user cache.
pub struct Cache {
    ttl: Duration,
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
    finished: bool,
}

enum Slot {
    Ready(Entry),
    Loading(Arc<Flight>),
}

struct State {
    slots: HashMap<String, Slot>,
    last_sweep: Option<Instant>,
}

impl Cache {
    pub fn new(ttl: Duration) -> Cache {
        Cache {
            ttl,
            state: Mutex::new(State {
                slots: HashMap::new(),
                last_sweep: None,
            }),
        }
    }

    /// The live entry for `name`, or the lookup to lead or wait for.
    pub fn begin(&self, name: &str, now: Instant) -> Begin<'_> {
        let mut state = self.lock();
        match state.slots.get(name) {
            Some(Slot::Ready(entry)) if now < entry.expires => return Begin::Hit(entry.clone()),
            Some(Slot::Loading(flight)) => return Begin::Wait(Arc::clone(flight)),
            // Expired or absent: this request leads a new lookup. An expired entry is
            // dropped here, so meta being down never extends it (SPEC §4).
            _ => {}
        }
        let flight = Arc::new(Flight::default());
        state
            .slots
            .insert(name.to_string(), Slot::Loading(Arc::clone(&flight)));
        Begin::Lead(Leader {
            cache: self,
            name: name.to_string(),
            flight,
            finished: false,
        })
    }

    /// When an entry made `now` expires.
    pub fn expiry(&self, now: Instant) -> Instant {
        now.checked_add(self.ttl).unwrap_or(now)
    }

    /// Records a proof on the entry for `record`, if that entry is still the current one.
    pub fn remember(
        &self,
        record: &Arc<UserRecord>,
        verified: Option<Proof>,
        rejected: Option<Proof>,
    ) {
        let mut state = self.lock();
        let Some(Slot::Ready(entry)) = state.slots.get_mut(&record.name) else {
            return;
        };
        if !Arc::ptr_eq(&entry.record, record) {
            return;
        }
        if let Some(proof) = verified {
            entry.verified = Some(Arc::new(proof));
        }
        if let Some(proof) = rejected {
            entry.rejected = Some(Arc::new(proof));
        }
    }

    /// How many users the cache holds, loading ones included.
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
                match &outcome {
                    Outcome::Found(entry) if now < entry.expires => {
                        state
                            .slots
                            .insert(self.name.clone(), Slot::Ready(entry.clone()));
                    }
                    _ => {
                        state.slots.remove(&self.name);
                    }
                }
            }
            sweep(&mut state, now);
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
            self.publish(Outcome::Unavailable, Instant::now());
        }
    }
}

impl Flight {
    /// The leader's outcome, or `Unavailable` if it takes longer than `timeout`.
    pub fn wait(&self, timeout: Duration) -> Outcome {
        let guard = self
            .outcome
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (guard, _) = self
            .done
            .wait_timeout_while(guard, timeout, |outcome| outcome.is_none())
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        guard.clone().unwrap_or(Outcome::Unavailable)
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
        Slot::Loading(_) => true,
    });
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
            rejected: None,
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
        let cache = Cache::new(Duration::from_secs(10));
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
    fn unknown_and_unavailable_outcomes_are_not_cached() {
        let cache = Cache::new(Duration::from_secs(10));
        let t0 = Instant::now();
        lead(&cache, "ghost", t0).finish(Outcome::Unknown, t0);
        assert!(matches!(cache.begin("ghost", t0), Begin::Lead(_)));
        let cache = Cache::new(Duration::from_secs(10));
        lead(&cache, "down", t0).finish(Outcome::Unavailable, t0);
        assert!(matches!(cache.begin("down", t0), Begin::Lead(_)));
    }

    #[test]
    fn a_zero_expiration_caches_nothing() {
        let cache = Cache::new(Duration::ZERO);
        let t0 = Instant::now();
        lead(&cache, "alice", t0).finish(found(&cache, "alice", t0), t0);
        assert!(matches!(cache.begin("alice", t0), Begin::Lead(_)));
    }

    #[test]
    fn concurrent_first_requests_wait_for_one_leader() {
        let cache = Arc::new(Cache::new(Duration::from_secs(10)));
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
        let cache = Cache::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let leader = lead(&cache, "alice", t0);
        let Begin::Wait(flight) = cache.begin("alice", t0) else {
            panic!("expected to wait")
        };
        drop(leader);
        assert!(matches!(
            flight.wait(Duration::from_secs(1)),
            Outcome::Unavailable
        ));
        assert!(matches!(cache.begin("alice", t0), Begin::Lead(_)));
    }

    #[test]
    fn expired_entries_are_swept_so_memory_follows_live_users() {
        let cache = Cache::new(Duration::from_secs(10));
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
        let cache = Cache::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let old = record("alice");
        let entry = |record: &Arc<UserRecord>, at: Instant| {
            Outcome::Found(Entry {
                record: Arc::clone(record),
                verified: None,
                rejected: None,
                expires: cache.expiry(at),
            })
        };
        lead(&cache, "alice", t0).finish(entry(&old, t0), t0);
        let later = t0 + Duration::from_secs(20);
        let new = record("alice");
        lead(&cache, "alice", later).finish(entry(&new, later), later);
        cache.remember(&old, Some(key.prove("alice", &password)), None);
        let Begin::Hit(hit) = cache.begin("alice", later) else {
            panic!("expected a hit")
        };
        assert!(
            hit.verified.is_none(),
            "a proof for a replaced record must not land"
        );
        cache.remember(&new, Some(key.prove("alice", &password)), None);
        let Begin::Hit(hit) = cache.begin("alice", later) else {
            panic!("expected a hit")
        };
        assert!(key.matches(hit.verified.as_deref().unwrap(), "alice", &password));
    }
}
