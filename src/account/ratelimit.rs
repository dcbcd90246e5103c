//! A bounded token-bucket limiter, keyed by strings such as a user, a client
//! address or both (spec: client-server-api/#rate-limiting).
//!
//! Logins spend tokens only on failures, so a family logging in normally is
//! never slowed; a guesser is held to `per_minute` attempts per key.
//! Registrations spend one per account created; requests limited whether
//! they succeed or not spend one each ([`RateLimiter::take`], e.g.
//! `/voip/turnServer`).

use std::collections::HashMap;
use std::time::Instant;

/// At most this many keys are tracked; when full, refilled buckets are
/// dropped first (they carry no information), then the oldest.
const MAX_KEYS: usize = 10_000;

pub struct RateLimiter {
    per_minute: u32,
    buckets: HashMap<String, Bucket>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> RateLimiter {
        RateLimiter { per_minute: per_minute.max(1), buckets: HashMap::new() }
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        let rate = f64::from(self.per_minute) / 60_000.0;
        let elapsed = now.duration_since(b.updated).as_millis() as f64;
        b.tokens = (b.tokens + elapsed * rate).min(f64::from(self.per_minute));
        b.updated = now;
    }

    /// `Err(retry_after_ms)` when `key` has no attempts left.
    pub fn check(&mut self, key: &str, now: Instant) -> Result<(), u64> {
        let Some(mut b) = self.buckets.get(key).copied() else { return Ok(()) };
        self.refill(&mut b, now);
        self.buckets.insert(key.to_owned(), b);
        if b.tokens >= 1.0 {
            Ok(())
        } else {
            let rate = f64::from(self.per_minute) / 60_000.0;
            Err(((1.0 - b.tokens) / rate).ceil() as u64)
        }
    }

    /// Spends one attempt of `key`.
    pub fn record_failure(&mut self, key: &str, now: Instant) {
        if self.buckets.len() >= MAX_KEYS && !self.buckets.contains_key(key) {
            self.evict(now);
        }
        let full = Bucket { tokens: f64::from(self.per_minute), updated: now };
        let mut b = self.buckets.get(key).copied().unwrap_or(full);
        self.refill(&mut b, now);
        b.tokens = (b.tokens - 1.0).max(0.0);
        self.buckets.insert(key.to_owned(), b);
    }

    /// Spends one request of `key`, or `Err(retry_after_ms)` when it has
    /// none left (then nothing is spent).
    pub fn take(&mut self, key: &str, now: Instant) -> Result<(), u64> {
        self.check(key, now)?;
        self.record_failure(key, now);
        Ok(())
    }

    fn evict(&mut self, now: Instant) {
        let per_minute = f64::from(self.per_minute);
        let rate = per_minute / 60_000.0;
        self.buckets.retain(|_, b| {
            let elapsed = now.duration_since(b.updated).as_millis() as f64;
            b.tokens + elapsed * rate < per_minute
        });
        if self.buckets.len() >= MAX_KEYS
            && let Some(oldest) =
                self.buckets.iter().min_by_key(|(_, b)| b.updated).map(|(k, _)| k.clone())
        {
            self.buckets.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn failures_beyond_the_budget_are_refused_with_a_wait() {
        let mut l = RateLimiter::new(3);
        let t = Instant::now();
        for _ in 0..3 {
            assert!(l.check("u:alice", t).is_ok());
            l.record_failure("u:alice", t);
        }
        let wait = l.check("u:alice", t).expect_err("budget spent");
        assert!(wait > 0 && wait <= 20_000, "{wait}");
        assert!(l.check("u:bob", t).is_ok(), "other keys are unaffected");
    }

    #[test]
    fn take_spends_every_request_and_refuses_beyond_the_budget() {
        let mut l = RateLimiter::new(2);
        let t = Instant::now();
        assert!(l.take("@a:b", t).is_ok());
        assert!(l.take("@a:b", t).is_ok());
        let wait = l.take("@a:b", t).expect_err("budget spent");
        assert!(wait > 0 && wait <= 30_000, "{wait}");
        assert!(l.take("@c:b", t).is_ok(), "other keys are unaffected");
        assert!(l.take("@a:b", t + Duration::from_secs(30)).is_ok(), "refilled");
    }

    #[test]
    fn the_budget_refills_over_time() {
        let mut l = RateLimiter::new(60);
        let t = Instant::now();
        for _ in 0..60 {
            l.record_failure("k", t);
        }
        assert!(l.check("k", t).is_err());
        assert!(l.check("k", t + Duration::from_millis(1100)).is_ok());
    }
}
