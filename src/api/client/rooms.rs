//! Rooms: creation, membership, sending and reading events, state, history
//! and `/sync` (spec: client-server-api/#rooms, #room-membership,
//! #sending-events-to-a-room, #getting-events-for-a-room, #syncing).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::error::{ErrorKind, MatrixError};
use crate::http::{Caller, Reply, Request, json};
use crate::ids::{RoomAlias, RoomId, UserId};
use crate::room::build::NewEvent;
use crate::room::served::Viewer;
use crate::room::service::{self, CreateRoom, Txn};
use crate::room::version::RoomVersion;
use crate::room::visibility::{Memberships, Visibility};
use crate::server::App;
use crate::store::{ReadTxn, RoomShort, StoredEvent, StreamPos};
use crate::sync;
use crate::sync::filter::RoomEventFilter;

#[derive(Deserialize)]
struct CreateRoomBody {
    visibility: Option<String>,
    room_alias_name: Option<String>,
    name: Option<String>,
    topic: Option<String>,
    #[serde(default)]
    invite: Vec<String>,
    room_version: Option<String>,
    creation_content: Option<Map<String, Value>>,
    #[serde(default)]
    initial_state: Vec<Value>,
    preset: Option<String>,
    #[serde(default)]
    is_direct: bool,
    power_level_content_override: Option<Map<String, Value>>,
}

/// `POST /_matrix/client/v3/createRoom`
pub async fn create_room(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let body: CreateRoomBody = req.event_json()?;
    let version = match &body.room_version {
        Some(v) => RoomVersion::parse(v).ok_or_else(|| {
            MatrixError::new(
                ErrorKind::UnsupportedRoomVersion,
                format!("Room version {v} is not supported"),
            )
        })?,
        None => RoomVersion::DEFAULT,
    };
    let public = body.visibility.as_deref() == Some("public");
    let preset = match body.preset.as_deref() {
        Some(p @ ("private_chat" | "public_chat" | "trusted_private_chat")) => p.to_owned(),
        Some(other) => return Err(MatrixError::invalid_param(format!("Unknown preset {other}"))),
        None if public => "public_chat".into(),
        None => "private_chat".into(),
    };
    let creator = caller.user_id.to_string();
    let mut invite = Vec::new();
    for u in &body.invite {
        let id =
            UserId::parse(u).map_err(|e| MatrixError::invalid_param(format!("invite: {e}")))?;
        invite.push(id.to_string());
    }
    // Power levels: the spec's defaults, then the preset, then the override.
    let mut users = Map::new();
    if !version.privileged_creators() {
        users.insert(creator.clone(), json!(100));
    }
    // trusted_private_chat makes the invitees the creator's equals: from v12
    // as additional creators (see below; creators may not be listed in
    // `users` then), before as users at 100.
    if preset == "trusted_private_chat" && !version.privileged_creators() {
        for u in &invite {
            users.insert(u.clone(), json!(100));
        }
    }
    let mut pl = json!({
        "users": users, "users_default": 0,
        "events": {
            "m.room.name": 50, "m.room.power_levels": 100, "m.room.history_visibility": 100,
            "m.room.canonical_alias": 50, "m.room.avatar": 50, "m.room.tombstone": 100,
            "m.room.server_acl": 100, "m.room.encryption": 100,
        },
        "events_default": 0, "state_default": 50, "ban": 50, "kick": 50, "redact": 50,
        "invite": 0,
        "notifications": { "room": 50 },
    });
    if let Some(o) = &body.power_level_content_override {
        for (k, v) in o {
            pl[k] = v.clone();
        }
    }
    let mut initial_state = Vec::new();
    let join_rule = if preset == "public_chat" { "public" } else { "invite" };
    initial_state.push((
        "m.room.join_rules".into(),
        String::new(),
        json!({ "join_rule": join_rule }),
    ));
    initial_state.push((
        "m.room.history_visibility".into(),
        String::new(),
        json!({ "history_visibility": "shared" }),
    ));
    let guest = if preset == "public_chat" { "forbidden" } else { "can_join" };
    initial_state.push((
        "m.room.guest_access".into(),
        String::new(),
        json!({ "guest_access": guest }),
    ));
    for ev in &body.initial_state {
        let t = ev.get("type").and_then(Value::as_str).ok_or_else(|| {
            MatrixError::new(ErrorKind::InvalidRoomState, "initial_state events need a type")
        })?;
        if matches!(t, "m.room.create" | "m.room.member" | "m.room.power_levels") {
            return Err(MatrixError::new(
                ErrorKind::InvalidRoomState,
                format!("{t} cannot be in initial_state"),
            ));
        }
        let k = ev.get("state_key").and_then(Value::as_str).unwrap_or("");
        let c = ev.get("content").cloned().unwrap_or_else(|| json!({}));
        if !c.is_object() {
            return Err(MatrixError::new(
                ErrorKind::InvalidRoomState,
                "initial_state content must be an object",
            ));
        }
        initial_state.retain(|(tt, kk, _)| !(tt == t && kk == k));
        initial_state.push((t.to_owned(), k.to_owned(), c));
    }
    if let Some(n) = &body.name {
        initial_state.push(("m.room.name".into(), String::new(), json!({ "name": n })));
    }
    if let Some(t) = &body.topic {
        initial_state.push(("m.room.topic".into(), String::new(), json!({ "topic": t })));
    }
    let alias = match &body.room_alias_name {
        Some(a) => {
            let full = format!("#{a}:{}", app.config.server_name);
            RoomAlias::parse(&full)
                .map_err(|e| MatrixError::invalid_param(format!("room_alias_name: {e}")))?;
            Some(full)
        }
        None => None,
    };
    let profile = app.store.read()?.user(caller.user_id.localpart())?;
    let creator_profile = profile.map(|p| (p.displayname, p.avatar_url)).unwrap_or_default();
    let mut creation_content = body.creation_content.unwrap_or_default();
    creation_content.remove("room_version");
    // spec: createRoom, the note on `trusted_private_chat` and
    // `creation_content`: the invitees join the client's own
    // `additional_creators`, without duplicates.
    if preset == "trusted_private_chat" && version.privileged_creators() && !invite.is_empty() {
        let mut creators = match creation_content.remove("additional_creators") {
            None => Vec::new(),
            Some(Value::Array(list)) => list,
            Some(_) => {
                return Err(MatrixError::new(
                    ErrorKind::InvalidRoomState,
                    "creation_content.additional_creators must be an array of user IDs",
                ));
            }
        };
        for u in &invite {
            if !creators.iter().any(|c| c.as_str() == Some(u)) {
                creators.push(json!(u));
            }
        }
        creation_content.insert("additional_creators".into(), Value::Array(creators));
    }
    let room_id = service::create_room(
        app,
        CreateRoom {
            creator,
            version,
            creation_content,
            power_levels: pl,
            initial_state,
            invite,
            is_direct: body.is_direct,
            alias,
            public,
            creator_profile,
        },
    )
    .await?;
    Ok(json(&json!({ "room_id": room_id })))
}

