//! `bertqa`: the command line of the question-answering system.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use bertqa::model::manifest::ModelManifest;
use bertqa::model::BertConfig;
use bertqa::onnx::bert::{OpStyle, WeightFormat};
use bertqa::pipeline::calibrate::Calibration;
use bertqa::pipeline::export::{
    export_model_folder, make_model_folder_portable, write_random_checkpoint, ExportOptions,
};
use bertqa::pipeline::predict::{predict_examples, prediction_files, BatchRunner, PredictConfig};
use bertqa::qa::batch::PaddedBatch;
use bertqa::qa::features::{Featurizer, WindowConfig};
use bertqa::qa::squad::{load_squad, metrics, SquadVersion};
use bertqa::runtime::engine::{DeviceKind, Engine, EngineConfig, GraphChoice};
use bertqa::serve::config::ServeConfig;
use bertqa::serve::{init_logging, shutdown_signal, Service};

/// Extractive question answering with BERT: score, predict, export and serve.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Score a prediction file against a SQuAD file with the official script's rules; prints
    /// the official script's JSON (v1.1: exact_match, f1; v2.0: exact, f1, HasAns_*, ...).
    Score {
        /// SQuAD dataset (.json or .json.gz), v1.1 or v2.0.
        data: PathBuf,
        /// Predictions: a JSON object mapping question id to answer text.
        predictions: PathBuf,
        /// v2.0: JSON object mapping question id to no-answer probability.
        #[arg(long)]
        na_prob_file: Option<PathBuf>,
        /// v2.0: predict "no answer" when the no-answer probability exceeds this.
        #[arg(long, default_value_t = 1.0)]
        na_prob_thresh: f64,
    },
    /// Turn a checkpoint folder (config.json, model.safetensors, tokenizer.json) into a model
    /// folder the server loads (model.onnx, model-int8.onnx, tokenizer.json, bertqa.json).
    Export {
        /// Checkpoint folder (Hugging Face layout).
        #[arg(long)]
        checkpoint: PathBuf,
        /// Model folder to write.
        #[arg(long)]
        out: PathBuf,
        /// Also write the int8 graph (dynamic quantization, per-channel weights).
        #[arg(long)]
        int8: bool,
        /// Write only the int8 graph (a smaller folder to ship); implies --int8.
        #[arg(long)]
        int8_only: bool,
        /// Which dense layers the int8 graph quantizes.
        #[arg(long, value_enum, default_value_t = WeightFormat::Int8)]
        int8_mode: WeightFormat,
        /// int8-rowwise only: smooth activation outliers into the weights (SmoothQuant), with
        /// ranges measured on this SQuAD file (use training data, not the set you score on).
        #[arg(long)]
        calibration_data: Option<PathBuf>,
        /// Questions of --calibration-data to measure on, spread evenly over the file.
        #[arg(long, default_value_t = Calibration::DEFAULT_QUESTIONS)]
        calibration_questions: usize,
        /// SmoothQuant's migration strength α: the share of the activation range moved into
        /// the weights.
        #[arg(long, default_value_t = Calibration::DEFAULT_ALPHA)]
        smoothing_alpha: f32,
        /// Operators of the graph: ONNX Runtime's fused kernels, or portable primitives.
        #[arg(long, value_enum, default_value_t = OpStyle::Primitive)]
        ops: OpStyle,
        /// SQuAD version the model was trained for (2.0 models may answer nothing).
        #[arg(long, value_enum, default_value_t = SquadVersion::V1)]
        squad_version: SquadVersion,
        /// Window length the model was trained with.
        #[arg(long, default_value_t = 384)]
        max_seq_len: usize,
        /// Window overlap.
        #[arg(long, default_value_t = 128)]
        doc_stride: usize,
        /// Longest question in tokens.
        #[arg(long, default_value_t = 64)]
        max_query_len: usize,
        /// Longest answer in tokens.
        #[arg(long, default_value_t = 30)]
        max_answer_len: usize,
    },
    /// Write a randomly initialised checkpoint of any BERT shape (a config.json such as
    /// bert-base's): to size hardware, benchmark the engine and rehearse a deployment before a
    /// trained model exists. Its answers are meaningless; `export` turns it into a model folder.
    RandomCheckpoint {
        /// A Hugging Face BERT config.json (hidden size, layers, heads, vocabulary, ...).
        #[arg(long)]
        config: PathBuf,
        /// tokenizer.json to copy beside the weights (its vocabulary must match the config).
        #[arg(long)]
        tokenizer: PathBuf,
        /// Checkpoint folder to write.
        #[arg(long)]
        out: PathBuf,
        /// Seed of the N(0, initializer_range) weights.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Rewrite a model folder's int8 graph so that no CPU can saturate its integer products
    /// (graphs exported before weights were pair-bounded can, on CPUs without AVX-512 VNNI, and
    /// then answer differently there); the rest of the folder is copied unchanged.
    MakePortable {
        /// Model folder with model-int8.onnx.
        #[arg(long)]
        model_dir: PathBuf,
        /// Folder to write (may be --model-dir itself).
        #[arg(long)]
        out: PathBuf,
    },
    /// Serve a model folder over HTTP (POST /answer, POST /evaluate, GET /metrics, /docs).
    Serve(Box<ServeConfig>),
    /// Health-check a running server: GET the URL, exit 0 on a 2xx answer (container
    /// HEALTHCHECKs use this, so the image needs no curl).
    Probe {
        /// e.g. http://127.0.0.1:8080/health
        url: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 3)]
        timeout_secs: u64,
    },
    /// Print the HTTP API's OpenAPI document (YAML), as committed in openapi.yaml.
    Openapi,
    /// Predict every question of a SQuAD file with a model folder (like run_qa's --do_predict);
    /// writes the official prediction file (id -> answer), scored by `bertqa score`.
    Predict {
        /// Model folder (from `bertqa export`).
        #[arg(long)]
        model_dir: PathBuf,
        /// SQuAD file to answer.
        #[arg(long)]
        data: PathBuf,
        /// Prediction file to write.
        #[arg(long)]
        out: PathBuf,
        /// Only the first N questions.
        #[arg(long)]
        limit: Option<usize>,
        /// v2.0 models: also write id -> null odds, for `score --na-prob-file`.
        #[arg(long)]
        na_prob_out: Option<PathBuf>,
        /// Which graph to run (auto: as `serve --graph auto`, int8 on CPU when the folder has it).
        #[arg(long, value_enum, default_value_t = GraphChoice::Auto)]
        graph: GraphChoice,
        /// Execution provider.
        #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
        device: DeviceKind,
        /// Intra-op threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
    },
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> anyhow::Result<T> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))?;
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(&mut de)
        .with_context(|| format!("{what} {} is not the expected JSON object", path.display()))
}

fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_vec(value)?)
        .with_context(|| format!("cannot write {}", path.display()))
}

struct PredictArgs {
    model_dir: PathBuf,
    data: PathBuf,
    out: PathBuf,
    limit: Option<usize>,
    na_prob_out: Option<PathBuf>,
    engine: EngineConfig,
}

fn predict(args: PredictArgs) -> anyhow::Result<()> {
    init_logging(bertqa::serve::config::LogFormat::Text);
    let mut engine = Engine::load(&args.model_dir, &args.engine)?;
    let manifest = engine.manifest().clone();
    let featurizer =
        Featurizer::from_file(&args.model_dir.join("tokenizer.json"), manifest.window)?;
    let dataset = load_squad(&args.data)?;
    let mut examples = dataset.examples();
    examples.truncate(args.limit.unwrap_or(usize::MAX));
    let with_null = manifest.allows_no_answer();
    let config = PredictConfig {
        decode: bertqa::qa::decode::DecodeConfig {
            max_answer_len: manifest.max_answer_len,
            ..Default::default()
        },
        with_null,
        ..PredictConfig::default()
    };
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} windows | {per_sec} | ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let mut backend =
        BatchRunner::new(featurizer.pad_id(), |batch: &PaddedBatch| engine.run(batch));
    let predictions = predict_examples(
        &examples,
        &featurizer,
        &config,
        &mut backend,
        |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    )?;
    bar.finish_and_clear();
    let (answers, null_odds) = prediction_files(&examples, &predictions, with_null.then_some(0.0));
    write_json(&args.out, &answers)?;
    if let Some(path) = &args.na_prob_out {
        write_json(path, &null_odds)?;
    }
    eprintln!(
        "predicted {} questions in {:.1} s ({:.1} questions/s) with {}",
        examples.len(),
        started.elapsed().as_secs_f64(),
        examples.len() as f64 / started.elapsed().as_secs_f64(),
        engine.graph().display()
    );
    Ok(())
}

