//! Filters on /sync, /messages and /context; lazy-loaded members
//! remembered per device; presence and per-thread unread counts in /sync.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Client, TestServer, room, send, urlencode};

fn events<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_array().map(Vec::as_slice).unwrap_or_default()
}

fn members_in(state: &[Value]) -> Vec<String> {
    let mut m: Vec<String> = state
        .iter()
        .filter(|e| e["type"] == "m.room.member")
        .filter_map(|e| e["state_key"].as_str().map(str::to_owned))
        .collect();
    m.sort();
    m
}

async fn sync(c: &Client, since: Option<&str>, filter: &Value) -> Value {
    let f = urlencode(&filter.to_string());
    let path = match since {
        Some(s) => format!("/_matrix/client/v3/sync?since={s}&filter={f}"),
        None => format!("/_matrix/client/v3/sync?filter={f}"),
    };
    c.get(&path).await.ok()
}

fn next(v: &Value) -> String {
    v["next_batch"].as_str().expect("next_batch").to_owned()
}

#[tokio::test]
async fn stored_and_inline_filters_shape_the_sync_response() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let a = room(&alice, json!({ "name": "A" })).await;
    let b = room(&alice, json!({ "name": "B" })).await;
    send(&alice, &a, "t1", "hello a").await;
    alice
        .put(
            &format!("/_matrix/client/v3/rooms/{a}/send/m.room.message/t2"),
            json!({ "msgtype": "m.image", "body": "cat.png", "url": "mxc://localhost/cat" }),
        )
        .await
        .ok();
    send(&alice, &b, "t3", "hello b").await;
    let filter = json!({
        "event_fields": ["type", "content.body", "sender"],
        "room": {
            "rooms": [a],
            "timeline": { "types": ["m.room.message"], "contains_url": false, "limit": 5 },
            "state": { "types": ["m.room.name"] },
        },
        "account_data": { "not_types": ["*"] },
    });
    let id = alice
        .post("/_matrix/client/v3/user/@alice:localhost/filter", filter.clone())
        .await
        .ok()["filter_id"]
        .as_str()
        .expect("filter_id")
        .to_owned();
    let stored = alice.get(&format!("/_matrix/client/v3/user/@alice:localhost/filter/{id}")).await;
    assert_eq!(stored.ok()["room"]["rooms"], json!([a]));
    let v = alice.get(&format!("/_matrix/client/v3/sync?filter={id}")).await.ok();
    let join = v["rooms"]["join"].as_object().expect("join");
    assert_eq!(join.keys().collect::<Vec<_>>(), vec![&a], "{v}");
    let timeline = events(&v, &["rooms", "join", &a, "timeline", "events"]);
    let bodies: Vec<&str> = timeline.iter().filter_map(|e| e["content"]["body"].as_str()).collect();
    assert_eq!(bodies, vec!["hello a"], "{v}");
    // event_fields: only the named fields are kept.
    assert!(timeline[0].get("event_id").is_none() && timeline[0]["sender"] == "@alice:localhost");
    assert!(timeline[0]["content"].get("msgtype").is_none(), "{v}");
    let state = events(&v, &["rooms", "join", &a, "state", "events"]);
    assert!(!state.is_empty() && state.iter().all(|e| e["type"] == "m.room.name"), "{v}");
    assert!(events(&v, &["account_data", "events"]).is_empty(), "{v}");
    // Inline: everything but messages, and no room B.
    let inline =
        json!({ "room": { "not_rooms": [b], "timeline": { "not_types": ["m.room.message"] } } });
    let v = sync(&alice, None, &inline).await;
    assert!(v["rooms"]["join"][&b].is_null(), "{v}");
    let timeline = events(&v, &["rooms", "join", &a, "timeline", "events"]);
    assert!(!timeline.is_empty() && timeline.iter().all(|e| e["type"] != "m.room.message"), "{v}");
    // Bad filters are refused when uploaded and when given inline.
    alice
        .post(
            "/_matrix/client/v3/user/@alice:localhost/filter",
            json!({ "room": { "timeline": { "limit": "ten" } } }),
        )
        .await
        .expect_err(400, "M_BAD_JSON");
    let bad = urlencode(r#"{"room":{"rooms":"!a:localhost"}}"#);
    alice.get(&format!("/_matrix/client/v3/sync?filter={bad}")).await.expect_err(400, "M_BAD_JSON");
}

