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
//! | `meta` | name (`&str`) | bytes: schema version, next stream position, server signing key seed | store |
//! | `user_localpart_to_record` | localpart | JSON [`UserRecord`](super::UserRecord) | accounts |
//! | `user_device_to_record` | (localpart, device_id) | JSON [`DeviceRecord`](super::DeviceRecord) | accounts |
//! | `token_hash_to_record` | blake3(token) (32 bytes) | JSON [`TokenRecord`](super::TokenRecord) | accounts |
//! | `user_device_token_to_unit` | (localpart, device_id, blake3(token)) | () — reverse index of the table above, written in the same transaction | accounts |
//! | `registration_token_to_record` | token | JSON [`RegistrationTokenRecord`](super::RegistrationTokenRecord) | accounts |

use redb::{ReadTransaction, TableDefinition, WriteTransaction};

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

pub(super) const META_SCHEMA_VERSION: &str = "schema_version";
pub(super) const META_NEXT_POSITION: &str = "next_stream_position";

/// Creates every table so read transactions can open them on a new file.
pub(super) fn create_all(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(META)?;
    txn.open_table(USER_LOCALPART_TO_RECORD)?;
    txn.open_table(USER_DEVICE_TO_RECORD)?;
    txn.open_table(TOKEN_HASH_TO_RECORD)?;
    txn.open_table(USER_DEVICE_TOKEN_TO_UNIT)?;
    txn.open_table(REGISTRATION_TOKEN_TO_RECORD)?;
    Ok(())
}

/// Meta integers are stored big-endian (one byte order everywhere).
pub(super) fn read_meta_u64(txn: &ReadTransaction, key: &str) -> Result<Option<u64>, StoreError> {
    let table = match txn.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
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
