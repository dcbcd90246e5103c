//! The writer thread: group commit.
//!
//! Handlers send operations (boxed closures) over a channel. The writer blocks
//! for the first, drains whatever else is queued (up to `MAX_BATCH`; with
//! concurrent writers about, waiting up to `GATHER_WINDOW` for more), applies
//! them all in one write transaction, makes the batch durable with one fsync
//! (of the write-ahead log, see `wal.rs`, or of a durable redb commit at a
//! checkpoint), and only then answers every waiter. A hundred concurrent
//! senders cost one fsync.
//!
//! An operation that refuses its request returns `Ok(Err(_))` without having
//! written anything, so its batch-mates are unaffected; a storage failure
//! (`Err(StoreError)`) aborts the whole batch and every op in it is answered
//! with the failure — nothing is acknowledged that was not committed. An
//! operation that can only refuse after it has begun writing
//! (`Store::write_alone`, answering `StoreError::Refused`) is run in a batch
//! of its own, so its rollback fails no other request.
//!
//! Before each batch the writer checks the free space of the data
//! directory's file system. Below the reserve it fails the batch with
//! `DiskFull` *before* redb writes anything: redb latches any I/O error
//! (`PreviousIo`) until the database is closed and reopened, so letting a
//! commit run into ENOSPC would need a restart, while refusing early lets
//! the server carry on by itself once space returns. Reads never pass here.
//!
//! When an I/O error does reach redb anyway (`min_free_disk_mb = 0`, or a
//! disk filled faster than the guard looks), redb latches it: every later
//! transaction fails until the database is closed. The writer then answers
//! writes with the same `DiskFull` error as the guard (or a storage error
//! when the disk is not what failed), and once enough space is free again
//! it closes the database, opens it afresh and replays the write-ahead log
//! (`DbState::reopen`), which holds every batch acknowledged since the
//! last durable commit: no restart, nothing acknowledged lost.
//!
//! The writer also runs *exclusive* jobs between batches (the online
//! backup), and keeps counters for the metrics endpoint (`WriterStats`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};
use std::thread;
use std::time::{Duration, Instant};

use redb::{Database, Durability};
use tokio::sync::oneshot;

use super::wal::{self, LoggedTxn, Wal};
use super::{StoreError, StreamPos, tables};

/// How many operations one transaction carries at most; bounds the latency a
/// single batch adds and the memory its undo data takes.
const MAX_BATCH: usize = 512;

/// How long a batch may wait for more operations after its first one,
/// while fewer have arrived than the previous batch carried.
///
/// Why wait at all: a commit rewrites every B-tree page the batch touched
/// (redb is copy-on-write), and most of those pages are shared by the
/// messages of one batch (a room's newest leaf, a search term's leaf, the
/// table roots), so the bytes written to the SD card per message fall as
/// batches grow. Without a window the writer starts as soon as one
/// operation is queued and catches the other senders only partly. Why the
/// previous batch's size: the clients answered by it are the ones about to
/// send again, so it is the best guess of what is coming; after a batch of
/// fewer than `GATHER_AFTER` (a single client, the wake-latency case)
/// nothing waits. Measured at
/// 32 concurrent senders: about 15% fewer bytes per message at 2 ms, send
/// latency within the noise.
const GATHER_WINDOW: Duration = Duration::from_millis(2);
/// The smallest previous batch that makes the next one wait.
const GATHER_AFTER: usize = 4;

/// A checkpoint (durable redb commit, then the log is emptied) is due once
/// the log's records hold changes of a third of redb's cache (see
/// `spawn`), or once its oldest record is `CHECKPOINT_AGE` old.
///
/// Between checkpoints redb keeps the pages it changed in its cache and
/// writes each once at the checkpoint, however often it changed; the log
/// holds only the changed values. Checkpointing less often means fewer
/// bytes written per message, but a longer replay after a crash, and past
/// a point the changed pages (about 1.5× the changes: B-tree leaves are
/// half full after splits) crowd the cache, and redb writes them out early
/// (without fsync), some more than once. A third of the cache keeps them
/// in it.
const CHECKPOINT_AGE: Duration = Duration::from_secs(30);
/// The least change volume that makes a checkpoint due, whatever the cache.
const CHECKPOINT_MIN_CHANGES: u64 = 1 << 20;

