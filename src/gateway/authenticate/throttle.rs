//! Failed-login throttling (SPEC §11, kapauth): a failure budget per username at one client
//! address, and a larger one per client address across usernames, each a token bucket.
//! Only failures spend the budget, and a request is refused only by the buckets of its own
//! address, so failures from one address never lock a user out at another. Memory is
//! bounded: at most `MAX_BUCKETS` buckets, the fullest evicted first. Pure: the clock comes
//! in as arguments; usernames are kept only as keyed hashes.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// The most buckets held at once.
pub const MAX_BUCKETS: usize = 65_536;

/// How much more an address may fail across usernames than at one username: a shared
/// address (a NAT, a proxy) carries many users' typos.
pub const ADDRESS_FACTOR: u32 = 10;

/// The budget of one username at one address; an address gets `ADDRESS_FACTOR` times the
/// burst, refilled `ADDRESS_FACTOR` times as often.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Failures allowed at once.
    pub burst: u32,
    /// One more failure is allowed per interval.
    pub interval: Duration,
}

/// A request refused for its failures: try again after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after: Duration,
}

/// The failure budgets of every username and address that failed recently.
pub struct Throttle {
    /// `None`: throttling is off (`[auth] login-throttling = false`).
    budget: RwLock<Option<Budget>>,
    names: RandomState,
    buckets: Mutex<HashMap<Key, Instant>>,
    /// How many buckets there are, readable without the lock: while none is, no login is
    /// refused, and a successful login pays no lock and no hash.
    held: AtomicUsize,
    /// When full buckets were last dropped: at most once a second, so an attack's buckets
    /// go once it ends and logins are lock-free again.
    pruned: Mutex<Option<Instant>>,
}

/// A bucket: one address, or one username (as a keyed hash) at one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Address(IpAddr),
    User(u64, IpAddr),
}

impl Throttle {
    pub fn new(budget: Option<Budget>) -> Throttle {
        Throttle {
            budget: RwLock::new(budget),
            names: RandomState::new(),
            buckets: Mutex::new(HashMap::new()),
            held: AtomicUsize::new(0),
            pruned: Mutex::new(None),
        }
    }

    /// A new budget from a reload; failures already counted stay counted.
    pub fn set_budget(&self, budget: Option<Budget>) {
        *self.budget.write().unwrap_or_else(PoisonError::into_inner) = budget;
    }

    /// Whether `client` may try a password for `username` now.
    pub fn check(&self, username: &str, client: IpAddr, now: Instant) -> Result<(), Throttled> {
        if self.held.load(Ordering::Acquire) == 0 {
            return Ok(());
        }
        let Some(budget) = self.budget() else {
            return Ok(());
        };
        let mut buckets = self.lock();
        self.prune(&mut buckets, now);
        let mut retry_after = Duration::ZERO;
        for (key, budget) in self.keys(budget, username, client) {
            if let Some(full_at) = buckets.get(&key) {
                retry_after = retry_after.max(wait(*full_at, budget, now));
            }
        }
        if retry_after.is_zero() {
            Ok(())
        } else {
            Err(Throttled { retry_after })
        }
    }

    /// Spends one failure from the buckets of `username` at `client`.
    pub fn failed(&self, username: &str, client: IpAddr, now: Instant) {
        let Some(budget) = self.budget() else {
            return;
        };
        let mut buckets = self.lock();
        for (key, budget) in self.keys(budget, username, client) {
            if !buckets.contains_key(&key) && buckets.len() >= MAX_BUCKETS {
                make_room(&mut buckets, now);
            }
            let full_at = buckets.entry(key).or_insert(now);
            *full_at = (*full_at).max(now) + budget.interval;
        }
        self.held.store(buckets.len(), Ordering::Release);
    }

    /// Drops the buckets that are full again, at most once a second.
    fn prune(&self, buckets: &mut HashMap<Key, Instant>, now: Instant) {
        let mut pruned = self.pruned.lock().unwrap_or_else(PoisonError::into_inner);
        if pruned.is_some_and(|at| now.saturating_duration_since(at) < Duration::from_secs(1)) {
            return;
        }
        *pruned = Some(now);
        buckets.retain(|_, full_at| *full_at > now);
        self.held.store(buckets.len(), Ordering::Release);
    }

