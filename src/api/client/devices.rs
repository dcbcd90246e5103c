//! Device management (spec: client-server-api/#device-management).

use serde::Deserialize;
use serde_json::{Value, json};

use crate::account::{self, PASSWORD};
use crate::api::client::uia::require_uia;
use crate::api::{Reply, Request, from_json, json};
use crate::app::App;
use crate::error::MatrixError;
use crate::ids::DeviceId;
use crate::store::DeviceRecord;

fn device_json(device_id: &str, d: &DeviceRecord) -> Value {
    json!({
        "device_id": device_id,
        "display_name": d.display_name,
        "last_seen_ip": d.last_seen_ip,
        "last_seen_ts": d.last_seen_ms,
    })
}

/// `GET /_matrix/client/v3/devices`
pub fn get_devices(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let c = req.caller()?;
    let devices = app.store.read()?.devices(c.user_id.localpart())?;
    let list: Vec<Value> = devices.iter().map(|(id, d)| device_json(id, d)).collect();
    Ok(json(&json!({ "devices": list })))
}

/// `GET /_matrix/client/v3/devices/{deviceId}`
pub fn get_device(app: &App, req: &Request, device_id: &str) -> Result<Reply, MatrixError> {
    let c = req.caller()?;
    // An ID that does not parse names no device.
    let found = match DeviceId::parse(device_id) {
        Ok(id) => app.store.read()?.device(c.user_id.localpart(), &id)?,
        Err(_) => None,
    };
    match found {
        Some(d) => Ok(json(&device_json(device_id, &d))),
        None => Err(MatrixError::not_found("No such device")),
    }
}

#[derive(Deserialize)]
struct UpdateBody {
    display_name: Option<String>,
}

/// `PUT /_matrix/client/v3/devices/{deviceId}`
pub async fn update_device(
    app: &App,
    req: &Request,
    device_id: &str,
) -> Result<Reply, MatrixError> {
    let c = req.caller()?;
    let body: UpdateBody = req.json()?;
    let user_id = c.user_id.clone();
    // No stored device has an ID that does not parse (they are parsed when
    // made): such a path names no device.
    let id = DeviceId::parse(device_id).map_err(|_| MatrixError::not_found("No such device"))?;
    app.store
        .write(move |ctx| account::set_device_display_name(ctx, &user_id, &id, body.display_name))
        .await?;
    Ok(json(&json!({})))
}

/// `DELETE /_matrix/client/v3/devices/{deviceId}` (UIA).
pub async fn delete_device(
    app: &App,
    req: &Request,
    device_id: &str,
) -> Result<Reply, MatrixError> {
    delete_some(app, req, vec![device_id.to_owned()], "delete_device").await
}

#[derive(Deserialize)]
struct DeleteDevicesBody {
    devices: Vec<String>,
}

/// `POST /_matrix/client/v3/delete_devices` (UIA).
pub async fn delete_devices(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let map = req.json_object()?;
    let body: DeleteDevicesBody = from_json(Value::Object(map))?;
    delete_some(app, req, body.devices, "delete_devices").await
}

async fn delete_some(
    app: &App,
    req: &Request,
    devices: Vec<String>,
    what: &str,
) -> Result<Reply, MatrixError> {
    let c = req.caller()?;
    let lp = c.user_id.localpart().to_owned();
    let user_id = c.user_id.clone();
    let map = req.json_object()?;
    let purpose = format!("{what}:{lp}:{}", devices.join(","));
    let outcome =
        require_uia(app, map.get("auth"), &purpose, &[&[PASSWORD]], Some(&lp), req.remote).await?;
    app.store
        .write(move |ctx| {
            // An ID that does not parse names no device: nothing to delete.
            for d in devices.iter().filter_map(|d| DeviceId::parse(d).ok()) {
                account::revoke_device(ctx, &user_id, &d)?;
            }
            Ok(Ok::<_, MatrixError>(()))
        })
        .await?;
    app.uia.borrow_mut().consume(&outcome.session);
    Ok(json(&json!({})))
}
