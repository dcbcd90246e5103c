//! Crash safety: a real `hearth` process is killed with SIGKILL while many
//! clients register, or send while the write-ahead log is checkpointed into
//! the database; after a restart every write that was answered 200 is
//! there, and the database opens without manual repair. And what start-up
//! does with a write-ahead log that is damaged, cut, missing or foreign.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::Client;

/// Starts the binary on an ephemeral port and returns it with its base URL,
/// read from its start-up log line.
fn spawn(dir: &std::path::Path) -> (Child, String) {
    spawn_with(dir, &[])
}

/// `spawn` with more arguments (`--config FILE`).
fn spawn_with(dir: &std::path::Path, args: &[&std::ffi::OsStr]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(args)
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

/// A data directory left by `kill -9` right after alice registered,
/// created a room and sent 300 messages (m0 … m299), each acknowledged,
/// before any checkpoint: they are all in the write-ahead log only.
async fn crashed_after_300_messages() -> (tempfile::TempDir, String) {
    let temp = tempfile::tempdir().expect("tempdir");
    let (mut child, base) = spawn(temp.path());
    let c = Client { base, http: reqwest::Client::new(), token: None };
    let (alice, _) = c.register("alice", "pw").await;
    let room = crate::support::room(&alice, json!({})).await;
    for i in 0..300 {
        crate::support::send(&alice, &room, &format!("t{i}"), &format!("m{i}")).await;
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    (temp, room)
}

/// A copy of the data directory's files (not the admin socket).
fn copy_dir(from: &std::path::Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("type").is_file() {
            std::fs::copy(entry.path(), to.path().join(entry.file_name())).expect("copy");
        }
    }
    to
}

/// Where each record of the log lies (header magic, then a 64-byte header
/// whose body length is at byte 44): the log layout of `store/wal.rs`.
fn record_spans(log: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut at = 64;
    while log.get(at..at + 4) == Some(b"HwRc") {
        let body = u32::from_le_bytes(log[at + 44..at + 48].try_into().expect("4 bytes"));
        out.push(at..at + 64 + body as usize);
        at += 64 + body as usize;
    }
    out
}

/// Starts the binary on `dir` and expects it to refuse: exit code 2 within
/// 30 s (a server that starts instead fails the test); returns its stderr.
fn expect_refused(dir: &std::path::Path) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env_remove("JOURNAL_STREAM")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn hearth");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().expect("kill");
            let _ = child.wait();
            panic!("the server started on a damaged write-ahead log");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
        .expect("stderr");
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("hearth.wal") && err.contains("hearth doctor --salvage-wal"), "{err}");
    err
}

/// The bodies of alice's messages in `room`, oldest first, from a server
/// started on `dir` (which must start).
async fn messages_after_restart(dir: &std::path::Path, room: &str) -> Vec<String> {
    let (mut child, base) = spawn(dir);
    let c = Client { base, http: reqwest::Client::new(), token: None };
    let login = c.login("alice", "pw").await.ok();
    let alice = c.with_token(login["access_token"].as_str().expect("token"));
    let bodies = crate::support::room_bodies(&alice, room).await;
    child.kill().expect("kill");
    let _ = child.wait();
    bodies
}

