//! Runs `count` jobs with at most `concurrency` in flight, each by index.
//!
//! Jobs not started before the deadline are not started at all and come
//! back as errors, so a slow server bounds the time of a loop, not only its
//! count.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::Error;

pub(crate) async fn run<T, F, Fut>(
    count: usize,
    concurrency: usize,
    deadline: Instant,
    job: F,
) -> Vec<Result<T, Error>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, Error>> + Send + 'static,
{
    let job = Arc::new(job);
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..concurrency.clamp(1, count.max(1)) {
        let job = Arc::clone(&job);
        let next = Arc::clone(&next);
        workers.spawn(async move {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                if Instant::now() >= deadline {
                    done.push((
                        i,
                        Err(Error::Timeout {
                            what: "job not started: loop deadline".into(),
                            after: Duration::ZERO,
                        }),
                    ));
                    continue;
                }
                done.push((i, job(i).await));
            }
            done
        });
    }
    let mut results: Vec<Option<Result<T, Error>>> = (0..count).map(|_| None).collect();
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(done) => {
                for (i, result) in done {
                    results[i] = Some(result);
                }
            }
            // A worker can only fail by panicking; its jobs are reported as
            // lost below rather than taking the whole run down.
            Err(e) => eprintln!("hearth-bench: worker task failed: {e}"),
        }
    }
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| Err(Error::Unexpected("job lost (worker task failed)".into())))
        })
        .collect()
}
