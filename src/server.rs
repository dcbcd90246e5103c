//! The running server: [`run`], which takes an already-bound listener so
//! tests can bind `127.0.0.1:0` and drive the real server, opens what the
//! server needs ([`open_store`], the signing key) and spawns its tasks
//! around the [`App`] it builds.

use std::future::Future;
use std::rc::Rc;

use tokio::net::TcpListener;

use crate::app::App;
use crate::config::Config;
use crate::room::build::Signer;
use crate::room::pdu::ServerKey;
use crate::store::{Store, StoreError};

const META_SIGNING_SEED: &str = "signing_key_seed";
const META_SIGNING_KEY_ID: &str = "signing_key_id";

/// Opens the store in `config.data_dir`.
pub fn open_store(config: &Config) -> Result<Store, StoreError> {
    Store::open(&config.data_dir, config.db_cache_bytes, None)
}

/// Serves on `listener` until `shutdown` resolves, then lets in-flight
/// requests finish, commits queued writes and closes the database. Must run
/// inside a `LocalSet` on a current-thread runtime.
pub async fn run(
    config: Config,
    store: Store,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    run_with_reload(config, store, listener, crate::http::tls::ReloadRequests::none(), shutdown)
        .await;
}

/// [`run`], plus certificate reloads on request: the other end of
/// `reloads` ([`crate::http::tls::reload_channel`]) does what SIGHUP does
/// and reports the outcome (tests use it; SIGHUP works either way).
pub async fn run_with_reload(
    config: Config,
    store: Store,
    listener: TcpListener,
    reloads: crate::http::tls::ReloadRequests,
    shutdown: impl Future<Output = ()>,
) {
    run_with_sockets(config, store, listener, reloads, Sockets::default(), shutdown).await;
}

/// Sockets bound before the server starts, used in place of binding the
/// configured addresses: a test binds port 0 and hands the socket over, so
/// no other process can take the port between binding and serving. The
/// config still decides whether metrics and mDNS are on; a socket for a
/// service that is off is closed unused.
#[derive(Debug, Default)]
pub struct Sockets {
    /// For the metrics endpoint (`metrics_listen`).
    pub metrics: Option<std::net::TcpListener>,
    /// For the mDNS responder (`mdns.listen`).
    pub mdns: Option<std::net::UdpSocket>,
}

