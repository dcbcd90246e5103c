//! Account data (spec: modules/account_data) and room tags (spec:
//! modules/tags, kept as a room's `m.tag` account data): what the server
//! stores for a user's clients and hands them back through sync, within
//! the per-user caps of `quota`.
//!
//! The functions run inside the writer: the quota checks and the
//! read-modify-write of the tags see the state they change.

use serde_json::{Map, Value, json};

use crate::error::MatrixError;
use crate::ids::{RoomId, UserId};
use crate::quota;
use crate::store::{StoreError, WriteCtx};

/// Stores `content` as the user's account data `data_type`, global when
/// `room` is `None`, unless that would grow a full store.
pub fn set(
    ctx: &mut WriteCtx<'_>,
    user: &UserId,
    room: Option<&RoomId>,
    data_type: &str,
    content: &[u8],
) -> Result<Result<(), MatrixError>, StoreError> {
    // The store keys global account data under the room "".
    put(ctx, user, room.map_or("", RoomId::as_str), data_type, content)
}

/// [`set`] with the store's room key ("" for global).
fn put(
    ctx: &mut WriteCtx<'_>,
    user: &UserId,
    room_id: &str,
    data_type: &str,
    content: &[u8],
) -> Result<Result<(), MatrixError>, StoreError> {
    if let Some(refused) = refused_by_quota(ctx, user, room_id, data_type, content.len())? {
        return Ok(Err(refused));
    }
    ctx.put_account_data(user, room_id, data_type, content)?;
    Ok(Ok(()))
}

/// Adds (`Some` content) or removes (`None`) the user's tag `tag` on a
/// room. `room_id` stays a string: the tags endpoints have always taken
/// the path's room ID as given, unparsed, and their answers must not change.
pub fn change_tag(
    ctx: &mut WriteCtx<'_>,
    user: &UserId,
    room_id: &str,
    tag: String,
    value: Option<Value>,
) -> Result<Result<(), MatrixError>, StoreError> {
    let mut tags: Map<String, Value> = match ctx.account_data(user, room_id, "m.tag")? {
        Some(b) => serde_json::from_slice::<Value>(&b)
            .ok()
            .and_then(|v| v.get("tags").and_then(Value::as_object).cloned())
            .unwrap_or_default(),
        None => Map::new(),
    };
    match value {
        Some(v) => {
            tags.insert(tag, v);
        }
        None => {
            tags.remove(&tag);
        }
    }
    let bytes = serde_json::to_vec(&json!({ "tags": tags }))
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    put(ctx, user, room_id, "m.tag", &bytes)
}

/// Why storing `len` bytes as account data `data_type` would grow a full
/// store (see `quota`); `None` when it may be stored. Replacing an item by
/// one no larger always passes. `room_id` is the store's key: "" for
/// global account data.
fn refused_by_quota(
    ctx: &WriteCtx<'_>,
    user: &UserId,
    room_id: &str,
    data_type: &str,
    len: usize,
) -> Result<Option<MatrixError>, StoreError> {
    let old = ctx.account_data(user, room_id, data_type)?;
    if len > quota::ACCOUNT_DATA_BYTES && old.as_ref().is_none_or(|o| len > o.len()) {
        return Ok(Some(quota::too_large(
            &format!("Account data {data_type}"),
            quota::ACCOUNT_DATA_BYTES,
        )));
    }
    if old.is_some() {
        return Ok(None);
    }
    let (max, what) = if room_id.is_empty() {
        (quota::MAX_GLOBAL_ACCOUNT_DATA, "global account data types")
    } else {
        (quota::MAX_ROOM_ACCOUNT_DATA, "account data types in one room")
    };
    if ctx.account_data_count(user, room_id)? >= max {
        return Ok(Some(quota::store_full(what, max, "; delete some first")));
    }
    Ok(None)
}
