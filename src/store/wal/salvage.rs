//! `hearth doctor --salvage-wal`: applies every intact record of a log the
//! store refused, and says exactly what was lost.

use super::*;

/// What `hearth doctor --salvage-wal` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SalvageReport {
    /// Where the log was moved, untouched (None: there was no log).
    pub kept_as: Option<PathBuf>,
    /// The last batch the database held before the salvage.
    pub checkpoint_seq: u64,
    /// Batches applied from the log, as inclusive ranges of their numbers.
    pub applied: Vec<(u64, u64)>,
    /// Batches missing between the checkpoint and the last one found.
    pub lost: Vec<(u64, u64)>,
    /// The stream positions those batches had handed out (inclusive).
    pub lost_positions: Vec<(u64, u64)>,
    /// The first stream position after everything recovered: whether any
    /// acknowledged batch came later cannot be known from the file.
    pub next_position: u64,
}

/// `first..=last` runs of consecutive numbers.
pub(super) fn runs(seqs: impl Iterator<Item = u64>) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for s in seqs {
        match out.last_mut() {
            Some((_, last)) if *last + 1 == s => *last = s,
            _ => out.push((s, s)),
        }
    }
    out
}

/// Applies every intact record of the database's log that it lacks, in
/// order, whatever damage lies around them, and reports what was lost. The
/// log is kept, untouched, as `hearth.wal.damaged-<unix seconds>`; the
/// database is marked as needing no log, so the next start makes a new
/// one.
pub(in crate::store) fn salvage(dir: &Path, db: &Database) -> Result<SalvageReport, StoreError> {
    let path = dir.join(FILE_NAME);
    let (checkpoint, meta, next_position) = {
        let txn = db.begin_read()?;
        let (c, m) = read_state(&txn)?;
        (c, m, tables::read_meta_u64(&txn, tables::META_NEXT_POSITION)?.unwrap_or(1))
    };
    let mut report = SalvageReport {
        kept_as: None,
        checkpoint_seq: checkpoint,
        applied: Vec::new(),
        lost: Vec::new(),
        lost_positions: Vec::new(),
        next_position,
    };
    // Copied aside first, removed only once what it held is committed: a
    // crash on the way leaves the log where it was, or a database that
    // needs it no more.
    let bytes = if path.exists() {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let kept = dir.join(format!("{FILE_NAME}.damaged-{secs}"));
        std::fs::copy(&path, &kept)?;
        File::open(&kept)?.sync_all()?;
        report.kept_as = Some(kept);
        std::fs::read(&path)?
    } else {
        Vec::new()
    };
    // The database's idea of its log wins over the file's header, which
    // may be what is damaged.
    let id = match meta.map(|m| m.id).or_else(|| header_id(&bytes)) {
        Some(id) => id,
        // Neither knows an ID: a database from before the log had one,
        // whose log start-up replays as it always did.
        None => return Ok(report),
    };
    let mut records: Vec<Record<'_>> =
        records_from(&bytes, 0, &id).map(|(_, r)| r).filter(|r| r.seq > checkpoint).collect();
    records.sort_by_key(|r| r.seq);
    records.dedup_by_key(|r| r.seq);
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate).map_err(|e| StoreError::Db(e.to_string()))?;
    let (mut prev_seq, mut prev_end) = (checkpoint, next_position);
    for r in &records {
        apply(&txn, &inflate(r.packed)?)?;
        if r.seq > prev_seq + 1 {
            report.lost.push((prev_seq + 1, r.seq - 1));
            if r.positions.0 > prev_end {
                report.lost_positions.push((prev_end, r.positions.0 - 1));
            }
        }
        (prev_seq, prev_end) = (r.seq, r.positions.1.max(prev_end));
    }
    report.applied = runs(records.iter().map(|r| r.seq));
    report.next_position = prev_end;
    write_state(&txn, prev_seq, LogMeta { id, min_len: 0, clean: true })?;
    txn.commit()?;
    if report.kept_as.is_some() {
        std::fs::remove_file(&path)?;
        File::open(dir)?.sync_all()?;
    }
    Ok(report)
}
