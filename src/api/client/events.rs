//! Sending events to a room and getting them (spec: client-server-api/
//! #sending-events-to-a-room, #getting-events-for-a-room): one event, the
//! state, the members; reading history is in `history`.

use serde_json::{Map, Value, json};

use super::{event_id_in_path, known_room_id, room_short, rooms, viewer};
use crate::api::{Reply, Request, json};
use crate::app::App;
use crate::error::{ErrorKind, MatrixError};
use crate::ids::UserId;
use crate::ingest::{self, Txn};
use crate::membership::Membership;
use crate::room::build::NewEvent;
use crate::room::relations::parse_bundled;
use crate::room::served::parse_stored;
use crate::room::visibility::{visible_event, visible_upto};
use crate::store::StreamPos;
use crate::sync;

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
        sender: caller.user_id.clone(),
        content,
        redacts: None,
        txn: None,
    };
    let txn = Txn::new(&caller.user_id, &caller.device_id, txn_id);
    let event_id = ingest::send(&rooms(app), &known_room_id(room_id)?, ev, Some(txn)).await?;
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
        sender: caller.user_id.clone(),
        content,
        redacts: None,
        txn: None,
    };
    let event_id = ingest::send(&rooms(app), &known_room_id(room_id)?, ev, None).await?;
    Ok(json(&json!({ "event_id": event_id })))
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

/// `GET /rooms/{roomId}/joined_members`
pub fn joined_members(app: &App, req: &Request, room_id: &str) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let read = app.store.read()?;
    let short = room_short(&read, room_id)?;
    visible_upto(&read, &caller.user_id, short)?;
    let mut joined = Map::new();
    for u in read.members_with(short, Membership::Join)? {
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
