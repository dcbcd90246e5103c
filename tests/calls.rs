//! Calls: TURN credentials from `/voip/turnServer` (checked against a real
//! coturn in the ignored test at the end) and MatrixRTC focus discovery.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hearth::config::{Config, RtcFocus, TurnConfig, TurnCredentials};
use serde_json::{Value, json};

use crate::support::TestServer;

const TURN: &str = "/_matrix/client/v3/voip/turnServer";
const TRANSPORTS: &str = "/_matrix/client/unstable/org.matrix.msc4143/rtc/transports";
const SECRET: &str = "north-wind-shared-secret";

fn with_turn(
    uris: &[String],
    credentials: TurnCredentials,
    lifetime: u64,
) -> impl FnOnce(&mut Config) {
    let turn = TurnConfig {
        uris: uris.to_vec(),
        credentials,
        user_lifetime_secs: lifetime,
        allow_guests: true,
    };
    move |c: &mut Config| c.turn = Some(turn)
}

/// A shared-secret TURN server at `uris`, for `TestServer::start_with`.
fn with_shared_secret(uris: &[String], lifetime: u64) -> impl FnOnce(&mut Config) {
    with_turn(uris, TurnCredentials::SharedSecret(SECRET.into()), lifetime)
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs()
}

fn livekit() -> Vec<RtcFocus> {
    vec![RtcFocus::LiveKit { service_url: "https://rtc.example.org/livekit/jwt".into() }]
}

#[tokio::test]
async fn turn_server_hands_out_credentials_that_expire_after_the_lifetime() {
    let uris = vec!["turn:turn.example.org:3478?transport=udp".to_owned()];
    let s = TestServer::start_with(with_shared_secret(&uris, 3600));
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let before = now_secs();
    let body = alice.get(TURN).await.ok();
    let after = now_secs();
    assert_eq!(body["uris"], json!(uris));
    assert_eq!(body["ttl"], 3600);
    let username = body["username"].as_str().expect("username");
    let (expiry, user) = username.split_once(':').expect("expiry:user");
    assert_eq!(user, "@alice:localhost");
    let expiry: u64 = expiry.parse().expect("a Unix time");
    assert!((before + 3600..=after + 3600).contains(&expiry), "{expiry} vs {before}..{after}");
    assert_eq!(body["password"], hearth::voip::rest_api_password(SECRET, username));
    s.client().get(TURN).await.expect_err(401, "M_MISSING_TOKEN");
}

#[tokio::test]
async fn turn_server_hands_out_static_credentials_as_configured() {
    let uris = vec!["turns:turn.example.org:5349?transport=tcp".to_owned()];
    let creds = TurnCredentials::Static { username: "hearth".into(), password: "pw".into() };
    let s = TestServer::start_with(with_turn(&uris, creds, 86_400));
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    assert_eq!(
        alice.get(TURN).await.ok(),
        json!({ "username": "hearth", "password": "pw", "uris": uris, "ttl": 86_400 })
    );
}

