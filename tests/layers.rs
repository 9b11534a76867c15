//! The folders of `src/` are layers, and code only reaches down: `qa` (the text core) knows no
//! model, the runtime knows no pipeline, the pipelines know neither the service nor the
//! trainer, and those two do not know each other. Read from the sources, so a new import
//! that points up fails here instead of in a reviewer's head.

use std::path::{Path, PathBuf};

/// The layers from the bottom up; a module may use its own layer and the ones before it.
/// `serve` and `train` are both top layers that must not use each other.
const LAYERS: [&str; 7] = [
    "qa", "model", "onnx", "runtime", "pipeline", "serve", "train",
];

fn rank(layer: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == layer)
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every layer named after `crate::` in `text`, comments included (a doc link that points up
/// is a dependency of the reader, too).
fn used_layers(text: &str) -> Vec<String> {
    text.match_indices("crate::")
        .filter(|(i, _)| !text[..*i].ends_with(|c: char| c.is_alphanumeric() || c == '_'))
        .map(|(i, m)| {
            text[i + m.len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

#[test]
fn every_module_uses_only_its_own_layer_and_those_below() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    sources(&root, &mut files);
    let mut violations = vec![];
    let mut checked = 0;
    for file in &files {
        let relative = file.strip_prefix(&root).unwrap();
        let top = relative.iter().next().unwrap().to_string_lossy();
        let Some(own) = rank(top.trim_end_matches(".rs")) else {
            continue; // lib.rs, main.rs, cli/, bin/: the entry points sit above every layer
        };
        checked += 1;
        let text = std::fs::read_to_string(file).unwrap();
        for used in used_layers(&text) {
            let Some(theirs) = rank(&used) else {
                violations.push(format!("{}: crate::{used} is no layer", relative.display()));
                continue;
            };
            let peers = own >= 5 && theirs >= 5 && own != theirs;
            if theirs > own || peers {
                violations.push(format!(
                    "{} ({}) uses crate::{used}",
                    relative.display(),
                    LAYERS[own]
                ));
            }
        }
    }
    assert!(
        checked > 40,
        "only {checked} files found under {}",
        root.display()
    );
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_reader_finds_what_it_must() {
    let text = "use crate::qa::batch; // see [`crate::serve`]\nlet x = mycrate::qa;";
    assert_eq!(used_layers(text), ["qa", "serve"]);
}
