//! Creating a room (spec: client-server-api/#creation): the room record and
//! all its initial events in one transaction.

use serde_json::{Value, json};

use super::{Rooms, append, lock};
use crate::account::now_ms;
use crate::error::{ErrorKind, MatrixError};
use crate::ids::{RoomAlias, RoomId, UserId};
use crate::room::build::NewEvent;
use crate::room::pdu;
use crate::room::target::RoomTarget;
use crate::room::version::RoomVersion;
use crate::store::StoreError;

/// What `createRoom` asked for, validated by the handler.
pub struct CreateRoom {
    pub creator: UserId,
    pub version: RoomVersion,
    pub creation_content: serde_json::Map<String, Value>,
    pub power_levels: Value,
    /// State events after the power levels: (type, state_key, content).
    pub initial_state: Vec<(String, String, Value)>,
    pub invite: Vec<UserId>,
    pub is_direct: bool,
    pub alias: Option<RoomAlias>,
    pub public: bool,
    pub creator_profile: (Option<String>, Option<String>),
}

/// Creates a room with all its initial events in one transaction.
pub async fn create_room(rooms: &Rooms<'_>, req: CreateRoom) -> Result<RoomId, MatrixError> {
    let signer = rooms.signer.clone();
    let cache = rooms.cache.clone();
    let random_id = format!("!{}:{}", random_opaque()?, signer.server_name);
    // Alone: a refusal comes only after the first events are written.
    rooms
        .store
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
                && ctx.alias(alias.as_str())?.is_some()
            {
                return Ok(Err(MatrixError::new(ErrorKind::RoomInUse, "Room alias already taken")));
            }
            // Made here: random, or the create event's reference hash.
            let room_id = RoomId::from_trusted(room_id);
            let short = ctx.create_room_record(room_id.as_str(), v.as_str(), req.public)?;
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
                state("m.room.member", req.creator.as_str(), member),
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
                events.push(state("m.room.member", invitee.as_str(), c));
            }
            for ev in events {
                // The room is new, so a refusal here means the request was
                // inconsistent; nothing is committed unless all pass —
                // `Refused` rolls back this operation's own transaction.
                if let Err(e) = append(ctx, &mut cache, &signer, &room, ev, now)? {
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
                ctx.put_alias(alias.as_str(), room_id.as_str())?;
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
