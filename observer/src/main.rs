//! The `observer` command: argument parsing, wiring, exit codes. The work is in the library.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use observer::analyze::administrators::{GraphFormat, render_graph};
use observer::config::Config;
use observer::finding::{Fallacy, Severity};
use observer::pipeline::{InputStatus, Pipeline, RunSummary};
use observer::sink::{NdjsonSink, SinkError};
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Watches network traffic and tells you which fallacy of distributed computing is hurting you.
#[derive(Parser)]
#[command(name = "observer", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Analyze capture files (pcap, pcapng, optionally gzip-compressed) and write findings as
    /// NDJSON on stdout, with a human summary on stderr.
    ///
    /// Example: observer analyze capture.pcapng --fail-on high > findings.ndjson
    Analyze(AnalyzeArgs),
}

#[derive(clap::Args)]
struct AnalyzeArgs {
    /// Capture files, read in order as one continuous stream (`-` reads standard input).
    /// Example: observer analyze rotated-0.pcap rotated-1.pcap
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,

    /// TOML configuration file (internal networks, thresholds, flow-table limits).
    /// Example: --config observer.toml
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Exit with status 1 if any finding at or above this severity was emitted (CI gate).
    /// Example: --fail-on high
    #[arg(long, value_name = "SEVERITY", value_parser = parse_severity)]
    fail_on: Option<Severity>,

    /// Also write the external-dependency inventory as a graph: Graphviz DOT for .dot/.gv,
    /// Mermaid for .mmd/.mermaid.
    /// Example: --dependency-graph deps.dot
    #[arg(long, value_name = "FILE")]
    dependency_graph: Option<PathBuf>,

    /// Write no human summary on stderr (errors and warnings are still written).
    /// Example: --quiet
    #[arg(long, short)]
    quiet: bool,
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    s.parse()
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Analyze(args) => match analyze(args) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("observer: error: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}

fn analyze(args: AnalyzeArgs) -> anyhow::Result<ExitCode> {
    let cfg = match &args.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let graph_format = match &args.dependency_graph {
        Some(p) => Some(GraphFormat::from_path(p).with_context(|| {
            format!(
                "--dependency-graph {}: unknown graph format: name the file .dot or .gv (Graphviz) or .mmd or .mermaid (Mermaid)",
                p.display()
            )
        })?),
        None => None,
    };
    let started = Instant::now();
    let stdout = std::io::stdout().lock();
    let mut sink = NdjsonSink::new(stdout, "standard output");
    let mut pipeline = Pipeline::new(&cfg, &mut sink, &args.files);
    for f in &args.files {
        match pipeline.run_file(f) {
            Ok(()) => {}
            Err(SinkError::Closed) => return Ok(ExitCode::SUCCESS),
            Err(e) => return Err(e).context("writing findings"),
        }
    }
    let summary = match pipeline.finish() {
        Ok(s) => s,
        Err(SinkError::Closed) => return Ok(ExitCode::SUCCESS),
        Err(e) => return Err(e).context("writing findings"),
    };
    if let (Some(path), Some(fmt)) = (&args.dependency_graph, graph_format) {
        let empty = serde_json::json!({"dependencies": []});
        let text = render_graph(summary.dependencies.as_ref().unwrap_or(&empty), fmt);
        std::fs::write(path, text).with_context(|| {
            format!(
                "--dependency-graph {}: cannot write the graph (the findings above are complete)",
                path.display()
            )
        })?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut failed_input = false;
    for r in &summary.inputs {
        match &r.status {
            InputStatus::Complete => {}
            InputStatus::Partial(e) => {
                eprintln!(
                    "observer: warning: {e} (the {} packets before it were analyzed)",
                    r.packets
                );
                if !matches!(e, observer::source::SourceError::Truncated { .. }) {
                    failed_input = true;
                }
            }
            InputStatus::Failed(e) => {
                eprintln!("observer: error: {e}");
                failed_input = true;
            }
        }
        for (lt, n) in &r.unsupported_links {
            eprintln!(
                "observer: warning: {}: {n} frame(s) of unsupported link type {lt} were counted but not analyzed",
                r.path.display()
            );
        }
    }
    if !args.quiet {
        print_summary(&summary, elapsed);
    }
    if failed_input {
        return Ok(ExitCode::from(2));
    }
    if let (Some(gate), Some(max)) = (args.fail_on, summary.max_severity) {
        if max >= gate {
            eprintln!(
                "observer: failing: a finding of severity {max} is at or above --fail-on {gate}"
            );
            return Ok(ExitCode::from(1));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn human_count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn print_summary(s: &RunSummary, elapsed: f64) {
    let p = &s.packets;
    let bold = |t: &str| {
        if std::io::stderr().is_terminal() {
            format!("\x1b[1m{t}\x1b[0m")
        } else {
            t.to_string()
        }
    };
    let span = s.span.map_or(0.0, |(a, b)| b.since(a) as f64 / 1e9);
    eprintln!(
        "{} {} packets, {:.1} MB on the wire, {} TCP + {} UDP flows, {:.3} s of traffic{}",
        bold("observer:"),
        human_count(p.frames),
        p.wire_bytes as f64 / 1e6,
        human_count(s.flows_tcp),
        human_count(s.flows_udp),
        span,
        s.span
            .map(|(a, b)| format!(" ({a} → {b})"))
            .unwrap_or_default()
    );
    let total: u64 = s.by_fallacy.iter().sum();
    if total == 0 {
        eprintln!("  findings: none");
    } else {
        let parts: Vec<String> = Fallacy::ALL
            .iter()
            .filter(|f| s.by_fallacy[usize::from(f.id() - 1)] > 0)
            .map(|f| {
                format!(
                    "{} ({}) {}",
                    f.id(),
                    f.slug(),
                    s.by_fallacy[usize::from(f.id() - 1)]
                )
            })
            .collect();
        eprintln!("  findings: {total} — {}", parts.join(", "));
        for (rule, n) in &s.by_rule {
            eprintln!("    {rule} ×{n}");
        }
    }
    let skipped = p.non_ip + p.unsupported_link + p.undecodable;
    if skipped + p.snapped + p.fragments > 0 {
        eprintln!(
            "  not analyzed: {} non-IP, {} unsupported link type, {} undecodable; {} cut by snap length; {} IP fragments (not reassembled)",
            human_count(p.non_ip),
            human_count(p.unsupported_link),
            human_count(p.undecodable),
            human_count(p.snapped),
            human_count(p.fragments)
        );
    }
    let secs = elapsed.max(1e-9);
    eprintln!(
        "  ran in {:.3} s: {:.2} M packets/s, {:.0} MB/s",
        elapsed,
        p.frames as f64 / secs / 1e6,
        p.captured_bytes as f64 / secs / 1e6
    );
}
