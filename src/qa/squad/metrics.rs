//! Exact Match and F1 with the semantics of the official SQuAD evaluation scripts
//! (`evaluate-v1.1.py`, `evaluate-v2.0.py`), so our numbers can be compared with any paper's.
//!
//! The scripts are Python; the details that change numbers are reproduced on purpose:
//! Unicode lower-casing, ASCII-only punctuation removal, articles removed as whole `\b`-bounded
//! words (Python's Unicode `\w`), whitespace as Python's `str.split()`, and sums taken in file
//! order with the same operand order.

use std::collections::HashMap;

pub use super::normalize::normalize_answer;
use super::schema::{SquadFile, SquadVersion};
pub use super::scores::{BestThresholds, Scores, SubsetScores};
use serde_json::{Map, Value};
use thiserror::Error;

/// Why a prediction set cannot be scored the way the official v2.0 script would.
#[derive(Debug, Error, PartialEq)]
pub enum ScoreError {
    /// The dataset has no questions, or no question has a prediction.
    #[error("nothing to score: {0}")]
    Empty(&'static str),
    /// v2.0 needs a prediction for every question (the official script fails otherwise).
    #[error(
        "v2.0 scoring needs a prediction for every question: {missing} missing, e.g. {example}"
    )]
    MissingPredictions {
        /// How many questions lack a prediction.
        missing: usize,
        /// One of them.
        example: String,
    },
    /// The no-answer probability file lacks a scored question.
    #[error("the no-answer probability file has no entry for question {0}")]
    MissingNaProb(String),
}

fn tokens(s: &str) -> Vec<String> {
    normalize_answer(s)
        .split(' ')
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

fn common_count(a: &[String], b: &[String]) -> usize {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for t in a {
        *counts.entry(t).or_default() += 1;
    }
    b.iter()
        .filter(|t| match counts.get_mut(t.as_str()) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        })
        .count()
}

fn token_f1(prediction: &[String], gold: &[String], num_same: usize) -> f64 {
    let precision = 1.0 * num_same as f64 / prediction.len() as f64;
    let recall = 1.0 * num_same as f64 / gold.len() as f64;
    (2.0 * precision * recall) / (precision + recall)
}

/// 1.0 when prediction and gold normalize to the same string.
pub fn exact_match(prediction: &str, gold: &str) -> f64 {
    f64::from(u8::from(
        normalize_answer(prediction) == normalize_answer(gold),
    ))
}

/// Token F1 of v1.1 (`f1_score`): zero when no token is shared, even when both are empty.
pub fn f1_v1(prediction: &str, gold: &str) -> f64 {
    let (p, g) = (tokens(prediction), tokens(gold));
    match common_count(&p, &g) {
        0 => 0.0,
        same => token_f1(&p, &g, same),
    }
}

/// Token F1 of v2.0 (`compute_f1`): two empty answers agree fully.
pub fn f1_v2(prediction: &str, gold: &str) -> f64 {
    let (p, g) = (tokens(prediction), tokens(gold));
    if p.is_empty() || g.is_empty() {
        return f64::from(u8::from(p == g));
    }
    match common_count(&p, &g) {
        0 => 0.0,
        same => token_f1(&p, &g, same),
    }
}

/// The best of `f` over the gold answers (0 when there are none): how every metric scores one
/// prediction against several golds.
pub fn max_over<'g>(golds: impl Iterator<Item = &'g str>, f: impl Fn(&str) -> f64) -> f64 {
    golds.map(f).fold(f64::NEG_INFINITY, f64::max).max(0.0)
}

/// A token F1 of one script ([`f1_v1`] or [`f1_v2`]).
type TokenF1 = fn(&str, &str) -> f64;

/// Exact Match and F1 of one question's prediction (each 0 to 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuestionScore {
    /// 1 when the prediction matches a gold answer after normalization.
    pub exact: f64,
    /// The best token F1 over the gold answers.
    pub f1: f64,
}

/// One question scored the way `version`'s official script scores it: v1.1 takes the best
/// over every gold text; v2.0 ignores golds that normalize to nothing and scores a question
/// without any against the empty answer (so abstaining on it is right). Both scripts and the
/// per-question report use this, so they cannot disagree.
pub fn question_score<'g>(
    version: SquadVersion,
    golds: impl Iterator<Item = &'g str>,
    prediction: &str,
) -> QuestionScore {
    let (mut golds, f1): (Vec<&str>, TokenF1) = match version {
        SquadVersion::V1 => (golds.collect(), f1_v1),
        SquadVersion::V2 => (
            golds.filter(|t| !normalize_answer(t).is_empty()).collect(),
            f1_v2,
        ),
    };
    if version == SquadVersion::V2 && golds.is_empty() {
        golds.push("");
    }
    QuestionScore {
        exact: max_over(golds.iter().copied(), |g| exact_match(prediction, g)),
        f1: max_over(golds.iter().copied(), |g| f1(prediction, g)),
    }
}

