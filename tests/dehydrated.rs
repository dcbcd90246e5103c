//! Dehydrated devices (MSC3814, unstable prefix `org.matrix.msc3814.v1`):
//! upload, replace, delete, the device's keys as others see them, and its
//! to-device inbox read in batches with `next_batch`.

use futures_util::future::join_all;
use matrix_sdk::Client as SdkClient;
use matrix_sdk::ruma::api::client::dehydrated_device::{
    delete_dehydrated_device, get_dehydrated_device, get_events,
};
use matrix_sdk::ruma::{OwnedDeviceId, device_id};
use serde_json::{Value, json};

use crate::support::{Client, TestServer};

const DD: &str = "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device";

/// A dehydrated device upload as a client makes it (the keys are opaque to
/// the server; only their owner fields are checked).
fn upload(user: &str, device: &str, pickle: &str) -> Value {
    json!({
        "device_id": device,
        "initial_device_display_name": "Dehydrated device",
        "device_data": { "algorithm": "org.matrix.msc3814.v2", "device_pickle": pickle, "nonce": "n" },
        "device_keys": {
            "user_id": user,
            "device_id": device,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": { format!("curve25519:{device}"): "c25519", format!("ed25519:{device}"): "ed25519" },
            "dehydrated": true,
            "signatures": { user: { format!("ed25519:{device}"): "sig" } },
        },
        "one_time_keys": { "signed_curve25519:AAAAAQ": { "key": "otk1", "signatures": {} } },
        "fallback_keys": { "signed_curve25519:AAAAAg": { "key": "fb1", "fallback": true, "signatures": {} } },
    })
}

