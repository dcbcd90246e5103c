//! The writer thread: group commit.
//!
//! Handlers send operations (boxed closures) over a channel. The writer blocks
//! for the first, drains whatever else is queued (up to `MAX_BATCH`), applies
//! them all in one write transaction, commits once with fsync, and only then
//! answers every waiter. A hundred concurrent senders cost one fsync.
//!
//! An operation that refuses its request returns `Ok(Err(_))` without having
//! written anything, so its batch-mates are unaffected; a storage failure
//! (`Err(StoreError)`) aborts the whole batch and every op in it is answered
//! with the failure — nothing is acknowledged that was not committed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;

use redb::{Database, Durability, WriteTransaction};
use tokio::sync::oneshot;

use super::{StoreError, StreamPos, tables};

/// How many operations one transaction carries at most; bounds the latency a
/// single batch adds and the memory its undo data takes.
const MAX_BATCH: usize = 512;

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
    pub(super) txn: &'a WriteTransaction,
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

    /// Wakes `user_id`'s long-polls once the batch has committed.
    pub fn wake_user(&mut self, user_id: &str) {
        self.wake.push(user_id.to_owned());
    }
}

/// Called after commit with the commit's outcome; sends the op's reply.
type Reply = Box<dyn FnOnce(Result<(), &StoreError>) + Send>;
/// One queued operation: runs inside the batch, returns how to answer.
type Job = Box<dyn FnOnce(&mut WriteCtx<'_>) -> (Reply, bool) + Send>;

enum Msg {
    Job(Job),
    Shutdown,
}

#[derive(Clone)]
pub(super) struct WriterHandle {
    // std's Sender is Send + Sync since 1.72; the Mutex only guards against
    // a submit racing `shutdown` dropping the sender.
    tx: Arc<Mutex<Option<mpsc::Sender<Msg>>>>,
    thread: Arc<Mutex<Option<thread::JoinHandle<()>>>>,
}

impl WriterHandle {
    pub(super) fn submit<R, E, F>(
        &self,
        op: F,
    ) -> Result<oneshot::Receiver<Result<R, E>>, StoreError>
    where
        F: FnOnce(&mut WriteCtx<'_>) -> Result<Result<R, E>, StoreError> + Send + 'static,
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (reply_tx, reply_rx) = oneshot::channel();
        self.submit_with(op, move |answer| {
            // The waiter may have gone away (client disconnected); the
            // write stands either way.
            let _ = reply_tx.send(answer);
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
        self.submit_with(op, move |answer| {
            let _ = reply_tx.send(answer);
        })?;
        Ok(reply_rx)
    }

    fn submit_with<R, E, F, S>(&self, op: F, send: S) -> Result<(), StoreError>
    where
        F: FnOnce(&mut WriteCtx<'_>) -> Result<Result<R, E>, StoreError> + Send + 'static,
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
        S: FnOnce(Result<R, E>) + Send + 'static,
    {
        let job: Job = Box::new(move |ctx| {
            let outcome = op(ctx);
            let poisoned = outcome.is_err();
            let reply: Reply = Box::new(move |commit| {
                let answer = match (outcome, commit) {
                    (Ok(Err(refused)), _) => Err(refused),
                    (Ok(Ok(r)), Ok(())) => Ok(r),
                    (Ok(Ok(_)), Err(e)) => Err(E::from(StoreError::Db(e.to_string()))),
                    (Err(e), _) => Err(E::from(e)),
                };
                send(answer);
            });
            (reply, poisoned)
        });
        let guard = self.tx.lock().map_err(|_| StoreError::WriterGone)?;
        match guard.as_ref() {
            Some(tx) => tx.send(Msg::Job(job)).map_err(|_| StoreError::WriterGone)?,
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
    db: Arc<Database>,
    next_position: u64,
    committed: Arc<AtomicU64>,
    on_commit: Option<Box<dyn Fn(CommitNotice) + Send>>,
) -> Result<WriterHandle, StoreError> {
    let (tx, rx) = mpsc::channel::<Msg>();
    let thread = thread::Builder::new()
        .name("hearth-writer".into())
        .spawn(move || run(&db, rx, next_position, &committed, on_commit))?;
    Ok(WriterHandle {
        tx: Arc::new(Mutex::new(Some(tx))),
        thread: Arc::new(Mutex::new(Some(thread))),
    })
}

fn run(
    db: &Database,
    rx: mpsc::Receiver<Msg>,
    mut next_position: u64,
    committed: &AtomicU64,
    on_commit: Option<Box<dyn Fn(CommitNotice) + Send>>,
) {
    let mut stopping = false;
    while !stopping {
        let mut jobs = Vec::new();
        match rx.recv() {
            Ok(Msg::Job(j)) => jobs.push(j),
            Ok(Msg::Shutdown) | Err(_) => break,
        }
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Msg::Job(j)) => jobs.push(j),
                Ok(Msg::Shutdown) => {
                    stopping = true;
                    break;
                }
                Err(_) => break,
            }
        }
        let before = next_position;
        let mut wake = Vec::new();
        let result = apply_batch(db, jobs, &mut next_position, &mut wake);
        match result {
            Ok(replies) => {
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
                tracing::error!("write batch of {} operations failed: {e}", replies.len());
                // Positions handed out in the failed batch are not reused.
                for r in replies {
                    r(Err(&e));
                }
            }
        }
    }
    // Answer anything that raced the shutdown so no waiter hangs.
    while let Ok(Msg::Job(j)) = rx.try_recv() {
        drop(j);
    }
}

type BatchFailure = (StoreError, Vec<Reply>);

fn apply_batch(
    db: &Database,
    jobs: Vec<Job>,
    next_position: &mut u64,
    wake: &mut Vec<String>,
) -> Result<Vec<Reply>, BatchFailure> {
    let mut txn = match db.begin_write() {
        Ok(t) => t,
        Err(e) => {
            let e = StoreError::from(e);
            let replies = jobs.into_iter().map(failed_reply).collect();
            return Err((e, replies));
        }
    };
    if let Err(e) = txn.set_durability(Durability::Immediate) {
        let replies = jobs.into_iter().map(failed_reply).collect();
        return Err((StoreError::Db(e.to_string()), replies));
    }
    let start = *next_position;
    let mut replies = Vec::with_capacity(jobs.len());
    let mut poisoned = false;
    {
        let mut ctx = WriteCtx { txn: &txn, next_position, wake };
        for job in jobs {
            let (reply, bad) = job(&mut ctx);
            poisoned |= bad;
            replies.push(reply);
        }
    }
    if poisoned {
        let _ = txn.abort();
        return Err((StoreError::Db("an operation in the batch failed".into()), replies));
    }
    if *next_position != start
        && let Err(e) = tables::write_meta_u64(&txn, tables::META_NEXT_POSITION, *next_position)
    {
        let _ = txn.abort();
        return Err((e, replies));
    }
    match txn.commit() {
        Ok(()) => Ok(replies),
        Err(e) => Err((StoreError::from(e), replies)),
    }
}

/// A reply for a job that never ran because the transaction could not start.
fn failed_reply(job: Job) -> Reply {
    // The op's result type is erased inside the job, so the only way to
    // answer it is to run it against… nothing. Instead we drop it: dropping
    // the job drops its oneshot sender, and the waiter sees `WriterGone`.
    drop(job);
    Box::new(|_| {})
}
