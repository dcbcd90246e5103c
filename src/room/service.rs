//! Room operations the API layer calls: sending an event into an existing
//! room and creating a room, each as one writer operation.

use serde_json::{Value, json};

use crate::account::now_ms;
use crate::error::{ErrorKind, MatrixError};
use crate::room::build::{Appended, NewEvent, RoomTarget, Signer, append_event};
use crate::room::cache::{WriterCache, lock};
use crate::room::pdu;
use crate::room::version::RoomVersion;
use crate::server::App;
use crate::store::{StoreError, WriteCtx};

pub(crate) fn target(ctx: &WriteCtx<'_>, room_id: &str) -> Result<Option<RoomTarget>, StoreError> {
    let Some(record) = ctx.room(room_id)? else { return Ok(None) };
    let Some(version) = RoomVersion::parse(&record.version) else { return Ok(None) };
    Ok(Some(RoomTarget {
        room_id: room_id.to_owned(),
        short: crate::store::RoomShort(record.short),
        version,
    }))
}

/// A client's transaction ID with who sent it: the same ID from the same
/// device on the same path is one request (spec: "Transaction
/// identifiers"), whichever access token the device used.
pub struct Txn {
    pub user: String,
    pub device: String,
    pub id: String,
}

impl Txn {
    pub fn of(caller: &crate::api::Caller, id: &str) -> Txn {
        Txn {
            user: caller.user_id.to_string(),
            device: caller.device_id.to_string(),
            id: id.into(),
        }
    }
}

/// The event ID a transaction made earlier in `room`, if it did.
fn earlier_event(ctx: &WriteCtx<'_>, txn: &Txn, scope: &str) -> Result<Option<String>, StoreError> {
    let Some((room, stream)) = ctx.txn_position(&txn.user, &txn.device, scope, &txn.id)? else {
        return Ok(None);
    };
    let Some(event) = ctx.event_at(room, stream)? else { return Ok(None) };
    Ok(crate::room::build::event_id_of(&event.json))
}

/// Sends `ev` into `room_id`. With `txn` the send is idempotent: a
/// retransmission returns the first event's ID, and the event carries the
/// transaction ID for the sending device (`unsigned.transaction_id`).
pub async fn send(
    app: &App,
    room_id: &str,
    mut ev: NewEvent,
    txn: Option<Txn>,
) -> Result<String, MatrixError> {
    let signer = app.signer.clone();
    let cache = app.writer_cache.clone();
    let room_id = room_id.to_owned();
    let appended: Appended = app
        .store
        .write(move |ctx| {
            let mut cache = lock(&cache);
            let Some(room) = target(ctx, &room_id)? else {
                return Ok(Err(MatrixError::not_found("Room not found")));
            };
            let scope = format!("s{}/{}", room.short.0, ev.event_type);
            if let Some(t) = &txn {
                if let Some(id) = earlier_event(ctx, t, &scope)? {
                    return Ok(Ok(Appended { event_id: id, stream: crate::store::StreamPos(0) }));
                }
                ev.txn = Some((t.device.clone(), t.id.clone()));
            }
            if ev.state_key.is_none()
                && crate::room::relations::is_duplicate_annotation(
                    ctx,
                    room.short,
                    &ev.sender,
                    &ev.event_type,
                    &ev.content,
                )?
            {
                return Ok(Err(MatrixError::new(
                    ErrorKind::DuplicateAnnotation,
                    "You already sent this annotation to this event; redact it to send it again",
                )));
            }
            let appended = match append_event(ctx, &mut cache, &signer, &room, ev, now_ms())? {
                Ok(a) => a,
                Err(e) => return Ok(Err(e)),
            };
            if let Some(t) = &txn {
                ctx.put_txn(&t.user, &t.device, &scope, &t.id, (room.short, appended.stream))?;
            }
            Ok(Ok(appended))
        })
        .await?;
    Ok(appended.event_id)
}

