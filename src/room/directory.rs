//! The room directory's writes (spec: client-server-api/#room-aliases,
//! #published-room-directory): creating an alias and publishing a room,
//! checked in the writer against the room's current state.

use crate::error::{ErrorKind, MatrixError};
use crate::ids::{RoomAlias, RoomId, UserId};
use crate::room::build::power_levels;
use crate::room::service::target;
use crate::store::{StoreError, WriteCtx};

/// Points `alias` at `room_id`; an alias in use is `409`.
pub fn put_alias(
    ctx: &mut WriteCtx<'_>,
    alias: &RoomAlias,
    room_id: &RoomId,
) -> Result<Result<(), MatrixError>, StoreError> {
    if ctx.put_alias(alias.as_str(), room_id.as_str())? {
        Ok(Ok(()))
    } else {
        Ok(Err(MatrixError::new(ErrorKind::Unknown, "Room alias already exists").with_status(409)))
    }
}

/// Publishes (`public`) or unlists a room: server admins (`admin`) may,
/// and so may joined members with power to send `m.room.canonical_alias`.
pub fn set_visibility(
    ctx: &mut WriteCtx<'_>,
    user: &UserId,
    admin: bool,
    room_id: &RoomId,
    public: bool,
) -> Result<Result<(), MatrixError>, StoreError> {
    let Some(room) = target(ctx, room_id.as_str())? else {
        return Ok(Err(MatrixError::not_found("Room not found")));
    };
    let joined = ctx.membership(user.as_str(), room.short)?.is_some_and(|m| m.membership == "join");
    let allowed = admin
        || (joined
            && power_levels(ctx, &room)?
                .is_some_and(|pl| pl.can_send_state(user.as_str(), "m.room.canonical_alias")));
    if !allowed {
        return Ok(Err(MatrixError::forbidden("You may not change this room's visibility")));
    }
    ctx.set_room_public(room_id.as_str(), public)?;
    Ok(Ok(()))
}
