//! Counters and histograms the programs keep (lock-free atomics), and the Prometheus text
//! format (version 0.0.4) they are served in: `GET /kapauth/metrics` on the gateway and
//! `GET /metrics` on the meta API (kapauth). Labels name outcomes, actions and statuses,
//! never a user name or a path, so a client cannot grow the output. Each component owns
//! its numbers; `Exposition` only writes them.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A count that only goes up.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds of the latency buckets, in seconds: from a cached login (well under a
/// millisecond) to a bcrypt run at a high cost or a slow meta.
pub const LATENCY_BOUNDS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0,
];

/// A latency histogram over `LATENCY_BOUNDS`.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Per bucket (not cumulative); the last one is above every bound.
    buckets: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        let bucket = LATENCY_BOUNDS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_BOUNDS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

/// The text of one scrape, metric family by metric family.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// A family of counters, one sample per label value (`label` empty: one sample).
    pub fn counters<'a>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        samples: impl IntoIterator<Item = (&'a str, u64)>,
    ) -> &mut Self {
        self.samples("counter", name, help, label, samples)
    }

    /// A family of gauges, one sample per label value (`label` empty: one sample).
    pub fn gauges<'a>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        samples: impl IntoIterator<Item = (&'a str, u64)>,
    ) -> &mut Self {
        self.samples("gauge", name, help, label, samples)
    }

    /// A histogram family: cumulative buckets, `+Inf`, sum in seconds and count.
    pub fn histogram(&mut self, name: &str, help: &str, histogram: &Histogram) -> &mut Self {
        self.family(name, help, "histogram");
        let mut cumulative = 0;
        for (index, bucket) in histogram.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let bound = match LATENCY_BOUNDS.get(index) {
                Some(bound) => bound.to_string(),
                None => "+Inf".to_string(),
            };
            let _ = writeln!(self.text, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let sum = histogram.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(self.text, "{name}_sum {sum}");
        let _ = writeln!(self.text, "{name}_count {cumulative}");
        self
    }

    pub fn into_text(self) -> String {
        self.text
    }

    fn samples<'a>(
        &mut self,
        kind: &str,
        name: &str,
        help: &str,
        label: &str,
        samples: impl IntoIterator<Item = (&'a str, u64)>,
    ) -> &mut Self {
        self.family(name, help, kind);
        for (value, count) in samples {
            self.sample(name, label, value, count);
        }
        self
    }

    fn family(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, label: &str, value: &str, count: u64) {
        if label.is_empty() {
            let _ = writeln!(self.text, "{name} {count}");
        } else {
            // Label values here are kapauth's own words, never a client's text.
            let _ = writeln!(self.text, "{name}{{{label}=\"{value}\"}} {count}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scrape_is_the_text_format_with_cumulative_buckets() {
        let histogram = Histogram::default();
        histogram.observe(Duration::from_micros(300));
        histogram.observe(Duration::from_millis(3));
        histogram.observe(Duration::from_secs(20));
        let mut exposition = Exposition::default();
        exposition
            .counters(
                "kapauth_requests_total",
                "Requests.",
                "outcome",
                [("forwarded", 2), ("unauthorized", 1)],
            )
            .gauges("kapauth_open_connections", "Open.", "", [("", 3)])
            .histogram("kapauth_request_duration_seconds", "Latency.", &histogram);
        let text = exposition.into_text();
        let expected_start = "# HELP kapauth_requests_total Requests.\n\
            # TYPE kapauth_requests_total counter\n\
            kapauth_requests_total{outcome=\"forwarded\"} 2\n\
            kapauth_requests_total{outcome=\"unauthorized\"} 1\n\
            # HELP kapauth_open_connections Open.\n\
            # TYPE kapauth_open_connections gauge\n\
            kapauth_open_connections 3\n\
            # HELP kapauth_request_duration_seconds Latency.\n\
            # TYPE kapauth_request_duration_seconds histogram\n\
            kapauth_request_duration_seconds_bucket{le=\"0.0005\"} 1\n\
            kapauth_request_duration_seconds_bucket{le=\"0.001\"} 1\n\
            kapauth_request_duration_seconds_bucket{le=\"0.0025\"} 1\n\
            kapauth_request_duration_seconds_bucket{le=\"0.005\"} 2\n";
        assert!(text.starts_with(expected_start), "{text}");
        assert!(
            text.ends_with(
                "kapauth_request_duration_seconds_bucket{le=\"10\"} 2\n\
                 kapauth_request_duration_seconds_bucket{le=\"+Inf\"} 3\n\
                 kapauth_request_duration_seconds_sum 20.0033\n\
                 kapauth_request_duration_seconds_count 3\n"
            ),
            "{text}"
        );
    }
}
