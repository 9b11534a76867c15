//! Serde types of the SQuAD v1.1 and v2.0 files, and their flattening into examples.
//!
//! The nested file layout is kept as is (so files round-trip), and [`SquadFile::examples`]
//! gives the flat view that windowing and evaluation work on.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::qa::text::CharIndex;

/// A whole SQuAD file: `{"version", "data": [articles]}`. (The schema, also published as the
/// `/evaluate` body, asks for at least one article, paragraph and question in each list, which
/// [`SquadFile::first_empty_list`] checks.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SquadFile {
    /// "1.1" or "v2.0" in the official files; absent in some hand-made ones.
    #[serde(default)]
    pub version: String,
    /// The articles, in file order (scores are summed in this order, like the official scripts).
    #[schema(min_items = 1)]
    pub data: Vec<Article>,
}

/// One Wikipedia article.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Article {
    /// The article title; only informative.
    #[serde(default)]
    pub title: String,
    /// Its paragraphs, each with the questions asked about it.
    #[schema(min_items = 1)]
    pub paragraphs: Vec<Paragraph>,
}

/// One context paragraph and its questions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Paragraph {
    /// The passage answers are extracted from.
    pub context: String,
    /// The questions about this passage.
    #[schema(min_items = 1)]
    pub qas: Vec<QuestionAnswers>,
}

/// One question with its gold answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QuestionAnswers {
    /// Unique id: the key of prediction files.
    pub id: String,
    /// The question text.
    pub question: String,
    /// Gold answers; empty for unanswerable v2.0 questions.
    #[serde(default)]
    pub answers: Vec<Answer>,
    /// v2.0: the question has no answer in the context.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_impossible: bool,
    /// v2.0: annotators' guesses for unanswerable questions (not used by the metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plausible_answers: Option<Vec<Answer>>,
}

/// A gold answer: its text and where it starts in the context, in characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Answer {
    /// The answer as written in the context.
    pub text: String,
    /// Character (not byte) offset of the answer in the context.
    #[serde(deserialize_with = "crate::qa::numbers::whole")]
    pub answer_start: usize,
}

/// Which official evaluation applies (the two scripts aggregate differently), and whether a
/// model may answer nothing. Written as the official spellings "1.1" and "2.0"; "v1.1",
/// "v2.0", "1" and "2" are read too, since SQuAD files and users write both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum SquadVersion {
    /// v1.1: every question has an answer.
    #[serde(rename = "1.1", alias = "v1.1", alias = "1")]
    #[value(name = "1.1", alias = "v1.1", alias = "1")]
    V1,
    /// v2.0: unanswerable questions exist.
    #[serde(rename = "2.0", alias = "v2.0", alias = "2")]
    #[value(name = "2.0", alias = "v2.0", alias = "2")]
    V2,
}

impl SquadVersion {
    /// The official spelling, as in SQuAD files' `version` field.
    pub fn as_str(self) -> &'static str {
        match self {
            SquadVersion::V1 => "1.1",
            SquadVersion::V2 => "2.0",
        }
    }

    /// The version a label names ("1.1", "v2.0", "2", ...), if any.
    pub fn from_label(label: &str) -> Option<Self> {
        match label.trim().trim_start_matches('v') {
            "1.1" | "1" | "1.0" => Some(SquadVersion::V1),
            "2.0" | "2" => Some(SquadVersion::V2),
            _ => None,
        }
    }
}

/// A question flattened out of the nested file, with a shared handle on its context so that
/// the five-odd questions of a paragraph do not copy it.
#[derive(Debug, Clone)]
pub struct Example {
    /// The question id.
    pub id: String,
    /// The question text as in the file.
    pub question: String,
    /// The paragraph it is asked about.
    pub context: Arc<str>,
    /// Gold answers whose offsets agree with their text (see [`AnswerCheck`]).
    pub answers: Vec<Answer>,
    /// Every gold answer text, including ones with broken offsets: the metrics only use text.
    pub gold_texts: Vec<String>,
    /// v2.0 unanswerable question.
    pub is_impossible: bool,
    /// Index of its article in the file: the paragraphs of one article are on one topic, which
    /// is what makes them hard negatives and realistic distractors for each other.
    pub article: usize,
}

