//! Receipts and read markers (spec: modules/receipts,
//! modules/read_markers).

use serde_json::{Value, json};

use super::room_short;
use crate::account::now_ms;
use crate::api::{Reply, Request, json};
use crate::app::App;
use crate::error::MatrixError;
use crate::ids::{EventId, RoomId};
use crate::room::visibility::visible_upto;
use crate::store::Receipt;
use crate::sync::receipts;

async fn store_receipt(
    app: &App,
    req: &Request,
    room_id: &str,
    receipt_type: &str,
    event_id: &str,
    thread_id: &str,
) -> Result<(), MatrixError> {
    let caller = req.caller()?;
    let read = app.store.read()?;
    let short = room_short(&read, room_id)?;
    visible_upto(&read, &caller.user_id, short)?;
    let not_in_room = || MatrixError::not_found("Event not found in this room");
    let event = EventId::parse(event_id).map_err(|_| not_in_room())?;
    match read.event_position(event.as_str())? {
        Some((r, _)) if r == short => {}
        _ => return Err(not_in_room()),
    }
    drop(read);
    let user = caller.user_id.clone();
    if receipt_type == "m.fully_read" {
        // `room_short` found the room, so its ID parses.
        let room = RoomId::parse(room_id).map_err(|e| MatrixError::invalid_param(e.0))?;
        app.store.write(move |ctx| receipts::set_fully_read(ctx, &user, &room, &event)).await?;
        return Ok(());
    }
    let receipt = Receipt {
        receipt_type: receipt_type.to_owned(),
        user_id: user.to_string(),
        thread_id: thread_id.to_owned(),
        event_id: event.to_string(),
        ts: now_ms(),
    };
    app.store.write(move |ctx| receipts::put(ctx, short, &receipt)).await?;
    Ok(())
}

/// `POST /rooms/{roomId}/receipt/{receiptType}/{eventId}`
pub async fn post_receipt(
    app: &App,
    req: &Request,
    room_id: &str,
    receipt_type: &str,
    event_id: &str,
) -> Result<Reply, MatrixError> {
    if !matches!(receipt_type, "m.read" | "m.read.private" | "m.fully_read") {
        return Err(MatrixError::invalid_param(format!("Unknown receipt type {receipt_type}")));
    }
    let body = req.json_object()?;
    let thread_id = match body.get("thread_id") {
        None => "",
        Some(Value::String(t)) if !t.is_empty() => t.as_str(),
        Some(_) => return Err(MatrixError::invalid_param("thread_id must be a non-empty string")),
    };
    if receipt_type == "m.fully_read" && !thread_id.is_empty() {
        return Err(MatrixError::invalid_param("m.fully_read cannot have a thread_id"));
    }
    store_receipt(app, req, room_id, receipt_type, event_id, thread_id).await?;
    Ok(json(&json!({})))
}

/// `POST /rooms/{roomId}/read_markers`
pub async fn set_read_markers(
    app: &App,
    req: &Request,
    room_id: &str,
) -> Result<Reply, MatrixError> {
    let body = req.json_object()?;
    for key in ["m.fully_read", "m.read", "m.read.private"] {
        if let Some(v) = body.get(key) {
            let id = v
                .as_str()
                .ok_or_else(|| MatrixError::bad_json(format!("{key} must be an event ID")))?;
            store_receipt(app, req, room_id, key, id, "").await?;
        }
    }
    Ok(json(&json!({})))
}
