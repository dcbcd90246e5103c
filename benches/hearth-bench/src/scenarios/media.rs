//! `media`: upload one big file and download it again, watching the
//! server's memory.
//!
//! A home server is asked to carry videos and disk images; doing so must not
//! cost memory in proportion to the file. The upload (`POST
//! /_matrix/media/v3/upload`) is generated on the fly and streamed, the
//! download (`GET /_matrix/client/v1/media/download/…`) is read frame by
//! frame and only counted, so neither sits in the tool's memory. Meanwhile
//! the server's `VmRSS` is sampled every few milliseconds; where the kernel
//! lets us, `VmHWM` is also reset before each transfer (`/proc/PID/clear_refs`,
//! value 5) and read after it, which catches peaks between samples.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::body::{Body, Bytes, Frame, SizeHint};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::MIB;
use crate::matrix::{self, encode};
use crate::procfs;
use crate::report::{Better, Recorder};
use crate::world::Ctx;

/// Time limit for one transfer (the upload includes the server's fsync).
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(600);
/// How often the server's RSS is sampled during a transfer.
const SAMPLE_EVERY: Duration = Duration::from_millis(5);

pub(super) async fn run(ctx: &Ctx, rec: &mut Recorder<'_>) {
    let size = ctx.settings.scale.media_bytes;
    let localpart = format!("hb{}-media", ctx.run_id);
    let user = match matrix::register(&ctx.http, &localpart, "bench-password-media").await {
        Ok((user, _)) => user,
        Err(e) => return rec.fail(format!("registering the media user: {e}")),
    };
    let client: Client<HttpConnector, Pattern> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let base = &ctx.settings.base_url;
    let pid = ctx.pid();
    let idle = pid.and_then(|p| procfs::memory(p).ok());

    // Upload.
    let upload = Request::builder()
        .method(Method::POST)
        .uri(format!("{base}/_matrix/media/v3/upload?filename=big.bin"))
        .header("authorization", format!("Bearer {}", user.access_token))
        .header("content-type", "application/octet-stream")
        .header("content-length", size.to_string())
        .body(Pattern::new(size, &ctx.run_id));
    let upload = match upload {
        Ok(r) => r,
        Err(e) => return rec.fail(format!("building the upload request: {e}")),
    };
    eprintln!("[media] uploading {:.0} MiB", size as f64 / MIB);
    let watch = Watch::start(pid);
    let started = Instant::now();
    let uploaded = tokio::time::timeout(TRANSFER_TIMEOUT, async {
        let response = client.request(upload).await.map_err(|e| format!("upload: {e}"))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("upload response: {e}"))?
            .to_bytes();
        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        match value.get("content_uri").and_then(Value::as_str) {
            Some(uri) if status == 200 => Ok(uri.to_owned()),
            _ => Err(format!("upload: HTTP {status}: {}", String::from_utf8_lossy(&body))),
        }
    })
    .await
    .unwrap_or_else(|_| Err("upload: no response in time".into()));
    let upload_secs = started.elapsed().as_secs_f64();
    let upload_peak = watch.finish().await;
    let uri = match uploaded {
        Ok(uri) => uri,
        Err(e) => return rec.fail(e),
    };
    let Some((server, media_id)) = uri.strip_prefix("mxc://").and_then(|r| r.split_once('/'))
    else {
        return rec.fail(format!("upload: content_uri {uri:?} is not an mxc:// URI"));
    };

    // Download.
    let download = Request::builder()
        .uri(format!(
            "{base}/_matrix/client/v1/media/download/{}/{}",
            encode(server),
            encode(media_id)
        ))
        .header("authorization", format!("Bearer {}", user.access_token))
        .body(Pattern::new(0, ""));
    let download = match download {
        Ok(r) => r,
        Err(e) => return rec.fail(format!("building the download request: {e}")),
    };
    eprintln!("[media] downloading it again");
    let watch = Watch::start(pid);
    let started = Instant::now();
    let downloaded = tokio::time::timeout(TRANSFER_TIMEOUT, async {
        let response = client.request(download).await.map_err(|e| format!("download: {e}"))?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut bytes = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("download body: {e}"))?;
            if let Some(data) = frame.data_ref() {
                bytes += data.len() as u64;
            }
        }
        if status != 200 {
            return Err(format!("download: HTTP {status}"));
        }
        Ok(bytes)
    })
    .await
    .unwrap_or_else(|_| Err("download: no response in time".into()));
    let download_secs = started.elapsed().as_secs_f64();
    let download_peak = watch.finish().await;
    match downloaded {
        Ok(n) if n == size => {}
        Ok(n) => rec.fail(format!("download: got {n} bytes of {size}")),
        Err(e) => rec.fail(e),
    }

    let mib = size as f64 / MIB;
    rec.metric(
        "upload_mib_s",
        "media: upload throughput",
        "MiB/s",
        Better::Higher,
        mib / upload_secs,
    );
    rec.metric(
        "download_mib_s",
        "media: download throughput",
        "MiB/s",
        Better::Higher,
        mib / download_secs,
    );
    let Some(idle) = idle else { return };
    let idle_mib = idle.rss_kib as f64 / 1024.0;
    rec.metric("rss_before_mib", "media: server RSS before", "MiB", Better::Lower, idle_mib);
    for (key, label, peak) in [
        ("upload_rss_growth_mib", "media: peak RSS growth while uploading", upload_peak),
        ("download_rss_growth_mib", "media: peak RSS growth while downloading", download_peak),
    ] {
        rec.metric(
            key,
            &format!("{label} {mib:.0} MiB"),
            "MiB",
            Better::Lower,
            (peak as f64 / 1024.0 - idle_mib).max(0.0),
        );
    }
    if let Some(Ok(after)) = pid.map(procfs::memory) {
        rec.metric(
            "rss_after_mib",
            "media: server RSS after both transfers",
            "MiB",
            Better::Lower,
            after.rss_kib as f64 / 1024.0,
        );
    }
}

