//! The write-ahead log in front of redb: how a batch becomes durable with
//! one small append instead of a rewrite of every page it touched.
//!
//! Why: redb is a copy-on-write B-tree. A durable commit writes every page
//! the batch touched plus the branch pages above them, and a message touches
//! pages its batch-mates do not share (its random event-ID key, its sender's
//! transaction-ID row, notification rows per room member, the postings of
//! its rarer words): about 28 KiB written to the SD card per message even in
//! full batches. The log holds only the bytes that changed.
//!
//! How: every table a write operation opens goes through [`LoggedTxn`],
//! which records each insert and remove (table id, encoded key, encoded
//! value) as it happens. After the batch ran, the writer appends that
//! record to `hearth.wal`, fsyncs the log, commits the redb transaction
//! *non-durably* (redb keeps its pages in memory; readers see them at once),
//! and only then answers the batch. Every so often (by size and age of the
//! log, before a backup, at shutdown) a batch is committed durably instead,
//! recording in `meta` the sequence number of the last logged batch; the
//! log is then emptied. Pages rewritten many times between two checkpoints
//! reach the disk once.
//!
//! The file is not truncated when it is emptied: appends start again after
//! its header, over the records of the previous round, and it is grown by
//! preallocating a MiB at a time (the new size fsynced before a record
//! relies on it). Overwriting blocks the file already owns lets `fdatasync`
//! flush just the data; appending would make every fsync also commit the
//! file system's journal (new size, new blocks).
//!
//! # Which log, and how damage is told from a torn tail
//!
//! Each log has a random 8-byte ID, written in the file's header and in
//! every record, and recorded in redb's `meta` (`wal_log`, with the least
//! length the file has and whether the server stopped cleanly) by every
//! durable commit. So a missing log, a log of another database, or random
//! bytes are recognised at start instead of being read as an empty log.
//!
//! Recovery: redb comes back at its last durable commit. Records with a
//! sequence number above the one that commit recorded are applied again,
//! in order, in one durable transaction. The log is physical and every
//! change in it is a blind write of a whole value, so applying a record to
//! a state that already contains it changes nothing.
//!
//! The records of one round are contiguous and numbered without gaps,
//! starting at the checkpoint's sequence number + 1; whatever lies after
//! the last of them is zeros or records of earlier rounds, all numbered at
//! or below the checkpoint. A crash during an append leaves one record
//! whose header or body does not verify, with nothing of this round after
//! it: that torn record (never acknowledged) ends the log. Anything else is
//! refused at start, leaving the file untouched (`hearth doctor
//! --salvage-wal` applies what it can, see [`salvage`]):
//! - a record that does not verify, with a verified record of this round
//!   (a higher sequence number than the last good one) anywhere after it;
//! - a file shorter than it was: a record running past its end (a record
//!   always lies within the preallocated size), or the file ending where a
//!   record header could still follow while the records' or the
//!   checkpoint's recorded file length says it was longer. A crash never
//!   shortens the file; something else cut it.
//!
//! Layout (integers little-endian). File header, 64 bytes:
//! `magic "HEARTHWL" | version: u32 | log id: [u8; 8] | checksum: [u8; 8]`
//! (the first 8 bytes of blake3 over what precedes it), zero-padded. Each
//! record: a 64-byte header `magic "HwRc" | log id | seq: u64 | first
//! stream position: u64 | next stream position: u64 | file length: u64 |
//! body_len: u32 | body checksum: [u8; 8] | header checksum: [u8; 8]`, then
//! the body `raw_len: u32 | deflate(changes)`, where `changes` (`raw_len`
//! bytes before compression) is a sequence of `op: u8 (1 insert, 2 remove)
//! | table: u8 | key_len: u32 | key | (insert only) value_len: u32 |
//! value`. The stream positions are the range the batch handed out, so a
//! salvage can say which positions were lost. Deflate at its fastest level
//! shrinks chat traffic about five times (room and user IDs, JSON keys and
//! search terms repeat within a batch) for ~10 µs per message of writer
//! time.
//!
//! Logs written before the ID existed (a bare sequence of `len | checksum
//! | seq | body` records, no header) are replayed once as before and then
//! replaced by a log of the new layout.

