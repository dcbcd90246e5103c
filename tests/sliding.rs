//! Simplified sliding sync (MSC4186), MSC4222 `use_state_after` and room
//! summaries (MSC3266).

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Client, Resp, TestServer, room, send};

const SS: &str = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync";

async fn sliding(c: &Client, pos: Option<&str>, timeout: u64, body: &Value) -> Resp {
    let mut path = format!("{SS}?timeout={timeout}");
    if let Some(p) = pos {
        path.push_str(&format!("&pos={p}"));
    }
    c.post(&path, body.clone()).await
}

fn pos(v: &Value) -> String {
    v["pos"].as_str().expect("pos").to_owned()
}

fn room_ids(v: &Value) -> Vec<String> {
    let mut ids: Vec<String> =
        v["rooms"].as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    ids.sort();
    ids
}

fn bodies(room: &Value) -> Vec<String> {
    room["timeline"]
        .as_array()
        .map(|a| {
            a.iter().filter_map(|e| e["content"]["body"].as_str().map(str::to_owned)).collect()
        })
        .unwrap_or_default()
}

fn state_keys(room: &Value, ty: &str) -> Vec<String> {
    let mut keys: Vec<String> = room["required_state"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["type"] == ty)
                .filter_map(|e| e["state_key"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    keys.sort();
    keys
}

fn list(range: (u64, u64), limit: u64, required_state: Value) -> Value {
    json!({
        "ranges": [[range.0, range.1]],
        "timeline_limit": limit,
        "required_state": required_state,
    })
}

#[tokio::test]
async fn versions_advertise_simplified_sliding_sync() {
    let s = TestServer::start();
    let v = s.client().get("/_matrix/client/versions").await.ok();
    assert_eq!(v["unstable_features"]["org.matrix.simplified_msc3575"], true, "{v}");
    assert_eq!(v["unstable_features"]["org.matrix.msc4222"], true, "{v}");
}

#[tokio::test]
async fn list_is_ordered_by_recency_and_a_new_message_moves_a_room_in() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let a = room(&alice, json!({ "name": "A" })).await;
    let b = room(&alice, json!({ "name": "B" })).await;
    let c = room(&alice, json!({ "name": "C" })).await;
    send(&alice, &b, "b1", "in b").await;
    send(&alice, &c, "c1", "in c").await;
    let req = json!({
        "conn_id": "room-list",
        "txn_id": "x1",
        "lists": { "all": list((0, 1), 1, json!([["m.room.name", ""]])) },
    });
    let first = sliding(&alice, None, 0, &req).await.ok();
    assert_eq!(first["txn_id"], "x1");
    assert_eq!(first["lists"]["all"]["count"], 3, "{first}");
    let mut want = vec![b.clone(), c.clone()];
    want.sort();
    assert_eq!(room_ids(&first), want, "the two most recent rooms: {first}");
    let rc = &first["rooms"][c.as_str()];
    assert_eq!(rc["initial"], true);
    assert_eq!(rc["name"], "C");
    assert_eq!(rc["membership"], "join");
    assert_eq!(rc["joined_count"], 1);
    assert_eq!(rc["invited_count"], 0);
    assert_eq!(rc["notification_count"], 0);
    assert_eq!(bodies(rc), vec!["in c"]);
    assert_eq!(rc["limited"], true, "older events exist: {rc}");
    assert!(rc["prev_batch"].is_string());
    assert_eq!(state_keys(rc, "m.room.name"), vec![""]);
    let (bc, bb) = (rc["bump_stamp"].as_u64(), first["rooms"][b.as_str()]["bump_stamp"].as_u64());
    assert!(bc > bb, "C is more recent than B: {first}");

    // A message in A moves it to the top; only A is new to the client (B
    // stays in range unchanged, C drops out).
    send(&alice, &a, "a1", "in a").await;
    let next = sliding(&alice, Some(&pos(&first)), 0, &req).await.ok();
    assert_eq!(room_ids(&next), vec![a.clone()], "{next}");
    let ra = &next["rooms"][a.as_str()];
    assert_eq!(ra["initial"], true);
    assert_eq!(bodies(ra), vec!["in a"]);
    assert_eq!(ra["num_live"], 1, "the message arrived since the last request: {ra}");
    assert!(ra["bump_stamp"].as_u64() > bc);
    assert_eq!(next["lists"]["all"]["count"], 3);
}

#[tokio::test]
async fn incremental_requests_return_only_what_changed() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let r = room(&alice, json!({ "name": "Kitchen" })).await;
    let req = json!({
        "lists": { "all": list((0, 9), 5, json!([["m.room.name", ""], ["m.room.create", ""]])) },
    });
    let first = sliding(&alice, None, 0, &req).await.ok();
    assert_eq!(first["rooms"][r.as_str()]["initial"], true);
    // Nothing new: no rooms at all.
    let quiet = sliding(&alice, Some(&pos(&first)), 0, &req).await.ok();
    assert!(room_ids(&quiet).is_empty(), "{quiet}");
    send(&alice, &r, "t1", "hello").await;
    let next = sliding(&alice, Some(&pos(&quiet)), 0, &req).await.ok();
    let room = &next["rooms"][r.as_str()];
    assert_eq!(bodies(room), vec!["hello"]);
    assert!(room.get("initial").is_none(), "{room}");
    assert!(room.get("name").is_none(), "the name is not resent: {room}");
    assert!(room.get("required_state").is_none(), "state is not resent: {room}");
    assert_eq!(room["num_live"], 1);
    // A state change shows up in required_state.
    alice
        .put(&format!("/_matrix/client/v3/rooms/{r}/state/m.room.name"), json!({ "name": "Den" }))
        .await
        .ok();
    let renamed = sliding(&alice, Some(&pos(&next)), 0, &req).await.ok();
    let room = &renamed["rooms"][r.as_str()];
    assert_eq!(room["name"], "Den", "{room}");
    assert_eq!(state_keys(room, "m.room.name"), vec![""]);
    assert!(state_keys(room, "m.room.create").is_empty(), "unchanged state is not resent");
    // Retrying the same pos works (the client may cancel and resend).
    let retry = sliding(&alice, Some(&pos(&next)), 0, &req).await.ok();
    assert_eq!(retry["rooms"][r.as_str()]["name"], "Den");
}

