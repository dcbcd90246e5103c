//! The request side of user-interactive authentication (spec:
//! client-server-api/#user-interactive-authentication-api): reading the
//! `auth` dict of a request body, running the stage it completes, and
//! answering 401 with the flows while stages remain. The sessions and the
//! checks the stages make live in `account` (`UiaSessions`,
//! `check_password`, `registration_token_is_valid`).

use std::net::IpAddr;

use serde_json::Value;

use crate::account::{
    DUMMY, PASSWORD, REGISTRATION_TOKEN, UiaOutcome, check_password, login_localpart,
    registration_token_is_valid,
};
use crate::app::App;
use crate::error::{ErrorKind, MatrixError};

/// Runs the UIA step of a request. `purpose` names the endpoint and the
/// acting user; `expected_user` is the localpart an `m.login.password` stage
/// must prove (the caller's own account), if known.
pub async fn require_uia(
    app: &App,
    auth: Option<&Value>,
    purpose: &str,
    flows: &[&[&str]],
    expected_user: Option<&str>,
    remote: IpAddr,
) -> Result<UiaOutcome, MatrixError> {
    let auth = match auth {
        Some(Value::Object(m)) => Some(m),
        Some(Value::Null) | None => None,
        Some(_) => return Err(MatrixError::bad_json("auth must be an object")),
    };
    let given_session = auth.and_then(|a| a.get("session")).and_then(Value::as_str);
    let session_id = app.uia.borrow_mut().open(given_session, purpose, flows)?;
    let Some(auth) = auth else {
        return Err(app.uia.borrow().challenge(&session_id, None));
    };
    if let Some(stage) = auth.get("type").and_then(Value::as_str) {
        let offered = flows.iter().any(|f| f.contains(&stage));
        if !offered {
            let e =
                MatrixError::forbidden(format!("Authentication type {stage} is not offered here"));
            return Err(app.uia.borrow().challenge(&session_id, Some(e)));
        }
        let already = app.uia.borrow().has_completed(&session_id, stage);
        if !already {
            match run_stage(app, stage, auth, expected_user, remote).await {
                Ok((user, token)) => {
                    app.uia.borrow_mut().complete_stage(&session_id, stage, user, token);
                }
                Err(e) => return Err(app.uia.borrow().challenge(&session_id, Some(e))),
            }
        }
    }
    app.uia.borrow().outcome(&session_id)
}

type StageResult = (Option<String>, Option<String>);

async fn run_stage(
    app: &App,
    stage: &str,
    auth: &serde_json::Map<String, Value>,
    expected_user: Option<&str>,
    remote: IpAddr,
) -> Result<StageResult, MatrixError> {
    match stage {
        DUMMY => Ok((None, None)),
        REGISTRATION_TOKEN => {
            let token = auth
                .get("token")
                .and_then(Value::as_str)
                .ok_or_else(|| MatrixError::missing_param("auth.token is required"))?;
            if registration_token_is_valid(&app.store, token)? {
                Ok((None, Some(token.to_owned())))
            } else {
                Err(MatrixError::new(ErrorKind::Unauthorized, "Invalid registration token"))
            }
        }
        PASSWORD => {
            let localpart = login_localpart(&app.config.server_name, auth)?;
            let password = auth
                .get("password")
                .and_then(Value::as_str)
                .ok_or_else(|| MatrixError::missing_param("auth.password is required"))?;
            if let Some(expected) = expected_user
                && expected != localpart
            {
                return Err(MatrixError::forbidden("You can only authenticate as yourself"));
            }
            check_password(&app.password_check(), &localpart, password, remote).await?;
            Ok((Some(localpart), None))
        }
        other => Err(MatrixError::forbidden(format!("Unsupported authentication type {other}"))),
    }
}
