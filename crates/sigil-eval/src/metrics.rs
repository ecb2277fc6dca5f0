//! Threshold selection and rates: the threshold of a method is the largest
//! distance that keeps precision >= the target (99.99%) over all
//! original-vs-copy pairs (positives) and all distinct-image pairs
//! (negatives), as in Thorn's perception benchmark.

/// Counts and rates at one threshold (a pair matches when distance <= t).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct OperatingPoint {
    pub threshold: f32,
    pub true_positives: u64,
    pub false_positives: u64,
    pub positives: u64,
    pub negatives: u64,
}

impl OperatingPoint {
    pub fn recall(&self) -> f64 {
        if self.positives == 0 {
            0.0
        } else {
            self.true_positives as f64 / self.positives as f64
        }
    }
    pub fn precision(&self) -> f64 {
        let m = self.true_positives + self.false_positives;
        if m == 0 {
            1.0
        } else {
            self.true_positives as f64 / m as f64
        }
    }
    /// False positives per million distinct-image comparisons.
    pub fn fp_per_million(&self) -> f64 {
        if self.negatives == 0 {
            0.0
        } else {
            self.false_positives as f64 * 1e6 / self.negatives as f64
        }
    }
}

/// Sorted distances of one method: matches (positives) and non-matches.
#[derive(Clone, Debug, Default)]
pub struct Scores {
    pub pos: Vec<f32>,
    pub neg: Vec<f32>,
}

impl Scores {
    /// Sorts both lists (NaN never occurs: distances are finite).
    pub fn new(mut pos: Vec<f32>, mut neg: Vec<f32>) -> Self {
        pos.sort_by(f32::total_cmp);
        neg.sort_by(f32::total_cmp);
        Scores { pos, neg }
    }

    fn count_le(v: &[f32], t: f32) -> u64 {
        v.partition_point(|&x| x <= t) as u64
    }

    /// The operating point at threshold `t`.
    pub fn at(&self, t: f32) -> OperatingPoint {
        OperatingPoint {
            threshold: t,
            true_positives: Self::count_le(&self.pos, t),
            false_positives: Self::count_le(&self.neg, t),
            positives: self.pos.len() as u64,
            negatives: self.neg.len() as u64,
        }
    }

    /// The largest threshold keeping precision >= `target`; `None` when
    /// even the smallest positive distance is beaten by too many negatives.
    /// Only positive distances are candidates: between two of them recall
    /// is constant and false positives can only grow.
    pub fn threshold_at_precision(&self, target: f64) -> Option<OperatingPoint> {
        let mut best = None;
        let mut i = 0;
        while i < self.pos.len() {
            let t = self.pos[i];
            // Skip to the last positive equal to t.
            while i + 1 < self.pos.len() && self.pos[i + 1] == t {
                i += 1;
            }
            let op = self.at(t);
            if op.precision() >= target {
                best = Some(op);
            }
            i += 1;
        }
        best
    }

    /// (false-positive rate, recall) pairs for a ROC curve, at most `max`
    /// points, thresholds taken from the positive distances.
    pub fn roc(&self, max: usize) -> Vec<(f64, f64)> {
        let mut ts: Vec<f32> = self.pos.clone();
        ts.dedup();
        let step = (ts.len() / max.max(1)).max(1);
        let mut out: Vec<(f64, f64)> = ts
            .iter()
            .step_by(step)
            .chain(ts.last())
            .map(|&t| {
                let op = self.at(t);
                (
                    op.false_positives as f64 / op.negatives.max(1) as f64,
                    op.recall(),
                )
            })
            .collect();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_stops_before_the_first_costly_negative() {
        // 10 positives at 0..9, one negative at 5: with 10 positives, any
        // false positive breaks 99.99% precision, so t = 4.
        let s = Scores::new((0..10).map(|v| v as f32).collect(), vec![5.0, 50.0, 60.0]);
        let op = s.threshold_at_precision(0.9999).unwrap();
        assert_eq!(op.threshold, 4.0);
        assert_eq!(op.true_positives, 5);
        assert_eq!(op.false_positives, 0);
        assert!((op.recall() - 0.5).abs() < 1e-12);
        // A looser target accepts the negative.
        let op = s.threshold_at_precision(0.8).unwrap();
        assert_eq!(op.threshold, 9.0);
        assert_eq!(op.false_positives, 1);
        assert!((op.fp_per_million() - 1e6 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn no_threshold_when_negatives_sit_below_all_positives() {
        let s = Scores::new(vec![10.0, 11.0], vec![0.0, 1.0, 2.0]);
        assert!(s.threshold_at_precision(0.9999).is_none());
    }

    #[test]
    fn roc_is_monotone() {
        let s = Scores::new(
            (0..100).map(|v| v as f32).collect(),
            (20..300).map(|v| v as f32).collect(),
        );
        let r = s.roc(20);
        assert!(r.len() >= 2);
        for w in r.windows(2) {
            assert!(w[1].0 >= w[0].0 && w[1].1 >= w[0].1);
        }
        assert_eq!(r.last().unwrap().1, 1.0);
    }
}
