//! Room aliases and the public room directory.

use serde_json::json;

use crate::support::TestServer;

#[tokio::test]
async fn aliases_are_created_resolved_listed_and_deleted() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let r = alice.post("/_matrix/client/v3/createRoom", json!({})).await.ok()["room_id"]
        .as_str()
        .expect("id")
        .to_owned();
    alice
        .put("/_matrix/client/v3/directory/room/%23den:localhost", json!({ "room_id": r }))
        .await
        .ok();
    let again = alice
        .put("/_matrix/client/v3/directory/room/%23den:localhost", json!({ "room_id": r }))
        .await;
    assert_eq!(again.status, 409);
    let got = s.client().get("/_matrix/client/v3/directory/room/%23den:localhost").await.ok();
    assert_eq!(got["room_id"], r.as_str());
    assert_eq!(got["servers"], json!(["localhost"]));
    let list = alice.get(&format!("/_matrix/client/v3/rooms/{r}/aliases")).await.ok();
    assert_eq!(list["aliases"], json!(["#den:localhost"]));
    bob.get(&format!("/_matrix/client/v3/rooms/{r}/aliases")).await.expect_err(403, "M_FORBIDDEN");
    bob.delete("/_matrix/client/v3/directory/room/%23den:localhost", json!({}))
        .await
        .expect_err(403, "M_FORBIDDEN");
    alice.delete("/_matrix/client/v3/directory/room/%23den:localhost", json!({})).await.ok();
    s.client()
        .get("/_matrix/client/v3/directory/room/%23den:localhost")
        .await
        .expect_err(404, "M_NOT_FOUND");
    alice
        .put("/_matrix/client/v3/directory/room/%23x:elsewhere.org", json!({ "room_id": r }))
        .await
        .expect_err(400, "M_INVALID_PARAM");
}

#[tokio::test]
async fn the_public_directory_lists_published_rooms_with_search_and_paging() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    for name in ["Garden club", "Board games", "Cooking"] {
        alice
            .post(
                "/_matrix/client/v3/createRoom",
                json!({ "visibility": "public", "preset": "public_chat", "name": name }),
            )
            .await
            .ok();
    }
    let hidden = alice
        .post("/_matrix/client/v3/createRoom", json!({ "name": "Secret" }))
        .await
        .ok()["room_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let all = s.client().get("/_matrix/client/v3/publicRooms").await.ok();
    assert_eq!(all["total_room_count_estimate"], 3);
    assert!(!all.to_string().contains("Secret"));
    let page = s.client().get("/_matrix/client/v3/publicRooms?limit=2").await.ok();
    assert_eq!(page["chunk"].as_array().map(Vec::len), Some(2));
    let nb = page["next_batch"].as_str().expect("next_batch");
    let rest =
        s.client().get(&format!("/_matrix/client/v3/publicRooms?limit=2&since={nb}")).await.ok();
    assert_eq!(rest["chunk"].as_array().map(Vec::len), Some(1));
    let found = alice
        .post(
            "/_matrix/client/v3/publicRooms",
            json!({ "filter": { "generic_search_term": "garden" } }),
        )
        .await
        .ok();
    assert_eq!(found["chunk"].as_array().map(Vec::len), Some(1));
    assert_eq!(found["chunk"][0]["name"], "Garden club");
    assert_eq!(found["chunk"][0]["join_rule"], "public");
    // Publishing a room puts it in the list.
    let vis =
        s.client().get(&format!("/_matrix/client/v3/directory/list/room/{hidden}")).await.ok();
    assert_eq!(vis["visibility"], "private");
    alice
        .put(
            &format!("/_matrix/client/v3/directory/list/room/{hidden}"),
            json!({ "visibility": "public" }),
        )
        .await
        .ok();
    let all = s.client().get("/_matrix/client/v3/publicRooms").await.ok();
    assert_eq!(all["total_room_count_estimate"], 4);
}
