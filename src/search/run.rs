//! Running a search against the store, and keeping the index up to date.
//!
//! A search walks the index newest first
//! ([`SearchIndex::next_match`](crate::store::SearchIndex::next_match)),
//! admits a match only if it is in a room the user has been joined to, the
//! user may see it under the room's history visibility *at that event*
//! ([`Visibility::can_see`]), and it passes the filter; then it ranks.
//!
//! Memory and work are bounded per request, whatever the history size: at
//! most [`CANDIDATE_LIMIT`] admitted matches form the window that is
//! ranked (`order_by: rank` orders the newest 500 matches, page by page,
//! then moves on to the next 500), and at most [`SCAN_LIMIT`] index matches
//! are looked at (matches in other people's rooms cost a look too). When a
//! limit stops the walk early, `next_batch` continues it and `count` is a
//! lower bound — the spec allows an estimate.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::{Batch, GroupScope, Order, Query, SearchKey, index_terms, searchable_text};
use crate::error::MatrixError;
use crate::ids::{RoomId, UserId};
use crate::membership::Membership;
use crate::room::visibility::Visibility;
use crate::store::{ReadTxn, RoomShort, StoreError, StoredEvent, StreamPos, WriteCtx};

/// The most matches one request ranks (the window).
pub const CANDIDATE_LIMIT: usize = 500;
/// The most index matches one request looks at, admitted or not.
pub const SCAN_LIMIT: usize = 2000;

/// Indexes a new event; `ingest::fan_out` calls it in the writer transaction
/// that stores the event, so the event is searchable once its send returns.
pub fn index_event(
    ctx: &mut WriteCtx<'_>,
    room: RoomShort,
    stream: StreamPos,
    event_type: &str,
    content: &Value,
) -> Result<(), StoreError> {
    let Some((key, texts)) = searchable_text(event_type, content) else { return Ok(()) };
    ctx.put_search_terms(room, stream, key.bit(), &index_terms(&texts))
}

/// Removes an event (in its unredacted form) from the index; the
/// redaction calls it in the same transaction that rewrites the event.
pub fn unindex_event(
    ctx: &mut WriteCtx<'_>,
    stream: StreamPos,
    event: &Value,
) -> Result<(), StoreError> {
    let event_type = event.get("type").and_then(Value::as_str).unwrap_or_default();
    let content = event.get("content").unwrap_or(&Value::Null);
    let Some((_, texts)) = searchable_text(event_type, content) else { return Ok(()) };
    ctx.delete_search_terms(stream, &index_terms(&texts))
}

/// The filter of a search: a RoomEventFilter (`limit` is
/// [`Criteria::limit`]).
pub type EventFilter = crate::sync::filter::RoomEventFilter;

/// `event_context` of the request.
#[derive(Clone, Copy, Debug)]
pub struct ContextSpec {
    pub before: usize,
    pub after: usize,
    pub include_profile: bool,
}

/// A validated `room_events` request.
#[derive(Clone, Debug)]
pub struct Criteria {
    pub query: Query,
    pub keys: Vec<SearchKey>,
    pub filter: EventFilter,
    pub order: Order,
    pub limit: usize,
    pub context: Option<ContextSpec>,
    pub include_state: bool,
    pub group_by_room: bool,
    pub group_by_sender: bool,
}

/// One admitted match.
struct Candidate {
    room: RoomShort,
    stream: StreamPos,
    rank: f64,
    sender: String,
}

/// A room the user may search in.
struct RoomView {
    room_id: String,
    visibility: Visibility,
}

/// Which rooms are searched, decided lazily per room met in the walk.
struct Rooms<'a> {
    read: &'a ReadTxn,
    user_id: &'a UserId,
    filter: &'a EventFilter,
    scope: Option<&'a GroupScope>,
    views: HashMap<RoomShort, Option<RoomView>>,
}

