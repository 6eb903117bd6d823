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

/// The observer binary of the same profile as these tests, built on first use (a test crate
/// cannot depend on another package's binary, so it asks cargo once).
pub fn observer_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let mut dir = std::env::current_exe().expect("test binary path");
        dir.pop();
        if dir.ends_with("deps") {
            dir.pop();
        }
        let release = dir.ends_with("release");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = std::process::Command::new(cargo);
        cmd.current_dir(root())
            .args(["build", "--quiet", "-p", "observer", "--bin", "observer"]);
        if release {
            cmd.arg("--release");
        }
        let ok = cmd.status().map(|s| s.success()).unwrap_or(false);
        assert!(ok, "building the observer binary failed");
        dir.join("observer")
    })
    .clone()
}

/// Runs the observer binary with `args` from the workspace root.
pub fn observer(args: &[&str]) -> std::process::Output {
    std::process::Command::new(observer_bin())
        .current_dir(root())
        .args(args)
        .output()
        .expect("observer runs")
}

/// Parses NDJSON output.
pub fn ndjson(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The findings among events.
pub fn findings(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e["event"]["kind"] == "alert")
        .collect()
}

/// A counter of the summary event by its dotted `stats.` name.
pub fn stat(events: &[Value], dotted: &str) -> u64 {
    let summary = events.last().expect("a summary event");
    assert_eq!(summary["event"]["action"], "summary");
    let mut v = &summary["stats"];
    for part in dotted.split('.') {
        v = &v[part];
    }
    v.as_u64()
        .unwrap_or_else(|| panic!("stats.{dotted} missing in {summary}"))
}

/// Whether a command is on PATH.
pub fn have(cmd: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {cmd} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
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

/// Reads a fixtures `*.expected.txt` file: `[section]` headers, `key=value` lines, `#` comments.
pub fn expected_sections(
    name: &str,
) -> std::collections::HashMap<String, std::collections::HashMap<String, String>> {
    let path = root().join("fixtures").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out: std::collections::HashMap<String, std::collections::HashMap<String, String>> =
        Default::default();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            out.entry(section.clone())
                .or_default()
                .insert(k.to_string(), v.to_string());
        }
    }
    out
}

/// A file in the system temp directory, unique to this process and call, removed when dropped
/// (tests leave nothing behind, even when several run at once).
pub struct ScratchFile(PathBuf);

impl ScratchFile {
    /// Writes `bytes` to a new scratch file whose name ends with `name`.
    pub fn new(name: &str, bytes: &[u8]) -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("observer-test-{}-{n}-{name}", std::process::id()));
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        Self(path)
    }
}

impl std::ops::Deref for ScratchFile {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// tshark's `-T fields` output for `path` (relative to the project root, or absolute): one line
/// per frame matching the display filter (all frames when it is empty), tab-separated fields.
pub fn tshark_fields(path: &str, fields: &[&str], filter: &str) -> String {
    let mut cmd = std::process::Command::new("tshark");
    cmd.current_dir(root())
        .args(["-n", "-r", path, "-T", "fields"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    if !filter.is_empty() {
        cmd.args(["-Y", filter]);
    }
    let out = cmd.output().expect("tshark runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `observer analyze -q ARGS…` from the project root: its stdout, after asserting it succeeded.
pub fn analyze_raw(args: &[&str]) -> Vec<u8> {
    let mut all = vec!["analyze", "-q"];
    all.extend_from_slice(args);
    let out = observer(&all);
    assert!(
        out.status.success(),
        "observer failed on {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The events of `observer analyze -q PATH` (PATH relative to the project root, or absolute).
pub fn analyze(path: &str) -> Vec<Value> {
    ndjson(&analyze_raw(&[path]))
}
