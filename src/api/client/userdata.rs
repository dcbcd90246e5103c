//! Per-user data: account data and tags, typing, receipts and read markers,
//! profiles and presence (spec: modules account_data, tags, typing_notifications,
//! receipts, read_markers, presence; client-server-api/#profiles).

use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::{own, room_short};
use crate::account::now_ms;
use crate::error::{ErrorKind, MatrixError};
use crate::http::{Reply, Request, json};
use crate::ids::{RoomId, UserId};
use crate::quota;
use crate::room::build::NewEvent;
use crate::room::service;
use crate::room::visibility::visible_upto;
use crate::server::App;
use crate::store::{Receipt, StoreError, WriteCtx};
use crate::sync::presence;
use crate::sync::typing::MAX_TYPING;

/// `GET /user/{userId}/account_data/{type}` and the per-room form
/// (`room_id` = "" for global).
pub fn get_account_data(
    app: &App,
    req: &Request,
    user_id: &str,
    room_id: &str,
    data_type: &str,
) -> Result<Reply, MatrixError> {
    own(req, user_id)?;
    let bytes = app
        .store
        .read()?
        .account_data(user_id, room_id, data_type)?
        .ok_or_else(|| MatrixError::not_found("Account data not found"))?;
    let v: Value =
        serde_json::from_slice(&bytes).map_err(|e| MatrixError::internal("account data", e))?;
    Ok(json(&v))
}

/// `PUT /user/{userId}/account_data/{type}` and the per-room form.
pub async fn set_account_data(
    app: &App,
    req: &Request,
    user_id: &str,
    room_id: &str,
    data_type: &str,
) -> Result<Reply, MatrixError> {
    own(req, user_id)?;
    // spec: the account-data PUTs answer 405 M_BAD_JSON for the types the
    // server manages itself.
    if data_type == "m.fully_read" || data_type == "m.push_rules" {
        return Err(MatrixError::bad_json(format!(
            "{data_type} cannot be set through the account data API"
        ))
        .with_status(405));
    }
    if !room_id.is_empty() {
        RoomId::parse(room_id).map_err(|e| MatrixError::invalid_param(e.0))?;
        room_short(&app.store.read()?, room_id)?;
    }
    let body = serde_json::to_vec(&req.json_object()?)
        .map_err(|e| MatrixError::internal("account data", e))?;
    let (u, r, t) = (user_id.to_owned(), room_id.to_owned(), data_type.to_owned());
    app.store
        .write(move |ctx| {
            if let Some(refused) = account_data_quota(ctx, &u, &r, &t, body.len())? {
                return Ok(Err(refused));
            }
            ctx.put_account_data(&u, &r, &t, &body)?;
            Ok(Ok::<_, MatrixError>(()))
        })
        .await?;
    Ok(json(&json!({})))
}

/// Why storing `len` bytes as account data `data_type` would grow a full
/// store (see `quota`); `None` when it may be stored. Replacing an item by
/// one no larger always passes.
fn account_data_quota(
    ctx: &WriteCtx<'_>,
    user_id: &str,
    room_id: &str,
    data_type: &str,
    len: usize,
) -> Result<Option<MatrixError>, StoreError> {
    let old = ctx.account_data(user_id, room_id, data_type)?;
    if len > quota::ACCOUNT_DATA_BYTES && old.as_ref().is_none_or(|o| len > o.len()) {
        return Ok(Some(quota::too_large(
            &format!("Account data {data_type}"),
            quota::ACCOUNT_DATA_BYTES,
        )));
    }
    if old.is_some() {
        return Ok(None);
    }
    let (max, what) = if room_id.is_empty() {
        (quota::MAX_GLOBAL_ACCOUNT_DATA, "global account data types")
    } else {
        (quota::MAX_ROOM_ACCOUNT_DATA, "account data types in one room")
    };
    if ctx.account_data_count(user_id, room_id)? >= max {
        return Ok(Some(quota::store_full(what, max, "; delete some first")));
    }
    Ok(None)
}

fn read_tags(app: &App, user_id: &str, room_id: &str) -> Result<Map<String, Value>, MatrixError> {
    let bytes = app.store.read()?.account_data(user_id, room_id, "m.tag")?;
    let v: Value = match bytes {
        Some(b) => serde_json::from_slice(&b).map_err(|e| MatrixError::internal("tags", e))?,
        None => json!({}),
    };
    Ok(v.get("tags").and_then(Value::as_object).cloned().unwrap_or_default())
}

