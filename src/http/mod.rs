//! The HTTP layer: listener, connections (hyper HTTP/1.1 with keep-alive;
//! with TLS also HTTP/2, chosen by ALPN, see [`tls`]), limits, CORS, access-token extraction, and turning `MatrixError` into
//! responses. It knows nothing of rooms or accounts beyond calling
//! `account::authenticate` and `api::dispatch`.

mod connections;
mod request;
mod response;
pub mod router;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, TryAcquireError, watch};

pub use request::{BodyStream, Request, decode_component, from_json, parse_query};
pub use response::{
    Body, Reply, bytes_reply, error as error_reply, html, json, json_bytes, json_status,
    media_reply,
};

use crate::app::App;
use crate::config::Timeouts;
use crate::error::{ErrorKind, MatrixError};
use connections::{ConnState, Table, Tracked};
use router::{AuthNeed, Endpoint};

/// How long shutdown waits for open connections (long-polls are woken and
/// return at once; this bounds a slow client).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A TLS handshake must finish within this, so a client that connects and
/// says nothing does not hold a connection slot for long.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an HTTP/2 connection closed for a timeout may take to say
/// GOAWAY and finish; then it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Concurrent requests on one HTTP/2 connection. Each may be a `/sync`
/// long-poll; `max_connections` bounds connections, this bounds what one
/// connection can multiplex (hyper's default is 200).
const H2_MAX_STREAMS: u32 = 64;

/// Accepts connections until `shutdown` resolves, then stops accepting,
/// lets in-flight requests finish and returns. With `tls_cert`/`tls_key`
/// configured it speaks HTTPS, reloading the certificate on SIGHUP or a
/// request through `reloads`.
pub async fn serve(
    listener: TcpListener,
    app: Rc<App>,
    reloads: tls::ReloadRequests,
    shutdown: impl Future<Output = ()>,
) {
    let tls = match &app.config.tls {
        None => None,
        Some(files) => match tls::Tls::load(files) {
            Ok(t) => Some(Rc::new(t)),
            Err(e) => {
                // `hearth serve` checked the files before starting; they
                // changed since.
                tracing::error!("cannot serve HTTPS: {e}");
                app.begin_shutdown();
                return;
            }
        },
    };
    let reloader = tokio::task::spawn_local(tls::reload_on_request(tls.clone(), reloads));
    let max = app.config.max_connections;
    let slots = Arc::new(Semaphore::new(max));
    let table = Rc::new(Table::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            _ = &mut shutdown => break,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(TryAcquireError::Closed) => break,
            Err(TryAcquireError::NoPermits) => {
                // Every slot is taken: the connection idle the longest makes
                // room, else the first that finishes (or turns idle) does.
                let permit = loop {
                    let evicted = table.evict_oldest_idle();
                    tokio::select! {
                        _ = &mut shutdown => break None,
                        p = slots.clone().acquire_owned() => break p.ok(),
                        _ = table.became_idle.notified(), if !evicted => {}
                    }
                };
                match permit {
                    Some(p) => p,
                    None => break,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let entry = table.open();
        let stream = Tracked::new(stream, entry.state.clone());
        let app = app.clone();
        let mut stop = stop_rx.clone();
        // Taken at accept time: a reload affects connections from now on.
        let Some(acceptor) = tls.as_ref().map(|t| t.acceptor()) else {
            // A task of its own type: a plain connection's task is as large
            // as its future, and must not carry the TLS handshake's state
            // (every parked long-poll holds one).
            tokio::task::spawn_local(async move {
                let _permit = permit;
                let state = entry.state.clone();
                serve_connection(stream, false, app, remote, stop, state).await;
                drop(entry);
            });
            continue;
        };
        tokio::task::spawn_local(async move {
            let _permit = permit;
            let state = entry.state.clone();
            let timeouts = app.config.timeouts;
            let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
            let stream = tokio::select! {
                r = handshake => match r {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!("TLS handshake with {remote} failed: {e}");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!("TLS handshake with {remote} timed out");
                        return;
                    }
                },
                // The head's clock runs from accept, handshake included.
                _ = connections::expired(&state, &timeouts) => return,
                _ = stop.wait_for(|s| *s) => return,
            };
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
            if h2 {
                state.set_h2();
            }
            serve_connection(stream, h2, app, remote, stop, state).await;
            drop(entry);
        });
    }
    drop(listener);
    reloader.abort();
    let _ = stop_tx.send(true);
    app.begin_shutdown();
    // Every connection holds a slot; having all of them back means all closed.
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, slots.acquire_many(all)).await;
}

