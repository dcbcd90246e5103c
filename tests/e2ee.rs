//! End-to-end encryption support: keys, claims, cross-signing, to-device,
//! device lists, key backup.

use serde_json::{Value, json};

use hearth::room::pdu::{ServerKey, sign_json};

use crate::support::{Client, TestServer};

fn device_keys(user: &str, device: &str) -> Value {
    json!({
        "user_id": user, "device_id": device,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": { format!("curve25519:{device}"): "curvekey", format!("ed25519:{device}"): "edkey" },
        "signatures": { user: { format!("ed25519:{device}"): "sig" } },
    })
}

async fn whoami(c: &Client) -> (String, String) {
    let w = c.get("/_matrix/client/v3/account/whoami").await.ok();
    (w["user_id"].as_str().expect("u").to_owned(), w["device_id"].as_str().expect("d").to_owned())
}

#[tokio::test]
async fn keys_upload_query_and_counts() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (uid, did) = whoami(&alice).await;
    alice
        .post(
            "/_matrix/client/v3/keys/upload",
            json!({ "device_keys": device_keys("@mallory:localhost", &did) }),
        )
        .await
        .expect_err(400, "M_BAD_JSON");
    let up = alice
        .post("/_matrix/client/v3/keys/upload", json!({
            "device_keys": device_keys(&uid, &did),
            "one_time_keys": { "signed_curve25519:AAAA": { "key": "k1" }, "signed_curve25519:AAAB": { "key": "k2" } },
            "fallback_keys": { "signed_curve25519:FFFF": { "key": "fb", "fallback": true } },
        }))
        .await
        .ok();
    assert_eq!(up["one_time_key_counts"]["signed_curve25519"], 2);
    alice
        .post(
            "/_matrix/client/v3/keys/upload",
            json!({ "one_time_keys": { "signed_curve25519:AAAA": { "key": "other" } } }),
        )
        .await
        .expect_err(400, "M_BAD_JSON");
    alice
        .put(&format!("/_matrix/client/v3/devices/{did}"), json!({ "display_name": "Laptop" }))
        .await
        .ok();
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let q = bob
        .post("/_matrix/client/v3/keys/query", json!({ "device_keys": { uid.clone(): [] } }))
        .await
        .ok();
    let got = &q["device_keys"][uid.as_str()][did.as_str()];
    assert_eq!(got["keys"][format!("ed25519:{did}")], "edkey");
    assert_eq!(
        got["signatures"][uid.as_str()][format!("ed25519:{did}")],
        "sig",
        "signatures kept as uploaded"
    );
    assert_eq!(got["unsigned"]["device_display_name"], "Laptop");
    let sync = alice.get("/_matrix/client/v3/sync").await.ok();
    assert_eq!(sync["device_one_time_keys_count"]["signed_curve25519"], 2);
    assert_eq!(sync["device_unused_fallback_key_types"], json!(["signed_curve25519"]));
}

#[tokio::test]
async fn concurrent_claims_never_get_the_same_key_and_fall_back_when_empty() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (uid, did) = whoami(&alice).await;
    let mut otks = serde_json::Map::new();
    for i in 0..5 {
        otks.insert(format!("signed_curve25519:K{i}"), json!({ "key": format!("k{i}") }));
    }
    alice
        .post(
            "/_matrix/client/v3/keys/upload",
            json!({
                "one_time_keys": otks,
                "fallback_keys": { "signed_curve25519:FB": { "key": "fb", "fallback": true } },
            }),
        )
        .await
        .ok();
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let claim = json!({ "one_time_keys": { uid.clone(): { did.clone(): "signed_curve25519" } } });
    let mut handles = Vec::new();
    for _ in 0..7 {
        let bob = bob.clone();
        let claim = claim.clone();
        handles.push(tokio::spawn(async move {
            bob.post("/_matrix/client/v3/keys/claim", claim).await.ok()
        }));
    }
    let mut ids = Vec::new();
    for h in handles {
        let r = h.await.expect("join");
        let keys =
            r["one_time_keys"][uid.as_str()][did.as_str()].as_object().expect("a key").clone();
        ids.extend(keys.keys().cloned());
    }
    let otk_ids: Vec<&String> =
        ids.iter().filter(|i| i.as_str() != "signed_curve25519:FB").collect();
    let mut unique = otk_ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(otk_ids.len(), 5, "{ids:?}");
    assert_eq!(unique.len(), 5, "no key handed out twice: {ids:?}");
    assert_eq!(ids.iter().filter(|i| i.as_str() == "signed_curve25519:FB").count(), 2);
    let sync = alice.get("/_matrix/client/v3/sync").await.ok();
    assert_eq!(sync["device_unused_fallback_key_types"], json!([]), "fallback marked used");
}

