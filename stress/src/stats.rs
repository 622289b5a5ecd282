//! Median and p99 of per-call latencies.
//!
//! Percentiles use the *nearest-rank* definition: the p-th percentile of `n` sorted samples is
//! the sample at rank `ceil(p/100 * n)` (1-based). It is always one of the measured values, never
//! an interpolation, and the median of an even count is the lower middle sample.

use std::time::Duration;

/// Summary of one scenario's samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Number of samples.
    pub count: usize,
    /// Fastest call.
    pub min: Duration,
    /// 50th percentile (nearest rank).
    pub median: Duration,
    /// 99th percentile (nearest rank).
    pub p99: Duration,
    /// Slowest call.
    pub max: Duration,
}

/// Sorts `samples` in place and summarizes them; `None` if there are none.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let mut samples: Vec<Duration> = (1..=100).rev().map(Duration::from_micros).collect();
/// let s = stress::stats::summarize(&mut samples).expect("not empty");
/// assert_eq!(s.median, Duration::from_micros(50));
/// assert_eq!(s.p99, Duration::from_micros(99));
/// ```
pub fn summarize(samples: &mut [Duration]) -> Option<Summary> {
    samples.sort_unstable();
    Some(Summary {
        count: samples.len(),
        min: *samples.first()?,
        median: percentile(samples, 50)?,
        p99: percentile(samples, 99)?,
        max: *samples.last()?,
    })
}

/// The `pct`-th percentile (nearest rank) of `sorted`, which must be sorted ascending; `None` if
/// it is empty. `pct` above 100 is taken as 100.
///
/// # Examples
///
/// ```
/// use stress::stats::percentile;
///
/// assert_eq!(percentile(&[10, 20, 30, 40], 50), Some(20));
/// assert_eq!(percentile(&[10, 20, 30, 40], 99), Some(40));
/// assert_eq!(percentile::<u32>(&[], 50), None);
/// ```
pub fn percentile<T: Copy>(sorted: &[T], pct: u32) -> Option<T> {
    let n = sorted.len();
    let pct = usize::try_from(pct.min(100)).ok()?;
    // Integer arithmetic: `ceil(pct * n / 100)`, at least rank 1.
    let rank = (pct * n).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn one_to_hundred() {
        // Shuffled deterministically: summarize must sort.
        let mut samples: Vec<Duration> = (0..100u64).map(|i| us((i * 37) % 100 + 1)).collect();
        let s = summarize(&mut samples).expect("not empty");
        assert_eq!(s.count, 100);
        assert_eq!(s.min, us(1));
        assert_eq!(s.median, us(50));
        assert_eq!(s.p99, us(99));
        assert_eq!(s.max, us(100));
    }

    #[test]
    fn odd_count_median_is_the_middle() {
        assert_eq!(percentile(&[1, 2, 3, 4, 5], 50), Some(3));
    }

    #[test]
    fn even_count_median_is_the_lower_middle() {
        assert_eq!(percentile(&[1, 2, 3, 4], 50), Some(2));
    }

    #[test]
    fn p99_of_a_thousand_skips_the_ten_slowest() {
        let sorted: Vec<u32> = (1..=1000).collect();
        assert_eq!(percentile(&sorted, 99), Some(990));
    }

    #[test]
    fn p99_is_the_outlier_when_few_samples() {
        // With 20 samples, rank ceil(19.8) = 20: the single slow call is the p99.
        let mut sorted = vec![5u32; 19];
        sorted.push(900);
        assert_eq!(percentile(&sorted, 99), Some(900));
        assert_eq!(percentile(&sorted, 50), Some(5));
    }

    #[test]
    fn single_sample_is_every_percentile() {
        for pct in [0, 1, 50, 99, 100, 250] {
            assert_eq!(percentile(&[7], pct), Some(7));
        }
    }

    #[test]
    fn empty_has_no_summary() {
        assert_eq!(summarize(&mut []), None);
    }
}
