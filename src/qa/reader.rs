//! One question read over several passages (what a retriever hands a reader): each
//! passage's decoded spans ranked against the others' by a score that compares across
//! passages, and the decision to abstain. `/answer` and `bertqa evaluate-passages` both run
//! this, so the evaluation measures what the service does.

use crate::qa::calibration::ScoreCalibration;
use crate::qa::decode::{Prediction, RankedAnswer};

/// How spans of different passages are compared, and what their `score` is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scoring {
    /// The calibrated probability of being right (models whose `bertqa.json` has one).
    Calibrated(ScoreCalibration),
    /// Ranked by logit sum, which the passages share; the score reported is the span's
    /// probability within its own passage (models exported before calibration).
    SpanLogits,
    /// Ranked and scored by the probability within the span's own passage: the old score,
    /// kept to measure what calibration changes.
    PassageProbability,
}

/// The reader's settings for one question.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReaderConfig {
    /// How passages compare.
    pub scoring: Scoring,
    /// For models with a trained null answer: a passage whose null score beats its best span
    /// by more than this holds no answer (SQuAD v2.0's `best_f1_thresh`). `None`: never.
    pub null_threshold: Option<f32>,
    /// Abstain when the best span scores below this.
    pub min_score: Option<f32>,
    /// Spans to return.
    pub top_k: usize,
}

/// A span found in one of the passages.
#[derive(Debug, Clone, PartialEq)]
pub struct PassageAnswer {
    /// Which passage (index in the question's list).
    pub passage: usize,
    /// The span, offsets in that passage.
    pub answer: RankedAnswer,
    /// Its score under the reader's [`Scoring`].
    pub score: f32,
    /// What it is ranked by (the score itself, or the logit sum for [`Scoring::SpanLogits`]).
    rank_key: f32,
}

/// What the reader concluded.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Spans ranked across passages, best first, at most `top_k`: those of the passages that
    /// may hold the answer, or, when none may, every passage's as alternatives.
    pub answers: Vec<PassageAnswer>,
    /// `Some(score)` when the reader abstains (every passage said "no answer", or the best
    /// span scored below `min_score`); the score is 1 − the best span's score.
    pub no_answer: Option<f32>,
}

impl Reading {
    /// The answer given: the best span unless the reader abstains.
    pub fn best(&self) -> Option<&PassageAnswer> {
        self.answers.first().filter(|_| self.no_answer.is_none())
    }
}

/// Reads one question's passages: `predictions[i]` is the decoding of passage `i`.
pub fn read(predictions: &[Prediction], config: &ReaderConfig) -> Reading {
    let mut open: Vec<PassageAnswer> = vec![];
    let mut closed: Vec<PassageAnswer> = vec![];
    for (passage, prediction) in predictions.iter().enumerate() {
        let says_null = config
            .null_threshold
            .is_some_and(|t| prediction.chosen(Some(t)).is_none());
        let spans = prediction
            .answers
            .iter()
            .take(config.top_k.max(1))
            .map(|answer| scored(passage, answer, prediction.null_score, &config.scoring));
        if says_null {
            closed.extend(spans);
        } else {
            open.extend(spans);
        }
    }
    let by_rank = |a: &PassageAnswer, b: &PassageAnswer| b.rank_key.total_cmp(&a.rank_key);
    open.sort_by(by_rank);
    closed.sort_by(by_rank);
    let best_anywhere = open
        .first()
        .into_iter()
        .chain(closed.first())
        .map(|a| a.score)
        .fold(f32::NEG_INFINITY, f32::max);
    let abstain_score = if best_anywhere.is_finite() {
        (1.0 - best_anywhere).clamp(0.0, 1.0)
    } else {
        1.0
    };
    let too_weak = |a: &PassageAnswer| config.min_score.is_some_and(|m| a.score < m);
    let no_answer = match open.first() {
        Some(best) if !too_weak(best) => None,
        _ => Some(abstain_score),
    };
    let mut answers = if open.is_empty() { closed } else { open };
    answers.truncate(config.top_k.max(1));
    Reading { answers, no_answer }
}