impl Rooms<'_> {
    fn view(&mut self, room: RoomShort) -> Result<Option<&RoomView>, MatrixError> {
        if !self.views.contains_key(&room) {
            let view = self.admit(room)?;
            self.views.insert(room, view);
        }
        Ok(self.views.get(&room).and_then(Option::as_ref))
    }

    /// Rooms the user is or was joined to (or can read as world-readable
    /// with a membership), narrowed by the filter and a group token.
    fn admit(&self, room: RoomShort) -> Result<Option<RoomView>, MatrixError> {
        if self.read.membership(self.user_id, room)?.is_none() {
            return Ok(None);
        }
        let Some(room_id) = self.read.room_id(room)? else { return Ok(None) };
        if !self.filter.allows_room(&RoomId::from_trusted(room_id.clone())) {
            return Ok(None);
        }
        if let Some(GroupScope::Room(r)) = self.scope
            && *r != room_id
        {
            return Ok(None);
        }
        let visibility = Visibility::load(self.read, self.user_id, room)?;
        if !visibility.may_look() {
            return Ok(None);
        }
        Ok(Some(RoomView { room_id, visibility }))
    }
}

fn parse(e: &StoredEvent) -> Result<Value, MatrixError> {
    crate::room::served::parse(&e.json, None)
}

/// An event as the searching user receives it: with their membership at it.
fn parse_seen(view: &RoomView, e: &StoredEvent) -> Result<Value, MatrixError> {
    let mut v = parse(e)?;
    crate::room::served::set_membership(&mut v, view.visibility.memberships().at(e.stream));
    Ok(v)
}

/// The mask of keys both asked for and allowed by the type filter.
fn key_mask(c: &Criteria) -> u8 {
    let f = &c.filter;
    c.keys.iter().filter(|k| f.events.allows_type(k.event_type())).fold(0, |m, k| m | k.bit())
}

