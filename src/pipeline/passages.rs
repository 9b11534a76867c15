//! Questions over many passages, for whole datasets: each question's own paragraph hidden
//! among distractors, every passage decoded through the one prediction path, then read
//! across passages by [`crate::qa::reader`] as `/answer` reads them. `bertqa calibrate` fits
//! scores on such readings and `bertqa evaluate-passages` measures them.

use std::sync::Arc;

use crate::qa::calibration::{expected_calibration_error, CalibrationSample, ScoreCalibration};
use crate::qa::decode::Prediction;
use crate::qa::reader::{read, ReaderConfig, Scoring};
use crate::qa::squad::metrics::{exact_match, f1_v1, max_over};
use crate::qa::squad::passages::Passages;
use crate::qa::squad::Example;

/// A question with its passages, its own among them.
#[derive(Debug, Clone)]
pub struct PassageSet {
    /// The passages, in the order the reader sees them.
    pub passages: Vec<Arc<str>>,
    /// Which one is the question's own paragraph.
    pub own: usize,
}

/// `n` passages for each example: its own and `n − 1` distractors from `pool`, drawn from
/// `seed` and the example's position (the same sets on every run).
pub fn distractor_sets(
    examples: &[Example],
    pool: &Passages,
    n: usize,
    seed: u64,
) -> Vec<PassageSet> {
    examples
        .iter()
        .enumerate()
        .map(|(i, example)| {
            let draw = crate::qa::random::splitmix64_at(seed, i as u64);
            let (passages, own) = pool.with_distractors(example, n.max(1), draw);
            PassageSet { passages, own }
        })
        .collect()
}

/// Each question once per passage of its set, as plain examples for the one prediction path.
pub fn passage_examples(examples: &[Example], sets: &[PassageSet]) -> Vec<Example> {
    examples
        .iter()
        .zip(sets)
        .flat_map(|(example, set)| {
            set.passages.iter().map(|passage| Example {
                context: Arc::clone(passage),
                ..example.clone()
            })
        })
        .collect()
}

/// The predictions of [`passage_examples`] grouped back by question: `result[q][p]` is
/// question `q` on passage `p`.
pub fn per_question(predictions: Vec<Prediction>, sets: &[PassageSet]) -> Vec<Vec<Prediction>> {
    let mut flat = predictions.into_iter();
    sets.iter()
        .map(|set| flat.by_ref().take(set.passages.len()).collect())
        .collect()
}

/// The best span of every passage as a calibration sample, right when it matches a gold
/// answer exactly (distractors hold none of them, so theirs are wrong).
pub fn calibration_samples(
    examples: &[Example],
    predictions: &[Vec<Prediction>],
) -> Vec<CalibrationSample> {
    examples
        .iter()
        .zip(predictions)
        .flat_map(|(example, passages)| {
            passages.iter().filter_map(move |prediction| {
                prediction.answers.first().map(|best| CalibrationSample {
                    span_score: best.score,
                    null_score: prediction.null_score,
                    correct: best_exact(example, &best.text) > 0.0,
                })
            })
        })
        .collect()
}

/// Top-1 quality of reading each question's passages under one scoring.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ReadingScores {
    /// Questions read.
    pub questions: usize,
    /// Exact match of the answer given, 0 to 100.
    pub exact: f64,
    /// Token F1 of the answer given, 0 to 100.
    pub f1: f64,
    /// Share of answers taken from the question's own passage, 0 to 100.
    pub own_passage: f64,
    /// Expected calibration error (10 bins, against exact match) of the answers' scores.
    pub ece: f64,
}

/// Reads every question under `scoring` (v1.1 rules: always an answer) and scores it.
pub fn score_readings(
    examples: &[Example],
    sets: &[PassageSet],
    predictions: &[Vec<Prediction>],
    scoring: Scoring,
) -> ReadingScores {
    let config = ReaderConfig {
        scoring,
        null_threshold: None,
        min_score: None,
        top_k: 1,
    };
    let (mut exact, mut f1, mut own) = (0.0, 0.0, 0usize);
    let mut scored: Vec<(f32, bool)> = Vec::with_capacity(examples.len());
    for ((example, set), passages) in examples.iter().zip(sets).zip(predictions) {
        let reading = read(passages, &config);
        let Some(best) = reading.best() else {
            scored.push((0.0, false));
            continue;
        };
        let em = best_exact(example, &best.answer.text);
        exact += em;
        f1 += max_over(golds(example), |g| f1_v1(&best.answer.text, g));
        own += usize::from(best.passage == set.own);
        scored.push((best.score, em > 0.0));
    }
    let n = examples.len().max(1) as f64;
    ReadingScores {
        questions: examples.len(),
        exact: 100.0 * exact / n,
        f1: 100.0 * f1 / n,
        own_passage: 100.0 * own as f64 / n,
        ece: expected_calibration_error(&scored, 10),
    }
}

/// Fits a calibration on readings; `None` when the samples are all right or all wrong.
pub fn fit_calibration(
    examples: &[Example],
    predictions: &[Vec<Prediction>],
) -> Option<(ScoreCalibration, usize)> {
    let samples = calibration_samples(examples, predictions);
    ScoreCalibration::fit(&samples).map(|c| (c, samples.len()))
}

fn best_exact(example: &Example, text: &str) -> f64 {
    max_over(golds(example), |g| exact_match(text, g))
}

fn golds(example: &Example) -> impl Iterator<Item = &str> {
    example.gold_texts.iter().map(String::as_str)
}
