//! Store tests: group commit, refusal isolation, persistence, schema checks.

use super::*;

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), 1 << 20, None).expect("open");
    (dir, store)
}

fn user(created_ms: u64) -> UserRecord {
    UserRecord { created_ms, ..UserRecord::default() }
}

#[test]
fn a_refused_operation_leaves_its_batch_mates_committed() {
    let (_dir, store) = temp_store();
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    rt.block_on(async {
        let ok = store.write(|ctx| {
            ctx.put_user("alice", &user(1))?;
            Ok(Ok::<_, StoreError>(()))
        });
        let refused = store.write(|_ctx| Ok(Err::<(), _>(StoreError::Corrupt("refused".into()))));
        let ok2 = store.write(|ctx| {
            ctx.put_user("bob", &user(2))?;
            Ok(Ok::<_, StoreError>(()))
        });
        let (a, b, c) = tokio::join!(ok, refused, ok2);
        assert!(a.is_ok() && c.is_ok());
        assert!(matches!(b, Err(StoreError::Corrupt(_))));
    });
    let read = store.read().expect("read");
    assert!(read.user("alice").expect("get").is_some());
    assert!(read.user("bob").expect("get").is_some());
}

#[test]
fn stream_positions_survive_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = {
        let store = Store::open(dir.path(), 1 << 20, None).expect("open");
        let p = store
            .write_blocking(|ctx| Ok(Ok::<_, StoreError>(ctx.next_position())))
            .expect("write");
        assert_eq!(store.current_position(), p);
        store.shutdown();
        p
    };
    let store = Store::open(dir.path(), 1 << 20, None).expect("reopen");
    assert_eq!(store.current_position(), first);
    let next =
        store.write_blocking(|ctx| Ok(Ok::<_, StoreError>(ctx.next_position()))).expect("write");
    assert!(next > first);
}

#[test]
fn a_second_open_of_the_same_directory_is_refused_as_locked() {
    let (dir, _store) = temp_store();
    match Store::open(dir.path(), 1 << 20, None) {
        Err(StoreError::Locked(_)) => {}
        Err(e) => panic!("expected Locked, got {e}"),
        Ok(_) => panic!("expected Locked, got a second store"),
    }
}

#[test]
fn a_database_from_a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(dir.path(), 1 << 20, None).expect("open");
        store
            .write_blocking(|ctx| {
                ctx.set_meta(
                    tables::META_SCHEMA_VERSION,
                    &u64::from(SCHEMA_VERSION + 1).to_be_bytes(),
                )?;
                Ok(Ok::<_, StoreError>(()))
            })
            .expect("write");
        store.shutdown();
    }
    match Store::open(dir.path(), 1 << 20, None) {
        Err(StoreError::NewerSchema { found, known }) => {
            assert_eq!(found, SCHEMA_VERSION + 1);
            assert_eq!(known, SCHEMA_VERSION);
        }
        Err(e) => panic!("expected NewerSchema, got {e}"),
        Ok(_) => panic!("expected NewerSchema, got a store"),
    }
}

#[test]
fn deleting_a_device_removes_exactly_its_tokens() {
    let (_dir, store) = temp_store();
    let record = token;
    store
        .write_blocking(move |ctx| {
            ctx.put_device("alice", &did("A"), &DeviceRecord::default())?;
            ctx.put_device("alice", &did("AB"), &DeviceRecord::default())?;
            ctx.put_token(&hash_token("t1"), &record("A"))?;
            ctx.put_token(&hash_token("t2"), &record("A"))?;
            ctx.put_token(&hash_token("t3"), &record("AB"))?;
            Ok(Ok::<_, StoreError>(()))
        })
        .expect("write");
    let existed = store
        .write_blocking(|ctx| Ok(Ok::<_, StoreError>(ctx.delete_device("alice", &did("A"))?)))
        .expect("delete");
    assert!(existed);
    let read = store.read().expect("read");
    assert!(read.token(&hash_token("t1")).expect("get").is_none());
    assert!(read.token(&hash_token("t2")).expect("get").is_none());
    assert!(read.token(&hash_token("t3")).expect("get").is_some());
    assert_eq!(read.devices("alice").expect("list").len(), 1);
}

