//! The writer caches against a real store: served from memory when nothing
//! changed, never stale after a state change, a redaction or an aborted
//! batch, and bounded.

use serde_json::{Value, json};

use crate::error::MatrixError;

use super::*;
use crate::push::{MASTER_RULE_ID, RuleKind, default_ruleset};
use crate::room::build::{NewEvent, Signer, append_event};
use crate::room::pdu::ServerKey;
use crate::room::version::RoomVersion;
use crate::store::Store;

const ALICE: &str = "@alice:example.org";
const BOB: &str = "@bob:example.org";
const ROOM_ID: &str = "!room:example.org";

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    cache: SharedWriterCache,
    signer: Signer,
    room: RoomTarget,
}

fn state(sender: &str, event_type: &str, state_key: &str, content: Value) -> NewEvent {
    NewEvent {
        event_type: event_type.into(),
        state_key: Some(state_key.into()),
        sender: sender.into(),
        content,
        redacts: None,
        txn: None,
    }
}

/// A v11 room created by Alice, who is joined as "Alice" and has level 100;
/// Bob is joined as "Bob".
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), 1 << 20, None).expect("open");
    let cache = SharedWriterCache::default();
    let signer = Signer {
        server_name: "example.org".into(),
        key: ServerKey::from_seed(&[3; 32], "ed25519:t"),
    };
    let (c, s) = (cache.clone(), signer.clone());
    let room = store
        .write_blocking(move |ctx| {
            let short = ctx.create_room_record(ROOM_ID, "11", true)?;
            let room = RoomTarget { room_id: ROOM_ID.into(), short, version: RoomVersion::V11 };
            let mut cache = lock(&c);
            let events = [
                state(ALICE, "m.room.create", "", json!({"room_version": "11"})),
                state(
                    ALICE,
                    "m.room.member",
                    ALICE,
                    json!({"membership": "join", "displayname": "Alice"}),
                ),
                state(ALICE, "m.room.power_levels", "", json!({"users": {ALICE: 100}})),
                state(ALICE, "m.room.join_rules", "", json!({"join_rule": "public"})),
                state(
                    BOB,
                    "m.room.member",
                    BOB,
                    json!({"membership": "join", "displayname": "Bob"}),
                ),
            ];
            for ev in events {
                if let Err(e) = append_event(ctx, &mut cache, &s, &room, ev, 1)? {
                    return Err(StoreError::refused(e));
                }
            }
            Ok(Ok::<_, StoreError>(room))
        })
        .expect("room");
    Fixture { _dir: dir, store, cache, signer, room }
}

impl Fixture {
    /// Runs `f` with the cache in one writer operation; `abort` fails the
    /// operation after `f` ran, which rolls its batch back.
    fn run<R: Send + 'static>(
        &self,
        abort: bool,
        f: impl FnOnce(
            &mut WriteCtx<'_>,
            &mut WriterCache,
            &Signer,
            &RoomTarget,
        ) -> Result<R, StoreError>
        + Send
        + 'static,
    ) -> Result<R, StoreError> {
        let (cache, signer, room) = (self.cache.clone(), self.signer.clone(), self.room.clone());
        self.store.write_blocking(move |ctx| {
            let mut cache = lock(&cache);
            let r = f(ctx, &mut cache, &signer, &room)?;
            if abort {
                return Err(StoreError::refused(MatrixError::bad_json("test abort")));
            }
            Ok(Ok(r))
        })
    }

    fn display_name(&self, user: &'static str) -> Option<String> {
        self.run(false, move |ctx, cache, _, room| {
            Ok(cache
                .state
                .state_event(ctx, room, "m.room.member", user)?
                .and_then(|e| e.content["displayname"].as_str().map(str::to_owned)))
        })
        .expect("read")
    }

    fn bob_level(&self) -> PowerLevel {
        self.run(false, |ctx, cache, _, room| {
            Ok(cache.state.power_levels(ctx, room)?.expect("levels").user_level(BOB))
        })
        .expect("read")
    }

    fn state_stats(&self) -> (u64, u64) {
        lock(&self.cache).state.stats()
    }
}

