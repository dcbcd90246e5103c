//! Dehydrated devices (MSC3814): at most one per user, a device whose keys
//! live on the server so others can encrypt to it while the user has no
//! device logged in. The device itself is an ordinary device (device table,
//! device keys, one-time keys, to-device inbox); this table only says which
//! device it is and holds the client's encrypted `device_data`, which the
//! server never reads.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::tables::USER_TO_DEHYDRATED_DEVICE;
use super::{ReadTxn, StoreError, WriteCtx};
use crate::ids::UserId;

/// The user's dehydrated device: its ID and the opaque `device_data`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DehydratedDevice {
    pub device_id: String,
    pub device_data: Value,
}

fn decode(bytes: &[u8]) -> Result<DehydratedDevice, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Corrupt(format!("dehydrated device: {e}")))
}

impl ReadTxn {
    pub fn dehydrated_device(&self, user: &UserId) -> Result<Option<DehydratedDevice>, StoreError> {
        let t = self.0.open_table(USER_TO_DEHYDRATED_DEVICE)?;
        t.get(user.as_str())?.map(|v| decode(v.value())).transpose()
    }
}

impl WriteCtx<'_> {
    pub fn dehydrated_device(&self, user: &UserId) -> Result<Option<DehydratedDevice>, StoreError> {
        let t = self.txn.open_table(USER_TO_DEHYDRATED_DEVICE)?;
        let v = t.get(user.as_str())?;
        v.map(|v| decode(v.value())).transpose()
    }

    pub fn put_dehydrated_device(
        &mut self,
        user: &UserId,
        device: &DehydratedDevice,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(device)
            .map_err(|e| StoreError::Corrupt(format!("dehydrated device: {e}")))?;
        self.txn.open_table(USER_TO_DEHYDRATED_DEVICE)?.insert(user.as_str(), bytes.as_slice())?;
        Ok(())
    }

    /// Forgets which device is dehydrated (the device itself is removed by
    /// the caller, like any device).
    pub fn delete_dehydrated_device(&mut self, user: &UserId) -> Result<bool, StoreError> {
        Ok(self.txn.open_table(USER_TO_DEHYDRATED_DEVICE)?.remove(user.as_str())?.is_some())
    }
}
