//! Relations: edits, threads, reactions, references; /relations and /threads.

use serde_json::{Value, json};

use crate::support::{Client, TestServer};

async fn setup(s: &TestServer) -> (Client, Client, String) {
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let r =
        alice.post("/_matrix/client/v3/createRoom", json!({ "preset": "public_chat" })).await.ok()
            ["room_id"]
            .as_str()
            .expect("room")
            .to_owned();
    bob.post(&format!("/_matrix/client/v3/join/{r}"), json!({})).await.ok();
    (alice, bob, r)
}

async fn send(c: &Client, room: &str, ty: &str, txn: &str, content: Value) -> String {
    c.put(&format!("/_matrix/client/v3/rooms/{room}/send/{ty}/{txn}"), content).await.ok()["event_id"]
        .as_str()
        .expect("event_id")
        .to_owned()
}

#[tokio::test]
async fn the_latest_valid_edit_is_bundled_and_edits_by_others_are_ignored() {
    let s = TestServer::start();
    let (alice, bob, r) = setup(&s).await;
    let orig = send(
        &alice,
        &r,
        "m.room.message",
        "o",
        json!({ "msgtype": "m.text", "body": "I like cake" }),
    )
    .await;
    let edit = |body: &str| {
        json!({ "msgtype": "m.text", "body": format!("* {body}"),
        "m.new_content": { "msgtype": "m.text", "body": body },
        "m.relates_to": { "rel_type": "m.replace", "event_id": orig } })
    };
    send(&alice, &r, "m.room.message", "e1", edit("I like pie")).await;
    let e2 = send(&alice, &r, "m.room.message", "e2", edit("I like chocolate cake")).await;
    send(&bob, &r, "m.room.message", "e3", edit("bob was here")).await;
    let got = bob.get(&format!("/_matrix/client/v3/rooms/{r}/event/{orig}")).await.ok();
    let bundled = &got["unsigned"]["m.relations"]["m.replace"];
    assert_eq!(bundled["event_id"], e2.as_str(), "{got}");
    assert_eq!(bundled["content"]["m.new_content"]["body"], "I like chocolate cake");
    assert_eq!(got["content"]["body"], "I like cake", "the original content is not replaced");
    // Also bundled in /messages and /sync.
    let page = bob.get(&format!("/_matrix/client/v3/rooms/{r}/messages?dir=b&limit=50")).await.ok();
    let served = page["chunk"]
        .as_array()
        .expect("chunk")
        .iter()
        .find(|e| e["event_id"] == orig.as_str())
        .expect("original");
    assert_eq!(served["unsigned"]["m.relations"]["m.replace"]["event_id"], e2.as_str());
    let sync = bob.get("/_matrix/client/v3/sync?filter=%7B%22room%22%3A%7B%22timeline%22%3A%7B%22limit%22%3A50%7D%7D%7D").await.ok();
    let tl = sync["rooms"]["join"][r.as_str()]["timeline"]["events"].as_array().expect("timeline");
    let in_sync = tl.iter().find(|e| e["event_id"] == orig.as_str()).expect("original in sync");
    assert_eq!(in_sync["unsigned"]["m.relations"]["m.replace"]["event_id"], e2.as_str());
}

#[tokio::test]
async fn threads_are_summarised_and_listed() {
    let s = TestServer::start();
    let (alice, bob, r) = setup(&s).await;
    let root = send(
        &alice,
        &r,
        "m.room.message",
        "root",
        json!({ "msgtype": "m.text", "body": "dinner plans?" }),
    )
    .await;
    let reply = |body: &str| json!({ "msgtype": "m.text", "body": body, "m.relates_to": { "rel_type": "m.thread", "event_id": root } });
    send(&bob, &r, "m.room.message", "t1", reply("pizza")).await;
    let last = send(&bob, &r, "m.room.message", "t2", reply("or pasta")).await;
    let other_root = send(
        &bob,
        &r,
        "m.room.message",
        "root2",
        json!({ "msgtype": "m.text", "body": "weekend?" }),
    )
    .await;
    send(&bob, &r, "m.room.message", "t3", json!({ "msgtype": "m.text", "body": "hike", "m.relates_to": { "rel_type": "m.thread", "event_id": other_root } })).await;
    let got = alice.get(&format!("/_matrix/client/v3/rooms/{r}/event/{root}")).await.ok();
    let t = &got["unsigned"]["m.relations"]["m.thread"];
    assert_eq!(t["count"], 2, "{got}");
    assert_eq!(t["latest_event"]["event_id"], last.as_str());
    assert_eq!(t["current_user_participated"], true, "alice wrote the root");
    let threads = alice.get(&format!("/_matrix/client/v1/rooms/{r}/threads")).await.ok();
    let ids: Vec<&str> = threads["chunk"]
        .as_array()
        .expect("chunk")
        .iter()
        .filter_map(|e| e["event_id"].as_str())
        .collect();
    assert_eq!(ids, vec![other_root.as_str(), root.as_str()], "newest activity first");
    let mine =
        alice.get(&format!("/_matrix/client/v1/rooms/{r}/threads?include=participated")).await.ok();
    assert_eq!(mine["chunk"].as_array().map(Vec::len), Some(1));
    let page = alice.get(&format!("/_matrix/client/v1/rooms/{r}/threads?limit=1")).await.ok();
    let nb = page["next_batch"].as_str().expect("next_batch");
    let rest =
        alice.get(&format!("/_matrix/client/v1/rooms/{r}/threads?limit=1&from={nb}")).await.ok();
    assert_eq!(rest["chunk"][0]["event_id"], root.as_str());
}

