//! The running server: [`App`] (what every handler gets) and [`run`], which
//! takes an already-bound listener so tests can bind `127.0.0.1:0` and drive
//! the real server.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};

use crate::account::{RateLimiter, UiaSessions};
use crate::config::Config;
use crate::room::build::Signer;
use crate::room::pdu::ServerKey;
use crate::store::{Store, StoreError};

const META_SIGNING_SEED: &str = "signing_key_seed";
const META_SIGNING_KEY_ID: &str = "signing_key_id";

/// Everything a handler may use. Lives on the event-loop thread only, so
/// its mutable parts are `RefCell`s: no locks on the hot path.
pub struct App {
    pub config: Config,
    pub store: Store,
    pub uia: RefCell<UiaSessions>,
    pub login_limiter: RefCell<RateLimiter>,
    /// Caps concurrent argon2 hashes: each takes ~19 MiB and a core, and a
    /// 512 MB board must not be pushed into swap by a burst of logins.
    pub hash_slots: Arc<Semaphore>,
    /// The server's ed25519 signing identity (generated on first start).
    pub signer: Signer,
    /// Parsed room state and push rulesets the writer reuses between
    /// operations (bounded; only the writer thread locks it).
    pub writer_cache: crate::room::cache::SharedWriterCache,
    /// Long-polling `/sync` requests wait on their user's `Notify`; the
    /// waker task pokes exactly the users a commit affected. An `Arc` only
    /// for `Notify::notified_owned`: a parked `/sync` keeps its armed
    /// wake-up without borrowing from the request that created it.
    waiters: RefCell<HashMap<String, Arc<Notify>>>,
    /// Who is typing where (in memory; spec: typing is ephemeral).
    pub typing: RefCell<crate::sync::typing::Typing>,
    /// Sliding sync connections (MSC4186): what each was sent, bounded.
    pub sliding: RefCell<crate::sync::sliding::Connections>,
    /// Presence by user. In memory: cheap, and a restart resetting
    /// everyone to offline is right.
    pub presence: RefCell<crate::sync::presence::Presence>,
    /// OpenID tokens handed to widgets (in memory, an hour each).
    pub openid: RefCell<crate::api::client::openid::OpenIdTokens>,
    /// Which member events each device was sent (lazy loading).
    pub lazy_members: RefCell<crate::sync::lazy::LazyMembers>,
    /// Media files on disk.
    pub media: crate::media::MediaFiles,
    /// Woken when an upload completes (downloads wait for async uploads).
    pub media_uploaded: Rc<Notify>,
    /// Recent link previews (bounded, in memory).
    pub previews: RefCell<crate::api::client::preview::PreviewCache>,
    /// Woken when a push-gateway delivery is queued.
    pub push_wake: Rc<Notify>,
    /// Request counters for the metrics endpoint.
    pub metrics: crate::metrics::Metrics,
    /// Woken once at shutdown so every long-poll returns.
    pub shutdown_notify: Rc<Notify>,
    shutting_down: Cell<bool>,
    /// `/voip/turnServer` requests per user (each hands out a credential).
    pub turn_limiter: RefCell<RateLimiter>,
    /// Failed logins per account over all addresses (the distributed
    /// guessing ceiling; `login_limiter` holds the per-address budgets).
    pub login_user_limiter: RefCell<RateLimiter>,
    /// Completed registrations per client address, and for loopback
    /// addresses (a reverse proxy's clients all share one).
    pub registration_limiter: RefCell<RateLimiter>,
    pub registration_limiter_loopback: RefCell<RateLimiter>,
    /// The addresses this server listens on, which link previews never fetch.
    pub own_addrs: RefCell<Vec<std::net::SocketAddr>>,
}

