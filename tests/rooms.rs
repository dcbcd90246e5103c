//! Rooms, membership, messages and /sync.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{TestServer, room, send, urlencode};

fn timeline_bodies(sync: &Value, room: &str) -> Vec<String> {
    sync["rooms"]["join"][room]["timeline"]["events"]
        .as_array()
        .map(|a| {
            a.iter().filter_map(|e| e["content"]["body"].as_str().map(str::to_owned)).collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn two_people_chat_and_each_sees_the_other_through_sync() {
    let s = TestServer::start_with_metrics(|_| {});
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let room_id = room(&alice, json!({ "name": "Kitchen", "invite": ["@bob:localhost"] })).await;
    assert!(room_id.starts_with('!'));
    // Bob sees the invite with stripped state.
    let sync = bob.get("/_matrix/client/v3/sync").await.ok();
    let invite = &sync["rooms"]["invite"][room_id.as_str()]["invite_state"]["events"];
    assert!(
        invite.as_array().is_some_and(|a| a.iter().any(|e| e["type"] == "m.room.name")),
        "{sync}"
    );
    let since = sync["next_batch"].as_str().expect("next_batch").to_owned();
    bob.post(&format!("/_matrix/client/v3/join/{room_id}"), json!({})).await.ok();
    send(&alice, &room_id, "t1", "dinner is ready").await;
    let sync = bob.get(&format!("/_matrix/client/v3/sync?since={since}")).await.ok();
    assert!(timeline_bodies(&sync, &room_id).contains(&"dinner is ready".to_owned()), "{sync}");
    let since = sync["next_batch"].as_str().expect("next_batch").to_owned();
    // A long-poll wakes when the other side speaks.
    let poll = {
        let bob = bob.clone();
        let since = since.clone();
        tokio::spawn(async move {
            bob.get(&format!("/_matrix/client/v3/sync?since={since}&timeout=20000")).await
        })
    };
    // Send only once the poll is parked, so the wake-up path is the one
    // tested (an early send would simply be returned at once).
    s.await_long_polls(1).await;
    send(&alice, &room_id, "t2", "coming!").await;
    let woke = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .expect("woke")
        .expect("join")
        .ok();
    assert!(timeline_bodies(&woke, &room_id).contains(&"coming!".to_owned()), "{woke}");
    let joined = alice.get("/_matrix/client/v3/joined_rooms").await.ok();
    assert_eq!(joined["joined_rooms"], json!([room_id]));
    let members =
        alice.get(&format!("/_matrix/client/v3/rooms/{room_id}/joined_members")).await.ok();
    assert!(members["joined"]["@bob:localhost"].is_object(), "{members}");
}

#[tokio::test]
async fn an_incremental_sync_with_nothing_new_returns_after_its_timeout_with_no_rooms() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    room(&alice, json!({})).await;
    let first = alice.get("/_matrix/client/v3/sync").await.ok();
    let since = first["next_batch"].as_str().expect("next_batch");
    let again = alice.get(&format!("/_matrix/client/v3/sync?since={since}&timeout=50")).await.ok();
    assert_eq!(again["rooms"]["join"], json!({}));
    assert_eq!(again["next_batch"], since);
}

#[tokio::test]
async fn sending_with_the_same_txn_id_is_idempotent_per_device() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let r = room(&alice, json!({})).await;
    let a = send(&alice, &r, "same", "hello").await;
    let b = send(&alice, &r, "same", "hello").await;
    assert_eq!(a, b);
    let other_device = s.client().with_token(
        s.client().login("alice", "pw-alice-1").await.ok()["access_token"].as_str().expect("t"),
    );
    let c = send(&other_device, &r, "same", "hello").await;
    assert_ne!(a, c, "another device's txn id is a new request");
}

#[tokio::test]
async fn the_sending_device_alone_sees_the_transaction_id() {
    let s = TestServer::start();
    let (alice, registered) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let r = room(&alice, json!({ "preset": "public_chat" })).await;
    bob.post(&format!("/_matrix/client/v3/rooms/{r}/join"), json!({})).await.ok();
    // Bob again, on a device he names like Alice's (device IDs are per user).
    let alice_device = registered["device_id"].as_str().expect("device_id");
    let login = json!({
        "type": "m.login.password",
        "identifier": { "type": "m.id.user", "user": "bob" },
        "password": "pw-bob-1",
        "device_id": alice_device,
    });
    let bob_twin = s.client().post("/_matrix/client/v3/login", login).await.ok();
    assert_eq!(bob_twin["device_id"], alice_device);
    let bob_twin = s.client().with_token(bob_twin["access_token"].as_str().expect("t"));
    let laptop = s.client().with_token(
        s.client().login("alice", "pw-alice-1").await.ok()["access_token"].as_str().expect("t"),
    );
    let id = send(&alice, &r, "txn-42", "hello").await;
    let txn_of = |ev: &Value| ev["unsigned"]["transaction_id"].clone();
    let in_sync = |body: &Value| -> Value {
        let events = body["rooms"]["join"][r.as_str()]["timeline"]["events"].as_array().cloned();
        events
            .unwrap_or_default()
            .into_iter()
            .find(|e| e["event_id"] == id.as_str())
            .expect("event")
    };
    let event_path = format!("/_matrix/client/v3/rooms/{r}/event/{id}");
    let messages_path = format!("/_matrix/client/v3/rooms/{r}/messages?dir=b&limit=1");
    let sliding = json!({ "lists": { "all": { "ranges": [[0, 9]], "timeline_limit": 1 } } });
    // The sender's device: in /sync, sliding sync, /event, /messages, /context.
    assert_eq!(txn_of(&in_sync(&alice.get("/_matrix/client/v3/sync").await.ok())), "txn-42");
    assert_eq!(txn_of(&alice.get(&event_path).await.ok()), "txn-42");
    assert_eq!(txn_of(&alice.get(&messages_path).await.ok()["chunk"][0]), "txn-42");
    let context = alice.get(&format!("/_matrix/client/v3/rooms/{r}/context/{id}")).await.ok();
    assert_eq!(txn_of(&context["event"]), "txn-42");
    let slid = alice
        .post("/_matrix/client/unstable/org.matrix.simplified_msc3575/sync", sliding.clone())
        .await
        .ok();
    assert_eq!(txn_of(&slid["rooms"][r.as_str()]["timeline"][0]), "txn-42", "{slid}");
    // Another device of the same user, and another user: never, and the
    // device marker the server keeps beside it never leaks.
    for other in [&laptop, &bob, &bob_twin] {
        let synced = in_sync(&other.get("/_matrix/client/v3/sync").await.ok());
        let fetched = other.get(&event_path).await.ok();
        let paged = other.get(&messages_path).await.ok()["chunk"][0].clone();
        let slid = other
            .post("/_matrix/client/unstable/org.matrix.simplified_msc3575/sync", sliding.clone())
            .await
            .ok();
        let slid = slid["rooms"][r.as_str()]["timeline"][0].clone();
        for ev in [synced, fetched, paged, slid] {
            assert_eq!(ev["event_id"], id.as_str());
            // Only the reader's own membership at the event.
            let only_membership =
                |o: &serde_json::Map<String, Value>| o.keys().all(|k| k == "membership");
            assert!(
                ev.get("unsigned").is_none_or(|u| u.as_object().is_some_and(only_membership)),
                "{ev}"
            );
        }
    }
}

#[tokio::test]
async fn a_state_event_carries_what_it_replaced() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let r = room(&alice, json!({ "name": "first" })).await;
    let first = alice.get(&format!("/_matrix/client/v3/rooms/{r}/state/m.room.name/")).await.ok();
    assert_eq!(first["name"], "first");
    let name_path = format!("/_matrix/client/v3/rooms/{r}/state/m.room.name/");
    let first_id = {
        let state = alice.get(&format!("/_matrix/client/v3/rooms/{r}/state")).await.ok();
        let name =
            state.as_array().expect("state").iter().find(|e| e["type"] == "m.room.name").cloned();
        name.expect("name event")["event_id"].as_str().expect("id").to_owned()
    };
    let second = alice.put(&name_path, json!({ "name": "second" })).await.ok();
    let second = second["event_id"].as_str().expect("id").to_owned();
    let ev = alice.get(&format!("/_matrix/client/v3/rooms/{r}/event/{second}")).await.ok();
    assert_eq!(ev["unsigned"]["prev_content"], json!({ "name": "first" }), "{ev}");
    assert_eq!(ev["unsigned"]["replaces_state"], first_id.as_str());
    assert_eq!(ev["unsigned"]["prev_sender"], "@alice:localhost");
    // A display-name change: clients tell it from a join by prev_content.
    alice
        .put(
            "/_matrix/client/v3/profile/@alice:localhost/displayname",
            json!({ "displayname": "Al" }),
        )
        .await
        .ok();
    let page =
        alice.get(&format!("/_matrix/client/v3/rooms/{r}/messages?dir=b&limit=1")).await.ok();
    let member = &page["chunk"][0];
    assert_eq!(member["type"], "m.room.member", "{page}");
    assert_eq!(member["content"]["displayname"], "Al");
    assert_eq!(member["unsigned"]["prev_content"]["membership"], "join", "{member}");
    // The room's first state events replace nothing.
    let create =
        alice.get(&format!("/_matrix/client/v3/rooms/{r}/messages?dir=f&limit=1")).await.ok();
    assert_eq!(create["chunk"][0]["type"], "m.room.create");
    let unsigned = &create["chunk"][0]["unsigned"];
    assert_eq!(unsigned, &json!({ "membership": "leave" }), "{create}");
}

