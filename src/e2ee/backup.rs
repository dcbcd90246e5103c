//! Server-side room key backup records (spec: end_to_end_encryption,
//! "Server-side key backups"): versions numbered per user, of which only the
//! newest not-deleted one is current and writable; per-session keys that a
//! better copy replaces; an `etag` that changes whenever the stored keys do.
//!
//! A version's record is the JSON `{algorithm, auth_data, etag, deleted}`;
//! a deleted version keeps its record (numbers are never reused).

use serde_json::{Value, json};

use crate::error::{ErrorKind, MatrixError};
use crate::ids::UserId;
use crate::store::{ReadTxn, StoreError, WriteCtx};

/// A stored version record or key, parsed.
pub fn parse(bytes: &[u8]) -> Result<Value, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn to_vec(v: &Value) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The current (newest, not deleted) version: `(version, record)`.
pub fn current(read: &ReadTxn, user: &UserId) -> Result<Option<(u64, Value)>, MatrixError> {
    match read.latest_backup_version(user)? {
        Some((v, b)) => {
            let rec = parse(&b)?;
            if rec["deleted"] == true { Ok(None) } else { Ok(Some((v, rec))) }
        }
        None => Ok(None),
    }
}

/// Creates the user's next version (one above the newest ever made) and
/// returns its number.
pub fn create_version(
    ctx: &mut WriteCtx<'_>,
    user: &UserId,
    algorithm: String,
    auth_data: Value,
) -> Result<Result<u64, MatrixError>, StoreError> {
    let next = ctx.latest_backup_version(user)?.map(|(v, _)| v + 1).unwrap_or(1);
    let rec =
        json!({ "algorithm": algorithm, "auth_data": auth_data, "etag": 0, "deleted": false });
    ctx.put_backup_version(user, next, &to_vec(&rec)?)?;
    Ok(Ok(next))
}

/// Replaces a version's `auth_data`; its algorithm may not change.
pub fn update_version(
    ctx: &mut WriteCtx<'_>,
    user: &UserId,
    v: u64,
    algorithm: String,
    auth_data: Value,
) -> Result<Result<(), MatrixError>, StoreError> {
    let Some(mut rec) = live_version(ctx, user, v)? else { return Ok(Err(unknown_version())) };
    if rec["algorithm"] != algorithm.as_str() {
        return Ok(Err(MatrixError::invalid_param(
            "the algorithm of a backup version cannot change",
        )));
    }
    rec["auth_data"] = auth_data;
    ctx.put_backup_version(user, v, &to_vec(&rec)?)?;
    Ok(Ok(()))
}

/// Marks a version deleted and drops its keys.
pub fn delete_version(
    ctx: &mut WriteCtx<'_>,
    user: &UserId,
    v: u64,
) -> Result<Result<(), MatrixError>, StoreError> {
    let Some(mut rec) = live_version(ctx, user, v)? else { return Ok(Err(unknown_version())) };
    rec["deleted"] = json!(true);
    // The record stays (version numbers are never reused), its
    // auth data need not: a create/delete loop leaves only bytes.
    rec["auth_data"] = json!({});
    ctx.put_backup_version(user, v, &to_vec(&rec)?)?;
    ctx.delete_backup_keys(user, v, None, None)?;
    Ok(Ok(()))
}

/// Is `new` a better copy of a session than `old`? (spec: "the new key
/// replaces the old one if …" verified beats unverified, then lower
/// `first_message_index`, then lower `forwarded_count`).
fn better(new: &Value, old: &Value) -> bool {
    let ver = |v: &Value| v["is_verified"].as_bool().unwrap_or(false);
    let idx = |v: &Value| v["first_message_index"].as_u64().unwrap_or(u64::MAX);
    let fwd = |v: &Value| v["forwarded_count"].as_u64().unwrap_or(u64::MAX);
    if ver(new) != ver(old) {
        return ver(new);
    }
    if idx(new) != idx(old) {
        return idx(new) < idx(old);
    }
    fwd(new) < fwd(old)
}

/// `{etag, count}` of a version, as the key operations answer.
fn etag_and_count(ctx: &WriteCtx<'_>, user: &UserId, v: u64) -> Result<Value, StoreError> {
    let rec = ctx.backup_version(user, v)?.map(|b| parse(&b)).transpose()?.unwrap_or(Value::Null);
    let count = ctx.backup_keys(user, v, None, None)?.len();
    Ok(json!({ "etag": rec["etag"].as_u64().unwrap_or(0).to_string(), "count": count }))
}

fn bump_etag(ctx: &mut WriteCtx<'_>, user: &UserId, v: u64) -> Result<(), StoreError> {
    if let Some(b) = ctx.backup_version(user, v)? {
        let mut rec = parse(&b)?;
        rec["etag"] = json!(rec["etag"].as_u64().unwrap_or(0) + 1);
        ctx.put_backup_version(user, v, &to_vec(&rec)?)?;
    }
    Ok(())
}

/// The record of version `v` unless it is unknown or deleted.
fn live_version(ctx: &WriteCtx<'_>, user: &UserId, v: u64) -> Result<Option<Value>, StoreError> {
    let Some(b) = ctx.backup_version(user, v)? else { return Ok(None) };
    let rec = parse(&b)?;
    Ok((rec["deleted"] != true).then_some(rec))
}

fn unknown_version() -> MatrixError {
    MatrixError::not_found("Unknown backup version")
}

/// Stores `(room, session, data)` keys into version `v`, which must be the
/// current one, each unless the stored copy is better; answers
/// `{etag, count}`.
pub fn put_keys(
    ctx: &mut WriteCtx<'_>,
    user: &UserId,
    v: u64,
    entries: &[(String, String, Value)],
) -> Result<Result<Value, MatrixError>, StoreError> {
    let cur = match ctx.latest_backup_version(user)? {
        Some((cv, b)) if parse(&b)?["deleted"] != true => Some(cv),
        _ => None,
    };
    match cur {
        Some(cv) if cv == v => {}
        Some(cv) => {
            return Ok(Err(MatrixError::new(
                ErrorKind::WrongRoomKeysVersion,
                "Wrong backup version",
            )
            .with_extra("current_version", json!(cv.to_string()))));
        }
        None => return Ok(Err(unknown_version())),
    }
    let mut changed = false;
    for (room, session, data) in entries {
        let old = ctx.backup_keys(user, v, Some(room), Some(session))?;
        let keep_old = match old.first() {
            Some((_, _, b)) => !better(data, &parse(b)?),
            None => false,
        };
        if !keep_old {
            ctx.put_backup_key(user, v, room, session, &to_vec(data)?)?;
            changed = true;
        }
    }
    if changed {
        bump_etag(ctx, user, v)?;
    }
    Ok(Ok(etag_and_count(ctx, user, v)?))
}

/// Deletes the keys of version `v` (all, a room's, or one session's);
/// answers `{etag, count}`.
pub fn delete_keys(
    ctx: &mut WriteCtx<'_>,
    user: &UserId,
    v: u64,
    room: Option<&str>,
    session: Option<&str>,
) -> Result<Result<Value, MatrixError>, StoreError> {
    if live_version(ctx, user, v)?.is_none() {
        return Ok(Err(unknown_version()));
    }
    let n = ctx.delete_backup_keys(user, v, room, session)?;
    if n > 0 {
        bump_etag(ctx, user, v)?;
    }
    Ok(Ok(etag_and_count(ctx, user, v)?))
}