use std::borrow::Borrow;
use std::cell::RefCell;
use std::fs::File;
use std::ops::Deref;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use redb::{
    AccessGuard, Database, Durability, Key, ReadTransaction, ReadableDatabase, ReadableTable,
    StorageError, Table, TableDefinition, TableError, TableHandle, Value, WriteTransaction,
};

use super::{StoreError, tables};

/// The log file's name in the data directory.
pub(super) const FILE_NAME: &str = "hearth.wal";

/// The `meta` key holding the sequence number of the last logged batch a
/// durable commit contains.
pub(super) const META_CHECKPOINT_SEQ: &str = "wal_checkpoint_seq";
/// The `meta` key describing the log the database expects ([`LogMeta`]).
pub(super) const META_LOG: &str = "wal_log";

const FILE_MAGIC: [u8; 8] = *b"HEARTHWL";
const FORMAT_VERSION: u32 = 2;
/// Bytes before the first record: the file header, padded.
const FILE_HEADER: u64 = 64;
const RECORD_MAGIC: [u8; 4] = *b"HwRc";
const RECORD_HEADER: usize = 64;
/// The file grows by this much at a time (preallocated).
const GROW: u64 = 1 << 20;
/// A file that grew past this (one huge batch) is cut back when emptied.
const KEEP: u64 = 4 << 20;
const OP_INSERT: u8 = 1;
const OP_REMOVE: u8 = 2;

/// A write transaction whose table changes are recorded for the log.
/// Operations see it as `ctx.txn`; it opens tables like redb's own.
pub(super) struct LoggedTxn<'a> {
    txn: &'a WriteTransaction,
    changes: RefCell<Vec<u8>>,
}

impl<'a> LoggedTxn<'a> {
    pub(super) fn new(txn: &'a WriteTransaction) -> LoggedTxn<'a> {
        LoggedTxn { txn, changes: RefCell::new(Vec::new()) }
    }

    /// Opens `def` for reading and writing; every insert and remove through
    /// the returned table is logged.
    pub(super) fn open_table<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> Result<LoggedTable<'_, K, V>, TableError> {
        let id = tables::wal_id(def.name()).ok_or_else(|| {
            TableError::Storage(StorageError::Corrupted(format!(
                "table {} has no write-ahead-log id",
                def.name()
            )))
        })?;
        Ok(LoggedTable { table: self.txn.open_table(def)?, id, changes: &self.changes })
    }

    /// The encoded changes recorded so far (empty if nothing was written).
    pub(super) fn take_changes(&self) -> Vec<u8> {
        std::mem::take(&mut *self.changes.borrow_mut())
    }
}

/// A table opened through [`LoggedTxn`]: reads go straight to redb (it
/// dereferences to the table), writes are recorded first. It deliberately
/// offers no mutable access to the inner table, so no write can bypass the
/// log: a mutating redb method that is not wrapped here does not compile.
pub(super) struct LoggedTable<'t, K: Key + 'static, V: Value + 'static> {
    table: Table<'t, K, V>,
    id: u8,
    changes: &'t RefCell<Vec<u8>>,
}