#[tokio::test]
async fn outsiders_cannot_read_or_write_and_invite_only_rooms_refuse_them() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (eve, _) = s.client().register("eve", "pw-eve-1").await;
    let r = room(&alice, json!({ "preset": "private_chat" })).await;
    send(&alice, &r, "t", "secret").await;
    eve.get(&format!("/_matrix/client/v3/rooms/{r}/messages?dir=b"))
        .await
        .expect_err(403, "M_FORBIDDEN");
    eve.put(
        &format!("/_matrix/client/v3/rooms/{r}/send/m.room.message/x"),
        json!({ "body": "hi" }),
    )
    .await
    .expect_err(403, "M_FORBIDDEN");
    eve.post(&format!("/_matrix/client/v3/rooms/{r}/join"), json!({}))
        .await
        .expect_err(403, "M_FORBIDDEN");
    eve.get(&format!("/_matrix/client/v3/rooms/{r}/state/m.room.name/"))
        .await
        .expect_err(403, "M_FORBIDDEN");
    eve.get("/_matrix/client/v3/rooms/!nope:localhost/messages")
        .await
        .expect_err(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn public_rooms_can_be_joined_by_alias_and_bans_keep_people_out() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let r = room(&alice, json!({ "preset": "public_chat", "room_alias_name": "lounge" })).await;
    alice
        .post("/_matrix/client/v3/createRoom", json!({ "room_alias_name": "lounge" }))
        .await
        .expect_err(400, "M_ROOM_IN_USE");
    let joined = bob.post("/_matrix/client/v3/join/%23lounge:localhost", json!({})).await.ok();
    assert_eq!(joined["room_id"], r.as_str());
    alice
        .post(
            &format!("/_matrix/client/v3/rooms/{r}/ban"),
            json!({ "user_id": "@bob:localhost", "reason": "spam" }),
        )
        .await
        .ok();
    bob.post(&format!("/_matrix/client/v3/rooms/{r}/join"), json!({}))
        .await
        .expect_err(403, "M_FORBIDDEN");
    alice
        .post(
            &format!("/_matrix/client/v3/rooms/{r}/unban"),
            json!({ "user_id": "@bob:localhost" }),
        )
        .await
        .ok();
    bob.post(&format!("/_matrix/client/v3/rooms/{r}/join"), json!({})).await.ok();
    // Bob (power 0) may not change the room name (needs 50).
    bob.put(&format!("/_matrix/client/v3/rooms/{r}/state/m.room.name/"), json!({ "name": "mine" }))
        .await
        .expect_err(403, "M_FORBIDDEN");
    alice
        .put(
            &format!("/_matrix/client/v3/rooms/{r}/state/m.room.name/"),
            json!({ "name": "Lounge" }),
        )
        .await
        .ok();
    let name = bob.get(&format!("/_matrix/client/v3/rooms/{r}/state/m.room.name/")).await.ok();
    assert_eq!(name["name"], "Lounge");
}

