//! End-to-end encryption key distribution (spec: modules/
//! end_to_end_encryption); send-to-device messages are in `to_device`.
//!
//! The server stores and relays what clients sign; it checks only what the
//! spec asks it to (the uploader owns the keys it uploads) and keeps the
//! JSON byte-for-byte so signatures stay valid.

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use crate::account::PASSWORD;
use crate::api::client::uia::require_uia;
use crate::api::{Reply, Request, json};
use crate::app::App;
use crate::e2ee::{self, keys};
use crate::error::MatrixError;
use crate::ids::{DeviceId, UserId};
use crate::quota;
use crate::store::ReadTxn;
use crate::sync;

fn parse(bytes: &[u8]) -> Result<Value, MatrixError> {
    serde_json::from_slice(bytes).map_err(|e| MatrixError::internal("stored key", e))
}

/// `POST /keys/upload`
pub async fn upload_keys(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let body = req.json_object()?;
    let user = caller.user_id.to_string();
    let device = caller.device_id.to_string();
    let device_keys = match body.get("device_keys") {
        None | Some(Value::Null) => None,
        Some(k @ Value::Object(_)) => {
            check_device_keys(k, &user, &device)?;
            Some(k.clone())
        }
        Some(_) => return Err(MatrixError::bad_json("device_keys must be an object")),
    };
    let otks = key_list(&body, "one_time_keys")?;
    let fallbacks = key_list(&body, "fallback_keys")?;
    check_key_sizes(device_keys.as_ref(), &otks, &fallbacks)?;
    let (u, d) = (caller.user_id.clone(), caller.device_id.clone());
    let counts = app
        .store
        .write(move |ctx| keys::upload(ctx, &u, &d, device_keys.as_ref(), &otks, &fallbacks))
        .await?;
    let counts: Map<String, Value> = counts.into_iter().map(|(a, n)| (a, json!(n))).collect();
    Ok(json(&json!({ "one_time_key_counts": counts })))
}

/// Refuses keys over their size limits (`quota`), and more one-time keys
/// or fallback algorithms in one upload than a device may hold.
pub(crate) fn check_key_sizes(
    device_keys: Option<&Value>,
    one_time_keys: &[(String, String, Value)],
    fallback_keys: &[(String, String, Value)],
) -> Result<(), MatrixError> {
    if let Some(k) = device_keys {
        quota::check_size("device_keys", quota::json_len(k), quota::DEVICE_KEYS_BYTES)?;
    }
    for (_, id, key) in one_time_keys.iter().chain(fallback_keys) {
        quota::check_size(&format!("Key {id}"), quota::json_len(key), quota::KEY_BYTES)?;
    }
    if one_time_keys.len() > quota::MAX_ONE_TIME_KEYS {
        return Err(quota::store_full("one-time keys", quota::MAX_ONE_TIME_KEYS, " per device"));
    }
    if fallback_keys.len() > quota::MAX_FALLBACK_ALGORITHMS {
        return Err(quota::store_full(
            "fallback key algorithms",
            quota::MAX_FALLBACK_ALGORITHMS,
            " per device",
        ));
    }
    Ok(())
}

/// Device keys must name the device they are uploaded for and carry
/// algorithms and keys.
pub(crate) fn check_device_keys(k: &Value, user: &str, device: &str) -> Result<(), MatrixError> {
    if k["user_id"] != user || k["device_id"] != device {
        return Err(MatrixError::bad_json(
            "device_keys.user_id and device_id must be the caller's",
        ));
    }
    if !k["algorithms"].is_array() || !k["keys"].is_object() {
        return Err(MatrixError::bad_json("device_keys needs algorithms and keys"));
    }
    Ok(())
}

/// `(algorithm, key_id, key)` of a `one_time_keys` / `fallback_keys` map
/// (`/keys/upload`, and MSC3814's dehydrated device upload).
pub(crate) fn key_list(
    body: &Map<String, Value>,
    field: &str,
) -> Result<Vec<(String, String, Value)>, MatrixError> {
    let mut out = Vec::new();
    if let Some(v) = body.get(field).filter(|v| !v.is_null()) {
        let map = v
            .as_object()
            .ok_or_else(|| MatrixError::bad_json(format!("{field} must be an object")))?;
        for (id, key) in map {
            let (alg, _) = id.split_once(':').ok_or_else(|| {
                MatrixError::bad_json(format!("{field}: key ID {id} has no algorithm"))
            })?;
            out.push((alg.to_owned(), id.clone(), key.clone()));
        }
    }
    Ok(out)
}

fn with_display_name(
    read: &ReadTxn,
    user: &UserId,
    device: &str,
    keys: &[u8],
) -> Result<Value, MatrixError> {
    let mut v = parse(keys)?;
    // `device` comes from the stored device keys.
    let id = DeviceId::from_trusted(device.to_owned());
    let name = read.device(user.localpart(), &id)?.and_then(|d| d.display_name);
    if let Some(o) = v.as_object_mut() {
        let unsigned = o.entry("unsigned").or_insert_with(|| json!({}));
        if let Some(n) = name {
            unsigned["device_display_name"] = json!(n);
        }
    }
    Ok(v)
}

