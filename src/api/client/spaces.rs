//! Spaces (spec: modules/spaces): `GET /rooms/{roomId}/hierarchy`, a
//! breadth-first walk over `m.space.child` state events.

use std::collections::{HashSet, VecDeque};

use serde_json::{Value, json};

use crate::api::{Reply, Request, json};
use crate::app::App;
use crate::error::MatrixError;
use crate::ids::UserId;
use crate::membership::Membership;
use crate::room::served::parse_stored;
use crate::store::{ReadTxn, RoomShort};

fn content(read: &ReadTxn, room: RoomShort, ty: &str, key: &str) -> Result<Value, MatrixError> {
    Ok(match read.state_event(room, ty, key)? {
        Some(ev) => parse_stored(&ev)?["content"].clone(),
        None => Value::Null,
    })
}

/// May `user` see this room in a hierarchy? Members and invitees can; so can
/// anyone for world-readable rooms and rooms they could join or knock on.
fn accessible(read: &ReadTxn, user: &UserId, room: RoomShort) -> Result<bool, MatrixError> {
    if read
        .membership(user, room)?
        .is_some_and(|m| m.membership == Membership::Join || m.membership == Membership::Invite)
    {
        return Ok(true);
    }
    if content(read, room, "m.room.history_visibility", "")?["history_visibility"]
        == "world_readable"
    {
        return Ok(true);
    }
    let rules = content(read, room, "m.room.join_rules", "")?;
    Ok(match rules["join_rule"].as_str() {
        Some("public" | "knock") => true,
        Some("restricted" | "knock_restricted") => rules["allow"].as_array().is_some_and(|allow| {
            allow.iter().any(|a| {
                a["type"] == "m.room_membership"
                    && a["room_id"].as_str().is_some_and(|id| {
                        read.room(id).ok().flatten().is_some_and(|r| {
                            read.membership(user, RoomShort(r.short))
                                .ok()
                                .flatten()
                                .is_some_and(|m| m.membership == Membership::Join)
                        })
                    })
            })
        }),
        _ => false,
    })
}

/// `(child room_id, stripped m.space.child event)` of a room, valid ones
/// only (non-empty `via`).
fn children(
    read: &ReadTxn,
    room: RoomShort,
    suggested_only: bool,
) -> Result<Vec<(String, Value)>, MatrixError> {
    let mut out = Vec::new();
    for (t, k, _) in read.room_state(room)? {
        if t != "m.space.child" {
            continue;
        }
        let Some(ev) = read.state_event(room, &t, &k)? else { continue };
        let v = parse_stored(&ev)?;
        let c = &v["content"];
        if c["via"].as_array().is_none_or(|via| via.is_empty()) {
            continue;
        }
        if suggested_only && c["suggested"] != true {
            continue;
        }
        out.push((
            k.clone(),
            json!({ "type": t, "state_key": k, "content": c, "sender": v["sender"],
                    "origin_server_ts": v["origin_server_ts"] }),
        ));
    }
    // The spec orders children by `order`, then by the child event's ts.
    out.sort_by(|a, b| {
        let oa = a.1["content"]["order"].as_str().map(str::to_owned);
        let ob = b.1["content"]["order"].as_str().map(str::to_owned);
        match (oa, ob) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.1["origin_server_ts"].as_u64().cmp(&b.1["origin_server_ts"].as_u64()),
        }
        .then_with(|| a.0.cmp(&b.0))
    });
    Ok(out)
}

fn summary(
    read: &ReadTxn,
    room_id: &str,
    room: RoomShort,
    children_state: Vec<Value>,
) -> Result<Value, MatrixError> {
    let mut s = json!({
        "room_id": room_id,
        "num_joined_members": read.members_with(room, Membership::Join)?.len(),
        "world_readable": content(read, room, "m.room.history_visibility", "")?["history_visibility"] == "world_readable",
        "guest_can_join": content(read, room, "m.room.guest_access", "")?["guest_access"] == "can_join",
        "join_rule": content(read, room, "m.room.join_rules", "")?["join_rule"].as_str().unwrap_or("invite"),
        "children_state": children_state,
    });
    let create = content(read, room, "m.room.create", "")?;
    if let Some(t) = create["type"].as_str() {
        s["room_type"] = json!(t);
    }
    if let Some(v) = create["room_version"].as_str() {
        s["room_version"] = json!(v);
    }
    for (ty, key, field) in [
        ("m.room.name", "name", "name"),
        ("m.room.topic", "topic", "topic"),
        ("m.room.canonical_alias", "alias", "canonical_alias"),
        ("m.room.avatar", "url", "avatar_url"),
        ("m.room.encryption", "algorithm", "encryption"),
    ] {
        if let Some(v) = content(read, room, ty, "")?[key].as_str() {
            s[field] = json!(v);
        }
    }
    Ok(s)
}

/// `GET /_matrix/client/v1/rooms/{roomId}/hierarchy`
pub fn get_hierarchy(app: &App, req: &Request, room_id: &str) -> Result<Reply, MatrixError> {
    let user = req.caller()?.user_id.clone();
    let suggested_only = req.query_bool("suggested_only", false)?;
    let max_depth: usize = match req.query("max_depth") {
        Some(d) => {
            d.parse().map_err(|_| MatrixError::invalid_param("max_depth must be an integer"))?
        }
        None => 10,
    };
    let limit: usize = match req.query("limit") {
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| MatrixError::invalid_param("limit must be an integer"))?
            .clamp(1, 100),
        None => 50,
    };
    let skip: usize = match req.query("from") {
        Some(f) => f
            .strip_prefix('h')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| MatrixError::invalid_param("from is not a valid token"))?,
        None => 0,
    };
    let read = app.store.read()?;
    let root = read.room(room_id)?.ok_or_else(|| MatrixError::not_found("Room not found"))?;
    if !accessible(&read, &user, RoomShort(root.short))? {
        return Err(MatrixError::forbidden("You cannot see this room"));
    }
    let mut queue = VecDeque::from([(room_id.to_owned(), 0usize)]);
    let mut seen = HashSet::new();
    let mut ordered = Vec::new();
    // Walk at most far enough to fill this page (bounded work per request).
    while let Some((id, depth)) = queue.pop_front() {
        if !seen.insert(id.clone()) || ordered.len() > skip + limit {
            continue;
        }
        let Some(rec) = read.room(&id)? else { continue };
        let short = RoomShort(rec.short);
        if id != room_id && !accessible(&read, &user, short)? {
            continue;
        }
        let kids = children(&read, short, suggested_only)?;
        let state: Vec<Value> = kids.iter().map(|(_, e)| e.clone()).collect();
        if depth < max_depth {
            for (child, _) in &kids {
                queue.push_back((child.clone(), depth + 1));
            }
        }
        ordered.push(summary(&read, &id, short, state)?);
    }
    let more = ordered.len() > skip + limit;
    let rooms: Vec<Value> = ordered.into_iter().skip(skip).take(limit).collect();
    let mut out = json!({ "rooms": rooms });
    if more {
        out["next_batch"] = json!(format!("h{}", skip + limit));
    }
    Ok(json(&out))
}
