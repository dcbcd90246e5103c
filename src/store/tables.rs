//! Every redb table, its key layout and value, in one place.
//!
//! Keys are redb tuples of fixed-order fields (redb encodes integers
//! little-endian inside its own format but compares them numerically, and
//! compares `&str`/`&[u8]` fields bytewise, so tuple order is sort order).
//! Values that are cold records are JSON (serde) so fields can be added
//! without a migration; hot values are raw bytes ready to serve.
//!
//! | table | key | value | owner |
//! |---|---|---|---|
//! | `meta` | name (`&str`) | bytes: schema version, next stream position, server signing key seed, the write-ahead log's checkpoint sequence number and `wal_log` (its ID, least file length, clean stop; `wal::LogMeta`) | store |
//! | `user_localpart_to_record` | localpart | JSON [`UserRecord`](super::UserRecord) | accounts |
//! | `user_device_to_record` | (localpart, device_id) | JSON [`DeviceRecord`](super::DeviceRecord) | accounts |
//! | `token_hash_to_record` | blake3(token) (32 bytes) | JSON [`TokenRecord`](super::TokenRecord) | accounts |
//! | `user_device_token_to_unit` | (localpart, device_id, blake3(token)) | () — reverse index of the table above, written in the same transaction | accounts |
//! | `registration_token_to_record` | token | JSON [`RegistrationTokenRecord`](super::RegistrationTokenRecord) | accounts |
//! | `room_id_to_record` | room_id | JSON [`RoomRecord`](super::RoomRecord) (short id, version, public) | rooms |
//! | `room_short_to_id` | room short id (u64) | room_id — reverse of the above, same transaction | rooms |
//! | `stream_to_event` | stream | client-format event JSON, served as is | rooms |
//! | `stream_to_pdu_fields` | stream | `auth_events`, `prev_events`, `depth`, `hashes`, `signatures`: bytes (`room::fields`) or JSON | rooms |
//! | `room_stream_to_unit` | (room short, stream) | () — a room's timeline: which positions are its events | rooms |
//! | `event_epoch_hash_to_position` | ([`epoch`]`(stream)`, [`event_hash`]`(event_id)`) | (room short, stream) | rooms |
//! | `room_state_to_stream` | (room short, type, state_key) | stream of the current state event | rooms |
//! | `room_stream_to_state_key` | (room short, stream) | (type, state_key) of every state event, for state deltas | rooms |
//! | `user_room_to_membership` | (user_id, room short) | (membership, stream) | rooms |
//! | `room_user_to_membership` | (room short, user_id) | membership — reverse of the above, same transaction | rooms |
//! | `user_stream_to_room` | (user_id, stream) | room short: membership changes, for sync | rooms |
//! | `alias_to_room_id` | #alias:server | room_id | rooms |
//! | `txn_epoch_to_position` | ([`txn_epoch`]`(stream)`, user_id, device_id, scope, txn_id) | (room short, stream) of the event it made (idempotent sends) | rooms |
//! | `user_filter_to_json` | (user_id, filter id) | filter JSON | rooms |
//! | `user_account_data_to_json` | (user_id, room_id or "", type) | content JSON | userdata |
//! | `user_stream_to_account_data` | (user_id, stream) | (room_id or "", type): changes, for sync | userdata |
//! | `receipt_to_event` | (room short, receipt type, user_id, thread_id or "") | (event_id, ts) | userdata |
//! | `device_keys_to_json` | (user_id, device_id) | signed device keys JSON | e2ee |
//! | `one_time_key_to_json` | (user_id, device_id, algorithm, key_id) | key JSON (string or signed object) | e2ee |
//! | `fallback_key_to_json` | (user_id, device_id, algorithm) | `{key_id, key, used}` | e2ee |
//! | `cross_signing_to_json` | (user_id, "master"/"self_signing"/"user_signing") | key JSON | e2ee |
//! | `stream_to_key_change` | stream | user_id whose keys or devices changed | e2ee |
//! | `to_device_to_json` | (user_id, device_id, stream) | `{type, sender, content}` | e2ee |
//! | `backup_version_to_json` | (user_id, version) | `{algorithm, auth_data, etag, deleted}` | e2ee |
//! | `backup_key_to_json` | (user_id, version, room_id, session_id) | KeyBackupData JSON | e2ee |
//! | `report_to_json` | stream | content report JSON (reporter, target, reason, ts) | userdata |
//! | `user_push_rules_to_json` | user_id | the user's push-rule customisation (compact JSON) | push |
//! | `user_room_stream_to_highlight` | (user_id, room short, stream) | a notification: bit 0 highlight, bits above the code of a common action list (0: see the next table) | push |
//! | `user_stream_to_notification` | (user_id, stream) | room, ts and actions of a notification with an uncommon action list | push |
//! | `pusher_to_json` | (user_id, app_id, pushkey) | pusher JSON | push |
//! | `media_to_record` | (server_name, media_id) | JSON [`MediaRecord`](super::MediaRecord) | media |
//! | `thumbnail_to_hash` | (server_name, media_id, width, height, method) | blake3 hex of the thumbnail file | media |
//! | `user_to_media_bytes` | user_id | bytes uploaded (quota) | media |
//! | `relation_to_child` | (room short, parent event_id, rel_type, child stream) | (child sender, child type) | relations |
//! | `thread_root_to_latest` | (room short, root event_id) | stream of the latest thread reply | relations |
//! | `search_term_stream_to_room` | (search term, stream) | (room short, searchable-key bit: 1 body, 2 name, 4 topic); terms come from `search::index_terms` | search |
//! | `push_queue` | sequence (stream) | a pending push-gateway delivery: URL, payload, attempts, next try | push |
//! | `room_to_latest_bump` | room short | stream of the room's newest event that bumps it in sliding sync lists (`bump_stamp`) | sync (sliding) |
//! | `user_to_dehydrated_device` | user_id | JSON [`DehydratedDevice`](super::DehydratedDevice): the MSC3814 device's ID and its opaque `device_data` | dehydrated |
//! | `room_stream_to_receipt` | (room short, stream) | (receipt type, user_id, thread_id): changes, for sync | userdata |
//! | `user_room_to_forgotten` | (user_id, room short) | stream of the member event the user forgot the room at: forgotten while that is still their membership | rooms |
//! | `user_device_to_inbox_usage` | (user_id, device_id) | (messages, bytes) in the device's rows of `to_device_to_json`, for the inbox caps (`quota`); kept in the same transactions as those rows; absent for an empty inbox or one stored before the table existed (then counted once) | e2ee |

