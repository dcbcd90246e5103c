//! Room aliases and the published room directory
//! (spec: client-server-api/#room-aliases, #published-room-directory).

use serde_json::{Value, json};

use super::room_short;
use crate::api::{Reply, Request, json};
use crate::app::App;
use crate::error::MatrixError;
use crate::ids::{RoomAlias, RoomId};
use crate::ingest::{lock, unlist_canonical_alias};
use crate::membership::Membership;
use crate::room::directory;
use crate::room::served::parse_stored;
use crate::room::visibility::world_readable_now;
use crate::store::{ReadTxn, RoomShort};

fn local_alias(app: &App, alias: &str) -> Result<RoomAlias, MatrixError> {
    let a = RoomAlias::parse(alias).map_err(|e| MatrixError::invalid_param(e.0))?;
    if a.server_name() != app.config.server_name {
        return Err(MatrixError::invalid_param("Aliases must be on this server"));
    }
    Ok(a)
}

/// `GET /directory/room/{roomAlias}`
pub fn get_room_alias(app: &App, alias: &str) -> Result<Reply, MatrixError> {
    let a = RoomAlias::parse(alias).map_err(|e| MatrixError::invalid_param(e.0))?;
    let room_id = app
        .store
        .read()?
        .alias(a.as_str())?
        .ok_or_else(|| MatrixError::not_found("Room alias not found"))?;
    Ok(json(&json!({ "room_id": room_id, "servers": [app.config.server_name] })))
}

/// `PUT /directory/room/{roomAlias}`
pub async fn set_room_alias(app: &App, req: &Request, alias: &str) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let a = local_alias(app, alias)?;
    let body = req.json_object()?;
    let room_id = body
        .get("room_id")
        .and_then(Value::as_str)
        .ok_or_else(|| MatrixError::missing_param("room_id is required"))?;
    let room = RoomId::parse(room_id).map_err(|e| MatrixError::invalid_param(e.0))?;
    let read = app.store.read()?;
    let short = room_short(&read, room_id)?;
    if read.membership(&caller.user_id, short)?.is_none_or(|m| m.membership != Membership::Join) {
        return Err(MatrixError::forbidden("You must be in the room to give it an alias"));
    }
    drop(read);
    app.store.write(move |ctx| directory::set_alias(ctx, &a, &room)).await?;
    Ok(json(&json!({})))
}

/// `DELETE /directory/room/{roomAlias}`: by server admins, or by room
/// members allowed to change the room's canonical alias.
pub async fn delete_room_alias(
    app: &App,
    req: &Request,
    alias: &str,
) -> Result<Reply, MatrixError> {
    let caller = req.caller()?.clone();
    let alias = local_alias(app, alias)?;
    let signer = app.signer.clone();
    let cache = app.writer_cache.clone();
    app.store
        .write(move |ctx| {
            let sender = &caller.user_id;
            let room = match directory::delete_alias(ctx, sender, caller.admin, &alias)? {
                Ok(room) => room,
                Err(e) => return Ok(Err(e)),
            };
            // The room's rules allowed the removal; an event that stops the
            // room advertising the alias is a new event of its own.
            if let Some(room) = room {
                let mut cache = lock(&cache);
                unlist_canonical_alias(ctx, &mut cache, &signer, &room, sender, &alias)?;
            }
            Ok(Ok(()))
        })
        .await?;
    Ok(json(&json!({})))
}

/// `GET /rooms/{roomId}/aliases`
pub fn get_local_aliases(app: &App, req: &Request, room_id: &str) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let read = app.store.read()?;
    let short = room_short(&read, room_id)?;
    let member =
        read.membership(&caller.user_id, short)?.is_some_and(|m| m.membership == Membership::Join);
    if !member && !world_readable_now(&read, short)? {
        return Err(MatrixError::forbidden("You are not in this room"));
    }
    Ok(json(&json!({ "aliases": read.aliases_of(room_id)? })))
}

fn state_content(read: &ReadTxn, room: RoomShort, ty: &str) -> Result<Value, MatrixError> {
    match read.state_event(room, ty, "")? {
        Some(ev) => Ok(parse_stored(&ev)?["content"].clone()),
        None => Ok(Value::Null),
    }
}

/// `GET /directory/list/room/{roomId}`
pub fn get_room_visibility(app: &App, room_id: &str) -> Result<Reply, MatrixError> {
    let read = app.store.read()?;
    let r = read.room(room_id)?.ok_or_else(|| MatrixError::not_found("Room not found"))?;
    Ok(json(&json!({ "visibility": if r.public { "public" } else { "private" } })))
}

