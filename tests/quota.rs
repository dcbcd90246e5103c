//! Per-user storage caps (`hearth::quota`): an item over its size is
//! `M_TOO_LARGE` (413), a full store `M_LIMIT_EXCEEDED` under 400, and
//! what was stored before stays usable.

use hearth::quota;
use serde_json::{Value, json};

use crate::support::{Client, TestServer, room};

const ALICE: &str = "/_matrix/client/v3/user/@alice:localhost";

async fn alice(s: &TestServer) -> (Client, Value) {
    s.client().register("alice", "pw-alice-1").await
}

#[tokio::test]
async fn filters_are_capped_in_size_and_count_and_a_repeated_filter_reuses_its_id() {
    let s = TestServer::start();
    let (alice, _) = alice(&s).await;
    let big = json!({ "event_fields": ["x".repeat(quota::FILTER_BYTES)] });
    alice.post(&format!("{ALICE}/filter"), big).await.expect_err(413, "M_TOO_LARGE");

    let same = json!({ "room": { "timeline": { "limit": 10 } } });
    let first = alice.post(&format!("{ALICE}/filter"), same.clone()).await.ok();
    let again = alice.post(&format!("{ALICE}/filter"), same).await.ok();
    assert_eq!(first["filter_id"], again["filter_id"], "clients upload the same filter at start");
    for i in 1..quota::MAX_FILTERS {
        alice
            .post(&format!("{ALICE}/filter"), json!({ "presence": { "types": [format!("t{i}")] } }))
            .await
            .ok();
    }
    let full = alice
        .post(&format!("{ALICE}/filter"), json!({ "presence": { "types": ["one_more"] } }))
        .await;
    full.expect_err(400, "M_LIMIT_EXCEEDED");
    assert!(full.body["error"].as_str().is_some_and(|e| e.contains("100")), "{}", full.body);
    // Stored filters keep working, and re-uploading one still answers.
    let id = first["filter_id"].as_str().expect("filter_id");
    alice.get(&format!("/_matrix/client/v3/sync?filter={id}&timeout=0")).await.ok();
    let again = alice
        .post(&format!("{ALICE}/filter"), json!({ "room": { "timeline": { "limit": 10 } } }))
        .await
        .ok();
    assert_eq!(again["filter_id"], first["filter_id"]);
}

#[tokio::test]
async fn account_data_is_capped_in_size_and_in_types() {
    let s = TestServer::start();
    let (alice, _) = alice(&s).await;
    let r = room(&alice, json!({})).await;
    let big = json!({ "v": "x".repeat(quota::ACCOUNT_DATA_BYTES) });
    alice
        .put(&format!("{ALICE}/account_data/org.example.big"), big.clone())
        .await
        .expect_err(413, "M_TOO_LARGE");
    alice
        .put(&format!("{ALICE}/rooms/{r}/account_data/org.example.big"), big)
        .await
        .expect_err(413, "M_TOO_LARGE");
    let tag = json!({ "order": 0.5, "x": "y".repeat(quota::ACCOUNT_DATA_BYTES) });
    alice.put(&format!("{ALICE}/rooms/{r}/tags/u.big"), tag).await.expect_err(413, "M_TOO_LARGE");

    // Registration may have stored some types already: fill up to the cap.
    for i in 0.. {
        let r =
            alice.put(&format!("{ALICE}/account_data/org.example.t{i}"), json!({ "i": i })).await;
        if r.status != 200 {
            r.expect_err(400, "M_LIMIT_EXCEEDED");
            assert!(i + 10 > quota::MAX_GLOBAL_ACCOUNT_DATA, "capped early, at {i}");
            break;
        }
        assert!(i < quota::MAX_GLOBAL_ACCOUNT_DATA, "never capped");
    }

    // Replacing a stored type is not growth.
    alice.put(&format!("{ALICE}/account_data/org.example.t0"), json!({ "i": "new" })).await.ok();
    let got = alice.get(&format!("{ALICE}/account_data/org.example.t0")).await.ok();
    assert_eq!(got["i"], "new");

    for i in 0.. {
        let r =
            alice.put(&format!("{ALICE}/rooms/{r}/account_data/org.example.r{i}"), json!({})).await;
        if r.status != 200 {
            r.expect_err(400, "M_LIMIT_EXCEEDED");
            break;
        }
        assert!(i < quota::MAX_ROOM_ACCOUNT_DATA, "never capped");
    }
    alice
        .put(&format!("{ALICE}/rooms/{r}/tags/u.work"), json!({}))
        .await
        .expect_err(400, "M_LIMIT_EXCEEDED");
}

