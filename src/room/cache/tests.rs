//! The writer's state cache against a real store: served from memory when
//! nothing changed, never stale after a state change, a redaction or an
//! aborted batch, and bounded.

use serde_json::{Value, json};

use super::*;
use crate::room::build::{NewEvent, Signer, append_event};
use crate::room::power_levels::PowerLevel;
use crate::room::testing::{ALICE, BOB, Fixture, ROOM_ID, fixture, message, state};
use crate::room::version::RoomVersion;

fn display_name(f: &Fixture<StateCache>, user: &'static str) -> Option<String> {
    f.run(false, move |ctx, cache, _, room| {
        Ok(cache
            .state_event(ctx, room, "m.room.member", user)?
            .and_then(|e| e.content["displayname"].as_str().map(str::to_owned)))
    })
    .expect("read")
}

fn bob_level(f: &Fixture<StateCache>) -> PowerLevel {
    f.run(false, |ctx, cache, _, room| {
        Ok(cache.power_levels(ctx, room)?.expect("levels").user_level(BOB))
    })
    .expect("read")
}

/// Sends `ev` through the cache, failing the test on refusal.
fn send(
    ctx: &mut WriteCtx<'_>,
    cache: &mut StateCache,
    signer: &Signer,
    room: &RoomTarget,
    ev: NewEvent,
) -> Result<StreamPos, StoreError> {
    match append_event(ctx, cache, signer, room, ev, 2)? {
        Ok(a) => Ok(a.stream),
        Err(e) => Err(StoreError::refused(e)),
    }
}

/// What `ingest::redact` does to the stored event at `pos`.
fn redact_in_place(
    ctx: &mut WriteCtx<'_>,
    cache: &mut StateCache,
    room: &RoomTarget,
    pos: StreamPos,
) -> Result<(), StoreError> {
    let stored = ctx.event_at(room.short, pos)?.expect("event");
    let original: Value = serde_json::from_slice(&stored.json).expect("json");
    let redacted = crate::room::redaction::redact(&original, room.version);
    cache.event_rewritten(room.short, pos);
    ctx.rewrite_event(room.short, pos, &serde_json::to_vec(&redacted).expect("bytes"))
}

#[test]
fn a_state_change_is_seen_at_once() {
    let f = fixture::<StateCache>();
    assert_eq!(bob_level(&f), PowerLevel::Int(0));
    assert_eq!(display_name(&f, BOB).as_deref(), Some("Bob"));
    f.run(false, |ctx, cache, signer, room| {
        let pl = json!({"users": {ALICE: 100}, "users_default": 10});
        send(ctx, cache, signer, room, state(ALICE, "m.room.power_levels", "", pl))?;
        let member = json!({"membership": "join", "displayname": "Robert"});
        send(ctx, cache, signer, room, state(BOB, "m.room.member", BOB, member))
    })
    .expect("change");
    assert_eq!(bob_level(&f), PowerLevel::Int(10));
    assert_eq!(display_name(&f, BOB).as_deref(), Some("Robert"));
}

#[test]
fn a_redaction_is_seen_at_once() {
    let f = fixture::<StateCache>();
    assert_eq!(display_name(&f, BOB).as_deref(), Some("Bob"));
    assert_eq!(display_name(&f, BOB).as_deref(), Some("Bob"));
    f.run(false, |ctx, cache, _, room| {
        let pos = ctx.state_position(room.short, "m.room.member", BOB)?.expect("member");
        redact_in_place(ctx, cache, room, pos)
    })
    .expect("redact");
    assert_eq!(display_name(&f, BOB), None, "the redacted member event has no displayname");
    // A redacted power levels event is re-read too.
    f.run(false, |ctx, cache, signer, room| {
        let pl = json!({"users": {ALICE: 100}, "notifications": {"room": 0}});
        send(ctx, cache, signer, room, state(ALICE, "m.room.power_levels", "", pl))
    })
    .expect("levels");
    let notifications = |f: &Fixture<StateCache>| {
        f.run(false, |ctx, cache, _, room| {
            let pl = cache.state_event(ctx, room, "m.room.power_levels", "")?;
            Ok(pl.expect("levels").content.get("notifications").cloned())
        })
        .expect("read")
    };
    assert_eq!(notifications(&f), Some(json!({"room": 0})));
    f.run(false, |ctx, cache, _, room| {
        let pos = ctx.state_position(room.short, "m.room.power_levels", "")?.expect("levels");
        redact_in_place(ctx, cache, room, pos)
    })
    .expect("redact");
    assert_eq!(notifications(&f), None, "v11 redaction drops notifications");
}