/// A parked long-poll keeps only its filter's id and loads it again when
/// woken: what it then returns must still honour the filter.
#[tokio::test]
async fn a_long_poll_with_a_stored_filter_waits_past_filtered_out_rooms() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let a = room(&alice, json!({ "name": "A" })).await;
    let b = room(&alice, json!({ "name": "B" })).await;
    let id = alice
        .post(
            "/_matrix/client/v3/user/@alice:localhost/filter",
            json!({ "room": { "rooms": [a], "timeline": { "limit": 5 } } }),
        )
        .await
        .ok()["filter_id"]
        .as_str()
        .expect("filter_id")
        .to_owned();
    let first = alice.get(&format!("/_matrix/client/v3/sync?filter={id}")).await.ok();
    let since = next(&first);
    let poll = {
        let alice = alice.clone();
        let path = format!("/_matrix/client/v3/sync?since={since}&filter={id}&timeout=30000");
        tokio::spawn(async move { alice.get(&path).await })
    };
    send(&alice, &b, "t1", "in b, filtered out").await;
    send(&alice, &a, "t2", "in a").await;
    let woke = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .expect("woke well before the timeout")
        .expect("join")
        .ok();
    let join = &woke["rooms"]["join"];
    assert!(join.get(&b).is_none(), "room B is filtered out: {woke}");
    let bodies: Vec<&str> = events(&join[&a], &["timeline", "events"])
        .iter()
        .filter_map(|e| e["content"]["body"].as_str())
        .collect();
    assert_eq!(bodies, ["in a"], "{woke}");
}

#[tokio::test]
async fn lazy_loading_sends_each_member_once_per_device_until_asked_for_redundancy() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let (carol, _) = s.client().register("carol", "pw-carol-1").await;
    let r = room(&alice, json!({ "preset": "public_chat" })).await;
    for c in [&bob, &carol] {
        c.post(&format!("/_matrix/client/v3/join/{r}"), json!({})).await.ok();
    }
    send(&bob, &r, "b1", "hi from bob").await;
    let lazy =
        json!({ "room": { "timeline": { "limit": 1 }, "state": { "lazy_load_members": true } } });
    let v = sync(&alice, None, &lazy).await;
    let state = events(&v, &["rooms", "join", &r, "state", "events"]);
    assert_eq!(members_in(state), vec!["@alice:localhost", "@bob:localhost"], "{v}");
    assert!(state.iter().any(|e| e["type"] == "m.room.create"), "other state is all there");
    let t1 = next(&v);
    send(&carol, &r, "c1", "hi from carol").await;
    let v = sync(&alice, Some(&t1), &lazy).await;
    let state = events(&v, &["rooms", "join", &r, "state", "events"]);
    assert_eq!(members_in(state), vec!["@carol:localhost"], "{v}");
    let t2 = next(&v);
    // A retry of the same token (the response was lost) sends it again.
    let again = sync(&alice, Some(&t1), &lazy).await;
    assert_eq!(members_in(events(&again, &["rooms", "join", &r, "state", "events"])).len(), 1);
    send(&carol, &r, "c2", "carol again").await;
    let v = sync(&alice, Some(&t2), &lazy).await;
    assert_eq!(events(&v, &["rooms", "join", &r, "timeline", "events"]).len(), 1, "{v}");
    assert!(members_in(events(&v, &["rooms", "join", &r, "state", "events"])).is_empty(), "{v}");
    // With include_redundant_members, it comes every time.
    let redundant = json!({ "room": { "timeline": { "limit": 1 },
        "state": { "lazy_load_members": true, "include_redundant_members": true } } });
    let v = sync(&alice, Some(&t2), &redundant).await;
    assert_eq!(
        members_in(events(&v, &["rooms", "join", &r, "state", "events"])),
        vec!["@carol:localhost"]
    );
    // Without lazy loading, the initial sync has every member.
    let v = sync(&alice, None, &json!({ "room": { "timeline": { "limit": 1 } } })).await;
    assert_eq!(members_in(events(&v, &["rooms", "join", &r, "state", "events"])).len(), 3);
}

