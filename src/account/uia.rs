//! User-interactive authentication (spec: client-server-api/#user-interactive-authentication-api).
//!
//! Sessions live in memory: they are short (minutes), losing them on restart
//! only makes a client start its flow again, and not writing them keeps the
//! SD card quiet. A session is bound to its *purpose* (endpoint + acting
//! user) so a completed flow cannot be replayed for another request, and is
//! consumed when the request it authorised succeeds.
//!
//! This module keeps the sessions and the checks their stages make; reading
//! a request's `auth` dict and answering it is `api::client::uia`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::{RateLimiter, generate_token, now_ms, verify_password};
use crate::error::{ErrorKind, MatrixError};
use crate::ids::UserId;
use crate::store::Store;

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

    /// The session a request continues (`given`, when known) or a new one
    /// offering `flows`, checked against the request's `purpose` and the
    /// session lifetime. Returns its ID.
    pub fn open(
        &mut self,
        given: Option<&str>,
        purpose: &str,
        flows: &[&[&str]],
    ) -> Result<String, MatrixError> {
        let session_id = match given {
            Some(id) if self.sessions.contains_key(id) => id.to_owned(),
            _ => {
                let id = generate_token()?;
                let session = Session {
                    purpose: purpose.to_owned(),
                    flows: flows
                        .iter()
                        .map(|f| f.iter().map(|s| (*s).to_owned()).collect())
                        .collect(),
                    params: json!({}),
                    completed: Vec::new(),
                    user: None,
                    registration_token: None,
                    created: Instant::now(),
                };
                self.insert(id.clone(), session);
                id
            }
        };
        let Some(s) = self.sessions.get(&session_id) else { return Err(gone()) };
        if s.purpose != purpose {
            return Err(MatrixError::forbidden(
                "This authentication session was started for a different request",
            ));
        }
        if Instant::now().duration_since(s.created) > SESSION_TTL {
            self.consume(&session_id);
            return Err(MatrixError::forbidden("The authentication session has expired"));
        }
        Ok(session_id)
    }

    /// Whether the session has completed `stage` already.
    pub fn has_completed(&self, session: &str, stage: &str) -> bool {
        self.sessions.get(session).is_some_and(|s| s.completed.iter().any(|c| c == stage))
    }

    /// What a finished flow established, or the 401 that asks for the
    /// stages still missing.
    pub fn outcome(&self, session: &str) -> Result<UiaOutcome, MatrixError> {
        let Some(s) = self.sessions.get(session) else { return Err(gone()) };
        let done = s.flows.iter().any(|f| f.iter().all(|stage| s.completed.contains(stage)));
        if done {
            Ok(UiaOutcome {
                session: session.to_owned(),
                user: s.user.clone(),
                registration_token: s.registration_token.clone(),
            })
        } else {
            Err(self.challenge(session, None))
        }
    }

    /// The 401 of a session: its flows, params and completed stages, with
    /// `error` (or a plain challenge) as the error.
    pub fn challenge(&self, id: &str, error: Option<MatrixError>) -> MatrixError {
        let Some(s) = self.sessions.get(id) else { return gone() };
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

/// A session that ended while a request of it was waiting (for a password
/// hash, say): another request completed and consumed it, or it was evicted
/// by newer sessions. The request starts over, as after an expiry.
fn gone() -> MatrixError {
    MatrixError::forbidden("The authentication session has expired")
}

/// Is a registration token usable right now?
pub fn registration_token_is_valid(store: &Store, token: &str) -> Result<bool, MatrixError> {
    let read = store.read()?;
    Ok(read.registration_token(token)?.is_some_and(|r| r.is_usable(now_ms())))
}

/// The localpart named by an `identifier` of type `m.id.user` (or the
/// legacy top-level `user`), local users only (of `server_name`).
pub fn login_localpart(
    server_name: &str,
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
        if id.server_name() != server_name {
            return Err(MatrixError::forbidden("Invalid username or password"));
        }
        Ok(id.localpart().to_ascii_lowercase())
    } else {
        // Localparts are lower-case; people type their names capitalised.
        Ok(user.to_ascii_lowercase())
    }
}