    fn budget(&self) -> Option<Budget> {
        *self.budget.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn keys(&self, budget: Budget, username: &str, client: IpAddr) -> [(Key, Budget); 2] {
        let name = self.names.hash_one(username);
        let address = Budget {
            burst: budget.burst.saturating_mul(ADDRESS_FACTOR),
            interval: budget.interval / ADDRESS_FACTOR,
        };
        [
            (Key::User(name, client), budget),
            (Key::Address(client), address),
        ]
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Instant>> {
        // Every critical section leaves the map whole, so a poisoned lock is still usable.
        self.buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// How long until a bucket that is full again at `full_at` allows one more failure: the
/// bucket holds `burst` failures, each one worth `interval` of refill.
fn wait(full_at: Instant, budget: Budget, now: Instant) -> Duration {
    let debt = full_at.saturating_duration_since(now);
    let allowed = budget.interval * budget.burst.saturating_sub(1);
    debt.saturating_sub(allowed)
}

/// Drops the buckets that are full again; if none is, the one nearest to full.
fn make_room(buckets: &mut HashMap<Key, Instant>, now: Instant) {
    buckets.retain(|_, full_at| *full_at > now);
    if buckets.len() < MAX_BUCKETS {
        return;
    }
    if let Some(key) = buckets
        .iter()
        .min_by_key(|(_, full_at)| **full_at)
        .map(|(key, _)| *key)
    {
        buckets.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

    fn throttle(burst: u32) -> Throttle {
        Throttle::new(Some(Budget {
            burst,
            interval: Duration::from_secs(1),
        }))
    }

    fn fail(throttle: &Throttle, name: &str, client: IpAddr, times: u32, now: Instant) {
        for _ in 0..times {
            throttle.failed(name, client, now);
        }
    }

    #[test]
    fn a_username_at_an_address_gets_its_burst_then_one_failure_per_interval() {
        let throttle = throttle(10);
        let t0 = Instant::now();
        fail(&throttle, "alice", A, 9, t0);
        assert_eq!(throttle.check("alice", A, t0), Ok(()));
        fail(&throttle, "alice", A, 1, t0);
        assert_eq!(
            throttle.check("alice", A, t0),
            Err(Throttled {
                retry_after: Duration::from_secs(1)
            })
        );
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(throttle.check("alice", A, t1), Ok(()));
        fail(&throttle, "alice", A, 1, t1);
        assert!(throttle.check("alice", A, t1).is_err());
        // Quiet for the whole burst's worth of intervals: the budget is whole again.
        let later = t1 + Duration::from_secs(10);
        fail(&throttle, "alice", A, 9, later);
        assert_eq!(throttle.check("alice", A, later), Ok(()));
    }

    #[test]
    fn failures_at_one_address_never_refuse_the_user_at_another() {
        let throttle = throttle(10);
        let t0 = Instant::now();
        fail(&throttle, "alice", A, 50, t0);
        assert!(throttle.check("alice", A, t0).is_err());
        assert_eq!(throttle.check("alice", B, t0), Ok(()));
        assert_eq!(throttle.check("bob", A, t0), Ok(()));
    }

    #[test]
    fn an_address_spraying_usernames_meets_its_own_budget() {
        let throttle = throttle(2);
        let t0 = Instant::now();
        for i in 0..2 * ADDRESS_FACTOR {
            let name = format!("user{i}");
            assert_eq!(throttle.check(&name, A, t0), Ok(()), "{name}");
            throttle.failed(&name, A, t0);
        }
        let refused = throttle.check("fresh", A, t0).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_millis(100));
        assert_eq!(throttle.check("fresh", B, t0), Ok(()));
    }

    #[test]
    fn retry_after_is_the_longest_wait_of_the_two_buckets() {
        let throttle = throttle(1);
        let t0 = Instant::now();
        fail(&throttle, "alice", A, 3, t0);
        assert_eq!(
            throttle.check("alice", A, t0),
            Err(Throttled {
                retry_after: Duration::from_secs(3)
            })
        );
    }

    #[test]
    fn a_throttle_turned_off_refuses_nothing_and_counts_nothing() {
        let throttle = throttle(1);
        let t0 = Instant::now();
        throttle.set_budget(None);
        fail(&throttle, "alice", A, 5, t0);
        assert_eq!(throttle.check("alice", A, t0), Ok(()));
        assert!(throttle.lock().is_empty());
    }

    #[test]
    fn buckets_full_again_are_dropped_so_logins_go_lock_free() {
        let throttle = throttle(2);
        let t0 = Instant::now();
        fail(&throttle, "alice", A, 1, t0);
        assert!(throttle.held.load(Ordering::Acquire) > 0);
        let later = t0 + Duration::from_secs(5);
        assert_eq!(throttle.check("bob", B, later), Ok(()));
        assert_eq!(throttle.held.load(Ordering::Acquire), 0);
        assert!(throttle.lock().is_empty());
    }

    #[test]
    fn memory_is_bounded_and_the_fullest_bucket_goes_first() {
        let throttle = throttle(10);
        let t0 = Instant::now();
        fail(&throttle, "target", A, 10, t0);
        // Two buckets per client: this fills the table, then goes a few past it.
        for i in 0..(MAX_BUCKETS / 2 + 10) as u32 {
            let client = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            throttle.failed("x", client, t0 + Duration::from_millis(1));
        }
        assert!(throttle.lock().len() <= MAX_BUCKETS);
        // The bucket nearest to full is evicted, never the one that is refusing.
        assert!(throttle.check("target", A, t0).is_err());
    }
}
