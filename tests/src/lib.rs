//! Shared helpers for the end-to-end tests.

use observer::config::Config;
use observer::pipeline::{Pipeline, RunSummary};
use observer::sink::MemorySink;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `../shared/corpus` beside the project, when present.
pub fn corpus_dir() -> Option<PathBuf> {
    let d = root().join("../shared/corpus");
    d.join("ORACLE.tsv").is_file().then_some(d)
}

/// Runs the library pipeline on files and returns the events and the summary.
pub fn run(files: &[PathBuf], cfg: &Config) -> (Vec<Value>, RunSummary) {
    let mut sink = MemorySink::default();
    let mut p = Pipeline::new(cfg, &mut sink, files);
    for f in files {
        p.run_file(f).expect("memory sink never fails");
    }
    let s = p.finish().expect("memory sink never fails");
    (sink.events, s)
}

/// The observer binary built for these tests.
pub fn observer_bin() -> PathBuf {
    let mut p = std::env::current_exe().expect("test binary path");
    p.pop();
    if p.ends_with("deps") {
        p.pop();
    }
    p.join("observer")
}

/// Reads a TSV with a header line into rows of (column name → value).
pub fn read_tsv(path: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let text = std::fs::read_to_string(path).expect("tsv readable");
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split('\t')
        .map(str::to_string)
        .collect();
    lines
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            header
                .iter()
                .cloned()
                .zip(l.split('\t').map(str::to_string))
                .collect()
        })
        .collect()
}