/// Redacts `event_id` in `room_id` on behalf of `sender`: sends the
/// `m.room.redaction` event and rewrites the stored event to its redacted
/// form (with `unsigned.redacted_because`), in one transaction.
pub async fn redact(
    app: &App,
    room_id: &str,
    event_id: &str,
    sender: &str,
    reason: Option<String>,
    txn: Txn,
) -> Result<String, MatrixError> {
    let signer = app.signer.clone();
    let cache = app.writer_cache.clone();
    let (room_id, event_id, sender) = (room_id.to_owned(), event_id.to_owned(), sender.to_owned());
    app.store
        .write(move |ctx| {
            let mut cache = lock(&cache);
            let Some(room) = target(ctx, &room_id)? else {
                return Ok(Err(MatrixError::not_found("Room not found")));
            };
            let scope = format!("r{}/{}", room.short.0, event_id);
            if let Some(id) = earlier_event(ctx, &txn, &scope)? {
                return Ok(Ok(id));
            }
            let Some((r, pos)) = ctx.event_position(&event_id)? else {
                return Ok(Err(MatrixError::not_found("Event not found")));
            };
            if r != room.short {
                return Ok(Err(MatrixError::not_found("Event not found in this room")));
            }
            let Some(original) = ctx.event_at(r, pos)? else {
                return Ok(Err(MatrixError::not_found("Event not found")));
            };
            let original: Value = serde_json::from_slice(&original.json)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let original_sender = original.get("sender").and_then(Value::as_str).unwrap_or("");
            let allowed = match cache.state.power_levels(ctx, &room)? {
                Some(pl) => pl.can_redact(&sender, original_sender),
                None => sender == original_sender,
            };
            if !allowed {
                return Ok(Err(MatrixError::forbidden("You may not redact this event")));
            }
            let mut content = json!({});
            if let Some(r) = &reason {
                content["reason"] = json!(r);
            }
            let top_level = if room.version.redacts_in_content() {
                content["redacts"] = json!(event_id);
                None
            } else {
                Some(event_id.clone())
            };
            let ev = NewEvent {
                event_type: "m.room.redaction".into(),
                state_key: None,
                sender: sender.clone(),
                content,
                redacts: top_level,
                txn: Some((txn.device.clone(), txn.id.clone())),
            };
            let appended = match append_event(ctx, &mut cache, &signer, &room, ev, now_ms())? {
                Ok(a) => a,
                Err(e) => return Ok(Err(e)),
            };
            let because = ctx
                .event_at(room.short, appended.stream)?
                .and_then(|e| crate::room::served::parse(&e.json, None).ok())
                .unwrap_or(Value::Null);
            // A redacted event no longer relates to anything (its reaction
            // or edit stops counting).
            if let Some((rel_type, parent)) =
                crate::room::relations::relation_of(&original["content"])
            {
                ctx.delete_relation(r, parent, rel_type, pos)?;
            }
            crate::search::run::unindex_event(ctx, pos, &original)?;
            let mut redacted = crate::room::redaction::redact(&original, room.version);
            redacted["unsigned"] = json!({ "redacted_because": because });
            let bytes =
                serde_json::to_vec(&redacted).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            // Before the rewrite: whatever becomes of this batch, the parsed
            // original must not be served again.
            cache.state.event_rewritten(r, pos);
            ctx.rewrite_event(r, pos, &bytes)?;
            ctx.put_txn(&txn.user, &txn.device, &scope, &txn.id, (room.short, appended.stream))?;
            Ok(Ok(appended.event_id))
        })
        .await
}

/// After `alias` stopped naming `room`: when the room's
/// `m.room.canonical_alias` lists it (`alias` or `alt_aliases`), sends one
/// without it as `sender`, so the room no longer advertises a dead alias
/// (in its state and the directory). The event goes through the auth
/// rules like any other; a sender they refuse (too little power, not in the
/// room) leaves the state as it was, and the alias is gone all the same.
pub(crate) fn unlist_canonical_alias(
    ctx: &mut WriteCtx<'_>,
    cache: &mut WriterCache,
    signer: &Signer,
    room: &RoomTarget,
    sender: &str,
    alias: &str,
) -> Result<(), StoreError> {
    let Some(current) = ctx.state_event(room.short, "m.room.canonical_alias", "")? else {
        return Ok(());
    };
    let current: Value =
        serde_json::from_slice(&current.json).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let Some(mut content) = current.get("content").and_then(Value::as_object).cloned() else {
        return Ok(());
    };
    let mut listed = false;
    if content.get("alias").and_then(Value::as_str) == Some(alias) {
        content.remove("alias");
        listed = true;
    }
    let mut alt_left = None;
    if let Some(Value::Array(alt)) = content.get_mut("alt_aliases") {
        let before = alt.len();
        alt.retain(|a| a.as_str() != Some(alias));
        listed |= alt.len() != before;
        alt_left = Some(alt.len());
    }
    if !listed {
        return Ok(());
    }
    if alt_left == Some(0) {
        content.remove("alt_aliases");
    }
    let ev = NewEvent {
        event_type: "m.room.canonical_alias".into(),
        state_key: Some(String::new()),
        sender: sender.to_owned(),
        content: Value::Object(content),
        redacts: None,
        txn: None,
    };
    if let Err(e) = append_event(ctx, cache, signer, room, ev, now_ms())? {
        tracing::debug!("{alias} left in the canonical alias of {}: {e:?}", room.room_id);
    }
    Ok(())
}

/// What `createRoom` asked for, validated by the handler.
pub struct CreateRoom {
    pub creator: String,
    pub version: RoomVersion,
    pub creation_content: serde_json::Map<String, Value>,
    pub power_levels: Value,
    /// State events after the power levels: (type, state_key, content).
    pub initial_state: Vec<(String, String, Value)>,
    pub invite: Vec<String>,
    pub is_direct: bool,
    pub alias: Option<String>,
    pub public: bool,
    pub creator_profile: (Option<String>, Option<String>),
}

