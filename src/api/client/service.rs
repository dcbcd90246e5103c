//! The client-server API as an [`http::Service`]: a request is routed to
//! its [`Endpoint`], its query parsed and body read within limits, its
//! access token checked as the endpoint needs, account moderation applied,
//! and its handler run; errors become Matrix error bodies, and the request
//! is counted in the metrics.

use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header;

use super::router::{self, AuthNeed, Endpoint};
use crate::api::{Outcome, Reply, Request, decode_component, parse_query};
use crate::app::App;
use crate::error::{ErrorKind, MatrixError};
use crate::http::{self, ConnState};

/// The client-server API of a running server.
pub struct ClientApi {
    app: Rc<App>,
}

impl ClientApi {
    pub fn new(app: Rc<App>) -> ClientApi {
        ClientApi { app }
    }
}

impl http::Service for ClientApi {
    fn handle(
        &self,
        req: Box<hyper::Request<Incoming>>,
        remote: SocketAddr,
        conn: &ConnState,
    ) -> impl Future<Output = Reply> {
        handle(&self.app, req, remote, conn)
    }

    fn preflight_answered(&self, elapsed: Duration) {
        self.app.metrics.record_request("Preflight", 204, elapsed);
    }

    fn begin_shutdown(&self) {
        self.app.begin_shutdown();
    }
}

/// Serves one request.
///
/// A `/sync` long-poll parks for up to minutes, and a few hundred may be
/// open, so what this future holds while one waits is what each costs.
/// Routing, authentication and the handler's first pass run in a boxed
/// future of their own that is finished (freed, with the request's
/// headers, query and the connection read buffer they point into) before
/// the wait begins; the wait itself ([`Outcome::Wait`]) holds only what
/// the handler needs to answer later.
async fn handle(
    app: &Rc<App>,
    req: Box<hyper::Request<Incoming>>,
    remote: SocketAddr,
    conn: &ConnState,
) -> Reply {
    let started = Instant::now();
    // The `Endpoint` variant name, for metrics (bounded: never the path).
    let mut label = "Unrecognized";
    let result = match Box::pin(handle_inner(app, req, remote, conn, &mut label)).await {
        Ok(Outcome::Reply(r)) => Ok(r),
        Ok(Outcome::Wait(wait)) => wait.await,
        Err(e) => Err(e),
    };
    let reply = match result {
        Ok(r) => r,
        Err(e) => http::error_reply(&e.with_admin_contact(app.config.admin_contact.as_deref())),
    };
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
    let router::Route { endpoint, auth } = router::route(&parts.method, &segs)?;
    *label = endpoint.name();
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
        } else if auth == AuthNeed::Required {
            return Err(MatrixError::new(ErrorKind::MissingToken, "Missing access token"));
        }
        // The handler reads the body as it goes (uploads): the client's
        // turn until it is done.
        let _reading = conn.begin_body();
        return dispatch(app, endpoint, &request).await;
    }
    let limit = app.config.max_request_body_bytes;
    let body = http::read_body(body, &parts.headers, limit, conn).await?;

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
    match (auth, token) {
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
        super::moderation::enforce(app, &endpoint, caller)?;
    }
    Box::pin(super::dispatch::dispatch(app, endpoint, request)).await
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
