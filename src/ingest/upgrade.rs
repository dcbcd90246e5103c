//! Room upgrades (spec: modules/room_upgrades, "Server behaviour"): a new
//! room whose create event names its predecessor, the transferable state
//! copied over, local aliases moved, a tombstone in the old room, and the
//! old room's power levels raised so nobody keeps talking there.

use serde_json::{Map, Value, json};

use super::{CreateRoom, Rooms, create_room, send};
use crate::error::MatrixError;
use crate::ids::{RoomId, UserId};
use crate::membership::Membership;
use crate::room::build::NewEvent;
use crate::room::target::{power_levels, target};
use crate::room::version::RoomVersion;
use crate::store::{ReadTxn, RoomShort};

/// State copied to the replacement room (the spec's recommended list; the
/// canonical alias follows the moved aliases).
const TRANSFERRED: [&str; 9] = [
    "m.room.server_acl",
    "m.room.encryption",
    "m.room.name",
    "m.room.avatar",
    "m.room.topic",
    "m.room.guest_access",
    "m.room.history_visibility",
    "m.room.join_rules",
    "m.room.canonical_alias",
];

fn content(read: &ReadTxn, room: RoomShort, ty: &str) -> Result<Option<Value>, MatrixError> {
    Ok(match read.state_event(room, ty, "")? {
        Some(ev) => {
            let v: Value =
                serde_json::from_slice(&ev.json).map_err(|e| MatrixError::internal("event", e))?;
            Some(v["content"].clone())
        }
        None => None,
    })
}

/// Upgrades `room_id` to `version` on behalf of `user`; returns the new room.
pub async fn upgrade(
    rooms: &Rooms<'_>,
    room_id: &RoomId,
    version: RoomVersion,
    user: &UserId,
) -> Result<RoomId, MatrixError> {
    // 1. Permission to send the tombstone, checked before anything is made.
    let (rid, u) = (room_id.clone(), user.clone());
    rooms
        .store
        .write(move |ctx| {
            let Some(room) = target(ctx, &rid)? else {
                return Ok(Err(MatrixError::not_found("Room not found")));
            };
            let joined =
                ctx.membership(&u, room.short)?.is_some_and(|m| m.membership == Membership::Join);
            let allowed = joined
                && power_levels(ctx, &room)?
                    .is_some_and(|pl| pl.can_send_state(u.as_str(), "m.room.tombstone"));
            if allowed {
                Ok(Ok(()))
            } else {
                Ok(Err(MatrixError::forbidden("You may not upgrade this room")))
            }
        })
        .await?;
    let read = rooms.store.read()?;
    let record =
        read.room(room_id.as_str())?.ok_or_else(|| MatrixError::not_found("Room not found"))?;
    let short = RoomShort(record.short);
    let create = content(&read, short, "m.room.create")?.unwrap_or(Value::Null);
    let mut creation_content = Map::new();
    if let Some(t) = create.get("type") {
        creation_content.insert("type".into(), t.clone());
    }
    let mut predecessor = json!({ "room_id": room_id });
    if !version.room_id_from_create_event()
        && let Some(last) = read.latest_event(short)?
    {
        let v: Value =
            serde_json::from_slice(&last.json).map_err(|e| MatrixError::internal("event", e))?;
        predecessor["event_id"] = v["event_id"].clone();
    }
    creation_content.insert("predecessor".into(), predecessor);
    let mut pl = content(&read, short, "m.room.power_levels")?.unwrap_or_else(|| json!({}));
    if version.privileged_creators() {
        // v12 creators hold infinite power and may not be listed in `users`.
        if let Some(users) = pl.get_mut("users").and_then(Value::as_object_mut) {
            users.remove(user.as_str());
        }
    } else {
        let u = user.as_str();
        pl["users"][u] = json!(pl["users"][u].as_i64().unwrap_or(100).max(100));
    }
    let mut initial_state = Vec::new();
    for ty in TRANSFERRED {
        if let Some(c) = content(&read, short, ty)? {
            initial_state.push((ty.to_owned(), String::new(), c));
        }
    }
    let aliases = read.aliases_of(room_id.as_str())?;
    let profile = read.user(user.localpart())?;
    drop(read);
    // 2–3. The replacement room with the transferred state.
    let new_room = create_room(
        rooms,
        CreateRoom {
            creator: user.clone(),
            version,
            creation_content,
            power_levels: pl.clone(),
            initial_state,
            invite: Vec::new(),
            is_direct: false,
            alias: None,
            public: record.public,
            creator_profile: profile.map(|p| (p.displayname, p.avatar_url)).unwrap_or_default(),
        },
    )
    .await?;
    // 4. Local aliases move to the new room.
    let (new_id, moved) = (new_room.clone(), aliases);
    rooms
        .store
        .write(move |ctx| {
            for a in &moved {
                ctx.delete_alias(a)?;
                ctx.put_alias(a, new_id.as_str())?;
            }
            Ok(Ok::<_, MatrixError>(()))
        })
        .await?;
    // 5. The tombstone.
    let tombstone = NewEvent {
        event_type: "m.room.tombstone".into(),
        state_key: Some(String::new()),
        sender: user.clone(),
        content: json!({ "body": "This room has been replaced", "replacement_room": new_room }),
        redacts: None,
        txn: None,
    };
    send(rooms, room_id, tombstone, None).await?;
    // 6. Quieten the old room.
    let users_default = pl["users_default"].as_i64().unwrap_or(0);
    let floor = 50.max(users_default + 1);
    let mut old_pl = pl;
    if version.privileged_creators() {
        // `pl` was adjusted for the new room; re-read the old one's.
        let read = rooms.store.read()?;
        old_pl = content(&read, short, "m.room.power_levels")?.unwrap_or_else(|| json!({}));
    }
    old_pl["events_default"] = json!(old_pl["events_default"].as_i64().unwrap_or(0).max(floor));
    old_pl["invite"] = json!(old_pl["invite"].as_i64().unwrap_or(0).max(floor));
    let lower = NewEvent {
        event_type: "m.room.power_levels".into(),
        state_key: Some(String::new()),
        sender: user.clone(),
        content: old_pl,
        redacts: None,
        txn: None,
    };
    if let Err(e) = send(rooms, room_id, lower, None).await {
        // Not fatal: the tombstone already points everyone to the new room.
        tracing::info!("could not raise power levels of upgraded room {room_id}: {e}");
    }
    Ok(new_room)
}
