//! The server side of the admin socket: a task on the event loop that
//! answers `status` and runs backups off the loop (`spawn_blocking`).

use std::cell::Cell;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::rc::Rc;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;

use crate::app::App;

/// Longest request line accepted.
const MAX_REQUEST: u64 = 64 * 1024;

/// The listening socket; `stop` ends the task and removes the file.
pub struct AdminSocket {
    task: JoinHandle<()>,
    path: PathBuf,
}

impl AdminSocket {
    pub fn stop(self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds `<data_dir>/admin.sock` (mode 0600) and serves it. A socket file
/// left by a crash is replaced: this process holds the database lock, so no
/// other server can be using this data directory. Without a socket (path
/// too long, read-only directory) the server still runs; online backups are
/// then unavailable, which is logged.
pub fn start(app: Rc<App>) -> Option<AdminSocket> {
    let path = super::socket_path(&app.config.data_dir);
    let _ = std::fs::remove_file(&path);
    let listener = match UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("no admin socket at {}: {e}; online backups are off", path.display());
            return None;
        }
    };
    if let Err(e) = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)) {
        tracing::warn!("cannot restrict {} to mode 0600: {e}; closing it", path.display());
        let _ = std::fs::remove_file(&path);
        return None;
    }
    let busy = Rc::new(Cell::new(false));
    let task = tokio::task::spawn_local(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let app = app.clone();
                    let busy = busy.clone();
                    tokio::task::spawn_local(async move { serve_one(&app, stream, &busy).await });
                }
                Err(e) => {
                    tracing::warn!("admin socket: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    });
    Some(AdminSocket { task, path })
}

async fn serve_one(app: &Rc<App>, stream: UnixStream, busy: &Cell<bool>) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let answer = match BufReader::new(read.take(MAX_REQUEST)).read_line(&mut line).await {
        Ok(_) => match serde_json::from_str::<Value>(&line) {
            Ok(req) => answer(app, &req, busy).await,
            Err(e) => json!({ "ok": false, "error": format!("not a JSON request: {e}") }),
        },
        Err(e) => json!({ "ok": false, "error": e.to_string() }),
    };
    let mut out = answer.to_string();
    out.push('\n');
    let _ = write.write_all(out.as_bytes()).await;
}

async fn answer(app: &Rc<App>, req: &Value, busy: &Cell<bool>) -> Value {
    match req["op"].as_str() {
        Some("status") => {
            let schema = app.store.read().and_then(|r| r.schema_version());
            match schema {
                Ok(v) => json!({
                    "ok": true,
                    "server_name": app.config.server_name,
                    "schema_version": v,
                    "position": app.store.current_position().0,
                }),
                Err(e) => json!({ "ok": false, "error": e.to_string() }),
            }
        }
        Some("backup") => {
            let Some(dest) = req["dest"].as_str().map(PathBuf::from) else {
                return json!({ "ok": false, "error": "backup needs \"dest\"" });
            };
            if !dest.is_absolute() {
                return json!({ "ok": false, "error": "the backup destination must be absolute" });
            }
            if busy.replace(true) {
                return json!({ "ok": false, "error": "a backup is already running" });
            }
            tracing::info!("backup to {} requested on the admin socket", dest.display());
            let store = app.store.clone();
            let data_dir = app.config.data_dir.clone();
            let r = tokio::task::spawn_blocking(move || {
                super::backup::backup(&store, &data_dir, &dest)
            })
            .await;
            busy.set(false);
            match r {
                Ok(Ok(summary)) => {
                    tracing::info!("backup done: {}", summary.describe());
                    let mut v = summary.to_json();
                    v["ok"] = Value::Bool(true);
                    v
                }
                Ok(Err(e)) => {
                    tracing::error!("backup failed: {e}");
                    json!({ "ok": false, "error": e })
                }
                Err(e) => json!({ "ok": false, "error": format!("backup task failed: {e}") }),
            }
        }
        _ => json!({ "ok": false, "error": "unknown op (try \"status\" or \"backup\")" }),
    }
}
