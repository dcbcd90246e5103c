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
//! still finds it. Memory is bounded: a few snapshots per connection, a cap
//! on connections per device and in total (least recently used evicted), and
//! a snapshot holds small fixed-size fingerprints per room, never events.
//! After a restart or an eviction a `pos` is unknown: `400 M_UNKNOWN_POS`,
//! and the client starts a new connection (what the MSC prescribes).
//!
//! Request and response shapes follow what matrix-rust-sdk (Element X) and
//! Synapse speak: `ranges`, `required_state` as `[type, state_key]` pairs
//! with `*`, `$LAZY` and `$ME`, `timeline`, `invite_state`. The newer MSC
//! spellings (`range`, `required_state.include/exclude/lazy_members`,
//! `is_invited`, `pos` in the body) are accepted too.

use std::collections::hash_map::{DefaultHasher, Entry};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::rc::Rc;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::typing::Typing;
use super::{
    devices, event_value, pagination_token, read_position, restricted_history, sender_of,
    stripped_state,
};
use crate::error::{ErrorKind, MatrixError};
use crate::room::visibility::Visibility;
use crate::store::{Membership, ReadTxn, RoomShort, StoredEvent, StreamPos};

/// Connections one device may keep (Element X uses one or two).
const MAX_CONNECTIONS_PER_DEVICE: usize = 8;
/// Connections kept in total; the least recently used is evicted beyond it.
const MAX_CONNECTIONS: usize = 128;
/// Snapshots kept per connection: the one the client builds on, and the
/// newest few answers it may not have received yet (retries, cancels).
const SNAPSHOTS_PER_CONNECTION: usize = 4;
/// Limits on what one request may ask for.
const MAX_LISTS: usize = 100;
const MAX_SUBSCRIPTIONS: usize = 500;
const MAX_TIMELINE_LIMIT: u64 = 100;
const MAX_CONN_ID_LEN: usize = 64;
/// The default and largest number of to-device messages per response.
const TO_DEVICE_LIMIT: u64 = 100;
/// How far back to look for the newest event that bumps a room.
const BUMP_SCAN: usize = 100;
/// Lazily-loaded members remembered per room; beyond this the set is reset
/// (resending a member event is harmless, unbounded memory is not).
const MAX_LAZY_REMEMBERED: usize = 1000;
/// Heroes per room (as `m.heroes` in `/v3/sync`).
const MAX_HEROES: usize = 5;

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

// ---------------------------------------------------------------- request

/// The request body (query parameters `pos` and `timeout` are merged in by
/// the handler).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SlidingRequest {
    pub conn_id: Option<String>,
    pub txn_id: Option<String>,
    pub pos: Option<String>,
    pub timeout: Option<u64>,
    pub lists: BTreeMap<String, ListRequest>,
    pub room_subscriptions: BTreeMap<String, RoomConfigRequest>,
    pub extensions: ExtensionsRequest,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ListRequest {
    pub ranges: Vec<(u64, u64)>,
    /// The newer MSC spelling: one range.
    pub range: Option<(u64, u64)>,
    pub timeline_limit: Option<u64>,
    pub required_state: RequiredStateRequest,
    pub filters: Filters,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RoomConfigRequest {
    pub timeline_limit: Option<u64>,
    pub required_state: RequiredStateRequest,
}

/// `[[type, state_key], …]`, or the newer `{include, exclude, lazy_members}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RequiredStateRequest {
    Pairs(Vec<(String, String)>),
    Object {
        #[serde(default)]
        include: Vec<StateElement>,
        #[serde(default)]
        exclude: Vec<StateElement>,
        #[serde(default)]
        lazy_members: bool,
    },
}

