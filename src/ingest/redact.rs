//! Redacting an event (spec: client-server-api/#redactions): the
//! `m.room.redaction` event and the rewrite of the stored event to its
//! redacted form, in one transaction.

use serde_json::{Value, json};

use super::{Rooms, Txn, append};
use crate::account::now_ms;
use crate::error::MatrixError;
use crate::ids::{EventId, RoomId, UserId};
use crate::room::build::NewEvent;
use crate::store::StoreError;

/// Redacts `event_id` in `room_id` on behalf of `sender`: sends the
/// `m.room.redaction` event and rewrites the stored event to its redacted
/// form (with `unsigned.redacted_because`), in one transaction.
pub async fn redact(
    rooms: &Rooms<'_>,
    room_id: &RoomId,
    event_id: &EventId,
    sender: &UserId,
    reason: Option<String>,
    txn: Txn,
) -> Result<EventId, MatrixError> {
    let (event_id, sender) = (event_id.clone(), sender.clone());
    rooms
        .write_in_room(room_id, move |ctx, cache, signer, room| {
            let scope = format!("r{}/{}", room.short.0, event_id);
            if let Some(id) = txn.earlier_event(ctx, &scope)? {
                return Ok(Ok(id));
            }
            let Some((r, pos)) = ctx.event_position(event_id.as_str())? else {
                return Ok(Err(MatrixError::not_found("Event not found")));
            };
            if r != room.short {
                return Ok(Err(MatrixError::not_found("Event not found in this room")));
            }
            let Some(original) = ctx.event_at(r, pos)? else {
                return Ok(Err(MatrixError::not_found("Event not found")));
            };
            let original: Value = serde_json::from_slice(&original.json)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let original_sender = original.get("sender").and_then(Value::as_str).unwrap_or("");
            let allowed = match cache.state.power_levels(ctx, room)? {
                Some(pl) => pl.can_redact(sender.as_str(), original_sender),
                None => sender.as_str() == original_sender,
            };
            if !allowed {
                return Ok(Err(MatrixError::forbidden("You may not redact this event")));
            }
            let mut content = json!({});
            if let Some(r) = &reason {
                content["reason"] = json!(r);
            }
            let top_level = if room.version.redacts_in_content() {
                content["redacts"] = json!(event_id);
                None
            } else {
                Some(event_id.to_string())
            };
            let ev = NewEvent {
                event_type: "m.room.redaction".into(),
                state_key: None,
                sender: sender.clone(),
                content,
                redacts: top_level,
                txn: Some((txn.device.to_string(), txn.id.clone())),
            };
            let appended = match append(ctx, cache, signer, room, ev, now_ms())? {
                Ok(a) => a,
                Err(e) => return Ok(Err(e)),
            };
            let because = ctx
                .event_at(room.short, appended.stream)?
                .and_then(|e| crate::room::served::parse(&e.json, None).ok())
                .unwrap_or(Value::Null);
            // A redacted event no longer relates to anything (its reaction
            // or edit stops counting).
            if let Some((rel_type, parent)) =
                crate::room::relations::relation_of(&original["content"])
            {
                ctx.delete_relation(r, parent, rel_type, pos)?;
            }
            crate::search::run::unindex_event(ctx, pos, &original)?;
            let mut redacted = crate::room::redaction::redact(&original, room.version);
            redacted["unsigned"] = json!({ "redacted_because": because });
            let bytes =
                serde_json::to_vec(&redacted).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            // Before the rewrite: whatever becomes of this batch, the parsed
            // original must not be served again.
            cache.state.event_rewritten(r, pos);
            ctx.rewrite_event(r, pos, &bytes)?;
            txn.record(ctx, &scope, (room.short, appended.stream))?;
            Ok(Ok(appended.event_id))
        })
        .await
}
