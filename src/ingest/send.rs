//! Sending an event into an existing room (spec:
//! client-server-api/#sending-events-to-a-room), idempotent per client
//! transaction.

use super::{Rooms, append};
use crate::account::now_ms;
use crate::error::{ErrorKind, MatrixError};
use crate::ids::{DeviceId, EventId, RoomId, UserId};
use crate::room::build::{NewEvent, event_id_of};
use crate::store::{RoomShort, StoreError, StreamPos, WriteCtx};

/// A client's transaction ID with who sent it: the same ID from the same
/// device on the same path is one request (spec: "Transaction
/// identifiers"), whichever access token the device used.
pub struct Txn {
    pub user: UserId,
    pub device: DeviceId,
    pub id: String,
}

impl Txn {
    pub fn new(user: &UserId, device: &DeviceId, id: &str) -> Txn {
        Txn { user: user.clone(), device: device.clone(), id: id.into() }
    }

    /// The event ID this transaction made earlier in `scope`, if it did.
    pub(super) fn earlier_event(
        &self,
        ctx: &WriteCtx<'_>,
        scope: &str,
    ) -> Result<Option<EventId>, StoreError> {
        let Some((room, stream)) = ctx.txn_position(&self.user, &self.device, scope, &self.id)?
        else {
            return Ok(None);
        };
        let Some(event) = ctx.event_at(room, stream)? else { return Ok(None) };
        // A stored event's own ID.
        Ok(event_id_of(&event.json).map(EventId::from_trusted))
    }

    /// Remembers that this transaction made the event at `stored` in `scope`.
    pub(super) fn record(
        &self,
        ctx: &mut WriteCtx<'_>,
        scope: &str,
        stored: (RoomShort, StreamPos),
    ) -> Result<(), StoreError> {
        ctx.put_txn(&self.user, &self.device, scope, &self.id, stored)
    }
}

/// Sends `ev` into `room_id`. With `txn` the send is idempotent: a
/// retransmission returns the first event's ID, and the event carries the
/// transaction ID for the sending device (`unsigned.transaction_id`).
pub async fn send(
    rooms: &Rooms<'_>,
    room_id: &RoomId,
    mut ev: NewEvent,
    txn: Option<Txn>,
) -> Result<EventId, MatrixError> {
    rooms
        .write_in_room(room_id, move |ctx, cache, signer, room| {
            let scope = format!("s{}/{}", room.short.0, ev.event_type);
            if let Some(t) = &txn {
                if let Some(id) = t.earlier_event(ctx, &scope)? {
                    return Ok(Ok(id));
                }
                ev.txn = Some((t.device.to_string(), t.id.clone()));
            }
            if ev.state_key.is_none()
                && crate::room::relations::is_duplicate_annotation(
                    ctx,
                    room.short,
                    &ev.sender,
                    &ev.event_type,
                    &ev.content,
                )?
            {
                return Ok(Err(MatrixError::new(
                    ErrorKind::DuplicateAnnotation,
                    "You already sent this annotation to this event; redact it to send it again",
                )));
            }
            let appended = match append(ctx, cache, signer, room, ev, now_ms())? {
                Ok(a) => a,
                Err(e) => return Ok(Err(e)),
            };
            if let Some(t) = &txn {
                t.record(ctx, &scope, (room.short, appended.stream))?;
            }
            Ok(Ok(appended.event_id))
        })
        .await
}
