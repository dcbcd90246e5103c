//! Account registration (spec: client-server-api/#account-registration,
//! "Token-authenticated registration").

use std::cell::RefCell;
use std::net::IpAddr;
use std::time::Instant;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::account::{self, DUMMY, REGISTRATION_TOKEN, RateLimiter, SessionPlan};
use crate::api::client::uia::require_uia;
use crate::api::{Reply, Request, from_json, json};
use crate::app::App;
use crate::config::Registration;
use crate::error::{ErrorKind, MatrixError};
use crate::ids::UserId;

#[derive(Deserialize)]
struct RegisterBody {
    username: Option<String>,
    password: Option<String>,
    device_id: Option<String>,
    initial_device_display_name: Option<String>,
    #[serde(default)]
    inhibit_login: bool,
    #[serde(default)]
    refresh_token: bool,
    auth: Option<Value>,
}

/// Validates a requested username and returns the localpart.
fn check_username(app: &App, username: &str) -> Result<String, MatrixError> {
    let localpart = username.to_ascii_lowercase();
    UserId::new_local(&localpart, &app.config.server_name)
        .map_err(|e| MatrixError::new(ErrorKind::InvalidUsername, e.0))?;
    Ok(localpart)
}

fn ensure_available(app: &App, localpart: &str) -> Result<(), MatrixError> {
    if app.store.read()?.user(localpart)?.is_some() {
        return Err(MatrixError::new(ErrorKind::UserInUse, "User ID already taken"));
    }
    Ok(())
}

/// `POST /_matrix/client/v3/register`
pub async fn register(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    if req.query("kind").unwrap_or("user") == "guest" {
        return Err(MatrixError::new(
            ErrorKind::GuestAccessForbidden,
            "Guest access is not enabled on this server",
        ));
    }
    let flows: &[&[&str]] = match app.config.registration {
        Registration::Closed => {
            return Err(MatrixError::forbidden("Registration is disabled on this server"));
        }
        Registration::Open => &[&[DUMMY]],
        Registration::Token => &[&[REGISTRATION_TOKEN]],
    };
    // Refused early while the address has no registrations left; the
    // token is spent only when an account is made (below).
    if let Err(ms) =
        limiter(app, req.remote).borrow_mut().check(&limiter_key(req.remote), Instant::now())
    {
        return Err(MatrixError::limit_exceeded(ms));
    }
    let body: Map<String, Value> = req.json_object()?;
    let auth = body.get("auth").cloned();
    let body: RegisterBody = from_json(Value::Object(body))?;
    // Check the name before UIA so clients learn early (the spec allows it).
    let localpart = match &body.username {
        Some(u) => {
            let l = check_username(app, u)?;
            ensure_available(app, &l)?;
            Some(l)
        }
        None => None,
    };
    let outcome =
        require_uia(app, auth.as_ref().or(body.auth.as_ref()), "register", flows, None, req.remote)
            .await?;
    // Spent here, with no await since the check: concurrent registrations
    // from one address cannot all pass one remaining token. The UIA session
    // stays open, so the client may complete it after `retry_after_ms`.
    if let Err(ms) =
        limiter(app, req.remote).borrow_mut().take(&limiter_key(req.remote), Instant::now())
    {
        return Err(MatrixError::limit_exceeded(ms));
    }
    let localpart = match localpart {
        Some(l) => l,
        None => generated_localpart()?,
    };
    let password_hash = match body.password {
        Some(p) => Some(account::hash_password(&app.hash_slots, p).await?),
        None => None,
    };
    let plan = if body.inhibit_login {
        None
    } else {
        Some(SessionPlan::new(
            &app.config,
            body.device_id,
            body.initial_device_display_name,
            body.refresh_token,
        )?)
    };
    let token = outcome.registration_token.clone();
    let user_id = UserId::new_local(&localpart, &app.config.server_name)
        .map_err(|e| MatrixError::new(ErrorKind::InvalidUsername, e.0))?;
    let issued = app
        .store
        .write(move |ctx| account::register(ctx, &user_id, token.as_deref(), password_hash, plan))
        .await?;
    app.uia.borrow_mut().consume(&outcome.session);
    let user_id = format!("@{localpart}:{}", app.config.server_name);
    tracing::info!("registered {user_id}");
    let mut out = json!({ "user_id": user_id, "home_server": app.config.server_name });
    if let Some(s) = issued {
        out["access_token"] = json!(s.access_token);
        out["device_id"] = json!(s.device_id);
        if let Some(r) = s.refresh_token {
            out["refresh_token"] = json!(r);
            out["expires_in_ms"] = json!(s.expires_in_ms);
        }
    }
    Ok(json(&out))
}

/// The limiter for `remote`'s registrations (one budget per address):
/// loopback addresses get the generous rate, since admin scripts and a
/// reverse proxy on the same machine (whose clients all arrive from one
/// loopback address) live there.
fn limiter(app: &App, remote: IpAddr) -> &RefCell<RateLimiter> {
    if remote.is_loopback() {
        &app.registration_limiter_loopback
    } else {
        &app.registration_limiter
    }
}

fn limiter_key(remote: IpAddr) -> String {
    format!("ip:{remote}")
}

/// A random localpart for registrations that did not choose one.
fn generated_localpart() -> Result<String, MatrixError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| MatrixError::internal("OS randomness", e))?;
    Ok(format!("u{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()))
}

/// `GET /_matrix/client/v3/register/available`
pub fn get_register_available(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let username = req
        .query("username")
        .ok_or_else(|| MatrixError::missing_param("username query parameter is required"))?;
    let localpart = check_username(app, username)?;
    ensure_available(app, &localpart)?;
    Ok(json(&json!({ "available": true })))
}

/// `GET /_matrix/client/v1/register/m.login.registration_token/validity`
pub fn get_registration_token_validity(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    if app.config.registration != Registration::Token {
        return Err(MatrixError::forbidden(
            "Registration tokens are not in use: registration is not token-based here",
        ));
    }
    let token = req
        .query("token")
        .ok_or_else(|| MatrixError::missing_param("token query parameter is required"))?;
    let valid = token.len() <= 64 && account::registration_token_is_valid(&app.store, token)?;
    Ok(json(&json!({ "valid": valid })))
}
