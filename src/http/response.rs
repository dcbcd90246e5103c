//! The response type, bodies of bytes and JSON, CORS headers on everything,
//! errors as Matrix error bodies with their status (and `Retry-After` for
//! 429). What an API builds on top (media, HTML pages) is its own.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use serde::Serialize;

use crate::error::MatrixError;

pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;
pub type Reply = Response<Body>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never: Infallible| match never {}).boxed_unsync()
}

pub fn json_status<T: Serialize + ?Sized>(status: u16, value: &T) -> Reply {
    match serde_json::to_vec(value) {
        Ok(bytes) => with_type(status, "application/json", bytes),
        Err(e) => error(&MatrixError::internal("serialising a response", e)),
    }
}

/// A body of `bytes` as `content_type`.
pub fn with_type(status: u16, content_type: &'static str, bytes: Vec<u8>) -> Reply {
    let mut r = Response::new(full(bytes));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

pub fn error(e: &MatrixError) -> Reply {
    let mut r = json_status(e.status(), &e.body());
    if let Some(ms) = e.extra.get("retry_after_ms").and_then(|v| v.as_u64()) {
        let secs = ms.div_ceil(1000).max(1);
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    r
}

/// The answer to a CORS preflight: no endpoint logic runs.
pub(super) fn preflight() -> Reply {
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

/// spec: client-server-api/#web-browser-clients. Added to every response.
pub(super) fn add_cors(r: &mut Reply) {
    let h = r.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PUT, DELETE, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("X-Requested-With, Content-Type, Authorization"),
    );
}