#[tokio::test]
async fn messages_paginate_backwards_through_history() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let r = room(&alice, json!({})).await;
    for i in 0..25 {
        send(&alice, &r, &format!("t{i}"), &format!("m{i}")).await;
    }
    let page =
        alice.get(&format!("/_matrix/client/v3/rooms/{r}/messages?dir=b&limit=10")).await.ok();
    let bodies: Vec<&str> = page["chunk"]
        .as_array()
        .expect("chunk")
        .iter()
        .filter_map(|e| e["content"]["body"].as_str())
        .collect();
    assert_eq!(bodies.first(), Some(&"m24"));
    assert_eq!(bodies.len(), 10);
    let end = page["end"].as_str().expect("end");
    let next = alice
        .get(&format!("/_matrix/client/v3/rooms/{r}/messages?dir=b&limit=10&from={end}"))
        .await
        .ok();
    assert_eq!(next["chunk"][0]["content"]["body"], "m14");
}

#[tokio::test]
async fn room_versions_are_honoured_and_unknown_ones_refused() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    alice
        .post("/_matrix/client/v3/createRoom", json!({ "room_version": "9" }))
        .await
        .expect_err(400, "M_UNSUPPORTED_ROOM_VERSION");
    for v in ["10", "11", "12"] {
        let r = room(&alice, json!({ "room_version": v })).await;
        let create =
            alice.get(&format!("/_matrix/client/v3/rooms/{r}/state/m.room.create/")).await.ok();
        assert_eq!(create["room_version"], v);
        if v == "12" {
            assert!(!r.contains(':'), "v12 room IDs have no server part: {r}");
        } else {
            assert!(r.ends_with(":localhost"), "{r}");
        }
        send(&alice, &r, "t", "works").await;
    }
}

