//! What an evaluation got wrong, question by question: each question's answer against its
//! golds (with both spans, so a reader can see them in the passage), the worst questions, and
//! F1 by question type and by answer length — the breakdowns people look at first when a model
//! disappoints (a model weak on "how many" or on long answers needs different data).

use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;

use super::metrics::{question_score, QuestionScore};
use super::schema::{Answer, Example, SquadVersion};

/// One question as the model answered it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct QuestionResult {
    /// The question id.
    pub id: String,
    /// The question.
    pub question: String,
    /// Index of its passage in [`EvaluationReport::contexts`].
    pub context: usize,
    /// Gold answers with their character offsets (empty for an unanswerable question).
    pub gold: Vec<Answer>,
    /// The predicted answer ("" when the model abstained).
    pub prediction: String,
    /// Character offset of the predicted span in the passage (`null` when it abstained).
    pub prediction_start: Option<usize>,
    /// Exact Match of this question, 0 or 100.
    pub exact_match: f64,
    /// F1 of this question, 0 to 100.
    pub f1: f64,
}

impl QuestionResult {
    /// Scores `prediction` (text, and character offset when it is a span) for `example` by
    /// `version`'s official rules; `context` is the passage's index in the report.
    pub fn new(
        example: &Example,
        context: usize,
        prediction: (&str, Option<usize>),
        version: SquadVersion,
    ) -> Self {
        let golds = example.gold_texts.iter().map(String::as_str);
        let QuestionScore { exact, f1 } = question_score(version, golds, prediction.0);
        Self {
            id: example.id.clone(),
            question: example.question.clone(),
            context,
            gold: example.answers.clone(),
            prediction: prediction.0.to_string(),
            prediction_start: prediction.1,
            exact_match: 100.0 * exact,
            f1: 100.0 * f1,
        }
    }
}

/// Scores of one group of questions.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct GroupScore {
    /// The group ("what", "how many", "2 words", ...).
    pub label: String,
    /// Questions in it.
    pub questions: usize,
    /// Mean Exact Match (percent).
    pub exact_match: f64,
    /// Mean F1 (percent).
    pub f1: f64,
}

/// Every question of an evaluation, and what they say together.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct EvaluationReport {
    /// The passages, each once, in file order.
    pub contexts: Vec<String>,
    /// Every question, in file order.
    pub questions: Vec<QuestionResult>,
    /// Ids of the questions with the lowest F1, worst first (at most [`WORST_QUESTIONS`]).
    pub worst: Vec<String>,
    /// Scores by the question's first question word.
    pub by_question_type: Vec<GroupScore>,
    /// Scores by the length of the first gold answer, in words.
    pub by_answer_length: Vec<GroupScore>,
}

/// How many questions [`EvaluationReport::worst`] lists.
pub const WORST_QUESTIONS: usize = 20;

/// Question types, checked in this order against the first question word of a question.
const QUESTION_TYPES: [&str; 10] = [
    "how many", "how much", "how", "what", "which", "who", "when", "where", "why", "other",
];

/// Answer-length groups: (label, most words).
const ANSWER_LENGTHS: [(&str, usize); 6] = [
    ("1 word", 1),
    ("2 words", 2),
    ("3 words", 3),
    ("4-5 words", 5),
    ("6-10 words", 10),
    ("over 10 words", usize::MAX),
];

/// The type of `question`: its first question word ("how many" and "how much" apart from
/// "how"), wherever it stands ("In what year ..." is a "what" question); "other" when it has
/// none.
pub fn question_type(question: &str) -> &'static str {
    let words: Vec<String> = question
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .collect();
    for (i, word) in words.iter().enumerate() {
        let next = words.get(i + 1).map(String::as_str);
        let kind = match (word.as_str(), next) {
            ("how", Some("many")) => "how many",
            ("how", Some("much")) => "how much",
            ("how", _) => "how",
            ("what" | "what's", _) => "what",
            ("which", _) => "which",
            ("who" | "whom" | "whose" | "who's", _) => "who",
            ("when", _) => "when",
            ("where", _) => "where",
            ("why", _) => "why",
            _ => continue,
        };
        return kind;
    }
    "other"
}

/// The answer-length group of a question: by its first gold answer's words; "no answer" for
/// an unanswerable one.
pub fn answer_length(gold: &[Answer]) -> &'static str {
    let Some(first) = gold.first() else {
        return "no answer";
    };
    let words = first.text.split_whitespace().count().max(1);
    ANSWER_LENGTHS
        .iter()
        .find(|(_, most)| words <= *most)
        .map_or("over 10 words", |(label, _)| label)
}

impl EvaluationReport {
    /// The report of `results`, whose `context` indices point into `contexts`.
    pub fn new(contexts: Vec<String>, results: Vec<QuestionResult>) -> Self {
        let mut worst: Vec<&QuestionResult> = results.iter().collect();
        worst.sort_by(|a, b| a.f1.total_cmp(&b.f1));
        let worst = worst
            .iter()
            .take(WORST_QUESTIONS)
            .map(|r| r.id.clone())
            .collect();
        let types = QUESTION_TYPES.iter().copied();
        let lengths = ANSWER_LENGTHS
            .iter()
            .map(|(label, _)| *label)
            .chain(["no answer"]);
        Self {
            by_question_type: grouped(&results, types, |r| question_type(&r.question)),
            by_answer_length: grouped(&results, lengths, |r| answer_length(&r.gold)),
            contexts,
            questions: results,
            worst,
        }
    }
}

