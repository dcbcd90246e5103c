//! Server-side search: `POST /search` over the room events a user may see.

use serde_json::{Value, json};

use crate::support::{Client, TestServer, room};

const SEARCH: &str = "/_matrix/client/v3/search";

async fn send_content(c: &Client, room: &str, event_type: &str, content: Value) -> String {
    let txn = format!("t{}", rand_suffix());
    c.put(&format!("/_matrix/client/v3/rooms/{room}/send/{event_type}/{txn}"), content)
        .await
        .ok()["event_id"]
        .as_str()
        .expect("event_id")
        .to_owned()
}

async fn send(c: &Client, room: &str, text: &str) -> String {
    send_content(c, room, "m.room.message", json!({ "msgtype": "m.text", "body": text })).await
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Searches `room_events` with `criteria` (`search_term` added).
async fn search(c: &Client, term: &str, mut criteria: Value) -> Value {
    criteria["search_term"] = json!(term);
    let body = c.post(SEARCH, json!({ "search_categories": { "room_events": criteria } })).await;
    body.ok()["search_categories"]["room_events"].clone()
}

fn ids(found: &Value) -> Vec<String> {
    found["results"]
        .as_array()
        .map(|a| {
            a.iter().filter_map(|r| r["result"]["event_id"].as_str().map(str::to_owned)).collect()
        })
        .unwrap_or_default()
}

async fn join(c: &Client, room: &str) {
    c.post(&format!("/_matrix/client/v3/join/{room}"), json!({})).await.ok();
}

#[tokio::test]
async fn a_message_is_found_as_soon_as_its_send_returns() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let r = room(&alice, json!({})).await;
    let ev = send(&alice, &r, "Dinner is READY, come down").await;
    send(&alice, &r, "nothing to see").await;
    let found = search(&alice, "dinner ready", json!({})).await;
    assert_eq!(ids(&found), [ev.as_str()], "{found}");
    assert_eq!(found["count"], 1);
    assert_eq!(found["results"][0]["result"]["content"]["body"], "Dinner is READY, come down");
    assert_eq!(found["results"][0]["result"]["room_id"], r.as_str());
    assert!(found["results"][0]["rank"].as_f64().is_some_and(|r| r > 0.0), "{found}");
    let mut highlights: Vec<String> =
        serde_json::from_value(found["highlights"].clone()).expect("highlights");
    highlights.sort();
    assert_eq!(highlights, ["Dinner", "READY"]);
    assert!(found.get("next_batch").is_none(), "no more results: {found}");
    // Every term must occur.
    assert_eq!(search(&alice, "dinner party", json!({})).await["count"], 0);
    assert_eq!(search(&alice, "?!", json!({})).await["results"], json!([]));
}

