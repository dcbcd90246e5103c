//! Filters and `/sync` (spec: client-server-api/#filtering, #syncing).

use std::pin::Pin;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::futures::OwnedNotified;
use tokio::time::Instant;

use crate::account::now_ms;
use crate::api::{Outcome, Reply, Request, json};
use crate::app::App;
use crate::error::MatrixError;
use crate::ids::{DeviceId, UserId};
use crate::quota;
use crate::store::StreamPos;
use crate::sync::filter::{self, Filter};
use crate::sync::{self, Ephemeral, Since, SyncParams, presence};

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
    quota::check_size("A filter", bytes.len(), quota::FILTER_BYTES)?;
    let user = caller.user_id.clone();
    let id = app.store.write(move |ctx| filter::store_filter(ctx, &user, &bytes)).await?;
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
        .filter(&caller.user_id, id)?
        .ok_or_else(|| MatrixError::not_found("No such filter"))?;
    let v: Value =
        serde_json::from_slice(&bytes).map_err(|e| MatrixError::internal("filter", e))?;
    Ok(json(&v))
}

/// `GET /_matrix/client/v3/sync`
///
/// Answers at once when there is something to send (or no `since`, or
/// `full_state`); otherwise returns the long-poll as [`Outcome::Wait`]. By
/// then the request (headers, query, the connection's read buffer they
/// point into) and every local of the first assembly are gone: a parked
/// long-poll holds a `SyncPoll` and nothing else.
pub async fn sync_events<'a>(app: &'a App, req: &Request) -> Result<Outcome<'a>, MatrixError> {
    let caller = req.caller()?;
    let user = caller.user_id.clone();
    let device = caller.device_id.clone();
    let since = match req.query("since") {
        Some(s) => Some(
            sync::parse_token(s)
                .ok_or_else(|| MatrixError::invalid_param("since is not a valid sync token"))?,
        ),
        None => None,
    };
    let filter_source = FilterSource::from_query(req.query("filter"))?;
    let filter = filter_source.load(app, &user)?;
    let set_presence = req.query("set_presence");
    if let Some(p) = set_presence
        && !presence::valid_state(p)
    {
        return Err(MatrixError::invalid_param(
            "set_presence must be online, offline or unavailable",
        ));
    }
    let full_state = req.query_bool("full_state", false)?;
    // MSC4222, under its stable and unstable parameter names.
    let use_state_after = req.query_bool("use_state_after", false)?
        || req.query_bool("org.matrix.msc4222.use_state_after", false)?;
    let timeout_ms: u64 = match req.query("timeout") {
        Some(t) => {
            t.parse().map_err(|_| MatrixError::invalid_param("timeout must be an integer"))?
        }
        None => 0,
    };
    let deadline = Instant::now() + Duration::from_millis(timeout_ms.min(120_000));
    // A sync with `since` acknowledges the to-device messages delivered up
    // to that position: delete them now (never before the client confirmed).
    // Boxed: the write's future is only alive for this step.
    if let Some(s) = since {
        Box::pin(acknowledge_to_device(app, &user, &device, s.pos)).await?;
    }
    if app.config.presence && app.presence.borrow_mut().synced(&user, set_presence, now_ms()) {
        presence::wake_watchers(&app.store, &caller.user_id, |u| app.wake(u));
    }
    let mut poll = SyncPoll {
        app,
        user,
        device,
        since,
        full_state,
        use_state_after,
        filter: filter_source,
        deadline,
        woken: None,
    };
    Ok(match poll.step(filter)? {
        Some(body) => Outcome::Reply(json(&body)),
        None => Outcome::Wait(Box::pin(poll.wait())),
    })
}

/// What a `/sync` long-poll keeps while it waits: enough to assemble the
/// response again, and its armed wake-up. Dropping it (the client hung
/// up, or the poll answered) releases the user's waiter.
///
/// Kept small on purpose (a few hundred may be parked): the parsed filter
/// is a couple of KiB, so the poll keeps where it came from instead and
/// parses it again on each wake-up (microseconds; stored filters never
/// change).
struct SyncPoll<'a> {
    app: &'a App,
    user: UserId,
    device: DeviceId,
    since: Option<Since>,
    full_state: bool,
    use_state_after: bool,
    filter: FilterSource,
    deadline: Instant,
    /// Armed before each assembly, so a commit landing during it still
    /// wakes the wait that follows. Holds the user's `Notify`, and is the
    /// only clone of it this poll holds (`App::open_long_polls` counts
    /// them). Boxed: enabled, it must not move.
    woken: Option<Pin<Box<OwnedNotified>>>,
}