use redb::{Key, ReadTransaction, TableDefinition, TableHandle, TypeName, Value, WriteTransaction};

use super::StoreError;

pub(super) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(super) const USER_LOCALPART_TO_RECORD: TableDefinition<&str, &[u8]> =
    TableDefinition::new("user_localpart_to_record");
pub(super) const USER_DEVICE_TO_RECORD: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("user_device_to_record");
pub(super) const TOKEN_HASH_TO_RECORD: TableDefinition<&[u8], &[u8]> =
    TableDefinition::new("token_hash_to_record");
pub(super) const USER_DEVICE_TOKEN_TO_UNIT: TableDefinition<(&str, &str, &[u8]), ()> =
    TableDefinition::new("user_device_token_to_unit");
pub(super) const REGISTRATION_TOKEN_TO_RECORD: TableDefinition<&str, &[u8]> =
    TableDefinition::new("registration_token_to_record");

pub(super) const ROOM_ID_TO_RECORD: TableDefinition<&str, &[u8]> =
    TableDefinition::new("room_id_to_record");
pub(super) const ROOM_SHORT_TO_ID: TableDefinition<u64, &str> =
    TableDefinition::new("room_short_to_id");
/// Events keyed by their stream position alone: positions only grow, so
/// every new event lands in the tree's last leaf, which redb leaves packed
/// when it starts the next one. (Keyed by `(room, stream)`, each room's
/// newest leaf sat in the middle of the tree and was split in half when
/// full, leaving event pages half empty.)
pub(super) const STREAM_TO_EVENT: TableDefinition<u64, &[u8]> =
    TableDefinition::new("stream_to_event");
