//! Element X's sync stack against the real server: `matrix-sdk-ui`'s
//! `SyncService` (a `room-list` sliding sync connection plus an `encryption`
//! connection with the to-device and e2ee extensions), its sorted room list
//! and its timeline, all on simplified sliding sync (MSC4186) discovered
//! from `/versions` the way Element X does at login.
//!
//! Everything a test asserts is what the SDK made of the server's answers:
//! the room list's order, the timeline's items, the decrypted text.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use matrix_sdk::ruma::api::client::room::create_room;
use matrix_sdk::ruma::api::error::ErrorKind;
use matrix_sdk::ruma::events::InitialStateEvent;
use matrix_sdk::ruma::events::room::encryption::RoomEncryptionEventContent;
use matrix_sdk::ruma::events::room::message::RoomMessageEventContent;
use matrix_sdk::ruma::{OwnedRoomId, RoomId};
use matrix_sdk::sliding_sync::{Version, VersionBuilder};
use matrix_sdk::{Client, RoomState};
use matrix_sdk_ui::Timeline;
use matrix_sdk_ui::eyeball_im::{Vector, VectorDiff};
use matrix_sdk_ui::room_list_service::RoomListItem;
use matrix_sdk_ui::room_list_service::filters::new_filter_non_left;
use matrix_sdk_ui::sync_service::{self, SyncService};
use matrix_sdk_ui::timeline::RoomExt;
use serde_json::json;
use tokio::time::Instant;

use crate::sdk::{assert_server_holds_only_ciphertext, knows_device};
use crate::support::{TestServer, room, send};

/// How long any one awaited condition may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(30);

/// How often a polled condition (timeline items, room state) is looked at.
const POLL: Duration = Duration::from_millis(20);

/// Logs `user` in the way Element X does: sliding sync must be discovered
/// from `/versions` (`org.matrix.simplified_msc3575`), or the build fails.
async fn element_x(s: &TestServer, user: &str, password: &str) -> Client {
    let client = Client::builder()
        .homeserver_url(&s.base)
        .sliding_sync_version_builder(VersionBuilder::DiscoverNative)
        .build()
        .await
        .expect("the server advertises native sliding sync");
    assert!(matches!(client.sliding_sync_version(), Version::Native));
    client.matrix_auth().login_username(user, password).send().await.expect("login");
    client
}

/// Starts Element X's `SyncService` and checks it runs.
async fn start_sync(client: &Client) -> SyncService {
    let sync = SyncService::builder(client.clone()).build().await.expect("sync service");
    sync.start().await;
    assert!(matches!(sync.state().get(), sync_service::State::Running));
    sync
}

/// Reads room list updates into `items` until `done` holds for the IDs in
/// list order, failing after [`DEADLINE`].
async fn room_list_until(
    stream: &mut (impl Stream<Item = Vec<VectorDiff<RoomListItem>>> + Unpin),
    items: &mut Vector<RoomListItem>,
    what: &str,
    done: impl Fn(&[OwnedRoomId]) -> bool,
) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let ids: Vec<OwnedRoomId> = items.iter().map(|r| r.room_id().to_owned()).collect();
        if done(&ids) {
            return;
        }
        let Ok(next) = tokio::time::timeout_at(deadline, stream.next()).await else {
            panic!("{what}: not seen within {DEADLINE:?}; the list is {ids:?}");
        };
        for diff in next.expect("the room list stream does not end") {
            diff.apply(items);
        }
    }
}

/// `(sender, body)` of the text messages in a timeline, oldest first.
async fn texts(timeline: &Timeline) -> Vec<(String, String)> {
    timeline
        .items()
        .await
        .iter()
        .filter_map(|item| {
            let event = item.as_event()?;
            let message = event.content().as_message()?;
            Some((event.sender().to_string(), message.body().to_owned()))
        })
        .collect()
}

/// Polls a room's timeline until it holds `body` from `sender`.
async fn timeline_until(timeline: &Timeline, sender: &str, body: &str) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let seen = texts(timeline).await;
        if seen.iter().any(|(s, b)| s == sender && b == body) {
            return;
        }
        assert!(Instant::now() < deadline, "{body:?} from {sender} not in the timeline: {seen:?}");
        tokio::time::sleep(POLL).await;
    }
}

