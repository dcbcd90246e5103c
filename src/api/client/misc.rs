//! Smaller spec areas: mutual rooms, the user directory, reporting
//! content, third-party protocols and `whois`.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::room_short;
use crate::account::now_ms;
use crate::error::MatrixError;
use crate::http::{Reply, Request, json};
use crate::ids::{EventId, UserId};
use crate::quota;
use crate::server::App;
use crate::store::ReadTxn;

fn joined_rooms(read: &ReadTxn, user: &str) -> Result<Vec<crate::store::RoomShort>, MatrixError> {
    Ok(read
        .user_memberships(user)?
        .into_iter()
        .filter(|m| m.membership == "join")
        .map(|m| m.room)
        .collect())
}

/// `GET /_matrix/client/v1/mutual_rooms?user_id=`
pub fn mutual_rooms(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let other =
        req.query("user_id").ok_or_else(|| MatrixError::missing_param("user_id is required"))?;
    let other = UserId::parse(other).map_err(|e| MatrixError::invalid_param(e.0))?;
    if other == caller.user_id {
        return Err(MatrixError::invalid_param("user_id must not be your own"));
    }
    if req.query("from").is_some() {
        // Every answer fits one batch, so no token is ever handed out.
        return Err(MatrixError::invalid_param("from is not a valid token"));
    }
    let read = app.store.read()?;
    let mine: HashSet<_> = joined_rooms(&read, caller.user_id.as_str())?.into_iter().collect();
    let mut joined = Vec::new();
    for room in joined_rooms(&read, other.as_str())? {
        if mine.contains(&room)
            && let Some(id) = read.room_id(room)?
        {
            joined.push(id);
        }
    }
    joined.sort();
    Ok(json(&json!({ "count": joined.len(), "joined": joined })))
}

/// `POST /user_directory/search`: users who share a room with the searcher
/// or are in a public room, matched on user ID and display name.
pub fn search_user_directory(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let body = req.json_object()?;
    let term = body
        .get("search_term")
        .and_then(Value::as_str)
        .ok_or_else(|| MatrixError::missing_param("search_term is required"))?
        .to_lowercase();
    let limit = body.get("limit").and_then(Value::as_u64).unwrap_or(10).clamp(1, 100) as usize;
    let read = app.store.read()?;
    let mut candidates: HashSet<String> = HashSet::new();
    for room in joined_rooms(&read, caller.user_id.as_str())? {
        candidates.extend(read.members_with(room, "join")?);
    }
    for (_, room) in read.public_rooms()? {
        candidates.extend(read.members_with(room, "join")?);
    }
    if app.config.user_directory_search_all {
        let server = &app.config.server_name;
        candidates.extend(read.users()?.into_iter().map(|(lp, _)| format!("@{lp}:{server}")));
    }
    let mut results = Vec::new();
    let mut sorted: Vec<String> = candidates.into_iter().collect();
    sorted.sort();
    for user in sorted {
        let Ok(uid) = UserId::parse(&user) else { continue };
        let record = if uid.server_name() == app.config.server_name {
            read.user(uid.localpart())?
        } else {
            None
        };
        if record.as_ref().is_some_and(|r| r.deactivated) {
            continue;
        }
        let name = record.as_ref().and_then(|r| r.displayname.clone());
        let hit = user.to_lowercase().contains(&term)
            || name.as_ref().is_some_and(|n| n.to_lowercase().contains(&term));
        if hit {
            let mut r = json!({ "user_id": user });
            if let Some(n) = name {
                r["display_name"] = json!(n);
            }
            if let Some(a) = record.and_then(|r| r.avatar_url) {
                r["avatar_url"] = json!(a);
            }
            results.push(r);
        }
    }
    let limited = results.len() > limit;
    results.truncate(limit);
    Ok(json(&json!({ "results": results, "limited": limited })))
}

fn reason(req: &Request, required: bool) -> Result<String, MatrixError> {
    let body = req.json_object()?;
    match body.get("reason") {
        Some(Value::String(r)) => {
            quota::check_size("The reason", r.len(), quota::REPORT_REASON_BYTES)?;
            Ok(r.clone())
        }
        None if !required => Ok(String::new()),
        None => Err(MatrixError::missing_param("reason is required")),
        Some(_) => Err(MatrixError::bad_json("reason must be a string")),
    }
}

