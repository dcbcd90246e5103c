//! Profiles (spec: client-server-api/#profiles): display names and
//! avatars, and the member events that carry them into rooms.

use serde_json::{Value, json};

use super::{own, room_short};
use crate::account::profile;
use crate::api::{Reply, Request, json};
use crate::app::App;
use crate::error::{ErrorKind, MatrixError};
use crate::ids::UserId;
use crate::ingest;
use crate::membership::Membership;
use crate::room::build::NewEvent;

pub(super) fn profile_of(
    app: &App,
    user_id: &str,
) -> Result<(Option<String>, Option<String>), MatrixError> {
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
    profile::check_value(key, value.as_deref())?;
    let caller = req.caller()?.user_id.clone();
    let (user, k, v) = (caller.clone(), key.to_owned(), value.clone());
    app.store.write(move |ctx| profile::set_field(ctx, &user, &k, v)).await?;
    let rooms: Vec<String> = {
        let read = app.store.read()?;
        let mut out = Vec::new();
        for m in read.user_memberships(&caller)? {
            if m.membership == Membership::Join
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
        let ev = NewEvent::member(&caller, &caller, content);
        let sent = match super::known_room_id(&room_id) {
            Ok(id) => ingest::send(&super::rooms(app), &id, ev, None).await,
            Err(e) => Err(e),
        };
        if let Err(e) = sent {
            tracing::warn!("profile update in {room_id} refused: {e}");
        }
    }
    Ok(json(&json!({})))
}
