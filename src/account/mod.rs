//! Accounts and authentication: password hashing, tokens and sessions,
//! user-interactive authentication, and the failed-login rate limiter.
//!
//! This is a domain module: it never sees HTTP types beyond what `Caller`
//! carries, and it reaches storage only through `Store`.

mod password;
pub mod profile;
mod ratelimit;
mod session;
mod uia;

pub use password::{hash_password, hash_password_blocking, verify_password};
pub use ratelimit::RateLimiter;
pub use session::{
    IssuedSession, SessionPlan, authenticate, generate_token, issue_session, refresh_session,
    revoke_device, wake_room_mates,
};
pub use uia::{
    DUMMY, PASSWORD, REGISTRATION_TOKEN, UiaOutcome, UiaSessions, check_password, login_localpart,
    registration_token_is_valid, require_uia,
};

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