#[tokio::test]
async fn turn_server_is_rate_limited_per_user() {
    let uris = vec!["turn:turn.example.org".to_owned()];
    let s = TestServer::start_with(with_shared_secret(&uris, 86_400));
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let (bob, _) = s.client().register("bob", "pw-bob-1").await;
    let mut refused = None;
    for _ in 0..20 {
        let r = alice.get(TURN).await;
        if r.status != 200 {
            refused = Some(r);
            break;
        }
    }
    let r = refused.expect("twenty requests in a row are refused at some point");
    r.expect_err(429, "M_LIMIT_EXCEEDED");
    assert!(r.body["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0), "{}", r.body);
    bob.get(TURN).await.ok();
}

#[tokio::test]
async fn rtc_transports_are_served_only_when_foci_are_configured() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    alice.get(TRANSPORTS).await.expect_err(404, "M_UNRECOGNIZED");
    let versions = s.client().get("/_matrix/client/versions").await.ok();
    assert!(versions["unstable_features"].get("org.matrix.msc4143").is_none(), "{versions}");

    let s = TestServer::start_with(|c| c.rtc_foci = livekit());
    s.client().get(TRANSPORTS).await.expect_err(401, "M_MISSING_TOKEN");
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    assert_eq!(
        alice.get(TRANSPORTS).await.ok(),
        json!({ "rtc_transports": [
            { "type": "livekit", "livekit_service_url": "https://rtc.example.org/livekit/jwt" }
        ] })
    );
    let versions = s.client().get("/_matrix/client/versions").await.ok();
    assert_eq!(versions["unstable_features"]["org.matrix.msc4143"], true, "{versions}");
}

#[tokio::test]
async fn well_known_carries_rtc_foci_when_both_are_configured() {
    let s = TestServer::start_with(|c| c.public_base_url = Some("https://chat.example".into()));
    let body = s.client().get("/.well-known/matrix/client").await.ok();
    assert_eq!(body, json!({ "m.homeserver": { "base_url": "https://chat.example" } }));

    let s = TestServer::start_with(|c| {
        c.public_base_url = Some("https://chat.example".into());
        c.rtc_foci = livekit();
    });
    let body = s.client().get("/.well-known/matrix/client").await.ok();
    assert_eq!(body["m.homeserver"]["base_url"], "https://chat.example");
    assert_eq!(
        body["org.matrix.msc4143.rtc_foci"],
        json!([{ "type": "livekit", "livekit_service_url": "https://rtc.example.org/livekit/jwt" }])
    );

    // Without a base URL there is no document to carry them (m.homeserver
    // is required); rtc/transports still serves them.
    let s = TestServer::start_with(|c| c.rtc_foci = livekit());
    s.client().get("/.well-known/matrix/client").await.expect_err(404, "M_NOT_FOUND");
}

/// A `turnserver` this test started, stopped by its PID when dropped.
struct Coturn {
    child: std::process::Child,
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts coturn on loopback with `secret`, on a free port; returns it and
/// the port.
fn start_coturn(dir: &Path, secret: &str) -> (Coturn, u16) {
    // A free port: bind 0 on both protocols coturn will listen on, release it.
    let port = loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
        let port = udp.local_addr().expect("addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            break port;
        }
    };
    let d = dir.display();
    let conf = format!(
        "listening-ip=127.0.0.1\nlistening-port={port}\nrelay-ip=127.0.0.1\n\
         use-auth-secret\nstatic-auth-secret={secret}\nrealm=localhost\n\
         no-tls\nno-dtls\nno-cli\nno-stdout-log\nsimple-log\n\
         allow-loopback-peers\nlog-file={d}/turn.log\npidfile={d}/turn.pid\nuserdb={d}/turndb\n"
    );
    let conf_path = dir.join("turnserver.conf");
    std::fs::write(&conf_path, conf).expect("write turnserver.conf");
    let child = std::process::Command::new("turnserver")
        .arg("-c")
        .arg(&conf_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("turnserver (apt-get install coturn)");
    (Coturn { child }, port)
}

/// One allocation (and two relayed messages between two clients) with
/// `turnutils_uclient`; true when it succeeded.
async fn allocate(port: u16, tcp: bool, username: &str, password: &str) -> bool {
    let mut cmd = tokio::process::Command::new("turnutils_uclient");
    if tcp {
        cmd.arg("-t");
    }
    let out = cmd
        .args(["-y", "-c", "-n", "1", "-p", &port.to_string(), "-u", username, "-w", password])
        .arg("127.0.0.1")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), out)
        .await
        .expect("turnutils_uclient finishes")
        .expect("turnutils_uclient (apt-get install coturn)");
    let text = String::from_utf8_lossy(&out.stdout);
    out.status.success() && text.contains("tot_recv_msgs=2")
}

#[tokio::test]
#[ignore = "needs coturn's turnserver: apt-get install coturn; .ci/run runs it"]
async fn coturn_relays_with_turn_server_credentials_and_refuses_wrong_or_expired_ones() {
    let temp = tempfile::tempdir().expect("tempdir");
    let (coturn, port) = start_coturn(temp.path(), SECRET);
    let uris = vec![
        format!("turn:127.0.0.1:{port}?transport=udp"),
        format!("turn:127.0.0.1:{port}?transport=tcp"),
    ];
    let s = TestServer::start_with(with_shared_secret(&uris, 86_400));
    let (alice, _) = s.client().register("alice", "pw-alice-1").await;
    let body: Value = alice.get(TURN).await.ok();
    let username = body["username"].as_str().expect("username");
    let password = body["password"].as_str().expect("password");
    let served: Vec<&str> =
        body["uris"].as_array().expect("uris").iter().filter_map(Value::as_str).collect();
    assert_eq!(served, uris);

    // coturn takes a moment to bind: the first allocation is retried
    // until it succeeds or the deadline passes.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !allocate(port, false, username, password).await {
        assert!(Instant::now() < deadline, "{}", log(temp.path()));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for uri in &served {
        assert!(
            allocate(port, uri.ends_with("transport=tcp"), username, password).await,
            "{uri}: {}",
            log(temp.path())
        );
    }

    let mut wrong = password.to_owned();
    wrong.replace_range(..1, if wrong.starts_with('A') { "B" } else { "A" });
    assert!(!allocate(port, false, username, &wrong).await, "a wrong password is refused");
    let other_user = username.replace("@alice:", "@mallory:");
    assert!(!allocate(port, false, &other_user, password).await, "the user is signed");
    let expired = format!("{}:@alice:localhost", now_secs() - 60);
    let expired_password = hearth::voip::rest_api_password(SECRET, &expired);
    assert!(
        !allocate(port, false, &expired, &expired_password).await,
        "an expired (correctly signed) credential is refused"
    );
    let later = format!("{}:@alice:localhost", now_secs() + 600);
    assert!(
        allocate(port, false, &later, &hearth::voip::rest_api_password(SECRET, &later)).await,
        "the same algorithm with a future expiry is accepted"
    );
    drop(coturn);
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("turn.log")).unwrap_or_default()
}