/// The official scores of `predictions` (question id → answer text) on `dataset`, by the
/// official script for the dataset's version (values in percent).
/// `na_probs` (question id → no-answer probability, in file order) only matters for v2.0.
pub fn score(
    dataset: &SquadFile,
    predictions: &HashMap<String, String>,
    na_probs: Option<&Map<String, Value>>,
    na_prob_thresh: f64,
) -> Result<Scores, ScoreError> {
    match dataset.version_kind() {
        SquadVersion::V1 => score_v1(dataset, predictions),
        SquadVersion::V2 => score_v2(dataset, predictions, na_probs, na_prob_thresh),
    }
}

/// `evaluate-v1.1.py`: a missing prediction counts as zero; every answer counts as gold.
pub fn score_v1(
    dataset: &SquadFile,
    predictions: &HashMap<String, String>,
) -> Result<Scores, ScoreError> {
    let (mut exact, mut f1, mut total) = (0u64, 0.0f64, 0usize);
    for (_, qa) in dataset.questions() {
        total += 1;
        let Some(prediction) = predictions.get(&qa.id) else {
            continue;
        };
        let golds = qa.answers.iter().map(|a| a.text.as_str());
        let scored = question_score(SquadVersion::V1, golds, prediction);
        exact += scored.exact as u64;
        f1 += scored.f1;
    }
    if total == 0 {
        return Err(ScoreError::Empty("the dataset has no questions"));
    }
    Ok(Scores::V1(SubsetScores {
        exact: 100.0 * exact as f64 / total as f64,
        f1: 100.0 * f1 / total as f64,
        total,
    }))
}

/// Per-question raw scores in dataset order, the later of duplicate ids winning in place
/// (Python dict semantics).
struct RawScores {
    ids: Vec<String>,
    exact: Vec<f64>,
    f1: Vec<f64>,
    has_answer: HashMap<String, bool>,
    has_answer_ids: Vec<String>,
    no_answer_ids: Vec<String>,
}

fn raw_scores_v2(dataset: &SquadFile, predictions: &HashMap<String, String>) -> RawScores {
    let mut raw = RawScores {
        ids: vec![],
        exact: vec![],
        f1: vec![],
        has_answer: HashMap::new(),
        has_answer_ids: vec![],
        no_answer_ids: vec![],
    };
    let mut position: HashMap<String, usize> = HashMap::new();
    let mut answer_order: Vec<String> = vec![];
    for (_, qa) in dataset.questions() {
        if raw
            .has_answer
            .insert(qa.id.clone(), !qa.answers.is_empty())
            .is_none()
        {
            answer_order.push(qa.id.clone());
        }
        let Some(prediction) = predictions.get(&qa.id) else {
            continue;
        };
        let golds = qa.answers.iter().map(|a| a.text.as_str());
        let QuestionScore { exact: e, f1: f } = question_score(SquadVersion::V2, golds, prediction);
        match position.get(&qa.id) {
            Some(&i) => {
                raw.exact[i] = e;
                raw.f1[i] = f;
            }
            None => {
                position.insert(qa.id.clone(), raw.ids.len());
                raw.ids.push(qa.id.clone());
                raw.exact.push(e);
                raw.f1.push(f);
            }
        }
    }
    for id in answer_order {
        if raw.has_answer[&id] {
            raw.has_answer_ids.push(id);
        } else {
            raw.no_answer_ids.push(id);
        }
    }
    raw
}

fn na_prob(na_probs: Option<&Map<String, Value>>, id: &str) -> Result<f64, ScoreError> {
    match na_probs {
        None => Ok(0.0),
        Some(map) => map
            .get(id)
            .and_then(Value::as_f64)
            .ok_or_else(|| ScoreError::MissingNaProb(id.to_string())),
    }
}