#[tokio::test]
async fn a_gappy_sync_is_limited_and_carries_the_state_changed_in_the_gap() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let r = room(&alice, json!({})).await;
    let since = alice.get("/_matrix/client/v3/sync").await.ok()["next_batch"]
        .as_str()
        .expect("nb")
        .to_owned();
    alice
        .put(
            &format!("/_matrix/client/v3/rooms/{r}/state/m.room.topic/"),
            json!({ "topic": "gap topic" }),
        )
        .await
        .ok();
    for i in 0..5 {
        send(&alice, &r, &format!("g{i}"), "filler").await;
    }
    let filter = r#"{"room":{"timeline":{"limit":2}}}"#;
    let sync = alice
        .get(&format!("/_matrix/client/v3/sync?since={since}&filter={}", urlencode(filter)))
        .await
        .ok();
    let joined = &sync["rooms"]["join"][r.as_str()];
    assert_eq!(joined["timeline"]["limited"], true, "{sync}");
    assert_eq!(joined["timeline"]["events"].as_array().map(Vec::len), Some(2));
    let state = joined["state"]["events"].as_array().expect("state");
    assert!(
        state.iter().any(|e| e["type"] == "m.room.topic" && e["content"]["topic"] == "gap topic"),
        "{sync}"
    );
}