/// Resolves a room ID or alias to a room ID.
fn resolve_room(app: &App, id_or_alias: &str) -> Result<String, MatrixError> {
    if id_or_alias.starts_with('#') {
        RoomAlias::parse(id_or_alias).map_err(|e| MatrixError::invalid_param(e.0))?;
        app.store
            .read()?
            .alias(id_or_alias)?
            .ok_or_else(|| MatrixError::not_found("Room alias not found"))
    } else {
        RoomId::parse(id_or_alias).map_err(|e| MatrixError::invalid_param(e.0))?;
        Ok(id_or_alias.to_owned())
    }
}

fn member_content(
    app: &App,
    user: &UserId,
    membership: &str,
    reason: Option<&Value>,
) -> Result<Value, MatrixError> {
    let mut c = json!({ "membership": membership });
    if (membership == "join" || membership == "invite")
        && let Some(p) = app.store.read()?.user(user.localpart())?
    {
        if let Some(n) = p.displayname {
            c["displayname"] = json!(n);
        }
        if let Some(a) = p.avatar_url {
            c["avatar_url"] = json!(a);
        }
    }
    if let Some(r) = reason.filter(|r| r.is_string()) {
        c["reason"] = r.clone();
    }
    Ok(c)
}

/// Sends the caller's own member event (`join`, `leave`, `knock`) with the
/// request's optional `reason`.
async fn set_own_membership(
    app: &App,
    req: &Request,
    room_id: &str,
    membership: &str,
) -> Result<(), MatrixError> {
    let caller = req.caller()?;
    let body = req.json_object()?;
    let content = member_content(app, &caller.user_id, membership, body.get("reason"))?;
    let me = caller.user_id.as_str();
    service::send(app, room_id, NewEvent::member(me, me, content), None).await?;
    Ok(())
}

