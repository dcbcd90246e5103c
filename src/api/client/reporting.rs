//! Reporting content (spec: modules/report_content): events, rooms and
//! users, filed for the server's admins.

use serde_json::{Value, json};

use super::room_short;
use crate::account::now_ms;
use crate::api::{Reply, Request, json};
use crate::app::App;
use crate::error::MatrixError;
use crate::ids::{EventId, UserId};
use crate::membership::Membership;
use crate::quota;

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
            .membership(&caller.user_id, short)?
            .is_some_and(|m| m.membership == Membership::Join);
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
