//! Reading a room's history: `/messages`, `/context` and
//! `timestamp_to_event` (spec: client-server-api/#getting-events-for-a-room).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{event_id_in_path, known_room_id, room_short, viewer};
use crate::api::{Reply, Request, json};
use crate::app::App;
use crate::error::MatrixError;
use crate::ids::UserId;
use crate::room::relations::parse_bundled;
use crate::room::served::parse_stored;
use crate::room::visibility::{SeenEvent, Visibility, visible_event, visible_upto};
use crate::store::{ReadTxn, RoomShort, StoredEvent, StreamPos};
use crate::sync;
use crate::sync::filter::RoomEventFilter;

/// `GET /rooms/{roomId}/messages`
pub fn messages(app: &App, req: &Request, room_id: &str) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let read = app.store.read()?;
    let room = known_room_id(room_id)?;
    let short = crate::room::visibility::room_short(&read, &room)?;
    let upto = visible_upto(&read, &caller.user_id, short)?;
    let dir = req.query("dir").unwrap_or("b");
    let limit: usize = match req.query("limit") {
        Some(l) => l.parse().map_err(|_| MatrixError::invalid_param("limit must be an integer"))?,
        None => 10,
    };
    let limit = limit.clamp(1, 1000);
    let from = match req.query("from") {
        Some(f) => Some(
            sync::parse_pagination(f)
                .ok_or_else(|| MatrixError::invalid_param("from is not a valid token"))?,
        ),
        None => None,
    };
    let to = match req.query("to") {
        Some(t) => Some(
            sync::parse_pagination(t)
                .ok_or_else(|| MatrixError::invalid_param("to is not a valid token"))?,
        ),
        None => None,
    };
    let filter = match req.query("filter") {
        Some(f) => RoomEventFilter::parse_query(f)?,
        None => RoomEventFilter::default(),
    };
    if !matches!(dir, "b" | "f") {
        return Err(MatrixError::invalid_param("dir must be b or f"));
    }
    let vis = Visibility::load(&read, &caller.user_id, short)?;
    let page = if filter.allows_room(&room) {
        scan_page(&read, short, dir == "b", from, to, upto, limit, &|e| {
            Ok(vis.can_see(e) && (filter.is_open() || filter.allows_event(&parse_stored(e)?)))
        })?
    } else {
        Page { events: Vec::new(), end: None }
    };
    let chunk: Vec<Value> = page
        .events
        .iter()
        .map(|e| parse_bundled(&read, short, e, viewer(caller), vis.memberships()))
        .collect::<Result<_, _>>()?;
    let start_token = match from {
        Some(f) => sync::pagination_token(f),
        None => sync::pagination_token(if dir == "b" {
            StreamPos(app.store.current_position().0 + 1)
        } else {
            StreamPos(0)
        }),
    };
    let mut out = json!({ "chunk": chunk, "start": start_token });
    if let Some(e) = page.end {
        out["end"] = json!(sync::pagination_token(e));
    }
    if filter.lazy_load_members {
        out["state"] = json!(senders_members(&read, short, &page.events, &chunk)?);
    }
    Ok(json(&out))
}

/// One page of `/messages`.
struct Page {
    events: Vec<StoredEvent>,
    /// Where the next page starts; `None` when the page moved nowhere or
    /// reached the room's start, before which nothing can ever appear.
    end: Option<StreamPos>,
}

/// The most events one `/messages` request looks at, kept or not: a
/// filter that matches little must not walk a whole history.
const PAGE_SCAN_LIMIT: usize = 2_000;

