//! The `hearth` binary's command line: admin commands, config errors, and
//! refusing to touch a database a running server holds.

use std::path::Path;
use std::process::{Command, Output};

use hearth::config::Registration;

use crate::support::TestServer;

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

/// A data directory with the admin `root` (password `s3cret-enough`, kept
/// in the file `pw`), and what `user add` printed.
pub fn with_root() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf, Output) {
    let temp = tempfile::tempdir().expect("tempdir");
    let pw = temp.path().join("pw");
    std::fs::write(&pw, "s3cret-enough\n").expect("write");
    let data = temp.path().join("data");
    let out = hearth(
        &data,
        &["user", "add", "root", "--admin", "--password-file", pw.to_str().expect("utf8")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    (temp, data, pw, out)
}

#[tokio::test]
async fn user_add_creates_an_account_the_server_accepts() {
    let (_temp, data, pw, out) = with_root();
    assert!(text(&out.stdout).contains("@root:localhost"));
    let again =
        hearth(&data, &["user", "add", "root", "--password-file", pw.to_str().expect("utf8")]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stderr).contains("already exists"));
    let list = hearth(&data, &["user", "list"]);
    assert!(text(&list.stdout).contains("@root:localhost\tadmin"), "{}", text(&list.stdout));

    let s = TestServer::start_in(&data, |_| {});
    s.client().login("root", "s3cret-enough").await.ok();
    // While the server runs, admin commands are refused, not raced.
    let busy = hearth(&data, &["user", "list"]);
    assert_eq!(busy.status.code(), Some(1));
    assert!(text(&busy.stderr).contains("in use"), "{}", text(&busy.stderr));
    drop(s);

    std::fs::write(&pw, "another-one\n").expect("write");
    let out =
        hearth(&data, &["user", "passwd", "root", "--password-file", pw.to_str().expect("utf8")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = hearth(&data, &["user", "deactivate", "root"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = TestServer::start_in(&data, |_| {});
    s.client().login("root", "another-one").await.expect_err(403, "M_USER_DEACTIVATED");
}

#[tokio::test]
async fn registration_tokens_made_on_the_command_line_let_people_register() {
    let temp = tempfile::tempdir().expect("tempdir");
    let data = temp.path();
    let out = hearth(data, &["registration-token", "create", "--uses", "2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout).trim().to_owned();
    assert!(!token.is_empty());
    let listed = hearth(data, &["registration-token", "list"]);
    assert!(
        text(&listed.stdout).contains(&format!("{token}\t0/2 used\tvalid")),
        "{}",
        text(&listed.stdout)
    );

    let s = TestServer::start_in(data, |c| c.registration = Registration::Token);
    let v = s
        .client()
        .get(&format!(
            "/_matrix/client/v1/register/m.login.registration_token/validity?token={token}"
        ))
        .await
        .ok();
    assert_eq!(v["valid"], true);
    drop(s);
    let out = hearth(data, &["registration-token", "revoke", &token]);
    assert!(out.status.success());
    let out = hearth(data, &["registration-token", "revoke", &token]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_bad_config_names_the_key_and_exits_with_2() {
    let temp = tempfile::tempdir().expect("tempdir");
    let cfg = temp.path().join("hearth.toml");
    std::fs::write(&cfg, "registration = \"sometimes\"\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["serve", "--config", cfg.to_str().expect("utf8")])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("registration"), "{}", text(&out.stderr));
    std::fs::write(&cfg, "lisen = \"127.0.0.1:1\"\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .args(["serve", "--config", cfg.to_str().expect("utf8")])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("lisen"), "{}", text(&out.stderr));
}

#[test]
fn an_unknown_command_is_a_usage_error() {
    let out =
        Command::new(env!("CARGO_BIN_EXE_hearth")).args(["frobnicate"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("usage"));
}

#[tokio::test]
async fn admins_lock_and_suspend_accounts_and_the_server_enforces_it() {
    let (_temp, data, _, _) = with_root();
    let s = TestServer::start_in(&data, |_| {});
    let login = s.client().login("root", "s3cret-enough").await.ok();
    let root = s.client().with_token(login["access_token"].as_str().expect("token"));
    let (kid, _) = s.client().register("kid", "pw-kid-1").await;
    let r = crate::support::room(&root, serde_json::json!({ "preset": "public_chat" })).await;
    kid.post(&format!("/_matrix/client/v3/join/{r}"), serde_json::json!({})).await.ok();
    let own = crate::support::send(&kid, &r, "k1", "hello").await;
    let caps = root.get("/_matrix/client/v3/capabilities").await.ok();
    assert_eq!(caps["capabilities"]["m.account_moderation"]["lock"], true);
    let caps = kid.get("/_matrix/client/v3/capabilities").await.ok();
    assert!(caps["capabilities"]["m.account_moderation"].is_null(), "{caps}");
    // Non-admins are refused before any lookup.
    kid.get("/_matrix/client/v1/admin/lock/@nobody:localhost").await.expect_err(403, "M_FORBIDDEN");
    root.get("/_matrix/client/v1/admin/lock/@nobody:localhost")
        .await
        .expect_err(404, "M_NOT_FOUND");
    root.get("/_matrix/client/v1/admin/lock/@kid:elsewhere")
        .await
        .expect_err(400, "M_INVALID_PARAM");
    root.put(
        "/_matrix/client/v1/admin/suspend/@root:localhost",
        serde_json::json!({ "suspended": true }),
    )
    .await
    .expect_err(403, "M_FORBIDDEN");

    // Suspended: reads work, acting does not, redacting one's own does.
    let put = root
        .put(
            "/_matrix/client/v1/admin/suspend/@kid:localhost",
            serde_json::json!({ "suspended": true }),
        )
        .await
        .ok();
    assert_eq!(put["suspended"], true);
    assert_eq!(
        root.get("/_matrix/client/v1/admin/suspend/@kid:localhost").await.ok()["suspended"],
        true
    );
    kid.get("/_matrix/client/v3/sync").await.ok();
    kid.put(
        &format!("/_matrix/client/v3/rooms/{r}/send/m.room.message/k2"),
        serde_json::json!({ "msgtype": "m.text", "body": "again" }),
    )
    .await
    .expect_err(403, "M_USER_SUSPENDED");
    kid.put(
        "/_matrix/client/v3/profile/@kid:localhost/displayname",
        serde_json::json!({ "displayname": "x" }),
    )
    .await
    .expect_err(403, "M_USER_SUSPENDED");
    kid.put(&format!("/_matrix/client/v3/rooms/{r}/redact/{own}/x1"), serde_json::json!({}))
        .await
        .ok();
    root.put(
        "/_matrix/client/v1/admin/suspend/@kid:localhost",
        serde_json::json!({ "suspended": false }),
    )
    .await
    .ok();
    crate::support::send(&kid, &r, "k3", "back").await;

    // Locked: everything but logout is refused, with soft_logout.
    root.put("/_matrix/client/v1/admin/lock/@kid:localhost", serde_json::json!({ "locked": true }))
        .await
        .ok();
    let r = kid.get("/_matrix/client/v3/sync").await;
    r.expect_err(401, "M_USER_LOCKED");
    assert_eq!(r.body["soft_logout"], true);
    s.client().login("kid", "pw-kid-1").await.expect_err(401, "M_USER_LOCKED");
    root.put(
        "/_matrix/client/v1/admin/lock/@kid:localhost",
        serde_json::json!({ "locked": false }),
    )
    .await
    .ok();
    kid.get("/_matrix/client/v3/sync").await.ok();
    root.put(
        "/_matrix/client/v1/admin/lock/@kid:localhost",
        serde_json::json!({ "locked": "yes" }),
    )
    .await
    .expect_err(400, "M_BAD_JSON");
    drop(s);
    // The same from the command line, with the server stopped.
    let out = hearth(&data, &["user", "suspend", "kid"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = hearth(&data, &["user", "lock", "@kid:localhost"]);
    assert_eq!(text(&out.stdout).trim(), "locked kid");
    let list = text(&hearth(&data, &["user", "list"]).stdout);
    assert!(list.contains("@kid:localhost\tlocked,suspended"), "{list}");
    let s = TestServer::start_in(&data, |_| {});
    s.client().login("kid", "pw-kid-1").await.expect_err(401, "M_USER_LOCKED");
    drop(s);
    for verb in ["unlock", "unsuspend"] {
        assert!(hearth(&data, &["user", verb, "kid"]).status.success());
    }
    let s = TestServer::start_in(&data, |_| {});
    s.client().login("kid", "pw-kid-1").await.ok();
}

#[tokio::test]
async fn user_add_gives_the_account_its_localpart_as_display_name() {
    let (_temp, data, _pw, _out) = with_root();
    let s = TestServer::start_in(&data, |_| {});
    let got = s.client().get("/_matrix/client/v3/profile/@root:localhost/displayname").await.ok();
    assert_eq!(got["displayname"], "root");
}
