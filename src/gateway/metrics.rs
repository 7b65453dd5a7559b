//! `GET /kapauth/metrics` (SPEC §6, kapauth): what the gateway counts, in the Prometheus
//! text format. Requests by outcome and their latency (`handle.rs`), authentication's cache,
//! meta lookups, bcrypt runs and throttling (`authenticate/`), and the listener's
//! connections, refusals and upstream pool (the HTTP core). No user name or path is ever a
//! label.

use crate::gateway::authenticate::{AuthStats, Authenticator};
use crate::http::client::Upstream;
use crate::http::server::CoreStats;
use crate::metrics::{Counter, Exposition, Histogram};

/// The outcomes a request is counted under, in the order they are written. `allowed` is a
/// forward-auth 204: a proxy was told its request may pass; its denials count as the
/// gateway's do.
pub const OUTCOMES: [&str; 10] = [
    "forwarded",
    "allowed",
    "unauthorized",
    "forbidden",
    "throttled",
    "unavailable",
    "upstream_error",
    "bad_request",
    "own_endpoint",
    "other",
];

/// What `handle.rs` counts of every request.
#[derive(Debug, Default)]
pub struct RequestStats {
    outcomes: [Counter; OUTCOMES.len()],
    pub duration: Histogram,
}

impl RequestStats {
    /// Counts a request: forwarded (whatever Kapacitor answered), or by the status of
    /// kapauth's own answer.
    pub fn count(&self, forwarded: bool, status: u16) {
        let index = if forwarded { 0 } else { outcome_index(status) };
        self.outcomes[index].inc();
    }
}

/// The outcome of an answer kapauth wrote itself.
pub fn outcome_of(status: u16) -> &'static str {
    OUTCOMES[outcome_index(status)]
}

/// The place in `OUTCOMES` of an answer kapauth wrote itself, found without comparing
/// names on every request.
fn outcome_index(status: u16) -> usize {
    match status {
        204 => 1,
        401 => 2,
        403 => 3,
        429 => 4,
        503 => 5,
        502 | 504 => 6,
        400 => 7,
        200 | 404 => 8,
        _ => 9,
    }
}

/// The text of one scrape.
pub fn render(
    requests: &RequestStats,
    authenticator: Option<&Authenticator>,
    core: &CoreStats,
    upstream: &Upstream,
) -> String {
    let mut exposition = Exposition::default();
    exposition
        .counters(
            "kapauth_requests_total",
            "Requests the gateway answered, by outcome (forwarded: whatever Kapacitor answered; allowed: a forward-auth pass).",
            "outcome",
            OUTCOMES
                .iter()
                .zip(&requests.outcomes)
                .map(|(outcome, count)| (*outcome, count.get())),
        )
        .histogram(
            "kapauth_request_duration_seconds",
            "Time from a request's head to the end of its answer's head or whole body.",
            &requests.duration,
        );
    let refusals: Vec<(String, u64)> = core
        .refusals()
        .map(|(status, count)| (status.to_string(), count))
        .collect();
    exposition
        .counters(
            "kapauth_http_refusals_total",
            "Requests and connections the HTTP core answered itself (limits, framing, capacity), by status.",
            "status",
            refusals.iter().map(|(status, count)| (status.as_str(), *count)),
        )
        .gauges(
            "kapauth_open_connections",
            "Client connections open on the gateway listener.",
            "",
            [("", core.open_connections() as u64)],
        )
        .gauges(
            "kapauth_upstream_idle_connections",
            "Kept-alive connections to Kapacitor waiting in the pool.",
            "",
            [("", upstream.idle_connections() as u64)],
        );
    if let Some(authenticator) = authenticator {
        authentication(
            &mut exposition,
            authenticator.stats(),
            authenticator.cached_users(),
        );
    }
    exposition.into_text()
}

fn authentication(exposition: &mut Exposition, stats: &AuthStats, cached: usize) {
    exposition
        .counters(
            "kapauth_cache_requests_total",
            "User lookups answered by the cache (hit), by a remembered unknown name (unknown), or not (miss).",
            "result",
            [
                ("hit", stats.cache_hits.get()),
                ("unknown", stats.unknown_hits.get()),
                ("miss", stats.cache_misses.get()),
            ],
        )
        .gauges(
            "kapauth_cache_entries",
            "Names the cache holds: users, remembered unknown names and lookups under way.",
            "",
            [("", cached as u64)],
        )
        .counters(
            "kapauth_meta_lookups_total",
            "Lookups of a user at meta, by result (refused: no lookup slot within 1 s).",
            "result",
            [
                ("found", stats.lookups_found.get()),
                ("unknown", stats.lookups_unknown.get()),
                ("unavailable", stats.lookups_unavailable.get()),
                ("refused", stats.lookups_refused.get()),
            ],
        )
        .histogram(
            "kapauth_meta_lookup_duration_seconds",
            "Time meta took to answer a lookup (the user and, with resolve-roles, its roles).",
            &stats.lookup_duration,
        )
        .counters(
            "kapauth_bcrypt_runs_total",
            "bcrypt verifications run, decoys included.",
            "",
            [("", stats.bcrypt_runs.get())],
        )
        .counters(
            "kapauth_throttled_logins_total",
            "Password logins refused with 429 for too many failures.",
            "",
            [("", stats.throttled.get())],
        );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kapauths_own_answers_are_counted_by_status() {
        let cases = [
            (204, "allowed"),
            (401, "unauthorized"),
            (403, "forbidden"),
            (429, "throttled"),
            (503, "unavailable"),
            (502, "upstream_error"),
            (504, "upstream_error"),
            (400, "bad_request"),
            (200, "own_endpoint"),
            (404, "own_endpoint"),
            (500, "other"),
        ];
        for (status, outcome) in cases {
            assert_eq!(outcome_of(status), outcome, "{status}");
        }
        let stats = RequestStats::default();
        stats.count(true, 500);
        stats.count(false, 401);
        stats.count(false, 401);
        assert_eq!(stats.outcomes[0].get(), 1);
        assert_eq!(stats.outcomes[2].get(), 2);
    }
}
