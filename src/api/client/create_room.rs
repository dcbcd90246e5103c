//! Room creation (spec: client-server-api/#creation): the request's
//! preset, power levels and initial state, turned into the room's first
//! events by `ingest::create_room`.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::api::{Reply, Request, json};
use crate::app::App;
use crate::error::{ErrorKind, MatrixError};
use crate::ids::{RoomAlias, UserId};
use crate::ingest::{self, CreateRoom};
use crate::room::version::RoomVersion;

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
        invite.push(id);
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
            users.insert(u.to_string(), json!(100));
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
            Some(
                RoomAlias::parse(&full)
                    .map_err(|e| MatrixError::invalid_param(format!("room_alias_name: {e}")))?,
            )
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
            if !creators.iter().any(|c| c.as_str() == Some(u.as_str())) {
                creators.push(json!(u));
            }
        }
        creation_content.insert("additional_creators".into(), Value::Array(creators));
    }
    let room_id = ingest::create_room(
        &super::rooms(app),
        CreateRoom {
            creator: caller.user_id.clone(),
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