/// Runs a search for `user_id` and returns the `room_events` response
/// object. `batch` is the decoded `next_batch` of the request, if any.
pub fn search(
    read: &ReadTxn,
    user_id: &UserId,
    c: &Criteria,
    batch: Option<&Batch>,
) -> Result<Value, MatrixError> {
    let scope = batch.and_then(|b| b.group.as_ref());
    let mut rooms = Rooms { read, user_id, filter: &c.filter, scope, views: HashMap::new() };
    let mask = key_mask(c);
    let index = read.search_index()?;

    // The walk: newest first, below the batch's top.
    let mut before = StreamPos(batch.map_or(u64::MAX, |b| b.top));
    let mut first_seen: Option<u64> = None;
    let mut window: Vec<Candidate> = Vec::new();
    let mut scanned = 0;
    let mut exhausted = false;
    while window.len() < CANDIDATE_LIMIT && scanned < SCAN_LIMIT {
        let Some(hit) = index.next_match(&c.query.terms, before)? else {
            exhausted = true;
            break;
        };
        scanned += 1;
        before = hit.stream;
        first_seen.get_or_insert(hit.stream.0 + 1);
        if hit.key_bit & mask == 0 {
            continue;
        }
        let Some(view) = rooms.view(hit.room)? else { continue };
        let Some(event) = read.event_at(hit.room, hit.stream)? else { continue };
        if !view.visibility.can_see(&event) {
            continue;
        }
        let v = parse(&event)?;
        let sender = v["sender"].as_str().unwrap_or_default();
        if !c.filter.allows_event(&v) || matches!(scope, Some(GroupScope::Sender(s)) if s != sender)
        {
            continue;
        }
        let event_type = v["type"].as_str().unwrap_or_default();
        // The postings say the terms are there; the text decides the rank
        // (and would drop a stale posting).
        let Some((_, texts)) = searchable_text(event_type, &v["content"]) else { continue };
        let Some(rank) = c.query.rank(&texts) else { continue };
        window.push(Candidate {
            room: hit.room,
            stream: hit.stream,
            rank,
            sender: sender.to_owned(),
        });
    }
    if c.order == Order::Rank {
        window.sort_by(|a, b| b.rank.total_cmp(&a.rank).then(b.stream.cmp(&a.stream)));
    }

    let seen = batch.map_or(0, |b| b.seen);
    let offset = batch.map_or(0, |b| b.offset).min(window.len());
    let end = (offset + c.limit).min(window.len());
    let page = &window[offset..end];
    // A ranked window keeps its top across pages so its order is stable.
    let window_top = batch.map(|b| b.top).or(first_seen).unwrap_or(u64::MAX);
    let next_for = |in_group: &dyn Fn(&Candidate) -> bool, group: Option<GroupScope>| {
        let served = window[..end].iter().filter(|x| in_group(x)).count();
        let more_here = window[end..].iter().any(in_group);
        if more_here {
            Some(match c.order {
                Order::Rank => {
                    Batch { order: c.order, top: window_top, offset: served, seen, group }
                }
                Order::Recent => Batch {
                    order: c.order,
                    top: window[..end]
                        .iter()
                        .filter(|x| in_group(x))
                        .map(|x| x.stream.0)
                        .min()
                        .unwrap_or(window_top),
                    offset: 0,
                    seen: seen + served as u64,
                    group,
                },
            })
        } else if !exhausted {
            let total = window.iter().filter(|x| in_group(x)).count() as u64;
            Some(Batch { order: c.order, top: before.0, offset: 0, seen: seen + total, group })
        } else {
            None
        }
    };
    let next_batch = next_for(&|_| true, scope.cloned());

    let mut results = Vec::with_capacity(page.len());
    let mut highlights = Vec::new();
    let mut event_ids = Vec::with_capacity(page.len());
    for cand in page {
        let Some(view) = rooms.view(cand.room)? else { continue };
        let Some(event) = read.event_at(cand.room, cand.stream)? else { continue };
        let v = parse_seen(view, &event)?;
        if let Some((_, texts)) =
            searchable_text(v["type"].as_str().unwrap_or_default(), &v["content"])
        {
            c.query.highlights(&texts, &mut highlights);
        }
        let mut result = json!({ "rank": cand.rank });
        if let Some(spec) = c.context {
            result["context"] = context(read, view, cand, spec)?;
        }
        event_ids.push(v["event_id"].clone());
        result["result"] = v;
        results.push(result);
    }

    let mut out = json!({
        "results": results,
        "count": seen + window.len() as u64,
        "highlights": highlights,
    });
    if let Some(b) = &next_batch {
        out["next_batch"] = json!(b.encode());
    }
    if c.include_state {
        out["state"] = Value::Object(state(read, user_id, &mut rooms, page)?);
    }
    let mut groups = Map::new();
    if c.group_by_room {
        let mut by_room: Vec<(RoomShort, Vec<Value>)> = Vec::new();
        for (cand, id) in page.iter().zip(&event_ids) {
            match by_room.iter_mut().find(|(r, _)| *r == cand.room) {
                Some((_, ids)) => ids.push(id.clone()),
                None => by_room.push((cand.room, vec![id.clone()])),
            }
        }
        let mut g = Map::new();
        for (order, (room, ids)) in by_room.into_iter().enumerate() {
            let Some(view) = rooms.view(room)? else { continue };
            let room_id = view.room_id.clone();
            let mut entry = json!({ "results": ids, "order": order + 1 });
            if let Some(b) = next_for(&|x| x.room == room, Some(GroupScope::Room(room_id.clone())))
            {
                entry["next_batch"] = json!(b.encode());
            }
            g.insert(room_id, entry);
        }
        groups.insert("room_id".into(), Value::Object(g));
    }
    if c.group_by_sender {
        let mut by_sender: Vec<(&str, Vec<Value>)> = Vec::new();
        for (cand, id) in page.iter().zip(&event_ids) {
            match by_sender.iter_mut().find(|(s, _)| *s == cand.sender) {
                Some((_, ids)) => ids.push(id.clone()),
                None => by_sender.push((&cand.sender, vec![id.clone()])),
            }
        }
        let mut g = Map::new();
        for (order, (sender, ids)) in by_sender.into_iter().enumerate() {
            let mut entry = json!({ "results": ids, "order": order + 1 });
            if let Some(b) =
                next_for(&|x| x.sender == sender, Some(GroupScope::Sender(sender.to_owned())))
            {
                entry["next_batch"] = json!(b.encode());
            }
            g.insert(sender.to_owned(), entry);
        }
        groups.insert("sender".into(), Value::Object(g));
    }
    if !groups.is_empty() {
        out["groups"] = Value::Object(groups);
    }
    Ok(out)
}

