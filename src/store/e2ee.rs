//! End-to-end encryption support data: device keys, one-time and fallback
//! keys, cross-signing keys, the key-change stream, to-device inboxes and
//! room-key backups. The server never reads inside any of it; it stores and
//! serves the JSON the clients sign.

use redb::ReadableTable;

use super::tables::{
    BACKUP_KEY_TO_JSON, BACKUP_VERSION_TO_JSON, CROSS_SIGNING_TO_JSON, DEVICE_KEYS_TO_JSON,
    FALLBACK_KEY_TO_JSON, ONE_TIME_KEY_TO_JSON, STREAM_TO_KEY_CHANGE, TO_DEVICE_TO_JSON,
    USER_DEVICE_TO_INBOX_USAGE,
};
use super::{ReadTxn, StoreError, StreamPos, WriteCtx};
use crate::ids::{DeviceId, UserId};

/// A one-time key: `(key_id, JSON)`.
pub type KeyEntry = (String, Vec<u8>);

macro_rules! e2ee_reads {
    ($t:ty, $txn:tt) => {
        impl $t {
            pub fn device_keys(
                &self,
                user: &UserId,
                device: &DeviceId,
            ) -> Result<Option<Vec<u8>>, StoreError> {
                let user = user.as_str();
                let device = device.as_str();
                let t = self.$txn.open_table(DEVICE_KEYS_TO_JSON)?;
                let v = t.get((user, device))?;
                Ok(v.map(|v| v.value().to_vec()))
            }

            /// Every device's keys of a user: `(device_id, JSON)`.
            pub fn all_device_keys(
                &self,
                user: &UserId,
            ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
                let user = user.as_str();
                let t = self.$txn.open_table(DEVICE_KEYS_TO_JSON)?;
                let mut out = Vec::new();
                for row in t.range((user, "")..)? {
                    let (k, v) = row?;
                    let (u, d) = k.value();
                    if u != user {
                        break;
                    }
                    out.push((d.to_owned(), v.value().to_vec()));
                }
                Ok(out)
            }

            pub fn cross_signing_key(
                &self,
                user: &UserId,
                kind: &str,
            ) -> Result<Option<Vec<u8>>, StoreError> {
                let user = user.as_str();
                let t = self.$txn.open_table(CROSS_SIGNING_TO_JSON)?;
                let v = t.get((user, kind))?;
                Ok(v.map(|v| v.value().to_vec()))
            }

            /// Unclaimed one-time keys per algorithm.
            pub fn one_time_key_counts(
                &self,
                user: &UserId,
                device: &DeviceId,
            ) -> Result<Vec<(String, u64)>, StoreError> {
                let user = user.as_str();
                let device = device.as_str();
                let t = self.$txn.open_table(ONE_TIME_KEY_TO_JSON)?;
                let mut out: Vec<(String, u64)> = Vec::new();
                for row in t.range((user, device, "", "")..)? {
                    let (k, _) = row?;
                    let (u, d, alg, _) = k.value();
                    if u != user || d != device {
                        break;
                    }
                    match out.last_mut() {
                        Some((a, n)) if a == alg => *n += 1,
                        _ => out.push((alg.to_owned(), 1)),
                    }
                }
                Ok(out)
            }

            /// Algorithms with an unused fallback key.
            pub fn unused_fallback_types(
                &self,
                user: &UserId,
                device: &DeviceId,
            ) -> Result<Vec<String>, StoreError> {
                let user = user.as_str();
                let device = device.as_str();
                let t = self.$txn.open_table(FALLBACK_KEY_TO_JSON)?;
                let mut out = Vec::new();
                for row in t.range((user, device, "")..)? {
                    let (k, v) = row?;
                    let (u, d, alg) = k.value();
                    if u != user || d != device {
                        break;
                    }
                    let used = serde_json::from_slice::<serde_json::Value>(v.value())
                        .ok()
                        .and_then(|j| j.get("used").and_then(serde_json::Value::as_bool))
                        .unwrap_or(false);
                    if !used {
                        out.push(alg.to_owned());
                    }
                }
                Ok(out)
            }

            pub fn backup_version(
                &self,
                user: &UserId,
                version: u64,
            ) -> Result<Option<Vec<u8>>, StoreError> {
                let user = user.as_str();
                let t = self.$txn.open_table(BACKUP_VERSION_TO_JSON)?;
                let v = t.get((user, version))?;
                Ok(v.map(|v| v.value().to_vec()))
            }

            /// The newest backup version of a user: `(version, JSON)`.
            pub fn latest_backup_version(
                &self,
                user: &UserId,
            ) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
                let user = user.as_str();
                let t = self.$txn.open_table(BACKUP_VERSION_TO_JSON)?;
                let mut r = t.range((user, 0)..=(user, u64::MAX))?;
                match r.next_back() {
                    Some(row) => {
                        let (k, v) = row?;
                        Ok(Some((k.value().1, v.value().to_vec())))
                    }
                    None => Ok(None),
                }
            }

            /// Backed-up sessions of a version, optionally of one room / session:
            /// `(room_id, session_id, JSON)`.
            pub fn backup_keys(
                &self,
                user: &UserId,
                version: u64,
                room: Option<&str>,
                session: Option<&str>,
            ) -> Result<Vec<(String, String, Vec<u8>)>, StoreError> {
                let user = user.as_str();
                let t = self.$txn.open_table(BACKUP_KEY_TO_JSON)?;
                let mut out = Vec::new();
                let start = (user, version, room.unwrap_or(""), session.unwrap_or(""));
                for row in t.range(start..)? {
                    let (k, v) = row?;
                    let (u, ver, r, s) = k.value();
                    if u != user || ver != version {
                        break;
                    }
                    if room.is_some_and(|x| x != r) {
                        break;
                    }
                    if session.is_some_and(|x| x != s) {
                        break;
                    }
                    out.push((r.to_owned(), s.to_owned(), v.value().to_vec()));
                }
                Ok(out)
            }
        }
    };
}

