//! Early-exit decisions: a confidence measure over a head's logits and a
//! threshold that is a run-time value, so a threshold sweep never rebuilds.

use serde::{Deserialize, Serialize};

/// How confident a head is in its prediction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Confidence {
    /// Largest softmax probability (T-RECX, ZTW); exit when `> threshold`.
    MaxSoftmax,
    /// Shannon entropy of the softmax, in nats (BranchyNet); exit when `< threshold`.
    Entropy,
    /// Difference of the two largest softmax probabilities; exit when `> threshold`.
    Margin,
}

impl Confidence {
    /// The measure's name, as suites write it.
    pub fn name(self) -> &'static str {
        match self {
            Confidence::MaxSoftmax => "max-softmax",
            Confidence::Entropy => "entropy",
            Confidence::Margin => "margin",
        }
    }

    /// The range a threshold of this measure is meaningful in, for `classes` outputs.
    pub fn threshold_range(self, classes: usize) -> (f32, f32) {
        match self {
            Confidence::MaxSoftmax | Confidence::Margin => (0.0, 1.0),
            Confidence::Entropy => (0.0, libm::logf(classes.max(1) as f32)),
        }
    }

    /// Whether a head with confidence `score` exits at `threshold`. The
    /// comparison is strict, so the ends of the range mean "always" and
    /// "never": max-softmax 0 exits every input (a probability is > 0), 1
    /// none (even a probability that rounds to 1.0); entropy 0 none.
    pub fn exits(self, score: f32, threshold: f32) -> bool {
        match self {
            Confidence::MaxSoftmax | Confidence::Margin => score > threshold,
            Confidence::Entropy => score < threshold,
        }
    }

    /// A threshold at which every head of this measure exits.
    pub fn always(self) -> f32 {
        match self {
            Confidence::MaxSoftmax | Confidence::Margin => f32::NEG_INFINITY,
            Confidence::Entropy => f32::INFINITY,
        }
    }

    /// A threshold at which no head exits (every comparison with NaN is false).
    pub const NEVER: f32 = f32::NAN;

    /// The confidence of a head with the given logits. Computed in two passes
    /// over the logits with no buffer: `p_i = e_i / S` with `e_i = exp(l_i - max)`.
    pub fn score(self, logits: impl Iterator<Item = f32> + Clone) -> f32 {
        let (max, second) =
            logits
                .clone()
                .fold((f32::NEG_INFINITY, f32::NEG_INFINITY), |(a, b), l| {
                    if l > a {
                        (l, a)
                    } else {
                        (a, b.max(l))
                    }
                });
        if max == f32::NEG_INFINITY {
            return 0.0;
        }
        let sum: f32 = logits.clone().map(|l| libm::expf(l - max)).sum();
        match self {
            Confidence::MaxSoftmax => 1.0 / sum,
            Confidence::Margin => (1.0 - libm::expf(second - max)) / sum,
            Confidence::Entropy => {
                // H = -sum p ln p = ln S - sum e_i (l_i - max) / S
                let weighted: f32 = logits.map(|l| libm::expf(l - max) * (l - max)).sum();
                (libm::logf(sum) - weighted / sum).max(0.0)
            }
        }
    }

    /// The confidence of int8 logits with the given quantization.
    pub fn score_i8(self, logits: &[i8], scale: f32, zero_point: i32) -> f32 {
        self.score(
            logits
                .iter()
                .map(|&q| scale * (q as i32 - zero_point) as f32),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_on_known_logits() {
        // Uniform over 4 classes: p = 1/4, entropy ln 4, margin 0.
        let uniform = [2.0f32; 4];
        assert!((Confidence::MaxSoftmax.score(uniform.iter().copied()) - 0.25).abs() < 1e-6);
        assert!(
            (Confidence::Entropy.score(uniform.iter().copied()) - libm::logf(4.0)).abs() < 1e-6
        );
        assert!(Confidence::Margin.score(uniform.iter().copied()).abs() < 1e-6);
        // logits [ln 3, 0]: p = [0.75, 0.25]; margin 0.5; H = -(.75 ln .75 + .25 ln .25).
        let two = [libm::logf(3.0), 0.0];
        assert!((Confidence::MaxSoftmax.score(two.iter().copied()) - 0.75).abs() < 1e-6);
        assert!((Confidence::Margin.score(two.iter().copied()) - 0.5).abs() < 1e-6);
        let h = -(0.75f32 * libm::logf(0.75) + 0.25 * libm::logf(0.25));
        assert!((Confidence::Entropy.score(two.iter().copied()) - h).abs() < 1e-6);
        // int8 logits dequantize first: q = [10, -10], scale 0.1, zp 0 -> [1, -1].
        let p = 1.0 / (1.0 + libm::expf(-2.0));
        assert!((Confidence::MaxSoftmax.score_i8(&[10, -10], 0.1, 0) - p).abs() < 1e-6);
    }

    #[test]
    fn exit_direction_per_measure() {
        assert!(Confidence::MaxSoftmax.exits(0.9, 0.8));
        assert!(!Confidence::MaxSoftmax.exits(0.7, 0.8));
        assert!(Confidence::Entropy.exits(0.1, 0.2));
        assert!(!Confidence::Entropy.exits(0.3, 0.2));
        assert!(!Confidence::Margin.exits(0.5, 0.5));
        // The ends of the range: a probability of exactly 1.0 does not pass 1.0; everything passes "always"; nothing passes NEVER.
        assert!(Confidence::MaxSoftmax.exits(0.1, 0.0) && !Confidence::MaxSoftmax.exits(1.0, 1.0));
        assert!(!Confidence::Entropy.exits(0.0, 0.0));
        for m in [
            Confidence::MaxSoftmax,
            Confidence::Entropy,
            Confidence::Margin,
        ] {
            assert!(m.exits(0.0, m.always()) && m.exits(1.0, m.always()));
            assert!(!m.exits(0.0, Confidence::NEVER) && !m.exits(1.0, Confidence::NEVER));
        }
    }
}
