//! User-interactive authentication (spec: client-server-api/#user-interactive-authentication-api).
//!
//! Sessions live in memory: they are short (minutes), losing them on restart
//! only makes a client start its flow again, and not writing them keeps the
//! SD card quiet. A session is bound to its *purpose* (endpoint + acting
//! user) so a completed flow cannot be replayed for another request, and is
//! consumed when the request it authorised succeeds.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{generate_token, now_ms, verify_password};
use crate::app::App;
use crate::error::{ErrorKind, MatrixError};
use crate::ids::UserId;

const SESSION_TTL: Duration = Duration::from_secs(30 * 60);
const MAX_SESSIONS: usize = 10_000;

pub const DUMMY: &str = "m.login.dummy";
pub const PASSWORD: &str = "m.login.password";
pub const REGISTRATION_TOKEN: &str = "m.login.registration_token";

#[derive(Default)]
pub struct UiaSessions {
    sessions: HashMap<String, Session>,
}

struct Session {
    purpose: String,
    flows: Vec<Vec<String>>,
    params: Value,
    completed: Vec<String>,
    /// Localpart proven by an `m.login.password` stage.
    user: Option<String>,
    /// The registration token accepted by an `m.login.registration_token` stage.
    registration_token: Option<String>,
    created: Instant,
}

/// A finished flow: what its stages established.
#[derive(Debug, Clone)]
pub struct UiaOutcome {
    pub session: String,
    pub user: Option<String>,
    pub registration_token: Option<String>,
}

impl UiaSessions {
    fn insert(&mut self, id: String, s: Session) {
        if self.sessions.len() >= MAX_SESSIONS {
            let now = Instant::now();
            self.sessions.retain(|_, s| now.duration_since(s.created) < SESSION_TTL);
            if self.sessions.len() >= MAX_SESSIONS
                && let Some(oldest) =
                    self.sessions.iter().min_by_key(|(_, s)| s.created).map(|(k, _)| k.clone())
            {
                self.sessions.remove(&oldest);
            }
        }
        self.sessions.insert(id, s);
    }

    /// Forgets a session once the request it authorised has succeeded.
    pub fn consume(&mut self, session: &str) {
        self.sessions.remove(session);
    }

    /// Marks a stage done from the fallback page. Returns false when the
    /// session is unknown or does not offer the stage.
    pub fn complete_stage(
        &mut self,
        session: &str,
        stage: &str,
        user: Option<String>,
        token: Option<String>,
    ) -> bool {
        let Some(s) = self.sessions.get_mut(session) else { return false };
        if !s.flows.iter().any(|f| f.iter().any(|x| x == stage)) {
            return false;
        }
        if !s.completed.iter().any(|c| c == stage) {
            s.completed.push(stage.to_owned());
        }
        if user.is_some() {
            s.user = user;
        }
        if token.is_some() {
            s.registration_token = token;
        }
        true
    }

    /// For the fallback page: which user a password stage must prove, and
    /// whether the session offers `stage`.
    pub fn describe(&self, session: &str, stage: &str) -> Option<(bool, String)> {
        let s = self.sessions.get(session)?;
        let offered = s.flows.iter().any(|f| f.iter().any(|x| x == stage));
        Some((offered, s.purpose.clone()))
    }

    fn challenge(&self, id: &str, error: Option<MatrixError>) -> MatrixError {
        let s = &self.sessions[id];
        let flows: Vec<Value> = s.flows.iter().map(|f| json!({ "stages": f })).collect();
        let mut e = match error {
            Some(e) => e,
            // A plain challenge is a 401 without errcode in the spec's
            // examples; we send M_UNAUTHORIZED so the body stays a valid
            // error too (clients key on `flows`).
            None => {
                MatrixError::new(ErrorKind::Unauthorized, "Additional authentication is required")
            }
        };
        e = e.with_status(401);
        e.extra.insert("flows".into(), Value::Array(flows));
        e.extra.insert("params".into(), s.params.clone());
        e.extra.insert("session".into(), Value::from(id));
        if !s.completed.is_empty() {
            e.extra.insert("completed".into(), json!(s.completed));
        }
        e
    }
}

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
    let session_id = match given_session {
        Some(id) if app.uia.borrow().sessions.contains_key(id) => id.to_owned(),
        _ => {
            let id = generate_token()?;
            let session = Session {
                purpose: purpose.to_owned(),
                flows: flows.iter().map(|f| f.iter().map(|s| (*s).to_owned()).collect()).collect(),
                params: json!({}),
                completed: Vec::new(),
                user: None,
                registration_token: None,
                created: Instant::now(),
            };
            app.uia.borrow_mut().insert(id.clone(), session);
            id
        }
    };
    {
        let uia = app.uia.borrow();
        let s = &uia.sessions[&session_id];
        if s.purpose != purpose {
            return Err(MatrixError::forbidden(
                "This authentication session was started for a different request",
            ));
        }
        if Instant::now().duration_since(s.created) > SESSION_TTL {
            drop(uia);
            app.uia.borrow_mut().consume(&session_id);
            return Err(MatrixError::forbidden("The authentication session has expired"));
        }
    }
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
        let already = app.uia.borrow().sessions[&session_id].completed.iter().any(|c| c == stage);
        if !already {
            match run_stage(app, stage, auth, expected_user, remote).await {
                Ok((user, token)) => {
                    app.uia.borrow_mut().complete_stage(&session_id, stage, user, token);
                }
                Err(e) => return Err(app.uia.borrow().challenge(&session_id, Some(e))),
            }
        }
    }
    let uia = app.uia.borrow();
    let s = &uia.sessions[&session_id];
    let done = s.flows.iter().any(|f| f.iter().all(|stage| s.completed.contains(stage)));
    if done {
        Ok(UiaOutcome {
            session: session_id.clone(),
            user: s.user.clone(),
            registration_token: s.registration_token.clone(),
        })
    } else {
        Err(uia.challenge(&session_id, None))
    }
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
            if registration_token_is_valid(app, token)? {
                Ok((None, Some(token.to_owned())))
            } else {
                Err(MatrixError::new(ErrorKind::Unauthorized, "Invalid registration token"))
            }
        }
        PASSWORD => {
            let localpart = login_localpart(app, auth)?;
            let password = auth
                .get("password")
                .and_then(Value::as_str)
                .ok_or_else(|| MatrixError::missing_param("auth.password is required"))?;
            if let Some(expected) = expected_user
                && expected != localpart
            {
                return Err(MatrixError::forbidden("You can only authenticate as yourself"));
            }
            check_password(app, &localpart, password, remote).await?;
            Ok((Some(localpart), None))
        }
        other => Err(MatrixError::forbidden(format!("Unsupported authentication type {other}"))),
    }
}

