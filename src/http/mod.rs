//! A generic HTTP server: listener, connections (hyper HTTP/1.1 with
//! keep-alive; with TLS also HTTP/2, chosen by ALPN, see [`tls`]),
//! timeouts and eviction (`connections`), header and body limits, CORS,
//! and turning a `MatrixError` into a response. It knows no endpoint: an
//! API implements [`Service`] (routing, authentication, handlers) and
//! [`serve`] runs it; the caller fills [`Settings`] from the configuration.

mod connections;
mod response;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap};
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, TryAcquireError, watch};

pub use connections::{BodyGuard, ConnState};
pub use response::{Body, Reply, error as error_reply, full, json_status, with_type};

use crate::config::{Timeouts, TlsFiles};
use crate::error::{ErrorKind, MatrixError};
use connections::{Table, Tracked};

/// What the server needs to know of the configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Open connections at most; past it the one idle the longest is closed.
    pub max_connections: usize,
    pub timeouts: Timeouts,
    /// The largest request head (HTTP/1.1 buffer, HTTP/2 header list);
    /// hyper needs at least 8 KiB, so less counts as 8 KiB.
    pub header_limit: usize,
    /// HTTPS with these files; `None` serves plain HTTP.
    pub tls: Option<TlsFiles>,
}

/// An API served by [`serve`]: turns each request into a response.
pub trait Service: 'static {
    /// Answers one request (CORS preflights excepted: [`serve`] answers
    /// those). The request comes boxed: the returned future keeps its
    /// arguments' space for its whole life, and a long-poll outlives the
    /// request by far. A body is read through [`read_body`] (or, streamed,
    /// under [`ConnState::begin_body`]) so the connection's clocks know
    /// whose turn it is.
    fn handle(
        &self,
        req: Box<hyper::Request<Incoming>>,
        remote: SocketAddr,
        conn: &ConnState,
    ) -> impl Future<Output = Reply>;

    /// A CORS preflight was answered, `elapsed` after it arrived.
    fn preflight_answered(&self, elapsed: Duration) {
        let _ = elapsed;
    }

    /// The server stops accepting (or cannot start): requests waiting in a
    /// long-poll should return now.
    fn begin_shutdown(&self);
}

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

