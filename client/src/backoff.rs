//! Reconnect delays: exponential growth from `min` to `max`, with jitter.
//!
//! Jitter matters because a gateway restart disconnects every client at the same instant;
//! without it they would all come back in lockstep waves. The computation is a pure
//! function of its inputs (the random draw is a parameter) so it can be tested exactly.

use std::time::Duration;

/// Delay before reconnect attempt `attempt` (1-based).
///
/// The base doubles per attempt (`min`, `2·min`, `4·min`, ... capped at `max`); the result
/// is the base scaled by a factor in `[0.75, 1.25)` chosen by `jitter` (a uniform draw in
/// `[0, 1)`), then clamped to `[min, max]`. So attempt 1 waits about `min`, and once the
/// cap is reached delays spread over `[0.75·max, max]`.
pub fn backoff(attempt: u32, min: Duration, max: Duration, jitter: f64) -> Duration {
    let max = max.max(min);
    let exp = attempt.saturating_sub(1);
    let base = if exp >= 31 {
        max
    } else {
        min.saturating_mul(1u32 << exp).min(max)
    };
    let factor = 0.75 + 0.5 * jitter.clamp(0.0, 1.0);
    base.mul_f64(factor).clamp(min, max)
}

/// [`backoff`] with a fresh random draw.
pub(crate) fn backoff_random(attempt: u32, min: Duration, max: Duration) -> Duration {
    backoff(attempt, min, max, rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(60);

    #[test]
    fn stays_within_bounds() {
        for attempt in [0, 1, 2, 3, 5, 6, 7, 10, 31, 32, 33, 100, u32::MAX] {
            for j in [0.0, 0.1, 0.5, 0.9, 0.999_999, 1.0, -3.0, 7.0] {
                let d = backoff(attempt, MIN, MAX, j);
                assert!(d >= MIN && d <= MAX, "attempt {attempt} jitter {j}: {d:?}");
            }
        }
    }

    #[test]
    fn grows_exponentially() {
        let mid: Vec<Duration> = (1..=7).map(|a| backoff(a, MIN, MAX, 0.5)).collect();
        assert_eq!(mid[0], Duration::from_secs(1));
        assert_eq!(mid[1], Duration::from_secs(2));
        assert_eq!(mid[2], Duration::from_secs(4));
        assert_eq!(mid[3], Duration::from_secs(8));
        assert_eq!(mid[4], Duration::from_secs(16));
        assert_eq!(mid[5], Duration::from_secs(32));
        assert_eq!(mid[6], Duration::from_secs(60));
        assert!(mid.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn jitter_spreads_delays() {
        // Attempt 4: base 8 s, so delays cover [6 s, 10 s).
        assert_eq!(backoff(4, MIN, MAX, 0.0), Duration::from_secs(6));
        assert_eq!(backoff(4, MIN, MAX, 1.0), Duration::from_secs(10));
        let a = backoff(4, MIN, MAX, 0.2);
        let b = backoff(4, MIN, MAX, 0.8);
        assert!(a < b);
        // Random draws stay inside the range too.
        for _ in 0..1000 {
            let d = backoff_random(4, MIN, MAX);
            assert!(d >= Duration::from_secs(6) && d <= Duration::from_secs(10));
        }
    }

    #[test]
    fn cap_is_respected() {
        for attempt in 7..200 {
            assert!(backoff(attempt, MIN, MAX, 0.0) >= Duration::from_secs(45));
            assert_eq!(backoff(attempt, MIN, MAX, 1.0), MAX);
        }
        // A min above max is treated as max == min.
        assert_eq!(backoff(3, MAX, MIN, 0.5), MAX);
    }
}
