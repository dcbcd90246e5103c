//! Creating local events: the room version's PDU format, authorised against
//! current state, hashed, signed and stored — all inside one writer
//! operation, so the auth check and the write are atomic.
//!
//! Storing is all this does: what a new event sets off elsewhere (search,
//! push, relations, sync wake-ups) is the ingest point's business
//! (`ingest::fan_out`), which every caller runs on the stored event in the
//! same transaction.

use std::borrow::Cow;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::error::{ErrorKind, MatrixError};
use crate::ids::{EventId, RoomId, UserId};
use crate::membership::Membership;
use crate::room::auth::{self, AuthEvent};
use crate::room::cache::StateCache;
use crate::room::canonical::canonical_json_bytes;
use crate::room::pdu::{self, ServerKey};
use crate::room::target::RoomTarget;
use crate::store::{StoreError, StreamPos, WriteCtx};

/// An event a local user wants to send.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub event_type: String,
    pub state_key: Option<String>,
    pub sender: UserId,
    pub content: Value,
    /// For `m.room.redaction` before v11 (top-level `redacts`).
    pub redacts: Option<String>,
    /// `(device ID, transaction ID)` of the client request that sends it:
    /// stored in `unsigned`, served to that device only
    /// (`crate::room::served`).
    pub txn: Option<(String, String)>,
}

impl NewEvent {
    /// An `m.room.member` event by `sender` about `target`.
    pub fn member(sender: &UserId, target: &UserId, content: Value) -> NewEvent {
        NewEvent {
            event_type: "m.room.member".into(),
            state_key: Some(target.to_string()),
            sender: sender.clone(),
            content,
            redacts: None,
            txn: None,
        }
    }
}

/// The signing identity of this server.
#[derive(Clone)]
pub struct Signer {
    pub server_name: String,
    pub key: ServerKey,
}

/// An event as [`append_event`] stored it.
#[derive(Clone, Debug)]
pub struct Appended {
    pub event_id: EventId,
    pub stream: StreamPos,
    /// The client-format event as stored (with its `unsigned`), kept as a
    /// value so that the fan-out does not parse the stored bytes back.
    pub event: Value,
}

/// Just the `event_id` of a stored client-format event.
#[derive(Deserialize)]
struct EventIdOnly<'a> {
    #[serde(borrow)]
    event_id: Cow<'a, str>,
}

/// The `event_id` of a stored client-format event.
pub fn event_id_of(json: &[u8]) -> Option<String> {
    serde_json::from_slice::<EventIdOnly<'_>>(json).ok().map(|e| e.event_id.into_owned())
}

/// The largest event, as the federation PDU (signatures included) in
/// canonical JSON (spec: client-server-api/#size-limits).
pub const MAX_PDU_BYTES: usize = 65_536;

/// The largest `type`, `state_key`, `sender` and `room_id`, in bytes (the
/// same section; user and room IDs are limited to 255 bytes by the
/// appendices' grammar).
pub const MAX_KEY_BYTES: usize = 255;

fn too_large(message: String) -> MatrixError {
    MatrixError::new(ErrorKind::TooLarge, message)
}

/// The spec's per-key size limits, checked before any work is spent on an
/// event that could never be sent.
fn check_key_sizes(ev: &NewEvent, room_id: &RoomId) -> Result<(), MatrixError> {
    let keys = [
        ("type", Some(ev.event_type.as_str())),
        ("state_key", ev.state_key.as_deref()),
        ("sender", Some(ev.sender.as_str())),
        ("room_id", Some(room_id.as_str())),
    ];
    for (name, value) in keys {
        if let Some(v) = value
            && v.len() > MAX_KEY_BYTES
        {
            return Err(too_large(format!(
                "The event's {name} is {} bytes long; at most {MAX_KEY_BYTES} are allowed",
                v.len()
            )));
        }
    }
    Ok(())
}

/// The whole-event limit, measured on the signed PDU as federation would
/// carry it.
fn check_pdu_size(pdu: &Value) -> Result<(), MatrixError> {
    let bytes = canonical_json_bytes(pdu)
        .map_err(|e| MatrixError::bad_json(format!("event cannot be signed: {e}")))?;
    if bytes.len() > MAX_PDU_BYTES {
        return Err(too_large(format!(
            "The event is {} bytes long as canonical JSON; at most {MAX_PDU_BYTES} are allowed",
            bytes.len()
        )));
    }
    Ok(())
}

