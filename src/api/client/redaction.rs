//! Redactions (spec: client-server-api/#redactions): asking for an event
//! to be redacted.

use serde_json::{Value, json};

use crate::error::MatrixError;
use crate::http::{Reply, Request, json};
use crate::room::service::{self, Txn};
use crate::server::App;

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