use crate::room::power_levels::PowerLevel;

/// Sends `ev` through the cache, failing the test on refusal.
fn send(
    ctx: &mut WriteCtx<'_>,
    cache: &mut WriterCache,
    signer: &Signer,
    room: &RoomTarget,
    ev: NewEvent,
) -> Result<StreamPos, StoreError> {
    match append_event(ctx, cache, signer, room, ev, 2)? {
        Ok(a) => Ok(a.stream),
        Err(e) => Err(StoreError::refused(e)),
    }
}

/// What `service::redact` does to the stored event at `pos`.
fn redact_in_place(
    ctx: &mut WriteCtx<'_>,
    cache: &mut WriterCache,
    room: &RoomTarget,
    pos: StreamPos,
) -> Result<(), StoreError> {
    let stored = ctx.event_at(room.short, pos)?.expect("event");
    let original: Value = serde_json::from_slice(&stored.json).expect("json");
    let redacted = crate::room::redaction::redact(&original, room.version);
    cache.state.event_rewritten(room.short, pos);
    ctx.rewrite_event(room.short, pos, &serde_json::to_vec(&redacted).expect("bytes"))
}

fn message(sender: &str, body: &str) -> NewEvent {
    NewEvent {
        event_type: "m.room.message".into(),
        state_key: None,
        sender: sender.into(),
        content: json!({"msgtype": "m.text", "body": body}),
        redacts: None,
        txn: None,
    }
}

#[test]
fn repeated_sends_read_state_from_the_cache() {
    let f = fixture();
    f.run(false, |ctx, cache, signer, room| send(ctx, cache, signer, room, message(BOB, "one")))
        .expect("send");
    let (hits_before, misses_before) = f.state_stats();
    f.run(false, |ctx, cache, signer, room| send(ctx, cache, signer, room, message(BOB, "two")))
        .expect("send");
    let (hits, misses) = f.state_stats();
    assert_eq!(misses, misses_before, "nothing parsed again for a second message");
    assert!(hits > hits_before);
    let (rule_hits, _) = lock(&f.cache).rulesets.stats();
    assert!(rule_hits >= 1, "Alice's ruleset was reused");
}

#[test]
fn a_state_change_is_seen_at_once() {
    let f = fixture();
    assert_eq!(f.bob_level(), PowerLevel::Int(0));
    assert_eq!(f.display_name(BOB).as_deref(), Some("Bob"));
    f.run(false, |ctx, cache, signer, room| {
        let pl = json!({"users": {ALICE: 100}, "users_default": 10});
        send(ctx, cache, signer, room, state(ALICE, "m.room.power_levels", "", pl))?;
        let member = json!({"membership": "join", "displayname": "Robert"});
        send(ctx, cache, signer, room, state(BOB, "m.room.member", BOB, member))
    })
    .expect("change");
    assert_eq!(f.bob_level(), PowerLevel::Int(10));
    assert_eq!(f.display_name(BOB).as_deref(), Some("Robert"));
}

