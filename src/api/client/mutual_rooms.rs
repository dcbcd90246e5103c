//! Mutual rooms (spec: modules/mutual_rooms): the rooms the caller shares
//! with another user.

use std::collections::HashSet;

use serde_json::json;

use crate::api::{Reply, Request, json};
use crate::app::App;
use crate::error::MatrixError;
use crate::ids::UserId;
use crate::membership::Membership;
use crate::store::ReadTxn;

pub(super) fn joined_rooms(
    read: &ReadTxn,
    user: &UserId,
) -> Result<Vec<crate::store::RoomShort>, MatrixError> {
    Ok(read
        .user_memberships(user)?
        .into_iter()
        .filter(|m| m.membership == Membership::Join)
        .map(|m| m.room)
        .collect())
}

/// `GET /_matrix/client/v1/mutual_rooms?user_id=`
pub fn mutual_rooms(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let other =
        req.query("user_id").ok_or_else(|| MatrixError::missing_param("user_id is required"))?;
    let other = UserId::parse(other).map_err(|e| MatrixError::invalid_param(e.0))?;
    if other == caller.user_id {
        return Err(MatrixError::invalid_param("user_id must not be your own"));
    }
    if req.query("from").is_some() {
        // Every answer fits one batch, so no token is ever handed out.
        return Err(MatrixError::invalid_param("from is not a valid token"));
    }
    let read = app.store.read()?;
    let mine: HashSet<_> = joined_rooms(&read, &caller.user_id)?.into_iter().collect();
    let mut joined = Vec::new();
    for room in joined_rooms(&read, &other)? {
        if mine.contains(&room)
            && let Some(id) = read.room_id(room)?
        {
            joined.push(id);
        }
    }
    joined.sort();
    Ok(json(&json!({ "count": joined.len(), "joined": joined })))
}
