//! The shipped default model (`models/minilm-l6-squad1`) served over HTTP answers real SQuAD
//! questions: the questions below are dev v1.1 questions its model card's evaluation gets
//! right, and the first 300 dev questions must score near the card's overall numbers.

mod common;

use std::path::PathBuf;

use bertqa::onnx::portable::graph_worst_pair_sum;
use bertqa::onnx::proto::ModelProto;
use bertqa::qa::squad::metrics::exact_match;
use common::server::{config, TestServer};
use prost::Message;
use serde_json::json;

fn default_model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/minilm-l6-squad1")
}

/// Dev v1.1 ids answered exactly right in the card's evaluation by the fp32 graph, the shipped
/// int8 graph offline, and the int8 graph through `POST /evaluate`.
const RIGHT_IN_THE_CARD: [&str; 12] = [
    "56be4db0acb8001400a502ec", // Which NFL team represented the AFC at Super Bowl 50?
    "5733a1854776f41900660f0e", // How many rooms does the Warsaw Historical Museum have?
    "56e16839cd28a01900c67889", // What are two basic primary resources used to guage complexity?
    "570966e0200fba1400367f4f", // What are BSkyB's standard definition broadcasts compliant with?
    "57265526708984140094c2be", // Which countries became dependent on US's security assurance to threats?
    "5725e45689a1e219009ac04b", // Which Fresno district is the center for the LGBT community?
    "5726f4a0708984140094d6ed", // The paintings donated by John Sheepshanks were by artists of which nationality?
    "5728fc2eaf94a219006a9ecb", // Vaginal secretions serve as a chemical protective barrier following what?
    "572a0a391d046914007796df", // What has crime rate been show to be correlated with in a society?
    "572921646aef051400154a7a", // Where is English spoken the most?
    "572fac17947a6a140053cb55", // What act set out the Parliament's powers as a devolved legislature?
    "5737a7351c456719005744f1", // What is the only form potential energy can change into?
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_model_answers_real_questions_over_http() {
    let folder = default_model();
    assert!(
        folder.join("bertqa.json").is_file(),
        "the default model folder {} is missing",
        folder.display()
    );
    let server = TestServer::start(config(&folder, &[])).await;
    let examples = common::dev_examples();
    for id in RIGHT_IN_THE_CARD {
        let example = examples.iter().find(|e| e.id == id).unwrap();
        let (status, answer) = server
            .post_json(
                "/answer",
                &json!({"question": example.question, "context": &*example.context}),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
        let text = answer["answer"].as_str().unwrap();
        let right = example
            .gold_texts
            .iter()
            .any(|g| exact_match(text, g) == 1.0);
        assert!(
            right,
            "{}: answered {text:?}, gold {:?}",
            example.question, example.gold_texts
        );
    }
    let dev = std::fs::read(common::squad_dir().join("dev-v1.1.json.gz")).unwrap();
    let (status, scores) = server
        .post_raw("/evaluate?limit=300", Some("application/gzip"), dev)
        .await;
    assert_eq!(status, 200, "{scores}");
    let (em, f1) = (
        scores["exact_match"].as_f64().unwrap(),
        scores["f1"].as_f64().unwrap(),
    );
    assert!(
        em >= 60.0 && f1 >= 70.0,
        "first 300 dev questions: EM {em:.1}, F1 {f1:.1}"
    );
    server.stop().await.unwrap();
}

#[test]
fn the_default_model_cannot_saturate_a_16_bit_product_on_any_cpu() {
    // CPUs without AVX-512 VNNI add pairs of u8 x s8 products in saturating 16-bit lanes; a
    // graph within the bound gives the same integer products on every x86-64 CPU.
    let bytes = std::fs::read(default_model().join("model-int8.onnx")).unwrap();
    let graph = ModelProto::decode(bytes.as_slice()).unwrap().graph.unwrap();
    let (name, worst) = graph_worst_pair_sum(&graph)
        .unwrap()
        .expect("integer products");
    assert!(worst <= i16::MAX as u32, "{name} reaches {worst}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_model_finds_the_right_passage_and_abstains_on_a_foreign_question() {
    let server = TestServer::start(config(&default_model(), &[])).await;
    let dev = common::dev_squad();
    let paragraph = |article: usize, p: usize| dev.data[article].paragraphs[p].context.clone();
    // Another Super Bowl 50 paragraph, the one with the answer, and one about Warsaw.
    let super_bowl = paragraph(0, 0);
    let warsaw = dev
        .data
        .iter()
        .find(|a| a.title.contains("Warsaw"))
        .map(|a| a.paragraphs[0].context.clone())
        .unwrap();
    let passages = json!([paragraph(0, 3), {"id": "sb50", "text": super_bowl}, warsaw]);
    let question = "Which NFL team represented the AFC at Super Bowl 50?";
    let (status, read) = server
        .post_json(
            "/answer",
            &json!({"question": question, "contexts": passages}),
        )
        .await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["answer"], "Denver Broncos", "{read}");
    assert_eq!(
        (read["context_index"].clone(), read["context_id"].clone()),
        (json!(1), json!("sb50"))
    );
    let (_, info) = server.get_text("/info").await;
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["score"], "calibrated", "{info}");
    // Four activation quantization sites, the attention and the two layer ends of each layer,
    // all run by bertqa's kernels (`--kernels fused-attention`, the default).
    assert_eq!(info["graph"]["fused_sites"], 6 * (4 + 1 + 2), "{info}");
    // Calibrated: a right answer is likely, a span for a question the passages cannot answer
    // is not, however sure its own passage's softmax is.
    assert!(read["score"].as_f64().unwrap() > 0.5, "{read}");
    let foreign = json!({"question": "What is the capital of France?", "contexts": passages});
    let (_, unsure) = server.post_json("/answer", &foreign).await;
    assert!(unsure["score"].as_f64().unwrap() < 0.1, "{unsure}");
    let mut abstaining = foreign.clone();
    abstaining["min_score"] = json!(0.5);
    let (status, none) = server.post_json("/answer", &abstaining).await;
    assert_eq!(status, 200, "{none}");
    assert_eq!(
        (none["no_answer"].clone(), none["answer"].clone()),
        (json!(true), json!(""))
    );
    assert!(none["score"].as_f64().unwrap() > 0.9, "{none}");
    // Asked for, the model's trained null answer (it learnt "not here" from other paragraphs
    // of the same article) turns the question down too.
    let mut nulled = foreign.clone();
    nulled["handle_impossible_answer"] = json!(true);
    let (status, none) = server.post_json("/answer", &nulled).await;
    assert_eq!(status, 200, "{none}");
    assert_eq!(none["no_answer"], json!(true), "{none}");
    // What this server states is what `openapi.yaml` (the default settings' document) states,
    // the null answer included, so a client generated from the file asks what it may.
    let (_, served) = server.get_text("/openapi.json").await;
    let served: serde_json::Value = serde_json::from_str(&served).unwrap();
    let committed = bertqa::serve::openapi::document(&Default::default());
    assert_eq!(served, serde_json::to_value(committed).unwrap());
    server.stop().await.unwrap();
}