#[test]
fn a_redaction_is_seen_at_once() {
    let f = fixture();
    assert_eq!(f.display_name(BOB).as_deref(), Some("Bob"));
    assert_eq!(f.display_name(BOB).as_deref(), Some("Bob"));
    f.run(false, |ctx, cache, _, room| {
        let pos = ctx.state_position(room.short, "m.room.member", BOB)?.expect("member");
        redact_in_place(ctx, cache, room, pos)
    })
    .expect("redact");
    assert_eq!(f.display_name(BOB), None, "the redacted member event has no displayname");
    // A redacted power levels event is re-read too.
    f.run(false, |ctx, cache, signer, room| {
        let pl = json!({"users": {ALICE: 100}, "notifications": {"room": 0}});
        send(ctx, cache, signer, room, state(ALICE, "m.room.power_levels", "", pl))
    })
    .expect("levels");
    let notifications = |f: &Fixture| {
        f.run(false, |ctx, cache, _, room| {
            let pl = cache.state.state_event(ctx, room, "m.room.power_levels", "")?;
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
    let f = fixture();
    assert_eq!(f.bob_level(), PowerLevel::Int(0));
    // A state change whose batch is rolled back after the cache saw it.
    let aborted = f.run(true, |ctx, cache, signer, room| {
        let pl = json!({"users": {ALICE: 100, BOB: 50}});
        send(ctx, cache, signer, room, state(ALICE, "m.room.power_levels", "", pl))?;
        assert_eq!(
            cache.state.power_levels(ctx, room)?.expect("levels").user_level(BOB),
            PowerLevel::Int(50)
        );
        let member = json!({"membership": "join", "displayname": "Robert"});
        send(ctx, cache, signer, room, state(BOB, "m.room.member", BOB, member))?;
        let name = cache.state.state_event(ctx, room, "m.room.member", BOB)?;
        assert_eq!(name.expect("member").content["displayname"], "Robert");
        Ok(())
    });
    assert!(aborted.is_err());
    assert_eq!(f.bob_level(), PowerLevel::Int(0));
    assert_eq!(f.display_name(BOB).as_deref(), Some("Bob"));

    // A redaction whose batch is rolled back after the redacted form was
    // read (and could have been cached) again.
    let aborted = f.run(true, |ctx, cache, _, room| {
        let pos = ctx.state_position(room.short, "m.room.member", BOB)?.expect("member");
        redact_in_place(ctx, cache, room, pos)?;
        let name = cache.state.state_event(ctx, room, "m.room.member", BOB)?;
        assert!(name.expect("member").content.get("displayname").is_none());
        Ok(())
    });
    assert!(aborted.is_err());
    assert_eq!(f.display_name(BOB).as_deref(), Some("Bob"));
    assert_eq!(f.display_name(BOB).as_deref(), Some("Bob"));
}

#[test]
fn rulesets_follow_stored_changes_and_ignore_aborted_ones() {
    let f = fixture();
    let master_enabled = |f: &Fixture| {
        f.run(false, |ctx, cache, _, _| {
            let rules = cache.rulesets.ruleset(ctx, BOB)?;
            Ok(rules.get_push_rule(RuleKind::Override, MASTER_RULE_ID).expect("master").enabled)
        })
        .expect("read")
    };
    assert!(!master_enabled(&f));
    assert!(!master_enabled(&f));
    let (hits, _) = lock(&f.cache).rulesets.stats();
    assert!(hits >= 1);

    let mut silenced = default_ruleset(BOB);
    silenced.set_push_rule_enabled(RuleKind::Override, MASTER_RULE_ID, true).expect("master");
    let bytes = silenced.to_json();
    f.run(false, move |ctx, _, _, _| ctx.put_push_rules(BOB, &bytes)).expect("put");
    assert!(master_enabled(&f), "a stored change is seen");

    let pristine = default_ruleset(BOB).to_json();
    let aborted = f.run(true, move |ctx, cache, _, _| {
        ctx.put_push_rules(BOB, &pristine)?;
        let rules = cache.rulesets.ruleset(ctx, BOB)?;
        assert!(!rules.get_push_rule(RuleKind::Override, MASTER_RULE_ID).expect("master").enabled);
        Ok(())
    });
    assert!(aborted.is_err());
    assert!(master_enabled(&f), "the rolled-back change is not");
}

#[test]
fn ruleset_cache_is_bounded() {
    let f = fixture();
    f.run(false, |ctx, cache, _, _| {
        for i in 0..crate::push::MAX_RULESETS + 10 {
            cache.rulesets.ruleset(ctx, &format!("@u{i}:example.org"))?;
            assert!(cache.rulesets.len() <= crate::push::MAX_RULESETS);
        }
        Ok(())
    })
    .expect("fill");
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
    let f = fixture();
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
            let event = cache.state.state_event(ctx, room, "org.example.s", key)?;
            assert_eq!(event.expect("stored").state_key.as_deref(), Some(key.as_str()));
            assert!(cache.state.len() <= MAX_ENTRIES);
            assert!(cache.state.bytes <= MAX_BYTES);
        }
        Ok(())
    })
    .expect("fill");
}

#[test]
fn stored_fields_rebuild_the_signed_pdu() {
    let f = fixture();
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
