//! Message sizes in constant memory: exact count, min, max and sum; the median from
//! buckets that split each power of two into 32 equal steps (1.6-3.1% apart), found
//! with integer arithmetic (this runs for every message).

use crate::report::SizeStats;

/// Steps per power of two (a power of two itself: the step is read off the bits).
const STEPS_LOG2: u32 = 5;
const STEPS: usize = 1 << STEPS_LOG2;

/// A size histogram.
#[derive(Debug, Clone, Default)]
pub(super) struct Sizes {
    count: u64,
    min: u64,
    max: u64,
    sum: u128,
    buckets: Vec<u64>,
}

impl Sizes {
    /// Records one size.
    pub(super) fn add(&mut self, size: u64) {
        if self.count == 0 || size < self.min {
            self.min = size;
        }
        self.max = self.max.max(size);
        self.count += 1;
        self.sum += u128::from(size);
        let b = bucket(size);
        if self.buckets.len() <= b {
            self.buckets.resize(b + 1, 0);
        }
        self.buckets[b] += 1;
    }

    /// The summary.
    pub(super) fn stats(&self) -> SizeStats {
        if self.count == 0 {
            return SizeStats::default();
        }
        let half = self.count.div_ceil(2);
        let mut seen = 0;
        let mut median = self.max;
        for (b, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= half {
                median = lower(b).clamp(self.min, self.max);
                break;
            }
        }
        SizeStats {
            count: self.count,
            min: self.min,
            max: self.max,
            median,
            average: self.sum as f64 / self.count as f64,
        }
    }
}

impl Sizes {
    /// Counts per power-of-two size class (`upto` bytes), for charts.
    pub(super) fn classes(&self) -> Vec<crate::report::SizeClass> {
        let mut out: Vec<crate::report::SizeClass> = Vec::new();
        for (b, n) in self.buckets.iter().enumerate() {
            if *n == 0 {
                continue;
            }
            let upto = lower(b + 1).max(1).next_power_of_two();
            match out.last_mut() {
                Some(last) if last.upto == upto => last.count += n,
                _ => out.push(crate::report::SizeClass { upto, count: *n }),
            }
        }
        out
    }
}

/// Bucket 0 holds 0; sizes below 32 have one bucket each; above, bucket `32 * e + s`
/// holds the step `s` of the power of two `2^(e + 4)`.
fn bucket(size: u64) -> usize {
    if size < STEPS as u64 {
        return size as usize;
    }
    let e = 63 - size.leading_zeros(); // >= STEPS_LOG2
    let step = (size >> (e - STEPS_LOG2)) as usize & (STEPS - 1);
    STEPS * (e - STEPS_LOG2 + 1) as usize + step
}

/// The smallest size of bucket `b`.
fn lower(b: usize) -> u64 {
    if b < STEPS {
        return b as u64;
    }
    let e = (b / STEPS) as u32 - 1 + STEPS_LOG2;
    let step = (b % STEPS) as u64;
    (1u64 << e) + (step << (e - STEPS_LOG2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_their_lower_bounds() {
        let mut last = 0;
        for size in (0..5000u64).chain([1 << 20, (1 << 20) + 1, u64::MAX / 3, u64::MAX]) {
            let b = bucket(size);
            let top = b == bucket(u64::MAX);
            assert!(lower(b) <= size && (top || size < lower(b + 1)), "{size}");
            assert!(b >= last || size > 5000);
            last = b;
        }
    }

    #[test]
    fn exact_extremes_close_median() {
        let mut s = Sizes::default();
        for v in [100, 200, 3000, 4000, 50_000] {
            s.add(v);
        }
        let st = s.stats();
        assert_eq!((st.count, st.min, st.max), (5, 100, 50_000));
        assert!(
            (st.median as f64 - 3000.0).abs() / 3000.0 < 0.03,
            "{}",
            st.median
        );
        assert!((st.average - 11460.0).abs() < 0.01);
    }
}
