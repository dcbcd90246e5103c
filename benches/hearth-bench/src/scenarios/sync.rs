//! `sync`: initial and incremental `/sync` for a user in many rooms.
//!
//! - initial, no filter: what a client without filters downloads on login;
//! - initial with [`LAZY_FILTER`]: what Element-style clients ask for;
//! - incremental with nothing new (`since` = previous `next_batch`,
//!   `timeout=0`): the cost of a client polling an idle account.
//!
//! Initial syncs are sent with `timeout=<round>` (0, 1, 2 … ms). An initial
//! sync returns at once whatever the timeout, but the differing query keeps
//! servers that cache identical sync requests (Synapse's
//! `sync_response_cache_duration`, 2 minutes by default) from answering
//! rounds after the first from that cache.

use std::time::Duration;

use super::need;
use crate::client::Error;
use crate::matrix::{self, SyncParams, User};
use crate::report::{Better, Recorder};
use crate::stats::Samples;
use crate::world::{Ctx, World};

/// The filter modern clients send: a short timeline and lazy-loaded members.
pub(crate) const LAZY_FILTER: &str =
    r#"{"room":{"timeline":{"limit":10},"state":{"lazy_load_members":true}}}"#;

pub(super) async fn run(ctx: &Ctx, world: &World, rec: &mut Recorder<'_>) {
    let user = need!(rec, world.sync_user);
    let rooms = need!(rec, world.sync_rooms);
    let scale = &ctx.settings.scale;

    for (key, label, filter) in [
        ("initial", "sync: initial", None),
        ("initial_lazy", "sync: initial, lazy-loading filter", Some(LAZY_FILTER)),
    ] {
        match initial(ctx, user, filter, scale.sync_initial_rounds).await {
            Ok((latency, bytes, seen)) => {
                rec.metric_opt(
                    &format!("{key}_ms"),
                    &format!("{label} ({} rooms), median", rooms.len()),
                    "ms",
                    Better::Lower,
                    latency.median(),
                );
                rec.metric(
                    &format!("{key}_kib"),
                    &format!("{label}, response size"),
                    "KiB",
                    Better::Lower,
                    bytes as f64 / 1024.0,
                );
                if seen < rooms.len() {
                    rec.fail(format!(
                        "{label}: the response lists {seen} joined rooms, the user is in {}",
                        rooms.len()
                    ));
                }
            }
            Err(e) => rec.fail(format!("{label}: {e}")),
        }
    }

    match incremental(ctx, user, scale.sync_incremental_rounds).await {
        Ok((latency, bytes)) => {
            rec.metric_opt(
                "incremental_p50_ms",
                "sync: incremental, nothing new, p50",
                "ms",
                Better::Lower,
                latency.median(),
            );
            rec.metric_opt(
                "incremental_p95_ms",
                "sync: incremental, nothing new, p95",
                "ms",
                Better::Lower,
                latency.percentile(95.0),
            );
            rec.metric(
                "incremental_bytes",
                "sync: incremental, nothing new, response size",
                "bytes",
                Better::Lower,
                bytes as f64,
            );
        }
        Err(e) => rec.fail(format!("incremental sync: {e}")),
    }
}

/// Returns latencies, the size of the last response and its joined-room count.
async fn initial(
    ctx: &Ctx,
    user: &User,
    filter: Option<&str>,
    rounds: usize,
) -> Result<(Samples, usize, usize), Error> {
    let mut latency = Samples::default();
    let mut last = (0, 0);
    for round in 0..rounds {
        let params = SyncParams { since: None, filter, timeout_ms: Some(round as u64) };
        let synced = matrix::sync(&ctx.http, user, &params, matrix::REQUEST_TIMEOUT).await?;
        latency.push(synced.elapsed);
        last = (synced.bytes, synced.joined_rooms());
    }
    Ok((latency, last.0, last.1))
}

/// Returns latencies and the median response size.
async fn incremental(ctx: &Ctx, user: &User, rounds: usize) -> Result<(Samples, usize), Error> {
    let start = SyncParams { filter: Some(LAZY_FILTER), ..Default::default() };
    let mut since =
        matrix::sync(&ctx.http, user, &start, matrix::REQUEST_TIMEOUT).await?.next_batch;
    let mut latency = Samples::default();
    let mut sizes = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let params =
            SyncParams { since: Some(&since), filter: Some(LAZY_FILTER), timeout_ms: Some(0) };
        // timeout=0 means "answer now": a server still waiting after 10 s
        // is not honouring it.
        let synced = matrix::sync(&ctx.http, user, &params, Duration::from_secs(10)).await?;
        latency.push(synced.elapsed);
        sizes.push(synced.bytes);
        since = synced.next_batch;
    }
    sizes.sort_unstable();
    Ok((latency, sizes.get(sizes.len() / 2).copied().unwrap_or(0)))
}
