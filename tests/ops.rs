//! Operating the server: online backup and restore through the binary,
//! `hearth doctor`, the metrics endpoint, and a full disk.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{Client, TestServer, metric_sample as sample};

fn hearth(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .expect("run hearth")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

async fn create_room(c: &Client) -> String {
    c.post("/_matrix/client/v3/createRoom", json!({})).await.ok()["room_id"]
        .as_str()
        .expect("room_id")
        .to_owned()
}

async fn send(c: &Client, room: &str, txn: &str, body: &str) -> crate::support::Resp {
    c.put(
        &format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}"),
        json!({ "msgtype": "m.text", "body": body }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_backup_under_write_load_restores_every_acknowledged_message() {
    let s = TestServer::start();
    let (alice, _) = s.client().register("alice", "correct horse battery").await;
    let room = create_room(&alice).await;
    let upload = alice
        .http
        .post(format!("{}/_matrix/media/v3/upload?filename=a.bin", alice.base))
        .bearer_auth(alice.token.as_deref().unwrap_or(""))
        .header("content-type", "application/octet-stream")
        .body(vec![7u8; 50_000])
        .send()
        .await
        .expect("upload");
    assert_eq!(upload.status(), 200);
    let mxc: serde_json::Value = upload.json().await.expect("json");
    let media = mxc["content_uri"].as_str().expect("uri").trim_start_matches("mxc://").to_owned();

    // Four senders keep writing while the backup runs; each remembers when
    // every message was acknowledged.
    let acked: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut senders = Vec::new();
    for n in 0..4 {
        let (c, room, acked, stop) = (alice.clone(), room.clone(), acked.clone(), stop.clone());
        senders.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = send(&c, &room, &format!("t{n}-{i}"), &format!("m {n} {i}")).await;
                let id = r.ok()["event_id"].as_str().expect("event_id").to_owned();
                acked.lock().expect("lock").push((Instant::now(), id));
                i += 1;
            }
        }));
    }
    while acked.lock().expect("lock").len() < 40 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let temp = tempfile::tempdir().expect("tempdir");
    let dest = temp.path().join("backup");
    let began = Instant::now();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hearth"))
        .arg("backup")
        .arg(&dest)
        .arg("--data-dir")
        .arg(&s.dir)
        .output()
        .await
        .expect("run hearth backup");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("by the running server"), "{}", text(&out.stdout));
    // Writes went on during and after the backup.
    let during = acked.lock().expect("lock").len();
    while acked.lock().expect("lock").len() < during + 10 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in senders {
        t.await.expect("sender");
    }
    let before: Vec<String> = acked
        .lock()
        .expect("lock")
        .iter()
        .filter(|(at, _)| *at < began)
        .map(|(_, id)| id.clone())
        .collect();
    assert!(before.len() >= 40);

    // Restore refuses while the server runs.
    let busy = hearth(&s.dir, &["restore", dest.to_str().expect("utf8")]);
    assert_eq!(busy.status.code(), Some(1));
    assert!(text(&busy.stderr).contains("stop it first"), "{}", text(&busy.stderr));
    drop(s);

    let fresh = temp.path().join("fresh");
    let out = hearth(&fresh, &["restore", dest.to_str().expect("utf8")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!fresh.join("hearth.redb.bak").exists());
    let store = hearth::store::Store::open(&fresh, 4 << 20, None).expect("open restored");
    assert!(!store.was_repaired(), "the restored database needed a repair");
    store.shutdown();
    drop(store);

    let s = TestServer::start_in(&fresh, |_| {});
    let token = s.client().login("alice", "correct horse battery").await.ok()["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let alice = s.client().with_token(&token);
    for id in &before {
        alice.get(&format!("/_matrix/client/v3/rooms/{room}/event/{id}")).await.ok();
    }
    let r = alice.get(&format!("/_matrix/client/v1/media/download/{media}")).await;
    assert_eq!(r.status, 200);
}

#[test]
fn doctor_reports_problems_and_how_to_fix_them() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path().join("data");
    let out = hearth(&data, &["doctor"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("PROBLEM"), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("mkdir -m 700"), "{}", text(&out.stdout));

    // A data directory as the server creates it is fine.
    let out = hearth(&data, &["user", "list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = hearth(&data, &["doctor"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let version = format!("schema version {}", hearth::store::SCHEMA_VERSION);
    assert!(text(&out.stdout).contains(&version), "{}", text(&out.stdout));

    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(data.join("hearth.redb"), std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    let out = hearth(&data, &["doctor"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains(&format!("chmod 700 {}", data.display())), "{stdout}");
    assert!(stdout.contains("chmod 600"), "{stdout}");
}

#[tokio::test]
async fn doctor_asks_a_running_server_about_its_database() {
    let s = TestServer::start();
    std::fs::set_permissions(&s.dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let out = hearth(&s.dir, &["doctor"]);
    assert!(
        text(&out.stdout).contains("the server is running and its database is fine"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}

#[tokio::test]
async fn metrics_count_requests_commits_and_long_polls() {
    let s = TestServer::start_with_metrics(|_| {});
    let addr = s.metrics.expect("metrics address");
    // The harness has already asked /versions while waiting for the server
    // to come up: count from here.
    let before = reqwest::get(format!("http://{addr}/metrics")).await.expect("scrape");
    let before = before.text().await.expect("text");
    let versions_before =
        sample(&before, "hearth_http_requests_total{endpoint=\"GetVersions\",status=\"2xx\"}")
            .unwrap_or(0.0);
    let (alice, _) = s.client().register("alice", "correct horse battery").await;
    s.client().get("/_matrix/client/versions").await.ok();
    s.client().get("/_matrix/client/v3/nowhere").await;
    let since = alice.get("/_matrix/client/v3/sync").await.ok()["next_batch"]
        .as_str()
        .expect("next_batch")
        .to_owned();
    let poll = {
        let alice = alice.clone();
        tokio::spawn(async move {
            alice.get(&format!("/_matrix/client/v3/sync?since={since}&timeout=5000")).await
        })
    };
    let m = s.await_long_polls(1).await;
    assert_eq!(sample(&m, "hearth_sync_long_polls "), Some(1.0), "{m}");
    // The parked poll's connection holds hyper's buffers, from the pool.
    assert!(sample(&m, "hearth_buffer_slots_in_use ").is_some_and(|n| n >= 1.0), "{m}");
    assert_eq!(
        sample(&m, "hearth_http_requests_total{endpoint=\"GetVersions\",status=\"2xx\"}"),
        Some(versions_before + 1.0),
        "{m}"
    );
    assert!(
        sample(&m, "hearth_http_requests_total{endpoint=\"Unrecognized\",status=\"4xx\"}")
            .is_some_and(|n| n >= 1.0)
    );
    assert!(
        sample(&m, "hearth_http_requests_total{endpoint=\"Register\",status=\"2xx\"}")
            .is_some_and(|n| n >= 1.0)
    );
    assert!(sample(&m, "hearth_db_batches_total ").is_some_and(|n| n >= 1.0), "{m}");
    assert!(sample(&m, "hearth_db_batch_size_bucket{le=\"+Inf\"}").is_some_and(|n| n >= 1.0));
    assert!(sample(&m, "hearth_db_commit_seconds_count ").is_some_and(|n| n >= 1.0));
    assert!(sample(&m, "hearth_http_request_duration_seconds_count ").is_some_and(|n| n >= 4.0));
    assert!(sample(&m, "hearth_db_file_bytes ").is_some_and(|n| n > 0.0));
    assert!(sample(&m, "hearth_media_bytes ").is_some());
    assert!(sample(&m, "process_resident_memory_bytes ").is_some_and(|n| n > 0.0));
    // No path ever becomes a label.
    assert!(!m.contains("/_matrix"), "{m}");
    poll.abort();
    let r = reqwest::get(format!("http://{addr}/other")).await.expect("get");
    assert_eq!(r.status(), 404);
}

/// A small tmpfs for the data directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts it or fails the test: a disk-full test that cannot fill a
    /// disk proves nothing, so it must not pass (CI runs as root).
    fn mount(size_mb: u64) -> Tmpfs {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mb}m,mode=0700"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs for a disk-full test (run the tests as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).output();
    }
}

/// Fills the file system at `dir` until `leave` bytes are free.
fn fill(dir: &Path, leave: u64) -> std::path::PathBuf {
    use std::io::Write;
    let (free, _) = hearth::store::free_bytes(dir).expect("statvfs");
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).expect("filler");
    let chunk = vec![0xa5u8; 1 << 20];
    let mut left = free.saturating_sub(leave);
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n]).expect("fill");
        left -= n as u64;
    }
    f.sync_all().expect("sync");
    path
}

#[tokio::test]
async fn a_full_disk_refuses_writes_clearly_keeps_reads_and_recovers() {
    let fs = Tmpfs::mount(64);
    let data = fs.dir.path().join("data");
    let s = TestServer::start_in(&data, |c| {
        c.admin_contact = Some("mailto:admin@example.org".into());
        c.min_free_disk_bytes = 16 << 20;
    });
    let (alice, _) = s.client().register("alice", "correct horse battery").await;
    let room = create_room(&alice).await;
    send(&alice, &room, "1", "before").await.ok();

    let filler = fill(fs.dir.path(), 8 << 20);
    let r = send(&alice, &room, "2", "while full").await;
    r.expect_err(500, "M_RESOURCE_LIMIT_EXCEEDED");
    assert_eq!(r.body["admin_contact"], "mailto:admin@example.org");
    // Reads keep working.
    let sync = alice.get("/_matrix/client/v3/sync").await.ok();
    assert!(sync["rooms"]["join"][&room].is_object(), "{sync}");
    alice.get(&format!("/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=5")).await.ok();

    std::fs::remove_file(filler).expect("free space");
    send(&alice, &room, "3", "after").await.ok();
    // The refused transaction id was never used: retrying it now works.
    send(&alice, &room, "2", "while full").await.ok();
    drop(s);
}

#[tokio::test]
async fn a_disk_filled_past_the_guard_refuses_writes_then_recovers_without_a_restart() {
    let fs = Tmpfs::mount(48);
    let data = fs.dir.path().join("data");
    let tweak = |c: &mut hearth::config::Config| {
        c.admin_contact = Some("mailto:admin@example.org".into());
        // No reserve: the disk really fills, and redb meets ENOSPC itself.
        c.min_free_disk_bytes = 0;
    };
    let s = TestServer::start_in(&data, tweak);
    let (alice, _) = s.client().register("alice", "correct horse battery").await;
    let room = create_room(&alice).await;
    send(&alice, &room, "before", "before").await.ok();

    let filler = fill(fs.dir.path(), 0);
    // Large, very compressible messages: the log has room for them, redb
    // does not (its checkpoint, or its cache spilling, needs new pages).
    let padding = "a".repeat(40_000);
    let mut expected = vec!["before".to_owned()];
    let mut refused = None;
    for i in 0..400 {
        let body = format!("{i} {padding}");
        let r = send(&alice, &room, &format!("big{i}"), &body).await;
        if r.status != 200 {
            refused = Some(r);
            break;
        }
        expected.push(body);
    }
    let r = refused.expect("the full disk never refused a write");
    r.expect_err(500, "M_RESOURCE_LIMIT_EXCEEDED");
    assert_eq!(r.body["admin_contact"], "mailto:admin@example.org");
    // It stays a clear disk-full answer, not a 500 M_UNKNOWN.
    send(&alice, &room, "during", "during").await.expect_err(500, "M_RESOURCE_LIMIT_EXCEEDED");

    std::fs::remove_file(filler).expect("free space");
    send(&alice, &room, "after", "after").await.ok();
    expected.push("after".to_owned());
    assert_eq!(crate::support::room_bodies(&alice, &room).await, expected);

    // Nothing acknowledged was lost on the way: the same after a restart.
    drop(s);
    let s = TestServer::start_in(&data, tweak);
    let alice = alice.clone();
    let alice = Client { base: s.base.clone(), ..alice };
    assert_eq!(crate::support::room_bodies(&alice, &room).await, expected);
}
