//! Registration, login, refresh tokens, logout, password and deactivation.

use std::time::{Duration, Instant};

use hearth::config::Registration;
use serde_json::json;

use crate::support::TestServer;

#[tokio::test]
async fn open_registration_completes_with_dummy_auth_and_the_token_works() {
    let s = TestServer::start();
    let c = s.client();
    let first = c
        .post("/_matrix/client/v3/register", json!({ "username": "alice", "password": "pw" }))
        .await;
    assert_eq!(first.status, 401);
    assert_eq!(first.body["flows"], json!([{ "stages": ["m.login.dummy"] }]));
    assert!(first.body["session"].is_string());
    assert!(first.body["params"].is_object());
    let (alice, body) = c.register("bob", "pw-bob-1").await;
    assert_eq!(body["user_id"], "@bob:localhost");
    assert!(body["device_id"].is_string());
    let who = alice.get("/_matrix/client/v3/account/whoami").await.ok();
    assert_eq!(who["user_id"], "@bob:localhost");
    assert_eq!(who["device_id"], body["device_id"]);
    assert_eq!(who["is_guest"], false);
}

#[tokio::test]
async fn closed_registration_is_forbidden() {
    let s = TestServer::start_with(|c| c.registration = Registration::Closed);
    s.client()
        .post("/_matrix/client/v3/register", json!({ "username": "alice", "password": "pw" }))
        .await
        .expect_err(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn guest_registration_is_refused() {
    let s = TestServer::start();
    s.client()
        .post("/_matrix/client/v3/register?kind=guest", json!({}))
        .await
        .expect_err(403, "M_GUEST_ACCESS_FORBIDDEN");
}

#[tokio::test]
async fn usernames_are_checked_for_grammar_and_availability() {
    let s = TestServer::start();
    let c = s.client();
    c.get("/_matrix/client/v3/register/available?username=al%20ice")
        .await
        .expect_err(400, "M_INVALID_USERNAME");
    let ok = c.get("/_matrix/client/v3/register/available?username=alice").await.ok();
    assert_eq!(ok["available"], true);
    c.register("alice", "pw-alice-1").await;
    c.get("/_matrix/client/v3/register/available?username=alice")
        .await
        .expect_err(400, "M_USER_IN_USE");
    c.post("/_matrix/client/v3/register", json!({ "username": "alice", "password": "x" }))
        .await
        .expect_err(400, "M_USER_IN_USE");
    c.post("/_matrix/client/v3/register", json!({ "username": "bad*name", "password": "x" }))
        .await
        .expect_err(400, "M_INVALID_USERNAME");
}

#[tokio::test]
async fn inhibit_login_registers_without_a_session() {
    let s = TestServer::start();
    let c = s.client();
    let first = c
        .post(
            "/_matrix/client/v3/register",
            json!({ "username": "carol", "password": "pw-carol", "inhibit_login": true }),
        )
        .await;
    let session = first.body["session"].as_str().expect("session");
    let body = c
        .post(
            "/_matrix/client/v3/register",
            json!({ "username": "carol", "password": "pw-carol", "inhibit_login": true,
                    "auth": { "type": "m.login.dummy", "session": session } }),
        )
        .await
        .ok();
    assert_eq!(body["user_id"], "@carol:localhost");
    assert!(body.get("access_token").is_none(), "{body}");
    assert_eq!(c.login("carol", "pw-carol").await.status, 200);
}

#[tokio::test]
async fn token_registration_needs_a_valid_token_and_counts_uses() {
    let s = TestServer::start_with(|c| c.registration = Registration::Token);
    // Make a token with the admin command's store API while the server runs
    // would be refused (locked); use a fresh server on a prepared directory.
    let dir = s.dir.clone();
    let temp = s.stop();
    {
        let store = hearth::store::Store::open(&dir, 1 << 20, None).expect("open");
        store
            .write_blocking(|ctx| {
                ctx.put_registration_token(
                    "family-2026",
                    &hearth::store::RegistrationTokenRecord {
                        uses_allowed: Some(1),
                        completed: 0,
                        expiry_ms: None,
                        created_ms: 0,
                    },
                )?;
                Ok(Ok::<_, hearth::store::StoreError>(()))
            })
            .expect("token");
        store.shutdown();
    }
    let s = TestServer::start_in(&dir, |c| c.registration = Registration::Token);
    let c = s.client();
    let v = c
        .get("/_matrix/client/v1/register/m.login.registration_token/validity?token=family-2026")
        .await
        .ok();
    assert_eq!(v["valid"], true);
    let v = c
        .get("/_matrix/client/v1/register/m.login.registration_token/validity?token=wrong")
        .await
        .ok();
    assert_eq!(v["valid"], false);

    let first = c
        .post("/_matrix/client/v3/register", json!({ "username": "dave", "password": "pw-dave" }))
        .await;
    assert_eq!(first.body["flows"], json!([{ "stages": ["m.login.registration_token"] }]));
    let session = first.body["session"].as_str().expect("session").to_owned();
    let bad = c
        .post("/_matrix/client/v3/register", json!({ "username": "dave", "password": "pw-dave",
            "auth": { "type": "m.login.registration_token", "token": "wrong", "session": session } }))
        .await;
    assert_eq!(bad.status, 401);
    assert!(bad.body["errcode"].is_string(), "a failed stage carries an error: {}", bad.body);
    assert_eq!(
        bad.body["session"],
        session.as_str(),
        "the stage can be retried in the same session"
    );
    let good = c
        .post("/_matrix/client/v3/register", json!({ "username": "dave", "password": "pw-dave",
            "auth": { "type": "m.login.registration_token", "token": "family-2026", "session": session } }))
        .await
        .ok();
    assert_eq!(good["user_id"], "@dave:localhost");
    // The single use is spent.
    let v = c
        .get("/_matrix/client/v1/register/m.login.registration_token/validity?token=family-2026")
        .await
        .ok();
    assert_eq!(v["valid"], false);
    drop(s);
    drop(temp);
}

#[tokio::test]
async fn login_accepts_user_identifier_full_user_id_and_legacy_user_field() {
    let s = TestServer::start();
    let c = s.client();
    c.register("erin", "pw-erin-1").await;
    assert_eq!(c.login("erin", "pw-erin-1").await.ok()["user_id"], "@erin:localhost");
    assert_eq!(c.login("@erin:localhost", "pw-erin-1").await.ok()["user_id"], "@erin:localhost");
    let legacy = c
        .post(
            "/_matrix/client/v3/login",
            json!({ "type": "m.login.password", "user": "erin", "password": "pw-erin-1" }),
        )
        .await
        .ok();
    assert!(legacy["access_token"].is_string());
    assert!(legacy["device_id"].is_string());
}

#[tokio::test]
async fn login_flows_offer_password_and_other_types_are_refused() {
    let s = TestServer::start();
    let c = s.client();
    let flows = c.get("/_matrix/client/v3/login").await.ok();
    assert_eq!(flows["flows"][0]["type"], "m.login.password");
    let r =
        c.post("/_matrix/client/v3/login", json!({ "type": "m.login.token", "token": "x" })).await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn a_wrong_password_or_unknown_user_is_forbidden() {
    let s = TestServer::start();
    let c = s.client();
    c.register("frank", "pw-frank-1").await;
    c.login("frank", "wrong").await.expect_err(403, "M_FORBIDDEN");
    c.login("nobody", "wrong").await.expect_err(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn repeated_failed_logins_are_rate_limited_with_retry_after() {
    let s = TestServer::start_with(|c| c.login_attempts_per_minute = 3);
    let c = s.client();
    c.register("gina", "pw-gina-1").await;
    for _ in 0..3 {
        c.login("gina", "wrong").await.expect_err(403, "M_FORBIDDEN");
    }
    let r = c.login("gina", "wrong").await;
    r.expect_err(429, "M_LIMIT_EXCEEDED");
    assert!(r.body["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0), "{}", r.body);
    assert!(r.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn logging_in_with_an_existing_device_id_revokes_its_old_token() {
    let s = TestServer::start();
    let c = s.client();
    let (old, reg) = c.register("hank", "pw-hank-1").await;
    let device = reg["device_id"].as_str().expect("device");
    let again = c
        .post("/_matrix/client/v3/login", json!({ "type": "m.login.password",
            "identifier": { "type": "m.id.user", "user": "hank" }, "password": "pw-hank-1", "device_id": device }))
        .await
        .ok();
    assert_eq!(again["device_id"], device);
    old.get("/_matrix/client/v3/account/whoami").await.expect_err(401, "M_UNKNOWN_TOKEN");
    let new = c.with_token(again["access_token"].as_str().expect("token"));
    assert_eq!(new.get("/_matrix/client/v3/account/whoami").await.ok()["device_id"], device);
    let devices = new.get("/_matrix/client/v3/devices").await.ok();
    assert_eq!(devices["devices"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn refresh_rotates_tokens_and_the_old_refresh_token_dies_on_first_use_of_the_new_pair() {
    let s = TestServer::start();
    let c = s.client();
    c.register("ivy", "pw-ivy-1").await;
    let login = c
        .post("/_matrix/client/v3/login", json!({ "type": "m.login.password",
            "identifier": { "type": "m.id.user", "user": "ivy" }, "password": "pw-ivy-1", "refresh_token": true }))
        .await
        .ok();
    assert!(login["expires_in_ms"].as_u64().is_some_and(|ms| ms > 0));
    let r1 = login["refresh_token"].as_str().expect("refresh").to_owned();
    let second = c.post("/_matrix/client/v3/refresh", json!({ "refresh_token": r1 })).await.ok();
    let a2 = second["access_token"].as_str().expect("access").to_owned();
    let r2 = second["refresh_token"].as_str().expect("refresh").to_owned();
    assert_ne!(r1, r2);
    // The client may have lost the answer: the old refresh token still works.
    let third = c.post("/_matrix/client/v3/refresh", json!({ "refresh_token": r1 })).await.ok();
    let a3 = third["access_token"].as_str().expect("access").to_owned();
    // The pair from the lost answer was retired when the old token was reused.
    c.with_token(&a2)
        .get("/_matrix/client/v3/account/whoami")
        .await
        .expect_err(401, "M_UNKNOWN_TOKEN");
    let _ = r2;
    // First use of the newest pair revokes the old refresh token.
    c.with_token(&a3).get("/_matrix/client/v3/account/whoami").await.ok();
    c.post("/_matrix/client/v3/refresh", json!({ "refresh_token": r1 }))
        .await
        .expect_err(401, "M_UNKNOWN_TOKEN");
    // An access token is not a refresh token.
    c.post("/_matrix/client/v3/refresh", json!({ "refresh_token": a3 }))
        .await
        .expect_err(401, "M_UNKNOWN_TOKEN");
}

#[tokio::test]
async fn an_expired_access_token_is_a_soft_logout_and_refresh_recovers() {
    let s = TestServer::start_with(|c| c.access_token_lifetime_ms = 1000);
    let c = s.client();
    c.register("jack", "pw-jack-1").await;
    let login = c
        .post("/_matrix/client/v3/login", json!({ "type": "m.login.password",
            "identifier": { "type": "m.id.user", "user": "jack" }, "password": "pw-jack-1", "refresh_token": true }))
        .await
        .ok();
    let me = c.with_token(login["access_token"].as_str().expect("token"));
    // Await the expiry (a condition, bounded), not a fixed sleep.
    let deadline = Instant::now() + Duration::from_secs(10);
    let expired = loop {
        let r = me.get("/_matrix/client/v3/account/whoami").await;
        if r.status == 401 {
            break r;
        }
        assert!(Instant::now() < deadline, "token never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    expired.expect_err(401, "M_UNKNOWN_TOKEN");
    assert_eq!(expired.body["soft_logout"], true);
    let fresh = c
        .post("/_matrix/client/v3/refresh", json!({ "refresh_token": login["refresh_token"] }))
        .await
        .ok();
    c.with_token(fresh["access_token"].as_str().expect("token"))
        .get("/_matrix/client/v3/account/whoami")
        .await
        .ok();
}

#[tokio::test]
async fn logout_revokes_one_session_and_logout_all_every_session() {
    let s = TestServer::start();
    let c = s.client();
    let (a, _) = c.register("kim", "pw-kim-1").await;
    let b =
        c.with_token(c.login("kim", "pw-kim-1").await.ok()["access_token"].as_str().expect("t"));
    let d =
        c.with_token(c.login("kim", "pw-kim-1").await.ok()["access_token"].as_str().expect("t"));
    a.post("/_matrix/client/v3/logout", json!({})).await.ok();
    a.get("/_matrix/client/v3/account/whoami").await.expect_err(401, "M_UNKNOWN_TOKEN");
    b.get("/_matrix/client/v3/account/whoami").await.ok();
    assert_eq!(
        b.get("/_matrix/client/v3/devices").await.ok()["devices"].as_array().map(Vec::len),
        Some(2)
    );
    b.post("/_matrix/client/v3/logout/all", json!({})).await.ok();
    b.get("/_matrix/client/v3/account/whoami").await.expect_err(401, "M_UNKNOWN_TOKEN");
    d.get("/_matrix/client/v3/account/whoami").await.expect_err(401, "M_UNKNOWN_TOKEN");
}

#[tokio::test]
async fn changing_the_password_needs_the_old_one_and_logs_out_other_devices() {
    let s = TestServer::start();
    let c = s.client();
    let (me, _) = c.register("lena", "old-pass-1").await;
    let other =
        c.with_token(c.login("lena", "old-pass-1").await.ok()["access_token"].as_str().expect("t"));
    let first = me
        .post("/_matrix/client/v3/account/password", json!({ "new_password": "new-pass-2" }))
        .await;
    assert_eq!(first.status, 401);
    assert_eq!(first.body["flows"], json!([{ "stages": ["m.login.password"] }]));
    let session = first.body["session"].as_str().expect("session").to_owned();
    let wrong = me
        .post(
            "/_matrix/client/v3/account/password",
            json!({ "new_password": "new-pass-2",
            "auth": { "type": "m.login.password", "session": session, "password": "nope",
                      "identifier": { "type": "m.id.user", "user": "lena" } } }),
        )
        .await;
    wrong.expect_err(401, "M_FORBIDDEN");
    me.post(
        "/_matrix/client/v3/account/password",
        json!({ "new_password": "new-pass-2",
        "auth": { "type": "m.login.password", "session": session, "password": "old-pass-1",
                  "identifier": { "type": "m.id.user", "user": "lena" } } }),
    )
    .await
    .ok();
    c.login("lena", "old-pass-1").await.expect_err(403, "M_FORBIDDEN");
    c.login("lena", "new-pass-2").await.ok();
    me.get("/_matrix/client/v3/account/whoami").await.ok();
    other.get("/_matrix/client/v3/account/whoami").await.expect_err(401, "M_UNKNOWN_TOKEN");
}

#[tokio::test]
async fn a_deactivated_account_cannot_log_in_and_its_tokens_die() {
    let s = TestServer::start();
    let c = s.client();
    let (me, _) = c.register("mia", "pw-mia-1").await;
    let first = me.post("/_matrix/client/v3/account/deactivate", json!({})).await;
    let session = first.body["session"].as_str().expect("session").to_owned();
    let done = me
        .post("/_matrix/client/v3/account/deactivate", json!({ "auth": { "type": "m.login.password",
            "session": session, "password": "pw-mia-1", "identifier": { "type": "m.id.user", "user": "mia" } } }))
        .await
        .ok();
    assert_eq!(done["id_server_unbind_result"], "no-support");
    me.get("/_matrix/client/v3/account/whoami").await.expect_err(401, "M_UNKNOWN_TOKEN");
    c.login("mia", "pw-mia-1").await.expect_err(403, "M_USER_DEACTIVATED");
    c.get("/_matrix/client/v3/register/available?username=mia")
        .await
        .expect_err(400, "M_USER_IN_USE");
}

#[tokio::test]
async fn third_party_identifiers_are_answered_as_unsupported() {
    let s = TestServer::start();
    let (me, _) = s.client().register("ned", "pw-ned-1").await;
    assert_eq!(me.get("/_matrix/client/v3/account/3pid").await.ok()["threepids"], json!([]));
    me.post(
        "/_matrix/client/v3/account/3pid/email/requestToken",
        json!({ "client_secret": "x", "email": "a@b.c", "send_attempt": 1 }),
    )
    .await
    .expect_err(400, "M_THREEPID_MEDIUM_NOT_SUPPORTED");
    let del = me
        .post(
            "/_matrix/client/v3/account/3pid/delete",
            json!({ "medium": "email", "address": "a@b.c" }),
        )
        .await
        .ok();
    assert_eq!(del["id_server_unbind_result"], "no-support");
}

#[tokio::test]
async fn accounts_and_tokens_survive_a_restart() {
    let s = TestServer::start();
    let (me, reg) = s.client().register("olga", "pw-olga-1").await;
    let token = me.token.clone().expect("token");
    let dir = s.dir.clone();
    let temp = s.stop();
    let s = TestServer::start_in(&dir, |_| {});
    let who = s.client().with_token(&token).get("/_matrix/client/v3/account/whoami").await.ok();
    assert_eq!(who["user_id"], reg["user_id"]);
    s.client().login("olga", "pw-olga-1").await.ok();
    drop(s);
    drop(temp);
}

#[tokio::test]
async fn a_password_guesser_is_slowed_without_locking_the_owner_out() {
    let s = TestServer::start_with(|c| c.login_attempts_per_minute = 3);
    s.client().register("ivy", "pw-ivy-1").await;
    let guesser = s.client_from("127.0.0.2");
    for _ in 0..3 {
        guesser.login("ivy", "wrong").await.expect_err(403, "M_FORBIDDEN");
    }
    let r = guesser.login("ivy", "wrong").await;
    r.expect_err(429, "M_LIMIT_EXCEEDED");
    assert!(r.body["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0), "{}", r.body);
    // The owner, elsewhere, signs in while the guesser waits.
    let owner = s.client_from("127.0.0.3");
    owner.login("ivy", "pw-ivy-1").await.ok();
    guesser.login("ivy", "wrong").await.expect_err(429, "M_LIMIT_EXCEEDED");
}

#[tokio::test]
async fn guessing_spread_over_many_addresses_meets_the_accounts_ceiling() {
    let s = TestServer::start_with(|c| {
        c.login_attempts_per_minute = 10;
        c.login_attempts_per_user_per_minute = 4;
    });
    s.client().register("jude", "pw-jude-1").await;
    for i in 2..6 {
        s.client_from(&format!("127.0.0.{i}"))
            .login("jude", "wrong")
            .await
            .expect_err(403, "M_FORBIDDEN");
    }
    let r = s.client_from("127.0.0.6").login("jude", "wrong").await;
    r.expect_err(429, "M_LIMIT_EXCEEDED");
    // Other accounts are not affected.
    s.client().register("kim", "pw-kim-1").await;
    s.client_from("127.0.0.6").login("kim", "pw-kim-1").await.ok();
}

#[tokio::test]
async fn a_registration_flood_from_one_address_is_rate_limited() {
    let s = TestServer::start_with(|c| c.registrations_per_minute_loopback = 3);
    let flood = s.client_from("127.0.0.2");
    for i in 0..3 {
        flood.register(&format!("bot{i}"), "pw-bot-1").await;
    }
    let r = flood
        .post("/_matrix/client/v3/register", json!({ "username": "bot3", "password": "pw-bot-1" }))
        .await;
    r.expect_err(429, "M_LIMIT_EXCEEDED");
    assert!(r.body["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0), "{}", r.body);
    assert!(r.headers.contains_key("retry-after"));
    // Another address still registers.
    s.client_from("127.0.0.3").register("human", "pw-human-1").await;
}

#[tokio::test]
async fn a_registered_account_gets_its_localpart_as_display_name() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let got = alice.get("/_matrix/client/v3/profile/@alice:localhost/displayname").await.ok();
    assert_eq!(got["displayname"], "alice");
    // The member event of a room she creates carries it too.
    let r = crate::support::room(&alice, json!({})).await;
    let member = alice
        .get(&format!("/_matrix/client/v3/rooms/{r}/state/m.room.member/@alice:localhost"))
        .await
        .ok();
    assert_eq!(member["displayname"], "alice", "{member}");
}
