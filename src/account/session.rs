//! Devices and their tokens: issuing on login/registration, refreshing,
//! revoking, and resolving an access token to its caller.
//!
//! Tokens are 256 random bits from the OS, sent as URL-safe base64 with a
//! `hth_` prefix; only their blake3 hashes are stored.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use super::now_ms;
use crate::config::Config;
use crate::error::{ErrorKind, MatrixError};
use crate::ids::{DeviceId, UserId};
use crate::membership::Membership;
use crate::store::{DeviceRecord, Store, StoreError, TokenKind, TokenRecord, WriteCtx, hash_token};

/// Who made a request: the user and device an access token resolves to,
/// the token itself (by hash) and what an admin decided about the account.
/// It says who, not how: the API layer attaches it to a request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user_id: UserId,
    pub device_id: DeviceId,
    /// blake3 of the access token used (logout revokes exactly this one).
    pub token_hash: [u8; 32],
    pub admin: bool,
    /// Locked or suspended by an admin (spec: account moderation).
    pub locked: bool,
    pub suspended: bool,
}

/// A fresh random token (or device ID material).
pub fn generate_token() -> Result<String, MatrixError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| MatrixError::internal("OS randomness", e))?;
    Ok(format!("hth_{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// A random device ID: ten upper-case letters, like other servers issue,
/// short enough to read out when verifying devices.
fn generate_device_id() -> Result<DeviceId, MatrixError> {
    let mut bytes = [0u8; 10];
    getrandom::fill(&mut bytes).map_err(|e| MatrixError::internal("OS randomness", e))?;
    Ok(DeviceId::from_trusted(bytes.iter().map(|b| char::from(b'A' + b % 26)).collect()))
}

/// What login and registration return to the client.
#[derive(Debug, Clone)]
pub struct IssuedSession {
    pub device_id: DeviceId,
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in_ms: Option<u64>,
}

/// The tokens for one new session, made before the write so the random
/// source is not touched on the writer thread.
pub struct SessionPlan {
    device_id: DeviceId,
    device_given: bool,
    display_name: Option<String>,
    access: String,
    refresh: Option<String>,
    lifetime_ms: u64,
    server_name: String,
    max_devices: usize,
}

impl SessionPlan {
    pub fn new(
        config: &Config,
        device_id: Option<String>,
        display_name: Option<String>,
        want_refresh: bool,
    ) -> Result<SessionPlan, MatrixError> {
        let device_given = device_id.is_some();
        let device_id = match device_id {
            Some(d) => DeviceId::parse(&d).map_err(|e| MatrixError::invalid_param(e.0))?,
            None => generate_device_id()?,
        };
        Ok(SessionPlan {
            device_id,
            device_given,
            display_name,
            access: generate_token()?,
            refresh: if want_refresh { Some(generate_token()?) } else { None },
            lifetime_ms: config.access_token_lifetime_ms,
            server_name: config.server_name.clone(),
            max_devices: config.max_devices_per_user,
        })
    }
}

/// Creates (or reuses) the device and stores its new tokens. Runs inside a
/// write batch, after the caller's checks. Reusing a device ID revokes the
/// tokens it had (spec: "Relationship between access tokens and devices").
pub fn issue_session(
    ctx: &mut WriteCtx<'_>,
    localpart: &str,
    plan: SessionPlan,
) -> Result<IssuedSession, StoreError> {
    let now = now_ms();
    if plan.device_given && ctx.device(localpart, &plan.device_id)?.is_some() {
        ctx.delete_device_tokens(localpart, &plan.device_id)?;
    } else {
        prune_devices(ctx, localpart, &plan.server_name, plan.max_devices.saturating_sub(1))?;
        let record = DeviceRecord {
            display_name: plan.display_name.clone(),
            created_ms: now,
            last_seen_ms: Some(now),
            last_seen_ip: None,
        };
        ctx.put_device(localpart, &plan.device_id, &record)?;
    }
    store_pair(
        ctx,
        localpart,
        &plan.device_id,
        &plan.access,
        plan.refresh.as_deref(),
        None,
        now,
        plan.lifetime_ms,
    )?;
    Ok(IssuedSession {
        device_id: plan.device_id,
        expires_in_ms: plan.refresh.as_ref().map(|_| plan.lifetime_ms),
        access_token: plan.access,
        refresh_token: plan.refresh,
    })
}

/// Deletes a user's least recently seen devices until at most `keep`
/// remain, so that a new login never fails for having too many (a bot that
/// logs in without logging out, a lock-out otherwise) while the device
/// table stays bounded. Devices without keys go first: deleting one cannot
/// cost anyone encrypted messages; the dehydrated device is kept.
fn prune_devices(
    ctx: &mut WriteCtx<'_>,
    localpart: &str,
    server_name: &str,
    keep: usize,
) -> Result<(), StoreError> {
    let ids = ctx.device_ids(localpart)?;
    if ids.len() <= keep {
        return Ok(());
    }
    let user_id = UserId::new_local(localpart, server_name)
        .or_else(|_| UserId::parse(&format!("@{localpart}:{server_name}")))
        .map_err(|e| StoreError::Corrupt(format!("stored localpart {localpart:?}: {}", e.0)))?;
    let dehydrated = ctx.dehydrated_device(&user_id)?.map(|d| d.device_id);
    let mut ranked = Vec::with_capacity(ids.len());
    for id in ids {
        if dehydrated.as_deref() == Some(id.as_str()) {
            continue;
        }
        let did = DeviceId::from_trusted(id.clone());
        let seen =
            ctx.device(localpart, &did)?.map_or(0, |d| d.last_seen_ms.unwrap_or(d.created_ms));
        let has_keys = ctx.device_keys(&user_id, &did)?.is_some();
        ranked.push((has_keys, seen, id));
    }
    ranked.sort();
    let excess = (ranked.len() + usize::from(dehydrated.is_some())).saturating_sub(keep);
    for (_, _, id) in ranked.into_iter().take(excess) {
        tracing::info!("{user_id} has too many devices: deleting the least recently seen, {id}");
        revoke_device(ctx, &user_id, &DeviceId::from_trusted(id))?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn store_pair(
    ctx: &mut WriteCtx<'_>,
    localpart: &str,
    device_id: &DeviceId,
    access: &str,
    refresh: Option<&str>,
    parent: Option<[u8; 32]>,
    now: u64,
    lifetime_ms: u64,
) -> Result<(), StoreError> {
    let access_hash = hash_token(access);
    let refresh_hash = refresh.map(hash_token);
    let parent = parent.map(hex);
    ctx.put_token(
        &access_hash,
        &TokenRecord {
            kind: TokenKind::Access,
            localpart: localpart.to_owned(),
            device_id: device_id.to_string(),
            // Only clients that can refresh get expiring tokens.
            expires_ms: refresh_hash.map(|_| now + lifetime_ms),
            pair: refresh_hash.map(hex),
            parent: parent.clone(),
        },
    )?;
    if let Some(rh) = refresh_hash {
        ctx.put_token(
            &rh,
            &TokenRecord {
                kind: TokenKind::Refresh,
                localpart: localpart.to_owned(),
                device_id: device_id.to_string(),
                expires_ms: None,
                pair: Some(hex(access_hash)),
                parent,
            },
        )?;
    }
    Ok(())
}

fn hex(bytes: [u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The first use of a refreshed pair retires the refresh token it came from
/// (and that token's access token), then clears the link.
fn promote_pair(ctx: &mut WriteCtx<'_>, used: &[u8; 32]) -> Result<(), StoreError> {
    let Some(record) = ctx.token(used)? else { return Ok(()) };
    let Some(parent) = record.parent.as_deref().and_then(unhex) else { return Ok(()) };
    if let Some(old) = ctx.delete_token(&parent)?
        && let Some(old_pair) = old.pair.as_deref().and_then(unhex)
    {
        ctx.delete_token(&old_pair)?;
    }
    let mut mine = record;
    mine.parent = None;
    let partner = mine.pair.as_deref().and_then(unhex);
    ctx.put_token(used, &mine)?;
    if let Some(p) = partner
        && let Some(mut other) = ctx.token(&p)?
    {
        other.parent = None;
        ctx.put_token(&p, &other)?;
    }
    Ok(())
}

fn unknown_token(soft_logout: bool) -> MatrixError {
    MatrixError::new(ErrorKind::UnknownToken, "Unknown or expired access token")
        .with_extra("soft_logout", Value::Bool(soft_logout))
}

/// Resolves an access token to its caller, a user of `server_name`.
pub async fn authenticate(
    store: &Store,
    server_name: &str,
    token: &str,
) -> Result<Caller, MatrixError> {
    let hash = hash_token(token);
    let read = store.read()?;
    let Some(record) = read.token(&hash)? else { return Err(unknown_token(false)) };
    if record.kind != TokenKind::Access {
        return Err(unknown_token(false));
    }
    if record.expires_ms.is_some_and(|e| e <= now_ms()) {
        // The device lives on: the client may refresh or log in again with
        // the same device ID and keep its keys.
        return Err(unknown_token(true));
    }
    let user = read.user(&record.localpart)?;
    let Some(user) = user.filter(|u| !u.deactivated) else { return Err(unknown_token(false)) };
    drop(read);
    if record.parent.is_some() {
        store
            .write(move |ctx| {
                promote_pair(ctx, &hash)?;
                Ok(Ok::<_, MatrixError>(()))
            })
            .await?;
    }
    let user_id = UserId::new_local(&record.localpart, server_name)
        .or_else(|_| UserId::parse(&format!("@{}:{server_name}", record.localpart)))
        .map_err(|e| MatrixError::internal("stored localpart", e))?;
    let device_id = DeviceId::parse(&record.device_id)
        .map_err(|e| MatrixError::internal("stored device", e))?;
    Ok(Caller {
        user_id,
        device_id,
        token_hash: hash,
        admin: user.admin,
        locked: user.locked,
        suspended: user.suspended,
    })
}

/// `POST /refresh`: trades a refresh token for a new pair. The old refresh
/// token stays valid until the new pair is first used; the new access
/// token lives `lifetime` milliseconds.
pub async fn refresh_session(
    store: &Store,
    lifetime: u64,
    refresh_token: &str,
) -> Result<IssuedSession, MatrixError> {
    let hash = hash_token(refresh_token);
    let access = generate_token()?;
    let refresh = generate_token()?;
    store
        .write(move |ctx| {
            let Some(record) = ctx.token(&hash)? else {
                return Ok(Err(MatrixError::new(ErrorKind::UnknownToken, "Unknown refresh token")
                    .with_extra("soft_logout", Value::Bool(false))));
            };
            if record.kind != TokenKind::Refresh {
                return Ok(Err(MatrixError::new(ErrorKind::UnknownToken, "Not a refresh token")
                    .with_extra("soft_logout", Value::Bool(false))));
            }
            // Using this token is the first use of its pair.
            promote_pair(ctx, &hash)?;
            // A pair minted from this token earlier and never used was lost
            // by the client: retire it so only the newest pair stays.
            // The token's device, as stored when the token was issued.
            let device_id = DeviceId::from_trusted(record.device_id);
            retire_unused_children(ctx, &record.localpart, &device_id, &hash)?;
            let now = now_ms();
            store_pair(
                ctx,
                &record.localpart,
                &device_id,
                &access,
                Some(&refresh),
                Some(hash),
                now,
                lifetime,
            )?;
            Ok(Ok(IssuedSession {
                device_id,
                access_token: access,
                refresh_token: Some(refresh),
                expires_in_ms: Some(lifetime),
            }))
        })
        .await
}

fn retire_unused_children(
    ctx: &mut WriteCtx<'_>,
    localpart: &str,
    device_id: &DeviceId,
    parent: &[u8; 32],
) -> Result<(), StoreError> {
    let parent_hex = hex(*parent);
    for h in ctx.device_token_hashes(localpart, device_id)? {
        if let Some(r) = ctx.token(&h)?
            && r.parent.as_deref() == Some(parent_hex.as_str())
        {
            ctx.delete_token(&h)?;
        }
    }
    Ok(())
}

/// Deletes a device with its tokens, keys and to-device inbox, and tells
/// the user's room-mates that the device list changed. Returns whether it
/// existed.
pub fn revoke_device(
    ctx: &mut WriteCtx<'_>,
    user_id: &UserId,
    device_id: &DeviceId,
) -> Result<bool, StoreError> {
    let existed = ctx.delete_device(user_id.localpart(), device_id)?;
    ctx.delete_device_e2ee(user_id, device_id)?;
    if existed {
        ctx.key_changed(user_id)?;
        wake_room_mates(ctx, user_id)?;
    }
    Ok(existed)
}

/// Wakes everyone who shares a room with `user_id` (and the user).
pub fn wake_room_mates(ctx: &mut WriteCtx<'_>, user_id: &UserId) -> Result<(), StoreError> {
    ctx.wake_user(user_id.as_str());
    for room in ctx.joined_room_shorts(user_id)? {
        for m in ctx.members_with(room, Membership::Join)? {
            ctx.wake_user(&m);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_distinct() {
        let a = generate_token().expect("token");
        let b = generate_token().expect("token");
        assert_ne!(a, b);
        assert!(a.len() >= 40);
        assert!(a.starts_with("hth_"));
    }

    #[test]
    fn hex_round_trips() {
        let h = hash_token("x");
        assert_eq!(unhex(&hex(h)), Some(h));
        assert_eq!(unhex("zz"), None);
    }

    #[test]
    fn device_ids_are_ten_capital_letters() {
        let d = generate_device_id().expect("id").to_string();
        assert_eq!(d.len(), 10);
        assert!(d.bytes().all(|c| c.is_ascii_uppercase()));
    }
}
