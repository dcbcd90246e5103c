//! Fields added to events as they are served: the reader's membership at
//! each event (`unsigned.membership`) and both forms of a redaction's
//! `redacts` (top level and `content`), on every endpoint that serves events.

use serde_json::{Value, json};

use crate::support::{Client, TestServer, room, send, urlencode};

/// A room whose history Bob entered part-way: Alice wrote before he was
/// invited, while he was invited, and after he joined.
struct History {
    alice: Client,
    bob: Client,
    room: String,
    /// Alice's message before Bob's invite (also a thread root).
    before: String,
    bob_invite: String,
    /// Alice's message while Bob was invited.
    invited: String,
    /// Alice's reaction to `before`, while Bob was invited.
    reaction: String,
    bob_join: String,
    /// Alice's thread reply to `before`, after Bob joined.
    reply: String,
    /// Alice's message after Bob joined.
    after: String,
}

impl History {
    /// `(event, Bob's membership at it)` for every event of the story.
    fn expected(&self) -> Vec<(&str, &str)> {
        vec![
            (&self.before, "leave"),
            (&self.bob_invite, "invite"),
            (&self.invited, "invite"),
            (&self.reaction, "invite"),
            (&self.bob_join, "join"),
            (&self.reply, "join"),
            (&self.after, "join"),
        ]
        .into_iter()
        .map(|(id, m)| (id.as_str(), m))
        .collect()
    }
}

async fn history(s: &TestServer) -> History {
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let r = room(&alice, json!({ "preset": "private_chat" })).await;
    let before = send(&alice, &r, "b", "wordbefore lunch").await;
    let to_bob = json!({ "user_id": "@bob:localhost" });
    alice.post(&format!("/_matrix/client/v3/rooms/{r}/invite"), to_bob).await.ok();
    let bob_invite = member_event(&alice, &r, "@bob:localhost").await;
    let invited = send(&alice, &r, "i", "wordinvited soup").await;
    let like = json!({ "rel_type": "m.annotation", "event_id": before, "key": "👍" });
    let reaction = send_event(&alice, &r, "m.reaction", json!({ "m.relates_to": like })).await;
    bob.post(&format!("/_matrix/client/v3/join/{r}"), json!({})).await.ok();
    let bob_join = member_event(&alice, &r, "@bob:localhost").await;
    let in_thread = json!({ "rel_type": "m.thread", "event_id": before });
    let reply = json!({ "msgtype": "m.text", "body": "wordreply", "m.relates_to": in_thread });
    let reply = send_event(&alice, &r, "m.room.message", reply).await;
    let after = send(&alice, &r, "a", "wordafter tea").await;
    History { alice, bob, room: r, before, bob_invite, invited, reaction, bob_join, reply, after }
}

/// Sends an event of `event_type` as `c` (transaction ID: the type); returns its ID.
async fn send_event(c: &Client, room: &str, event_type: &str, content: Value) -> String {
    let path = format!("/_matrix/client/v3/rooms/{room}/send/{event_type}/{event_type}");
    let sent = c.put(&path, content).await.ok();
    sent["event_id"].as_str().expect("event_id").to_owned()
}

/// The event ID of `user`'s current member event in `room`.
async fn member_event(c: &Client, room: &str, user: &str) -> String {
    let state = c.get(&format!("/_matrix/client/v3/rooms/{room}/state")).await.ok();
    let state = state.as_array().expect("state");
    let ev = state
        .iter()
        .find(|e| e["type"] == "m.room.member" && e["state_key"] == user)
        .expect("member event");
    ev["event_id"].as_str().expect("event_id").to_owned()
}

/// Asserts each listed event that `events` carries has the given
/// `unsigned.membership`; returns how many of them it carries.
#[track_caller]
fn check_memberships(events: &Value, expected: &[(&str, &str)]) -> usize {
    let events = events.as_array().unwrap_or_else(|| panic!("not an event list: {events}"));
    let mut found = 0;
    for (id, membership) in expected {
        if let Some(e) = events.iter().find(|e| e["event_id"] == *id) {
            assert_eq!(e["unsigned"]["membership"], *membership, "{id}: {e}");
            found += 1;
        }
    }
    found
}

