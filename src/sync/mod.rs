//! Sync assembly (spec: client-server-api/#syncing): which rooms changed
//! since a token, their timelines (limited, with `prev_batch`), the state
//! delta that makes a client's state right (also after a gap), invites with
//! stripped state, and rooms left.
//!
//! Everything is a range scan over the one stream: `user_stream_to_room` for
//! membership changes, the timeline index `room_stream_to_unit` per joined room for new
//! events, `room_stream_to_state_key` for state deltas. An incremental sync
//! with nothing new costs one index lookup per joined room.

pub mod account_data;
pub mod devices;
pub mod filter;
pub mod lazy;
pub mod presence;
pub mod receipts;
pub mod sliding;
pub mod to_device;
pub mod typing;
pub mod unread;

use std::collections::{BTreeMap, HashSet};

use serde_json::{Map, Value, json};

use crate::error::MatrixError;
use crate::ids::{DeviceId, RoomId, UserId};
use crate::membership::Membership;
use crate::room::served::Viewer;
use crate::room::visibility::{Memberships, Visibility};
use crate::store::{MembershipRow, ReadTxn, Receipt, RoomShort, StoredEvent, StreamPos};
use filter::{Filter, RoomEventFilter};
use lazy::DeviceMembers;
use presence::Presence;
use typing::Typing;

/// The most to-device messages one response carries.
const TO_DEVICE_LIMIT: usize = 100;

/// What the filter and query ask for.
#[derive(Clone, Debug)]
pub struct SyncParams {
    pub since: Option<StreamPos>,
    /// The syncing device (for its to-device inbox and key counts).
    pub device_id: DeviceId,
    /// The typing serial the client last saw.
    pub since_typing: Option<u64>,
    /// The presence serial the client last saw.
    pub since_presence: Option<u64>,
    pub full_state: bool,
    pub filter: Filter,
    /// MSC4222: answer `state_after` (the state at the end of the timeline)
    /// instead of `state` (the state at its start).
    pub use_state_after: bool,
}

impl SyncParams {
    /// Timeline events per room: the filter's `limit`, 10 by default.
    pub fn timeline_limit(&self) -> usize {
        self.filter.room.timeline.events.limit.unwrap_or(10).min(MAX_TIMELINE)
    }
}

/// The most timeline events per room one response carries.
const MAX_TIMELINE: usize = 500;

/// The in-memory parts of a sync: typing, and presence when enabled.
pub struct Ephemeral<'a> {
    pub typing: &'a Typing,
    pub presence: Option<&'a Presence>,
    /// Now, in ms since the epoch (for `last_active_ago`).
    pub now_ms: u64,
}

/// A sync token's parts: `s<stream>_<typing>_<presence>`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Since {
    pub pos: StreamPos,
    pub typing: u64,
    pub presence: u64,
}

/// Parses a sync token. The typing and presence parts are in memory and
/// restart from zero; a token from before a restart still works (its
/// stream position is persistent). Older two-part tokens are accepted.
pub fn parse_token(token: &str) -> Option<Since> {
    let mut parts = token.strip_prefix('s')?.split('_');
    let pos = StreamPos(parts.next()?.parse().ok()?);
    let typing = parts.next().map(str::parse).transpose().ok()?.unwrap_or(0);
    let presence = parts.next().map(str::parse).transpose().ok()?.unwrap_or(0);
    if parts.next().is_some() {
        return None;
    }
    Some(Since { pos, typing, presence })
}

/// A sync token's stream position and typing serial.
pub fn parse_since(token: &str) -> Option<(StreamPos, u64)> {
    parse_token(token).map(|s| (s.pos, s.typing))
}

pub fn since_token(s: Since) -> String {
    format!("s{}_{}_{}", s.pos.0, s.typing, s.presence)
}

/// A pagination token for `/messages`: `t<stream>` = "before/after this
/// position". Sync tokens are accepted too.
pub fn parse_pagination(token: &str) -> Option<StreamPos> {
    if let Some(n) = token.strip_prefix('t') {
        return n.parse().ok().map(StreamPos);
    }
    parse_since(token).map(|(p, _)| StreamPos(p.0 + 1))
}

pub fn pagination_token(p: StreamPos) -> String {
    format!("t{}", p.0)
}