#[tokio::test]
async fn lazy_members_come_from_the_timeline_and_star_returns_all_state() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let (carol, _) = s.client().register("carol", "pw-carol-1").await;
    let r = room(&alice, json!({ "preset": "public_chat" })).await;
    for c in [&bob, &carol] {
        c.post(&format!("/_matrix/client/v3/join/{r}"), json!({})).await.ok();
    }
    send(&bob, &r, "b1", "hi from bob").await;
    let req = json!({
        "lists": { "all": list((0, 0), 1, json!([["m.room.member", "$LAZY"], ["m.room.member", "$ME"]])) },
    });
    let first = sliding(&alice, None, 0, &req).await.ok();
    let room = &first["rooms"][r.as_str()];
    assert_eq!(bodies(room), vec!["hi from bob"]);
    assert_eq!(
        state_keys(room, "m.room.member"),
        vec!["@alice:localhost".to_owned(), "@bob:localhost".to_owned()],
        "the sender and $ME, not carol: {room}"
    );
    assert_eq!(room["joined_count"], 3);
    // Bob again: his member event is not resent; carol speaks: hers is.
    send(&bob, &r, "b2", "again").await;
    send(&carol, &r, "c1", "me too").await;
    let req2 = json!({
        "lists": { "all": list((0, 0), 1, json!([["m.room.member", "$LAZY"]])) },
    });
    let next = sliding(&alice, Some(&pos(&first)), 0, &req2).await.ok();
    let room = &next["rooms"][r.as_str()];
    assert_eq!(state_keys(room, "m.room.member"), vec!["@carol:localhost".to_owned()], "{room}");

    // A subscription with `*` gets every state event.
    let all = json!({
        "room_subscriptions": { r.clone(): { "timeline_limit": 0, "required_state": [["*", "*"]] } },
    });
    let sub = sliding(&alice, None, 0, &all).await.ok();
    let room = &sub["rooms"][r.as_str()];
    assert_eq!(state_keys(room, "m.room.create"), vec![""]);
    assert_eq!(state_keys(room, "m.room.power_levels"), vec![""]);
    assert_eq!(state_keys(room, "m.room.member").len(), 3, "{room}");
}

