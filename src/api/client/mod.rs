//! The client-server API: its router ([`router`]), its [`http::Service`]
//! ([`ClientApi`]), and the handlers, one file per spec area.
//!
//! [`http::Service`]: crate::http::Service

pub mod account;
pub mod backup;
pub mod dehydrated;
pub mod devices;
pub mod directory;
pub mod discovery;
mod dispatch;
pub mod fallback;
pub mod history;
pub mod keys;
pub mod login;
pub mod media;
pub mod misc;
pub mod moderation;
pub mod openid;
pub mod preview;
pub mod push;
pub mod register;
pub mod relations;
pub mod rooms;
pub mod router;
pub mod search;
mod service;
pub mod sliding;
pub mod spaces;
pub mod summary;
pub mod sync;
pub mod uia;
pub mod userdata;
pub mod voip;

pub use service::ClientApi;
