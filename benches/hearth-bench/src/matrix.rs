//! The client-server calls the scenarios use, spec-named.
//!
//! Only what a spec-following server must accept is sent (spec:
//! client-server-api), so the same requests work against Hearth, Synapse
//! or anything else. Responses are checked for the fields the scenarios
//! rely on and reported as [`Error::Unexpected`] when they are missing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::{Value, json};

use crate::client::{Error, Http, Reply};

/// Time limit for an ordinary request (setup, send, initial sync, …).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Server-side wait asked for in long-polls.
pub(crate) const LONG_POLL_MS: u64 = 30_000;
/// Client-side limit for a long-poll: the server wait plus slack.
pub(crate) const LONG_POLL_TIMEOUT: Duration = Duration::from_secs(50);

/// A registered user with a device and access token.
#[derive(Debug)]
pub(crate) struct User {
    pub(crate) access_token: String,
    txn_prefix: String,
    txn_counter: AtomicU64,
}

/// `--txn-ids random`: transaction IDs that look like Element X's (32
/// random-looking hex digits, as the matrix-rust-sdk sends) instead of a
/// per-device prefix and counter (as matrix-js-sdk sends: `m{ts}.{n}`).
pub(crate) static RANDOM_TXN_IDS: AtomicBool = AtomicBool::new(false);

/// A bijection on `u64` that scatters consecutive inputs (SplitMix64's
/// finaliser).
fn scatter(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl User {
    /// A transaction id unique for this device across runs.
    pub(crate) fn next_txn_id(&self) -> String {
        let n = self.txn_counter.fetch_add(1, Ordering::Relaxed);
        if RANDOM_TXN_IDS.load(Ordering::Relaxed) {
            // Unique per device: `scatter` is a bijection; the prefix's
            // hash only varies the first half between devices and runs.
            let seed = self.txn_prefix.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
            return format!("{:016x}{:016x}", scatter(seed ^ n), scatter(n ^ seed.rotate_left(17)));
        }
        format!("{}.{n}", self.txn_prefix)
    }
}

/// Percent-encodes one path segment or query value (RFC 3986 unreserved
/// characters stay as they are).
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn str_field(value: &Value, name: &str, what: &str) -> Result<String, Error> {
    value
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| Error::Unexpected(format!("{what}: no string `{name}` in the response")))
}

/// `GET /_matrix/client/versions`.
pub(crate) async fn get_versions(http: &Http, limit: Duration) -> Result<Reply, Error> {
    http.call(Method::GET, "/_matrix/client/versions", None, None, limit).await
}

/// `POST /_matrix/client/v3/register` with the `m.login.dummy` stage of
/// User-Interactive Authentication (spec: client-server-api/#dummy-auth).
///
/// The first request has no `auth`; the server answers 401 with a
/// `session` and the flows it offers. The second request completes the
/// dummy stage in that session. A server that registers on the first
/// request (no UIA) is accepted as well.
pub(crate) async fn register(
    http: &Http,
    localpart: &str,
    password: &str,
) -> Result<(User, Duration), Error> {
    const PATH: &str = "/_matrix/client/v3/register";
    let mut body = json!({
        "username": localpart,
        "password": password,
        "initial_device_display_name": "hearth-bench",
    });
    let started = Instant::now();
    let first = http.call(Method::POST, PATH, None, Some(&body), REQUEST_TIMEOUT).await?;
    let done = if first.status == 401 {
        let uia: Value = serde_json::from_slice(&first.body).map_err(|_| first.error())?;
        let session = uia.get("session").and_then(Value::as_str);
        let offers_dummy = uia.get("flows").and_then(Value::as_array).is_some_and(|flows| {
            flows.iter().any(|flow| {
                flow.get("stages")
                    .and_then(Value::as_array)
                    .is_some_and(|s| s.len() == 1 && s[0].as_str() == Some("m.login.dummy"))
            })
        });
        let Some(session) = session.filter(|_| offers_dummy) else {
            return Err(Error::Unexpected(format!(
                "POST {PATH}: the server offers no m.login.dummy registration flow \
                 (is open registration enabled?): {}",
                String::from_utf8_lossy(&first.body).chars().take(300).collect::<String>()
            )));
        };
        body["auth"] = json!({"type": "m.login.dummy", "session": session});
        http.call(Method::POST, PATH, None, Some(&body), REQUEST_TIMEOUT).await?
    } else {
        first
    };
    let value = done.json()?;
    str_field(&value, "user_id", "register")?;
    let access_token = str_field(&value, "access_token", "register")?;
    let device_id = value.get("device_id").and_then(Value::as_str).unwrap_or("nodevice");
    Ok((
        User {
            txn_prefix: format!("hb-{localpart}-{device_id}"),
            access_token,
            txn_counter: AtomicU64::new(0),
        },
        started.elapsed(),
    ))
}

