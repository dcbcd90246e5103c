//! End-to-end encryption key distribution (spec: modules/
//! end_to_end_encryption); send-to-device messages are in `to_device`.
//!
//! The server stores and relays what clients sign; it checks only what the
//! spec asks it to (the uploader owns the keys it uploads) and keeps the
//! JSON byte-for-byte so signatures stay valid.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Map, Value, json};

use crate::account::{PASSWORD, require_uia, wake_room_mates};
use crate::e2ee::{self, Signer, Target};
use crate::error::{ErrorKind, MatrixError};
use crate::http::{Reply, Request, json};
use crate::ids::UserId;
use crate::quota;
use crate::server::App;
use crate::store::{ReadTxn, StoreError, WriteCtx};
use crate::sync;

fn to_vec(v: &Value) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

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
    let (u, d) = (user.clone(), device.clone());
    let counts = app
        .store
        .write(move |ctx| {
            // Check first: a reused one-time key ID with other content is
            // refused before anything is written.
            let mut new_otks = 0;
            for (alg, id, key) in &otks {
                match ctx.one_time_key(&u, &d, alg, id)? {
                    Some(old) if old != to_vec(key)? => {
                        return Ok(Err(MatrixError::bad_json(format!(
                            "one-time key {id} already exists with different content"
                        ))));
                    }
                    Some(_) => {}
                    None => new_otks += 1,
                }
            }
            if new_otks > 0 {
                let held: u64 = ctx.one_time_key_counts(&u, &d)?.iter().map(|(_, n)| n).sum();
                if held as usize + new_otks > quota::MAX_ONE_TIME_KEYS {
                    return Ok(Err(quota::store_full(
                        "unclaimed one-time keys",
                        quota::MAX_ONE_TIME_KEYS,
                        " per device",
                    )));
                }
            }
            let mut algorithms = ctx.fallback_algorithms(&u, &d)?;
            let before = algorithms.len();
            algorithms.extend(fallbacks.iter().map(|(alg, _, _)| alg.clone()));
            algorithms.sort();
            algorithms.dedup();
            if algorithms.len() > before && algorithms.len() > quota::MAX_FALLBACK_ALGORITHMS {
                return Ok(Err(quota::store_full(
                    "fallback key algorithms",
                    quota::MAX_FALLBACK_ALGORITHMS,
                    " per device",
                )));
            }
            if let Some(k) = &device_keys {
                let old = ctx.device_keys(&u, &d)?;
                let new = to_vec(k)?;
                if old.as_deref() != Some(new.as_slice()) {
                    ctx.put_device_keys(&u, &d, &new)?;
                    ctx.key_changed(&u)?;
                    wake_room_mates(ctx, &u)?;
                }
            }
            for (alg, id, key) in &otks {
                ctx.put_one_time_key(&u, &d, alg, id, &to_vec(key)?)?;
            }
            for (alg, id, key) in &fallbacks {
                let entry = json!({ "key_id": id, "key": key, "used": false });
                ctx.put_fallback_key(&u, &d, alg, &to_vec(&entry)?)?;
            }
            Ok(Ok(ctx.one_time_key_counts(&u, &d)?))
        })
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
    let name = read.device(user.localpart(), device)?.and_then(|d| d.display_name);
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
        for (device, keys) in read.all_device_keys(user)? {
            if only.as_ref().is_some_and(|o| !o.contains(device.as_str())) {
                continue;
            }
            per_user.insert(device.clone(), with_display_name(&read, &uid, &device, &keys)?);
        }
        device_keys.insert(user.clone(), Value::Object(per_user));
        if let Some(k) = read.cross_signing_key(user, "master")? {
            // Signatures by other users' user-signing keys are seen only by
            // their signer (spec: cross-signing).
            let mut key = parse(&k)?;
            if let Some(sigs) = key.get_mut("signatures").and_then(Value::as_object_mut) {
                sigs.retain(|by, _| by == user || by == caller.user_id.as_str());
            }
            master.insert(user.clone(), key);
        }
        if let Some(k) = read.cross_signing_key(user, "self_signing")? {
            self_signing.insert(user.clone(), parse(&k)?);
        }
        if user == caller.user_id.as_str()
            && let Some(k) = read.cross_signing_key(user, "user_signing")?
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
    let (claimed, failures) = app
        .store
        .write(move |ctx| {
            let mut out: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
            let mut failures = Map::new();
            for (user, devices) in &wanted {
                let Ok(uid) = UserId::parse(user) else { continue };
                if uid.server_name() != server {
                    failures.insert(uid.server_name().to_owned(), json!({ "errcode": "M_UNAVAILABLE", "error": "This server does not federate" }));
                    continue;
                }
                let Some(devices) = devices.as_object() else { continue };
                for (device, alg) in devices {
                    let Some(alg) = alg.as_str() else { continue };
                    let key = match ctx.claim_one_time_key(user, device, alg)? {
                        Some((id, k)) => Some((id, parse_store(&k)?)),
                        None => match ctx.fallback_key(user, device, alg)? {
                            Some(f) => {
                                let mut f: Value = parse_store(&f)?;
                                let id = f["key_id"].as_str().unwrap_or_default().to_owned();
                                let key = f["key"].clone();
                                if f["used"] != true {
                                    f["used"] = json!(true);
                                    ctx.put_fallback_key(user, device, alg, &to_vec(&f)?)?;
                                }
                                Some((id, key))
                            }
                            None => None,
                        },
                    };
                    if let Some((id, key)) = key {
                        let mut one = Map::new();
                        one.insert(id, key);
                        out.entry(user.clone()).or_default().insert(device.clone(), Value::Object(one));
                    }
                    // The owner's sync must show the new count.
                    ctx.wake_user(user);
                }
            }
            Ok(Ok::<_, MatrixError>((out, failures)))
        })
        .await?;
    Ok(json(&json!({ "one_time_keys": claimed, "failures": failures })))
}

