//! Push rules API, evaluation into unread counts, notifications, pushers.

use serde_json::{Value, json};

use crate::support::{Client, TestServer};

async fn room_with(alice: &Client, bob: &Client) -> String {
    let r =
        alice.post("/_matrix/client/v3/createRoom", json!({ "preset": "public_chat" })).await.ok()
            ["room_id"]
            .as_str()
            .expect("room")
            .to_owned();
    bob.post(&format!("/_matrix/client/v3/join/{r}"), json!({})).await.ok();
    r
}

async fn send(c: &Client, room: &str, txn: &str, content: Value) -> String {
    c.put(&format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}"), content).await.ok()
        ["event_id"]
        .as_str()
        .expect("event_id")
        .to_owned()
}

#[tokio::test]
async fn default_rules_are_served_and_reach_sync() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let rules = alice.get("/_matrix/client/v3/pushrules/").await.ok();
    let overrides = rules["global"]["override"].as_array().expect("override");
    assert_eq!(overrides[0]["rule_id"], ".m.rule.master");
    assert!(
        rules["global"]["underride"]
            .as_array()
            .is_some_and(|u| u.iter().any(|r| r["rule_id"] == ".m.rule.message"))
    );
    let global = alice.get("/_matrix/client/v3/pushrules/global/").await.ok();
    assert!(global["override"].is_array());
    let sync = alice.get("/_matrix/client/v3/sync").await.ok();
    let pr = sync["account_data"]["events"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["type"] == "m.push_rules"))
        .expect("m.push_rules");
    assert!(pr["content"]["global"]["override"].is_array());
}

#[tokio::test]
async fn rules_can_be_added_ordered_toggled_and_deleted() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let base = "/_matrix/client/v3/pushrules/global";
    alice
        .put(&format!("{base}/content/cake"), json!({ "pattern": "cake", "actions": ["notify"] }))
        .await
        .ok();
    alice
        .put(
            &format!("{base}/content/pie?before=cake"),
            json!({ "pattern": "pie", "actions": ["notify"] }),
        )
        .await
        .ok();
    let content =
        alice.get("/_matrix/client/v3/pushrules/").await.ok()["global"]["content"].clone();
    let ids: Vec<&str> =
        content.as_array().expect("content").iter().filter_map(|r| r["rule_id"].as_str()).collect();
    assert_eq!(&ids[..2], &["pie", "cake"]);
    alice.put(&format!("{base}/content/cake/enabled"), json!({ "enabled": false })).await.ok();
    assert_eq!(alice.get(&format!("{base}/content/cake/enabled")).await.ok()["enabled"], false);
    alice
        .put(&format!("{base}/override/.m.rule.master/enabled"), json!({ "enabled": true }))
        .await
        .ok();
    alice
        .put(&format!("{base}/underride/.m.rule.message/actions"), json!({ "actions": [] }))
        .await
        .ok();
    assert_eq!(
        alice.get(&format!("{base}/underride/.m.rule.message/actions")).await.ok()["actions"],
        json!([])
    );
    alice.delete(&format!("{base}/content/cake"), json!({})).await.ok();
    alice.get(&format!("{base}/content/cake")).await.expect_err(404, "M_NOT_FOUND");
    alice
        .delete(&format!("{base}/override/.m.rule.master"), json!({}))
        .await
        .expect_err(400, "M_INVALID_PARAM");
    alice
        .put(&format!("{base}/bogus/x"), json!({ "actions": [] }))
        .await
        .expect_err(400, "M_INVALID_PARAM");
    alice
        .put(&format!("{base}/content/nopattern"), json!({ "actions": ["notify"] }))
        .await
        .expect_err(400, "M_BAD_JSON");
}

