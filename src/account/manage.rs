//! The writes that change an account as a whole: registration, password
//! change, deactivation, renaming and revoking devices, and an admin's
//! lock or suspension. Each runs inside one writer batch, its checks
//! against the transaction, and answers a refusal as its own
//! `MatrixError` (the batch is not failed).

use super::now_ms;
use super::session::{IssuedSession, SessionPlan, issue_session, revoke_device};
use crate::error::{ErrorKind, MatrixError};
use crate::ids::{DeviceId, UserId};
use crate::store::{StoreError, UserRecord, WriteCtx};

/// Creates a local account, spending one use of `registration_token` when
/// registration is token-based, and logs it in when `plan` is given.
pub fn register(
    ctx: &mut WriteCtx<'_>,
    user_id: &UserId,
    registration_token: Option<&str>,
    password_hash: Option<String>,
    plan: Option<SessionPlan>,
) -> Result<Result<Option<IssuedSession>, MatrixError>, StoreError> {
    let lp = user_id.localpart();
    let taken = || Ok(Err(MatrixError::new(ErrorKind::UserInUse, "User ID already taken")));
    if ctx.user(lp)?.is_some() {
        return taken();
    }
    if let Some(t) = registration_token {
        // Re-checked inside the writer: two registrations racing for
        // the last use of a token cannot both win.
        let Some(mut record) = ctx.registration_token(t)? else {
            return Ok(Err(MatrixError::new(
                ErrorKind::Unauthorized,
                "Invalid registration token",
            )));
        };
        if !record.is_usable(now_ms()) {
            return Ok(Err(MatrixError::new(
                ErrorKind::Unauthorized,
                "Registration token is used up or expired",
            )));
        }
        record.completed += 1;
        ctx.put_registration_token(t, &record)?;
    }
    let record = UserRecord { password_hash, created_ms: now_ms(), ..UserRecord::default() };
    if !ctx.create_user(lp, record)? {
        return taken();
    }
    let issued = match plan {
        Some(plan) => Some(issue_session(ctx, lp, plan)?),
        None => None,
    };
    Ok(Ok(issued))
}

/// Sets a new password hash; with `logout_devices`, revokes every device
/// but `keep` (the one that asked, when a device asked).
pub fn set_password(
    ctx: &mut WriteCtx<'_>,
    user_id: &UserId,
    password_hash: String,
    logout_devices: bool,
    keep: Option<&DeviceId>,
) -> Result<Result<(), MatrixError>, StoreError> {
    let Some(mut user) = ctx.user(user_id.localpart())? else {
        return Ok(Err(MatrixError::not_found("No such user")));
    };
    user.password_hash = Some(password_hash);
    ctx.put_user(user_id.localpart(), &user)?;
    if logout_devices {
        revoke_devices_except(ctx, user_id, keep)?;
    }
    Ok(Ok(()))
}

/// Deactivates an account: no password any more, no device left.
pub fn deactivate(
    ctx: &mut WriteCtx<'_>,
    user_id: &UserId,
) -> Result<Result<(), MatrixError>, StoreError> {
    let Some(mut user) = ctx.user(user_id.localpart())? else {
        return Ok(Err(MatrixError::not_found("No such user")));
    };
    user.deactivated = true;
    user.password_hash = None;
    ctx.put_user(user_id.localpart(), &user)?;
    revoke_devices_except(ctx, user_id, None)?;
    Ok(Ok(()))
}

/// Revokes every device of the user but `keep`.
pub fn revoke_devices_except(
    ctx: &mut WriteCtx<'_>,
    user_id: &UserId,
    keep: Option<&DeviceId>,
) -> Result<(), StoreError> {
    for d in ctx.device_ids(user_id.localpart())? {
        if keep.map(DeviceId::as_str) != Some(d.as_str()) {
            revoke_device(ctx, user_id, &DeviceId::from_trusted(d))?;
        }
    }
    Ok(())
}

/// Renames a device (no change without a new name).
pub fn set_device_display_name(
    ctx: &mut WriteCtx<'_>,
    user_id: &UserId,
    device_id: &DeviceId,
    display_name: Option<String>,
) -> Result<Result<(), MatrixError>, StoreError> {
    let (lp, id) = (user_id.localpart(), device_id);
    let Some(mut d) = ctx.device(lp, id)? else {
        return Ok(Err(MatrixError::not_found("No such device")));
    };
    if let Some(name) = display_name {
        d.display_name = Some(name);
        ctx.put_device(lp, id, &d)?;
    }
    Ok(Ok(()))
}

/// What a server admin may impose on an account (spec: account moderation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restriction {
    /// Every request but logout refused; sessions kept.
    Lock,
    /// Reading allowed, acting in rooms refused.
    Suspend,
}

/// Sets or lifts `restriction` on an active, non-admin account; returns
/// the new state.
pub fn set_restriction(
    ctx: &mut WriteCtx<'_>,
    user_id: &UserId,
    restriction: Restriction,
    value: bool,
) -> Result<Result<bool, MatrixError>, StoreError> {
    let localpart = user_id.localpart();
    let Some(mut user) = ctx.user(localpart)?.filter(|u| !u.deactivated) else {
        return Ok(Err(MatrixError::not_found("No such user")));
    };
    let slot = match restriction {
        Restriction::Lock => &mut user.locked,
        Restriction::Suspend => &mut user.suspended,
    };
    *slot = value;
    if user.admin {
        return Ok(Err(MatrixError::forbidden("Admins cannot be moderated")));
    }
    ctx.put_user(localpart, &user)?;
    Ok(Ok(value))
}