pub(super) const STREAM_TO_PDU_FIELDS: TableDefinition<u64, &[u8]> =
    TableDefinition::new("stream_to_pdu_fields");
pub(super) const ROOM_STREAM_TO_UNIT: TableDefinition<(u64, u64), ()> =
    TableDefinition::new("room_stream_to_unit");
/// Schema 2's event-ID index, keyed by the ID's hash alone. Event IDs are
/// hashes, so it took its inserts at random places: a checkpoint rewrote
/// about one of its leaves per new event once the leaves outnumbered the
/// events between checkpoints, so bytes written per message grew with the
/// history (≈0.8 KiB per message at 60,000 events, heading for a page per
/// message). The migration to schema 3 moves it to
/// [`EVENT_EPOCH_HASH_TO_POSITION`].
pub(super) const V2_EVENT_HASH_TO_POSITION: TableDefinition<u128, (u64, u64)> =
    TableDefinition::new("event_hash_to_position");
/// Event IDs: `(epoch of the stream position, the ID's 128-bit hash) →
/// (room, stream)`, epochs being [`EPOCH_POSITIONS`] positions long. New
/// events go into the newest epoch, so the leaves a checkpoint rewrites
/// are bounded by an epoch's size, not the history's; a lookup probes the
/// epochs newest first (most IDs clients name are recent ones).
pub(super) const EVENT_EPOCH_HASH_TO_POSITION: TableDefinition<(u64, u128), (u64, u64)> =
    TableDefinition::new("event_epoch_hash_to_position");

/// Stream positions per event-ID epoch: an epoch's index is at most a few
/// hundred leaves, and a lookup of an ID from a million positions ago
/// probes 61 epochs (≈1 µs each).
pub(super) const EPOCH_POSITIONS: u64 = 1 << 14;

/// The event-ID epoch of a stream position.
pub(super) fn epoch(stream: u64) -> u64 {
    stream / EPOCH_POSITIONS
}

/// The hash of an event ID in [`EVENT_EPOCH_HASH_TO_POSITION`]: the first 128 bits
/// of its BLAKE3 hash. Unlike the reference hash inside a room v3+ event ID
/// (chosen by whoever builds the event), nobody can aim at a value of this
/// one, and 128 bits make an accidental collision out of reach.
pub(super) fn event_hash(event_id: &str) -> u128 {
    let h = blake3::hash(event_id.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h.as_bytes()[..16]);
    u128::from_be_bytes(b)
}

/// Schema 1's event tables, keyed by `(room short, stream)` and by event
/// ID. Only a write-ahead log from a schema-1 server writes to them (it is
/// replayed before migration); the migration to schema 2 moves their rows
/// to the tables above and deletes them.
pub(super) const V1_ROOM_STREAM_TO_EVENT: TableDefinition<(u64, u64), &[u8]> =
    TableDefinition::new("room_stream_to_event");
pub(super) const V1_ROOM_STREAM_TO_PDU_FIELDS: TableDefinition<(u64, u64), &[u8]> =
    TableDefinition::new("room_stream_to_pdu_fields");
pub(super) const V1_EVENT_ID_TO_POSITION: TableDefinition<&str, (u64, u64)> =
    TableDefinition::new("event_id_to_position");
pub(super) const ROOM_STATE_TO_STREAM: TableDefinition<(u64, &str, &str), u64> =
    TableDefinition::new("room_state_to_stream");
pub(super) const ROOM_STREAM_TO_STATE_KEY: TableDefinition<(u64, u64), (&str, &str)> =
    TableDefinition::new("room_stream_to_state_key");