#[tokio::test]
async fn redaction_strips_content_and_says_why() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    for v in ["10", "11", "12"] {
        let r = room(&alice, json!({ "preset": "public_chat", "room_version": v })).await;
        bob.post(&format!("/_matrix/client/v3/join/{r}"), json!({})).await.ok();
        let ev = send(&bob, &r, "t", "oops").await;
        let red = alice
            .put(
                &format!("/_matrix/client/v3/rooms/{r}/redact/{ev}/r1"),
                json!({ "reason": "spam" }),
            )
            .await
            .ok();
        let red_id = red["event_id"].as_str().expect("id").to_owned();
        let again = alice
            .put(
                &format!("/_matrix/client/v3/rooms/{r}/redact/{ev}/r1"),
                json!({ "reason": "spam" }),
            )
            .await
            .ok();
        assert_eq!(again["event_id"], red_id.as_str(), "txn ids make redactions idempotent");
        let got = bob.get(&format!("/_matrix/client/v3/rooms/{r}/event/{ev}")).await.ok();
        assert_eq!(got["content"], json!({}), "v{v}: {got}");
        assert_eq!(got["unsigned"]["redacted_because"]["event_id"], red_id.as_str());
        assert_eq!(got["unsigned"]["redacted_because"]["content"]["reason"], "spam");
        // Bob (power 0) cannot redact Alice's events.
        let mine = send(&alice, &r, "t2", "keep").await;
        bob.put(&format!("/_matrix/client/v3/rooms/{r}/redact/{mine}/r2"), json!({}))
            .await
            .expect_err(403, "M_FORBIDDEN");
    }
}

#[tokio::test]
async fn context_returns_events_around_an_event() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let r = room(&alice, json!({})).await;
    let mut ids = Vec::new();
    for i in 0..9 {
        ids.push(send(&alice, &r, &format!("c{i}"), &format!("c{i}")).await);
    }
    let ctx =
        alice.get(&format!("/_matrix/client/v3/rooms/{r}/context/{}?limit=4", ids[4])).await.ok();
    assert_eq!(ctx["event"]["content"]["body"], "c4");
    assert_eq!(ctx["events_before"][0]["content"]["body"], "c3");
    assert_eq!(ctx["events_after"][0]["content"]["body"], "c5");
    assert_eq!(ctx["events_before"].as_array().map(Vec::len), Some(2));
    assert!(
        ctx["state"].as_array().is_some_and(|s| s.iter().any(|e| e["type"] == "m.room.create"))
    );
    let end = ctx["end"].as_str().expect("end");
    let fwd = alice
        .get(&format!("/_matrix/client/v3/rooms/{r}/messages?dir=f&from={end}&limit=10"))
        .await
        .ok();
    assert_eq!(fwd["chunk"][0]["content"]["body"], "c7");
}

#[tokio::test]
async fn forgetting_requires_having_left() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let r = room(&alice, json!({})).await;
    let e = alice.post(&format!("/_matrix/client/v3/rooms/{r}/forget"), json!({})).await;
    assert_eq!(e.status, 400);
    alice.post(&format!("/_matrix/client/v3/rooms/{r}/leave"), json!({})).await.ok();
    alice.post(&format!("/_matrix/client/v3/rooms/{r}/forget"), json!({})).await.ok();
}

#[tokio::test]
async fn the_same_txn_id_in_another_room_is_a_new_event() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let a = room(&alice, json!({})).await;
    let b = room(&alice, json!({})).await;
    let in_a = send(&alice, &a, "same", "one").await;
    let in_b = send(&alice, &b, "same", "two").await;
    assert_ne!(in_a, in_b);
    let got = alice.get(&format!("/_matrix/client/v3/rooms/{b}/event/{in_b}")).await.ok();
    assert_eq!(got["content"]["body"], "two");
}

