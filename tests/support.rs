//! The test harness: starts the real server (the same `server::run` the
//! binary uses) on `127.0.0.1:0` with a temporary data directory, and a
//! small JSON client around reqwest.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::thread;

use hearth::config::{Config, Overrides};
use hearth::server::Sockets;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub struct TestServer {
    pub base: String,
    pub dir: PathBuf,
    /// Where the metrics endpoint listens, when started with it.
    pub metrics: Option<SocketAddr>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
    _temp: Option<tempfile::TempDir>,
}

impl TestServer {
    pub fn start() -> TestServer {
        TestServer::start_with(|_| {})
    }

    /// Starts with defaults adjusted by `tweak`.
    pub fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        TestServer::start_with_sockets(tweak, Sockets::default())
    }

    /// [`TestServer::start_with`], with side services on sockets bound by
    /// the caller (the config must still turn them on).
    pub fn start_with_sockets(tweak: impl FnOnce(&mut Config), sockets: Sockets) -> TestServer {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().to_path_buf();
        let mut s = TestServer::start_in_with_sockets(&dir, tweak, sockets);
        s._temp = Some(temp);
        s
    }

    /// Starts with the metrics endpoint on a listener bound here and handed
    /// to the server, so no other process can take its port meanwhile.
    pub fn start_with_metrics(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind metrics");
        let addr = listener.local_addr().expect("addr");
        let sockets = Sockets { metrics: Some(listener), ..Sockets::default() };
        let mut s = TestServer::start_with_sockets(
            |c| {
                c.metrics_listen = Some(addr);
                tweak(c);
            },
            sockets,
        );
        s.metrics = Some(addr);
        s
    }

    /// Starts on an existing data directory (for restarts).
    pub fn start_in(dir: &Path, tweak: impl FnOnce(&mut Config)) -> TestServer {
        TestServer::start_in_with_sockets(dir, tweak, Sockets::default())
    }

    fn start_in_with_sockets(
        dir: &Path,
        tweak: impl FnOnce(&mut Config),
        sockets: Sockets,
    ) -> TestServer {
        let overrides = Overrides {
            data_dir: Some(dir.to_path_buf()),
            listen: Some("127.0.0.1:0".into()),
            ..Overrides::default()
        };
        let mut config = Config::with_overrides(&overrides).expect("config");
        config.db_cache_bytes = 4 << 20;
        tweak(&mut config);
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("addr");
        let store = hearth::server::open_store(&config).expect("open store");
        let (tx, rx) = oneshot::channel::<()>();
        let thread = thread::spawn(move || {
            let rt =
                tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
                let reloads = hearth::http::tls::ReloadRequests::none();
                hearth::server::run_with_sockets(
                    config,
                    store,
                    listener,
                    reloads,
                    sockets,
                    async {
                        let _ = rx.await;
                    },
                )
                .await;
            });
        });
        wait_until_serving(addr);
        TestServer {
            base: format!("http://{addr}"),
            dir: dir.to_path_buf(),
            metrics: None,
            shutdown: Some(tx),
            thread: Some(thread),
            _temp: None,
        }
    }

    /// Stops the server and waits until the database is closed.
    pub fn stop(mut self) -> Option<tempfile::TempDir> {
        self.halt();
        self._temp.take()
    }

    fn halt(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// The metrics endpoint's text (the server must be started with it).
    pub async fn scrape_metrics(&self) -> String {
        let addr = self.metrics.expect("started with TestServer::start_with_metrics");
        let r = reqwest::get(format!("http://{addr}/metrics")).await.expect("scrape");
        assert_eq!(r.status(), 200);
        r.text().await.expect("text")
    }

    /// Waits until `n` `/sync` or sliding sync long-polls are parked (the
    /// `hearth_sync_long_polls` gauge), failing after 10 s; returns the
    /// metrics text that showed it. Needs [`TestServer::start_with_metrics`].
    pub async fn await_long_polls(&self, n: usize) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let m = self.scrape_metrics().await;
            let parked = metric_sample(&m, "hearth_sync_long_polls ");
            if parked == Some(n as f64) {
                return m;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{parked:?} long-polls parked after 10 s, not {n}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    pub fn client(&self) -> Client {
        Client { base: self.base.clone(), http: reqwest::Client::new(), token: None }
    }

    /// A client whose connections come from `ip` (any of 127.0.0.0/8 is
    /// loopback on Linux), so tests can play several client addresses.
    pub fn client_from(&self, ip: &str) -> Client {
        let ip: std::net::IpAddr = ip.parse().expect("ip");
        let http = reqwest::Client::builder().local_address(ip).build().expect("client");
        Client { base: self.base.clone(), http, token: None }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.halt();
    }
}

#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub http: reqwest::Client,
    pub token: Option<String>,
}

