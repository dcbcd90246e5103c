//! Room upgrades (spec: modules/room_upgrades): replacing a room by one of
//! a newer room version.

use serde_json::{Value, json};

use crate::api::{Reply, Request, json};
use crate::app::App;
use crate::error::{ErrorKind, MatrixError};
use crate::room::version::RoomVersion;

/// `POST /rooms/{roomId}/upgrade`
pub async fn upgrade_room(app: &App, req: &Request, room_id: &str) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let body = req.json_object()?;
    let v = body
        .get("new_version")
        .and_then(Value::as_str)
        .ok_or_else(|| MatrixError::missing_param("new_version is required"))?;
    let version = RoomVersion::parse(v).ok_or_else(|| {
        MatrixError::new(
            ErrorKind::UnsupportedRoomVersion,
            format!("Room version {v} is not supported"),
        )
    })?;
    let new_room = crate::ingest::upgrade(
        &super::rooms(app),
        &super::known_room_id(room_id)?,
        version,
        &caller.user_id,
    )
    .await?;
    Ok(json(&json!({ "replacement_room": new_room })))
}
