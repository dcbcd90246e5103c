//! Mutual rooms, user directory, reports, TURN, third-party, whois, OpenID.

use std::process::Command;

use serde_json::json;

use crate::support::TestServer;

#[tokio::test]
async fn mutual_rooms_lists_only_rooms_both_are_in() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let shared =
        alice.post("/_matrix/client/v3/createRoom", json!({ "preset": "public_chat" })).await.ok()
            ["room_id"]
            .as_str()
            .expect("r")
            .to_owned();
    alice.post("/_matrix/client/v3/createRoom", json!({})).await.ok();
    bob.post(&format!("/_matrix/client/v3/join/{shared}"), json!({})).await.ok();
    let m = alice.get("/_matrix/client/v1/mutual_rooms?user_id=@bob:localhost").await.ok();
    assert_eq!(m["joined"], json!([shared]));
    assert_eq!(m["count"], 1);
    alice
        .get("/_matrix/client/v1/mutual_rooms?user_id=@alice:localhost")
        .await
        .expect_err(400, "M_INVALID_PARAM");
    alice.get("/_matrix/client/v1/mutual_rooms").await.expect_err(400, "M_MISSING_PARAM");
}

#[tokio::test]
async fn the_user_directory_finds_room_mates_by_name_but_not_strangers() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    s.client().register("hermit", "pw-hermit-1").await;
    bob.put(
        "/_matrix/client/v3/profile/@bob:localhost/displayname",
        json!({ "displayname": "Bobby Tables" }),
    )
    .await
    .ok();
    let r = alice
        .post("/_matrix/client/v3/createRoom", json!({ "invite": ["@bob:localhost"] }))
        .await
        .ok()["room_id"]
        .as_str()
        .expect("r")
        .to_owned();
    bob.post(&format!("/_matrix/client/v3/join/{r}"), json!({})).await.ok();
    let found = alice
        .post("/_matrix/client/v3/user_directory/search", json!({ "search_term": "tables" }))
        .await
        .ok();
    assert_eq!(found["results"][0]["user_id"], "@bob:localhost");
    assert_eq!(found["results"][0]["display_name"], "Bobby Tables");
    assert_eq!(found["limited"], false);
    let none = alice
        .post("/_matrix/client/v3/user_directory/search", json!({ "search_term": "hermit" }))
        .await
        .ok();
    assert_eq!(none["results"], json!([]));
}

#[tokio::test]
async fn a_directory_searching_all_users_finds_strangers_but_not_the_deactivated() {
    let s = TestServer::start_with(|c| c.user_directory_search_all = true);
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    s.client().register("hermit", "pw-hermit-1").await;
    let (gone, _) = s.client().register("hermitcrab", "pw-crab-1").await;
    gone.post(
        "/_matrix/client/v3/account/deactivate",
        json!({ "auth": { "type": "m.login.password", "identifier": { "type": "m.id.user", "user": "hermitcrab" }, "password": "pw-crab-1" } }),
    )
    .await
    .ok();
    let found = alice
        .post("/_matrix/client/v3/user_directory/search", json!({ "search_term": "hermit" }))
        .await
        .ok();
    assert_eq!(
        found["results"],
        json!([{ "user_id": "@hermit:localhost", "display_name": "hermit" }]),
        "{found}"
    );
}

#[tokio::test]
async fn reports_are_filed_and_listed_by_the_admin_command() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let r =
        alice.post("/_matrix/client/v3/createRoom", json!({ "preset": "public_chat" })).await.ok()
            ["room_id"]
            .as_str()
            .expect("r")
            .to_owned();
    let ev = alice
        .put(
            &format!("/_matrix/client/v3/rooms/{r}/send/m.room.message/t"),
            json!({ "body": "rude" }),
        )
        .await
        .ok()["event_id"]
        .as_str()
        .expect("e")
        .to_owned();
    // Not in the room: 404, as the spec says.
    bob.post(&format!("/_matrix/client/v3/rooms/{r}/report/{ev}"), json!({ "reason": "rude" }))
        .await
        .expect_err(404, "M_NOT_FOUND");
    bob.post(&format!("/_matrix/client/v3/join/{r}"), json!({})).await.ok();
    bob.post(
        &format!("/_matrix/client/v3/rooms/{r}/report/{ev}"),
        json!({ "reason": "rude words" }),
    )
    .await
    .ok();
    bob.post(&format!("/_matrix/client/v3/rooms/{r}/report"), json!({ "reason": "bad room" }))
        .await
        .ok();
    bob.post("/_matrix/client/v3/users/@alice:localhost/report", json!({ "reason": "bad user" }))
        .await
        .ok();
    bob.post("/_matrix/client/v3/users/@nobody:localhost/report", json!({ "reason": "x" }))
        .await
        .expect_err(404, "M_NOT_FOUND");
    let dir = s.dir.clone();
    let temp = s.stop();
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["reports", "list", "--data-dir"])
        .arg(&dir)
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("rude words") && text.contains("bad room") && text.contains("bad user"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 3, "{text}");
    drop(temp);
}

#[tokio::test]
async fn turn_thirdparty_and_whois_answer() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    assert_eq!(alice.get("/_matrix/client/v3/voip/turnServer").await.ok(), json!({}));
    assert_eq!(alice.get("/_matrix/client/v3/thirdparty/protocols").await.ok(), json!({}));
    alice.get("/_matrix/client/v3/thirdparty/protocol/irc").await.expect_err(404, "M_NOT_FOUND");
    let me = alice.get("/_matrix/client/v3/admin/whois/@alice:localhost").await.ok();
    assert_eq!(me["user_id"], "@alice:localhost");
    assert_eq!(me["devices"].as_object().map(|d| d.len()), Some(1));
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    bob.get("/_matrix/client/v3/admin/whois/@alice:localhost").await.expect_err(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn openid_tokens_prove_who_a_user_is_and_nothing_more() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let t = alice
        .post("/_matrix/client/v3/user/@alice:localhost/openid/request_token", json!({}))
        .await
        .ok();
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["matrix_server_name"], "localhost");
    assert_eq!(t["expires_in"], 3600);
    let token = t["access_token"].as_str().expect("token");
    let info = s
        .client()
        .get(&format!("/_matrix/federation/v1/openid/userinfo?access_token={token}"))
        .await
        .ok();
    assert_eq!(info["sub"], "@alice:localhost");
    s.client()
        .get("/_matrix/federation/v1/openid/userinfo?access_token=nope")
        .await
        .expect_err(401, "M_UNKNOWN_TOKEN");
    // It is no access token for the client API.
    s.client()
        .with_token(token)
        .get("/_matrix/client/v3/sync")
        .await
        .expect_err(401, "M_UNKNOWN_TOKEN");
    alice
        .post("/_matrix/client/v3/user/@bob:localhost/openid/request_token", json!({}))
        .await
        .expect_err(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn the_support_well_known_names_the_configured_contact() {
    let s = TestServer::start();
    s.client().get("/.well-known/matrix/support").await.expect_err(404, "M_NOT_FOUND");
    let s = TestServer::start_with(|c| c.admin_contact = Some("mailto:admin@example.org".into()));
    let v = s.client().get("/.well-known/matrix/support").await.ok();
    assert_eq!(v["contacts"][0]["email_address"], "admin@example.org");
    assert_eq!(v["contacts"][0]["role"], "m.role.admin");
    let s = TestServer::start_with(|c| c.admin_contact = Some("@root:localhost".into()));
    let v = s.client().get("/.well-known/matrix/support").await.ok();
    assert_eq!(v["contacts"][0]["matrix_id"], "@root:localhost");
}
