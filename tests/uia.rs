//! User-interactive authentication: sessions, replay, fallback pages.

use serde_json::json;

use crate::support::TestServer;

#[tokio::test]
async fn a_session_started_for_one_request_cannot_authorise_another() {
    let s = TestServer::start();
    let c = s.client();
    let (me, _) = c.register("pia", "pw-pia-1").await;
    // A registration session, completed with dummy auth…
    let first = c
        .post("/_matrix/client/v3/register", json!({ "username": "quinn", "password": "pw" }))
        .await;
    let session = first.body["session"].as_str().expect("session").to_owned();
    // …cannot be spent on a password change.
    me.post(
        "/_matrix/client/v3/account/password",
        json!({ "new_password": "x",
        "auth": { "type": "m.login.dummy", "session": session } }),
    )
    .await
    .expect_err(403, "M_FORBIDDEN");
}

#[tokio::test]
async fn a_completed_session_is_consumed_by_its_request() {
    let s = TestServer::start();
    let c = s.client();
    let first = c
        .post("/_matrix/client/v3/register", json!({ "username": "rae", "password": "pw-rae" }))
        .await;
    let session = first.body["session"].as_str().expect("session").to_owned();
    c.post(
        "/_matrix/client/v3/register",
        json!({ "username": "rae", "password": "pw-rae",
        "auth": { "type": "m.login.dummy", "session": session } }),
    )
    .await
    .ok();
    // Replaying the session for another account starts over: it is gone.
    let replay = c
        .post(
            "/_matrix/client/v3/register",
            json!({ "username": "sam", "password": "pw-sam",
            "auth": { "session": session } }),
        )
        .await;
    assert_eq!(replay.status, 401, "{}", replay.body);
    assert_ne!(replay.body["session"], session.as_str());
}

#[tokio::test]
async fn a_stage_that_is_not_offered_is_refused_with_the_flows() {
    let s = TestServer::start();
    let c = s.client();
    let r = c
        .post(
            "/_matrix/client/v3/register",
            json!({ "username": "tom", "password": "pw",
            "auth": { "type": "m.login.recaptcha", "response": "x" } }),
        )
        .await;
    assert_eq!(r.status, 401);
    assert!(r.body["errcode"].is_string());
    assert!(r.body["flows"].is_array());
}

#[tokio::test]
async fn the_fallback_page_completes_a_stage_and_signals_the_client() {
    let s = TestServer::start();
    let c = s.client();
    let first = c
        .post("/_matrix/client/v3/register", json!({ "username": "uma", "password": "pw-uma" }))
        .await;
    let session = first.body["session"].as_str().expect("session").to_owned();
    let page = c
        .http
        .get(format!(
            "{}/_matrix/client/v3/auth/m.login.dummy/fallback/web?session={session}",
            s.base
        ))
        .send()
        .await
        .expect("get");
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().expect("ct").starts_with("text/html"));
    let html = page.text().await.expect("text");
    assert!(html.contains("<form"), "{html}");
    let done = c
        .http
        .post(format!("{}/_matrix/client/v3/auth/m.login.dummy/fallback/web", s.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("session={session}"))
        .send()
        .await
        .expect("post");
    assert_eq!(done.status(), 200);
    let html = done.text().await.expect("text");
    assert!(
        html.contains("window.onAuthDone()") && html.contains("postMessage(\"authDone\""),
        "{html}"
    );
    // The client resubmits with just the session.
    let body = c
        .post(
            "/_matrix/client/v3/register",
            json!({ "username": "uma", "password": "pw-uma", "auth": { "session": session } }),
        )
        .await
        .ok();
    assert_eq!(body["user_id"], "@uma:localhost");
}

#[tokio::test]
async fn the_password_fallback_refuses_a_wrong_password() {
    let s = TestServer::start();
    let c = s.client();
    let (me, _) = c.register("vic", "pw-vic-1").await;
    let first =
        me.post("/_matrix/client/v3/account/password", json!({ "new_password": "n" })).await;
    let session = first.body["session"].as_str().expect("session").to_owned();
    let post = |pw: &str| {
        c.http
            .post(format!("{}/_matrix/client/v3/auth/m.login.password/fallback/web", s.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("session={session}&password={pw}"))
            .send()
    };
    assert_eq!(post("wrong").await.expect("post").status(), 401);
    assert_eq!(post("pw-vic-1").await.expect("post").status(), 200);
    me.post(
        "/_matrix/client/v3/account/password",
        json!({ "new_password": "n", "auth": { "session": session } }),
    )
    .await
    .ok();
    c.login("vic", "n").await.ok();
}
