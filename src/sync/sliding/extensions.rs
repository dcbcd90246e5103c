//! The extensions: to-device, e2ee (device lists, key counts), account
//! data, receipts and typing, the last three scoped by `lists` / `rooms`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde_json::{Map, Value, json};

use super::request::{RoomExtension, ToDeviceRequest};
use super::{Candidate, SyncInput};
use crate::error::MatrixError;
use crate::membership::Membership;
use crate::store::{RoomShort, StreamPos};
use crate::sync::devices;

/// The default and largest number of to-device messages per response.
const TO_DEVICE_LIMIT: u64 = 100;

/// The rooms an extension covers.
pub(super) struct Scope<'a> {
    pub(super) lists: &'a HashMap<&'a str, Vec<RoomShort>>,
    pub(super) subscribed: &'a [(String, RoomShort)],
}

impl Scope<'_> {
    pub(super) fn rooms(&self, ext: &RoomExtension) -> BTreeSet<RoomShort> {
        let mut out = BTreeSet::new();
        let all_lists = ext.lists.as_ref().is_none_or(|l| l.iter().any(|n| n == "*"));
        for (name, rooms) in self.lists {
            if all_lists || ext.lists.as_ref().is_some_and(|l| l.iter().any(|n| n == name)) {
                out.extend(rooms.iter().copied());
            }
        }
        let all_subs = ext.rooms.as_ref().is_none_or(|r| r.iter().any(|n| n == "*"));
        for (room_id, room) in self.subscribed {
            if all_subs || ext.rooms.as_ref().is_some_and(|r| r.contains(room_id)) {
                out.insert(*room);
            }
        }
        out
    }
}

pub(super) fn to_device(
    input: &SyncInput,
    req: &ToDeviceRequest,
) -> Result<(Value, usize), MatrixError> {
    let since =
        req.since.as_deref().and_then(|s| s.parse().ok()).map(StreamPos).unwrap_or_default();
    let limit = req.limit.unwrap_or(TO_DEVICE_LIMIT).clamp(1, TO_DEVICE_LIMIT) as usize;
    let mut inbox =
        input.read.to_device(input.user_id, input.device_id, since, input.upto, limit + 1)?;
    // More than one response carries: stop at the last one sent, so the
    // next `since` acknowledges exactly what was delivered.
    let next = if inbox.len() > limit {
        inbox.truncate(limit);
        inbox.last().map(|(p, _)| *p).unwrap_or(input.upto)
    } else {
        input.upto.max(since)
    };
    let events: Vec<Value> = inbox
        .iter()
        .map(|(_, b)| serde_json::from_slice(b).map_err(|e| MatrixError::internal("to-device", e)))
        .collect::<Result<_, _>>()?;
    let n = events.len();
    Ok((json!({ "next_batch": next.0.to_string(), "events": events }), n))
}

pub(super) fn e2ee(
    input: &SyncInput,
    since: Option<StreamPos>,
) -> Result<(Value, bool), MatrixError> {
    let read = input.read;
    let (changed, left) = match since {
        Some(s) => devices::device_list_changes(read, input.user_id, s, input.upto)?,
        None => (Vec::new(), Vec::new()),
    };
    let counts: Map<String, Value> = read
        .one_time_key_counts(input.user_id, input.device_id)?
        .into_iter()
        .map(|(a, n)| (a, json!(n)))
        .collect();
    let fallback = read.unused_fallback_types(input.user_id, input.device_id)?;
    let any = !changed.is_empty() || !left.is_empty();
    Ok((
        json!({
            "device_lists": { "changed": changed, "left": left },
            "device_one_time_keys_count": counts,
            "device_unused_fallback_key_types": fallback,
        }),
        any,
    ))
}

pub(super) fn account_data(
    input: &SyncInput,
    since: Option<StreamPos>,
    rooms: &BTreeSet<RoomShort>,
    by_room: &HashMap<RoomShort, &Candidate>,
    fresh: &HashMap<RoomShort, HashSet<String>>,
) -> Result<Value, MatrixError> {
    let read = input.read;
    let user = &input.user_id;
    let parse = |b: Vec<u8>| -> Result<Value, MatrixError> {
        serde_json::from_slice(&b).map_err(|e| MatrixError::internal("account data", e))
    };
    let wanted: HashMap<&str, RoomShort> =
        rooms.iter().filter_map(|r| by_room.get(r).map(|c| (c.room_id.as_str(), *r))).collect();
    let mut global = Vec::new();
    let mut per_room: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut seen: HashSet<(String, String)> = HashSet::new();
    let mut pairs = read.account_data_changes(user, since)?;
    if since.is_some() && rooms.iter().any(|r| fresh.contains_key(r)) {
        // A room new to the client gets all of its account data.
        for (r, t) in read.account_data_changes(user, None)? {
            if wanted.get(r.as_str()).is_some_and(|s| fresh.contains_key(s)) {
                pairs.push((r, t));
            }
        }
    }
    for (r, t) in pairs {
        if !seen.insert((r.clone(), t.clone())) {
            continue;
        }
        if !r.is_empty() && !wanted.contains_key(r.as_str()) {
            continue;
        }
        let Some(bytes) = read.account_data(user, &r, &t)? else { continue };
        let ev = json!({ "type": t, "content": parse(bytes)? });
        if r.is_empty() {
            global.push(ev);
        } else {
            per_room.entry(r).or_default().push(ev);
        }
    }
    if since.is_none() {
        crate::sync::add_default_push_rules(&mut global, input.user_id)?;
    }
    Ok(json!({ "global": global, "rooms": per_room }))
}

pub(super) fn receipts(
    input: &SyncInput,
    since: Option<StreamPos>,
    rooms: &BTreeSet<RoomShort>,
    by_room: &HashMap<RoomShort, &Candidate>,
    fresh: &HashMap<RoomShort, HashSet<String>>,
) -> Result<Value, MatrixError> {
    let read = input.read;
    let user = input.user_id.as_str();
    let mut out = Map::new();
    for room in rooms {
        let Some(c) = by_room.get(room) else { continue };
        if c.membership.membership != Membership::Join {
            continue;
        }
        // A room new to the client: the receipts on the events it is sent
        // and the user's own; otherwise what changed.
        let (list, only) = match fresh.get(room) {
            Some(ids) => (read.receipts(*room, None)?, Some(ids)),
            None => (read.receipts(*room, since)?, None),
        };
        let content = crate::sync::receipt_content(list, input.user_id, |r| {
            only.is_none_or(|ids| ids.contains(&r.event_id) || r.user_id == user)
        });
        if !content.is_empty() {
            out.insert(
                c.room_id.as_str().to_owned(),
                json!({ "type": "m.receipt", "content": content }),
            );
        }
    }
    Ok(json!({ "rooms": out }))
}

pub(super) fn typing(
    input: &SyncInput,
    since: Option<u64>,
    rooms: &BTreeSet<RoomShort>,
    by_room: &HashMap<RoomShort, &Candidate>,
    fresh: &HashMap<RoomShort, HashSet<String>>,
) -> Value {
    let mut out = Map::new();
    for room in rooms {
        let Some(c) = by_room.get(room) else { continue };
        if c.membership.membership != Membership::Join {
            continue;
        }
        let since = if fresh.contains_key(room) { None } else { since };
        if let Some(users) = input.typing.changed_since(*room, since) {
            out.insert(
                c.room_id.as_str().to_owned(),
                json!({ "type": "m.typing", "content": { "user_ids": users } }),
            );
        }
    }
    json!({ "rooms": out })
}