#[tokio::test]
async fn relations_are_listed_filtered_and_forget_redacted_children() {
    let s = TestServer::start();
    let (alice, bob, r) = setup(&s).await;
    let msg =
        send(&alice, &r, "m.room.message", "m", json!({ "msgtype": "m.text", "body": "vote" }))
            .await;
    let react = |key: &str| json!({ "m.relates_to": { "rel_type": "m.annotation", "event_id": msg, "key": key } });
    let thumbs = send(&bob, &r, "m.reaction", "r1", react("👍")).await;
    send(&alice, &r, "m.reaction", "r2", react("🎉")).await;
    send(&bob, &r, "m.room.message", "ref", json!({ "body": "see above", "m.relates_to": { "rel_type": "m.reference", "event_id": msg } })).await;
    let all = alice.get(&format!("/_matrix/client/v1/rooms/{r}/relations/{msg}")).await.ok();
    assert_eq!(all["chunk"].as_array().map(Vec::len), Some(3));
    let reactions = alice
        .get(&format!("/_matrix/client/v1/rooms/{r}/relations/{msg}/m.annotation/m.reaction"))
        .await
        .ok();
    assert_eq!(reactions["chunk"].as_array().map(Vec::len), Some(2));
    let page = alice
        .get(&format!("/_matrix/client/v1/rooms/{r}/relations/{msg}/m.annotation?limit=1"))
        .await
        .ok();
    assert_eq!(page["chunk"].as_array().map(Vec::len), Some(1));
    let nb = page["next_batch"].as_str().expect("next_batch");
    let next = alice
        .get(&format!(
            "/_matrix/client/v1/rooms/{r}/relations/{msg}/m.annotation?limit=1&from={nb}"
        ))
        .await
        .ok();
    assert_ne!(next["chunk"][0]["event_id"], page["chunk"][0]["event_id"]);
    let got = alice.get(&format!("/_matrix/client/v3/rooms/{r}/event/{msg}")).await.ok();
    assert_eq!(
        got["unsigned"]["m.relations"]["m.reference"]["chunk"].as_array().map(Vec::len),
        Some(1)
    );
    bob.put(&format!("/_matrix/client/v3/rooms/{r}/redact/{thumbs}/x"), json!({})).await.ok();
    let reactions =
        alice.get(&format!("/_matrix/client/v1/rooms/{r}/relations/{msg}/m.annotation")).await.ok();
    assert_eq!(reactions["chunk"].as_array().map(Vec::len), Some(1), "{reactions}");
    alice
        .get(&format!("/_matrix/client/v1/rooms/{r}/relations/$missing"))
        .await
        .expect_err(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn a_space_hierarchy_lists_visible_children_breadth_first() {
    let s = TestServer::start();
    let (alice, bob, _) = setup(&s).await;
    let mk = |body: Value| {
        let alice = alice.clone();
        async move {
            alice.post("/_matrix/client/v3/createRoom", body).await.ok()["room_id"]
                .as_str()
                .expect("room")
                .to_owned()
        }
    };
    let space = mk(json!({ "name": "Family", "preset": "public_chat", "creation_content": { "type": "m.space" } })).await;
    let kitchen = mk(json!({ "name": "Kitchen", "preset": "public_chat" })).await;
    let secret = mk(json!({ "name": "Secret", "preset": "private_chat" })).await;
    let sub = mk(json!({ "name": "Sub", "preset": "public_chat", "creation_content": { "type": "m.space" } })).await;
    let deep = mk(json!({ "name": "Deep", "preset": "public_chat" })).await;
    let link = |parent: &str, child: &str, suggested: bool| {
        let alice = alice.clone();
        let path = format!("/_matrix/client/v3/rooms/{parent}/state/m.space.child/{child}");
        async move {
            alice.put(&path, json!({ "via": ["localhost"], "suggested": suggested })).await.ok()
        }
    };
    link(&space, &kitchen, true).await;
    link(&space, &secret, false).await;
    link(&space, &sub, false).await;
    link(&sub, &deep, false).await;
    let h = bob.get(&format!("/_matrix/client/v1/rooms/{space}/hierarchy")).await.ok();
    let ids: Vec<&str> = h["rooms"]
        .as_array()
        .expect("rooms")
        .iter()
        .filter_map(|r| r["room_id"].as_str())
        .collect();
    assert_eq!(ids[0], space.as_str());
    assert!(
        ids.contains(&kitchen.as_str())
            && ids.contains(&sub.as_str())
            && ids.contains(&deep.as_str()),
        "{h}"
    );
    assert!(!ids.contains(&secret.as_str()), "bob cannot see the private room");
    assert_eq!(h["rooms"][0]["room_type"], "m.space");
    assert_eq!(h["rooms"][0]["children_state"].as_array().map(Vec::len), Some(3));
    let shallow =
        bob.get(&format!("/_matrix/client/v1/rooms/{space}/hierarchy?max_depth=1")).await.ok();
    let shallow_ids: Vec<&str> = shallow["rooms"]
        .as_array()
        .expect("rooms")
        .iter()
        .filter_map(|r| r["room_id"].as_str())
        .collect();
    assert!(!shallow_ids.contains(&deep.as_str()), "max_depth=1 stops before Deep: {shallow}");
    assert!(shallow_ids.contains(&sub.as_str()));
    let suggested = bob
        .get(&format!("/_matrix/client/v1/rooms/{space}/hierarchy?suggested_only=true"))
        .await
        .ok();
    assert_eq!(suggested["rooms"].as_array().map(Vec::len), Some(2), "{suggested}");
    let page = bob.get(&format!("/_matrix/client/v1/rooms/{space}/hierarchy?limit=2")).await.ok();
    let nb = page["next_batch"].as_str().expect("next_batch");
    let rest = bob
        .get(&format!("/_matrix/client/v1/rooms/{space}/hierarchy?limit=2&from={nb}"))
        .await
        .ok();
    assert_eq!(rest["rooms"].as_array().map(Vec::len), Some(2));
    bob.get(&format!("/_matrix/client/v1/rooms/{secret}/hierarchy"))
        .await
        .expect_err(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn upgrading_a_room_moves_state_and_aliases_and_tombstones_the_old_one() {
    let s = TestServer::start();
    let (alice, bob, _) = setup(&s).await;
    let old = alice
        .post("/_matrix/client/v3/createRoom", json!({ "preset": "public_chat", "name": "Den", "topic": "cosy", "room_alias_name": "den", "room_version": "11" }))
        .await
        .ok()["room_id"]
        .as_str()
        .expect("room")
        .to_owned();
    bob.post(&format!("/_matrix/client/v3/join/{old}"), json!({})).await.ok();
    bob.post(&format!("/_matrix/client/v3/rooms/{old}/upgrade"), json!({ "new_version": "12" }))
        .await
        .expect_err(403, "M_FORBIDDEN");
    alice
        .post(&format!("/_matrix/client/v3/rooms/{old}/upgrade"), json!({ "new_version": "99" }))
        .await
        .expect_err(400, "M_UNSUPPORTED_ROOM_VERSION");
    let new = alice
        .post(&format!("/_matrix/client/v3/rooms/{old}/upgrade"), json!({ "new_version": "12" }))
        .await
        .ok()["replacement_room"]
        .as_str()
        .expect("replacement")
        .to_owned();
    let create =
        alice.get(&format!("/_matrix/client/v3/rooms/{new}/state/m.room.create/")).await.ok();
    assert_eq!(create["predecessor"]["room_id"], old.as_str());
    assert_eq!(create["room_version"], "12");
    assert_eq!(
        alice.get(&format!("/_matrix/client/v3/rooms/{new}/state/m.room.name/")).await.ok()["name"],
        "Den"
    );
    assert_eq!(
        alice.get(&format!("/_matrix/client/v3/rooms/{new}/state/m.room.topic/")).await.ok()["topic"],
        "cosy"
    );
    let alias = s.client().get("/_matrix/client/v3/directory/room/%23den:localhost").await.ok();
    assert_eq!(alias["room_id"], new.as_str());
    let tomb =
        bob.get(&format!("/_matrix/client/v3/rooms/{old}/state/m.room.tombstone/")).await.ok();
    assert_eq!(tomb["replacement_room"], new.as_str());
    // The old room is quiet now: bob (power 0) can no longer talk there.
    bob.put(
        &format!("/_matrix/client/v3/rooms/{old}/send/m.room.message/late"),
        json!({ "body": "hello?" }),
    )
    .await
    .expect_err(403, "M_FORBIDDEN");
    bob.post(&format!("/_matrix/client/v3/join/{new}"), json!({})).await.ok();
}