#[tokio::test]
async fn keys_and_filters_narrow_the_search() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let kitchen = room(
        &alice,
        json!({ "name": "Kitchen crew", "topic": "all things kitchen", "preset": "public_chat" }),
    )
    .await;
    let garden = room(&alice, json!({ "preset": "public_chat" })).await;
    join(&bob, &kitchen).await;
    join(&bob, &garden).await;
    let a1 = send(&alice, &kitchen, "the kitchen sink leaks").await;
    let b1 = send(&bob, &kitchen, "kitchen timer rings").await;
    let g1 = send(&alice, &garden, "kitchen garden herbs").await;

    let all = search(&bob, "kitchen", json!({})).await;
    assert_eq!(all["count"], 5, "3 messages, the name and the topic: {all}");
    let names = search(&bob, "kitchen", json!({ "keys": ["content.name"] })).await;
    assert_eq!(names["count"], 1, "{names}");
    assert_eq!(names["results"][0]["result"]["type"], "m.room.name");
    let topics = search(&bob, "kitchen", json!({ "keys": ["content.topic"] })).await;
    assert_eq!(topics["results"][0]["result"]["type"], "m.room.topic", "{topics}");
    let bodies =
        search(&bob, "kitchen", json!({ "keys": ["content.body"], "order_by": "recent" })).await;
    assert_eq!(ids(&bodies), [g1.clone(), b1.clone(), a1.clone()]);

    let f =
        |filter: Value| json!({ "keys": ["content.body"], "order_by": "recent", "filter": filter });
    assert_eq!(ids(&search(&bob, "kitchen", f(json!({ "rooms": [garden] }))).await), [g1.as_str()]);
    assert_eq!(
        ids(&search(&bob, "kitchen", f(json!({ "not_rooms": [garden] }))).await),
        [b1.clone(), a1.clone()]
    );
    assert_eq!(
        ids(&search(&bob, "kitchen", f(json!({ "senders": ["@bob:localhost"] }))).await),
        [b1.as_str()]
    );
    assert_eq!(
        ids(&search(&bob, "kitchen", f(json!({ "not_senders": ["@bob:localhost"] }))).await),
        [g1.clone(), a1.clone()]
    );
    assert_eq!(ids(&search(&bob, "kitchen", f(json!({ "limit": 1 }))).await), [g1.as_str()]);
    let typed = search(&bob, "kitchen", json!({ "filter": { "types": ["m.room.n*"] } })).await;
    assert_eq!(typed["count"], 1, "{typed}");
    let not_typed =
        search(&bob, "kitchen", json!({ "filter": { "not_types": ["m.room.message"] } })).await;
    assert_eq!(not_typed["count"], 2, "{not_typed}");

    // Bad requests name their field.
    let bad = |criteria: Value| {
        let bob = bob.clone();
        async move {
            bob.post(SEARCH, json!({ "search_categories": { "room_events": criteria } })).await
        }
    };
    let r = bad(json!({ "search_term": "x", "keys": ["content.url"] })).await;
    r.expect_err(400, "M_INVALID_PARAM");
    assert!(r.body["error"].as_str().is_some_and(|e| e.contains("keys")), "{}", r.body);
    let r = bad(json!({ "search_term": "x", "filter": { "limit": 0 } })).await;
    r.expect_err(400, "M_INVALID_PARAM");
    assert!(r.body["error"].as_str().is_some_and(|e| e.contains("filter.limit")), "{}", r.body);
    let r = bad(json!({ "search_term": "x", "filter": { "rooms": ["not-a-room"] } })).await;
    r.expect_err(400, "M_INVALID_PARAM");
    bad(json!({ "search_term": "x", "filter": { "senders": "@bob:localhost" } }))
        .await
        .expect_err(400, "M_BAD_JSON");
    bad(json!({ "search_term": "x", "order_by": "oldest" }))
        .await
        .expect_err(400, "M_INVALID_PARAM");
    let r = bad(json!({ "keys": ["content.body"] })).await;
    r.expect_err(400, "M_BAD_JSON");
    assert!(r.body["error"].as_str().is_some_and(|e| e.contains("search_term")), "{}", r.body);
    bad(json!({ "search_term": "x", "groupings": { "group_by": [{ "key": "type" }] } }))
        .await
        .expect_err(400, "M_INVALID_PARAM");
    bob.post(SEARCH, json!({})).await.expect_err(400, "M_BAD_JSON");
    bob.post(
        &format!("{SEARCH}?next_batch=garbage"),
        json!({ "search_categories": { "room_events": { "search_term": "x" } } }),
    )
    .await
    .expect_err(400, "M_INVALID_PARAM");
}

#[tokio::test]
async fn order_by_rank_puts_the_closest_match_first_and_recent_the_newest() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let r = room(&alice, json!({})).await;
    let short = send(&alice, &r, "Pancakes!").await;
    let long =
        send(&alice, &r, "we talked about many things, among them pancakes for sunday").await;
    let ranked = search(&alice, "pancakes", json!({})).await;
    assert_eq!(ids(&ranked), [short.clone(), long.clone()], "{ranked}");
    let r0 = ranked["results"][0]["rank"].as_f64().expect("rank");
    let r1 = ranked["results"][1]["rank"].as_f64().expect("rank");
    assert!(r0 > r1, "{ranked}");
    let recent = search(&alice, "pancakes", json!({ "order_by": "recent" })).await;
    assert_eq!(ids(&recent), [long, short], "{recent}");
}

#[tokio::test]
async fn russian_and_japanese_text_is_found() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let r = room(&alice, json!({ "name": "Путешествия" })).await;
    let ru = send(&alice, &r, "Встреча ЗАВТРА в десять, не опаздывайте").await;
    let ja = send(&alice, &r, "昨日、東京タワーに行きました。").await;
    let zh = send(&alice, &r, "我们明天去北京吃烤鸭").await;

    let found = search(&alice, "завтра", json!({})).await;
    assert_eq!(ids(&found), [ru.as_str()], "{found}");
    assert_eq!(found["highlights"], json!(["ЗАВТРА"]));
    assert_eq!(ids(&search(&alice, "ВСТРЕЧА десять", json!({})).await), [ru]);
    let names = search(&alice, "путешествия", json!({})).await;
    assert_eq!(names["results"][0]["result"]["type"], "m.room.name", "{names}");

    let found = search(&alice, "東京タワー", json!({})).await;
    assert_eq!(ids(&found), [ja.as_str()], "{found}");
    assert_eq!(found["highlights"], json!(["東京タワー"]));
    assert_eq!(ids(&search(&alice, "タワー", json!({})).await), [ja.as_str()]);
    assert_eq!(ids(&search(&alice, "行き", json!({})).await), [ja]);
    assert_eq!(search(&alice, "大阪", json!({})).await["count"], 0);
    assert_eq!(ids(&search(&alice, "北京 烤鸭", json!({})).await), [zh]);
    assert_eq!(search(&alice, "京都", json!({})).await["count"], 0);
}

