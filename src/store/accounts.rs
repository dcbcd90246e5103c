//! Accounts, devices, access/refresh tokens and registration tokens.
//!
//! Tokens are never stored: only their blake3 hash is a key. Every token row
//! has a reverse-index row `(localpart, device_id, hash)` written and removed
//! in the same transaction, so deleting a device finds its tokens by a range
//! scan instead of a full table scan.

use redb::ReadableTable;

use super::wal::LoggedTxn;
use serde::{Deserialize, Serialize};

use super::tables::{
    REGISTRATION_TOKEN_TO_RECORD, TOKEN_HASH_TO_RECORD, USER_DEVICE_TO_RECORD,
    USER_DEVICE_TOKEN_TO_UNIT, USER_LOCALPART_TO_RECORD,
};
use super::{ReadTxn, StoreError, WriteCtx};
use crate::ids::DeviceId;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct UserRecord {
    /// argon2id PHC string; `None` for accounts that cannot log in by password.
    pub password_hash: Option<String>,
    #[serde(default)]
    pub admin: bool,
    #[serde(default)]
    pub deactivated: bool,
    pub created_ms: u64,
    #[serde(default)]
    pub displayname: Option<String>,
    #[serde(default)]
    pub avatar_url: Option<String>,
    /// Locked by an admin: every request but logout is refused.
    #[serde(default)]
    pub locked: bool,
    /// Suspended by an admin: may read, not act (spec: account suspension).
    #[serde(default)]
    pub suspended: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub display_name: Option<String>,
    pub created_ms: u64,
    #[serde(default)]
    pub last_seen_ms: Option<u64>,
    #[serde(default)]
    pub last_seen_ip: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenKind {
    Access,
    Refresh,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenRecord {
    pub kind: TokenKind,
    pub localpart: String,
    pub device_id: String,
    /// Access tokens issued with a refresh token expire; others do not.
    pub expires_ms: Option<u64>,
    /// The other half of the pair issued together (access ↔ refresh), hex.
    pub pair: Option<String>,
    /// The refresh token this pair was minted from, hex. It stays valid until
    /// this pair is first used (spec: "Refreshing access tokens"), then it and
    /// its own pair are revoked and this field is cleared.
    pub parent: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RegistrationTokenRecord {
    /// `None` = unlimited.
    pub uses_allowed: Option<u64>,
    pub completed: u64,
    /// Milliseconds since the epoch; `None` = never.
    pub expiry_ms: Option<u64>,
    pub created_ms: u64,
}

impl RegistrationTokenRecord {
    pub fn is_usable(&self, now_ms: u64) -> bool {
        self.uses_allowed.is_none_or(|n| self.completed < n)
            && self.expiry_ms.is_none_or(|e| now_ms < e)
    }
}

/// The key under which a token is stored.
pub fn hash_token(token: &str) -> [u8; 32] {
    *blake3::hash(token.as_bytes()).as_bytes()
}

fn decode<T: for<'de> Deserialize<'de>>(what: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records serialise: plain structs with string keys")
}

impl ReadTxn {
    pub fn user(&self, localpart: &str) -> Result<Option<UserRecord>, StoreError> {
        let table = self.0.open_table(USER_LOCALPART_TO_RECORD)?;
        table.get(localpart)?.map(|v| decode("user", v.value())).transpose()
    }

    pub fn users(&self) -> Result<Vec<(String, UserRecord)>, StoreError> {
        let table = self.0.open_table(USER_LOCALPART_TO_RECORD)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            out.push((k.value().to_owned(), decode("user", v.value())?));
        }
        Ok(out)
    }

    pub fn device(
        &self,
        localpart: &str,
        device_id: &DeviceId,
    ) -> Result<Option<DeviceRecord>, StoreError> {
        let device_id = device_id.as_str();
        let table = self.0.open_table(USER_DEVICE_TO_RECORD)?;
        table.get((localpart, device_id))?.map(|v| decode("device", v.value())).transpose()
    }

    pub fn devices(&self, localpart: &str) -> Result<Vec<(String, DeviceRecord)>, StoreError> {
        let table = self.0.open_table(USER_DEVICE_TO_RECORD)?;
        let mut out = Vec::new();
        for row in table.range((localpart, "")..)? {
            let (k, v) = row?;
            let (user, device) = k.value();
            if user != localpart {
                break;
            }
            out.push((device.to_owned(), decode("device", v.value())?));
        }
        Ok(out)
    }

    pub fn token(&self, hash: &[u8; 32]) -> Result<Option<TokenRecord>, StoreError> {
        let table = self.0.open_table(TOKEN_HASH_TO_RECORD)?;
        table.get(hash.as_slice())?.map(|v| decode("token", v.value())).transpose()
    }

    pub fn registration_token(
        &self,
        token: &str,
    ) -> Result<Option<RegistrationTokenRecord>, StoreError> {
        let table = self.0.open_table(REGISTRATION_TOKEN_TO_RECORD)?;
        table.get(token)?.map(|v| decode("registration token", v.value())).transpose()
    }

    pub fn registration_tokens(
        &self,
    ) -> Result<Vec<(String, RegistrationTokenRecord)>, StoreError> {
        let table = self.0.open_table(REGISTRATION_TOKEN_TO_RECORD)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            out.push((k.value().to_owned(), decode("registration token", v.value())?));
        }
        Ok(out)
    }
}

impl WriteCtx<'_> {
    pub fn user(&self, localpart: &str) -> Result<Option<UserRecord>, StoreError> {
        let table = self.txn.open_table(USER_LOCALPART_TO_RECORD)?;
        let value = table.get(localpart)?;
        value.map(|v| decode("user", v.value())).transpose()
    }

    pub fn put_user(&mut self, localpart: &str, record: &UserRecord) -> Result<(), StoreError> {
        let mut table = self.txn.open_table(USER_LOCALPART_TO_RECORD)?;
        table.insert(localpart, encode(record).as_slice())?;
        Ok(())
    }

    /// Creates an account; false (and nothing written) if the localpart is
    /// taken. Every path that creates accounts comes here, so each new
    /// account gets its localpart as display name when none is given, as
    /// other servers do: member lists and clients' shared-history logic
    /// expect `GET /profile/{userId}/displayname` to answer.
    pub fn create_user(
        &mut self,
        localpart: &str,
        mut record: UserRecord,
    ) -> Result<bool, StoreError> {
        if self.user(localpart)?.is_some() {
            return Ok(false);
        }
        record.displayname.get_or_insert_with(|| localpart.to_owned());
        self.put_user(localpart, &record)?;
        Ok(true)
    }

    pub fn device(
        &self,
        localpart: &str,
        device_id: &DeviceId,
    ) -> Result<Option<DeviceRecord>, StoreError> {
        let device_id = device_id.as_str();
        let table = self.txn.open_table(USER_DEVICE_TO_RECORD)?;
        let value = table.get((localpart, device_id))?;
        value.map(|v| decode("device", v.value())).transpose()
    }

    pub fn put_device(
        &mut self,
        localpart: &str,
        device_id: &DeviceId,
        record: &DeviceRecord,
    ) -> Result<(), StoreError> {
        let device_id = device_id.as_str();
        let mut table = self.txn.open_table(USER_DEVICE_TO_RECORD)?;
        table.insert((localpart, device_id), encode(record).as_slice())?;
        Ok(())
    }

    /// Device IDs of a user, for "log out everywhere" and deactivation.
    pub fn device_ids(&self, localpart: &str) -> Result<Vec<String>, StoreError> {
        let table = self.txn.open_table(USER_DEVICE_TO_RECORD)?;
        let mut out = Vec::new();
        for row in table.range((localpart, "")..)? {
            let (k, _) = row?;
            let (user, device) = k.value();
            if user != localpart {
                break;
            }
            out.push(device.to_owned());
        }
        Ok(out)
    }

    /// Removes a device and every token bound to it. Returns whether it existed.
    pub fn delete_device(
        &mut self,
        localpart: &str,
        device_id: &DeviceId,
    ) -> Result<bool, StoreError> {
        self.delete_device_tokens(localpart, device_id)?;
        let mut table = self.txn.open_table(USER_DEVICE_TO_RECORD)?;
        let existed = table.remove((localpart, device_id.as_str()))?.is_some();
        Ok(existed)
    }

    /// Revokes every access and refresh token of a device, keeping the device.
    pub fn delete_device_tokens(
        &mut self,
        localpart: &str,
        device_id: &DeviceId,
    ) -> Result<(), StoreError> {
        let device_id = device_id.as_str();
        let hashes = device_token_hashes(&self.txn, localpart, device_id)?;
        for h in hashes {
            self.delete_token(&h)?;
        }
        Ok(())
    }

    pub fn token(&self, hash: &[u8; 32]) -> Result<Option<TokenRecord>, StoreError> {
        let table = self.txn.open_table(TOKEN_HASH_TO_RECORD)?;
        let value = table.get(hash.as_slice())?;
        value.map(|v| decode("token", v.value())).transpose()
    }

    pub fn put_token(&mut self, hash: &[u8; 32], record: &TokenRecord) -> Result<(), StoreError> {
        let mut table = self.txn.open_table(TOKEN_HASH_TO_RECORD)?;
        table.insert(hash.as_slice(), encode(record).as_slice())?;
        let mut index = self.txn.open_table(USER_DEVICE_TOKEN_TO_UNIT)?;
        index
            .insert((record.localpart.as_str(), record.device_id.as_str(), hash.as_slice()), ())?;
        Ok(())
    }

    pub fn delete_token(&mut self, hash: &[u8; 32]) -> Result<Option<TokenRecord>, StoreError> {
        let mut table = self.txn.open_table(TOKEN_HASH_TO_RECORD)?;
        let old = table.remove(hash.as_slice())?;
        let record: Option<TokenRecord> = old.map(|v| decode("token", v.value())).transpose()?;
        drop(table);
        if let Some(r) = &record {
            let mut index = self.txn.open_table(USER_DEVICE_TOKEN_TO_UNIT)?;
            index.remove((r.localpart.as_str(), r.device_id.as_str(), hash.as_slice()))?;
        }
        Ok(record)
    }

    /// Hashes of every token bound to a device.
    pub fn device_token_hashes(
        &self,
        localpart: &str,
        device_id: &DeviceId,
    ) -> Result<Vec<[u8; 32]>, StoreError> {
        let device_id = device_id.as_str();
        device_token_hashes(&self.txn, localpart, device_id)
    }

    pub fn registration_token(
        &self,
        token: &str,
    ) -> Result<Option<RegistrationTokenRecord>, StoreError> {
        let table = self.txn.open_table(REGISTRATION_TOKEN_TO_RECORD)?;
        let value = table.get(token)?;
        value.map(|v| decode("registration token", v.value())).transpose()
    }

    pub fn put_registration_token(
        &mut self,
        token: &str,
        record: &RegistrationTokenRecord,
    ) -> Result<(), StoreError> {
        let mut table = self.txn.open_table(REGISTRATION_TOKEN_TO_RECORD)?;
        table.insert(token, encode(record).as_slice())?;
        Ok(())
    }

    pub fn delete_registration_token(&mut self, token: &str) -> Result<bool, StoreError> {
        let mut table = self.txn.open_table(REGISTRATION_TOKEN_TO_RECORD)?;
        let existed = table.remove(token)?.is_some();
        Ok(existed)
    }
}

pub(super) fn device_token_hashes(
    txn: &LoggedTxn<'_>,
    localpart: &str,
    device_id: &str,
) -> Result<Vec<[u8; 32]>, StoreError> {
    let index = txn.open_table(USER_DEVICE_TOKEN_TO_UNIT)?;
    let mut out = Vec::new();
    let empty: &[u8] = &[];
    for row in index.range((localpart, device_id, empty)..)? {
        let (k, _) = row?;
        let (user, device, hash) = k.value();
        if user != localpart || device != device_id {
            break;
        }
        let hash: [u8; 32] = hash
            .try_into()
            .map_err(|_| StoreError::Corrupt("token hash is not 32 bytes".into()))?;
        out.push(hash);
    }
    Ok(out)
}
