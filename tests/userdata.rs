//! Account data, tags, typing, receipts, read markers, profiles, presence.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Client, TestServer, room};

async fn sync(c: &Client, since: Option<&str>) -> Value {
    match since {
        Some(s) => c.get(&format!("/_matrix/client/v3/sync?since={s}")).await.ok(),
        None => c.get("/_matrix/client/v3/sync").await.ok(),
    }
}

fn next(v: &Value) -> String {
    v["next_batch"].as_str().expect("next_batch").to_owned()
}

#[tokio::test]
async fn account_data_round_trips_and_reaches_sync() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let r = room(&alice, json!({})).await;
    alice
        .get("/_matrix/client/v3/user/@alice:localhost/account_data/m.direct")
        .await
        .expect_err(404, "M_NOT_FOUND");
    let since = next(&sync(&alice, None).await);
    alice
        .put(
            "/_matrix/client/v3/user/@alice:localhost/account_data/m.direct",
            json!({ "@bob:localhost": [r] }),
        )
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
    let got =
        alice.get("/_matrix/client/v3/user/@alice:localhost/account_data/m.direct").await.ok();
    assert_eq!(got["@bob:localhost"][0], r.as_str());
    let out = sync(&alice, Some(&since)).await;
    let global = out["account_data"]["events"].as_array().expect("events");
    assert!(global.iter().any(|e| e["type"] == "m.direct"), "{out}");
    let per_room = &out["rooms"]["join"][r.as_str()]["account_data"]["events"];
    assert!(
        per_room.as_array().is_some_and(|a| a.iter().any(|e| e["type"] == "org.example.x")),
        "{out}"
    );
    // Other users' data is off limits.
    bob.get("/_matrix/client/v3/user/@alice:localhost/account_data/m.direct")
        .await
        .expect_err(403, "M_FORBIDDEN");
    bob.put("/_matrix/client/v3/user/@alice:localhost/account_data/m.direct", json!({}))
        .await
        .expect_err(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn tags_are_added_listed_and_removed() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let r = room(&alice, json!({})).await;
    let base = format!("/_matrix/client/v3/user/@alice:localhost/rooms/{r}/tags");
    alice.put(&format!("{base}/m.favourite"), json!({ "order": 0.5 })).await.ok();
    alice.put(&format!("{base}/u.work"), json!({})).await.ok();
    let tags = alice.get(&base).await.ok();
    assert_eq!(tags["tags"]["m.favourite"]["order"], 0.5);
    assert!(tags["tags"]["u.work"].is_object());
    alice.delete(&format!("{base}/u.work"), json!({})).await.ok();
    let tags = alice.get(&base).await.ok();
    assert!(tags["tags"].get("u.work").is_none(), "{tags}");
    alice.put(&format!("{base}/x"), json!({ "order": "high" })).await.expect_err(400, "M_BAD_JSON");
}

