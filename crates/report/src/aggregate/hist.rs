//! Message sizes in constant memory: exact count, min, max and sum; the median from
//! logarithmic buckets 1/32 octave wide (about 2% apart).

use crate::report::SizeStats;

const PER_OCTAVE: f64 = 32.0;

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

fn bucket(size: u64) -> usize {
    if size == 0 {
        return 0;
    }
    ((size as f64).log2() * PER_OCTAVE) as usize + 1
}

fn lower(b: usize) -> u64 {
    if b == 0 {
        return 0;
    }
    2f64.powf((b - 1) as f64 / PER_OCTAVE).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

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