fn parse_store(bytes: &[u8]) -> Result<Value, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// `GET /keys/changes?from=&to=`
pub fn key_changes(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let from = req.query("from").and_then(sync::parse_since).map(|(p, _)| p);
    let to = req.query("to").and_then(sync::parse_since).map(|(p, _)| p);
    let from = from.ok_or_else(|| MatrixError::invalid_param("from must be a sync token"))?;
    let to = to.ok_or_else(|| MatrixError::invalid_param("to must be a sync token"))?;
    let read = app.store.read()?;
    let (changed, left) =
        sync::devices::device_list_changes(&read, caller.user_id.as_str(), from, to)?;
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
    let user = caller.user_id.to_string();
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
    let u = user.clone();
    let lp = caller.user_id.localpart().to_owned();
    app.store
        .write(move |ctx| {
            // Checked in the writer, so a master key replaced meanwhile
            // cannot vouch for a key it never signed.
            let master = match puts.iter().find(|(kind, ..)| *kind == "master") {
                Some((.., public)) => Some(public.clone()),
                None => stored_public_key(ctx.cross_signing_key(&u, "master")?.as_deref()),
            };
            for (kind, k, public) in &puts {
                // Device IDs and cross-signing keys share one namespace in
                // verification (spec: cross-signing, key and signature
                // security).
                if ctx.device(&lp, &public.encoded())?.is_some() {
                    return Ok(Err(MatrixError::forbidden(format!(
                        "the {kind} key has the same ID as one of your devices"
                    ))));
                }
                if *kind == "master" {
                    continue;
                }
                let Some(master) = &master else {
                    return Ok(Err(MatrixError::missing_param(
                        "no master key to check this key against: upload one first",
                    )));
                };
                if let Err(e) = master.verify(k, &u) {
                    return Ok(Err(MatrixError::new(
                        ErrorKind::InvalidSignature,
                        format!("the {kind} key is not signed by the master key: {e}"),
                    )));
                }
            }
            for (kind, k, _) in &puts {
                ctx.put_cross_signing_key(&u, kind, &to_vec(k)?)?;
            }
            ctx.key_changed(&u)?;
            wake_room_mates(ctx, &u)?;
            Ok(Ok::<_, MatrixError>(()))
        })
        .await?;
    Ok(json(&json!({})))
}

/// The public key of a stored cross-signing key; `None` when there is none
/// or it is malformed (stored before keys were checked), so nothing is
/// verified against it.
fn stored_public_key(stored: Option<&[u8]>) -> Option<e2ee::PublicKey> {
    let key: Value = serde_json::from_slice(stored?).ok()?;
    e2ee::cross_signing_public_key(&key).ok()
}

/// Merges the signatures that `signer` made in `signed` into `stored`
/// (both JSON objects): nobody can add signatures in another's name.
fn merge_signatures(stored: &mut Value, signed: &Value, signer: &str) {
    let Some(sigs) = signed.get("signatures").and_then(Value::as_object) else { return };
    let Some(obj) = stored.as_object_mut() else { return };
    let target = obj.entry("signatures").or_insert_with(|| json!({}));
    for (by, by_key) in sigs {
        if by != signer {
            continue;
        }
        let Some(by_key) = by_key.as_object() else { continue };
        let signer = by;
        let slot =
            target.as_object_mut().map(|t| t.entry(signer.clone()).or_insert_with(|| json!({})));
        if let Some(Value::Object(slot)) = slot {
            for (k, v) in by_key {
                slot.insert(k.clone(), v.clone());
            }
        }
    }
}