/// Creates a room with all its initial events in one transaction.
pub async fn create_room(app: &App, req: CreateRoom) -> Result<String, MatrixError> {
    let signer = app.signer.clone();
    let cache = app.writer_cache.clone();
    let server_name = app.config.server_name.clone();
    let random_id = format!("!{}:{}", random_opaque()?, server_name);
    // Alone: a refusal comes only after the first events are written.
    app.store
        .write_alone(move |ctx| {
            let mut cache = lock(&cache);
            let mut now = now_ms();
            let v = req.version;
            let mut create_content = req.creation_content.clone();
            create_content.insert("room_version".into(), json!(v.as_str()));
            // spec: createRoom `creation_content`: the server overwrites
            // `creator`, which only room versions before 11 have.
            if v.create_has_creator() {
                create_content.insert("creator".into(), json!(req.creator));
            } else {
                create_content.remove("creator");
            }
            let create_content = Value::Object(create_content);
            let room_id = if v.room_id_from_create_event() {
                // The ID is the reference hash of the create event; build the
                // same PDU append_event will build to learn it first. Two
                // identical create events (same creator, content and
                // millisecond: a client creating rooms in parallel) would
                // share an ID, so step the timestamp until the ID is new.
                loop {
                    let mut probe = json!({
                        "auth_events": [], "content": create_content, "depth": 1,
                        "origin_server_ts": now, "prev_events": [], "sender": req.creator,
                        "state_key": "", "type": "m.room.create",
                    });
                    if pdu::hash_and_sign_event(&mut probe, v, &signer.server_name, &signer.key)
                        .is_err()
                    {
                        return Ok(Err(MatrixError::bad_json(
                            "creation_content is not valid canonical JSON",
                        )));
                    }
                    let id = match pdu::room_id_from_create_event(&probe, v) {
                        Ok(id) => id,
                        Err(e) => return Ok(Err(MatrixError::bad_json(e.to_string()))),
                    };
                    if ctx.room(&id)?.is_none() {
                        break id;
                    }
                    now += 1;
                }
            } else {
                random_id
            };
            if let Some(alias) = &req.alias
                && ctx.alias(alias)?.is_some()
            {
                return Ok(Err(MatrixError::new(ErrorKind::RoomInUse, "Room alias already taken")));
            }
            let short = ctx.create_room_record(&room_id, v.as_str(), req.public)?;
            let room = RoomTarget { room_id: room_id.clone(), short, version: v };
            let state = |t: &str, k: &str, content: Value| NewEvent {
                event_type: t.into(),
                state_key: Some(k.into()),
                sender: req.creator.clone(),
                content,
                redacts: None,
                txn: None,
            };
            let mut member = json!({ "membership": "join" });
            if let Some(n) = &req.creator_profile.0 {
                member["displayname"] = json!(n);
            }
            if let Some(a) = &req.creator_profile.1 {
                member["avatar_url"] = json!(a);
            }
            let mut events = vec![
                state("m.room.create", "", create_content),
                state("m.room.member", &req.creator, member),
                state("m.room.power_levels", "", req.power_levels.clone()),
            ];
            if let Some(alias) = &req.alias {
                events.push(state("m.room.canonical_alias", "", json!({ "alias": alias })));
            }
            for (t, k, c) in &req.initial_state {
                events.push(state(t, k, c.clone()));
            }
            for invitee in &req.invite {
                let mut c = json!({ "membership": "invite" });
                if req.is_direct {
                    c["is_direct"] = json!(true);
                }
                events.push(state("m.room.member", invitee, c));
            }
            for ev in events {
                // The room is new, so a refusal here means the request was
                // inconsistent; nothing is committed unless all pass —
                // `Refused` rolls back this operation's own transaction.
                if let Err(e) = append_event(ctx, &mut cache, &signer, &room, ev, now)? {
                    // In a new room an auth failure means the request's own
                    // events contradict each other: its initial state is
                    // invalid (spec: createRoom, 400 M_INVALID_ROOM_STATE).
                    let e = match e.kind {
                        ErrorKind::Forbidden => {
                            MatrixError::new(ErrorKind::InvalidRoomState, e.message)
                        }
                        _ => e,
                    };
                    return Err(StoreError::refused(e));
                }
            }
            if let Some(alias) = &req.alias {
                ctx.put_alias(alias, &room_id)?;
            }
            Ok(Ok(room_id))
        })
        .await
}

fn random_opaque() -> Result<String, MatrixError> {
    let mut b = [0u8; 18];
    getrandom::fill(&mut b).map_err(|e| MatrixError::internal("OS randomness", e))?;
    Ok(pdu::encode_url_safe_base64(&b))
}
