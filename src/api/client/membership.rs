//! Room membership (spec: client-server-api/#room-membership): joining,
//! knocking, leaving, inviting, kicking, banning, forgetting, and the list
//! of rooms the caller has joined.

use serde_json::{Value, json};

use super::{known_room_id, room_short, rooms};
use crate::api::{Reply, Request, json};
use crate::app::App;
use crate::error::{ErrorKind, MatrixError};
use crate::ids::{RoomAlias, RoomId, UserId};
use crate::ingest;
use crate::membership::Membership;
use crate::room::build::NewEvent;
use crate::room::forget;

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
    membership: Membership,
    reason: Option<&Value>,
) -> Result<Value, MatrixError> {
    let mut c = json!({ "membership": membership });
    if matches!(membership, Membership::Join | Membership::Invite)
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
    membership: Membership,
) -> Result<(), MatrixError> {
    let caller = req.caller()?;
    let body = req.json_object()?;
    let content = member_content(app, &caller.user_id, membership, body.get("reason"))?;
    let ev = NewEvent::member(&caller.user_id, &caller.user_id, content);
    ingest::send(&rooms(app), &known_room_id(room_id)?, ev, None).await?;
    Ok(())
}

/// `POST /join/{roomIdOrAlias}` and `POST /rooms/{roomId}/join`
pub async fn join(app: &App, req: &Request, id_or_alias: &str) -> Result<Reply, MatrixError> {
    let room_id = resolve_room(app, id_or_alias)?;
    set_own_membership(app, req, &room_id, Membership::Join).await?;
    Ok(json(&json!({ "room_id": room_id })))
}

/// `POST /knock/{roomIdOrAlias}`
pub async fn knock(app: &App, req: &Request, id_or_alias: &str) -> Result<Reply, MatrixError> {
    let room_id = resolve_room(app, id_or_alias)?;
    set_own_membership(app, req, &room_id, Membership::Knock).await?;
    Ok(json(&json!({ "room_id": room_id })))
}

/// `POST /rooms/{roomId}/leave`
pub async fn leave(app: &App, req: &Request, room_id: &str) -> Result<Reply, MatrixError> {
    set_own_membership(app, req, room_id, Membership::Leave).await?;
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
    let current = read.membership(&target, short)?.map(|m| m.membership);
    drop(read);
    let membership = match action {
        "invite" => {
            if target.server_name() == app.config.server_name
                && app.store.read()?.user(target.localpart())?.is_none()
            {
                return Err(MatrixError::not_found("No such user on this server"));
            }
            Membership::Invite
        }
        "kick" => {
            if !matches!(current, Some(Membership::Join | Membership::Invite | Membership::Knock)) {
                return Err(MatrixError::forbidden("The user is not in the room"));
            }
            Membership::Leave
        }
        "ban" => Membership::Ban,
        _ => {
            if current != Some(Membership::Ban) {
                return Err(MatrixError::new(ErrorKind::BadState, "The user is not banned"));
            }
            Membership::Leave
        }
    };
    let content = member_content(app, &target, membership, body.get("reason"))?;
    let ev = NewEvent::member(&caller.user_id, &target, content);
    ingest::send(&rooms(app), &known_room_id(room_id)?, ev, None).await?;
    Ok(json(&json!({})))
}

/// `POST /rooms/{roomId}/forget`: only rooms the caller has left. A
/// forgotten room stays out of every sync response until the caller's
/// membership changes again.
pub async fn forget_room(app: &App, req: &Request, room_id: &str) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let short = room_short(&app.store.read()?, room_id)?;
    let user = caller.user_id.clone();
    app.store.write(move |ctx| forget::forget(ctx, &user, short)).await?;
    Ok(json(&json!({})))
}

/// `GET /_matrix/client/v3/joined_rooms`
pub fn joined_rooms(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let read = app.store.read()?;
    let mut rooms = Vec::new();
    for m in read.user_memberships(&caller.user_id)? {
        if m.membership == Membership::Join
            && let Some(id) = read.room_id(m.room)?
        {
            rooms.push(id);
        }
    }
    Ok(json(&json!({ "joined_rooms": rooms })))
}