/// Accepts connections for `service` until `shutdown` resolves, then
/// stops accepting, lets in-flight requests finish and returns. With
/// `settings.tls` it speaks HTTPS, reloading the certificate on SIGHUP or
/// a request through `reloads`.
pub async fn serve<S: Service>(
    listener: TcpListener,
    service: Rc<S>,
    settings: Settings,
    reloads: tls::ReloadRequests,
    shutdown: impl Future<Output = ()>,
) {
    let tls = match &settings.tls {
        None => None,
        Some(files) => match tls::Tls::load(files) {
            Ok(t) => Some(Rc::new(t)),
            Err(e) => {
                // `hearth serve` checked the files before starting; they
                // changed since.
                tracing::error!("cannot serve HTTPS: {e}");
                service.begin_shutdown();
                return;
            }
        },
    };
    let reloader = tokio::task::spawn_local(tls::reload_on_request(tls.clone(), reloads));
    let max = settings.max_connections;
    let limits = Limits { timeouts: settings.timeouts, header_limit: settings.header_limit };
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
        let service = service.clone();
        let mut stop = stop_rx.clone();
        // Taken at accept time: a reload affects connections from now on.
        let Some(acceptor) = tls.as_ref().map(|t| t.acceptor()) else {
            // A task of its own type: a plain connection's task is as large
            // as its future, and must not carry the TLS handshake's state
            // (every parked long-poll holds one).
            tokio::task::spawn_local(async move {
                let _permit = permit;
                let state = entry.state.clone();
                serve_connection(stream, false, service, limits, remote, stop, state).await;
                drop(entry);
            });
            continue;
        };
        tokio::task::spawn_local(async move {
            let _permit = permit;
            let state = entry.state.clone();
            let timeouts = limits.timeouts;
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
            serve_connection(stream, h2, service, limits, remote, stop, state).await;
            drop(entry);
        });
    }
    drop(listener);
    reloader.abort();
    let _ = stop_tx.send(true);
    service.begin_shutdown();
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
async fn serve_connection<I, S>(
    io: I,
    h2: bool,
    service: Rc<S>,
    limits: Limits,
    remote: SocketAddr,
    mut stop: watch::Receiver<bool>,
    state: Rc<ConnState>,
) where
    I: AsyncRead + AsyncWrite + Unpin + 'static,
    S: Service,
{
    let timeouts: Timeouts = limits.timeouts;
    // hyper wants at least 8 KiB (config enforces only above 1 KiB).
    let header_limit = limits.header_limit.max(8192);
    let conn_state = state.clone();
    let service = service_fn(move |req| {
        let service = service.clone();
        let conn = conn_state.clone();
        async move {
            Ok::<_, std::convert::Infallible>(handle(&*service, Box::new(req), remote, &conn).await)
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
        let header_limit = u32::try_from(header_limit).unwrap_or(u32::MAX);
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
                .max_buf_size(header_limit)
                .serve_connection(io, service)
        );
    }
}

/// The settings every connection task copies.
#[derive(Clone, Copy)]
struct Limits {
    timeouts: Timeouts,
    header_limit: usize,
}

/// Serves one request: CORS preflights here, the rest by `service`; CORS
/// headers on every response. This is the future hyper keeps (boxed) for
/// as long as the request runs, a `/sync` long-poll included: what it
/// holds while one waits is what each costs (see [`Service::handle`]).
async fn handle<S: Service>(
    service: &S,
    req: Box<hyper::Request<Incoming>>,
    remote: SocketAddr,
    conn: &Rc<ConnState>,
) -> Reply {
    let _in_flight = conn.begin_request();
    let started = std::time::Instant::now();
    crate::memory::note_activity();
    let mut reply = if req.method() == hyper::Method::OPTIONS {
        drop(req);
        let reply = response::preflight();
        service.preflight_answered(started.elapsed());
        reply
    } else {
        service.handle(req, remote, conn).await
    };
    response::add_cors(&mut reply);
    reply
}

/// Reads a whole request body of at most `limit` bytes (a larger declared
/// `Content-Length` is refused before reading any). While it reads, the
/// client must keep sending (the connection's body-read timeout runs).
pub async fn read_body(
    body: Incoming,
    headers: &HeaderMap,
    limit: usize,
    conn: &ConnState,
) -> Result<Bytes, MatrixError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    let reading = conn.begin_body();
    let collected = Limited::new(body, limit).collect().await;
    drop(reading);
    match collected {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large(limit)),
        Err(e) => Err(MatrixError::new(ErrorKind::BadJson, format!("could not read body: {e}"))),
    }
}

fn too_large(limit: usize) -> MatrixError {
    MatrixError::new(ErrorKind::TooLarge, format!("Request body is larger than {limit} bytes"))
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Answers every request with `{}`.
    struct Empty;

    impl Service for Empty {
        async fn handle(
            &self,
            _req: Box<hyper::Request<Incoming>>,
            _remote: SocketAddr,
            _conn: &ConnState,
        ) -> Reply {
            json_status(200, &serde_json::json!({}))
        }

        fn begin_shutdown(&self) {}
    }

    fn settings(header_limit: usize) -> Settings {
        let t = Duration::from_secs(10);
        Settings {
            max_connections: 4,
            timeouts: Timeouts { header_read: t, idle: t, body_read: t },
            header_limit,
            tls: None,
        }
    }

    /// The status line of the answer to a request with `size` bytes of header.
    async fn status_line(addr: SocketAddr, size: usize) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connects");
        let big = "a".repeat(size);
        let head =
            format!("GET / HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\nconnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).await.expect("writes");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.expect("reads");
        String::from_utf8_lossy(&answer).lines().next().unwrap_or_default().to_owned()
    }

    #[test]
    fn each_server_keeps_to_the_header_limit_it_was_given() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async {
            let mut addrs = Vec::new();
            // Two servers on one thread, the larger limit set last.
            for limit in [8 * 1024, 64 * 1024] {
                let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
                addrs.push(listener.local_addr().expect("bound"));
                let none = tls::ReloadRequests::none();
                let serving =
                    serve(listener, Rc::new(Empty), settings(limit), none, std::future::pending());
                tokio::task::spawn_local(serving);
            }
            let (small, large) = (addrs[0], addrs[1]);
            assert!(status_line(small, 1024).await.contains(" 200 "));
            assert!(status_line(small, 20 * 1024).await.contains(" 431 "));
            assert!(status_line(large, 20 * 1024).await.contains(" 200 "));
        });
    }
}
