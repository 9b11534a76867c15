//! `/answer` over several passages (`contexts`) end to end on a tiny random model exported at
//! test time: the best answer is one passage's own, every listed answer names its passage and
//! is a span of it, one listed passage is the single-context answer, and `min_score` abstains
//! explicitly.

mod common;

use bertqa::qa::squad::Example;
use common::server::{config, TestServer};
use serde_json::{json, Value};

/// Three different paragraphs of `examples`, in order (the first questions share theirs).
fn three_paragraphs(examples: &[Example]) -> Vec<&str> {
    let mut passages: Vec<&str> = vec![];
    for e in examples {
        if !passages.contains(&&*e.context) {
            passages.push(&e.context);
        }
    }
    passages.truncate(3);
    assert_eq!(passages.len(), 3);
    passages
}

/// `question` answered over each of `passages` alone, as single-context requests.
async fn answers_alone(server: &TestServer, question: &str, passages: &[&str]) -> Vec<Value> {
    let mut alone = vec![];
    for passage in passages {
        let (status, answer) = server
            .post_json(
                "/answer",
                &json!({"question": question, "context": passage}),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["no_answer"], false);
        assert!(answer.get("context_index").is_none());
        alone.push(answer);
    }
    alone
}

/// Each answer of a many-passage reply is the span its offsets give in the passage it names,
/// and only the passage given with an id (the second) names it.
fn assert_each_a_span_of_its_passage(answers: &[Value], passages: &[&str]) {
    for a in answers {
        let i = a["context_index"].as_u64().unwrap() as usize;
        let (start, end) = (a["start"].as_u64().unwrap(), a["end"].as_u64().unwrap());
        assert_eq!(
            a["answer"],
            common::chars(passages[i], start as usize, end as usize)
        );
        assert_eq!(a.get("context_id").is_some(), i == 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_over_several_passages_come_from_one_of_them_and_name_it() {
    let dir = tempfile::tempdir().unwrap();
    // fp32: this int8 graph's activation scales span the batch, and the passages share one.
    let folder = common::tiny_model_folder(dir.path());
    let server = TestServer::start(config(&folder, &["--graph", "fp32"])).await;
    let examples: Vec<Example> = common::dev_examples().into_iter().take(100).collect();
    let question = &examples[0].question;
    let passages = three_paragraphs(&examples);
    let alone = answers_alone(&server, question, &passages).await;
    let listed = json!([passages[0], {"id": "doc-b", "text": passages[1]}, passages[2]]);
    let (status, read) = server
        .post_json(
            "/answer",
            &json!({"question": question, "contexts": listed, "top_k": 6}),
        )
        .await;
    assert_eq!(status, 200, "{read}");
    let index = read["context_index"].as_u64().unwrap() as usize;
    // The best answer is that passage's own best answer, with its offsets in that passage.
    for key in ["answer", "start", "end", "passage_probability"] {
        assert_eq!(
            read[key], alone[index][key],
            "{key}: {read} vs {}",
            alone[index]
        );
    }
    assert_eq!(read.get("context_id").is_some(), index == 1);
    let answers = read["answers"].as_array().unwrap();
    assert_eq!(answers.len(), 6);
    assert_each_a_span_of_its_passage(answers, &passages);
    assert_eq!(answers[0]["answer"], read["answer"]);
    // One passage in a list is the single-context answer, plus its index.
    let (_, single) = server
        .post_json(
            "/answer",
            &json!({"question": question, "contexts": [passages[2]]}),
        )
        .await;
    assert_eq!(single["context_index"], 0);
    for key in ["answer", "start", "end", "score"] {
        assert_eq!(single[key], alone[2][key]);
    }
    // Asking for more confidence than any answer has gives an explicit no-answer.
    let (status, none) = server
        .post_json(
            "/answer",
            &json!({"question": question, "contexts": passages, "min_score": 1.0, "top_k": 2}),
        )
        .await;
    assert_eq!(status, 200, "{none}");
    assert_eq!(none["no_answer"], true);
    assert_eq!(none["answer"], "");
    assert!(none.get("context_index").is_none());
    assert_eq!(
        none["answers"].as_array().unwrap().len(),
        2,
        "alternatives shown"
    );
    server.stop().await.unwrap();
}
