//! Filters and `/sync` (spec: client-server-api/#filtering, #syncing).

use std::time::Duration;

use serde_json::{Value, json};

use super::userdata::wake_presence_watchers;
use crate::account::now_ms;
use crate::error::MatrixError;
use crate::http::{Reply, Request, json};
use crate::server::App;
use crate::store::StreamPos;
use crate::sync::filter::Filter;
use crate::sync::{self, Ephemeral, SyncParams, presence};

/// `POST /user/{userId}/filter`
pub async fn create_filter(app: &App, req: &Request, user_id: &str) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    if caller.user_id.as_str() != user_id {
        return Err(MatrixError::forbidden("Cannot create filters for other users"));
    }
    let body = req.json_object()?;
    // Refuse what a later `/sync` could not use.
    Filter::parse(&Value::Object(body.clone()))?;
    let bytes = serde_json::to_vec(&body).map_err(|e| MatrixError::internal("filter", e))?;
    let user = user_id.to_owned();
    let id = app
        .store
        .write(move |ctx| Ok(Ok::<_, MatrixError>(ctx.put_filter(&user, &bytes)?)))
        .await?;
    Ok(json(&json!({ "filter_id": id.to_string() })))
}

/// `GET /user/{userId}/filter/{filterId}`
pub fn get_filter(
    app: &App,
    req: &Request,
    user_id: &str,
    filter_id: &str,
) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    if caller.user_id.as_str() != user_id {
        return Err(MatrixError::forbidden("Cannot read filters of other users"));
    }
    let id: u64 = filter_id.parse().map_err(|_| MatrixError::not_found("No such filter"))?;
    let bytes = app
        .store
        .read()?
        .filter(user_id, id)?
        .ok_or_else(|| MatrixError::not_found("No such filter"))?;
    let v: Value =
        serde_json::from_slice(&bytes).map_err(|e| MatrixError::internal("filter", e))?;
    Ok(json(&v))
}

/// `GET /_matrix/client/v3/sync`
pub async fn sync_events(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let user = caller.user_id.to_string();
    let device = caller.device_id.to_string();
    let since = match req.query("since") {
        Some(s) => Some(
            sync::parse_token(s)
                .ok_or_else(|| MatrixError::invalid_param("since is not a valid sync token"))?,
        ),
        None => None,
    };
    let filter = match req.query("filter") {
        None => Filter::default(),
        Some(f) if f.trim_start().starts_with('{') => {
            let v: Value = serde_json::from_str(f)
                .map_err(|e| MatrixError::bad_json(format!("filter: {e}")))?;
            Filter::parse(&v)?
        }
        Some(id) => {
            let id: u64 =
                id.parse().map_err(|_| MatrixError::invalid_param("unknown filter id"))?;
            let bytes = app
                .store
                .read()?
                .filter(&user, id)?
                .ok_or_else(|| MatrixError::invalid_param("unknown filter id"))?;
            let v: Value =
                serde_json::from_slice(&bytes).map_err(|e| MatrixError::internal("filter", e))?;
            Filter::parse(&v)?
        }
    };
    let set_presence = req.query("set_presence");
    if let Some(p) = set_presence
        && !presence::valid_state(p)
    {
        return Err(MatrixError::invalid_param(
            "set_presence must be online, offline or unavailable",
        ));
    }
    let params = SyncParams {
        since: since.map(|s| s.pos),
        device_id: device.clone(),
        since_typing: since.map(|s| s.typing),
        since_presence: since.map(|s| s.presence),
        full_state: req.query_bool("full_state", false)?,
        filter,
        // MSC4222, under its stable and unstable parameter names.
        use_state_after: req.query_bool("use_state_after", false)?
            || req.query_bool("org.matrix.msc4222.use_state_after", false)?,
    };
    let timeout_ms: u64 = match req.query("timeout") {
        Some(t) => {
            t.parse().map_err(|_| MatrixError::invalid_param("timeout must be an integer"))?
        }
        None => 0,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms.min(120_000));
    // A sync with `since` acknowledges the to-device messages delivered up
    // to that position: delete them now (never before the client confirmed).
    if let Some(s) = since {
        acknowledge_to_device(app, &user, &device, s.pos).await?;
    }
    if app.config.presence && app.presence.borrow_mut().synced(&user, set_presence, now_ms()) {
        wake_presence_watchers(app, &user);
    }
    let notify = app.waiter(&user);
    let result = loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let upto = app.store.current_position();
        let read = app.store.read()?;
        let (body, any) = {
            let typing = app.typing.borrow();
            let presence = app.presence.borrow();
            let eph = Ephemeral {
                typing: &typing,
                presence: app.config.presence.then_some(&*presence),
                now_ms: now_ms(),
            };
            let mut lazy = app.lazy_members.borrow_mut();
            let members = lazy.device(&user, &device);
            sync::assemble(&read, &eph, members, &user, &params, upto)?
        };
        drop(read);
        if any || since.is_none() || params.full_state || app.is_shutting_down() {
            break body;
        }
        if tokio::time::Instant::now() >= deadline {
            break body;
        }
        app.park(notified, deadline).await;
    };
    drop(notify);
    app.release_waiter(&user);
    Ok(json(&result))
}

/// Deletes a device's to-device messages up to `upto`, which the client
/// acknowledged; no write at all when there are none (the common case).
pub(crate) async fn acknowledge_to_device(
    app: &App,
    user: &str,
    device: &str,
    upto: StreamPos,
) -> Result<(), MatrixError> {
    if app.store.read()?.to_device(user, device, StreamPos(0), upto, 1)?.is_empty() {
        return Ok(());
    }
    let (u, d) = (user.to_owned(), device.to_owned());
    app.store
        .write(move |ctx| {
            ctx.delete_to_device_upto(&u, &d, upto)?;
            Ok(Ok::<_, MatrixError>(()))
        })
        .await?;
    Ok(())
}