#[test]
fn tables_added_later_are_created_when_an_existing_file_opens() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(dir.path(), 1 << 20, None).expect("open");
        store.shutdown();
    }
    // Simulate a file written before a table existed.
    {
        let db = Database::create(dir.path().join("hearth.redb")).expect("db");
        let txn = db.begin_write().expect("txn");
        txn.delete_table(tables::REPORT_TO_JSON).expect("delete");
        txn.commit().expect("commit");
    }
    let store = Store::open(dir.path(), 1 << 20, None).expect("reopen");
    assert!(store.read().expect("read").reports().expect("table exists again").is_empty());
}

/// Copies the database and (optionally) the write-ahead log as they are on
/// disk right now, without stopping the store: what a power cut leaves.
fn crash_copy(from: &Path, with_log: bool) -> tempfile::TempDir {
    let to = tempfile::tempdir().expect("tempdir");
    std::fs::copy(from.join("hearth.redb"), to.path().join("hearth.redb")).expect("copy db");
    if with_log {
        std::fs::copy(from.join(wal::FILE_NAME), to.path().join(wal::FILE_NAME)).expect("copy log");
    }
    to
}

/// A `meta` value (`meta` is Some) or a user record, read straight from
/// the redb file in `dir` without its log (what a crash leaves in it).
fn raw_meta_or_user(dir: &Path, meta: Option<&str>, user: &str) -> Option<Vec<u8>> {
    let db = Database::open(dir.join("hearth.redb")).expect("db");
    let txn = db.begin_read().expect("read");
    match meta {
        Some(key) => {
            let t = txn.open_table(tables::META).expect("table");
            redb::ReadableTable::get(&t, key).expect("get").map(|v| v.value().to_vec())
        }
        None => {
            let t = txn.open_table(tables::USER_LOCALPART_TO_RECORD).expect("table");
            redb::ReadableTable::get(&t, user).expect("get").map(|v| v.value().to_vec())
        }
    }
}

fn token(device: &str) -> TokenRecord {
    TokenRecord {
        kind: TokenKind::Access,
        localpart: "alice".into(),
        device_id: device.into(),
        expires_ms: None,
        pair: None,
        parent: None,
    }
}

#[test]
fn acknowledged_batches_come_back_from_the_log_after_a_crash() {
    let (dir, store) = temp_store();
    store
        .write_blocking(|ctx| {
            ctx.put_device("alice", &did("A"), &DeviceRecord::default())?;
            ctx.put_token(&hash_token("gone"), &token("A"))?;
            Ok(Ok::<_, StoreError>(()))
        })
        .expect("write");
    for i in 0..40u64 {
        store
            .write_blocking(move |ctx| {
                ctx.put_user(&format!("u{i}"), &user(i))?;
                Ok(Ok::<_, StoreError>(()))
            })
            .expect("write");
    }
    // A removal is logged too.
    store
        .write_blocking(|ctx| Ok(Ok::<_, StoreError>(ctx.delete_device("alice", &did("A"))?)))
        .expect("delete");
    let position = store.current_position();

    // redb alone holds none of it yet: only the log makes it durable, and
    // without it the copy does not open.
    let without_log = crash_copy(dir.path(), false);
    assert!(raw_meta_or_user(without_log.path(), None, "u39").is_none());
    match Store::open(without_log.path(), 1 << 20, None) {
        Err(StoreError::LogRefused { problem, .. }) => assert!(problem.contains("missing")),
        other => panic!("a missing log must be refused, got {:?}", other.map(|_| ())),
    }

    let crashed = crash_copy(dir.path(), true);
    let recovered = Store::open(crashed.path(), 1 << 20, None).expect("open crashed copy");
    let read = recovered.read().expect("read");
    for i in 0..40u64 {
        let u = read.user(&format!("u{i}")).expect("get").expect("acknowledged user is back");
        assert_eq!(u.created_ms, i);
    }
    assert!(read.token(&hash_token("gone")).expect("get").is_none());
    assert!(read.devices("alice").expect("list").is_empty());
    assert_eq!(recovered.current_position(), position);
    // The log was applied; the store carries on writing, over it.
    recovered
        .write_blocking(|ctx| {
            ctx.put_user("after", &user(99))?;
            Ok(Ok::<_, StoreError>(()))
        })
        .expect("write after recovery");
    drop(read);
    recovered.shutdown();
    drop(recovered);
    store.shutdown();
    let reopened = Store::open(crashed.path(), 1 << 20, None).expect("reopen");
    assert!(reopened.read().expect("read").user("after").expect("get").is_some());
    assert!(reopened.read().expect("read").user("u0").expect("get").is_some());
}