/// Mean scores of `results` in each of `labels` that has questions, in the order of `labels`.
fn grouped<'a>(
    results: &[QuestionResult],
    labels: impl Iterator<Item = &'a str>,
    label_of: impl Fn(&QuestionResult) -> &'static str,
) -> Vec<GroupScore> {
    labels
        .filter_map(|label| {
            let members: Vec<&QuestionResult> =
                results.iter().filter(|r| label_of(r) == label).collect();
            let n = members.len();
            (n > 0).then(|| GroupScore {
                label: label.to_string(),
                questions: n,
                exact_match: members.iter().map(|r| r.exact_match).sum::<f64>() / n as f64,
                f1: members.iter().map(|r| r.f1).sum::<f64>() / n as f64,
            })
        })
        .collect()
}

/// The passages of `examples`, each once, and each example's index among them: consecutive
/// questions of one paragraph share one passage (they share its `Arc`).
pub fn passages_of(examples: &[Example]) -> (Vec<Arc<str>>, Vec<usize>) {
    let mut passages: Vec<Arc<str>> = vec![];
    let mut index = Vec::with_capacity(examples.len());
    for example in examples {
        let same = passages
            .last()
            .is_some_and(|last| Arc::ptr_eq(last, &example.context));
        if !same {
            passages.push(example.context.clone());
        }
        index.push(passages.len() - 1);
    }
    (passages, index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(id: &str, question: &str, context: &Arc<str>, golds: &[(&str, usize)]) -> Example {
        Example {
            id: id.into(),
            question: question.into(),
            context: context.clone(),
            answers: golds
                .iter()
                .map(|(text, start)| Answer {
                    text: (*text).into(),
                    answer_start: *start,
                })
                .collect(),
            gold_texts: golds.iter().map(|(t, _)| (*t).to_string()).collect(),
            is_impossible: golds.is_empty(),
            article: 0,
        }
    }

    #[test]
    fn question_types_come_from_the_first_question_word() {
        let cases = [
            ("How many points did they score?", "how many"),
            ("how much did it cost", "how much"),
            ("How did it end?", "how"),
            ("In what year did it open?", "what"),
            ("Who's the coach?", "who"),
            ("Whose team won?", "who"),
            ("The game was played where?", "where"),
            ("Name the winner.", "other"),
            ("", "other"),
        ];
        for (question, kind) in cases {
            assert_eq!(question_type(question), kind, "{question}");
        }
    }

    #[test]
    fn answer_lengths_are_grouped_by_the_first_golds_words() {
        let gold = |text: &str| {
            vec![Answer {
                text: text.into(),
                answer_start: 0,
            }]
        };
        assert_eq!(answer_length(&gold("Denver")), "1 word");
        assert_eq!(answer_length(&gold("Denver Broncos")), "2 words");
        assert_eq!(answer_length(&gold("a b c d e")), "4-5 words");
        assert_eq!(answer_length(&gold(&"w ".repeat(11))), "over 10 words");
        assert_eq!(answer_length(&[]), "no answer");
    }

    #[test]
    fn the_report_scores_each_question_and_groups_them() {
        let first: Arc<str> = Arc::from("Denver Broncos beat Carolina Panthers 24-10.");
        let second: Arc<str> = Arc::from("It was played in Santa Clara.");
        let examples = [
            example("a", "Who won?", &first, &[("Denver Broncos", 0)]),
            example("b", "Who lost?", &first, &[("Carolina Panthers", 20)]),
            example("c", "Where was it played?", &second, &[("Santa Clara", 17)]),
        ];
        let (passages, index) = passages_of(&examples);
        assert_eq!(passages.len(), 2);
        assert_eq!(index, vec![0, 0, 1]);
        let answers = [
            ("Denver Broncos", Some(0)),
            ("Panthers", Some(29)),
            ("", None),
        ];
        let results: Vec<QuestionResult> = examples
            .iter()
            .zip(answers)
            .zip(&index)
            .map(|((e, a), &i)| QuestionResult::new(e, i, a, SquadVersion::V1))
            .collect();
        assert_eq!(results[0].exact_match, 100.0);
        assert_eq!(results[1].exact_match, 0.0);
        assert!(
            (results[1].f1 - 200.0 / 3.0).abs() < 1e-9,
            "{}",
            results[1].f1
        );
        assert_eq!(results[2].f1, 0.0);
        let contexts = passages.iter().map(|p| p.to_string()).collect();
        let report = EvaluationReport::new(contexts, results);
        assert_eq!(report.worst, vec!["c", "b", "a"]);
        let who = &report.by_question_type[0];
        assert_eq!((who.label.as_str(), who.questions), ("who", 2));
        assert!((who.f1 - (100.0 + 200.0 / 3.0) / 2.0).abs() < 1e-9);
        let labels: Vec<&str> = report
            .by_answer_length
            .iter()
            .map(|g| g.label.as_str())
            .collect();
        assert_eq!(labels, vec!["2 words"], "every gold has two words");
    }

    #[test]
    fn an_abstention_on_an_unanswerable_question_is_right_under_v2_rules() {
        let context: Arc<str> = Arc::from("Nothing here.");
        let unanswerable = example("x", "Why?", &context, &[]);
        let right = QuestionResult::new(&unanswerable, 0, ("", None), SquadVersion::V2);
        assert_eq!((right.exact_match, right.f1), (100.0, 100.0));
        let wrong = QuestionResult::new(&unanswerable, 0, ("Nothing", Some(0)), SquadVersion::V2);
        assert_eq!((wrong.exact_match, wrong.f1), (0.0, 0.0));
    }
}