/// `POST /_matrix/client/v3/createRoom` with the `public_chat` preset, so
/// other users can join by room id without an invite.
pub(crate) async fn create_room(
    http: &Http,
    user: &User,
    name: &str,
) -> Result<(String, Duration), Error> {
    let body = json!({"preset": "public_chat", "name": name});
    let reply = http
        .call(
            Method::POST,
            "/_matrix/client/v3/createRoom",
            Some(&user.access_token),
            Some(&body),
            REQUEST_TIMEOUT,
        )
        .await?;
    let room_id = str_field(&reply.json()?, "room_id", "createRoom")?;
    Ok((room_id, reply.elapsed))
}

/// `POST /_matrix/client/v3/rooms/{roomId}/join`.
pub(crate) async fn join_room(http: &Http, user: &User, room_id: &str) -> Result<Duration, Error> {
    let path = format!("/_matrix/client/v3/rooms/{}/join", encode(room_id));
    let reply = http
        .call(Method::POST, &path, Some(&user.access_token), Some(&json!({})), REQUEST_TIMEOUT)
        .await?;
    reply.json()?;
    Ok(reply.elapsed)
}

/// `PUT /_matrix/client/v3/rooms/{roomId}/send/m.room.message/{txnId}` with
/// an `m.text` body. Returns the event id and the request's latency.
pub(crate) async fn send_text(
    http: &Http,
    user: &User,
    room_id: &str,
    text: &str,
) -> Result<(String, Reply), Error> {
    let path = format!(
        "/_matrix/client/v3/rooms/{}/send/m.room.message/{}",
        encode(room_id),
        encode(&user.next_txn_id())
    );
    let body = json!({"msgtype": "m.text", "body": text});
    let reply = http
        .call(Method::PUT, &path, Some(&user.access_token), Some(&body), REQUEST_TIMEOUT)
        .await?;
    let event_id = str_field(&reply.json()?, "event_id", "send")?;
    Ok((event_id, reply))
}

/// Query parameters of one `/sync`.
#[derive(Debug, Default, Clone)]
pub(crate) struct SyncParams<'a> {
    pub(crate) since: Option<&'a str>,
    /// Inline filter JSON (a `filter` value starting with `{`).
    pub(crate) filter: Option<&'a str>,
    pub(crate) timeout_ms: Option<u64>,
}

/// A `/sync` response, parsed, with its size and timing.
#[derive(Debug)]
pub(crate) struct Synced {
    pub(crate) value: Value,
    pub(crate) next_batch: String,
    pub(crate) bytes: usize,
    pub(crate) elapsed: Duration,
    pub(crate) received_at: Instant,
}

impl Synced {
    /// Number of rooms under `rooms.join`.
    pub(crate) fn joined_rooms(&self) -> usize {
        self.value.pointer("/rooms/join").and_then(Value::as_object).map_or(0, |rooms| rooms.len())
    }