#[tokio::test]
async fn joined_history_visibility_hides_what_came_before_the_join() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let r = room(&alice, json!({ "preset": "public_chat" })).await;
    alice
        .put(
            &format!("/_matrix/client/v3/rooms/{r}/state/m.room.history_visibility/"),
            json!({ "history_visibility": "joined" }),
        )
        .await
        .ok();
    let secret = send(&alice, &r, "t1", "before bob").await;
    bob.post(&format!("/_matrix/client/v3/join/{r}"), json!({})).await.ok();
    send(&alice, &r, "t2", "after bob").await;
    let page = bob.get(&format!("/_matrix/client/v3/rooms/{r}/messages?dir=b&limit=50")).await.ok();
    let bodies: Vec<&str> = page["chunk"]
        .as_array()
        .expect("chunk")
        .iter()
        .filter_map(|e| e["content"]["body"].as_str())
        .collect();
    assert_eq!(bodies, vec!["after bob"], "{page}");
    bob.get(&format!("/_matrix/client/v3/rooms/{r}/event/{secret}"))
        .await
        .expect_err(404, "M_NOT_FOUND");
    let sync = bob.get("/_matrix/client/v3/sync").await.ok();
    assert!(!timeline_bodies(&sync, &r).contains(&"before bob".to_owned()), "{sync}");
    assert!(timeline_bodies(&sync, &r).contains(&"after bob".to_owned()), "{sync}");
    // Under the default `shared`, a newcomer sees earlier history.
    let r2 = room(&alice, json!({ "preset": "public_chat" })).await;
    send(&alice, &r2, "t3", "old news").await;
    bob.post(&format!("/_matrix/client/v3/join/{r2}"), json!({})).await.ok();
    let page =
        bob.get(&format!("/_matrix/client/v3/rooms/{r2}/messages?dir=b&limit=50")).await.ok();
    assert!(page.to_string().contains("old news"));
}

#[tokio::test]
async fn a_world_readable_room_can_be_read_without_joining() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let r = room(&alice, json!({ "preset": "public_chat" })).await;
    alice
        .put(
            &format!("/_matrix/client/v3/rooms/{r}/state/m.room.history_visibility/"),
            json!({ "history_visibility": "world_readable" }),
        )
        .await
        .ok();
    send(&alice, &r, "t", "open to all").await;
    let page = bob.get(&format!("/_matrix/client/v3/rooms/{r}/messages?dir=b&limit=10")).await.ok();
    assert!(page.to_string().contains("open to all"));
}

