//! Client config (spec: modules/account_data): per-user data, global or
//! per room, that the server stores for the user's clients.

use serde_json::{Value, json};

use super::{own, room_short};
use crate::api::{Reply, Request, json};
use crate::app::App;
use crate::error::MatrixError;
use crate::ids::RoomId;
use crate::sync::account_data;

/// `GET /user/{userId}/account_data/{type}` and the per-room form
/// (`room_id` = "" for global).
pub fn get_account_data(
    app: &App,
    req: &Request,
    user_id: &str,
    room_id: &str,
    data_type: &str,
) -> Result<Reply, MatrixError> {
    own(req, user_id)?;
    let bytes = app
        .store
        .read()?
        .account_data(&req.caller()?.user_id, room_id, data_type)?
        .ok_or_else(|| MatrixError::not_found("Account data not found"))?;
    let v: Value =
        serde_json::from_slice(&bytes).map_err(|e| MatrixError::internal("account data", e))?;
    Ok(json(&v))
}

/// `PUT /user/{userId}/account_data/{type}` and the per-room form.
pub async fn set_account_data(
    app: &App,
    req: &Request,
    user_id: &str,
    room_id: &str,
    data_type: &str,
) -> Result<Reply, MatrixError> {
    own(req, user_id)?;
    // spec: the account-data PUTs answer 405 M_BAD_JSON for the types the
    // server manages itself.
    if data_type == "m.fully_read" || data_type == "m.push_rules" {
        return Err(MatrixError::bad_json(format!(
            "{data_type} cannot be set through the account data API"
        ))
        .with_status(405));
    }
    // The global form's path has no room: the router passes "".
    let room = if room_id.is_empty() {
        None
    } else {
        let room = RoomId::parse(room_id).map_err(|e| MatrixError::invalid_param(e.0))?;
        room_short(&app.store.read()?, room_id)?;
        Some(room)
    };
    let body = serde_json::to_vec(&req.json_object()?)
        .map_err(|e| MatrixError::internal("account data", e))?;
    let user = req.caller()?.user_id.clone();
    let t = data_type.to_owned();
    app.store.write(move |ctx| account_data::set(ctx, &user, room.as_ref(), &t, &body)).await?;
    Ok(json(&json!({})))
}