#[test]
fn a_torn_last_record_is_dropped_and_the_rest_replayed() {
    let (dir, store) = temp_store();
    for name in ["one", "two", "three"] {
        store
            .write_blocking(move |ctx| {
                ctx.put_user(name, &user(1))?;
                Ok(Ok::<_, StoreError>(()))
            })
            .expect("write");
    }
    let crashed = crash_copy(dir.path(), true);
    store.shutdown();
    // The append of "three" was cut short by the crash: the end of its
    // body never reached the disk (the preallocated zeros are still there).
    let log = crashed.path().join(wal::FILE_NAME);
    let mut bytes = std::fs::read(&log).expect("log");
    let mut end = 64;
    for _ in 0..3 {
        let body = u32::from_le_bytes(bytes[end + 44..end + 48].try_into().expect("4 bytes"));
        end += 64 + body as usize;
    }
    bytes[end - 3..end].fill(0);
    std::fs::write(&log, &bytes).expect("tear");
    let recovered = Store::open(crashed.path(), 1 << 20, None).expect("open");
    let read = recovered.read().expect("read");
    assert!(read.user("one").expect("get").is_some());
    assert!(read.user("two").expect("get").is_some());
    assert!(read.user("three").expect("get").is_none());
}

#[test]
fn a_clean_stop_checkpoints_and_leaves_the_log_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), 1 << 20, None).expect("open");
    store
        .write_blocking(|ctx| {
            ctx.put_user("alice", &user(1))?;
            Ok(Ok::<_, StoreError>(()))
        })
        .expect("write");
    store.shutdown();
    drop(store);
    // redb's own file holds it (the log's record is a leftover now).
    let db = Database::open(dir.path().join("hearth.redb")).expect("db");
    let txn = db.begin_read().expect("read");
    let users = txn.open_table(tables::USER_LOCALPART_TO_RECORD).expect("table");
    assert!(redb::ReadableTable::get(&users, "alice").expect("get").is_some());
}

