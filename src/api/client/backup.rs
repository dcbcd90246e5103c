//! Server-side room key backup (spec: end_to_end_encryption, "Server-side
//! key backups"). Versions are numbered per user; only the newest is
//! writable; `etag` changes whenever the stored keys change.

use serde_json::{Map, Value, json};

use crate::api::{Reply, Request, json};
use crate::app::App;
use crate::e2ee::backup::{self, current, parse};
use crate::error::MatrixError;
use crate::ids::UserId;
use crate::quota;

fn version_param(req: &Request) -> Result<u64, MatrixError> {
    let v =
        req.query("version").ok_or_else(|| MatrixError::missing_param("version is required"))?;
    v.parse().map_err(|_| MatrixError::not_found("Unknown backup version"))
}

fn version_json(
    read: &crate::store::ReadTxn,
    user: &UserId,
    v: u64,
    rec: &Value,
) -> Result<Value, MatrixError> {
    let count = read.backup_keys(user, v, None, None)?.len();
    Ok(json!({
        "algorithm": rec["algorithm"],
        "auth_data": rec["auth_data"],
        "count": count,
        "etag": rec["etag"].as_u64().unwrap_or(0).to_string(),
        "version": v.to_string(),
    }))
}

/// `POST /room_keys/version`
pub async fn create_version(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let user = req.caller()?.user_id.clone();
    let body = req.json_object()?;
    let algorithm = body
        .get("algorithm")
        .and_then(Value::as_str)
        .ok_or_else(|| MatrixError::bad_json("algorithm is required"))?
        .to_owned();
    let auth_data = body
        .get("auth_data")
        .filter(|a| a.is_object())
        .cloned()
        .ok_or_else(|| MatrixError::bad_json("auth_data must be an object"))?;
    quota::check_size("auth_data", quota::json_len(&auth_data), quota::KEY_BYTES)?;
    let v = app
        .store
        .write(move |ctx| backup::create_version(ctx, &user, algorithm, auth_data))
        .await?;
    Ok(json(&json!({ "version": v.to_string() })))
}

/// `GET /room_keys/version[/{version}]`
pub fn get_version(app: &App, req: &Request, version: Option<&str>) -> Result<Reply, MatrixError> {
    let user = req.caller()?.user_id.clone();
    let read = app.store.read()?;
    let found = match version {
        None => current(&read, &user)?,
        Some(v) => {
            let v: u64 = v.parse().map_err(|_| MatrixError::not_found("Unknown backup version"))?;
            match read.backup_version(&user, v)? {
                Some(b) => Some((v, parse(&b)?)).filter(|(_, r)| r["deleted"] != true),
                None => None,
            }
        }
    };
    let (v, rec) = found.ok_or_else(|| MatrixError::not_found("No current backup version"))?;
    Ok(json(&version_json(&read, &user, v, &rec)?))
}

/// `PUT /room_keys/version/{version}`: only `auth_data` may change.
pub async fn update_version(app: &App, req: &Request, version: &str) -> Result<Reply, MatrixError> {
    let user = req.caller()?.user_id.clone();
    let v: u64 = version.parse().map_err(|_| MatrixError::not_found("Unknown backup version"))?;
    let body = req.json_object()?;
    if let Some(bv) = body.get("version")
        && bv.as_str() != Some(version)
    {
        return Err(MatrixError::invalid_param("version in the body does not match the path"));
    }
    let algorithm = body
        .get("algorithm")
        .and_then(Value::as_str)
        .ok_or_else(|| MatrixError::bad_json("algorithm is required"))?
        .to_owned();
    let auth_data = body
        .get("auth_data")
        .filter(|a| a.is_object())
        .cloned()
        .ok_or_else(|| MatrixError::bad_json("auth_data must be an object"))?;
    quota::check_size("auth_data", quota::json_len(&auth_data), quota::KEY_BYTES)?;
    app.store.write(move |ctx| backup::update_version(ctx, &user, v, algorithm, auth_data)).await?;
    Ok(json(&json!({})))
}

/// `DELETE /room_keys/version/{version}`
pub async fn delete_version(app: &App, req: &Request, version: &str) -> Result<Reply, MatrixError> {
    let user = req.caller()?.user_id.clone();
    let v: u64 = version.parse().map_err(|_| MatrixError::not_found("Unknown backup version"))?;
    app.store.write(move |ctx| backup::delete_version(ctx, &user, v)).await?;
    Ok(json(&json!({})))
}

