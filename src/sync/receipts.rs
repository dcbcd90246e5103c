//! Receipts (spec: modules/receipts) and the fully-read marker (spec:
//! modules/read_markers, kept as the room's `m.fully_read` account data),
//! written inside the writer so that each only moves forwards against the
//! position it replaces.

use serde_json::{Value, json};

use crate::error::MatrixError;
use crate::ids::{EventId, RoomId, UserId};
use crate::membership::Membership;
use crate::store::{Receipt, RoomShort, StoreError, WriteCtx};

/// Moves the user's fully-read marker in the room to `event_id`, unless it
/// already points at a later event.
pub fn set_fully_read(
    ctx: &mut WriteCtx<'_>,
    user: &UserId,
    room_id: &RoomId,
    event_id: &EventId,
) -> Result<Result<(), MatrixError>, StoreError> {
    let room_id = room_id.as_str();
    // The marker, like a receipt, only moves forwards.
    let current = ctx.account_data(user, room_id, "m.fully_read")?.and_then(|v| {
        let v: Value = serde_json::from_slice(&v).ok()?;
        v["event_id"].as_str().map(str::to_owned)
    });
    if let Some(current) = current
        && !ctx.is_later_event(event_id.as_str(), &current)?
    {
        return Ok(Ok(()));
    }
    let body = serde_json::to_vec(&json!({ "event_id": event_id }))
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    ctx.put_account_data(user, room_id, "m.fully_read", &body)?;
    Ok(Ok(()))
}

/// Stores a receipt in `room` if it moves the user's position forwards,
/// and wakes who sees it: the user alone for a private one, else the
/// room's joined members.
pub fn put(
    ctx: &mut WriteCtx<'_>,
    room: RoomShort,
    receipt: &Receipt,
) -> Result<Result<(), MatrixError>, StoreError> {
    if ctx.put_receipt(room, receipt)?.is_none() {
        return Ok(Ok(()));
    }
    if receipt.receipt_type == "m.read.private" {
        ctx.wake_user(&receipt.user_id);
    } else {
        for m in ctx.members_with(room, Membership::Join)? {
            ctx.wake_user(&m);
        }
    }
    Ok(Ok(()))
}