#[test]
fn common_notifications_are_one_row_and_rows_of_earlier_layouts_still_read() {
    let (_dir, store) = temp_store();
    let common = br#"["notify",{"set_tweak":"sound","value":"default"}]"#;
    let custom = br#"["notify",{"set_tweak":"sound","value":"bell.ogg"}]"#;
    let (r1, r2) = store
        .write_blocking(move |ctx| {
            let r1 = ctx.create_room_record("!r:hs", "12", false)?;
            let r2 = ctx.create_room_record("!s:hs", "12", false)?;
            ctx.put_notification(&uid("@a:hs"), r1, StreamPos(10), false, common, 1000)?;
            ctx.put_notification(&uid("@a:hs"), r2, StreamPos(11), true, custom, 1001)?;
            ctx.put_notification(&uid("@a:hs"), r1, StreamPos(12), true, common, 1002)?;
            ctx.put_notification(&uid("@b:hs"), r1, StreamPos(13), false, common, 1003)?;
            // Rows as earlier versions wrote them: a mark without an action
            // code beside a JSON row, and beside a row with a one-byte code.
            let legacy = br#"{"room_id":"!s:hs","event_id":"$e","actions":["notify"],"ts":999}"#;
            let mut coded = vec![1];
            coded.extend_from_slice(&r1.0.to_le_bytes());
            coded.extend_from_slice(&998u64.to_le_bytes());
            coded.push(4);
            let mut marks = ctx.txn.open_table(tables::USER_ROOM_STREAM_TO_HIGHLIGHT)?;
            marks.insert(("@a:hs", r2.0, 9), 0)?;
            marks.insert(("@a:hs", r1.0, 8), 1)?;
            drop(marks);
            let mut side = ctx.txn.open_table(tables::USER_STREAM_TO_NOTIFICATION)?;
            side.insert(("@a:hs", 9), legacy.as_slice())?;
            side.insert(("@a:hs", 8), coded.as_slice())?;
            Ok(Ok::<_, StoreError>((r1, r2)))
        })
        .expect("write");
    let read = store.read().expect("read");
    // Only the uncommon action list (and the legacy rows) took a second row.
    let side = read.0.open_table(tables::USER_STREAM_TO_NOTIFICATION).expect("table");
    let side_rows: Vec<u64> = redb::ReadableTable::iter(&side)
        .expect("iter")
        .map(|r| r.expect("row").0.value().1)
        .collect();
    assert_eq!(side_rows, [8, 9, 11]);
    let rows = read.notification_rows(&uid("@a:hs"), StreamPos(u64::MAX), 10).expect("rows");
    let got: Vec<(u64, u64, Option<u64>, Vec<u8>)> =
        rows.into_iter().map(|(p, r)| (p.0, r.room.0, r.ts, r.actions)).collect();
    let highlight = br#"["notify",{"set_tweak":"highlight"}]"#;
    assert_eq!(
        got,
        [
            (12, r1.0, None, common.to_vec()),
            (11, r2.0, Some(1001), custom.to_vec()),
            (10, r1.0, None, common.to_vec()),
            (9, r2.0, Some(999), br#"["notify"]"#.to_vec()),
            (8, r1.0, Some(998), highlight.to_vec()),
        ]
    );
    // Paging: before a position, at most `limit`, across rooms.
    let page = read.notification_rows(&uid("@a:hs"), StreamPos(11), 2).expect("rows");
    assert_eq!(page.iter().map(|(p, _)| p.0).collect::<Vec<_>>(), [10, 9]);
    // Counts read the highlight bit under the action code.
    assert_eq!(read.unread_counts(&uid("@a:hs"), r1, StreamPos(0)).expect("counts"), (3, 2));
    assert_eq!(read.unread_counts(&uid("@a:hs"), r1, StreamPos(10)).expect("counts"), (1, 1));
}

#[test]
fn a_restore_drops_the_log_of_the_database_it_replaces() {
    let (dir, store) = temp_store();
    let put = |name: &'static str| {
        store
            .write_blocking(move |ctx| {
                ctx.put_user(name, &user(1))?;
                Ok(Ok::<_, StoreError>(()))
            })
            .expect("write")
    };
    put("in-backup");
    let backup = tempfile::tempdir().expect("tempdir");
    store.backup_to(&backup.path().join("hearth.redb")).expect("backup");
    put("after-backup");
    // The server dies with "after-backup" only in its log, then the backup
    // is restored.
    let crashed = crash_copy(dir.path(), true);
    store.shutdown();
    Store::restore_from(&backup.path().join("hearth.redb"), crashed.path()).expect("restore");
    let restored = Store::open(crashed.path(), 1 << 20, None).expect("open");
    let read = restored.read().expect("read");
    assert!(read.user("in-backup").expect("get").is_some());
    assert!(read.user("after-backup").expect("get").is_none());
}

#[test]
fn the_log_is_checkpointed_once_its_changes_outgrow_a_third_of_the_cache() {
    let (dir, store) = temp_store();
    let put = |i: u8| {
        let mut value = vec![0u8; 400 << 10];
        getrandom::fill(&mut value).expect("random");
        store
            .write_blocking(move |ctx| {
                ctx.set_meta(&format!("big{i}"), &value)?;
                Ok(Ok::<_, StoreError>(()))
            })
            .expect("write");
    };
    // What redb's file alone holds (the log left out), as after a crash.
    let in_db = |key: &str| {
        let copy = crash_copy(dir.path(), false);
        raw_meta_or_user(copy.path(), Some(key), "").is_some()
    };
    // 1 MiB of cache: the limit is the 1 MiB minimum. Batches 0-2 are
    // logged (1.2 MiB of changes), batch 3 is committed durably instead.
    for i in 0..3 {
        put(i);
    }
    assert!(!in_db("big0"), "logged batches are not in redb's file yet");
    put(3);
    assert!(in_db("big0") && in_db("big3"), "the checkpoint wrote everything");
}

