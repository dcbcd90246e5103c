//! Backup and restore of a data directory: the database file (copied
//! consistently by the store, see `Store::backup_to`) and the media files.
//!
//! A backup directory looks like a data directory: `hearth.redb` plus
//! `media/ab/cdef…`. Media files are named by the hash of their content, so
//! a file already present in the destination is the same file and is
//! skipped: backing up into the same directory again copies only what is
//! new. Media are copied after the database, so every file the copied
//! database names is there (media are only deleted by admin commands, which
//! cannot run alongside the server); files uploaded meanwhile are extra,
//! harmless orphans.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use serde_json::{Value, json};

use crate::store::{BackupInfo, Store, StoreError};

/// What a backup or restore did.
#[derive(Debug, Clone)]
pub struct Summary {
    pub db: BackupInfo,
    pub media_copied: u64,
    pub media_skipped: u64,
}

impl Summary {
    pub fn to_json(&self) -> Value {
        json!({
            "db_bytes": self.db.bytes,
            "position": self.db.position.0,
            "schema_version": self.db.schema_version,
            "media_copied": self.media_copied,
            "media_skipped": self.media_skipped,
        })
    }

    pub fn describe(&self) -> String {
        format!(
            "database {} bytes (schema {}, stream position {}), {} media files copied, {} already there",
            self.db.bytes,
            self.db.schema_version,
            self.db.position.0,
            self.media_copied,
            self.media_skipped
        )
    }
}

/// Backs up the data directory of `store` into `dest` (created, mode 0700).
/// Blocks: run it off the event loop.
pub fn backup(store: &Store, data_dir: &Path, dest: &Path) -> Result<Summary, String> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dest)
        .map_err(|e| format!("cannot create {}: {e}", dest.display()))?;
    let db = store
        .backup_to(&dest.join("hearth.redb"))
        .map_err(|e| format!("copying the database: {e}"))?;
    let (media_copied, media_skipped) = copy_media(&data_dir.join("media"), &dest.join("media"))
        .map_err(|e| format!("copying media: {e}"))?;
    Ok(Summary { db, media_copied, media_skipped })
}

/// Restores the backup in `src` into `data_dir`. The server must be stopped
/// (the caller checks the admin socket; the store checks redb's lock).
pub fn restore(src: &Path, data_dir: &Path) -> Result<Summary, String> {
    let db_file = src.join("hearth.redb");
    if !db_file.is_file() {
        return Err(format!("{} is not a Hearth backup (no hearth.redb)", src.display()));
    }
    let db = Store::restore_from(&db_file, data_dir).map_err(|e| match e {
        e @ StoreError::Locked(_) => e.to_string(),
        e => format!("restoring the database: {e}"),
    })?;
    let (media_copied, media_skipped) = copy_media(&src.join("media"), &data_dir.join("media"))
        .map_err(|e| format!("copying media: {e}"))?;
    Ok(Summary { db, media_copied, media_skipped })
}

/// Copies `from/xx/hash` files missing in `to`; returns (copied, skipped).
/// Each copy goes to a temporary name, is fsynced and renamed, so a crash
/// never leaves a partial file under a hash name.
fn copy_media(from: &Path, to: &Path) -> io::Result<(u64, u64)> {
    let (mut copied, mut skipped) = (0, 0);
    let entries = match fs::read_dir(from) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(e),
    };
    for shard in entries {
        let shard = shard?;
        let name = shard.file_name();
        let name = name.to_string_lossy();
        // Only the two-hex-digit shards: not `tmp`, nothing else.
        if name.len() != 2 || !name.bytes().all(|c| c.is_ascii_hexdigit()) {
            continue;
        }
        if !shard.file_type()?.is_dir() {
            continue;
        }
        let target_dir = to.join(&*name);
        let mut created_any = false;
        for file in fs::read_dir(shard.path())? {
            let file = file?;
            if !file.file_type()?.is_file() {
                continue;
            }
            let target = target_dir.join(file.file_name());
            if target.exists() {
                skipped += 1;
                continue;
            }
            fs::DirBuilder::new().recursive(true).mode(0o700).create(&target_dir)?;
            let tmp = target_dir.join(format!(".{}.tmp", file.file_name().to_string_lossy()));
            fs::copy(file.path(), &tmp)?;
            fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))?;
            fs::File::open(&tmp)?.sync_all()?;
            fs::rename(&tmp, &target)?;
            copied += 1;
            created_any = true;
        }
        if created_any {
            fs::File::open(&target_dir)?.sync_all()?;
        }
    }
    if copied > 0 {
        fs::File::open(to)?.sync_all()?;
    }
    Ok((copied, skipped))
}