/// An answer whose `answer_start` does not point at its `text`: reported so that a broken
/// file never trains on wrong labels silently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MismatchedAnswer {
    /// The question id.
    pub id: String,
    /// Index of the answer in the question's `answers`.
    pub index: usize,
    /// The answer text.
    pub text: String,
    /// Its claimed character offset.
    pub answer_start: usize,
}

/// The result of checking every answer offset of a file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AnswerCheck {
    /// Answers checked.
    pub checked: usize,
    /// Answers whose offset does not match their text.
    pub mismatched: Vec<MismatchedAnswer>,
}

impl SquadFile {
    /// The evaluation that fits this file: v2.0 when it says so or has unanswerable questions.
    pub fn version_kind(&self) -> SquadVersion {
        let says_v2 = SquadVersion::from_label(&self.version) == Some(SquadVersion::V2);
        if says_v2 || self.questions().any(|(_, qa)| qa.is_impossible) {
            SquadVersion::V2
        } else {
            SquadVersion::V1
        }
    }

    /// Every question with its paragraph, in file order.
    pub fn questions(&self) -> impl Iterator<Item = (&Paragraph, &QuestionAnswers)> {
        self.data
            .iter()
            .flat_map(|article| article.paragraphs.iter())
            .flat_map(|paragraph| paragraph.qas.iter().map(move |qa| (paragraph, qa)))
    }

    /// Number of questions in the file.
    pub fn question_count(&self) -> usize {
        self.questions().count()
    }

    /// The first `limit` questions of the file, nesting kept (for `--dev-limit`-style runs
    /// that must be scored against exactly the questions they predicted).
    pub fn truncated(&self, limit: usize) -> SquadFile {
        let mut left = limit;
        let mut data = vec![];
        for article in &self.data {
            let mut paragraphs = vec![];
            for paragraph in &article.paragraphs {
                let take = paragraph.qas.len().min(left);
                if take > 0 {
                    paragraphs.push(Paragraph {
                        context: paragraph.context.clone(),
                        qas: paragraph.qas[..take].to_vec(),
                    });
                    left -= take;
                }
            }
            if !paragraphs.is_empty() {
                data.push(Article {
                    title: article.title.clone(),
                    paragraphs,
                });
            }
        }
        SquadFile {
            version: self.version.clone(),
            data,
        }
    }

    /// The flat examples, in file order, keeping only answers whose offsets match their text.
    pub fn examples(&self) -> Vec<Example> {
        let mut out = Vec::with_capacity(self.question_count());
        for (article, paragraph) in self
            .data
            .iter()
            .enumerate()
            .flat_map(|(a, article)| article.paragraphs.iter().map(move |p| (a, p)))
        {
            let context: Arc<str> = Arc::from(paragraph.context.as_str());
            let index = CharIndex::new(&paragraph.context);
            for qa in &paragraph.qas {
                let answers = qa
                    .answers
                    .iter()
                    .filter(|a| answer_matches(&paragraph.context, &index, a))
                    .cloned()
                    .collect();
                out.push(Example {
                    id: qa.id.clone(),
                    question: qa.question.clone(),
                    context: Arc::clone(&context),
                    answers,
                    gold_texts: qa.answers.iter().map(|a| a.text.clone()).collect(),
                    is_impossible: qa.is_impossible,
                    article,
                });
            }
        }
        out
    }

    /// The JSON path of the first empty list of articles, paragraphs or questions, if any:
    /// such a file is not what the published schema describes.
    pub fn first_empty_list(&self) -> Option<String> {
        if self.data.is_empty() {
            return Some("data".into());
        }
        for (a, article) in self.data.iter().enumerate() {
            if article.paragraphs.is_empty() {
                return Some(format!("data[{a}].paragraphs"));
            }
            for (p, paragraph) in article.paragraphs.iter().enumerate() {
                if paragraph.qas.is_empty() {
                    return Some(format!("data[{a}].paragraphs[{p}].qas"));
                }
            }
        }
        None
    }

