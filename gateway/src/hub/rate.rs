//! Message-rate tracking for hot-room promotion: a ring of per-second counters.

/// Messages per second over the last `window` whole seconds.
#[derive(Debug, Clone)]
pub struct RateWindow {
    buckets: Vec<u32>,
    /// The second the newest bucket counts.
    head: u64,
}

impl RateWindow {
    pub fn new(window_secs: u64) -> Self {
        RateWindow {
            buckets: vec![0; window_secs.max(1) as usize],
            head: 0,
        }
    }

    fn advance(&mut self, now_sec: u64) {
        if now_sec <= self.head {
            return;
        }
        let n = self.buckets.len() as u64;
        let steps = (now_sec - self.head).min(n);
        for i in 1..=steps {
            let idx = ((self.head + i) % n) as usize;
            self.buckets[idx] = 0;
        }
        self.head = now_sec;
    }

    /// Count one message at `now_sec`.
    pub fn record(&mut self, now_sec: u64) {
        self.advance(now_sec);
        let n = self.buckets.len() as u64;
        let idx = (self.head % n) as usize;
        self.buckets[idx] = self.buckets[idx].saturating_add(1);
    }

    /// Average messages/s over the window ending at `now_sec`.
    pub fn rate(&mut self, now_sec: u64) -> f64 {
        self.advance(now_sec);
        let sum: u64 = self.buckets.iter().map(|&b| u64::from(b)).sum();
        sum as f64 / self.buckets.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_and_forgets() {
        let mut w = RateWindow::new(10);
        for s in 0..10 {
            for _ in 0..50 {
                w.record(s);
            }
        }
        assert_eq!(w.rate(9), 50.0);
        assert_eq!(w.rate(14), 25.0, "half the window has passed");
        assert_eq!(w.rate(100), 0.0, "all of it has passed");
        w.record(100);
        assert_eq!(w.rate(100), 0.1);
    }
}