/// Parses stored client-format JSON for a sync response (which omits
/// `room_id`: the room is the key it sits under).
pub fn event_value(e: &StoredEvent, drop_room_id: bool) -> Result<Value, MatrixError> {
    event_value_for(e, drop_room_id, None)
}

/// [`event_value`] for `viewer`, who sees the transaction IDs of the
/// events that device sent.
pub fn event_value_for(
    e: &StoredEvent,
    drop_room_id: bool,
    viewer: Option<Viewer<'_>>,
) -> Result<Value, MatrixError> {
    let mut v = crate::room::served::parse(&e.json, viewer)?;
    if drop_room_id && let Some(o) = v.as_object_mut() {
        o.remove("room_id");
    }
    Ok(v)
}

/// Sets `unsigned.membership` on timeline events (`values`, parsed from
/// `events`) for `user_id`, whose current membership in the room is `m`.
/// Events after that change carry it as it is, so the user's membership
/// history is read only when the timeline reaches back before it (a room
/// newly joined or left), once per room.
pub fn set_memberships(
    read: &ReadTxn,
    user_id: &UserId,
    m: &MembershipRow,
    events: &[StoredEvent],
    values: &mut [Value],
) -> Result<(), MatrixError> {
    let oldest = events.iter().map(|e| e.stream).min();
    let history = Memberships::since(read, user_id, m.room, (m.membership, m.stream), oldest)?;
    for (e, v) in events.iter().zip(values) {
        crate::room::served::set_membership(v, history.at(e.stream));
    }
    Ok(())
}

pub fn sender_of(v: &Value) -> Option<&str> {
    v.get("sender").and_then(Value::as_str)
}

/// One sync being assembled.
struct Cx<'a> {
    read: &'a ReadTxn,
    eph: &'a Ephemeral<'a>,
    lazy: &'a mut DeviceMembers,
    user_id: &'a UserId,
    params: &'a SyncParams,
    upto: StreamPos,
    /// Users whose join into one of the user's rooms this response carries,
    /// or everyone in a room the user newly joined: their presence is new
    /// to the client even if it did not change.
    met: HashSet<UserId>,
}

