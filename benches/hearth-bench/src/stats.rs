//! Percentiles over latency samples.

use std::time::Duration;

/// Latency samples in milliseconds.
#[derive(Debug, Default, Clone)]
pub(crate) struct Samples {
    ms: Vec<f64>,
}

impl Samples {
    pub(crate) fn push(&mut self, d: Duration) {
        self.ms.push(d.as_secs_f64() * 1000.0);
    }

    pub(crate) fn push_ms(&mut self, ms: f64) {
        self.ms.push(ms);
    }

    pub(crate) fn extend(&mut self, other: Samples) {
        self.ms.extend(other.ms);
    }

    pub(crate) fn len(&self) -> usize {
        self.ms.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ms.is_empty()
    }

    /// Nearest-rank percentile (`p` in 0..=100); `None` without samples.
    pub(crate) fn percentile(&self, p: f64) -> Option<f64> {
        if self.ms.is_empty() {
            return None;
        }
        let mut sorted = self.ms.clone();
        sorted.sort_by(f64::total_cmp);
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        Some(sorted[rank.clamp(1, sorted.len()) - 1])
    }

    pub(crate) fn median(&self) -> Option<f64> {
        self.percentile(50.0)
    }

    pub(crate) fn max(&self) -> Option<f64> {
        self.ms.iter().copied().max_by(f64::total_cmp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut s = Samples::default();
        assert_eq!(s.median(), None);
        for v in 1..=100 {
            s.push_ms(f64::from(v));
        }
        assert_eq!(s.percentile(50.0), Some(50.0));
        assert_eq!(s.percentile(95.0), Some(95.0));
        assert_eq!(s.percentile(99.0), Some(99.0));
        assert_eq!(s.percentile(100.0), Some(100.0));
        assert_eq!(s.percentile(0.0), Some(1.0));
        assert_eq!(s.max(), Some(100.0));
    }

    #[test]
    fn single_sample_is_every_percentile() {
        let mut s = Samples::default();
        s.push(Duration::from_millis(7));
        assert_eq!(s.percentile(1.0), Some(7.0));
        assert_eq!(s.percentile(99.0), Some(7.0));
    }
}