pub(super) const USER_ROOM_TO_MEMBERSHIP: TableDefinition<(&str, u64), (&str, u64)> =
    TableDefinition::new("user_room_to_membership");
pub(super) const ROOM_USER_TO_MEMBERSHIP: TableDefinition<(u64, &str), &str> =
    TableDefinition::new("room_user_to_membership");
pub(super) const USER_STREAM_TO_ROOM: TableDefinition<(&str, u64), u64> =
    TableDefinition::new("user_stream_to_room");
pub(super) const ALIAS_TO_ROOM_ID: TableDefinition<&str, &str> =
    TableDefinition::new("alias_to_room_id");
/// Schema 2's transaction IDs: `(user, device, "send/{room ID}/{type}",
/// txn) → event ID`. The migration to schema 3 rewrites them into
/// [`TXN_TO_POSITION`] and deletes the table.
pub(super) const V2_TXN_TO_EVENT_ID: TableDefinition<(&str, &str, &str, &str), &str> =
    TableDefinition::new("txn_to_event_id");
/// Transaction IDs: `(epoch, user, device, scope, txn) → (room short,
/// stream)` of the event the request made (`(0, 0)` for requests that made
/// none). The scope names the request's path compactly: `s{room
/// short}/{type}` for a send, `r{room short}/{event ID}` for a redaction,
/// `d/{type}` for send-to-device. One row per sent message, so it is kept
/// small; the epoch (of the stream position when the request came,
/// [`TXN_EPOCH_POSITIONS`] long) keeps a device's random IDs (Element X
/// sends UUIDs) from landing all over its whole history's rows, and lets
/// old IDs be forgotten (`WriteCtx::put_txn`).
pub(super) const TXN_TO_POSITION: TableDefinition<TxnKey, (u64, u64)> =
    TableDefinition::new("txn_epoch_to_position");
/// `(epoch, user, device, scope, transaction ID)`.
pub(super) type TxnKey = (u64, &'static str, &'static str, &'static str, &'static str);

/// Stream positions per transaction-ID epoch.
pub(super) const TXN_EPOCH_POSITIONS: u64 = 1 << 16;
/// Epochs whose transaction IDs are remembered, the current one included:
/// a retransmission is recognised for at least 131,072 stream positions
/// (months on a family server; clients retry within minutes).
pub(super) const TXN_EPOCHS_KEPT: u64 = 3;

/// The transaction-ID epoch of a stream position.
pub(super) fn txn_epoch(stream: u64) -> u64 {
    stream / TXN_EPOCH_POSITIONS
}
pub(super) const USER_FILTER_TO_JSON: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("user_filter_to_json");
/// Rooms a user forgot (`/forget`), with the position of the membership
/// (leave or ban) they forgot: a later member event (a re-invite, a join)
/// ends the forgetting without touching this row, and forgetting again
/// overwrites it.
pub(super) const USER_ROOM_TO_FORGOTTEN: TableDefinition<(&str, u64), u64> =
    TableDefinition::new("user_room_to_forgotten");

pub(super) const USER_ACCOUNT_DATA_TO_JSON: TableDefinition<(&str, &str, &str), &[u8]> =
    TableDefinition::new("user_account_data_to_json");
pub(super) const USER_STREAM_TO_ACCOUNT_DATA: TableDefinition<(&str, u64), (&str, &str)> =
    TableDefinition::new("user_stream_to_account_data");
pub(super) const RECEIPT_TO_EVENT: TableDefinition<(u64, &str, &str, &str), (&str, u64)> =
    TableDefinition::new("receipt_to_event");
pub(super) const ROOM_STREAM_TO_RECEIPT: TableDefinition<(u64, u64), (&str, &str, &str)> =
    TableDefinition::new("room_stream_to_receipt");

pub(super) const DEVICE_KEYS_TO_JSON: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("device_keys_to_json");
pub(super) const ONE_TIME_KEY_TO_JSON: TableDefinition<(&str, &str, &str, &str), &[u8]> =
    TableDefinition::new("one_time_key_to_json");
