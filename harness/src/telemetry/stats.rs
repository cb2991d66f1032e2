//! Repetition statistics the way criterion and hyperfine report them:
//! median, min, max, MAD, mean, and outliers by Tukey's fences.

/// Summary of `n` repeated measurements.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Number of measurements.
    pub n: usize,
    /// Median.
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median absolute deviation from the median (unscaled).
    pub mad: f64,
    /// Outside `[Q1 - 1.5 IQR, Q3 + 1.5 IQR]` but inside the 3 IQR fences.
    pub mild_outliers: usize,
    /// Outside `[Q1 - 3 IQR, Q3 + 3 IQR]`.
    pub severe_outliers: usize,
}

/// The `p` quantile (0..=1) of sorted values, by linear interpolation.
fn quantile(sorted: &[f64], p: f64) -> f64 {
    let at = p * (sorted.len() - 1) as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo as f64)
}

/// Summarizes `values`; `None` when there are none.
pub fn summarize(values: &[f64]) -> Option<Summary> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = quantile(&sorted, 0.5);
    let mut deviations: Vec<f64> = sorted.iter().map(|v| (v - median).abs()).collect();
    deviations.sort_by(f64::total_cmp);
    let (q1, q3) = (quantile(&sorted, 0.25), quantile(&sorted, 0.75));
    let iqr = q3 - q1;
    let outside = |k: f64| {
        sorted
            .iter()
            .filter(|&&v| v < q1 - k * iqr || v > q3 + k * iqr)
            .count()
    };
    let severe = outside(3.0);
    Some(Summary {
        n: sorted.len(),
        median,
        min: sorted[0],
        max: sorted[sorted.len() - 1],
        mean: sorted.iter().sum::<f64>() / sorted.len() as f64,
        mad: quantile(&deviations, 0.5),
        mild_outliers: outside(1.5) - severe,
        severe_outliers: severe,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // Sorted: 1 2 3 4 100. Median 3; deviations 0 1 1 2 97 -> MAD 1;
        // Q1 2, Q3 4, IQR 2: 100 is past Q3 + 3 IQR = 10, a severe outlier.
        let s = summarize(&[4.0, 1.0, 100.0, 3.0, 2.0]).unwrap();
        assert_eq!(
            (s.n, s.median, s.min, s.max, s.mean, s.mad),
            (5, 3.0, 1.0, 100.0, 22.0, 1.0)
        );
        assert_eq!((s.mild_outliers, s.severe_outliers), (0, 1));
        // 1..=8 and 14: Q1 3, Q3 7, IQR 4; 14 is past 7 + 6 = 13 but not 7 + 12: mild.
        let s = summarize(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 14.0]).unwrap();
        assert_eq!((s.median, s.mild_outliers, s.severe_outliers), (5.0, 1, 0));
        // Identical counts (an emulator): no spread, no outliers.
        let s = summarize(&[7.0; 30]).unwrap();
        assert_eq!((s.mad, s.mild_outliers + s.severe_outliers), (0.0, 0));
        assert!(summarize(&[]).is_none());
    }
}