/// `GET /user/{userId}/rooms/{roomId}/tags`
pub fn get_tags(
    app: &App,
    req: &Request,
    user_id: &str,
    room_id: &str,
) -> Result<Reply, MatrixError> {
    own(req, user_id)?;
    Ok(json(&json!({ "tags": read_tags(app, user_id, room_id)? })))
}

/// `PUT|DELETE /user/{userId}/rooms/{roomId}/tags/{tag}`
pub async fn change_tag(
    app: &App,
    req: &Request,
    user_id: &str,
    room_id: &str,
    tag: &str,
    add: bool,
) -> Result<Reply, MatrixError> {
    own(req, user_id)?;
    let value = if add {
        let body = req.json_object()?;
        if let Some(o) = body.get("order")
            && !o.is_number()
        {
            return Err(MatrixError::bad_json("order must be a number"));
        }
        Some(Value::Object(body))
    } else {
        None
    };
    let (u, r, t) = (user_id.to_owned(), room_id.to_owned(), tag.to_owned());
    app.store
        .write(move |ctx| {
            let mut tags: Map<String, Value> = match ctx.account_data(&u, &r, "m.tag")? {
                Some(b) => serde_json::from_slice::<Value>(&b)
                    .ok()
                    .and_then(|v| v.get("tags").and_then(Value::as_object).cloned())
                    .unwrap_or_default(),
                None => Map::new(),
            };
            match value {
                Some(v) => {
                    tags.insert(t, v);
                }
                None => {
                    tags.remove(&t);
                }
            }
            let bytes = serde_json::to_vec(&json!({ "tags": tags }))
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            if let Some(refused) = account_data_quota(ctx, &u, &r, "m.tag", bytes.len())? {
                return Ok(Err(refused));
            }
            ctx.put_account_data(&u, &r, "m.tag", &bytes)?;
            Ok(Ok::<_, MatrixError>(()))
        })
        .await?;
    Ok(json(&json!({})))
}

/// `PUT /rooms/{roomId}/typing/{userId}`
pub async fn set_typing(
    app: &App,
    req: &Request,
    room_id: &str,
    user_id: &str,
) -> Result<Reply, MatrixError> {
    own(req, user_id)?;
    let body = req.json_object()?;
    let typing = body
        .get("typing")
        .and_then(Value::as_bool)
        .ok_or_else(|| MatrixError::bad_json("typing (boolean) is required"))?;
    let read = app.store.read()?;
    let short = room_short(&read, room_id)?;
    match read.membership(user_id, short)? {
        Some(m) if m.membership == "join" => {}
        _ => return Err(MatrixError::forbidden("You are not in this room")),
    }
    let members = read.members_with(short, "join")?;
    drop(read);
    let timeout = body
        .get("timeout")
        .and_then(Value::as_u64)
        .map(Duration::from_millis)
        .unwrap_or(MAX_TYPING)
        .min(MAX_TYPING);
    let until = typing.then(|| Instant::now() + timeout);
    let changed = app.typing.borrow_mut().set(short, user_id, until);
    if changed {
        for m in &members {
            app.wake(m);
        }
    }
    Ok(json(&json!({})))
}