#[tokio::test]
async fn cross_signing_upload_needs_uia_only_to_replace_and_signatures_merge() {
    let s = TestServer::start();
    let CrossSigned { client: alice, uid, did, device, msk, ssk } = cross_signed_alice(&s).await;
    let new_master = cross_signing_key(&uid, "master", &ed25519(3));
    let r = alice
        .post("/_matrix/client/v3/keys/device_signing/upload", json!({ "master_key": new_master }))
        .await;
    assert_eq!(r.status, 401, "replacing the master key needs UIA: {}", r.body);
    // Sign the device with the self-signing key.
    let signed = signed_by(device.clone(), &uid, &ssk);
    let out = alice
        .post(
            "/_matrix/client/v3/keys/signatures/upload",
            json!({ uid.clone(): { did.clone(): signed } }),
        )
        .await
        .ok();
    assert_eq!(out["failures"], json!({}));
    let q = alice
        .post("/_matrix/client/v3/keys/query", json!({ "device_keys": { uid.clone(): [] } }))
        .await
        .ok();
    let sigs = &q["device_keys"][uid.as_str()][did.as_str()]["signatures"][uid.as_str()];
    assert_eq!(sigs[ssk.key_id()], signed["signatures"][uid.as_str()][ssk.key_id()]);
    assert_eq!(
        sigs[format!("ed25519:{did}")],
        device["signatures"][uid.as_str()][format!("ed25519:{did}")]
    );
    assert_eq!(q["master_keys"][uid.as_str()]["keys"][msk.key_id()], msk.public_key_base64());
    assert!(q["self_signing_keys"][uid.as_str()].is_object());
    // A signature over content that differs from the stored key fails.
    let mut forged = device.clone();
    forged["keys"][format!("curve25519:{did}")] = json!("evil");
    let out = alice
        .post(
            "/_matrix/client/v3/keys/signatures/upload",
            json!({ uid.clone(): { did.clone(): signed_by(forged, &uid, &ssk) } }),
        )
        .await
        .ok();
    assert!(out["failures"][uid.as_str()][did.as_str()].is_object(), "{out}");
}

#[tokio::test]
async fn signatures_of_another_users_master_key_are_seen_only_by_their_signer() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let (carol, _) = s.client().register("carol", "pw-carol-1").await;
    let (uid, _) = whoami(&alice).await;
    let alice_msk = ed25519(1);
    let master = cross_signing_key(&uid, "master", &alice_msk);
    alice
        .post("/_matrix/client/v3/keys/device_signing/upload", json!({ "master_key": master }))
        .await
        .ok();
    let bob_usk = publish_user_signing_key(&bob, "@bob:localhost", 5, 6).await;
    // Bob signs Alice's master key with his user-signing key, and tries to
    // slip in a signature in Alice's name.
    let mut signed = signed_by(master.clone(), "@bob:localhost", &bob_usk);
    signed["signatures"][uid.as_str()] = json!({ "ed25519:FAKE": "forged" });
    let out = bob
        .post(
            "/_matrix/client/v3/keys/signatures/upload",
            json!({ uid.clone(): { alice_msk.public_key_base64(): signed } }),
        )
        .await
        .ok();
    assert_eq!(out["failures"], json!({}), "{out}");
    let query = |c: &Client| {
        let c = c.clone();
        let uid = uid.clone();
        async move {
            let q = c
                .post(
                    "/_matrix/client/v3/keys/query",
                    json!({ "device_keys": { uid.clone(): [] } }),
                )
                .await
                .ok();
            q["master_keys"][uid.as_str()]["signatures"].clone()
        }
    };
    let seen_by_bob = query(&bob).await;
    assert!(seen_by_bob["@bob:localhost"][bob_usk.key_id()].is_string(), "{seen_by_bob}");
    assert!(seen_by_bob[uid.as_str()]["ed25519:FAKE"].is_null(), "{seen_by_bob}");
    for other in [&alice, &carol] {
        let sigs = query(other).await;
        assert!(sigs["@bob:localhost"].is_null(), "{sigs}");
    }
}

