//! `finetune`: fine-tune a BERT checkpoint for SQuAD question answering (feature `train`).

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use bertqa::train::config::TrainConfig;
use bertqa::train::mkl_paths;
use bertqa::train::trainer::train;

/// jemalloc for the whole process, libtorch's C++ allocations included (the crate exports
/// `malloc`/`free`): every step allocates and frees activations of tens of MB, which glibc
/// hands back to the kernel and then page-faults in again (clear_page was ~10% of a profile).
/// Measured in bench/RESULTS.md: ~1.4x the training speed of glibc's default malloc.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's built-in options (the `MALLOC_CONF` environment variable still overrides them):
/// keep freed pages instead of returning them to the kernel after each free, so the next step
/// reuses them without page faults (returning them within seconds, jemalloc's default, made
/// steps ~1.8x slower, bench/RESULTS.md). [`purge_unused_pages`] bounds what is kept.
#[export_name = "malloc_conf"]
static JEMALLOC_OPTIONS: &[u8; 36] = b"dirty_decay_ms:-1,muzzy_decay_ms:-1\0";

/// MKL's question "is this an Intel CPU?", answered by [`mkl_paths::intel_paths_allowed`] so
/// that AMD CPUs with AVX-512 get MKL's AVX-512 kernels for fp32 products instead of its AVX2
/// ones. The linker puts it in this binary's dynamic symbol table, as libtorch_cpu, which this
/// binary links, defines it too; so the dynamic linker binds libtorch's calls to this one
/// (tests/finetune.rs checks the binding).
#[export_name = "mkl_serv_intel_cpu_true"]
pub extern "C" fn mkl_may_take_its_intel_paths() -> std::ffi::c_int {
    mkl_paths::intel_paths_allowed().into()
}

/// How often the pages no allocation uses go back to the kernel. Every batch has its own
/// padded length, so freed blocks rarely fit the next step's tensors exactly and kept pages
/// pile up: a full run grew to 22 GB in 1,290 steps and was killed. Each purge costs the page
/// faults of refilling the working set: every 30 s that was about a tenth of the steps' speed
/// (Zen 5, bench/RESULTS.md); every 120 s the kept pages grow by about 1 GB in between.
const PURGE_INTERVAL: Duration = Duration::from_secs(120);

/// Returns every arena's unused (dirty) pages to the kernel now.
fn purge_unused_pages() {
    // "arena.<MALLCTL_ARENAS_ALL>.purge" (jemalloc.h: MALLCTL_ARENAS_ALL is 4096): every
    // arena, no argument, no result.
    let name = b"arena.4096.purge\0";
    // SAFETY: a NUL-terminated control name whose command reads and writes nothing.
    let status = unsafe {
        tikv_jemalloc_sys::mallctl(
            name.as_ptr().cast(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
    if status != 0 {
        eprintln!("finetune: warning: jemalloc purge failed ({status})");
    }
}

fn main() -> ExitCode {
    let config = TrainConfig::parse();
    if mkl_paths::overrides_mkl() {
        eprintln!(
            "finetune: fp32 products run MKL's AVX-512 kernels on this non-Intel CPU ({}=off keeps MKL's AVX2 ones)",
            mkl_paths::SETTING
        );
    }
    std::thread::spawn(|| loop {
        std::thread::sleep(PURGE_INTERVAL);
        purge_unused_pages();
    });
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
