//! ONNX Runtime inference: one session over a model folder's graph, run on padded batches.
//!
//! Start-up checks turn the usual deployment mistakes into messages: the runtime library
//! missing or too old, an incomplete model folder, a graph without the expected inputs and
//! outputs, a CUDA provider that is not installed.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use ort::ep::{self, ExecutionProvider};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::builder::SessionBuilder;
use ort::session::{Session, SessionInputValue};
use ort::value::Tensor;
use prost::Message;
use thiserror::Error;

use crate::model::manifest::{ModelManifest, FP32_GRAPH, INT8_GRAPH};
use crate::onnx::portable::graph_worst_pair_sum;
use crate::onnx::proto::ModelProto;
use crate::onnx::summary::GraphSummary;
use crate::qa::batch::{BatchLogits, PaddedBatch};
use crate::runtime::cpu::CpuFeatures;
use crate::runtime::fused::{self, Kernels};
use crate::runtime::shared::SharedWeights;

/// Why the engine could not start or run.
#[derive(Debug, Error)]
pub enum EngineError {
    /// The ONNX Runtime shared library is missing, unloadable or too old.
    #[error("ONNX Runtime: {0}")]
    Runtime(String),
    /// The model folder is incomplete or inconsistent.
    #[error("model folder {path}: {message}")]
    ModelFolder {
        /// The folder.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A requested execution provider cannot be used.
    #[error("execution provider: {0}")]
    Provider(String),
    /// Inference failed.
    #[error("inference failed: {0}")]
    Inference(String),
}

/// Which hardware runs the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum DeviceKind {
    /// ONNX Runtime's CPU kernels (MLAS).
    Cpu,
    /// The CUDA execution provider (needs the onnxruntime-gpu provider libraries).
    Cuda,
}

/// Which graph of a model folder to run: one choice for `serve --graph` and
/// `predict --graph`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphChoice {
    /// On CPU `model-int8.onnx` when the folder has it (fastest there), else `model.onnx`; on
    /// CUDA the reverse (int8 dynamic quantization runs on the CPU, not the GPU).
    Auto,
    /// `model.onnx`.
    Fp32,
    /// `model-int8.onnx`.
    Int8,
}

impl GraphChoice {
    /// Whether this choice runs the int8 graph of the folder `manifest` describes on
    /// `device`, or why the folder cannot satisfy it.
    pub fn int8(self, manifest: &ModelManifest, device: DeviceKind) -> Result<bool, String> {
        let missing = |flag: &str, export: &str| {
            Err(format!(
                "--graph {flag}, but the model folder has only {:?} ({export})",
                manifest.graphs
            ))
        };
        match self {
            GraphChoice::Fp32 if !manifest.has_fp32() => {
                missing("fp32", "export without --int8-only")
            }
            GraphChoice::Int8 if !manifest.has_int8() => missing("int8", "export with --int8"),
            GraphChoice::Fp32 => Ok(false),
            GraphChoice::Int8 => Ok(true),
            GraphChoice::Auto if device == DeviceKind::Cuda => Ok(!manifest.has_fp32()),
            GraphChoice::Auto => Ok(manifest.has_int8()),
        }
    }
}

/// How to start the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Intra-op threads (None: all cores).
    pub threads: Option<usize>,
    /// CPU or CUDA.
    pub device: DeviceKind,
    /// Run `model-int8.onnx` instead of `model.onnx`.
    pub int8: bool,
    /// bertqa's fused kernels or the file's operators as written.
    pub kernels: Kernels,
}

impl EngineConfig {
    /// The engine settings for `graph` on `device` in the folder `manifest` describes, or why
    /// the folder lacks that graph: one place for `serve` and `predict`.
    pub fn for_folder(
        manifest: &ModelManifest,
        graph: GraphChoice,
        device: DeviceKind,
        threads: Option<usize>,
        kernels: Kernels,
    ) -> Result<Self, String> {
        Ok(Self {
            threads,
            device,
            int8: graph.int8(manifest, device)?,
            kernels,
        })
    }
}

/// A loaded graph ready to run batches.
pub struct Engine {
    session: Session,
    manifest: ModelManifest,
    graph: PathBuf,
    summary: GraphSummary,
    fused_sites: usize,
}

/// A session builder with the engine's settings: all graph optimizations, `threads` intra-op
/// threads (None: all cores), and no memory pattern. A memory pattern is one block planned
/// per input shape; with batches of ever-changing shapes those blocks of every size fragment
/// the arena, which grew to 1.15 GB in a 10-minute soak against 0.57 GB without them, at the
/// same speed (bench/RESULTS.md, "Serving memory").
fn session_builder(threads: Option<usize>) -> Result<SessionBuilder, EngineError> {
    let env = super::environment::runtime()?;
    let threads = threads.unwrap_or_else(super::cpu::cores);
    let runtime = |e: ort::Error<_>| EngineError::Runtime(e.to_string());
    Session::builder(&env)
        .map_err(|e| EngineError::Runtime(e.to_string()))?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(runtime)?
        .with_intra_threads(threads)
        .map_err(runtime)?
        .with_memory_pattern(false)
        .map_err(runtime)
}

