//! Device management.

use serde_json::json;

use crate::support::TestServer;

#[tokio::test]
async fn devices_are_listed_renamed_and_read_back() {
    let s = TestServer::start();
    let c = s.client();
    let (me, reg) = c.register("wes", "pw-wes-1").await;
    let id = reg["device_id"].as_str().expect("device");
    me.put(
        &format!("/_matrix/client/v3/devices/{id}"),
        json!({ "display_name": "Kitchen tablet" }),
    )
    .await
    .ok();
    let d = me.get(&format!("/_matrix/client/v3/devices/{id}")).await.ok();
    assert_eq!(d["display_name"], "Kitchen tablet");
    let all = me.get("/_matrix/client/v3/devices").await.ok();
    assert_eq!(all["devices"][0]["device_id"], id);
    me.get("/_matrix/client/v3/devices/NOPE").await.expect_err(404, "M_NOT_FOUND");
    me.put("/_matrix/client/v3/devices/NOPE", json!({ "display_name": "x" }))
        .await
        .expect_err(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn deleting_a_device_needs_uia_and_kills_its_tokens() {
    let s = TestServer::start();
    let c = s.client();
    let (me, _) = c.register("xia", "pw-xia-1").await;
    let login = c.login("xia", "pw-xia-1").await.ok();
    let other = c.with_token(login["access_token"].as_str().expect("t"));
    let victim = login["device_id"].as_str().expect("d").to_owned();
    let first = me.delete(&format!("/_matrix/client/v3/devices/{victim}"), json!({})).await;
    assert_eq!(first.status, 401);
    assert_eq!(first.body["flows"], json!([{ "stages": ["m.login.password"] }]));
    other.get("/_matrix/client/v3/account/whoami").await.ok();
    let session = first.body["session"].as_str().expect("session");
    me.delete(&format!("/_matrix/client/v3/devices/{victim}"), json!({ "auth": { "type": "m.login.password",
        "session": session, "password": "pw-xia-1", "identifier": { "type": "m.id.user", "user": "xia" } } }))
        .await
        .ok();
    let r = other.get("/_matrix/client/v3/account/whoami").await;
    r.expect_err(401, "M_UNKNOWN_TOKEN");
    assert_eq!(r.body["soft_logout"], false, "the device is gone, not just the token");
    me.get(&format!("/_matrix/client/v3/devices/{victim}")).await.expect_err(404, "M_NOT_FOUND");
}

#[tokio::test]
async fn delete_devices_removes_several_at_once() {
    let s = TestServer::start();
    let c = s.client();
    let (me, _) = c.register("yan", "pw-yan-1").await;
    let a = c.login("yan", "pw-yan-1").await.ok()["device_id"].as_str().expect("d").to_owned();
    let b = c.login("yan", "pw-yan-1").await.ok()["device_id"].as_str().expect("d").to_owned();
    let first = me.post("/_matrix/client/v3/delete_devices", json!({ "devices": [a, b] })).await;
    let session = first.body["session"].as_str().expect("session");
    me.post("/_matrix/client/v3/delete_devices", json!({ "devices": [a, b], "auth": { "type": "m.login.password",
        "session": session, "password": "pw-yan-1", "identifier": { "type": "m.id.user", "user": "yan" } } }))
        .await
        .ok();
    let all = me.get("/_matrix/client/v3/devices").await.ok();
    assert_eq!(all["devices"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_user_cannot_authenticate_as_someone_else_to_delete_devices() {
    let s = TestServer::start();
    let c = s.client();
    let (me, reg) = c.register("zed", "pw-zed-1").await;
    c.register("amy", "pw-amy-1").await;
    let id = reg["device_id"].as_str().expect("d");
    let first = me.delete(&format!("/_matrix/client/v3/devices/{id}"), json!({})).await;
    let session = first.body["session"].as_str().expect("session");
    let r = me
        .delete(&format!("/_matrix/client/v3/devices/{id}"), json!({ "auth": { "type": "m.login.password",
            "session": session, "password": "pw-amy-1", "identifier": { "type": "m.id.user", "user": "amy" } } }))
        .await;
    assert_eq!(r.status, 401);
    me.get("/_matrix/client/v3/account/whoami").await.ok();
}