impl<K: Key + 'static, V: Value + 'static> LoggedTable<'_, K, V> {
    pub(super) fn insert<'k, 'v>(
        &mut self,
        key: impl Borrow<K::SelfType<'k>>,
        value: impl Borrow<V::SelfType<'v>>,
    ) -> Result<Option<AccessGuard<'_, V>>, StorageError> {
        let (key, value) = (key.borrow(), value.borrow());
        {
            let k = K::as_bytes(key);
            let v = V::as_bytes(value);
            let (k, v) = (k.as_ref(), v.as_ref());
            let mut log = self.changes.borrow_mut();
            log.reserve(2 + 8 + k.len() + v.len());
            log.push(OP_INSERT);
            log.push(self.id);
            put_bytes(&mut log, k);
            put_bytes(&mut log, v);
        }
        self.table.insert(key, value)
    }

    pub(super) fn remove<'k>(
        &mut self,
        key: impl Borrow<K::SelfType<'k>>,
    ) -> Result<Option<AccessGuard<'_, V>>, StorageError> {
        let key = key.borrow();
        {
            let k = K::as_bytes(key);
            let mut log = self.changes.borrow_mut();
            log.push(OP_REMOVE);
            log.push(self.id);
            put_bytes(&mut log, k.as_ref());
        }
        self.table.remove(key)
    }
}

impl<'t, K: Key + 'static, V: Value + 'static> Deref for LoggedTable<'t, K, V> {
    type Target = Table<'t, K, V>;

    fn deref(&self) -> &Table<'t, K, V> {
        &self.table
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    // Values are bounded far below 4 GiB by the request body limits.
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

fn checksum(parts: &[&[u8]]) -> [u8; 8] {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(p);
    }
    let mut c = [0u8; 8];
    c.copy_from_slice(&h.finalize().as_bytes()[..8]);
    c
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// What the database knows of its log (the `wal_log` meta value): its ID,
/// the least length the file has (so a cut file is noticed even when no
/// record of the current round survives), and whether the server stopped
/// cleanly (then the log holds nothing the database lacks, and a missing
/// log is simply made anew).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct LogMeta {
    pub(super) id: [u8; 8],
    pub(super) min_len: u64,
    pub(super) clean: bool,
}

impl LogMeta {
    fn encode(&self) -> [u8; 17] {
        let mut b = [0u8; 17];
        b[..8].copy_from_slice(&self.id);
        b[8..16].copy_from_slice(&self.min_len.to_be_bytes());
        b[16] = u8::from(self.clean);
        b
    }

    fn decode(b: &[u8]) -> Result<LogMeta, StoreError> {
        if b.len() != 17 {
            return Err(StoreError::Corrupt(format!("meta {META_LOG} is not 17 bytes")));
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&b[..8]);
        let mut len = [0u8; 8];
        len.copy_from_slice(&b[8..16]);
        Ok(LogMeta { id, min_len: u64::from_be_bytes(len), clean: b[16] != 0 })
    }
}

