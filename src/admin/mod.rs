//! Operating a running or stopped server: the admin socket, backup and
//! restore, and `hearth doctor`.
//!
//! redb locks its file, so while the server runs no other process can open
//! the database. Commands that must work then (`hearth backup`, the
//! database part of `hearth doctor`) ask the server instead, over a Unix
//! socket in the data directory (`admin.sock`, mode 0600: whoever can open
//! it could also read the data directory). The protocol is one JSON request
//! line and one JSON answer line per connection:
//!
//! ```text
//! → {"op":"status"}                 ← {"ok":true,"schema_version":1,"position":42,…}
//! → {"op":"backup","dest":"/abs"}   ← {"ok":true,"db_bytes":…,"media_copied":…} | {"ok":false,"error":"…"}
//! ```
//!
//! This module never touches redb itself: it calls the store.

pub mod backup;
pub mod client;
pub mod doctor;
pub mod server;

use std::path::{Path, PathBuf};

/// The socket's file name in the data directory.
pub const SOCKET_NAME: &str = "admin.sock";

/// Where the running server listens for admin requests.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_NAME)
}