#[tokio::test]
async fn invites_come_with_invite_state_and_the_invite_filter() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let _own = room(&bob, json!({ "name": "Bob's" })).await;
    let r =
        room(&alice, json!({ "name": "Party", "invite": ["@bob:localhost"], "is_direct": true }))
            .await;
    let req = json!({
        "lists": {
            "invites": {
                "ranges": [[0, 9]], "timeline_limit": 1, "required_state": [],
                "filters": { "is_invite": true },
            },
            "rooms": {
                "ranges": [[0, 9]], "timeline_limit": 1, "required_state": [],
                "filters": { "is_invite": false },
            },
        },
    });
    let first = sliding(&bob, None, 0, &req).await.ok();
    assert_eq!(first["lists"]["invites"]["count"], 1, "{first}");
    assert_eq!(first["lists"]["rooms"]["count"], 1, "{first}");
    let inv = &first["rooms"][r.as_str()];
    assert_eq!(inv["initial"], true);
    assert_eq!(inv["membership"], "invite");
    assert_eq!(inv["is_dm"], true, "the invite says it is direct: {inv}");
    let state = inv["invite_state"].as_array().expect("invite_state");
    assert!(state.iter().any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "Party"));
    assert!(inv.get("timeline").is_none(), "nothing beyond stripped state: {inv}");
    // Joining turns it into a full room, sent afresh.
    bob.post(&format!("/_matrix/client/v3/join/{r}"), json!({})).await.ok();
    let next = sliding(&bob, Some(&pos(&first)), 0, &req).await.ok();
    assert_eq!(next["lists"]["invites"]["count"], 0);
    let joined = &next["rooms"][r.as_str()];
    assert_eq!(joined["initial"], true, "{joined}");
    assert_eq!(joined["membership"], "join");
    assert_eq!(joined["name"], "Party");
}

#[tokio::test]
async fn to_device_is_delivered_once_and_deleted_on_acknowledgement() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, reg) = s.client().register("bob", "pw-bob-1").await;
    let dev = reg["device_id"].as_str().expect("device").to_owned();
    alice
        .put(
            "/_matrix/client/v3/sendToDevice/m.test/t1",
            json!({ "messages": { "@bob:localhost": { dev.clone(): { "n": 1 } } } }),
        )
        .await
        .ok();
    let req = |since: Option<&str>| {
        let mut td = json!({ "enabled": true });
        if let Some(s) = since {
            td["since"] = json!(s);
        }
        json!({ "extensions": { "to_device": td } })
    };
    let first = sliding(&bob, None, 0, &req(None)).await.ok();
    let td = &first["extensions"]["to_device"];
    assert_eq!(td["events"][0]["content"]["n"], 1, "{first}");
    assert_eq!(td["events"][0]["sender"], "@alice:localhost");
    let next_batch = td["next_batch"].as_str().expect("next_batch").to_owned();
    let second = sliding(&bob, Some(&pos(&first)), 0, &req(Some(&next_batch))).await.ok();
    let events =
        second["extensions"]["to_device"]["events"].as_array().cloned().unwrap_or_default();
    assert!(events.is_empty(), "acknowledged messages are gone: {second}");
    // Even a fresh connection without `since` no longer sees it.
    let fresh = sliding(&bob, None, 0, &req(None)).await.ok();
    assert!(fresh["extensions"]["to_device"]["events"].as_array().is_none_or(|a| a.is_empty()));
}