#[tokio::test]
async fn messages_raise_unread_counts_mentions_highlight_and_receipts_reset_them() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let r = room_with(&alice, &bob).await;
    send(&alice, &r, "t1", json!({ "msgtype": "m.text", "body": "hello" })).await;
    let last = send(&alice, &r, "t2", json!({ "msgtype": "m.text", "body": "hey bob", "m.mentions": { "user_ids": ["@bob:localhost"] } })).await;
    let sync = bob.get("/_matrix/client/v3/sync").await.ok();
    let unread = &sync["rooms"]["join"][r.as_str()]["unread_notifications"];
    assert_eq!(unread["notification_count"], 2, "{sync}");
    assert_eq!(unread["highlight_count"], 1, "{sync}");
    // The sender's own messages never count for them.
    let mine = alice.get("/_matrix/client/v3/sync").await.ok();
    assert_eq!(mine["rooms"]["join"][r.as_str()]["unread_notifications"]["notification_count"], 0);
    let since = sync["next_batch"].as_str().expect("nb").to_owned();
    bob.post(&format!("/_matrix/client/v3/rooms/{r}/receipt/m.read/{last}"), json!({})).await.ok();
    let after = bob.get(&format!("/_matrix/client/v3/sync?since={since}")).await.ok();
    assert_eq!(
        after["rooms"]["join"][r.as_str()]["unread_notifications"]["notification_count"],
        0,
        "{after}"
    );
    let notes = bob.get("/_matrix/client/v3/notifications").await.ok();
    let list = notes["notifications"].as_array().expect("list");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["event"]["event_id"], last.as_str(), "newest first");
    assert_eq!(list[0]["read"], true);
    let only = bob.get("/_matrix/client/v3/notifications?only=highlight").await.ok();
    assert_eq!(only["notifications"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_muting_rule_stops_notifications() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let r = room_with(&alice, &bob).await;
    bob.put(&format!("/_matrix/client/v3/pushrules/global/room/{r}"), json!({ "actions": [] }))
        .await
        .ok();
    send(&alice, &r, "t1", json!({ "msgtype": "m.text", "body": "shh" })).await;
    let sync = bob.get("/_matrix/client/v3/sync").await.ok();
    assert_eq!(
        sync["rooms"]["join"][r.as_str()]["unread_notifications"]["notification_count"],
        0,
        "{sync}"
    );
}

#[tokio::test]
async fn pushers_are_set_listed_moved_and_deleted() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let pusher = json!({ "kind": "http", "app_id": "org.example.app", "pushkey": "KEY",
        "app_display_name": "App", "device_display_name": "Phone", "lang": "en",
        "data": { "url": "http://127.0.0.1:9/_matrix/push/v1/notify" } });
    alice.post("/_matrix/client/v3/pushers/set", pusher.clone()).await.ok();
    let list = alice.get("/_matrix/client/v3/pushers").await.ok();
    assert_eq!(list["pushers"][0]["pushkey"], "KEY");
    // The same pushkey set by another user moves unless `append`.
    bob.post("/_matrix/client/v3/pushers/set", pusher.clone()).await.ok();
    assert_eq!(alice.get("/_matrix/client/v3/pushers").await.ok()["pushers"], json!([]));
    let mut bad = pusher.clone();
    bad["data"]["url"] = json!("http://127.0.0.1:9/elsewhere");
    bob.post("/_matrix/client/v3/pushers/set", bad).await.expect_err(400, "M_INVALID_PARAM");
    let mut del = pusher.clone();
    del["kind"] = json!(null);
    bob.post("/_matrix/client/v3/pushers/set", del).await.ok();
    assert_eq!(bob.get("/_matrix/client/v3/pushers").await.ok()["pushers"], json!([]));
}

/// A push gateway on loopback: answers the first request with 500, then
/// 200, rejecting the pushkey "BAD"; records what it received.
async fn fake_gateway() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    use std::sync::{Arc, Mutex};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let log = log.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let log = log.clone();
                        async move {
                            use http_body_util::BodyExt;
                            let body = req.into_body().collect().await.expect("body").to_bytes();
                            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                            let n = {
                                let mut l = log.lock().expect("lock");
                                l.push(v.clone());
                                l.len()
                            };
                            let (status, reply) = if n == 1 {
                                (500, json!({}))
                            } else {
                                let keys: Vec<Value> = v["notification"]["devices"]
                                    .as_array()
                                    .map(|d| {
                                        d.iter()
                                            .filter(|x| x["pushkey"] == "BAD")
                                            .map(|x| x["pushkey"].clone())
                                            .collect()
                                    })
                                    .unwrap_or_default();
                                (200, json!({ "rejected": keys }))
                            };
                            let mut r = hyper::Response::new(http_body_util::Full::new(
                                bytes::Bytes::from(reply.to_string()),
                            ));
                            *r.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
                            Ok::<_, std::convert::Infallible>(r)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (format!("http://{addr}/_matrix/push/v1/notify"), seen)
}

#[tokio::test]
async fn notifications_reach_the_push_gateway_with_retry_and_rejected_keys_are_dropped() {
    let (url, seen) = fake_gateway().await;
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let r = room_with(&alice, &bob).await;
    for key in ["GOOD", "BAD"] {
        bob.post("/_matrix/client/v3/pushers/set", json!({ "kind": "http", "app_id": "org.example.app", "pushkey": key,
            "app_display_name": "App", "device_display_name": "Phone", "lang": "en", "append": true,
            "data": { "url": url, "format": if key == "BAD" { "event_id_only" } else { "full" } } }))
            .await
            .ok();
    }
    let ev = send(&alice, &r, "t1", json!({ "msgtype": "m.text", "body": "wake up" })).await;
    // Await the deliveries (one failed first try, then one per pusher).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let n = seen.lock().expect("lock").len();
        let pushers = bob.get("/_matrix/client/v3/pushers").await.ok()["pushers"]
            .as_array()
            .map(Vec::len)
            .unwrap_or(0);
        if n >= 3 && pushers == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "deliveries: {n}, pushers left: {pushers}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let got = seen.lock().expect("lock").clone();
    let full = got
        .iter()
        .find(|v| v["notification"]["devices"][0]["pushkey"] == "GOOD")
        .expect("GOOD delivered");
    let n = &full["notification"];
    assert_eq!(n["event_id"], ev.as_str());
    assert_eq!(n["room_id"], r.as_str());
    assert_eq!(n["sender"], "@alice:localhost");
    assert_eq!(n["content"]["body"], "wake up");
    assert_eq!(n["counts"]["unread"], 1);
    assert_eq!(n["devices"][0]["app_id"], "org.example.app");
    assert!(n["devices"][0]["data"].get("url").is_none(), "the URL is not sent to the gateway");
    let bare = got
        .iter()
        .find(|v| v["notification"]["devices"][0]["pushkey"] == "BAD")
        .expect("BAD delivered");
    assert!(bare["notification"].get("content").is_none(), "event_id_only carries no content");
    let left = bob.get("/_matrix/client/v3/pushers").await.ok();
    assert_eq!(left["pushers"][0]["pushkey"], "GOOD", "the rejected pushkey was removed");
}