/// Walks a room's events from a token towards `to` (or the start or
/// `upto`), keeping up to `limit` that `keep` accepts.
#[allow(clippy::too_many_arguments)]
fn scan_page(
    read: &ReadTxn,
    room: RoomShort,
    backwards: bool,
    from: Option<StreamPos>,
    to: Option<StreamPos>,
    upto: StreamPos,
    limit: usize,
    keep: &dyn Fn(&StoredEvent) -> Result<bool, MatrixError>,
) -> Result<Page, MatrixError> {
    // Tokens mean "between stream positions": `t<n>` paginating backwards
    // returns events with stream < n, forwards those with stream >= n.
    let mut cursor = if backwards {
        StreamPos(from.unwrap_or(StreamPos(u64::MAX)).0.min(upto.0.saturating_add(1)))
    } else {
        from.unwrap_or(StreamPos(0))
    };
    let mut events = Vec::new();
    let mut scanned = 0;
    loop {
        let batch = if backwards {
            read.events_before(room, cursor, limit.max(32))?
        } else {
            read.events_from(room, cursor, limit.max(32))?
        };
        if batch.is_empty() {
            // Backwards this is the room's start. Forwards it is only the
            // newest event so far: a page that read up to it still needs
            // a token to read on from once newer events arrive (clients
            // reading on from `/context` require one); an empty page
            // has none, the caller keeps its `from` (spec: `end` is omitted
            // when no further events are available).
            let end = (!backwards && scanned > 0).then_some(cursor);
            return Ok(Page { events, end });
        }
        for e in batch {
            let past_end = if backwards {
                to.is_some_and(|t| e.stream < t)
            } else {
                e.stream > upto || to.is_some_and(|t| e.stream >= t)
            };
            if past_end {
                // Events lie beyond `to` (or the caller's departure, which
                // a re-join can move): where to go on from, if anywhere.
                return Ok(Page { events, end: (scanned > 0).then_some(cursor) });
            }
            cursor = if backwards { e.stream } else { StreamPos(e.stream.0 + 1) };
            scanned += 1;
            if keep(&e)? {
                events.push(e);
            }
            if events.len() == limit || scanned == PAGE_SCAN_LIMIT {
                return Ok(Page { events, end: Some(cursor) });
            }
        }
    }
}

/// The member events of the senders of `events` (client format in
/// `values`), each as it was at that sender's newest event in the list:
/// the `state` of a lazy-loading `/messages` or `/context`.
fn senders_members(
    read: &ReadTxn,
    room: RoomShort,
    events: &[StoredEvent],
    values: &[Value],
) -> Result<Vec<Value>, MatrixError> {
    let mut newest: BTreeMap<&str, StreamPos> = BTreeMap::new();
    for (e, v) in events.iter().zip(values) {
        if let Some(s) = v["sender"].as_str() {
            let p = newest.entry(s).or_default();
            *p = (*p).max(e.stream);
        }
    }
    let mut out = Vec::new();
    for (sender, at) in newest {
        let positions =
            read.membership_positions(&UserId::from_trusted(sender.to_owned()), room)?;
        let pos = positions.iter().rev().find(|p| **p <= at).or(positions.last());
        if let Some(pos) = pos
            && let Some(ev) = read.event_at(room, *pos)?
        {
            out.push(parse_stored(&ev)?);
        }
    }
    Ok(out)
}

