//! Disk space: the guard checked before each batch, and recovery from an
//! I/O error redb has latched (a disk filled past the guard): writes are
//! answered as refused until space returns, then the database is closed,
//! opened again and the write-ahead log replayed.

use super::*;

/// The open database, shared by the writer and the readers. The writer
/// replaces it when it reopens the database after redb latched an I/O
/// error; `None` only while it does. A read lock per read transaction is
/// one uncontended atomic operation: the writer takes the write lock only
/// to swap the database.
pub(in crate::store) type DbSlot = Arc<RwLock<Option<Database>>>;

/// The slot's database, whoever panicked while holding the lock (the
/// database itself is not left half-changed by a panic elsewhere).
pub(in crate::store) fn read_slot(slot: &DbSlot) -> RwLockReadGuard<'_, Option<Database>> {
    slot.read().unwrap_or_else(PoisonError::into_inner)
}

/// Free space below which the writer does not try to reopen a database
/// that latched an I/O error (nor its reserve, if larger): replaying the
/// log writes a durable commit, and a reopen that fails again costs a
/// repair of the file each time.
const REOPEN_MIN_FREE: u64 = 8 << 20;

/// The writer's side of the database: the slot, what it takes to open the
/// file again, and whether redb has latched an I/O error.
pub(in crate::store) struct DbState {
    pub(super) slot: DbSlot,
    dir: PathBuf,
    cache_bytes: usize,
    pub(super) broken: Option<Broken>,
}

/// redb latched an I/O error: whether the disk was full, and when to try
/// reopening next.
#[derive(Clone, Copy)]
pub(super) struct Broken {
    pub(super) disk_full: bool,
    pub(super) retry_at: Instant,
}

impl DbState {
    pub(in crate::store) fn new(slot: DbSlot, dir: PathBuf, cache_bytes: usize) -> DbState {
        DbState { slot, dir, cache_bytes, broken: None }
    }

    /// Notes that redb latched an I/O error (checked after a failure).
    pub(super) fn check_latched(&mut self, db_failed: bool, e: &StoreError, stats: &WriterStats) {
        if !db_failed {
            return;
        }
        let disk_full = matches!(e, StoreError::DiskFull { .. }) || self.low_on_space();
        tracing::error!(
            "the database hit an I/O error ({e}) and refuses further writes until it is \
             reopened; writes are refused until {}, then it is reopened from the write-ahead \
             log (nothing acknowledged is lost)",
            if disk_full { "disk space is freed" } else { "a reopen succeeds" }
        );
        stats.disk_full.store(disk_full, Ordering::Relaxed);
        self.broken = Some(Broken { disk_full, retry_at: Instant::now() });
    }

    fn low_on_space(&self) -> bool {
        free_bytes(&self.dir).is_ok_and(|(free, _)| free < REOPEN_MIN_FREE)
    }

    /// The answer to writes while the database is latched.
    pub(super) fn error(&self) -> StoreError {
        match self.broken {
            Some(b) if b.disk_full || self.low_on_space() => {
                StoreError::DiskFull { free_bytes: free_bytes(&self.dir).map_or(0, |f| f.0) }
            }
            _ => StoreError::Db("the database is being reopened after an I/O error".into()),
        }
    }

    /// True when the database is usable: it never latched an error, or it
    /// has just been reopened and the log replayed into it. Tries once
    /// `min_free` (and `REOPEN_MIN_FREE`) bytes are free, and after a
    /// failed attempt not again for a second.
    pub(super) fn usable(
        &mut self,
        log: &mut Log,
        next_position: &mut u64,
        min_free: u64,
        stats: &WriterStats,
    ) -> bool {
        let Some(broken) = self.broken else { return true };
        if Instant::now() < broken.retry_at
            || free_bytes(&self.dir).is_ok_and(|(free, _)| free < REOPEN_MIN_FREE.max(min_free))
        {
            return false;
        }
        self.broken = Some(Broken { retry_at: Instant::now() + Duration::from_secs(1), ..broken });
        match self.reopen(log, next_position) {
            Ok(()) => {
                tracing::warn!(
                    "the database was reopened and the write-ahead log replayed into it: \
                     accepting writes again"
                );
                stats.disk_full.store(false, Ordering::Relaxed);
                self.broken = None;
                true
            }
            Err(e) => {
                tracing::error!("reopening the database failed (tried again later): {e}");
                false
            }
        }
    }

    /// Closes the latched database (readers get an error meanwhile), opens
    /// the file again (redb repairs it back to its last durable commit)
    /// and replays the log, as at start.
    fn reopen(&mut self, log: &mut Log, next_position: &mut u64) -> Result<(), StoreError> {
        drop(self.slot.write().unwrap_or_else(PoisonError::into_inner).take());
        let db = crate::store::open_database(
            &self.dir.join(crate::store::DB_FILE_NAME),
            self.cache_bytes,
        )?
        .0;
        let wal = wal::open_and_recover(&self.dir, &db)?;
        let next = {
            let txn = redb::ReadableDatabase::begin_read(&db)?;
            tables::read_meta_u64(&txn, tables::META_NEXT_POSITION)?.unwrap_or(1)
        };
        // Positions a failed batch handed out are not reused.
        *next_position = (*next_position).max(next);
        *self.slot.write().unwrap_or_else(PoisonError::into_inner) = Some(db);
        log.wal = wal;
        log.oldest = None;
        log.changes = 0;
        Ok(())
    }
}

/// Whether redb has latched an I/O error (after a failed batch).
pub(super) fn latched(db: &Database) -> bool {
    match db.try_begin_write() {
        Ok(txn) => {
            let _ = txn.abort();
            false
        }
        Err(_) => true,
    }
}

/// `Err(free bytes)` when the data directory's file system is below the reserve.
pub(super) fn check_disk(guard: &DiskGuard, stats: &WriterStats) -> Result<(), u64> {
    let min = guard.min_free_bytes.load(Ordering::Relaxed);
    if min == 0 {
        return Ok(());
    }
    let free = match free_bytes(&guard.dir) {
        Ok((free, _)) => free,
        // Cannot tell: let the write try (and fail on its own if it must).
        Err(_) => return Ok(()),
    };
    let was_full = stats.disk_full.load(Ordering::Relaxed);
    if free < min {
        if !was_full {
            tracing::error!(
                "disk almost full: {} MiB free in {}, below the reserve of {} MiB; refusing \
                 writes until space is freed (reads keep working)",
                free >> 20,
                guard.dir.display(),
                min >> 20
            );
            stats.disk_full.store(true, Ordering::Relaxed);
        }
        return Err(free);
    }
    if was_full {
        tracing::warn!(
            "disk space is back ({} MiB free in {}): accepting writes again",
            free >> 20,
            guard.dir.display()
        );
        stats.disk_full.store(false, Ordering::Relaxed);
    }
    Ok(())
}
