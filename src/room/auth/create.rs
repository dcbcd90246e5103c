//! Rule 1 of the authorisation rules: `m.room.create`, the event that
//! starts a room and is checked against no state.

use super::{AuthError, AuthEvent, AuthResult, Rule, server_name};
use crate::room::power_levels;
use crate::room::version::RoomVersion;

/// Rule 1: `m.room.create`.
pub(super) fn check_create(version: RoomVersion, event: &AuthEvent) -> AuthResult {
    let fail = |rule, reason: &str| Err(AuthError::new(version, rule, reason));
    // 1.1
    if !event.prev_events.is_empty() {
        return fail(Rule::CreateHasPrevEvents, "m.room.create must not have prev_events");
    }
    // 1.2
    if version.room_id_from_create_event() {
        // v12: the room ID is derived from this event's ID, so it cannot be
        // part of the event.
        if event.room_id.is_some() {
            return fail(Rule::CreateHasRoomId, "m.room.create must not have a room_id");
        }
    } else {
        let room_server = event.room_id.as_deref().and_then(server_name);
        if room_server.is_none() || room_server != server_name(&event.sender) {
            return fail(
                Rule::CreateRoomIdDomainMismatch,
                "the room ID's domain must be the sender's server",
            );
        }
    }
    // 1.3: "recognised" is read as "a version Hearth implements"; a room of
    // any other version could not be served anyway.
    if let Some(room_version) = event.content.get("room_version")
        && room_version.as_str().and_then(RoomVersion::parse).is_none()
    {
        return fail(Rule::CreateUnknownRoomVersion, "unknown room_version");
    }
    // v10 1.4.
    if version.create_has_creator() && event.content.get("creator").is_none() {
        return fail(Rule::CreateMissingCreator, "m.room.create must have content.creator");
    }
    // v12 1.4.
    if version.privileged_creators()
        && let Some(additional) = event.content.get("additional_creators")
    {
        let valid = additional.as_array().is_some_and(|users| {
            users.iter().all(|u| u.as_str().is_some_and(power_levels::is_user_id))
        });
        if !valid {
            return fail(
                Rule::CreateInvalidAdditionalCreators,
                "additional_creators must be an array of user IDs",
            );
        }
    }
    Ok(())
}
