//! Rooms, events, current state, memberships, aliases, transaction IDs and
//! filters.
//!
//! Events are stored once, ready to serve: the client-format JSON keyed by
//! stream position, with the federation-only fields (`auth_events`,
//! `prev_events`, `depth`, `hashes`, `signatures`) in a second table under
//! the same key, so the hot path never reads them. A room's timeline is the
//! index `(room short id, stream position)`; event IDs find their position
//! through `event_epoch_hash_to_position`.
//! Current state is an index `(room, type, state_key) → stream`; every state
//! event is also listed in `room_stream_to_state_key` so a gappy sync finds
//! what changed by a range scan instead of diffing full state.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::tables::{
    ALIAS_TO_ROOM_ID, EVENT_EPOCH_HASH_TO_POSITION, META, ROOM_ID_TO_RECORD, ROOM_SHORT_TO_ID,
    ROOM_STATE_TO_STREAM, ROOM_STREAM_TO_STATE_KEY, ROOM_STREAM_TO_UNIT, ROOM_USER_TO_MEMBERSHIP,
    STREAM_TO_EVENT, STREAM_TO_PDU_FIELDS, TXN_EPOCHS_KEPT, TXN_TO_POSITION, USER_FILTER_TO_JSON,
    USER_ROOM_TO_FORGOTTEN, USER_ROOM_TO_MEMBERSHIP, USER_STREAM_TO_ROOM, epoch, event_hash,
    meta_u64, txn_epoch,
};
use super::{ReadTxn, StoreError, StreamPos, WriteCtx};
use crate::ids::{DeviceId, UserId};
use crate::membership::Membership;

/// A room's short id: rooms are named by this integer in every hot key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomShort(pub u64);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RoomRecord {
    pub short: u64,
    pub version: String,
    #[serde(default)]
    pub public: bool,
}

/// One stored event: its position and client-format JSON bytes.
#[derive(Clone, Debug)]
pub struct StoredEvent {
    pub stream: StreamPos,
    pub json: Vec<u8>,
}

/// A membership row: `(membership, stream of the member event)`.
#[derive(Clone, Debug)]
pub struct MembershipRow {
    pub room: RoomShort,
    pub membership: Membership,
    pub stream: StreamPos,
}

/// A membership as stored (its spec string). Only authorised member events
/// are stored and the rules refuse other values, so anything else is damage.
fn stored_membership(s: &str) -> Result<Membership, StoreError> {
    Membership::parse(s)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown stored membership {s:?}")))
}

const META_NEXT_ROOM_SHORT: &str = "next_room_short";

