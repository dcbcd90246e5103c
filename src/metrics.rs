//! The request counters behind the Prometheus metrics (served by
//! `api::metrics`): requests by endpoint and status class, and request
//! latency; and the text format's histogram.
//!
//! Everything is bounded: endpoint labels are `Endpoint` variant names (a
//! fixed set of `&'static str`), never paths; histograms have fixed
//! buckets. Request counters live on the event loop (`Cell`/`RefCell`, no
//! locks). This module must not slow down request handling: one map lookup
//! and a few additions per request.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// Upper bounds of the request-latency histogram, in seconds.
const LATENCY_BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0];

/// Status classes counted per endpoint: 1xx … 5xx.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The request-side counters (event-loop only).
#[derive(Default)]
pub struct Metrics {
    /// Endpoint label → requests per status class.
    requests: RefCell<BTreeMap<&'static str, [u64; 5]>>,
    /// Per bucket of `LATENCY_BUCKETS` plus overflow (not cumulative).
    latency_buckets: RefCell<[u64; LATENCY_BUCKETS.len() + 1]>,
    latency_sum_micros: Cell<u64>,
}

impl Metrics {
    /// Counts a request answered with `status` after `elapsed`; `label`
    /// is its endpoint's name.
    pub fn record_request(&self, label: &'static str, status: u16, elapsed: Duration) {
        let class = usize::from((status / 100).clamp(1, 5)) - 1;
        self.requests.borrow_mut().entry(label).or_default()[class] += 1;
        let secs = elapsed.as_secs_f64();
        let i = LATENCY_BUCKETS.iter().position(|b| secs <= *b).unwrap_or(LATENCY_BUCKETS.len());
        self.latency_buckets.borrow_mut()[i] += 1;
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_micros.set(self.latency_sum_micros.get().saturating_add(micros));
    }

    /// The request counters and the latency histogram, in Prometheus text
    /// format 0.0.4.
    pub fn write_requests(&self, out: &mut String) {
        out.push_str(
            "# HELP hearth_http_requests_total HTTP requests by endpoint and status class.\n",
        );
        out.push_str("# TYPE hearth_http_requests_total counter\n");
        for (endpoint, counts) in self.requests.borrow().iter() {
            for (class, n) in CLASSES.iter().zip(counts) {
                if *n > 0 {
                    let _ = writeln!(
                        out,
                        "hearth_http_requests_total{{endpoint=\"{endpoint}\",status=\"{class}\"}} {n}"
                    );
                }
            }
        }
        out.push_str("# HELP hearth_http_request_duration_seconds Time to the response head.\n");
        out.push_str("# TYPE hearth_http_request_duration_seconds histogram\n");
        let bounds: Vec<String> = LATENCY_BUCKETS.iter().map(|b| b.to_string()).collect();
        let counts = *self.latency_buckets.borrow();
        let sum = self.latency_sum_micros.get() as f64 / 1e6;
        histogram(out, "hearth_http_request_duration_seconds", &bounds, &counts, sum);
    }
}

/// Writes a histogram from non-cumulative bucket counts; a count past the
/// last bound (overflow) only shows in `+Inf`.
pub fn histogram(out: &mut String, name: &str, bounds: &[String], counts: &[u64], sum: f64) {
    let mut running = 0;
    for (bound, count) in bounds.iter().zip(counts) {
        running += count;
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {running}");
    }
    let total: u64 = counts.iter().sum();
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
    let _ = writeln!(out, "{name}_sum {sum}");
    let _ = writeln!(out, "{name}_count {total}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_label_and_status_class() {
        let m = Metrics::default();
        m.record_request("SendMessage", 200, Duration::from_millis(2));
        m.record_request("SendMessage", 503, Duration::from_secs(60));
        let counts = m.requests.borrow()["SendMessage"];
        assert_eq!(counts, [0, 1, 0, 0, 1]);
        let buckets = *m.latency_buckets.borrow();
        assert_eq!(buckets[1], 1, "2 ms falls in the 5 ms bucket");
        assert_eq!(buckets[LATENCY_BUCKETS.len()], 1, "60 s overflows");
        let mut text = String::new();
        m.write_requests(&mut text);
        assert!(
            text.contains(
                "hearth_http_requests_total{endpoint=\"SendMessage\",status=\"5xx\"} 1\n"
            )
        );
    }
}