async fn store_receipt(
    app: &App,
    req: &Request,
    room_id: &str,
    receipt_type: &str,
    event_id: &str,
    thread_id: &str,
) -> Result<(), MatrixError> {
    let caller = req.caller()?;
    let read = app.store.read()?;
    let short = room_short(&read, room_id)?;
    visible_upto(&read, &caller.user_id, short)?;
    match read.event_position(event_id)? {
        Some((r, _)) if r == short => {}
        _ => return Err(MatrixError::not_found("Event not found in this room")),
    }
    drop(read);
    let user = caller.user_id.to_string();
    if receipt_type == "m.fully_read" {
        let body = serde_json::to_vec(&json!({ "event_id": event_id }))
            .map_err(|e| MatrixError::internal("marker", e))?;
        let r = room_id.to_owned();
        let new = event_id.to_owned();
        app.store
            .write(move |ctx| {
                // The marker, like a receipt, only moves forwards.
                let current = ctx.account_data(&user, &r, "m.fully_read")?.and_then(|v| {
                    let v: Value = serde_json::from_slice(&v).ok()?;
                    v["event_id"].as_str().map(str::to_owned)
                });
                if let Some(current) = current
                    && !ctx.is_later_event(&new, &current)?
                {
                    return Ok(Ok(()));
                }
                ctx.put_account_data(&user, &r, "m.fully_read", &body)?;
                Ok(Ok::<_, MatrixError>(()))
            })
            .await?;
        return Ok(());
    }
    let receipt = Receipt {
        receipt_type: receipt_type.to_owned(),
        user_id: user.clone(),
        thread_id: thread_id.to_owned(),
        event_id: event_id.to_owned(),
        ts: now_ms(),
    };
    let private = receipt_type == "m.read.private";
    app.store
        .write(move |ctx| {
            if ctx.put_receipt(short, &receipt)?.is_none() {
                return Ok(Ok(()));
            }
            if private {
                ctx.wake_user(&user);
            } else {
                for m in ctx.members_with(short, "join")? {
                    ctx.wake_user(&m);
                }
            }
            Ok(Ok::<_, MatrixError>(()))
        })
        .await?;
    Ok(())
}

/// `POST /rooms/{roomId}/receipt/{receiptType}/{eventId}`
pub async fn post_receipt(
    app: &App,
    req: &Request,
    room_id: &str,
    receipt_type: &str,
    event_id: &str,
) -> Result<Reply, MatrixError> {
    if !matches!(receipt_type, "m.read" | "m.read.private" | "m.fully_read") {
        return Err(MatrixError::invalid_param(format!("Unknown receipt type {receipt_type}")));
    }
    let body = req.json_object()?;
    let thread_id = match body.get("thread_id") {
        None => "",
        Some(Value::String(t)) if !t.is_empty() => t.as_str(),
        Some(_) => return Err(MatrixError::invalid_param("thread_id must be a non-empty string")),
    };
    if receipt_type == "m.fully_read" && !thread_id.is_empty() {
        return Err(MatrixError::invalid_param("m.fully_read cannot have a thread_id"));
    }
    store_receipt(app, req, room_id, receipt_type, event_id, thread_id).await?;
    Ok(json(&json!({})))
}

/// `POST /rooms/{roomId}/read_markers`
pub async fn set_read_markers(
    app: &App,
    req: &Request,
    room_id: &str,
) -> Result<Reply, MatrixError> {
    let body = req.json_object()?;
    for key in ["m.fully_read", "m.read", "m.read.private"] {
        if let Some(v) = body.get(key) {
            let id = v
                .as_str()
                .ok_or_else(|| MatrixError::bad_json(format!("{key} must be an event ID")))?;
            store_receipt(app, req, room_id, key, id, "").await?;
        }
    }
    Ok(json(&json!({})))
}

fn profile_of(app: &App, user_id: &str) -> Result<(Option<String>, Option<String>), MatrixError> {
    let id = UserId::parse(user_id).map_err(|e| MatrixError::invalid_param(e.0))?;
    if id.server_name() != app.config.server_name {
        return Err(MatrixError::not_found("Profile not found (this server does not federate)"));
    }
    let u = app.store.read()?.user(id.localpart())?.filter(|u| !u.deactivated);
    let u = u.ok_or_else(|| MatrixError::not_found("Profile not found"))?;
    Ok((u.displayname, u.avatar_url))
}

/// `GET /profile/{userId}`
pub fn get_profile(app: &App, user_id: &str) -> Result<Reply, MatrixError> {
    let (name, avatar) = profile_of(app, user_id)?;
    let mut out = json!({});
    if let Some(n) = name {
        out["displayname"] = json!(n);
    }
    if let Some(a) = avatar {
        out["avatar_url"] = json!(a);
    }
    Ok(json(&out))
}

/// `GET /profile/{userId}/{keyName}`
pub fn get_profile_field(app: &App, user_id: &str, key: &str) -> Result<Reply, MatrixError> {
    let (name, avatar) = profile_of(app, user_id)?;
    let v = match key {
        "displayname" => name,
        "avatar_url" => avatar,
        _ => None,
    };
    match v {
        Some(v) => Ok(json(&json!({ key: v }))),
        None => Err(MatrixError::not_found(format!("No {key} set"))),
    }
}

