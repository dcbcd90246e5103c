//! The HTTP layer: routing errors, CORS, body rules, limits, token extraction, discovery.

use reqwest::Method;
use serde_json::json;

use crate::support::TestServer;

#[tokio::test]
async fn versions_lists_spec_versions_and_needs_no_token() {
    let s = TestServer::start();
    let body = s.client().get("/_matrix/client/versions").await.ok();
    let versions = body["versions"].as_array().expect("versions");
    assert!(versions.iter().any(|v| v == "v1.11"), "{body}");
    assert!(body["unstable_features"].is_object());
}

#[tokio::test]
async fn unknown_path_is_404_and_wrong_method_is_405_unrecognized() {
    let s = TestServer::start();
    let c = s.client();
    c.get("/_matrix/client/v3/no_such_thing").await.expect_err(404, "M_UNRECOGNIZED");
    c.request(Method::DELETE, "/_matrix/client/v3/login", None)
        .await
        .expect_err(405, "M_UNRECOGNIZED");
}

#[tokio::test]
async fn every_response_carries_cors_headers_even_errors() {
    let s = TestServer::start();
    for path in
        ["/_matrix/client/versions", "/_matrix/client/v3/nope", "/_matrix/client/v3/account/whoami"]
    {
        let r = s.client().get(path).await;
        assert_eq!(r.headers["access-control-allow-origin"], "*", "{path}");
        let methods = r.headers["access-control-allow-methods"].to_str().expect("ascii");
        for m in ["GET", "POST", "PUT", "DELETE", "OPTIONS"] {
            assert!(methods.contains(m), "{path}: {methods}");
        }
        let headers = r.headers["access-control-allow-headers"].to_str().expect("ascii");
        assert!(headers.contains("Authorization") && headers.contains("Content-Type"));
    }
}

#[tokio::test]
async fn options_preflight_answers_without_running_the_endpoint() {
    let s = TestServer::start();
    // /logout needs a token; a preflight must not be refused for lacking one.
    let r = s.client().request(Method::OPTIONS, "/_matrix/client/v3/logout", None).await;
    assert!(r.status.is_success(), "{}", r.status);
    assert_eq!(r.headers["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn a_body_that_is_not_json_is_m_not_json() {
    let s = TestServer::start();
    let r = s
        .client()
        .http
        .post(format!("{}/_matrix/client/v3/login", s.base))
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["errcode"], "M_NOT_JSON");
}

#[tokio::test]
async fn a_json_body_that_is_not_an_object_is_m_bad_json() {
    let s = TestServer::start();
    s.client().post("/_matrix/client/v3/login", json!([1, 2])).await.expect_err(400, "M_BAD_JSON");
}

#[tokio::test]
async fn a_field_of_the_wrong_type_is_m_bad_json_naming_the_field() {
    let s = TestServer::start();
    let r = s.client().post("/_matrix/client/v3/login", json!({ "type": 5 })).await;
    r.expect_err(400, "M_BAD_JSON");
    assert!(
        r.body["error"].as_str().unwrap_or("").contains("type")
            || r.body["error"].as_str().unwrap_or("").contains("string"),
        "{}",
        r.body
    );
    let r = s.client().post("/_matrix/client/v3/refresh", json!({})).await;
    r.expect_err(400, "M_BAD_JSON");
    assert!(r.body["error"].as_str().unwrap_or("").contains("refresh_token"), "{}", r.body);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_m_too_large() {
    let s = TestServer::start_with(|c| c.max_request_body_bytes = 4096);
    let big = "x".repeat(10_000);
    s.client()
        .post("/_matrix/client/v3/login", json!({ "type": "m.login.password", "password": big }))
        .await
        .expect_err(413, "M_TOO_LARGE");
}

#[tokio::test]
async fn missing_and_unknown_tokens_are_distinguished() {
    let s = TestServer::start();
    s.client().get("/_matrix/client/v3/account/whoami").await.expect_err(401, "M_MISSING_TOKEN");
    let r = s.client().with_token("nope").get("/_matrix/client/v3/account/whoami").await;
    r.expect_err(401, "M_UNKNOWN_TOKEN");
    assert_eq!(r.body["soft_logout"], false);
}

#[tokio::test]
async fn the_access_token_query_parameter_is_accepted() {
    let s = TestServer::start();
    let (alice, reg) = s.client().register("alice", "pw-alice-1").await;
    let token = alice.token.clone().expect("token");
    let r =
        s.client().get(&format!("/_matrix/client/v3/account/whoami?access_token={token}")).await;
    assert_eq!(r.ok()["user_id"], reg["user_id"]);
}

#[tokio::test]
async fn well_known_is_404_unless_a_public_base_url_is_configured() {
    let s = TestServer::start();
    s.client().get("/.well-known/matrix/client").await.expect_err(404, "M_NOT_FOUND");
    let s = TestServer::start_with(|c| c.public_base_url = Some("https://chat.example".into()));
    let body = s.client().get("/.well-known/matrix/client").await.ok();
    assert_eq!(body["m.homeserver"]["base_url"], "https://chat.example");
}

#[tokio::test]
async fn capabilities_list_room_versions_and_password_change() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let caps = alice.get("/_matrix/client/v3/capabilities").await.ok();
    let rv = &caps["capabilities"]["m.room_versions"];
    assert_eq!(rv["default"], "12");
    for v in ["10", "11", "12"] {
        assert_eq!(rv["available"][v], "stable", "{caps}");
    }
    assert_eq!(caps["capabilities"]["m.change_password"]["enabled"], true);
}

#[tokio::test]
async fn percent_encoded_path_segments_are_decoded() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let devices = alice.get("/_matrix/client/v3/devices").await.ok();
    let id = devices["devices"][0]["device_id"].as_str().expect("device").to_owned();
    let encoded: String = id.chars().map(|c| format!("%{:02X}", c as u32)).collect();
    let d = alice.get(&format!("/_matrix/client/v3/devices/{encoded}")).await.ok();
    assert_eq!(d["device_id"], id.as_str());
}