#[tokio::test]
async fn typing_shows_in_the_other_members_sync_and_stops() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let r = room(&alice, json!({ "preset": "public_chat" })).await;
    bob.post(&format!("/_matrix/client/v3/join/{r}"), json!({})).await.ok();
    let since = next(&sync(&bob, None).await);
    alice
        .put(
            &format!("/_matrix/client/v3/rooms/{r}/typing/@alice:localhost"),
            json!({ "typing": true, "timeout": 20000 }),
        )
        .await
        .ok();
    let out = sync(&bob, Some(&since)).await;
    let eph = &out["rooms"]["join"][r.as_str()]["ephemeral"]["events"];
    let typing = eph
        .as_array()
        .and_then(|a| a.iter().find(|e| e["type"] == "m.typing"))
        .expect("typing event");
    assert_eq!(typing["content"]["user_ids"], json!(["@alice:localhost"]));
    let since = next(&out);
    alice
        .put(
            &format!("/_matrix/client/v3/rooms/{r}/typing/@alice:localhost"),
            json!({ "typing": false }),
        )
        .await
        .ok();
    let out = sync(&bob, Some(&since)).await;
    let eph = &out["rooms"]["join"][r.as_str()]["ephemeral"]["events"];
    let typing = eph
        .as_array()
        .and_then(|a| a.iter().find(|e| e["type"] == "m.typing"))
        .expect("typing event");
    assert_eq!(typing["content"]["user_ids"], json!([]));
    // Typing for someone else is refused.
    bob.put(
        &format!("/_matrix/client/v3/rooms/{r}/typing/@alice:localhost"),
        json!({ "typing": true }),
    )
    .await
    .expect_err(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn read_receipts_reach_members_and_private_ones_stay_private() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let r = room(&alice, json!({ "preset": "public_chat" })).await;
    bob.post(&format!("/_matrix/client/v3/join/{r}"), json!({})).await.ok();
    let ev = alice
        .put(
            &format!("/_matrix/client/v3/rooms/{r}/send/m.room.message/t1"),
            json!({ "msgtype": "m.text", "body": "hi" }),
        )
        .await
        .ok()["event_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let since = next(&sync(&alice, None).await);
    bob.post(&format!("/_matrix/client/v3/rooms/{r}/receipt/m.read/{ev}"), json!({})).await.ok();
    let out = sync(&alice, Some(&since)).await;
    let eph = &out["rooms"]["join"][r.as_str()]["ephemeral"]["events"];
    let receipt =
        eph.as_array().and_then(|a| a.iter().find(|e| e["type"] == "m.receipt")).expect("receipt");
    assert!(
        receipt["content"][ev.as_str()]["m.read"]["@bob:localhost"]["ts"].is_u64(),
        "{receipt}"
    );
    let since = next(&out);
    bob.post(
        &format!("/_matrix/client/v3/rooms/{r}/read_markers"),
        json!({ "m.fully_read": ev, "m.read.private": ev }),
    )
    .await
    .ok();
    let out = sync(&alice, Some(&since)).await;
    let leaked = out["rooms"]["join"][r.as_str()]["ephemeral"]["events"]
        .as_array()
        .is_some_and(|a| a.iter().any(|e| e.to_string().contains("m.read.private")));
    assert!(!leaked, "private receipts must not reach others: {out}");
    let marker = bob
        .get(&format!("/_matrix/client/v3/user/@bob:localhost/rooms/{r}/account_data/m.fully_read"))
        .await
        .ok();
    assert_eq!(marker["event_id"], ev.as_str());
    bob.post(&format!("/_matrix/client/v3/rooms/{r}/receipt/m.read/$nope"), json!({}))
        .await
        .expect_err(404, "M_NOT_FOUND");
    bob.post(&format!("/_matrix/client/v3/rooms/{r}/receipt/m.bogus/{ev}"), json!({}))
        .await
        .expect_err(400, "M_INVALID_PARAM");
}

#[tokio::test]
async fn a_profile_change_updates_the_member_event_in_joined_rooms() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let r = room(&alice, json!({})).await;
    alice
        .put(
            "/_matrix/client/v3/profile/@alice:localhost/displayname",
            json!({ "displayname": "Alice A." }),
        )
        .await
        .ok();
    let p = s.client().get("/_matrix/client/v3/profile/@alice:localhost").await.ok();
    assert_eq!(p["displayname"], "Alice A.");
    let name = s.client().get("/_matrix/client/v3/profile/@alice:localhost/displayname").await.ok();
    assert_eq!(name["displayname"], "Alice A.");
    let member = alice
        .get(&format!("/_matrix/client/v3/rooms/{r}/state/m.room.member/@alice:localhost"))
        .await
        .ok();
    assert_eq!(member["displayname"], "Alice A.");
    assert_eq!(member["membership"], "join");
    s.client()
        .get("/_matrix/client/v3/profile/@ghost:localhost")
        .await
        .expect_err(404, "M_NOT_FOUND");
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    bob.put(
        "/_matrix/client/v3/profile/@alice:localhost/displayname",
        json!({ "displayname": "x" }),
    )
    .await
    .expect_err(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn presence_is_set_and_read() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let p = alice.get("/_matrix/client/v3/presence/@alice:localhost/status").await.ok();
    assert_eq!(p["presence"], "offline");
    alice
        .put(
            "/_matrix/client/v3/presence/@alice:localhost/status",
            json!({ "presence": "online", "status_msg": "cooking" }),
        )
        .await
        .ok();
    let p = alice.get("/_matrix/client/v3/presence/@alice:localhost/status").await.ok();
    assert_eq!(p["presence"], "online");
    assert_eq!(p["status_msg"], "cooking");
    alice
        .put("/_matrix/client/v3/presence/@alice:localhost/status", json!({ "presence": "asleep" }))
        .await
        .expect_err(400, "M_INVALID_PARAM");
    let _ = Duration::ZERO;
}

#[tokio::test]
async fn a_receipt_for_an_older_event_does_not_move_the_read_position_back() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let r = room(&alice, json!({ "preset": "public_chat" })).await;
    bob.post(&format!("/_matrix/client/v3/join/{r}"), json!({})).await.ok();
    let older = crate::support::send(&alice, &r, "t1", "one").await;
    let newer = crate::support::send(&alice, &r, "t2", "two").await;
    let receipt = |ty: &str, ev: &str| format!("/_matrix/client/v3/rooms/{r}/receipt/{ty}/{ev}");
    bob.post(&receipt("m.read", &newer), json!({})).await.ok();
    bob.post(&receipt("m.read", &older), json!({})).await.ok();
    // Another thread has a receipt of its own.
    bob.post(&receipt("m.read", &older), json!({ "thread_id": "main" })).await.ok();
    bob.post(
        &format!("/_matrix/client/v3/rooms/{r}/read_markers"),
        json!({ "m.fully_read": newer }),
    )
    .await
    .ok();
    bob.post(
        &format!("/_matrix/client/v3/rooms/{r}/read_markers"),
        json!({ "m.fully_read": older }),
    )
    .await
    .ok();
    let out = sync(&alice, None).await;
    let eph = &out["rooms"]["join"][r.as_str()]["ephemeral"]["events"];
    let content =
        &eph.as_array().and_then(|a| a.iter().find(|e| e["type"] == "m.receipt")).expect("receipt")
            ["content"];
    let bob_read = |ev: &str| content[ev]["m.read"]["@bob:localhost"].clone();
    assert!(bob_read(&newer)["ts"].is_u64(), "{content}");
    assert!(bob_read(&newer).get("thread_id").is_none(), "{content}");
    assert_eq!(bob_read(&older)["thread_id"], "main", "{content}");
    let marker = bob
        .get(&format!("/_matrix/client/v3/user/@bob:localhost/rooms/{r}/account_data/m.fully_read"))
        .await
        .ok();
    assert_eq!(marker["event_id"], newer.as_str());
}

#[tokio::test]
async fn server_managed_account_data_types_are_refused_with_405() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let r = room(&alice, json!({})).await;
    for ty in ["m.fully_read", "m.push_rules"] {
        alice
            .put(&format!("/_matrix/client/v3/user/@alice:localhost/account_data/{ty}"), json!({}))
            .await
            .expect_err(405, "M_BAD_JSON");
        alice
            .put(
                &format!("/_matrix/client/v3/user/@alice:localhost/rooms/{r}/account_data/{ty}"),
                json!({ "event_id": "$x" }),
            )
            .await
            .expect_err(405, "M_BAD_JSON");
    }
}
