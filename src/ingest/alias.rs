//! Keeping a room's `m.room.canonical_alias` true once one of its aliases
//! is deleted (spec: client-server-api/#room-aliases).

use serde_json::Value;

use super::{WriterCache, append};
use crate::account::now_ms;
use crate::ids::{RoomAlias, UserId};
use crate::room::build::{NewEvent, Signer};
use crate::room::target::RoomTarget;
use crate::store::{StoreError, WriteCtx};

/// After `alias` stopped naming `room`: when the room's
/// `m.room.canonical_alias` lists it (`alias` or `alt_aliases`), sends one
/// without it as `sender`, so the room no longer advertises a dead alias
/// (in its state and the directory). The event goes through the auth
/// rules like any other; a sender they refuse (too little power, not in the
/// room) leaves the state as it was, and the alias is gone all the same.
pub fn unlist_canonical_alias(
    ctx: &mut WriteCtx<'_>,
    cache: &mut WriterCache,
    signer: &Signer,
    room: &RoomTarget,
    sender: &UserId,
    alias: &RoomAlias,
) -> Result<(), StoreError> {
    let alias = alias.as_str();
    let Some(current) = ctx.state_event(room.short, "m.room.canonical_alias", "")? else {
        return Ok(());
    };
    let current: Value =
        serde_json::from_slice(&current.json).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let Some(mut content) = current.get("content").and_then(Value::as_object).cloned() else {
        return Ok(());
    };
    let mut listed = false;
    if content.get("alias").and_then(Value::as_str) == Some(alias) {
        content.remove("alias");
        listed = true;
    }
    let mut alt_left = None;
    if let Some(Value::Array(alt)) = content.get_mut("alt_aliases") {
        let before = alt.len();
        alt.retain(|a| a.as_str() != Some(alias));
        listed |= alt.len() != before;
        alt_left = Some(alt.len());
    }
    if !listed {
        return Ok(());
    }
    if alt_left == Some(0) {
        content.remove("alt_aliases");
    }
    let ev = NewEvent {
        event_type: "m.room.canonical_alias".into(),
        state_key: Some(String::new()),
        sender: sender.clone(),
        content: Value::Object(content),
        redacts: None,
        txn: None,
    };
    if let Err(e) = append(ctx, cache, signer, room, ev, now_ms())? {
        tracing::debug!("{alias} left in the canonical alias of {}: {e:?}", room.room_id);
    }
    Ok(())
}