/// Device IDs of `user` that `/keys/query` lists.
async fn queried_devices(c: &Client, user: &str) -> Vec<String> {
    let q = c.post("/_matrix/client/v3/keys/query", json!({ "device_keys": { user: [] } })).await;
    let mut ids: Vec<String> = q.ok()["device_keys"][user]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_dehydrated_device_is_uploaded_replaced_and_deleted() {
    let s = TestServer::start();
    let v = s.client().get("/_matrix/client/versions").await.ok();
    assert_eq!(v["unstable_features"]["org.matrix.msc3814"], true, "{v}");
    let (alice, reg) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let me = "@alice:localhost";
    let own_device = reg["device_id"].as_str().expect("device_id").to_owned();

    alice.get(DD).await.expect_err(404, "M_NOT_FOUND");
    alice.delete(DD, json!({})).await.expect_err(404, "M_NOT_FOUND");

    let put = alice.put(DD, upload(me, "DEHYDRATED1", "pickle-1")).await.ok();
    assert_eq!(put, json!({ "device_id": "DEHYDRATED1" }));
    let got = alice.get(DD).await.ok();
    assert_eq!(got["device_id"], "DEHYDRATED1");
    assert_eq!(got["device_data"]["device_pickle"], "pickle-1", "{got}");
    assert_eq!(got["device_data"]["algorithm"], "org.matrix.msc3814.v2");

    // Others see it as one of Alice's devices and can claim its keys.
    // (Alice's logged-in device uploaded no keys, so only this one shows.)
    assert_eq!(queried_devices(&bob, me).await, ["DEHYDRATED1"]);
    let claim = bob
        .post(
            "/_matrix/client/v3/keys/claim",
            json!({ "one_time_keys": { me: { "DEHYDRATED1": "signed_curve25519" } } }),
        )
        .await
        .ok();
    let key = &claim["one_time_keys"][me]["DEHYDRATED1"]["signed_curve25519:AAAAAQ"];
    assert_eq!(key["key"], "otk1", "{claim}");

    // A new upload replaces the old device (and its keys).
    alice.put(DD, upload(me, "DEHYDRATED2", "pickle-2")).await.ok();
    assert_eq!(alice.get(DD).await.ok()["device_id"], "DEHYDRATED2");
    assert_eq!(queried_devices(&bob, me).await, ["DEHYDRATED2"], "the first one is gone");

    let deleted = alice.delete(DD, json!({})).await.ok();
    assert_eq!(deleted, json!({ "device_id": "DEHYDRATED2" }));
    alice.get(DD).await.expect_err(404, "M_NOT_FOUND");
    assert!(queried_devices(&bob, me).await.is_empty());
    let devices = alice.get("/_matrix/client/v3/devices").await.ok();
    let ids: Vec<&str> = devices["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .filter_map(|d| d["device_id"].as_str())
        .collect();
    assert_eq!(ids, [own_device.as_str()], "only the logged-in device is left");
}

#[tokio::test]
async fn bad_dehydrated_device_uploads_are_refused() {
    let s = TestServer::start();
    let (alice, reg) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let me = "@alice:localhost";
    let own_device = reg["device_id"].as_str().expect("device_id");

    let mut keys_for_other_device = upload(me, "DEHYDRATED1", "p");
    keys_for_other_device["device_keys"]["device_id"] = json!("ELSEWHERE");
    alice.put(DD, keys_for_other_device).await.expect_err(400, "M_BAD_JSON");
    alice.put(DD, upload("@bob:localhost", "DEHYDRATED1", "p")).await.expect_err(400, "M_BAD_JSON");
    let mut no_data = upload(me, "DEHYDRATED1", "p");
    no_data.as_object_mut().expect("object").remove("device_data");
    alice.put(DD, no_data).await.expect_err(400, "M_BAD_JSON");
    let mut bad_otk = upload(me, "DEHYDRATED1", "p");
    bad_otk["one_time_keys"] = json!({ "no-algorithm": "k" });
    alice.put(DD, bad_otk).await.expect_err(400, "M_BAD_JSON");
    // A logged-in device never becomes the dehydrated one.
    alice.put(DD, upload(me, own_device, "p")).await.expect_err(400, "M_INVALID_PARAM");
    let login = s.client().login("alice", "pw-alice-1").await.ok();
    let second = login["device_id"].as_str().expect("device_id");
    alice.put(DD, upload(me, second, "p")).await.expect_err(400, "M_INVALID_PARAM");
    alice.get(DD).await.expect_err(404, "M_NOT_FOUND");
    // Nobody reads another user's dehydrated inbox.
    alice.put(DD, upload(me, "DEHYDRATED1", "p")).await.ok();
    bob.post(&format!("{DD}/DEHYDRATED1/events"), json!({})).await.expect_err(403, "M_FORBIDDEN");
    alice
        .post(&format!("{DD}/DEHYDRATED1/events"), json!({ "next_batch": "not-a-token" }))
        .await
        .expect_err(400, "M_INVALID_PARAM");
    alice
        .post(&format!("{DD}/{own_device}/events"), json!({}))
        .await
        .expect_err(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn the_dehydrated_inbox_is_read_in_batches_and_acknowledged() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let me = "@alice:localhost";
    alice.put(DD, upload(me, "DEHYDRATED1", "p")).await.ok();

    // Bob's device sends 120 to-device messages to the dehydrated device.
    let sends = (0..120).map(|i| {
        let bob = bob.clone();
        async move {
            bob.put(
                &format!("/_matrix/client/v3/sendToDevice/m.room.encrypted/txn{i}"),
                json!({ "messages": { me: { "DEHYDRATED1": { "n": i } } } }),
            )
            .await
        }
    });
    for r in join_all(sends).await {
        r.ok();
    }
    let numbers = |v: &Value| -> Vec<u64> {
        v["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter_map(|e| e["content"]["n"].as_u64())
            .collect()
    };
    let events = format!("{DD}/DEHYDRATED1/events");
    let first = alice.post(&events, json!({})).await.ok();
    let mut got = numbers(&first);
    assert_eq!(got.len(), 100, "a batch holds 100: {}", got.len());
    assert_eq!(first["events"][0]["sender"], "@bob:localhost");
    assert_eq!(first["events"][0]["type"], "m.room.encrypted");
    let token = first["next_batch"].as_str().expect("next_batch").to_owned();
    // The same request again (a lost response) gets the same batch.
    assert_eq!(numbers(&alice.post(&events, json!({})).await.ok()), got);

    let second = alice.post(&events, json!({ "next_batch": token })).await.ok();
    got.extend(numbers(&second));
    got.sort_unstable();
    assert_eq!(got, (0..120).collect::<Vec<u64>>(), "every message exactly once");
    let token = second["next_batch"].as_str().expect("next_batch").to_owned();
    let done = alice.post(&events, json!({ "next_batch": token.clone() })).await.ok();
    assert_eq!(done["events"], json!([]), "the inbox is drained: {done}");
    assert!(done["next_batch"].is_string());
    // What was acknowledged is gone: starting over finds nothing.
    assert_eq!(alice.post(&events, json!({})).await.ok()["events"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_sdk_reads_the_dehydrated_device_endpoints() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    alice.put(DD, upload("@alice:localhost", "DEHYDRATED1", "p")).await.ok();
    let sdk = SdkClient::builder().homeserver_url(&s.base).build().await.expect("client");
    sdk.matrix_auth().login_username("alice", "pw-alice-1").send().await.expect("login");
    // The SDK's own request and response types (ruma) parse what we send.
    let got = sdk.send(get_dehydrated_device::unstable::Request::new()).await.expect("GET");
    assert_eq!(got.device_id, device_id!("DEHYDRATED1"));
    let device: OwnedDeviceId = got.device_id;
    let events =
        sdk.send(get_events::unstable::Request::new(device.clone())).await.expect("events");
    assert!(events.events.is_empty());
    assert!(events.next_batch.is_some());
    let deleted =
        sdk.send(delete_dehydrated_device::unstable::Request::new()).await.expect("DELETE");
    assert_eq!(deleted.device_id, device);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_rehydrates_the_device_it_dehydrated() {
    use matrix_sdk::ruma::api::client::dehydrated_device::put_dehydrated_device;
    use matrix_sdk_crypto::OlmMachine;
    use matrix_sdk_crypto::store::types::DehydratedDeviceKey;

    let s = TestServer::start();
    let (http, _) = s.client().register("alice", "pw-alice-1").await;
    let sdk = SdkClient::builder().homeserver_url(&s.base).build().await.expect("client");
    sdk.matrix_auth().login_username("alice", "pw-alice-1").send().await.expect("login");
    let user_id = sdk.user_id().expect("logged in").to_owned();
    let device_id = sdk.device_id().expect("device").to_owned();

    // The SDK's crypto machine makes a dehydrated device and its upload
    // (device keys signed by the user, one-time and fallback keys, the
    // device pickled with a key only the user holds); the server accepts
    // it as it is.
    let machine = OlmMachine::new(&user_id, &device_id).await;
    // The device is signed with the user's self-signing key, so the
    // machine needs a cross-signing identity (kept local here).
    machine.bootstrap_cross_signing(false).await.expect("cross-signing identity");
    let pickle_key = DehydratedDeviceKey::new();
    let dehydrated = machine.dehydrated_devices().create().await.expect("create");
    let upload: put_dehydrated_device::unstable::Request =
        dehydrated.keys_for_upload("Dehydrated device".into(), &pickle_key).await.expect("keys");
    let dehydrated_id = upload.device_id.clone();
    let put = sdk.send(upload).await.expect("PUT dehydrated_device");
    assert_eq!(put.device_id, dehydrated_id);
    let q = http
        .post(
            "/_matrix/client/v3/keys/query",
            json!({ "device_keys": { user_id.as_str(): [dehydrated_id.as_str()] } }),
        )
        .await
        .ok();
    let keys = &q["device_keys"][user_id.as_str()][dehydrated_id.as_str()];
    assert_eq!(keys["dehydrated"], true, "{q}");
    let counts = http
        .post(
            "/_matrix/client/v3/keys/claim",
            json!({ "one_time_keys": { user_id.as_str(): { dehydrated_id.as_str(): "signed_curve25519" } } }),
        )
        .await
        .ok();
    assert!(
        counts["one_time_keys"][user_id.as_str()][dehydrated_id.as_str()].is_object(),
        "{counts}"
    );

    // A later device downloads it and unpickles it with the key: the
    // server kept `device_data` intact.
    let got = sdk.send(get_dehydrated_device::unstable::Request::new()).await.expect("GET");
    assert_eq!(got.device_id, dehydrated_id);
    machine
        .dehydrated_devices()
        .rehydrate(&pickle_key, &got.device_id, got.device_data)
        .await
        .expect("the SDK rehydrates the device from what the server returned");
    let inbox = sdk.send(get_events::unstable::Request::new(dehydrated_id)).await.expect("events");
    assert!(inbox.events.is_empty());
}