#[tokio::test]
async fn to_device_messages_arrive_once_in_order_and_survive_a_restart() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let (bob_id, bob_dev) = whoami(&bob).await;
    let first = bob.get("/_matrix/client/v3/sync").await.ok();
    let since = first["next_batch"].as_str().expect("nb").to_owned();
    for i in 0..3 {
        alice
            .put(
                &format!("/_matrix/client/v3/sendToDevice/m.test/t{i}"),
                json!({ "messages": { bob_id.clone(): { bob_dev.clone(): { "n": i } } } }),
            )
            .await
            .ok();
    }
    // A retransmission is not delivered twice.
    alice
        .put(
            "/_matrix/client/v3/sendToDevice/m.test/t2",
            json!({ "messages": { bob_id.clone(): { bob_dev.clone(): { "n": 2 } } } }),
        )
        .await
        .ok();
    let dir = s.dir.clone();
    let token = bob.token.clone().expect("token");
    let temp = s.stop();
    let s = TestServer::start_in(&dir, |_| {});
    let bob = s.client().with_token(&token);
    let got = bob.get(&format!("/_matrix/client/v3/sync?since={since}")).await.ok();
    let events = got["to_device"]["events"].as_array().expect("events");
    let ns: Vec<i64> = events.iter().filter_map(|e| e["content"]["n"].as_i64()).collect();
    assert_eq!(ns, vec![0, 1, 2]);
    assert_eq!(events[0]["sender"], "@alice:localhost");
    assert_eq!(events[0]["type"], "m.test");
    // Repeating the same since (the client lost the response) delivers again.
    let again = bob.get(&format!("/_matrix/client/v3/sync?since={since}")).await.ok();
    assert_eq!(again["to_device"]["events"].as_array().map(Vec::len), Some(3));
    // Acknowledged by the next since: gone.
    let nb = again["next_batch"].as_str().expect("nb").to_owned();
    let after = bob.get(&format!("/_matrix/client/v3/sync?since={nb}")).await.ok();
    assert_eq!(after["to_device"]["events"], json!([]));
    drop(s);
    drop(temp);
}

#[tokio::test]
async fn device_lists_report_room_mates_changes_and_departures() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let (bob_id, bob_dev) = whoami(&bob).await;
    let r =
        alice.post("/_matrix/client/v3/createRoom", json!({ "preset": "public_chat" })).await.ok()
            ["room_id"]
            .as_str()
            .expect("r")
            .to_owned();
    let since = alice.get("/_matrix/client/v3/sync").await.ok()["next_batch"]
        .as_str()
        .expect("nb")
        .to_owned();
    bob.post(&format!("/_matrix/client/v3/join/{r}"), json!({})).await.ok();
    let out = alice.get(&format!("/_matrix/client/v3/sync?since={since}")).await.ok();
    assert!(
        out["device_lists"]["changed"]
            .as_array()
            .is_some_and(|a| a.iter().any(|u| u == bob_id.as_str())),
        "joined: {out}"
    );
    let since = out["next_batch"].as_str().expect("nb").to_owned();
    bob.post(
        "/_matrix/client/v3/keys/upload",
        json!({ "device_keys": device_keys(&bob_id, &bob_dev) }),
    )
    .await
    .ok();
    let out = alice.get(&format!("/_matrix/client/v3/sync?since={since}")).await.ok();
    assert!(
        out["device_lists"]["changed"]
            .as_array()
            .is_some_and(|a| a.iter().any(|u| u == bob_id.as_str())),
        "keys: {out}"
    );
    let changes = alice
        .get(&format!(
            "/_matrix/client/v3/keys/changes?from={since}&to={}",
            out["next_batch"].as_str().expect("nb")
        ))
        .await
        .ok();
    assert!(changes["changed"].as_array().is_some_and(|a| a.iter().any(|u| u == bob_id.as_str())));
    let since = out["next_batch"].as_str().expect("nb").to_owned();
    bob.post(&format!("/_matrix/client/v3/rooms/{r}/leave"), json!({})).await.ok();
    let out = alice.get(&format!("/_matrix/client/v3/sync?since={since}")).await.ok();
    assert!(
        out["device_lists"]["left"]
            .as_array()
            .is_some_and(|a| a.iter().any(|u| u == bob_id.as_str())),
        "left: {out}"
    );
}