#[test]
fn records_of_an_earlier_round_left_in_the_log_are_not_replayed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let put = |store: &Store, created: u64| {
        store
            .write_blocking(move |ctx| {
                ctx.put_user("x", &user(created))?;
                Ok(Ok::<_, StoreError>(()))
            })
            .expect("write");
    };
    {
        let store = Store::open(dir.path(), 1 << 20, None).expect("open");
        for created in 1..=3 {
            put(&store, created);
        }
        store.shutdown(); // checkpoint: the three records stay in the file
    }
    let store = Store::open(dir.path(), 1 << 20, None).expect("reopen");
    put(&store, 4); // written over the first old record
    let crashed = crash_copy(dir.path(), true);
    store.shutdown();
    let recovered = Store::open(crashed.path(), 1 << 20, None).expect("open crashed copy");
    let x = recovered.read().expect("read").user("x").expect("get").expect("x");
    assert_eq!(x.created_ms, 4, "an old record after the new one was applied again");
}

#[test]
fn a_schema_1_file_is_migrated_to_stream_keyed_events() {
    use tables::{V1_EVENT_ID_TO_POSITION, V1_ROOM_STREAM_TO_EVENT, V1_ROOM_STREAM_TO_PDU_FIELDS};
    let dir = tempfile::tempdir().expect("tempdir");
    // A schema-1 file as that server left it: two rooms whose events
    // interleave in stream order.
    {
        let db = Database::create(dir.path().join("hearth.redb")).expect("create");
        let txn = db.begin_write().expect("txn");
        {
            let mut events = txn.open_table(V1_ROOM_STREAM_TO_EVENT).expect("table");
            let mut pdus = txn.open_table(V1_ROOM_STREAM_TO_PDU_FIELDS).expect("table");
            let mut ids = txn.open_table(V1_EVENT_ID_TO_POSITION).expect("table");
            for stream in 1..=6u64 {
                let room = 2 - stream % 2;
                let json = format!("{{\"event_id\":\"$e{stream}\"}}");
                events.insert((room, stream), json.as_bytes()).expect("insert");
                pdus.insert((room, stream), format!("{{\"depth\":{stream}}}").as_bytes())
                    .expect("insert");
                ids.insert(format!("$e{stream}").as_str(), (room, stream)).expect("insert");
            }
        }
        tables::write_meta_u64(&txn, tables::META_SCHEMA_VERSION, 1).expect("meta");
        tables::write_meta_u64(&txn, tables::META_NEXT_POSITION, 7).expect("meta");
        txn.commit().expect("commit");
    }
    let store = Store::open(dir.path(), 1 << 20, None).expect("open migrates");
    let read = store.read().expect("read");
    assert_eq!(read.schema_version().expect("version"), Some(u64::from(SCHEMA_VERSION)));
    let (r2, r1) = (RoomShort(2), RoomShort(1));
    let (evs, limited) = read.events_after(r2, StreamPos(0), StreamPos(6), 10).expect("events");
    assert!(!limited);
    assert_eq!(evs.iter().map(|e| e.stream.0).collect::<Vec<_>>(), [2, 4, 6]);
    assert_eq!(evs[1].json, br#"{"event_id":"$e4"}"#);
    let back = read.events_before(r1, StreamPos(6), 10).expect("events");
    assert_eq!(back.iter().map(|e| e.stream.0).collect::<Vec<_>>(), [5, 3, 1]);
    assert_eq!(read.latest_event(r1).expect("latest").map(|e| e.stream.0), Some(5));
    assert_eq!(read.event_position("$e3").expect("pos"), Some((r1, StreamPos(3))));
    assert_eq!(read.event_position("$e9").expect("pos"), None);
    assert_eq!(
        read.pdu_fields(r2, StreamPos(4)).expect("pdu").as_deref(),
        Some(&br#"{"depth":4}"#[..])
    );
    // The old tables are gone.
    let names: Vec<String> = read
        .0
        .list_tables()
        .expect("list")
        .map(|t| redb::TableHandle::name(&t).to_owned())
        .collect();
    assert!(names.contains(&"stream_to_event".to_owned()), "{names:?}");
    assert!(
        !names.iter().any(|n| n == "room_stream_to_event" || n == "event_id_to_position"),
        "{names:?}"
    );
}

#[test]
fn a_schema_2_file_keeps_its_transaction_ids_and_event_ids() {
    use tables::{
        ROOM_ID_TO_RECORD, ROOM_STREAM_TO_UNIT, STREAM_TO_EVENT, V2_EVENT_HASH_TO_POSITION,
        V2_TXN_TO_EVENT_ID, event_hash,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = Database::create(dir.path().join("hearth.redb")).expect("create");
        let txn = db.begin_write().expect("txn");
        {
            let mut rooms = txn.open_table(ROOM_ID_TO_RECORD).expect("table");
            rooms.insert("!r:hs", br#"{"short":5,"version":"10"}"#.as_slice()).expect("insert");
            let mut events = txn.open_table(STREAM_TO_EVENT).expect("table");
            let mut timeline = txn.open_table(ROOM_STREAM_TO_UNIT).expect("table");
            let mut ids = txn.open_table(V2_EVENT_HASH_TO_POSITION).expect("table");
            // Positions in two epochs of the new index (its oldest and a
            // later one).
            for (stream, id) in [(7u64, "$sent"), (8, "$redaction"), (50_000, "$late")] {
                let json = format!("{{\"event_id\":\"{id}\"}}");
                events.insert(stream, json.as_bytes()).expect("insert");
                timeline.insert((5, stream), ()).expect("insert");
                ids.insert(event_hash(id), (5, stream)).expect("insert");
            }
            let mut txns = txn.open_table(V2_TXN_TO_EVENT_ID).expect("table");
            for (scope, txn_id, event_id) in [
                ("send/!r:hs/m.room.message", "t1", "$sent"),
                ("redact/!r:hs/$sent", "t2", "$redaction"),
                ("sendToDevice/m.room_key_request", "t3", ""),
                ("send/!r:hs/m.room.message", "t4", "$never-stored"),
                ("send/!gone:hs/m.room.message", "t5", "$sent"),
            ] {
                txns.insert(("@a:hs", "DEV", scope, txn_id), event_id).expect("insert");
            }
        }
        tables::write_meta_u64(&txn, tables::META_SCHEMA_VERSION, 2).expect("meta");
        tables::write_meta_u64(&txn, tables::META_NEXT_POSITION, 50_001).expect("meta");
        txn.commit().expect("commit");
    }
    let store = Store::open(dir.path(), 1 << 20, None).expect("open migrates");
    let read = store.read().expect("read");
    assert_eq!(read.schema_version().expect("version"), Some(u64::from(SCHEMA_VERSION)));
    let at = |id: &str| read.event_position(id).expect("read");
    assert_eq!(at("$sent"), Some((RoomShort(5), StreamPos(7))));
    assert_eq!(at("$late"), Some((RoomShort(5), StreamPos(50_000))));
    assert_eq!(at("$unknown"), None);
    let found = store
        .write_blocking(|ctx| {
            let pos = |scope: &str, t: &str| ctx.txn_position(&uid("@a:hs"), &did("DEV"), scope, t);
            let got = [
                pos("s5/m.room.message", "t1")?,
                pos("r5/$sent", "t2")?,
                pos("d/m.room_key_request", "t3")?,
                pos("s5/m.room.message", "t4")?,
                pos("s5/m.room.message", "t5")?,
                pos("s5/m.room.message", "t2")?,
            ];
            Ok(Ok::<_, StoreError>(got))
        })
        .expect("read");
    let room = RoomShort(5);
    assert_eq!(found[0], Some((room, StreamPos(7))));
    assert_eq!(found[1], Some((room, StreamPos(8))));
    assert_eq!(found[2], Some((RoomShort(0), StreamPos(0))));
    assert_eq!(found[3], None, "event unknown: dropped");
    assert_eq!(found[4], None, "room unknown: dropped");
    assert_eq!(found[5], None, "scopes stay apart");
    let names: Vec<String> = read
        .0
        .list_tables()
        .expect("list")
        .map(|t| redb::TableHandle::name(&t).to_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n == "txn_to_event_id" || n == "event_hash_to_position"),
        "{names:?}"
    );
}

#[test]
fn event_ids_are_found_in_every_epoch() {
    let (_dir, store) = temp_store();
    let positions =
        [1, tables::EPOCH_POSITIONS - 1, tables::EPOCH_POSITIONS, 5 * tables::EPOCH_POSITIONS + 3];
    store
        .write_blocking(move |ctx| {
            let room = ctx.create_room_record("!r:hs", "12", false)?;
            for p in positions {
                let json = format!("{{\"event_id\":\"$e{p}\"}}");
                ctx.put_event(
                    room,
                    StreamPos(p),
                    &format!("$e{p}"),
                    json.as_bytes(),
                    b"{}",
                    None,
                    None,
                )?;
            }
            Ok(Ok::<_, StoreError>(()))
        })
        .expect("write");
    let read = store.read().expect("read");
    for p in positions {
        let found = read.event_position(&format!("$e{p}")).expect("read").map(|(_, s)| s.0);
        assert_eq!(found, Some(p));
    }
    assert_eq!(read.event_position("$e2").expect("read"), None);
}

#[test]
fn transaction_ids_are_remembered_for_the_kept_epochs_then_forgotten() {
    use tables::{TXN_EPOCH_POSITIONS, TXN_EPOCHS_KEPT, TXN_TO_POSITION};
    let (_dir, store) = temp_store();
    let room = RoomShort(1);
    // Moves the stream on by whole epochs (positions are only counted).
    let advance = |epochs: u64| {
        store
            .write_blocking(move |ctx| {
                for _ in 0..epochs * TXN_EPOCH_POSITIONS {
                    ctx.next_position();
                }
                Ok(Ok::<_, StoreError>(()))
            })
            .expect("advance")
    };
    let put = |txn: &'static str, stream: u64| {
        store
            .write_blocking(move |ctx| {
                ctx.put_txn(
                    &uid("@a:hs"),
                    &did("DEV"),
                    "s1/m.room.message",
                    txn,
                    (room, StreamPos(stream)),
                )?;
                Ok(Ok::<_, StoreError>(()))
            })
            .expect("put")
    };
    let lookup = |txn: &'static str| {
        store
            .write_blocking(move |ctx| {
                Ok(Ok::<_, StoreError>(ctx.txn_position(
                    &uid("@a:hs"),
                    &did("DEV"),
                    "s1/m.room.message",
                    txn,
                )?))
            })
            .expect("lookup")
    };
    let rows = || {
        let read = store.read().expect("read");
        let t = read.0.open_table(TXN_TO_POSITION).expect("table");
        redb::ReadableTableMetadata::len(&t).expect("len")
    };
    put("old-1", 10);
    put("old-2", 11);
    advance(TXN_EPOCHS_KEPT - 1);
    assert_eq!(lookup("old-1"), Some((room, StreamPos(10))), "still in the window");
    put("new", 12);
    assert_eq!(rows(), 3, "nothing old enough to forget yet");
    advance(1);
    assert_eq!(lookup("old-1"), None, "its epoch left the window");
    assert_eq!(lookup("new"), Some((room, StreamPos(12))));
    put("newer", 13);
    assert_eq!(rows(), 2, "the next write forgot the two old rows");
    assert_eq!(lookup("newer"), Some((room, StreamPos(13))));
}

