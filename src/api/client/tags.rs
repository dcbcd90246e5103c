//! Room tagging (spec: modules/tags): the user's tags on a room, kept as
//! the room's `m.tag` account data.

use serde_json::{Map, Value, json};

use super::own;
use crate::api::{Reply, Request, json};
use crate::app::App;
use crate::error::MatrixError;
use crate::ids::UserId;
use crate::sync::account_data;

fn read_tags(
    app: &App,
    user_id: &UserId,
    room_id: &str,
) -> Result<Map<String, Value>, MatrixError> {
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
    Ok(json(&json!({ "tags": read_tags(app, &req.caller()?.user_id, room_id)? })))
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
    let user = req.caller()?.user_id.clone();
    let (r, t) = (room_id.to_owned(), tag.to_owned());
    app.store.write(move |ctx| account_data::change_tag(ctx, &user, &r, t, value)).await?;
    Ok(json(&json!({})))
}