fn decode<T: for<'de> Deserialize<'de>>(what: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

macro_rules! room_reads {
    ($t:ty, $txn:tt) => {
        impl $t {
            pub fn room(&self, room_id: &str) -> Result<Option<RoomRecord>, StoreError> {
                let table = self.$txn.open_table(ROOM_ID_TO_RECORD)?;
                let v = table.get(room_id)?;
                v.map(|v| decode("room", v.value())).transpose()
            }

            pub fn room_id(&self, room: RoomShort) -> Result<Option<String>, StoreError> {
                let table = self.$txn.open_table(ROOM_SHORT_TO_ID)?;
                let v = table.get(room.0)?;
                Ok(v.map(|v| v.value().to_owned()))
            }

            /// The current state event `(type, state_key)` of a room.
            pub fn state_event(
                &self,
                room: RoomShort,
                event_type: &str,
                state_key: &str,
            ) -> Result<Option<StoredEvent>, StoreError> {
                let state = self.$txn.open_table(ROOM_STATE_TO_STREAM)?;
                let Some(stream) = state.get((room.0, event_type, state_key))?.map(|v| v.value())
                else {
                    return Ok(None);
                };
                self.event_at(room, StreamPos(stream))
            }

            /// The stream position of the current state event
            /// `(type, state_key)` of a room: one index lookup, no event read.
            pub fn state_position(
                &self,
                room: RoomShort,
                event_type: &str,
                state_key: &str,
            ) -> Result<Option<StreamPos>, StoreError> {
                let state = self.$txn.open_table(ROOM_STATE_TO_STREAM)?;
                let v = state.get((room.0, event_type, state_key))?;
                Ok(v.map(|v| StreamPos(v.value())))
            }

            /// Whether `stream` is an event of `room`. Positions are unique
            /// across rooms, so the event tables need no room; callers still
            /// name the room they found a position in, checked in debug
            /// builds.
            fn in_timeline(&self, room: RoomShort, stream: StreamPos) -> Result<bool, StoreError> {
                let t = self.$txn.open_table(ROOM_STREAM_TO_UNIT)?;
                Ok(t.get((room.0, stream.0))?.is_some())
            }

            pub fn event_at(
                &self,
                room: RoomShort,
                stream: StreamPos,
            ) -> Result<Option<StoredEvent>, StoreError> {
                let events = self.$txn.open_table(STREAM_TO_EVENT)?;
                let v = events.get(stream.0)?;
                debug_assert!(
                    v.is_none() || self.in_timeline(room, stream)?,
                    "event {stream:?} is not in room {room:?}"
                );
                Ok(v.map(|v| StoredEvent { stream, json: v.value().to_vec() }))
            }

            /// The newest event of a room.
            pub fn latest_event(&self, room: RoomShort) -> Result<Option<StoredEvent>, StoreError> {
                let newest = {
                    let timeline = self.$txn.open_table(ROOM_STREAM_TO_UNIT)?;
                    let mut range = timeline.range((room.0, 0)..=(room.0, u64::MAX))?;
                    match range.next_back() {
                        Some(row) => row?.0.value().1,
                        None => return Ok(None),
                    }
                };
                // (The timeline table is closed again: a write transaction
                // opens each table once at a time.)
                self.event_at(room, StreamPos(newest))
            }

            /// The federation-only fields of an event (JSON object).
            pub fn pdu_fields(
                &self,
                room: RoomShort,
                stream: StreamPos,
            ) -> Result<Option<Vec<u8>>, StoreError> {
                let t = self.$txn.open_table(STREAM_TO_PDU_FIELDS)?;
                let v = t.get(stream.0)?;
                debug_assert!(
                    v.is_none() || self.in_timeline(room, stream)?,
                    "event {stream:?} is not in room {room:?}"
                );
                Ok(v.map(|v| v.value().to_vec()))
            }

            /// Every current state entry: `(type, state_key, stream)`.
            pub fn room_state(
                &self,
                room: RoomShort,
            ) -> Result<Vec<(String, String, StreamPos)>, StoreError> {
                let state = self.$txn.open_table(ROOM_STATE_TO_STREAM)?;
                let mut out = Vec::new();
                for row in state.range((room.0, "", "")..)? {
                    let (k, v) = row?;
                    let (r, t, s) = k.value();
                    if r != room.0 {
                        break;
                    }
                    out.push((t.to_owned(), s.to_owned(), StreamPos(v.value())));
                }
                Ok(out)
            }

            pub fn event_position(
                &self,
                event_id: &str,
            ) -> Result<Option<(RoomShort, StreamPos)>, StoreError> {
                // The epochs, newest first (most IDs clients name are recent).
                let t = self.$txn.open_table(EVENT_EPOCH_HASH_TO_POSITION)?;
                let newest = match t.last()? {
                    Some((k, _)) => k.value().0,
                    None => return Ok(None),
                };
                let hash = event_hash(event_id);
                for e in (0..=newest).rev() {
                    if let Some(v) = t.get((e, hash))? {
                        let (r, s) = v.value();
                        return Ok(Some((RoomShort(r), StreamPos(s))));
                    }
                }
                Ok(None)
            }

            /// A user's membership in a room, if any.
            pub fn membership(
                &self,
                user_id: &UserId,
                room: RoomShort,
            ) -> Result<Option<MembershipRow>, StoreError> {
                let user_id = user_id.as_str();
                let t = self.$txn.open_table(USER_ROOM_TO_MEMBERSHIP)?;
                let v = t.get((user_id, room.0))?;
                v.map(|v| {
                    let (m, s) = v.value();
                    Ok(MembershipRow {
                        room,
                        membership: stored_membership(m)?,
                        stream: StreamPos(s),
                    })
                })
                .transpose()
            }

            /// Users with membership `membership` in a room.
            pub fn members_with(
                &self,
                room: RoomShort,
                membership: Membership,
            ) -> Result<Vec<String>, StoreError> {
                let t = self.$txn.open_table(ROOM_USER_TO_MEMBERSHIP)?;
                let mut out = Vec::new();
                for row in t.range((room.0, "")..)? {
                    let (k, v) = row?;
                    let (r, u) = k.value();
                    if r != room.0 {
                        break;
                    }
                    if v.value() == membership.as_str() {
                        out.push(u.to_owned());
                    }
                }
                Ok(out)
            }

            pub fn alias(&self, alias: &str) -> Result<Option<String>, StoreError> {
                let t = self.$txn.open_table(ALIAS_TO_ROOM_ID)?;
                let v = t.get(alias)?;
                Ok(v.map(|v| v.value().to_owned()))
            }
        }
    };
}

room_reads!(ReadTxn, 0);
room_reads!(WriteCtx<'_>, txn);

/// The event at `stream` of a room's timeline index (which only lists
/// stored events).
fn stored(
    events: &impl ReadableTable<u64, &'static [u8]>,
    stream: u64,
) -> Result<StoredEvent, StoreError> {
    match events.get(stream)? {
        Some(v) => Ok(StoredEvent { stream: StreamPos(stream), json: v.value().to_vec() }),
        None => {
            Err(StoreError::Corrupt(format!("timeline lists event {stream}, which is missing")))
        }
    }
}

impl ReadTxn {
    /// Events of a room with `after < stream <= upto`, newest `limit` of
    /// them, oldest first; and whether older ones in the range were left out.
    pub fn events_after(
        &self,
        room: RoomShort,
        after: StreamPos,
        upto: StreamPos,
        limit: usize,
    ) -> Result<(Vec<StoredEvent>, bool), StoreError> {
        let timeline = self.0.open_table(ROOM_STREAM_TO_UNIT)?;
        let events = self.0.open_table(STREAM_TO_EVENT)?;
        let mut out = Vec::new();
        let mut limited = false;
        if after >= upto {
            return Ok((out, false));
        }
        for row in timeline.range((room.0, after.0 + 1)..=(room.0, upto.0))?.rev() {
            let stream = row?.0.value().1;
            if out.len() == limit {
                limited = true;
                break;
            }
            out.push(stored(&events, stream)?);
        }
        out.reverse();
        Ok((out, limited))
    }

    /// Up to `limit` events before `before` (exclusive), newest first.
    pub fn events_before(
        &self,
        room: RoomShort,
        before: StreamPos,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let timeline = self.0.open_table(ROOM_STREAM_TO_UNIT)?;
        let events = self.0.open_table(STREAM_TO_EVENT)?;
        let mut out = Vec::new();
        if before.0 == 0 {
            return Ok(out);
        }
        for row in timeline.range((room.0, 0)..(room.0, before.0))?.rev().take(limit) {
            out.push(stored(&events, row?.0.value().1)?);
        }
        Ok(out)
    }

    /// Up to `limit` events from `from` (inclusive) forwards, oldest first.
    pub fn events_from(
        &self,
        room: RoomShort,
        from: StreamPos,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let timeline = self.0.open_table(ROOM_STREAM_TO_UNIT)?;
        let events = self.0.open_table(STREAM_TO_EVENT)?;
        let mut out = Vec::new();
        for row in timeline.range((room.0, from.0)..=(room.0, u64::MAX))?.take(limit) {
            out.push(stored(&events, row?.0.value().1)?);
        }
        Ok(out)
    }

    /// State keys changed in a room with `after < stream <= upto`.
    pub fn state_changes(
        &self,
        room: RoomShort,
        after: StreamPos,
        upto: StreamPos,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let t = self.0.open_table(ROOM_STREAM_TO_STATE_KEY)?;
        let mut out = Vec::new();
        if after >= upto {
            return Ok(out);
        }
        for row in t.range((room.0, after.0 + 1)..=(room.0, upto.0))? {
            let (_, v) = row?;
            let (ty, key) = v.value();
            out.push((ty.to_owned(), key.to_owned()));
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Every room a user has a membership in.
    pub fn user_memberships(&self, user_id: &UserId) -> Result<Vec<MembershipRow>, StoreError> {
        let user_id = user_id.as_str();
        let t = self.0.open_table(USER_ROOM_TO_MEMBERSHIP)?;
        let mut out = Vec::new();
        for row in t.range((user_id, 0)..=(user_id, u64::MAX))? {
            let (k, v) = row?;
            let (m, s) = v.value();
            out.push(MembershipRow {
                room: RoomShort(k.value().1),
                membership: stored_membership(m)?,
                stream: StreamPos(s),
            });
        }
        Ok(out)
    }

    /// Positions of `user_id`'s member events in `room`, oldest first.
    pub fn membership_positions(
        &self,
        user_id: &UserId,
        room: RoomShort,
    ) -> Result<Vec<StreamPos>, StoreError> {
        let user_id = user_id.as_str();
        let t = self.0.open_table(USER_STREAM_TO_ROOM)?;
        let mut out = Vec::new();
        for row in t.range((user_id, 0)..=(user_id, u64::MAX))? {
            let (k, v) = row?;
            if v.value() == room.0 {
                out.push(StreamPos(k.value().1));
            }
        }
        Ok(out)
    }

    /// The state of `room` as of stream position `upto` (inclusive), for
    /// one event type: `(state_key, stream)` of the last event per key.
    /// Derived from state-change history, not stored per event (DESIGN.md).
    pub fn state_of_type_at(
        &self,
        room: RoomShort,
        event_type: &str,
        upto: StreamPos,
    ) -> Result<Vec<(String, StreamPos)>, StoreError> {
        let t = self.0.open_table(ROOM_STREAM_TO_STATE_KEY)?;
        let mut last: std::collections::BTreeMap<String, StreamPos> = Default::default();
        for row in t.range((room.0, 0)..=(room.0, upto.0))? {
            let (k, v) = row?;
            let (ty, key) = v.value();
            if ty == event_type {
                last.insert(key.to_owned(), StreamPos(k.value().1));
            }
        }
        Ok(last.into_iter().collect())
    }

    /// Positions of every state event `(event_type, state_key)` in `room`,
    /// oldest first.
    pub fn state_positions(
        &self,
        room: RoomShort,
        event_type: &str,
        state_key: &str,
    ) -> Result<Vec<StreamPos>, StoreError> {
        let t = self.0.open_table(ROOM_STREAM_TO_STATE_KEY)?;
        let mut out = Vec::new();
        for row in t.range((room.0, 0)..=(room.0, u64::MAX))? {
            let (k, v) = row?;
            let (ty, key) = v.value();
            if ty == event_type && key == state_key {
                out.push(StreamPos(k.value().1));
            }
        }
        Ok(out)
    }

    /// Rooms whose membership for `user_id` changed with `after < stream`.
    pub fn membership_changes(
        &self,
        user_id: &UserId,
        after: StreamPos,
    ) -> Result<Vec<RoomShort>, StoreError> {
        let user_id = user_id.as_str();
        let t = self.0.open_table(USER_STREAM_TO_ROOM)?;
        let mut out = Vec::new();
        for row in t.range((user_id, after.0 + 1)..=(user_id, u64::MAX))? {
            let (_, v) = row?;
            out.push(RoomShort(v.value()));
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Whether the user forgot the room while `m` was their membership in
    /// it (a membership since then brings the room back).
    pub fn is_forgotten(&self, user_id: &UserId, m: &MembershipRow) -> Result<bool, StoreError> {
        let user_id = user_id.as_str();
        let t = self.0.open_table(USER_ROOM_TO_FORGOTTEN)?;
        let v = t.get((user_id, m.room.0))?;
        Ok(v.is_some_and(|v| v.value() == m.stream.0))
    }

    pub fn filter(&self, user_id: &UserId, filter_id: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let user_id = user_id.as_str();
        let t = self.0.open_table(USER_FILTER_TO_JSON)?;
        let v = t.get((user_id, filter_id))?;
        Ok(v.map(|v| v.value().to_vec()))
    }

    /// Aliases that point at `room_id` (a scan: the alias table is small).
    pub fn aliases_of(&self, room_id: &str) -> Result<Vec<String>, StoreError> {
        let t = self.0.open_table(ALIAS_TO_ROOM_ID)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            if v.value() == room_id {
                out.push(k.value().to_owned());
            }
        }
        Ok(out)
    }

    /// Public rooms (for the directory).
    pub fn public_rooms(&self) -> Result<Vec<(String, RoomShort)>, StoreError> {
        let t = self.0.open_table(ROOM_ID_TO_RECORD)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            let r: RoomRecord = decode("room", v.value())?;
            if r.public {
                out.push((k.value().to_owned(), RoomShort(r.short)));
            }
        }
        Ok(out)
    }
}

impl WriteCtx<'_> {
    /// Registers a new room and returns its short id.
    pub fn create_room_record(
        &mut self,
        room_id: &str,
        version: &str,
        public: bool,
    ) -> Result<RoomShort, StoreError> {
        let short = {
            let mut meta = self.txn.open_table(META)?;
            let next = meta
                .get(META_NEXT_ROOM_SHORT)?
                .map(|v| <[u8; 8]>::try_from(v.value()).map(u64::from_be_bytes).unwrap_or(1))
                .unwrap_or(1);
            meta.insert(META_NEXT_ROOM_SHORT, (next + 1).to_be_bytes().as_slice())?;
            next
        };
        let record = RoomRecord { short, version: version.to_owned(), public };
        let bytes = serde_json::to_vec(&record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.txn.open_table(ROOM_ID_TO_RECORD)?.insert(room_id, bytes.as_slice())?;
        self.txn.open_table(ROOM_SHORT_TO_ID)?.insert(short, room_id)?;
        Ok(RoomShort(short))
    }

    pub fn set_room_public(&mut self, room_id: &str, public: bool) -> Result<(), StoreError> {
        let Some(mut r) = self.room(room_id)? else { return Ok(()) };
        r.public = public;
        let bytes = serde_json::to_vec(&r).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.txn.open_table(ROOM_ID_TO_RECORD)?.insert(room_id, bytes.as_slice())?;
        Ok(())
    }

    /// Stores an event with its indexes. `state` is `(type, state_key)` for
    /// state events; `member` is `(user_id, membership)` for member events.
    #[allow(clippy::too_many_arguments)]
    pub fn put_event(
        &mut self,
        room: RoomShort,
        stream: StreamPos,
        event_id: &str,
        client_json: &[u8],
        pdu_fields: &[u8],
        state: Option<(&str, &str)>,
        member: Option<(&str, Membership)>,
    ) -> Result<(), StoreError> {
        self.txn.open_table(STREAM_TO_EVENT)?.insert(stream.0, client_json)?;
        self.txn.open_table(STREAM_TO_PDU_FIELDS)?.insert(stream.0, pdu_fields)?;
        self.txn.open_table(ROOM_STREAM_TO_UNIT)?.insert((room.0, stream.0), ())?;
        self.txn
            .open_table(EVENT_EPOCH_HASH_TO_POSITION)?
            .insert((epoch(stream.0), event_hash(event_id)), (room.0, stream.0))?;
        if let Some((ty, key)) = state {
            self.txn.open_table(ROOM_STATE_TO_STREAM)?.insert((room.0, ty, key), stream.0)?;
            self.txn.open_table(ROOM_STREAM_TO_STATE_KEY)?.insert((room.0, stream.0), (ty, key))?;
        }
        if let Some((user, membership)) = member {
            let membership = membership.as_str();
            self.txn
                .open_table(USER_ROOM_TO_MEMBERSHIP)?
                .insert((user, room.0), (membership, stream.0))?;
            self.txn.open_table(ROOM_USER_TO_MEMBERSHIP)?.insert((room.0, user), membership)?;
            self.txn.open_table(USER_STREAM_TO_ROOM)?.insert((user, stream.0), room.0)?;
        }
        Ok(())
    }

    /// Replaces the stored client JSON of an event (redaction). Whoever calls
    /// this must also tell the writer's parsed-state cache
    /// (`room::cache::StateCache::event_rewritten`).
    pub fn rewrite_event(
        &mut self,
        room: RoomShort,
        stream: StreamPos,
        client_json: &[u8],
    ) -> Result<(), StoreError> {
        debug_assert!(self.in_timeline(room, stream)?, "event {stream:?} is not in room {room:?}");
        self.txn.open_table(STREAM_TO_EVENT)?.insert(stream.0, client_json)?;
        Ok(())
    }

    /// Rooms `user_id` is joined to.
    pub fn joined_room_shorts(&self, user_id: &UserId) -> Result<Vec<RoomShort>, StoreError> {
        let user_id = user_id.as_str();
        let t = self.txn.open_table(USER_ROOM_TO_MEMBERSHIP)?;
        let mut out = Vec::new();
        for row in t.range((user_id, 0)..=(user_id, u64::MAX))? {
            let (k, v) = row?;
            if v.value().0 == Membership::Join.as_str() {
                out.push(RoomShort(k.value().1));
            }
        }
        Ok(out)
    }

    /// Records that `user_id` forgot `m.room` at membership `m`.
    pub fn forget_room(&mut self, user_id: &UserId, m: &MembershipRow) -> Result<(), StoreError> {
        let user_id = user_id.as_str();
        self.txn.open_table(USER_ROOM_TO_FORGOTTEN)?.insert((user_id, m.room.0), m.stream.0)?;
        Ok(())
    }

    /// Maps an alias to a room; false if the alias was taken.
    pub fn put_alias(&mut self, alias: &str, room_id: &str) -> Result<bool, StoreError> {
        let mut t = self.txn.open_table(ALIAS_TO_ROOM_ID)?;
        if t.get(alias)?.is_some() {
            return Ok(false);
        }
        t.insert(alias, room_id)?;
        Ok(true)
    }

    pub fn delete_alias(&mut self, alias: &str) -> Result<bool, StoreError> {
        let mut t = self.txn.open_table(ALIAS_TO_ROOM_ID)?;
        let existed = t.remove(alias)?.is_some();
        Ok(existed)
    }

    /// Where an earlier request with this transaction ID put its event
    /// (`(RoomShort(0), StreamPos(0))` if it made none), if it came within
    /// the remembered epochs. The scope is described at `TXN_TO_POSITION`.
    pub fn txn_position(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        scope: &str,
        txn_id: &str,
    ) -> Result<Option<(RoomShort, StreamPos)>, StoreError> {
        let user_id = user_id.as_str();
        let device_id = device_id.as_str();
        let now = txn_epoch(self.upcoming_position());
        let t = self.txn.open_table(TXN_TO_POSITION)?;
        for e in (now.saturating_sub(TXN_EPOCHS_KEPT - 1)..=now).rev() {
            if let Some(v) = t.get((e, user_id, device_id, scope, txn_id))? {
                let (r, s) = v.value();
                return Ok(Some((RoomShort(r), StreamPos(s))));
            }
        }
        Ok(None)
    }

    /// Records that a request with this transaction ID made the event at
    /// `(room, stream)` (or none: `(RoomShort(0), StreamPos(0))`), and
    /// forgets a few IDs older than the remembered epochs: the work is
    /// bounded per request, and the rows go oldest first, from the front of
    /// the table.
    pub fn put_txn(
        &mut self,
        user_id: &UserId,
        device_id: &DeviceId,
        scope: &str,
        txn_id: &str,
        (room, stream): (RoomShort, StreamPos),
    ) -> Result<(), StoreError> {
        let user_id = user_id.as_str();
        let device_id = device_id.as_str();
        const FORGET_PER_PUT: usize = 16;
        let now = txn_epoch(self.upcoming_position());
        let mut t = self.txn.open_table(TXN_TO_POSITION)?;
        t.insert((now, user_id, device_id, scope, txn_id), (room.0, stream.0))?;
        let Some(oldest_kept) = (now + 1).checked_sub(TXN_EPOCHS_KEPT) else { return Ok(()) };
        let mut forget = Vec::new();
        for row in t.range(..(oldest_kept, "", "", "", ""))?.take(FORGET_PER_PUT) {
            let key = row?.0;
            let (e, u, d, s, x) = key.value();
            forget.push((e, u.to_owned(), d.to_owned(), s.to_owned(), x.to_owned()));
        }
        for (e, u, d, s, x) in &forget {
            t.remove((*e, u.as_str(), d.as_str(), s.as_str(), x.as_str()))?;
        }
        Ok(())
    }

    /// Stores a filter and returns its id (per user, counting up); a
    /// filter identical to a stored one gets that one's id instead, since
    /// clients upload the same filter at every start. `None` (nothing
    /// written) when the user already has `max` other filters.
    pub fn put_filter(
        &mut self,
        user_id: &UserId,
        json: &[u8],
        max: usize,
    ) -> Result<Option<u64>, StoreError> {
        let user_id = user_id.as_str();
        let mut t = self.txn.open_table(USER_FILTER_TO_JSON)?;
        let mut count = 0;
        let mut last = None;
        for row in t.range((user_id, 0)..=(user_id, u64::MAX))? {
            let (k, v) = row?;
            if v.value() == json {
                return Ok(Some(k.value().1));
            }
            count += 1;
            last = Some(k.value().1);
        }
        if count >= max {
            return Ok(None);
        }
        let next = last.map_or(0, |l| l + 1);
        t.insert((user_id, next), json)?;
        Ok(Some(next))
    }
}

/// Schema 1 → 2: moves events from `(room, stream)` keys to stream keys
/// (in stream order, so the new tables fill their leaves), lists them in
/// the room timeline index, re-keys the event ID index by hash, and
/// deletes the old tables. One transaction: a crash leaves schema 1.
pub(super) fn migrate_events_to_v2(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    use super::tables::{
        V1_EVENT_ID_TO_POSITION, V1_ROOM_STREAM_TO_EVENT, V1_ROOM_STREAM_TO_PDU_FIELDS,
        V2_EVENT_HASH_TO_POSITION,
    };
    let old_events = txn.open_table(V1_ROOM_STREAM_TO_EVENT)?;
    let old_pdus = txn.open_table(V1_ROOM_STREAM_TO_PDU_FIELDS)?;
    let mut order = Vec::new();
    for row in old_events.iter()? {
        let (room, stream) = row?.0.value();
        order.push((stream, room));
    }
    order.sort_unstable();
    {
        let mut events = txn.open_table(STREAM_TO_EVENT)?;
        let mut pdus = txn.open_table(STREAM_TO_PDU_FIELDS)?;
        let mut timeline = txn.open_table(ROOM_STREAM_TO_UNIT)?;
        for &(stream, room) in &order {
            if let Some(v) = old_events.get((room, stream))? {
                events.insert(stream, v.value())?;
            }
            if let Some(v) = old_pdus.get((room, stream))? {
                pdus.insert(stream, v.value())?;
            }
            timeline.insert((room, stream), ())?;
        }
        let mut ids = txn.open_table(V2_EVENT_HASH_TO_POSITION)?;
        for row in txn.open_table(V1_EVENT_ID_TO_POSITION)?.iter()? {
            let (k, v) = row?;
            ids.insert(event_hash(k.value()), v.value())?;
        }
    }
    drop((old_events, old_pdus));
    txn.delete_table(V1_ROOM_STREAM_TO_EVENT)?;
    txn.delete_table(V1_ROOM_STREAM_TO_PDU_FIELDS)?;
    txn.delete_table(V1_EVENT_ID_TO_POSITION)?;
    Ok(())
}

/// Schema 2 → 3: transaction IDs keyed by a compact scope and pointing at
/// the event's position instead of its ID (`TXN_TO_POSITION`); rows whose
/// room or event no longer resolves are dropped (a retransmission of them
/// is then treated as new, as after any server that forgets old IDs). Then
/// the event-ID index moves to its epochs (`EVENT_EPOCH_HASH_TO_POSITION`).
pub(super) fn migrate_to_v3(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    use super::tables::{V2_EVENT_HASH_TO_POSITION, V2_TXN_TO_EVENT_ID};
    {
        let old = txn.open_table(V2_TXN_TO_EVENT_ID)?;
        let rooms = txn.open_table(ROOM_ID_TO_RECORD)?;
        let positions = txn.open_table(V2_EVENT_HASH_TO_POSITION)?;
        let mut new = txn.open_table(TXN_TO_POSITION)?;
        // Migrated IDs start the remembered window afresh.
        let next = meta_u64(&txn.open_table(META)?, super::tables::META_NEXT_POSITION)?;
        let now = txn_epoch(next.unwrap_or(0));
        let short_of = |room_id: &str| -> Result<Option<u64>, StoreError> {
            match rooms.get(room_id)? {
                Some(v) => Ok(Some(decode::<RoomRecord>("room", v.value())?.short)),
                None => Ok(None),
            }
        };
        for row in old.iter()? {
            let (k, v) = row?;
            let (user, device, scope, txn_id) = k.value();
            let position = positions.get(event_hash(v.value()))?;
            let converted = if let Some(ty) = scope.strip_prefix("sendToDevice/") {
                Some((format!("d/{ty}"), (0, 0)))
            } else if let Some((kind, rest)) = scope.split_once('/')
                && let Some((room_id, tail)) = rest.split_once('/')
                && let (Some(short), Some(p)) = (short_of(room_id)?, position)
            {
                match kind {
                    "send" => Some((format!("s{short}/{tail}"), p.value())),
                    "redact" => Some((format!("r{short}/{tail}"), p.value())),
                    _ => None,
                }
            } else {
                None
            };
            if let Some((scope, pos)) = converted {
                new.insert((now, user, device, scope.as_str(), txn_id), pos)?;
            }
        }
    }
    txn.delete_table(V2_TXN_TO_EVENT_ID)?;
    {
        // In position order, so each epoch's rows arrive together.
        let mut rows = Vec::new();
        for row in txn.open_table(V2_EVENT_HASH_TO_POSITION)?.iter()? {
            let (k, v) = row?;
            rows.push((v.value().1, k.value(), v.value().0));
        }
        rows.sort_unstable();
        let mut ids = txn.open_table(EVENT_EPOCH_HASH_TO_POSITION)?;
        for (stream, hash, room) in rows {
            ids.insert((epoch(stream), hash), (room, stream))?;
        }
    }
    txn.delete_table(V2_EVENT_HASH_TO_POSITION)?;
    Ok(())
}
