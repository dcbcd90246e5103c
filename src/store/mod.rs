//! All persistent state: one redb file, `hearth.redb`, in the data directory.
//!
//! This is the only module that names redb. It owns the table definitions
//! (`tables`), the key encodings, the writer thread with group commit
//! (`writer`), and typed read and write functions per domain (`accounts`,
//! …). Callers read through [`Store::read`] on the event loop (MVCC snapshots
//! never wait for the writer) and write through [`Store::write`], which
//! queues an operation for the writer thread and resolves once the batch that
//! carried it was committed with fsync.

mod accounts;
mod e2ee;
mod media;
mod push;
mod relations;
mod rooms;
mod search;
mod tables;
mod userdata;
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use redb::{Database, ReadableDatabase};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

pub use accounts::{
    DeviceRecord, RegistrationTokenRecord, TokenKind, TokenRecord, UserRecord, hash_token,
};
pub use e2ee::KeyEntry;
pub use media::MediaRecord;
pub use push::PUSH_WAKE;
pub use relations::Child;
pub use rooms::{Membership, RoomRecord, RoomShort, StoredEvent};
pub use search::{SearchHit, SearchIndex};
pub use userdata::Receipt;
pub use writer::{CommitNotice, WriteCtx};

/// The schema this binary writes. Bump it with a migration in `migrate`.
pub const SCHEMA_VERSION: u32 = 1;

/// What can go wrong below the API. Everything but `Locked` and
/// `NewerSchema` is an internal failure (logged, answered `M_UNKNOWN`).
#[derive(Debug)]
pub enum StoreError {
    /// Another process (a running server) holds the database.
    Locked(PathBuf),
    /// The file was written by a newer Hearth.
    NewerSchema {
        found: u32,
        known: u32,
    },
    /// redb reported a failure (I/O, corruption, …).
    Db(String),
    /// A stored value did not decode.
    Corrupt(String),
    /// The writer thread is gone (shutting down).
    WriterGone,
    /// An operation found its request invalid after it had begun writing;
    /// its batch is rolled back. Rare by design (ops validate first).
    Refused(String),
    Io(std::io::Error),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Locked(p) => write!(
                f,
                "the database {} is in use by another process (is the server running? stop it first)",
                p.display()
            ),
            StoreError::NewerSchema { found, known } => write!(
                f,
                "the database has schema version {found}, written by a newer Hearth; this binary \
                 knows up to version {known}. Upgrade Hearth or restore a backup."
            ),
            StoreError::Db(e) => write!(f, "database error: {e}"),
            StoreError::Corrupt(e) => write!(f, "stored data did not decode: {e}"),
            StoreError::WriterGone => f.write_str("the database writer has stopped"),
            StoreError::Refused(m) => write!(f, "refused: {m}"),
            StoreError::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<redb::Error> for StoreError {
    fn from(e: redb::Error) -> StoreError {
        StoreError::Db(e.to_string())
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> StoreError {
                StoreError::from(redb::Error::from(e))
            }
        }
    )*};
}
from_redb!(redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> StoreError {
        StoreError::Io(e)
    }
}

impl From<StoreError> for crate::error::MatrixError {
    fn from(e: StoreError) -> crate::error::MatrixError {
        match e {
            StoreError::Refused(m) => {
                crate::error::MatrixError::new(crate::error::ErrorKind::InvalidRoomState, m)
            }
            e => crate::error::MatrixError::internal("store", e),
        }
    }
}

/// A position in the one stream of everything a client can sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamPos(pub u64);

/// The handle the server holds: cheap to clone, shared with the writer.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    writer: writer::WriterHandle,
    /// The highest stream position whose batch has committed.
    committed: Arc<AtomicU64>,
    /// Where commit notices go (the event loop's waker task), once subscribed.
    subscriber: Arc<Mutex<Option<UnboundedSender<CommitNotice>>>>,
}

/// A consistent read snapshot.
pub struct ReadTxn(redb::ReadTransaction);

