//! Other paragraphs for a question: unanswerable training examples made from answerable ones
//! (SQuAD v2.0 train cannot be had here) and distractor passages for the multi-passage
//! evaluation. Both draw first from the question's own article, on the same topic, so that
//! the model cannot tell them apart by subject alone; and both skip any paragraph that holds
//! one of the question's gold answers, which would make "not here" a wrong label.

use std::sync::Arc;

use super::normalize::normalize_answer;
use super::schema::Example;
use crate::qa::random::{splitmix64_at, SplitMix64};

/// Salt of the negatives' draws, so that they do not follow the data order's stream.
const NEGATIVES_SALT: u64 = 0x6E65_6761_7469_7665;

/// One paragraph with its normalized text, for the answer check.
#[derive(Debug)]
struct Passage {
    text: Arc<str>,
    padded_normalized: String,
}

/// The distinct paragraphs of a set of examples, grouped by article.
#[derive(Debug)]
pub struct Passages {
    articles: Vec<Vec<Passage>>,
}

impl Passages {
    /// Indexes the paragraphs of `examples` (file order, one entry per distinct paragraph).
    pub fn new(examples: &[Example]) -> Self {
        let mut articles: Vec<Vec<Passage>> = vec![];
        for example in examples {
            if articles.len() <= example.article {
                articles.resize_with(example.article + 1, Vec::new);
            }
            let article = &mut articles[example.article];
            if article.iter().any(|p| p.text == example.context) {
                continue;
            }
            article.push(Passage {
                text: Arc::clone(&example.context),
                padded_normalized: format!(" {} ", normalize_answer(&example.context)),
            });
        }
        Self { articles }
    }

    /// Up to `n` paragraphs of the example's article other than its own and free of its
    /// answers, in an order drawn from `rng`.
    pub fn same_article(&self, example: &Example, n: usize, rng: &mut SplitMix64) -> Vec<Arc<str>> {
        let Some(article) = self.articles.get(example.article) else {
            return vec![];
        };
        let answers = AnswerWords::of(example);
        let mut order: Vec<usize> = (0..article.len()).collect();
        rng.shuffle(&mut order);
        order
            .into_iter()
            .map(|i| &article[i])
            .filter(|p| p.text != example.context && answers.absent_from(p))
            .take(n)
            .map(|p| Arc::clone(&p.text))
            .collect()
    }

    /// Up to `n` paragraphs of other articles, free of the example's answers, drawn from `rng`
    /// (a few tries per paragraph, so a file with one article gives none).
    pub fn other_articles(
        &self,
        example: &Example,
        n: usize,
        rng: &mut SplitMix64,
    ) -> Vec<Arc<str>> {
        let answers = AnswerWords::of(example);
        let mut out: Vec<Arc<str>> = Vec::with_capacity(n);
        let articles = self.articles.len() as u64;
        for _ in 0..n * 4 {
            if out.len() == n || articles < 2 {
                break;
            }
            let a = (rng.next_u64() % articles) as usize;
            let article = &self.articles[a];
            if a == example.article || article.is_empty() {
                continue;
            }
            let p = &article[(rng.next_u64() % article.len() as u64) as usize];
            if answers.absent_from(p) && !out.contains(&p.text) {
                out.push(Arc::clone(&p.text));
            }
        }
        out
    }

    /// `n` passages for the example's question, its own paragraph among them at a drawn
    /// position: half (rounded up) of the others from its article, the rest from other
    /// articles (fewer when the file has not enough). Returns the passages and the position
    /// of the example's own.
    pub fn with_distractors(
        &self,
        example: &Example,
        n: usize,
        seed: u64,
    ) -> (Vec<Arc<str>>, usize) {
        let mut rng = SplitMix64::new(seed);
        let others = n.saturating_sub(1);
        let mut passages = self.same_article(example, others.div_ceil(2), &mut rng);
        let rest = others - passages.len();
        passages.extend(self.other_articles(example, rest, &mut rng));
        let own = (rng.next_u64() % (passages.len() as u64 + 1)) as usize;
        passages.insert(own, Arc::clone(&example.context));
        (passages, own)
    }
}

/// An example's gold answers normalized once, as the whole-word needles every candidate
/// paragraph is searched for.
struct AnswerWords(Vec<String>);

impl AnswerWords {
    fn of(example: &Example) -> Self {
        Self(
            example
                .gold_texts
                .iter()
                .map(|gold| normalize_answer(gold))
                .filter(|gold| !gold.is_empty())
                .map(|gold| format!(" {gold} "))
                .collect(),
        )
    }

    /// Whether none of the answers appears, as whole normalized words, in `p`.
    fn absent_from(&self, p: &Passage) -> bool {
        self.0
            .iter()
            .all(|needle| !p.padded_normalized.contains(needle))
    }
}