/// `context` of one result: visible events around it, pagination tokens
/// for `/messages`, and (on request) the senders' profiles as they were at
/// the result (their member event in force then).
fn context(
    read: &ReadTxn,
    view: &RoomView,
    cand: &Candidate,
    spec: ContextSpec,
) -> Result<Value, MatrixError> {
    let pos = cand.stream;
    let before: Vec<StoredEvent> = read
        .events_before(cand.room, pos, spec.before)?
        .into_iter()
        .filter(|e| view.visibility.can_see(e))
        .collect();
    let after: Vec<StoredEvent> = read
        .events_from(cand.room, StreamPos(pos.0 + 1), spec.after)?
        .into_iter()
        .filter(|e| view.visibility.can_see(e))
        .collect();
    let start = before.last().map_or(pos, |e| e.stream);
    let end = after.last().map_or(StreamPos(pos.0 + 1), |e| StreamPos(e.stream.0 + 1));
    let seen = |e| parse_seen(view, e);
    let events_before: Vec<Value> = before.iter().map(seen).collect::<Result<_, _>>()?;
    let events_after: Vec<Value> = after.iter().map(seen).collect::<Result<_, _>>()?;
    let mut out = json!({
        "events_before": events_before,
        "events_after": events_after,
        "start": crate::sync::pagination_token(start),
        "end": crate::sync::pagination_token(end),
    });
    if spec.include_profile {
        let mut senders = vec![cand.sender.clone()];
        for e in events_before.iter().chain(&events_after) {
            if let Some(s) = e["sender"].as_str()
                && !senders.iter().any(|x| x == s)
            {
                senders.push(s.to_owned());
            }
        }
        let mut profiles = Map::new();
        for sender in senders {
            let in_force = read
                .membership_positions(&UserId::from_trusted(sender.clone()), cand.room)?
                .into_iter()
                .rfind(|p| *p <= pos);
            let Some(p) = in_force else { continue };
            let Some(member) = read.event_at(cand.room, p)? else { continue };
            let content = parse(&member)?["content"].take();
            let mut profile = Map::new();
            for field in ["displayname", "avatar_url"] {
                if let Some(v) = content.get(field).filter(|v| v.is_string()) {
                    profile.insert(field.into(), v.clone());
                }
            }
            profiles.insert(sender, Value::Object(profile));
        }
        out["profile_info"] = Value::Object(profiles);
    }
    Ok(out)
}

/// `state`: the current state of each room in the page — for a room the
/// user has left, only the entries set before they left.
fn state(
    read: &ReadTxn,
    user_id: &UserId,
    rooms: &mut Rooms<'_>,
    page: &[Candidate],
) -> Result<Map<String, Value>, MatrixError> {
    let mut out = Map::new();
    for cand in page {
        let Some(view) = rooms.view(cand.room)? else { continue };
        if out.contains_key(&view.room_id) {
            continue;
        }
        let room_id = view.room_id.clone();
        let upto = match read.membership(user_id, cand.room)? {
            Some(m) if m.membership == Membership::Join => StreamPos(u64::MAX),
            Some(m) => m.stream,
            None => continue,
        };
        let mut events = Vec::new();
        for (t, k, s) in read.room_state(cand.room)? {
            if s > upto {
                continue;
            }
            if let Some(ev) = read.state_event(cand.room, &t, &k)? {
                events.push(parse(&ev)?);
            }
        }
        out.insert(room_id, Value::Array(events));
    }
    Ok(out)
}