/// Builds the response. Returns it and whether it carries anything.
pub fn assemble(
    read: &ReadTxn,
    eph: &Ephemeral,
    lazy: &mut DeviceMembers,
    user: &UserId,
    params: &SyncParams,
    upto: StreamPos,
) -> Result<(Value, bool), MatrixError> {
    // To-device first: if the inbox holds more than one response carries,
    // the whole response stops at the last message sent, so the next
    // `since` acknowledges exactly what was delivered.
    let mut upto = upto;
    let inbox_from = params.since.unwrap_or_default();
    let mut inbox =
        read.to_device(user, &params.device_id, inbox_from, upto, TO_DEVICE_LIMIT + 1)?;
    if inbox.len() > TO_DEVICE_LIMIT {
        inbox.truncate(TO_DEVICE_LIMIT);
        if let Some((last, _)) = inbox.last() {
            upto = *last;
        }
    }
    let to_device: Vec<Value> = inbox
        .iter()
        .map(|(_, b)| serde_json::from_slice(b).map_err(|e| MatrixError::internal("to-device", e)))
        .collect::<Result<_, _>>()?;
    let (changed_devices, left_devices) = match params.since {
        Some(since) => devices::device_list_changes(read, user, since, upto)?,
        None => (Vec::new(), Vec::new()),
    };
    let otk_counts: Map<String, Value> = read
        .one_time_key_counts(user, &params.device_id)?
        .into_iter()
        .map(|(a, n)| (a, json!(n)))
        .collect();
    let fallback_types = read.unused_fallback_types(user, &params.device_id)?;
    if params.since.is_none() {
        // An initial sync: the device starts with no members.
        lazy.clear();
    }
    let mut cx = Cx { read, eph, lazy, user_id: user, params, upto, met: HashSet::new() };
    let memberships = read.user_memberships(user)?;
    let changed: HashSet<RoomShort> = match params.since {
        Some(s) => read.membership_changes(user, s)?.into_iter().collect(),
        None => HashSet::new(),
    };
    let room_filter = &params.filter.room;
    let mut join = Map::new();
    let mut invite = Map::new();
    let mut leave = Map::new();
    let mut knock = Map::new();
    for m in &memberships {
        if m.stream > upto {
            continue;
        }
        let Some(room_id) = read.room_id(m.room)? else { continue };
        let room_id = RoomId::from_trusted(room_id);
        if !room_filter.allows_room(&room_id) {
            continue;
        }
        let fresh = params.since.is_none() || changed.contains(&m.room) || params.full_state;
        match m.membership {
            Membership::Join => {
                if let Some(room) = joined_room(&mut cx, m, &room_id, fresh)? {
                    join.insert(room_id.into_string(), room);
                }
            }
            Membership::Knock if fresh => {
                let state = stripped_state(read, m.room, user)?;
                knock.insert(room_id.into_string(), json!({ "knock_state": { "events": state } }));
            }
            Membership::Invite if fresh => {
                invite.insert(
                    room_id.into_string(),
                    json!({ "invite_state": { "events": stripped_state(read, m.room, user)? } }),
                );
            }
            Membership::Leave | Membership::Ban
                if ((params.since.is_some() && changed.contains(&m.room))
                    || (room_filter.include_leave
                        && (params.since.is_none() || params.full_state)))
                    && !read.is_forgotten(user, m)? =>
            {
                let left = left_room(&mut cx, m, &room_id)?;
                leave.insert(room_id.into_string(), left);
            }
            _ => {}
        }
    }
    let global_data = global_account_data(read, user, params)?;
    let presence = match eph.presence {
        Some(p) => presence_events(read, p, user, &memberships, &cx.met, params, eph.now_ms)?,
        None => Vec::new(),
    };
    let any = !join.is_empty()
        || !invite.is_empty()
        || !leave.is_empty()
        || !knock.is_empty()
        || !global_data.is_empty()
        || !presence.is_empty()
        || !to_device.is_empty()
        || !changed_devices.is_empty()
        || !left_devices.is_empty();
    let next = Since {
        pos: upto,
        typing: eph.typing.serial(),
        presence: eph.presence.map_or(0, Presence::serial),
    };
    let body = json!({
        "next_batch": since_token(next),
        "rooms": { "join": join, "invite": invite, "leave": leave, "knock": knock },
        "account_data": { "events": global_data },
        "presence": { "events": presence },
        "to_device": { "events": to_device },
        "device_lists": { "changed": changed_devices, "left": left_devices },
        "device_one_time_keys_count": otk_counts,
        "device_unused_fallback_key_types": fallback_types,
    });
    Ok((body, any))
}

/// The newest events of a room with `since < stream <= upto` that pass
/// `filter`, at most `limit`, oldest first, each with its parsed client
/// form (without `room_id`); and whether some were left out.
pub fn timeline_events(
    read: &ReadTxn,
    room: RoomShort,
    since: StreamPos,
    upto: StreamPos,
    filter: &RoomEventFilter,
    limit: usize,
    viewer: Viewer<'_>,
) -> Result<(Vec<(StoredEvent, Value)>, bool), MatrixError> {
    if filter.is_open() {
        let (events, limited) = read.events_after(room, since, upto, limit)?;
        let parsed = events
            .into_iter()
            .map(|e| event_value_for(&e, true, Some(viewer)).map(|v| (e, v)))
            .collect::<Result<_, _>>()?;
        return Ok((parsed, limited));
    }
    let mut out = Vec::new();
    let mut before = StreamPos(upto.0.saturating_add(1));
    let mut scanned = 0;
    loop {
        let batch = read.events_before(room, before, 64)?;
        if batch.is_empty() {
            break;
        }
        for e in batch {
            if e.stream <= since {
                out.reverse();
                return Ok((out, false));
            }
            if out.len() == limit || scanned == FILTER_SCAN_LIMIT {
                out.reverse();
                return Ok((out, true));
            }
            scanned += 1;
            before = e.stream;
            let v = event_value_for(&e, true, Some(viewer))?;
            if filter.allows_event(&v) {
                out.push((e, v));
            }
        }
    }
    out.reverse();
    Ok((out, false))
}

/// The most events a filtered timeline looks at before calling itself
/// limited (a filter matching nothing must not scan a whole history).
const FILTER_SCAN_LIMIT: usize = 5_000;

