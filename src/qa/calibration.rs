//! Scores that mean something: the probability that an answer is right, comparable across
//! passages, requests and models. A span's own softmax (over the top-20 spans of its
//! passage) says nothing across passages: every passage, even one without the answer, hands
//! out a total of 1. Instead two numbers the model gives every span, its logit sum
//! (start + end) and its margin over the `[CLS]` null score, go through Platt scaling (a
//! logistic regression with three parameters) fitted on held-out questions, their own
//! passages and distractors, against exact match. Three parameters cannot overfit a few
//! thousand questions, and a monotone map keeps every passage's own ranking of its spans.

use serde::{Deserialize, Serialize};

/// Newton steps of the fit (it converges in well under ten on real data).
const NEWTON_STEPS: usize = 50;

/// L2 penalty on the two weights, which keeps the fit finite on separable data.
const RIDGE: f64 = 1e-3;

/// Platt scaling of a span: `sigmoid(span_weight·s + margin_weight·(s − null) + bias)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScoreCalibration {
    /// Weight of the span's logit sum (start + end).
    pub span_weight: f32,
    /// Weight of the span's margin over its passage's null (`[CLS]`) score.
    pub margin_weight: f32,
    /// Intercept.
    pub bias: f32,
}

impl ScoreCalibration {
    /// The probability that a span of logit sum `span_score`, in a passage whose null score
    /// is `null_score`, is the right answer.
    pub fn probability(&self, span_score: f32, null_score: f32) -> f32 {
        let margin = span_score - null_score;
        let z = self.span_weight * span_score + self.margin_weight * margin + self.bias;
        if z.is_finite() {
            1.0 / (1.0 + (-z).exp())
        } else {
            0.0
        }
    }

    /// Fits the three parameters by Newton's method on the log loss (a small ridge on the
    /// weights keeps separable data finite). `None` when there is nothing to learn from:
    /// no sample, or all of one kind.
    pub fn fit(samples: &[CalibrationSample]) -> Option<Self> {
        let positives = samples.iter().filter(|s| s.correct).count();
        if positives == 0 || positives == samples.len() {
            return None;
        }
        let rows: Vec<([f64; 3], f64)> = samples
            .iter()
            .filter(|s| s.span_score.is_finite() && s.null_score.is_finite())
            .map(|s| {
                let (span, null) = (f64::from(s.span_score), f64::from(s.null_score));
                ([span, span - null, 1.0], f64::from(u8::from(s.correct)))
            })
            .collect();
        let mut theta = [0.0f64; 3];
        for _ in 0..NEWTON_STEPS {
            let (gradient, hessian) = log_loss_derivatives(&rows, &theta);
            let step = solve3(hessian, gradient)?;
            for (t, d) in theta.iter_mut().zip(step) {
                *t -= d;
            }
            if step.iter().all(|d| d.abs() < 1e-9) {
                break;
            }
        }
        Some(Self {
            span_weight: theta[0] as f32,
            margin_weight: theta[1] as f32,
            bias: theta[2] as f32,
        })
    }
}

/// One best span seen while fitting: its two logits and whether it was an exact match.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CalibrationSample {
    /// The span's logit sum.
    pub span_score: f32,
    /// Its passage's null score.
    pub null_score: f32,
    /// Whether the span's text is an exact match of a gold answer.
    pub correct: bool,
}

/// Gradient and Hessian of the mean log loss (plus the ridge) at `theta`.
fn log_loss_derivatives(rows: &[([f64; 3], f64)], theta: &[f64; 3]) -> ([f64; 3], [[f64; 3]; 3]) {
    let n = rows.len().max(1) as f64;
    let mut gradient = [0.0; 3];
    let mut hessian = [[0.0; 3]; 3];
    for (x, y) in rows {
        let z: f64 = x.iter().zip(theta).map(|(a, b)| a * b).sum();
        let p = 1.0 / (1.0 + (-z).exp());
        for i in 0..3 {
            gradient[i] += (p - y) * x[i] / n;
            for j in 0..3 {
                hessian[i][j] += p * (1.0 - p) * x[i] * x[j] / n;
            }
        }
    }
    for i in 0..2 {
        gradient[i] += RIDGE * theta[i];
        hessian[i][i] += RIDGE;
    }
    (gradient, hessian)
}

