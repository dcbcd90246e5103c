use super::legacy::parse_legacy;
use super::*;

const ID: [u8; 8] = *b"testlog1";

/// A log of `n` records after checkpoint `checkpoint`, as the writer
/// writes it, and the offsets where each record starts.
fn log(checkpoint: u64, n: u64) -> (Vec<u8>, Vec<usize>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = Wal::create(dir.path(), ID, checkpoint).expect("create");
    let mut starts = Vec::new();
    for i in 0..n {
        starts.push(wal.end as usize);
        let seq = checkpoint + 1 + i;
        wal.append(&[OP_REMOVE, 1, 1, 0, 0, 0, seq as u8], (seq * 10, seq * 10 + 3))
            .expect("append");
    }
    (std::fs::read(dir.path().join(FILE_NAME)).expect("read"), starts)
}

fn seqs(bytes: &[u8], checkpoint: u64, min_len: u64) -> Result<Vec<u64>, String> {
    parse(bytes, &ID, checkpoint, min_len).map(|r| r.iter().map(|r| r.seq).collect())
}

#[test]
fn the_records_after_the_checkpoint_replay_in_order() {
    let (bytes, _) = log(3, 4);
    assert_eq!(header_id(&bytes), Some(ID));
    assert_eq!(bytes.len() as u64, GROW, "preallocated");
    assert_eq!(seqs(&bytes, 3, GROW), Ok(vec![4, 5, 6, 7]));
    let recs = parse(&bytes, &ID, 3, 0).expect("parse");
    assert_eq!(recs[1].positions, (50, 53));
    assert_eq!(inflate(recs[1].packed).expect("inflates"), [OP_REMOVE, 1, 1, 0, 0, 0, 5]);
    // Records of an earlier round (at or below the checkpoint) are not replayed.
    assert_eq!(seqs(&bytes, 7, 0), Ok(vec![]));
    // Another log's records are not this one's.
    assert_eq!(parse(&bytes, b"otherlog", 3, 0).map(|r| r.len()), Ok(0));
}

#[test]
fn a_torn_last_record_ends_the_log() {
    let (mut bytes, starts) = log(0, 5);
    // The last append was cut short: its second half never reached
    // the disk (the preallocated zeros are still there).
    let end = starts[4] + RECORD_HEADER + 8;
    bytes[starts[4] + RECORD_HEADER..end].fill(0);
    assert_eq!(seqs(&bytes, 0, GROW), Ok(vec![1, 2, 3, 4]));
    // Or only part of its header did.
    let (mut bytes, starts) = log(0, 5);
    bytes[starts[4] + 20..starts[4] + RECORD_HEADER].fill(0);
    assert_eq!(seqs(&bytes, 0, GROW), Ok(vec![1, 2, 3, 4]));
}

#[test]
fn leftovers_of_an_earlier_round_after_the_last_record_end_the_log() {
    // Round one wrote 1..=6; the checkpoint took them; round two wrote
    // 7 and 8 over the first two.
    let (old, _) = log(0, 6);
    let (new, starts) = log(6, 2);
    let mut bytes = old.clone();
    bytes[..starts[1] + (starts[1] - starts[0])]
        .copy_from_slice(&new[..starts[1] + (starts[1] - starts[0])]);
    assert_eq!(seqs(&bytes, 6, GROW), Ok(vec![7, 8]));
}

#[test]
fn a_bad_record_followed_by_intact_ones_is_refused() {
    for victim in [0, 2] {
        let (mut bytes, starts) = log(0, 5);
        // A flipped byte in the body, then in the header.
        for offset in [RECORD_HEADER + 2, 14] {
            let mut b = bytes.clone();
            b[starts[victim] + offset] ^= 0x10;
            let e = seqs(&b, 0, GROW).expect_err("refused");
            assert!(e.contains("intact record"), "{e}");
        }
        // Zeros where it was (a lost block on the card).
        bytes[starts[victim]..starts[victim + 1]].fill(0);
        assert!(seqs(&bytes, 0, GROW).is_err());
    }
}

#[test]
fn a_log_cut_short_is_refused_unless_only_padding_went() {
    let (bytes, starts) = log(0, 5);
    // Through a record, at a record boundary, inside a header.
    for cut in [starts[3] + 70, starts[3], starts[3] + 10, starts[1] + 1] {
        let e = seqs(&bytes[..cut], 0, 0).expect_err("refused");
        assert!(e.contains("cut short"), "cut at {cut}: {e}");
    }
    // Cutting zeros after the last record loses nothing.
    let end = starts[4] + 200;
    assert_eq!(seqs(&bytes[..end], 0, 0), Ok(vec![1, 2, 3, 4, 5]));
    // No record survives, yet the checkpoint knew the file's length.
    let e = seqs(&bytes[..40], 5, GROW).expect_err("refused");
    assert!(e.contains("cut short"), "{e}");
}