fn joined_room(
    cx: &mut Cx,
    m: &MembershipRow,
    room_id: &RoomId,
    fresh: bool,
) -> Result<Option<Value>, MatrixError> {
    let (read, params, upto, user) = (cx.read, cx.params, cx.upto, cx.user_id);
    let user_id = user.as_str();
    let rf = &params.filter.room;
    let since = if fresh { StreamPos(0) } else { params.since.unwrap_or_default() };
    let (mut pairs, limited) = if rf.timeline.allows_room(room_id) {
        timeline_events(
            read,
            m.room,
            since,
            upto,
            &rf.timeline,
            params.timeline_limit(),
            Viewer { user, device: &params.device_id },
        )?
    } else {
        (Vec::new(), false)
    };
    if fresh && restricted_history(read, m.room)? {
        // A newly joined room under `joined`/`invited` visibility: drop what
        // the user may not see (older events are already the client's).
        let vis = Visibility::load(read, user, m.room)?;
        pairs.retain(|(e, _)| vis.can_see(e));
    }
    let (ephemeral, room_data) = room_extras(cx, m, room_id, fresh)?;
    if pairs.is_empty() && !fresh && ephemeral.is_empty() && room_data.is_empty() {
        return Ok(None);
    }
    let (events, mut timeline): (Vec<StoredEvent>, Vec<Value>) = pairs.into_iter().unzip();
    set_memberships(read, user, m, &events, &mut timeline)?;
    for ev in &mut timeline {
        crate::room::relations::bundle(read, m.room, ev, user)?;
    }
    let first = events.first().map(|e| e.stream).unwrap_or(upto);
    let state = if rf.state.allows_room(room_id) {
        room_state(cx, m.room, &events, &timeline, fresh, limited, first)?
    } else {
        Vec::new()
    };
    let state_field = if params.use_state_after { "state_after" } else { "state" };
    let joined = read.members_with(m.room, Membership::Join)?;
    let invited = read.members_with(m.room, Membership::Invite)?;
    if params.since.is_some() {
        // Who newly shares this room with the user (for presence).
        if fresh {
            // Member lists and state keys come from the store: trusted.
            cx.met.extend(joined.iter().cloned().map(UserId::from_trusted));
        } else {
            let joins = timeline.iter().chain(&state).filter(|e| {
                e["type"] == "m.room.member"
                    && Membership::of_content(&e["content"]) == Some(Membership::Join)
            });
            let users = joins.filter_map(|e| e["state_key"].as_str());
            cx.met.extend(users.map(|u| UserId::from_trusted(u.to_owned())));
        }
    }
    let heroes: Vec<&String> =
        joined.iter().chain(invited.iter()).filter(|u| *u != user_id).take(5).collect();
    let project =
        |v: Vec<Value>| -> Vec<Value> { v.into_iter().map(|e| params.filter.project(e)).collect() };
    let mut room = json!({
        "timeline": {
            "events": project(timeline),
            "limited": limited,
            "prev_batch": pagination_token(first),
        },
        state_field: { "events": project(state) },
        "ephemeral": { "events": ephemeral },
        "account_data": { "events": room_data },
        "summary": {
            "m.heroes": heroes,
            "m.joined_member_count": joined.len(),
            "m.invited_member_count": invited.len(),
        },
    });
    let unread = unread::counts(read, user, m.room)?;
    let counts = |(n, h): unread::Counts| json!({ "notification_count": n, "highlight_count": h });
    if rf.timeline.unread_thread_notifications {
        room["unread_notifications"] = counts(unread.main);
        let threads: Map<String, Value> =
            unread.threads.iter().map(|(root, c)| (root.clone(), counts(*c))).collect();
        room["unread_thread_notifications"] = Value::Object(threads);
    } else {
        room["unread_notifications"] = counts(unread.total());
    }
    Ok(Some(room))
}

