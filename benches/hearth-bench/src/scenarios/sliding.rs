//! `sliding`: simplified sliding sync (MSC4186), the sync Element X runs.
//!
//! Two users of their own: one in [`BIG`] rooms, one in [`SMALL`], each room
//! with a message so the rooms have distinct recency. For each user the
//! tool measures Element X's room-list request (one list, window [0,19],
//! `timeline_limit` 1, its usual `required_state`):
//!
//! - initial: a new connection each time (no `pos`), what a client does at
//!   start-up or after `M_UNKNOWN_POS`;
//! - incremental, nothing new: `pos` of the previous answer, `timeout=0`.
//!
//! With a window of 20 the answer is the same size for both users; what
//! differs is the server's work to find and order the 20 most recent of
//! all the user's rooms. The figures side by side show how that grows.

use std::sync::Arc;
use std::time::Duration;

use hyper::Method;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::client::Error;
use crate::matrix::{self, User};
use crate::pool;
use crate::report::{Better, Recorder};
use crate::stats::Samples;
use crate::world::Ctx;

/// The endpoint (unstable prefix, as Element X calls it).
const PATH: &str = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync";
/// Rooms of the big and the small user.
const BIG: usize = 200;
const SMALL: usize = 20;
/// The list window: the first screen of a room list.
const WINDOW: u64 = 19;
/// Initial requests per user (each one starts a connection).
const INITIAL_ROUNDS: usize = 20;

/// The room-list request Element X (matrix-sdk-ui's `RoomListService`)
/// sends, with the same `required_state`.
fn room_list_request() -> Value {
    json!({
        "conn_id": "room-list",
        "lists": { "all_rooms": {
            "ranges": [[0, WINDOW]],
            "timeline_limit": 1,
            "required_state": [
                ["m.room.name", ""], ["m.room.encryption", ""], ["m.room.member", "$LAZY"],
                ["m.room.member", "$ME"], ["m.room.topic", ""], ["m.room.avatar", ""],
                ["m.room.canonical_alias", ""], ["m.room.power_levels", ""],
                ["org.matrix.msc3401.call.member", "*"], ["m.room.join_rules", ""],
                ["m.room.tombstone", ""], ["m.room.create", ""],
                ["m.room.history_visibility", ""], ["io.element.functional_members", ""],
                ["m.space.parent", "*"], ["m.space.child", "*"],
            ],
        } },
        "extensions": {
            "account_data": { "enabled": true },
            "receipts": { "enabled": true, "rooms": ["*"] },
            "typing": { "enabled": true },
        },
    })
}

pub(super) async fn run(ctx: &Ctx, rec: &mut Recorder<'_>) {
    for (label, rooms) in [("big", BIG), ("small", SMALL)] {
        let user = match set_up(ctx, label, rooms).await {
            Ok(user) => user,
            Err(e) => {
                rec.fail(format!("setup of the {rooms}-room user: {e}"));
                continue;
            }
        };
        match measure(ctx, &user, rooms).await {
            Ok((initial, incremental)) => {
                rec.metric_opt(
                    &format!("initial_{rooms}_ms"),
                    &format!("sliding sync: new connection, user in {rooms} rooms, median"),
                    "ms",
                    Better::Lower,
                    initial.median(),
                );
                rec.metric_opt(
                    &format!("incremental_{rooms}_ms"),
                    &format!("sliding sync: nothing new, user in {rooms} rooms, median"),
                    "ms",
                    Better::Lower,
                    incremental.median(),
                );
                rec.metric_opt(
                    &format!("incremental_{rooms}_p95_ms"),
                    &format!("sliding sync: nothing new, user in {rooms} rooms, p95"),
                    "ms",
                    Better::Lower,
                    incremental.percentile(95.0),
                );
            }
            Err(e) => rec.fail(format!("{rooms}-room user: {e}")),
        }
    }
}

/// Registers a user and creates `rooms` rooms with one message each.
async fn set_up(ctx: &Ctx, label: &str, rooms: usize) -> Result<Arc<User>, Error> {
    let scale = &ctx.settings.scale;
    let localpart = format!("hb{}-sliding-{label}", ctx.run_id);
    let (user, _) = matrix::register(&ctx.http, &localpart, "hearth-bench-pw").await?;
    let user = Arc::new(user);
    let deadline = Instant::now() + scale.setup_deadline;
    let (http, owner) = (ctx.http.clone(), user.clone());
    let results = pool::run(rooms, scale.setup_concurrency, deadline, move |i| {
        let (http, user) = (http.clone(), owner.clone());
        async move {
            let (room_id, _) = matrix::create_room(&http, &user, &format!("room {i}")).await?;
            matrix::send_text(&http, &user, &room_id, &format!("hello {i}")).await?;
            Ok(())
        }
    })
    .await;
    results.into_iter().collect::<Result<Vec<()>, Error>>()?;
    Ok(user)
}

/// One request; returns the response and its latency.
async fn sliding_sync(
    ctx: &Ctx,
    user: &User,
    pos: Option<&str>,
    body: &Value,
) -> Result<(Value, Duration), Error> {
    let path = match pos {
        Some(pos) => format!("{PATH}?timeout=0&pos={}", matrix::encode(pos)),
        None => format!("{PATH}?timeout=0"),
    };
    let reply = ctx
        .http
        .call(Method::POST, &path, Some(&user.access_token), Some(body), matrix::REQUEST_TIMEOUT)
        .await?;
    if reply.status != 200 {
        return Err(reply.error());
    }
    Ok((reply.json()?, reply.elapsed))
}

/// Checks an initial answer holds the window and the right count.
fn check_window(v: &Value, rooms: usize) -> Result<String, Error> {
    let count = v["lists"]["all_rooms"]["count"].as_u64().unwrap_or(0) as usize;
    let sent = v["rooms"].as_object().map_or(0, |o| o.len());
    let want = rooms.min(WINDOW as usize + 1);
    if count != rooms || sent != want {
        return Err(Error::Unexpected(format!(
            "expected count {rooms} and {want} rooms, got count {count} and {sent} rooms"
        )));
    }
    v["pos"].as_str().map(str::to_owned).ok_or_else(|| Error::Unexpected("no pos".into()))
}

async fn measure(ctx: &Ctx, user: &User, rooms: usize) -> Result<(Samples, Samples), Error> {
    let body = room_list_request();
    let mut initial = Samples::default();
    let mut pos = String::new();
    for _ in 0..INITIAL_ROUNDS {
        let (v, elapsed) = sliding_sync(ctx, user, None, &body).await?;
        pos = check_window(&v, rooms)?;
        initial.push(elapsed);
    }
    let mut incremental = Samples::default();
    for _ in 0..ctx.settings.scale.sync_incremental_rounds {
        let (v, elapsed) = sliding_sync(ctx, user, Some(&pos), &body).await?;
        if v["rooms"].as_object().is_some_and(|o| !o.is_empty()) {
            return Err(Error::Unexpected(format!("nothing changed, yet rooms were sent: {v}")));
        }
        pos = v["pos"].as_str().ok_or_else(|| Error::Unexpected("no pos".into()))?.to_owned();
        incremental.push(elapsed);
    }
    Ok((initial, incremental))
}
