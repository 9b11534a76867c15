//! Build script: the git commit the binary reports about itself (`GET /info`, the
//! `bertqa_info` metric), and with the `train` feature an rpath to the libtorch that
//! `scripts/setup-native.sh` installed, so binaries and tests run without LD_LIBRARY_PATH.

use std::process::Command;

fn main() {
    embed_git_commit();
    link_libtorch();
}

/// `BERTQA_GIT_COMMIT` for the crate: the variable of that name when set (container builds
/// pass it, as their source has no `.git`), else `git rev-parse`, else "unknown".
fn embed_git_commit() {
    println!("cargo:rerun-if-env-changed=BERTQA_GIT_COMMIT");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    let commit = std::env::var("BERTQA_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| {
            let out = Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=BERTQA_GIT_COMMIT={commit}");
}

fn link_libtorch() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if std::env::var_os("CARGO_FEATURE_TRAIN").is_none() {
        return;
    }
    if let Some(dir) = std::env::var_os("LIBTORCH") {
        let lib = std::path::PathBuf::from(dir).join("lib");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
}
