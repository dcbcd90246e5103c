//! Typing notifications (spec: modules/typing_notifications); the state
//! and its expiry are in `sync::typing`.

use serde_json::{Value, json};

use super::{own, room_short};
use crate::api::{Reply, Request, json};
use crate::app::App;
use crate::error::MatrixError;
use crate::membership::Membership;
use crate::sync::typing;

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
    match read.membership(&req.caller()?.user_id, short)? {
        Some(m) if m.membership == Membership::Join => {}
        _ => return Err(MatrixError::forbidden("You are not in this room")),
    }
    let members = read.members_with(short, Membership::Join)?;
    drop(read);
    let until = typing::until(typing, body.get("timeout").and_then(Value::as_u64));
    let changed = app.typing.borrow_mut().set(short, &req.caller()?.user_id, until);
    if changed {
        for m in &members {
            app.wake(m);
        }
    }
    Ok(json(&json!({})))
}