/// `evaluate-v2.0.py`: totals over predicted questions, HasAns/NoAns splits, and with a
/// no-answer probability file the best thresholds.
pub fn score_v2(
    dataset: &SquadFile,
    predictions: &HashMap<String, String>,
    na_probs: Option<&Map<String, Value>>,
    na_prob_thresh: f64,
) -> Result<Scores, ScoreError> {
    let raw = raw_scores_v2(dataset, predictions);
    if raw.ids.is_empty() {
        return Err(ScoreError::Empty(
            "no question of the dataset has a prediction",
        ));
    }
    let mut missing = raw
        .has_answer
        .keys()
        .filter(|id| !predictions.contains_key(*id));
    if let Some(example) = missing.next() {
        return Err(ScoreError::MissingPredictions {
            missing: 1 + missing.count(),
            example: example.clone(),
        });
    }
    // apply_no_ans_threshold
    let mut exact_t = raw.exact.clone();
    let mut f1_t = raw.f1.clone();
    for (i, id) in raw.ids.iter().enumerate() {
        if na_prob(na_probs, id)? > na_prob_thresh {
            let value = f64::from(u8::from(!raw.has_answer[id]));
            exact_t[i] = value;
            f1_t[i] = value;
        }
    }
    let index: HashMap<&str, usize> = raw
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let subset = |ids: Option<&[String]>| {
        let (exact_sum, f1_sum, total) = match ids {
            None => (sum(&exact_t), sum(&f1_t), raw.ids.len()),
            Some(ids) => {
                let pick = |v: &[f64]| {
                    sum(&ids
                        .iter()
                        .map(|id| v[index[id.as_str()]])
                        .collect::<Vec<_>>())
                };
                (pick(&exact_t), pick(&f1_t), ids.len())
            }
        };
        SubsetScores {
            exact: 100.0 * exact_sum / total as f64,
            f1: 100.0 * f1_sum / total as f64,
            total,
        }
    };
    let present = |ids: &[String]| (!ids.is_empty()).then(|| subset(Some(ids)));
    let best = na_probs.map(|na_probs| {
        let (best_exact, best_exact_thresh) =
            best_threshold(&raw, &raw.exact, &index, predictions, na_probs);
        let (best_f1, best_f1_thresh) =
            best_threshold(&raw, &raw.f1, &index, predictions, na_probs);
        BestThresholds {
            best_exact,
            best_exact_thresh,
            best_f1,
            best_f1_thresh,
        }
    });
    Ok(Scores::V2 {
        all: subset(None),
        has_answer: present(&raw.has_answer_ids),
        no_answer: present(&raw.no_answer_ids),
        best,
    })
}

/// Python's `sum` over floats: left to right from zero.
fn sum(values: &[f64]) -> f64 {
    values.iter().fold(0.0, |acc, v| acc + v)
}

/// `find_best_thresh`: sweep questions by rising no-answer probability (stable, in the na-prob
/// file's order) and keep the threshold with the best score.
fn best_threshold(
    raw: &RawScores,
    scores: &[f64],
    index: &HashMap<&str, usize>,
    predictions: &HashMap<String, String>,
    na_probs: &Map<String, Value>,
) -> (f64, f64) {
    let mut current = raw.no_answer_ids.len() as f64;
    let mut best = current;
    let mut best_thresh = 0.0;
    let mut order: Vec<(&String, &Value)> = na_probs.iter().collect();
    order.sort_by(|a, b| {
        let (x, y) = (
            a.1.as_f64().unwrap_or(f64::NAN),
            b.1.as_f64().unwrap_or(f64::NAN),
        );
        x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal)
    });
    for (id, prob) in order {
        let Some(&i) = index.get(id.as_str()) else {
            continue;
        };
        let diff = if raw.has_answer[id] {
            scores[i]
        } else if predictions.get(id).is_some_and(|p| !p.is_empty()) {
            -1.0
        } else {
            0.0
        };
        current += diff;
        if current > best {
            best = current;
            best_thresh = prob.as_f64().unwrap_or(f64::NAN);
        }
    }
    (100.0 * best / raw.ids.len() as f64, best_thresh)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f1_counts_shared_tokens_with_multiplicity() {
        assert!((f1_v1("the cat sat", "cat sat down") - 0.8).abs() < 1e-12);
        assert_eq!(f1_v1("a a a", "a"), 0.0);
        assert!((f1_v1("x x y", "x y y") - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(f1_v1("", ""), 0.0);
        assert_eq!(f1_v2("", ""), 1.0);
        assert_eq!(f1_v2("the", ""), 1.0);
        assert_eq!(f1_v2("x", ""), 0.0);
        assert_eq!(exact_match("The Cat.", "cat"), 1.0);
    }
}
