//! Profiles (spec: client-server-api/#profiles): the display name and
//! avatar URL kept on the user's record, and their size limits.

use crate::error::{ErrorKind, MatrixError};
use crate::ids::UserId;
use crate::quota;
use crate::store::{StoreError, WriteCtx};

/// Refuses a value for the profile field `key` (`displayname` or
/// `avatar_url`) over its size limit.
pub fn check_value(key: &str, value: Option<&str>) -> Result<(), MatrixError> {
    if value.is_some_and(|v| v.len() > 256 && key == "displayname") {
        return Err(MatrixError::new(ErrorKind::TooLarge, "displayname is longer than 256 bytes"));
    }
    if key == "avatar_url" {
        let len = value.map_or(0, str::len);
        quota::check_size("avatar_url", len, quota::AVATAR_URL_BYTES)?;
    }
    Ok(())
}

/// Sets (`Some`) or clears (`None`) the profile field `key` on the local
/// user's record.
pub fn set_field(
    ctx: &mut WriteCtx<'_>,
    user: &UserId,
    key: &str,
    value: Option<String>,
) -> Result<Result<(), MatrixError>, StoreError> {
    let lp = user.localpart();
    let Some(mut u) = ctx.user(lp)? else {
        return Ok(Err(MatrixError::not_found("No such user")));
    };
    if key == "displayname" {
        u.displayname = value;
    } else {
        u.avatar_url = value;
    }
    ctx.put_user(lp, &u)?;
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_displayname_is_too_large_and_a_long_avatar_url_over_quota() {
        let long = "x".repeat(257);
        let err = check_value("displayname", Some(&long)).expect_err("257 bytes");
        assert_eq!(err.kind, ErrorKind::TooLarge);
        assert!(check_value("displayname", Some(&long[..256])).is_ok());
        assert!(check_value("displayname", None).is_ok());
        let url = "m".repeat(quota::AVATAR_URL_BYTES + 1);
        assert!(check_value("avatar_url", Some(&url)).is_err());
        assert!(check_value("avatar_url", Some(&url[1..])).is_ok());
    }
}
