//! Send-to-device messaging (spec: modules/send_to_device): messages to
//! devices, queued in each device's inbox until it syncs (`sync::to_device`).

use serde_json::{Value, json};

use crate::api::{Reply, Request, json};
use crate::app::App;
use crate::error::MatrixError;
use crate::sync::to_device;

/// `PUT /sendToDevice/{eventType}/{txnId}`: idempotent per device + txn ID.
pub async fn send_to_device(
    app: &App,
    req: &Request,
    event_type: &str,
    txn_id: &str,
) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let body = req.json_object()?;
    let messages = body
        .get("messages")
        .and_then(Value::as_object)
        .ok_or_else(|| MatrixError::bad_json("messages is required"))?
        .clone();
    let server = &app.config.server_name;
    let outgoing = to_device::outgoing(&caller.user_id, event_type, &messages, server)?;
    let (sender, device) = (caller.user_id.clone(), caller.device_id.clone());
    let (ty, txn) = (event_type.to_owned(), txn_id.to_owned());
    app.store
        .write(move |ctx| to_device::send(ctx, &sender, &device, &ty, &txn, &outgoing))
        .await?;
    Ok(json(&json!({})))
}