#[tokio::test]
async fn presence_reaches_room_mates_through_sync_and_wakes_them() {
    let s = TestServer::start_with_metrics(|_| {});
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let (carol, _) = s.client().register("carol", "pw-carol-1").await;
    let r = room(&alice, json!({ "invite": ["@bob:localhost"] })).await;
    bob.post(&format!("/_matrix/client/v3/join/{r}"), json!({})).await.ok();
    let v = sync(&bob, None, &json!({})).await;
    let since = next(&v);
    // Alice syncs and so comes online; Bob sees it, Carol (no shared room)
    // does not.
    sync(&alice, None, &json!({})).await;
    let v = sync(&bob, Some(&since), &json!({})).await;
    let p = events(&v, &["presence", "events"]);
    let alice_p = p.iter().find(|e| e["sender"] == "@alice:localhost").expect("alice presence");
    assert_eq!(alice_p["type"], "m.presence");
    assert_eq!(alice_p["content"]["presence"], "online");
    assert_eq!(alice_p["content"]["currently_active"], true);
    let since = next(&v);
    let v = sync(&carol, None, &json!({})).await;
    let senders: Vec<&str> =
        events(&v, &["presence", "events"]).iter().filter_map(|e| e["sender"].as_str()).collect();
    assert_eq!(senders, vec!["@carol:localhost"], "{v}");
    // A change wakes Bob's long-poll.
    let poll = {
        let bob = bob.clone();
        tokio::spawn(async move {
            bob.get(&format!("/_matrix/client/v3/sync?since={since}&timeout=20000")).await.ok()
        })
    };
    // Change presence only once the poll is parked: the wake-up path is
    // the one tested.
    s.await_long_polls(1).await;
    alice
        .put(
            "/_matrix/client/v3/presence/@alice:localhost/status",
            json!({ "presence": "unavailable", "status_msg": "at lunch" }),
        )
        .await
        .ok();
    let v = tokio::time::timeout(Duration::from_secs(10), poll).await.expect("woke").expect("join");
    let p = events(&v, &["presence", "events"]);
    assert_eq!(p.len(), 1, "{v}");
    assert_eq!(p[0]["content"]["presence"], "unavailable");
    assert_eq!(p[0]["content"]["status_msg"], "at lunch");
    // A presence filter can drop it, and set_presence=offline does not
    // bring a user online.
    let f = urlencode(r#"{"presence":{"not_types":["m.presence"]}}"#);
    let v = bob.get(&format!("/_matrix/client/v3/sync?filter={f}")).await.ok();
    assert!(events(&v, &["presence", "events"]).is_empty(), "{v}");
    // Carol starts sharing a room with Alice: Alice's unchanged presence
    // is new to Carol.
    let since = next(&sync(&carol, None, &json!({})).await);
    alice
        .post(
            &format!("/_matrix/client/v3/rooms/{r}/invite"),
            json!({ "user_id": "@carol:localhost" }),
        )
        .await
        .ok();
    carol.post(&format!("/_matrix/client/v3/join/{r}"), json!({})).await.ok();
    let v = sync(&carol, Some(&since), &json!({})).await;
    let p = events(&v, &["presence", "events"]);
    assert!(p.iter().any(|e| e["sender"] == "@alice:localhost" && e["content"]["presence"] == "unavailable"), "{v}");
    let (dave, _) = s.client().register("dave", "pw-dave-1").await;
    dave.get("/_matrix/client/v3/sync?set_presence=offline").await.ok();
    let p = dave.get("/_matrix/client/v3/presence/@dave:localhost/status").await.ok();
    assert_eq!(p["presence"], "offline");
    dave.get("/_matrix/client/v3/sync?set_presence=busy").await.expect_err(400, "M_INVALID_PARAM");
}

#[tokio::test]
async fn unread_counts_are_split_by_thread_and_reset_by_threaded_receipts() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let r = room(&alice, json!({ "invite": ["@bob:localhost"] })).await;
    bob.post(&format!("/_matrix/client/v3/join/{r}"), json!({})).await.ok();
    let root = send(&bob, &r, "b1", "thread root").await;
    let mut last_reply = String::new();
    for i in 0..2 {
        last_reply = bob
            .put(
                &format!("/_matrix/client/v3/rooms/{r}/send/m.room.message/reply{i}"),
                json!({ "msgtype": "m.text", "body": format!("reply {i}"),
                    "m.relates_to": { "rel_type": "m.thread", "event_id": root } }),
            )
            .await
            .ok()["event_id"]
            .as_str()
            .expect("event_id")
            .to_owned();
    }
    let main = send(&bob, &r, "b2", "back in the main timeline").await;
    let threaded = json!({ "room": { "timeline": { "unread_thread_notifications": true } } });
    let counts = |v: &Value| {
        let room = &v["rooms"]["join"][&r];
        (
            room["unread_notifications"]["notification_count"].as_u64(),
            room["unread_thread_notifications"][&root]["notification_count"].as_u64(),
        )
    };
    let v = sync(&alice, None, &threaded).await;
    assert_eq!(counts(&v), (Some(2), Some(2)), "{v}");
    let v = sync(&alice, None, &json!({})).await;
    assert_eq!(counts(&v), (Some(4), None), "without the flag, one total: {v}");
    // Reading the thread clears its count only.
    alice
        .post(
            &format!("/_matrix/client/v3/rooms/{r}/receipt/m.read/{last_reply}"),
            json!({ "thread_id": root }),
        )
        .await
        .ok();
    let v = sync(&alice, None, &threaded).await;
    assert_eq!(counts(&v), (Some(2), None), "{v}");
    // A `main` receipt clears the main timeline.
    alice
        .post(
            &format!("/_matrix/client/v3/rooms/{r}/receipt/m.read/{main}"),
            json!({ "thread_id": "main" }),
        )
        .await
        .ok();
    let v = sync(&alice, None, &json!({})).await;
    assert_eq!(counts(&v), (Some(0), None), "{v}");
}

