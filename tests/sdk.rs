//! A real client against the real server: `matrix-sdk`, the library under
//! Element X, registers, logs in, creates a room, invites, joins and chats
//! through Hearth, and each side learns of the other's messages only through
//! the SDK's own `/sync` processing.
//!
//! The SDK is built with end-to-end encryption but without its sqlite
//! store (see Cargo.toml): the in-memory store is all a test needs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use matrix_sdk::config::SyncSettings;
use matrix_sdk::deserialized_responses::TimelineEvent;
use matrix_sdk::room::MessagesOptions;
use matrix_sdk::ruma::api::client::account::register;
use matrix_sdk::ruma::api::client::room::create_room;
use matrix_sdk::ruma::api::client::uiaa;
use matrix_sdk::ruma::events::room::message::{
    MessageType, OriginalSyncRoomMessageEvent, RoomMessageEventContent,
};
use matrix_sdk::ruma::{DeviceId, OwnedRoomId, OwnedUserId, RoomId, UserId};
use matrix_sdk::{Client, Room, RoomState};
use serde_json::Value;
use tokio::time::Instant;

use crate::support::TestServer;

/// How long any one awaited condition may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(20);

/// The server may hold each `/sync` this long when nothing is new; short
/// enough that a missed wake-up shows as a slow test, not a hung one.
const LONG_POLL: Duration = Duration::from_secs(2);

/// A text message as the SDK's event handler delivered it.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    room_id: OwnedRoomId,
    sender: OwnedUserId,
    body: String,
    /// `unsigned.transaction_id`: only the sending client's copy has it.
    transaction_id: Option<String>,
}

/// An SDK client with the in-memory store, pointed at the test server.
async fn sdk_client(s: &TestServer) -> Client {
    Client::builder().homeserver_url(&s.base).build().await.expect("build matrix-sdk client")
}

/// Registers through the SDK the way a client does user-interactive auth:
/// the first request is refused with the flows and a session, the second
/// completes the `m.login.dummy` stage in that session. Logs the client in.
async fn register_with_sdk(client: &Client, username: &str, password: &str) {
    let mut request = register::v3::Request::new();
    request.username = Some(username.to_owned());
    request.password = Some(password.to_owned());
    let refusal = client
        .matrix_auth()
        .register(request.clone())
        .await
        .expect_err("registration without auth must ask for user-interactive auth");
    let uiaa = refusal.as_uiaa_response().expect("a 401 with UIA flows");
    assert!(
        uiaa.flows.iter().any(|f| f.stages == [uiaa::AuthType::Dummy]),
        "expected an m.login.dummy flow, got {:?}",
        uiaa.flows
    );
    let mut dummy = uiaa::Dummy::new();
    dummy.session = uiaa.session.clone();
    request.auth = Some(uiaa::AuthData::Dummy(dummy));
    client.matrix_auth().register(request).await.expect("register with m.login.dummy");
}

/// Records every plain-text message the client's sync hands to handlers.
fn record_messages(client: &Client) -> Arc<Mutex<Vec<Seen>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    client.add_event_handler(move |ev: OriginalSyncRoomMessageEvent, room: Room| {
        let sink = sink.clone();
        async move {
            if let MessageType::Text(text) = ev.content.msgtype {
                sink.lock().expect("not poisoned").push(Seen {
                    room_id: room.room_id().to_owned(),
                    sender: ev.sender,
                    body: text.body,
                    transaction_id: ev.unsigned.transaction_id.map(|t| t.to_string()),
                });
            }
        }
    });
    seen
}

/// Syncs (long-polling) until `done` holds, failing after [`DEADLINE`].
async fn sync_until(client: &Client, what: &str, mut done: impl FnMut(&Client) -> bool) {
    let start = Instant::now();
    while !done(client) {
        assert!(start.elapsed() < DEADLINE, "{what}: not seen within {DEADLINE:?}");
        client.sync_once(SyncSettings::new().timeout(LONG_POLL)).await.expect("sync");
    }
}

fn has_room(client: &Client, room_id: &RoomId, state: RoomState) -> bool {
    client.get_room(room_id).is_some_and(|r| r.state() == state)
}

fn saw(seen: &Mutex<Vec<Seen>>, room_id: &RoomId, sender: &OwnedUserId, body: &str) -> bool {
    seen.lock()
        .expect("not poisoned")
        .iter()
        .any(|m| m.room_id == room_id && &m.sender == sender && m.body == body)
}

