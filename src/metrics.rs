//! Prometheus metrics on a listener of their own (`metrics_listen`, off by
//! default): requests by endpoint and status class, request latency, open
//! long-polls, the writer's batch sizes and commit times, database and media
//! size, and resident memory.
//!
//! Everything is bounded: endpoint labels are `Endpoint` variant names (a
//! fixed set), never paths; histograms have fixed buckets. Request counters
//! live on the event loop (`Cell`/`RefCell`, no locks); writer counters are
//! atomics the store exposes. This module must not slow down `handle`: one
//! map lookup and a few additions per request.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::app::App;
use crate::store::{BATCH_SIZE_BUCKETS, COMMIT_MICROS_BUCKETS};

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
    /// The variant name of `endpoint` (its `Debug` text up to the fields),
    /// as a `'static` label. Each distinct name is leaked once; there are as
    /// many as `Endpoint` has variants.
    pub fn endpoint_label(&self, endpoint: &impl std::fmt::Debug) -> &'static str {
        let text = format!("{endpoint:?}");
        let name = text.split(|c: char| !c.is_ascii_alphanumeric()).next().unwrap_or("Unknown");
        let mut requests = self.requests.borrow_mut();
        if let Some((k, _)) = requests.get_key_value(name) {
            return k;
        }
        let label: &'static str = Box::leak(name.to_owned().into_boxed_str());
        requests.insert(label, [0; 5]);
        label
    }

    pub fn record_request(&self, label: &'static str, status: u16, elapsed: Duration) {
        let class = usize::from((status / 100).clamp(1, 5)) - 1;
        self.requests.borrow_mut().entry(label).or_default()[class] += 1;
        let secs = elapsed.as_secs_f64();
        let i = LATENCY_BUCKETS.iter().position(|b| secs <= *b).unwrap_or(LATENCY_BUCKETS.len());
        self.latency_buckets.borrow_mut()[i] += 1;
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_micros.set(self.latency_sum_micros.get().saturating_add(micros));
    }
}

/// Numbers that need file-system access, gathered off the event loop.
struct DiskFigures {
    db_bytes: u64,
    media_bytes: u64,
    rss_bytes: Option<u64>,
    free_bytes: Option<u64>,
}

