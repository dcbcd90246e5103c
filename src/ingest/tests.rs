//! The ingest point against a real store: what `room` stores is fanned out
//! only here, and the writer cache serves both its parts.

use super::*;
use crate::room::testing::{ALICE_ID, BOB, fixture, message};
use crate::store::StreamPos;

/// Sends `ev` through the ingest point, failing the test on refusal.
fn send(
    ctx: &mut WriteCtx<'_>,
    cache: &mut WriterCache,
    signer: &Signer,
    room: &RoomTarget,
    ev: NewEvent,
) -> Result<StreamPos, StoreError> {
    match append(ctx, cache, signer, room, ev, 2)? {
        Ok(a) => Ok(a.stream),
        Err(e) => Err(StoreError::refused(e)),
    }
}

#[test]
fn repeated_sends_read_state_from_the_cache() {
    let f = fixture::<WriterCache>();
    f.run(false, |ctx, cache, signer, room| send(ctx, cache, signer, room, message(BOB, "one")))
        .expect("send");
    let (hits_before, misses_before) = lock(&f.cache).state.stats();
    f.run(false, |ctx, cache, signer, room| send(ctx, cache, signer, room, message(BOB, "two")))
        .expect("send");
    let (hits, misses) = lock(&f.cache).state.stats();
    assert_eq!(misses, misses_before, "nothing parsed again for a second message");
    assert!(hits > hits_before);
    let (rule_hits, _) = lock(&f.cache).rulesets.stats();
    assert!(rule_hits >= 1, "Alice's ruleset was reused");
}

#[test]
fn an_event_stored_by_room_is_fanned_out_by_fan_out_alone() {
    let f = fixture::<WriterCache>();
    let (stream, unread_stored, unread_fanned_out) = f
        .run(false, |ctx, cache, signer, room| {
            let stored =
                match append_event(ctx, &mut cache.state, signer, room, message(BOB, "hi"), 2)? {
                    Ok(a) => a,
                    Err(e) => return Err(StoreError::refused(e)),
                };
            let unread_stored = ctx.unread_in_room(&ALICE_ID, room.short)?;
            fan_out(ctx, cache, &signer.server_name, room, &stored)?;
            Ok((stored.stream, unread_stored, ctx.unread_in_room(&ALICE_ID, room.short)?))
        })
        .expect("send");
    assert_eq!(unread_stored, 0, "storing the event notifies nobody");
    assert_eq!(unread_fanned_out, 1, "the fan-out counts it unread for Alice");
    let read = f.store.read().expect("read");
    assert_eq!(read.latest_bump(f.room.short).expect("bump"), Some(stream), "and bumps the room");
}
