//! Dehydrated devices (MSC3814, unstable prefix
//! `/_matrix/client/unstable/org.matrix.msc3814.v1`): a device the user's
//! client leaves on the server, with its private keys encrypted in
//! `device_data`, so others can encrypt to it while no real device is
//! logged in; a new device later rehydrates it and reads its to-device
//! inbox through `…/dehydrated_device/{device_id}/events`. What the device
//! is and how it is stored: [`crate::e2ee::dehydrated`].

use serde_json::{Map, Value, json};

use super::keys::{check_device_keys, check_key_sizes, key_list};
use super::sync::acknowledge_to_device;
use crate::api::{Reply, Request, json};
use crate::app::App;
use crate::e2ee::dehydrated::{self, Upload, current, none};
use crate::error::MatrixError;
use crate::ids::DeviceId;
use crate::quota;
use crate::store::StreamPos;

/// To-device messages per `/events` response.
const EVENTS_LIMIT: usize = 100;

/// `GET /_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device`
pub fn get_dehydrated_device(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let read = app.store.read()?;
    let d = current(&read, &caller.user_id)?.ok_or_else(none)?;
    Ok(json(&json!({ "device_id": d.device_id, "device_data": d.device_data })))
}

fn parse_upload(body: &Map<String, Value>, user: &str) -> Result<Upload, MatrixError> {
    let device_id = body
        .get("device_id")
        .and_then(Value::as_str)
        .ok_or_else(|| MatrixError::bad_json("device_id is required"))?;
    let device_id =
        DeviceId::parse(device_id).map_err(|e| MatrixError::invalid_param(e.to_string()))?;
    let device_data = match body.get("device_data") {
        Some(d @ Value::Object(o)) if o.get("algorithm").is_some_and(Value::is_string) => d.clone(),
        _ => return Err(MatrixError::bad_json("device_data must be an object with an algorithm")),
    };
    let device_keys = match body.get("device_keys") {
        Some(k @ Value::Object(_)) => k.clone(),
        _ => return Err(MatrixError::bad_json("device_keys is required")),
    };
    check_device_keys(&device_keys, user, device_id.as_str())?;
    let display_name = match body.get("initial_device_display_name") {
        None | Some(Value::Null) => None,
        Some(Value::String(n)) => Some(n.clone()),
        Some(_) => {
            return Err(MatrixError::bad_json("initial_device_display_name must be a string"));
        }
    };
    quota::check_size(
        "device_data",
        quota::json_len(&device_data),
        quota::DEHYDRATED_DEVICE_BYTES,
    )?;
    let one_time_keys = key_list(body, "one_time_keys")?;
    let fallback_keys = key_list(body, "fallback_keys")?;
    // A new device each time (any earlier one is revoked), so the upload's
    // own counts are the device's.
    check_key_sizes(Some(&device_keys), &one_time_keys, &fallback_keys)?;
    Ok(Upload { device_id, display_name, device_data, device_keys, one_time_keys, fallback_keys })
}

/// `PUT /_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device`:
/// creates the device with its keys, replacing any earlier one.
pub async fn put_dehydrated_device(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let user_id = caller.user_id.clone();
    let upload = parse_upload(&req.json_object()?, user_id.as_str())?;
    if upload.device_id == caller.device_id {
        return Err(MatrixError::invalid_param("The dehydrated device cannot be this device"));
    }
    let device_id = upload.device_id.clone();
    app.store.write(move |ctx| dehydrated::put_dehydrated_device(ctx, &user_id, upload)).await?;
    Ok(json(&json!({ "device_id": device_id })))
}

/// `DELETE /_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device`
pub async fn delete_dehydrated_device(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let user_id = caller.user_id.clone();
    let device_id =
        app.store.write(move |ctx| dehydrated::delete_dehydrated_device(ctx, &user_id)).await?;
    Ok(json(&json!({ "device_id": device_id })))
}

/// `POST /_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device/{device_id}/events`:
/// the dehydrated device's to-device inbox, oldest first. `next_batch` in
/// the request acknowledges (deletes) what earlier responses delivered.
pub async fn get_dehydrated_events(
    app: &App,
    req: &Request,
    device_id: &str,
) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let body = req.json_object()?;
    let since = match body.get("next_batch") {
        None | Some(Value::Null) => StreamPos(0),
        Some(Value::String(s)) => StreamPos(
            s.parse().map_err(|_| MatrixError::invalid_param("next_batch is not a valid token"))?,
        ),
        Some(_) => return Err(MatrixError::bad_json("next_batch must be a string")),
    };
    {
        let read = app.store.read()?;
        let ours = current(&read, &caller.user_id)?.is_some_and(|d| d.device_id == device_id);
        if !ours {
            return Err(MatrixError::forbidden("device_id is not your dehydrated device"));
        }
    }
    // The caller's dehydrated device: a stored ID.
    let device = DeviceId::from_trusted(device_id.to_owned());
    if since > StreamPos(0) {
        acknowledge_to_device(app, &caller.user_id, &device, since).await?;
    }
    let upto = app.store.current_position();
    let inbox = app.store.read()?.to_device(&caller.user_id, &device, since, upto, EVENTS_LIMIT)?;
    let next = inbox.last().map(|(p, _)| *p).unwrap_or(since);
    let events: Vec<Value> = inbox
        .iter()
        .map(|(_, b)| serde_json::from_slice(b).map_err(|e| MatrixError::internal("to-device", e)))
        .collect::<Result<_, _>>()?;
    Ok(json(&json!({ "events": events, "next_batch": next.0.to_string() })))
}