/// `PUT|DELETE /profile/{userId}/{keyName}`: updates the user record and the
/// member event in every joined room (spec: "Events on Change of Profile
/// Information").
pub async fn set_profile_field(
    app: &App,
    req: &Request,
    user_id: &str,
    key: &str,
    delete: bool,
) -> Result<Reply, MatrixError> {
    own(req, user_id)?;
    if key != "displayname" && key != "avatar_url" {
        return Err(MatrixError::new(
            ErrorKind::Forbidden,
            format!("Profile field {key} is not supported"),
        ));
    }
    let value = if delete {
        None
    } else {
        let body = req.json_object()?;
        match body.get(key) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Null) | None => None,
            Some(_) => return Err(MatrixError::bad_json(format!("{key} must be a string"))),
        }
    };
    if value.as_ref().is_some_and(|v| v.len() > 256 && key == "displayname") {
        return Err(MatrixError::new(ErrorKind::TooLarge, "displayname is longer than 256 bytes"));
    }
    if key == "avatar_url" {
        let len = value.as_ref().map_or(0, String::len);
        quota::check_size("avatar_url", len, quota::AVATAR_URL_BYTES)?;
    }
    let caller = req.caller()?.user_id.clone();
    let lp = caller.localpart().to_owned();
    let (k, v) = (key.to_owned(), value.clone());
    app.store
        .write(move |ctx| {
            let Some(mut u) = ctx.user(&lp)? else {
                return Ok(Err(MatrixError::not_found("No such user")));
            };
            if k == "displayname" {
                u.displayname = v;
            } else {
                u.avatar_url = v;
            }
            ctx.put_user(&lp, &u)?;
            Ok(Ok(()))
        })
        .await?;
    let rooms: Vec<String> = {
        let read = app.store.read()?;
        let mut out = Vec::new();
        for m in read.user_memberships(caller.as_str())? {
            if m.membership == "join"
                && let Some(id) = read.room_id(m.room)?
            {
                out.push(id);
            }
        }
        out
    };
    for room_id in rooms {
        let read = app.store.read()?;
        let short = room_short(&read, &room_id)?;
        let mut content = match read.state_event(short, "m.room.member", caller.as_str())? {
            Some(ev) => crate::room::served::parse_stored(&ev)?["content"].clone(),
            None => continue,
        };
        drop(read);
        match &value {
            Some(v) => content[key] = json!(v),
            None => {
                if let Some(o) = content.as_object_mut() {
                    o.remove(key);
                }
            }
        }
        let ev = NewEvent::member(caller.as_str(), caller.as_str(), content);
        if let Err(e) = service::send(app, &room_id, ev, None).await {
            tracing::warn!("profile update in {room_id} refused: {e}");
        }
    }
    Ok(json(&json!({})))
}

/// `GET /presence/{userId}/status`
pub fn get_presence(app: &App, req: &Request, user_id: &str) -> Result<Reply, MatrixError> {
    req.caller()?;
    profile_of(app, user_id)?;
    let out = match app.presence.borrow().get(user_id) {
        Some(e) => e.content(now_ms()),
        None => json!({ "presence": "offline" }),
    };
    Ok(json(&out))
}

/// `PUT /presence/{userId}/status`
pub fn set_presence(app: &App, req: &Request, user_id: &str) -> Result<Reply, MatrixError> {
    own(req, user_id)?;
    let body = req.json_object()?;
    let presence = body
        .get("presence")
        .and_then(Value::as_str)
        .ok_or_else(|| MatrixError::bad_json("presence is required"))?;
    if !presence::valid_state(presence) {
        return Err(MatrixError::invalid_param("presence must be online, offline or unavailable"));
    }
    let status = match body.get("status_msg") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(MatrixError::bad_json("status_msg must be a string")),
    };
    if app.config.presence && app.presence.borrow_mut().set(user_id, presence, status, now_ms()) {
        presence::wake_watchers(&app.store, &req.caller()?.user_id, |u| app.wake(u));
    }
    Ok(json(&json!({})))
}
