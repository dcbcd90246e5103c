//! Long-poll scenarios: `wake`, `idle` and `fanout`.
//!
//! A poller is one user looping on `GET /sync?since=…&timeout=30000`, each
//! on its own connection. It reports every return, and every timeline
//! message in the watched room whose body starts with the scenario's
//! marker, stamped with the instant its response was fully read.
//!
//! - `wake`: one poller, one other user sends in their shared room; the
//!   figure is the time from the send's response to the poll's return.
//! - `idle`: `polls` pollers park on the server; the figure is how much
//!   resident memory they cost and how much CPU the server burns meanwhile.
//! - `fanout`: `polls` pollers, `fanout_targets` of them in one room; one
//!   message there; the figure is the time until every target has returned.
//!
//! "Parked" cannot be observed from outside, so before a measurement the
//! tool waits for the server's CPU use to drop (with `--pid`; else a fixed
//! pause). Pollers that return for other reasons (presence, receipts, …)
//! simply poll again and are counted as early returns.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::need;
use super::sync::LAZY_FILTER;
use crate::client::Error;
use crate::matrix::{self, SyncParams, User};
use crate::procfs;
use crate::report::{Better, Recorder};
use crate::stats::Samples;
use crate::world::{self, Ctx, Piece, World};

enum PollEvent {
    Hit { poller: usize, body: String, at: Instant },
    Returned,
    Failed { error: Error },
}

