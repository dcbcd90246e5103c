//! Sync assembly (spec: client-server-api/#syncing): which rooms changed
//! since a token, their timelines (limited, with `prev_batch`), the state
//! delta that makes a client's state right (also after a gap), invites with
//! stripped state, and rooms left.
//!
//! Everything is a range scan over the one stream: `user_stream_to_room` for
//! membership changes, `room_stream_to_event` per joined room for new
//! events, `room_stream_to_state_key` for state deltas. An incremental sync
//! with nothing new costs one index lookup per joined room.

pub mod devices;
pub mod sliding;
pub mod typing;

use std::collections::{BTreeMap, HashSet};

use serde_json::{Map, Value, json};

use crate::error::MatrixError;
use crate::room::visibility::Visibility;
use crate::store::{Membership, ReadTxn, RoomShort, StoredEvent, StreamPos};
use typing::Typing;

/// The most to-device messages one response carries.
const TO_DEVICE_LIMIT: usize = 100;

/// What the filter and query ask for.
#[derive(Clone, Debug)]
pub struct SyncParams {
    pub since: Option<StreamPos>,
    /// The syncing device (for its to-device inbox and key counts).
    pub device_id: String,
    /// The typing serial the client last saw.
    pub since_typing: Option<u64>,
    pub full_state: bool,
    pub timeline_limit: usize,
    pub lazy_load_members: bool,
    /// MSC4222: answer `state_after` (the state at the end of the timeline)
    /// instead of `state` (the state at its start).
    pub use_state_after: bool,
}

/// A sync token: `s<stream position>_<typing serial>`. The typing part is
/// in memory and restarts from zero; a token from before a restart still
/// works (its stream position is persistent).
pub fn parse_since(token: &str) -> Option<(StreamPos, u64)> {
    let rest = token.strip_prefix('s')?;
    let (pos, typing) = match rest.split_once('_') {
        Some((p, t)) => (p.parse().ok()?, t.parse().ok()?),
        None => (rest.parse().ok()?, 0),
    };
    Some((StreamPos(pos), typing))
}

pub fn since_token(p: StreamPos, typing: u64) -> String {
    format!("s{}_{typing}", p.0)
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
    let mut v: Value = serde_json::from_slice(&e.json)
        .map_err(|err| MatrixError::internal("stored event", err))?;
    if drop_room_id && let Some(o) = v.as_object_mut() {
        o.remove("room_id");
    }
    Ok(v)
}

pub fn sender_of(v: &Value) -> Option<&str> {
    v.get("sender").and_then(Value::as_str)
}