fn scored(
    passage: usize,
    answer: &RankedAnswer,
    null_score: f32,
    scoring: &Scoring,
) -> PassageAnswer {
    let (score, rank_key) = match scoring {
        Scoring::Calibrated(calibration) => {
            let p = calibration.probability(answer.score, null_score);
            (p, p)
        }
        Scoring::SpanLogits => (answer.probability, answer.score),
        Scoring::PassageProbability => (answer.probability, answer.probability),
    };
    PassageAnswer {
        passage,
        answer: answer.clone(),
        score,
        rank_key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(text: &str, start_logit: f32, end_logit: f32, probability: f32) -> RankedAnswer {
        RankedAnswer {
            text: text.into(),
            start: 0,
            end: text.chars().count(),
            score: start_logit + end_logit,
            start_logit,
            end_logit,
            probability,
        }
    }

    fn prediction(answers: Vec<RankedAnswer>, null_score: f32) -> Prediction {
        Prediction {
            answers,
            null_score,
        }
    }

    fn config(scoring: Scoring) -> ReaderConfig {
        ReaderConfig {
            scoring,
            null_threshold: None,
            min_score: None,
            top_k: 3,
        }
    }

    #[test]
    fn logits_and_calibration_compare_passages_where_passage_probabilities_cannot() {
        // Passage 0: a weak span alone in its passage (probability 0.9 there);
        // passage 1: a strong span among close rivals (probability 0.5).
        let passages = [
            prediction(vec![span("weak", 1.0, 1.0, 0.9)], 0.0),
            prediction(
                vec![span("strong", 5.0, 5.0, 0.5), span("rival", 5.0, 4.9, 0.45)],
                0.0,
            ),
        ];
        let old = read(&passages, &config(Scoring::PassageProbability));
        assert_eq!(old.best().unwrap().answer.text, "weak");
        let logits = read(&passages, &config(Scoring::SpanLogits));
        assert_eq!(logits.best().unwrap().answer.text, "strong");
        assert_eq!(logits.best().unwrap().passage, 1);
        let calibration = ScoreCalibration {
            span_weight: 0.5,
            margin_weight: 0.0,
            bias: -3.0,
        };
        let calibrated = read(&passages, &config(Scoring::Calibrated(calibration)));
        let best = calibrated.best().unwrap();
        assert_eq!((best.answer.text.as_str(), best.passage), ("strong", 1));
        assert!((best.score - calibration.probability(10.0, 0.0)).abs() < 1e-6);
        assert_eq!(calibrated.answers.len(), 3);
        assert_eq!(calibrated.no_answer, None);
    }

    #[test]
    fn passages_that_say_no_answer_are_passed_over() {
        let passages = [
            prediction(vec![span("here", 3.0, 3.0, 0.8)], 9.0),
            prediction(vec![span("there", 2.0, 2.0, 0.7)], 1.0),
        ];
        let mut reader = config(Scoring::SpanLogits);
        reader.null_threshold = Some(0.0);
        let reading = read(&passages, &reader);
        assert_eq!(reading.best().unwrap().answer.text, "there");
        let all_null = [prediction(vec![span("here", 3.0, 3.0, 0.8)], 9.0)];
        let reading = read(&all_null, &reader);
        assert!(reading.best().is_none());
        assert!((reading.no_answer.unwrap() - 0.2).abs() < 1e-6);
        assert_eq!(
            reading.answers[0].answer.text, "here",
            "alternatives still shown"
        );
    }

    #[test]
    fn min_score_abstains_below_it() {
        let passages = [prediction(vec![span("maybe", 1.0, 1.0, 0.3)], 0.0)];
        let mut reader = config(Scoring::SpanLogits);
        reader.min_score = Some(0.5);
        let reading = read(&passages, &reader);
        assert!(reading.best().is_none());
        assert!((reading.no_answer.unwrap() - 0.7).abs() < 1e-6);
        reader.min_score = Some(0.2);
        assert_eq!(
            read(&passages, &reader).best().unwrap().answer.text,
            "maybe"
        );
        assert_eq!(read(&[], &reader).no_answer, Some(1.0));
    }
}