    /// Checks every answer offset against its text.
    pub fn check_answers(&self) -> AnswerCheck {
        let mut check = AnswerCheck::default();
        for paragraph in self.data.iter().flat_map(|a| a.paragraphs.iter()) {
            let index = CharIndex::new(&paragraph.context);
            for qa in &paragraph.qas {
                for (i, answer) in qa.answers.iter().enumerate() {
                    check.checked += 1;
                    if !answer_matches(&paragraph.context, &index, answer) {
                        check.mismatched.push(MismatchedAnswer {
                            id: qa.id.clone(),
                            index: i,
                            text: answer.text.clone(),
                            answer_start: answer.answer_start,
                        });
                    }
                }
            }
        }
        check
    }
}

impl Example {
    /// The training target: character span of the first answer with a valid offset, or
    /// `None` for unanswerable questions (and answerable ones whose offsets are all broken).
    pub fn answer_span(&self) -> Option<(usize, usize)> {
        self.answers
            .first()
            .map(|a| (a.answer_start, a.answer_start + a.text.chars().count()))
    }
}

fn answer_matches(context: &str, index: &CharIndex, answer: &Answer) -> bool {
    // An offset near usize::MAX (any whole number is read, bench: schemathesis) is simply
    // not in the context.
    let Some(end) = answer.answer_start.checked_add(answer.text.chars().count()) else {
        return false;
    };
    index.slice(context, answer.answer_start, end) == Some(answer.text.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(version: &str, answers: Vec<Answer>, is_impossible: bool) -> SquadFile {
        SquadFile {
            version: version.into(),
            data: vec![Article {
                title: "t".into(),
                paragraphs: vec![Paragraph {
                    context: "Ünïcode café is here.".into(),
                    qas: vec![QuestionAnswers {
                        id: "q1".into(),
                        question: "Where?".into(),
                        answers,
                        is_impossible,
                        plausible_answers: None,
                    }],
                }],
            }],
        }
    }

    #[test]
    fn answers_are_checked_in_characters_and_mismatches_reported() {
        let good = Answer {
            text: "café".into(),
            answer_start: 8,
        };
        let bad = Answer {
            text: "café".into(),
            answer_start: 9,
        };
        let f = file("1.1", vec![bad.clone(), good.clone()], false);
        let check = f.check_answers();
        assert_eq!(check.checked, 2);
        assert_eq!(check.mismatched.len(), 1);
        assert_eq!(check.mismatched[0].index, 0);
        let examples = f.examples();
        assert_eq!(examples[0].answers, vec![good]);
        assert_eq!(examples[0].gold_texts.len(), 2);
        assert_eq!(examples[0].answer_span(), Some((8, 12)));
        assert_eq!(f.truncated(0).question_count(), 0);
        assert_eq!(f.truncated(5), f);
    }

    #[test]
    fn version_comes_from_the_file_or_its_unanswerable_questions() {
        assert_eq!(file("1.1", vec![], false).version_kind(), SquadVersion::V1);
        assert_eq!(file("v2.0", vec![], false).version_kind(), SquadVersion::V2);
        assert_eq!(file("", vec![], true).version_kind(), SquadVersion::V2);
    }

    #[test]
    fn versions_read_every_spelling_and_write_the_official_one() {
        use clap::ValueEnum;
        for (label, version) in [
            ("1.1", SquadVersion::V1),
            ("v1.1", SquadVersion::V1),
            ("2.0", SquadVersion::V2),
            ("v2.0", SquadVersion::V2),
            ("2", SquadVersion::V2),
        ] {
            assert_eq!(SquadVersion::from_label(label), Some(version), "{label}");
            let json: SquadVersion = serde_json::from_str(&format!("\"{label}\"")).unwrap();
            assert_eq!(json, version, "{label}");
            assert_eq!(SquadVersion::from_str(label, false), Ok(version), "{label}");
        }
        assert_eq!(SquadVersion::from_label("3.0"), None);
        assert!(serde_json::from_str::<SquadVersion>("\"3.0\"").is_err());
        assert_eq!(serde_json::to_string(&SquadVersion::V2).unwrap(), "\"2.0\"");
        assert_eq!(SquadVersion::V1.as_str(), "1.1");
    }

    #[test]
    fn an_offset_at_the_end_of_the_numbers_is_a_broken_offset_not_a_panic() {
        let far = Answer {
            text: "café".into(),
            answer_start: usize::MAX,
        };
        let squad = file("1.1", vec![far], false);
        assert!(squad.examples()[0].answers.is_empty());
    }
}