/// What a batch changed that long-polling clients may care about.
#[derive(Debug, Clone)]
pub struct CommitNotice {
    /// The highest stream position committed so far.
    pub position: StreamPos,
    /// Users whose sync output changed (full user IDs).
    pub users: Vec<String>,
}

/// The write side an operation sees: the open transaction plus the batch's
/// bookkeeping (stream positions, who to wake).
pub struct WriteCtx<'a> {
    pub(super) txn: LoggedTxn<'a>,
    next_position: &'a mut u64,
    wake: &'a mut Vec<String>,
}

impl WriteCtx<'_> {
    /// Allocates the next stream position. Positions of an aborted batch are
    /// simply skipped: the stream is monotonic, not dense.
    pub fn next_position(&mut self) -> StreamPos {
        let p = *self.next_position;
        *self.next_position += 1;
        StreamPos(p)
    }

    /// The position `next_position` would give, without taking it.
    pub(super) fn upcoming_position(&self) -> u64 {
        *self.next_position
    }

    /// Wakes `user_id`'s long-polls once the batch has committed.
    // A `&str`, not a `UserId`: push's queue wakes under a key that is no
    // user ID (`PUSH_WAKE`).
    pub fn wake_user(&mut self, user_id: &str) {
        self.wake.push(user_id.to_owned());
    }
}

/// An operation's answer and the highest position its batch had handed out
/// when it finished (see `WriterHandle::submit`).
pub(super) type Answer<R, E> = (Result<R, E>, u64);

/// Called after commit with the commit's outcome; sends the op's reply.
type Reply = Box<dyn FnOnce(Result<(), &StoreError>) + Send>;
/// One queued operation: runs inside the batch (`Ok`) and returns how to
/// answer plus, if it failed (which rolls the batch back), a copy of its
/// error; or is answered at once with the error that kept the batch from
/// starting (`Err`: disk full, no transaction).
type Job = Box<
    dyn FnOnce(Result<&mut WriteCtx<'_>, &StoreError>) -> Option<(Reply, Option<StoreError>)>
        + Send,
>;

/// Runs alone between batches, with a write transaction open (so nothing
/// can commit while it runs) that is aborted afterwards.
type Exclusive = Box<dyn FnOnce(&Database) + Send>;

enum Msg {
    Job(Job),
    /// A job that may refuse its request after it has begun writing (see
    /// `Store::write_alone`): it gets a transaction of its own, so rolling
    /// it back takes no batch-mate with it.
    Alone(Job),
    Exclusive(Exclusive),
    Shutdown,
}

/// Upper bounds of the batch-size histogram (operations per commit).
pub const BATCH_SIZE_BUCKETS: [u64; 8] = [1, 2, 4, 8, 16, 64, 256, 512];
/// Upper bounds of the commit-time histogram, in microseconds.
pub const COMMIT_MICROS_BUCKETS: [u64; 10] =
    [500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000];

/// Counters the writer keeps for the metrics endpoint. Atomics, written by
/// the writer thread only, read by whoever scrapes; fixed size.
#[derive(Default)]
pub struct WriterStats {
    /// Committed batches and the operations they carried.
    pub batches: AtomicU64,
    pub operations: AtomicU64,
    /// Batches that failed (storage error or disk full).
    pub failed_batches: AtomicU64,
    /// Batches refused because free disk space was below the reserve.
    pub disk_full_refusals: AtomicU64,
    /// True while writes are refused for lack of disk space.
    pub disk_full: AtomicBool,
    /// Cumulative counts per bucket of `BATCH_SIZE_BUCKETS` (non-cumulative
    /// storage; the renderer sums).
    pub batch_size_buckets: [AtomicU64; BATCH_SIZE_BUCKETS.len()],
    /// Per bucket of `COMMIT_MICROS_BUCKETS`, plus one overflow bucket.
    pub commit_micros_buckets: [AtomicU64; COMMIT_MICROS_BUCKETS.len() + 1],
    pub commit_micros_sum: AtomicU64,
}

impl WriterStats {
    fn record_commit(&self, ops: usize, micros: u64) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.operations.fetch_add(ops as u64, Ordering::Relaxed);
        let i = BATCH_SIZE_BUCKETS
            .iter()
            .position(|b| ops as u64 <= *b)
            .unwrap_or(BATCH_SIZE_BUCKETS.len() - 1);
        self.batch_size_buckets[i].fetch_add(1, Ordering::Relaxed);
        let j = COMMIT_MICROS_BUCKETS
            .iter()
            .position(|b| micros <= *b)
            .unwrap_or(COMMIT_MICROS_BUCKETS.len());
        self.commit_micros_buckets[j].fetch_add(1, Ordering::Relaxed);
        self.commit_micros_sum.fetch_add(micros, Ordering::Relaxed);
    }
}

