//! Client-server API handlers, one file per spec area.

pub mod account;
pub mod account_data;
pub mod admin;
pub mod backup;
pub mod create_room;
pub mod dehydrated;
pub mod devices;
pub mod directory;
pub mod discovery;
pub mod events;
pub mod fallback;
pub mod history;
pub mod keys;
pub mod login;
pub mod media;
pub mod membership;
pub mod moderation;
pub mod mutual_rooms;
pub mod openid;
pub mod presence;
pub mod preview;
pub mod profile;
pub mod push;
pub mod receipts;
pub mod redaction;
pub mod register;
pub mod relations;
pub mod reporting;
pub mod search;
pub mod sliding;
pub mod spaces;
pub mod summary;
pub mod sync;
pub mod tags;
pub mod third_party;
pub mod to_device;
pub mod typing;
pub mod upgrade;
pub mod user_directory;
pub mod voip;

use crate::error::MatrixError;
use crate::http::{Caller, Request};
use crate::ids::{EventId, RoomId};
use crate::room::served::Viewer;
use crate::store::{ReadTxn, RoomShort};

/// The room a path's `{roomId}` names. A string that is no room ID names
/// no room: the same `404` as an unknown one.
pub(crate) fn room_short(read: &ReadTxn, room_id: &str) -> Result<RoomShort, MatrixError> {
    let id = RoomId::parse(room_id).map_err(|_| MatrixError::not_found("Room not found"))?;
    crate::room::visibility::room_short(read, &id)
}

/// A path's `{eventId}`. A string that is no event ID names no event: the
/// same `404` as an unknown one.
pub(crate) fn event_id_in_path(event_id: &str) -> Result<EventId, MatrixError> {
    EventId::parse(event_id).map_err(|_| MatrixError::not_found("Event not found"))
}

/// Who events are served to: the caller's device.
pub(crate) fn viewer(caller: &Caller) -> Viewer<'_> {
    Viewer { user: caller.user_id.as_str(), device: caller.device_id.as_str() }
}

/// Per-user data is the caller's own.
pub(crate) fn own(req: &Request, user_id: &str) -> Result<(), MatrixError> {
    if req.caller()?.user_id.as_str() != user_id {
        return Err(MatrixError::forbidden("You can only access your own data"));
    }
    Ok(())
}