/// Is a registration token usable right now?
pub fn registration_token_is_valid(app: &App, token: &str) -> Result<bool, MatrixError> {
    let read = app.store.read()?;
    Ok(read.registration_token(token)?.is_some_and(|r| r.is_usable(now_ms())))
}

/// The localpart named by an `identifier` of type `m.id.user` (or the
/// legacy top-level `user`), local users only.
pub fn login_localpart(
    app: &App,
    auth: &serde_json::Map<String, Value>,
) -> Result<String, MatrixError> {
    let user = match auth.get("identifier") {
        Some(Value::Object(id)) => {
            let kind = id.get("type").and_then(Value::as_str).unwrap_or("");
            if kind != "m.id.user" {
                return Err(MatrixError::new(
                    ErrorKind::Unknown,
                    format!("Identifier type {kind:?} is not supported; use m.id.user"),
                )
                .with_status(400));
            }
            id.get("user").and_then(Value::as_str)
        }
        Some(_) => return Err(MatrixError::bad_json("identifier must be an object")),
        None => auth.get("user").and_then(Value::as_str),
    };
    let user = user.ok_or_else(|| MatrixError::missing_param("identifier.user is required"))?;
    if user.starts_with('@') {
        let id = UserId::parse(user).map_err(|e| MatrixError::invalid_param(e.0))?;
        if id.server_name() != app.config.server_name {
            return Err(MatrixError::forbidden("Invalid username or password"));
        }
        Ok(id.localpart().to_ascii_lowercase())
    } else {
        // Localparts are lower-case; people type their names capitalised.
        Ok(user.to_ascii_lowercase())
    }
}

/// Verifies a password with the failed-attempt limiters in front of it.
/// Unknown users and wrong passwords answer alike.
///
/// Failures are counted per (account, client address) and per address at
/// `login_attempts_per_minute`, and per account over all addresses at the
/// much higher `login_attempts_per_user_per_minute`: a guesser is slowed
/// without locking the owner, who signs in from another address, out of
/// their account; only guessing spread over many addresses reaches the
/// account's own ceiling.
pub async fn check_password(
    app: &App,
    localpart: &str,
    password: &str,
    remote: IpAddr,
) -> Result<(), MatrixError> {
    let (pair_key, ip_key) = (format!("u:{localpart}@{remote}"), format!("ip:{remote}"));
    let user_key = format!("u:{localpart}");
    let now = Instant::now();
    let per_address = {
        let mut l = app.login_limiter.borrow_mut();
        l.check(&ip_key, now).and(l.check(&pair_key, now))
    };
    let per_user = app.login_user_limiter.borrow_mut().check(&user_key, now);
    if let Err(ms) = per_address.and(per_user) {
        return Err(MatrixError::limit_exceeded(ms));
    }
    let record = app.store.read()?.user(localpart)?;
    let ok = match &record {
        Some(r) if !r.deactivated => match &r.password_hash {
            Some(h) => verify_password(app, password.to_owned(), h.clone()).await?,
            None => false,
        },
        _ => false,
    };
    if ok {
        return Ok(());
    }
    let now = Instant::now();
    {
        let mut l = app.login_limiter.borrow_mut();
        l.record_failure(&ip_key, now);
        l.record_failure(&pair_key, now);
    }
    app.login_user_limiter.borrow_mut().record_failure(&user_key, now);
    if record.as_ref().is_some_and(|r| r.deactivated) {
        return Err(MatrixError::new(
            ErrorKind::UserDeactivated,
            "This account has been deactivated",
        ));
    }
    Err(MatrixError::forbidden("Invalid username or password"))
}