#[tokio::test]
async fn knocking_asks_to_join_and_the_knocker_sees_it_in_sync() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let r = room(&alice, json!({ "room_version": "11", "name": "Knock knock",
        "initial_state": [{ "type": "m.room.join_rules", "state_key": "", "content": { "join_rule": "knock" } }] })).await;
    bob.post(&format!("/_matrix/client/v3/knock/{r}"), json!({ "reason": "let me in" })).await.ok();
    let sync = bob.get("/_matrix/client/v3/sync").await.ok();
    let state = &sync["rooms"]["knock"][r.as_str()]["knock_state"]["events"];
    assert!(
        state.as_array().is_some_and(|a| a.iter().any(|e| e["type"] == "m.room.name")),
        "{sync}"
    );
    let member = alice
        .get(&format!("/_matrix/client/v3/rooms/{r}/state/m.room.member/@bob:localhost"))
        .await
        .ok();
    assert_eq!(member["membership"], "knock");
    assert_eq!(member["reason"], "let me in");
    alice
        .post(
            &format!("/_matrix/client/v3/rooms/{r}/invite"),
            json!({ "user_id": "@bob:localhost" }),
        )
        .await
        .ok();
    bob.post(&format!("/_matrix/client/v3/join/{r}"), json!({})).await.ok();
    // A public room refuses knocks (auth rules: join rule must be knock).
    let open = room(&alice, json!({ "preset": "public_chat" })).await;
    let (carol, _) = s.client().register("carol", "pw-carol-1").await;
    carol
        .post(&format!("/_matrix/client/v3/knock/{open}"), json!({}))
        .await
        .expect_err(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn timestamp_to_event_finds_the_nearest_event() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let r = room(&alice, json!({})).await;
    let first = send(&alice, &r, "a", "first").await;
    let ts = alice.get(&format!("/_matrix/client/v3/rooms/{r}/event/{first}")).await.ok()["origin_server_ts"].as_u64().expect("ts");
    let f = alice
        .get(&format!("/_matrix/client/v1/rooms/{r}/timestamp_to_event?ts={ts}&dir=f"))
        .await
        .ok();
    assert_eq!(f["origin_server_ts"].as_u64(), Some(ts));
    let b = alice
        .get(&format!(
            "/_matrix/client/v1/rooms/{r}/timestamp_to_event?ts={}&dir=b",
            ts + 3_600_000
        ))
        .await
        .ok();
    assert!(b["event_id"].is_string());
    alice
        .get(&format!("/_matrix/client/v1/rooms/{r}/timestamp_to_event?ts=1&dir=b"))
        .await
        .expect_err(404, "M_NOT_FOUND");
    alice
        .get(&format!("/_matrix/client/v1/rooms/{r}/timestamp_to_event?ts=1&dir=x"))
        .await
        .expect_err(400, "M_INVALID_PARAM");
}

#[tokio::test]
async fn rooms_created_in_parallel_get_distinct_ids() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    // Identical requests in one instant would give identical v12 create
    // events (and room IDs) unless the server keeps them apart.
    let mut handles = Vec::new();
    for _ in 0..32 {
        let a = alice.clone();
        handles
            .push(tokio::spawn(async move { room(&a, json!({ "preset": "public_chat" })).await }));
    }
    let mut ids = Vec::new();
    for h in handles {
        ids.push(h.await.expect("join"));
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 32, "{ids:?}");
    let joined = alice.get("/_matrix/client/v3/joined_rooms").await.ok();
    assert_eq!(joined["joined_rooms"].as_array().map(Vec::len), Some(32));
    let sync = alice.get("/_matrix/client/v3/sync").await.ok();
    assert_eq!(sync["rooms"]["join"].as_object().map(|o| o.len()), Some(32));
}

#[tokio::test]
async fn members_can_be_asked_as_of_a_token_and_by_membership() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let (carol, _) = s.client().register("carol", "pw-carol-1").await;
    let r = room(&alice, json!({ "preset": "public_chat" })).await;
    bob.post(&format!("/_matrix/client/v3/join/{r}"), json!({})).await.ok();
    let before = alice.get("/_matrix/client/v3/sync").await.ok()["next_batch"]
        .as_str()
        .expect("nb")
        .to_owned();
    carol.post(&format!("/_matrix/client/v3/join/{r}"), json!({})).await.ok();
    bob.post(&format!("/_matrix/client/v3/rooms/{r}/leave"), json!({})).await.ok();
    let ids = |v: &Value| -> Vec<String> {
        let mut ids: Vec<String> = v["chunk"]
            .as_array()
            .expect("chunk")
            .iter()
            .filter_map(|e| e["state_key"].as_str().map(str::to_owned))
            .collect();
        ids.sort();
        ids
    };
    let now =
        alice.get(&format!("/_matrix/client/v3/rooms/{r}/members?membership=join")).await.ok();
    assert_eq!(ids(&now), vec!["@alice:localhost", "@carol:localhost"]);
    let then = alice
        .get(&format!("/_matrix/client/v3/rooms/{r}/members?at={before}&membership=join"))
        .await
        .ok();
    assert_eq!(ids(&then), vec!["@alice:localhost", "@bob:localhost"]);
    let gone =
        alice.get(&format!("/_matrix/client/v3/rooms/{r}/members?not_membership=join")).await.ok();
    assert_eq!(ids(&gone), vec!["@bob:localhost"]);
    // Bob, having left, sees the member list as it was when he left (his own
    // leave included), not later changes.
    let (dave, _) = s.client().register("dave", "pw-dave-1").await;
    dave.post(&format!("/_matrix/client/v3/join/{r}"), json!({})).await.ok();
    let bobs = bob.get(&format!("/_matrix/client/v3/rooms/{r}/members?membership=join")).await.ok();
    assert_eq!(
        ids(&bobs),
        vec!["@alice:localhost", "@carol:localhost"],
        "dave joined after bob left"
    );
}

