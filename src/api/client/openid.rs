//! OpenID tokens (spec: client-server-api/#openid, server-server-api
//! `/openid/userinfo`): a client asks for a short-lived token and hands it
//! to a widget or integration manager, which exchanges it for the user's
//! ID. Tokens are only good for that exchange, live an hour and are kept in
//! memory (a restart ends them, as expiry would).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::api::{Reply, Request, json};
use crate::error::{ErrorKind, MatrixError};
use crate::server::App;
use crate::store::hash_token;

/// How long an OpenID token is valid.
const LIFETIME: Duration = Duration::from_secs(3600);
/// The most live tokens kept; the oldest go first beyond it.
const MAX_TOKENS: usize = 10_000;

/// Live OpenID tokens by hash: `(user, expiry)`.
#[derive(Default)]
pub struct OpenIdTokens(HashMap<[u8; 32], (String, Instant)>);

impl OpenIdTokens {
    fn insert(&mut self, token_hash: [u8; 32], user: String, now: Instant) {
        self.0.retain(|_, (_, until)| *until > now);
        if self.0.len() >= MAX_TOKENS
            && let Some(oldest) =
                self.0.iter().min_by_key(|(_, (_, until))| *until).map(|(k, _)| *k)
        {
            self.0.remove(&oldest);
        }
        self.0.insert(token_hash, (user, now + LIFETIME));
    }

    fn user(&self, token_hash: &[u8; 32], now: Instant) -> Option<&str> {
        self.0.get(token_hash).filter(|(_, until)| *until > now).map(|(u, _)| u.as_str())
    }
}

/// `POST /user/{userId}/openid/request_token`
pub fn request_token(app: &App, req: &Request, user_id: &str) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    if caller.user_id.as_str() != user_id {
        return Err(MatrixError::forbidden("Cannot request OpenID tokens for other users"));
    }
    req.json_object()?;
    let token = crate::account::generate_token()?;
    app.openid.borrow_mut().insert(hash_token(&token), user_id.to_owned(), Instant::now());
    Ok(json(&json!({
        "access_token": token,
        "token_type": "Bearer",
        "matrix_server_name": app.config.server_name,
        "expires_in": LIFETIME.as_secs(),
    })))
}

/// `GET /_matrix/federation/v1/openid/userinfo?access_token=`
pub fn user_info(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let token = req
        .query("access_token")
        .ok_or_else(|| MatrixError::new(ErrorKind::MissingToken, "access_token is required"))?;
    match app.openid.borrow().user(&hash_token(token), Instant::now()) {
        Some(user) => Ok(json(&json!({ "sub": user }))),
        None => Err(MatrixError::new(ErrorKind::UnknownToken, "Access token unknown or expired")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_expire_after_an_hour() {
        let mut t = OpenIdTokens::default();
        let now = Instant::now();
        t.insert([1; 32], "@a:hs".into(), now);
        assert_eq!(t.user(&[1; 32], now + Duration::from_secs(10)), Some("@a:hs"));
        assert_eq!(t.user(&[1; 32], now + LIFETIME + Duration::from_secs(1)), None);
        assert_eq!(t.user(&[2; 32], now), None);
    }
}