pub(super) const FALLBACK_KEY_TO_JSON: TableDefinition<(&str, &str, &str), &[u8]> =
    TableDefinition::new("fallback_key_to_json");
pub(super) const CROSS_SIGNING_TO_JSON: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("cross_signing_to_json");
pub(super) const STREAM_TO_KEY_CHANGE: TableDefinition<u64, &str> =
    TableDefinition::new("stream_to_key_change");
pub(super) const TO_DEVICE_TO_JSON: TableDefinition<(&str, &str, u64), &[u8]> =
    TableDefinition::new("to_device_to_json");
pub(super) const USER_DEVICE_TO_INBOX_USAGE: TableDefinition<(&str, &str), (u64, u64)> =
    TableDefinition::new("user_device_to_inbox_usage");
pub(super) const BACKUP_VERSION_TO_JSON: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("backup_version_to_json");
pub(super) const BACKUP_KEY_TO_JSON: TableDefinition<(&str, u64, &str, &str), &[u8]> =
    TableDefinition::new("backup_key_to_json");

pub(super) const REPORT_TO_JSON: TableDefinition<u64, &[u8]> =
    TableDefinition::new("report_to_json");

pub(super) const USER_PUSH_RULES_TO_JSON: TableDefinition<&str, &[u8]> =
    TableDefinition::new("user_push_rules_to_json");
pub(super) const USER_ROOM_STREAM_TO_HIGHLIGHT: TableDefinition<(&str, u64, u64), u8> =
    TableDefinition::new("user_room_stream_to_highlight");
pub(super) const USER_STREAM_TO_NOTIFICATION: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("user_stream_to_notification");
pub(super) const PUSHER_TO_JSON: TableDefinition<(&str, &str, &str), &[u8]> =
    TableDefinition::new("pusher_to_json");

pub(super) const MEDIA_TO_RECORD: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("media_to_record");
pub(super) const THUMBNAIL_TO_HASH: TableDefinition<(&str, &str, u32, u32, &str), &str> =
    TableDefinition::new("thumbnail_to_hash");
pub(super) const USER_TO_MEDIA_BYTES: TableDefinition<&str, u64> =
    TableDefinition::new("user_to_media_bytes");

pub(super) const RELATION_TO_CHILD: TableDefinition<(u64, &str, &str, u64), (&str, &str)> =
    TableDefinition::new("relation_to_child");
pub(super) const THREAD_ROOT_TO_LATEST: TableDefinition<(u64, &str), u64> =
    TableDefinition::new("thread_root_to_latest");

pub(super) const SEARCH_TERM_STREAM_TO_ROOM: TableDefinition<(&str, u64), (u64, u8)> =
    TableDefinition::new("search_term_stream_to_room");

pub(super) const ROOM_TO_LATEST_BUMP: TableDefinition<u64, u64> =
    TableDefinition::new("room_to_latest_bump");
pub(super) const USER_TO_DEHYDRATED_DEVICE: TableDefinition<&str, &[u8]> =
    TableDefinition::new("user_to_dehydrated_device");

pub(super) const PUSH_QUEUE: TableDefinition<u64, &[u8]> = TableDefinition::new("push_queue");

pub(super) const META_SCHEMA_VERSION: &str = "schema_version";
pub(super) const META_NEXT_POSITION: &str = "next_stream_position";