/// What the writer needs to check free space before a batch.
pub(super) struct DiskGuard {
    pub(super) dir: PathBuf,
    /// Refuse writes below this many free bytes; 0 disables the check.
    pub(super) min_free_bytes: Arc<AtomicU64>,
}

/// Free bytes (for unprivileged users) of the file system holding `dir`.
pub fn free_bytes(dir: &std::path::Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("path contains NUL"))?;
    // SAFETY: `c` is a valid NUL-terminated path and `st` a properly sized,
    // zero-initialised out-parameter that statvfs fills.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let frsize = st.f_frsize as u64;
    Ok((st.f_bavail as u64 * frsize, st.f_blocks as u64 * frsize))
}

#[derive(Clone)]
pub(super) struct WriterHandle {
    // std's Sender is Send + Sync since 1.72; the Mutex only guards against
    // a submit racing `shutdown` dropping the sender.
    tx: Arc<Mutex<Option<mpsc::Sender<Msg>>>>,
    thread: Arc<Mutex<Option<thread::JoinHandle<()>>>>,
}

impl WriterHandle {
    /// Runs `f` on the writer thread between batches; see `Exclusive`.
    pub(super) fn exclusive(&self, f: Exclusive) -> Result<(), StoreError> {
        let guard = self.tx.lock().map_err(|_| StoreError::WriterGone)?;
        match guard.as_ref() {
            Some(tx) => tx.send(Msg::Exclusive(f)).map_err(|_| StoreError::WriterGone),
            None => Err(StoreError::WriterGone),
        }
    }

    /// The answer comes with the highest stream position the batch had
    /// handed out when `op` finished (its own and its predecessors' in the
    /// batch), for `Store::publish`.
    pub(super) fn submit<R, E, F>(
        &self,
        op: F,
        alone: bool,
    ) -> Result<oneshot::Receiver<Answer<R, E>>, StoreError>
    where
        F: FnOnce(&mut WriteCtx<'_>) -> Result<Result<R, E>, StoreError> + Send + 'static,
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (reply_tx, reply_rx) = oneshot::channel();
        self.submit_with(op, alone, move |answer, upto| {
            // The waiter may have gone away (client disconnected); the
            // write stands either way.
            let _ = reply_tx.send((answer, upto));
        })?;
        Ok(reply_rx)
    }

    /// Like `submit`, answering through a std channel: usable outside any
    /// async runtime and from inside one alike.
    pub(super) fn submit_blocking<R, E, F>(
        &self,
        op: F,
    ) -> Result<mpsc::Receiver<Result<R, E>>, StoreError>
    where
        F: FnOnce(&mut WriteCtx<'_>) -> Result<Result<R, E>, StoreError> + Send + 'static,
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        self.submit_with(op, false, move |answer, _| {
            let _ = reply_tx.send(answer);
        })?;
        Ok(reply_rx)
    }

