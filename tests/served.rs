//! Fields added to events as they are served: both forms of a redaction's
//! `redacts` (top level and `content`), on every endpoint that serves events.

use serde_json::{Value, json};

use crate::support::{TestServer, room, send, urlencode};

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
