//! `finetune`: fine-tune a BERT checkpoint for SQuAD question answering (feature `train`).

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Parser;

use bertqa::train::config::TrainConfig;
use bertqa::train::trainer::train;

/// jemalloc for the whole process, libtorch's C++ allocations included (the crate exports
/// `malloc`/`free`): every step allocates and frees activations of tens of MB, which glibc
/// hands back to the kernel and then page-faults in again (clear_page was ~10% of a profile).
/// Measured in bench/RESULTS.md: ~1.4x the training speed of glibc's default malloc.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's built-in options (the `MALLOC_CONF` environment variable still overrides them):
/// never return freed pages to the kernel, so the next step reuses them without page faults.
/// Peak memory is unchanged, as training's working set repeats every step.
#[export_name = "malloc_conf"]
static JEMALLOC_OPTIONS: &[u8; 36] = b"dirty_decay_ms:-1,muzzy_decay_ms:-1\0";

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