    fn submit_with<R, E, F, S>(&self, op: F, alone: bool, send: S) -> Result<(), StoreError>
    where
        F: FnOnce(&mut WriteCtx<'_>) -> Result<Result<R, E>, StoreError> + Send + 'static,
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
        S: FnOnce(Result<R, E>, u64) + Send + 'static,
    {
        let job: Job = Box::new(move |ctx| {
            let ctx = match ctx {
                Ok(ctx) => ctx,
                Err(e) => {
                    send(Err(E::from(e.duplicate())), 0);
                    return None;
                }
            };
            let outcome = op(ctx);
            let upto = ctx.upcoming_position().saturating_sub(1);
            let poisoned = outcome.as_ref().err().map(StoreError::duplicate);
            let reply: Reply = Box::new(move |commit| {
                let answer = match (outcome, commit) {
                    (Ok(Err(refused)), _) => Err(refused),
                    (Ok(Ok(r)), Ok(())) => Ok(r),
                    (Ok(Ok(_)), Err(e)) => Err(E::from(e.duplicate())),
                    (Err(e), _) => Err(E::from(e)),
                };
                send(answer, upto);
            });
            Some((reply, poisoned))
        });
        let guard = self.tx.lock().map_err(|_| StoreError::WriterGone)?;
        match guard.as_ref() {
            Some(tx) => {
                let msg = if alone { Msg::Alone(job) } else { Msg::Job(job) };
                tx.send(msg).map_err(|_| StoreError::WriterGone)?
            }
            None => return Err(StoreError::WriterGone),
        }
        Ok(())
    }

    /// Asks the writer to finish what is queued and stop; waits for it.
    pub(super) fn shutdown(&self) {
        if let Ok(mut guard) = self.tx.lock()
            && let Some(tx) = guard.take()
        {
            let _ = tx.send(Msg::Shutdown);
        }
        if let Ok(mut guard) = self.thread.lock()
            && let Some(handle) = guard.take()
        {
            let _ = handle.join();
        }
    }
}

pub(super) fn spawn(
    mut db: DbState,
    mut log: Log,
    next_position: u64,
    committed: Arc<AtomicU64>,
    on_commit: Option<Box<dyn Fn(CommitNotice) + Send>>,
    stats: Arc<WriterStats>,
    guard: DiskGuard,
) -> Result<WriterHandle, StoreError> {
    let (tx, rx) = mpsc::channel::<Msg>();
    let thread = thread::Builder::new().name("hearth-writer".into()).spawn(move || {
        let ctx = RunCtx { committed: &committed, on_commit, stats: &stats, guard: &guard };
        run(&mut db, &mut log, rx, next_position, ctx)
    })?;
    Ok(WriterHandle {
        tx: Arc::new(Mutex::new(Some(tx))),
        thread: Arc::new(Mutex::new(Some(thread))),
    })
}

/// The write-ahead log, the age of its oldest record and the volume of
/// changes (before compression) its records hold.
pub(super) struct Log {
    wal: Wal,
    oldest: Option<Instant>,
    changes: u64,
    change_limit: u64,
    /// Set for the last checkpoint at shutdown: it records that the log
    /// holds nothing the database lacks (see `wal::LogMeta`).
    closing: bool,
}

impl Log {
    /// The writer's view of `wal` (empty, just recovered), with redb's
    /// cache size to set the checkpoint volume by.
    pub(super) fn new(wal: Wal, cache_bytes: usize) -> Log {
        let change_limit = (cache_bytes as u64 / 3).max(CHECKPOINT_MIN_CHANGES);
        Log { wal, oldest: None, changes: 0, change_limit, closing: false }
    }

    /// Whether the next batch should be committed durably (a checkpoint).
    fn checkpoint_due(&self) -> bool {
        self.changes >= self.change_limit
            || self.oldest.is_some_and(|t| t.elapsed() >= CHECKPOINT_AGE)
    }
}

/// Commits everything logged so far durably and empties the log (before an
/// exclusive job, at shutdown, when the log has aged while idle).
/// False if the log still holds records afterwards. Like a batch, a
/// checkpoint is not started below the disk-space reserve (redb would latch
/// the error); the log keeps everything durable meanwhile.
fn checkpoint(
    state: &mut DbState,
    log: &mut Log,
    next_position: &mut u64,
    ctx: &RunCtx<'_>,
) -> bool {
    if log.oldest.is_none() && !log.closing {
        return true;
    }
    if state.broken.is_some() || check_disk(ctx.guard, ctx.stats).is_err() {
        return false;
    }
    let guard = read_slot(&state.slot);
    let Some(db) = guard.as_ref() else { return false };
    let mut wake = Vec::new();
    let e = match apply_batch(db, log, Vec::new(), next_position, &mut wake, true) {
        Ok(_) => return true,
        Err((e, _)) => e,
    };
    tracing::error!("checkpoint of the write-ahead log failed (retried later): {e}");
    let failed = latched(db);
    drop(guard);
    state.check_latched(failed, &e, ctx.stats);
    false
}

/// Runs an exclusive job (it reads the database file) once everything the
/// log holds is in the file; refuses it otherwise.
fn checkpoint_then_exclusive(
    state: &mut DbState,
    log: &mut Log,
    next_position: &mut u64,
    ctx: &RunCtx<'_>,
    f: Exclusive,
) {
    if checkpoint(state, log, next_position, ctx)
        && let Some(db) = read_slot(&state.slot).as_ref()
    {
        run_exclusive(db, f);
    } else {
        tracing::error!(
            "backup refused: the write-ahead log could not be checkpointed into the database \
             (disk full?)"
        );
        // Dropping `f` drops its reply sender: the caller sees the failure.
        drop(f);
    }
}

struct RunCtx<'a> {
    committed: &'a AtomicU64,
    on_commit: Option<Box<dyn Fn(CommitNotice) + Send>>,
    stats: &'a WriterStats,
    guard: &'a DiskGuard,
}

