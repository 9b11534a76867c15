//! Windows, token type ids, context offsets and training labels equal Hugging Face
//! `run_qa.py`'s on all of SQuAD v1.1 dev and the first 5,000 train questions.
//! Reference: `scripts/reference/feature_digests.py` (digests committed in tests/fixtures).

mod common;

use std::collections::HashMap;
use std::io::Read;

use bertqa::qa::features::{Featurizer, WindowConfig};
use bertqa::qa::squad::load_squad;
use sha2::{Digest, Sha256};

fn digest(
    featurizer: &Featurizer,
    question: &str,
    context: &str,
    answer: Option<(usize, usize)>,
) -> (String, usize) {
    let windows = featurizer.windows(question, context).expect("windows");
    let join = |v: &[u32]| v.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
    let mut text = String::new();
    for w in &windows {
        let offsets: Vec<String> = w
            .context_spans
            .iter()
            .map(|s| s.map_or("-".to_string(), |(a, b)| format!("{a}:{b}")))
            .collect();
        let (start, end) = w.label(answer);
        text.push_str(&format!(
            "ids={};tt={};off={};lab={start},{end}\n",
            join(&w.input_ids),
            join(&w.token_type_ids),
            offsets.join(",")
        ));
    }
    let hash = Sha256::digest(text.as_bytes());
    (
        hash.iter().take(8).map(|b| format!("{b:02x}")).collect(),
        windows.len(),
    )
}

#[test]
fn windows_match_hugging_face_run_qa_on_squad() {
    let mut raw = String::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open(common::fixture("window-digests.tsv.gz")).unwrap(),
    )
    .read_to_string(&mut raw)
    .unwrap();
    let expected: HashMap<(String, String), (String, usize)> = raw
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            (
                (f[0].to_string(), f[1].to_string()),
                (f[2].to_string(), f[3].parse().unwrap()),
            )
        })
        .collect();
    let featurizer = Featurizer::from_file(
        &common::pretrained_dir().join("tokenizer.json"),
        WindowConfig::default(),
    )
    .unwrap();
    let mut checked = 0;
    let mut multi_window = 0;
    let mut mismatches = vec![];
    for (split, file, limit) in [
        ("dev", "dev-v1.1.json.gz", usize::MAX),
        ("train", "train-v1.1-rebuilt.json.gz", 5000),
    ] {
        let dataset = load_squad(&common::squad_dir().join(file)).unwrap();
        for example in dataset.examples().into_iter().take(limit) {
            let key = (split.to_string(), example.id.clone());
            let want = expected
                .get(&key)
                .unwrap_or_else(|| panic!("no reference for {key:?}"));
            let got = digest(
                &featurizer,
                &example.question,
                &example.context,
                example.answer_span(),
            );
            multi_window += usize::from(got.1 > 1);
            if got != *want {
                mismatches.push((key, got, want.clone()));
            }
            checked += 1;
        }
    }
    assert_eq!(
        checked,
        expected.len(),
        "every reference question was checked"
    );
    assert!(
        multi_window > 200,
        "the sample exercises the doc stride ({multi_window} questions)"
    );
    assert!(
        mismatches.is_empty(),
        "{} of {checked} differ, e.g. {:?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(5)]
    );
}