/// Serves one connection (plain TCP or decrypted TLS) until it closes, or
/// until `stop` turns true: then in-flight requests finish and it closes
/// (HTTP/1.1: after the current response; HTTP/2: GOAWAY, open streams
/// run to completion). It is closed at once (HTTP/2: GOAWAY, briefly) when
/// it keeps the server waiting past its timeouts or is evicted (see
/// [`connections`]).
async fn serve_connection<I>(
    io: I,
    h2: bool,
    app: Rc<App>,
    remote: SocketAddr,
    mut stop: watch::Receiver<bool>,
    state: Rc<ConnState>,
) where
    I: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let timeouts: Timeouts = app.config.timeouts;
    let conn_state = state.clone();
    let service = service_fn(move |req| {
        let app = app.clone();
        let conn = conn_state.clone();
        async move {
            Ok::<_, std::convert::Infallible>(handle(&app, Box::new(req), remote, &conn).await)
        }
    });
    let io = TokioIo::new(io);
    // The two connection types share no trait for graceful shutdown.
    macro_rules! drive {
        ($conn:expr) => {{
            // Boxed: the task then holds only what this connection uses
            // (an HTTP/2 connection's state is several times an HTTP/1.1
            // one's, and inline the larger would size every task).
            let mut conn = Box::pin($conn);
            tokio::select! {
                r = conn.as_mut() => { let _ = r; }
                _ = stop.wait_for(|s| *s) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
                _ = connections::expired(&state, &timeouts) => {
                    // HTTP/1.1 is dropped at once: no request is in flight
                    // or its body stalled. HTTP/2 gets to say GOAWAY.
                    if h2 {
                        conn.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(CLOSE_GRACE, conn).await;
                    }
                }
            }
        }};
    }
    if h2 {
        let header_limit = u32::try_from(app_header_limit()).unwrap_or(u32::MAX);
        drive!(
            http2::Builder::new(tls::LocalExec)
                .max_concurrent_streams(H2_MAX_STREAMS)
                .max_header_list_size(header_limit)
                .serve_connection(io, service)
        );
    } else {
        drive!(
            http1::Builder::new()
                .keep_alive(true)
                .max_buf_size(app_header_limit())
                .serve_connection(io, service)
        );
    }
}

thread_local! {
    static HEADER_LIMIT: std::cell::Cell<usize> = const { std::cell::Cell::new(16 * 1024) };
}

/// hyper wants its buffer limit per connection builder; the configured value
/// is set once at start-up (it must be at least 8 KiB, which config enforces
/// above 1 KiB, so clamp here).
fn app_header_limit() -> usize {
    HEADER_LIMIT.with(|c| c.get()).max(8192)
}

pub fn set_header_limit(bytes: usize) {
    HEADER_LIMIT.with(|c| c.set(bytes));
}

/// A handler's result: its reply, or a long-poll that has nothing to send
/// yet and produces the reply when woken or at its timeout.
pub enum Outcome<'a> {
    Reply(Reply),
    Wait(Pin<Box<dyn Future<Output = Result<Reply, MatrixError>> + 'a>>),
}

/// Serves one request; this is the future hyper keeps (boxed) for as long
/// as the request runs.
///
/// A `/sync` long-poll parks for up to minutes, and a few hundred may be
/// open, so what this future holds while one waits is what each costs.
/// Routing, authentication and the handler's first pass run in a boxed
/// future of their own that is finished (freed, with the request's
/// headers, query and the connection read buffer they point into) before
/// the wait begins; the wait itself ([`Outcome::Wait`]) holds only what
/// the handler needs to answer later.
///
/// The request comes boxed: a future keeps its arguments' space for its
/// whole life, and the request is consumed long before a wait begins.
async fn handle(
    app: &Rc<App>,
    req: Box<hyper::Request<Incoming>>,
    remote: SocketAddr,
    conn: &Rc<ConnState>,
) -> Reply {
    let _in_flight = conn.begin_request();
    let started = std::time::Instant::now();
    crate::memory::note_activity();
    // The `Endpoint` variant name, for metrics (bounded: never the path).
    let mut label = "Unrecognized";
    let result = if req.method() == hyper::Method::OPTIONS {
        label = "Preflight";
        Ok(response::preflight())
    } else {
        match Box::pin(handle_inner(app, req, remote, conn, &mut label)).await {
            Ok(Outcome::Reply(r)) => Ok(r),
            Ok(Outcome::Wait(wait)) => wait.await,
            Err(e) => Err(e),
        }
    };
    let mut reply = match result {
        Ok(r) => r,
        Err(e) => response::error(&e.with_admin_contact(app.config.admin_contact.as_deref())),
    };
    response::add_cors(&mut reply);
    app.metrics.record_request(label, reply.status().as_u16(), started.elapsed());
    reply
}