impl App {
    pub fn new(
        config: Config,
        store: Store,
        signer: Signer,
        media: crate::media::MediaFiles,
    ) -> App {
        let limiter = RateLimiter::new(config.login_attempts_per_minute);
        let user_limiter = RateLimiter::new(config.login_attempts_per_user_per_minute);
        let registrations = RateLimiter::new(config.registrations_per_minute);
        let registrations_loopback = RateLimiter::new(config.registrations_per_minute_loopback);
        App {
            config,
            store,
            uia: RefCell::new(UiaSessions::default()),
            login_limiter: RefCell::new(limiter),
            hash_slots: Arc::new(Semaphore::new(2)),
            signer,
            writer_cache: Default::default(),
            waiters: RefCell::new(HashMap::new()),
            typing: RefCell::new(crate::sync::typing::Typing::default()),
            sliding: RefCell::new(crate::sync::sliding::Connections::new()),
            presence: RefCell::default(),
            lazy_members: RefCell::default(),
            openid: RefCell::default(),
            media,
            media_uploaded: Rc::new(Notify::new()),
            push_wake: Rc::new(Notify::new()),
            previews: RefCell::new(Default::default()),
            metrics: crate::metrics::Metrics::default(),
            shutdown_notify: Rc::new(Notify::new()),
            shutting_down: Cell::new(false),
            turn_limiter: RefCell::new(RateLimiter::new(
                crate::api::client::voip::TURN_REQUESTS_PER_MINUTE,
            )),
            login_user_limiter: RefCell::new(user_limiter),
            registration_limiter: RefCell::new(registrations),
            registration_limiter_loopback: RefCell::new(registrations_loopback),
            own_addrs: RefCell::default(),
        }
    }

    /// The `Notify` a user's long-polls wait on.
    pub fn waiter(&self, user_id: &str) -> Arc<Notify> {
        self.waiters.borrow_mut().entry(user_id.to_owned()).or_default().clone()
    }

    /// Drops the `Notify` of a user nobody waits for any more, so the map
    /// stays as small as the set of open long-polls.
    pub fn release_waiter(&self, user_id: &str) {
        let mut w = self.waiters.borrow_mut();
        if w.get(user_id).is_some_and(|n| Arc::strong_count(n) == 1) {
            w.remove(user_id);
        }
    }

    /// Parks a long-poll until `notified` fires (a commit woke its user),
    /// the server starts shutting down, or `deadline` passes.
    pub async fn park<F: Future<Output = ()>>(
        &self,
        notified: std::pin::Pin<&mut F>,
        deadline: tokio::time::Instant,
    ) {
        let shutdown = self.shutdown_notify.notified();
        tokio::select! {
            _ = notified => {}
            _ = shutdown => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }

    /// Whether a request of the user is waiting in a long-poll.
    pub fn is_waiting(&self, user_id: &str) -> bool {
        self.waiters.borrow().get(user_id).is_some_and(|n| Arc::strong_count(n) > 1)
    }

    pub fn wake(&self, user_id: &str) {
        if let Some(n) = self.waiters.borrow().get(user_id) {
            n.notify_waiters();
        }
    }

    /// Called when the listener stops: long-polls return at once.
    pub fn begin_shutdown(&self) {
        self.shutting_down.set(true);
        self.shutdown_notify.notify_waiters();
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.get()
    }

    /// Open long-polls: each holds a clone of its user's `Notify` while it
    /// waits, the map holds one more.
    pub fn open_long_polls(&self) -> usize {
        self.waiters.borrow().values().map(|n| Arc::strong_count(n).saturating_sub(1)).sum()
    }
}

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
    crate::http::set_header_limit(config.max_request_header_bytes);
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
                Some(tokio::task::spawn_local(crate::metrics::serve(l, app.clone())))
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
            crate::api::client::userdata::expire_typing(&typing_app);
            crate::api::client::userdata::expire_presence(&typing_app);
        }
    });
    let pusher = tokio::task::spawn_local(crate::push::gateway::run(app.clone()));
    let trimmer = tokio::task::spawn_local(crate::memory::trim_when_idle());
    // Start-up is over: its code need not stay mapped (see `memory`).
    crate::memory::release_startup_pages();
    crate::http::serve(listener, app, reloads, shutdown).await;
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
