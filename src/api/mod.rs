//! The API layer: one function per spec operation, grouped one file per spec
//! area under `client/`. Handlers stay thin: parse the request, call the
//! domain, shape the response. Each API surface (`client` now) has its own
//! router and implements [`crate::http::Service`]; what handlers share is
//! here: [`Request`] and the replies.

pub mod client;
pub mod metrics;
mod reply;
mod request;

pub use reply::{
    Body, Outcome, Reply, bytes_reply, html, json, json_bytes, json_status, media_reply,
};
pub use request::{BodyStream, Request, decode_component, from_json, parse_query};