#[test]
fn an_operation_refused_midway_answers_with_its_own_error_and_writes_nothing() {
    let (_dir, store) = temp_store();
    let answer = store.write_blocking(|ctx| {
        ctx.put_user("carol", &user(3))?;
        Err::<Result<(), crate::error::MatrixError>, _>(StoreError::refused(
            crate::error::MatrixError::new(crate::error::ErrorKind::TooLarge, "event too large"),
        ))
    });
    match answer {
        Err(e) => {
            assert_eq!(e.kind, crate::error::ErrorKind::TooLarge);
            assert_eq!(e.message, "event too large");
        }
        Ok(()) => panic!("a refused operation was acknowledged"),
    }
    assert!(store.read().expect("read").user("carol").expect("get").is_none());
}

#[test]
fn a_to_device_inbox_usage_follows_its_messages_and_an_untracked_inbox_is_counted() {
    use redb::ReadableTable;

    let (_dir, store) = temp_store();
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    rt.block_on(async {
        let usage = store
            .write(|ctx| {
                let before = ctx.to_device_usage(&uid("@a:x"), &did("D"))?;
                let p1 = ctx.put_to_device(&uid("@a:x"), &did("D"), b"12345")?;
                ctx.put_to_device(&uid("@a:x"), &did("D"), b"123")?;
                ctx.put_to_device(&uid("@a:x"), &did("E"), b"1")?;
                let two = ctx.to_device_usage(&uid("@a:x"), &did("D"))?;
                ctx.delete_to_device_upto(&uid("@a:x"), &did("D"), p1)?;
                let one = ctx.to_device_usage(&uid("@a:x"), &did("D"))?;
                // An inbox stored before usage was tracked has no row.
                ctx.txn.open_table(tables::USER_DEVICE_TO_INBOX_USAGE)?.remove(("@a:x", "E"))?;
                let untracked = ctx.to_device_usage(&uid("@a:x"), &did("E"))?;
                ctx.delete_to_device_upto(&uid("@a:x"), &did("D"), StreamPos(u64::MAX))?;
                let none = ctx.to_device_usage(&uid("@a:x"), &did("D"))?;
                let row = ctx
                    .txn
                    .open_table(tables::USER_DEVICE_TO_INBOX_USAGE)?
                    .get(("@a:x", "D"))?
                    .is_some();
                Ok(Ok::<_, StoreError>((before, two, one, untracked, none, row)))
            })
            .await
            .expect("write");
        assert_eq!(usage, ((0, 0), (2, 8), (1, 3), (1, 1), (0, 0), false));
    });
}

