//! Reconnection delays: capped exponential backoff with jitter.

use std::time::Duration;

use rand::Rng;

/// How the client reconnects after losing the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// The delay before the first reconnection attempt.
    pub initial_delay: Duration,
    /// No delay is ever longer than this.
    pub max_delay: Duration,
    /// Attempts before giving up (`None`: keep trying; a supervised guest
    /// comes back after a crash, and the client should find it again).
    pub max_attempts: Option<u32>,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            initial_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
            max_attempts: None,
        }
    }
}

impl ReconnectPolicy {
    /// The delay before attempt `attempt` (1-based): `initial × 2^(n-1)`,
    /// capped at `max_delay`, then drawn uniformly from its upper half so
    /// many clients of one restarted gateway do not reconnect in lockstep.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(20);
        let base = self
            .initial_delay
            .saturating_mul(1u32 << exponent)
            .min(self.max_delay);
        let half = base / 2;
        let half_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let jitter_nanos = rand::rng().random_range(0..=half_nanos);
        half + Duration::from_nanos(jitter_nanos)
    }

    /// Whether attempt `attempt` (1-based) may still be made.
    pub fn allows(&self, attempt: u32) -> bool {
        self.max_attempts.is_none_or(|max| attempt <= max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_within_the_cap() {
        let policy = ReconnectPolicy {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_attempts: Some(3),
        };
        for _ in 0..50 {
            let first = policy.delay(1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let third = policy.delay(3);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
            let late = policy.delay(30);
            assert!(late >= Duration::from_millis(500) && late <= Duration::from_secs(1));
        }
        assert!(policy.allows(3));
        assert!(!policy.allows(4));
        assert!(ReconnectPolicy::default().allows(u32::MAX));
    }
}
