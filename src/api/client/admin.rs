//! Server administration (spec: modules/admin): `whois`.

use serde_json::json;

use crate::api::{Reply, Request, json};
use crate::app::App;
use crate::error::MatrixError;
use crate::ids::UserId;

/// `GET /admin/whois/{userId}`: server admins, or users asking about
/// themselves.
pub fn whois(app: &App, req: &Request, user_id: &str) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    if !caller.admin && caller.user_id.as_str() != user_id {
        return Err(MatrixError::forbidden("Only server admins may look up other users"));
    }
    let uid = UserId::parse(user_id).map_err(|e| MatrixError::invalid_param(e.0))?;
    if uid.server_name() != app.config.server_name {
        return Err(MatrixError::not_found("Not a user of this server"));
    }
    let read = app.store.read()?;
    let mut devices = serde_json::Map::new();
    for (id, d) in read.devices(uid.localpart())? {
        let conn = json!({ "ip": d.last_seen_ip, "last_seen": d.last_seen_ms });
        devices.insert(id, json!({ "sessions": [{ "connections": [conn] }] }));
    }
    Ok(json(&json!({ "user_id": user_id, "devices": devices })))
}