mod connections {
    //! Timeouts for connections that keep the server waiting, and room for
    //! new connections when every slot is taken.

    use std::time::{Duration, Instant};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use crate::support::{TestServer, assert_long_poll_waits};

    fn addr(s: &TestServer) -> String {
        s.base.trim_start_matches("http://").to_owned()
    }

    /// Reads until the server closes the connection; returns how long that took.
    async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Duration {
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout(limit, stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return start.elapsed(),
                Ok(Ok(_)) => {}
                Err(_) => panic!("the server kept the connection open for {limit:?}"),
            }
        }
    }

    #[tokio::test]
    async fn silent_connections_filling_every_slot_do_not_lock_clients_out() {
        let header = Duration::from_secs(3);
        let s = TestServer::start_with(|c| {
            c.max_connections = 8;
            c.timeouts.header_read = header;
            c.timeouts.idle = Duration::from_secs(60);
        });
        let mut silent = Vec::new();
        for _ in 0..8 {
            silent.push(TcpStream::connect(addr(&s)).await.expect("connect"));
        }
        let client = reqwest::Client::builder().timeout(header).build().expect("client");
        let r = client
            .get(format!("{}/_matrix/client/versions", s.base))
            .send()
            .await
            .expect("answered while every slot held a silent connection");
        assert_eq!(r.status(), 200);
        // The room came from closing a silent connection.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for (i, mut stream) in silent.into_iter().enumerate() {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 16];
                if matches!(stream.read(&mut buf).await, Ok(0) | Err(_)) {
                    let _ = tx.send(i);
                }
            });
        }
        let closed = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await;
        assert!(matches!(closed, Ok(Some(_))), "no silent connection was closed");
    }

    #[tokio::test]
    async fn a_silent_connection_is_closed_after_the_header_timeout() {
        let s = TestServer::start_with(|c| {
            c.timeouts.header_read = Duration::from_millis(300);
            c.timeouts.idle = Duration::from_secs(60);
        });
        let mut stream = TcpStream::connect(addr(&s)).await.expect("connect");
        let took = closed_within(&mut stream, Duration::from_secs(5)).await;
        assert!(took >= Duration::from_millis(250), "{took:?}");
        // A head sent a byte at a time does not reset the clock.
        let mut stream = TcpStream::connect(addr(&s)).await.expect("connect");
        stream.write_all(b"GET /_matrix/client/versions HTTP/1.1\r\n").await.expect("write");
        let start = Instant::now();
        for b in b"x-slow: y\r\n".iter().cycle() {
            if stream.write_all(&[*b]).await.is_err() {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(5), "a trickled head kept it open");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
        let idle = Duration::from_millis(1000);
        let s = TestServer::start_with(|c| {
            c.timeouts.header_read = Duration::from_millis(300);
            c.timeouts.idle = idle;
        });
        let mut stream = TcpStream::connect(addr(&s)).await.expect("connect");
        stream
            .write_all(b"GET /_matrix/client/versions HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .expect("write");
        let mut buf = [0u8; 4096];
        let n = stream.read(&mut buf).await.expect("read");
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
        let took = closed_within(&mut stream, Duration::from_secs(10)).await;
        // The idle clock, not the (shorter) head clock, governs between requests.
        assert!(took >= idle / 2, "{took:?}");
    }

    #[tokio::test]
    async fn a_stalled_request_body_is_cut_after_the_body_timeout() {
        let s = TestServer::start_with(|c| {
            c.timeouts.body_read = Duration::from_millis(300);
            c.timeouts.idle = Duration::from_secs(60);
        });
        let mut stream = TcpStream::connect(addr(&s)).await.expect("connect");
        stream
            .write_all(
                b"POST /_matrix/client/v3/login HTTP/1.1\r\nHost: t\r\ncontent-length: 100\r\n\r\n{",
            )
            .await
            .expect("write");
        closed_within(&mut stream, Duration::from_secs(5)).await;
    }

    #[tokio::test]
    async fn a_long_poll_outlives_the_timeouts_while_the_server_holds_it() {
        let short = Duration::from_millis(300);
        let s = TestServer::start_with(|c| {
            c.timeouts =
                hearth::config::Timeouts { header_read: short, idle: short, body_read: short };
        });
        let (alice, _) = s.client().register("alice", "pw-alice-1").await;
        assert_long_poll_waits(&alice, 1500).await;
        // Sliding sync parks inside its handler; the same holds.
        let ss = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync";
        let first = alice.post(&format!("{ss}?timeout=0"), serde_json::json!({})).await.ok();
        let pos = first["pos"].as_str().expect("pos");
        let start = Instant::now();
        let r = alice.post(&format!("{ss}?timeout=1500&pos={pos}"), serde_json::json!({})).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(start.elapsed() >= Duration::from_millis(1350), "{:?}", start.elapsed());
    }
}
