//! All persistent state: one redb file, `hearth.redb`, in the data directory.
//!
//! This is the only module that names redb. It owns the table definitions
//! (`tables`), the key encodings, the writer thread with group commit
//! (`writer`), and typed read and write functions per domain (`accounts`,
//! …). Callers read through [`Store::read`] on the event loop (MVCC snapshots
//! never wait for the writer) and write through [`Store::write`], which
//! queues an operation for the writer thread and resolves once the batch that
//! carried it is durable: appended to the write-ahead log (`wal`) and
//! fsynced, or committed to redb with fsync at a checkpoint.

mod accounts;
mod bump;
mod dehydrated;
mod e2ee;
mod media;
mod push;
mod relations;
mod rooms;
mod search;
mod tables;
mod userdata;
mod wal;
mod writer;

use std::fmt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use redb::{Database, ReadableDatabase};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

pub use accounts::{
    DeviceRecord, RegistrationTokenRecord, TokenKind, TokenRecord, UserRecord, hash_token,
};
pub use dehydrated::DehydratedDevice;
pub use e2ee::KeyEntry;
pub use media::MediaRecord;
pub use push::{NotificationRow, PUSH_WAKE};
pub use relations::Child;
pub use rooms::{MembershipRow, RoomRecord, RoomShort, StoredEvent};
pub use search::{SearchHit, SearchIndex};
pub use userdata::Receipt;
pub use wal::SalvageReport;
pub use writer::{
    BATCH_SIZE_BUCKETS, COMMIT_MICROS_BUCKETS, CommitNotice, WriteCtx, WriterStats, free_bytes,
};

/// The schema this binary writes. Bump it with a migration in `migrate`.
/// 2: events keyed by stream position alone, a room timeline index, event
/// IDs indexed by hash (`rooms::migrate_events_to_v2`).
/// 3: transaction IDs point at the event's position, under a compact scope;
/// the event-ID index is split into epochs of stream positions
/// (`rooms::migrate_to_v3`).
pub const SCHEMA_VERSION: u32 = 3;

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
    /// its transaction is rolled back. Only for operations submitted with
    /// `Store::write_alone`, whose transaction is their own. It
    /// carries the answer for the client (errcode and message): a refusal
    /// is the request's fault, not the storage's.
    Refused(Box<crate::error::MatrixError>),
    /// Free disk space is below the reserve (or the disk filled up): the
    /// write was refused before anything reached the file.
    DiskFull {
        free_bytes: u64,
    },
    Io(std::io::Error),
    /// The write-ahead log is missing, of another database, or damaged
    /// other than by a torn last record: acknowledged writes may be in it
    /// that the database lacks, so the store does not open (the file is
    /// left as it is; `hearth doctor --salvage-wal` recovers what it can).
    LogRefused {
        path: PathBuf,
        problem: String,
    },
}

impl StoreError {
    /// An operation's refusal of its request (see `Refused`).
    pub fn refused(e: crate::error::MatrixError) -> StoreError {
        StoreError::Refused(Box::new(e))
    }

    /// The same failure again (`StoreError` is not `Clone` because of `Io`),
    /// for answering every operation of a batch that could not start.
    pub(crate) fn duplicate(&self) -> StoreError {
        match self {
            StoreError::DiskFull { free_bytes } => StoreError::DiskFull { free_bytes: *free_bytes },
            StoreError::WriterGone => StoreError::WriterGone,
            StoreError::Refused(m) => StoreError::Refused(m.clone()),
            other => StoreError::Db(other.to_string()),
        }
    }
}

/// ENOSPC or EDQUOT: out of disk space or quota.
pub fn is_disk_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull
        || e.kind() == std::io::ErrorKind::QuotaExceeded
        || e.raw_os_error() == Some(libc::ENOSPC)
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
            StoreError::Refused(m) => write!(f, "refused: {}", m.message),
            StoreError::DiskFull { free_bytes } => write!(
                f,
                "the disk is full ({} MiB free); writes are refused until space is freed",
                free_bytes >> 20
            ),
            StoreError::Io(e) => write!(f, "I/O error: {e}"),
            StoreError::LogRefused { path, problem } => write!(
                f,
                "the write-ahead log {} {problem}. Writes that were acknowledged may be in it \
                 and not in the database, so Hearth does not start; the file was left as it \
                 is. To apply every intact record and see exactly which writes were lost, run \
                 `hearth doctor --salvage-wal` (with the same --config or --data-dir; copy the \
                 data directory first if you can).",
                path.display()
            ),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<redb::Error> for StoreError {
    fn from(e: redb::Error) -> StoreError {
        match e {
            // The disk guard in the writer should keep us from getting here;
            // if the disk filled mid-commit anyway, redb latches the error
            // and the writer reopens the database once space is back.
            redb::Error::Io(io) if is_disk_full(&io) => StoreError::DiskFull { free_bytes: 0 },
            e => StoreError::Db(e.to_string()),
        }
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
        if is_disk_full(&e) {
            // The log's append, a media file: answered like the guard's refusal.
            return StoreError::DiskFull { free_bytes: 0 };
        }
        StoreError::Io(e)
    }
}

