//! Delivering notifications to push gateways (spec: push-gateway-api,
//! `POST /_matrix/push/v1/notify`), off the request path.
//!
//! Deliveries are queued in the store in the same transaction as the event
//! that caused them, so a restart loses none. This task sends them one at a
//! time with a timeout, retries failures with exponential backoff, drops a
//! delivery the gateway refuses outright, and deletes pushers whose pushkeys
//! the gateway reports as `rejected`.

use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::Notify;

use crate::ids::UserId;
use crate::net::Client;
use crate::store::Store;
use crate::time::now_ms;

/// Give up on a delivery after this many failed attempts (~2 hours of backoff).
const MAX_ATTEMPTS: u64 = 12;
const TIMEOUT: Duration = Duration::from_secs(15);
/// A gateway answers `{"rejected": [...]}`; anything bigger is not a gateway.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Outcome of one attempt.
enum Sent {
    /// Delivered; these pushkeys were rejected.
    Ok(Vec<String>),
    /// Worth retrying later (network, 5xx, 429).
    Retry(String),
    /// Never going to work (4xx, unsupported URL, oversized answer).
    Drop(String),
}

/// Delivers the queue of `store` until `shutdown` resolves; `wake` is
/// notified when a delivery is queued.
pub async fn run(store: Store, wake: Rc<Notify>, shutdown: impl Future<Output = ()>) {
    let client = Client::new().timeout(TIMEOUT).max_body_bytes(MAX_RESPONSE_BYTES);
    tokio::pin!(shutdown);
    loop {
        // No new round of deliveries once the server is stopping.
        tokio::select! {
            biased;
            _ = &mut shutdown => return,
            _ = std::future::ready(()) => {}
        }
        let notified = wake.notified();
        let next_due = match deliver_due(&store, &client).await {
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
            _ = &mut shutdown => return,
        }
    }
}

/// Sends what is due; returns when the next pending item is due.
async fn deliver_due(store: &Store, client: &Client) -> Result<Option<u64>, String> {
    let queue = store.read().and_then(|r| r.push_queue(64)).map_err(|e| e.to_string())?;
    let mut next: Option<u64> = None;
    for (seq, bytes) in queue {
        let mut item: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        let due = item["next_try_ms"].as_u64().unwrap_or(0);
        if due > now_ms() {
            next = Some(next.map_or(due, |n| n.min(due)));
            continue;
        }
        let url = item["url"].as_str().unwrap_or_default().to_owned();
        let outcome = post(client, &url, &item["body"]).await;
        let user = UserId::from_trusted(item["user"].as_str().unwrap_or_default().to_owned());
        let app_id = item["app_id"].as_str().unwrap_or_default().to_owned();
        match outcome {
            Sent::Ok(rejected) => {
                store
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
                store
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
                    store
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
                store
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

/// One delivery attempt, over http or https (`net::Client`: 15 s timeout,
/// 64 KiB answer cap, no redirects).
async fn post(client: &Client, url: &str, body: &Value) -> Sent {
    let bytes = match serde_json::to_vec(body) {
        Ok(b) => Bytes::from(b),
        Err(e) => return Sent::Drop(e.to_string()),
    };
    match client.post(url, "application/json", bytes).await {
        Err(e) if e.is_permanent() => Sent::Drop(e.to_string()),
        Err(e) => Sent::Retry(e.to_string()),
        Ok(resp) => match resp.status {
            200..=299 => {
                let rejected = serde_json::from_slice::<Value>(&resp.body)
                    .ok()
                    .and_then(|v| v["rejected"].as_array().cloned())
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect();
                Sent::Ok(rejected)
            }
            429 | 500..=599 => Sent::Retry(format!("gateway answered {}", resp.status)),
            status => Sent::Drop(format!("gateway answered {status}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_gateway_urls_are_dropped_and_unreachable_ones_retried() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        tokio::task::LocalSet::new().block_on(&rt, async {
            let client = Client::new().timeout(Duration::from_secs(5));
            let body = serde_json::json!({ "notification": {} });
            assert!(matches!(post(&client, "ftp://push.example/x", &body).await, Sent::Drop(_)));
            assert!(matches!(post(&client, "push.example/x", &body).await, Sent::Drop(_)));
            // Nothing listens on a port we just released: a network failure,
            // worth retrying, for https as for http.
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            for scheme in ["http", "https"] {
                let url = format!("{scheme}://127.0.0.1:{port}/_matrix/push/v1/notify");
                assert!(matches!(post(&client, &url, &body).await, Sent::Retry(_)), "{url}");
            }
        });
    }

    #[test]
    fn the_delivery_task_ends_when_shutdown_begins_even_while_idle() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        tokio::task::LocalSet::new().block_on(&rt, async {
            let dir = tempfile::tempdir().expect("tempdir");
            let store = Store::open(dir.path(), 1 << 20, None).expect("open");
            let stop = Rc::new(Notify::new());
            let stopping = stop.clone();
            let task =
                tokio::task::spawn_local(run(store.clone(), Rc::new(Notify::new()), async move {
                    stopping.notified().await
                }));
            // Let it find the queue empty and settle into its minute-long wait.
            tokio::task::yield_now().await;
            assert!(!task.is_finished());
            stop.notify_one();
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("the task ends on shutdown, not after its idle wait")
                .expect("the task does not panic");
            store.shutdown();
        });
    }
}
