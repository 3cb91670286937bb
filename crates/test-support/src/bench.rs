//! Pieces every benchmark harness (`harness = false`) shares: whether this
//! is a measuring run or `cargo test`'s smoke pass, percentiles, and a
//! timing loop with warm-up.

use std::future::Future;
use std::time::{Duration, Instant};

/// `cargo bench` passes `--bench`; `cargo test` runs the harness without it
/// and expects only a quick smoke pass.
pub fn full_run() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

/// The value at quantile `q` (0.0–1.0) of `sorted` (nearest rank).
/// Panics on an empty slice: a benchmark without samples is a bug.
pub fn percentile<T: Copy>(sorted: &[T], q: f64) -> T {
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Median, 99th percentile and mean of a set of timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    pub p50: Duration,
    pub p99: Duration,
    pub mean: Duration,
}

impl Timings {
    pub fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        let count = u32::try_from(samples.len()).unwrap_or(u32::MAX).max(1);
        Self {
            p50: percentile(&samples, 0.50),
            p99: percentile(&samples, 0.99),
            mean: samples.iter().sum::<Duration>() / count,
        }
    }
}

/// Times `calls` calls of `call` after `calls / 10` untimed warm-up calls;
/// `check` sees every output (a wrong answer must fail the benchmark, not
/// be timed).
pub async fn time_calls<T, Fut>(
    calls: usize,
    mut call: impl FnMut() -> Fut,
    mut check: impl FnMut(&T),
) -> Timings
where
    Fut: Future<Output = T>,
{
    let warm_up = calls / 10;
    let mut samples = Vec::with_capacity(calls);
    for i in 0..calls + warm_up {
        let start = Instant::now();
        let output = std::hint::black_box(call().await);
        let took = start.elapsed();
        check(&output);
        if i >= warm_up {
            samples.push(took);
        }
    }
    Timings::of(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let sorted: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&sorted, 0.5), 51);
        assert_eq!(percentile(&sorted, 0.99), 99);
        assert_eq!(percentile(&sorted, 1.0), 100);
        assert_eq!(percentile(&[7], 0.99), 7);
        let timings = Timings::of(vec![
            Duration::from_millis(3),
            Duration::from_millis(1),
            Duration::from_millis(2),
        ]);
        assert_eq!(timings.p50, Duration::from_millis(2));
        assert_eq!(timings.mean, Duration::from_millis(2));
    }

    #[tokio::test]
    async fn time_calls_skips_the_warm_up_and_checks_every_output() {
        let mut made = 0;
        let mut checked = 0;
        let timings = time_calls(
            20,
            || {
                made += 1;
                async { 42 }
            },
            |out: &i32| {
                assert_eq!(*out, 42);
                checked += 1;
            },
        )
        .await;
        assert_eq!((made, checked), (22, 22));
        assert!(timings.p50 <= timings.p99);
    }
}
