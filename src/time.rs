//! Wall-clock time as Matrix counts it: milliseconds since the Unix epoch
//! (`origin_server_ts`, expiry times, `last_seen_ts`). At the bottom of the
//! layers so that room rules and storage code can read the clock without
//! importing a domain module.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch; 0 for a clock set before it (a board
/// without a real-time clock before NTP sets it), never a panic.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_after_this_code_was_written_and_does_not_go_backwards() {
        let a = now_ms();
        let b = now_ms();
        // 2026-01-01T00:00:00Z
        assert!(a > 1_767_225_600_000, "{a}");
        assert!(b >= a);
    }
}