/// [`run_with_reload`] with some side services on sockets already bound.
pub async fn run_with_sockets(
    config: Config,
    store: Store,
    listener: TcpListener,
    reloads: crate::http::tls::ReloadRequests,
    sockets: Sockets,
    shutdown: impl Future<Output = ()>,
) {
    let signer = match load_signer(&config, &store) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot load the server signing key: {e}");
            store.shutdown();
            return;
        }
    };
    let media = match crate::media::MediaFiles::open(&config.data_dir) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!("cannot prepare the media directory: {e}");
            store.shutdown();
            return;
        }
    };
    let app = Rc::new(App::new(config, store.clone(), signer, media));
    store.set_min_free_bytes(app.config.min_free_disk_bytes);
    let metrics = match app.config.metrics_listen {
        Some(addr) => match metrics_listener(addr, sockets.metrics).await {
            Ok(l) => {
                tracing::info!("metrics on http://{addr}/metrics");
                if let Ok(bound) = l.local_addr() {
                    app.own_addrs.borrow_mut().push(bound);
                }
                Some(tokio::task::spawn_local(crate::api::metrics::serve(l, app.clone())))
            }
            Err(e) => {
                tracing::error!("cannot listen for metrics on {addr}: {e}; metrics are off");
                None
            }
        },
        None => None,
    };
    if let Ok(bound) = listener.local_addr() {
        app.own_addrs.borrow_mut().push(bound);
    }
    let admin = crate::admin::server::start(app.clone());
    let mdns = app.config.mdns.as_ref().and_then(|c| match sockets.mdns {
        Some(socket) => crate::net::mdns::spawn_on(c, socket),
        None => crate::net::mdns::spawn(c),
    });
    let mut commits = store.subscribe();
    let waker_app = app.clone();
    let waker = tokio::task::spawn_local(async move {
        while let Some(notice) = commits.recv().await {
            // Readers see the batch only now, after its requests' tasks
            // (woken first by their replies) have answered (see
            // `Store::subscribe`).
            waker_app.store.publish(notice.position);
            for user in &notice.users {
                if user == crate::store::PUSH_WAKE {
                    waker_app.push_wake.notify_one();
                } else {
                    waker_app.wake(user);
                }
            }
        }
    });
    let typing_app = app.clone();
    let typing_expiry = tokio::task::spawn_local(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            let app = &typing_app;
            crate::sync::typing::expire(&mut app.typing.borrow_mut(), &app.store, |u| app.wake(u));
            if app.config.presence {
                let (now, mut presence) = (crate::account::now_ms(), app.presence.borrow_mut());
                let (waiting, wake) = (|u: &str| app.is_waiting(u), |u: &str| app.wake(u));
                crate::sync::presence::expire(&mut presence, &app.store, now, waiting, wake);
            }
        }
    });
    let stopping = app.clone();
    let pusher = tokio::task::spawn_local(crate::push::gateway::run(
        store.clone(),
        app.push_wake.clone(),
        async move { stopping.shutdown_begun().await },
    ));
    let trimmer = tokio::task::spawn_local(crate::memory::trim_when_idle());
    // Start-up is over: its code need not stay mapped (see `memory`).
    crate::memory::release_startup_pages();
    let settings = crate::http::Settings {
        max_connections: app.config.max_connections,
        timeouts: app.config.timeouts,
        header_limit: app.config.max_request_header_bytes,
        tls: app.config.tls.clone(),
    };
    let api = Rc::new(crate::api::client::ClientApi::new(app));
    crate::http::serve(listener, api, settings, reloads, shutdown).await;
    trimmer.abort();
    if let Some(m) = metrics {
        m.abort();
    }
    if let Some(a) = admin {
        a.stop();
    }
    if let Some(m) = mdns {
        m.abort();
    }
    pusher.abort();
    waker.abort();
    typing_expiry.abort();
    // In-flight writes were awaited by their requests; anything still queued
    // (a client that hung up) is committed before the writer stops.
    store.shutdown();
}

/// The metrics listener: the socket handed over in [`Sockets`], else
/// `addr` bound now.
async fn metrics_listener(
    addr: std::net::SocketAddr,
    bound: Option<std::net::TcpListener>,
) -> std::io::Result<TcpListener> {
    match bound {
        Some(l) => {
            l.set_nonblocking(true)?;
            TcpListener::from_std(l)
        }
        None => TcpListener::bind(addr).await,
    }
}

/// Loads the signing key, generating and storing one on first start.
fn load_signer(config: &Config, store: &Store) -> Result<Signer, StoreError> {
    let read = store.read()?;
    let seed = read.meta(META_SIGNING_SEED)?;
    let key_id = read.meta(META_SIGNING_KEY_ID)?;
    drop(read);
    let key = match (seed, key_id) {
        (Some(seed), Some(id)) => {
            let seed: [u8; 32] = seed
                .as_slice()
                .try_into()
                .map_err(|_| StoreError::Corrupt("signing key seed is not 32 bytes".into()))?;
            let id = String::from_utf8(id)
                .map_err(|_| StoreError::Corrupt("signing key id is not UTF-8".into()))?;
            ServerKey::from_seed(&seed, id)
        }
        _ => {
            let key = ServerKey::generate();
            let (seed, id) = (key.seed(), key.key_id().to_owned());
            store.write_blocking(move |ctx| {
                ctx.set_meta(META_SIGNING_SEED, &seed)?;
                ctx.set_meta(META_SIGNING_KEY_ID, id.as_bytes())?;
                Ok(Ok::<_, StoreError>(()))
            })?;
            key
        }
    };
    Ok(Signer { server_name: config.server_name.clone(), key })
}