#[tokio::test]
async fn extensions_carry_typing_receipts_account_data_and_key_counts() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let r = room(&alice, json!({ "preset": "public_chat" })).await;
    bob.post(&format!("/_matrix/client/v3/join/{r}"), json!({})).await.ok();
    let ev = send(&bob, &r, "b1", "read me").await;
    alice
        .post("/_matrix/client/v3/keys/upload", json!({
            "one_time_keys": { "signed_curve25519:AAAA": { "key": "k1" }, "signed_curve25519:AAAB": { "key": "k2" } },
        }))
        .await
        .ok();
    alice
        .put("/_matrix/client/v3/user/@alice:localhost/account_data/m.direct", json!({}))
        .await
        .ok();
    alice
        .put(
            &format!(
                "/_matrix/client/v3/user/@alice:localhost/rooms/{r}/account_data/org.example.x"
            ),
            json!({ "v": 1 }),
        )
        .await
        .ok();
    let req = json!({
        "lists": { "all": list((0, 9), 1, json!([])) },
        "extensions": {
            "e2ee": { "enabled": true },
            "account_data": { "enabled": true },
            "receipts": { "enabled": true },
            "typing": { "enabled": true },
        },
    });
    let first = sliding(&alice, None, 0, &req).await.ok();
    let ext = &first["extensions"];
    assert_eq!(ext["e2ee"]["device_one_time_keys_count"]["signed_curve25519"], 2, "{ext}");
    assert!(ext["e2ee"]["device_unused_fallback_key_types"].is_array());
    let global = ext["account_data"]["global"].as_array().expect("global");
    assert!(global.iter().any(|e| e["type"] == "m.direct"), "{ext}");
    assert_eq!(ext["account_data"]["rooms"][r.as_str()][0]["content"]["v"], 1, "{ext}");

    bob.put(
        &format!("/_matrix/client/v3/rooms/{r}/typing/@bob:localhost"),
        json!({ "typing": true, "timeout": 20000 }),
    )
    .await
    .ok();
    bob.post(&format!("/_matrix/client/v3/rooms/{r}/receipt/m.read/{ev}"), json!({})).await.ok();
    let next = sliding(&alice, Some(&pos(&first)), 0, &req).await.ok();
    let ext = &next["extensions"];
    let typing = &ext["typing"]["rooms"][r.as_str()];
    assert_eq!(typing["type"], "m.typing");
    assert_eq!(typing["content"]["user_ids"], json!(["@bob:localhost"]), "{ext}");
    let receipt = &ext["receipts"]["rooms"][r.as_str()];
    assert_eq!(receipt["type"], "m.receipt");
    assert!(receipt["content"][ev.as_str()]["m.read"]["@bob:localhost"]["ts"].is_u64(), "{ext}");
    assert!(
        ext["account_data"]["global"].as_array().is_none_or(|a| a.is_empty()),
        "account data is not resent: {ext}"
    );
}

#[tokio::test]
async fn a_bogus_pos_is_unknown_pos() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let r = sliding(&alice, Some("12345_6"), 0, &json!({})).await;
    r.expect_err(400, "M_UNKNOWN_POS");
    let r = sliding(&alice, Some("garbage"), 0, &json!({})).await;
    r.expect_err(400, "M_UNKNOWN_POS");
    // A pos belongs to its connection.
    let first = sliding(&alice, None, 0, &json!({ "conn_id": "a" })).await.ok();
    let r = sliding(&alice, Some(&pos(&first)), 0, &json!({ "conn_id": "b" })).await;
    r.expect_err(400, "M_UNKNOWN_POS");
}

