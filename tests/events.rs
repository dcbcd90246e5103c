//! Building events from client requests: the spec's size limits, integer-only
//! JSON, annotation dedup and the fields the server owns in `createRoom`.

use serde_json::{Value, json};

use crate::support::{Client, TestServer, room};

/// Sends `content` as `event_type`; returns the response.
async fn send_event(
    c: &Client,
    room: &str,
    event_type: &str,
    txn: &str,
    content: Value,
) -> crate::support::Resp {
    c.put(&format!("/_matrix/client/v3/rooms/{room}/send/{event_type}/{txn}"), content).await
}

#[tokio::test]
async fn events_over_64_kib_are_refused_as_too_large_on_every_path() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let room_id = room(&alice, json!({})).await;
    // Well under the limit once the PDU's other fields are added.
    let fits = json!({ "msgtype": "m.text", "body": "a".repeat(60_000) });
    send_event(&alice, &room_id, "m.room.message", "t0", fits).await.ok();
    for (i, size) in [70_000, 300_000, 1_000_000].into_iter().enumerate() {
        let big = json!({ "msgtype": "m.text", "body": "a".repeat(size) });
        send_event(&alice, &room_id, "m.room.message", &format!("t{}", i + 1), big)
            .await
            .expect_err(413, "M_TOO_LARGE");
    }
    // The PDU is measured, not the content: content that fits alone but not
    // with the event around it is refused too.
    let edge = json!({ "body": "a".repeat(65_500) });
    send_event(&alice, &room_id, "m.room.message", "t9", edge).await.expect_err(413, "M_TOO_LARGE");
    alice
        .put(
            &format!("/_matrix/client/v3/rooms/{room_id}/state/m.room.topic/"),
            json!({ "topic": "t".repeat(70_000) }),
        )
        .await
        .expect_err(413, "M_TOO_LARGE");
    let event_id = send_event(&alice, &room_id, "m.room.message", "t10", json!({ "body": "x" }))
        .await
        .ok()["event_id"]
        .as_str()
        .expect("event_id")
        .to_owned();
    alice
        .put(
            &format!("/_matrix/client/v3/rooms/{room_id}/redact/{event_id}/r1"),
            json!({ "reason": "r".repeat(70_000) }),
        )
        .await
        .expect_err(413, "M_TOO_LARGE");
    alice
        .post(
            "/_matrix/client/v3/createRoom",
            json!({ "initial_state": [
                { "type": "m.room.topic", "state_key": "", "content": { "topic": "t".repeat(70_000) } }
            ] }),
        )
        .await
        .expect_err(413, "M_TOO_LARGE");
    // Nothing refused reached the timeline.
    let messages = alice
        .get(&format!("/_matrix/client/v3/rooms/{room_id}/messages?dir=b&limit=50"))
        .await
        .ok();
    let chunk = messages["chunk"].as_array().expect("chunk");
    let longest = chunk
        .iter()
        .filter_map(|e| e["content"]["body"].as_str().or(e["content"]["topic"].as_str()))
        .map(str::len)
        .max();
    assert_eq!(longest, Some(60_000), "{messages}");
}

#[tokio::test]
async fn event_types_and_state_keys_over_255_bytes_are_refused() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let room_id = room(&alice, json!({})).await;
    let long = "x".repeat(256);
    let just_fits = "x".repeat(255);
    send_event(&alice, &room_id, &long, "t1", json!({})).await.expect_err(413, "M_TOO_LARGE");
    send_event(&alice, &room_id, &just_fits, "t2", json!({})).await.ok();
    alice
        .put(&format!("/_matrix/client/v3/rooms/{room_id}/state/m.custom/{long}"), json!({}))
        .await
        .expect_err(413, "M_TOO_LARGE");
    alice
        .put(&format!("/_matrix/client/v3/rooms/{room_id}/state/{long}/"), json!({}))
        .await
        .expect_err(413, "M_TOO_LARGE");
    alice
        .put(&format!("/_matrix/client/v3/rooms/{room_id}/state/m.custom/{just_fits}"), json!({}))
        .await
        .ok();
    alice
        .post(
            "/_matrix/client/v3/createRoom",
            json!({ "initial_state": [{ "type": "m.custom", "state_key": long, "content": {} }] }),
        )
        .await
        .expect_err(413, "M_TOO_LARGE");
}

