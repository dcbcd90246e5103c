//! OpenID tokens (spec: client-server-api/#openid, server-server-api
//! `/openid/userinfo`): a client asks for a short-lived token and hands it
//! to a widget or integration manager, which exchanges it for the user's
//! ID. The tokens themselves are kept by `account::openid`.

use std::time::Instant;

use serde_json::json;

use crate::account::openid::LIFETIME;
use crate::api::{Reply, Request, json};
use crate::app::App;
use crate::error::{ErrorKind, MatrixError};
use crate::store::hash_token;

/// `POST /user/{userId}/openid/request_token`
pub fn request_token(app: &App, req: &Request, user_id: &str) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    if caller.user_id.as_str() != user_id {
        return Err(MatrixError::forbidden("Cannot request OpenID tokens for other users"));
    }
    req.json_object()?;
    let token = crate::account::generate_token()?;
    app.openid.borrow_mut().insert(hash_token(&token), caller.user_id.clone(), Instant::now());
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
