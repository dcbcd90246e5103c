//! Simplified sliding sync (MSC4186): the handler. Parsing, the to-device
//! acknowledgement and the long-poll live here; what a response holds is
//! `sync::sliding`.

use std::time::Duration;

use serde_json::{Value, json};

use super::sync::acknowledge_to_device;
use crate::api::{Reply, Request, json};
use crate::app::App;
use crate::error::MatrixError;
use crate::sync::sliding::{self, SlidingRequest, SyncInput};

/// The longest a request may wait for something new.
const MAX_TIMEOUT_MS: u64 = 120_000;

/// `POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync`
pub async fn sliding_sync(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let user = caller.user_id.to_string();
    let body: SlidingRequest = req.json()?;
    // `pos` and `timeout` are query parameters for matrix-rust-sdk and in
    // the body in the newer MSC text; the query wins.
    let pos = req.query("pos").map(str::to_owned).or_else(|| body.pos.clone());
    let timeout_ms = match req.query("timeout") {
        Some(t) => {
            t.parse().map_err(|_| MatrixError::invalid_param("timeout must be an integer"))?
        }
        None => body.timeout.unwrap_or(0),
    };
    let conn_id = body.conn_id.clone().unwrap_or_default();
    let prev = app.sliding.borrow_mut().begin(
        &caller.user_id,
        &caller.device_id,
        &conn_id,
        pos.as_deref(),
    )?;
    // The to-device `since` acknowledges what was delivered up to it: delete
    // it now, never before the client confirmed (as `/v3/sync` does).
    if let Some(since) = body.extensions.to_device.since_pos() {
        acknowledge_to_device(app, &caller.user_id, &caller.device_id, since).await?;
    }
    let initial = pos.is_none();
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(timeout_ms.min(MAX_TIMEOUT_MS));
    let notify = app.waiter(&user);
    let result = loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let upto = app.store.current_position();
        let read = match app.store.read() {
            Ok(r) => r,
            Err(e) => break Err(MatrixError::from(e)),
        };
        let outcome = {
            let typing = app.typing.borrow();
            let input = SyncInput {
                read: &read,
                typing: &typing,
                user_id: &caller.user_id,
                device_id: &caller.device_id,
                upto,
            };
            sliding::compute(&input, &body, &prev, initial)
        };
        drop(read);
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => break Err(e),
        };
        // Woken by a commit that touched none of this connection's rooms:
        // wait again (the waiter is per user, the interest per connection).
        if outcome.any || initial || app.is_shutting_down() {
            break Ok(outcome);
        }
        if tokio::time::Instant::now() >= deadline {
            break Ok(outcome);
        }
        app.park(notified, deadline).await;
    };
    drop(notify);
    app.release_waiter(&user);
    let result = result?;
    let mut out = result.body;
    let token = app.sliding.borrow_mut().commit(
        &caller.user_id,
        &caller.device_id,
        &conn_id,
        result.snapshot,
    );
    out.insert("pos".into(), json!(token));
    Ok(json(&Value::Object(out)))
}
