//! The running server's shared state: [`App`], what every handler gets.
//!
//! `App` sits above the domain modules and below the API: it holds the
//! configuration, the store and the in-memory state of the domain (typing,
//! presence, sessions, caches, limiters, notifiers), and only domain types.
//! Domain modules never name it; they take the parts they need.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

use tokio::sync::{Notify, Semaphore};

use crate::account::{PasswordCheck, RateLimiter, UiaSessions};
use crate::config::Config;
use crate::room::build::Signer;
use crate::store::Store;

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
    pub writer_cache: crate::ingest::SharedWriterCache,
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
    pub openid: RefCell<crate::account::openid::OpenIdTokens>,
    /// Which member events each device was sent (lazy loading).
    pub lazy_members: RefCell<crate::sync::lazy::LazyMembers>,
    /// Media files on disk.
    pub media: crate::media::MediaFiles,
    /// Woken when an upload completes (downloads wait for async uploads).
    pub media_uploaded: Rc<Notify>,
    /// Recent link previews (bounded, in memory).
    pub previews: RefCell<crate::media::preview::PreviewCache>,
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
            turn_limiter: RefCell::new(RateLimiter::new(crate::voip::TURN_REQUESTS_PER_MINUTE)),
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

    /// Resolves once the server has begun shutting down (at once if it has).
    pub async fn shutdown_begun(&self) {
        // Created before the flag is read: `notify_waiters` reaches a
        // `Notified` from its creation on, so no shutdown slips between.
        let notified = self.shutdown_notify.notified();
        if self.is_shutting_down() {
            return;
        }
        notified.await;
    }

    /// What checking a password needs (`account::check_password`).
    pub fn password_check(&self) -> PasswordCheck<'_> {
        PasswordCheck {
            store: &self.store,
            hash_slots: &self.hash_slots,
            per_address: &self.login_limiter,
            per_user: &self.login_user_limiter,
        }
    }

    /// Open long-polls: each holds a clone of its user's `Notify` while it
    /// waits, the map holds one more.
    pub fn open_long_polls(&self) -> usize {
        self.waiters.borrow().values().map(|n| Arc::strong_count(n).saturating_sub(1)).sum()
    }
}
