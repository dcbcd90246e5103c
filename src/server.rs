//! The running server: [`App`] (what every handler gets) and [`run`], which
//! takes an already-bound listener so tests can bind `127.0.0.1:0` and drive
//! the real server.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::account::{RateLimiter, UiaSessions};
use crate::config::Config;
use crate::store::{Store, StoreError};

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
    shutting_down: Cell<bool>,
}

impl App {
    pub fn new(config: Config, store: Store) -> App {
        let limiter = RateLimiter::new(config.login_attempts_per_minute);
        App {
            config,
            store,
            uia: RefCell::new(UiaSessions::default()),
            login_limiter: RefCell::new(limiter),
            hash_slots: Arc::new(Semaphore::new(2)),
            shutting_down: Cell::new(false),
        }
    }

    /// Called when the listener stops: long-polls return at once.
    pub fn begin_shutdown(&self) {
        self.shutting_down.set(true);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.get()
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
    crate::http::set_header_limit(config.max_request_header_bytes);
    let app = Rc::new(App::new(config, store.clone()));
    crate::http::serve(listener, app, shutdown).await;
    // In-flight writes were awaited by their requests; anything still queued
    // (a client that hung up) is committed before the writer stops.
    store.shutdown();
}
