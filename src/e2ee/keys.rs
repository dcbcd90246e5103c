//! Publishing end-to-end encryption keys (spec: modules/
//! end_to_end_encryption): device and one-time key uploads, one-time key
//! claims, cross-signing keys and signatures, applied inside the writer so
//! that every check sees the keys it guards (a one-time key is claimed
//! once; a master key replaced meanwhile vouches for nothing it did not
//! sign). The JSON is kept byte-for-byte so signatures stay valid.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::account::wake_room_mates;
use crate::e2ee::{self, Signer, Target};
use crate::error::{ErrorKind, MatrixError};
use crate::ids::{DeviceId, UserId};
use crate::quota;
use crate::store::{StoreError, WriteCtx};

/// A key of an upload: `(algorithm, key ID, key)`.
pub type KeyEntry = (String, String, Value);

/// A cross-signing key to publish: `(kind, key, its public key)`.
pub type CrossSigningKey = (&'static str, Value, e2ee::PublicKey);

fn to_vec(v: &Value) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn parse_store(bytes: &[u8]) -> Result<Value, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// `/keys/upload` for `device`: its device keys (`device_keys`), one-time
/// keys (`otks`) and fallback keys, within the per-device caps; returns the
/// unclaimed one-time key count per algorithm.
pub fn upload(
    ctx: &mut WriteCtx<'_>,
    user: &UserId,
    device: &DeviceId,
    device_keys: Option<&Value>,
    otks: &[KeyEntry],
    fallbacks: &[KeyEntry],
) -> Result<Result<Vec<(String, u64)>, MatrixError>, StoreError> {
    // Check first: a reused one-time key ID with other content is
    // refused before anything is written.
    let mut new_otks = 0;
    for (alg, id, key) in otks {
        match ctx.one_time_key(user, device, alg, id)? {
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
        let held: u64 = ctx.one_time_key_counts(user, device)?.iter().map(|(_, n)| n).sum();
        if held as usize + new_otks > quota::MAX_ONE_TIME_KEYS {
            return Ok(Err(quota::store_full(
                "unclaimed one-time keys",
                quota::MAX_ONE_TIME_KEYS,
                " per device",
            )));
        }
    }
    let mut algorithms = ctx.fallback_algorithms(user, device)?;
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
    if let Some(k) = device_keys {
        let old = ctx.device_keys(user, device)?;
        let new = to_vec(k)?;
        if old.as_deref() != Some(new.as_slice()) {
            ctx.put_device_keys(user, device, &new)?;
            ctx.key_changed(user)?;
            wake_room_mates(ctx, user)?;
        }
    }
    for (alg, id, key) in otks {
        ctx.put_one_time_key(user, device, alg, id, &to_vec(key)?)?;
    }
    for (alg, id, key) in fallbacks {
        let entry = json!({ "key_id": id, "key": key, "used": false });
        ctx.put_fallback_key(user, device, alg, &to_vec(&entry)?)?;
    }
    Ok(Ok(ctx.one_time_key_counts(user, device)?))
}

/// One-time keys claimed per user and device, and the servers that could
/// not be asked.
pub type Claimed = (BTreeMap<String, Map<String, Value>>, Map<String, Value>);

/// `/keys/claim`: one key per device named in `wanted` (user → device →
/// algorithm), each claimed once; the fallback key when none are left.
/// `server` is this server's name: other servers' users are failures.
pub fn claim(
    ctx: &mut WriteCtx<'_>,
    wanted: &Map<String, Value>,
    server: &str,
) -> Result<Result<Claimed, MatrixError>, StoreError> {
    let mut out: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut failures = Map::new();
    for (user, devices) in wanted {
        let Ok(uid) = UserId::parse(user) else { continue };
        if uid.server_name() != server {
            failures.insert(
                uid.server_name().to_owned(),
                json!({ "errcode": "M_UNAVAILABLE", "error": "This server does not federate" }),
            );
            continue;
        }
        let Some(devices) = devices.as_object() else { continue };
        for (device, alg) in devices {
            let Some(alg) = alg.as_str() else { continue };
            // An ID that does not parse names no device: nothing to claim.
            let Ok(did) = DeviceId::parse(device) else { continue };
            let key = match ctx.claim_one_time_key(&uid, &did, alg)? {
                Some((id, k)) => Some((id, parse_store(&k)?)),
                None => match ctx.fallback_key(&uid, &did, alg)? {
                    Some(f) => {
                        let mut f: Value = parse_store(&f)?;
                        let id = f["key_id"].as_str().unwrap_or_default().to_owned();
                        let key = f["key"].clone();
                        if f["used"] != true {
                            f["used"] = json!(true);
                            ctx.put_fallback_key(&uid, &did, alg, &to_vec(&f)?)?;
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
    Ok(Ok((out, failures)))
}

/// `/keys/device_signing/upload`: stores the caller's cross-signing keys
/// (`puts`) once the self-signing and user-signing keys verify against the
/// master key uploaded with them or else the stored one.
pub fn upload_cross_signing(
    ctx: &mut WriteCtx<'_>,
    user: &UserId,
    puts: &[CrossSigningKey],
) -> Result<Result<(), MatrixError>, StoreError> {
    let lp = user.localpart();
    // Checked in the writer, so a master key replaced meanwhile
    // cannot vouch for a key it never signed.
    let master = match puts.iter().find(|(kind, ..)| *kind == "master") {
        Some((.., public)) => Some(public.clone()),
        None => stored_public_key(ctx.cross_signing_key(user, "master")?.as_deref()),
    };
    for (kind, k, public) in puts {
        // Device IDs and cross-signing keys share one namespace in
        // verification (spec: cross-signing, key and signature
        // security).
        if let Ok(id) = DeviceId::parse(&public.encoded())
            && ctx.device(lp, &id)?.is_some()
        {
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
        if let Err(e) = master.verify(k, user) {
            return Ok(Err(MatrixError::new(
                ErrorKind::InvalidSignature,
                format!("the {kind} key is not signed by the master key: {e}"),
            )));
        }
    }
    for (kind, k, _) in puts {
        ctx.put_cross_signing_key(user, kind, &to_vec(k)?)?;
    }
    ctx.key_changed(user)?;
    wake_room_mates(ctx, user)?;
    Ok(Ok(()))
}

/// Keys whose new signatures were refused: user → key ID → error.
pub type Failures = BTreeMap<String, Map<String, Value>>;

/// `/keys/signatures/upload` by `me`: stores each key's new signatures, or
/// reports in the failures (user → key ID → error) why they were refused.
pub fn upload_signatures(
    ctx: &mut WriteCtx<'_>,
    me: &UserId,
    body: &Map<String, Value>,
) -> Result<Result<Failures, MatrixError>, StoreError> {
    let mut failures: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut touched = Vec::new();
    for (user, keys) in body {
        let Some(keys) = keys.as_object() else { continue };
        for (key_id, signed) in keys {
            match add_signatures(ctx, me, user, key_id, signed)? {
                Ok((kind, stored)) => {
                    let bytes = to_vec(&stored)?;
                    // The key was found under `user` (and, for a device,
                    // `key_id`), so both are stored IDs.
                    let uid = UserId::from_trusted(user.clone());
                    match kind {
                        "device" => ctx.put_device_keys(
                            &uid,
                            &DeviceId::from_trusted(key_id.clone()),
                            &bytes,
                        )?,
                        k => ctx.put_cross_signing_key(&uid, k, &bytes)?,
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
        // A key was found under `u`, so it is a stored user's ID.
        let u = UserId::from_trusted(u.clone());
        ctx.key_changed(&u)?;
        wake_room_mates(ctx, &u)?;
    }
    Ok(Ok(failures))
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

/// Checks the signatures that `me` adds in `signed` to the key `key_id` of
/// `user` (a device ID, or a cross-signing public key): returns the key's
/// kind and the stored key with them merged in, or why they are refused.
fn add_signatures(
    ctx: &WriteCtx<'_>,
    me_id: &UserId,
    // As the request body spells it, not parsed: a user ID that names no
    // stored key is reported per key ("unknown key"), not refused.
    user: &str,
    key_id: &str,
    signed: &Value,
) -> Result<Result<(&'static str, Value), String>, StoreError> {
    let me = me_id.as_str();
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
        let Some(signer) = signing_key(ctx, me_id, target.signer(), signature)? else {
            return Ok(Err(format!("{signature} is not a key of yours that may sign this key")));
        };
        if let Err(e) = signer.verify(signed, me_id) {
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
    // Unparsed, as in `add_signatures`.
    user: &str,
    key_id: &str,
) -> Result<Option<(&'static str, Vec<u8>)>, StoreError> {
    // IDs that do not parse name no stored key.
    let Ok(user) = UserId::parse(user) else { return Ok(None) };
    if let Ok(device) = DeviceId::parse(key_id)
        && let Some(device_keys) = ctx.device_keys(&user, &device)?
    {
        return Ok(Some(("device", device_keys)));
    }
    for kind in ["master", "self_signing"] {
        if let Some(key) = ctx.cross_signing_key(&user, kind)?
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
    me: &UserId,
    signer: Signer,
    key_id: &str,
) -> Result<Option<e2ee::PublicKey>, StoreError> {
    let kind = match signer {
        Signer::Device => {
            let Some(device) = e2ee::device_id_of(key_id) else { return Ok(None) };
            // An ID that does not parse names no device.
            let Ok(device_id) = DeviceId::parse(device) else { return Ok(None) };
            let keys = ctx.device_keys(me, &device_id)?;
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
