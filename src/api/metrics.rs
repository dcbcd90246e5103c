//! Prometheus metrics on a listener of their own (`metrics_listen`, off by
//! default): the request counters of [`crate::metrics`], open long-polls,
//! the writer's batch sizes and commit times, database and media size, and
//! resident memory. Writer counters are atomics the store exposes.

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
use crate::metrics::histogram;
use crate::store::{BATCH_SIZE_BUCKETS, COMMIT_MICROS_BUCKETS};

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

    let mut out = String::with_capacity(8 * 1024);
    app.metrics.write_requests(&mut out);

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