/// Starts one polling task per user; they stop at `deadline` or when the
/// returned set is dropped (which also closes their connections).
fn spawn_pollers(
    ctx: &Ctx,
    users: &[Arc<User>],
    since: &[String],
    watch: Option<(&str, &str)>,
    deadline: Instant,
) -> (JoinSet<()>, mpsc::UnboundedReceiver<PollEvent>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut tasks = JoinSet::new();
    for (poller, (user, since)) in users.iter().zip(since).enumerate() {
        let http = ctx.http.clone();
        let user = Arc::clone(user);
        let mut since = since.clone();
        let tx = tx.clone();
        let watch = watch.map(|(room, prefix)| (room.to_owned(), prefix.to_owned()));
        tasks.spawn(async move {
            while Instant::now() < deadline {
                let params = SyncParams {
                    since: Some(&since),
                    filter: Some(LAZY_FILTER),
                    timeout_ms: Some(matrix::LONG_POLL_MS),
                };
                match matrix::sync(&http, &user, &params, matrix::LONG_POLL_TIMEOUT).await {
                    Ok(synced) => {
                        let mut hit = false;
                        if let Some((room, prefix)) = &watch {
                            for body in synced.timeline_bodies(room) {
                                if body.starts_with(prefix.as_str()) {
                                    hit = true;
                                    let event = PollEvent::Hit {
                                        poller,
                                        body: body.to_owned(),
                                        at: synced.received_at,
                                    };
                                    if tx.send(event).is_err() {
                                        return;
                                    }
                                }
                            }
                        }
                        let quick = synced.elapsed < Duration::from_secs(1);
                        since = synced.next_batch;
                        if tx.send(PollEvent::Returned).is_err() {
                            return;
                        }
                        // A server that answers long-polls at once would
                        // otherwise be hammered by every poller; settling
                        // before each measurement absorbs this pause.
                        if quick && !hit {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                    Err(error) => {
                        if tx.send(PollEvent::Failed { error }).is_err() {
                            return;
                        }
                        // Do not hammer a server that is refusing syncs.
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        });
    }
    (tasks, rx)
}

/// Counts of what pollers reported while nobody was looking for hits.
#[derive(Default)]
struct Drained {
    returns: usize,
    errors: usize,
    first_error: Option<Error>,
}

impl Drained {
    fn take(&mut self, rx: &mut mpsc::UnboundedReceiver<PollEvent>) {
        while let Ok(event) = rx.try_recv() {
            self.count(event);
        }
    }

    fn count(&mut self, event: PollEvent) {
        match event {
            PollEvent::Hit { .. } => {}
            PollEvent::Returned => self.returns += 1,
            PollEvent::Failed { error } => {
                self.errors += 1;
                self.first_error.get_or_insert(error);
            }
        }
    }

    fn report(&self, rec: &mut Recorder<'_>) {
        if let Some(e) = &self.first_error {
            rec.fail(format!("{} long-polls failed; first: {e}", self.errors));
        }
    }
}

/// The crowd's initial-sync tokens, computed once and shared by `idle` and
/// `fanout` (a stale token is still valid: the first poll just returns).
async fn crowd_tokens(ctx: &Ctx, world: &mut World) -> Piece<Vec<String>> {
    if let Some(tokens) = &world.crowd_since {
        return tokens.clone();
    }
    let crowd = world.crowd.clone()?;
    let polls = ctx.settings.scale.polls.min(crowd.len());
    eprintln!("[polls] initial sync for {polls} long-pollers");
    let tokens = world::initial_tokens(ctx, &crowd[..polls], LAZY_FILTER)
        .await
        .map_err(|e| format!("initial sync for the long-pollers: {e}"));
    world.crowd_since = Some(tokens.clone());
    tokens
}

/// Waits for the hits carrying `marker` from `wanted` distinct pollers (or
/// until `limit`), returning each poller's first hit instant.
async fn await_hits(
    rx: &mut mpsc::UnboundedReceiver<PollEvent>,
    marker: &str,
    wanted: usize,
    limit: Duration,
    drained: &mut Drained,
) -> HashMap<usize, Instant> {
    let mut hits = HashMap::new();
    let deadline = Instant::now() + limit;
    while hits.len() < wanted {
        match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
            Ok(Some(PollEvent::Hit { poller, body, at })) => {
                if body == marker {
                    hits.entry(poller).or_insert(at);
                }
            }
            Ok(Some(other)) => drained.count(other),
            Ok(None) | Err(_) => break,
        }
    }
    hits
}

fn ms_after(at: Instant, reference: Instant) -> f64 {
    at.saturating_duration_since(reference).as_secs_f64() * 1000.0
}

pub(super) async fn wake(ctx: &Ctx, world: &World, rec: &mut Recorder<'_>) {
    let driver = need!(rec, world.driver);
    let crowd = need!(rec, world.crowd);
    let room = need!(rec, world.wake_room);
    let rounds = ctx.settings.scale.wake_rounds;
    let Some(poller) = crowd.first() else {
        rec.fail("no long-poller was set up");
        return;
    };
    let since = match world::initial_tokens(ctx, std::slice::from_ref(poller), LAZY_FILTER).await {
        Ok(tokens) => tokens,
        Err(e) => {
            rec.fail(format!("initial sync of the long-poller: {e}"));
            return;
        }
    };
    let prefix = format!("wake {} ", ctx.run_id);
    let deadline = Instant::now() + Duration::from_secs(30) * rounds as u32;
    let (tasks, mut rx) =
        spawn_pollers(ctx, std::slice::from_ref(poller), &since, Some((room, &prefix)), deadline);
    let mut drained = Drained::default();
    let mut latency = Samples::default();
    let mut missed = 0;
    for round in 0..rounds {
        procfs::settle(ctx.pid(), Duration::from_secs(3), Duration::from_millis(200)).await;
        drained.take(&mut rx);
        let marker = format!("{prefix}{round}");
        let sent_at = match matrix::send_text(&ctx.http, driver, room, &marker).await {
            Ok((_, reply)) => reply.received_at,
            Err(e) => {
                rec.fail(format!("round {round}: send: {e}"));
                break;
            }
        };
        let hits = await_hits(&mut rx, &marker, 1, Duration::from_secs(10), &mut drained).await;
        match hits.values().next() {
            Some(at) => latency.push_ms(ms_after(*at, sent_at)),
            None => missed += 1,
        }
    }
    drop(tasks);
    drained.report(rec);
    if missed > 0 {
        rec.fail(format!("{missed} of {rounds} messages did not wake the long-poll within 10 s"));
    }
    rec.metric_opt(
        "p50_ms",
        "wake: send response → long-poll return, p50",
        "ms",
        Better::Lower,
        latency.median(),
    );
    rec.metric_opt(
        "max_ms",
        "wake: send response → long-poll return, max",
        "ms",
        Better::Lower,
        latency.max(),
    );
}

pub(super) async fn idle(ctx: &Ctx, world: &mut World, rec: &mut Recorder<'_>) {
    let since = match crowd_tokens(ctx, world).await {
        Ok(tokens) => tokens,
        Err(e) => {
            rec.fail(e);
            return;
        }
    };
    let crowd = need!(rec, world.crowd);
    let pid = ctx.pid();
    let n = since.len();
    if pid.is_none() {
        rec.note("no --pid: only checks that the long-polls stay open");
    }
    // Let the initial syncs' work finish before the "before" reading.
    procfs::settle(pid, Duration::from_secs(10), Duration::from_secs(1)).await;
    let before = pid.map(procfs::memory);
    let deadline = Instant::now() + Duration::from_secs(120);
    let (tasks, mut rx) = spawn_pollers(ctx, &crowd[..n], &since, None, deadline);
    procfs::settle(pid, Duration::from_secs(30), Duration::from_millis(2000 + 10 * n as u64)).await;
    let mut drained = Drained::default();
    drained.take(&mut rx);
    let returns_while_opening = drained.returns;
    let with_polls = pid.map(procfs::memory);
    // CPU the server spends just holding the polls open.
    let window = Duration::from_secs(3);
    let cpu_a = pid.map(procfs::cpu_time);
    tokio::time::sleep(window).await;
    let cpu_b = pid.map(procfs::cpu_time);
    drained.take(&mut rx);
    drop(tasks);
    drained.report(rec);
    rec.metric(
        "early_returns",
        &format!("idle: long-polls that returned early ({n} open)"),
        "count",
        Better::Neither,
        drained.returns as f64,
    );
    if returns_while_opening > 0 {
        rec.note(format!(
            "{returns_while_opening} polls returned before all were parked (stale tokens \
             or other activity); they were reissued"
        ));
    }
    match (before, with_polls) {
        (Some(Ok(before)), Some(Ok(after))) => {
            rec.metric(
                "rss_before_mib",
                "idle: server RSS before the long-polls",
                "MiB",
                Better::Lower,
                before.rss_kib as f64 / 1024.0,
            );
            rec.metric(
                "rss_with_polls_mib",
                &format!("idle: server RSS with {n} long-polls open"),
                "MiB",
                Better::Lower,
                after.rss_kib as f64 / 1024.0,
            );
            rec.metric(
                "rss_per_poll_kib",
                "idle: RSS growth per open long-poll",
                "KiB",
                Better::Lower,
                (after.rss_kib as f64 - before.rss_kib as f64) / n.max(1) as f64,
            );
        }
        (Some(Err(e)), _) | (_, Some(Err(e))) => rec.fail(e),
        _ => {}
    }
    if let (Some(Ok(a)), Some(Ok(b))) = (cpu_a, cpu_b) {
        rec.metric(
            "cpu_percent",
            &format!("idle: server CPU with {n} long-polls open"),
            "%",
            Better::Lower,
            b.saturating_sub(a).as_secs_f64() / window.as_secs_f64() * 100.0,
        );
    }
}

pub(super) async fn fanout(ctx: &Ctx, world: &mut World, rec: &mut Recorder<'_>) {
    let since = match crowd_tokens(ctx, world).await {
        Ok(tokens) => tokens,
        Err(e) => {
            rec.fail(e);
            return;
        }
    };
    let driver = need!(rec, world.driver);
    let crowd = need!(rec, world.crowd);
    let room = need!(rec, world.fanout_room);
    let scale = &ctx.settings.scale;
    let n = since.len();
    let targets = scale.fanout_targets.min(n);
    let prefix = format!("fanout {} ", ctx.run_id);
    let deadline = Instant::now() + Duration::from_secs(70) * scale.fanout_rounds as u32;
    let (tasks, mut rx) = spawn_pollers(ctx, &crowd[..n], &since, Some((room, &prefix)), deadline);
    let mut drained = Drained::default();
    let mut all = Samples::default();
    let mut each = Samples::default();
    for round in 0..scale.fanout_rounds {
        procfs::settle(
            ctx.pid(),
            Duration::from_secs(30),
            Duration::from_millis(2000 + 10 * n as u64),
        )
        .await;
        drained.take(&mut rx);
        let marker = format!("{prefix}{round}");
        let sent_at = match matrix::send_text(&ctx.http, driver, room, &marker).await {
            Ok((_, reply)) => reply.received_at,
            Err(e) => {
                rec.fail(format!("round {round}: send: {e}"));
                break;
            }
        };
        let hits =
            await_hits(&mut rx, &marker, targets, Duration::from_secs(30), &mut drained).await;
        // Pollers 0..targets are the room's members; anyone else seeing the
        // message would be a server bug worth flagging.
        if let Some(stranger) = hits.keys().find(|p| **p >= targets) {
            rec.fail(format!("poller {stranger}, not in the room, received the message"));
        }
        if hits.len() < targets {
            rec.fail(format!(
                "round {round}: {} of {targets} long-polls returned the message within 30 s",
                hits.len()
            ));
        }
        let mut slowest: f64 = 0.0;
        for at in hits.values() {
            let ms = ms_after(*at, sent_at);
            each.push_ms(ms);
            slowest = slowest.max(ms);
        }
        if hits.len() == targets {
            all.push_ms(slowest);
        }
    }
    drop(tasks);
    drained.report(rec);
    rec.metric_opt(
        "all_ms",
        &format!("fanout: until all {targets} of {n} long-polls returned, median"),
        "ms",
        Better::Lower,
        all.median(),
    );
    rec.metric_opt(
        "each_p50_ms",
        "fanout: per-poll return, p50",
        "ms",
        Better::Lower,
        each.median(),
    );
}