/// `VmRSS` from `/proc/self/status`, in bytes.
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Writes a histogram from non-cumulative bucket counts; a count past the
/// last bound (overflow) only shows in `+Inf`.
fn histogram(out: &mut String, name: &str, bounds: &[String], counts: &[u64], sum: f64) {
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

/// The whole exposition, in Prometheus text format 0.0.4.
pub async fn render(app: &App) -> String {
    let store = app.store.clone();
    let media = app.media.clone();
    let dir = app.config.data_dir.clone();
    let disk = tokio::task::spawn_blocking(move || DiskFigures {
        db_bytes: store.file_size(),
        media_bytes: media.disk_usage(),
        rss_bytes: rss_bytes(),
        free_bytes: crate::store::free_bytes(&dir).ok().map(|(free, _)| free),
    })
    .await
    .unwrap_or(DiskFigures { db_bytes: 0, media_bytes: 0, rss_bytes: None, free_bytes: None });

    let m = &app.metrics;
    let mut out = String::with_capacity(8 * 1024);
    out.push_str("# HELP hearth_http_requests_total HTTP requests by endpoint and status class.\n");
    out.push_str("# TYPE hearth_http_requests_total counter\n");
    for (endpoint, counts) in m.requests.borrow().iter() {
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
    let counts = *m.latency_buckets.borrow();
    let sum = m.latency_sum_micros.get() as f64 / 1e6;
    histogram(&mut out, "hearth_http_request_duration_seconds", &bounds, &counts, sum);

    out.push_str("# HELP hearth_sync_long_polls Open /sync long-polls.\n");
    out.push_str("# TYPE hearth_sync_long_polls gauge\n");
    let _ = writeln!(out, "hearth_sync_long_polls {}", app.open_long_polls());
    out.push_str(
        "# HELP hearth_buffer_slots_in_use 8 KiB connection buffers handed out by the pool.\n",
    );
    out.push_str("# TYPE hearth_buffer_slots_in_use gauge\n");
    let _ = writeln!(out, "hearth_buffer_slots_in_use {}", crate::memory::buffers::slots_in_use());

    let w = app.store.writer_stats();
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    out.push_str("# HELP hearth_db_batches_total Committed write batches (one fsync each).\n");
    out.push_str("# TYPE hearth_db_batches_total counter\n");
    let _ = writeln!(out, "hearth_db_batches_total {}", load(&w.batches));
    out.push_str("# HELP hearth_db_operations_total Write operations committed in batches.\n");
    out.push_str("# TYPE hearth_db_operations_total counter\n");
    let _ = writeln!(out, "hearth_db_operations_total {}", load(&w.operations));
    out.push_str("# HELP hearth_db_failed_batches_total Write batches that failed.\n");
    out.push_str("# TYPE hearth_db_failed_batches_total counter\n");
    let _ = writeln!(out, "hearth_db_failed_batches_total {}", load(&w.failed_batches));
    out.push_str("# HELP hearth_db_disk_full_refusals_total Batches refused for lack of space.\n");
    out.push_str("# TYPE hearth_db_disk_full_refusals_total counter\n");
    let _ = writeln!(out, "hearth_db_disk_full_refusals_total {}", load(&w.disk_full_refusals));
    out.push_str("# HELP hearth_db_disk_full 1 while writes are refused for lack of space.\n");
    out.push_str("# TYPE hearth_db_disk_full gauge\n");
    let _ = writeln!(out, "hearth_db_disk_full {}", u8::from(w.disk_full.load(Ordering::Relaxed)));

    out.push_str("# HELP hearth_db_batch_size Operations per committed batch.\n");
    out.push_str("# TYPE hearth_db_batch_size histogram\n");
    let bounds: Vec<String> = BATCH_SIZE_BUCKETS.iter().map(u64::to_string).collect();
    let counts: Vec<u64> = w.batch_size_buckets.iter().map(load).collect();
    let sum = load(&w.operations) as f64;
    histogram(&mut out, "hearth_db_batch_size", &bounds, &counts, sum);

    out.push_str("# HELP hearth_db_commit_seconds Time to apply and commit (fsync) a batch.\n");
    out.push_str("# TYPE hearth_db_commit_seconds histogram\n");
    let bounds: Vec<String> =
        COMMIT_MICROS_BUCKETS.iter().map(|b| (*b as f64 / 1e6).to_string()).collect();
    let counts: Vec<u64> = w.commit_micros_buckets.iter().map(load).collect();
    // `counts` has one more entry than `bounds`: the overflow, counted in +Inf only.
    let sum = load(&w.commit_micros_sum) as f64 / 1e6;
    histogram(&mut out, "hearth_db_commit_seconds", &bounds, &counts, sum);

    out.push_str("# HELP hearth_db_file_bytes Size of hearth.redb.\n");
    out.push_str("# TYPE hearth_db_file_bytes gauge\n");
    let _ = writeln!(out, "hearth_db_file_bytes {}", disk.db_bytes);
    out.push_str("# HELP hearth_media_bytes Bytes of media files on disk.\n");
    out.push_str("# TYPE hearth_media_bytes gauge\n");
    let _ = writeln!(out, "hearth_media_bytes {}", disk.media_bytes);
    if let Some(free) = disk.free_bytes {
        out.push_str("# HELP hearth_data_dir_free_bytes Free space of the data directory.\n");
        out.push_str("# TYPE hearth_data_dir_free_bytes gauge\n");
        let _ = writeln!(out, "hearth_data_dir_free_bytes {free}");
    }
    if let Some(rss) = disk.rss_bytes {
        out.push_str("# HELP process_resident_memory_bytes Resident memory (VmRSS).\n");
        out.push_str("# TYPE process_resident_memory_bytes gauge\n");
        let _ = writeln!(out, "process_resident_memory_bytes {rss}");
    }
    out
}

/// Serves `GET /metrics` on `listener` until the task is aborted.
pub async fn serve(listener: TcpListener, app: Rc<App>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("metrics: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let app = app.clone();
        tokio::task::spawn_local(async move {
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let app = app.clone();
                async move {
                    let found =
                        req.method() == hyper::Method::GET && req.uri().path() == "/metrics";
                    let (status, ctype, body) = if found {
                        let text = render(&app).await;
                        (200, "text/plain; version=0.0.4; charset=utf-8", text)
                    } else {
                        (404, "text/plain; charset=utf-8", "not found: try /metrics\n".to_owned())
                    };
                    hyper::Response::builder()
                        .status(status)
                        .header(hyper::header::CONTENT_TYPE, ctype)
                        .body(Full::new(Bytes::from(body)))
                }
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    #[allow(dead_code)]
    enum Demo {
        SendMessage { room: String },
        GetVersions,
    }

    #[test]
    fn labels_are_variant_names_and_counted_by_status_class() {
        let m = Metrics::default();
        let a = m.endpoint_label(&Demo::SendMessage { room: "!r:x".into() });
        let b = m.endpoint_label(&Demo::SendMessage { room: "!other:x".into() });
        assert_eq!(a, "SendMessage");
        assert!(std::ptr::eq(a, b), "one label per variant, not per value");
        assert_eq!(m.endpoint_label(&Demo::GetVersions), "GetVersions");
        m.record_request(a, 200, Duration::from_millis(2));
        m.record_request(a, 503, Duration::from_secs(60));
        let counts = m.requests.borrow()["SendMessage"];
        assert_eq!(counts, [0, 1, 0, 0, 1]);
        let buckets = *m.latency_buckets.borrow();
        assert_eq!(buckets[1], 1, "2 ms falls in the 5 ms bucket");
        assert_eq!(buckets[LATENCY_BUCKETS.len()], 1, "60 s overflows");
    }
}