/// Authorises, builds, signs and stores `ev` in `room`. The outer `Err` is a
/// storage failure; the inner one a refusal (nothing written). State the
/// rules read comes parsed from `state`. Only stores: the caller passes the
/// result on to the fan-out (see the module docs).
pub fn append_event(
    ctx: &mut WriteCtx<'_>,
    state: &mut StateCache,
    signer: &Signer,
    room: &RoomTarget,
    ev: NewEvent,
    now_ms: u64,
) -> Result<Result<Appended, MatrixError>, StoreError> {
    if let Err(e) = check_key_sizes(&ev, &room.room_id) {
        return Ok(Err(e));
    }
    let version = room.version;
    let is_create = ev.event_type == "m.room.create" && ev.state_key.as_deref() == Some("");
    let (prev_events, depth) = match ctx.latest_event(room.short)? {
        Some(latest) => {
            let id = serde_json::from_slice::<EventIdOnly<'_>>(&latest.json)
                .map_err(|_| StoreError::Corrupt("stored event without event_id".into()))?
                .event_id
                .into_owned();
            let depth = ctx
                .pdu_fields(room.short, latest.stream)?
                .and_then(|f| crate::room::fields::depth(&f))
                .unwrap_or(0);
            (vec![id], depth + 1)
        }
        None => (Vec::new(), 1),
    };
    let NewEvent { event_type, state_key, sender, content, redacts, txn } = ev;
    let candidate = AuthEvent {
        event_id: "$pending".into(),
        room_id: if is_create && version.room_id_from_create_event() {
            None
        } else {
            Some(room.room_id.to_string())
        },
        event_type,
        state_key,
        sender: sender.to_string(),
        content,
        prev_events,
    };
    // Load the auth events the rules will read, plus the create event.
    let mut wanted = auth::auth_types_for_event(version, &candidate);
    wanted.push(("m.room.create".into(), String::new()));
    let mut loaded: Vec<(&str, &str, Arc<AuthEvent>)> = Vec::with_capacity(wanted.len());
    for (ty, key) in &wanted {
        if loaded.iter().any(|(t, k, _)| t == ty && k == key) {
            continue;
        }
        if let Some(event) = state.state_event(ctx, room, ty, key)? {
            loaded.push((ty, key, event));
        }
    }
    let lookup = |t: &str, k: &str| {
        loaded.iter().find(|(lt, lk, _)| *lt == t && *lk == k).map(|(_, _, e)| &**e)
    };
    if let Err(e) = auth::check(version, &candidate, &lookup) {
        return Ok(Err(MatrixError::forbidden(e.to_string())));
    }
    let mut auth_ids: Vec<String> = wanted[..wanted.len() - 1]
        .iter()
        .filter_map(|(t, k)| lookup(t, k).map(|e| e.event_id.clone()))
        .collect();
    auth_ids.sort();
    auth_ids.dedup();
    drop(loaded);
    let AuthEvent { event_type, state_key, sender, content, prev_events, .. } = candidate;
    // `unsigned`, stored with the event: what it replaces, for a state event
    // (clients describe "changed their name" from `prev_content`), and the
    // sending device's transaction ID.
    let mut unsigned = Map::new();
    if let Some(k) = &state_key
        && let Some(prev) = state.state_event(ctx, room, &event_type, k)?
    {
        unsigned.insert("prev_content".into(), prev.content.clone());
        unsigned.insert("prev_sender".into(), json!(prev.sender));
        unsigned.insert("replaces_state".into(), json!(prev.event_id));
    }
    if let Some((device, txn_id)) = txn {
        unsigned.insert("transaction_id".into(), json!(txn_id));
        unsigned.insert(crate::room::served::TXN_DEVICE.into(), json!(device));
    }

    let mut pdu = Map::new();
    pdu.insert("auth_events".into(), json!(auth_ids));
    pdu.insert("content".into(), content.clone());
    pdu.insert("depth".into(), json!(depth));
    pdu.insert("origin_server_ts".into(), json!(now_ms));
    pdu.insert("prev_events".into(), json!(prev_events));
    if !(is_create && version.room_id_from_create_event()) {
        pdu.insert("room_id".into(), json!(room.room_id));
    }
    pdu.insert("sender".into(), json!(sender));
    pdu.insert("type".into(), json!(event_type));
    if let Some(k) = &state_key {
        pdu.insert("state_key".into(), json!(k));
    }
    if let Some(r) = &redacts {
        pdu.insert("redacts".into(), json!(r));
    }
    let mut pdu = Value::Object(pdu);
    let event_id =
        match pdu::hash_and_sign_event(&mut pdu, version, &signer.server_name, &signer.key) {
            Ok(id) => id,
            Err(e) => {
                return Ok(Err(MatrixError::bad_json(format!("event cannot be signed: {e}"))));
            }
        };
    if let Err(e) = check_pdu_size(&pdu) {
        return Ok(Err(e));
    }

    let mut client = Map::new();
    client.insert("content".into(), content);
    client.insert("event_id".into(), json!(event_id));
    client.insert("origin_server_ts".into(), json!(now_ms));
    client.insert("room_id".into(), json!(room.room_id));
    client.insert("sender".into(), json!(sender));
    client.insert("type".into(), json!(event_type));
    if let Some(k) = &state_key {
        client.insert("state_key".into(), json!(k));
    }
    if let Some(r) = &redacts {
        client.insert("redacts".into(), json!(r));
    }
    if !unsigned.is_empty() {
        client.insert("unsigned".into(), Value::Object(unsigned));
    }
    // Kept as a value for the fan-out: the event is not parsed back.
    let client_value = Value::Object(client);
    let client_json =
        serde_json::to_vec(&client_value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let fields = json!({
        "auth_events": pdu["auth_events"],
        "prev_events": pdu["prev_events"],
        "depth": depth,
        "hashes": pdu["hashes"],
        "signatures": pdu["signatures"],
    });
    let fields =
        crate::room::fields::encode(&fields).map_err(|e| StoreError::Corrupt(e.to_string()))?;

    let content = &client_value["content"];
    let membership =
        if event_type == "m.room.member" { Membership::of_content(content) } else { None };
    let stream = ctx.next_position();
    let state = state_key.as_deref().map(|k| (event_type.as_str(), k));
    let member = match (membership, &state_key) {
        (Some(m), Some(target)) => Some((target.as_str(), m)),
        _ => None,
    };
    ctx.put_event(room.short, stream, &event_id, &client_json, &fields, state, member)?;
    // Made here from the event's reference hash.
    let event_id = EventId::from_trusted(event_id);
    Ok(Ok(Appended { event_id, stream, event: client_value }))
}