/// The object without `signatures` and `unsigned`: what a signature covers.
fn signed_part(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("signatures");
        o.remove("unsigned");
    }
    v
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
    let me = caller.user_id.to_string();
    let result = app
        .store
        .write(move |ctx| {
            let mut failures: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
            let mut touched = Vec::new();
            for (user, keys) in &body {
                let Some(keys) = keys.as_object() else { continue };
                for (key_id, signed) in keys {
                    match add_signatures(ctx, &me, user, key_id, signed)? {
                        Ok((kind, stored)) => {
                            let bytes = to_vec(&stored)?;
                            match kind {
                                "device" => ctx.put_device_keys(user, key_id, &bytes)?,
                                k => ctx.put_cross_signing_key(user, k, &bytes)?,
                            }
                            touched.push(user.clone());
                        }
                        Err(why) => {
                            failures.entry(user.clone()).or_default().insert(
                                key_id.clone(),
                                json!({ "errcode": "M_INVALID_SIGNATURE", "error": why }),
                            );
                        }
                    }
                }
            }
            touched.sort();
            touched.dedup();
            for u in &touched {
                ctx.key_changed(u)?;
                wake_room_mates(ctx, u)?;
            }
            Ok(Ok::<_, MatrixError>(failures))
        })
        .await?;
    Ok(json(&json!({ "failures": result })))
}

/// Checks the signatures that `me` adds in `signed` to the key `key_id` of
/// `user` (a device ID, or a cross-signing public key): returns the key's
/// kind and the stored key with them merged in, or why they are refused.
fn add_signatures(
    ctx: &WriteCtx<'_>,
    me: &str,
    user: &str,
    key_id: &str,
    signed: &Value,
) -> Result<Result<(&'static str, Value), String>, StoreError> {
    let Some((kind, stored)) = find_signed_key(ctx, user, key_id)? else {
        return Ok(Err("unknown key".to_owned()));
    };
    let target = match (user == me, kind) {
        (true, "device") => Target::OwnDevice,
        (true, "master") => Target::OwnMaster,
        (true, _) => Target::OwnSelfSigning,
        (false, "master") => Target::OtherUsersMaster,
        (false, _) => return Ok(Err("only other users' master keys can be signed".to_owned())),
    };
    let mut stored: Value = parse_store(&stored)?;
    if signed_part(&stored) != signed_part(signed) {
        return Ok(Err("the signed object differs from the stored key".to_owned()));
    }
    for signature in e2ee::new_signatures(&stored, signed, me) {
        let Some(signer) = signing_key(ctx, me, target.signer(), signature)? else {
            return Ok(Err(format!("{signature} is not a key of yours that may sign this key")));
        };
        if let Err(e) = signer.verify(signed, me) {
            return Ok(Err(format!("the signature by {signature}: {e}")));
        }
    }
    merge_signatures(&mut stored, signed, me);
    Ok(Ok((kind, stored)))
}

/// The key of `user` that `/keys/signatures/upload` names `key_id`: a
/// device by its ID, or the master or self-signing key by its public key.
fn find_signed_key(
    ctx: &WriteCtx<'_>,
    user: &str,
    key_id: &str,
) -> Result<Option<(&'static str, Vec<u8>)>, StoreError> {
    if let Some(device_keys) = ctx.device_keys(user, key_id)? {
        return Ok(Some(("device", device_keys)));
    }
    for kind in ["master", "self_signing"] {
        if let Some(key) = ctx.cross_signing_key(user, kind)?
            && stored_public_key(Some(&key)).is_some_and(|p| p.encoded() == key_id)
        {
            return Ok(Some((kind, key)));
        }
    }
    Ok(None)
}

/// `me`'s published key of the kind `signer` that the signature key ID
/// `key_id` names, if it names one.
fn signing_key(
    ctx: &WriteCtx<'_>,
    me: &str,
    signer: Signer,
    key_id: &str,
) -> Result<Option<e2ee::PublicKey>, StoreError> {
    let kind = match signer {
        Signer::Device => {
            let Some(device) = e2ee::device_id_of(key_id) else { return Ok(None) };
            let keys = ctx.device_keys(me, device)?;
            let keys = keys.and_then(|k| serde_json::from_slice::<Value>(&k).ok());
            return Ok(keys.and_then(|k| e2ee::device_public_key(&k, device)));
        }
        Signer::Master => "master",
        Signer::SelfSigning => "self_signing",
        Signer::UserSigning => "user_signing",
    };
    Ok(stored_public_key(ctx.cross_signing_key(me, kind)?.as_deref())
        .filter(|p| p.key_id == key_id))
}
