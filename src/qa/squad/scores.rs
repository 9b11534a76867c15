//! The official scores of one evaluation as types, so that no caller reads a number back by
//! a string key (a typo there silently reported 0); the official scripts' JSON is written
//! from them in one place.

use serde_json::{Map, Value};

/// Exact Match, F1 and question count of one set of questions, in percent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SubsetScores {
    /// Exact Match.
    pub exact: f64,
    /// Token F1.
    pub f1: f64,
    /// Questions in the set.
    pub total: usize,
}

/// v2.0's sweep over no-answer thresholds (`find_all_best_thresh`), when no-answer
/// probabilities were given: the best score reachable and the threshold that reaches it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BestThresholds {
    /// Best Exact Match over thresholds.
    pub best_exact: f64,
    /// Its threshold.
    pub best_exact_thresh: f64,
    /// Best F1 over thresholds.
    pub best_f1: f64,
    /// Its threshold.
    pub best_f1_thresh: f64,
}

/// The official scores of one evaluation, typed so that a caller cannot misspell a key;
/// [`Scores::to_official_json`] writes the object the official script prints.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scores {
    /// `evaluate-v1.1.py`.
    V1(SubsetScores),
    /// `evaluate-v2.0.py`.
    V2 {
        /// Every question.
        all: SubsetScores,
        /// Answerable questions (when the file has any).
        has_answer: Option<SubsetScores>,
        /// Unanswerable questions (when the file has any).
        no_answer: Option<SubsetScores>,
        /// With no-answer probabilities only.
        best: Option<BestThresholds>,
    },
}

impl Scores {
    /// Every question's scores: v1.1's `exact_match`/`f1`, v2.0's `exact`/`f1`.
    pub fn overall(&self) -> SubsetScores {
        match self {
            Scores::V1(all) | Scores::V2 { all, .. } => *all,
        }
    }

    /// The JSON object the official script prints, keys in its order.
    pub fn to_official_json(&self) -> Map<String, Value> {
        let mut out = Map::new();
        match self {
            Scores::V1(all) => {
                out.insert("exact_match".into(), all.exact.into());
                out.insert("f1".into(), all.f1.into());
            }
            Scores::V2 {
                all,
                has_answer,
                no_answer,
                best,
            } => {
                let mut subset = |prefix: &str, s: &SubsetScores| {
                    out.insert(format!("{prefix}exact"), s.exact.into());
                    out.insert(format!("{prefix}f1"), s.f1.into());
                    out.insert(format!("{prefix}total"), s.total.into());
                };
                subset("", all);
                has_answer.iter().for_each(|s| subset("HasAns_", s));
                no_answer.iter().for_each(|s| subset("NoAns_", s));
                if let Some(b) = best {
                    out.insert("best_exact".into(), b.best_exact.into());
                    out.insert("best_exact_thresh".into(), b.best_exact_thresh.into());
                    out.insert("best_f1".into(), b.best_f1.into());
                    out.insert("best_f1_thresh".into(), b.best_f1_thresh.into());
                }
            }
        }
        out
    }
}