/// `POST /join/{roomIdOrAlias}` and `POST /rooms/{roomId}/join`
pub async fn join(app: &App, req: &Request, id_or_alias: &str) -> Result<Reply, MatrixError> {
    let room_id = resolve_room(app, id_or_alias)?;
    set_own_membership(app, req, &room_id, "join").await?;
    Ok(json(&json!({ "room_id": room_id })))
}

/// `POST /rooms/{roomId}/leave`
pub async fn leave(app: &App, req: &Request, room_id: &str) -> Result<Reply, MatrixError> {
    set_own_membership(app, req, room_id, "leave").await?;
    Ok(json(&json!({})))
}

/// `POST /rooms/{roomId}/invite|kick|ban|unban`: a membership change for
/// another user.
pub async fn change_membership(
    app: &App,
    req: &Request,
    room_id: &str,
    action: &str,
) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let body = req.json_object()?;
    let target = body
        .get("user_id")
        .and_then(Value::as_str)
        .ok_or_else(|| MatrixError::missing_param("user_id is required"))?;
    let target = UserId::parse(target).map_err(|e| MatrixError::invalid_param(e.0))?;
    let read = app.store.read()?;
    let short = room_short(&read, room_id)?;
    let current = read.membership(target.as_str(), short)?.map(|m| m.membership);
    drop(read);
    let membership = match action {
        "invite" => {
            if target.server_name() == app.config.server_name
                && app.store.read()?.user(target.localpart())?.is_none()
            {
                return Err(MatrixError::not_found("No such user on this server"));
            }
            "invite"
        }
        "kick" => {
            if !matches!(current.as_deref(), Some("join" | "invite" | "knock")) {
                return Err(MatrixError::forbidden("The user is not in the room"));
            }
            "leave"
        }
        "ban" => "ban",
        _ => {
            if current.as_deref() != Some("ban") {
                return Err(MatrixError::new(ErrorKind::BadState, "The user is not banned"));
            }
            "leave"
        }
    };
    let content = member_content(app, &target, membership, body.get("reason"))?;
    let ev = NewEvent::member(caller.user_id.as_str(), target.as_str(), content);
    service::send(app, room_id, ev, None).await?;
    Ok(json(&json!({})))
}

pub(crate) fn room_short(read: &ReadTxn, room_id: &str) -> Result<RoomShort, MatrixError> {
    read.room(room_id)?
        .map(|r| RoomShort(r.short))
        .ok_or_else(|| MatrixError::not_found("Room not found"))
}

/// How far into a room's stream the caller may read: everything while
/// joined (or while the room is world-readable), up to their departure once
/// they left. Which events inside that range they may see is decided per
/// event by [`Visibility`].
pub(crate) fn visible_upto(
    read: &ReadTxn,
    user: &str,
    room: RoomShort,
) -> Result<StreamPos, MatrixError> {
    match read.membership(user, room)? {
        Some(m) if m.membership == "join" => Ok(StreamPos(u64::MAX)),
        _ if world_readable_now(read, room)? => Ok(StreamPos(u64::MAX)),
        Some(m) if m.membership == "leave" || m.membership == "ban" => Ok(m.stream),
        _ => Err(MatrixError::forbidden("You are not a member of this room")),
    }
}

fn world_readable_now(read: &ReadTxn, room: RoomShort) -> Result<bool, MatrixError> {
    Ok(match read.state_event(room, "m.room.history_visibility", "")? {
        Some(ev) => parse(&ev)?["content"]["history_visibility"] == "world_readable",
        None => false,
    })
}

/// `GET /_matrix/client/v3/joined_rooms`
pub fn joined_rooms(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let read = app.store.read()?;
    let mut rooms = Vec::new();
    for m in read.user_memberships(caller.user_id.as_str())? {
        if m.membership == "join"
            && let Some(id) = read.room_id(m.room)?
        {
            rooms.push(id);
        }
    }
    Ok(json(&json!({ "joined_rooms": rooms })))
}