fn all_but(lost: &[usize]) -> Vec<String> {
    (0..300).filter(|i| !lost.contains(i)).map(|i| format!("m{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_last_record_ends_the_log_and_any_other_damage_is_refused_at_start() {
    let (crashed, room) = crashed_after_300_messages().await;
    let log = std::fs::read(crashed.path().join("hearth.wal")).expect("log");
    let spans = record_spans(&log);
    assert!(spans.len() > 300, "the messages are in the log: {} records", spans.len());
    let last = spans.last().expect("records").clone();
    let middle = spans[spans.len() / 2].clone();
    let damaged = |f: &dyn Fn(&mut Vec<u8>)| {
        let copy = copy_dir(crashed.path());
        let mut bytes = log.clone();
        f(&mut bytes);
        std::fs::write(copy.path().join("hearth.wal"), &bytes).expect("write");
        copy
    };

    // A power cut during the last append: the end of its record never
    // reached the card. It was never acknowledged; everything else is there.
    let torn = damaged(&|b| b[last.end - 20..last.end].fill(0));
    assert_eq!(messages_after_restart(torn.path(), &room).await, all_but(&[299]));

    let half = damaged(&|b| b.truncate(last.end / 2));
    assert!(expect_refused(half.path()).contains("cut short"));
    let flipped = damaged(&|b| b[(middle.start + middle.end) / 2] ^= 0x40);
    assert!(expect_refused(flipped.path()).contains("intact record"));
    let first = damaged(&|b| b[spans[0].start + 70] ^= 0x40);
    assert!(expect_refused(first.path()).contains("intact record"));
    let random = damaged(&|b| {
        getrandom::fill(b).expect("random");
    });
    assert!(expect_refused(random.path()).contains("not a Hearth write-ahead log"));
    let missing = copy_dir(crashed.path());
    std::fs::remove_file(missing.path().join("hearth.wal")).expect("remove");
    assert!(expect_refused(missing.path()).contains("missing"));
    // A log of another database.
    let (other, _) = crashed_after_300_messages_elsewhere_log().await;
    let foreign = copy_dir(crashed.path());
    std::fs::copy(other.path().join("hearth.wal"), foreign.path().join("hearth.wal"))
        .expect("copy");
    assert!(expect_refused(foreign.path()).contains("another database"));
    // Refusing changed nothing.
    assert_eq!(std::fs::read(flipped.path().join("hearth.wal")).expect("log").len(), log.len());
}

/// Another data directory whose log holds records (a registration).
async fn crashed_after_300_messages_elsewhere_log() -> (tempfile::TempDir, ()) {
    let temp = tempfile::tempdir().expect("tempdir");
    let (mut child, base) = spawn(temp.path());
    let c = Client { base, http: reqwest::Client::new(), token: None };
    c.register("bob", "pw").await;
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    (temp, ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_salvage_applies_every_intact_record_and_names_what_was_lost() {
    let (crashed, room) = crashed_after_300_messages().await;
    let path = crashed.path().join("hearth.wal");
    let mut log = std::fs::read(&path).expect("log");
    let spans = record_spans(&log);
    // The 100th message from the end: its batch's body gets a flipped bit.
    let victim = spans[spans.len() - 100].clone();
    log[victim.start + 70] ^= 0x40;
    std::fs::write(&path, &log).expect("write");
    expect_refused(crashed.path());
    // Plain `hearth doctor` names the problem and the salvage, changing nothing.
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["doctor", "--data-dir"])
        .arg(crashed.path())
        .output()
        .expect("run doctor");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("PROBLEM  the write-ahead log") && text.contains("--salvage-wal"),
        "{text}"
    );
    assert_eq!(std::fs::read(&path).expect("log"), log);

    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["doctor", "--salvage-wal", "--data-dir"])
        .arg(crashed.path())
        .output()
        .expect("run doctor");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "writes were lost: {text}");
    let seq = spans.len() - 100 + 1;
    assert!(text.contains(&format!("LOST: batches {seq}\n")), "{text}");
    assert!(text.contains("LOST: stream positions "), "{text}");
    assert!(text.contains(&format!("applied: batches 1-{}, {}-{}", seq - 1, seq + 1, spans.len())));
    // The damaged log is kept as it was.
    let kept = std::fs::read_dir(crashed.path())
        .expect("read_dir")
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().starts_with("hearth.wal.damaged-"))
        .expect("kept log");
    assert_eq!(std::fs::read(kept.path()).expect("kept"), log);

    assert_eq!(messages_after_restart(crashed.path(), &room).await, all_but(&[200]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_sigkill_during_checkpoints() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    // The smallest cache: a checkpoint every MiB of changes, i.e. every
    // ~30 of these messages.
    let config = temp.path().join("hearth.toml");
    std::fs::write(&config, "db_cache_mb = 1\n").expect("config");
    let args = [std::ffi::OsStr::new("--config"), config.as_os_str()];
    let padding = "x".repeat(30_000);
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut room = String::new();
    let mut token = String::new();
    for round in 0..3 {
        let (mut child, base) = spawn_with(&data, &args);
        let c = Client { base, http: reqwest::Client::new(), token: None };
        if round == 0 {
            let (alice, _) = c.register("alice", "pw").await;
            room = crate::support::room(&alice, json!({})).await;
            token = alice.token.clone().expect("token");
        } else {
            // Everything acknowledged before the last kill is there.
            let alice = c.with_token(&token);
            let got = crate::support::room_bodies(&alice, &room).await;
            let want = acked.lock().expect("lock").clone();
            let missing: Vec<_> = want.iter().filter(|b| !got.contains(*b)).collect();
            assert!(missing.is_empty(), "round {round}: {} acknowledged lost", missing.len());
        }
        let alice = c.with_token(&token);
        let mut tasks = Vec::new();
        for worker in 0..8 {
            let (alice, room, acked, padding) =
                (alice.clone(), room.clone(), acked.clone(), padding.clone());
            tasks.push(tokio::spawn(async move {
                for n in 0..10_000 {
                    let body = format!("r{round}w{worker}n{n} {padding}");
                    let r = alice
                        .http
                        .put(format!(
                            "{}/_matrix/client/v3/rooms/{room}/send/m.room.message/r{round}w{worker}n{n}",
                            alice.base
                        ))
                        .bearer_auth(alice.token.as_deref().unwrap_or_default())
                        .json(&json!({ "msgtype": "m.text", "body": body }))
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status() == 200 => acked.lock().expect("lock").push(body),
                        _ => break,
                    }
                }
            }));
        }
        // Once a few checkpoints have passed, kill the moment redb's file
        // changes: a checkpoint (or redb spilling its small cache) is
        // writing it.
        let db = data.join("hearth.redb");
        let stamp = || std::fs::metadata(&db).map(|m| (m.len(), m.modified().ok())).ok();
        let deadline = Instant::now() + Duration::from_secs(60);
        let start = acked.lock().expect("lock").len();
        while acked.lock().expect("lock").len() < start + 100 {
            assert!(Instant::now() < deadline, "sends never got going");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let before = stamp();
        while stamp() == before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(200));
        }
        assert!(Instant::now() < deadline, "no checkpoint within a minute");
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        for t in tasks {
            let _ = t.await;
        }
    }
    let (mut child, base) = spawn_with(&data, &args);
    let alice = Client { base, http: reqwest::Client::new(), token: Some(token) };
    let got = crate::support::room_bodies(&alice, &room).await;
    let want = acked.lock().expect("lock").clone();
    assert!(want.len() >= 300);
    assert!(want.iter().all(|b| got.contains(b)), "acknowledged messages were lost");
    child.kill().expect("kill");
    let _ = child.wait();
}