/// Runs an exclusive job with a write transaction held, then aborts it.
fn run_exclusive(db: &Database, f: Exclusive) {
    match db.begin_write() {
        Ok(txn) => {
            f(db);
            let _ = txn.abort();
        }
        Err(e) => {
            tracing::error!("cannot start the write transaction for an exclusive job: {e}");
            // Dropping `f` drops its reply sender: the caller sees the writer gone.
            drop(f);
        }
    }
}

fn run(
    state: &mut DbState,
    log: &mut Log,
    rx: mpsc::Receiver<Msg>,
    mut next_position: u64,
    ctx: RunCtx<'_>,
) {
    let RunCtx { committed, on_commit, stats, guard } = &ctx;
    let (committed, stats, guard) = (*committed, *stats, *guard);
    let mut stopping = false;
    let mut last_ops = 1;
    // After a checkpoint failed (disk full), when to try again.
    let mut retry_at = Instant::now();
    // A job to run alone that arrived while a batch was being gathered: the
    // next batch is that job by itself (even when stopping).
    let mut held: Option<Job> = None;
    while !stopping || held.is_some() {
        let mut jobs = Vec::new();
        let mut exclusive = None;
        let mut alone = false;
        // While the log holds records, wake up when it is due for a
        // checkpoint even if nothing else arrives; while the database is
        // latched, to try reopening it (readers need it too).
        let wake_at = match log.oldest {
            Some(t) => Some((t + CHECKPOINT_AGE).max(retry_at)),
            None => state.broken.map(|_| retry_at),
        };
        let first = match (held.take(), wake_at) {
            (Some(j), _) => Ok(Msg::Alone(j)),
            (None, None) => rx.recv().map_err(|_| true),
            (None, Some(at)) => match rx.recv_timeout(at.saturating_duration_since(Instant::now()))
            {
                Ok(m) => Ok(m),
                Err(mpsc::RecvTimeoutError::Timeout) => Err(false),
                Err(mpsc::RecvTimeoutError::Disconnected) => Err(true),
            },
        };
        match first {
            Ok(Msg::Job(j)) => jobs.push(j),
            Ok(Msg::Alone(j)) => {
                jobs.push(j);
                alone = true;
            }
            Ok(Msg::Exclusive(f)) => {
                checkpoint_then_exclusive(state, log, &mut next_position, &ctx, f);
                continue;
            }
            Err(false) => {
                let min_free = guard.min_free_bytes.load(Ordering::Relaxed);
                if !state.usable(log, &mut next_position, min_free, stats)
                    || !checkpoint(state, log, &mut next_position, &ctx)
                {
                    retry_at = Instant::now() + Duration::from_secs(1);
                }
                continue;
            }
            Ok(Msg::Shutdown) | Err(true) => break,
        }
        // See `GATHER_WINDOW`. A batch of a few says little about what is
        // coming (a send plus someone's read marker): only wait after real
        // concurrency.
        let target = if last_ops >= GATHER_AFTER { last_ops.min(MAX_BATCH) } else { 0 };
        let deadline = Instant::now() + GATHER_WINDOW;
        while !alone && jobs.len() < MAX_BATCH {
            let msg = match rx.try_recv() {
                Ok(m) => Ok(m),
                Err(mpsc::TryRecvError::Empty) if jobs.len() < target => {
                    match deadline.checked_duration_since(Instant::now()) {
                        Some(left) => rx.recv_timeout(left).map_err(|_| ()),
                        None => Err(()),
                    }
                }
                Err(_) => Err(()),
            };
            match msg {
                Ok(Msg::Job(j)) => jobs.push(j),
                // Runs in the next batch, by itself.
                Ok(Msg::Alone(j)) => {
                    held = Some(j);
                    break;
                }
                // Runs right after this batch commits.
                Ok(Msg::Exclusive(f)) => {
                    exclusive = Some(f);
                    break;
                }
                Ok(Msg::Shutdown) => {
                    stopping = true;
                    break;
                }
                Err(()) => break,
            }
        }
        last_ops = jobs.len();
        if let Err(free) = check_disk(guard, stats) {
            stats.disk_full_refusals.fetch_add(1, Ordering::Relaxed);
            stats.failed_batches.fetch_add(1, Ordering::Relaxed);
            let e = StoreError::DiskFull { free_bytes: free };
            for job in jobs {
                job(Err(&e));
            }
            if let Some(f) = exclusive {
                checkpoint_then_exclusive(state, log, &mut next_position, &ctx, f);
            }
            continue;
        }
        let min_free = guard.min_free_bytes.load(Ordering::Relaxed);
        if !state.usable(log, &mut next_position, min_free, stats) {
            let e = state.error();
            stats.failed_batches.fetch_add(1, Ordering::Relaxed);
            if matches!(e, StoreError::DiskFull { .. }) {
                stats.disk_full_refusals.fetch_add(1, Ordering::Relaxed);
            }
            for job in jobs {
                job(Err(&e));
            }
            if let Some(f) = exclusive {
                checkpoint_then_exclusive(state, log, &mut next_position, &ctx, f);
            }
            continue;
        }
        let before = next_position;
        let mut wake = Vec::new();
        let ops = jobs.len();
        let started = Instant::now();
        let durable = log.checkpoint_due();
        let db_guard = read_slot(&state.slot);
        let Some(db) = db_guard.as_ref() else {
            // `usable` leaves a database in the slot; answer rather than hang.
            let e = StoreError::Db("the database is closed".into());
            for job in jobs {
                job(Err(&e));
            }
            continue;
        };
        let result = apply_batch(db, log, jobs, &mut next_position, &mut wake, durable);
        let failed = result.is_err() && latched(db);
        drop(db_guard);
        match result {
            Ok(replies) => {
                let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                stats.record_commit(ops, micros);
                let position = next_position - 1;
                committed.store(position, Ordering::Release);
                for r in replies {
                    r(Ok(()));
                }
                if let Some(cb) = &on_commit
                    && (next_position != before || !wake.is_empty())
                {
                    wake.sort_unstable();
                    wake.dedup();
                    cb(CommitNotice { position: StreamPos(position), users: wake });
                }
            }
            Err((e, replies)) => {
                stats.failed_batches.fetch_add(1, Ordering::Relaxed);
                log_failed_batch(&e, replies.len());
                // Answered like every write until the database is reopened.
                state.check_latched(failed, &e, stats);
                let e = if failed { state.error() } else { e };
                // Positions handed out in the failed batch are not reused.
                for r in replies {
                    r(Err(&e));
                }
            }
        }
        if let Some(f) = exclusive {
            checkpoint_then_exclusive(state, log, &mut next_position, &ctx, f);
        }
    }
    // A clean stop leaves the log empty and redb's file complete, and says
    // so in the file.
    log.closing = true;
    let min_free = guard.min_free_bytes.load(Ordering::Relaxed);
    if state.broken.is_some() {
        state.broken = state.broken.map(|b| Broken { retry_at: Instant::now(), ..b });
    }
    if state.usable(log, &mut next_position, min_free, stats) {
        checkpoint(state, log, &mut next_position, &ctx);
    }
    // Answer anything that raced the shutdown so no waiter hangs.
    while let Ok(Msg::Job(j) | Msg::Alone(j)) = rx.try_recv() {
        drop(j);
    }
}