/// `PUT /rooms/{roomId}/send/{eventType}/{txnId}`
pub async fn send_message_event(
    app: &App,
    req: &Request,
    room_id: &str,
    event_type: &str,
    txn_id: &str,
) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let content = Value::Object(req.event_content()?);
    let ev = NewEvent {
        event_type: event_type.to_owned(),
        state_key: None,
        sender: caller.user_id.to_string(),
        content,
        redacts: None,
        txn: None,
    };
    let event_id = service::send(app, room_id, ev, Some(Txn::of(caller, txn_id))).await?;
    Ok(json(&json!({ "event_id": event_id })))
}

/// `PUT /rooms/{roomId}/state/{eventType}/{stateKey}`
pub async fn set_room_state(
    app: &App,
    req: &Request,
    room_id: &str,
    event_type: &str,
    state_key: &str,
) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let content = Value::Object(req.event_content()?);
    if event_type == "m.room.member" {
        UserId::parse(state_key)
            .map_err(|e| MatrixError::invalid_param(format!("state_key: {e}")))?;
    }
    let ev = NewEvent {
        event_type: event_type.to_owned(),
        state_key: Some(state_key.to_owned()),
        sender: caller.user_id.to_string(),
        content,
        redacts: None,
        txn: None,
    };
    let event_id = service::send(app, room_id, ev, None).await?;
    Ok(json(&json!({ "event_id": event_id })))
}

/// A stored event for a client (without another device's transaction ID).
pub(crate) fn parse(e: &StoredEvent) -> Result<Value, MatrixError> {
    crate::room::served::parse(&e.json, None)
}

/// `GET /rooms/{roomId}/state/{eventType}/{stateKey}`
pub fn get_room_state_event(
    app: &App,
    req: &Request,
    room_id: &str,
    event_type: &str,
    state_key: &str,
) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let read = app.store.read()?;
    let short = room_short(&read, room_id)?;
    let upto = visible_upto(&read, caller.user_id.as_str(), short)?;
    let ev = read
        .state_event(short, event_type, state_key)?
        .filter(|e| e.stream <= upto)
        .ok_or_else(|| MatrixError::not_found("State event not found"))?;
    let v = parse(&ev)?;
    if req.query("format") == Some("event") { Ok(json(&v)) } else { Ok(json(&v["content"])) }
}

/// `GET /rooms/{roomId}/state`
pub fn get_room_state(app: &App, req: &Request, room_id: &str) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let read = app.store.read()?;
    let short = room_short(&read, room_id)?;
    visible_upto(&read, caller.user_id.as_str(), short)?;
    let mut out = Vec::new();
    for (t, k, _) in read.room_state(short)? {
        if let Some(ev) = read.state_event(short, &t, &k)? {
            out.push(parse(&ev)?);
        }
    }
    Ok(json(&out))
}

/// An event of a room that `user` may see, with how far into the room they
/// may read and the visibility judge for its neighbours. Anything else
/// (unknown, in another room, after they left, hidden by history
/// visibility) is the same `404 M_NOT_FOUND`, so existence does not leak.
pub(crate) struct SeenEvent {
    pub event: StoredEvent,
    pub upto: StreamPos,
    pub vis: Visibility,
}

pub(crate) fn visible_event(
    read: &ReadTxn,
    user: &str,
    room: RoomShort,
    event_id: &str,
) -> Result<SeenEvent, MatrixError> {
    let not_found = || MatrixError::not_found("Event not found");
    // A non-member gets the same answer as for a missing event (spec:
    // 404 "not found or you do not have permission"), not the 403 of
    // `visible_upto`, which would confirm the room exists.
    let upto = match visible_upto(read, user, room) {
        Err(e) if e.kind == ErrorKind::Forbidden => return Err(not_found()),
        other => other?,
    };
    let (r, pos) = read.event_position(event_id)?.ok_or_else(not_found)?;
    if r != room || pos > upto {
        return Err(not_found());
    }
    let event = read.event_at(r, pos)?.ok_or_else(not_found)?;
    let vis = Visibility::load(read, user, room)?;
    if !vis.can_see(&event) {
        return Err(not_found());
    }
    Ok(SeenEvent { event, upto, vis })
}