async fn file(app: &App, report: Value) -> Result<(), MatrixError> {
    let bytes = serde_json::to_vec(&report).map_err(|e| MatrixError::internal("report", e))?;
    let id = app.store.write(move |ctx| Ok(Ok::<_, MatrixError>(ctx.put_report(&bytes)?))).await?;
    tracing::warn!("content report #{id} filed: {report}");
    Ok(())
}

/// `POST /rooms/{roomId}/report/{eventId}`: the reporter must be in the room
/// and the event must be in it.
pub async fn report_event(
    app: &App,
    req: &Request,
    room_id: &str,
    event_id: &str,
) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let reason = reason(req, false)?;
    EventId::parse(event_id).map_err(|e| MatrixError::invalid_param(e.0))?;
    let not_found =
        || MatrixError::not_found("The event was not found or you are not joined to the room");
    {
        let read = app.store.read()?;
        let short = room_short(&read, room_id).map_err(|_| not_found())?;
        let joined = read
            .membership(caller.user_id.as_str(), short)?
            .is_some_and(|m| m.membership == "join");
        let in_room = read.event_position(event_id)?.is_some_and(|(r, _)| r == short);
        if !joined || !in_room {
            return Err(not_found());
        }
    }
    file(
        app,
        json!({ "kind": "event", "room_id": room_id, "event_id": event_id,
        "reporter": caller.user_id, "reason": reason, "ts": now_ms() }),
    )
    .await?;
    Ok(json(&json!({})))
}

/// `POST /rooms/{roomId}/report`
pub async fn report_room(app: &App, req: &Request, room_id: &str) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let reason = reason(req, true)?;
    room_short(&app.store.read()?, room_id)?;
    file(
        app,
        json!({ "kind": "room", "room_id": room_id, "reporter": caller.user_id,
        "reason": reason, "ts": now_ms() }),
    )
    .await?;
    Ok(json(&json!({})))
}

/// `POST /users/{userId}/report`
pub async fn report_user(app: &App, req: &Request, user_id: &str) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let reason = reason(req, true)?;
    let uid = UserId::parse(user_id).map_err(|e| MatrixError::invalid_param(e.0))?;
    let exists = uid.server_name() == app.config.server_name
        && app.store.read()?.user(uid.localpart())?.is_some();
    if !exists {
        return Err(MatrixError::not_found("No such user"));
    }
    file(
        app,
        json!({ "kind": "user", "user_id": user_id, "reporter": caller.user_id,
        "reason": reason, "ts": now_ms() }),
    )
    .await?;
    Ok(json(&json!({})))
}

/// `GET /thirdparty/protocols`: Hearth bridges to no third-party networks.
pub fn thirdparty_protocols(req: &Request) -> Result<Reply, MatrixError> {
    req.caller()?;
    Ok(json(&json!({})))
}

/// `GET /thirdparty/{location|user}[/{protocol}]` and
/// `GET /thirdparty/protocol/{protocol}`: no protocol exists.
pub fn thirdparty_unknown(req: &Request) -> Result<Reply, MatrixError> {
    req.caller()?;
    Err(MatrixError::not_found("No such third-party protocol"))
}

/// `GET /admin/whois/{userId}`: server admins, or users asking about
/// themselves.
pub fn whois(app: &App, req: &Request, user_id: &str) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    if !caller.admin && caller.user_id.as_str() != user_id {
        return Err(MatrixError::forbidden("Only server admins may look up other users"));
    }
    let uid = UserId::parse(user_id).map_err(|e| MatrixError::invalid_param(e.0))?;
    if uid.server_name() != app.config.server_name {
        return Err(MatrixError::not_found("Not a user of this server"));
    }
    let read = app.store.read()?;
    let mut devices = serde_json::Map::new();
    for (id, d) in read.devices(uid.localpart())? {
        let conn = json!({ "ip": d.last_seen_ip, "last_seen": d.last_seen_ms });
        devices.insert(id, json!({ "sessions": [{ "connections": [conn] }] }));
    }
    Ok(json(&json!({ "user_id": user_id, "devices": devices })))
}
