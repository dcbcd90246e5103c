//! Room summaries (MSC3266): a preview of a room by ID or alias for its
//! members and for anyone who could join it.

use serde_json::{Value, json};

use crate::api::{Reply, Request, json};
use crate::app::App;
use crate::error::MatrixError;
use crate::ids::{RoomAlias, RoomId};
use crate::membership::Membership;
use crate::store::{ReadTxn, RoomShort};
use crate::sync::event_value;

fn content(read: &ReadTxn, room: RoomShort, t: &str) -> Result<Value, MatrixError> {
    match read.state_event(room, t, "")? {
        Some(ev) => Ok(event_value(&ev, false)?["content"].take()),
        None => Ok(Value::Null),
    }
}

/// `GET /_matrix/client/v1/room_summary/{roomIdOrAlias}` (and the unstable
/// `im.nheko.summary` paths).
pub fn get_room_summary(app: &App, req: &Request, id_or_alias: &str) -> Result<Reply, MatrixError> {
    // Unknown and inaccessible rooms answer alike, so a summary request
    // does not reveal that a private room exists.
    let hidden = || MatrixError::not_found("Room not found or not accessible");
    let read = app.store.read()?;
    let room_id = if id_or_alias.starts_with('#') {
        RoomAlias::parse(id_or_alias).map_err(|e| MatrixError::invalid_param(e.0))?;
        read.alias(id_or_alias)?.ok_or_else(hidden)?
    } else {
        RoomId::parse(id_or_alias).map_err(|e| MatrixError::invalid_param(e.0))?;
        id_or_alias.to_owned()
    };
    let record = read.room(&room_id)?.ok_or_else(hidden)?;
    let room = RoomShort(record.short);
    let join_rules = content(&read, room, "m.room.join_rules")?;
    let join_rule = join_rules["join_rule"].as_str().unwrap_or("invite").to_owned();
    let world_readable = content(&read, room, "m.room.history_visibility")?["history_visibility"]
        == "world_readable";
    let caller = req.caller.as_ref().map(|c| c.user_id.clone());
    let membership = match &caller {
        Some(u) => read.membership(u, room)?.map(|m| m.membership),
        None => None,
    };
    let allowed_rooms: Vec<String> = join_rules["allow"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["type"] == "m.room_membership")
        .filter_map(|a| a["room_id"].as_str().map(str::to_owned))
        .collect();
    // Members, invitees and knockers; anyone when the room is public,
    // knockable or world-readable; for restricted rooms, members of an
    // allowed room (spec: "potential joiners").
    let mut accessible = world_readable
        || matches!(join_rule.as_str(), "public" | "knock")
        || matches!(membership, Some(Membership::Join | Membership::Invite | Membership::Knock));
    if !accessible
        && let Some(u) = &caller
        && matches!(join_rule.as_str(), "restricted" | "knock_restricted")
    {
        for allowed in &allowed_rooms {
            if let Some(r) = read.room(allowed)?
                && read
                    .membership(u, RoomShort(r.short))?
                    .is_some_and(|m| m.membership == Membership::Join)
            {
                accessible = true;
                break;
            }
        }
    }
    if !accessible {
        return Err(hidden());
    }
    let encryption = content(&read, room, "m.room.encryption")?["algorithm"].clone();
    let mut out = json!({
        "room_id": room_id,
        "num_joined_members": read.members_with(room, Membership::Join)?.len(),
        "world_readable": world_readable,
        "guest_can_join": content(&read, room, "m.room.guest_access")?["guest_access"] == "can_join",
        "join_rule": join_rule,
        "room_version": record.version,
        "im.nheko.summary.room_version": record.version,
    });
    let fields = [
        ("name", content(&read, room, "m.room.name")?["name"].clone()),
        ("topic", content(&read, room, "m.room.topic")?["topic"].clone()),
        ("avatar_url", content(&read, room, "m.room.avatar")?["url"].clone()),
        ("canonical_alias", content(&read, room, "m.room.canonical_alias")?["alias"].clone()),
        ("room_type", content(&read, room, "m.room.create")?["type"].clone()),
        ("encryption", encryption.clone()),
        ("im.nheko.summary.encryption", encryption),
    ];
    for (k, v) in fields {
        if v.is_string() {
            out[k] = v;
        }
    }
    if let Some(m) = membership {
        out["membership"] = json!(m);
    }
    if !allowed_rooms.is_empty() {
        out["allowed_room_ids"] = json!(allowed_rooms);
    }
    Ok(json(&out))
}