#[tokio::test]
async fn key_backup_versions_and_sessions() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    alice.get("/_matrix/client/v3/room_keys/version").await.expect_err(404, "M_NOT_FOUND");
    let v1 = alice
        .post("/_matrix/client/v3/room_keys/version", json!({ "algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": { "public_key": "pk" } }))
        .await
        .ok()["version"]
        .as_str()
        .expect("v")
        .to_owned();
    let session = |idx: u64| json!({ "first_message_index": idx, "forwarded_count": 0, "is_verified": false, "session_data": { "ciphertext": format!("c{idx}") } });
    let put = alice
        .put(&format!("/_matrix/client/v3/room_keys/keys/!r:localhost/S1?version={v1}"), session(5))
        .await
        .ok();
    assert_eq!(put["count"], 1);
    let etag1 = put["etag"].as_str().expect("etag").to_owned();
    // A worse copy (higher first index) does not replace the stored one.
    let put = alice
        .put(&format!("/_matrix/client/v3/room_keys/keys/!r:localhost/S1?version={v1}"), session(9))
        .await
        .ok();
    assert_eq!(put["etag"], etag1.as_str());
    let got = alice
        .get(&format!("/_matrix/client/v3/room_keys/keys/!r:localhost/S1?version={v1}"))
        .await
        .ok();
    assert_eq!(got["first_message_index"], 5);
    // A better one does.
    let put = alice
        .put(&format!("/_matrix/client/v3/room_keys/keys/!r:localhost/S1?version={v1}"), session(1))
        .await
        .ok();
    assert_ne!(put["etag"], etag1.as_str());
    alice
        .put(
            &format!("/_matrix/client/v3/room_keys/keys?version={v1}"),
            json!({ "rooms": { "!q:localhost": { "sessions": { "S2": session(0) } } } }),
        )
        .await
        .ok();
    let all = alice.get(&format!("/_matrix/client/v3/room_keys/keys?version={v1}")).await.ok();
    assert_eq!(all["rooms"]["!q:localhost"]["sessions"]["S2"]["first_message_index"], 0);
    let cur = alice.get("/_matrix/client/v3/room_keys/version").await.ok();
    assert_eq!(cur["version"], v1.as_str());
    assert_eq!(cur["count"], 2);
    // A new version makes the old one stale for writes.
    let v2 = alice
        .post(
            "/_matrix/client/v3/room_keys/version",
            json!({ "algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": {} }),
        )
        .await
        .ok()["version"]
        .as_str()
        .expect("v")
        .to_owned();
    let stale = alice
        .put(&format!("/_matrix/client/v3/room_keys/keys/!r:localhost/S3?version={v1}"), session(0))
        .await;
    stale.expect_err(403, "M_WRONG_ROOM_KEYS_VERSION");
    assert_eq!(stale.body["current_version"], v2.as_str());
    let del = alice
        .delete(&format!("/_matrix/client/v3/room_keys/keys/!q:localhost?version={v1}"), json!({}))
        .await
        .ok();
    assert_eq!(del["count"], 1);
    alice.delete(&format!("/_matrix/client/v3/room_keys/version/{v2}"), json!({})).await.ok();
    alice
        .get(&format!("/_matrix/client/v3/room_keys/version/{v2}"))
        .await
        .expect_err(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn deleting_a_device_removes_its_keys() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (uid, did) = whoami(&alice).await;
    alice
        .post("/_matrix/client/v3/keys/upload", json!({ "device_keys": device_keys(&uid, &did) }))
        .await
        .ok();
    let other = s.client().with_token(
        s.client().login("alice", "pw-alice-1").await.ok()["access_token"].as_str().expect("t"),
    );
    let first = other.delete(&format!("/_matrix/client/v3/devices/{did}"), json!({})).await;
    let session = first.body["session"].as_str().expect("session");
    other
        .delete(
            &format!("/_matrix/client/v3/devices/{did}"),
            json!({ "auth": { "type": "m.login.password", "session": session,
            "password": "pw-alice-1", "identifier": { "type": "m.id.user", "user": "alice" } } }),
        )
        .await
        .ok();
    let q = other
        .post("/_matrix/client/v3/keys/query", json!({ "device_keys": { uid.clone(): [] } }))
        .await
        .ok();
    assert!(q["device_keys"][uid.as_str()].get(did.as_str()).is_none(), "{q}");
}