#[test]
fn a_log_missing_after_a_clean_stop_or_beside_a_backup_copy_is_made_anew() {
    let (dir, store) = temp_store();
    store
        .write_blocking(|ctx| {
            ctx.put_user("alice", &user(1))?;
            Ok(Ok::<_, StoreError>(()))
        })
        .expect("write");
    let backup = tempfile::tempdir().expect("tempdir");
    store.backup_to(&backup.path().join("hearth.redb")).expect("backup");
    store.shutdown();
    drop(store);
    // Stopped cleanly: the database holds everything, the log nothing.
    std::fs::remove_file(dir.path().join(wal::FILE_NAME)).expect("remove");
    let reopened = Store::open(dir.path(), 1 << 20, None).expect("opens without its log");
    assert!(reopened.read().expect("read").user("alice").expect("get").is_some());
    assert!(dir.path().join(wal::FILE_NAME).exists());
    // A backup's copy, taken from a running server, needs no log either.
    let copy = Store::open(backup.path(), 1 << 20, None).expect("backup copy opens");
    assert!(copy.read().expect("read").user("alice").expect("get").is_some());
}

#[test]
fn an_operation_refused_midway_runs_alone_and_fails_no_batch_mate() {
    use crate::error::{ErrorKind, MatrixError};

    let (_dir, store) = temp_store();
    // Hold the writer so that all three requests are queued together, as
    // they would be under load.
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    store
        .writer
        .exclusive(Box::new(move |_db| {
            let _ = started_tx.send(());
            let _ = release_rx.recv();
        }))
        .expect("exclusive");
    started_rx.recv().expect("the writer is held");
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    rt.block_on(async {
        let before = store.write(|ctx| {
            ctx.put_user("alice", &user(1))?;
            Ok(Ok::<_, StoreError>(()))
        });
        let refused = store.write_alone(|ctx| {
            ctx.put_user("carol", &user(3))?;
            Err::<Result<(), MatrixError>, _>(StoreError::refused(MatrixError::new(
                ErrorKind::InvalidRoomState,
                "the request's own events contradict each other",
            )))
        });
        let after = store.write(|ctx| {
            ctx.put_user("bob", &user(2))?;
            Ok(Ok::<_, StoreError>(()))
        });
        // Polled in order: the three are submitted, then the writer let go.
        let release = async { release_tx.send(()).expect("release") };
        let (a, r, b, ()) = tokio::join!(before, refused, after, release);
        assert!(a.is_ok(), "{a:?}");
        assert!(b.is_ok(), "{b:?}");
        let e = r.expect_err("refused");
        assert_eq!(e.kind, ErrorKind::InvalidRoomState);
    });
    let read = store.read().expect("read");
    assert!(read.user("alice").expect("get").is_some());
    assert!(read.user("bob").expect("get").is_some());
    assert!(read.user("carol").expect("get").is_none(), "the refused write left a trace");
}

/// A user ID the test knows to be valid.
fn uid(s: &str) -> crate::ids::UserId {
    crate::ids::UserId::parse(s).expect("valid user ID")
}

/// A device ID the test knows to be valid.
fn did(s: &str) -> crate::ids::DeviceId {
    crate::ids::DeviceId::parse(s).expect("valid device ID")
}
