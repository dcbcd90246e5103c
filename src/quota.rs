//! Per-user storage caps: every store a client can grow, its limit, and the
//! errors that refuse growth past it.
//!
//! Without them one account could fill the SD card (40 filters of 955 KiB
//! were stored in 1.6 s). Each cap sits far above what real clients use
//! (figures below), so only abuse or a runaway bot meets it. A single item
//! over its size limit is `M_TOO_LARGE` (413); a store that is full is
//! `M_LIMIT_EXCEEDED` under **400**, not 429: it is not a rate limit, and
//! clients retry a 429 by themselves, forever. Counts are checked inside
//! the writer, against the transaction, so concurrent requests cannot
//! overshoot; only growth is refused, so an account already over a cap
//! (data stored before the caps existed) keeps working: replacing an item
//! by one no larger, or deleting, always passes.
//!
//! | store | cap | what clients use |
//! |---|---|---|
//! | filters | [`FILTER_BYTES`] each, [`MAX_FILTERS`] distinct (an identical re-upload gets the existing ID) | < 1 KiB, one or two |
//! | account data (global, per room, room tags) | [`ACCOUNT_DATA_BYTES`] each; [`MAX_GLOBAL_ACCOUNT_DATA`] types, [`MAX_ROOM_ACCOUNT_DATA`] types per room | ~30 global types; `m.direct` of 1,000 DMs ≈ 60 KiB |
//! | to-device inbox of a device | [`MAX_INBOX_MESSAGES`], [`MAX_INBOX_BYTES`]; [`TO_DEVICE_BYTES`] per message. A send whose every recipient is full is refused; one to several devices skips the full ones (see `send_to_device`) | drained by every sync; room keys are ~2 KiB |
//! | one-time keys of a device | [`MAX_ONE_TIME_KEYS`]; [`KEY_BYTES`] per key, device keys [`DEVICE_KEYS_BYTES`] | vodozemac keeps ≤ 50 on the server |
//! | fallback keys of a device | [`MAX_FALLBACK_ALGORITHMS`] algorithms | one (`signed_curve25519`) |
//! | devices | `max_devices_per_user` (config): a new login prunes the least recently seen device, keyless ones first | a handful |
//! | push rules | [`PUSH_RULES_BYTES`] (compact form) | a few KiB |
//! | pushers | [`MAX_PUSHERS`]; [`PUSHER_DATA_BYTES`] for `data` | one per device |
//! | key backup | [`KEY_BYTES`] per session and per `auth_data`; a deleted version keeps a stub record only | one version |
//! | dehydrated device | one per user; [`DEHYDRATED_DEVICE_BYTES`] of `device_data` | a few KiB |
//! | profile | displayname 256 bytes, `avatar_url` [`AVATAR_URL_BYTES`] | an `mxc://` URI |
//! | content reports | [`REPORT_REASON_BYTES`] of reason | a sentence |
//! | media | `media_quota_mb` (config; 0, no quota, by default) | |

use serde_json::Value;

use crate::error::{ErrorKind, MatrixError};

/// Largest filter, as stored (compact JSON).
pub const FILTER_BYTES: usize = 32 << 10;
/// Distinct filters per user.
pub const MAX_FILTERS: usize = 100;

/// Largest account-data item (compact JSON), room tags included.
pub const ACCOUNT_DATA_BYTES: usize = 64 << 10;
/// Global account-data types per user.
pub const MAX_GLOBAL_ACCOUNT_DATA: usize = 500;
/// Account-data types per user and room (`m.tag` and `m.fully_read` count).
pub const MAX_ROOM_ACCOUNT_DATA: usize = 50;

/// Largest to-device message (the stored `{type, sender, content}`).
pub const TO_DEVICE_BYTES: usize = 64 << 10;
/// Undelivered to-device messages one device may hold. A device drains its
/// inbox at every sync; one that never syncs (a lost phone) stops
/// receiving at this point instead of growing the database forever.
pub const MAX_INBOX_MESSAGES: usize = 10_000;
/// Undelivered to-device bytes one device may hold.
pub const MAX_INBOX_BYTES: usize = 16 << 20;

/// Largest one-time, fallback or backed-up key (compact JSON).
pub const KEY_BYTES: usize = 16 << 10;
/// Largest device-keys object (compact JSON).
pub const DEVICE_KEYS_BYTES: usize = 64 << 10;
/// Unclaimed one-time keys per device.
pub const MAX_ONE_TIME_KEYS: usize = 1_000;
/// Fallback-key algorithms per device.
pub const MAX_FALLBACK_ALGORITHMS: usize = 16;

/// Largest push-rule customisation of a user (compact form).
pub const PUSH_RULES_BYTES: usize = 256 << 10;
/// Pushers per user.
pub const MAX_PUSHERS: usize = 100;
/// Largest pusher `data` object (compact JSON).
pub const PUSHER_DATA_BYTES: usize = 4 << 10;

/// Largest dehydrated-device `device_data` (compact JSON).
pub const DEHYDRATED_DEVICE_BYTES: usize = 64 << 10;

/// Longest `avatar_url` in a profile.
pub const AVATAR_URL_BYTES: usize = 1 << 10;

/// Longest reason of a content report (reports are kept for the admin).
pub const REPORT_REASON_BYTES: usize = 4 << 10;

/// `M_TOO_LARGE` (413): one item is over its size limit.
pub fn too_large(what: &str, limit: usize) -> MatrixError {
    MatrixError::new(
        ErrorKind::TooLarge,
        format!("{what} is larger than the limit of {limit} bytes"),
    )
}

/// `M_LIMIT_EXCEEDED` under 400: a per-user store is full (see the module
/// doc for why not 429). `what` names the store, `limit` its cap.
pub fn store_full(what: &str, limit: usize, hint: &str) -> MatrixError {
    MatrixError::new(
        ErrorKind::LimitExceeded,
        format!("Too many {what}: the limit is {limit}{hint}"),
    )
    .with_status(400)
}

/// The size of `v` as compact JSON, as it would be stored.
pub fn json_len(v: &Value) -> usize {
    serde_json::to_vec(v).map_or(usize::MAX, |b| b.len())
}

/// Refuses an item of `len` bytes over `limit`.
pub fn check_size(what: &str, len: usize, limit: usize) -> Result<(), MatrixError> {
    if len > limit { Err(too_large(what, limit)) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_store_is_a_400_limit_exceeded_without_retry_after() {
        let e = store_full("filters", MAX_FILTERS, "");
        assert_eq!(e.status(), 400);
        assert_eq!(e.body()["errcode"], "M_LIMIT_EXCEEDED");
        assert!(e.body().get("retry_after_ms").is_none());
        assert!(e.message.contains("100"), "{}", e.message);
    }

    #[test]
    fn an_item_over_its_size_is_too_large_and_one_at_the_limit_passes() {
        assert!(check_size("filter", FILTER_BYTES, FILTER_BYTES).is_ok());
        let e = check_size("filter", FILTER_BYTES + 1, FILTER_BYTES).expect_err("over");
        assert_eq!(e.status(), 413);
        assert_eq!(e.body()["errcode"], "M_TOO_LARGE");
    }
}
