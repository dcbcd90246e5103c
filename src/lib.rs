//! Hearth: a Matrix homeserver for single-board computers.
//!
//! One event-loop thread (tokio `current_thread`) serves HTTP and assembles
//! responses; one writer thread applies writes to redb in group commits.
//! See `DESIGN.md` in the shared docs for the architecture.
//!
//! # Layout
//!
//! Top to bottom; a module imports only from the modules below it
//! (`.ci/layers.py` fails CI on an import cycle between them).
//!
//! - [`cli`]: the admin command line (`hearth user …`, `hearth registration-token …`).
//! - [`server`]: [`server::run`], which takes a bound listener so tests can
//!   drive the real server; binds the side listeners, spawns the background
//!   tasks and serves the client API through [`http`].
//! - [`admin`]: the admin socket of a running server, backup and restore,
//!   `hearth doctor`.
//! - [`api`]: one API surface per folder (the client-server API in
//!   [`api::client`]): its router (method + path → typed endpoint and the
//!   token it needs), access-token check, account moderation and dispatch,
//!   as an [`http::Service`]; one handler per spec operation, one file per
//!   spec module; the Prometheus listener ([`api::metrics`]).
//! - [`app`]: [`app::App`], the running server's shared state (what
//!   handlers get); it holds only domain types.
//! - [`ingest`]: the one point every new event passes once stored (fan-out
//!   to search, push, relations, sync wake-ups in the same transaction), and
//!   the room operations that make events (send, redact, create, upgrade).
//! - [`search`]: server-side search: tokenizer, word index walk, ranking.
//! - [`sync`]: sync assembly (classic and sliding), typing, presence,
//!   receipts, account data, to-device messages, device-list tracking.
//! - [`push`]: push rules (defaults, the /pushrules operations, evaluation),
//!   notification counts and the push-gateway sender.
//! - [`e2ee`]: what the server checks of published end-to-end encryption
//!   keys (cross-signing key shape and signatures), key uploads and claims,
//!   key backup, dehydrated devices.
//! - [`account`]: passwords, tokens and devices, who made a request
//!   ([`account::Caller`]), user-interactive auth sessions, failed-login
//!   rate limiting, profiles, OpenID tokens.
//! - [`room`]: Matrix room rules (versions, canonical JSON, hashing and
//!   signing, redaction, power levels, authorization rules, history
//!   visibility) and building and storing one event.
//! - [`net`]: the outbound HTTP(S) client (push gateways, link previews) and
//!   the optional mDNS responder for the server's `.local` name.
//! - [`http`]: a generic HTTP server over an [`http::Service`]: listener,
//!   connections, timeouts, limits, CORS, errors → responses; HTTPS and
//!   HTTP/2 with certificate reload in [`http::tls`]. It knows no endpoint.
//! - [`voip`]: TURN credentials for calls (the TURN REST API convention).
//! - [`config`]: TOML file + command-line overrides → validated [`config::Config`].
//! - [`media`]: content-addressed media files, thumbnails, link previews.
//! - [`store`]: every redb table and the writer thread; nothing else names redb.
//! - [`quota`]: per-user storage caps (sizes and counts) and their errors.
//! - [`metrics`]: the request counters behind the Prometheus metrics.
//! - [`memory`]: releasing start-up-only pages of the executable from RSS,
//!   trimming the heap when idle, and the global allocator
//!   ([`memory::buffers`]: connection buffers that cost no RSS untouched).
//! - [`notify`]: telling systemd the server is ready (`sd_notify`).
//! - [`ids`]: validated identifiers (`UserId`, `RoomId`, …).
//! - [`membership`]: the `Membership` enum (`join`, `leave`, …).
//! - [`time`]: the wall clock in Matrix's milliseconds since the epoch.
//! - [`error`]: `MatrixError`, the one error type handlers return.

pub mod account;
pub mod admin;
pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod e2ee;
pub mod error;
pub mod http;
pub mod ids;
pub mod ingest;
pub mod media;
pub mod membership;
pub mod memory;
pub mod metrics;
pub mod net;
pub mod notify;
pub mod push;
pub mod quota;
pub mod room;
pub mod search;
pub mod server;
pub mod store;
pub mod sync;
pub mod time;
pub mod voip;

/// Installed here rather than in `main.rs` so the tests run on it too.
#[global_allocator]
static ALLOCATOR: memory::buffers::Allocator = memory::buffers::Allocator;
