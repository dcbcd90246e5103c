//! The client-server API: its router ([`router`]), its [`http::Service`]
//! ([`ClientApi`]), and the handlers, one file per spec area.
//!
//! [`http::Service`]: crate::http::Service

pub mod account;
pub mod account_data;
pub mod admin;
pub mod backup;
pub mod create_room;
pub mod dehydrated;
pub mod devices;
pub mod directory;
pub mod discovery;
mod dispatch;
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
pub mod router;
pub mod search;
mod service;
pub mod sliding;
pub mod spaces;
pub mod summary;
pub mod sync;
pub mod tags;
pub mod third_party;
pub mod to_device;
pub mod typing;
pub mod uia;
pub mod upgrade;
pub mod user_directory;
pub mod voip;

pub use service::ClientApi;

use crate::account::Caller;
use crate::api::Request;
use crate::app::App;
use crate::error::MatrixError;
use crate::ids::{EventId, RoomId};
use crate::ingest::Rooms;
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
    Viewer { user: &caller.user_id, device: &caller.device_id }
}

/// Per-user data is the caller's own.
pub(crate) fn own(req: &Request, user_id: &str) -> Result<(), MatrixError> {
    if req.caller()?.user_id.as_str() != user_id {
        return Err(MatrixError::forbidden("You can only access your own data"));
    }
    Ok(())
}

/// The room operations over this server's store, signing key and writer
/// cache.
pub(crate) fn rooms(app: &App) -> Rooms<'_> {
    Rooms { store: &app.store, signer: &app.signer, cache: &app.writer_cache }
}

/// The ID of a room an operation acts on, from a request path: one that
/// does not parse names no room here, so it is answered as an unknown room
/// is (404).
pub(crate) fn known_room_id(room_id: &str) -> Result<RoomId, MatrixError> {
    RoomId::parse(room_id).map_err(|_| MatrixError::not_found("Room not found"))
}
