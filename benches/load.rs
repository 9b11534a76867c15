//! HTTP load generator for `/answer`: dev questions at fixed concurrency levels, q/s and
//! latency percentiles. It speaks the same JSON to bertqa and to the Hugging Face peer
//! (bench/serve_hf.py), so both are measured by the same client in one run.
//!
//! `cargo bench --bench load -- URL SQUAD_FILE QUESTIONS CONCURRENCY[,CONCURRENCY...] LABEL`
//! prints one line per level: `LABEL c=C: Q q/s p50=.. p95=.. p99=.. ms failed=F`. With a
//! sixth argument PASSAGES above 1, each question brings that many `contexts`: its own
//! paragraph among distractors, drawn as `bertqa evaluate-passages` draws them.
//!
//! `cargo bench --bench load -- soak URL SQUAD_FILE RATE SECONDS` sends RATE requests per
//! second open-loop (not waiting for answers) for SECONDS and prints, every 10 s and at the
//! end, how many were answered 200, refused 429, or failed otherwise (which must stay 0).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bertqa::pipeline::passages::distractor_sets;
use bertqa::qa::squad::load_squad;
use bertqa::qa::squad::passages::Passages;
use serde_json::json;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted
        .get(index)
        .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
}

async fn level(
    url: &str,
    bodies: &Arc<Vec<String>>,
    concurrency: usize,
) -> (f64, Vec<Duration>, usize) {
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, next, bodies, url) = (
                client.clone(),
                next.clone(),
                bodies.clone(),
                url.to_string(),
            );
            tokio::spawn(async move {
                let (mut latencies, mut failed) = (vec![], 0);
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(body) = bodies.get(i) else { break };
                    let sent = Instant::now();
                    let response = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    let answered = match response {
                        Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                        _ => false,
                    };
                    if answered {
                        latencies.push(sent.elapsed());
                    } else {
                        failed += 1;
                    }
                }
                (latencies, failed)
            })
        })
        .collect();
    let (mut latencies, mut failed) = (vec![], 0);
    for worker in workers {
        let (l, f) = worker.await.expect("worker");
        latencies.extend(l);
        failed += f;
    }
    let rate = latencies.len() as f64 / started.elapsed().as_secs_f64();
    latencies.sort();
    (rate, latencies, failed)
}

/// Requests answered 200, refused 429, and anything else (errors, other codes, no answer).
#[derive(Default)]
struct Outcomes {
    answered: AtomicUsize,
    refused: AtomicUsize,
    failed: AtomicUsize,
}

impl Outcomes {
    fn line(&self) -> String {
        format!(
            "answered={} refused={} failed={}",
            self.answered.load(Ordering::SeqCst),
            self.refused.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst)
        )
    }
}

async fn soak(url: &str, bodies: Vec<String>, rate: f64, seconds: u64) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let outcomes = Arc::new(Outcomes::default());
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    let (mut sent, mut last_report, mut pending) = (0usize, 0u64, tokio::task::JoinSet::new());
    while started.elapsed() < Duration::from_secs(seconds) {
        ticker.tick().await;
        let body = bodies[sent % bodies.len()].clone();
        let (client, url, counts) = (client.clone(), url.to_string(), outcomes.clone());
        pending.spawn(async move {
            let response = client
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            let counter = match response {
                Ok(r) if r.status().as_u16() == 429 => &counts.refused,
                Ok(r) if r.status().is_success() => match r.bytes().await {
                    Ok(_) => &counts.answered,
                    Err(_) => &counts.failed,
                },
                _ => &counts.failed,
            };
            counter.fetch_add(1, Ordering::SeqCst);
        });
        sent += 1;
        while pending.try_join_next().is_some() {}
        let elapsed = started.elapsed().as_secs();
        if elapsed >= last_report + 10 {
            last_report = elapsed;
            println!("soak t={elapsed}s sent={sent} {}", outcomes.line());
        }
    }
    while pending.join_next().await.is_some() {}
    println!("soak done sent={sent} {}", outcomes.line());
}

/// `/answer` bodies of the first `questions` questions of a SQuAD file, each with its own
/// paragraph as `context`, or with `passages` > 1 as one of that many `contexts`.
fn request_bodies(data: &str, questions: usize, passages: usize) -> anyhow::Result<Vec<String>> {
    let examples = load_squad(std::path::Path::new(data))?.examples();
    let pool = Passages::new(&examples);
    let mut chosen = examples;
    chosen.truncate(questions);
    if passages <= 1 {
        return Ok(chosen
            .iter()
            .map(|e| json!({"question": e.question, "context": &*e.context}).to_string())
            .collect());
    }
    let sets = distractor_sets(&chosen, &pool, passages, 42);
    Ok(chosen
        .iter()
        .zip(sets)
        .map(|(e, set)| {
            let texts: Vec<&str> = set.passages.iter().map(|p| &**p).collect();
            json!({"question": e.question, "contexts": texts}).to_string()
        })
        .collect())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    if let [_, mode, url, data, rate, seconds] = args.as_slice() {
        if mode == "soak" {
            let bodies = request_bodies(data, 10_570, 1)?;
            soak(url, bodies, rate.parse()?, seconds.parse()?).await;
            return Ok(());
        }
    }
    let (fixed, passages) = match args.as_slice() {
        [fixed @ .., passages] if args.len() == 7 => (fixed, passages.parse()?),
        fixed => (fixed, 1),
    };
    let [_, url, data, questions, levels, label] = fixed else {
        anyhow::bail!("usage: load URL SQUAD_FILE QUESTIONS CONCURRENCY[,..] LABEL [PASSAGES]");
    };
    let bodies = Arc::new(request_bodies(data, questions.parse()?, passages)?);
    let warmup = Arc::new(bodies.iter().take(16).cloned().collect::<Vec<_>>());
    level(url, &warmup, 2).await;
    for concurrency in levels.split(',') {
        let concurrency: usize = concurrency.parse()?;
        let (rate, latencies, failed) = level(url, &bodies, concurrency).await;
        println!(
            "{label} c={concurrency}: {rate:.1} q/s p50={:.1} p95={:.1} p99={:.1} ms failed={failed}",
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.95),
            percentile(&latencies, 0.99),
        );
    }
    Ok(())
}