/// `PUT /directory/list/room/{roomId}`: room members with power to send
/// `m.room.canonical_alias` (or admins) may publish a room.
pub async fn set_room_visibility(
    app: &App,
    req: &Request,
    room_id: &str,
) -> Result<Reply, MatrixError> {
    let caller = req.caller()?.clone();
    let body = req.json_object()?;
    let public = match body.get("visibility").and_then(Value::as_str) {
        Some("public") => true,
        Some("private") | None => false,
        Some(other) => {
            return Err(MatrixError::invalid_param(format!("Unknown visibility {other}")));
        }
    };
    // An ID that does not parse names no room.
    let room_id = RoomId::parse(room_id).map_err(|_| MatrixError::not_found("Room not found"))?;
    app.store
        .write(move |ctx| {
            directory::set_visibility(ctx, &caller.user_id, caller.admin, &room_id, public)
        })
        .await?;
    Ok(json(&json!({})))
}

/// `GET|POST /publicRooms`
pub fn public_rooms(app: &App, req: &Request, post: bool) -> Result<Reply, MatrixError> {
    let (limit, since, term) = if post {
        let body = req.json_object()?;
        let limit = body.get("limit").and_then(Value::as_u64);
        let since = body.get("since").and_then(Value::as_str).map(str::to_owned);
        let term = body
            .get("filter")
            .and_then(|f| f.get("generic_search_term"))
            .and_then(Value::as_str)
            .map(str::to_lowercase);
        (limit, since, term)
    } else {
        let limit = match req.query("limit") {
            Some(l) => Some(
                l.parse::<u64>()
                    .map_err(|_| MatrixError::invalid_param("limit must be an integer"))?,
            ),
            None => None,
        };
        (limit, req.query("since").map(str::to_owned), None)
    };
    let read = app.store.read()?;
    let mut chunk = Vec::new();
    for (room_id, short) in read.public_rooms()? {
        let name = state_content(&read, short, "m.room.name")?["name"].as_str().map(str::to_owned);
        let topic =
            state_content(&read, short, "m.room.topic")?["topic"].as_str().map(str::to_owned);
        let alias = state_content(&read, short, "m.room.canonical_alias")?["alias"]
            .as_str()
            .map(str::to_owned);
        if let Some(t) = &term {
            let hay = format!(
                "{} {} {}",
                name.as_deref().unwrap_or(""),
                topic.as_deref().unwrap_or(""),
                alias.as_deref().unwrap_or("")
            )
            .to_lowercase();
            if !hay.contains(t.as_str()) {
                continue;
            }
        }
        let mut entry = json!({
            "room_id": room_id,
            "num_joined_members": read.members_with(short, Membership::Join)?.len(),
            "world_readable": world_readable_now(&read, short)?,
            "guest_can_join": state_content(&read, short, "m.room.guest_access")?["guest_access"] == "can_join",
            "join_rule": state_content(&read, short, "m.room.join_rules")?["join_rule"].as_str().unwrap_or("invite"),
        });
        if let Some(n) = name {
            entry["name"] = json!(n);
        }
        if let Some(t) = topic {
            entry["topic"] = json!(t);
        }
        if let Some(a) = alias {
            entry["canonical_alias"] = json!(a);
        }
        if let Some(a) = state_content(&read, short, "m.room.avatar")?["url"].as_str() {
            entry["avatar_url"] = json!(a);
        }
        if let Some(t) = state_content(&read, short, "m.room.create")?["type"].as_str() {
            entry["room_type"] = json!(t);
        }
        chunk.push(entry);
    }
    // Most members first, then by ID, so pages are stable.
    chunk.sort_by(|a, b| {
        b["num_joined_members"]
            .as_u64()
            .cmp(&a["num_joined_members"].as_u64())
            .then_with(|| a["room_id"].as_str().cmp(&b["room_id"].as_str()))
    });
    let total = chunk.len();
    let offset: usize = match since.as_deref() {
        Some(s) => s
            .strip_prefix('p')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| MatrixError::invalid_param("since is not a valid token"))?,
        None => 0,
    };
    let limit = limit.map(|l| l as usize).unwrap_or(total.max(1)).max(1);
    let page: Vec<Value> = chunk.into_iter().skip(offset).take(limit).collect();
    let mut out = json!({ "chunk": page, "total_room_count_estimate": total });
    if offset + limit < total {
        out["next_batch"] = json!(format!("p{}", offset + limit));
    }
    if offset > 0 {
        out["prev_batch"] = json!(format!("p{}", offset.saturating_sub(limit)));
    }
    Ok(json(&out))
}