/// Every table with its write-ahead-log id. The ids are written to the log
/// (`wal.rs`) and must never change or be reused: append new tables at the
/// end with the next number.
macro_rules! all_tables {
    ($m:ident) => {
        $m! {
            1 => META,
            2 => USER_LOCALPART_TO_RECORD,
            3 => USER_DEVICE_TO_RECORD,
            4 => TOKEN_HASH_TO_RECORD,
            5 => USER_DEVICE_TOKEN_TO_UNIT,
            6 => REGISTRATION_TOKEN_TO_RECORD,
            7 => ROOM_ID_TO_RECORD,
            8 => ROOM_SHORT_TO_ID,
            9 => V1_ROOM_STREAM_TO_EVENT,
            10 => V1_ROOM_STREAM_TO_PDU_FIELDS,
            11 => V1_EVENT_ID_TO_POSITION,
            12 => ROOM_STATE_TO_STREAM,
            13 => ROOM_STREAM_TO_STATE_KEY,
            14 => USER_ROOM_TO_MEMBERSHIP,
            15 => ROOM_USER_TO_MEMBERSHIP,
            16 => USER_STREAM_TO_ROOM,
            17 => ALIAS_TO_ROOM_ID,
            18 => V2_TXN_TO_EVENT_ID,
            19 => USER_FILTER_TO_JSON,
            20 => USER_ACCOUNT_DATA_TO_JSON,
            21 => USER_STREAM_TO_ACCOUNT_DATA,
            22 => RECEIPT_TO_EVENT,
            23 => ROOM_STREAM_TO_RECEIPT,
            24 => DEVICE_KEYS_TO_JSON,
            25 => ONE_TIME_KEY_TO_JSON,
            26 => FALLBACK_KEY_TO_JSON,
            27 => CROSS_SIGNING_TO_JSON,
            28 => STREAM_TO_KEY_CHANGE,
            29 => TO_DEVICE_TO_JSON,
            30 => BACKUP_VERSION_TO_JSON,
            31 => BACKUP_KEY_TO_JSON,
            32 => REPORT_TO_JSON,
            33 => USER_PUSH_RULES_TO_JSON,
            34 => USER_ROOM_STREAM_TO_HIGHLIGHT,
            35 => USER_STREAM_TO_NOTIFICATION,
            36 => PUSHER_TO_JSON,
            37 => MEDIA_TO_RECORD,
            38 => THUMBNAIL_TO_HASH,
            39 => USER_TO_MEDIA_BYTES,
            40 => PUSH_QUEUE,
            41 => SEARCH_TERM_STREAM_TO_ROOM,
            42 => RELATION_TO_CHILD,
            43 => THREAD_ROOT_TO_LATEST,
            44 => USER_TO_DEHYDRATED_DEVICE,
            45 => ROOM_TO_LATEST_BUMP,
            46 => STREAM_TO_EVENT,
            47 => STREAM_TO_PDU_FIELDS,
            48 => ROOM_STREAM_TO_UNIT,
            49 => V2_EVENT_HASH_TO_POSITION,
            50 => TXN_TO_POSITION,
            51 => EVENT_EPOCH_HASH_TO_POSITION,
            52 => USER_ROOM_TO_FORGOTTEN,
            53 => USER_DEVICE_TO_INBOX_USAGE
        }
    };
}

/// Log ids of tables no current schema has (kept in [`all_tables`] so an
/// older server's log can still be replayed before migrating).
const RETIRED: [u8; 5] = [9, 10, 11, 18, 49];

/// Creates every table so read transactions can open them on a new file.
pub(super) fn create_all(txn: &WriteTransaction) -> Result<(), StoreError> {
    macro_rules! create {
        ($($id:literal => $table:ident),*) => {
            $(if !RETIRED.contains(&$id) {
                txn.open_table($table)?;
            })*
        };
    }
    all_tables!(create);
    Ok(())
}

/// The write-ahead-log id of the table named `name`.
pub(super) fn wal_id(name: &str) -> Option<u8> {
    macro_rules! find {
        ($($id:literal => $table:ident),*) => {
            $(if name == $table.name() {
                return Some($id);
            })*
        };
    }
    all_tables!(find);
    None
}