#[tokio::test]
async fn a_long_poll_wakes_for_a_to_device_message() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let (bob_id, bob_dev) = whoami(&bob).await;
    let since = bob.get("/_matrix/client/v3/sync").await.ok()["next_batch"]
        .as_str()
        .expect("nb")
        .to_owned();
    let poll = {
        let bob = bob.clone();
        tokio::spawn(async move {
            bob.get(&format!("/_matrix/client/v3/sync?since={since}&timeout=30000")).await
        })
    };
    alice
        .put(
            "/_matrix/client/v3/sendToDevice/m.test/w1",
            json!({ "messages": { bob_id.clone(): { bob_dev.clone(): { "hi": 1 } } } }),
        )
        .await
        .ok();
    // Well under the 30 s long-poll: only a wake-up returns this fast.
    let woke = tokio::time::timeout(std::time::Duration::from_secs(10), poll)
        .await
        .expect("woke")
        .expect("join")
        .ok();
    assert_eq!(woke["to_device"]["events"][0]["content"]["hi"], 1, "{woke}");
}

/// Whether `list` (a `changed` or `left` array) names `user`.
fn names(list: &Value, user: &str) -> bool {
    list.as_array().is_some_and(|a| a.iter().any(|u| u == user))
}

#[tokio::test]
async fn a_new_device_of_the_syncing_user_is_in_their_own_device_list_changes() {
    const SS: &str = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync";
    let s = TestServer::start();
    let (first, _) = s.client().register("alice", "pw-alice-1").await;
    let (uid, _) = whoami(&first).await;
    // The first device is a classic sync client and an Element X style
    // sliding sync client with the e2ee extension, both up to date.
    let since = first.get("/_matrix/client/v3/sync").await.ok()["next_batch"]
        .as_str()
        .expect("nb")
        .to_owned();
    let e2ee = json!({ "lists": {}, "extensions": { "e2ee": { "enabled": true } } });
    let pos = first.post(&format!("{SS}?timeout=0"), e2ee.clone()).await.ok()["pos"]
        .as_str()
        .expect("pos")
        .to_owned();
    let poll = {
        let first = first.clone();
        let since = since.clone();
        tokio::spawn(async move {
            first.get(&format!("/_matrix/client/v3/sync?since={since}&timeout=30000")).await
        })
    };

    // Alice signs in on a second device, which uploads its keys.
    let login = s.client().login("alice", "pw-alice-1").await.ok();
    let second = s.client().with_token(login["access_token"].as_str().expect("token"));
    let new_device = login["device_id"].as_str().expect("device_id").to_owned();
    second
        .post(
            "/_matrix/client/v3/keys/upload",
            json!({ "device_keys": device_keys(&uid, &new_device) }),
        )
        .await
        .ok();

    // The first device's long poll wakes with Alice in `changed` (well
    // under its 30 s timeout: only a wake-up returns this fast).
    let woke = tokio::time::timeout(std::time::Duration::from_secs(10), poll)
        .await
        .expect("the long poll woke")
        .expect("join")
        .ok();
    assert!(names(&woke["device_lists"]["changed"], &uid), "/sync: {woke}");
    let to = woke["next_batch"].as_str().expect("nb");
    let changes =
        first.get(&format!("/_matrix/client/v3/keys/changes?from={since}&to={to}")).await.ok();
    assert!(names(&changes["changed"], &uid), "/keys/changes: {changes}");
    let sliding = first.post(&format!("{SS}?timeout=0&pos={pos}"), e2ee).await.ok();
    let lists = &sliding["extensions"]["e2ee"]["device_lists"];
    assert!(names(&lists["changed"], &uid), "sliding sync e2ee: {sliding}");
    // Asking for its keys now, the first device finds the new one.
    let q = first
        .post("/_matrix/client/v3/keys/query", json!({ "device_keys": { uid.clone(): [] } }))
        .await
        .ok();
    assert!(q["device_keys"][uid.as_str()][new_device.as_str()].is_object(), "{q}");
}

