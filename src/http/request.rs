//! The request as handlers see it: method, decoded query, headers, the body
//! already read (within limits), the client address and, for authenticated
//! endpoints, who is calling.

use std::net::IpAddr;

use bytes::Bytes;
use hyper::{HeaderMap, Method};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{ErrorKind, MatrixError};
use crate::ids::{DeviceId, UserId};

/// The caller of an authenticated endpoint.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user_id: UserId,
    pub device_id: DeviceId,
    /// blake3 of the access token used (logout revokes exactly this one).
    pub token_hash: [u8; 32],
    pub admin: bool,
    /// Locked or suspended by an admin (spec: account moderation).
    pub locked: bool,
    pub suspended: bool,
}

pub struct Request {
    /// The unread body of streaming endpoints (media uploads); `None` for
    /// the rest, whose body is read into `body` before dispatch.
    pub body_stream: std::cell::RefCell<Option<hyper::body::Incoming>>,
    pub method: Method,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub remote: IpAddr,
    pub caller: Option<Caller>,
}

impl Request {
    /// Takes the streaming body (once).
    pub fn take_body_stream(&self) -> Option<hyper::body::Incoming> {
        self.body_stream.borrow_mut().take()
    }

    /// The first value of a query parameter.
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// A boolean query parameter (`true`/`false`), `default` when absent.
    pub fn query_bool(&self, key: &str, default: bool) -> Result<bool, MatrixError> {
        match self.query(key) {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(other) => Err(MatrixError::invalid_param(format!(
                "query parameter {key} must be true or false, not {other:?}"
            ))),
        }
    }

    /// The authenticated caller; only absent on endpoints that do not need one.
    pub fn caller(&self) -> Result<&Caller, MatrixError> {
        self.caller
            .as_ref()
            .ok_or_else(|| MatrixError::new(ErrorKind::MissingToken, "Missing access token"))
    }

    /// The body as a JSON object: not JSON → `M_NOT_JSON`; JSON but not an
    /// object → `M_BAD_JSON`. An empty body counts as `{}` (spec: logout).
    pub fn json_object(&self) -> Result<Map<String, Value>, MatrixError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Map::new());
        }
        match serde_json::from_slice::<Value>(&self.body) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(MatrixError::bad_json("Request body must be a JSON object")),
            Err(e) => Err(MatrixError::new(ErrorKind::NotJson, format!("Content not JSON: {e}"))),
        }
    }

    /// The body decoded into `T`; shape errors name the field
    /// (`M_BAD_JSON`).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, MatrixError> {
        let map = self.json_object()?;
        from_json(Value::Object(map))
    }
}

/// Decodes a JSON value into `T`, mapping serde's message (which names the
/// field: "missing field `username`", "invalid type: integer, expected a
/// string") into `M_BAD_JSON`.
pub fn from_json<T: DeserializeOwned>(value: Value) -> Result<T, MatrixError> {
    serde_json::from_value(value)
        .map_err(|e| MatrixError::bad_json(format!("Invalid request body: {e}")))
}

/// Splits and percent-decodes a query string. `+` means space, as browsers
/// send it in forms.
pub fn parse_query(q: &str) -> Result<Vec<(String, String)>, MatrixError> {
    let mut out = Vec::new();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.push((
            decode_component(&k.replace('+', " "))?,
            decode_component(&v.replace('+', " "))?,
        ));
    }
    Ok(out)
}

/// Percent-decodes one path segment or query component as UTF-8.
pub fn decode_component(s: &str) -> Result<String, MatrixError> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| MatrixError::invalid_param("URL is not valid UTF-8 after percent-decoding"))
}

/// A streaming request body as the media store reads it.
pub struct BodyStream(pub hyper::body::Incoming);

impl crate::media::ChunkSource for BodyStream {
    /// The next data chunk (trailers are skipped).
    async fn next_chunk(&mut self) -> Option<std::io::Result<Bytes>> {
        use http_body_util::BodyExt;
        loop {
            match self.0.frame().await? {
                Ok(frame) => match frame.into_data() {
                    Ok(data) => return Some(Ok(data)),
                    Err(_) => continue,
                },
                Err(e) => return Some(Err(std::io::Error::other(e))),
            }
        }
    }
}