/// `GET /rooms/{roomId}/context/{eventId}`
pub fn get_event_context(
    app: &App,
    req: &Request,
    room_id: &str,
    event_id: &str,
) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let read = app.store.read()?;
    let short = room_short(&read, room_id)?;
    let SeenEvent { event, upto, vis } =
        visible_event(&read, &caller.user_id, short, &event_id_in_path(event_id)?)?;
    let pos = event.stream;
    let limit: usize = match req.query("limit") {
        Some(l) => l.parse().map_err(|_| MatrixError::invalid_param("limit must be an integer"))?,
        None => 10,
    };
    let limit = limit.min(100);
    let filter = match req.query("filter") {
        Some(f) => RoomEventFilter::parse_query(f)?,
        None => RoomEventFilter::default(),
    };
    let keep = |e: &StoredEvent| -> Result<bool, MatrixError> {
        Ok(vis.can_see(e) && (filter.is_open() || filter.allows_event(&parse_stored(e)?)))
    };
    let before_n = limit / 2;
    let after_n = limit - before_n;
    let before = scan_page(&read, short, true, Some(pos), None, upto, before_n.max(1), &keep)?;
    let after = scan_page(
        &read,
        short,
        false,
        Some(StreamPos(pos.0 + 1)),
        None,
        upto,
        after_n.max(1),
        &keep,
    )?;
    let before_events = &before.events[..before.events.len().min(before_n)];
    let after_events = &after.events[..after.events.len().min(after_n)];
    let start = before_events.last().map(|e| e.stream).unwrap_or(pos);
    let end =
        after_events.last().map(|e| StreamPos(e.stream.0 + 1)).unwrap_or(StreamPos(pos.0 + 1));
    let bundle = |evs: &[StoredEvent]| -> Result<Vec<Value>, MatrixError> {
        evs.iter()
            .map(|e| parse_bundled(&read, short, e, viewer(caller), vis.memberships()))
            .collect()
    };
    let event_value = parse_bundled(&read, short, &event, viewer(caller), vis.memberships())?;
    let events_before = bundle(before_events)?;
    let events_after = bundle(after_events)?;
    let mut state = Vec::new();
    for (t, k, _) in read.room_state(short)? {
        if filter.lazy_load_members && t == "m.room.member" {
            continue;
        }
        if let Some(ev) = read.state_event(short, &t, &k)? {
            state.push(parse_stored(&ev)?);
        }
    }
    if filter.lazy_load_members {
        let mut all: Vec<StoredEvent> = vec![event.clone()];
        all.extend(before_events.iter().cloned());
        all.extend(after_events.iter().cloned());
        let mut values = vec![event_value.clone()];
        values.extend(events_before.iter().cloned());
        values.extend(events_after.iter().cloned());
        state.extend(senders_members(&read, short, &all, &values)?);
    }
    Ok(json(&json!({
        "event": event_value,
        "events_before": events_before,
        "events_after": events_after,
        "start": sync::pagination_token(start),
        "end": sync::pagination_token(end),
        "state": state,
    })))
}

/// `GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event`: the event
/// closest to `ts` in direction `dir` that the caller may see.
pub fn timestamp_to_event(app: &App, req: &Request, room_id: &str) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let ts: u64 = req
        .query("ts")
        .ok_or_else(|| MatrixError::missing_param("ts is required"))?
        .parse()
        .map_err(|_| MatrixError::invalid_param("ts must be an integer"))?;
    let forward = match req.query("dir") {
        Some("f") => true,
        Some("b") => false,
        _ => return Err(MatrixError::invalid_param("dir must be f or b")),
    };
    let read = app.store.read()?;
    let short = room_short(&read, room_id)?;
    let upto = visible_upto(&read, &caller.user_id, short)?;
    let vis = Visibility::load(&read, &caller.user_id, short)?;
    // Local events are appended in time order, so stream order is time
    // order; walk in pages from the right end.
    let mut best: Option<(String, u64)> = None;
    let mut cursor = StreamPos(0);
    loop {
        let page = read.events_from(short, cursor, 256)?;
        let Some(last) = page.last() else { break };
        cursor = StreamPos(last.stream.0 + 1);
        for e in &page {
            if e.stream > upto || !vis.can_see(e) {
                continue;
            }
            let v = parse_stored(e)?;
            let t = v["origin_server_ts"].as_u64().unwrap_or(0);
            let id = v["event_id"].as_str().unwrap_or_default().to_owned();
            // Forward: the first at or after `ts`; backward: the last at or
            // before it.
            let fits = if forward { t >= ts && best.is_none() } else { t <= ts };
            if fits {
                best = Some((id, t));
            }
        }
        if (forward && best.is_some()) || page.len() < 256 {
            break;
        }
    }
    let (event_id, origin_server_ts) =
        best.ok_or_else(|| MatrixError::not_found("No event found in that direction"))?;
    Ok(json(&json!({ "event_id": event_id, "origin_server_ts": origin_server_ts })))
}