/// Logs why a batch was rolled back, at the level it deserves: a refusal
/// (an operation found its request invalid midway, like a `createRoom`
/// whose power-level override forbids its own initial state) is the
/// client's mistake, answered with its own error, not a storage failure.
fn log_failed_batch(e: &StoreError, ops: usize) {
    match e {
        StoreError::Refused(m) => tracing::debug!(
            "write batch of {ops} operations rolled back: a request was refused: {}",
            m.message
        ),
        e => tracing::error!("write batch of {ops} operations failed: {e}"),
    }
}

type BatchFailure = (StoreError, Vec<Reply>);

/// Runs `jobs` in one write transaction and makes it durable: as a log
/// record plus a non-durable redb commit, or, when `durable` (a
/// checkpoint), as a durable redb commit after which the log is emptied.
fn apply_batch(
    db: &Database,
    log: &mut Log,
    jobs: Vec<Job>,
    next_position: &mut u64,
    wake: &mut Vec<String>,
    durable: bool,
) -> Result<Vec<Reply>, BatchFailure> {
    let mut txn = match db.begin_write() {
        Ok(t) => t,
        Err(e) => {
            let e = StoreError::from(e);
            let replies = jobs.into_iter().map(|j| failed_reply(j, &e)).collect();
            return Err((e, replies));
        }
    };
    let durability = if durable { Durability::Immediate } else { Durability::None };
    if let Err(e) = txn.set_durability(durability) {
        let e = StoreError::Db(e.to_string());
        let replies = jobs.into_iter().map(|j| failed_reply(j, &e)).collect();
        return Err((e, replies));
    }
    let start = *next_position;
    let mut replies = Vec::with_capacity(jobs.len());
    let mut poisoned: Option<StoreError> = None;
    let changes = {
        let mut ctx = WriteCtx { txn: LoggedTxn::new(&txn), next_position, wake };
        for job in jobs {
            if let Some((reply, bad)) = job(Ok(&mut ctx)) {
                // A storage failure outranks a refusal in the log.
                if let Some(e) = bad
                    && poisoned.as_ref().is_none_or(|p| matches!(p, StoreError::Refused(_)))
                {
                    poisoned = Some(e);
                }
                replies.push(reply);
            }
        }
        let next = *ctx.next_position;
        if poisoned.is_none()
            && next != start
            && let Err(e) = ctx.set_meta(tables::META_NEXT_POSITION, &next.to_be_bytes())
        {
            drop(ctx);
            let _ = txn.abort();
            return Err((e, replies));
        }
        ctx.txn.take_changes()
    };
    if let Some(e) = poisoned {
        let _ = txn.abort();
        return Err((e, replies));
    }
    if durable {
        if let Err(e) = log.wal.write_checkpoint(&txn, log.closing) {
            let _ = txn.abort();
            return Err((e, replies));
        }
        if let Err(e) = txn.commit() {
            return Err((StoreError::from(e), replies));
        }
        // Every record is in the file now; an unemptied log is only
        // replayed for nothing (its records are at or below the recorded
        // sequence number), so a failure here costs nothing but space.
        if let Err(e) = log.wal.reset() {
            tracing::warn!("cannot empty the write-ahead log after a checkpoint: {e}");
        } else {
            log.oldest = None;
            log.changes = 0;
        }
        return Ok(replies);
    }
    if changes.is_empty() {
        // Every operation was refused or read-only: nothing to make durable.
        let _ = txn.abort();
        return Ok(replies);
    }
    let mark = log.wal.mark();
    if let Err(e) = log.wal.append(&changes, (start, *next_position)) {
        let _ = txn.abort();
        return Err((e, replies));
    }
    if let Err(e) = txn.commit() {
        // Not acknowledged, so the record must not come back at replay.
        if let Err(e2) = log.wal.unappend(mark) {
            tracing::error!("cannot take back a write-ahead log record: {e2}");
        }
        return Err((StoreError::from(e), replies));
    }
    log.oldest.get_or_insert_with(Instant::now);
    log.changes += changes.len() as u64;
    Ok(replies)
}

/// Answers a job that never ran because the transaction could not start.
fn failed_reply(job: Job, e: &StoreError) -> Reply {
    let _ = job(Err(e));
    Box::new(|_| {})
}

mod reopen;
#[cfg(test)]
mod tests;

use reopen::{Broken, check_disk, latched};
pub(super) use reopen::{DbSlot, DbState, read_slot};