#[test]
fn nothing_from_an_aborted_batch_is_seen() {
    let f = fixture::<StateCache>();
    assert_eq!(bob_level(&f), PowerLevel::Int(0));
    // A state change whose batch is rolled back after the cache saw it.
    let aborted = f.run(true, |ctx, cache, signer, room| {
        let pl = json!({"users": {ALICE: 100, BOB: 50}});
        send(ctx, cache, signer, room, state(ALICE, "m.room.power_levels", "", pl))?;
        assert_eq!(
            cache.power_levels(ctx, room)?.expect("levels").user_level(BOB),
            PowerLevel::Int(50)
        );
        let member = json!({"membership": "join", "displayname": "Robert"});
        send(ctx, cache, signer, room, state(BOB, "m.room.member", BOB, member))?;
        let name = cache.state_event(ctx, room, "m.room.member", BOB)?;
        assert_eq!(name.expect("member").content["displayname"], "Robert");
        Ok(())
    });
    assert!(aborted.is_err());
    assert_eq!(bob_level(&f), PowerLevel::Int(0));
    assert_eq!(display_name(&f, BOB).as_deref(), Some("Bob"));

    // A redaction whose batch is rolled back after the redacted form was
    // read (and could have been cached) again.
    let aborted = f.run(true, |ctx, cache, _, room| {
        let pos = ctx.state_position(room.short, "m.room.member", BOB)?.expect("member");
        redact_in_place(ctx, cache, room, pos)?;
        let name = cache.state_event(ctx, room, "m.room.member", BOB)?;
        assert!(name.expect("member").content.get("displayname").is_none());
        Ok(())
    });
    assert!(aborted.is_err());
    assert_eq!(display_name(&f, BOB).as_deref(), Some("Bob"));
    assert_eq!(display_name(&f, BOB).as_deref(), Some("Bob"));
}

#[test]
fn banned_positions_stay_uncached_when_the_bans_overflow() {
    let mut cache = StateCache::default();
    for p in 1..=(MAX_BANNED as u64 + 1) {
        cache.event_rewritten(RoomShort(1), StreamPos(p));
    }
    assert!(cache.banned.len() <= MAX_BANNED);
    for p in 1..=(MAX_BANNED as u64 + 1) {
        assert!(!cache.cacheable(StreamPos(p)), "position {p}");
    }
    assert!(cache.cacheable(StreamPos(MAX_BANNED as u64 + 2)));
}

#[test]
fn lru_cut_keeps_the_most_recent() {
    assert_eq!(lru_cut([5, 1, 4, 2, 3].into_iter(), 2), 3);
    assert_eq!(lru_cut([1, 2].into_iter(), 5), 0);
}

#[test]
fn state_cache_is_bounded() {
    let f = fixture::<StateCache>();
    f.run(false, |ctx, cache, _, room| {
        let count = MAX_ENTRIES + 100;
        let mut positions = Vec::with_capacity(count);
        for i in 0..count {
            let stream = ctx.next_position();
            let key = format!("k{i}");
            let json = json!({"type": "org.example.s", "state_key": key, "sender": ALICE,
                "room_id": ROOM_ID, "event_id": format!("$s{i}"), "content": {"i": i}});
            let bytes = serde_json::to_vec(&json).expect("json");
            let id = format!("$s{i}");
            ctx.put_event(
                room.short,
                stream,
                &id,
                &bytes,
                b"{}",
                Some(("org.example.s", &key)),
                None,
            )?;
            positions.push(key);
        }
        for key in &positions {
            let event = cache.state_event(ctx, room, "org.example.s", key)?;
            assert_eq!(event.expect("stored").state_key.as_deref(), Some(key.as_str()));
            assert!(cache.len() <= MAX_ENTRIES);
            assert!(cache.bytes <= MAX_BYTES);
        }
        Ok(())
    })
    .expect("fill");
}

#[test]
fn stored_fields_rebuild_the_signed_pdu() {
    let f = fixture::<StateCache>();
    let pos = f
        .run(false, |ctx, cache, signer, room| send(ctx, cache, signer, room, message(BOB, "hi")))
        .expect("send");
    let read = f.store.read().expect("read");
    let bytes = read.pdu_fields(f.room.short, pos).expect("read").expect("fields");
    assert_eq!(bytes[0], 1, "stored in the compact layout");
    let fields = crate::room::fields::decode(&bytes).expect("decodes");
    assert_eq!(fields["depth"], 6, "after the five set-up events");
    // The PDU the event was signed as: the client form without what the
    // server adds for clients, plus the stored fields.
    let event = read.event_at(f.room.short, pos).expect("read").expect("event");
    let mut pdu: Value = serde_json::from_slice(&event.json).expect("json");
    let event_id = pdu["event_id"].as_str().expect("id").to_owned();
    let o = pdu.as_object_mut().expect("object");
    o.remove("event_id");
    o.remove("unsigned");
    o.extend(fields.as_object().expect("object").clone());
    let key = f.signer.key.verifying_key();
    crate::room::pdu::verify_event(&pdu, RoomVersion::V11, "example.org", "ed25519:t", &key)
        .expect("signature checks out");
    assert!(crate::room::pdu::content_hash_matches(&pdu).expect("hash"));
    assert_eq!(crate::room::pdu::event_id(&pdu, RoomVersion::V11).expect("id"), event_id);
}
