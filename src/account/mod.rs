//! Accounts and authentication: password hashing, tokens and sessions,
//! user-interactive authentication, the failed-login rate limiter, and the
//! writes that change an account (registration, password, deactivation,
//! devices, moderation).
//!
//! This is a domain module: it never sees HTTP types or the running
//! server's state; each function takes what it needs, and storage is
//! reached only through `Store`. [`Caller`], who made a request, is defined
//! here.

mod manage;
pub mod openid;
mod password;
pub mod profile;
mod ratelimit;
mod session;
mod uia;

pub use manage::{
    Restriction, deactivate, register, revoke_devices_except, set_device_display_name,
    set_password, set_restriction,
};
pub use password::{hash_password, hash_password_blocking, verify_password};
pub use ratelimit::RateLimiter;
pub use session::{
    Caller, IssuedSession, SessionPlan, authenticate, generate_token, issue_session,
    refresh_session, revoke_device, wake_room_mates,
};
pub use uia::{
    DUMMY, PASSWORD, PasswordCheck, REGISTRATION_TOKEN, UiaOutcome, UiaSessions, check_password,
    login_localpart, registration_token_is_valid,
};

/// Re-exported for the many callers that take it from here; code below
/// `account` uses [`crate::time::now_ms`].
pub use crate::time::now_ms;