#[tokio::test]
async fn joining_a_room_does_not_list_the_joiner_in_their_own_device_list_changes() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let r = crate::support::room(&alice, json!({ "preset": "public_chat" })).await;
    let since = bob.get("/_matrix/client/v3/sync").await.ok()["next_batch"]
        .as_str()
        .expect("nb")
        .to_owned();
    bob.post(&format!("/_matrix/client/v3/join/{r}"), json!({})).await.ok();
    let out = bob.get(&format!("/_matrix/client/v3/sync?since={since}")).await.ok();
    let changed = &out["device_lists"]["changed"];
    assert!(names(changed, "@alice:localhost"), "{out}");
    assert!(!names(changed, "@bob:localhost"), "nothing of Bob's changed: {out}");
}

/// A test signing key from a seed, named `ed25519:<public key>` as
/// cross-signing keys are.
fn ed25519(seed: u8) -> ServerKey {
    let unnamed = ServerKey::from_seed(&[seed; 32], "");
    ServerKey::from_seed(&[seed; 32], format!("ed25519:{}", unnamed.public_key_base64()))
}

/// The public part of a cross-signing key, unsigned.
fn cross_signing_key(user: &str, usage: &str, key: &ServerKey) -> Value {
    json!({ "user_id": user, "usage": [usage], "keys": { key.key_id(): key.public_key_base64() } })
}

/// `value` with a signature by `key` in the name of `user` added.
fn signed_by(mut value: Value, user: &str, key: &ServerKey) -> Value {
    sign_json(&mut value, user, key).expect("sign");
    value
}

/// Device keys with a real ed25519 key from `seed`, signed by the device
/// as a client uploads them.
fn signed_device_keys(user: &str, device: &str, seed: u8) -> Value {
    let key = ServerKey::from_seed(&[seed; 32], format!("ed25519:{device}"));
    let keys = json!({
        "user_id": user, "device_id": device,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": { format!("curve25519:{device}"): "curvekey", key.key_id(): key.public_key_base64() },
    });
    signed_by(keys, user, &key)
}

/// Publishes a master key (from `master_seed`) and a user-signing key it
/// signed (from `usk_seed`) for `user`; returns the user-signing key.
async fn publish_user_signing_key(
    c: &Client,
    user: &str,
    master_seed: u8,
    usk_seed: u8,
) -> ServerKey {
    let (msk, usk) = (ed25519(master_seed), ed25519(usk_seed));
    c.post(
        "/_matrix/client/v3/keys/device_signing/upload",
        json!({
            "master_key": cross_signing_key(user, "master", &msk),
            "user_signing_key": signed_by(cross_signing_key(user, "user_signing", &usk), user, &msk),
        }),
    )
    .await
    .ok();
    usk
}

/// Alice with her device's keys (seed 9) and her master (seed 1) and
/// self-signing (seed 2) keys published.
struct CrossSigned {
    client: Client,
    uid: String,
    did: String,
    device: Value,
    msk: ServerKey,
    ssk: ServerKey,
}

async fn cross_signed_alice(s: &TestServer) -> CrossSigned {
    let (client, _) = s.client().register("alice", "pw-alice-1").await;
    let (uid, did) = whoami(&client).await;
    let device = signed_device_keys(&uid, &did, 9);
    client.post("/_matrix/client/v3/keys/upload", json!({ "device_keys": device })).await.ok();
    let (msk, ssk) = (ed25519(1), ed25519(2));
    let ssk_signed = signed_by(cross_signing_key(&uid, "self_signing", &ssk), &uid, &msk);
    client
        .post(
            "/_matrix/client/v3/keys/device_signing/upload",
            json!({ "master_key": cross_signing_key(&uid, "master", &msk), "self_signing_key": ssk_signed }),
        )
        .await
        .ok();
    CrossSigned { client, uid, did, device, msk, ssk }
}