/// Adds the CUDA execution provider to `builder`, or says why this runtime cannot.
fn register_cuda(builder: &mut SessionBuilder) -> Result<(), EngineError> {
    if !ep::CUDA::is_available().unwrap_or(false) {
        return Err(EngineError::Provider(
            "CUDA requested but this ONNX Runtime has no CUDA provider: use the onnxruntime-gpu libraries (libonnxruntime_providers_cuda.so beside libonnxruntime.so)".into(),
        ));
    }
    ep::CUDA::default()
        .register(builder)
        .map_err(|e| EngineError::Provider(format!("CUDA provider failed to start: {e}")))
}

/// A CPU session over an in-memory graph: how the exporter runs its calibration graph
/// without writing it to disk.
pub fn cpu_session(graph: &[u8], threads: Option<usize>) -> Result<Session, EngineError> {
    session_builder(threads)?
        .commit_from_memory(graph)
        .map_err(|e| EngineError::Runtime(format!("the graph does not load: {e}")))
}

/// The graph inputs of a padded batch, under the names every bertqa graph uses: one place
/// for the engine and for the exporter's calibration run.
pub fn batch_inputs(
    batch: &PaddedBatch,
) -> Result<Vec<(Cow<'static, str>, SessionInputValue<'static>)>, EngineError> {
    let shape = vec![batch.batch_size as i64, batch.seq_len as i64];
    let tensor = |v: &[i64]| {
        Tensor::from_array((shape.clone(), v.to_vec()))
            .map_err(|e| EngineError::Inference(e.to_string()))
    };
    Ok(ort::inputs![
        "input_ids" => tensor(&batch.input_ids)?,
        "attention_mask" => tensor(&batch.attention_mask)?,
        "token_type_ids" => tensor(&batch.token_type_ids)?,
    ])
}

/// A batch of `windows` x `seq_len` tokens of id 0, which exists in every vocabulary (it is
/// [PAD] in BERT's), all attended: for warm-up runs, whose answers nobody reads.
fn filler_batch(windows: usize, seq_len: usize) -> PaddedBatch {
    let cells = windows * seq_len;
    PaddedBatch {
        batch_size: windows,
        seq_len,
        input_ids: vec![0; cells],
        token_type_ids: vec![0; cells],
        attention_mask: vec![1; cells],
    }
}

/// Warns when an int8 graph can saturate this CPU's 16-bit int8 lanes (no VNNI or AMX): its
/// answers would then differ from those measured elsewhere. Graphs bertqa exports now cannot;
/// older ones are fixed by `bertqa make-portable`.
fn warn_if_saturating(graph: &Path, model: &ModelProto) {
    let worst = model
        .graph
        .as_ref()
        .and_then(|g| graph_worst_pair_sum(g).ok().flatten());
    if let Some((weight, sum)) = worst.filter(|(_, sum)| *sum > i16::MAX as u32) {
        tracing::warn!(
            weight,
            sum,
            "{}: this CPU has no int8 instruction with 32-bit accumulation (VNNI or AMX) and \
             the graph's weights can saturate its 16-bit lanes, so answers differ from other \
             CPUs; rewrite it with `bertqa make-portable`",
            graph.display()
        );
    }
}

/// The graph a session runs, its builder and how many sites were fused: the file as it is,
/// or, when `config` asks for bertqa's fused kernels on CPU and the graph has their sites,
/// the graph with them (and the builder given their operators).
fn with_kernels(
    config: &EngineConfig,
    model: ModelProto,
    bytes: Vec<u8>,
    builder: SessionBuilder,
) -> Result<(ModelProto, Vec<u8>, SessionBuilder, usize), EngineError> {
    let fused = match (config.kernels, config.device) {
        (kernels, DeviceKind::Cpu) => fused::fuse(&model, &bytes, kernels),
        (_, DeviceKind::Cuda) => None,
    };
    let Some((fused, sites)) = fused else {
        return Ok((model, bytes, builder, 0));
    };
    tracing::info!(
        sites,
        kernels = ?config.kernels,
        "sites of the graph run by bertqa's fused kernels"
    );
    let runtime = |e: ort::Error| EngineError::Runtime(e.to_string());
    let builder = builder
        .with_operators(fused::operators().map_err(runtime)?)
        .map_err(|e| EngineError::Runtime(e.to_string()))?;
    let bytes = fused.encode_to_vec();
    Ok((fused, bytes, builder, sites))
}

impl Engine {
    /// Loads `model.onnx` (or `model-int8.onnx`) from a model folder, checks it, warms it up.
    pub fn load(dir: &Path, config: &EngineConfig) -> Result<Self, EngineError> {
        Self::load_sharing(dir, config, None)
    }

