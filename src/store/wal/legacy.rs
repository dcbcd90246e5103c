//! Logs written before the log ID existed (a bare sequence of `len |
//! checksum | seq | body` records, no header): replayed once, then replaced
//! by a log of the current layout.

use super::*;

/// A database that does not know its log yet: new, or written by a Hearth
/// whose log had no ID. A log of that older layout is replayed (its
/// records stop at the first that does not verify, as they always did),
/// then replaced by a new log whose ID the database records. A log of the
/// new layout holding records the database has not seen is not its own
/// (refused as `Corrupt`, turned into `LogRefused` by the caller).
pub(super) fn adopt(
    dir: &Path,
    db: &Database,
    bytes: Option<&[u8]>,
    checkpoint: u64,
) -> Result<Wal, StoreError> {
    let mut seq = checkpoint;
    if let Some(bytes) = bytes {
        if let Some(id) = header_id(bytes) {
            if records_from(bytes, FILE_HEADER as usize, &id).any(|(_, r)| r.seq > checkpoint) {
                return Err(StoreError::Corrupt(
                    "holds writes, but the database expects no log: it belongs to another \
                     database (was hearth.redb replaced?)"
                        .into(),
                ));
            }
        } else {
            let records = parse_legacy(bytes, checkpoint);
            if let Some(last) = records.last() {
                seq = last.0;
                let mut txn = db.begin_write()?;
                txn.set_durability(Durability::Immediate)
                    .map_err(|e| StoreError::Db(e.to_string()))?;
                for (_, packed) in &records {
                    apply(&txn, &inflate(packed)?)?;
                }
                tables::write_meta_u64(&txn, META_CHECKPOINT_SEQ, seq)?;
                txn.commit()?;
                tracing::warn!(
                    "applied {} write batches from the write-ahead log (the server had stopped \
                     without a checkpoint)",
                    records.len()
                );
            }
        }
    }
    let mut id = [0u8; 8];
    getrandom::fill(&mut id)
        .map_err(|e| StoreError::Db(format!("no randomness for a log ID: {e}")))?;
    // The new log replaces the old one only once the old one's records are
    // durable in the database, and the database names the new log only
    // once it exists.
    let wal = Wal::create(dir, id, seq)?;
    commit_state(db, &[], &wal)?;
    Ok(wal)
}

/// The records after `checkpoint` of a log in the layout without an ID,
/// up to the first torn or out-of-sequence one.
pub(super) fn parse_legacy(bytes: &[u8], checkpoint: u64) -> Vec<(u64, &[u8])> {
    const HEADER: usize = 4 + 8;
    let mut out: Vec<(u64, &[u8])> = Vec::new();
    let mut at = 0usize;
    let mut prev: Option<u64> = None;
    while bytes.len() - at >= HEADER + 8 {
        let len = u32_at(bytes, at) as usize;
        if len < 12 || bytes.len() - at - HEADER < len {
            break;
        }
        let body = &bytes[at + HEADER..at + HEADER + len];
        if checksum(&[body]) != bytes[at + 4..at + HEADER] {
            break;
        }
        let seq = u64_at(body, 0);
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