#[test]
fn a_taken_back_record_is_not_replayed_and_is_overwritten() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut wal = Wal::create(dir.path(), ID, 0).expect("create");
    wal.append(b"", (1, 1)).expect("append");
    let mark = wal.mark();
    wal.append(b"", (1, 1)).expect("append");
    wal.unappend(mark).expect("unappend");
    let bytes = std::fs::read(dir.path().join(FILE_NAME)).expect("read");
    assert_eq!(seqs(&bytes, 0, GROW), Ok(vec![1]));
    wal.append(b"", (1, 1)).expect("append");
    let bytes = std::fs::read(dir.path().join(FILE_NAME)).expect("read");
    assert_eq!(seqs(&bytes, 0, GROW), Ok(vec![1, 2]));
}

/// A record of the log layout without an ID.
fn legacy_record(seq: u64, changes: &[u8]) -> Vec<u8> {
    let mut body = seq.to_le_bytes().to_vec();
    body.extend_from_slice(&(changes.len() as u32).to_le_bytes());
    body.extend_from_slice(&miniz_oxide::deflate::compress_to_vec(changes, 1));
    let mut rec = (body.len() as u32).to_le_bytes().to_vec();
    rec.extend_from_slice(&checksum(&[&body]));
    rec.extend_from_slice(&body);
    rec
}

#[test]
fn a_log_of_the_layout_without_an_id_is_replayed_then_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Database::create(dir.path().join("hearth.redb")).expect("db");
    let txn = db.begin_write().expect("txn");
    tables::create_all(&txn).expect("tables");
    tables::write_meta_u64(&txn, META_CHECKPOINT_SEQ, 7).expect("meta");
    txn.commit().expect("commit");
    // Batch 7 was checkpointed; 8 and 9 were only logged, then zeros.
    let insert = |key: &[u8]| {
        let mut c = vec![OP_INSERT, 1];
        put_bytes(&mut c, key);
        put_bytes(&mut c, b"v");
        c
    };
    let mut old = legacy_record(7, &insert(b"seven"));
    old.extend(legacy_record(8, &insert(b"eight")));
    old.extend(legacy_record(9, &insert(b"nine")));
    old.resize(GROW as usize, 0);
    std::fs::write(dir.path().join(FILE_NAME), &old).expect("write");

    let mut wal = open_and_recover(dir.path(), &db).expect("opens");
    let read = db.begin_read().expect("read");
    let meta = read.open_table(tables::META).expect("meta");
    assert!(meta.get("eight").expect("get").is_some() && meta.get("nine").expect("get").is_some());
    assert!(meta.get("seven").expect("get").is_none(), "checkpointed records are not replayed");
    let (checkpoint, log) = read_state(&read).expect("state");
    let log = log.expect("the database now knows its log");
    assert_eq!(checkpoint, 9);
    assert!(!log.clean);
    let bytes = std::fs::read(dir.path().join(FILE_NAME)).expect("read");
    assert_eq!(header_id(&bytes), Some(log.id), "the log was replaced by one of the new layout");
    // It carries on from there.
    wal.append(b"", (1, 1)).expect("append");
    let bytes = std::fs::read(dir.path().join(FILE_NAME)).expect("read");
    assert_eq!(parse(&bytes, &log.id, 9, 0).map(|r| r[0].seq), Ok(10));
}

#[test]
fn legacy_logs_stop_at_a_gap_or_a_bad_checksum() {
    let record = legacy_record;
    let mut log = Vec::new();
    for seq in 4..=7 {
        log.extend(record(seq, &[seq as u8; 3]));
    }
    let seqs = |log: &[u8], cp| parse_legacy(log, cp).iter().map(|r| r.0).collect::<Vec<_>>();
    assert_eq!(seqs(&log, 0), [4, 5, 6, 7]);
    assert_eq!(seqs(&log, 5), [6, 7]);
    assert_eq!(inflate(parse_legacy(&log, 5)[0].1).expect("inflates"), [6, 6, 6]);
    let mut gap = log.clone();
    gap.extend(record(3, b"old"));
    assert_eq!(seqs(&gap, 0), [4, 5, 6, 7]);
    assert_eq!(seqs(&log[..log.len() - 1], 0), [4, 5, 6]);
    assert!(parse_legacy(&[0xff; 40], 0).is_empty());
    assert_eq!(header_id(&log), None);
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
    assert!(matches!(apply(&txn, &[OP_INSERT, 1, 5, 0, 0, 0, b'k']), Err(StoreError::Corrupt(_))));
    assert!(matches!(
        apply(&txn, &[OP_REMOVE, 250, 1, 0, 0, 0, b'k']),
        Err(StoreError::Corrupt(_))
    ));
}