fn read_state(txn: &ReadTransaction) -> Result<(u64, Option<LogMeta>), StoreError> {
    let checkpoint = tables::read_meta_u64(txn, META_CHECKPOINT_SEQ)?.unwrap_or(0);
    let meta = match txn.open_table(tables::META) {
        Ok(t) => t.get(META_LOG)?.map(|v| LogMeta::decode(v.value())).transpose()?,
        Err(TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(e.into()),
    };
    Ok((checkpoint, meta))
}

/// Records in `txn` (a durable commit) that it holds every batch up to
/// `seq`, and what log the database expects from now on.
fn write_state(txn: &WriteTransaction, seq: u64, meta: LogMeta) -> Result<(), StoreError> {
    tables::write_meta_u64(txn, META_CHECKPOINT_SEQ, seq)?;
    let mut table = txn.open_table(tables::META)?;
    table.insert(META_LOG, meta.encode().as_slice())?;
    Ok(())
}

/// Marks the database in `txn` as needing no log: what the copy of a
/// backup is (taken right after a checkpoint). Databases without a log ID
/// are left alone.
pub(super) fn mark_clean(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut table = txn.open_table(tables::META)?;
    let meta = match table.get(META_LOG)? {
        Some(v) => LogMeta::decode(v.value())?,
        None => return Ok(()),
    };
    table.insert(META_LOG, LogMeta { clean: true, ..meta }.encode().as_slice())?;
    Ok(())
}

/// The open log file and where its end is.
pub(super) struct Wal {
    file: File,
    id: [u8; 8],
    /// Where the next record goes (the end of this round's records).
    end: u64,
    /// The file's size (records, then leftovers or preallocated zeros).
    allocated: u64,
    /// Sequence number of the last record written (or checkpointed).
    seq: u64,
}

/// Where the log was before an append, to take the record back.
#[derive(Clone, Copy)]
pub(super) struct Mark {
    end: u64,
    seq: u64,
}

impl Wal {
    /// Where the log is now (see [`Wal::unappend`]).
    pub(super) fn mark(&self) -> Mark {
        Mark { end: self.end, seq: self.seq }
    }

    /// Records in `txn`, a durable commit about to contain every logged
    /// batch, that it does, and what the file will look like once
    /// [`Wal::reset`] has run; `clean` when the server is stopping.
    pub(super) fn write_checkpoint(
        &self,
        txn: &WriteTransaction,
        clean: bool,
    ) -> Result<(), StoreError> {
        let min_len = if self.allocated > KEEP { GROW } else { self.allocated };
        write_state(txn, self.seq, LogMeta { id: self.id, min_len, clean })
    }

    /// Appends one batch's changes as the next record and makes it durable.
    /// `positions` is the range of stream positions the batch handed out.
    /// On failure the record's header is cleared again (best effort), so a
    /// record that was not acknowledged is not replayed.
    pub(super) fn append(
        &mut self,
        changes: &[u8],
        positions: (u64, u64),
    ) -> Result<(), StoreError> {
        let seq = self.seq + 1;
        let too_large = || StoreError::Db("write batch too large for the log".into());
        let raw_len = u32::try_from(changes.len()).map_err(|_| too_large())?;
        let packed = miniz_oxide::deflate::compress_to_vec(changes, 1);
        let mut body = Vec::with_capacity(4 + packed.len());
        body.extend_from_slice(&raw_len.to_le_bytes());
        body.extend_from_slice(&packed);
        let body_len = u32::try_from(body.len()).map_err(|_| too_large())?;
        let end = self.end + (RECORD_HEADER + body.len()) as u64;
        // Room for a record header after this record, so a file cut right
        // after it is shorter than the length this record states.
        let need = end + RECORD_HEADER as u64;
        if need > self.allocated {
            self.grow(need.next_multiple_of(GROW))?;
        }
        let mut rec = Vec::with_capacity(RECORD_HEADER + body.len());
        rec.extend_from_slice(&RECORD_MAGIC);
        rec.extend_from_slice(&self.id);
        rec.extend_from_slice(&seq.to_le_bytes());
        rec.extend_from_slice(&positions.0.to_le_bytes());
        rec.extend_from_slice(&positions.1.to_le_bytes());
        rec.extend_from_slice(&self.allocated.to_le_bytes());
        rec.extend_from_slice(&body_len.to_le_bytes());
        rec.extend_from_slice(&checksum(&[&body]));
        let head_sum = checksum(&[&rec]);
        rec.extend_from_slice(&head_sum);
        rec.extend_from_slice(&body);
        let written = self.file.write_all_at(&rec, self.end).and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Best effort: the record was never acknowledged either way.
            let _ = self.clear_header_at(self.end);
            return Err(e.into());
        }
        self.end = end;
        self.seq = seq;
        Ok(())
    }

    /// Takes back the records appended since `mark` (their batch could not
    /// be committed to redb, so it was not acknowledged and must not be
    /// replayed): the first one's header is cleared, which ends the log
    /// there.
    pub(super) fn unappend(&mut self, mark: Mark) -> Result<(), StoreError> {
        if self.end != mark.end {
            self.clear_header_at(mark.end)?;
        }
        self.end = mark.end;
        self.seq = mark.seq;
        Ok(())
    }

    fn clear_header_at(&self, at: u64) -> std::io::Result<()> {
        self.file.write_all_at(&[0; RECORD_HEADER], at)?;
        self.file.sync_data()
    }

    /// Empties the log after a durable commit that contains every record in
    /// it (it ran [`Wal::write_checkpoint`]): the next record goes right
    /// after the header. What follows it there is a leftover with a
    /// sequence number at or below the checkpoint's, which ends the log at
    /// recovery.
    pub(super) fn reset(&mut self) -> Result<(), StoreError> {
        if self.allocated > KEEP {
            self.file.set_len(GROW)?;
            self.file.sync_data()?;
            self.allocated = GROW;
        }
        self.end = FILE_HEADER;
        Ok(())
    }

    /// Grows the file to `size` with blocks reserved but not written (zeros
    /// when read), or sparse where the file system cannot reserve, and
    /// makes the new size durable before any record states it.
    fn grow(&mut self, size: u64) -> Result<(), StoreError> {
        use std::os::fd::AsRawFd;
        let len = libc::off_t::try_from(size)
            .map_err(|_| StoreError::Db("write-ahead log too large".into()))?;
        // SAFETY: plain syscall on a file descriptor this struct owns.
        let r = unsafe { libc::fallocate(self.file.as_raw_fd(), 0, 0, len) };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            if super::is_disk_full(&e) {
                return Err(e.into());
            }
            self.file.set_len(size)?;
        }
        self.file.sync_data()?;
        self.allocated = size;
        Ok(())
    }

    /// Creates a new, empty log for the database with ID `id` in place of
    /// whatever `dir` holds: written under a temporary name and renamed, so
    /// a crash leaves either the old file or the whole new one.
    fn create(dir: &Path, id: [u8; 8], seq: u64) -> Result<Wal, StoreError> {
        let path = dir.join(FILE_NAME);
        let tmp = dir.join(format!(".{FILE_NAME}.tmp"));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        let mut header = [0u8; FILE_HEADER as usize];
        header[..8].copy_from_slice(&FILE_MAGIC);
        header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        header[12..20].copy_from_slice(&id);
        let sum = checksum(&[&header[..20]]);
        header[20..28].copy_from_slice(&sum);
        file.write_all_at(&header, 0)?;
        let mut wal = Wal { file, id, end: FILE_HEADER, allocated: FILE_HEADER, seq };
        wal.grow(GROW)?;
        std::fs::rename(&tmp, &path)?;
        File::open(dir)?.sync_all()?;
        Ok(wal)
    }
}