#[tokio::test]
async fn a_long_poll_wakes_on_a_new_message() {
    let s = TestServer::start_with_metrics(|_| {});
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let r = room(&alice, json!({ "preset": "public_chat" })).await;
    bob.post(&format!("/_matrix/client/v3/join/{r}"), json!({})).await.ok();
    let req = json!({ "lists": { "all": list((0, 9), 5, json!([])) } });
    let first = sliding(&alice, None, 0, &req).await.ok();
    let p = pos(&first);
    let poll = {
        let alice = alice.clone();
        let req = req.clone();
        tokio::spawn(async move { sliding(&alice, Some(&p), 20_000, &req).await })
    };
    // Send only once the poll is parked: the wake-up path is the one tested.
    s.await_long_polls(1).await;
    send(&bob, &r, "b1", "wake up").await;
    let woke = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .expect("woke")
        .expect("join")
        .ok();
    assert_eq!(bodies(&woke["rooms"][r.as_str()]), vec!["wake up"], "{woke}");
}

#[tokio::test]
async fn use_state_after_gives_the_state_at_the_end_of_the_timeline() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let r = room(&alice, json!({ "name": "Before" })).await;
    let first = alice.get("/_matrix/client/v3/sync?use_state_after=true").await.ok();
    let joined = &first["rooms"]["join"][r.as_str()];
    assert!(joined.get("state").is_none(), "{joined}");
    let after = joined["state_after"]["events"].as_array().expect("state_after");
    assert!(after.iter().any(|e| e["type"] == "m.room.name"), "includes timeline state");
    let since = first["next_batch"].as_str().expect("next_batch").to_owned();
    alice
        .put(&format!("/_matrix/client/v3/rooms/{r}/state/m.room.name"), json!({ "name": "After" }))
        .await
        .ok();
    let next = alice
        .get(&format!(
            "/_matrix/client/v3/sync?since={since}&org.matrix.msc4222.use_state_after=true"
        ))
        .await
        .ok();
    let joined = &next["rooms"]["join"][r.as_str()];
    let after = joined["state_after"]["events"].as_array().expect("state_after");
    assert_eq!(after.len(), 1, "{joined}");
    assert_eq!(after[0]["content"]["name"], "After");
}

#[tokio::test]
async fn room_summary_previews_public_rooms_and_hides_private_ones() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let public = room(
        &alice,
        json!({ "preset": "public_chat", "name": "Town square", "room_alias_name": "town" }),
    )
    .await;
    let private = room(&alice, json!({ "name": "Secret" })).await;
    let summary = bob.get("/_matrix/client/v1/room_summary/%23town:localhost").await.ok();
    assert_eq!(summary["room_id"], public.as_str());
    assert_eq!(summary["name"], "Town square");
    assert_eq!(summary["join_rule"], "public");
    assert_eq!(summary["num_joined_members"], 1);
    assert!(summary.get("membership").is_none());
    let unstable = s
        .client()
        .get(&format!("/_matrix/client/unstable/im.nheko.summary/summary/{public}"))
        .await
        .ok();
    assert_eq!(unstable["room_id"], public.as_str());
    bob.get(&format!("/_matrix/client/v1/room_summary/{private}"))
        .await
        .expect_err(404, "M_NOT_FOUND");
    let own = alice.get(&format!("/_matrix/client/v1/room_summary/{private}")).await.ok();
    assert_eq!(own["membership"], "join");
}