e2ee_reads!(ReadTxn, 0);
e2ee_reads!(WriteCtx<'_>, txn);

impl ReadTxn {
    /// Users whose keys changed with `after < stream <= upto`.
    pub fn key_changes(
        &self,
        after: StreamPos,
        upto: StreamPos,
    ) -> Result<Vec<String>, StoreError> {
        let t = self.0.open_table(STREAM_TO_KEY_CHANGE)?;
        let mut out = Vec::new();
        if after >= upto {
            return Ok(out);
        }
        for row in t.range(after.0 + 1..=upto.0)? {
            let (_, v) = row?;
            out.push(v.value().to_owned());
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// To-device messages for a device with `after < stream <= upto`, oldest
    /// first, at most `limit`.
    pub fn to_device(
        &self,
        user: &UserId,
        device: &DeviceId,
        after: StreamPos,
        upto: StreamPos,
        limit: usize,
    ) -> Result<Vec<(StreamPos, Vec<u8>)>, StoreError> {
        let user = user.as_str();
        let device = device.as_str();
        let t = self.0.open_table(TO_DEVICE_TO_JSON)?;
        let mut out = Vec::new();
        for row in t.range((user, device, after.0 + 1)..=(user, device, upto.0))?.take(limit) {
            let (k, v) = row?;
            out.push((StreamPos(k.value().2), v.value().to_vec()));
        }
        Ok(out)
    }
}

impl WriteCtx<'_> {
    /// Records that `user`'s keys (or device list) changed.
    pub fn key_changed(&mut self, user: &UserId) -> Result<StreamPos, StoreError> {
        let user = user.as_str();
        let pos = self.next_position();
        self.txn.open_table(STREAM_TO_KEY_CHANGE)?.insert(pos.0, user)?;
        Ok(pos)
    }

    pub fn put_device_keys(
        &mut self,
        user: &UserId,
        device: &DeviceId,
        json: &[u8],
    ) -> Result<(), StoreError> {
        let user = user.as_str();
        let device = device.as_str();
        self.txn.open_table(DEVICE_KEYS_TO_JSON)?.insert((user, device), json)?;
        Ok(())
    }

    pub fn put_cross_signing_key(
        &mut self,
        user: &UserId,
        kind: &str,
        json: &[u8],
    ) -> Result<(), StoreError> {
        let user = user.as_str();
        self.txn.open_table(CROSS_SIGNING_TO_JSON)?.insert((user, kind), json)?;
        Ok(())
    }

    pub fn one_time_key(
        &self,
        user: &UserId,
        device: &DeviceId,
        alg: &str,
        key_id: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let user = user.as_str();
        let device = device.as_str();
        let t = self.txn.open_table(ONE_TIME_KEY_TO_JSON)?;
        let v = t.get((user, device, alg, key_id))?;
        Ok(v.map(|v| v.value().to_vec()))
    }

    pub fn put_one_time_key(
        &mut self,
        user: &UserId,
        device: &DeviceId,
        alg: &str,
        key_id: &str,
        json: &[u8],
    ) -> Result<(), StoreError> {
        let user = user.as_str();
        let device = device.as_str();
        self.txn.open_table(ONE_TIME_KEY_TO_JSON)?.insert((user, device, alg, key_id), json)?;
        Ok(())
    }

    /// Removes and returns one unclaimed key of `alg` (the lowest key ID).
    pub fn claim_one_time_key(
        &mut self,
        user: &UserId,
        device: &DeviceId,
        alg: &str,
    ) -> Result<Option<KeyEntry>, StoreError> {
        let user = user.as_str();
        let device = device.as_str();
        let mut t = self.txn.open_table(ONE_TIME_KEY_TO_JSON)?;
        let found = {
            let mut r = t.range((user, device, alg, "")..)?;
            match r.next() {
                Some(row) => {
                    let (k, v) = row?;
                    let (u, d, a, id) = k.value();
                    if u == user && d == device && a == alg {
                        Some((id.to_owned(), v.value().to_vec()))
                    } else {
                        None
                    }
                }
                None => None,
            }
        };
        if let Some((id, _)) = &found {
            t.remove((user, device, alg, id.as_str()))?;
        }
        Ok(found)
    }

    pub fn fallback_key(
        &self,
        user: &UserId,
        device: &DeviceId,
        alg: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let user = user.as_str();
        let device = device.as_str();
        let t = self.txn.open_table(FALLBACK_KEY_TO_JSON)?;
        let v = t.get((user, device, alg))?;
        Ok(v.map(|v| v.value().to_vec()))
    }

    /// The algorithms a device has a fallback key for, used or not.
    pub fn fallback_algorithms(
        &self,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<Vec<String>, StoreError> {
        let user = user.as_str();
        let device = device.as_str();
        let t = self.txn.open_table(FALLBACK_KEY_TO_JSON)?;
        let mut out = Vec::new();
        for row in t.range((user, device, "")..)? {
            let (k, _) = row?;
            let (u, d, a) = k.value();
            if u != user || d != device {
                break;
            }
            out.push(a.to_owned());
        }
        Ok(out)
    }

    /// Stores `{key_id, key, used}` for an algorithm.
    pub fn put_fallback_key(
        &mut self,
        user: &UserId,
        device: &DeviceId,
        alg: &str,
        json: &[u8],
    ) -> Result<(), StoreError> {
        let user = user.as_str();
        let device = device.as_str();
        self.txn.open_table(FALLBACK_KEY_TO_JSON)?.insert((user, device, alg), json)?;
        Ok(())
    }

    /// Removes every key and inbox message of a device.
    pub fn delete_device_e2ee(
        &mut self,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<(), StoreError> {
        let algs = self.fallback_algorithms(user, device)?;
        let user = user.as_str();
        let device = device.as_str();
        self.txn.open_table(DEVICE_KEYS_TO_JSON)?.remove((user, device))?;
        {
            let mut t = self.txn.open_table(ONE_TIME_KEY_TO_JSON)?;
            let keys: Vec<(String, String)> = {
                let mut v = Vec::new();
                for row in t.range((user, device, "", "")..)? {
                    let (k, _) = row?;
                    let (u, d, a, id) = k.value();
                    if u != user || d != device {
                        break;
                    }
                    v.push((a.to_owned(), id.to_owned()));
                }
                v
            };
            for (a, id) in keys {
                t.remove((user, device, a.as_str(), id.as_str()))?;
            }
        }
        {
            let mut t = self.txn.open_table(FALLBACK_KEY_TO_JSON)?;
            for a in algs {
                t.remove((user, device, a.as_str()))?;
            }
        }
        self.delete_inbox_upto(user, device, StreamPos(u64::MAX))?;
        Ok(())
    }

    pub fn put_to_device(
        &mut self,
        user: &UserId,
        device: &DeviceId,
        json: &[u8],
    ) -> Result<StreamPos, StoreError> {
        let user = user.as_str();
        let device = device.as_str();
        let (count, bytes) = self.inbox_usage(user, device)?;
        let pos = self.next_position();
        self.txn.open_table(TO_DEVICE_TO_JSON)?.insert((user, device, pos.0), json)?;
        self.set_to_device_usage(user, device, (count + 1, bytes + json.len() as u64))?;
        self.wake_user(user);
        Ok(pos)
    }

    /// How many messages a device's to-device inbox holds and their bytes
    /// (for the caps in `quota`): one lookup, or a count of the inbox when
    /// it predates the usage table.
    pub fn to_device_usage(
        &self,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<(u64, u64), StoreError> {
        self.inbox_usage(user.as_str(), device.as_str())
    }

    fn inbox_usage(&self, user: &str, device: &str) -> Result<(u64, u64), StoreError> {
        if let Some(v) = self.txn.open_table(USER_DEVICE_TO_INBOX_USAGE)?.get((user, device))? {
            return Ok(v.value());
        }
        let t = self.txn.open_table(TO_DEVICE_TO_JSON)?;
        let (mut count, mut bytes) = (0, 0);
        for row in t.range((user, device, 0)..=(user, device, u64::MAX))? {
            let (_, v) = row?;
            count += 1;
            bytes += v.value().len() as u64;
        }
        Ok((count, bytes))
    }

    fn set_to_device_usage(
        &mut self,
        user: &str,
        device: &str,
        usage: (u64, u64),
    ) -> Result<(), StoreError> {
        let mut t = self.txn.open_table(USER_DEVICE_TO_INBOX_USAGE)?;
        if usage.0 == 0 {
            t.remove((user, device))?;
        } else {
            t.insert((user, device), usage)?;
        }
        Ok(())
    }

    /// Deletes a device's to-device messages with `stream <= upto` (the
    /// client acknowledged them by syncing with a later `since`).
    pub fn delete_to_device_upto(
        &mut self,
        user: &UserId,
        device: &DeviceId,
        upto: StreamPos,
    ) -> Result<usize, StoreError> {
        self.delete_inbox_upto(user.as_str(), device.as_str(), upto)
    }

    fn delete_inbox_upto(
        &mut self,
        user: &str,
        device: &str,
        upto: StreamPos,
    ) -> Result<usize, StoreError> {
        let (keys, freed) = {
            let t = self.txn.open_table(TO_DEVICE_TO_JSON)?;
            let (mut keys, mut freed) = (Vec::new(), 0);
            for row in t.range((user, device, 0)..=(user, device, upto.0))? {
                let (k, v) = row?;
                keys.push(k.value().2);
                freed += v.value().len() as u64;
            }
            (keys, freed)
        };
        if keys.is_empty() {
            return Ok(0);
        }
        let usage = self
            .txn
            .open_table(USER_DEVICE_TO_INBOX_USAGE)?
            .get((user, device))?
            .map(|v| v.value());
        {
            let mut t = self.txn.open_table(TO_DEVICE_TO_JSON)?;
            for k in &keys {
                t.remove((user, device, *k))?;
            }
        }
        // Without a usage row the inbox predates the table: it is counted
        // afresh when the next message comes.
        if let Some((count, bytes)) = usage {
            let left = (count.saturating_sub(keys.len() as u64), bytes.saturating_sub(freed));
            self.set_to_device_usage(user, device, left)?;
        }
        Ok(keys.len())
    }

    pub fn put_backup_version(
        &mut self,
        user: &UserId,
        version: u64,
        json: &[u8],
    ) -> Result<(), StoreError> {
        let user = user.as_str();
        self.txn.open_table(BACKUP_VERSION_TO_JSON)?.insert((user, version), json)?;
        Ok(())
    }

    pub fn put_backup_key(
        &mut self,
        user: &UserId,
        version: u64,
        room: &str,
        session: &str,
        json: &[u8],
    ) -> Result<(), StoreError> {
        let user = user.as_str();
        self.txn.open_table(BACKUP_KEY_TO_JSON)?.insert((user, version, room, session), json)?;
        Ok(())
    }

    pub fn delete_backup_keys(
        &mut self,
        user: &UserId,
        version: u64,
        room: Option<&str>,
        session: Option<&str>,
    ) -> Result<usize, StoreError> {
        let victims: Vec<(String, String)> = self
            .backup_keys(user, version, room, session)?
            .into_iter()
            .map(|(r, s, _)| (r, s))
            .collect();
        let mut t = self.txn.open_table(BACKUP_KEY_TO_JSON)?;
        for (r, s) in &victims {
            t.remove((user.as_str(), version, r.as_str(), s.as_str()))?;
        }
        Ok(victims.len())
    }
}
