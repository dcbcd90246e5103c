//! The rooms a user's lists can hold: which memberships are listed, the
//! `bump_stamp` that orders them, and the list filters (`is_dm`,
//! `is_invite`, `spaces`, room types, tags, encryption).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use serde::Deserialize;
use serde_json::Value;

use super::Candidate;
use super::connection::Bump;
use super::request::Filters;
use crate::error::MatrixError;
use crate::store::{Membership, ReadTxn, RoomShort, StoredEvent, StreamPos};
use crate::sync::{event_value, sender_of};

/// How far back to look for the newest event that bumps a room.
const BUMP_SCAN: usize = 100;

/// Event types whose arrival moves a room up the list (MSC4186
/// `bump_stamp`; the set Synapse and matrix-rust-sdk agree on).
const BUMP_TYPES: &[&str] = &[
    "m.room.create",
    "m.room.message",
    "m.room.encrypted",
    "m.sticker",
    "m.call.invite",
    "m.poll.start",
    "org.matrix.msc3381.poll.start",
    "m.beacon_info",
    "org.matrix.msc3672.beacon_info",
];

/// Whether a leave/ban was done to the user by someone else (a kick or a
/// ban), which keeps the room in the list so the user learns of it.
pub(super) fn removed_by_other(
    read: &ReadTxn,
    m: &Membership,
    user: &str,
) -> Result<bool, MatrixError> {
    let Some(ev) = read.event_at(m.room, m.stream)? else { return Ok(false) };
    let v = event_value(&ev, false)?;
    Ok(sender_of(&v).is_some_and(|s| s != user))
}

/// Room IDs in the user's `m.direct` account data.
pub(super) fn dm_rooms(read: &ReadTxn, user: &str) -> Result<HashSet<String>, MatrixError> {
    let mut out = HashSet::new();
    if let Some(bytes) = read.account_data(user, "", "m.direct")? {
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if let Some(map) = v.as_object() {
            for rooms in map.values() {
                for r in rooms.as_array().into_iter().flatten() {
                    if let Some(r) = r.as_str() {
                        out.insert(r.to_owned());
                    }
                }
            }
        }
    }
    Ok(out)
}

pub(super) fn event_type(e: &StoredEvent) -> Option<String> {
    #[derive(Deserialize)]
    struct TypeOnly {
        #[serde(rename = "type")]
        t: String,
    }
    serde_json::from_slice::<TypeOnly>(&e.json).ok().map(|t| t.t)
}

pub(super) fn is_bump(e: &StoredEvent) -> bool {
    event_type(e).is_some_and(|t| BUMP_TYPES.contains(&t.as_str()))
}

/// `bump_stamp`: the stream position of the newest event that bumps the
/// room, or of the user's own join if later (a room just joined belongs at
/// the top); for a room the user is not in, its membership change. Cached
/// per connection by the room's newest event, so an unchanged room costs
/// one lookup.
pub(super) fn bump_stamp(
    read: &ReadTxn,
    m: &Membership,
    cache: &mut HashMap<RoomShort, Bump>,
) -> Result<u64, MatrixError> {
    if m.membership != "join" {
        return Ok(m.stream.0);
    }
    let Some(latest) = read.latest_event(m.room)? else { return Ok(m.stream.0) };
    let found = match cache.get(&m.room).copied() {
        Some(b) if b.latest == latest.stream => return Ok(b.stamp.max(m.stream.0)),
        Some(b) if b.latest < latest.stream => {
            let (new, limited) = read.events_after(m.room, b.latest, latest.stream, BUMP_SCAN)?;
            match new.iter().rev().find(|e| is_bump(e)) {
                Some(e) => Some(e.stream.0),
                None if !limited => Some(b.stamp),
                None => newest_bump(read, m.room, latest.stream)?,
            }
        }
        _ => newest_bump(read, m.room, latest.stream)?,
    };
    let stamp = found.unwrap_or(0).max(m.stream.0);
    cache.insert(m.room, Bump { latest: latest.stream, stamp });
    Ok(stamp)
}

