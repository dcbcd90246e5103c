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
//! recording the sequence number of the last logged batch in `meta`; the
//! log is then emptied. Pages rewritten many times between two checkpoints
//! reach the disk once.
//!
//! The file is not truncated when it is emptied: appends start again at
//! its beginning, over the records of the previous round, and it is grown
//! by preallocating a MiB at a time. Overwriting blocks the file already
//! owns lets `fdatasync` flush just the data; appending would make every
//! fsync also commit the file system's journal (new size, new blocks).
//!
//! Recovery: redb comes back at its last durable commit. Records with a
//! sequence number above the one that commit recorded are applied again,
//! in order, in one durable transaction. The log is physical and every
//! change in it is a blind write of a whole value, so applying a record to
//! a state that already contains it changes nothing; the sequence check
//! only saves the work. Each record carries a checksum; the first record
//! that is torn (a crash during its append, never acknowledged) or does
//! not follow its predecessor (a leftover of an earlier round, or zeros)
//! ends the log.
//!
//! Record layout (little-endian):
//! `len: u32 | checksum: [u8; 8] | seq: u64 | raw_len: u32 | deflate(changes)`,
//! where `len` counts everything after the checksum, the checksum is the
//! first 8 bytes of blake3 over that, and `changes` (`raw_len` bytes before
//! compression) is a sequence of `op: u8 (1 insert, 2 remove) | table: u8 |
//! key_len: u32 | key | (insert only) value_len: u32 | value`. Deflate at
//! its fastest level shrinks chat traffic about five times (room and user
//! IDs, JSON keys and search terms repeat within a batch) for ~10 µs per
//! message of writer time.

use std::borrow::Borrow;
use std::cell::RefCell;
use std::fs::File;
use std::io::Read;
use std::ops::Deref;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use redb::{
    AccessGuard, Database, Durability, Key, ReadableDatabase, StorageError, Table, TableDefinition,
    TableError, TableHandle, Value, WriteTransaction,
};

use super::{StoreError, tables};

/// The log file's name in the data directory.
pub(super) const FILE_NAME: &str = "hearth.wal";

/// The `meta` key holding the sequence number of the last logged batch a
/// durable commit contains.
pub(super) const META_CHECKPOINT_SEQ: &str = "wal_checkpoint_seq";

const HEADER: usize = 4 + 8;
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

fn checksum(body: &[u8]) -> [u8; 8] {
    let mut c = [0u8; 8];
    c.copy_from_slice(&blake3::hash(body).as_bytes()[..8]);
    c
}

/// The open log file and where its end is.
pub(super) struct Wal {
    file: File,
    /// Bytes of valid records in the file.
    len: u64,
    /// The file's size (records, then leftovers or preallocated zeros).
    allocated: u64,
    /// Sequence number of the last record written (or checkpointed).
    seq: u64,
}

impl Wal {
    /// Sequence number of the newest logged batch.
    pub(super) fn seq(&self) -> u64 {
        self.seq
    }

    /// Bytes the log holds since the last checkpoint.
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// Appends one batch's changes as the next record and makes it durable.
    /// On failure the file is cut back to where it was, so a later append
    /// never follows a torn record.
    pub(super) fn append(&mut self, changes: &[u8]) -> Result<(), StoreError> {
        let seq = self.seq + 1;
        let raw_len = u32::try_from(changes.len())
            .map_err(|_| StoreError::Db("write batch too large for the log".into()))?;
        let packed = miniz_oxide::deflate::compress_to_vec(changes, 1);
        let body_len = 8 + 4 + packed.len();
        let len = u32::try_from(body_len)
            .map_err(|_| StoreError::Db("write batch too large for the log".into()))?;
        let mut rec = Vec::with_capacity(HEADER + body_len);
        rec.extend_from_slice(&len.to_le_bytes());
        rec.extend_from_slice(&[0; 8]);
        rec.extend_from_slice(&seq.to_le_bytes());
        rec.extend_from_slice(&raw_len.to_le_bytes());
        rec.extend_from_slice(&packed);
        let sum = checksum(&rec[HEADER..]);
        rec[4..HEADER].copy_from_slice(&sum);
        let end = self.len + rec.len() as u64;
        if end > self.allocated {
            self.preallocate(end.next_multiple_of(GROW));
        }
        let written = self.file.write_all_at(&rec, self.len).and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Best effort: the record was never acknowledged either way,
            // and nothing may follow a torn record.
            let _ = self.file.set_len(self.len);
            self.allocated = self.len;
            return Err(StoreError::Io(e));
        }
        self.len += rec.len() as u64;
        self.seq = seq;
        Ok(())
    }

    /// Takes back the record `append` just wrote (its batch could not be
    /// committed to redb, so it was not acknowledged and must not be
    /// replayed).
    pub(super) fn unappend(&mut self, len: u64, seq: u64) -> Result<(), StoreError> {
        self.file.set_len(len)?;
        self.file.sync_data()?;
        self.allocated = len;
        self.len = len;
        self.seq = seq;
        Ok(())
    }

    /// Empties the log after a durable commit that contains every record in
    /// it (that commit recorded `seq` in `meta`): the next record goes to
    /// the start of the file. What follows it there is a leftover with a
    /// sequence number at or below `seq`, which ends the log at recovery.
    pub(super) fn reset(&mut self) -> Result<(), StoreError> {
        if self.allocated > KEEP {
            self.file.set_len(0)?;
            self.file.sync_data()?;
            self.allocated = 0;
        }
        self.len = 0;
        Ok(())
    }

    /// Grows the file to `size` with blocks reserved but not written (zeros
    /// when read). Where the file system cannot, appends grow it instead.
    fn preallocate(&mut self, size: u64) {
        use std::os::fd::AsRawFd;
        let Ok(len) = libc::off_t::try_from(size) else { return };
        // SAFETY: plain syscall on a file descriptor this struct owns.
        let r = unsafe { libc::fallocate(self.file.as_raw_fd(), 0, 0, len) };
        if r == 0 {
            self.allocated = size;
        }
    }
}