/// `(sender, body)` of an `m.room.message` from `/messages`, read from the
/// raw JSON so the assertion does not depend on the SDK's own event types.
fn sender_and_text(event: &TimelineEvent) -> Option<(String, String)> {
    let json: Value = serde_json::from_str(event.raw().json().get()).ok()?;
    (json["type"] == "m.room.message").then(|| {
        let field = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        (field(&json["sender"]), field(&json["content"]["body"]))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sdk_clients_chat_through_hearth() {
    let s = TestServer::start();

    // Alice signs up from the SDK; Bob already has an account and logs in.
    let alice = sdk_client(&s).await;
    register_with_sdk(&alice, "alice", "pw-alice-1").await;
    s.client().register("bob", "pw-bob-1").await;
    let bob = sdk_client(&s).await;
    bob.matrix_auth()
        .login_username("bob", "pw-bob-1")
        .initial_device_display_name("hearth sdk test")
        .send()
        .await
        .expect("bob logs in");
    let alice_id = alice.user_id().expect("alice is logged in").to_owned();
    let bob_id = bob.user_id().expect("bob is logged in").to_owned();
    assert_eq!(alice_id.localpart(), "alice");
    assert_eq!(bob_id.localpart(), "bob");

    let alice_seen = record_messages(&alice);
    let bob_seen = record_messages(&bob);
    alice.sync_once(SyncSettings::new()).await.expect("alice's initial sync");
    bob.sync_once(SyncSettings::new()).await.expect("bob's initial sync");
    assert!(bob.joined_rooms().is_empty() && bob.invited_rooms().is_empty());

    // Alice creates a named private room with Bob invited.
    let mut create = create_room::v3::Request::new();
    create.name = Some("Hearth test".to_owned());
    create.preset = Some(create_room::v3::RoomPreset::PrivateChat);
    create.invite = vec![bob_id.clone()];
    let room_id = alice.create_room(create).await.expect("create room").room_id().to_owned();

    // Bob's sync shows the invite, named from its stripped state, and he joins.
    sync_until(&bob, "bob's invite", |c| has_room(c, &room_id, RoomState::Invited)).await;
    let invited = bob.get_room(&room_id).expect("invited room");
    assert_eq!(invited.name().as_deref(), Some("Hearth test"));
    bob.join_room_by_id(&room_id).await.expect("bob joins");
    sync_until(&bob, "bob's joined room", |c| has_room(c, &room_id, RoomState::Joined)).await;

    // Alice sees Bob's join through her sync before she talks.
    sync_until(&alice, "bob in alice's member list", |c| {
        c.get_room(&room_id).is_some_and(|r| r.joined_members_count() == 2)
    })
    .await;

    let alice_room = alice.get_room(&room_id).expect("alice's room");
    alice_room.send(RoomMessageEventContent::text_plain("hello bob")).await.expect("alice sends");
    sync_until(&bob, "alice's message at bob", |_| {
        saw(&bob_seen, &room_id, &alice_id, "hello bob")
    })
    .await;

    let bob_room = bob.get_room(&room_id).expect("bob's room");
    bob_room.send(RoomMessageEventContent::text_plain("hi alice")).await.expect("bob sends");
    sync_until(&alice, "bob's message at alice", |_| {
        saw(&alice_seen, &room_id, &bob_id, "hi alice")
    })
    .await;

    // Each client's own message also came back to it through sync, once.
    sync_until(&bob, "bob's own message at bob", |_| saw(&bob_seen, &room_id, &bob_id, "hi alice"))
        .await;
    assert!(saw(&alice_seen, &room_id, &alice_id, "hello bob"));
    let alice_hellos =
        alice_seen.lock().expect("not poisoned").iter().filter(|m| m.body == "hello bob").count();
    assert_eq!(alice_hellos, 1, "a message is delivered to handlers once");
    // The sending client matches its local echo by the transaction ID it
    // chose; nobody else is given it.
    let txn_of = |seen: &Mutex<Vec<Seen>>, body: &str| {
        let seen = seen.lock().expect("not poisoned");
        seen.iter().find(|m| m.body == body).map(|m| m.transaction_id.clone())
    };
    assert!(matches!(txn_of(&alice_seen, "hello bob"), Some(Some(t)) if !t.is_empty()));
    assert!(matches!(txn_of(&bob_seen, "hi alice"), Some(Some(t)) if !t.is_empty()));
    assert_eq!(txn_of(&bob_seen, "hello bob"), Some(None));
    assert_eq!(txn_of(&alice_seen, "hi alice"), Some(None));

    // History through /messages has both, newest first.
    let history = bob_room.messages(MessagesOptions::backward()).await.expect("/messages");
    let texts: Vec<(String, String)> = history.chunk.iter().filter_map(sender_and_text).collect();
    assert_eq!(
        texts,
        [
            (bob_id.to_string(), "hi alice".to_owned()),
            (alice_id.to_string(), "hello bob".to_owned()),
        ]
    );
}

/// Logs a fresh SDK client in as `user` (registered through the HTTP helper).
async fn logged_in(s: &TestServer, user: &str, password: &str) -> Client {
    s.client().register(user, password).await;
    let client = sdk_client(s).await;
    client.matrix_auth().login_username(user, password).send().await.expect("login");
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_message_is_decrypted_by_the_other_sdk_client() {
    use matrix_sdk::ruma::events::InitialStateEvent;
    use matrix_sdk::ruma::events::room::encryption::RoomEncryptionEventContent;

    let s = TestServer::start();
    let alice = logged_in(&s, "carol", "pw-carol-1").await;
    let bob = logged_in(&s, "dave", "pw-dave-1").await;
    let alice_id = alice.user_id().expect("logged in").to_owned();
    let bob_id = bob.user_id().expect("logged in").to_owned();
    let bob_seen = record_messages(&bob);
    // Initial syncs upload each device's keys (the SDK does it on sync).
    alice.sync_once(SyncSettings::new()).await.expect("sync");
    bob.sync_once(SyncSettings::new()).await.expect("sync");

    let mut create = create_room::v3::Request::new();
    create.preset = Some(create_room::v3::RoomPreset::PrivateChat);
    create.invite = vec![bob_id.clone()];
    create.initial_state = vec![
        InitialStateEvent::with_empty_state_key(
            RoomEncryptionEventContent::with_recommended_defaults(),
        )
        .to_raw_any(),
    ];
    let room_id = alice.create_room(create).await.expect("create room").room_id().to_owned();
    sync_until(&bob, "bob's invite", |c| has_room(c, &room_id, RoomState::Invited)).await;
    bob.join_room_by_id(&room_id).await.expect("join");
    sync_until(&bob, "bob joined", |c| has_room(c, &room_id, RoomState::Joined)).await;
    sync_until(&alice, "bob's join at alice", |c| {
        c.get_room(&room_id).is_some_and(|r| r.joined_members_count() == 2)
    })
    .await;
    let room = alice.get_room(&room_id).expect("room");
    assert!(room.latest_encryption_state().await.expect("encryption state").is_encrypted());
    // The SDK queries Bob's devices, claims a one-time key, shares the room
    // key over to-device, and sends an m.room.encrypted event.
    room.send(RoomMessageEventContent::text_plain("a secret")).await.expect("send encrypted");
    sync_until(&bob, "the decrypted message at bob", |_| {
        saw(&bob_seen, &room_id, &alice_id, "a secret")
    })
    .await;
    assert_server_holds_only_ciphertext(&s, &bob, &room_id, "a secret").await;
}

/// What the server stored of a room's recent history is ciphertext only:
/// `m.room.encrypted` events, and `secret` nowhere.
pub async fn assert_server_holds_only_ciphertext(
    s: &TestServer,
    member: &Client,
    room_id: &RoomId,
    secret: &str,
) {
    let raw = s
        .client()
        .with_token(member.access_token().expect("token").as_str())
        .get(&format!("/_matrix/client/v3/rooms/{room_id}/messages?dir=b&limit=5"))
        .await
        .ok();
    assert!(!raw.to_string().contains(secret), "the server never sees the plaintext");
    assert!(
        raw["chunk"].as_array().is_some_and(|c| c.iter().any(|e| e["type"] == "m.room.encrypted"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_bootstraps_cross_signing_and_a_key_backup() {
    let s = TestServer::start();
    let alice = logged_in(&s, "erin", "pw-erin-1").await;
    alice.sync_once(SyncSettings::new()).await.expect("sync");
    let encryption = alice.encryption();
    // First upload of cross-signing keys: no user-interactive auth needed.
    encryption.bootstrap_cross_signing(None).await.expect("bootstrap cross-signing");
    let status = encryption.cross_signing_status().await.expect("status");
    assert!(status.has_master && status.has_self_signing && status.has_user_signing, "{status:?}");
    // The server returns the keys as uploaded, signatures included.
    let me = alice.user_id().expect("user").to_string();
    let q = s
        .client()
        .with_token(alice.access_token().expect("token").as_str())
        .post(
            "/_matrix/client/v3/keys/query",
            serde_json::json!({ "device_keys": { me.clone(): [] } }),
        )
        .await
        .ok();
    assert!(q["master_keys"][me.as_str()]["keys"].is_object(), "{q}");
    let device = alice.device_id().expect("device").to_string();
    let sigs = q["device_keys"][me.as_str()][device.as_str()]["signatures"][me.as_str()]
        .as_object()
        .expect("sigs");
    assert!(sigs.len() >= 2, "the device is signed by itself and the self-signing key: {sigs:?}");
    // A server-side key backup is created and found again.
    encryption.backups().create().await.expect("create backup");
    assert!(encryption.backups().exists_on_server().await.expect("query backup"));
    // Sending in an encrypted room makes a room key; the SDK backs it up.
    use matrix_sdk::ruma::events::InitialStateEvent;
    use matrix_sdk::ruma::events::room::encryption::RoomEncryptionEventContent;
    let mut create = create_room::v3::Request::new();
    create.initial_state = vec![
        InitialStateEvent::with_empty_state_key(
            RoomEncryptionEventContent::with_recommended_defaults(),
        )
        .to_raw_any(),
    ];
    let room_id = alice.create_room(create).await.expect("create").room_id().to_owned();
    sync_until(&alice, "the new room", |c| has_room(c, &room_id, RoomState::Joined)).await;
    let room = alice.get_room(&room_id).expect("room");
    room.send(RoomMessageEventContent::text_plain("backed up")).await.expect("send");
    encryption.backups().wait_for_steady_state().await.expect("backup upload");
    let http = s.client().with_token(alice.access_token().expect("token").as_str());
    let version = http.get("/_matrix/client/v3/room_keys/version").await.ok();
    assert!(
        version["count"].as_u64().is_some_and(|n| n >= 1),
        "the room key reached the backup: {version}"
    );
    let v = version["version"].as_str().expect("version");
    let keys =
        http.get(&format!("/_matrix/client/v3/room_keys/keys/{room_id}?version={v}")).await.ok();
    assert!(keys["sessions"].as_object().is_some_and(|s| !s.is_empty()), "{keys}");
}

/// `unsigned.membership` of each event in `events` that has one, by event ID,
/// read from the raw JSON (matrix-sdk 0.18 has no typed field for it).
fn memberships_at(events: &[TimelineEvent]) -> std::collections::HashMap<String, String> {
    events
        .iter()
        .filter_map(|e| {
            let json: Value = serde_json::from_str(e.raw().json().get()).ok()?;
            let id = json["event_id"].as_str()?.to_owned();
            Some((id, json["unsigned"]["membership"].as_str()?.to_owned()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_is_told_the_users_membership_at_each_event() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("heidi", "pw-heidi-1").await;
    let bob = logged_in(&s, "ivan", "pw-ivan-1").await;
    let bob_id = bob.user_id().expect("logged in").to_string();
    let room_id =
        crate::support::room(&alice, serde_json::json!({ "preset": "private_chat" })).await;
    let before = crate::support::send(&alice, &room_id, "b", "before you came").await;
    alice
        .post(
            &format!("/_matrix/client/v3/rooms/{room_id}/invite"),
            serde_json::json!({ "user_id": bob_id }),
        )
        .await
        .ok();
    let room_id = RoomId::parse(&room_id).expect("room id");
    sync_until(&bob, "bob's invite", |c| has_room(c, &room_id, RoomState::Invited)).await;
    bob.join_room_by_id(&room_id).await.expect("join");
    let after = crate::support::send(&alice, room_id.as_str(), "a", "after you came").await;

    // Live: the timeline of the SDK's own /sync.
    let start = Instant::now();
    let live = loop {
        assert!(start.elapsed() < DEADLINE, "the message after the join not synced");
        let response = bob.sync_once(SyncSettings::new().timeout(LONG_POLL)).await.expect("sync");
        let seen = response
            .rooms
            .joined
            .get(&room_id)
            .map(|r| memberships_at(&r.timeline.events))
            .unwrap_or_default();
        if seen.contains_key(&after) {
            break seen;
        }
    };
    assert_eq!(live[&after], "join", "{live:?}");

    // History through the SDK's /messages reaches back before the invite.
    let room = bob.get_room(&room_id).expect("room");
    let history = room.messages(MessagesOptions::backward()).await.expect("/messages");
    let past = memberships_at(&history.chunk);
    assert_eq!(past.get(&before).map(String::as_str), Some("leave"), "{past:?}");
    assert_eq!(past.get(&after).map(String::as_str), Some("join"), "{past:?}");
}

/// Whether `client`'s crypto store knows `device` of `user` (what the SDK
/// learnt from `/keys/query`; this asks the server nothing).
pub async fn knows_device(client: &Client, user: &UserId, device: &DeviceId) -> bool {
    let devices = client.encryption().get_user_devices(user).await.expect("crypto store");
    devices.get(device).is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sdk_client_learns_of_a_new_device_of_its_own_user() {
    let s = TestServer::start();
    let first = logged_in(&s, "gina", "pw-gina-1").await;
    // The initial sync uploads the first device's keys and fetches the
    // user's own device list.
    first.sync_once(SyncSettings::new()).await.expect("sync");
    let me = first.user_id().expect("logged in").to_owned();
    let first_device = first.device_id().expect("device").to_owned();
    assert!(knows_device(&first, &me, &first_device).await);

    // Gina signs in on a second device; its first sync uploads its keys.
    let second = sdk_client(&s).await;
    second.matrix_auth().login_username("gina", "pw-gina-1").send().await.expect("login");
    second.sync_once(SyncSettings::new()).await.expect("sync");
    let second_device = second.device_id().expect("device").to_owned();

    // The first device learns of it from its own user in
    // `device_lists.changed`, without restarting.
    let start = Instant::now();
    while !knows_device(&first, &me, &second_device).await {
        assert!(start.elapsed() < DEADLINE, "the first device never learnt of the second");
        first.sync_once(SyncSettings::new().timeout(LONG_POLL)).await.expect("sync");
    }
}

/// A redaction the SDK makes in a room of version 11 (where `redacts` moved
/// into `content`) is served in both forms: the SDK's own sync gets
/// `content.redacts`, which it reads in v11, and the top-level `redacts`
/// that clients written against older versions (matrix-js-sdk) read; the
/// redacted message carries the same in `unsigned.redacted_because`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redaction_by_the_sdk_in_a_v11_room_names_its_target_in_both_forms() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("karl", "pw-karl-1").await;
    let bob = logged_in(&s, "judy", "pw-judy-1").await;
    let room_id = crate::support::room(
        &alice,
        serde_json::json!({ "preset": "public_chat", "room_version": "11" }),
    )
    .await;
    let room_id = RoomId::parse(&room_id).expect("room id");
    let room = bob.join_room_by_id(&room_id).await.expect("join");
    let sent = room.send(RoomMessageEventContent::text_plain("oops")).await.expect("send").response;
    let redaction = room.redact(&sent.event_id, Some("typo"), None).await.expect("redact");
    let target = sent.event_id.as_str();

    let start = Instant::now();
    let served = loop {
        assert!(start.elapsed() < DEADLINE, "the redaction never reached the SDK's sync");
        let response = bob.sync_once(SyncSettings::new().timeout(LONG_POLL)).await.expect("sync");
        let found = response.rooms.joined.get(&room_id).and_then(|r| {
            r.timeline.events.iter().find_map(|e| {
                let json: Value = serde_json::from_str(e.raw().json().get()).ok()?;
                (json["event_id"] == redaction.event_id.as_str()).then_some(json)
            })
        });
        if let Some(json) = found {
            break json;
        }
    };
    assert_eq!(served["content"]["redacts"], target, "{served}");
    assert_eq!(served["redacts"], target, "{served}");

    let message = room.event(&sent.event_id, None).await.expect("/event");
    let message: Value = serde_json::from_str(message.raw().json().get()).expect("json");
    assert!(message["content"].as_object().is_some_and(|c| c.is_empty()), "{message}");
    let because = &message["unsigned"]["redacted_because"];
    assert_eq!(
        (&because["redacts"], &because["content"]["redacts"]),
        (&target.into(), &target.into()),
        "{message}"
    );
}