#[tokio::test]
async fn search_never_shows_rooms_or_history_the_user_may_not_see() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let (eve, _) = s.client().register("eve", "pw-eve-1").await;
    // A private room Eve was never in.
    let private = room(&alice, json!({ "preset": "private_chat" })).await;
    send(&alice, &private, "the banana secret").await;
    assert_eq!(search(&eve, "banana", json!({})).await["count"], 0);
    // Eve is invited but has not joined: still nothing.
    alice
        .post(
            &format!("/_matrix/client/v3/rooms/{private}/invite"),
            json!({ "user_id": "@eve:localhost" }),
        )
        .await
        .ok();
    assert_eq!(search(&eve, "banana", json!({})).await["count"], 0);

    // History visibility `joined`: Bob sees nothing from before his join,
    // and nothing after he left; what he saw while in stays searchable.
    let r = room(&alice, json!({ "preset": "public_chat" })).await;
    alice
        .put(
            &format!("/_matrix/client/v3/rooms/{r}/state/m.room.history_visibility/"),
            json!({ "history_visibility": "joined" }),
        )
        .await
        .ok();
    send(&alice, &r, "banana before bob").await;
    join(&bob, &r).await;
    let during = send(&alice, &r, "banana while bob is here").await;
    bob.post(&format!("/_matrix/client/v3/rooms/{r}/leave"), json!({})).await.ok();
    send(&alice, &r, "banana after bob left").await;
    let found = search(&bob, "banana", json!({ "order_by": "recent" })).await;
    assert_eq!(ids(&found), [during], "{found}");
    assert_eq!(found["count"], 1);
    assert_eq!(search(&alice, "banana", json!({})).await["count"], 4);
}

#[tokio::test]
async fn redacted_and_encrypted_events_are_not_found() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let r = room(&alice, json!({})).await;
    let ev = send(&alice, &r, "an embarrassing typo").await;
    let keep = send(&alice, &r, "a fine typo").await;
    assert_eq!(search(&alice, "typo", json!({})).await["count"], 2);
    alice.put(&format!("/_matrix/client/v3/rooms/{r}/redact/{ev}/red1"), json!({})).await.ok();
    let found = search(&alice, "typo", json!({})).await;
    assert_eq!(ids(&found), [keep], "{found}");
    assert_eq!(search(&alice, "embarrassing", json!({})).await["count"], 0);
    // Ciphertext has no body: the server cannot search it (spec).
    send_content(
        &alice,
        &r,
        "m.room.encrypted",
        json!({ "algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "kumquat", "body": "kumquat" }),
    )
    .await;
    assert_eq!(search(&alice, "kumquat", json!({})).await["count"], 0);
}

#[tokio::test]
async fn event_context_profiles_state_and_groups_come_with_the_results() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    alice
        .put(
            "/_matrix/client/v3/profile/@alice:localhost/displayname",
            json!({ "displayname": "Alice A." }),
        )
        .await
        .ok();
    let r1 = room(&alice, json!({ "preset": "public_chat", "name": "One" })).await;
    let r2 = room(&alice, json!({ "preset": "public_chat" })).await;
    join(&bob, &r1).await;
    let b0 = send(&bob, &r1, "first").await;
    let hit1 = send(&alice, &r1, "quokka sighted").await;
    let b2 = send(&bob, &r1, "where?").await;
    let b3 = send(&bob, &r1, "pics please").await;
    let hit2 = send(&bob, &r1, "a quokka again").await;
    let hit3 = send(&alice, &r2, "quokka in room two").await;

    let found = search(
        &alice,
        "quokka",
        json!({
            "order_by": "recent",
            "event_context": { "before_limit": 1, "after_limit": 2, "include_profile": true },
            "include_state": true,
            "groupings": { "group_by": [{ "key": "room_id" }, { "key": "sender" }] },
        }),
    )
    .await;
    assert_eq!(ids(&found), [hit3.clone(), hit2.clone(), hit1.clone()], "{found}");
    let ctx = &found["results"][2]["context"];
    assert_eq!(ctx["events_before"].as_array().map(Vec::len), Some(1), "{ctx}");
    assert_eq!(ctx["events_before"][0]["event_id"], b0.as_str());
    let after: Vec<&str> = ctx["events_after"]
        .as_array()
        .expect("after")
        .iter()
        .filter_map(|e| e["event_id"].as_str())
        .collect();
    assert_eq!(after, [b2.as_str(), b3.as_str()]);
    assert!(ctx["start"].is_string() && ctx["end"].is_string(), "{ctx}");
    assert_eq!(ctx["profile_info"]["@alice:localhost"]["displayname"], "Alice A.", "{ctx}");
    assert!(ctx["profile_info"]["@bob:localhost"].is_object(), "{ctx}");
    // The start token pages on with /messages.
    let start = ctx["start"].as_str().expect("start");
    let older = alice
        .get(&format!("/_matrix/client/v3/rooms/{r1}/messages?dir=b&from={start}&limit=1"))
        .await
        .ok();
    assert_ne!(older["chunk"][0]["event_id"], b0.as_str(), "{older}");

    let state = &found["state"];
    let r1_state = state[r1.as_str()].as_array().expect("state of r1");
    assert!(r1_state.iter().any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "One"));
    assert!(
        state[r2.as_str()]
            .as_array()
            .is_some_and(|s| s.iter().any(|e| e["type"] == "m.room.create"))
    );

    let rooms = &found["groups"]["room_id"];
    assert_eq!(rooms[r1.as_str()]["results"], json!([hit2, hit1]), "{rooms}");
    assert_eq!(rooms[r1.as_str()]["order"], 2);
    assert_eq!(rooms[r2.as_str()]["results"], json!([hit3]));
    assert_eq!(rooms[r2.as_str()]["order"], 1);
    let senders = &found["groups"]["sender"];
    assert_eq!(senders["@alice:localhost"]["results"], json!([hit3, hit1]), "{senders}");
    assert_eq!(senders["@bob:localhost"]["results"], json!([hit2]));
    assert!(found.get("next_batch").is_none());
    assert!(rooms[r1.as_str()].get("next_batch").is_none());
}

