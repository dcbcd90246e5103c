//! Dehydrated devices (MSC3814): the writes that make and remove a user's
//! one dehydrated device. It is an ordinary device of the user (device
//! list, device keys, one-time and fallback keys, to-device inbox) without
//! access tokens; the store only remembers which device it is
//! ([`DehydratedDevice`]). Uploading a new one replaces (deletes) the old
//! one, as the MSC says.

use serde_json::{Value, json};

use crate::account::{self, now_ms, wake_room_mates};
use crate::error::MatrixError;
use crate::ids::{DeviceId, UserId};
use crate::store::{DehydratedDevice, DeviceRecord, ReadTxn, StoreError, WriteCtx};

fn to_vec(v: &Value) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The user's dehydrated device, if it still exists as a device (deleting
/// it through `/devices` removes the device, not this record).
pub fn current(read: &ReadTxn, user: &UserId) -> Result<Option<DehydratedDevice>, MatrixError> {
    let Some(d) = read.dehydrated_device(user)? else { return Ok(None) };
    Ok(read.device(user.localpart(), &DeviceId::from_trusted(d.device_id.clone()))?.map(|_| d))
}

/// The error for "the user has no dehydrated device".
pub fn none() -> MatrixError {
    MatrixError::not_found("No dehydrated device")
}

/// A validated upload: the device with its keys.
pub struct Upload {
    pub device_id: DeviceId,
    pub display_name: Option<String>,
    pub device_data: Value,
    pub device_keys: Value,
    pub one_time_keys: Vec<(String, String, Value)>,
    pub fallback_keys: Vec<(String, String, Value)>,
}

/// Creates the dehydrated device with its keys, replacing (revoking) any
/// earlier one; a logged-in device never becomes the dehydrated one.
pub fn put_dehydrated_device(
    ctx: &mut WriteCtx<'_>,
    user_id: &UserId,
    upload: Upload,
) -> Result<Result<(), MatrixError>, StoreError> {
    let lp = user_id.localpart();
    let d = upload.device_id.as_str();
    let old = ctx.dehydrated_device(user_id)?;
    let replaces = old.as_ref().is_some_and(|o| o.device_id == d);
    if !replaces && ctx.device(lp, &upload.device_id)?.is_some() {
        // Never turn a logged-in device into the dehydrated one.
        return Ok(Err(MatrixError::invalid_param("device_id is in use")));
    }
    if let Some(old) = &old {
        account::revoke_device(ctx, user_id, &DeviceId::from_trusted(old.device_id.clone()))?;
    }
    let record = DeviceRecord {
        display_name: upload.display_name.clone(),
        created_ms: now_ms(),
        last_seen_ms: None,
        last_seen_ip: None,
    };
    ctx.put_device(lp, &upload.device_id, &record)?;
    ctx.put_device_keys(user_id, &upload.device_id, &to_vec(&upload.device_keys)?)?;
    for (alg, id, key) in &upload.one_time_keys {
        ctx.put_one_time_key(user_id, &upload.device_id, alg, id, &to_vec(key)?)?;
    }
    for (alg, id, key) in &upload.fallback_keys {
        let entry = json!({ "key_id": id, "key": key, "used": false });
        ctx.put_fallback_key(user_id, &upload.device_id, alg, &to_vec(&entry)?)?;
    }
    let stored = DehydratedDevice { device_id: d.to_owned(), device_data: upload.device_data };
    ctx.put_dehydrated_device(user_id, &stored)?;
    // Others learn of the new device as of any new device.
    ctx.key_changed(user_id)?;
    wake_room_mates(ctx, user_id)?;
    Ok(Ok(()))
}

/// Deletes the user's dehydrated device; returns its ID.
pub fn delete_dehydrated_device(
    ctx: &mut WriteCtx<'_>,
    user_id: &UserId,
) -> Result<Result<String, MatrixError>, StoreError> {
    let Some(d) = ctx.dehydrated_device(user_id)? else {
        return Ok(Err(none()));
    };
    if ctx.device(user_id.localpart(), &DeviceId::from_trusted(d.device_id.clone()))?.is_none() {
        // Already deleted through `/devices`: there is none.
        return Ok(Err(none()));
    }
    ctx.delete_dehydrated_device(user_id)?;
    account::revoke_device(ctx, user_id, &DeviceId::from_trusted(d.device_id.clone()))?;
    Ok(Ok(d.device_id))
}
