//! Event relationships (spec: client-server-api/#forming-relationships-between-events,
//! modules event_replacements, threading, reference_relations): recording
//! children as events are stored, and the bundled aggregations
//! (`unsigned.m.relations`) added wherever events are served.

use serde_json::{Map, Value, json};

use crate::error::MatrixError;
use crate::ids::UserId;
use crate::room::served::{self, Viewer};
use crate::room::visibility::Memberships;
use crate::store::{ReadTxn, RoomShort, StoreError, StoredEvent, StreamPos, WriteCtx};

/// `(rel_type, parent event_id)` of an event's content, if it relates to
/// another event with a `rel_type` (plain replies do not count).
pub fn relation_of(content: &Value) -> Option<(&str, &str)> {
    let r = content.get("m.relates_to")?;
    Some((r.get("rel_type")?.as_str()?, r.get("event_id")?.as_str()?))
}

/// Records the relation of a just-stored event.
pub fn record(
    ctx: &mut WriteCtx<'_>,
    room: RoomShort,
    stream: StreamPos,
    event: &Value,
) -> Result<(), StoreError> {
    if event.get("state_key").is_some() {
        return Ok(());
    }
    let Some((rel_type, parent)) = relation_of(&event["content"]) else { return Ok(()) };
    let sender = event["sender"].as_str().unwrap_or_default();
    let ty = event["type"].as_str().unwrap_or_default();
    ctx.put_relation(room, parent, rel_type, stream, sender, ty)
}

/// Whether `sender` already annotated the same event with the same event
/// type and `key` (spec: client-server-api/#avoiding-duplicate-annotations).
/// Runs in the writer against the batch's transaction, so of two identical
/// annotations in one batch the second sees the first. A redacted
/// annotation no longer counts: redaction removes its relation row.
pub fn is_duplicate_annotation(
    ctx: &WriteCtx<'_>,
    room: RoomShort,
    sender: &UserId,
    event_type: &str,
    content: &Value,
) -> Result<bool, StoreError> {
    let Some(("m.annotation", parent)) = relation_of(content) else { return Ok(false) };
    let Some(key) = content["m.relates_to"].get("key") else { return Ok(false) };
    for child in ctx.relations(room, parent, Some("m.annotation"))? {
        if child.sender != sender.as_str() || child.event_type != event_type {
            continue;
        }
        let Some(stored) = ctx.event_at(room, child.stream)? else { continue };
        let earlier: Value = serde_json::from_slice(&stored.json)
            .map_err(|e| StoreError::Corrupt(format!("event: {e}")))?;
        if earlier["content"]["m.relates_to"].get("key") == Some(key) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn load(read: &ReadTxn, room: RoomShort, stream: StreamPos) -> Result<Option<Value>, MatrixError> {
    match read.event_at(room, stream)? {
        Some(e) => Ok(Some(served::parse(&e.json, None)?)),
        None => Ok(None),
    }
}

/// Is `edit` a valid replacement of `original` (spec: "Validity of
/// replacement events")?
fn valid_replacement(original: &Value, edit: &Value) -> bool {
    original["sender"] == edit["sender"]
        && original["type"] == edit["type"]
        && original.get("state_key").is_none()
        && edit.get("state_key").is_none()
        && original["content"]["m.relates_to"]["rel_type"] != "m.replace"
        && edit["content"].get("m.new_content").is_some()
}

/// Adds `unsigned.m.relations` to a served event (not to state events).
pub fn bundle(
    read: &ReadTxn,
    room: RoomShort,
    event: &mut Value,
    user_id: &UserId,
) -> Result<(), MatrixError> {
    let user_id = user_id.as_str();
    if event.get("state_key").is_some() {
        return Ok(());
    }
    let Some(id) = event["event_id"].as_str().map(str::to_owned) else { return Ok(()) };
    let children = read.relations(room, &id, None)?;
    if children.is_empty() {
        return Ok(());
    }
    let mut rel = Map::new();
    // m.replace: the most recent valid edit (ts, then largest event_id).
    let mut best: Option<Value> = None;
    for c in children.iter().filter(|c| c.rel_type == "m.replace") {
        let Some(edit) = load(read, room, c.stream)? else { continue };
        if !valid_replacement(event, &edit) {
            continue;
        }
        let newer = match &best {
            None => true,
            Some(b) => {
                let key = |v: &Value| {
                    (
                        v["origin_server_ts"].as_u64().unwrap_or(0),
                        v["event_id"].as_str().unwrap_or("").to_owned(),
                    )
                };
                key(&edit) > key(b)
            }
        };
        if newer {
            best = Some(edit);
        }
    }
    if let Some(b) = best {
        rel.insert("m.replace".into(), b);
    }
    let thread: Vec<_> = children.iter().filter(|c| c.rel_type == "m.thread").collect();
    if let Some(last) = thread.last()
        && let Some(latest) = load(read, room, last.stream)?
    {
        let participated = event["sender"] == user_id || thread.iter().any(|c| c.sender == user_id);
        rel.insert(
            "m.thread".into(),
            json!({ "latest_event": latest, "count": thread.len(), "current_user_participated": participated }),
        );
    }
    let refs: Vec<Value> = children
        .iter()
        .filter(|c| c.rel_type == "m.reference")
        .filter_map(|c| load(read, room, c.stream).ok().flatten())
        .map(|e| json!({ "event_id": e["event_id"] }))
        .collect();
    if !refs.is_empty() {
        rel.insert("m.reference".into(), json!({ "chunk": refs }));
    }
    if rel.is_empty() {
        return Ok(());
    }
    if !event.get("unsigned").is_some_and(Value::is_object) {
        event["unsigned"] = json!({});
    }
    event["unsigned"]["m.relations"] = Value::Object(rel);
    Ok(())
}

/// A stored event for `viewer` with its bundled aggregations and the
/// viewer's membership at it, as the spec asks for `/event`, `/messages`,
/// `/context` and `/sync`.
pub fn parse_bundled(
    read: &ReadTxn,
    room: RoomShort,
    e: &StoredEvent,
    viewer: Viewer<'_>,
    memberships: &Memberships,
) -> Result<Value, MatrixError> {
    let mut v = served::parse(&e.json, Some(viewer))?;
    served::set_membership(&mut v, memberships.at(e.stream));
    bundle(read, room, &mut v, viewer.user)?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_typed_relations_count() {
        let c = json!({ "m.relates_to": { "rel_type": "m.annotation", "event_id": "$a", "key": "👍" } });
        assert_eq!(relation_of(&c), Some(("m.annotation", "$a")));
        let reply = json!({ "m.relates_to": { "m.in_reply_to": { "event_id": "$a" } } });
        assert_eq!(relation_of(&reply), None);
    }

    #[test]
    fn edits_must_come_from_the_sender_and_keep_the_type() {
        let original =
            json!({ "sender": "@a:x", "type": "m.room.message", "content": { "body": "hi" } });
        let good = json!({ "sender": "@a:x", "type": "m.room.message", "content": { "m.new_content": { "body": "ho" } } });
        let other = json!({ "sender": "@b:x", "type": "m.room.message", "content": { "m.new_content": {} } });
        let no_new =
            json!({ "sender": "@a:x", "type": "m.room.message", "content": { "body": "*ho" } });
        assert!(valid_replacement(&original, &good));
        assert!(!valid_replacement(&original, &other));
        assert!(!valid_replacement(&original, &no_new));
    }
}