#[tokio::test]
async fn next_batch_pages_through_every_result_once_in_both_orders() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let r1 = room(&alice, json!({})).await;
    let r2 = room(&alice, json!({})).await;
    let mut expected = Vec::new();
    for i in 0..23 {
        let r = if i % 3 == 0 { &r2 } else { &r1 };
        // Varying lengths give varying ranks.
        expected.push(send(&alice, r, &format!("apple {}", "x ".repeat(i % 5))).await);
    }
    for order in ["rank", "recent"] {
        let criteria = json!({
            "search_term": "apple", "order_by": order, "filter": { "limit": 10 },
        });
        let body = json!({ "search_categories": { "room_events": criteria } });
        let mut seen = Vec::new();
        let mut path = SEARCH.to_owned();
        let mut late = None;
        loop {
            let found =
                alice.post(&path, body.clone()).await.ok()["search_categories"]["room_events"]
                    .clone();
            assert_eq!(found["count"], expected.len(), "{order}: {found}");
            let page = ids(&found);
            assert!(page.len() <= 10);
            seen.extend(page);
            // A message sent between pages does not shift them.
            if late.is_none() {
                late = Some(send(&alice, &r1, "apple late").await);
            }
            match found["next_batch"].as_str() {
                Some(t) => path = format!("{SEARCH}?next_batch={t}"),
                None => break,
            }
        }
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), seen.len(), "{order}: no result twice");
        let mut want = expected.clone();
        want.sort();
        assert_eq!(sorted, want, "{order}: every result once");
        expected.extend(late);
    }

    // A group's own next_batch pages within that group.
    let found = search(
        &alice,
        "apple",
        json!({ "order_by": "recent", "filter": { "limit": 3, "rooms": [r1, r2] },
                "groupings": { "group_by": [{ "key": "room_id" }] } }),
    )
    .await;
    let group_room = found["results"][0]["result"]["room_id"].as_str().expect("room").to_owned();
    let g = &found["groups"]["room_id"][group_room.as_str()];
    let token = g["next_batch"].as_str().expect("group next_batch");
    let more = alice
        .post(
            &format!("{SEARCH}?next_batch={token}"),
            json!({ "search_categories": { "room_events": {
                "search_term": "apple", "order_by": "recent", "filter": { "limit": 3, "rooms": [r1, r2] },
                "groupings": { "group_by": [{ "key": "room_id" }] } } } }),
        )
        .await
        .ok()["search_categories"]["room_events"]
        .clone();
    let rooms: Vec<&str> = more["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|r| r["result"]["room_id"].as_str())
        .collect();
    assert!(!rooms.is_empty() && rooms.iter().all(|r| *r == group_room), "{more}");
    let first_page = ids(&found);
    assert!(ids(&more).iter().all(|e| !first_page.contains(e)), "{more}");
    // A token of one order is refused by the other.
    alice
        .post(
            &format!("{SEARCH}?next_batch={token}"),
            json!({ "search_categories": { "room_events": { "search_term": "apple" } } }),
        )
        .await
        .expect_err(400, "M_INVALID_PARAM");
}
