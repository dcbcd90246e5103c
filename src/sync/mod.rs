//! Sync assembly (spec: client-server-api/#syncing): which rooms changed
//! since a token, their timelines (limited, with `prev_batch`), the state
//! delta that makes a client's state right (also after a gap), invites with
//! stripped state, and rooms left.
//!
//! Everything is a range scan over the one stream: `user_stream_to_room` for
//! membership changes, `room_stream_to_event` per joined room for new
//! events, `room_stream_to_state_key` for state deltas. An incremental sync
//! with nothing new costs one index lookup per joined room.

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use crate::error::MatrixError;
use crate::store::{Membership, ReadTxn, RoomShort, StoredEvent, StreamPos};

/// What the filter and query ask for.
#[derive(Clone, Debug)]
pub struct SyncParams {
    pub since: Option<StreamPos>,
    pub full_state: bool,
    pub timeline_limit: usize,
    pub lazy_load_members: bool,
}

/// A sync token: `s<stream position>`.
pub fn parse_since(token: &str) -> Option<StreamPos> {
    token.strip_prefix('s').and_then(|n| n.parse().ok()).map(StreamPos)
}

pub fn since_token(p: StreamPos) -> String {
    format!("s{}", p.0)
}

/// A pagination token for `/messages`: `t<stream>` = "before/after this
/// position". Sync tokens are accepted too.
pub fn parse_pagination(token: &str) -> Option<StreamPos> {
    token
        .strip_prefix('t')
        .or_else(|| token.strip_prefix('s'))
        .and_then(|n| n.parse().ok())
        .map(StreamPos)
}

pub fn pagination_token(p: StreamPos) -> String {
    format!("t{}", p.0)
}

/// Parses stored client-format JSON for a sync response (which omits
/// `room_id`: the room is the key it sits under).
fn event_value(e: &StoredEvent, drop_room_id: bool) -> Result<Value, MatrixError> {
    let mut v: Value = serde_json::from_slice(&e.json)
        .map_err(|err| MatrixError::internal("stored event", err))?;
    if drop_room_id && let Some(o) = v.as_object_mut() {
        o.remove("room_id");
    }
    Ok(v)
}

fn sender_of(v: &Value) -> Option<&str> {
    v.get("sender").and_then(Value::as_str)
}

/// Builds the response. Returns it and whether any room had something.
pub fn assemble(
    read: &ReadTxn,
    user_id: &str,
    params: &SyncParams,
    upto: StreamPos,
) -> Result<(Value, bool), MatrixError> {
    let memberships = read.user_memberships(user_id)?;
    let changed: HashSet<RoomShort> = match params.since {
        Some(s) => read.membership_changes(user_id, s)?.into_iter().collect(),
        None => HashSet::new(),
    };
    let mut join = Map::new();
    let mut invite = Map::new();
    let mut leave = Map::new();
    for m in memberships {
        if m.stream > upto {
            continue;
        }
        let Some(room_id) = read.room_id(m.room)? else { continue };
        let fresh = params.since.is_none() || changed.contains(&m.room) || params.full_state;
        match m.membership.as_str() {
            "join" => {
                if let Some(room) = joined_room(read, user_id, &m, params, upto, fresh)? {
                    join.insert(room_id, room);
                }
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
                leave.insert(
                    room_id,
                    json!({
                        "timeline": { "events": timeline, "limited": limited, "prev_batch": pagination_token(prev) },
                        "state": { "events": [] },
                        "account_data": { "events": [] },
                    }),
                );
            }
            _ => {}
        }
    }
    let any = !join.is_empty() || !invite.is_empty() || !leave.is_empty();
    let body = json!({
        "next_batch": since_token(upto),
        "rooms": { "join": join, "invite": invite, "leave": leave, "knock": {} },
        "account_data": { "events": [] },
        "presence": { "events": [] },
        "to_device": { "events": [] },
        "device_lists": { "changed": [], "left": [] },
        "device_one_time_keys_count": {},
    });
    Ok((body, any))
}

fn joined_room(
    read: &ReadTxn,
    user_id: &str,
    m: &Membership,
    params: &SyncParams,
    upto: StreamPos,
    fresh: bool,
) -> Result<Option<Value>, MatrixError> {
    let since = if fresh { StreamPos(0) } else { params.since.unwrap_or_default() };
    let (events, limited) = read.events_after(m.room, since, upto, params.timeline_limit)?;
    if events.is_empty() && !fresh {
        return Ok(None);
    }
    let timeline: Vec<Value> =
        events.iter().map(|e| event_value(e, true)).collect::<Result<_, _>>()?;
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
    } else if limited {
        read.state_changes(m.room, since, StreamPos(first.0.saturating_sub(1)))?
    } else {
        Vec::new()
    };
    let senders: HashSet<&str> = timeline.iter().filter_map(sender_of).collect();
    let mut state = Vec::new();
    for (t, k) in keys {
        if in_timeline.contains(&(t.clone(), k.clone())) {
            continue;
        }
        if params.lazy_load_members
            && t == "m.room.member"
            && k != user_id
            && !senders.contains(k.as_str())
        {
            continue;
        }
        if let Some(ev) = read.state_event(m.room, &t, &k)?
            && (ev.stream < first || !fresh)
        {
            state.push(event_value(&ev, true)?);
        }
    }
    let joined = read.members_with(m.room, "join")?;
    let invited = read.members_with(m.room, "invite")?;
    let heroes: Vec<&String> =
        joined.iter().chain(invited.iter()).filter(|u| *u != user_id).take(5).collect();
    Ok(Some(json!({
        "timeline": {
            "events": timeline,
            "limited": limited,
            "prev_batch": pagination_token(first),
        },
        "state": { "events": state },
        "ephemeral": { "events": [] },
        "account_data": { "events": [] },
        "summary": {
            "m.heroes": heroes,
            "m.joined_member_count": joined.len(),
            "m.invited_member_count": invited.len(),
        },
        "unread_notifications": { "notification_count": 0, "highlight_count": 0 },
    })))
}

/// Stripped state for an invite (spec: "Stripped state").
fn stripped_state(
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