/// The state part of a joined room: everything (fresh) or what changed in
/// the gap before the timeline (limited incremental), minus what the
/// timeline carries; with lazy loading, members only for the timeline's
/// senders, and on incremental syncs only those the device lacks.
fn room_state(
    cx: &mut Cx,
    room: RoomShort,
    events: &[StoredEvent],
    timeline: &[Value],
    fresh: bool,
    limited: bool,
    first: StreamPos,
) -> Result<Vec<Value>, MatrixError> {
    let (read, params, upto, user_id) = (cx.read, cx.params, cx.upto, cx.user_id.as_str());
    let sf = &params.filter.room.state;
    let since = params.since.unwrap_or_default();
    let after = params.use_state_after;
    let in_timeline: HashSet<(&str, &str)> = timeline
        .iter()
        .filter_map(|e| Some((e.get("type")?.as_str()?, e.get("state_key")?.as_str()?)))
        .collect();
    let keys: Vec<(String, String)> = if fresh {
        read.room_state(room)?.into_iter().map(|(t, k, _)| (t, k)).collect()
    } else if after {
        // MSC4222: every state change in the window, the timeline's included.
        read.state_changes(room, since, upto)?
    } else if limited {
        read.state_changes(room, since, StreamPos(first.0.saturating_sub(1)))?
    } else {
        Vec::new()
    };
    let lazy = sf.lazy_load_members;
    let senders: HashSet<&str> = timeline.iter().filter_map(sender_of).collect();
    let mut members_sent: HashSet<String> = HashSet::new();
    let mut state = Vec::new();
    for (t, k) in keys {
        if !after && in_timeline.contains(&(t.as_str(), k.as_str())) {
            continue;
        }
        let member = t == "m.room.member";
        if lazy && member && k != user_id && !senders.contains(k.as_str()) {
            continue;
        }
        if !sf.events.allows_type(&t) {
            continue;
        }
        let Some(ev) = read.state_event(room, &t, &k)? else { continue };
        // `state` is the state before the timeline; `state_after` the
        // state at its end (never past `upto`, which the timeline ends at).
        let wanted = if after { ev.stream <= upto } else { ev.stream < first || !fresh };
        let v = event_value(&ev, true)?;
        if wanted && sf.allows_event(&v) {
            if member {
                members_sent.insert(k.clone());
                cx.lazy.sent(room, &k, ev.stream, upto);
            }
            state.push(v);
        }
    }
    if !lazy {
        return Ok(state);
    }
    // Timeline member events reach the device too.
    for (e, v) in events.iter().zip(timeline) {
        if v["type"] == "m.room.member"
            && let Some(k) = v["state_key"].as_str()
        {
            members_sent.insert(k.to_owned());
            cx.lazy.sent(room, k, e.stream, upto);
        }
    }
    if fresh {
        return Ok(state);
    }
    // Incremental: the senders' member events the device does not have.
    let mut wanted: Vec<&str> = senders.into_iter().collect();
    wanted.sort_unstable();
    for s in wanted {
        if members_sent.contains(s) || !sf.events.allows_type("m.room.member") {
            continue;
        }
        let Some(ev) = read.state_event(room, "m.room.member", s)? else { continue };
        if ev.stream > upto
            || (!sf.include_redundant_members && cx.lazy.knows(room, s, ev.stream, since))
        {
            continue;
        }
        let v = event_value(&ev, true)?;
        if sf.allows_event(&v) {
            cx.lazy.sent(room, s, ev.stream, upto);
            state.push(v);
        }
    }
    Ok(state)
}

/// A room the user left (or was kicked or banned from): the timeline up to
/// the leave.
fn left_room(cx: &mut Cx, m: &MembershipRow, room_id: &RoomId) -> Result<Value, MatrixError> {
    let (read, params) = (cx.read, cx.params);
    let rf = &params.filter.room;
    let since = params.since.unwrap_or_default();
    let (pairs, limited) = if rf.timeline.allows_room(room_id) {
        timeline_events(
            read,
            m.room,
            since,
            m.stream,
            &rf.timeline,
            params.timeline_limit(),
            Viewer { user: cx.user_id, device: &params.device_id },
        )?
    } else {
        (Vec::new(), false)
    };
    let prev = pairs.first().map(|(e, _)| e.stream).unwrap_or(m.stream);
    let (events, mut timeline): (Vec<StoredEvent>, Vec<Value>) = pairs.into_iter().unzip();
    set_memberships(read, cx.user_id, m, &events, &mut timeline)?;
    let timeline: Vec<Value> = timeline.into_iter().map(|v| params.filter.project(v)).collect();
    let state_field = if params.use_state_after { "state_after" } else { "state" };
    Ok(json!({
        "timeline": { "events": timeline, "limited": limited, "prev_batch": pagination_token(prev) },
        state_field: { "events": [] },
        "account_data": { "events": [] },
    }))
}