/// `GET /rooms/{roomId}/event/{eventId}`
pub fn get_event(
    app: &App,
    req: &Request,
    room_id: &str,
    event_id: &str,
) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let read = app.store.read()?;
    // An unknown room answers as an unknown event does.
    let short = match room_short(&read, room_id) {
        Err(e) if e.kind == ErrorKind::NotFound => {
            return Err(MatrixError::not_found("Event not found"));
        }
        other => other?,
    };
    let seen = visible_event(&read, caller.user_id.as_str(), short, event_id)?;
    Ok(json(&parse_bundled(&read, short, &seen.event, caller, seen.vis.memberships())?))
}

/// A stored event for the caller's device with its bundled aggregations
/// and the caller's membership at it, as the spec asks for `/event`,
/// `/messages`, `/context` and `/sync`.
pub(crate) fn parse_bundled(
    read: &ReadTxn,
    room: RoomShort,
    e: &StoredEvent,
    caller: &Caller,
    memberships: &Memberships,
) -> Result<Value, MatrixError> {
    let viewer = Viewer { user: caller.user_id.as_str(), device: caller.device_id.as_str() };
    let mut v = crate::room::served::parse(&e.json, Some(viewer))?;
    crate::room::served::set_membership(&mut v, memberships.at(e.stream));
    crate::room::relations::bundle(read, room, &mut v, caller.user_id.as_str())?;
    Ok(v)
}

/// `GET /rooms/{roomId}/joined_members`
pub fn joined_members(app: &App, req: &Request, room_id: &str) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let read = app.store.read()?;
    let short = room_short(&read, room_id)?;
    visible_upto(&read, caller.user_id.as_str(), short)?;
    let mut joined = Map::new();
    for u in read.members_with(short, "join")? {
        let content = match read.state_event(short, "m.room.member", &u)? {
            Some(ev) => parse(&ev)?["content"].clone(),
            None => json!({}),
        };
        joined.insert(u, json!({ "display_name": content.get("displayname"), "avatar_url": content.get("avatar_url") }));
    }
    Ok(json(&json!({ "joined": joined })))
}

/// `GET /rooms/{roomId}/members`
pub fn members(app: &App, req: &Request, room_id: &str) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let read = app.store.read()?;
    let short = room_short(&read, room_id)?;
    let upto = visible_upto(&read, caller.user_id.as_str(), short)?;
    let only = req.query("membership");
    let not = req.query("not_membership");
    // `at`: the membership as of a sync or pagination token; a user who
    // left sees it as of their departure at the latest.
    let at = match req.query("at") {
        Some(t) => {
            let pos = match sync::parse_since(t) {
                Some((p, _)) => p,
                None => sync::parse_pagination(t)
                    .map(|p| StreamPos(p.0.saturating_sub(1)))
                    .ok_or_else(|| MatrixError::invalid_param("at is not a valid token"))?,
            };
            pos.min(upto)
        }
        None => upto,
    };
    let mut chunk = Vec::new();
    for (_, pos) in read.state_of_type_at(short, "m.room.member", at)? {
        if let Some(ev) = read.event_at(short, pos)? {
            let v = parse(&ev)?;
            let m = v["content"]["membership"].as_str().unwrap_or("");
            if only.is_some_and(|o| o != m) || not.is_some_and(|n| n == m) {
                continue;
            }
            chunk.push(v);
        }
    }
    Ok(json(&json!({ "chunk": chunk })))
}