#[tokio::test]
async fn an_event_an_outsider_may_not_see_is_not_found_like_one_in_no_room() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (eve, _) = s.client().register("eve", "pw-eve-1").await;
    let r = room(&alice, json!({ "preset": "private_chat" })).await;
    let secret = send(&alice, &r, "t", "secret").await;
    let hidden = eve.get(&format!("/_matrix/client/v3/rooms/{r}/event/{secret}")).await;
    hidden.expect_err(404, "M_NOT_FOUND");
    // The same answer as for a room that does not exist: nothing says the
    // room is there.
    let nowhere =
        eve.get(&format!("/_matrix/client/v3/rooms/!nope:localhost/event/{secret}")).await;
    nowhere.expect_err(404, "M_NOT_FOUND");
    assert_eq!(hidden.body, nowhere.body);
    eve.get(&format!("/_matrix/client/v3/rooms/{r}/context/{secret}"))
        .await
        .expect_err(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn messages_give_an_end_token_for_every_page_except_at_the_rooms_start() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let r = room(&alice, json!({})).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(send(&alice, &r, &format!("t{i}"), &format!("m{i}")).await);
    }
    let messages = format!("/_matrix/client/v3/rooms/{r}/messages");
    // Jump to a hit, then read forwards to the newest event: the page still
    // says where to read on from.
    let ctx = alice.get(&format!("/_matrix/client/v3/rooms/{r}/context/{}?limit=2", ids[1])).await;
    let from = ctx.ok()["end"].as_str().expect("context end").to_owned();
    let page = alice.get(&format!("{messages}?dir=f&from={from}&limit=10")).await.ok();
    assert_eq!(page["chunk"].as_array().map(Vec::len), Some(1), "{page}");
    assert_eq!(page["chunk"][0]["content"]["body"], "m3");
    let end = page["end"].as_str().expect("a forward page at the newest event has an end");
    // Nothing newer yet: an empty page, and no end.
    let empty = alice.get(&format!("{messages}?dir=f&from={end}")).await.ok();
    assert_eq!(empty["chunk"], json!([]), "{empty}");
    assert_eq!(empty["start"], end);
    assert!(empty.get("end").is_none(), "{empty}");
    // The end token finds what arrives later.
    send(&alice, &r, "t4", "m4").await;
    let newer = alice.get(&format!("{messages}?dir=f&from={end}")).await.ok();
    assert_eq!(newer["chunk"][0]["content"]["body"], "m4", "{newer}");
    assert!(newer["end"].is_string(), "{newer}");
    // Backwards up to a `to` token: more lies beyond it.
    let older = alice.get(&format!("{messages}?dir=b&from={end}&to={from}")).await.ok();
    assert_eq!(older["chunk"][0]["content"]["body"], "m3", "{older}");
    assert!(older["end"].is_string(), "{older}");
    // Backwards through the room's start: nothing before it, ever.
    let all = alice.get(&format!("{messages}?dir=b&limit=100")).await.ok();
    assert_eq!(
        all["chunk"].as_array().and_then(|c| c.last()).map(|e| &e["type"]),
        Some(&json!("m.room.create"))
    );
    assert!(all.get("end").is_none(), "{all}");
}