#[tokio::test]
async fn a_to_device_inbox_is_capped_until_its_device_syncs() {
    let s = TestServer::start();
    let (alice, _) = alice(&s).await;
    let (bob, bob_reg) = s.client().register("bob", "pw-bob-1").await;
    let bob_dev = bob_reg["device_id"].as_str().expect("device_id").to_owned();
    let send = |txn: String, content: Value| {
        let alice = alice.clone();
        let bob_dev = bob_dev.clone();
        async move {
            alice
                .put(
                    &format!("/_matrix/client/v3/sendToDevice/m.test/{txn}"),
                    json!({ "messages": { "@bob:localhost": { bob_dev: content } } }),
                )
                .await
        }
    };
    let huge = json!({ "x": "y".repeat(quota::TO_DEVICE_BYTES) });
    send("huge".into(), huge).await.expect_err(413, "M_TOO_LARGE");

    // Bob never syncs: his inbox fills up to the byte cap.
    let chunk = json!({ "x": "y".repeat(quota::TO_DEVICE_BYTES - 1024) });
    let mut sent = 0;
    let refused = loop {
        let r = send(format!("t{sent}"), chunk.clone()).await;
        if r.status != 200 {
            break r;
        }
        sent += 1;
        assert!(sent * (quota::TO_DEVICE_BYTES - 1024) <= quota::MAX_INBOX_BYTES, "never capped");
    };
    refused.expect_err(400, "M_LIMIT_EXCEEDED");
    assert!(
        refused.body["error"].as_str().is_some_and(|e| e.contains(&bob_dev)),
        "{}",
        refused.body
    );
    assert!(sent > 0);
    // A send to the full device (a message it has no room for) and another
    // one still reaches the other.
    let (carol, carol_reg) = s.client().register("carol", "pw-carol-1").await;
    let carol_dev = carol_reg["device_id"].as_str().expect("device_id").to_owned();
    alice
        .put(
            "/_matrix/client/v3/sendToDevice/m.test/both",
            json!({ "messages": {
                "@bob:localhost": {
                    bob_dev.clone(): { "to": "bob", "x": "y".repeat(quota::TO_DEVICE_BYTES - 1100) } },
                "@carol:localhost": { carol_dev: { "to": "carol" } } } }),
        )
        .await
        .ok();
    let got = carol.get("/_matrix/client/v3/sync?timeout=0").await.ok();
    assert_eq!(got["to_device"]["events"][0]["content"]["to"], "carol", "{got}");
    // Syncing drains the inbox; then sends are accepted again.
    let first = bob.get("/_matrix/client/v3/sync?timeout=0").await.ok();
    let events = first["to_device"]["events"].as_array().cloned().unwrap_or_default();
    assert!(!events.is_empty(), "the accepted messages are delivered");
    let mut delivered: Vec<Value> = events;
    let since = first["next_batch"].as_str().expect("next_batch").to_owned();
    let mut since = since;
    loop {
        let next = bob.get(&format!("/_matrix/client/v3/sync?timeout=0&since={since}")).await.ok();
        since = next["next_batch"].as_str().expect("next_batch").to_owned();
        match next["to_device"]["events"].as_array() {
            Some(more) if !more.is_empty() => delivered.extend(more.iter().cloned()),
            _ => break,
        }
    }
    assert_eq!(delivered.len(), sent, "exactly the accepted messages arrive");
    assert!(delivered.iter().all(|e| e["content"]["to"] != "bob"), "skipped while full");
    send("after".into(), json!({ "ok": true })).await.ok();
}

#[tokio::test]
async fn one_time_keys_are_capped_per_device_and_each_key_in_size() {
    let s = TestServer::start();
    let (alice, _) = alice(&s).await;
    let keys = |from: usize, n: usize| -> Value {
        let map: serde_json::Map<String, Value> = (from..from + n)
            .map(|i| (format!("signed_curve25519:K{i:05}"), json!({ "key": format!("k{i}") })))
            .collect();
        json!({ "one_time_keys": map })
    };
    let up = alice.post("/_matrix/client/v3/keys/upload", keys(0, quota::MAX_ONE_TIME_KEYS)).await;
    assert_eq!(
        up.ok()["one_time_key_counts"]["signed_curve25519"],
        json!(quota::MAX_ONE_TIME_KEYS)
    );
    alice
        .post("/_matrix/client/v3/keys/upload", keys(quota::MAX_ONE_TIME_KEYS, 1))
        .await
        .expect_err(400, "M_LIMIT_EXCEEDED");
    // Re-uploading a stored key is not growth.
    alice.post("/_matrix/client/v3/keys/upload", keys(0, 1)).await.ok();
    let big = json!({ "one_time_keys": {
        "signed_curve25519:BIG": { "key": "k".repeat(quota::KEY_BYTES) } } });
    alice.post("/_matrix/client/v3/keys/upload", big).await.expect_err(413, "M_TOO_LARGE");
    let fallbacks: serde_json::Map<String, Value> = (0..=quota::MAX_FALLBACK_ALGORITHMS)
        .map(|i| (format!("alg{i}:F"), json!({ "key": "f" })))
        .collect();
    alice
        .post("/_matrix/client/v3/keys/upload", json!({ "fallback_keys": fallbacks }))
        .await
        .expect_err(400, "M_LIMIT_EXCEEDED");
}