/// `GET /rooms/{roomId}/messages`
pub fn messages(app: &App, req: &Request, room_id: &str) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let read = app.store.read()?;
    let short = room_short(&read, room_id)?;
    let upto = visible_upto(&read, caller.user_id.as_str(), short)?;
    let dir = req.query("dir").unwrap_or("b");
    let limit: usize = match req.query("limit") {
        Some(l) => l.parse().map_err(|_| MatrixError::invalid_param("limit must be an integer"))?,
        None => 10,
    };
    let limit = limit.clamp(1, 1000);
    let from = match req.query("from") {
        Some(f) => Some(
            sync::parse_pagination(f)
                .ok_or_else(|| MatrixError::invalid_param("from is not a valid token"))?,
        ),
        None => None,
    };
    let to = match req.query("to") {
        Some(t) => Some(
            sync::parse_pagination(t)
                .ok_or_else(|| MatrixError::invalid_param("to is not a valid token"))?,
        ),
        None => None,
    };
    let filter = match req.query("filter") {
        Some(f) => RoomEventFilter::parse_query(f)?,
        None => RoomEventFilter::default(),
    };
    if !matches!(dir, "b" | "f") {
        return Err(MatrixError::invalid_param("dir must be b or f"));
    }
    let vis = Visibility::load(&read, caller.user_id.as_str(), short)?;
    let page = if filter.allows_room(room_id) {
        scan_page(&read, short, dir == "b", from, to, upto, limit, &|e| {
            Ok(vis.can_see(e) && (filter.is_open() || filter.allows_event(&parse(e)?)))
        })?
    } else {
        Page { events: Vec::new(), end: None }
    };
    let chunk: Vec<Value> = page
        .events
        .iter()
        .map(|e| parse_bundled(&read, short, e, caller, vis.memberships()))
        .collect::<Result<_, _>>()?;
    let start_token = match from {
        Some(f) => sync::pagination_token(f),
        None => sync::pagination_token(if dir == "b" {
            StreamPos(app.store.current_position().0 + 1)
        } else {
            StreamPos(0)
        }),
    };
    let mut out = json!({ "chunk": chunk, "start": start_token });
    if let Some(e) = page.end {
        out["end"] = json!(sync::pagination_token(e));
    }
    if filter.lazy_load_members {
        out["state"] = json!(senders_members(&read, short, &page.events, &chunk)?);
    }
    Ok(json(&out))
}

/// One page of `/messages`.
struct Page {
    events: Vec<StoredEvent>,
    /// Where the next page starts; `None` when the page moved nowhere or
    /// reached the room's start, before which nothing can ever appear.
    end: Option<StreamPos>,
}

/// The most events one `/messages` request looks at, kept or not: a
/// filter that matches little must not walk a whole history.
const PAGE_SCAN_LIMIT: usize = 2_000;

/// Walks a room's events from a token towards `to` (or the start or
/// `upto`), keeping up to `limit` that `keep` accepts.
#[allow(clippy::too_many_arguments)]
fn scan_page(
    read: &ReadTxn,
    room: RoomShort,
    backwards: bool,
    from: Option<StreamPos>,
    to: Option<StreamPos>,
    upto: StreamPos,
    limit: usize,
    keep: &dyn Fn(&StoredEvent) -> Result<bool, MatrixError>,
) -> Result<Page, MatrixError> {
    // Tokens mean "between stream positions": `t<n>` paginating backwards
    // returns events with stream < n, forwards those with stream >= n.
    let mut cursor = if backwards {
        StreamPos(from.unwrap_or(StreamPos(u64::MAX)).0.min(upto.0.saturating_add(1)))
    } else {
        from.unwrap_or(StreamPos(0))
    };
    let mut events = Vec::new();
    let mut scanned = 0;
    loop {
        let batch = if backwards {
            read.events_before(room, cursor, limit.max(32))?
        } else {
            read.events_from(room, cursor, limit.max(32))?
        };
        if batch.is_empty() {
            // Backwards this is the room's start. Forwards it is only the
            // newest event so far: a page that read up to it still needs
            // a token to read on from once newer events arrive (clients
            // reading on from `/context` require one); an empty page
            // has none, the caller keeps its `from` (spec: `end` is omitted
            // when no further events are available).
            let end = (!backwards && scanned > 0).then_some(cursor);
            return Ok(Page { events, end });
        }
        for e in batch {
            let past_end = if backwards {
                to.is_some_and(|t| e.stream < t)
            } else {
                e.stream > upto || to.is_some_and(|t| e.stream >= t)
            };
            if past_end {
                // Events lie beyond `to` (or the caller's departure, which
                // a re-join can move): where to go on from, if anywhere.
                return Ok(Page { events, end: (scanned > 0).then_some(cursor) });
            }
            cursor = if backwards { e.stream } else { StreamPos(e.stream.0 + 1) };
            scanned += 1;
            if keep(&e)? {
                events.push(e);
            }
            if events.len() == limit || scanned == PAGE_SCAN_LIMIT {
                return Ok(Page { events, end: Some(cursor) });
            }
        }
    }
}