impl Default for RequiredStateRequest {
    fn default() -> Self {
        RequiredStateRequest::Pairs(Vec::new())
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StateElement {
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    pub state_key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Filters {
    pub is_dm: Option<bool>,
    pub is_encrypted: Option<bool>,
    #[serde(alias = "is_invited")]
    pub is_invite: Option<bool>,
    pub spaces: Option<Vec<String>>,
    pub room_types: Option<Vec<Option<String>>>,
    pub not_room_types: Vec<Option<String>>,
    pub tags: Option<Vec<String>>,
    pub not_tags: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ExtensionsRequest {
    pub to_device: ToDeviceRequest,
    pub e2ee: Toggle,
    pub account_data: RoomExtension,
    pub receipts: RoomExtension,
    pub typing: RoomExtension,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ToDeviceRequest {
    pub enabled: Option<bool>,
    pub since: Option<String>,
    pub limit: Option<u64>,
}

impl ToDeviceRequest {
    /// The acknowledged position: messages up to it may be deleted.
    pub fn since_pos(&self) -> Option<StreamPos> {
        if self.enabled != Some(true) {
            return None;
        }
        self.since.as_deref().and_then(|s| s.parse().ok()).map(StreamPos)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Toggle {
    pub enabled: Option<bool>,
}

/// An extension scoped to rooms: `lists` (`*` = all) and `rooms` (`*` = all
/// subscriptions); absent means all of them.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RoomExtension {
    pub enabled: Option<bool>,
    pub lists: Option<Vec<String>>,
    pub rooms: Option<Vec<String>>,
}

/// One `required_state` config, normalised: `$ME` replaced by the user,
/// `$LAZY` turned into `lazy`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct RequiredState {
    include: BTreeSet<(String, String)>,
    exclude: BTreeSet<(String, String)>,
    lazy: bool,
}

impl RequiredState {
    fn from_request(r: &RequiredStateRequest, user_id: &str) -> RequiredState {
        let me = |k: String| if k == "$ME" { user_id.to_owned() } else { k };
        let mut out = RequiredState::default();
        let add = |set: &mut BTreeSet<(String, String)>, lazy: &mut bool, t: String, k: String| {
            if t == "m.room.member" && k == "$LAZY" {
                *lazy = true;
            } else {
                set.insert((t, me(k)));
            }
        };
        match r {
            RequiredStateRequest::Pairs(pairs) => {
                for (t, k) in pairs {
                    add(&mut out.include, &mut out.lazy, t.clone(), k.clone());
                }
            }
            RequiredStateRequest::Object { include, exclude, lazy_members } => {
                out.lazy = *lazy_members;
                let pair = |e: &StateElement| {
                    (
                        e.event_type.clone().unwrap_or_else(|| "*".into()),
                        e.state_key.clone().unwrap_or_else(|| "*".into()),
                    )
                };
                for e in include {
                    let (t, k) = pair(e);
                    add(&mut out.include, &mut out.lazy, t, k);
                }
                for e in exclude {
                    let (t, k) = pair(e);
                    out.exclude.insert((t, me(k)));
                }
            }
        }
        out
    }

    fn set_matches(set: &BTreeSet<(String, String)>, t: &str, k: &str) -> bool {
        set.iter().any(|(st, sk)| (st == "*" || st == t) && (sk == "*" || sk == k))
    }

    fn matches(&self, t: &str, k: &str) -> bool {
        Self::set_matches(&self.include, t, k) && !Self::set_matches(&self.exclude, t, k)
    }

    fn has_wildcard(&self) -> bool {
        self.include.iter().any(|(t, k)| t == "*" || k == "*")
    }
}

/// The combined config of a room matched by several lists/subscriptions:
/// the largest timeline and the union of the required state.
#[derive(Clone, Debug, Default)]
struct RoomConfig {
    timeline_limit: usize,
    required: BTreeSet<RequiredState>,
    lists: BTreeSet<String>,
    subscribed: bool,
}

impl RoomConfig {
    fn merge(&mut self, limit: Option<u64>, required: RequiredState) {
        let limit = limit.unwrap_or(1).min(MAX_TIMELINE_LIMIT) as usize;
        self.timeline_limit = self.timeline_limit.max(limit);
        self.required.insert(required);
    }

    fn matches(&self, t: &str, k: &str) -> bool {
        self.required.iter().any(|r| r.matches(t, k))
    }

    fn lazy(&self) -> bool {
        self.required.iter().any(|r| r.lazy)
    }

    fn has_wildcard(&self) -> bool {
        self.required.iter().any(RequiredState::has_wildcard)
    }

    /// Fingerprint of the state config, to notice a change between requests.
    fn state_hash(&self) -> u64 {
        fingerprint(&self.required)
    }
}

fn fingerprint<T: Hash + ?Sized>(v: &T) -> u64 {
    let mut h = DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

// ------------------------------------------------------------ connections

/// What one response told the client: the base of the next incremental one.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    stream: StreamPos,
    typing: u64,
    rooms: HashMap<RoomShort, SentRoom>,
    list_counts: BTreeMap<String, usize>,
}

/// What the client has of one room, as fingerprints (no event data).
#[derive(Clone, Debug)]
struct SentRoom {
    /// The room's events and state are the client's up to here.
    stream: StreamPos,
    /// The user's member event the room was sent with.
    membership_stream: StreamPos,
    /// The client holds at least this many of the latest events.
    timeline_limit: usize,
    state_hash: u64,
    meta: Meta,
    /// Members whose member event was sent (hashes of user IDs).
    lazy_sent: HashSet<u64>,
}

/// The summary fields of a room response, compared to send only changes.
#[derive(Clone, Debug, Default, PartialEq)]
struct Meta {
    name: u64,
    avatar: u64,
    heroes: u64,
    is_dm: bool,
    bump: u64,
    joined: usize,
    invited: usize,
    unread: (u64, u64),
}

#[derive(Clone, Copy, Debug)]
pub struct Bump {
    latest: StreamPos,
    stamp: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ConnKey {
    user_id: String,
    device_id: String,
    conn_id: String,
}

struct Connection {
    used: u64,
    snapshots: Vec<(u64, Rc<Snapshot>)>,
    /// Bump stamps per room with the newest event they were computed at.
    bumps: HashMap<RoomShort, Bump>,
}

/// All sliding sync connections of the server (in memory, bounded).
pub struct Connections {
    conns: HashMap<ConnKey, Connection>,
    clock: u64,
    /// Distinguishes this process's `pos` tokens from an earlier run's.
    epoch: u64,
}

impl Default for Connections {
    fn default() -> Self {
        Connections::new()
    }
}

impl Connections {
    pub fn new() -> Connections {
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Connections { conns: HashMap::new(), clock: 0, epoch }
    }

    fn key(user_id: &str, device_id: &str, conn_id: &str) -> ConnKey {
        ConnKey {
            user_id: user_id.to_owned(),
            device_id: device_id.to_owned(),
            conn_id: conn_id.to_owned(),
        }
    }

    /// The snapshot a request builds on and the connection's bump cache.
    /// Without `pos` the connection starts afresh; an unknown `pos` is
    /// `M_UNKNOWN_POS`.
    pub fn begin(
        &mut self,
        user_id: &str,
        device_id: &str,
        conn_id: &str,
        pos: Option<&str>,
    ) -> Result<(Rc<Snapshot>, HashMap<RoomShort, Bump>), MatrixError> {
        if conn_id.len() > MAX_CONN_ID_LEN {
            return Err(MatrixError::invalid_param("conn_id is too long"));
        }
        self.clock += 1;
        let key = Self::key(user_id, device_id, conn_id);
        let Some(pos) = pos else {
            self.conns.remove(&key);
            self.make_room_for(&key);
            let bumps = HashMap::new();
            self.conns.insert(
                key,
                Connection { used: self.clock, snapshots: Vec::new(), bumps: bumps.clone() },
            );
            return Ok((Rc::new(Snapshot::default()), bumps));
        };
        let unknown = || MatrixError::new(ErrorKind::UnknownPos, "Unknown or expired pos");
        let id = self.parse_pos(pos).ok_or_else(unknown)?;
        let conn = self.conns.get_mut(&key).ok_or_else(unknown)?;
        let snap = conn.snapshots.iter().find(|(i, _)| *i == id).map(|(_, s)| s.clone());
        let snap = snap.ok_or_else(unknown)?;
        // The client has what `pos` describes: older snapshots are done with.
        conn.snapshots.retain(|(i, _)| *i >= id);
        conn.used = self.clock;
        Ok((snap, conn.bumps.clone()))
    }

    /// Stores the snapshot of a response; returns its `pos`.
    pub fn commit(
        &mut self,
        user_id: &str,
        device_id: &str,
        conn_id: &str,
        snapshot: Snapshot,
        bumps: HashMap<RoomShort, Bump>,
    ) -> String {
        self.clock += 1;
        let id = self.clock;
        let key = Self::key(user_id, device_id, conn_id);
        if !self.conns.contains_key(&key) {
            // Evicted while the request ran: start it again.
            self.make_room_for(&key);
        }
        let conn = self.conns.entry(key).or_insert_with(|| Connection {
            used: 0,
            snapshots: Vec::new(),
            bumps: HashMap::new(),
        });
        conn.used = id;
        conn.bumps = bumps;
        conn.snapshots.push((id, Rc::new(snapshot)));
        if conn.snapshots.len() > SNAPSHOTS_PER_CONNECTION {
            // Keep the oldest (what the client builds on) and the newest.
            conn.snapshots.remove(1);
        }
        format!("{}_{id}", self.epoch)
    }

    fn parse_pos(&self, pos: &str) -> Option<u64> {
        let (epoch, id) = pos.split_once('_')?;
        if epoch.parse::<u64>().ok()? != self.epoch {
            return None;
        }
        id.parse().ok()
    }

    /// Evicts least recently used connections so `key` fits the caps.
    fn make_room_for(&mut self, key: &ConnKey) {
        loop {
            let same_device =
                |k: &ConnKey| k.user_id == key.user_id && k.device_id == key.device_id;
            let device_count = self.conns.keys().filter(|k| same_device(k)).count();
            let victim = if device_count >= MAX_CONNECTIONS_PER_DEVICE {
                self.conns.iter().filter(|(k, _)| same_device(k)).min_by_key(|(_, c)| c.used)
            } else if self.conns.len() >= MAX_CONNECTIONS {
                self.conns.iter().min_by_key(|(_, c)| c.used)
            } else {
                return;
            };
            let Some((victim, _)) = victim else { return };
            let victim = victim.clone();
            self.conns.remove(&victim);
        }
    }

    /// Number of live connections (for tests and metrics).
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }
}

// --------------------------------------------------------------- assembly

/// What a request reads from.
pub struct SyncInput<'a> {
    pub read: &'a ReadTxn,
    pub typing: &'a Typing,
    pub user_id: &'a str,
    pub device_id: &'a str,
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
    room_id: String,
    membership: Membership,
    bump: u64,
}

/// Computes one response on top of `prev` (`initial`: no `pos`).
pub fn compute(
    input: &SyncInput,
    req: &SlidingRequest,
    prev: &Snapshot,
    initial: bool,
    bumps: &mut HashMap<RoomShort, Bump>,
) -> Result<Outcome, MatrixError> {
    let read = input.read;
    let user = input.user_id;
    let direct = dm_rooms(read, user)?;

    // The server's list: joined, invited, knocked; left rooms the client
    // was sent before; kicks and bans (the user may not know of them).
    let mut cands = Vec::new();
    for m in read.user_memberships(user)? {
        if m.stream > input.upto {
            continue;
        }
        let listed = match m.membership.as_str() {
            "join" | "invite" | "knock" => true,
            "leave" | "ban" => {
                prev.rooms.contains_key(&m.room) || removed_by_other(read, &m, user)?
            }
            _ => false,
        };
        if !listed {
            continue;
        }
        let Some(room_id) = read.room_id(m.room)? else { continue };
        let bump = bump_stamp(read, &m, bumps)?;
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
            if m.stream > input.upto || !Visibility::load(read, user, room)?.may_look() {
                continue;
            }
            let bump = bump_stamp(read, &m, bumps)?;
            cands.push(Candidate { room, room_id: room_id.clone(), membership: m, bump });
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
            rooms_out.insert(c.room_id.clone(), built.body);
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

/// Whether a leave/ban was done to the user by someone else (a kick or a
/// ban), which keeps the room in the list so the user learns of it.
fn removed_by_other(read: &ReadTxn, m: &Membership, user: &str) -> Result<bool, MatrixError> {
    let Some(ev) = read.event_at(m.room, m.stream)? else { return Ok(false) };
    let v = event_value(&ev, false)?;
    Ok(sender_of(&v).is_some_and(|s| s != user))
}

/// Room IDs in the user's `m.direct` account data.
fn dm_rooms(read: &ReadTxn, user: &str) -> Result<HashSet<String>, MatrixError> {
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

fn is_bump(e: &StoredEvent) -> bool {
    event_type(e).is_some_and(|t| BUMP_TYPES.contains(&t.as_str()))
}

/// `bump_stamp`: the stream position of the newest event that bumps the
/// room, or of the user's own join if later (a room just joined belongs at
/// the top); for a room the user is not in, its membership change. Cached
/// per connection by the room's newest event, so an unchanged room costs
/// one lookup.
fn bump_stamp(
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

fn newest_bump(
    read: &ReadTxn,
    room: RoomShort,
    latest: StreamPos,
) -> Result<Option<u64>, MatrixError> {
    let events = read.events_before(room, StreamPos(latest.0 + 1), BUMP_SCAN)?;
    Ok(events.iter().find(|e| is_bump(e)).map(|e| e.stream.0))
}

/// Rooms listed as `m.space.child` of the given spaces the user is joined
/// to (not recursing into subspaces, as the MSC says).
fn space_children(
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
struct Facts {
    encrypted: HashMap<RoomShort, bool>,
    room_type: HashMap<RoomShort, Option<String>>,
    tags: HashMap<RoomShort, HashSet<String>>,
}

impl Facts {
    #[allow(clippy::too_many_arguments)]
    fn passes(
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

struct RoomContext<'a> {
    input: &'a SyncInput<'a>,
    /// The connection's previous position (`None` on its first request).
    prev_stream: Option<StreamPos>,
    direct: &'a HashSet<String>,
}

struct BuiltRoom {
    body: Value,
    sent: SentRoom,
    fresh: bool,
    event_ids: HashSet<String>,
}

/// One room of the response, or `None` when the client is up to date.
fn room_response(
    ctx: &RoomContext,
    c: &Candidate,
    cfg: &RoomConfig,
    sent: Option<&SentRoom>,
) -> Result<Option<BuiltRoom>, MatrixError> {
    let read = ctx.input.read;
    let user = ctx.input.user_id;
    let m = &c.membership;
    // A membership change (invite → join, join → leave) replaces the room.
    let sent = sent.filter(|s| s.membership_stream == m.stream);
    let fresh = sent.is_none();
    let is_dm = ctx.direct.contains(&c.room_id);
    if m.membership == "invite" || m.membership == "knock" {
        if !fresh {
            return Ok(None);
        }
        let key = if m.membership == "invite" { "invite_state" } else { "knock_state" };
        // An invite may say it is direct before `m.direct` knows the room.
        let flagged = match read.state_event(c.room, "m.room.member", user)? {
            Some(ev) => event_value(&ev, false)?["content"]["is_direct"] == json!(true),
            None => false,
        };
        let mut body = json!({
            "initial": true,
            "membership": m.membership,
            "bump_stamp": c.bump,
            key: stripped_state(read, c.room, user)?,
        });
        if is_dm || flagged {
            body["is_dm"] = json!(true);
        }
        let sent = SentRoom {
            stream: m.stream,
            membership_stream: m.stream,
            timeline_limit: 0,
            state_hash: 0,
            meta: Meta { bump: c.bump, is_dm, ..Meta::default() },
            lazy_sent: HashSet::new(),
        };
        return Ok(Some(BuiltRoom { body, sent, fresh: true, event_ids: HashSet::new() }));
    }
    let joined = m.membership == "join";
    // A room left is shown up to the leave, nothing after it.
    let end = if joined { ctx.input.upto } else { m.stream };
    let limit = cfg.timeline_limit;
    let state_hash = cfg.state_hash();
    let state_changed_cfg = sent.is_none_or(|s| s.state_hash != state_hash);
    let (from, expanded) = match sent {
        Some(s) if limit > s.timeline_limit => (StreamPos(0), true),
        Some(s) => (s.stream, false),
        None => (StreamPos(0), false),
    };
    let (mut events, limited) = read.events_after(c.room, from, end, limit)?;
    if from == StreamPos(0) && (!joined || restricted_history(read, c.room)?) {
        let vis = Visibility::load(read, user, c.room)?;
        events.retain(|e| vis.can_see(e));
    }
    let since = sent.map(|s| s.stream);
    let changes = match since {
        Some(s) => read.state_changes(c.room, s, end)?,
        None => Vec::new(),
    };
    // Recompute the summary only when something could have changed it.
    let meta_due = fresh || state_changed_cfg || !changes.is_empty();
    let unread_due = joined
        && (fresh
            || !events.is_empty()
            || since.is_some_and(|s| read.receipts_changed(c.room, s).unwrap_or(true)));
    let mut meta = sent.map(|s| s.meta.clone()).unwrap_or_default();
    meta.bump = c.bump;
    meta.is_dm = is_dm;
    let mut summary = Map::new();
    if meta_due {
        let name = state_content(read, c.room, "m.room.name", "", end)?
            .and_then(|v| v["name"].as_str().filter(|n| !n.is_empty()).map(str::to_owned));
        let avatar = state_content(read, c.room, "m.room.avatar", "", end)?
            .and_then(|v| v["url"].as_str().filter(|n| !n.is_empty()).map(str::to_owned));
        let joined_users = read.members_with(c.room, "join")?;
        let invited_users = read.members_with(c.room, "invite")?;
        let heroes = if name.is_none() {
            heroes(read, c.room, user, &joined_users, &invited_users)?
        } else {
            Vec::new()
        };
        let new = Meta {
            name: fingerprint(&name),
            avatar: fingerprint(&avatar),
            heroes: fingerprint(&serde_json::to_string(&heroes).unwrap_or_default()),
            joined: joined_users.len(),
            invited: invited_users.len(),
            ..meta.clone()
        };
        if (fresh || new.name != meta.name)
            && let Some(n) = &name
        {
            summary.insert("name".into(), json!(n));
        }
        if fresh || new.avatar != meta.avatar {
            // `null` tells an up-to-date client the avatar was removed.
            if avatar.is_some() || !fresh {
                summary.insert("avatar".into(), json!(avatar));
            }
        }
        if (fresh || new.heroes != meta.heroes) && !heroes.is_empty() {
            summary.insert("heroes".into(), json!(heroes));
        }
        if joined && (fresh || new.joined != meta.joined) {
            summary.insert("joined_count".into(), json!(new.joined));
        }
        if joined && (fresh || new.invited != meta.invited) {
            summary.insert("invited_count".into(), json!(new.invited));
        }
        meta = new;
    }
    if unread_due {
        let unread = read.unread_counts(user, c.room, read_position(read, user, c.room)?)?;
        if fresh || unread != meta.unread {
            summary.insert("notification_count".into(), json!(unread.0));
            summary.insert("highlight_count".into(), json!(unread.1));
        }
        meta.unread = unread;
    }
    let old_meta = sent.map(|s| &s.meta);
    if fresh || old_meta.is_some_and(|o| o.bump != meta.bump) {
        summary.insert("bump_stamp".into(), json!(meta.bump));
    }
    if fresh && is_dm || old_meta.is_some_and(|o| o.is_dm != is_dm) {
        summary.insert("is_dm".into(), json!(is_dm));
    }

    // Required state: all of it that the config asks for on a fresh room or
    // a changed config (the MSC lets us resend what the client has), else
    // what changed; then the members the timeline needs (`$LAZY`).
    let mut lazy_sent = sent.map(|s| s.lazy_sent.clone()).unwrap_or_default();
    if limited || lazy_sent.len() > MAX_LAZY_REMEMBERED {
        // After a gap the client must drop its member cache (MSC4186).
        lazy_sent.clear();
    }
    let mut keys: BTreeSet<(String, String)> = BTreeSet::new();
    if fresh || state_changed_cfg {
        if cfg.has_wildcard() {
            for (t, k, _) in read.room_state(c.room)? {
                if cfg.matches(&t, &k) {
                    keys.insert((t, k));
                }
            }
        } else {
            for r in &cfg.required {
                for (t, k) in &r.include {
                    if cfg.matches(t, k) {
                        keys.insert((t.clone(), k.clone()));
                    }
                }
            }
        }
    } else {
        for (t, k) in &changes {
            if cfg.matches(t, k) || (cfg.lazy() && !limited && t == "m.room.member") {
                keys.insert((t.clone(), k.clone()));
            }
        }
    }
    let timeline: Vec<Value> =
        events.iter().map(|e| event_value(e, true)).collect::<Result<_, _>>()?;
    if cfg.lazy() {
        for v in &timeline {
            let mut users = Vec::new();
            if let Some(s) = sender_of(v) {
                users.push(s.to_owned());
            }
            if v["type"] == "m.room.member"
                && let Some(k) = v["state_key"].as_str()
            {
                users.push(k.to_owned());
            }
            for u in users {
                if !lazy_sent.contains(&fingerprint(&u)) {
                    keys.insert(("m.room.member".into(), u));
                }
            }
        }
    }
    let mut required_state = Vec::new();
    for (t, k) in &keys {
        if let Some(ev) = read.state_event(c.room, t, k)?
            && ev.stream <= end
        {
            if t == "m.room.member" {
                lazy_sent.insert(fingerprint(k));
            }
            required_state.push(event_value(&ev, true)?);
        }
    }

    let live_after = sent.map(|s| s.stream).or(ctx.prev_stream);
    let num_live = match live_after {
        Some(p) => events.iter().filter(|e| e.stream > p).count(),
        None => 0,
    };
    if !fresh && !expanded && timeline.is_empty() && required_state.is_empty() && summary.is_empty()
    {
        return Ok(None);
    }
    let mut body = Map::new();
    if fresh {
        body.insert("initial".into(), json!(true));
    }
    if fresh || sent.is_some_and(|s| s.membership_stream != m.stream) {
        body.insert("membership".into(), json!(m.membership));
    }
    body.extend(summary);
    let event_ids: HashSet<String> =
        timeline.iter().filter_map(|v| v["event_id"].as_str().map(str::to_owned)).collect();
    if let Some(first) = events.first() {
        body.insert("prev_batch".into(), json!(pagination_token(first.stream)));
    } else if fresh {
        body.insert("prev_batch".into(), json!(pagination_token(StreamPos(end.0 + 1))));
    }
    if !timeline.is_empty() || fresh {
        body.insert("timeline".into(), Value::Array(timeline));
        body.insert("num_live".into(), json!(num_live));
    }
    if limited {
        body.insert("limited".into(), json!(true));
    }
    if expanded {
        body.insert("expanded_timeline".into(), json!(true));
        body.insert("unstable_expanded_timeline".into(), json!(true));
    }
    if !required_state.is_empty() {
        body.insert("required_state".into(), Value::Array(required_state));
    }
    let timeline_limit = match sent {
        Some(s) if !expanded && !limited => s.timeline_limit,
        _ => limit,
    };
    let sent = SentRoom {
        stream: end,
        membership_stream: m.stream,
        timeline_limit,
        state_hash,
        meta,
        lazy_sent,
    };
    Ok(Some(BuiltRoom { body: Value::Object(body), sent, fresh, event_ids }))
}

/// The content of a current state event, if it existed at `end`.
fn state_content(
    read: &ReadTxn,
    room: RoomShort,
    t: &str,
    k: &str,
    end: StreamPos,
) -> Result<Option<Value>, MatrixError> {
    match read.state_event(room, t, k)? {
        Some(ev) if ev.stream <= end => Ok(Some(event_value(&ev, false)?["content"].take())),
        _ => Ok(None),
    }
}

/// Up to five other members (joined first, then invited), with their
/// display names and avatars from their member events.
fn heroes(
    read: &ReadTxn,
    room: RoomShort,
    user: &str,
    joined: &[String],
    invited: &[String],
) -> Result<Vec<Value>, MatrixError> {
    let mut out = Vec::new();
    for u in joined.iter().chain(invited).filter(|u| *u != user).take(MAX_HEROES) {
        let mut hero = json!({ "user_id": u });
        if let Some(ev) = read.state_event(room, "m.room.member", u)? {
            let v = event_value(&ev, false)?;
            if let Some(n) = v["content"]["displayname"].as_str() {
                hero["displayname"] = json!(n);
            }
            if let Some(a) = v["content"]["avatar_url"].as_str() {
                hero["avatar_url"] = json!(a);
            }
        }
        out.push(hero);
    }
    Ok(out)
}

// ------------------------------------------------------------- extensions

/// The rooms an extension covers.
struct Scope<'a> {
    lists: &'a HashMap<&'a str, Vec<RoomShort>>,
    subscribed: &'a [(String, RoomShort)],
}

impl Scope<'_> {
    fn rooms(&self, ext: &RoomExtension) -> BTreeSet<RoomShort> {
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

fn to_device(input: &SyncInput, req: &ToDeviceRequest) -> Result<(Value, usize), MatrixError> {
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

fn e2ee(input: &SyncInput, since: Option<StreamPos>) -> Result<(Value, bool), MatrixError> {
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

fn account_data(
    input: &SyncInput,
    since: Option<StreamPos>,
    rooms: &BTreeSet<RoomShort>,
    by_room: &HashMap<RoomShort, &Candidate>,
    fresh: &HashMap<RoomShort, HashSet<String>>,
) -> Result<Value, MatrixError> {
    let read = input.read;
    let user = input.user_id;
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
    if since.is_none() && !global.iter().any(|e| e["type"] == "m.push_rules") {
        // As in `/v3/sync`: clients read push rules from account data.
        let rules = serde_json::to_value(crate::push::default_ruleset(user))
            .map_err(|e| MatrixError::internal("push rules", e))?;
        global.push(json!({ "type": "m.push_rules", "content": rules }));
    }
    Ok(json!({ "global": global, "rooms": per_room }))
}

fn receipts(
    input: &SyncInput,
    since: Option<StreamPos>,
    rooms: &BTreeSet<RoomShort>,
    by_room: &HashMap<RoomShort, &Candidate>,
    fresh: &HashMap<RoomShort, HashSet<String>>,
) -> Result<Value, MatrixError> {
    let read = input.read;
    let user = input.user_id;
    let mut out = Map::new();
    for room in rooms {
        let Some(c) = by_room.get(room) else { continue };
        if c.membership.membership != "join" {
            continue;
        }
        // A room new to the client: the receipts on the events it is sent
        // and the user's own; otherwise what changed.
        let (list, only) = match fresh.get(room) {
            Some(ids) => (read.receipts(*room, None)?, Some(ids)),
            None => (read.receipts(*room, since)?, None),
        };
        let mut content: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
        for r in list {
            if r.receipt_type == "m.read.private" && r.user_id != user {
                continue;
            }
            if only.is_some_and(|ids| !ids.contains(&r.event_id) && r.user_id != user) {
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
            out.insert(c.room_id.clone(), json!({ "type": "m.receipt", "content": content }));
        }
    }
    Ok(json!({ "rooms": out }))
}

fn typing(
    input: &SyncInput,
    since: Option<u64>,
    rooms: &BTreeSet<RoomShort>,
    by_room: &HashMap<RoomShort, &Candidate>,
    fresh: &HashMap<RoomShort, HashSet<String>>,
) -> Value {
    let mut out = Map::new();
    for room in rooms {
        let Some(c) = by_room.get(room) else { continue };
        if c.membership.membership != "join" {
            continue;
        }
        let since = if fresh.contains_key(room) { None } else { since };
        if let Some(users) = input.typing.changed_since(*room, since) {
            out.insert(
                c.room_id.clone(),
                json!({ "type": "m.typing", "content": { "user_ids": users } }),
            );
        }
    }
    json!({ "rooms": out })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_state_pairs_normalise_me_and_lazy() {
        let r = RequiredStateRequest::Pairs(vec![
            ("m.room.member".into(), "$LAZY".into()),
            ("m.room.member".into(), "$ME".into()),
            ("m.room.name".into(), "".into()),
        ]);
        let rs = RequiredState::from_request(&r, "@a:x");
        assert!(rs.lazy);
        assert!(rs.matches("m.room.member", "@a:x"));
        assert!(!rs.matches("m.room.member", "@b:x"));
        assert!(rs.matches("m.room.name", ""));
        assert!(!rs.has_wildcard());
    }

    #[test]
    fn wildcards_and_excludes_match() {
        let r: RequiredStateRequest = serde_json::from_value(json!({
            "include": [{}], "exclude": [{ "type": "m.room.create" }]
        }))
        .unwrap();
        let rs = RequiredState::from_request(&r, "@a:x");
        assert!(rs.matches("m.room.topic", ""));
        assert!(!rs.matches("m.room.create", ""));
        assert!(rs.has_wildcard());
    }

    #[test]
    fn unknown_pos_and_eviction() {
        let mut c = Connections::new();
        assert!(c.begin("@a:x", "D", "", Some("1_2")).is_err());
        c.begin("@a:x", "D", "", None).unwrap();
        let pos = c.commit("@a:x", "D", "", Snapshot::default(), HashMap::new());
        assert!(c.begin("@a:x", "D", "", Some(&pos)).is_ok());
        // A retry with the same pos still works.
        assert!(c.begin("@a:x", "D", "", Some(&pos)).is_ok());
        assert!(c.begin("@a:x", "D", "other", Some(&pos)).is_err());
        for i in 0..MAX_CONNECTIONS_PER_DEVICE + 3 {
            c.begin("@a:x", "D", &format!("c{i}"), None).unwrap();
        }
        assert_eq!(c.len(), MAX_CONNECTIONS_PER_DEVICE);
        assert!(c.begin("@a:x", "D", "", Some(&pos)).is_err(), "oldest was evicted");
    }
}
