//! Filters and `/sync` (spec: client-server-api/#filtering, #syncing).

use std::time::Duration;

use serde_json::{Value, json};

use crate::error::MatrixError;
use crate::http::{Reply, Request, from_json, json};
use crate::server::App;
use crate::store::StreamPos;
use crate::sync::{self, SyncParams};

/// `POST /user/{userId}/filter`
pub async fn create_filter(app: &App, req: &Request, user_id: &str) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    if caller.user_id.as_str() != user_id {
        return Err(MatrixError::forbidden("Cannot create filters for other users"));
    }
    let body = req.json_object()?;
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
    let since = match req.query("since") {
        Some(s) => Some(
            sync::parse_since(s)
                .ok_or_else(|| MatrixError::invalid_param("since is not a valid sync token"))?,
        ),
        None => None,
    };
    let filter: Value = match req.query("filter") {
        None => json!({}),
        Some(f) if f.trim_start().starts_with('{') => {
            serde_json::from_str(f).map_err(|e| MatrixError::bad_json(format!("filter: {e}")))?
        }
        Some(id) => {
            let id: u64 =
                id.parse().map_err(|_| MatrixError::invalid_param("unknown filter id"))?;
            let bytes = app
                .store
                .read()?
                .filter(&user, id)?
                .ok_or_else(|| MatrixError::invalid_param("unknown filter id"))?;
            serde_json::from_slice(&bytes).map_err(|e| MatrixError::internal("filter", e))?
        }
    };
    let filter: Value = from_json::<Value>(filter)?;
    let params = SyncParams {
        since: since.map(|(p, _)| p),
        device_id: caller.device_id.to_string(),
        since_typing: since.map(|(_, t)| t),
        full_state: req.query_bool("full_state", false)?,
        timeline_limit: filter["room"]["timeline"]["limit"].as_u64().unwrap_or(10).clamp(1, 500)
            as usize,
        lazy_load_members: filter["room"]["state"]["lazy_load_members"].as_bool().unwrap_or(false),
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
    if let Some((pos, _)) = since {
        let device = caller.device_id.to_string();
        let pending =
            !app.store.read()?.to_device(&user, &device, StreamPos(0), pos, 1)?.is_empty();
        if pending {
            let u = user.clone();
            app.store
                .write(move |ctx| {
                    ctx.delete_to_device_upto(&u, &device, pos)?;
                    Ok(Ok::<_, MatrixError>(()))
                })
                .await?;
        }
    }
    let notify = app.waiter(&user);
    let result = loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let upto = app.store.current_position();
        let read = app.store.read()?;
        let (body, any) = sync::assemble(&read, &app.typing.borrow(), &user, &params, upto)?;
        drop(read);
        if any || since.is_none() || params.full_state || app.is_shutting_down() {
            break body;
        }
        if tokio::time::Instant::now() >= deadline {
            break body;
        }
        let shutdown = app.shutdown_notify.notified();
        tokio::select! {
            _ = notified => {}
            _ = shutdown => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    };
    drop(notify);
    app.release_waiter(&user);
    Ok(json(&result))
}