/// Builds the response. Returns it and whether any room had something.
pub fn assemble(
    read: &ReadTxn,
    typing: &Typing,
    user_id: &str,
    params: &SyncParams,
    upto: StreamPos,
) -> Result<(Value, bool), MatrixError> {
    // To-device first: if the inbox holds more than one response carries,
    // the whole response stops at the last message sent, so the next
    // `since` acknowledges exactly what was delivered.
    let mut upto = upto;
    let inbox_from = params.since.unwrap_or_default();
    let mut inbox =
        read.to_device(user_id, &params.device_id, inbox_from, upto, TO_DEVICE_LIMIT + 1)?;
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
        Some(since) => devices::device_list_changes(read, user_id, since, upto)?,
        None => (Vec::new(), Vec::new()),
    };
    let otk_counts: Map<String, Value> = read
        .one_time_key_counts(user_id, &params.device_id)?
        .into_iter()
        .map(|(a, n)| (a, json!(n)))
        .collect();
    let fallback_types = read.unused_fallback_types(user_id, &params.device_id)?;
    let memberships = read.user_memberships(user_id)?;
    let changed: HashSet<RoomShort> = match params.since {
        Some(s) => read.membership_changes(user_id, s)?.into_iter().collect(),
        None => HashSet::new(),
    };
    let mut join = Map::new();
    let mut invite = Map::new();
    let mut leave = Map::new();
    let mut knock = Map::new();
    for m in memberships {
        if m.stream > upto {
            continue;
        }
        let Some(room_id) = read.room_id(m.room)? else { continue };
        let fresh = params.since.is_none() || changed.contains(&m.room) || params.full_state;
        match m.membership.as_str() {
            "join" => {
                if let Some(room) = joined_room(read, typing, user_id, &m, params, upto, fresh)? {
                    join.insert(room_id, room);
                }
            }
            "knock" if fresh => {
                let state = stripped_state(read, m.room, user_id)?;
                knock.insert(room_id, json!({ "knock_state": { "events": state } }));
            }
            "invite" if fresh => {
                invite.insert(
                    room_id,
                    json!({ "invite_state": { "events": stripped_state(read, m.room, user_id)? } }),
                );
            }
            "leave" | "ban" if params.since.is_some() && changed.contains(&m.room) => {
                let since = params.since.unwrap_or_default();
                let (events, limited) =
                    read.events_after(m.room, since, m.stream, params.timeline_limit)?;
                let timeline: Vec<Value> =
                    events.iter().map(|e| event_value(e, true)).collect::<Result<_, _>>()?;
                let prev = events.first().map(|e| e.stream).unwrap_or(m.stream);
                let state_field = if params.use_state_after { "state_after" } else { "state" };
                leave.insert(
                    room_id,
                    json!({
                        "timeline": { "events": timeline, "limited": limited, "prev_batch": pagination_token(prev) },
                        state_field: { "events": [] },
                        "account_data": { "events": [] },
                    }),
                );
            }
            _ => {}
        }
    }
    let mut global_data = Vec::new();
    for (room_id, ty) in read.account_data_changes(user_id, params.since)? {
        if room_id.is_empty()
            && let Some(bytes) = read.account_data(user_id, "", &ty)?
        {
            let content: Value = serde_json::from_slice(&bytes)
                .map_err(|e| MatrixError::internal("account data", e))?;
            global_data.push(json!({ "type": ty, "content": content }));
        }
    }
    if params.since.is_none() && !global_data.iter().any(|e| e["type"] == "m.push_rules") {
        // Clients read their push rules from account data; until a user
        // changes them, serve the defaults there.
        let rules = serde_json::to_value(crate::push::default_ruleset(user_id))
            .map_err(|e| MatrixError::internal("push rules", e))?;
        global_data.push(json!({ "type": "m.push_rules", "content": rules }));
    }
    let any = !join.is_empty()
        || !invite.is_empty()
        || !leave.is_empty()
        || !knock.is_empty()
        || !global_data.is_empty()
        || !to_device.is_empty()
        || !changed_devices.is_empty()
        || !left_devices.is_empty();
    let body = json!({
        "next_batch": since_token(upto, typing.serial()),
        "rooms": { "join": join, "invite": invite, "leave": leave, "knock": knock },
        "account_data": { "events": global_data },
        "presence": { "events": [] },
        "to_device": { "events": to_device },
        "device_lists": { "changed": changed_devices, "left": left_devices },
        "device_one_time_keys_count": otk_counts,
        "device_unused_fallback_key_types": fallback_types,
    });
    Ok((body, any))
}