impl Store {
    /// Opens (or creates) `dir/hearth.redb`, migrates it, and starts the
    /// writer thread. `on_commit` is called on the writer thread after every
    /// commit that changed something a client can observe.
    pub fn open(
        dir: &Path,
        cache_bytes: usize,
        on_commit: Option<Box<dyn Fn(CommitNotice) + Send>>,
    ) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("hearth.redb");
        let db = redb::Builder::new().set_cache_size(cache_bytes).create(&path).map_err(
            |e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked(path.clone()),
                other => StoreError::from(redb::Error::from(other)),
            },
        )?;
        migrate(&db)?;
        let db = Arc::new(db);
        let start = {
            let txn = db.begin_read()?;
            tables::read_meta_u64(&txn, tables::META_NEXT_POSITION)?.unwrap_or(1)
        };
        let committed = Arc::new(AtomicU64::new(start.saturating_sub(1)));
        let subscriber: Arc<Mutex<Option<UnboundedSender<CommitNotice>>>> = Arc::default();
        let slot = subscriber.clone();
        let callback: Box<dyn Fn(CommitNotice) + Send> = Box::new(move |notice: CommitNotice| {
            if let Ok(guard) = slot.lock()
                && let Some(tx) = guard.as_ref()
            {
                let _ = tx.send(notice.clone());
            }
            if let Some(cb) = &on_commit {
                cb(notice);
            }
        });
        let writer = writer::spawn(db.clone(), start, committed.clone(), Some(callback))?;
        Ok(Store { db, writer, committed, subscriber })
    }

    /// Commit notices from now on arrive on the returned channel (one
    /// subscriber: the event loop).
    pub fn subscribe(&self) -> UnboundedReceiver<CommitNotice> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        if let Ok(mut guard) = self.subscriber.lock() {
            *guard = Some(tx);
        }
        rx
    }

    /// A read snapshot of everything committed so far.
    pub fn read(&self) -> Result<ReadTxn, StoreError> {
        Ok(ReadTxn(self.db.begin_read()?))
    }

    /// The newest committed stream position.
    pub fn current_position(&self) -> StreamPos {
        StreamPos(self.committed.load(Ordering::Acquire))
    }

    /// Queues `op` for the writer and waits until its batch is durable.
    ///
    /// The contract for `op`: it checks everything first and returns
    /// `Ok(Err(e))` *without having written anything* when the request is
    /// refused (its batch-mates still commit); it returns `Err(StoreError)`
    /// only for storage failures, which abort the whole batch.
    pub async fn write<R, E, F>(&self, op: F) -> Result<R, E>
    where
        F: FnOnce(&mut WriteCtx<'_>) -> Result<Result<R, E>, StoreError> + Send + 'static,
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let rx = self.writer.submit(op)?;
        match rx.await {
            Ok(r) => r,
            Err(_) => Err(E::from(StoreError::WriterGone)),
        }
    }

    /// `write` for callers outside the event loop (the admin command line).
    pub fn write_blocking<R, E, F>(&self, op: F) -> Result<R, E>
    where
        F: FnOnce(&mut WriteCtx<'_>) -> Result<Result<R, E>, StoreError> + Send + 'static,
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let rx = self.writer.submit_blocking(op)?;
        match rx.recv() {
            Ok(r) => r,
            Err(_) => Err(E::from(StoreError::WriterGone)),
        }
    }

    /// Stops the writer after it has committed everything queued so far.
    /// Later writes fail with `WriterGone`.
    pub fn shutdown(&self) {
        self.writer.shutdown();
    }
}

/// Brings the file to `SCHEMA_VERSION`, refusing files from the future.
fn migrate(db: &Database) -> Result<(), StoreError> {
    let found = {
        let txn = db.begin_read()?;
        tables::read_meta_u64(&txn, tables::META_SCHEMA_VERSION)?
    };
    let found = found.map(|v| v as u32);
    match found {
        Some(v) if v > SCHEMA_VERSION => {
            Err(StoreError::NewerSchema { found: v, known: SCHEMA_VERSION })
        }
        // A new file, the current schema, or an older one: create any
        // missing table (tables are only ever added within a schema version,
        // so this is idempotent and cheap) and step the version up. Each
        // future migration that changes a layout is a `match` arm on the
        // version it upgrades from, applied in order inside one transaction.
        _ => {
            let txn = db.begin_write()?;
            tables::create_all(&txn)?;
            tables::write_meta_u64(&txn, tables::META_SCHEMA_VERSION, u64::from(SCHEMA_VERSION))?;
            txn.commit()?;
            Ok(())
        }
    }
}

impl ReadTxn {
    /// Reads a META value (small server-wide settings and keys).
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let table = self.0.open_table(tables::META)?;
        Ok(table.get(key)?.map(|v| v.value().to_vec()))
    }
}

impl WriteCtx<'_> {
    pub fn set_meta(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let mut table = self.txn.open_table(tables::META)?;
        table.insert(key, value)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
