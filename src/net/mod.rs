//! Outbound network access: [`client`], a small HTTP/1.1 client over plain
//! TCP or rustls (webpki roots) for push gateways and, later, link
//! previews. It bounds everything a remote server controls (time, response
//! head and body size, redirects) and knows nothing of Matrix.

pub mod client;

pub use client::{Client, ClientError, Response, Url};