/// The member events of the senders of `events` (client format in
/// `values`), each as it was at that sender's newest event in the list:
/// the `state` of a lazy-loading `/messages` or `/context`.
fn senders_members(
    read: &ReadTxn,
    room: RoomShort,
    events: &[StoredEvent],
    values: &[Value],
) -> Result<Vec<Value>, MatrixError> {
    let mut newest: BTreeMap<&str, StreamPos> = BTreeMap::new();
    for (e, v) in events.iter().zip(values) {
        if let Some(s) = v["sender"].as_str() {
            let p = newest.entry(s).or_default();
            *p = (*p).max(e.stream);
        }
    }
    let mut out = Vec::new();
    for (sender, at) in newest {
        let positions = read.membership_positions(sender, room)?;
        let pos = positions.iter().rev().find(|p| **p <= at).or(positions.last());
        if let Some(pos) = pos
            && let Some(ev) = read.event_at(room, *pos)?
        {
            out.push(parse(&ev)?);
        }
    }
    Ok(out)
}

/// `PUT /rooms/{roomId}/redact/{eventId}/{txnId}`
pub async fn redact_event(
    app: &App,
    req: &Request,
    room_id: &str,
    event_id: &str,
    txn_id: &str,
) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let body = req.json_object()?;
    let reason = match body.get("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) => Some(r.clone()),
        Some(_) => return Err(MatrixError::bad_json("reason must be a string")),
    };
    let txn = Txn::of(caller, txn_id);
    let event_id =
        service::redact(app, room_id, event_id, caller.user_id.as_str(), reason, txn).await?;
    Ok(json(&json!({ "event_id": event_id })))
}

/// `POST /rooms/{roomId}/forget`: only rooms the caller has left. A
/// forgotten room stays out of every sync response until the caller's
/// membership changes again.
pub async fn forget_room(app: &App, req: &Request, room_id: &str) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let short = room_short(&app.store.read()?, room_id)?;
    let user = caller.user_id.to_string();
    app.store
        .write(move |ctx| {
            // In the writer: the membership checked is the one forgotten.
            match ctx.membership(&user, short)? {
                Some(m) if m.membership == "join" || m.membership == "invite" => {
                    Ok(Err(MatrixError::new(
                        ErrorKind::Unknown,
                        "You must leave the room before forgetting it",
                    )
                    .with_status(400)))
                }
                Some(m) => {
                    ctx.forget_room(&user, &m)?;
                    Ok(Ok(()))
                }
                None => Ok(Ok(())),
            }
        })
        .await?;
    Ok(json(&json!({})))
}

/// `GET /rooms/{roomId}/context/{eventId}`
pub fn get_event_context(
    app: &App,
    req: &Request,
    room_id: &str,
    event_id: &str,
) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let read = app.store.read()?;
    let short = room_short(&read, room_id)?;
    let SeenEvent { event, upto, vis } =
        visible_event(&read, caller.user_id.as_str(), short, event_id)?;
    let pos = event.stream;
    let limit: usize = match req.query("limit") {
        Some(l) => l.parse().map_err(|_| MatrixError::invalid_param("limit must be an integer"))?,
        None => 10,
    };
    let limit = limit.min(100);
    let filter = match req.query("filter") {
        Some(f) => RoomEventFilter::parse_query(f)?,
        None => RoomEventFilter::default(),
    };
    let keep = |e: &StoredEvent| -> Result<bool, MatrixError> {
        Ok(vis.can_see(e) && (filter.is_open() || filter.allows_event(&parse(e)?)))
    };
    let before_n = limit / 2;
    let after_n = limit - before_n;
    let before = scan_page(&read, short, true, Some(pos), None, upto, before_n.max(1), &keep)?;
    let after = scan_page(
        &read,
        short,
        false,
        Some(StreamPos(pos.0 + 1)),
        None,
        upto,
        after_n.max(1),
        &keep,
    )?;
    let before_events = &before.events[..before.events.len().min(before_n)];
    let after_events = &after.events[..after.events.len().min(after_n)];
    let start = before_events.last().map(|e| e.stream).unwrap_or(pos);
    let end =
        after_events.last().map(|e| StreamPos(e.stream.0 + 1)).unwrap_or(StreamPos(pos.0 + 1));
    let bundle = |evs: &[StoredEvent]| -> Result<Vec<Value>, MatrixError> {
        evs.iter().map(|e| parse_bundled(&read, short, e, caller, vis.memberships())).collect()
    };
    let event_value = parse_bundled(&read, short, &event, caller, vis.memberships())?;
    let events_before = bundle(before_events)?;
    let events_after = bundle(after_events)?;
    let mut state = Vec::new();
    for (t, k, _) in read.room_state(short)? {
        if filter.lazy_load_members && t == "m.room.member" {
            continue;
        }
        if let Some(ev) = read.state_event(short, &t, &k)? {
            state.push(parse(&ev)?);
        }
    }
    if filter.lazy_load_members {
        let mut all: Vec<StoredEvent> = vec![event.clone()];
        all.extend(before_events.iter().cloned());
        all.extend(after_events.iter().cloned());
        let mut values = vec![event_value.clone()];
        values.extend(events_before.iter().cloned());
        values.extend(events_after.iter().cloned());
        state.extend(senders_members(&read, short, &all, &values)?);
    }
    Ok(json(&json!({
        "event": event_value,
        "events_before": events_before,
        "events_after": events_after,
        "start": sync::pagination_token(start),
        "end": sync::pagination_token(end),
        "state": state,
    })))
}

