//! Stopping and reloading a running program (kapauth): the graceful stop that SIGTERM and
//! SIGINT ask for (stop accepting, let requests in flight finish within
//! `[http] shutdown-timeout`, exit 0), and the bookkeeping of a SIGHUP reload: which keys
//! changed, which of them can change while running and which wait for a restart, and the
//! log lines that say so. A reload that cannot be read or built is refused whole and the
//! configuration in force stays.

use std::time::{Duration, Instant};

use crate::config::{Config, Effective};
use crate::http::server::CoreStats;
use crate::log;

/// Reads the configuration again as the program was started (file, environment, flags).
pub type Reloader = Box<dyn Fn() -> Result<(Effective, Config), String> + Send + Sync>;

/// The keys `kapauth serve` applies without a restart.
pub const SERVE_LIVE_KEYS: &[&str] = &[
    "[http] https-certificate",
    "[http] https-private-key",
    "[http] shared-secret",
    "[http] log-enabled",
    "[http] shutdown-timeout",
    "[auth] cache-expiration",
    "[auth] bcrypt-cost",
    "[auth] meta-username",
    "[auth] meta-password",
    "[auth] meta-internal-shared-secret",
    "[auth] meta-use-tls",
    "[auth] meta-ca",
    "[auth] meta-cert",
    "[auth] meta-key",
    "[auth] meta-insecure-skip-verify",
    "[auth] meta-timeout",
    "[auth] resolve-roles",
    "[auth] negative-cache-expiration",
    "[auth] meta-max-lookups",
    "[auth] login-throttling",
    "[auth] failed-login-burst",
    "[auth] failed-login-interval",
    "[meta] https-certificate",
    "[meta] https-private-key",
];

/// The keys `kapauth meta` applies without a restart.
pub const META_LIVE_KEYS: &[&str] = &[
    "[http] shutdown-timeout",
    "[meta] https-certificate",
    "[meta] https-private-key",
];

/// Why a reload that brings a certificate to a listener serving plain HTTP is refused.
pub const PLAIN_LISTENER: &str = "the listener serves plain HTTP; turning HTTPS on needs a restart";

/// Splits the changed keys into those applied now and those that wait for a restart.
pub fn split_changes(changed: &[String], live: &[&str]) -> (Vec<String>, Vec<String>) {
    changed
        .iter()
        .cloned()
        .partition(|key| live.contains(&key.as_str()))
}

/// Logs a stop once the listeners are closed: what is still in flight.
pub fn stopping(service: &str, signal: &str, stats: &[&CoreStats]) {
    let in_flight: usize = stats.iter().map(|stats| stats.in_flight()).sum();
    log::info("shutting down")
        .field("service", service)
        .field("signal", signal)
        .field("in-flight", in_flight)
        .emit();
}

/// Waits until no request is in flight or `timeout` has passed, logs the end of the stop,
/// and returns the exit code: 0, the stop was asked for.
pub fn stopped(service: &str, stats: &[&CoreStats], timeout: Duration) -> i32 {
    let started = Instant::now();
    let left = || stats.iter().map(|stats| stats.in_flight()).sum::<usize>();
    while left() > 0 && started.elapsed() < timeout {
        // A stop is rare and short: a poll every 10 ms costs nothing worth a Condvar here.
        std::thread::sleep(Duration::from_millis(10));
    }
    let abandoned = left();
    let line = log::info("shutdown complete")
        .field("service", service)
        .field("waited", log::go_duration(started.elapsed()));
    if abandoned > 0 {
        line.field("abandoned-requests", abandoned)
            .field("reason", "shutdown-timeout ran out")
            .emit();
    } else {
        line.emit();
    }
    0
}

/// Logs a reload that was not applied; the configuration in force stays.
pub fn reload_refused(service: &str, error: &str) {
    log::error("reload refused; the configuration in force stays")
        .field("service", service)
        .field("error", error)
        .emit();
}

/// Logs what a reload applied, and what waits for a restart.
pub fn reloaded(service: &str, applied: &[String], restart: &[String]) {
    log::info("reloaded")
        .field("service", service)
        .field(
            "changed",
            if applied.is_empty() {
                "none".to_string()
            } else {
                applied.join(", ")
            },
        )
        .emit();
    if !restart.is_empty() {
        log::warn("changed keys that only a restart applies; restart kapauth for them")
            .field("service", service)
            .field("keys", restart.join(", "))
            .emit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_split_into_live_ones_and_those_for_a_restart() {
        let changed = [
            "[auth] cache-expiration".to_string(),
            "[http] bind-address".to_string(),
            "[auth] meta-password".to_string(),
            "[gateway] upstream".to_string(),
        ];
        let (live, restart) = split_changes(&changed, SERVE_LIVE_KEYS);
        assert_eq!(live, ["[auth] cache-expiration", "[auth] meta-password"]);
        assert_eq!(restart, ["[http] bind-address", "[gateway] upstream"]);
        let (live, restart) = split_changes(&changed, META_LIVE_KEYS);
        assert!(live.is_empty());
        assert_eq!(restart.len(), 4);
    }

    #[test]
    fn every_live_key_is_a_key_kapauth_reads() {
        for key in SERVE_LIVE_KEYS.iter().chain(META_LIVE_KEYS) {
            assert!(
                crate::config::KEYS
                    .iter()
                    .any(|spec| format!("[{}] {}", spec.section, spec.key) == *key),
                "{key}"
            );
        }
    }
}
