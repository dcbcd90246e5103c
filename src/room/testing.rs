//! A room in a real store, for the tests of the writer's caches (`room`'s
//! state cache, `push`'s ruleset cache, `ingest`'s writer cache).

use std::sync::{Arc, LazyLock, Mutex};

use serde_json::{Value, json};

use crate::error::MatrixError;
use crate::ids::{RoomId, UserId};
use crate::room::build::{NewEvent, Signer, append_event};
use crate::room::cache::StateCache;
use crate::room::pdu::ServerKey;
use crate::room::target::RoomTarget;
use crate::room::version::RoomVersion;
use crate::store::{Store, StoreError, WriteCtx};

pub(crate) const ALICE: &str = "@alice:example.org";
pub(crate) const BOB: &str = "@bob:example.org";
pub(crate) const ROOM_ID: &str = "!room:example.org";
/// [`ALICE`] and [`BOB`] typed, for the domain functions that take a `UserId`.
pub(crate) static ALICE_ID: LazyLock<UserId> = LazyLock::new(|| user(ALICE));
pub(crate) static BOB_ID: LazyLock<UserId> = LazyLock::new(|| user(BOB));

/// A user ID the test knows to be valid.
pub(crate) fn user(s: &str) -> UserId {
    UserId::parse(s).expect("valid user ID")
}

/// A store holding one room, and a cache `C` kept between writer
/// operations as the writer keeps its own.
pub(crate) struct Fixture<C> {
    _dir: tempfile::TempDir,
    pub(crate) store: Store,
    pub(crate) cache: Arc<Mutex<C>>,
    pub(crate) signer: Signer,
    pub(crate) room: RoomTarget,
}

pub(crate) fn state(sender: &str, event_type: &str, state_key: &str, content: Value) -> NewEvent {
    NewEvent {
        event_type: event_type.into(),
        state_key: Some(state_key.into()),
        sender: user(sender),
        content,
        redacts: None,
        txn: None,
    }
}

pub(crate) fn message(sender: &str, body: &str) -> NewEvent {
    NewEvent {
        event_type: "m.room.message".into(),
        state_key: None,
        sender: user(sender),
        content: json!({"msgtype": "m.text", "body": body}),
        redacts: None,
        txn: None,
    }
}

/// A v11 room created by Alice, who is joined as "Alice" and has level 100;
/// Bob is joined as "Bob". The cache starts empty.
pub(crate) fn fixture<C: Default>() -> Fixture<C> {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), 1 << 20, None).expect("open");
    let signer = Signer {
        server_name: "example.org".into(),
        key: ServerKey::from_seed(&[3; 32], "ed25519:t"),
    };
    let s = signer.clone();
    let room = store
        .write_blocking(move |ctx| {
            let short = ctx.create_room_record(ROOM_ID, "11", true)?;
            let room = RoomTarget {
                room_id: RoomId::parse(ROOM_ID).expect("valid"),
                short,
                version: RoomVersion::V11,
            };
            let mut cache = StateCache::default();
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
    Fixture { _dir: dir, store, cache: Arc::default(), signer, room }
}

impl<C: Send + 'static> Fixture<C> {
    /// Runs `f` with the cache in one writer operation; `abort` fails the
    /// operation after `f` ran, which rolls its batch back.
    pub(crate) fn run<R: Send + 'static>(
        &self,
        abort: bool,
        f: impl FnOnce(&mut WriteCtx<'_>, &mut C, &Signer, &RoomTarget) -> Result<R, StoreError>
        + Send
        + 'static,
    ) -> Result<R, StoreError> {
        let (cache, signer, room) = (self.cache.clone(), self.signer.clone(), self.room.clone());
        self.store.write_blocking(move |ctx| {
            let mut cache = cache.lock().expect("no test panicked holding the cache");
            let r = f(ctx, &mut cache, &signer, &room)?;
            if abort {
                return Err(StoreError::refused(MatrixError::bad_json("test abort")));
            }
            Ok(Ok(r))
        })
    }
}
