//! OpenID tokens (spec: client-server-api/#openid): short-lived tokens a
//! client hands to a widget or integration manager, good only for learning
//! the user's ID. They live an hour and are kept in memory (a restart ends
//! them, as expiry would); only their hashes are kept.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::ids::UserId;

/// How long an OpenID token is valid.
pub const LIFETIME: Duration = Duration::from_secs(3600);
/// The most live tokens kept; the oldest go first beyond it.
const MAX_TOKENS: usize = 10_000;

/// Live OpenID tokens by hash: `(user, expiry)`.
#[derive(Default)]
pub struct OpenIdTokens(HashMap<[u8; 32], (UserId, Instant)>);

impl OpenIdTokens {
    pub fn insert(&mut self, token_hash: [u8; 32], user: UserId, now: Instant) {
        self.0.retain(|_, (_, until)| *until > now);
        if self.0.len() >= MAX_TOKENS
            && let Some(oldest) =
                self.0.iter().min_by_key(|(_, (_, until))| *until).map(|(k, _)| *k)
        {
            self.0.remove(&oldest);
        }
        self.0.insert(token_hash, (user, now + LIFETIME));
    }

    pub fn user(&self, token_hash: &[u8; 32], now: Instant) -> Option<&UserId> {
        self.0.get(token_hash).filter(|(_, until)| *until > now).map(|(u, _)| u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_expire_after_an_hour() {
        let mut t = OpenIdTokens::default();
        let now = Instant::now();
        t.insert([1; 32], UserId::parse("@a:hs").expect("valid"), now);
        assert_eq!(
            t.user(&[1; 32], now + Duration::from_secs(10)).map(UserId::as_str),
            Some("@a:hs")
        );
        assert_eq!(t.user(&[1; 32], now + LIFETIME + Duration::from_secs(1)), None);
        assert_eq!(t.user(&[2; 32], now), None);
    }
}