/// The ID in a log file's header, if the header is whole and of this
/// layout.
fn header_id(bytes: &[u8]) -> Option<[u8; 8]> {
    let h = bytes.get(..28)?;
    if h[..8] != FILE_MAGIC || u32_at(h, 8) != FORMAT_VERSION || checksum(&[&h[..20]]) != h[20..28]
    {
        return None;
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&h[12..20]);
    Some(id)
}

/// A record of the log whose header and body verified.
#[derive(Debug, Clone, Copy)]
pub(super) struct Record<'a> {
    pub(super) seq: u64,
    /// The stream positions its batch handed out: `first..next`.
    pub(super) positions: (u64, u64),
    /// `raw_len | deflate(changes)`.
    packed: &'a [u8],
}

/// A record header that verified, at some offset.
struct Head {
    seq: u64,
    positions: (u64, u64),
    file_len: u64,
    body_len: usize,
    body_sum: [u8; 8],
}

/// The record header at `at` if it is one of log `id` and verifies.
fn head_at(bytes: &[u8], at: usize, id: &[u8; 8]) -> Option<Head> {
    let h = bytes.get(at..at.checked_add(RECORD_HEADER)?)?;
    if h[..4] != RECORD_MAGIC || h[4..12] != id[..] || checksum(&[&h[..56]]) != h[56..64] {
        return None;
    }
    let mut body_sum = [0u8; 8];
    body_sum.copy_from_slice(&h[48..56]);
    Some(Head {
        seq: u64_at(h, 12),
        positions: (u64_at(h, 20), u64_at(h, 28)),
        file_len: u64_at(h, 36),
        body_len: u32_at(h, 44) as usize,
        body_sum,
    })
}