#[tokio::test]
async fn account_data_never_set_is_not_found() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    alice
        .get("/_matrix/client/v3/user/@alice:localhost/account_data/m.never")
        .await
        .expect_err(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn reactions_after_the_last_message_do_not_move_a_room() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let busy = room(&alice, json!({ "name": "Busy" })).await;
    let quiet = room(&alice, json!({ "name": "Quiet" })).await;
    send(&alice, &quiet, "q1", "in quiet").await;
    let message = send(&alice, &busy, "b1", "in busy").await;
    // 200 reactions after Busy's newest message: they do not bump it, and
    // its message is still newer than Quiet's.
    let reactions = (0..200).map(|i| {
        let alice = alice.clone();
        let (busy, message) = (busy.clone(), message.clone());
        async move {
            alice
                .put(
                    &format!("/_matrix/client/v3/rooms/{busy}/send/m.reaction/r{i}"),
                    json!({ "m.relates_to": {
                        "rel_type": "m.annotation", "event_id": message, "key": format!("k{i}"),
                    } }),
                )
                .await
                .ok();
        }
    });
    futures_util::future::join_all(reactions).await;
    let req = json!({
        "conn_id": "bump",
        "lists": { "all": list((0, 0), 1, json!([])) },
    });
    let first = sliding(&alice, None, 0, &req).await.ok();
    assert_eq!(room_ids(&first), vec![busy.clone()], "Busy's message is the newest: {first}");
    let rb = &first["rooms"][busy.as_str()];
    assert_eq!(rb["timeline"][0]["type"], "m.reaction", "the timeline does end in reactions");

    // On a live connection too: a message moves Quiet to the top, and a
    // later reaction in Busy does not move Busy back above it.
    send(&alice, &quiet, "q2", "quiet again").await;
    alice
        .put(
            &format!("/_matrix/client/v3/rooms/{busy}/send/m.reaction/late"),
            json!({ "m.relates_to": {
                "rel_type": "m.annotation", "event_id": message, "key": "late",
            } }),
        )
        .await
        .ok();
    let next = sliding(&alice, Some(&pos(&first)), 0, &req).await.ok();
    assert_eq!(room_ids(&next), vec![quiet.clone()], "{next}");
    let (bq, bb) =
        (next["rooms"][quiet.as_str()]["bump_stamp"].as_u64(), rb["bump_stamp"].as_u64());
    assert!(bq > bb, "{next}");
}

#[tokio::test]
async fn a_forgotten_room_leaves_the_sliding_list_until_the_membership_changes() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let r = room(&alice, json!({ "invite": ["@bob:localhost"] })).await;
    bob.post(&format!("/_matrix/client/v3/join/{r}"), json!({})).await.ok();
    // A kick keeps the room in the list so bob learns of it...
    alice
        .post(&format!("/_matrix/client/v3/rooms/{r}/kick"), json!({ "user_id": "@bob:localhost" }))
        .await
        .ok();
    let req = json!({ "lists": { "all": list((0, 9), 1, json!([])) } });
    let first = sliding(&bob, None, 0, &req).await.ok();
    assert_eq!(first["lists"]["all"]["count"], 1, "{first}");
    // ...until he forgets it, in this connection and in new ones.
    bob.post(&format!("/_matrix/client/v3/rooms/{r}/forget"), json!({})).await.ok();
    let again = sliding(&bob, Some(&pos(&first)), 0, &req).await.ok();
    assert_eq!(again["lists"]["all"]["count"], 0, "{again}");
    let fresh = sliding(&bob, None, 0, &req).await.ok();
    assert_eq!(fresh["lists"]["all"]["count"], 0, "{fresh}");
    assert!(room_ids(&fresh).is_empty(), "{fresh}");
    // A new invite brings it back.
    alice
        .post(
            &format!("/_matrix/client/v3/rooms/{r}/invite"),
            json!({ "user_id": "@bob:localhost" }),
        )
        .await
        .ok();
    let back = sliding(&bob, None, 0, &req).await.ok();
    assert_eq!(room_ids(&back), vec![r.clone()], "{back}");
    assert_eq!(back["rooms"][r.as_str()]["membership"], "invite", "{back}");
}

#[tokio::test]
async fn one_user_opening_many_connections_does_not_expire_another_users_pos() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (_, _) = s.client().register("mallory", "pw-mallory-1").await;
    let first = sliding(&alice, None, 0, &json!({})).await.ok();
    // More devices × connections than the whole table (8 per device, 128).
    for _ in 0..17 {
        let login = s.client().login("mallory", "pw-mallory-1").await.ok();
        let m = s.client().with_token(login["access_token"].as_str().expect("token"));
        for i in 0..8 {
            sliding(&m, None, 0, &json!({ "conn_id": format!("c{i}") })).await.ok();
        }
    }
    sliding(&alice, Some(&pos(&first)), 0, &json!({})).await.ok();
}