#[allow(clippy::too_many_arguments)]
fn joined_room(
    read: &ReadTxn,
    typing: &Typing,
    user_id: &str,
    m: &Membership,
    params: &SyncParams,
    upto: StreamPos,
    fresh: bool,
) -> Result<Option<Value>, MatrixError> {
    let since = if fresh { StreamPos(0) } else { params.since.unwrap_or_default() };
    let (mut events, limited) = read.events_after(m.room, since, upto, params.timeline_limit)?;
    if fresh && restricted_history(read, m.room)? {
        // A newly joined room under `joined`/`invited` visibility: drop what
        // the user may not see (older events are already the client's).
        let vis = Visibility::load(read, user_id, m.room)?;
        events.retain(|e| vis.can_see(e));
    }
    let (ephemeral, room_data) = room_extras(read, typing, user_id, m, params, fresh)?;
    if events.is_empty() && !fresh && ephemeral.is_empty() && room_data.is_empty() {
        return Ok(None);
    }
    let mut timeline: Vec<Value> =
        events.iter().map(|e| event_value(e, true)).collect::<Result<_, _>>()?;
    for ev in &mut timeline {
        crate::room::relations::bundle(read, m.room, ev, user_id)?;
    }
    let first = events.first().map(|e| e.stream).unwrap_or(upto);
    // State: everything (fresh) or what changed in the gap before the
    // timeline (limited incremental), minus what the timeline carries.
    let in_timeline: HashSet<(String, String)> = timeline
        .iter()
        .filter_map(|e| {
            let k = e.get("state_key")?.as_str()?;
            Some((e.get("type")?.as_str()?.to_owned(), k.to_owned()))
        })
        .collect();
    let keys: Vec<(String, String)> = if fresh {
        read.room_state(m.room)?.into_iter().map(|(t, k, _)| (t, k)).collect()
    } else if params.use_state_after {
        // MSC4222: every state change in the window, the timeline's included.
        read.state_changes(m.room, since, upto)?
    } else if limited {
        read.state_changes(m.room, since, StreamPos(first.0.saturating_sub(1)))?
    } else {
        Vec::new()
    };
    let senders: HashSet<&str> = timeline.iter().filter_map(sender_of).collect();
    let mut state = Vec::new();
    for (t, k) in keys {
        if !params.use_state_after && in_timeline.contains(&(t.clone(), k.clone())) {
            continue;
        }
        if params.lazy_load_members
            && t == "m.room.member"
            && k != user_id
            && !senders.contains(k.as_str())
        {
            continue;
        }
        if let Some(ev) = read.state_event(m.room, &t, &k)? {
            // `state` is the state before the timeline; `state_after` the
            // state at its end (never past `upto`, which the timeline ends at).
            let wanted = if params.use_state_after {
                ev.stream <= upto
            } else {
                ev.stream < first || !fresh
            };
            if wanted {
                state.push(event_value(&ev, true)?);
            }
        }
    }
    let state_field = if params.use_state_after { "state_after" } else { "state" };
    let joined = read.members_with(m.room, "join")?;
    let invited = read.members_with(m.room, "invite")?;
    let unread = read.unread_counts(user_id, m.room, read_position(read, user_id, m.room)?)?;
    let heroes: Vec<&String> =
        joined.iter().chain(invited.iter()).filter(|u| *u != user_id).take(5).collect();
    Ok(Some(json!({
        "timeline": {
            "events": timeline,
            "limited": limited,
            "prev_batch": pagination_token(first),
        },
        state_field: { "events": state },
        "ephemeral": { "events": ephemeral },
        "account_data": { "events": room_data },
        "summary": {
            "m.heroes": heroes,
            "m.joined_member_count": joined.len(),
            "m.invited_member_count": invited.len(),
        },
        "unread_notifications": { "notification_count": unread.0, "highlight_count": unread.1 },
    })))
}

/// The stream position up to which `user` has read `room`: their newest
/// public or private read receipt.
pub fn read_position(
    read: &ReadTxn,
    user: &str,
    room: RoomShort,
) -> Result<StreamPos, MatrixError> {
    let mut best = StreamPos(0);
    for ty in ["m.read", "m.read.private"] {
        if let Some(id) = read.receipt_event(room, ty, user)?
            && let Some((r, p)) = read.event_position(&id)?
            && r == room
            && p > best
        {
            best = p;
        }
    }
    Ok(best)
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
/// since the token (all of it for a fresh room).
fn room_extras(
    read: &ReadTxn,
    typing: &Typing,
    user_id: &str,
    m: &Membership,
    params: &SyncParams,
    fresh: bool,
) -> Result<(Vec<Value>, Vec<Value>), MatrixError> {
    let mut ephemeral = Vec::new();
    let typing_since = if fresh { None } else { params.since_typing };
    if let Some(users) = typing.changed_since(m.room, typing_since) {
        ephemeral.push(json!({ "type": "m.typing", "content": { "user_ids": users } }));
    }
    let since = if fresh { None } else { params.since };
    let mut content: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for r in read.receipts(m.room, since)? {
        // Private receipts are shown to their owner only.
        if r.receipt_type == "m.read.private" && r.user_id != user_id {
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
    if !content.is_empty() {
        ephemeral.push(json!({ "type": "m.receipt", "content": content }));
    }
    let mut room_data = Vec::new();
    let Some(room_id) = read.room_id(m.room)? else { return Ok((ephemeral, room_data)) };
    for (r, ty) in read.account_data_changes(user_id, since)? {
        if r == room_id
            && let Some(bytes) = read.account_data(user_id, &r, &ty)?
        {
            let c: Value = serde_json::from_slice(&bytes)
                .map_err(|e| MatrixError::internal("account data", e))?;
            room_data.push(json!({ "type": ty, "content": c }));
        }
    }
    Ok((ephemeral, room_data))
}

/// Stripped state for an invite (spec: "Stripped state").
pub fn stripped_state(
    read: &ReadTxn,
    room: RoomShort,
    user_id: &str,
) -> Result<Vec<Value>, MatrixError> {
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