/// The record at `at` with header `head`, if its body is whole and verifies.
fn body_at<'a>(bytes: &'a [u8], at: usize, head: &Head) -> Option<Record<'a>> {
    let start = at + RECORD_HEADER;
    let body = bytes.get(start..start.checked_add(head.body_len)?)?;
    (checksum(&[body]) == head.body_sum).then_some(Record {
        seq: head.seq,
        positions: head.positions,
        packed: body,
    })
}

/// Every verified record of log `id` found at or after `from`, with its
/// offset, in file order. The search looks for the record magic and the
/// ID, so its cost is a pass over the file plus a checksum per candidate.
fn records_from<'a>(
    bytes: &'a [u8],
    from: usize,
    id: &'a [u8; 8],
) -> impl Iterator<Item = (usize, Record<'a>)> + 'a {
    let mut pattern = [0u8; 12];
    pattern[..4].copy_from_slice(&RECORD_MAGIC);
    pattern[4..].copy_from_slice(id);
    let tail = bytes.get(from..).unwrap_or_default();
    tail.windows(pattern.len()).enumerate().filter(move |(_, w)| *w == pattern).filter_map(
        move |(i, _)| {
            let at = from + i;
            let head = head_at(bytes, at, id)?;
            body_at(bytes, at, &head).map(|r| (at, r))
        },
    )
}

/// The records after `checkpoint` in a log of `id` (whose header was
/// checked), in order, ending at a torn last record; or what is wrong with
/// the log (see the module doc). `min_len` is the length the last durable
/// commit says the file has at least.
fn parse<'a>(
    bytes: &'a [u8],
    id: &'a [u8; 8],
    checkpoint: u64,
    min_len: u64,
) -> Result<Vec<Record<'a>>, String> {
    let mut out: Vec<Record<'a>> = Vec::new();
    let mut at = FILE_HEADER as usize;
    let mut expect = checkpoint + 1;
    let mut expected_len = min_len;
    // Whether a record of this round starts where the good ones end.
    let mut next_started = false;
    while let Some(head) = head_at(bytes, at, id) {
        if head.seq < expect {
            // A leftover of an earlier round: nothing was written here since.
            break;
        }
        if head.seq > expect {
            return Err(format!(
                "is damaged: record {expect} is missing at byte {at}, where record {} stands \
                 instead",
                head.seq
            ));
        }
        expected_len = expected_len.max(head.file_len);
        let Some(rec) = body_at(bytes, at, &head) else {
            next_started = true;
            break;
        };
        out.push(rec);
        at += RECORD_HEADER + head.body_len;
        expect += 1;
    }
    if let Some((later_at, later)) = records_from(bytes, at + 1, id).find(|(_, r)| r.seq >= expect)
    {
        return Err(format!(
            "is damaged: the record at byte {at} (number {expect}) does not verify, yet intact \
             record {} follows at byte {later_at}",
            later.seq
        ));
    }
    let len = bytes.len() as u64;
    let header_fits = at + RECORD_HEADER <= bytes.len();
    if len < expected_len && (next_started || !header_fits) {
        return Err(format!(
            "was cut short: it is {len} bytes long, but its records say it was {expected_len}; \
             records after number {} may be lost",
            expect - 1
        ));
    }
    Ok(out)
}

