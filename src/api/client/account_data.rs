//! Client config (spec: modules/account_data): per-user data, global or
//! per room, that the server stores for the user's clients.

use serde_json::{Value, json};

use super::{own, room_short};
use crate::error::MatrixError;
use crate::http::{Reply, Request, json};
use crate::ids::RoomId;
use crate::quota;
use crate::server::App;
use crate::store::{StoreError, WriteCtx};

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
pub(super) fn account_data_quota(
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