pub(super) fn newest_bump(
    read: &ReadTxn,
    room: RoomShort,
    latest: StreamPos,
) -> Result<Option<u64>, MatrixError> {
    let events = read.events_before(room, StreamPos(latest.0 + 1), BUMP_SCAN)?;
    Ok(events.iter().find(|e| is_bump(e)).map(|e| e.stream.0))
}

/// Rooms listed as `m.space.child` of the given spaces the user is joined
/// to (not recursing into subspaces, as the MSC says).
pub(super) fn space_children(
    read: &ReadTxn,
    user: &str,
    spaces: &[String],
) -> Result<HashSet<String>, MatrixError> {
    let mut out = HashSet::new();
    for space in spaces {
        let Some(record) = read.room(space)? else { continue };
        let room = RoomShort(record.short);
        if read.membership(user, room)?.is_none_or(|m| m.membership != "join") {
            continue;
        }
        for (t, k, pos) in read.room_state(room)? {
            if t != "m.space.child" {
                continue;
            }
            // A child event without `via` is a removed child.
            if let Some(ev) = read.event_at(room, pos)?
                && event_value(&ev, false)?["content"]["via"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty())
            {
                out.insert(k);
            }
        }
    }
    Ok(out)
}

/// Per-room facts list filters need, read once per request.
#[derive(Default)]
pub(super) struct Facts {
    pub(super) encrypted: HashMap<RoomShort, bool>,
    pub(super) room_type: HashMap<RoomShort, Option<String>>,
    pub(super) tags: HashMap<RoomShort, HashSet<String>>,
}

impl Facts {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn passes(
        &mut self,
        read: &ReadTxn,
        c: &Candidate,
        f: &Filters,
        direct: &HashSet<String>,
        children: Option<&HashSet<String>>,
        user: &str,
    ) -> Result<bool, MatrixError> {
        if let Some(dm) = f.is_dm
            && direct.contains(&c.room_id) != dm
        {
            return Ok(false);
        }
        if let Some(inv) = f.is_invite
            && (c.membership.membership == "invite") != inv
        {
            return Ok(false);
        }
        if let Some(children) = children
            && !children.contains(&c.room_id)
        {
            return Ok(false);
        }
        if let Some(want) = f.is_encrypted {
            let enc = match self.encrypted.get(&c.room) {
                Some(e) => *e,
                None => {
                    let e = read.state_event(c.room, "m.room.encryption", "")?.is_some();
                    self.encrypted.insert(c.room, e);
                    e
                }
            };
            if enc != want {
                return Ok(false);
            }
        }
        if f.room_types.is_some() || !f.not_room_types.is_empty() {
            if let Entry::Vacant(slot) = self.room_type.entry(c.room) {
                let t = match read.state_event(c.room, "m.room.create", "")? {
                    Some(ev) => {
                        event_value(&ev, false)?["content"]["type"].as_str().map(str::to_owned)
                    }
                    None => None,
                };
                slot.insert(t);
            }
            let t = self.room_type.get(&c.room).cloned().flatten();
            if f.not_room_types.contains(&t) {
                return Ok(false);
            }
            if let Some(types) = &f.room_types
                && !types.contains(&t)
            {
                return Ok(false);
            }
        }
        if f.tags.is_some() || !f.not_tags.is_empty() {
            if let Entry::Vacant(slot) = self.tags.entry(c.room) {
                let mut tags = HashSet::new();
                if let Some(bytes) = read.account_data(user, &c.room_id, "m.tag")? {
                    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                    if let Some(o) = v["tags"].as_object() {
                        tags.extend(o.keys().cloned());
                    }
                }
                slot.insert(tags);
            }
            let tags = self.tags.get(&c.room).cloned().unwrap_or_default();
            if f.not_tags.iter().any(|t| tags.contains(t)) {
                return Ok(false);
            }
            if let Some(want) = &f.tags
                && !want.iter().any(|t| tags.contains(t))
            {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