/// `POST /keys/query`
pub fn query_keys(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let body = req.json_object()?;
    let wanted = body
        .get("device_keys")
        .and_then(Value::as_object)
        .ok_or_else(|| MatrixError::bad_json("device_keys is required"))?;
    let read = app.store.read()?;
    let mut device_keys = Map::new();
    let mut master = Map::new();
    let mut self_signing = Map::new();
    let mut user_signing = Map::new();
    let mut failures = Map::new();
    for (user, devices) in wanted {
        let Ok(uid) = UserId::parse(user) else { continue };
        if uid.server_name() != app.config.server_name {
            failures.insert(
                uid.server_name().to_owned(),
                json!({ "errcode": "M_UNAVAILABLE", "error": "This server does not federate" }),
            );
            continue;
        }
        let only: Option<HashSet<&str>> = devices
            .as_array()
            .filter(|a| !a.is_empty())
            .map(|a| a.iter().filter_map(Value::as_str).collect());
        let mut per_user = Map::new();
        for (device, keys) in read.all_device_keys(&uid)? {
            if only.as_ref().is_some_and(|o| !o.contains(device.as_str())) {
                continue;
            }
            per_user.insert(device.clone(), with_display_name(&read, &uid, &device, &keys)?);
        }
        device_keys.insert(user.clone(), Value::Object(per_user));
        if let Some(k) = read.cross_signing_key(&uid, "master")? {
            // Signatures by other users' user-signing keys are seen only by
            // their signer (spec: cross-signing).
            let mut key = parse(&k)?;
            if let Some(sigs) = key.get_mut("signatures").and_then(Value::as_object_mut) {
                sigs.retain(|by, _| by == user || by == caller.user_id.as_str());
            }
            master.insert(user.clone(), key);
        }
        if let Some(k) = read.cross_signing_key(&uid, "self_signing")? {
            self_signing.insert(user.clone(), parse(&k)?);
        }
        if user == caller.user_id.as_str()
            && let Some(k) = read.cross_signing_key(&uid, "user_signing")?
        {
            user_signing.insert(user.clone(), parse(&k)?);
        }
    }
    Ok(json(&json!({
        "device_keys": device_keys,
        "master_keys": master,
        "self_signing_keys": self_signing,
        "user_signing_keys": user_signing,
        "failures": failures,
    })))
}

/// `POST /keys/claim`: one key per device, atomically (inside the writer, so
/// two claims never get the same key); the fallback key when none are left.
pub async fn claim_keys(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    req.caller()?;
    let body = req.json_object()?;
    let wanted = body
        .get("one_time_keys")
        .and_then(Value::as_object)
        .ok_or_else(|| MatrixError::bad_json("one_time_keys is required"))?
        .clone();
    let server = app.config.server_name.clone();
    let (claimed, failures) =
        app.store.write(move |ctx| keys::claim(ctx, &wanted, &server)).await?;
    Ok(json(&json!({ "one_time_keys": claimed, "failures": failures })))
}

/// `GET /keys/changes?from=&to=`
pub fn key_changes(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let from = req.query("from").and_then(sync::parse_since).map(|(p, _)| p);
    let to = req.query("to").and_then(sync::parse_since).map(|(p, _)| p);
    let from = from.ok_or_else(|| MatrixError::invalid_param("from must be a sync token"))?;
    let to = to.ok_or_else(|| MatrixError::invalid_param("to must be a sync token"))?;
    let read = app.store.read()?;
    let (changed, left) = sync::devices::device_list_changes(&read, &caller.user_id, from, to)?;
    Ok(json(&json!({ "changed": changed, "left": left })))
}

/// `POST /keys/device_signing/upload`: the first upload needs no UIA;
/// replacing an existing master key does. The self-signing and user-signing
/// keys must be signed by the master key uploaded with them, or else by the
/// stored one (400 `M_INVALID_SIGNATURE`): other clients trust the user's
/// devices and contacts through that chain.
pub async fn upload_cross_signing_keys(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let body = req.json_object()?;
    let user = caller.user_id.clone();
    let existing = app.store.read()?.cross_signing_key(&user, "master")?;
    let replacing = match (&existing, body.get("master_key")) {
        (Some(old), Some(new)) => parse(old)? != *new,
        _ => false,
    };
    if replacing {
        let lp = caller.user_id.localpart().to_owned();
        let purpose = format!("cross_signing:{lp}");
        let outcome =
            require_uia(app, body.get("auth"), &purpose, &[&[PASSWORD]], Some(&lp), req.remote)
                .await?;
        app.uia.borrow_mut().consume(&outcome.session);
    }
    let mut puts = Vec::new();
    for (field, kind, usage) in [
        ("master_key", "master", "master"),
        ("self_signing_key", "self_signing", "self_signing"),
        ("user_signing_key", "user_signing", "user_signing"),
    ] {
        if let Some(k) = body.get(field).filter(|k| !k.is_null()) {
            if k["user_id"] != user.as_str() {
                return Err(MatrixError::bad_json(format!("{field}.user_id must be the caller")));
            }
            let ok_usage = k["usage"].as_array().is_some_and(|u| u.iter().any(|x| x == usage));
            if !ok_usage || !k["keys"].is_object() {
                return Err(MatrixError::bad_json(format!(
                    "{field} needs usage [{usage}] and keys"
                )));
            }
            let public = e2ee::cross_signing_public_key(k)
                .map_err(|e| MatrixError::bad_json(format!("{field}: {e}")))?;
            puts.push((kind, k.clone(), public));
        }
    }
    let u = caller.user_id.clone();
    app.store.write(move |ctx| keys::upload_cross_signing(ctx, &u, &puts)).await?;
    Ok(json(&json!({})))
}

/// `POST /keys/signatures/upload`: signatures of the caller's own devices,
/// master and self-signing keys, and of other users' master keys. Each new
/// signature must be by the caller's key that the spec has sign that kind
/// of key, and verify against its published public key; a key with one that
/// does not is reported in `failures` (`M_INVALID_SIGNATURE`) and none of
/// its new signatures are stored.
pub async fn upload_signatures(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let body = req.json_object()?;
    let me = caller.user_id.clone();
    let result = app.store.write(move |ctx| keys::upload_signatures(ctx, &me, &body)).await?;
    Ok(json(&json!({ "failures": result })))
}