#[tokio::test]
async fn self_and_user_signing_keys_must_be_signed_by_the_master_key() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (uid, _) = whoami(&alice).await;
    let (msk, ssk, usk, other) = (ed25519(1), ed25519(2), ed25519(3), ed25519(4));
    let upload = |body: Value| {
        let alice = alice.clone();
        async move { alice.post("/_matrix/client/v3/keys/device_signing/upload", body).await }
    };
    let master = cross_signing_key(&uid, "master", &msk);
    let unsigned_ssk = cross_signing_key(&uid, "self_signing", &ssk);
    let good_ssk = signed_by(unsigned_ssk.clone(), &uid, &msk);
    let good_usk = signed_by(cross_signing_key(&uid, "user_signing", &usk), &uid, &msk);
    // Not signed at all; signed by another key; a signature under the
    // master key's ID that the master key did not make.
    let by_other = signed_by(unsigned_ssk.clone(), &uid, &other);
    let mut forged = unsigned_ssk.clone();
    forged["signatures"] = json!({ uid.clone(): { msk.key_id(): by_other["signatures"][uid.as_str()][other.key_id()] } });
    let usk_by_other = signed_by(cross_signing_key(&uid, "user_signing", &usk), &uid, &other);
    for body in [
        json!({ "master_key": master, "self_signing_key": unsigned_ssk }),
        json!({ "master_key": master, "self_signing_key": by_other }),
        json!({ "master_key": master, "self_signing_key": forged }),
        json!({ "master_key": master, "self_signing_key": good_ssk, "user_signing_key": usk_by_other }),
    ] {
        let r = upload(body.clone()).await;
        r.expect_err(400, "M_INVALID_SIGNATURE");
    }
    // A refused upload stored nothing, not even the master key with it.
    let query = || {
        let alice = alice.clone();
        let uid = uid.clone();
        async move {
            alice
                .post("/_matrix/client/v3/keys/query", json!({ "device_keys": { uid: [] } }))
                .await
                .ok()
        }
    };
    let q = query().await;
    assert!(q["master_keys"].get(uid.as_str()).is_none(), "{q}");
    assert!(q["self_signing_keys"].get(uid.as_str()).is_none(), "{q}");
    // Properly signed: accepted and published.
    upload(
        json!({ "master_key": master, "self_signing_key": good_ssk, "user_signing_key": good_usk }),
    )
    .await
    .ok();
    let q = query().await;
    assert_eq!(q["self_signing_keys"][uid.as_str()], good_ssk, "{q}");
    assert_eq!(q["user_signing_keys"][uid.as_str()], good_usk, "{q}");
    // A new self-signing key alone is checked against the stored master.
    let ssk2 = cross_signing_key(&uid, "self_signing", &ed25519(5));
    upload(json!({ "self_signing_key": signed_by(ssk2.clone(), &uid, &other) }))
        .await
        .expect_err(400, "M_INVALID_SIGNATURE");
    upload(json!({ "self_signing_key": signed_by(ssk2.clone(), &uid, &msk) })).await.ok();
    let q = query().await;
    assert_eq!(q["self_signing_keys"][uid.as_str()]["keys"], ssk2["keys"], "{q}");
    // Without any master key there is nothing to check against.
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let bob_ssk = signed_by(
        cross_signing_key("@bob:localhost", "self_signing", &ssk),
        "@bob:localhost",
        &msk,
    );
    bob.post(
        "/_matrix/client/v3/keys/device_signing/upload",
        json!({ "self_signing_key": bob_ssk }),
    )
    .await
    .expect_err(400, "M_MISSING_PARAM");
}

#[tokio::test]
async fn a_cross_signing_key_named_like_a_device_or_malformed_is_refused() {
    let s = TestServer::start();
    let msk = ed25519(1);
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    // A device whose ID is the master key's public key.
    let login = s
        .client()
        .post(
            "/_matrix/client/v3/login",
            json!({
                "type": "m.login.password",
                "identifier": { "type": "m.id.user", "user": "alice" },
                "password": "pw-alice-1",
                "device_id": msk.public_key_base64(),
            }),
        )
        .await
        .ok();
    assert_eq!(login["device_id"], msk.public_key_base64());
    let upload = |body: Value| {
        let alice = alice.clone();
        async move { alice.post("/_matrix/client/v3/keys/device_signing/upload", body).await }
    };
    upload(json!({ "master_key": cross_signing_key("@alice:localhost", "master", &msk) }))
        .await
        .expect_err(403, "M_FORBIDDEN");
    let malformed = json!({ "user_id": "@alice:localhost", "usage": ["master"],
                            "keys": { "ed25519:MASTER": "MASTER" } });
    upload(json!({ "master_key": malformed })).await.expect_err(400, "M_BAD_JSON");
}

