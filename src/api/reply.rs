//! What handlers answer: JSON bodies, raw bytes (media), HTML pages (the
//! UIA fallback), and [`Outcome`] for a handler that may long-poll. The
//! response type and error bodies are the HTTP layer's ([`crate::http`]).

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use serde::Serialize;

use crate::error::MatrixError;
pub use crate::http::{Body, Reply, json_status};
use crate::http::{full, with_type};

/// A handler's result: its reply, or a long-poll that has nothing to send
/// yet and produces the reply when woken or at its timeout.
pub enum Outcome<'a> {
    Reply(Reply),
    Wait(Pin<Box<dyn Future<Output = Result<Reply, MatrixError>> + 'a>>),
}

/// A `200` with a JSON body.
pub fn json<T: Serialize + ?Sized>(value: &T) -> Reply {
    json_status(200, value)
}

/// A `200` with JSON bytes already serialised (stored events, sync).
pub fn json_bytes(bytes: Vec<u8>) -> Reply {
    with_type(200, "application/json", bytes)
}

/// Raw bytes (media), without copying them.
pub fn bytes_reply(status: u16, content_type: &'static str, bytes: Bytes) -> Reply {
    let mut r = Response::new(full(bytes));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// A media download: `body` streams the bytes (its size hint gives the
/// `Content-Length`).
pub fn media_reply(status: u16, body: crate::media::MappedBody) -> Reply {
    let mut r = Response::new(body.boxed_unsync());
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    r
}

pub fn html(status: u16, page: String) -> Reply {
    with_type(status, "text/html; charset=utf-8", page.into_bytes())
}