/// Which part of the backup a `/room_keys/keys` request addresses.
#[derive(Clone)]
pub struct Scope {
    pub room: Option<String>,
    pub session: Option<String>,
}

/// `PUT /room_keys/keys[/{roomId}[/{sessionId}]]?version=`
pub async fn put_keys(app: &App, req: &Request, scope: Scope) -> Result<Reply, MatrixError> {
    let user = req.caller()?.user_id.clone();
    let v = version_param(req)?;
    let body = req.json_object()?;
    // Normalise every form to (room, session, data).
    let mut entries: Vec<(String, String, Value)> = Vec::new();
    let sessions_of = |room: &str,
                       obj: &Map<String, Value>,
                       out: &mut Vec<(String, String, Value)>|
     -> Result<(), MatrixError> {
        let sessions = obj
            .get("sessions")
            .and_then(Value::as_object)
            .ok_or_else(|| MatrixError::bad_json("sessions is required"))?;
        for (sid, data) in sessions {
            if !data.is_object() {
                return Err(MatrixError::bad_json("session data must be an object"));
            }
            quota::check_size(&format!("Session {sid}"), quota::json_len(data), quota::KEY_BYTES)?;
            out.push((room.to_owned(), sid.clone(), data.clone()));
        }
        Ok(())
    };
    match (&scope.room, &scope.session) {
        (Some(r), Some(s)) => {
            let data = Value::Object(body);
            quota::check_size(&format!("Session {s}"), quota::json_len(&data), quota::KEY_BYTES)?;
            entries.push((r.clone(), s.clone(), data));
        }
        (Some(r), None) => sessions_of(r, &body, &mut entries)?,
        _ => {
            let rooms = body
                .get("rooms")
                .and_then(Value::as_object)
                .ok_or_else(|| MatrixError::bad_json("rooms is required"))?;
            for (r, obj) in rooms {
                let obj = obj
                    .as_object()
                    .ok_or_else(|| MatrixError::bad_json("room entry must be an object"))?;
                sessions_of(r, obj, &mut entries)?;
            }
        }
    }
    let out = app.store.write(move |ctx| backup::put_keys(ctx, &user, v, &entries)).await?;
    Ok(json(&out))
}

/// `GET /room_keys/keys[/{roomId}[/{sessionId}]]?version=`
pub fn get_keys(app: &App, req: &Request, scope: Scope) -> Result<Reply, MatrixError> {
    let user = req.caller()?.user_id.clone();
    let v = version_param(req)?;
    let read = app.store.read()?;
    let rec = read.backup_version(&user, v)?.map(|b| parse(&b)).transpose()?;
    if rec.is_none_or(|r| r["deleted"] == true) {
        return Err(MatrixError::not_found("Unknown backup version"));
    }
    let keys = read.backup_keys(&user, v, scope.room.as_deref(), scope.session.as_deref())?;
    match (&scope.room, &scope.session) {
        (Some(_), Some(_)) => {
            let (_, _, b) = keys
                .first()
                .ok_or_else(|| MatrixError::not_found("No such session in the backup"))?;
            Ok(json(&parse(b)?))
        }
        (Some(_), None) => {
            let mut sessions = Map::new();
            for (_, s, b) in keys {
                sessions.insert(s, parse(&b)?);
            }
            Ok(json(&json!({ "sessions": sessions })))
        }
        _ => {
            let mut rooms: Map<String, Value> = Map::new();
            for (r, s, b) in keys {
                let entry = rooms.entry(r).or_insert_with(|| json!({ "sessions": {} }));
                entry["sessions"][s.as_str()] = parse(&b)?;
            }
            Ok(json(&json!({ "rooms": rooms })))
        }
    }
}

/// `DELETE /room_keys/keys[/{roomId}[/{sessionId}]]?version=`
pub async fn delete_keys(app: &App, req: &Request, scope: Scope) -> Result<Reply, MatrixError> {
    let user = req.caller()?.user_id.clone();
    let v = version_param(req)?;
    let out = app
        .store
        .write(move |ctx| {
            backup::delete_keys(ctx, &user, v, scope.room.as_deref(), scope.session.as_deref())
        })
        .await?;
    Ok(json(&out))
}
