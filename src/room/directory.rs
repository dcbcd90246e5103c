//! Room aliases and the published room directory, the writes and who may
//! make them (spec: client-server-api/#room-aliases,
//! #published-room-directory): room members with power to send
//! `m.room.canonical_alias`, or server admins, may remove an alias or
//! change a room's visibility.

use crate::error::{ErrorKind, MatrixError};
use crate::ids::{RoomAlias, RoomId, UserId};
use crate::membership::Membership;
use crate::room::target::{RoomTarget, power_levels, target};
use crate::store::{StoreError, WriteCtx};

/// Whether `user` is joined to `room` with power to send
/// `m.room.canonical_alias`.
fn may_edit_directory(
    ctx: &WriteCtx<'_>,
    user: &UserId,
    room: &RoomTarget,
) -> Result<bool, StoreError> {
    let joined =
        ctx.membership(user, room.short)?.is_some_and(|m| m.membership == Membership::Join);
    Ok(joined
        && power_levels(ctx, room)?
            .is_some_and(|pl| pl.can_send_state(user.as_str(), "m.room.canonical_alias")))
}

/// Points `alias` at `room_id`; an alias in use is never taken over.
pub fn set_alias(
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

/// Removes `alias` when `user` may (a server admin, or a member allowed to
/// change the room's canonical alias). Returns the room it named, if that
/// room still exists, whose `m.room.canonical_alias` may still list it.
pub fn delete_alias(
    ctx: &mut WriteCtx<'_>,
    user: &UserId,
    admin: bool,
    alias: &RoomAlias,
) -> Result<Result<Option<RoomTarget>, MatrixError>, StoreError> {
    let Some(room_id) = ctx.alias(alias.as_str())? else {
        return Ok(Err(MatrixError::not_found("Room alias not found")));
    };
    let room_id = RoomId::from_trusted(room_id);
    let allowed = admin
        || match target(ctx, &room_id)? {
            Some(room) => may_edit_directory(ctx, user, &room)?,
            None => false,
        };
    if !allowed {
        return Ok(Err(MatrixError::forbidden("You may not remove this alias")));
    }
    ctx.delete_alias(alias.as_str())?;
    Ok(Ok(target(ctx, &room_id)?))
}

/// Publishes `room_id` in the room directory, or takes it out.
pub fn set_visibility(
    ctx: &mut WriteCtx<'_>,
    user: &UserId,
    admin: bool,
    room_id: &RoomId,
    public: bool,
) -> Result<Result<(), MatrixError>, StoreError> {
    let Some(room) = target(ctx, room_id)? else {
        return Ok(Err(MatrixError::not_found("Room not found")));
    };
    if !(admin || may_edit_directory(ctx, user, &room)?) {
        return Ok(Err(MatrixError::forbidden("You may not change this room's visibility")));
    }
    ctx.set_room_public(room_id.as_str(), public)?;
    Ok(Ok(()))
}