/// Opens `dir/hearth.wal`, checks that it is the log `db` expects, applies
/// every record a crash left behind to `db` in one durable transaction
/// (which also notes that the log is in use), and returns the log, empty
/// and ready for appends. A log that is missing, foreign or damaged other
/// than by a torn last record is refused with [`StoreError::LogRefused`]
/// and left untouched.
pub(super) fn open_and_recover(dir: &Path, db: &Database) -> Result<Wal, StoreError> {
    let path = dir.join(FILE_NAME);
    let (checkpoint, meta) = read_state(&db.begin_read()?)?;
    let refuse = |problem: String| StoreError::LogRefused { path: path.clone(), problem };
    let bytes = match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    let Some(meta) = meta else {
        return adopt(dir, db, bytes.as_deref(), checkpoint).map_err(|e| match e {
            StoreError::Corrupt(problem) => refuse(problem),
            e => e,
        });
    };
    let Some(bytes) = bytes else {
        if meta.clean {
            tracing::info!("the write-ahead log was missing after a clean stop; made a new one");
            let wal = Wal::create(dir, meta.id, checkpoint)?;
            commit_state(db, &[], &wal)?;
            return Ok(wal);
        }
        return Err(refuse(
            "is missing, and the database was not stopped cleanly: the writes it held since the \
             last checkpoint are not in the database"
                .into(),
        ));
    };
    match header_id(&bytes) {
        None => {
            return Err(refuse("is not a Hearth write-ahead log, or its header is damaged".into()));
        }
        Some(id) if id != meta.id => {
            return Err(refuse(
                "belongs to another database (its ID is not the one this database expects)".into(),
            ));
        }
        Some(_) => {}
    }
    let records = parse(&bytes, &meta.id, checkpoint, meta.min_len).map_err(refuse)?;
    let file = std::fs::OpenOptions::new().read(true).write(true).open(&path)?;
    let seq = records.last().map_or(checkpoint, |r| r.seq);
    let mut wal = Wal { file, id: meta.id, end: FILE_HEADER, allocated: bytes.len() as u64, seq };
    commit_state(db, &records, &wal)?;
    if !records.is_empty() {
        tracing::warn!(
            "applied {} write batches from the write-ahead log (the server had stopped without \
             a checkpoint)",
            records.len()
        );
    }
    wal.reset()?;
    Ok(wal)
}

/// Applies `records` and notes the log's state (in use: not clean) in one
/// durable transaction.
fn commit_state(db: &Database, records: &[Record<'_>], wal: &Wal) -> Result<(), StoreError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate).map_err(|e| StoreError::Db(e.to_string()))?;
    for r in records {
        apply(&txn, &inflate(r.packed)?)?;
    }
    wal.write_checkpoint(&txn, false)?;
    txn.commit()?;
    Ok(())
}

/// A record's changes from its `raw_len | deflate(changes)` part.
fn inflate(packed: &[u8]) -> Result<Vec<u8>, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("write-ahead log record: {what}"));
    let (len, data) = packed.split_at_checked(4).ok_or_else(|| corrupt("no length"))?;
    let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
    let out = miniz_oxide::inflate::decompress_to_vec_with_limit(data, len)
        .map_err(|_| corrupt("does not inflate"))?;
    if out.len() != len {
        return Err(corrupt("inflates to the wrong length"));
    }
    Ok(out)
}

/// Applies one record's changes to `txn`.
fn apply(txn: &WriteTransaction, mut changes: &[u8]) -> Result<(), StoreError> {
    fn take<'b>(c: &mut &'b [u8], n: usize) -> Result<&'b [u8], StoreError> {
        if c.len() < n {
            return Err(StoreError::Corrupt("write-ahead log record is cut short".into()));
        }
        let (head, rest) = c.split_at(n);
        *c = rest;
        Ok(head)
    }
    fn take_bytes<'b>(c: &mut &'b [u8]) -> Result<&'b [u8], StoreError> {
        let n = take(c, 4)?;
        let n = u32::from_le_bytes([n[0], n[1], n[2], n[3]]) as usize;
        take(c, n)
    }
    while !changes.is_empty() {
        let head = take(&mut changes, 2)?;
        let (op, table) = (head[0], head[1]);
        let key = take_bytes(&mut changes)?;
        match op {
            OP_INSERT => {
                let value = take_bytes(&mut changes)?;
                tables::apply_logged(txn, table, key, Some(value))?;
            }
            OP_REMOVE => tables::apply_logged(txn, table, key, None)?,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "write-ahead log record has unknown change kind {other}"
                )));
            }
        }
    }
    Ok(())
}

mod legacy;
mod salvage;

use legacy::adopt;
pub use salvage::SalvageReport;
pub(super) use salvage::salvage;
#[cfg(test)]
mod tests;
