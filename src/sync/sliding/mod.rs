//! Simplified sliding sync (MSC4186, unstable prefix
//! `org.matrix.simplified_msc3575`): the room list Element X syncs with.
//!
//! This module owns the per-connection state and the assembly of one
//! response: which rooms the user's lists and subscriptions match, which of
//! them changed since the client's `pos`, and what to send for each (only
//! what the client does not have yet), plus the extensions (to-device,
//! e2ee, account data, receipts, typing). It never sees HTTP types.
//!
//! Connection state lives in memory ([`Connections`], one per server): for
//! each `(user, device, conn_id)` the last few snapshots of what the client
//! was sent, keyed by the `pos` handed out with them. A request names the
//! snapshot it builds on; a retry of the same `pos` (the spec allows it)
//! still finds it. Memory is bounded: a few snapshots per connection, caps
//! on connections per device, per user and in total (a full table gives up
//! the least recently used connection of whoever holds the most, so no user
//! loses theirs to another over their share), and a snapshot holds small
//! fixed-size fingerprints per room, never events.
//! After a restart or an eviction a `pos` is unknown: `400 M_UNKNOWN_POS`,
//! and the client starts a new connection (what the MSC prescribes).
//!
//! Request and response shapes follow what matrix-rust-sdk (Element X) and
//! Synapse speak: `ranges`, `required_state` as `[type, state_key]` pairs
//! with `*`, `$LAZY` and `$ME`, `timeline`, `invite_state`. The newer MSC
//! spellings (`range`, `required_state.include/exclude/lazy_members`,
//! `is_invited`, `pos` in the body) are accepted too.
//!
//! Layout: `request` (the body and its normalised parts), `connection`
//! (connections and snapshots), `lists` (the candidate rooms, their
//! `bump_stamp` order and the list filters), `room` (one room of a
//! response), `extensions`; this file assembles a response from them.

mod connection;
mod extensions;
mod lists;
mod request;
mod room;

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Map, Value, json};

pub use connection::{Connections, Snapshot};
pub use lists::record_bump;
pub use request::{
    ExtensionsRequest, Filters, ListRequest, RequiredStateRequest, RoomConfigRequest,
    RoomExtension, SlidingRequest, StateElement, ToDeviceRequest, Toggle,
};

use super::typing::Typing;
use crate::error::MatrixError;
use crate::ids::{DeviceId, RoomId, UserId};
use crate::membership::Membership;
use crate::room::visibility::Visibility;
use crate::store::{MembershipRow, ReadTxn, RoomShort, StreamPos};
use extensions::{Scope, account_data, e2ee, receipts, to_device, typing};
use lists::{Facts, bump_stamp, dm_rooms, removed_by_other, space_children};
use request::{RequiredState, RoomConfig};
use room::{RoomContext, room_response};

/// Limits on what one request may ask for.
const MAX_LISTS: usize = 100;
const MAX_SUBSCRIPTIONS: usize = 500;

/// What a request reads from.
pub struct SyncInput<'a> {
    pub read: &'a ReadTxn,
    pub typing: &'a Typing,
    pub user_id: &'a UserId,
    pub device_id: &'a DeviceId,
    pub upto: StreamPos,
}

/// A computed response (without `pos`) and the snapshot it leaves.
pub struct Outcome {
    pub body: Map<String, Value>,
    pub snapshot: Snapshot,
    /// Whether there is anything new for an incremental request.
    pub any: bool,
}

/// A room the user has a membership in, with its sort key.
struct Candidate {
    room: RoomShort,
    room_id: RoomId,
    membership: MembershipRow,
    bump: u64,
}

