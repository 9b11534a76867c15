//! Labels and decoding agree: logits that put all their mass on the training labels decode,
//! through the real windows, to the gold answer (SQuAD v1.1 dev, every question).

mod common;

use bertqa::qa::decode::{decode, DecodeConfig, WindowLogits};
use bertqa::qa::features::{Featurizer, WindowConfig};
use bertqa::qa::squad::metrics;

#[test]
fn oracle_logits_at_the_labels_decode_to_the_gold_answer() {
    let featurizer = Featurizer::from_file(
        &common::pretrained_dir().join("tokenizer.json"),
        WindowConfig::default(),
    )
    .unwrap();
    let examples = common::dev_examples();
    let (mut exact, mut misses) = (0usize, vec![]);
    for example in &examples {
        let windows = featurizer
            .windows(&example.question, &example.context)
            .unwrap();
        let rows: Vec<(Vec<f32>, Vec<f32>)> = windows
            .iter()
            .map(|w| {
                let (s, e) = w.label(example.answer_span());
                let (mut start, mut end) = (vec![0.0; w.len()], vec![0.0; w.len()]);
                start[s] = 10.0;
                end[e] = 10.0;
                (start, end)
            })
            .collect();
        let logits: Vec<WindowLogits> = rows
            .iter()
            .map(|(s, e)| WindowLogits {
                start: s.clone(),
                end: e.clone(),
            })
            .collect();
        let prediction = decode(
            &example.context,
            &windows,
            &logits,
            &DecodeConfig::default(),
            false,
        )
        .unwrap();
        let gold = &example.answers[0].text;
        if metrics::exact_match(prediction.chosen_text(None), gold) == 1.0 {
            exact += 1;
        } else if misses.len() < 5 {
            misses.push((prediction.chosen_text(None).to_string(), gold.clone()));
        }
    }
    let rate = exact as f64 / examples.len() as f64;
    // Answers that end inside a word piece ("1990s" for a gold "1990") cannot be exact.
    assert!(rate > 0.99, "oracle EM {rate}: {misses:?}");
}