/// What checking a password needs: the accounts, the argon2 slots and the
/// failed-login limiters.
pub struct PasswordCheck<'a> {
    pub store: &'a Store,
    pub hash_slots: &'a Semaphore,
    /// Failures per client address and per (account, address).
    pub per_address: &'a RefCell<RateLimiter>,
    /// Failures per account over all addresses.
    pub per_user: &'a RefCell<RateLimiter>,
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
    check: &PasswordCheck<'_>,
    localpart: &str,
    password: &str,
    remote: IpAddr,
) -> Result<(), MatrixError> {
    let (pair_key, ip_key) = (format!("u:{localpart}@{remote}"), format!("ip:{remote}"));
    let user_key = format!("u:{localpart}");
    let now = Instant::now();
    let per_address = {
        let mut l = check.per_address.borrow_mut();
        l.check(&ip_key, now).and(l.check(&pair_key, now))
    };
    let per_user = check.per_user.borrow_mut().check(&user_key, now);
    if let Err(ms) = per_address.and(per_user) {
        return Err(MatrixError::limit_exceeded(ms));
    }
    let record = check.store.read()?.user(localpart)?;
    let ok = match &record {
        Some(r) if !r.deactivated => match &r.password_hash {
            Some(h) => verify_password(check.hash_slots, password.to_owned(), h.clone()).await?,
            None => false,
        },
        _ => false,
    };
    if ok {
        return Ok(());
    }
    let now = Instant::now();
    {
        let mut l = check.per_address.borrow_mut();
        l.record_failure(&ip_key, now);
        l.record_failure(&pair_key, now);
    }
    check.per_user.borrow_mut().record_failure(&user_key, now);
    if record.as_ref().is_some_and(|r| r.deactivated) {
        return Err(MatrixError::new(
            ErrorKind::UserDeactivated,
            "This account has been deactivated",
        ));
    }
    Err(MatrixError::forbidden("Invalid username or password"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_answers_401_with_its_flows_until_one_flow_is_complete() {
        let mut uia = UiaSessions::default();
        let id = uia.open(None, "password:alice", &[&[PASSWORD], &[DUMMY, PASSWORD]]).expect("new");
        let e = uia.outcome(&id).expect_err("nothing completed yet");
        assert_eq!(e.status(), 401);
        assert_eq!(e.extra["session"], json!(id));
        assert_eq!(e.extra["flows"][1]["stages"], json!([DUMMY, PASSWORD]));
        assert!(uia.complete_stage(&id, DUMMY, None, None));
        assert!(uia.has_completed(&id, DUMMY));
        assert!(!uia.has_completed(&id, PASSWORD));
        assert_eq!(
            uia.outcome(&id).expect_err("one stage left").extra["completed"],
            json!([DUMMY])
        );
        assert!(uia.complete_stage(&id, PASSWORD, Some("alice".into()), None));
        let done = uia.outcome(&id).expect("a flow is complete");
        assert_eq!((done.session.as_str(), done.user.as_deref()), (id.as_str(), Some("alice")));
    }

    /// A request waits for its password check while holding only the
    /// session's ID; a second request of the same session may complete and
    /// consume it meanwhile (or newer sessions evict it). The first one then
    /// gets an answer, not a panic.
    #[test]
    fn a_session_consumed_while_a_request_of_it_waits_is_answered_as_expired() {
        let mut uia = UiaSessions::default();
        let id = uia.open(None, "password:alice", &[&[PASSWORD]]).expect("new");
        uia.consume(&id);
        assert!(!uia.has_completed(&id, PASSWORD));
        assert!(!uia.complete_stage(&id, PASSWORD, Some("alice".into()), None));
        let e = uia.outcome(&id).expect_err("the session is gone");
        assert_eq!((e.kind, e.status()), (ErrorKind::Forbidden, 403));
        let e = uia.challenge(&id, Some(MatrixError::forbidden("wrong password")));
        assert_eq!(e.kind, ErrorKind::Forbidden);
        assert!(e.message.contains("expired"), "{}", e.message);
    }

    #[test]
    fn a_session_is_continued_only_for_the_request_it_was_started_for() {
        let mut uia = UiaSessions::default();
        let id = uia.open(None, "delete_device:alice:DEV", &[&[PASSWORD]]).expect("new");
        assert_eq!(
            uia.open(Some(&id), "delete_device:alice:DEV", &[&[PASSWORD]]).ok(),
            Some(id.clone())
        );
        let e = uia.open(Some(&id), "password:alice", &[&[PASSWORD]]).expect_err("replay");
        assert_eq!(e.kind, ErrorKind::Forbidden);
        let unknown = uia.open(Some("no-such-session"), "password:alice", &[&[PASSWORD]]);
        assert_ne!(unknown.as_deref().ok(), Some("no-such-session"), "a new session instead");
        assert!(!uia.complete_stage(&id, DUMMY, None, None), "a stage the session does not offer");
    }
}