/// Applies one logged change to the table with write-ahead-log id `id`:
/// inserts `value` under `key`, or removes `key` when `value` is `None`.
/// Keys and values are the tables' own encodings, as logged.
pub(super) fn apply_logged(
    txn: &WriteTransaction,
    id: u8,
    key: &[u8],
    value: Option<&[u8]>,
) -> Result<(), StoreError> {
    macro_rules! apply {
        ($($id:literal => $table:ident),*) => {
            match id {
                $($id => return apply_raw(txn, $table, key, value),)*
                _ => {}
            }
        };
    }
    all_tables!(apply);
    Err(StoreError::Corrupt(format!("write-ahead log names unknown table {id}")))
}

fn apply_raw<K: Key + 'static, V: Value + 'static>(
    txn: &WriteTransaction,
    def: TableDefinition<K, V>,
    key: &[u8],
    value: Option<&[u8]>,
) -> Result<(), StoreError> {
    let raw: TableDefinition<Raw<K>, Raw<V>> = TableDefinition::new(def.name());
    let mut table = txn.open_table(raw)?;
    match value {
        Some(v) => {
            table.insert(key, v)?;
        }
        None => {
            table.remove(key)?;
        }
    }
    Ok(())
}

/// A table's key or value type seen as its encoded bytes: same type name,
/// width and order as `T`, so a table opened with `Raw` types is the same
/// table, and logged bytes go back in without decoding them.
#[derive(Debug)]
struct Raw<T>(std::marker::PhantomData<T>);

impl<T: Value + 'static> Value for Raw<T> {
    type SelfType<'a>
        = &'a [u8]
    where
        Self: 'a;
    type AsBytes<'a>
        = &'a [u8]
    where
        Self: 'a;
    const NICHE: Option<&'static [u8]> = T::NICHE;

    fn fixed_width() -> Option<usize> {
        T::fixed_width()
    }

    fn from_bytes<'a>(data: &'a [u8]) -> &'a [u8]
    where
        Self: 'a,
    {
        data
    }

    fn as_bytes<'a, 'b: 'a>(value: &'a &'b [u8]) -> &'a [u8]
    where
        Self: 'b,
    {
        value
    }

    fn type_name() -> TypeName {
        T::type_name()
    }
}

impl<T: Key + 'static> Key for Raw<T> {
    fn compare(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
        T::compare(a, b)
    }

    fn separator<'a>(left: &'a [u8], right: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        T::separator(left, right)
    }

    fn min_encoded_key() -> Option<std::borrow::Cow<'static, [u8]>> {
        T::min_encoded_key()
    }
}

/// Meta integers are stored big-endian (one byte order everywhere).
pub(super) fn read_meta_u64(txn: &ReadTransaction, key: &str) -> Result<Option<u64>, StoreError> {
    let table = match txn.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    meta_u64(&table, key)
}

/// A meta integer from an open `meta` table (read or write transaction).
pub(super) fn meta_u64(
    table: &impl redb::ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<u64>, StoreError> {
    let Some(v) = table.get(key)? else { return Ok(None) };
    let bytes: [u8; 8] = v
        .value()
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("meta {key} is not 8 bytes")))?;
    Ok(Some(u64::from_be_bytes(bytes)))
}