/// Global account data changed since the token, filtered.
fn global_account_data(
    read: &ReadTxn,
    user: &UserId,
    params: &SyncParams,
) -> Result<Vec<Value>, MatrixError> {
    let f = &params.filter.account_data;
    let mut out = Vec::new();
    for (room_id, ty) in read.account_data_changes(user, params.since)? {
        if room_id.is_empty()
            && f.allows_type(&ty)
            && let Some(bytes) = read.account_data(user, "", &ty)?
        {
            let content: Value = serde_json::from_slice(&bytes)
                .map_err(|e| MatrixError::internal("account data", e))?;
            out.push(json!({ "type": ty, "content": content }));
        }
    }
    if params.since.is_none() && f.allows_type("m.push_rules") {
        add_default_push_rules(&mut out, user)?;
    }
    out.truncate(f.limit.unwrap_or(usize::MAX));
    Ok(out)
}

/// Clients read their push rules from account data: until a user changes
/// them, an initial sync serves the defaults there.
pub fn add_default_push_rules(global: &mut Vec<Value>, user: &UserId) -> Result<(), MatrixError> {
    if !global.iter().any(|e| e["type"] == "m.push_rules") {
        let rules = serde_json::to_value(crate::push::default_ruleset(user))
            .map_err(|e| MatrixError::internal("push rules", e))?;
        global.push(json!({ "type": "m.push_rules", "content": rules }));
    }
    Ok(())
}

/// `m.presence` events of the user and of everyone sharing a joined room
/// with them that changed since the token.
fn presence_events(
    read: &ReadTxn,
    presence: &Presence,
    user_id: &UserId,
    memberships: &[MembershipRow],
    newly: &HashSet<UserId>,
    params: &SyncParams,
    now_ms: u64,
) -> Result<Vec<Value>, MatrixError> {
    let f = &params.filter.presence;
    let since = params.since.and(params.since_presence);
    let mine: HashSet<RoomShort> =
        memberships.iter().filter(|m| m.membership == Membership::Join).map(|m| m.room).collect();
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let changed = presence.changed_since(since);
    let joined = newly.iter().filter_map(|u| presence.get(u).map(|e| (u, e)));
    for (user, entry) in changed.chain(joined) {
        if !f.allows("m.presence", user.as_str()) || !seen.insert(user) {
            continue;
        }
        if user != user_id
            && !read
                .user_memberships(user)?
                .iter()
                .any(|m| m.membership == Membership::Join && mine.contains(&m.room))
        {
            continue;
        }
        out.push(json!({ "type": "m.presence", "sender": user, "content": entry.content(now_ms) }));
    }
    out.sort_by(|a, b| a["sender"].as_str().cmp(&b["sender"].as_str()));
    out.truncate(f.limit.unwrap_or(usize::MAX));
    Ok(out)
}

/// The stream position up to which `user` has read the main timeline of
/// `room` (see [`unread::read_position`]).
pub fn read_position(
    read: &ReadTxn,
    user: &UserId,
    room: RoomShort,
) -> Result<StreamPos, MatrixError> {
    unread::read_position(read, user, room)
}

/// Whether the room's current history visibility hides history from new
/// members (`joined` or `invited`).
pub fn restricted_history(read: &ReadTxn, room: RoomShort) -> Result<bool, MatrixError> {
    Ok(match read.state_event(room, "m.room.history_visibility", "")? {
        Some(ev) => {
            let v = event_value(&ev, false)?;
            matches!(v["content"]["history_visibility"].as_str(), Some("joined" | "invited"))
        }
        None => false,
    })
}