    /// Bodies of the timeline events of `room_id` in this response.
    pub(crate) fn timeline_bodies<'s>(&'s self, room_id: &str) -> impl Iterator<Item = &'s str> {
        self.value
            .get("rooms")
            .and_then(|r| r.get("join"))
            .and_then(|j| j.get(room_id))
            .and_then(|room| room.pointer("/timeline/events"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|event| event.pointer("/content/body").and_then(Value::as_str))
    }

    /// `rooms.join.{room_id}.timeline.prev_batch`.
    pub(crate) fn prev_batch(&self, room_id: &str) -> Option<String> {
        self.value
            .get("rooms")
            .and_then(|r| r.get("join"))
            .and_then(|j| j.get(room_id))
            .and_then(|room| room.pointer("/timeline/prev_batch"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    }
}

/// `GET /_matrix/client/v3/sync`.
pub(crate) async fn sync(
    http: &Http,
    user: &User,
    params: &SyncParams<'_>,
    limit: Duration,
) -> Result<Synced, Error> {
    let mut query = Vec::new();
    if let Some(since) = params.since {
        query.push(format!("since={}", encode(since)));
    }
    if let Some(filter) = params.filter {
        query.push(format!("filter={}", encode(filter)));
    }
    if let Some(timeout) = params.timeout_ms {
        query.push(format!("timeout={timeout}"));
    }
    let mut path = String::from("/_matrix/client/v3/sync");
    if !query.is_empty() {
        path.push('?');
        path.push_str(&query.join("&"));
    }
    let reply = http.call(Method::GET, &path, Some(&user.access_token), None, limit).await?;
    let value = reply.json()?;
    let next_batch = str_field(&value, "next_batch", "sync")?;
    Ok(Synced {
        value,
        next_batch,
        bytes: reply.body.len(),
        elapsed: reply.elapsed,
        received_at: reply.received_at,
    })
}

/// One page of `GET /_matrix/client/v3/rooms/{roomId}/messages`.
#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) events: usize,
    pub(crate) end: Option<String>,
    pub(crate) bytes: usize,
    pub(crate) elapsed: Duration,
}

/// `GET /_matrix/client/v3/rooms/{roomId}/messages?dir=b` from `from`, or
/// from the end of the room when `from` is `None` (allowed since v1.3).
pub(crate) async fn get_room_events_backwards(
    http: &Http,
    user: &User,
    room_id: &str,
    from: Option<&str>,
    limit: usize,
) -> Result<Page, Error> {
    let mut path =
        format!("/_matrix/client/v3/rooms/{}/messages?dir=b&limit={limit}", encode(room_id));
    if let Some(from) = from {
        path.push_str("&from=");
        path.push_str(&encode(from));
    }
    let reply =
        http.call(Method::GET, &path, Some(&user.access_token), None, REQUEST_TIMEOUT).await?;
    let value = reply.json()?;
    let events = value
        .get("chunk")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::Unexpected("messages: no `chunk` array".into()))?
        .len();
    Ok(Page {
        events,
        end: value.get("end").and_then(Value::as_str).map(str::to_owned),
        bytes: reply.body.len(),
        elapsed: reply.elapsed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_keeps_unreserved_and_escapes_the_rest() {
        assert_eq!(encode("!abc:localhost"), "%21abc%3Alocalhost");
        assert_eq!(encode("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(encode("{\"a\":1}"), "%7B%22a%22%3A1%7D");
        assert_eq!(encode("é"), "%C3%A9");
    }

    #[test]
    fn random_transaction_ids_are_distinct_and_look_like_element_xs() {
        RANDOM_TXN_IDS.store(true, Ordering::Relaxed);
        let user = User {
            access_token: String::new(),
            txn_prefix: "hb-alice-DEV".into(),
            txn_counter: AtomicU64::new(0),
        };
        let ids: Vec<String> = (0..10_000).map(|_| user.next_txn_id()).collect();
        RANDOM_TXN_IDS.store(false, Ordering::Relaxed);
        assert!(ids.iter().all(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())));
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        // Not in sending order (sequential IDs would be).
        assert!(ids.windows(2).filter(|w| w[0] < w[1]).count() < 6_000);
    }
}