/// Opens `dir/hearth.wal` (creating it), applies every record a crash left
/// behind to `db` in one durable transaction, and returns the log, empty
/// and ready for appends.
pub(super) fn open_and_recover(dir: &Path, db: &Database) -> Result<(Wal, u64), StoreError> {
    let path = dir.join(FILE_NAME);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)?;
    let checkpoint = {
        let txn = db.begin_read()?;
        tables::read_meta_u64(&txn, META_CHECKPOINT_SEQ)?.unwrap_or(0)
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let records = parse(&bytes, checkpoint);
    let mut seq = checkpoint;
    let replayed = records.len();
    if let Some(last) = records.last() {
        seq = last.0;
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate).map_err(|e| StoreError::Db(e.to_string()))?;
        for (_, packed) in &records {
            apply(&txn, &inflate(packed)?)?;
        }
        tables::write_meta_u64(&txn, META_CHECKPOINT_SEQ, seq)?;
        txn.commit()?;
    }
    if replayed > 0 {
        tracing::warn!(
            "applied {replayed} write batches from the write-ahead log (the server had stopped \
             without a checkpoint)"
        );
    }
    let mut wal = Wal { file, len: 0, allocated: bytes.len() as u64, seq };
    wal.reset()?;
    Ok((wal, seq))
}

/// The records after `checkpoint`, in order, up to the first torn or
/// out-of-sequence one.
fn parse(bytes: &[u8], checkpoint: u64) -> Vec<(u64, &[u8])> {
    let mut out: Vec<(u64, &[u8])> = Vec::new();
    let mut at = 0usize;
    let mut prev: Option<u64> = None;
    while bytes.len() - at >= HEADER + 8 {
        let len = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let len = len as usize;
        if len < 12 || bytes.len() - at - HEADER < len {
            break;
        }
        let body = &bytes[at + HEADER..at + HEADER + len];
        if checksum(body) != bytes[at + 4..at + HEADER] {
            break;
        }
        let mut s = [0u8; 8];
        s.copy_from_slice(&body[..8]);
        let seq = u64::from_le_bytes(s);
        if prev.is_some_and(|p| seq != p + 1) {
            break;
        }
        prev = Some(seq);
        if seq > checkpoint {
            out.push((seq, &body[8..]));
        }
        at += HEADER + len;
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, changes: &[u8]) -> Vec<u8> {
        let mut body = seq.to_le_bytes().to_vec();
        body.extend_from_slice(&(changes.len() as u32).to_le_bytes());
        body.extend_from_slice(&miniz_oxide::deflate::compress_to_vec(changes, 1));
        let mut rec = (body.len() as u32).to_le_bytes().to_vec();
        rec.extend_from_slice(&checksum(&body));
        rec.extend_from_slice(&body);
        rec
    }

    #[test]
    fn parse_skips_checkpointed_records_and_stops_at_a_gap_or_a_bad_checksum() {
        let mut log = Vec::new();
        for seq in 4..=7 {
            log.extend(record(seq, &[seq as u8; 3]));
        }
        let seqs = |log: &[u8], cp| parse(log, cp).iter().map(|r| r.0).collect::<Vec<_>>();
        assert_eq!(seqs(&log, 0), [4, 5, 6, 7]);
        assert_eq!(seqs(&log, 5), [6, 7]);
        assert_eq!(inflate(parse(&log, 5)[0].1).expect("inflates"), [6, 6, 6]);

        // Stale records after a gap in the sequence are not the log's.
        let mut gap = log.clone();
        gap.extend(record(3, b"old"));
        gap.extend(record(4, b"old"));
        assert_eq!(seqs(&gap, 0), [4, 5, 6, 7]);

        // A flipped bit ends the log at that record.
        let mut bad = log.clone();
        let second = record(4, &[4; 3]).len() + HEADER + 12;
        bad[second] ^= 1;
        assert_eq!(seqs(&bad, 0), [4]);

        // A length running past the end (a torn append) ends it too.
        assert_eq!(seqs(&log[..log.len() - 1], 0), [4, 5, 6]);
        assert!(parse(&[0xff; 40], 0).is_empty());
    }

    #[test]
    fn a_change_of_unknown_kind_or_cut_short_is_corruption() {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .expect("db");
        let txn = db.begin_write().expect("txn");
        tables::create_all(&txn).expect("tables");
        assert!(matches!(inflate(&[3, 0, 0, 0, 1, 2, 3]), Err(StoreError::Corrupt(_))));
        assert!(matches!(inflate(&[3, 0]), Err(StoreError::Corrupt(_))));
        assert!(matches!(apply(&txn, &[9, 1, 0, 0, 0, 0]), Err(StoreError::Corrupt(_))));
        assert!(matches!(
            apply(&txn, &[OP_INSERT, 1, 5, 0, 0, 0, b'k']),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            apply(&txn, &[OP_REMOVE, 250, 1, 0, 0, 0, b'k']),
            Err(StoreError::Corrupt(_))
        ));
    }
}
