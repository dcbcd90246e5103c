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
    let record = |device: &str| TokenRecord {
        kind: TokenKind::Access,
        localpart: "alice".into(),
        device_id: device.into(),
        expires_ms: None,
        pair: None,
        parent: None,
    };
    store
        .write_blocking(move |ctx| {
            ctx.put_device("alice", "A", &DeviceRecord::default())?;
            ctx.put_device("alice", "AB", &DeviceRecord::default())?;
            ctx.put_token(&hash_token("t1"), &record("A"))?;
            ctx.put_token(&hash_token("t2"), &record("A"))?;
            ctx.put_token(&hash_token("t3"), &record("AB"))?;
            Ok(Ok::<_, StoreError>(()))
        })
        .expect("write");
    let existed = store
        .write_blocking(|ctx| Ok(Ok::<_, StoreError>(ctx.delete_device("alice", "A")?)))
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