/// `PUT path` with `body` sent as given (not re-encoded), as `c`.
async fn put_raw(c: &Client, path: &str, body: &'static str) -> crate::support::Resp {
    raw(c, reqwest::Method::PUT, path, body).await
}

async fn raw(
    c: &Client,
    method: reqwest::Method,
    path: &str,
    body: &'static str,
) -> crate::support::Resp {
    let r = c
        .http
        .request(method, format!("{}{path}", c.base))
        .bearer_auth(c.token.as_deref().expect("logged in"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request");
    let status = r.status();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    crate::support::Resp { status, body, headers }
}

/// A reaction with `key` to `parent`.
fn reaction(parent: &str, key: &str) -> Value {
    json!({ "m.relates_to": { "rel_type": "m.annotation", "event_id": parent, "key": key } })
}

#[tokio::test]
async fn the_same_annotation_twice_is_refused_until_the_first_is_redacted() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let room_id = room(&alice, json!({ "preset": "public_chat" })).await;
    bob.post(&format!("/_matrix/client/v3/join/{room_id}"), json!({})).await.ok();
    let parent = crate::support::send(&alice, &room_id, "m1", "lunch?").await;
    let first =
        send_event(&alice, &room_id, "m.reaction", "r1", reaction(&parent, "👍")).await.ok();
    send_event(&alice, &room_id, "m.reaction", "r2", reaction(&parent, "👍"))
        .await
        .expect_err(400, "M_DUPLICATE_ANNOTATION");
    // A retransmission is the same request, not a duplicate.
    let again =
        send_event(&alice, &room_id, "m.reaction", "r1", reaction(&parent, "👍")).await.ok();
    assert_eq!(again["event_id"], first["event_id"]);
    // Another key, or another sender, is another annotation.
    send_event(&alice, &room_id, "m.reaction", "r3", reaction(&parent, "🎉")).await.ok();
    send_event(&bob, &room_id, "m.reaction", "r1", reaction(&parent, "👍")).await.ok();
    // Two at once: exactly one is stored.
    let (a, b) = tokio::join!(
        send_event(&bob, &room_id, "m.reaction", "c1", reaction(&parent, "🍕")),
        send_event(&bob, &room_id, "m.reaction", "c2", reaction(&parent, "🍕")),
    );
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 400], "{} / {}", a.body, b.body);
    // Once the first is redacted the reaction can be sent again.
    let first_id = first["event_id"].as_str().expect("event_id");
    alice
        .put(&format!("/_matrix/client/v3/rooms/{room_id}/redact/{first_id}/x1"), json!({}))
        .await
        .ok();
    send_event(&alice, &room_id, "m.reaction", "r4", reaction(&parent, "👍")).await.ok();
    let relations = alice
        .get(&format!(
            "/_matrix/client/v1/rooms/{room_id}/relations/{parent}/m.annotation/m.reaction"
        ))
        .await
        .ok();
    let count = |sender: &str, key: &str| {
        relations["chunk"]
            .as_array()
            .expect("chunk")
            .iter()
            .filter(|e| e["sender"] == sender && e["content"]["m.relates_to"]["key"] == key)
            .count()
    };
    assert_eq!(count("@alice:localhost", "👍"), 1, "{relations}");
    assert_eq!(count("@bob:localhost", "🍕"), 1, "{relations}");
}

