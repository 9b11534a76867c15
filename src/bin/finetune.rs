//! `finetune`: fine-tune a BERT checkpoint for SQuAD question answering (feature `train`).

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Parser;

use bertqa::train::config::TrainConfig;
use bertqa::train::trainer::train;

fn main() -> ExitCode {
    let config = TrainConfig::parse();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    if let Err(e) = ctrlc::set_handler(move || {
        eprintln!(
            "finetune: stopping after this step and saving a checkpoint (Ctrl-C again to abort)"
        );
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    }) {
        eprintln!("finetune: warning: cannot catch Ctrl-C ({e}); an interrupt will lose the steps since the last checkpoint");
    }
    match train(&config, &stop) {
        Ok(summary) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&summary).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("finetune: error: {error}");
            ExitCode::FAILURE
        }
    }
}
