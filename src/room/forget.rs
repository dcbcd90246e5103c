//! Forgetting a room (spec: client-server-api/#leaving-rooms, `/forget`):
//! only a room the user is no longer in. A forgotten room stays out of
//! every sync response until the user's membership changes again.

use crate::error::{ErrorKind, MatrixError};
use crate::ids::UserId;
use crate::membership::Membership;
use crate::store::{RoomShort, StoreError, WriteCtx};

/// Forgets `room` for `user`; refused while they are joined or invited.
/// Runs in the writer, so the membership checked is the one forgotten.
pub fn forget(
    ctx: &mut WriteCtx<'_>,
    user: &UserId,
    room: RoomShort,
) -> Result<Result<(), MatrixError>, StoreError> {
    match ctx.membership(user, room)? {
        Some(m) if m.membership == Membership::Join || m.membership == Membership::Invite => {
            Ok(Err(MatrixError::new(
                ErrorKind::Unknown,
                "You must leave the room before forgetting it",
            )
            .with_status(400)))
        }
        Some(m) => {
            ctx.forget_room(user, &m)?;
            Ok(Ok(()))
        }
        None => Ok(Ok(())),
    }
}