/// Polls the client's room until `done` holds.
async fn room_until(
    client: &Client,
    room_id: &RoomId,
    what: &str,
    done: impl Fn(&matrix_sdk::Room) -> bool,
) -> matrix_sdk::Room {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(room) = client.get_room(room_id)
            && done(&room)
        {
            return room;
        }
        assert!(Instant::now() < deadline, "{what}: not seen within {DEADLINE:?}");
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn element_x_lists_rooms_by_activity_and_shows_a_new_message() {
    let s = TestServer::start();
    let (alice_http, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let attic = room(&alice_http, json!({ "name": "Attic", "preset": "public_chat" })).await;
    let garden = room(&alice_http, json!({ "name": "Garden" })).await;
    let kitchen = room(&alice_http, json!({ "name": "Kitchen" })).await;
    bob.post(&format!("/_matrix/client/v3/join/{attic}"), json!({})).await.ok();
    // Activity, newest first: Garden, Kitchen, Attic (not creation order).
    send(&alice_http, &attic, "t1", "up here").await;
    send(&alice_http, &kitchen, "t2", "tea?").await;
    send(&alice_http, &garden, "t3", "roses").await;
    let id = |r: &str| OwnedRoomId::try_from(r).expect("room ID");
    let (attic, garden, kitchen) = (id(&attic), id(&garden), id(&kitchen));

    // Alice opens Element X on a new device.
    let alice = element_x(&s, "alice", "pw-alice-1").await;
    let sync = start_sync(&alice).await;
    let rooms = sync.room_list_service().all_rooms().await.expect("all_rooms list");
    let (stream, controller) = rooms.entries_with_dynamic_adapters(50);
    assert!(controller.set_filter(Box::new(new_filter_non_left())));
    let mut stream = pin!(stream);
    let mut items = Vector::new();
    let by_activity = [garden.clone(), kitchen.clone(), attic.clone()];
    room_list_until(&mut stream, &mut items, "rooms by activity", |ids| ids == by_activity).await;
    // Names come from the `m.room.name` in each room's required state (the
    // SDK may list a room a moment before it applied the room's state).
    for (room_id, name) in [(&garden, "Garden"), (&kitchen, "Kitchen"), (&attic, "Attic")] {
        room_until(&alice, room_id, name, |r| r.name().as_deref() == Some(name)).await;
    }

    // Alice opens the Attic (Element X subscribes to the room it shows);
    // Bob writes there: the message reaches her timeline through sliding
    // sync and the Attic moves to the top of her list.
    sync.room_list_service().subscribe_to_rooms(&[&attic]).await;
    let attic_room = alice.get_room(&attic).expect("the Attic is known");
    let timeline = attic_room.timeline().await.expect("timeline");
    timeline_until(&timeline, "@alice:localhost", "up here").await;
    send(&bob, attic.as_str(), "b1", "anyone up there?").await;
    timeline_until(&timeline, "@bob:localhost", "anyone up there?").await;
    let moved = [attic.clone(), garden.clone(), kitchen.clone()];
    room_list_until(&mut stream, &mut items, "the Attic at the top", |ids| ids == moved).await;
    let seen = texts(&timeline).await;
    assert_eq!(
        seen.iter().filter(|(_, b)| b == "anyone up there?").count(),
        1,
        "the message is in the timeline once: {seen:?}"
    );
    sync.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn element_x_decrypts_an_encrypted_message_through_sliding_sync() {
    let s = TestServer::start();
    s.client().register("carol", "pw-carol-1").await;
    s.client().register("dave", "pw-dave-1").await;
    let carol = element_x(&s, "carol", "pw-carol-1").await;
    let dave = element_x(&s, "dave", "pw-dave-1").await;
    let carol_sync = start_sync(&carol).await;
    let dave_sync = start_sync(&dave).await;
    let carol_id = carol.user_id().expect("logged in").to_owned();

    // Dave starts an encrypted chat with Carol.
    let mut create = create_room::v3::Request::new();
    create.preset = Some(create_room::v3::RoomPreset::PrivateChat);
    create.invite = vec![carol_id];
    create.initial_state = vec![
        InitialStateEvent::with_empty_state_key(
            RoomEncryptionEventContent::with_recommended_defaults(),
        )
        .to_raw_any(),
    ];
    let room_id = dave.create_room(create).await.expect("create room").room_id().to_owned();

    // Carol's room list brings the invite; she accepts.
    room_until(&carol, &room_id, "carol's invite", |r| r.state() == RoomState::Invited).await;
    carol.join_room_by_id(&room_id).await.expect("carol joins");
    let room =
        room_until(&dave, &room_id, "carol's join at dave", |r| r.joined_members_count() == 2)
            .await;
    assert!(room.latest_encryption_state().await.expect("encryption state").is_encrypted());

    // Dave's SDK fetches Carol's device keys (uploaded by her encryption
    // sync), claims a one-time key, shares the room key over to-device and
    // sends ciphertext; Carol's encryption connection delivers the room key
    // and her timeline shows the plaintext.
    room.send(RoomMessageEventContent::text_plain("a secret")).await.expect("send encrypted");
    carol_sync.room_list_service().subscribe_to_rooms(&[&room_id]).await;
    let carol_room = carol.get_room(&room_id).expect("carol's room");
    let timeline = carol_room.timeline().await.expect("timeline");
    timeline_until(&timeline, "@dave:localhost", "a secret").await;

    assert_server_holds_only_ciphertext(&s, &carol, &room_id, "a secret").await;
    carol_sync.stop().await;
    dave_sync.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn element_x_starts_a_new_connection_after_an_unknown_pos() {
    let s = TestServer::start();
    let (erin_http, _) = s.client().register("erin", "pw-erin-1").await;
    let (frank, _) = s.client().register("frank", "pw-frank-1").await;
    let porch = room(&erin_http, json!({ "name": "Porch", "preset": "public_chat" })).await;
    frank.post(&format!("/_matrix/client/v3/join/{porch}"), json!({})).await.ok();
    send(&frank, &porch, "f1", "evening").await;
    let porch_id = OwnedRoomId::try_from(porch.as_str()).expect("room ID");

    let erin = element_x(&s, "erin", "pw-erin-1").await;
    let sync = start_sync(&erin).await;
    sync.room_list_service().subscribe_to_rooms(&[&porch_id]).await;
    let porch_room = room_until(&erin, &porch_id, "the Porch", |r| r.name().is_some()).await;
    let timeline = porch_room.timeline().await.expect("timeline");
    timeline_until(&timeline, "@frank:localhost", "evening").await;

    // Element X goes to the background; meanwhile the server forgets its
    // connections (the same device opens more connections than the server
    // keeps per device, so the least recently used, the SDK's, go).
    sync.stop().await;
    let http = s.client().with_token(erin.access_token().expect("token").as_str());
    for i in 0..16 {
        http.post(
            "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync?timeout=0",
            json!({ "conn_id": format!("other-{i}"), "lists": {} }),
        )
        .await
        .ok();
    }
    send(&frank, &porch, "f2", "still there?").await;

    // Back in the foreground: the old `pos` is refused with M_UNKNOWN_POS,
    // the SyncService reports it, Element X starts it again, and the SDK
    // syncs on a new connection.
    sync.start().await;
    let deadline = Instant::now() + DEADLINE;
    let error = loop {
        if let sync_service::State::Error(e) = sync.state().get() {
            break e;
        }
        assert!(Instant::now() < deadline, "the SDK never saw its pos refused");
        tokio::time::sleep(POLL).await;
    };
    assert!(unknown_pos(&error), "expected M_UNKNOWN_POS, got {error:?}");
    sync.start().await;
    timeline_until(&timeline, "@frank:localhost", "still there?").await;
    assert!(matches!(sync.state().get(), sync_service::State::Running));
    sync.stop().await;
}

/// Whether a `SyncService` error is the server refusing a `pos`.
fn unknown_pos(error: &Arc<sync_service::Error>) -> bool {
    use matrix_sdk_ui::{encryption_sync_service, room_list_service};
    let sdk_error = match error.as_ref() {
        sync_service::Error::RoomList(room_list_service::Error::SlidingSync(e)) => e,
        sync_service::Error::EncryptionSync(encryption_sync_service::Error::SlidingSync(e)) => e,
        _ => return false,
    };
    sdk_error.client_api_error_kind() == Some(&ErrorKind::UnknownPos)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn element_x_learns_of_a_new_device_of_its_own_user() {
    let s = TestServer::start();
    s.client().register("hana", "pw-hana-1").await;
    let first = element_x(&s, "hana", "pw-hana-1").await;
    let first_sync = start_sync(&first).await;
    let me = first.user_id().expect("logged in").to_owned();
    let first_device = first.device_id().expect("device").to_owned();
    // The encryption connection uploads the device's keys and fetches the
    // user's own device list.
    let deadline = Instant::now() + DEADLINE;
    while !knows_device(&first, &me, &first_device).await {
        assert!(Instant::now() < deadline, "the first device never knew itself");
        tokio::time::sleep(POLL).await;
    }

    // Hana signs in to Element X on a second device.
    let second = element_x(&s, "hana", "pw-hana-1").await;
    let second_sync = start_sync(&second).await;
    let second_device = second.device_id().expect("device").to_owned();

    // The first device's e2ee extension lists Hana in
    // `device_lists.changed`; its SDK fetches her keys again and finds the
    // new device, without restarting.
    let deadline = Instant::now() + DEADLINE;
    while !knows_device(&first, &me, &second_device).await {
        assert!(Instant::now() < deadline, "the first device never learnt of the second");
        tokio::time::sleep(POLL).await;
    }
    first_sync.stop().await;
    second_sync.stop().await;
}
