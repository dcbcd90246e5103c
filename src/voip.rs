//! TURN credentials for VoIP calls (spec: client-server-api/#voice-over-ip).
//!
//! Owns the credential algorithm behind `/voip/turnServer`; the handler
//! lives in `api::client::voip`. With a shared secret, credentials follow
//! the "TURN REST API" convention every TURN server implements (coturn's
//! `use-auth-secret`, draft-uberti-behave-turn-rest): the username is
//! `<expiry unix time>:<user id>` and the password is
//! `base64(HMAC-SHA1(secret, username))`. The TURN server recomputes the
//! password from its copy of the secret and refuses the username once the
//! expiry has passed, so Hearth stores nothing per credential.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::hmac;

use crate::config::{TurnConfig, TurnCredentials};

/// `/voip/turnServer` requests each user may make per minute. Clients ask
/// once at start-up and again before the credential's `ttl` runs out, so
/// a handful covers every device of a user; the limit keeps one account
/// from minting credentials in bulk.
pub const TURN_REQUESTS_PER_MINUTE: u32 = 10;

/// Credentials a client presents to the TURN server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnCredential {
    pub username: String,
    pub password: String,
    /// Seconds the credential stays valid (the response's `ttl`).
    pub ttl_secs: u64,
}

/// The credential for `user_id` at `now_secs` (Unix time): time-limited
/// with a shared secret, the configured pair otherwise.
pub fn credential(turn: &TurnConfig, user_id: &str, now_secs: u64) -> TurnCredential {
    let ttl_secs = turn.user_lifetime_secs;
    match &turn.credentials {
        TurnCredentials::SharedSecret(secret) => {
            let username = format!("{}:{user_id}", now_secs.saturating_add(ttl_secs));
            let password = rest_api_password(secret, &username);
            TurnCredential { username, password, ttl_secs }
        }
        TurnCredentials::Static { username, password } => {
            TurnCredential { username: username.clone(), password: password.clone(), ttl_secs }
        }
    }
}

/// `base64(HMAC-SHA1(secret, username))`, padded standard Base64 as TURN
/// servers compute it. SHA-1 is what the convention fixes (coturn checks
/// exactly this), which is why ring calls the algorithm legacy-only.
pub fn rest_api_password(secret: &str, username: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
    STANDARD.encode(hmac::sign(&key, username.as_bytes()).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(secret: &str, lifetime: u64) -> TurnConfig {
        TurnConfig {
            uris: vec!["turn:turn.example.org:3478?transport=udp".into()],
            credentials: TurnCredentials::SharedSecret(secret.into()),
            user_lifetime_secs: lifetime,
            allow_guests: true,
        }
    }

    #[test]
    fn password_matches_an_independently_computed_hmac_sha1() {
        // python3 -c "import hmac, hashlib, base64; print(base64.b64encode(hmac.new(
        //   b'north-wind', b'1700086400:@alice:hearth.local', hashlib.sha1).digest()).decode())"
        assert_eq!(
            rest_api_password("north-wind", "1700086400:@alice:hearth.local"),
            "4n1WFeyk5xHqUKi5/DbcvaMxuUs="
        );
    }

    #[test]
    fn shared_secret_credentials_expire_after_the_lifetime() {
        let c = credential(&shared("north-wind", 86_400), "@alice:hearth.local", 1_700_000_000);
        assert_eq!(c.username, "1700086400:@alice:hearth.local");
        assert_eq!(c.password, "4n1WFeyk5xHqUKi5/DbcvaMxuUs=");
        assert_eq!(c.ttl_secs, 86_400);
        let later = credential(&shared("north-wind", 3600), "@alice:hearth.local", 1_700_000_000);
        assert_eq!(later.username, "1700003600:@alice:hearth.local");
        assert_ne!(later.password, c.password, "the expiry is signed");
        let other = credential(&shared("south-wind", 86_400), "@alice:hearth.local", 1_700_000_000);
        assert_ne!(other.password, c.password, "the secret is signed");
    }

    #[test]
    fn an_expiry_past_the_end_of_time_saturates_instead_of_wrapping() {
        let c = credential(&shared("s", 86_400), "@a:b", u64::MAX - 5);
        assert_eq!(c.username, format!("{}:@a:b", u64::MAX));
    }

    #[test]
    fn static_credentials_are_handed_out_as_configured() {
        let turn = TurnConfig {
            credentials: TurnCredentials::Static { username: "u".into(), password: "p".into() },
            ..shared("unused", 600)
        };
        let c = credential(&turn, "@alice:hearth.local", 1_700_000_000);
        assert_eq!(c, TurnCredential { username: "u".into(), password: "p".into(), ttl_secs: 600 });
    }
}