/// Unanswerable examples made from the answerable ones: about `ratio` per question (the
/// whole part for each, the fraction by a seeded draw), each the question asked about another
/// paragraph of its article that holds none of its answers. Depends only on
/// `(examples, ratio, seed)`, so `--resume` rebuilds the same set.
pub fn hard_negatives(examples: &[Example], ratio: f64, seed: u64) -> Vec<Example> {
    let passages = Passages::new(examples);
    let (whole, fraction) = (ratio.trunc() as usize, ratio.fract());
    let mut out = vec![];
    for (i, example) in examples.iter().enumerate() {
        if example.is_impossible || example.gold_texts.is_empty() {
            continue;
        }
        let draw = splitmix64_at(seed ^ NEGATIVES_SALT, i as u64);
        let extra = (draw >> 11) as f64 / (1u64 << 53) as f64 >= 1.0 - fraction;
        let count = whole + usize::from(extra && fraction > 0.0);
        if count == 0 {
            continue;
        }
        let mut rng = SplitMix64::new(draw);
        for (k, context) in passages
            .same_article(example, count, &mut rng)
            .into_iter()
            .enumerate()
        {
            out.push(Example {
                id: format!("{}-negative-{k}", example.id),
                question: example.question.clone(),
                context,
                answers: vec![],
                gold_texts: vec![],
                is_impossible: true,
                article: example.article,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(id: &str, article: usize, context: &str, gold: &str) -> Example {
        Example {
            id: id.into(),
            question: format!("question {id}?"),
            context: Arc::from(context),
            answers: vec![],
            gold_texts: vec![gold.into()],
            is_impossible: false,
            article,
        }
    }

    fn corpus() -> Vec<Example> {
        vec![
            example("a1", 0, "Denver won the game.", "Denver"),
            example("a2", 0, "Denver won the game.", "the game"),
            example("b", 0, "Carolina lost it.", "Carolina"),
            example("c", 0, "Denver fans cheered.", "fans"),
            example("d", 1, "Paris is in France.", "Paris"),
            example("e", 1, "Lyon is too.", "Lyon"),
        ]
    }

    #[test]
    fn negatives_are_other_paragraphs_of_the_article_without_the_answer() {
        let examples = corpus();
        let negatives = hard_negatives(&examples, 2.0, 7);
        let of_a1: Vec<&str> = negatives
            .iter()
            .filter(|n| n.id.starts_with("a1-"))
            .map(|n| &*n.context)
            .collect();
        // "Denver fans cheered." holds a1's answer "Denver": only Carolina's paragraph is left.
        assert_eq!(of_a1, vec!["Carolina lost it."]);
        assert!(negatives
            .iter()
            .all(|n| n.is_impossible && n.gold_texts.is_empty()));
        let of_d: Vec<&str> = negatives
            .iter()
            .filter(|n| n.id.starts_with("d-"))
            .map(|n| &*n.context)
            .collect();
        assert_eq!(of_d, vec!["Lyon is too."]);
        assert_eq!(
            negatives.iter().map(|n| &n.id).collect::<Vec<_>>(),
            hard_negatives(&examples, 2.0, 7)
                .iter()
                .map(|n| &n.id)
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn the_fraction_of_the_ratio_is_drawn_per_question() {
        let examples: Vec<Example> = (0..400)
            .map(|i| example(&format!("q{i}"), 0, &format!("paragraph {}", i % 10), "zzz"))
            .collect();
        assert!(hard_negatives(&examples, 0.0, 1).is_empty());
        let half = hard_negatives(&examples, 0.5, 1).len();
        assert!(
            (150..250).contains(&half),
            "{half} negatives for 400 questions at 0.5"
        );
        assert_ne!(
            hard_negatives(&examples, 0.5, 1)
                .iter()
                .map(|n| n.id.clone())
                .collect::<Vec<_>>(),
            hard_negatives(&examples, 0.5, 2)
                .iter()
                .map(|n| n.id.clone())
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn distractors_hide_the_own_paragraph_among_others() {
        let examples = corpus();
        let passages = Passages::new(&examples);
        let (list, own) = passages.with_distractors(&examples[4], 3, 11);
        assert_eq!(&*list[own], "Paris is in France.");
        assert_eq!(list.len(), 3);
        assert!(
            list.iter()
                .filter(|p| &***p == "Paris is in France.")
                .count()
                == 1
        );
        assert!(list.contains(&Arc::from("Lyon is too.")));
        let (alone, at) = passages.with_distractors(&examples[4], 1, 11);
        assert_eq!((alone.len(), at), (1, 0));
    }
}