#[tokio::test]
async fn messages_and_context_honour_filters_and_lazy_members() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let r = room(&alice, json!({ "preset": "public_chat" })).await;
    bob.post(&format!("/_matrix/client/v3/join/{r}"), json!({})).await.ok();
    let mut mid = String::new();
    for i in 0..3 {
        send(&alice, &r, &format!("a{i}"), &format!("alice {i}")).await;
        let id = send(&bob, &r, &format!("b{i}"), &format!("bob {i}")).await;
        if i == 1 {
            mid = id;
        }
    }
    let only_bob = urlencode(
        r#"{"senders":["@bob:localhost"],"types":["m.room.message"],"lazy_load_members":true}"#,
    );
    let page = alice
        .get(&format!("/_matrix/client/v3/rooms/{r}/messages?dir=b&limit=2&filter={only_bob}"))
        .await
        .ok();
    let bodies: Vec<&str> =
        events(&page, &["chunk"]).iter().filter_map(|e| e["content"]["body"].as_str()).collect();
    assert_eq!(bodies, vec!["bob 2", "bob 1"], "{page}");
    assert_eq!(members_in(events(&page, &["state"])), vec!["@bob:localhost"], "{page}");
    let end = page["end"].as_str().expect("end");
    let page = alice
        .get(&format!(
            "/_matrix/client/v3/rooms/{r}/messages?dir=b&limit=2&from={end}&filter={only_bob}"
        ))
        .await
        .ok();
    let bodies: Vec<&str> =
        events(&page, &["chunk"]).iter().filter_map(|e| e["content"]["body"].as_str()).collect();
    assert_eq!(bodies, vec!["bob 0"], "{page}");
    assert!(page.get("end").is_none(), "history is exhausted: {page}");
    // Without lazy loading there is no `state`.
    let page =
        alice.get(&format!("/_matrix/client/v3/rooms/{r}/messages?dir=b&limit=2")).await.ok();
    assert!(page.get("state").is_none(), "{page}");
    alice
        .get(&format!("/_matrix/client/v3/rooms/{r}/messages?dir=b&filter=%7Bnope"))
        .await
        .expect_err(400, "M_BAD_JSON");
    // Context: only messages around, members only of their senders.
    let f = urlencode(
        r#"{"types":["m.room.message"],"senders":["@alice:localhost"],"lazy_load_members":true}"#,
    );
    let ctx = alice
        .get(&format!("/_matrix/client/v3/rooms/{r}/context/{mid}?limit=4&filter={f}"))
        .await
        .ok();
    let around: Vec<&str> = events(&ctx, &["events_before"])
        .iter()
        .chain(events(&ctx, &["events_after"]))
        .filter_map(|e| e["content"]["body"].as_str())
        .collect();
    assert_eq!(around, vec!["alice 1", "alice 0", "alice 2"], "{ctx}");
    assert_eq!(members_in(events(&ctx, &["state"])), vec!["@alice:localhost", "@bob:localhost"]);
    assert!(events(&ctx, &["state"]).iter().any(|e| e["type"] == "m.room.create"), "{ctx}");
}