    /// [`Engine::load`], with the weights in `shared` when given (filled from this graph
    /// when still empty), so that the workers of one server hold them once.
    pub fn load_sharing(
        dir: &Path,
        config: &EngineConfig,
        shared: Option<&mut Option<SharedWeights>>,
    ) -> Result<Self, EngineError> {
        let folder_error = |message: String| EngineError::ModelFolder {
            path: dir.display().to_string(),
            message,
        };
        let manifest = ModelManifest::load(dir).map_err(folder_error)?;
        let file = if config.int8 { INT8_GRAPH } else { FP32_GRAPH };
        let graph = dir.join(file);
        if !graph.is_file() {
            return Err(folder_error(format!(
                "{file} is missing (graphs present: {:?})",
                manifest.graphs
            )));
        }
        // Read once: the session is built from these bytes, and the summary and the
        // saturation check come from the same decoded message.
        let bytes = std::fs::read(&graph)
            .map_err(|e| folder_error(format!("{file} cannot be read: {e}")))?;
        let model = ModelProto::decode(bytes.as_slice())
            .map_err(|e| folder_error(format!("{file} is not an ONNX model: {e}")))?;
        let summary = GraphSummary::of(&model);
        let cpu = CpuFeatures::detect();
        tracing::info!(cpu = ?cpu.names(), graph = file, "CPU extensions ONNX Runtime can use");
        if config.int8 && config.device == DeviceKind::Cpu && !cpu.int8_products_are_exact() {
            warn_if_saturating(&graph, &model);
        }
        let builder = session_builder(config.threads)?;
        let (model, bytes, mut builder, fused_sites) = with_kernels(config, model, bytes, builder)?;
        if let Some(slot) = shared {
            let weights = match slot {
                Some(weights) => weights,
                None => slot.insert(SharedWeights::of(&model)?),
            };
            builder = weights.apply(builder)?;
        }
        drop(model);
        if config.device == DeviceKind::Cuda {
            register_cuda(&mut builder)?;
        }
        let session = builder
            .commit_from_memory(&bytes)
            .map_err(|e| folder_error(format!("{file} does not load: {e}")))?;
        let inputs: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        let outputs: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
        if inputs != ["input_ids", "attention_mask", "token_type_ids"]
            || outputs != ["start_logits", "end_logits"]
        {
            return Err(folder_error(format!(
                "{file} has inputs {inputs:?} and outputs {outputs:?}, not a bertqa graph"
            )));
        }
        drop(bytes);
        let mut engine = Self {
            session,
            manifest,
            graph,
            summary,
            fused_sites,
        };
        engine.run(&filler_batch(1, 3))?;
        Ok(engine)
    }

    /// Runs one batch of `windows` x `seq_len` filler tokens. Called with the largest batch a
    /// server will form, it grows ONNX Runtime's memory arena (which never shrinks) to its
    /// peak before the first request: resident memory then stays flat under load instead of
    /// stepping up whenever a larger batch than any before arrives, and a memory limit too
    /// small for the batch settings fails at start-up rather than under traffic.
    pub fn reserve(&mut self, windows: usize, seq_len: usize) -> Result<(), EngineError> {
        self.run(&filler_batch(windows, seq_len)).map(drop)
    }

    /// The model folder's manifest.
    pub fn manifest(&self) -> &ModelManifest {
        &self.manifest
    }

    /// The graph file in use.
    pub fn graph(&self) -> &Path {
        &self.graph
    }

    /// How many sites of the graph bertqa's fused kernels run (activation quantization and,
    /// with `--kernels fused-attention`, attention; 0 with `--kernels onnx`, on CUDA, or for
    /// a graph without such sites).
    pub fn fused_sites(&self) -> usize {
        self.fused_sites
    }

    /// What the graph in use holds (architecture, weight format).
    pub fn summary(&self) -> &GraphSummary {
        &self.summary
    }

    /// Start and end logits (row-major `[B, L]`) of a padded batch; a graph that returns any
    /// other size is an error, so callers can slice rows without checking.
    pub fn run(&mut self, batch: &PaddedBatch) -> Result<BatchLogits, EngineError> {
        let outputs = self
            .session
            .run(batch_inputs(batch)?)
            .map_err(|e| EngineError::Inference(e.to_string()))?;
        let cells = batch.padded_tokens();
        let extract = |name: &str| -> Result<Vec<f32>, EngineError> {
            let (_, values) = outputs[name]
                .try_extract_tensor::<f32>()
                .map_err(|e| EngineError::Inference(e.to_string()))?;
            if values.len() != cells {
                return Err(EngineError::Inference(format!(
                    "{name}: {} values for a {}x{} batch",
                    values.len(),
                    batch.batch_size,
                    batch.seq_len
                )));
            }
            Ok(values.to_vec())
        };
        Ok((extract("start_logits")?, extract("end_logits")?))
    }
}