fn serve(config: ServeConfig) -> anyhow::Result<()> {
    init_logging(config.log_format);
    let address = config
        .address()
        .map_err(|m| anyhow::anyhow!("invalid settings: {m}"))?;
    let service = Service::load(config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address}"))?;
        tracing::info!(address = %listener.local_addr()?, "listening");
        service.serve(listener, shutdown_signal()).await?;
        Ok(())
    })
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(config) => serve(*config),
        Command::Probe { url, timeout_secs } => {
            let status =
                bertqa::serve::probe::probe(&url, std::time::Duration::from_secs(timeout_secs))
                    .map_err(anyhow::Error::msg)?;
            println!("{status}");
            Ok(())
        }
        Command::Openapi => {
            print!(
                "{}",
                bertqa::serve::openapi::yaml().map_err(anyhow::Error::msg)?
            );
            Ok(())
        }
        Command::Score {
            data,
            predictions,
            na_prob_file,
            na_prob_thresh,
        } => {
            let dataset = load_squad(&data)?;
            let predictions: HashMap<String, String> =
                read_json(&predictions, "prediction file (id -> answer text)")?;
            let na_probs: Option<serde_json::Map<String, serde_json::Value>> = na_prob_file
                .map(|p| read_json(&p, "no-answer probability file (id -> number)"))
                .transpose()?;
            let scores = metrics::score(&dataset, &predictions, na_probs.as_ref(), na_prob_thresh)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&scores.to_official_json())?
            );
            Ok(())
        }
        Command::Export {
            checkpoint,
            out,
            int8,
            int8_only,
            int8_mode,
            calibration_data,
            calibration_questions,
            smoothing_alpha,
            ops,
            squad_version,
            max_seq_len,
            doc_stride,
            max_query_len,
            max_answer_len,
        } => {
            let window = WindowConfig {
                max_seq_len,
                doc_stride,
                max_query_len,
            };
            if int8_mode == WeightFormat::Fp32 {
                anyhow::bail!("--int8-mode must be int8, int8-mixed or int8-rowwise");
            }
            let options = ExportOptions {
                fp32: !int8_only,
                int8: (int8 || int8_only).then_some(int8_mode),
                ops,
                window,
                max_answer_len,
                squad_version,
                calibration: calibration_data.map(|data| Calibration {
                    data,
                    questions: calibration_questions,
                    alpha: smoothing_alpha,
                }),
            };
            for path in export_model_folder(&checkpoint, &out, &options)? {
                eprintln!("wrote {}", path.display());
            }
            Ok(())
        }
        Command::RandomCheckpoint {
            config,
            tokenizer,
            out,
            seed,
        } => {
            let config = BertConfig::from_file(&config)?;
            write_random_checkpoint(&out, &config, &tokenizer, seed)?;
            eprintln!("wrote {}", out.display());
            Ok(())
        }
        Command::MakePortable { model_dir, out } => {
            let report = make_model_folder_portable(&model_dir, &out)?;
            eprintln!(
                "{}: {} of {} integer products re-quantized; worst 16-bit lane sum {} -> {} (limit {})",
                out.display(),
                report.rewritten,
                report.products,
                report.worst_before,
                report.worst_after,
                i16::MAX
            );
            Ok(())
        }
        Command::Predict {
            model_dir,
            data,
            out,
            limit,
            na_prob_out,
            graph,
            device,
            threads,
        } => {
            let manifest = ModelManifest::load(&model_dir)
                .map_err(|m| anyhow::anyhow!("model folder {}: {m}", model_dir.display()))?;
            let int8 = graph.int8(&manifest, device).map_err(anyhow::Error::msg)?;
            predict(PredictArgs {
                model_dir,
                data,
                out,
                limit,
                na_prob_out,
                engine: EngineConfig {
                    threads,
                    device,
                    int8,
                },
            })
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
