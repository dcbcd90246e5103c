//! The one way in for new events, and the room operations that make them.
//!
//! Every new event, once authorised and stored, passes [`fan_out`] in the
//! same writer transaction: the search index, the sliding-sync bump, push
//! rules (unread counts, `/notifications`, the push-gateway queue), the
//! relations index and the wake-ups of the affected users' long-polls. A
//! commit therefore makes an event visible complete; nothing about it is
//! indexed later or lost between two transactions. Local events get there
//! through [`append`] (`room::build::append_event`, then [`fan_out`]);
//! events from federation or appservices are to call [`fan_out`] after their
//! own authorisation and storage.
//!
//! Above `room`, `push`, `search` and `sync`, which know nothing of each
//! other's reaction to a new event; below the API, which calls the
//! operations here with the borrowed server parts they need ([`Rooms`]).
//! Nothing here sees the running server or a request: callers hand in what
//! an operation needs.
//!
//! # Layout
//!
//! - `cache`: [`WriterCache`], the writer's parsed room state and rulesets.
//! - `send`: [`send`] an event into a room, idempotent per [`Txn`].
//! - `redact`: [`redact`] an event (the redaction event and the rewrite).
//! - `create`: [`create_room`] with its initial events.
//! - `alias`: [`unlist_canonical_alias`] once an alias is deleted.
//! - `upgrade`: [`upgrade`] a room to a new room version.

mod alias;
mod cache;
mod create;
mod redact;
mod send;
mod upgrade;

pub use alias::unlist_canonical_alias;
pub use cache::{SharedWriterCache, WriterCache, lock};
pub use create::{CreateRoom, create_room};
pub use redact::redact;
pub use send::{Txn, send};
pub use upgrade::upgrade;

use serde_json::Value;

use crate::error::MatrixError;
use crate::ids::{RoomId, UserId};
use crate::membership::Membership;
use crate::room::build::{Appended, NewEvent, Signer, append_event};
use crate::room::target::{RoomTarget, target};
use crate::store::{Store, StoreError, WriteCtx};

/// What the room operations need of the running server, borrowed.
pub struct Rooms<'a> {
    pub store: &'a Store,
    /// Signs new events; its `server_name` is this server's.
    pub signer: &'a Signer,
    pub cache: &'a SharedWriterCache,
}

impl Rooms<'_> {
    /// Runs `op` as one writer operation on the room `room_id` names, with
    /// the writer cache locked; an unknown room is refused (404) before `op`
    /// runs.
    async fn write_in_room<R, F>(&self, room_id: &RoomId, op: F) -> Result<R, MatrixError>
    where
        F: FnOnce(
                &mut WriteCtx<'_>,
                &mut WriterCache,
                &Signer,
                &RoomTarget,
            ) -> Result<Result<R, MatrixError>, StoreError>
            + Send
            + 'static,
        R: Send + 'static,
    {
        let signer = self.signer.clone();
        let cache = self.cache.clone();
        let room_id = room_id.clone();
        self.store
            .write(move |ctx| {
                let mut cache = lock(&cache);
                let Some(room) = target(ctx, &room_id)? else {
                    return Ok(Err(MatrixError::not_found("Room not found")));
                };
                op(ctx, &mut cache, &signer, &room)
            })
            .await
    }
}

/// Authorises, builds, signs and stores `ev` in `room`
/// (`room::build::append_event`), then fans it out. The outer `Err` is a
/// storage failure; the inner one a refusal (nothing written).
pub fn append(
    ctx: &mut WriteCtx<'_>,
    cache: &mut WriterCache,
    signer: &Signer,
    room: &RoomTarget,
    ev: NewEvent,
    now_ms: u64,
) -> Result<Result<Appended, MatrixError>, StoreError> {
    let appended = match append_event(ctx, &mut cache.state, signer, room, ev, now_ms)? {
        Ok(a) => a,
        Err(e) => return Ok(Err(e)),
    };
    fan_out(ctx, cache, &signer.server_name, room, &appended)?;
    Ok(Ok(appended))
}

/// What a new event sets off, for an event just stored in `room`, in this
/// transaction: indexed for search, bumped for sliding sync, evaluated
/// against the push rules of `server_name`'s members (those it notifies are
/// woken), recorded as a relation, and every joined member (and the target
/// of a membership change) woken.
pub fn fan_out(
    ctx: &mut WriteCtx<'_>,
    cache: &mut WriterCache,
    server_name: &str,
    room: &RoomTarget,
    stored: &Appended,
) -> Result<(), StoreError> {
    let (event, stream) = (&stored.event, stored.stream);
    let event_type = event["type"].as_str().unwrap_or_default();
    let content = &event["content"];
    crate::search::run::index_event(ctx, room.short, stream, event_type, content)?;
    crate::sync::sliding::record_bump(ctx, room.short, stream, event_type)?;
    // Stored members were validated when they joined: moved, not parsed.
    let joined: Vec<UserId> = ctx
        .members_with(room.short, Membership::Join)?
        .into_iter()
        .map(UserId::from_trusted)
        .collect();
    crate::push::apply::notify_members(
        ctx,
        &mut cache.state,
        &mut cache.rulesets,
        server_name,
        room,
        stored,
        &joined,
    )?;
    crate::room::relations::record(ctx, room.short, stream, event)?;
    for user in &joined {
        ctx.wake_user(user.as_str());
    }
    let membership_target = match (event_type, content.get("membership")) {
        ("m.room.member", Some(Value::String(_))) => event["state_key"].as_str(),
        _ => None,
    };
    if let Some(target) = membership_target {
        ctx.wake_user(target);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
