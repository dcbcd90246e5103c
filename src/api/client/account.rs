//! Account management: whoami, password change, deactivation, 3PIDs
//! (spec: client-server-api/#account-management, #adding-account-administrative-contact-information).

use serde::Deserialize;
use serde_json::{Value, json};

use crate::account::{self, PASSWORD};
use crate::api::client::uia::require_uia;
use crate::api::{Reply, Request, from_json, json};
use crate::app::App;
use crate::error::{ErrorKind, MatrixError};
use crate::ids::UserId;

/// `GET /_matrix/client/v3/account/whoami`
pub fn get_whoami(req: &Request) -> Result<Reply, MatrixError> {
    let c = req.caller()?;
    Ok(json(&json!({ "user_id": c.user_id, "device_id": c.device_id, "is_guest": false })))
}

#[derive(Deserialize)]
struct PasswordBody {
    new_password: String,
    #[serde(default = "yes")]
    logout_devices: bool,
}

fn yes() -> bool {
    true
}

/// The localpart a UIA-protected account request acts for: the caller when
/// authenticated, else whoever the password stage proved.
fn acting_user(req: &Request) -> Option<String> {
    req.caller.as_ref().map(|c| c.user_id.localpart().to_owned())
}

/// `POST /_matrix/client/v3/account/password`
pub async fn change_password(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let map = req.json_object()?;
    let auth = map.get("auth").cloned();
    let body: PasswordBody = from_json(Value::Object(map))?;
    let me = acting_user(req);
    let purpose = format!("password:{}", me.as_deref().unwrap_or("?"));
    let outcome =
        require_uia(app, auth.as_ref(), &purpose, &[&[PASSWORD]], me.as_deref(), req.remote)
            .await?;
    let localpart = me
        .or(outcome.user.clone())
        .ok_or_else(|| MatrixError::forbidden("Could not tell whose password to change"))?;
    let hash = account::hash_password(&app.hash_slots, body.new_password).await?;
    let keep_device = req.caller.as_ref().map(|c| c.device_id.clone());
    let user_id = local_user_id(app, &localpart)?;
    let logout = body.logout_devices;
    app.store
        .write(move |ctx| account::set_password(ctx, &user_id, hash, logout, keep_device.as_ref()))
        .await?;
    app.uia.borrow_mut().consume(&outcome.session);
    Ok(json(&json!({})))
}

/// `POST /_matrix/client/v3/account/deactivate`
pub async fn deactivate(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let map = req.json_object()?;
    let me = acting_user(req);
    let purpose = format!("deactivate:{}", me.as_deref().unwrap_or("?"));
    let outcome =
        require_uia(app, map.get("auth"), &purpose, &[&[PASSWORD]], me.as_deref(), req.remote)
            .await?;
    let localpart = me
        .or(outcome.user.clone())
        .ok_or_else(|| MatrixError::forbidden("Could not tell which account to deactivate"))?;
    let user_id = local_user_id(app, &localpart)?;
    app.store.write(move |ctx| account::deactivate(ctx, &user_id)).await?;
    app.uia.borrow_mut().consume(&outcome.session);
    Ok(json(&json!({ "id_server_unbind_result": "no-support" })))
}

/// The full user ID of a local account.
fn local_user_id(app: &App, localpart: &str) -> Result<UserId, MatrixError> {
    UserId::parse(&format!("@{localpart}:{}", app.config.server_name))
        .map_err(|e| MatrixError::internal("local user id", e))
}

/// `GET /_matrix/client/v3/account/3pid`: Hearth keeps no 3PIDs.
pub fn get_threepids() -> Result<Reply, MatrixError> {
    Ok(json(&json!({ "threepids": [] })))
}

/// Every 3PID addition and `requestToken`: there is no identity server and
/// no e-mail or SMS on a home appliance, so the medium is not supported.
pub fn threepid_unsupported() -> Result<Reply, MatrixError> {
    Err(MatrixError::new(
        ErrorKind::ThreepidMediumNotSupported,
        "This server does not support third-party identifiers (e-mail, phone)",
    ))
}

/// `POST /account/3pid/delete` and `/unbind`: nothing is ever bound.
pub fn threepid_delete() -> Result<Reply, MatrixError> {
    Ok(json(&json!({ "id_server_unbind_result": "no-support" })))
}
