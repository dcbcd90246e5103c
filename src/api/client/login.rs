//! Login, token refresh and logout (spec: client-server-api/#login,
//! #refreshing-access-tokens, #post_matrixclientv3logout).

use std::time::Instant;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::account::{self, SessionPlan, check_password, login_localpart};
use crate::api::{Reply, Request, json};
use crate::app::App;
use crate::error::{ErrorKind, MatrixError};

/// `GET /_matrix/client/v3/login`
pub fn get_login_flows() -> Result<Reply, MatrixError> {
    Ok(json(&json!({ "flows": [ { "type": "m.login.password" } ] })))
}

#[derive(Deserialize)]
struct LoginBody {
    #[serde(rename = "type")]
    kind: String,
    password: Option<String>,
    device_id: Option<String>,
    initial_device_display_name: Option<String>,
    #[serde(default)]
    refresh_token: bool,
}

/// `POST /_matrix/client/v3/login`
pub async fn login(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let map = req.json_object()?;
    let body: LoginBody = crate::api::from_json(Value::Object(map.clone()))?;
    if body.kind != "m.login.password" {
        return Err(MatrixError::new(
            ErrorKind::Unknown,
            format!("Login type {:?} is not supported", body.kind),
        )
        .with_status(400));
    }
    // An address out of attempts is refused before its input is looked at.
    let ip_key = format!("ip:{}", req.remote);
    if let Err(ms) = app.login_limiter.borrow_mut().check(&ip_key, Instant::now()) {
        return Err(MatrixError::limit_exceeded(ms));
    }
    let localpart = login_localpart(&app.config.server_name, &map)?;
    let password =
        body.password.ok_or_else(|| MatrixError::missing_param("password is required"))?;
    check_password(&app.password_check(), &localpart, &password, req.remote).await?;
    if app.store.read()?.user(&localpart)?.is_some_and(|u| u.locked) {
        // Spec: no new access token while the account is locked.
        return Err(MatrixError::new(ErrorKind::UserLocked, "This account has been locked")
            .with_extra("soft_logout", Value::Bool(true)));
    }
    let plan = SessionPlan::new(
        &app.config,
        body.device_id,
        body.initial_device_display_name,
        body.refresh_token,
    )?;
    let lp = localpart.clone();
    let issued = app
        .store
        .write(move |ctx| Ok(Ok::<_, MatrixError>(account::issue_session(ctx, &lp, plan)?)))
        .await?;
    let mut out = json!({
        "user_id": format!("@{localpart}:{}", app.config.server_name),
        "access_token": issued.access_token,
        "device_id": issued.device_id,
        "home_server": app.config.server_name,
    });
    if let Some(r) = issued.refresh_token {
        out["refresh_token"] = json!(r);
        out["expires_in_ms"] = json!(issued.expires_in_ms);
    }
    if let Some(url) = &app.config.public_base_url {
        out["well_known"] = json!({ "m.homeserver": { "base_url": url } });
    }
    Ok(json(&out))
}

#[derive(Deserialize)]
struct RefreshBody {
    refresh_token: String,
}

/// `POST /_matrix/client/v3/refresh`
pub async fn refresh(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let body: RefreshBody = req.json()?;
    let s = account::refresh_session(
        &app.store,
        app.config.access_token_lifetime_ms,
        &body.refresh_token,
    )
    .await?;
    Ok(json(&json!({
        "access_token": s.access_token,
        "refresh_token": s.refresh_token,
        "expires_in_ms": s.expires_in_ms,
    })))
}

/// `POST /_matrix/client/v3/logout`: revokes the token and deletes its device.
pub async fn logout(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let caller = req.caller()?.clone();
    app.store
        .write(move |ctx| {
            account::revoke_device(ctx, &caller.user_id, &caller.device_id)?;
            Ok(Ok::<_, MatrixError>(()))
        })
        .await?;
    Ok(json(&json!({})))
}

/// `POST /_matrix/client/v3/logout/all`: every device of the user.
pub async fn logout_all(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let caller = req.caller()?.clone();
    app.store
        .write(move |ctx| {
            account::revoke_devices_except(ctx, &caller.user_id, None)?;
            Ok(Ok::<_, MatrixError>(()))
        })
        .await?;
    Ok(json(&json!({})))
}
