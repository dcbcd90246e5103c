//! The rooms a user's lists can hold: which memberships are listed, the
//! `bump_stamp` that orders them, and the list filters (`is_dm`,
//! `is_invite`, `spaces`, room types, tags, encryption).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use serde::Deserialize;
use serde_json::Value;

use super::Candidate;
use super::request::Filters;
use crate::error::MatrixError;
use crate::ids::UserId;
use crate::membership::Membership;
use crate::store::{
    MembershipRow, ReadTxn, RoomShort, StoreError, StoredEvent, StreamPos, WriteCtx,
};
use crate::sync::{event_value, sender_of};

/// The largest batch of events a bump scan reads at once (bounded memory).
const SCAN_BATCH_MAX: usize = 512;

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
    m: &MembershipRow,
    user: &UserId,
) -> Result<bool, MatrixError> {
    let Some(ev) = read.event_at(m.room, m.stream)? else { return Ok(false) };
    let v = event_value(&ev, false)?;
    Ok(sender_of(&v).is_some_and(|s| s != user.as_str()))
}

/// Room IDs in the user's `m.direct` account data.
pub(super) fn dm_rooms(read: &ReadTxn, user: &UserId) -> Result<HashSet<String>, MatrixError> {
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

fn event_type(e: &StoredEvent) -> Option<String> {
    #[derive(Deserialize)]
    struct TypeOnly {
        #[serde(rename = "type")]
        t: String,
    }
    serde_json::from_slice::<TypeOnly>(&e.json).ok().map(|t| t.t)
}

/// Whether an event of this type moves its room up the list.
fn bumps(event_type: &str) -> bool {
    BUMP_TYPES.contains(&event_type)
}

/// Keeps the room's bump index current: called by the writer for every new
/// event, in the transaction that stores it.
pub fn record_bump(
    ctx: &mut WriteCtx<'_>,
    room: RoomShort,
    stream: StreamPos,
    event_type: &str,
) -> Result<(), StoreError> {
    if bumps(event_type) {
        ctx.put_latest_bump(room, stream)?;
    }
    Ok(())
}

/// `bump_stamp`: the stream position of the newest event that bumps the
/// room, or of the user's own join if later (a room just joined belongs at
/// the top); for a room the user is not in, its membership change.
///
/// Exact and one lookup per room: the writer keeps the newest bumping
/// event per room (`record_bump`). Rooms whose events predate that index
/// are scanned back to their newest bumping event once per request; the
/// scan always ends, at the latest at `m.room.create`, which bumps.
pub(super) fn bump_stamp(read: &ReadTxn, m: &MembershipRow) -> Result<u64, MatrixError> {
    if m.membership != Membership::Join {
        return Ok(m.stream.0);
    }
    let newest = match read.latest_bump(m.room)? {
        Some(p) => Some(p),
        None => scan_for_bump(read, m.room)?,
    };
    Ok(newest.map_or(0, |p| p.0).max(m.stream.0))
}

/// The newest bumping event of a room, by reading its history backwards in
/// growing batches (most rooms end in a message: the first batch finds it).
fn scan_for_bump(read: &ReadTxn, room: RoomShort) -> Result<Option<StreamPos>, MatrixError> {
    let mut before = StreamPos(u64::MAX);
    let mut batch = 8;
    loop {
        let events = read.events_before(room, before, batch)?;
        if let Some(e) = events.iter().find(|e| event_type(e).is_some_and(|t| bumps(&t))) {
            return Ok(Some(e.stream));
        }
        match events.last() {
            Some(oldest) if events.len() == batch => before = oldest.stream,
            _ => return Ok(None),
        }
        batch = (batch * 4).min(SCAN_BATCH_MAX);
    }
}

/// Rooms listed as `m.space.child` of the given spaces the user is joined
/// to (not recursing into subspaces, as the MSC says).
pub(super) fn space_children(
    read: &ReadTxn,
    user: &UserId,
    spaces: &[String],
) -> Result<HashSet<String>, MatrixError> {
    let mut out = HashSet::new();
    for space in spaces {
        let Some(record) = read.room(space)? else { continue };
        let room = RoomShort(record.short);
        if read.membership(user, room)?.is_none_or(|m| m.membership != Membership::Join) {
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
        user: &UserId,
    ) -> Result<bool, MatrixError> {
        if let Some(dm) = f.is_dm
            && direct.contains(c.room_id.as_str()) != dm
        {
            return Ok(false);
        }
        if let Some(inv) = f.is_invite
            && (c.membership.membership == Membership::Invite) != inv
        {
            return Ok(false);
        }
        if let Some(children) = children
            && !children.contains(c.room_id.as_str())
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
                if let Some(bytes) = read.account_data(user, c.room_id.as_str(), "m.tag")? {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    /// Stores an event of `event_type` in room 1 as the writer would,
    /// optionally without the bump index (a room from an older database).
    fn put(store: &Store, event_type: &'static str, index: bool) -> StreamPos {
        store
            .write_blocking(move |ctx| {
                let stream = ctx.next_position();
                let id = format!("$e{}", stream.0);
                let json =
                    serde_json::to_vec(&serde_json::json!({ "type": event_type })).expect("json");
                ctx.put_event(RoomShort(1), stream, &id, &json, b"{}", None, None)?;
                if index {
                    record_bump(ctx, RoomShort(1), stream, event_type)?;
                }
                Ok(Ok::<_, StoreError>(stream))
            })
            .expect("write")
    }

    fn stamp(store: &Store, joined_at: StreamPos) -> u64 {
        let m =
            MembershipRow { room: RoomShort(1), membership: Membership::Join, stream: joined_at };
        bump_stamp(&store.read().expect("read"), &m).expect("bump_stamp")
    }

    #[test]
    fn bump_stamp_skips_any_number_of_non_bumping_events() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), 1 << 20, None).expect("open");
        // History written before the index existed: found by the scan.
        let create = put(&store, "m.room.create", false);
        let message = put(&store, "m.room.message", false);
        for _ in 0..700 {
            put(&store, "m.reaction", false);
        }
        assert_eq!(stamp(&store, create), message.0);
        // New events keep the index; non-bumping ones leave it alone.
        let encrypted = put(&store, "m.room.encrypted", true);
        put(&store, "m.reaction", true);
        assert_eq!(stamp(&store, create), encrypted.0);
        // A join after the newest bumping event puts the room at the join.
        let join = put(&store, "m.room.member", true);
        assert_eq!(stamp(&store, join), join.0);
    }
}
