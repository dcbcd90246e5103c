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

#[tokio::test]
async fn deleting_an_alias_takes_it_out_of_the_canonical_alias_when_the_deleter_may() {
    let (_temp, data, _, _) = crate::admin_cli::with_root();
    let s = TestServer::start_in(&data, |_| {});
    let login = s.client().login("root", "s3cret-enough").await.ok();
    let root = s.client().with_token(login["access_token"].as_str().expect("token"));
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let r = crate::support::room(
        &alice,
        json!({ "visibility": "public", "preset": "public_chat", "room_alias_name": "kitchen" }),
    )
    .await;
    for a in ["pantry", "larder"] {
        alice
            .put(
                &format!("/_matrix/client/v3/directory/room/%23{a}:localhost"),
                json!({ "room_id": r }),
            )
            .await
            .ok();
    }
    let state = format!("/_matrix/client/v3/rooms/{r}/state/m.room.canonical_alias/");
    alice
        .put(
            &state,
            json!({ "alias": "#kitchen:localhost", "alt_aliases": ["#pantry:localhost", "#larder:localhost"] }),
        )
        .await
        .ok();
    alice.delete("/_matrix/client/v3/directory/room/%23pantry:localhost", json!({})).await.ok();
    let now = alice.get(&format!("{state}?format=event")).await.ok();
    assert_eq!(
        now["content"],
        json!({ "alias": "#kitchen:localhost", "alt_aliases": ["#larder:localhost"] })
    );
    assert_eq!(now["sender"], "@alice:localhost");
    alice.delete("/_matrix/client/v3/directory/room/%23kitchen:localhost", json!({})).await.ok();
    let now = alice.get(&state).await.ok();
    assert_eq!(now, json!({ "alt_aliases": ["#larder:localhost"] }));
    let listed = s.client().get("/_matrix/client/v3/publicRooms").await.ok();
    assert_eq!(listed["chunk"][0]["room_id"], r.as_str());
    assert!(listed["chunk"][0].get("canonical_alias").is_none(), "{listed}");
    // An admin outside the room may delete the alias, but may not change
    // the room's state: that stays as it was.
    root.delete("/_matrix/client/v3/directory/room/%23larder:localhost", json!({})).await.ok();
    s.client()
        .get("/_matrix/client/v3/directory/room/%23larder:localhost")
        .await
        .expect_err(404, "M_NOT_FOUND");
    assert_eq!(alice.get(&state).await.ok(), json!({ "alt_aliases": ["#larder:localhost"] }));
}
