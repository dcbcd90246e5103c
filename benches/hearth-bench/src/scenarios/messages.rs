//! `messages`: back-pagination through a room's history.
//!
//! One reader walks `GET /rooms/{roomId}/messages?dir=b&limit=50` from the
//! end of the room, following `end`, until the history runs out; then it
//! starts again, until the page budget or the deadline is used up. This is
//! what a client scrolling up does, and what a server that stores events
//! "ready to serve" should be fast at.

use tokio::time::Instant;

use super::need;
use crate::matrix::{self, SyncParams};
use crate::report::{Better, Recorder};
use crate::stats::Samples;
use crate::world::{Ctx, World};

const PAGE: usize = 50;

pub(super) async fn run(ctx: &Ctx, world: &World, rec: &mut Recorder<'_>) {
    let user = need!(rec, world.driver);
    let room = need!(rec, world.messages_room);
    let scale = &ctx.settings.scale;

    // `from` is optional since spec v1.3; a server that still wants it
    // gets the room's `prev_batch` from a sync instead.
    let mut start: Option<String> = None;
    if let Err(e) = matrix::get_room_events_backwards(&ctx.http, user, room, None, 1).await {
        rec.note(format!(
            "/messages without `from` was refused ({e}); starting from a sync's prev_batch"
        ));
        let filter = format!(
            r#"{{"room":{{"rooms":[{}],"timeline":{{"limit":1}}}}}}"#,
            serde_json::Value::from(room.as_str())
        );
        let params = SyncParams { filter: Some(&filter), ..Default::default() };
        match matrix::sync(&ctx.http, user, &params, matrix::REQUEST_TIMEOUT).await {
            Ok(synced) => match synced.prev_batch(room) {
                Some(token) => start = Some(token),
                None => {
                    rec.fail("no prev_batch for the room in /sync either");
                    return;
                }
            },
            Err(e) => {
                rec.fail(format!("sync for prev_batch: {e}"));
                return;
            }
        }
    }

    let started = Instant::now();
    let deadline = started + scale.messages_deadline;
    let mut latency = Samples::default();
    let mut events = 0usize;
    let mut bytes = 0usize;
    let mut walks = 0usize;
    let mut first_walk_events = None;
    'walks: while latency.len() < scale.messages_pages && Instant::now() < deadline {
        let mut from = start.clone();
        let mut walk_events = 0usize;
        loop {
            if latency.len() >= scale.messages_pages || Instant::now() >= deadline {
                break 'walks;
            }
            let page = match matrix::get_room_events_backwards(
                &ctx.http,
                user,
                room,
                from.as_deref(),
                PAGE,
            )
            .await
            {
                Ok(page) => page,
                Err(e) => {
                    rec.fail(format!("page {} of walk {}: {e}", latency.len() + 1, walks + 1));
                    break 'walks;
                }
            };
            latency.push(page.elapsed);
            events += page.events;
            bytes += page.bytes;
            walk_events += page.events;
            // The end of history: no `end`, or an empty chunk.
            match page.end {
                Some(end) if page.events > 0 => from = Some(end),
                _ => break,
            }
        }
        walks += 1;
        first_walk_events.get_or_insert(walk_events);
    }
    let wall = started.elapsed().as_secs_f64();
    if latency.is_empty() {
        return;
    }
    if let Some(n) = first_walk_events
        && n < scale.messages_history
    {
        rec.fail(format!(
            "a full walk returned {n} events, fewer than the {} messages sent",
            scale.messages_history
        ));
    }
    rec.metric(
        "pages_per_s",
        &format!("messages: pages/s (dir=b, limit={PAGE}, one reader)"),
        "pages/s",
        Better::Higher,
        latency.len() as f64 / wall,
    );
    rec.metric(
        "events_per_s",
        "messages: events/s",
        "events/s",
        Better::Higher,
        events as f64 / wall,
    );
    rec.metric_opt(
        "page_p50_ms",
        "messages: page latency p50",
        "ms",
        Better::Lower,
        latency.median(),
    );
    rec.metric_opt(
        "page_p95_ms",
        "messages: page latency p95",
        "ms",
        Better::Lower,
        latency.percentile(95.0),
    );
    rec.metric(
        "page_kib",
        "messages: mean page size",
        "KiB",
        Better::Neither,
        bytes as f64 / latency.len() as f64 / 1024.0,
    );
}
