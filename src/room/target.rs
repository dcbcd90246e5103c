//! Where a new event goes ([`RoomTarget`]) and reading a room's stored
//! state back into what the authorization rules need. Below both the event
//! builder (`build`) and the writer's state cache (`cache`), which use it.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::ids::RoomId;
use crate::room::auth::{self, AuthEvent};
use crate::room::power_levels::PowerLevels;
use crate::room::version::RoomVersion;
use crate::store::{RoomShort, StoreError, WriteCtx};

/// Where an event goes.
#[derive(Clone, Debug)]
pub struct RoomTarget {
    pub room_id: RoomId,
    pub short: RoomShort,
    pub version: RoomVersion,
}

/// The room `room_id` names, with its version; `None` for an unknown room
/// (or one of a version this server no longer knows).
pub fn target(ctx: &WriteCtx<'_>, room_id: &RoomId) -> Result<Option<RoomTarget>, StoreError> {
    let Some(record) = ctx.room(room_id.as_str())? else { return Ok(None) };
    let Some(version) = RoomVersion::parse(&record.version) else { return Ok(None) };
    Ok(Some(RoomTarget { room_id: room_id.clone(), short: RoomShort(record.short), version }))
}

/// Reads a stored client-format event back into what the auth rules need.
pub(crate) fn to_auth_event(json: &[u8], version: RoomVersion) -> Result<AuthEvent, StoreError> {
    let v: Value =
        serde_json::from_slice(json).map_err(|e| StoreError::Corrupt(format!("event: {e}")))?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let event_type = s("type");
    let room_id = if event_type == "m.room.create" && version.room_id_from_create_event() {
        None
    } else {
        Some(s("room_id"))
    };
    Ok(AuthEvent {
        event_id: s("event_id"),
        room_id,
        state_key: v.get("state_key").and_then(Value::as_str).map(str::to_owned),
        event_type,
        sender: s("sender"),
        content: v.get("content").cloned().unwrap_or_else(|| json!({})),
        prev_events: Vec::new(),
    })
}

/// The room's current power levels (with the version's creator rules).
pub fn power_levels(
    ctx: &WriteCtx<'_>,
    room: &RoomTarget,
) -> Result<Option<PowerLevels>, StoreError> {
    let mut loaded: HashMap<(String, String), AuthEvent> = HashMap::new();
    for key in ["m.room.create", "m.room.power_levels"] {
        if let Some(stored) = ctx.state_event(room.short, key, "")? {
            loaded.insert(
                (key.to_owned(), String::new()),
                to_auth_event(&stored.json, room.version)?,
            );
        }
    }
    let lookup = |t: &str, k: &str| loaded.get(&(t.to_owned(), k.to_owned()));
    Ok(auth::current_power_levels(room.version, &lookup).ok())
}
