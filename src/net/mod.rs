//! Network access beyond the client API: [`client`], a small HTTP/1.1
//! client over plain TCP or rustls (webpki roots) for push gateways and link
//! previews, which bounds everything a remote server controls (time,
//! response head and body size, redirects) and knows nothing of Matrix; and
//! [`mdns`], the optional responder that lets the LAN resolve the server's
//! `.local` name. Neither contacts anything on its own initiative.

pub mod client;
pub mod mdns;

pub use client::{Client, ClientError, Response, Url};