/// Samples the server's RSS until finished; the result is the peak in KiB
/// (the larger of the samples and `VmHWM`, when the reset of `VmHWM` worked).
struct Watch {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    task: Option<tokio::task::JoinHandle<()>>,
    pid: Option<u32>,
    hwm_reset: bool,
}

impl Watch {
    fn start(pid: Option<u32>) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let hwm_reset = pid.is_some_and(procfs::reset_peak_rss);
        let task = pid.map(|pid| {
            let (stop, peak) = (Arc::clone(&stop), Arc::clone(&peak));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(m) = procfs::memory(pid) {
                        peak.fetch_max(m.rss_kib, Ordering::Relaxed);
                    }
                    tokio::time::sleep(SAMPLE_EVERY).await;
                }
            })
        });
        Watch { stop, peak, task, pid, hwm_reset }
    }

    async fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let mut peak = self.peak.load(Ordering::Relaxed);
        if self.hwm_reset
            && let Some(Ok(m)) = self.pid.map(procfs::memory)
        {
            peak = peak.max(m.hwm_kib);
        }
        peak
    }
}

/// A request body of `len` generated bytes, handed out in 64 KiB frames
/// (never held whole). The run id at the start makes each run's file new to
/// a content-addressed store.
struct Pattern {
    chunk: Bytes,
    left: u64,
}

impl Pattern {
    fn new(len: u64, salt: &str) -> Pattern {
        let mut chunk: Vec<u8> =
            (0..64 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        let n = salt.len().min(chunk.len());
        chunk[..n].copy_from_slice(&salt.as_bytes()[..n]);
        Pattern { chunk: Bytes::from(chunk), left: len }
    }
}

impl Body for Pattern {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.left == 0 {
            return Poll::Ready(None);
        }
        let n = this.left.min(this.chunk.len() as u64);
        this.left -= n;
        Poll::Ready(Some(Ok(Frame::data(this.chunk.slice(..n as usize)))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}