#[tokio::test]
async fn uploaded_signatures_are_verified_and_forged_ones_reported_not_stored() {
    let s = TestServer::start();
    let CrossSigned { client: alice, uid, did, device, msk, ssk } = cross_signed_alice(&s).await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let master = cross_signing_key(&uid, "master", &msk);
    let mpk = msk.public_key_base64();
    // One good signature (the device, by the self-signing key) and one
    // forged (the master key "by the device", made by another key).
    let good = signed_by(device.clone(), &uid, &ssk);
    let impostor = ServerKey::from_seed(&[3; 32], format!("ed25519:{did}"));
    let forged = signed_by(master.clone(), &uid, &impostor);
    let out = alice
        .post(
            "/_matrix/client/v3/keys/signatures/upload",
            json!({ uid.clone(): { did.clone(): good, mpk.clone(): forged } }),
        )
        .await
        .ok();
    let failures = out["failures"].as_object().expect("failures");
    assert_eq!(failures.keys().collect::<Vec<_>>(), [&uid], "{out}");
    let mine = out["failures"][uid.as_str()].as_object().expect("per user");
    assert_eq!(mine.keys().collect::<Vec<_>>(), [&mpk], "only the forged one fails: {out}");
    assert_eq!(mine[&mpk]["errcode"], "M_INVALID_SIGNATURE", "{out}");
    assert!(mine[&mpk]["error"].is_string(), "{out}");
    let query = |c: &Client| {
        let c = c.clone();
        let uid = uid.clone();
        async move {
            c.post("/_matrix/client/v3/keys/query", json!({ "device_keys": { uid: [] } }))
                .await
                .ok()
        }
    };
    let q = query(&bob).await;
    let device_sigs = &q["device_keys"][uid.as_str()][did.as_str()]["signatures"][uid.as_str()];
    assert_eq!(device_sigs[ssk.key_id()], good["signatures"][uid.as_str()][ssk.key_id()], "{q}");
    let master_sigs = &q["master_keys"][uid.as_str()]["signatures"][uid.as_str()];
    assert!(
        master_sigs.get(format!("ed25519:{did}")).is_none(),
        "the forged one is not stored: {q}"
    );

    // A genuine signature by a key that does not sign that kind of key:
    // the master key signing a device directly.
    let out = alice
        .post(
            "/_matrix/client/v3/keys/signatures/upload",
            json!({ uid.clone(): { did.clone(): signed_by(device.clone(), &uid, &msk) } }),
        )
        .await
        .ok();
    assert_eq!(out["failures"][uid.as_str()][did.as_str()]["errcode"], "M_INVALID_SIGNATURE");
    // The device's own key signing the master key is what the spec allows.
    let device_key = ServerKey::from_seed(&[9; 32], format!("ed25519:{did}"));
    let out = alice
        .post(
            "/_matrix/client/v3/keys/signatures/upload",
            json!({ uid.clone(): { mpk.clone(): signed_by(master.clone(), &uid, &device_key) } }),
        )
        .await
        .ok();
    assert_eq!(out["failures"], json!({}), "{out}");

    // Bob signs Alice's master key: with his user-signing key it is
    // stored; with another key under his user-signing key's ID it fails.
    let usk = publish_user_signing_key(&bob, "@bob:localhost", 5, 6).await;
    let impostor = ServerKey::from_seed(&[7; 32], usk.key_id());
    let out = bob
        .post(
            "/_matrix/client/v3/keys/signatures/upload",
            json!({ uid.clone(): { mpk.clone(): signed_by(master.clone(), "@bob:localhost", &impostor) } }),
        )
        .await
        .ok();
    assert_eq!(
        out["failures"][uid.as_str()][mpk.as_str()]["errcode"],
        "M_INVALID_SIGNATURE",
        "{out}"
    );
    let q = query(&bob).await;
    assert!(q["master_keys"][uid.as_str()]["signatures"]["@bob:localhost"].is_null(), "{q}");
    let out = bob
        .post(
            "/_matrix/client/v3/keys/signatures/upload",
            json!({ uid.clone(): { mpk.clone(): signed_by(master.clone(), "@bob:localhost", &usk) } }),
        )
        .await
        .ok();
    assert_eq!(out["failures"], json!({}), "{out}");
    let q = query(&bob).await;
    assert!(
        q["master_keys"][uid.as_str()]["signatures"]["@bob:localhost"][usk.key_id()].is_string()
    );
}
