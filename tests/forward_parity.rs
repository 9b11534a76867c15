//! The tch model computes what Hugging Face `BertForQuestionAnswering` computes (fp32, max abs
//! logit difference ≤ 1e-4 on real SQuAD windows), bf16 stays close, checkpoints round-trip
//! exactly, and any BERT size builds under Hugging Face names.
//! Reference: `scripts/reference/forward_logits.py` (fixtures in tests/fixtures).
#![cfg(feature = "train")]

mod common;

use std::collections::HashMap;

use bertqa::model::BertConfig;
use bertqa::train::bert::BertForQuestionAnswering;
use bertqa::train::checkpoint::{load_weights, save_weights};
use bertqa::train::precision::Precision;
use tch::{nn::VarStore, Device, Kind, Tensor};

fn fixture() -> HashMap<String, Tensor> {
    Tensor::read_safetensors(common::fixture("forward-parity.safetensors"))
        .unwrap()
        .into_iter()
        .collect()
}

fn pretrained_model() -> (VarStore, BertForQuestionAnswering) {
    let dir = common::pretrained_dir();
    let config = BertConfig::from_file(&dir.join("config.json")).unwrap();
    let vs = VarStore::new(Device::Cpu);
    let model = BertForQuestionAnswering::new(&vs.root(), &config);
    let report = load_weights(&vs, &dir.join("model.safetensors")).unwrap();
    assert_eq!(report.missing, vec!["qa_outputs.bias", "qa_outputs.weight"]);
    assert!(report.unexpected.is_empty(), "{:?}", report.unexpected);
    let head = load_weights(&vs, &common::fixture("qa-head.safetensors")).unwrap();
    assert_eq!(head.missing.len(), vs.variables().len() - 2);
    (vs, model)
}

fn max_diff_on_real_tokens(a: &Tensor, b: &Tensor, mask: &Tensor) -> f64 {
    ((a - b).abs() * mask.to_kind(Kind::Float))
        .max()
        .double_value(&[])
}

#[test]
fn fp32_logits_match_hugging_face() {
    let f = fixture();
    let (_vs, model) = pretrained_model();
    let (ids, types, mask) = (&f["input_ids"], &f["token_type_ids"], &f["attention_mask"]);
    let (start, end) = tch::no_grad(|| model.forward_t(ids, types, mask, false));
    let d_start = max_diff_on_real_tokens(&start, &f["start_logits"], mask);
    let d_end = max_diff_on_real_tokens(&end, &f["end_logits"], mask);
    eprintln!("padded batch: max |ours - HF| start {d_start:e}, end {d_end:e}");
    assert!(
        d_start <= 1e-4 && d_end <= 1e-4,
        "padded batch: start {d_start}, end {d_end}"
    );

    // Each window alone, unpadded: padding must not change any real token's logits.
    for w in 0..ids.size()[0] {
        let len = mask.get(w).sum(Kind::Int64).int64_value(&[]);
        let one = |t: &Tensor| t.get(w).narrow(0, 0, len).unsqueeze(0);
        let (s, e) = tch::no_grad(|| model.forward_t(&one(ids), &one(types), &one(mask), false));
        let ds = (s - one(&f["start_logits"])).abs().max().double_value(&[]);
        let de = (e - one(&f["end_logits"])).abs().max().double_value(&[]);
        assert!(
            ds <= 1e-4 && de <= 1e-4,
            "window {w} alone: start {ds}, end {de}"
        );
    }
}

#[test]
fn bf16_logits_stay_close_to_fp32() {
    let f = fixture();
    let (_vs, mut model) = pretrained_model();
    model.set_precision(Precision::Bf16);
    let (start, _) = tch::no_grad(|| {
        model.forward_t(
            &f["input_ids"],
            &f["token_type_ids"],
            &f["attention_mask"],
            false,
        )
    });
    assert_eq!(start.kind(), Kind::Float);
    let mask = &f["attention_mask"];
    let diff = max_diff_on_real_tokens(&start, &f["start_logits"], mask);
    assert!(diff < 0.3, "bf16 drifted {diff}");
    // Same top start token in every window.
    let masked = |t: &Tensor| t.masked_fill(&mask.eq(0), -1e9).argmax(-1, false);
    assert!(masked(&start).equal(&masked(&f["start_logits"])));
}

#[test]
fn saved_checkpoints_reload_to_identical_logits() {
    let f = fixture();
    let (vs, model) = pretrained_model();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    save_weights(&vs, &path).unwrap();
    let names: Vec<String> = Tensor::read_safetensors(&path)
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("bert.") || n.starts_with("qa_outputs.")),
        "{names:?}"
    );

    let config = BertConfig::from_file(&common::pretrained_dir().join("config.json")).unwrap();
    let vs2 = VarStore::new(Device::Cpu);
    let reloaded = BertForQuestionAnswering::new(&vs2.root(), &config);
    let report = load_weights(&vs2, &path).unwrap();
    assert!(
        report.missing.is_empty() && report.unexpected.is_empty(),
        "{report:?}"
    );
    let run = |m: &BertForQuestionAnswering| {
        tch::no_grad(|| {
            m.forward_t(
                &f["input_ids"],
                &f["token_type_ids"],
                &f["attention_mask"],
                false,
            )
        })
    };
    let (a, b) = (run(&model), run(&reloaded));
    assert!(a.0.equal(&b.0) && a.1.equal(&b.1));
}

#[test]
fn a_bert_base_shaped_config_builds_runs_and_names_like_hugging_face() {
    let mut config = BertConfig::tiny(30522);
    (
        config.hidden_size,
        config.num_hidden_layers,
        config.num_attention_heads,
        config.intermediate_size,
    ) = (768, 12, 12, 3072);
    let vs = VarStore::new(Device::Cpu);
    let model = BertForQuestionAnswering::new(&vs.root(), &config);
    let params: i64 = vs
        .trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum();
    assert!(
        (108_000_000..110_000_000).contains(&params),
        "{params} parameters"
    );
    let vars = vs.variables();
    assert_eq!(
        vars["bert.encoder.layer.11.attention.self.query.weight"].size(),
        vec![768, 768]
    );
    assert_eq!(
        vars["bert.encoder.layer.11.intermediate.dense.weight"].size(),
        vec![3072, 768]
    );
    assert_eq!(vars["qa_outputs.weight"].size(), vec![2, 768]);
    let ids = Tensor::from_slice(&[101i64, 2054, 2003, 102, 2009, 102]).unsqueeze(0);
    let types = Tensor::from_slice(&[0i64, 0, 0, 0, 1, 1]).unsqueeze(0);
    let (start, end) = tch::no_grad(|| model.forward_t(&ids, &types, &ids.ones_like(), false));
    assert_eq!((start.size(), end.size()), (vec![1, 6], vec![1, 6]));
}
