//! Redactions (spec: client-server-api/#redactions): asking for an event
//! to be redacted.

use serde_json::{Value, json};

use super::{known_room_id, rooms};
use crate::api::{Reply, Request, json};
use crate::app::App;
use crate::error::MatrixError;
use crate::ids::EventId;
use crate::ingest::{self, Txn};

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
    let txn = Txn::new(&caller.user_id, &caller.device_id, txn_id);
    let room_id = known_room_id(room_id)?;
    // An event ID that does not parse names no event here (404, as an
    // unknown one).
    let event_id =
        EventId::parse(event_id).map_err(|_| MatrixError::not_found("Event not found"))?;
    let event_id =
        ingest::redact(&rooms(app), &room_id, &event_id, &caller.user_id, reason, txn).await?;
    Ok(json(&json!({ "event_id": event_id })))
}
