//! `send`: message throughput and latency with concurrent senders.
//!
//! Each sender is its own user and sends, one request at a time, to one of
//! the send rooms (`PUT /rooms/{roomId}/send/m.room.message/{txnId}`) until
//! its share of the messages is sent or the deadline passes. With `--pid`,
//! the server's disk writes and CPU time over the scenario are divided by
//! the messages sent: the SD-card and battery cost of one message. Disk
//! writes are sampled twice: when the last send is answered, and again
//! `send_settle` later, so writes a server defers are counted as well; the
//! scenario also waits `send_settle` before it starts, so that writes
//! deferred from earlier scenarios are not counted against it.

use std::sync::Arc;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::need;
use crate::client::Error;
use crate::matrix;
use crate::procfs;
use crate::report::{Better, Recorder};
use crate::stats::Samples;
use crate::world::{Ctx, World};

struct SenderResult {
    latencies: Samples,
    errors: usize,
    first_error: Option<Error>,
}

pub(super) async fn run(ctx: &Ctx, world: &World, rec: &mut Recorder<'_>) {
    let senders = need!(rec, world.senders);
    let rooms = need!(rec, world.send_rooms);
    let scale = &ctx.settings.scale;
    let pid = ctx.pid();
    // Let writes the server deferred from earlier scenarios land first, so
    // that the window below counts this scenario's writes only.
    if pid.is_some() {
        tokio::time::sleep(scale.send_settle).await;
    }
    let io_before = pid.map(procfs::io);
    let cpu_before = pid.map(procfs::cpu_time);

    let total = scale.send_messages;
    let n = senders.len();
    let started = Instant::now();
    let deadline = started + scale.send_deadline;
    let mut tasks = JoinSet::new();
    for (i, sender) in senders.iter().enumerate() {
        let quota = total / n + usize::from(i < total % n);
        let http = ctx.http.clone();
        let sender = Arc::clone(sender);
        let room = rooms[i % rooms.len()].clone();
        let run_id = ctx.run_id.clone();
        tasks.spawn(async move {
            let mut result =
                SenderResult { latencies: Samples::default(), errors: 0, first_error: None };
            for k in 0..quota {
                if Instant::now() >= deadline {
                    break;
                }
                let text =
                    format!("load {run_id} sender {i} message {k}: on my way, be there in 5");
                match matrix::send_text(&http, &sender, &room, &text).await {
                    Ok((_, reply)) => result.latencies.push(reply.elapsed),
                    Err(e) => {
                        result.errors += 1;
                        result.first_error.get_or_insert(e);
                    }
                }
            }
            result
        });
    }
    let mut latencies = Samples::default();
    let mut errors = 0;
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(r) => {
                latencies.extend(r.latencies);
                errors += r.errors;
                if first_error.is_none() {
                    first_error = r.first_error;
                }
            }
            Err(e) => rec.fail(format!("sender task failed: {e}")),
        }
    }
    let wall = started.elapsed();
    let sent = latencies.len();
    if let Some(e) = first_error {
        rec.fail(format!("{errors} of {} sends failed; first: {e}", errors + sent));
    }
    if sent < total && Instant::now() >= deadline {
        rec.note(format!(
            "deadline of {:.0} s reached after {sent} of {total} messages",
            scale.send_deadline.as_secs_f64()
        ));
    }
    if sent == 0 {
        return;
    }
    rec.metric(
        "msgs_per_s",
        &format!("send: messages/s ({n} senders)"),
        "msg/s",
        Better::Higher,
        sent as f64 / wall.as_secs_f64(),
    );
    for (key, label, p) in [
        ("p50_ms", "send: latency p50", 50.0),
        ("p95_ms", "send: latency p95", 95.0),
        ("p99_ms", "send: latency p99", 99.0),
    ] {
        rec.metric_opt(key, label, "ms", Better::Lower, latencies.percentile(p));
    }
    rec.metric("sent", "send: messages sent", "msg", Better::Neither, sent as f64);

    if let (Some(Ok(before)), Some(pid)) = (&io_before, pid) {
        match procfs::io(pid) {
            Ok(after) => {
                rec.metric(
                    "disk_bytes_per_msg",
                    "send: disk writes per message (write_bytes)",
                    "bytes",
                    Better::Lower,
                    after.write_bytes.saturating_sub(before.write_bytes) as f64 / sent as f64,
                );
                rec.metric(
                    "wchar_bytes_per_msg",
                    "send: bytes written via syscalls per message (wchar)",
                    "bytes",
                    Better::Lower,
                    after.wchar.saturating_sub(before.wchar) as f64 / sent as f64,
                );
            }
            Err(e) => rec.fail(e),
        }
    } else if let Some(Err(e)) = &io_before {
        rec.fail(e);
    }
    let cpu_after = pid.map(procfs::cpu_time);
    // Writes the server deferred (a checkpoint, a background flush) count
    // too: sample again once they had time to happen.
    if let (Some(Ok(before)), Some(pid)) = (&io_before, pid) {
        tokio::time::sleep(scale.send_settle).await;
        match procfs::io(pid) {
            Ok(after) => rec.metric(
                "disk_bytes_per_msg_settled",
                &format!(
                    "send: disk writes per message, incl. deferred ({:.0} s after)",
                    scale.send_settle.as_secs_f64()
                ),
                "bytes",
                Better::Lower,
                after.write_bytes.saturating_sub(before.write_bytes) as f64 / sent as f64,
            ),
            Err(e) => rec.fail(e),
        }
    }
    if let (Some(Ok(before)), Some(Ok(after))) = (cpu_before, cpu_after) {
        rec.metric(
            "cpu_ms_per_msg",
            "send: server CPU per message",
            "ms",
            Better::Lower,
            after.saturating_sub(before).as_secs_f64() * 1000.0 / sent as f64,
        );
    }
}