/// Typing, receipts and room account data of a joined room that changed
/// since the token (all of it for a fresh room), filtered.
fn room_extras(
    cx: &Cx,
    m: &MembershipRow,
    room_id: &RoomId,
    fresh: bool,
) -> Result<(Vec<Value>, Vec<Value>), MatrixError> {
    let (read, params, user) = (cx.read, cx.params, cx.user_id);
    let rf = &params.filter.room;
    let mut ephemeral = Vec::new();
    let since = if fresh { None } else { params.since };
    let ef = &rf.ephemeral;
    if ef.allows_room(room_id) {
        let typing_since = if fresh { None } else { params.since_typing };
        if ef.events.allows_type("m.typing")
            && let Some(users) = cx.eph.typing.changed_since(m.room, typing_since)
        {
            ephemeral.push(json!({ "type": "m.typing", "content": { "user_ids": users } }));
        }
        if ef.events.allows_type("m.receipt") {
            let content = receipts(read, m.room, user, since)?;
            if !content.is_empty() {
                ephemeral.push(json!({ "type": "m.receipt", "content": content }));
            }
        }
    }
    let mut room_data = Vec::new();
    let af = &rf.account_data;
    if !af.allows_room(room_id) {
        return Ok((ephemeral, room_data));
    }
    for (r, ty) in read.account_data_changes(user, since)? {
        if r == room_id.as_str()
            && af.events.allows_type(&ty)
            && let Some(bytes) = read.account_data(user, &r, &ty)?
        {
            let c: Value = serde_json::from_slice(&bytes)
                .map_err(|e| MatrixError::internal("account data", e))?;
            room_data.push(json!({ "type": ty, "content": c }));
        }
    }
    room_data.truncate(af.events.limit.unwrap_or(usize::MAX));
    Ok((ephemeral, room_data))
}

/// The `m.receipt` content of receipts changed since `since` (all when
/// `None`).
fn receipts(
    read: &ReadTxn,
    room: RoomShort,
    user_id: &UserId,
    since: Option<StreamPos>,
) -> Result<BTreeMap<String, Map<String, Value>>, MatrixError> {
    Ok(receipt_content(read.receipts(room, since)?, user_id, |_| true))
}

/// The `m.receipt` content of the receipts `keep` accepts, as `user_id`
/// sees them: private receipts are shown to their owner only.
pub fn receipt_content(
    receipts: Vec<Receipt>,
    user_id: &UserId,
    keep: impl Fn(&Receipt) -> bool,
) -> BTreeMap<String, Map<String, Value>> {
    let mut content: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for r in receipts {
        if (r.receipt_type == "m.read.private" && r.user_id != user_id.as_str()) || !keep(&r) {
            continue;
        }
        let mut entry = json!({ "ts": r.ts });
        if !r.thread_id.is_empty() {
            entry["thread_id"] = json!(r.thread_id);
        }
        let by_type = content.entry(r.event_id).or_default();
        let users = by_type.entry(r.receipt_type).or_insert_with(|| json!({}));
        users[r.user_id.as_str()] = entry;
    }
    content
}

/// Stripped state for an invite (spec: "Stripped state").
pub fn stripped_state(
    read: &ReadTxn,
    room: RoomShort,
    user: &UserId,
) -> Result<Vec<Value>, MatrixError> {
    let user_id = user.as_str();
    let mut out = Vec::new();
    let keys = [
        ("m.room.create", ""),
        ("m.room.join_rules", ""),
        ("m.room.name", ""),
        ("m.room.avatar", ""),
        ("m.room.topic", ""),
        ("m.room.canonical_alias", ""),
        ("m.room.encryption", ""),
        ("m.room.member", user_id),
    ];
    for (t, k) in keys {
        if let Some(ev) = read.state_event(room, t, k)? {
            let v = event_value(&ev, true)?;
            out.push(json!({
                "type": v["type"], "state_key": v["state_key"], "content": v["content"], "sender": v["sender"],
            }));
        }
    }
    // The inviter's own member event, so clients can show who invited.
    if let Some(ev) = read.state_event(room, "m.room.member", user_id)? {
        let v = event_value(&ev, true)?;
        if let Some(inviter) = sender_of(&v)
            && inviter != user_id
            && let Some(iev) = read.state_event(room, "m.room.member", inviter)?
        {
            let iv = event_value(&iev, true)?;
            out.push(json!({ "type": iv["type"], "state_key": iv["state_key"], "content": iv["content"], "sender": iv["sender"] }));
        }
    }
    Ok(out)
}