#[tokio::test]
async fn numbers_with_a_fraction_or_exponent_are_refused_wherever_json_becomes_an_event() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let room_id = room(&alice, json!({})).await;
    let send = format!("/_matrix/client/v3/rooms/{room_id}/send/m.custom/");
    let state = format!("/_matrix/client/v3/rooms/{room_id}/state/m.custom/");
    for (i, body) in [r#"{"n": 1E2}"#, r#"{"n": 1e2}"#, r#"{"a": [{"n": 1.0}]}"#, r#"{"n": 1.5}"#]
        .into_iter()
        .enumerate()
    {
        put_raw(&alice, &format!("{send}t{i}"), body).await.expect_err(400, "M_BAD_JSON");
        put_raw(&alice, &state, body).await.expect_err(400, "M_BAD_JSON");
    }
    for body in [
        r#"{"initial_state": [{"type": "m.custom", "content": {"n": 2E0}}]}"#,
        r#"{"power_level_content_override": {"users_default": 1E1}}"#,
        r#"{"creation_content": {"n": 1e0}}"#,
    ] {
        raw(&alice, reqwest::Method::POST, "/_matrix/client/v3/createRoom", body)
            .await
            .expect_err(400, "M_BAD_JSON");
    }
    // Integers pass as written; `-0` is the integer 0.
    let sent =
        put_raw(&alice, &format!("{send}ok"), r#"{"n": 100, "z": -0, "s": "1E2"}"#).await.ok();
    let event_id = sent["event_id"].as_str().expect("event_id");
    let event =
        alice.get(&format!("/_matrix/client/v3/rooms/{room_id}/event/{event_id}")).await.ok();
    assert_eq!(event["content"], json!({ "n": 100, "z": 0, "s": "1E2" }));
    assert!(event["content"]["z"].is_i64() || event["content"]["z"].is_u64(), "{event}");
}

#[tokio::test]
async fn an_absent_event_body_is_not_json() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let room_id = room(&alice, json!({})).await;
    put_raw(&alice, &format!("/_matrix/client/v3/rooms/{room_id}/send/m.room.message/t1"), "")
        .await
        .expect_err(400, "M_NOT_JSON");
    put_raw(&alice, &format!("/_matrix/client/v3/rooms/{room_id}/state/m.custom/"), "  ")
        .await
        .expect_err(400, "M_NOT_JSON");
    let messages = alice
        .get(&format!("/_matrix/client/v3/rooms/{room_id}/messages?dir=b&limit=50"))
        .await
        .ok();
    let types: Vec<&Value> =
        messages["chunk"].as_array().expect("chunk").iter().map(|e| &e["type"]).collect();
    assert!(!types.iter().any(|t| *t == "m.room.message" || *t == "m.custom"), "{messages}");
}

/// The content of the room's create event.
async fn create_content(c: &Client, room_id: &str) -> Value {
    c.get(&format!("/_matrix/client/v3/rooms/{room_id}/state/m.room.create/")).await.ok()
}

#[tokio::test]
async fn the_server_owns_the_creator_field_of_the_create_event() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    for version in ["11", "12"] {
        let room_id = room(
            &alice,
            json!({
                "room_version": version,
                "creation_content": { "creator": "@mallory:localhost", "m.federate": false },
            }),
        )
        .await;
        let content = create_content(&alice, &room_id).await;
        assert!(content.get("creator").is_none(), "v{version}: {content}");
        assert_eq!(content["m.federate"], false, "v{version}: {content}");
    }
    let room_id = room(
        &alice,
        json!({ "room_version": "10", "creation_content": { "creator": "@mallory:localhost" } }),
    )
    .await;
    assert_eq!(create_content(&alice, &room_id).await["creator"], "@alice:localhost");
}

#[tokio::test]
async fn trusted_private_chat_makes_invitees_additional_creators_from_v12() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let room_id = room(
        &alice,
        json!({
            "room_version": "12",
            "preset": "trusted_private_chat",
            "invite": ["@bob:localhost"],
            "creation_content": { "additional_creators": ["@carol:localhost", "@bob:localhost"] },
        }),
    )
    .await;
    let content = create_content(&alice, &room_id).await;
    assert_eq!(content["additional_creators"], json!(["@carol:localhost", "@bob:localhost"]));
    let room_id = room(
        &alice,
        json!({ "room_version": "12", "preset": "trusted_private_chat", "invite": ["@bob:localhost"] }),
    )
    .await;
    let content = create_content(&alice, &room_id).await;
    assert_eq!(content["additional_creators"], json!(["@bob:localhost"]));
    // As a creator Bob may change the power levels once he has joined.
    bob.post(&format!("/_matrix/client/v3/join/{room_id}"), json!({})).await.ok();
    let levels_path = format!("/_matrix/client/v3/rooms/{room_id}/state/m.room.power_levels/");
    let mut levels = alice.get(&levels_path).await.ok();
    assert!(levels["users"].get("@bob:localhost").is_none(), "{levels}");
    levels["state_default"] = json!(60);
    bob.put(&levels_path, levels).await.ok();
    // Before v12 the invitees get the creator's power level instead.
    let room_id = room(
        &alice,
        json!({ "room_version": "11", "preset": "trusted_private_chat", "invite": ["@bob:localhost"] }),
    )
    .await;
    assert!(create_content(&alice, &room_id).await.get("additional_creators").is_none());
    let levels = alice
        .get(&format!("/_matrix/client/v3/rooms/{room_id}/state/m.room.power_levels/"))
        .await
        .ok();
    assert_eq!(levels["users"]["@bob:localhost"], 100, "{levels}");
}