/// A response: status, JSON body (Null when not JSON) and headers.
pub struct Resp {
    pub status: StatusCode,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Resp {
    pub fn errcode(&self) -> &str {
        self.body["errcode"].as_str().unwrap_or("")
    }

    #[track_caller]
    pub fn ok(self) -> Value {
        assert_eq!(self.status, 200, "expected 200, got {}: {}", self.status, self.body);
        self.body
    }

    #[track_caller]
    pub fn expect_err(&self, status: u16, errcode: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(self.errcode(), errcode, "body: {}", self.body);
    }
}

impl Client {
    pub fn with_token(&self, token: &str) -> Client {
        Client { token: Some(token.to_owned()), ..self.clone() }
    }

    pub async fn request(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        let mut rb = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.expect("request");
        let status = r.status();
        let headers = r.headers().clone();
        let bytes = r.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp { status, body, headers }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.request(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.request(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Resp {
        self.request(Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str, body: Value) -> Resp {
        self.request(Method::DELETE, path, Some(body)).await
    }

    /// Registers through the open (dummy) flow; returns a client with the
    /// new access token and the response body.
    pub async fn register(&self, username: &str, password: &str) -> (Client, Value) {
        let first = self
            .post(
                "/_matrix/client/v3/register",
                json!({ "username": username, "password": password }),
            )
            .await;
        assert_eq!(first.status, 401, "{}", first.body);
        let session = first.body["session"].as_str().expect("session").to_owned();
        let body = self
            .post(
                "/_matrix/client/v3/register",
                json!({
                    "username": username,
                    "password": password,
                    "auth": { "type": "m.login.dummy", "session": session },
                }),
            )
            .await
            .ok();
        let token = body["access_token"].as_str().expect("access_token");
        (self.with_token(token), body)
    }

    pub async fn login(&self, username: &str, password: &str) -> Resp {
        self.post(
            "/_matrix/client/v3/login",
            json!({
                "type": "m.login.password",
                "identifier": { "type": "m.id.user", "user": username },
                "password": password,
            }),
        )
        .await
    }
}

/// Percent-encodes everything but ASCII letters and digits (for JSON in a
/// query string).
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(
            |b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            },
        )
        .collect()
}

/// The value of the first metrics sample line starting with `prefix`.
pub fn metric_sample(metrics: &str, prefix: &str) -> Option<f64> {
    metrics.lines().find(|l| l.starts_with(prefix))?.rsplit(' ').next()?.parse().ok()
}

/// Creates a room as `c`; returns its ID.
pub async fn room(c: &Client, body: Value) -> String {
    c.post("/_matrix/client/v3/createRoom", body).await.ok()["room_id"]
        .as_str()
        .expect("room_id")
        .to_owned()
}

/// Sends a text message as `c`; returns its event ID.
pub async fn send(c: &Client, room: &str, txn: &str, text: &str) -> String {
    c.put(
        &format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}"),
        json!({ "msgtype": "m.text", "body": text }),
    )
    .await
    .ok()["event_id"]
        .as_str()
        .expect("event_id")
        .to_owned()
}

/// Blocks until the server answers `/versions` (its side tasks, such as the
/// admin socket, are started before it serves), failing after 10 s.
fn wait_until_serving(addr: SocketAddr) {
    use std::io::{Read, Write};
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
            let req =
                "GET /_matrix/client/versions HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
            let mut buf = [0u8; 12];
            if s.write_all(req.as_bytes()).is_ok()
                && s.read_exact(&mut buf).is_ok()
                && buf.ends_with(b"200")
            {
                return;
            }
        }
        assert!(std::time::Instant::now() < deadline, "the test server never started serving");
        thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Runs an incremental `/sync` long-poll of `timeout_ms` with nothing new
/// to return, and checks that it is answered 200 after waiting it out (not
/// cut short, e.g. by a connection timeout).
pub async fn assert_long_poll_waits(c: &Client, timeout_ms: u64) {
    let first = c.get("/_matrix/client/v3/sync").await.ok();
    let since = first["next_batch"].as_str().expect("next_batch");
    let start = std::time::Instant::now();
    let r = c.get(&format!("/_matrix/client/v3/sync?since={since}&timeout={timeout_ms}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let waited = start.elapsed();
    assert!(waited.as_millis() as u64 >= timeout_ms * 9 / 10, "answered after {waited:?}");
}

/// The bodies of the messages in `room` as `c` pages back through
/// `/messages`, oldest first.
pub async fn room_bodies(c: &Client, room: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut from = String::new();
    loop {
        let page = c
            .get(&format!("/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=100{from}"))
            .await
            .ok();
        let chunk = page["chunk"].as_array().expect("chunk");
        out.extend(chunk.iter().filter_map(|e| e["content"]["body"].as_str().map(str::to_owned)));
        match page["end"].as_str() {
            Some(end) if !chunk.is_empty() => from = format!("&from={end}"),
            _ => break,
        }
    }
    out.reverse();
    out
}