/// Computes one response on top of `prev` (`initial`: no `pos`).
pub fn compute(
    input: &SyncInput,
    req: &SlidingRequest,
    prev: &Snapshot,
    initial: bool,
) -> Result<Outcome, MatrixError> {
    let read = input.read;
    let user = input.user_id;
    let direct = dm_rooms(read, user)?;

    // The server's list: joined, invited, knocked; left rooms the client
    // was sent before; kicks and bans (the user may not know of them);
    // not a room left and then forgotten.
    let mut cands = Vec::new();
    for m in read.user_memberships(user)? {
        if m.stream > input.upto {
            continue;
        }
        let listed = match m.membership {
            Membership::Join | Membership::Invite | Membership::Knock => true,
            Membership::Leave | Membership::Ban => {
                (prev.rooms.contains_key(&m.room) || removed_by_other(read, &m, user)?)
                    && !read.is_forgotten(user, &m)?
            }
        };
        if !listed {
            continue;
        }
        let Some(room_id) = read.room_id(m.room)? else { continue };
        let room_id = RoomId::from_trusted(room_id);
        let bump = bump_stamp(read, &m)?;
        cands.push(Candidate { room: m.room, room_id, membership: m, bump });
    }
    // Most recent first. Ordering by the same `bump_stamp` clients sort by
    // keeps a range like [0,19] equal to the top of the client's list.
    cands.sort_by(|a, b| b.bump.cmp(&a.bump).then(b.room.cmp(&a.room)));

    let mut facts = Facts::default();
    let mut matched: BTreeMap<RoomShort, RoomConfig> = BTreeMap::new();
    let mut lists_out = Map::new();
    let mut list_counts = BTreeMap::new();
    let mut list_members: HashMap<&str, Vec<RoomShort>> = HashMap::new();
    for (name, list) in req.lists.iter().take(MAX_LISTS) {
        let required = RequiredState::from_request(&list.required_state, user);
        let space_children = match &list.filters.spaces {
            Some(spaces) => Some(space_children(read, user, spaces)?),
            None => None,
        };
        let mut filtered = Vec::new();
        for c in &cands {
            if facts.passes(read, c, &list.filters, &direct, space_children.as_ref(), user)? {
                filtered.push(c);
            }
        }
        lists_out.insert(name.clone(), json!({ "count": filtered.len() }));
        list_counts.insert(name.clone(), filtered.len());
        let mut ranges = list.ranges.clone();
        ranges.extend(list.range);
        let members = list_members.entry(name.as_str()).or_default();
        for (i, c) in filtered.iter().enumerate() {
            let i = i as u64;
            if ranges.is_empty() || ranges.iter().any(|(a, b)| *a <= i && i <= *b) {
                let cfg = matched.entry(c.room).or_default();
                cfg.merge(list.timeline_limit, required.clone());
                cfg.lists.insert(name.clone());
                members.push(c.room);
            }
        }
    }
    let mut subscribed = Vec::new();
    for (room_id, sub) in req.room_subscriptions.iter().take(MAX_SUBSCRIPTIONS) {
        let Some(record) = read.room(room_id)? else { continue };
        let room = RoomShort(record.short);
        if !cands.iter().any(|c| c.room == room) {
            // Not in the list (e.g. a room left long ago): only if the user
            // may see it (spec: members, invitees, knockers, former members).
            let Some(m) = read.membership(user, room)? else { continue };
            if m.stream > input.upto || !Visibility::load(read, input.user_id, room)?.may_look() {
                continue;
            }
            let bump = bump_stamp(read, &m)?;
            // A key the store found a room under is that room's ID.
            let room_id = RoomId::from_trusted(room_id.clone());
            cands.push(Candidate { room, room_id, membership: m, bump });
        }
        let cfg = matched.entry(room).or_default();
        cfg.merge(sub.timeline_limit, RequiredState::from_request(&sub.required_state, user));
        cfg.subscribed = true;
        subscribed.push((room_id.clone(), room));
    }

    let by_room: HashMap<RoomShort, &Candidate> = cands.iter().map(|c| (c.room, c)).collect();
    let mut rooms_out = Map::new();
    let mut next_rooms = prev.rooms.clone();
    let mut fresh_rooms: HashMap<RoomShort, HashSet<String>> = HashMap::new();
    // Rooms in the order of the list, so a response is deterministic.
    let mut order: Vec<&Candidate> =
        matched.keys().filter_map(|r| by_room.get(r).copied()).collect();
    order.sort_by(|a, b| b.bump.cmp(&a.bump).then(b.room.cmp(&a.room)));
    for c in order {
        let Some(cfg) = matched.get(&c.room) else { continue };
        let ctx = RoomContext {
            input,
            prev_stream: if initial { None } else { Some(prev.stream) },
            direct: &direct,
        };
        let sent = prev.rooms.get(&c.room);
        if let Some(built) = room_response(&ctx, c, cfg, sent)? {
            if built.fresh {
                fresh_rooms.insert(c.room, built.event_ids);
            }
            rooms_out.insert(c.room_id.as_str().to_owned(), built.body);
            next_rooms.insert(c.room, built.sent);
        }
    }

    // Extensions.
    let scope = Scope { lists: &list_members, subscribed: &subscribed };
    let since = if initial { None } else { Some(prev.stream) };
    let mut ext = Map::new();
    let mut any_ext = false;
    let e = &req.extensions;
    if e.to_device.enabled == Some(true) {
        let (v, n) = to_device(input, &e.to_device)?;
        any_ext |= n > 0;
        ext.insert("to_device".into(), v);
    }
    if e.e2ee.enabled == Some(true) {
        let (v, changed) = e2ee(input, since)?;
        any_ext |= changed;
        ext.insert("e2ee".into(), v);
    }
    if e.account_data.enabled == Some(true) {
        let rooms = scope.rooms(&e.account_data);
        let v = account_data(input, since, &rooms, &by_room, &fresh_rooms)?;
        any_ext |= v["global"].as_array().is_some_and(|a| !a.is_empty())
            || v["rooms"].as_object().is_some_and(|o| !o.is_empty());
        ext.insert("account_data".into(), v);
    }
    if e.receipts.enabled == Some(true) {
        let rooms = scope.rooms(&e.receipts);
        let v = receipts(input, since, &rooms, &by_room, &fresh_rooms)?;
        any_ext |= v["rooms"].as_object().is_some_and(|o| !o.is_empty());
        ext.insert("receipts".into(), v);
    }
    if e.typing.enabled == Some(true) {
        let rooms = scope.rooms(&e.typing);
        let since_typing = if initial { None } else { Some(prev.typing) };
        let v = typing(input, since_typing, &rooms, &by_room, &fresh_rooms);
        any_ext |= v["rooms"].as_object().is_some_and(|o| !o.is_empty());
        ext.insert("typing".into(), v);
    }

    let any = !rooms_out.is_empty() || any_ext || list_counts != prev.list_counts;
    let mut body = Map::new();
    if let Some(t) = &req.txn_id {
        body.insert("txn_id".into(), json!(t));
    }
    body.insert("lists".into(), Value::Object(lists_out));
    body.insert("rooms".into(), Value::Object(rooms_out));
    body.insert("extensions".into(), Value::Object(ext));
    let snapshot = Snapshot {
        stream: input.upto,
        typing: input.typing.serial(),
        rooms: next_rooms,
        list_counts,
    };
    Ok(Outcome { body, snapshot, any })
}
