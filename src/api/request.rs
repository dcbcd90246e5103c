//! The request as handlers see it: method, decoded query, headers, the body
//! already read (within limits), the client address and, for authenticated
//! endpoints, who is calling.

use std::net::IpAddr;

use bytes::Bytes;
use hyper::{HeaderMap, Method};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::account::Caller;
use crate::error::{ErrorKind, MatrixError};
use crate::room::canonical::{MAX_SAFE_INTEGER, MIN_SAFE_INTEGER};

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

    /// The body as the content of an event (`PUT /send`, `PUT /state`):
    /// required (an absent body is `M_NOT_JSON`, not `{}`), and holding only
    /// numbers a signed event can carry (see `event_json_object`).
    pub fn event_content(&self) -> Result<Map<String, Value>, MatrixError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Err(MatrixError::new(ErrorKind::NotJson, "The event content is missing"));
        }
        event_json_object(&self.body)
    }

    /// [`Request::json`] for a body whose parts become events
    /// (`createRoom`): numbers as in `event_json_object`.
    pub fn event_json<T: DeserializeOwned>(&self) -> Result<T, MatrixError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return from_json(Value::Object(Map::new()));
        }
        from_json(Value::Object(event_json_object(&self.body)?))
    }
}

/// Parses JSON text that becomes (part of) an event.
///
/// Signed events may hold only integers in `[-(2**53)+1, (2**53)-1]`
/// (spec: appendices/#canonical-json, rooms/v10+ "integers"). The parsed
/// value cannot tell: `serde_json` reads `1E2` as the float `100.0`, which
/// canonical JSON would hash as `100` while the stored event kept `100.0`.
/// So the *text* is checked: any number written with a fraction or an
/// exponent is `M_BAD_JSON`, as Synapse answers. `-0`, which `serde_json`
/// also reads as a float, is the integer `0`.
fn event_json_object(body: &[u8]) -> Result<Map<String, Value>, MatrixError> {
    let mut map = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(MatrixError::bad_json("Request body must be a JSON object")),
        Err(e) => {
            return Err(MatrixError::new(ErrorKind::NotJson, format!("Content not JSON: {e}")));
        }
    };
    let mut negative_zero = false;
    for number in number_tokens(body) {
        if number.iter().any(|b| matches!(b, b'.' | b'e' | b'E')) {
            return Err(MatrixError::bad_json(format!(
                "{} is not an integer: events may only hold integers",
                String::from_utf8_lossy(number)
            )));
        }
        let in_range = std::str::from_utf8(number)
            .ok()
            .and_then(|n| n.parse::<i64>().ok())
            .is_some_and(|n| (MIN_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&n));
        if !in_range {
            return Err(MatrixError::bad_json(format!(
                "{} is outside the range of integers events may hold \
                 [{MIN_SAFE_INTEGER}, {MAX_SAFE_INTEGER}]",
                String::from_utf8_lossy(number)
            )));
        }
        negative_zero |= number == b"-0";
    }
    if negative_zero {
        map.values_mut().for_each(zero_negative_zero);
    }
    Ok(map)
}

/// The number tokens of valid JSON text, as written.
fn number_tokens(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < text.len() {
            match text[i] {
                b'"' => {
                    // Skip the string, escapes included.
                    i += 1;
                    while i < text.len() && text[i] != b'"' {
                        i += if text[i] == b'\\' { 2 } else { 1 };
                    }
                    i += 1;
                }
                b'-' | b'0'..=b'9' => {
                    let start = i;
                    while i < text.len()
                        && matches!(text[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                    {
                        i += 1;
                    }
                    return Some(&text[start..i]);
                }
                _ => i += 1,
            }
        }
        None
    })
}

/// Replaces the float `-0.0` that `serde_json` makes of `-0` by `0`.
fn zero_negative_zero(value: &mut Value) {
    match value {
        Value::Number(n) if n.as_f64() == Some(0.0) && !n.is_i64() && !n.is_u64() => {
            *value = Value::from(0);
        }
        Value::Array(items) => items.iter_mut().for_each(zero_negative_zero),
        Value::Object(map) => map.values_mut().for_each(zero_negative_zero),
        _ => {}
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn refused(text: &str) -> bool {
        event_json_object(text.as_bytes()).is_err_and(|e| e.kind == ErrorKind::BadJson)
    }

    #[test]
    fn numbers_with_a_fraction_or_an_exponent_are_refused_anywhere_in_the_body() {
        for text in [
            r#"{"a": 1E2}"#,
            r#"{"a": 1e2}"#,
            r#"{"a": 1e+2}"#,
            r#"{"a": 1.0}"#,
            r#"{"a": [1, {"b": -2.5e-3}]}"#,
            r#"{"a": 9007199254740992}"#,
            r#"{"a": -9007199254740992}"#,
            r#"{"a": 18446744073709551616}"#,
        ] {
            assert!(refused(text), "{text}");
        }
    }

    #[test]
    fn integers_and_number_lookalikes_in_strings_pass() {
        let map = event_json_object(
            br#"{"e\"1.5": "1E2", "n": [0, -1, 9007199254740991, -9007199254740991], "t": true}"#,
        )
        .expect("valid");
        assert_eq!(map["n"], json!([0, -1, 9007199254740991_i64, -9007199254740991_i64]));
        assert_eq!(map["e\"1.5"], "1E2");
    }

    #[test]
    fn negative_zero_becomes_the_integer_zero() {
        let map = event_json_object(br#"{"a": -0, "b": [{"c": -0}]}"#).expect("valid");
        assert_eq!(serde_json::to_string(&map).expect("encodes"), r#"{"a":0,"b":[{"c":0}]}"#);
    }
}