impl SyncPoll<'_> {
    /// Assembles a response; `None` when it is empty and the poll should
    /// wait for a wake-up (its timeout not yet reached).
    fn step(&mut self, filter: Filter) -> Result<Option<Value>, MatrixError> {
        let app = self.app;
        let since = self.since;
        let params = SyncParams {
            since: since.map(|s| s.pos),
            device_id: self.device.clone(),
            since_typing: since.map(|s| s.typing),
            since_presence: since.map(|s| s.presence),
            full_state: self.full_state,
            filter,
            use_state_after: self.use_state_after,
        };
        let mut woken = Box::pin(app.waiter(self.user.as_str()).notified_owned());
        woken.as_mut().enable();
        self.woken = Some(woken);
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
            let members = lazy.device(&self.user, &self.device);
            sync::assemble(&read, &eph, members, &self.user, &params, upto)?
        };
        drop(read);
        let answer = any
            || since.is_none()
            || self.full_state
            || app.is_shutting_down()
            || Instant::now() >= self.deadline;
        Ok(answer.then_some(body))
    }

    /// Parks until woken, the server shuts down or the timeout passes, then
    /// assembles again; repeats while there is nothing to send.
    ///
    /// An `async` block rather than an `async fn`: the block uses the poll
    /// where it captured it, where an `async fn` would also keep a moved
    /// copy of its `self` argument (measured: twice the size).
    fn wait<'a>(mut self) -> impl Future<Output = Result<Reply, MatrixError>> + use<'a>
    where
        Self: 'a,
    {
        async move {
            loop {
                if let Some(woken) = self.woken.as_mut() {
                    self.app.park(woken.as_mut(), self.deadline).await;
                }
                let filter = self.filter.load(self.app, &self.user)?;
                if let Some(body) = self.step(filter)? {
                    return Ok(json(&body));
                }
            }
        }
    }
}

/// Where a sync's filter comes from (spec: the `filter` query parameter is
/// a filter id or an inline JSON filter).
enum FilterSource {
    Default,
    Inline(String),
    Stored(u64),
}

impl FilterSource {
    fn from_query(filter: Option<&str>) -> Result<FilterSource, MatrixError> {
        Ok(match filter {
            None => FilterSource::Default,
            Some(f) if f.trim_start().starts_with('{') => FilterSource::Inline(f.to_owned()),
            Some(id) => FilterSource::Stored(
                id.parse().map_err(|_| MatrixError::invalid_param("unknown filter id"))?,
            ),
        })
    }

    fn load(&self, app: &App, user: &UserId) -> Result<Filter, MatrixError> {
        match self {
            FilterSource::Default => Ok(Filter::default()),
            FilterSource::Inline(f) => {
                let v: Value = serde_json::from_str(f)
                    .map_err(|e| MatrixError::bad_json(format!("filter: {e}")))?;
                Filter::parse(&v)
            }
            FilterSource::Stored(id) => {
                let bytes = app
                    .store
                    .read()?
                    .filter(user, *id)?
                    .ok_or_else(|| MatrixError::invalid_param("unknown filter id"))?;
                let v: Value = serde_json::from_slice(&bytes)
                    .map_err(|e| MatrixError::internal("filter", e))?;
                Filter::parse(&v)
            }
        }
    }
}

impl Drop for SyncPoll<'_> {
    fn drop(&mut self) {
        // The wake-up's clone of the `Notify` first: the waiter is released
        // only when no clone is left.
        self.woken = None;
        self.app.release_waiter(self.user.as_str());
    }
}

/// Deletes a device's to-device messages up to `upto`, which the client
/// acknowledged; no write at all when there are none (the common case).
pub(crate) async fn acknowledge_to_device(
    app: &App,
    user: &UserId,
    device: &DeviceId,
    upto: StreamPos,
) -> Result<(), MatrixError> {
    if app.store.read()?.to_device(user, device, StreamPos(0), upto, 1)?.is_empty() {
        return Ok(());
    }
    let (u, d) = (user.clone(), device.clone());
    app.store
        .write(move |ctx| {
            ctx.delete_to_device_upto(&u, &d, upto)?;
            Ok(Ok::<_, MatrixError>(()))
        })
        .await?;
    Ok(())
}