/// `POST /knock/{roomIdOrAlias}`
pub async fn knock(app: &App, req: &Request, id_or_alias: &str) -> Result<Reply, MatrixError> {
    let room_id = resolve_room(app, id_or_alias)?;
    set_own_membership(app, req, &room_id, "knock").await?;
    Ok(json(&json!({ "room_id": room_id })))
}

/// `GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event`: the event
/// closest to `ts` in direction `dir` that the caller may see.
pub fn timestamp_to_event(app: &App, req: &Request, room_id: &str) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let ts: u64 = req
        .query("ts")
        .ok_or_else(|| MatrixError::missing_param("ts is required"))?
        .parse()
        .map_err(|_| MatrixError::invalid_param("ts must be an integer"))?;
    let forward = match req.query("dir") {
        Some("f") => true,
        Some("b") => false,
        _ => return Err(MatrixError::invalid_param("dir must be f or b")),
    };
    let read = app.store.read()?;
    let short = room_short(&read, room_id)?;
    let upto = visible_upto(&read, caller.user_id.as_str(), short)?;
    let vis = Visibility::load(&read, caller.user_id.as_str(), short)?;
    // Local events are appended in time order, so stream order is time
    // order; walk in pages from the right end.
    let mut best: Option<(String, u64)> = None;
    let mut cursor = StreamPos(0);
    loop {
        let page = read.events_from(short, cursor, 256)?;
        let Some(last) = page.last() else { break };
        cursor = StreamPos(last.stream.0 + 1);
        for e in &page {
            if e.stream > upto || !vis.can_see(e) {
                continue;
            }
            let v = parse(e)?;
            let t = v["origin_server_ts"].as_u64().unwrap_or(0);
            let id = v["event_id"].as_str().unwrap_or_default().to_owned();
            // Forward: the first at or after `ts`; backward: the last at or
            // before it.
            let fits = if forward { t >= ts && best.is_none() } else { t <= ts };
            if fits {
                best = Some((id, t));
            }
        }
        if (forward && best.is_some()) || page.len() < 256 {
            break;
        }
    }
    let (event_id, origin_server_ts) =
        best.ok_or_else(|| MatrixError::not_found("No event found in that direction"))?;
    Ok(json(&json!({ "event_id": event_id, "origin_server_ts": origin_server_ts })))
}

/// `POST /rooms/{roomId}/upgrade`
pub async fn upgrade_room(app: &App, req: &Request, room_id: &str) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let body = req.json_object()?;
    let v = body
        .get("new_version")
        .and_then(Value::as_str)
        .ok_or_else(|| MatrixError::missing_param("new_version is required"))?;
    let version = RoomVersion::parse(v).ok_or_else(|| {
        MatrixError::new(
            ErrorKind::UnsupportedRoomVersion,
            format!("Room version {v} is not supported"),
        )
    })?;
    let new_room =
        crate::room::upgrade::upgrade(app, room_id, version, caller.user_id.as_str()).await?;
    Ok(json(&json!({ "replacement_room": new_room })))
}