#[tokio::test]
async fn sync_timelines_carry_the_readers_membership_at_each_event() {
    let s = TestServer::start();
    let h = history(&s).await;
    let filter = urlencode(r#"{"room":{"timeline":{"limit":50}}}"#);
    let sync = h.bob.get(&format!("/_matrix/client/v3/sync?filter={filter}")).await.ok();
    let timeline = &sync["rooms"]["join"][h.room.as_str()]["timeline"]["events"];
    assert_eq!(check_memberships(timeline, &h.expected()), 7, "{timeline}");
    // Alice was joined for all of it, her own creation aside.
    let sync = h.alice.get(&format!("/_matrix/client/v3/sync?filter={filter}")).await.ok();
    let timeline = &sync["rooms"]["join"][h.room.as_str()]["timeline"]["events"];
    let all_join: Vec<(&str, &str)> = h.expected().iter().map(|(id, _)| (*id, "join")).collect();
    assert_eq!(check_memberships(timeline, &all_join), 7, "{timeline}");

    // Incremental: a new message, then Bob's leave in the left room.
    let since = h.bob.get("/_matrix/client/v3/sync").await.ok()["next_batch"]
        .as_str()
        .expect("next_batch")
        .to_owned();
    let later = send(&h.alice, &h.room, "l", "later").await;
    let sync = h.bob.get(&format!("/_matrix/client/v3/sync?since={since}")).await.ok();
    let timeline = &sync["rooms"]["join"][h.room.as_str()]["timeline"]["events"];
    assert_eq!(check_memberships(timeline, &[(&later, "join")]), 1, "{timeline}");
    let since = sync["next_batch"].as_str().expect("next_batch").to_owned();
    h.bob.post(&format!("/_matrix/client/v3/rooms/{}/leave", h.room), json!({})).await.ok();
    let sync = h.bob.get(&format!("/_matrix/client/v3/sync?since={since}")).await.ok();
    let timeline = &sync["rooms"]["leave"][h.room.as_str()]["timeline"]["events"];
    let leave = timeline.as_array().and_then(|t| t.last()).expect("the leave");
    assert_eq!(leave["content"]["membership"], "leave", "{timeline}");
    assert_eq!(leave["unsigned"]["membership"], "leave", "{timeline}");
}

#[tokio::test]
async fn sliding_sync_timelines_carry_the_readers_membership() {
    let s = TestServer::start();
    let h = history(&s).await;
    let body = json!({
        "lists": { "all": { "ranges": [[0, 9]], "timeline_limit": 50, "required_state": [] } },
    });
    let resp = h
        .bob
        .post("/_matrix/client/unstable/org.matrix.simplified_msc3575/sync?timeout=0", body)
        .await
        .ok();
    let timeline = &resp["rooms"][h.room.as_str()]["timeline"];
    assert_eq!(check_memberships(timeline, &h.expected()), 7, "{resp}");
}

#[tokio::test]
async fn messages_context_and_event_carry_the_readers_membership() {
    let s = TestServer::start();
    let h = history(&s).await;
    let r = &h.room;
    let page = h.bob.get(&format!("/_matrix/client/v3/rooms/{r}/messages?dir=b&limit=50")).await;
    let page = page.ok();
    assert_eq!(check_memberships(&page["chunk"], &h.expected()), 7, "{page}");
    let page = h.bob.get(&format!("/_matrix/client/v3/rooms/{r}/messages?dir=f&limit=50")).await;
    assert_eq!(check_memberships(&page.ok()["chunk"], &h.expected()), 7);

    let path = format!("/_matrix/client/v3/rooms/{r}/context/{}?limit=20", h.invited);
    let cx = h.bob.get(&path).await.ok();
    assert_eq!(cx["event"]["unsigned"]["membership"], "invite", "{cx}");
    let around: Vec<Value> = [&cx["events_before"], &cx["events_after"]]
        .iter()
        .flat_map(|a| a.as_array().cloned().unwrap_or_default())
        .collect();
    assert!(around.len() >= 4, "{around:?}");
    assert_eq!(check_memberships(&Value::Array(around), &h.expected()), 6);

    for (id, membership) in h.expected() {
        let ev = h.bob.get(&format!("/_matrix/client/v3/rooms/{r}/event/{id}")).await.ok();
        assert_eq!(ev["unsigned"]["membership"], membership, "{ev}");
    }
}

#[tokio::test]
async fn relations_threads_and_search_carry_the_readers_membership() {
    let s = TestServer::start();
    let h = history(&s).await;
    let r = &h.room;
    let rel = h.bob.get(&format!("/_matrix/client/v1/rooms/{r}/relations/{}", h.before)).await.ok();
    assert_eq!(check_memberships(&rel["chunk"], &h.expected()), 2, "{rel}");

    let threads = h.bob.get(&format!("/_matrix/client/v1/rooms/{r}/threads")).await.ok();
    assert_eq!(check_memberships(&threads["chunk"], &h.expected()), 1, "{threads}");

    let criteria = json!({
        "search_term": "wordbefore",
        "event_context": { "before_limit": 0, "after_limit": 3 },
    });
    let body = json!({ "search_categories": { "room_events": criteria } });
    let found = h.bob.post("/_matrix/client/v3/search", body).await.ok();
    let results = &found["search_categories"]["room_events"]["results"];
    let result = &results[0];
    assert_eq!(result["result"]["event_id"], h.before.as_str(), "{found}");
    assert_eq!(result["result"]["unsigned"]["membership"], "leave", "{found}");
    let after = &result["context"]["events_after"];
    assert_eq!(check_memberships(after, &h.expected()), 3, "{found}");
}

/// Asserts a served `m.room.redaction` names `target` both at the top level
/// (older clients, matrix-js-sdk) and in `content` (v11 and later).
#[track_caller]
fn assert_both_redacts(ev: &Value, target: &str, version: &str) {
    assert_eq!(ev["type"], "m.room.redaction", "v{version}: {ev}");
    assert_eq!(ev["redacts"], target, "v{version}: top-level redacts: {ev}");
    assert_eq!(ev["content"]["redacts"], target, "v{version}: content.redacts: {ev}");
}

#[tokio::test]
async fn redactions_name_their_target_at_the_top_level_and_in_content() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let filter = urlencode(r#"{"room":{"timeline":{"limit":50}}}"#);
    for v in ["10", "11", "12"] {
        let r = room(&alice, json!({ "preset": "public_chat", "room_version": v })).await;
        bob.post(&format!("/_matrix/client/v3/join/{r}"), json!({})).await.ok();
        let since = bob.get("/_matrix/client/v3/sync").await.ok()["next_batch"]
            .as_str()
            .expect("next_batch")
            .to_owned();
        let target = send(&bob, &r, "t", "oops").await;
        let redaction = alice
            .put(&format!("/_matrix/client/v3/rooms/{r}/redact/{target}/r1"), json!({}))
            .await
            .ok()["event_id"]
            .as_str()
            .expect("event_id")
            .to_owned();
        let find = |events: &Value| {
            events
                .as_array()
                .and_then(|a| a.iter().find(|e| e["event_id"] == redaction.as_str()).cloned())
        };

        // Live, as a client that saw the message sees the redaction arrive.
        let sync = bob.get(&format!("/_matrix/client/v3/sync?since={since}")).await.ok();
        let timeline = &sync["rooms"]["join"][r.as_str()]["timeline"]["events"];
        assert_both_redacts(&find(timeline).expect("redaction in sync"), &target, v);
        let sync = bob.get(&format!("/_matrix/client/v3/sync?filter={filter}")).await.ok();
        let timeline = &sync["rooms"]["join"][r.as_str()]["timeline"]["events"];
        assert_both_redacts(&find(timeline).expect("redaction in initial sync"), &target, v);

        let page = bob.get(&format!("/_matrix/client/v3/rooms/{r}/messages?dir=b")).await.ok();
        assert_both_redacts(&find(&page["chunk"]).expect("redaction in /messages"), &target, v);
        let cx = bob.get(&format!("/_matrix/client/v3/rooms/{r}/context/{target}")).await.ok();
        assert_both_redacts(&find(&cx["events_after"]).expect("in /context"), &target, v);

        let ev = bob.get(&format!("/_matrix/client/v3/rooms/{r}/event/{redaction}")).await.ok();
        assert_both_redacts(&ev, &target, v);
        // The copy kept in the redacted event says it too.
        let ev = bob.get(&format!("/_matrix/client/v3/rooms/{r}/event/{target}")).await.ok();
        assert_both_redacts(&ev["unsigned"]["redacted_because"], &target, v);
    }
}