async fn handle_inner<'a>(
    app: &'a Rc<App>,
    req: Box<hyper::Request<Incoming>>,
    remote: SocketAddr,
    conn: &ConnState,
    label: &mut &'static str,
) -> Result<Outcome<'a>, MatrixError> {
    let (parts, body) = (*req).into_parts();
    let path = parts.uri.path();
    let decoded: Vec<String> =
        path.trim_start_matches('/').split('/').map(decode_component).collect::<Result<_, _>>()?;
    let segs: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let endpoint = router::route(&parts.method, &segs)?;
    *label = app.metrics.endpoint_label(&endpoint);
    let query = parse_query(parts.uri.query().unwrap_or(""))?;

    if endpoint.streams_body() {
        let mut request = Request {
            body_stream: std::cell::RefCell::new(Some(body)),
            method: parts.method,
            query,
            headers: parts.headers,
            body: Bytes::new(),
            remote: remote.ip(),
            caller: None,
        };
        if let Some(t) = access_token(&request)? {
            request.caller =
                Some(crate::account::authenticate(&app.store, &app.config.server_name, &t).await?);
        } else if endpoint.auth() == AuthNeed::Required {
            return Err(MatrixError::new(ErrorKind::MissingToken, "Missing access token"));
        }
        // The handler reads the body as it goes (uploads): the client's
        // turn until it is done.
        let _reading = conn.begin_body();
        return dispatch(app, endpoint, &request).await;
    }
    let limit = app.config.max_request_body_bytes;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    let reading = conn.begin_body();
    let collected = Limited::new(body, limit).collect().await;
    drop(reading);
    let body: Bytes = match collected {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large(limit)),
        Err(e) => {
            return Err(MatrixError::new(ErrorKind::BadJson, format!("could not read body: {e}")));
        }
    };

    let mut request = Request {
        body_stream: std::cell::RefCell::new(None),
        method: parts.method,
        query,
        headers: parts.headers,
        body,
        remote: remote.ip(),
        caller: None,
    };
    if endpoint.wants_json_body(&request.method) {
        // Reject non-objects before any endpoint logic (spec: API Standards).
        request.json_object()?;
    }
    let token = access_token(&request)?;
    match (endpoint.auth(), token) {
        (AuthNeed::Required, None) => {
            return Err(MatrixError::new(ErrorKind::MissingToken, "Missing access token"));
        }
        (AuthNeed::Required | AuthNeed::Optional, Some(t)) => {
            request.caller =
                Some(crate::account::authenticate(&app.store, &app.config.server_name, &t).await?);
        }
        _ => {}
    }
    dispatch(app, endpoint, &request).await
}

/// Runs the endpoint's handler in a future of its own size (boxed: inline,
/// every request's future would be as large as the largest endpoint's).
async fn dispatch<'a>(
    app: &'a Rc<App>,
    endpoint: Endpoint,
    request: &Request,
) -> Result<Outcome<'a>, MatrixError> {
    // Locked and suspended accounts, for every endpoint (spec: account
    // moderation).
    if let Some(caller) = &request.caller {
        crate::api::client::moderation::enforce(app, &endpoint, caller)?;
    }
    match endpoint {
        Endpoint::Sync => Box::pin(crate::api::client::sync::sync_events(app, request)).await,
        other => Box::pin(crate::api::dispatch(app, other, request)).await.map(Outcome::Reply),
    }
}

fn too_large(limit: usize) -> MatrixError {
    MatrixError::new(ErrorKind::TooLarge, format!("Request body is larger than {limit} bytes"))
}

/// `Authorization: Bearer …`, or the `access_token` query parameter (removed
/// in spec v1.20, still accepted since we advertise up to v1.19).
fn access_token(req: &Request) -> Result<Option<String>, MatrixError> {
    if let Some(h) = req.headers.get(header::AUTHORIZATION) {
        let v = h.to_str().map_err(|_| {
            MatrixError::new(ErrorKind::UnknownToken, "Authorization header is not ASCII")
        })?;
        let token =
            v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")).ok_or_else(|| {
                MatrixError::new(
                    ErrorKind::MissingToken,
                    "Authorization must use the Bearer scheme",
                )
            })?;
        return Ok(Some(token.trim().to_owned()));
    }
    Ok(req.query("access_token").map(str::to_owned))
}