/// Solves `a·x = b` for 3×3 `a` by Cramer's rule; `None` when `a` is singular.
fn solve3(a: [[f64; 3]; 3], b: [f64; 3]) -> Option<[f64; 3]> {
    let det = |m: &[[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let d = det(&a);
    if d.abs() < 1e-300 || !d.is_finite() {
        return None;
    }
    let mut x = [0.0; 3];
    for (col, value) in x.iter_mut().enumerate() {
        let mut m = a;
        for row in 0..3 {
            m[row][col] = b[row];
        }
        *value = det(&m) / d;
    }
    Some(x)
}

/// Expected calibration error over `bins` equal-width probability bins: the mean, weighted by
/// bin size, of |accuracy − mean probability| (the usual ECE, here against exact match).
pub fn expected_calibration_error(predictions: &[(f32, bool)], bins: usize) -> f64 {
    let bins = bins.max(1);
    let mut count = vec![0usize; bins];
    let mut confidence = vec![0.0f64; bins];
    let mut correct = vec![0usize; bins];
    for &(p, right) in predictions {
        let p = f64::from(p.clamp(0.0, 1.0));
        let bin = ((p * bins as f64) as usize).min(bins - 1);
        count[bin] += 1;
        confidence[bin] += p;
        correct[bin] += usize::from(right);
    }
    let total = predictions.len().max(1) as f64;
    (0..bins)
        .filter(|&b| count[b] > 0)
        .map(|b| {
            let n = count[b] as f64;
            (correct[b] as f64 / n - confidence[b] / n).abs() * n / total
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fit_recovers_a_known_logistic_model() {
        // Labels drawn from sigmoid(0.5·s + 0.25·(s − null) − 4) over a grid of logits.
        let truth = ScoreCalibration {
            span_weight: 0.5,
            margin_weight: 0.25,
            bias: -4.0,
        };
        let mut samples = vec![];
        let mut state = 1u64;
        for i in 0..20_000 {
            let span = (i % 200) as f32 / 10.0;
            let null = ((i / 200) % 50) as f32 / 5.0;
            state = crate::qa::random::splitmix64_at(state, 0);
            let u = (state >> 11) as f32 / (1u64 << 53) as f32;
            samples.push(CalibrationSample {
                span_score: span,
                null_score: null,
                correct: u < truth.probability(span, null),
            });
        }
        let fit = ScoreCalibration::fit(&samples).unwrap();
        assert!((fit.span_weight - 0.5).abs() < 0.06, "{fit:?}");
        assert!((fit.margin_weight - 0.25).abs() < 0.06, "{fit:?}");
        assert!((fit.bias + 4.0).abs() < 0.4, "{fit:?}");
        let scored: Vec<(f32, bool)> = samples
            .iter()
            .map(|s| (fit.probability(s.span_score, s.null_score), s.correct))
            .collect();
        assert!(expected_calibration_error(&scored, 10) < 0.02);
    }

    #[test]
    fn one_kind_of_label_cannot_be_fitted() {
        let sample = CalibrationSample {
            span_score: 1.0,
            null_score: 0.0,
            correct: true,
        };
        assert_eq!(ScoreCalibration::fit(&[sample, sample]), None);
        assert_eq!(ScoreCalibration::fit(&[]), None);
    }

    #[test]
    fn ece_is_the_weighted_gap_between_confidence_and_accuracy() {
        // Bin 0.9-1.0: confidence 0.95, accuracy 0.5; bin 0.1-0.2: 0.15 vs 0.
        let predictions = [(0.95, true), (0.95, false), (0.15, false), (0.15, false)];
        let ece = expected_calibration_error(&predictions, 10);
        assert!((ece - (0.45 * 0.5 + 0.15 * 0.5)).abs() < 1e-6, "{ece}");
        assert_eq!(expected_calibration_error(&[(1.0, true)], 10), 0.0);
    }
}
