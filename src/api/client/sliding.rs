//! Simplified sliding sync (MSC4186): the handler. Parsing, the to-device
//! acknowledgement and the long-poll live here; what a response holds is
//! `sync::sliding`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::error::MatrixError;
use crate::http::{Reply, Request, json};
use crate::server::App;
use crate::store::StreamPos;
use crate::sync::sliding::{self, SlidingRequest, SyncInput};

/// The longest a request may wait for something new.
const MAX_TIMEOUT_MS: u64 = 120_000;

/// `POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync`
pub async fn sliding_sync(app: &App, req: &Request) -> Result<Reply, MatrixError> {
    let caller = req.caller()?;
    let user = caller.user_id.to_string();
    let device = caller.device_id.to_string();
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
    let prev = app.sliding.borrow_mut().begin(&user, &device, &conn_id, pos.as_deref())?;
    // The to-device `since` acknowledges what was delivered up to it: delete
    // it now, never before the client confirmed (as `/v3/sync` does).
    if let Some(since) = body.extensions.to_device.since_pos() {
        acknowledge_to_device(app, &user, &device, since).await?;
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
                user_id: &user,
                device_id: &device,
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
        let shutdown = app.shutdown_notify.notified();
        tokio::select! {
            _ = notified => {}
            _ = shutdown => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    };
    drop(notify);
    app.release_waiter(&user);
    let result = result?;
    let mut out = result.body;
    let token = app.sliding.borrow_mut().commit(&user, &device, &conn_id, result.snapshot);
    out.insert("pos".into(), json!(token));
    Ok(json(&Value::Object(out)))
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