#[tokio::test]
async fn include_leave_brings_rooms_left_into_an_initial_sync() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let r = room(&alice, json!({})).await;
    send(&alice, &r, "t1", "last words").await;
    alice.post(&format!("/_matrix/client/v3/rooms/{r}/leave"), json!({})).await.ok();
    let v = sync(&alice, None, &json!({})).await;
    assert!(v["rooms"]["leave"][&r].is_null(), "{v}");
    let v = sync(&alice, None, &json!({ "room": { "include_leave": true } })).await;
    let timeline = events(&v, &["rooms", "leave", &r, "timeline", "events"]);
    assert!(timeline.iter().any(|e| e["content"]["body"] == "last words"), "{v}");
    assert_eq!(timeline.last().map(|e| e["type"].clone()), Some(json!("m.room.member")));
}

#[tokio::test]
async fn a_forgotten_room_stays_out_of_sync_until_the_membership_changes() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let r = room(&alice, json!({ "invite": ["@bob:localhost"] })).await;
    bob.post(&format!("/_matrix/client/v3/join/{r}"), json!({})).await.ok();
    let include_leave = json!({ "room": { "include_leave": true } });
    let before_leave = next(&sync(&bob, None, &json!({})).await);
    bob.post(&format!("/_matrix/client/v3/rooms/{r}/leave"), json!({})).await.ok();
    // Before forgetting, the leave shows in both kinds of sync.
    let v = sync(&bob, Some(&before_leave), &json!({})).await;
    assert!(v["rooms"]["leave"][&r].is_object(), "{v}");
    let v = sync(&bob, None, &include_leave).await;
    assert!(v["rooms"]["leave"][&r].is_object(), "{v}");
    bob.post(&format!("/_matrix/client/v3/rooms/{r}/forget"), json!({})).await.ok();
    let v = sync(&bob, Some(&before_leave), &json!({})).await;
    assert!(v["rooms"]["leave"][&r].is_null(), "incremental: {v}");
    let v = sync(&bob, Some(&before_leave), &include_leave).await;
    assert!(v["rooms"]["leave"][&r].is_null(), "incremental with include_leave: {v}");
    let v = sync(&bob, None, &include_leave).await;
    assert!(v["rooms"]["leave"][&r].is_null(), "initial with include_leave: {v}");
    let full = format!("/_matrix/client/v3/sync?since={before_leave}&full_state=true");
    let v = bob.get(&format!("{full}&filter={}", urlencode(&include_leave.to_string()))).await;
    assert!(v.ok()["rooms"]["leave"][&r].is_null(), "full state with include_leave");
    // A new invite brings the room back, and so does declining it.
    let since = next(&sync(&bob, None, &json!({})).await);
    alice
        .post(
            &format!("/_matrix/client/v3/rooms/{r}/invite"),
            json!({ "user_id": "@bob:localhost" }),
        )
        .await
        .ok();
    let v = sync(&bob, Some(&since), &json!({})).await;
    assert!(v["rooms"]["invite"][&r].is_object(), "{v}");
    bob.post(&format!("/_matrix/client/v3/rooms/{r}/leave"), json!({})).await.ok();
    let v = sync(&bob, None, &include_leave).await;
    assert!(v["rooms"]["leave"][&r].is_object(), "{v}");
}
