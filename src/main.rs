//! `bertqa`: the command line of the question-answering system.

mod cli;

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use bertqa::serve::config::ServeConfig;
use bertqa::serve::telemetry::Telemetry;
use bertqa::serve::{shutdown_signal, Service};
use cli::calibrate::CalibrateArgs;
use cli::export::{ExportArgs, MakePortableArgs, RandomCheckpointArgs};
use cli::passages::EvaluatePassagesArgs;
use cli::predict::PredictArgs;
use cli::score::ScoreArgs;

/// Extractive question answering with BERT: score, predict, export and serve.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands; each argument struct documents its command.
#[derive(Subcommand)]
enum Command {
    Score(ScoreArgs),
    Export(Box<ExportArgs>),
    RandomCheckpoint(RandomCheckpointArgs),
    MakePortable(MakePortableArgs),
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
    Predict(PredictArgs),
    Calibrate(CalibrateArgs),
    EvaluatePassages(EvaluatePassagesArgs),
}

/// Runs the server with its log set up first, so that a failure to start or a crash is one line
/// of that log (a JSON line in containers, where log collectors parse every line), not a bare
/// stderr line after it. The telemetry outlives the server, so spans still queued at shutdown
/// are sent before the process exits.
fn serve_logged(config: ServeConfig) -> anyhow::Result<()> {
    let telemetry = Telemetry::init(config.log_format, config.otlp_target().as_ref())?;
    let served = serve(config).map_err(|error| {
        tracing::error!(error = format!("{error:#}"), "bertqa serve failed");
        Logged.into()
    });
    drop(telemetry);
    served
}

/// A failure already written to the log: `main` only sets the exit code.
#[derive(Debug, thiserror::Error)]
#[error("(already logged)")]
struct Logged;

fn serve(config: ServeConfig) -> anyhow::Result<()> {
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

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(config) => serve_logged(*config),
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
        Command::Score(args) => args.run(),
        Command::Export(args) => args.run(),
        Command::RandomCheckpoint(args) => args.run(),
        Command::MakePortable(args) => args.run(),
        Command::Predict(args) => args.run(),
        Command::Calibrate(args) => args.run(),
        Command::EvaluatePassages(args) => args.run(),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.is::<Logged>() => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