impl From<StoreError> for crate::error::MatrixError {
    fn from(e: StoreError) -> crate::error::MatrixError {
        match e {
            StoreError::Refused(m) => *m,
            // spec: client-server-api/#common-error-codes names disk space as
            // the example of M_RESOURCE_LIMIT_EXCEEDED, on routes that modify
            // state. The HTTP layer adds the required `admin_contact`, or
            // answers M_UNKNOWN when none is configured.
            e @ StoreError::DiskFull { .. } => {
                tracing::warn!("write refused: {e}");
                crate::error::MatrixError::new(
                    crate::error::ErrorKind::ResourceLimitExceeded,
                    "The server is out of disk space; try again later",
                )
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
    /// The database; the writer swaps in a fresh one after redb latched an
    /// I/O error (see `writer`).
    db: writer::DbSlot,
    writer: writer::WriterHandle,
    /// The highest stream position whose batch has committed.
    committed: Arc<AtomicU64>,
    /// The highest position readers are shown (`current_position`): the
    /// subscriber moves it with [`Store::publish`] once it handles a
    /// commit's notice; without a subscriber it follows `committed`.
    visible: Arc<AtomicU64>,
    /// Whether a subscriber publishes positions.
    published: Arc<AtomicBool>,
    /// Where commit notices go (the event loop's waker task), once subscribed.
    subscriber: Arc<Mutex<Option<UnboundedSender<CommitNotice>>>>,
    /// The database file.
    path: PathBuf,
    /// Writer counters for the metrics endpoint.
    stats: Arc<WriterStats>,
    /// The writer refuses batches below this much free disk space.
    min_free_bytes: Arc<AtomicU64>,
    /// The file was not closed cleanly and redb repaired it on open.
    repaired: bool,
}

/// The disk-space reserve the writer keeps until `set_min_free_bytes`:
/// enough for a few large batches and redb's file growth.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 16 << 20;

/// What an online or offline backup of the database file produced.
#[derive(Debug, Clone)]
pub struct BackupInfo {
    /// Size of the copied file in bytes.
    pub bytes: u64,
    /// The newest committed stream position the copy contains.
    pub position: StreamPos,
    pub schema_version: u32,
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
        if !dir.exists() {
            // The directory holds password hashes and the signing key.
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        }
        let path = dir.join(DB_FILE_NAME);
        let new_file = !path.exists();
        let (db, repaired) = open_database(&path, cache_bytes)?;
        if new_file {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
        // The log's records are in the layout of the schema that wrote them
        // (the file's): apply them before any migration changes it, and
        // not at all to a file from a newer Hearth.
        refuse_newer_schema(&db)?;
        let wal = wal::open_and_recover(dir, &db)?;
        migrate(&db)?;
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
        let stats = Arc::new(WriterStats::default());
        let min_free_bytes = Arc::new(AtomicU64::new(DEFAULT_MIN_FREE_BYTES));
        let guard =
            writer::DiskGuard { dir: dir.to_path_buf(), min_free_bytes: min_free_bytes.clone() };
        let slot: writer::DbSlot = Arc::new(RwLock::new(Some(db)));
        let writer = writer::spawn(
            writer::DbState::new(slot.clone(), dir.to_path_buf(), cache_bytes),
            writer::Log::new(wal, cache_bytes),
            start,
            committed.clone(),
            Some(callback),
            stats.clone(),
            guard,
        )?;
        Ok(Store {
            db: slot,
            writer,
            visible: Arc::new(AtomicU64::new(committed.load(Ordering::Acquire))),
            published: Arc::default(),
            committed,
            subscriber,
            path,
            stats,
            min_free_bytes,
            repaired,
        })
    }

    /// The writer's counters (batches, batch sizes, commit times, disk full).
    pub fn writer_stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Sets the free-space reserve below which writes are refused (0: never).
    pub fn set_min_free_bytes(&self, bytes: u64) {
        self.min_free_bytes.store(bytes, Ordering::Relaxed);
    }

    /// The size of the database file in bytes.
    pub fn file_size(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    /// True when the file was not closed cleanly and redb repaired it on open.
    pub fn was_repaired(&self) -> bool {
        self.repaired
    }

    /// Copies the database file to `dest` (a file path), consistently, while
    /// the server keeps serving. Blocks; call it off the event loop.
    ///
    /// The copy runs on the writer thread between two batches, right after
    /// a checkpoint (so everything the write-ahead log held is in the file;
    /// the log is empty and not copied), with a write transaction open, so
    /// no commit can start or be half-done while the bytes are read. Why
    /// that snapshot is consistent: redb writes a commit's pages to pages
    /// no committed tree uses, then the header slot naming the new roots,
    /// and flips the primary slot (with `Durability::Immediate`, all of it
    /// flushed by the time `commit` returns). Between commits the file
    /// therefore holds a complete last commit plus, at most, unreferenced
    /// garbage in free pages. The
    /// copy still carries the "recovery required" flag a live writer keeps
    /// set, so it is opened once here, off the writer thread (writes go on
    /// meanwhile), which lets redb verify the checksums and rebuild the
    /// allocator state and then close it cleanly: the backup opens without
    /// repair. redb 4.6 has no online-backup API (`compact` and savepoints
    /// work inside the same file), so this is the cheapest safe way. The
    /// price: writes wait while the file is copied (seconds for hundreds of
    /// MiB on an SD card); requests queue, none fail.
    pub fn backup_to(&self, dest: &Path) -> Result<BackupInfo, StoreError> {
        let tmp = temp_sibling(dest);
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let src = self.path.clone();
        let committed = self.committed.clone();
        let to = tmp.clone();
        self.writer.exclusive(Box::new(move |_db| {
            let position = StreamPos(committed.load(Ordering::Acquire));
            let r = copy_file_synced(&src, &to).map(|bytes| (bytes, position));
            let _ = tx.send(r);
        }))?;
        let (bytes, position) = rx.recv().map_err(|_| StoreError::WriterGone)??;
        let schema_version = close_cleanly(&tmp)?;
        std::fs::rename(&tmp, dest)?;
        sync_parent(dest)?;
        Ok(BackupInfo { bytes, position, schema_version })
    }

    /// Copies a backup's database file `src` into `data_dir` as the live
    /// database: to a temporary name first, checked and closed cleanly, the
    /// old file kept as `hearth.redb.bak` until the new one is in place. The
    /// server must be stopped (the caller checks; redb's lock is taken here
    /// too when the old file is opened).
    pub fn restore_from(src: &Path, data_dir: &Path) -> Result<BackupInfo, StoreError> {
        let live = data_dir.join("hearth.redb");
        if live.exists() {
            // Any other failure (a broken file) is what a restore is for.
            if let Err(redb::DatabaseError::DatabaseAlreadyOpen) = Database::open(&live) {
                return Err(StoreError::Locked(live));
            }
        }
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(data_dir)?;
        let tmp = temp_sibling(&live);
        let bytes = copy_file_synced(src, &tmp)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        let schema_version = match close_cleanly(&tmp) {
            Ok(v) => v,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        if schema_version > SCHEMA_VERSION {
            let _ = std::fs::remove_file(&tmp);
            return Err(StoreError::NewerSchema { found: schema_version, known: SCHEMA_VERSION });
        }
        let position = {
            let db = Database::open(&tmp).map_err(redb::Error::from)?;
            let txn = db.begin_read()?;
            tables::read_meta_u64(&txn, tables::META_NEXT_POSITION)?.unwrap_or(1)
        };
        // What the old database's write-ahead log holds (a crash left it)
        // belongs to the old database: replayed onto the restored one it
        // would mix the two.
        let log = data_dir.join(wal::FILE_NAME);
        if log.exists() {
            std::fs::remove_file(&log)?;
            sync_parent(&log)?;
        }
        let bak = data_dir.join("hearth.redb.bak");
        if live.exists() {
            std::fs::rename(&live, &bak)?;
        }
        std::fs::rename(&tmp, &live)?;
        sync_parent(&live)?;
        let _ = std::fs::remove_file(&bak);
        Ok(BackupInfo { bytes, position: StreamPos(position.saturating_sub(1)), schema_version })
    }

    /// `hearth doctor --salvage-wal`: applies every intact record of the
    /// write-ahead log in `dir` that the database lacks, whatever damage
    /// lies around them, keeps the log untouched beside it and reports what
    /// was lost (see `wal::salvage`). The server must be stopped.
    pub fn salvage_log(dir: &Path) -> Result<SalvageReport, StoreError> {
        let path = dir.join("hearth.redb");
        let db = redb::Builder::new().set_cache_size(4 << 20).open(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked(path.clone()),
            other => StoreError::from(redb::Error::from(other)),
        })?;
        refuse_newer_schema(&db)?;
        wal::salvage(dir, &db)
    }

    /// Commit notices from now on arrive on the returned channel (one
    /// subscriber: the event loop).
    ///
    /// The subscriber also decides when readers see a commit: it calls
    /// [`Store::publish`] with each notice's position. The event loop's
    /// waker does so when it runs, which is after the tasks of the batch's
    /// requests were woken by their replies (the writer answers a batch
    /// before it sends the notice, and the loop runs woken tasks in order);
    /// and each request publishes its own batch up to itself when its
    /// answer arrives (`write`), before it responds. So a client gets the
    /// response to its send before a `/sync` can carry the event, and sees
    /// its write in whatever it asks next. (matrix-js-sdk throws when the
    /// remote echo of a threaded event, matched by `transaction_id`, beats
    /// the response.)
    pub fn subscribe(&self) -> UnboundedReceiver<CommitNotice> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        if let Ok(mut guard) = self.subscriber.lock() {
            *guard = Some(tx);
            self.visible.fetch_max(self.committed.load(Ordering::Acquire), Ordering::AcqRel);
            self.published.store(true, Ordering::Release);
        }
        rx
    }

    /// Shows readers everything up to `position` (see [`Store::subscribe`]).
    pub fn publish(&self, position: StreamPos) {
        self.visible.fetch_max(position.0, Ordering::AcqRel);
    }

    /// A read snapshot of everything committed so far.
    pub fn read(&self) -> Result<ReadTxn, StoreError> {
        match writer::read_slot(&self.db).as_ref() {
            Some(db) => Ok(ReadTxn(db.begin_read()?)),
            None => Err(StoreError::Db("the database is being reopened".into())),
        }
    }

    /// The newest stream position readers are shown: committed, and
    /// published by the subscriber if there is one.
    pub fn current_position(&self) -> StreamPos {
        if self.published.load(Ordering::Acquire) {
            return StreamPos(self.visible.load(Ordering::Acquire));
        }
        StreamPos(self.committed.load(Ordering::Acquire))
    }

    /// Queues `op` for the writer and waits until its batch is durable.
    ///
    /// The contract for `op`: it checks everything first and returns
    /// `Ok(Err(e))` *without having written anything* when the request is
    /// refused (its batch-mates still commit); it returns `Err(StoreError)`
    /// only for storage failures, which abort the whole batch. An `op` that
    /// can only find out midway that it must refuse uses [`Store::write_alone`].
    pub async fn write<R, E, F>(&self, op: F) -> Result<R, E>
    where
        F: FnOnce(&mut WriteCtx<'_>) -> Result<Result<R, E>, StoreError> + Send + 'static,
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.submit(op, false).await
    }

    /// Like [`Store::write`], for an `op` that may refuse its request after
    /// it has begun writing, by returning [`StoreError::Refused`] (e.g.
    /// `createRoom`, whose own events can contradict each other only once
    /// they are built): it runs in a transaction of its own, so the rollback
    /// takes no other request with it. Costs a commit of its own; keep it
    /// for rare operations.
    pub async fn write_alone<R, E, F>(&self, op: F) -> Result<R, E>
    where
        F: FnOnce(&mut WriteCtx<'_>) -> Result<Result<R, E>, StoreError> + Send + 'static,
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.submit(op, true).await
    }

    async fn submit<R, E, F>(&self, op: F, alone: bool) -> Result<R, E>
    where
        F: FnOnce(&mut WriteCtx<'_>) -> Result<Result<R, E>, StoreError> + Send + 'static,
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let rx = self.writer.submit(op, alone)?;
        match rx.await {
            Ok((r, upto)) => {
                // Read your writes: whatever this request does next sees
                // its batch (never past what committed: a failed batch's
                // positions were not).
                self.publish(StreamPos(upto.min(self.committed.load(Ordering::Acquire))));
                r
            }
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

/// The database file's name in the data directory.
const DB_FILE_NAME: &str = "hearth.redb";

/// Opens (or creates) the database file with `cache_bytes` of page cache;
/// true when redb had to repair it (it was not closed cleanly).
fn open_database(path: &Path, cache_bytes: usize) -> Result<(Database, bool), StoreError> {
    let repaired = Arc::new(AtomicBool::new(false));
    let flag = repaired.clone();
    let db = redb::Builder::new()
        .set_cache_size(cache_bytes)
        .set_repair_callback(move |_| {
            if !flag.swap(true, Ordering::Relaxed) {
                tracing::warn!("the database was not closed cleanly; checking and repairing it");
            }
        })
        .create(path)
        .map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked(path.to_path_buf()),
            other => StoreError::from(redb::Error::from(other)),
        })?;
    Ok((db, repaired.load(Ordering::Relaxed)))
}

/// `dir/.name.tmp` beside `path`.
fn temp_sibling(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Copies `src` to `dest` and fsyncs the copy; returns its size.
fn copy_file_synced(src: &Path, dest: &Path) -> Result<u64, StoreError> {
    let bytes = std::fs::copy(src, dest)?;
    std::fs::File::open(dest)?.sync_all()?;
    Ok(bytes)
}

/// Fsyncs the directory holding `path`, so a rename in it is durable.
fn sync_parent(path: &Path) -> Result<(), StoreError> {
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// Opens a copied database file (redb checks and repairs it if its header
/// says so), reads its schema version, marks it as needing no write-ahead
/// log and closes it cleanly.
fn close_cleanly(path: &Path) -> Result<u32, StoreError> {
    let db = redb::Builder::new().set_cache_size(4 << 20).open(path).map_err(redb::Error::from)?;
    let version = {
        let txn = db.begin_read()?;
        tables::read_meta_u64(&txn, tables::META_SCHEMA_VERSION)?.unwrap_or(0)
    };
    // A copy is taken right after a checkpoint: it needs no log, and the
    // log of the database it came from is not its own.
    let txn = db.begin_write()?;
    wal::mark_clean(&txn)?;
    txn.commit()?;
    db.close().map_err(redb::Error::from)?;
    std::fs::File::open(path)?.sync_all()?;
    Ok(u32::try_from(version).unwrap_or(u32::MAX))
}

/// Brings the file to `SCHEMA_VERSION`, refusing files from the future.
/// The file's schema version, refusing files from the future.
fn refuse_newer_schema(db: &Database) -> Result<Option<u32>, StoreError> {
    let found = {
        let txn = db.begin_read()?;
        tables::read_meta_u64(&txn, tables::META_SCHEMA_VERSION)?
    };
    match found.map(|v| u32::try_from(v).unwrap_or(u32::MAX)) {
        Some(v) if v > SCHEMA_VERSION => {
            Err(StoreError::NewerSchema { found: v, known: SCHEMA_VERSION })
        }
        other => Ok(other),
    }
}

fn migrate(db: &Database) -> Result<(), StoreError> {
    // A new file (`None`), the current schema, or an older one (newer ones
    // are refused): create any missing table (tables are only ever added
    // within a schema version, so this is idempotent and cheap) and step
    // the version up. Each future migration that changes a layout branches
    // on the version it upgrades from, applied in order inside this
    // transaction.
    let from = refuse_newer_schema(db)?;
    let txn = db.begin_write()?;
    if from == Some(1) {
        rooms::migrate_events_to_v2(&txn)?;
    }
    if from.is_some_and(|v| v < 3) {
        rooms::migrate_to_v3(&txn)?;
    }
    tables::create_all(&txn)?;
    tables::write_meta_u64(&txn, tables::META_SCHEMA_VERSION, u64::from(SCHEMA_VERSION))?;
    txn.commit()?;
    Ok(())
}

impl ReadTxn {
    /// The schema version recorded in the file.
    pub fn schema_version(&self) -> Result<Option<u64>, StoreError> {
        tables::read_meta_u64(&self.0, tables::META_SCHEMA_VERSION)
    }

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