#[tokio::test]
async fn a_login_past_the_device_cap_deletes_the_oldest_device_without_keys() {
    let s = TestServer::start_with(|c| c.max_devices_per_user = 3);
    let (first, reg) = alice(&s).await;
    let first_dev = reg["device_id"].as_str().expect("device_id").to_owned();
    // The first device has keys: it outlives the keyless ones.
    let keys = json!({ "device_keys": {
        "user_id": "@alice:localhost", "device_id": first_dev,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2"], "keys": { format!("ed25519:{first_dev}"): "k" },
        "signatures": {} } });
    first.post("/_matrix/client/v3/keys/upload", keys).await.ok();
    let mut tokens = Vec::new();
    for _ in 0..4 {
        let r = s.client().login("alice", "pw-alice-1").await.ok();
        tokens.push(r["access_token"].as_str().expect("token").to_owned());
    }
    let devices = first.get("/_matrix/client/v3/devices").await.ok();
    assert_eq!(devices["devices"].as_array().map(Vec::len), Some(3), "{devices}");
    first.get("/_matrix/client/v3/account/whoami").await.ok();
    // The two oldest keyless sessions were pruned, the newest work.
    for (i, t) in tokens.iter().enumerate() {
        let r = s.client().with_token(t).get("/_matrix/client/v3/account/whoami").await;
        if i < 2 {
            r.expect_err(401, "M_UNKNOWN_TOKEN");
        } else {
            r.ok();
        }
    }
}

#[tokio::test]
async fn pushers_are_capped_per_user_and_a_replaced_pusher_is_not_growth() {
    let s = TestServer::start();
    let (alice, _) = alice(&s).await;
    let pusher = |key: String| {
        json!({ "kind": "http", "app_id": "org.example.app", "pushkey": key, "append": true,
            "app_display_name": "App", "device_display_name": "Phone", "lang": "en",
            "data": { "url": "https://push.example.org/_matrix/push/v1/notify" } })
    };
    let mut big = pusher("BIG".into());
    big["data"]["pad"] = json!("x".repeat(quota::PUSHER_DATA_BYTES));
    alice.post("/_matrix/client/v3/pushers/set", big).await.expect_err(413, "M_TOO_LARGE");
    for i in 0..quota::MAX_PUSHERS {
        alice.post("/_matrix/client/v3/pushers/set", pusher(format!("K{i}"))).await.ok();
    }
    alice
        .post("/_matrix/client/v3/pushers/set", pusher("ONE_MORE".into()))
        .await
        .expect_err(400, "M_LIMIT_EXCEEDED");
    alice.post("/_matrix/client/v3/pushers/set", pusher("K0".into())).await.ok();
}

#[tokio::test]
async fn push_rules_avatar_urls_and_backed_up_sessions_are_capped_in_size() {
    let s = TestServer::start();
    let (alice, _) = alice(&s).await;
    let half = quota::PUSH_RULES_BYTES / 2 + 1;
    let rule = |pattern: String| json!({ "pattern": pattern, "actions": ["notify"] });
    alice
        .put("/_matrix/client/v3/pushrules/global/content/big1", rule("a".repeat(half)))
        .await
        .ok();
    alice
        .put("/_matrix/client/v3/pushrules/global/content/big2", rule("b".repeat(half)))
        .await
        .expect_err(413, "M_TOO_LARGE");
    // Shrinking is always allowed.
    alice.delete("/_matrix/client/v3/pushrules/global/content/big1", json!({})).await.ok();

    alice
        .put(
            "/_matrix/client/v3/profile/@alice:localhost/avatar_url",
            json!({ "avatar_url": format!("mxc://localhost/{}", "a".repeat(quota::AVATAR_URL_BYTES)) }),
        )
        .await
        .expect_err(413, "M_TOO_LARGE");

    let v = alice
        .post(
            "/_matrix/client/v3/room_keys/version",
            json!({ "algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": {} }),
        )
        .await
        .ok();
    let v = v["version"].as_str().expect("version").to_owned();
    let session = json!({ "first_message_index": 0, "forwarded_count": 0, "is_verified": false,
        "session_data": { "ciphertext": "c".repeat(quota::KEY_BYTES) } });
    alice
        .put(&format!("/_matrix/client/v3/room_keys/keys/!r:localhost/S?version={v}"), session)
        .await
        .expect_err(413, "M_TOO_LARGE");
}

#[tokio::test]
async fn a_report_reason_is_capped_in_size() {
    let s = TestServer::start();
    let (alice, _) = alice(&s).await;
    let r = room(&alice, json!({})).await;
    let long = json!({ "reason": "x".repeat(quota::REPORT_REASON_BYTES + 1) });
    alice
        .post(&format!("/_matrix/client/v3/rooms/{r}/report"), long)
        .await
        .expect_err(413, "M_TOO_LARGE");
    alice
        .post(&format!("/_matrix/client/v3/rooms/{r}/report"), json!({ "reason": "spam" }))
        .await
        .ok();
}
