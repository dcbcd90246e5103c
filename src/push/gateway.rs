//! Delivering notifications to push gateways (spec: push-gateway-api,
//! `POST /_matrix/push/v1/notify`), off the request path.
//!
//! Deliveries are queued in the store in the same transaction as the event
//! that caused them, so a restart loses none. This task sends them one at a
//! time with a timeout, retries failures with exponential backoff, drops a
//! delivery the gateway refuses outright, and deletes pushers whose pushkeys
//! the gateway reports as `rejected`.

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::account::now_ms;
use crate::server::App;

/// Give up on a delivery after this many failed attempts (~2 hours of backoff).
const MAX_ATTEMPTS: u64 = 12;
const TIMEOUT: Duration = Duration::from_secs(15);

/// Outcome of one attempt.
enum Sent {
    /// Delivered; these pushkeys were rejected.
    Ok(Vec<String>),
    /// Worth retrying later (network, 5xx, 429).
    Retry(String),
    /// Never going to work (4xx, unsupported URL).
    Drop(String),
}

/// Runs until the server shuts down.
pub async fn run(app: Rc<App>) {
    loop {
        if app.is_shutting_down() {
            return;
        }
        let notified = app.push_wake.notified();
        let next_due = match deliver_due(&app).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("push queue: {e}");
                Some(now_ms() + 5_000)
            }
        };
        let wait = match next_due {
            Some(t) => Duration::from_millis(t.saturating_sub(now_ms()).clamp(10, 60_000)),
            None => Duration::from_secs(60),
        };
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(wait) => {}
            _ = app.shutdown_notify.notified() => return,
        }
    }
}

/// Sends what is due; returns when the next pending item is due.
async fn deliver_due(app: &App) -> Result<Option<u64>, String> {
    let queue = app.store.read().and_then(|r| r.push_queue(64)).map_err(|e| e.to_string())?;
    let mut next: Option<u64> = None;
    for (seq, bytes) in queue {
        let mut item: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        let due = item["next_try_ms"].as_u64().unwrap_or(0);
        if due > now_ms() {
            next = Some(next.map_or(due, |n| n.min(due)));
            continue;
        }
        let url = item["url"].as_str().unwrap_or_default().to_owned();
        let outcome = post(&url, &item["body"]).await;
        let user = item["user"].as_str().unwrap_or_default().to_owned();
        let app_id = item["app_id"].as_str().unwrap_or_default().to_owned();
        match outcome {
            Sent::Ok(rejected) => {
                app.store
                    .write(move |ctx| {
                        ctx.remove_push(seq)?;
                        for key in &rejected {
                            // spec: drop pushers the gateway rejects.
                            ctx.delete_pusher(&user, &app_id, key)?;
                        }
                        Ok(Ok::<_, crate::store::StoreError>(()))
                    })
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Sent::Drop(why) => {
                tracing::info!("push to {url} dropped: {why}");
                app.store
                    .write(move |ctx| {
                        ctx.remove_push(seq)?;
                        Ok(Ok::<_, crate::store::StoreError>(()))
                    })
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Sent::Retry(why) => {
                let attempts = item["attempts"].as_u64().unwrap_or(0) + 1;
                if attempts >= MAX_ATTEMPTS {
                    tracing::info!("push to {url} given up after {attempts} attempts: {why}");
                    app.store
                        .write(move |ctx| {
                            ctx.remove_push(seq)?;
                            Ok(Ok::<_, crate::store::StoreError>(()))
                        })
                        .await
                        .map_err(|e| e.to_string())?;
                    continue;
                }
                let backoff = 1000u64 << attempts.min(12);
                let due = now_ms() + backoff.min(3_600_000);
                item["attempts"] = attempts.into();
                item["next_try_ms"] = due.into();
                let bytes = serde_json::to_vec(&item).map_err(|e| e.to_string())?;
                app.store
                    .write(move |ctx| {
                        ctx.update_push(seq, &bytes)?;
                        Ok(Ok::<_, crate::store::StoreError>(()))
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                next = Some(next.map_or(due, |n| n.min(due)));
            }
        }
    }
    Ok(next)
}

/// Splits `http://host[:port]/path` (plain HTTP only for now).
fn split_url(url: &str) -> Result<(String, String, String), String> {
    let rest = match url.strip_prefix("http://") {
        Some(r) => r,
        None if url.starts_with("https://") => {
            return Err("https push gateways need TLS, which Hearth does not have yet".into());
        }
        None => return Err("not an http URL".into()),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr =
        if authority.contains(':') { authority.to_owned() } else { format!("{authority}:80") };
    Ok((addr, authority.to_owned(), path.to_owned()))
}

async fn post(url: &str, body: &Value) -> Sent {
    let (addr, host, path) = match split_url(url) {
        Ok(p) => p,
        Err(e) => return Sent::Drop(e),
    };
    let attempt = async {
        let stream = tokio::net::TcpStream::connect(&addr).await.map_err(|e| e.to_string())?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        tokio::task::spawn_local(async move {
            let _ = conn.await;
        });
        let bytes = serde_json::to_vec(body).map_err(|e| e.to_string())?;
        let req = hyper::Request::post(path)
            .header(hyper::header::HOST, host)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok::<_, String>((status, body))
    };
    match tokio::time::timeout(TIMEOUT, attempt).await {
        Err(_) => Sent::Retry("timed out".into()),
        Ok(Err(e)) => Sent::Retry(e),
        Ok(Ok((status, body))) => match status {
            200..=299 => {
                let rejected = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v["rejected"].as_array().cloned())
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect();
                Sent::Ok(rejected)
            }
            429 | 500..=599 => Sent::Retry(format!("gateway answered {status}")),
            _ => Sent::Drop(format!("gateway answered {status}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_urls_split_into_address_host_and_path() {
        let (a, h, p) = split_url("http://127.0.0.1:5000/_matrix/push/v1/notify").expect("ok");
        assert_eq!(
            (a.as_str(), h.as_str(), p.as_str()),
            ("127.0.0.1:5000", "127.0.0.1:5000", "/_matrix/push/v1/notify")
        );
        let (a, _, _) = split_url("http://push.lan/_matrix/push/v1/notify").expect("ok");
        assert_eq!(a, "push.lan:80");
        assert!(split_url("https://push.example/_matrix/push/v1/notify").is_err());
        assert!(split_url("ftp://x").is_err());
    }
}
