//! Presence (spec: modules/presence); the state and its expiry are in
//! `sync::presence`.

use serde_json::{Value, json};

use super::own;
use super::profile::profile_of;
use crate::account::now_ms;
use crate::api::{Reply, Request, json};
use crate::app::App;
use crate::error::MatrixError;
use crate::ids::UserId;
use crate::sync::presence;

/// `GET /presence/{userId}/status`
pub fn get_presence(app: &App, req: &Request, user_id: &str) -> Result<Reply, MatrixError> {
    req.caller()?;
    profile_of(app, user_id)?;
    let user = UserId::parse(user_id).map_err(|e| MatrixError::invalid_param(e.0))?;
    let out = match app.presence.borrow().get(&user) {
        Some(e) => e.content(now_ms()),
        None => json!({ "presence": "offline" }),
    };
    Ok(json(&out))
}

/// `PUT /presence/{userId}/status`
pub fn set_presence(app: &App, req: &Request, user_id: &str) -> Result<Reply, MatrixError> {
    own(req, user_id)?;
    let body = req.json_object()?;
    let presence = body
        .get("presence")
        .and_then(Value::as_str)
        .ok_or_else(|| MatrixError::bad_json("presence is required"))?;
    if !presence::valid_state(presence) {
        return Err(MatrixError::invalid_param("presence must be online, offline or unavailable"));
    }
    let status = match body.get("status_msg") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(MatrixError::bad_json("status_msg must be a string")),
    };
    let user = &req.caller()?.user_id;
    if app.config.presence && app.presence.borrow_mut().set(user, presence, status, now_ms()) {
        presence::wake_watchers(&app.store, user, |u| app.wake(u));
    }
    Ok(json(&json!({})))
}
