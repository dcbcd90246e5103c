//! Rooms: creation, membership, sending and reading events, state (spec:
//! client-server-api/#rooms, #room-membership, #sending-events-to-a-room);
//! reading history is in `history`.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{event_id_in_path, room_short, viewer};
use crate::error::{ErrorKind, MatrixError};
use crate::http::{Reply, Request, json};
use crate::ids::{RoomAlias, RoomId, UserId};
use crate::room::build::NewEvent;
use crate::room::served::{parse_bundled, parse_stored};
use crate::room::service::{self, CreateRoom, Txn};
use crate::room::version::RoomVersion;
use crate::room::visibility::{visible_event, visible_upto};
use crate::server::App;
use crate::store::StreamPos;
use crate::sync;

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
    let upto = visible_upto(&read, &caller.user_id, short)?;
    let ev = read
        .state_event(short, event_type, state_key)?
        .filter(|e| e.stream <= upto)
        .ok_or_else(|| MatrixError::not_found("State event not found"))?;
    let v = parse_stored(&ev)?;
    if req.query("format") == Some("event") { Ok(json(&v)) } else { Ok(json(&v["content"])) }
}

/// `GET /rooms/{roomId}/state`
pub fn get_room_state(app: &App, req: &Request, room_id: &str) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let read = app.store.read()?;
    let short = room_short(&read, room_id)?;
    visible_upto(&read, &caller.user_id, short)?;
    let mut out = Vec::new();
    for (t, k, _) in read.room_state(short)? {
        if let Some(ev) = read.state_event(short, &t, &k)? {
            out.push(parse_stored(&ev)?);
        }
    }
    Ok(json(&out))
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
    let seen = visible_event(&read, &caller.user_id, short, &event_id_in_path(event_id)?)?;
    let memberships = seen.vis.memberships();
    Ok(json(&parse_bundled(&read, short, &seen.event, viewer(caller), memberships)?))
}

/// `GET /rooms/{roomId}/joined_members`
pub fn joined_members(app: &App, req: &Request, room_id: &str) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let read = app.store.read()?;
    let short = room_short(&read, room_id)?;
    visible_upto(&read, &caller.user_id, short)?;
    let mut joined = Map::new();
    for u in read.members_with(short, "join")? {
        let content = match read.state_event(short, "m.room.member", &u)? {
            Some(ev) => parse_stored(&ev)?["content"].clone(),
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
    let upto = visible_upto(&read, &caller.user_id, short)?;
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
            let v = parse_stored(&ev)?;
            let m = v["content"]["membership"].as_str().unwrap_or("");
            if only.is_some_and(|o| o != m) || not.is_some_and(|n| n == m) {
                continue;
            }
            chunk.push(v);
        }
    }
    Ok(json(&json!({ "chunk": chunk })))
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

/// `POST /knock/{roomIdOrAlias}`
pub async fn knock(app: &App, req: &Request, id_or_alias: &str) -> Result<Reply, MatrixError> {
    let room_id = resolve_room(app, id_or_alias)?;
    set_own_membership(app, req, &room_id, "knock").await?;
    Ok(json(&json!({ "room_id": room_id })))
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