pub(super) fn write_meta_u64(
    txn: &WriteTransaction,
    key: &str,
    value: u64,
) -> Result<(), StoreError> {
    let mut table = txn.open_table(META)?;
    table.insert(key, value.to_be_bytes().as_slice())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Encodes `a` and `b` as keys of type `$key`, then checks each decodes
    /// to itself and the encodings compare as the tuples do field by field.
    macro_rules! assert_key_round_trips_and_sorts {
        ($key:ty, $a:expr, $b:expr) => {{
            let (a, b) = ($a, $b);
            let ea = AsRef::<[u8]>::as_ref(&<$key as Value>::as_bytes(&a)).to_vec();
            let eb = AsRef::<[u8]>::as_ref(&<$key as Value>::as_bytes(&b)).to_vec();
            prop_assert_eq!(<$key as Value>::from_bytes(&ea), a);
            prop_assert_eq!(<$key as Value>::from_bytes(&eb), b);
            prop_assert_eq!(<$key as Key>::compare(&ea, &eb), a.cmp(&b), "{:?} vs {:?}", a, b);
        }};
    }

    /// Small numbers often (so later fields decide the order), any at times.
    fn number() -> impl Strategy<Value = u64> {
        prop_oneof![0u64..3, any::<u64>()]
    }

    /// Short strings from a tiny alphabet often (shared prefixes, equal
    /// fields, the empty string), any Unicode at times.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof!["[ab]{0,3}", "\\PC{0,8}"]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn event_id_keys_round_trip_and_sort_by_epoch_then_hash(
            a in (number(), any::<u128>()),
            b in (number(), any::<u128>()),
        ) {
            assert_key_round_trips_and_sorts!((u64, u128), a, b);
        }

        #[test]
        fn later_stream_positions_never_fall_in_an_earlier_epoch(
            a in prop_oneof![0..4 * EPOCH_POSITIONS, any::<u64>()],
            b in prop_oneof![0..4 * EPOCH_POSITIONS, any::<u64>()],
        ) {
            let (lo, hi) = (a.min(b), a.max(b));
            prop_assert!(epoch(lo) <= epoch(hi));
            if epoch(lo) == epoch(hi) {
                prop_assert!(hi - lo < EPOCH_POSITIONS);
            }
        }

        #[test]
        fn room_state_keys_round_trip_and_sort_by_their_fields(
            a in (number(), text(), text()),
            b in (number(), text(), text()),
        ) {
            assert_key_round_trips_and_sorts!(
                (u64, &str, &str),
                (a.0, a.1.as_str(), a.2.as_str()),
                (b.0, b.1.as_str(), b.2.as_str())
            );
        }

        #[test]
        fn user_stream_keys_round_trip_and_sort_by_their_fields(
            a in (text(), number()),
            b in (text(), number()),
        ) {
            assert_key_round_trips_and_sorts!(
                (&str, u64),
                (a.0.as_str(), a.1),
                (b.0.as_str(), b.1)
            );
        }

        #[test]
        fn relation_keys_round_trip_and_sort_by_their_fields(
            a in (number(), text(), text(), number()),
            b in (number(), text(), text(), number()),
        ) {
            assert_key_round_trips_and_sorts!(
                (u64, &str, &str, u64),
                (a.0, a.1.as_str(), a.2.as_str(), a.3),
                (b.0, b.1.as_str(), b.2.as_str(), b.3)
            );
        }

        #[test]
        fn transaction_id_keys_round_trip_and_sort_by_their_fields(
            a in (number(), text(), text(), text(), text()),
            b in (number(), text(), text(), text(), text()),
        ) {
            assert_key_round_trips_and_sorts!(
                TxnKey,
                (a.0, a.1.as_str(), a.2.as_str(), a.3.as_str(), a.4.as_str()),
                (b.0, b.1.as_str(), b.2.as_str(), b.3.as_str(), b.4.as_str())
            );
        }

        #[test]
        fn thumbnail_keys_round_trip_and_sort_by_their_fields(
            a in (text(), text(), 0u32..3, any::<u32>(), text()),
            b in (text(), text(), 0u32..3, any::<u32>(), text()),
        ) {
            assert_key_round_trips_and_sorts!(
                (&str, &str, u32, u32, &str),
                (a.0.as_str(), a.1.as_str(), a.2, a.3, a.4.as_str()),
                (b.0.as_str(), b.1.as_str(), b.2, b.3, b.4.as_str())
            );
        }

        #[test]
        fn token_index_keys_round_trip_and_sort_by_their_fields(
            a in (text(), text(), proptest::collection::vec(0u8..3, 0..4)),
            b in (text(), text(), proptest::collection::vec(0u8..3, 0..4)),
        ) {
            assert_key_round_trips_and_sorts!(
                (&str, &str, &[u8]),
                (a.0.as_str(), a.1.as_str(), a.2.as_slice()),
                (b.0.as_str(), b.1.as_str(), b.2.as_slice())
            );
        }
    }
}
