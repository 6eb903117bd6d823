//! The `observer` command: argument parsing, wiring, exit codes. The work is in the library.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use observer::analyze::administrators::{GraphFormat, render_graph};
use observer::config::Config;
use observer::finding::{Fallacy, Severity};
use observer::pipeline::{InputStatus, Pipeline, RunSummary};
use observer::sink::detached::Detached;
use observer::sink::file::FileSink;
use observer::sink::socket::{Endpoint, SocketOptions, SocketSink};
use observer::sink::{FanOut, NdjsonSink, OutputSpec, Sink, SinkError};
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

    /// Capture live from a network interface (libpcap) and stream findings as they are decided,
    /// until Ctrl-C or SIGTERM (a second Ctrl-C exits at once). Needs CAP_NET_RAW and
    /// CAP_NET_ADMIN (root).
    ///
    /// Example: sudo observer live -i eth0 --filter 'tcp port 443' -o tcp:127.0.0.1:5140,spool=/var/spool/observer
    Live(LiveArgs),

    /// Attach observer's eBPF programs to this host's TCP stack and interfaces and stream
    /// findings, plus what only the kernel knows: every retransmission the host's TCP stack
    /// made, every connection that died in SYN_SENT, the smoothed RTT of each socket. Runs
    /// until Ctrl-C or SIGTERM; everything is detached on exit. Needs root (CAP_BPF,
    /// CAP_PERFMON, CAP_NET_ADMIN and tracefs access).
    ///
    /// Example: sudo observer probe --interface eth0 -o file:/var/log/observer.ndjson
    Probe(ProbeArgs),

    /// Accept the findings a project already knows about, so CI fails only on new ones.
    /// Findings are matched by a stable fingerprint (rule, endpoints, protocol — not times).
    ///
    /// Example: observer baseline create --baseline observer-baseline.json capture.pcapng
    #[command(subcommand)]
    Baseline(BaselineCommand),

    /// Print a shell completion script, generated from this command line's definition.
    ///
    /// Example: observer completions bash > /etc/bash_completion.d/observer
    Completions {
        /// The shell.
        /// Example: bash
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },

    /// Print the man page (roff), or write one page per command into a directory.
    ///
    /// Example: observer manpage --dir /usr/local/share/man/man1
    Manpage {
        /// Write observer.1 and observer-<command>.1 here instead of printing observer.1.
        /// Example: --dir ./man
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum BaselineCommand {
    /// Analyze capture files and write every finding's fingerprint to the baseline file.
    ///
    /// Example: observer baseline create --baseline observer-baseline.json nightly.pcapng
    Create(BaselineArgs),

    /// Analyze capture files and fail (exit 1) if a finding is not in the baseline, or is more
    /// severe than the baseline accepted it; those findings are written to stdout as NDJSON
    /// and listed on stderr.
    ///
    /// Example: observer baseline check --baseline observer-baseline.json --fail-on medium ci.pcapng
    Check(CheckArgs),
}

/// What `baseline create` takes (and `check` too).
#[derive(clap::Args)]
struct BaselineArgs {
    /// The baseline file (JSON; written by `create`, read by `check`).
    /// Example: --baseline observer-baseline.json
    #[arg(long, value_name = "FILE")]
    baseline: PathBuf,

    #[command(flatten)]
    input: InputArgs,
}

/// `baseline check`: the file and captures, and the gate (which `create` has no use for).
#[derive(clap::Args)]
struct CheckArgs {
    #[command(flatten)]
    common: BaselineArgs,

    /// Only new findings at or above this severity fail the check (default: any).
    /// Example: --fail-on medium
    #[arg(long, value_name = "SEVERITY", value_parser = parse_severity)]
    fail_on: Option<Severity>,
}

#[derive(clap::Args)]
struct ProbeArgs {
    /// Interface to watch with the TC programs; repeat for several. Default: every interface
    /// that is up (loopback included, egress only).
    /// Example: --interface eth0 --interface eth1
    #[arg(long, short = 'i', value_name = "NAME")]
    interface: Vec<String>,

    /// Size of the kernel's packet ring buffer in bytes (a power of two); a full ring drops
    /// samples, counted in `stats.probe.dropped`.
    /// Example: --ring-size 16777216
    #[arg(long, value_name = "BYTES", default_value_t = observer_wire::PACKET_RING_BYTES)]
    ring_size: u32,

    /// Flows the kernel map holds; more concurrent flows are counted in
    /// `stats.probe.dropped.flow_map_full` and not tracked.
    /// Example: --max-flows 262144
    #[arg(long, value_name = "N", default_value_t = observer_wire::MAX_FLOWS)]
    max_flows: u32,

    /// Wake up on every kernel record instead of polling every 10 ms: findings arrive
    /// microseconds sooner, each packet costs the kernel more.
    /// Example: --wakeup-each
    #[arg(long)]
    wakeup_each: bool,

    #[command(flatten)]
    run: StreamArgs,

    #[command(flatten)]
    out: OutputArgs,
}

/// What `live` and `probe` share: how long, how configured, the gate, the summary.
#[derive(clap::Args)]
struct StreamArgs {
    /// Stop by itself after this many seconds.
    /// Example: --duration 600
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    duration: Option<f64>,

    /// TOML configuration file.
    /// Example: --config observer.toml
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Exit with status 1 if any finding at or above this severity was emitted.
    /// Example: --fail-on high
    #[arg(long, value_name = "SEVERITY", value_parser = parse_severity)]
    fail_on: Option<Severity>,

    /// Write no human summary on stderr at the end.
    /// Example: --quiet
    #[arg(long, short)]
    quiet: bool,
}

/// Where events go, and how observer's own logs look.
#[derive(clap::Args)]
struct OutputArgs {
    /// Where events go; repeat for several: `stdout` (the default), `file:PATH[,rotate=100M][,keep=5]`,
    /// `tcp:HOST:PORT[,spool=DIR][,queue=N]`, `unix:PATH[,spool=DIR][,queue=N]`.
    /// Example: -o stdout -o tcp:127.0.0.1:5140,spool=/var/spool/observer
    #[arg(long = "output", short = 'o', value_name = "SPEC", value_parser = parse_output)]
    outputs: Vec<OutputSpec>,

    /// Format of observer's own log lines on stderr (never mixed into the events).
    /// Example: --log-format json
    #[arg(long, value_name = "FORMAT", default_value = "human", value_parser = ["human", "json"])]
    log_format: String,
}

fn parse_output(s: &str) -> Result<OutputSpec, String> {
    s.parse()
}

#[derive(clap::Args)]
struct LiveArgs {
    /// Interface to capture on (`any` for all).
    /// Example: -i eth0
    #[arg(long, short = 'i', value_name = "NAME")]
    interface: String,

    /// Capture filter (pcap syntax).
    /// Example: --filter 'tcp port 443 or udp port 53'
    #[arg(long, value_name = "EXPR")]
    filter: Option<String>,

    /// Bytes kept of each frame, up to 262,144 (0: the whole frame, as tcpdump's -s 0).
    /// Example: --snaplen 512
    #[arg(long, value_name = "BYTES", default_value_t = 262_144,
          value_parser = clap::value_parser!(i32).range(0..=262_144))]
    snaplen: i32,

    /// Put the interface in promiscuous mode.
    /// Example: --promiscuous
    #[arg(long)]
    promiscuous: bool,

    /// At the end (Ctrl-C, SIGTERM or --duration), also write the HTML report of the whole
    /// capture, as `analyze --report` does.
    /// Example: --report incident.html
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,

    #[command(flatten)]
    run: StreamArgs,

    #[command(flatten)]
    out: OutputArgs,
}

/// The captures an offline run reads, and its configuration (`analyze`, `baseline`).
#[derive(clap::Args)]
struct InputArgs {
    /// Capture files, read in order as one continuous stream (`-` reads standard input).
    /// Example: observer analyze rotated-0.pcap rotated-1.pcap
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,

    /// TOML configuration file (internal networks, thresholds, flow-table limits; use the same
    /// one for `baseline create` and `check`).
    /// Example: --config observer.toml
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Threads: 1 reads and analyzes on one thread; with 2, a second thread walks and decodes
    /// the records of an uncompressed file (read in place, mapped) while the first analyzes
    /// the frames before, and reads and inflates a gzip'd input of 1 MiB or more ahead. The
    /// output is byte-identical either way. Default: 2 when the machine has two CPUs or more.
    /// Example: --threads 1
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=2))]
    threads: Option<u8>,
}

impl InputArgs {
    /// Standard input can be read once: `-` named twice would find it at its end the second
    /// time (an "empty file" after the first was analyzed). Refused before anything is read.
    fn check_stdin_once(&self) -> anyhow::Result<()> {
        if self.files.iter().filter(|f| f.as_os_str() == "-").count() > 1 {
            anyhow::bail!(
                "input `-` (standard input) is named more than once: it can be read only once; name it once, or give the captures as files"
            );
        }
        Ok(())
    }

    /// The files the run reads: its captures and its configuration.
    fn reads(&self) -> Vec<(&'static str, &std::path::Path)> {
        let mut v: Vec<(&'static str, &std::path::Path)> =
            self.files.iter().map(|f| ("input", f.as_path())).collect();
        v.extend(self.config.as_deref().map(|c| ("--config", c)));
        v
    }

    /// Whether to read ahead on a second thread (`--threads`, else the CPUs there are).
    fn read_ahead(&self) -> bool {
        match self.threads {
            Some(n) => n >= 2,
            None => std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2),
        }
    }
}

#[derive(clap::Args)]
struct AnalyzeArgs {
    #[command(flatten)]
    input: InputArgs,

    /// Exit with status 1 if any finding at or above this severity was emitted (CI gate).
    /// Example: --fail-on high
    #[arg(long, value_name = "SEVERITY", value_parser = parse_severity)]
    fail_on: Option<Severity>,

    /// Also write the external-dependency inventory as a graph: Graphviz DOT for .dot/.gv,
    /// Mermaid for .mmd/.mermaid.
    /// Example: --dependency-graph deps.dot
    #[arg(long, value_name = "FILE")]
    dependency_graph: Option<PathBuf>,

    /// Also write a self-contained HTML report (no network access or scripts needed to view
    /// it): verdict per fallacy, latency percentile plots per service, throughput and
    /// retransmission timelines, dependency graph, cost, plaintext and version tables, each
    /// finding linked to its flows.
    /// Example: --report report.html
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,

    /// Write no human summary on stderr (errors and warnings are still written).
    /// Example: --quiet
    #[arg(long, short)]
    quiet: bool,

    #[command(flatten)]
    out: OutputArgs,
}

/// Writes the HTML report next to its final name, then renames it into place, so a reader never
/// sees half a page.
fn write_report(path: &std::path::Path, data: &observer::report::ReportData) -> anyhow::Result<()> {
    let page = observer::report::html::render(data);
    let name = path.file_name().map_or_else(
        || std::ffi::OsString::from("report"),
        std::ffi::OsStr::to_os_string,
    );
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(&name);
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    std::fs::write(&tmp, page)
        .and_then(|()| std::fs::rename(&tmp, path))
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .with_context(|| {
            format!(
                "--report {}: cannot write the report (the findings above are complete)",
                path.display()
            )
        })
}

/// Longest `--duration`, seconds (about 31 years): anything longer is "until stopped".
const MAX_DURATION_SECS: f64 = 1.0e9;

/// `--duration`: a number of seconds from 0 to [`MAX_DURATION_SECS`] (`inf` or `1e30` would
/// overflow the deadline, NaN would end the run at once).
fn parse_duration(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(d) if (0.0..=MAX_DURATION_SECS).contains(&d) => Ok(d),
        _ => Err(format!(
            "`{s}` is not a number of seconds from 0 to {MAX_DURATION_SECS:e} (leave --duration out to run until stopped)"
        )),
    }
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
    let result = match cli.command {
        Command::Analyze(args) => {
            init_logs(&args.out.log_format, tracing::Level::WARN);
            analyze(args)
        }
        Command::Live(args) => {
            init_logs(&args.out.log_format, tracing::Level::INFO);
            live(args)
        }
        Command::Probe(args) => {
            init_logs(&args.out.log_format, tracing::Level::INFO);
            probe(args)
        }
        Command::Baseline(cmd) => {
            init_logs("human", tracing::Level::WARN);
            baseline(cmd)
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "observer", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Manpage { dir } => manpage(dir),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("observer: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn analyze(args: AnalyzeArgs) -> anyhow::Result<ExitCode> {
    let cfg = load_config(args.input.config.as_deref())?;
    let graph_format = match &args.dependency_graph {
        Some(p) => Some(GraphFormat::from_path(p).with_context(|| {
            format!(
                "--dependency-graph {}: unknown graph format: name the file .dot or .gv (Graphviz) or .mmd or .mermaid (Mermaid)",
                p.display()
            )
        })?),
        None => None,
    };
    let writes: Vec<(&str, &std::path::Path)> = [
        ("--report", args.report.as_deref()),
        ("--dependency-graph", args.dependency_graph.as_deref()),
    ]
    .into_iter()
    .filter_map(|(flag, p)| Some((flag, p?)))
    .collect();
    args.input.check_stdin_once()?;
    check_files_apart(&args.input.reads(), &args.out.outputs, &writes)?;
    check_writable(&writes)?;
    let started = Instant::now();
    let mut sink = open_outputs(&args.out.outputs, false)?;
    let mut pipeline = Pipeline::new(&cfg, sink.as_mut(), &args.input.files);
    pipeline.set_read_ahead(args.input.read_ahead());
    if args.report.is_some() {
        pipeline.enable_report();
    }
    // A progress line on a terminal for runs longer than a second.
    let show_progress = !args.quiet && std::io::stderr().is_terminal();
    let mut last_shown: Option<Instant> = None;
    // When the current file started being read (its first report), for its own rate and ETA.
    let mut file_start: Option<(PathBuf, Instant, u64, u64)> = None;
    let mut progress = |p: &observer::pipeline::Progress| {
        if !show_progress {
            return;
        }
        if p.done {
            if last_shown.is_some() {
                eprint!("\r\x1b[2K");
            }
            file_start = None;
            return;
        }
        let (_, t0, f0, o0) = file_start
            .get_or_insert_with(|| (p.path.to_path_buf(), Instant::now(), p.frames, p.offset))
            .clone();
        if started.elapsed().as_secs_f64() < 1.0
            || last_shown.is_some_and(|t| t.elapsed().as_millis() < 100)
        {
            return;
        }
        last_shown = Some(Instant::now());
        let el = t0.elapsed().as_secs_f64().max(1e-3);
        let rate = (p.frames - f0) as f64 / el;
        let mb = p.offset as f64 / 1e6;
        let line = match p.size.filter(|&s| s > 0) {
            Some(size) => {
                let frac = (p.offset as f64 / size as f64).min(1.0);
                let bytes_rate = (p.offset - o0) as f64 / el;
                let eta = if bytes_rate > 0.0 {
                    size.saturating_sub(p.offset) as f64 / bytes_rate
                } else {
                    0.0
                };
                format!(
                    "{}: {mb:.0} / {:.0} MB ({:.0} %), {:.2} M packets/s, ETA {eta:.0} s",
                    p.path.display(),
                    size as f64 / 1e6,
                    frac * 100.0,
                    rate / 1e6
                )
            }
            None => format!(
                "{}: {mb:.0} MB read, {:.2} M packets/s",
                p.path.display(),
                rate / 1e6
            ),
        };
        eprint!("\r\x1b[2K{line}");
    };
    for f in &args.input.files {
        match pipeline.run_file_with_progress(f, &mut progress) {
            Ok(()) => {}
            Err(SinkError::Closed) => return Ok(ExitCode::SUCCESS),
            Err(e) => return Err(e).context("writing findings"),
        }
    }
    // With --report the analysis runs to its end even when the outputs are gone (stdout
    // closed by `| head`, a full disk): the report is written, then the output error reported.
    let (summary, written) = pipeline.finish_all();
    if args.report.is_none() {
        match written {
            Ok(()) => {}
            Err(SinkError::Closed) => return Ok(ExitCode::SUCCESS),
            Err(e) => return Err(e).context("writing findings"),
        }
    }
    // A graph that cannot be written is reported once the report is written too: one
    // unwritable file does not take the other with it.
    let mut graph_failed: Option<anyhow::Error> = None;
    if let (Some(path), Some(fmt)) = (&args.dependency_graph, graph_format) {
        let empty = serde_json::json!({"dependencies": []});
        let text = render_graph(summary.dependencies.as_ref().unwrap_or(&empty), fmt);
        if let Err(e) = std::fs::write(path, text) {
            graph_failed = Some(anyhow::Error::new(e).context(format!(
                "--dependency-graph {}: cannot write the graph (the findings above are complete)",
                path.display()
            )));
        }
    }
    if let (Some(path), Some(data)) = (&args.report, summary.report.as_deref()) {
        if let Err(e) = write_report(path, data) {
            if let Some(g) = graph_failed.take() {
                eprintln!("observer: error: {g:#}");
            }
            return Err(e);
        }
    }
    match written {
        Ok(()) => {}
        Err(SinkError::Closed) => return graph_failed.map_or(Ok(ExitCode::SUCCESS), Err),
        Err(e) => {
            if let Some(g) = graph_failed.take() {
                eprintln!("observer: error: {g:#}");
            }
            return Err(e).context("writing findings (the report was written)");
        }
    }
    if let Some(g) = graph_failed {
        return Err(g);
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
    Ok(fail_on_gate(args.fail_on, &summary))
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
        // A table per fallacy: its count, then its most severe findings.
        eprintln!("  findings: {total}");
        let color = std::io::stderr().is_terminal();
        let paint = |code: &str, t: &str| {
            if color {
                format!("\x1b[{code}m{t}\x1b[0m")
            } else {
                t.to_string()
            }
        };
        for f in Fallacy::ALL {
            let i = usize::from(f.id() - 1);
            let n = s.by_fallacy[i];
            if n == 0 {
                continue;
            }
            let head = format!("{} {}", f.id(), f.title());
            eprintln!("  {} {n}", paint("1", &format!("{head:<38}")));
            for t in &s.top[i] {
                let sev = format!("{:<8}", t.severity.name());
                let sev = match t.severity {
                    Severity::Critical | Severity::High => paint("31", &sev),
                    Severity::Medium => paint("33", &sev),
                    Severity::Low => paint("36", &sev),
                };
                let mut msg = t.message.clone();
                if msg.chars().count() > 100 {
                    msg = msg.chars().take(99).collect::<String>() + "…";
                }
                eprintln!("      {sev} {:<30} {msg}", t.rule);
            }
            if n as usize > s.top[i].len() {
                eprintln!("      … and {} more", n as usize - s.top[i].len());
            }
        }
    }
    let skipped = p.non_ip + p.unsupported_link + p.undecodable;
    if skipped + p.snapped > 0 {
        eprintln!(
            "  not analyzed: {} non-IP, {} unsupported link type, {} undecodable; {} cut by snap length",
            human_count(p.non_ip),
            human_count(p.unsupported_link),
            human_count(p.undecodable),
            human_count(p.snapped),
        );
    }
    let counter = |name: &str| s.counters.get(name).copied().unwrap_or(0);
    if p.fragments > 0 {
        let given_up = counter("ip.reassembly_incomplete")
            + counter("ip.reassembly_inconsistent")
            + counter("ip.fragments_snapped")
            + counter("limits.fragments_untracked");
        eprintln!(
            "  {} IP fragments: {} datagrams reassembled{}",
            human_count(p.fragments),
            human_count(counter("ip.reassembled")),
            if given_up > 0 {
                format!(
                    "; not reassembled: {} incomplete, {} inconsistent, {} fragments cut by snap length, {} beyond the reassembly limits (a first fragment is analyzed alone, for its ports)",
                    human_count(counter("ip.reassembly_incomplete")),
                    human_count(counter("ip.reassembly_inconsistent")),
                    human_count(counter("ip.fragments_snapped")),
                    human_count(counter("limits.fragments_untracked")),
                )
            } else {
                String::new()
            }
        );
    }
    let outliers = counter("frames.timestamp_outliers");
    if outliers > 0 {
        eprintln!(
            "  {} frame(s) stamped more than an hour ahead of the frames around them: analyzed at the capture's time instead",
            human_count(outliers)
        );
    }
    let (tcp, syns) = (counter("packets.tcp"), counter("packets.tcp_syns"));
    if syns > 1 && syns == tcp && counter("packets.udp") == 0 {
        eprintln!(
            "  every packet is a TCP SYN: if the capture kept only SYNs (a filter such as 'tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn'), the answers were left out and the unanswered and sweep verdicts are not real"
        );
    }
    for (name, what) in [
        (
            "dns.unknown_outcome",
            "DNS query(ies) without a response came from clients the capture holds nothing sent to, though they acknowledged data it does not hold: it misses what reaches them, so their outcome is unknown (not reported)",
        ),
        (
            "topology.icmp_unreachable_late_replies",
            "reply(ies) found their client's port already closed (it answered ICMP port unreachable): answers that came after the client stopped waiting",
        ),
    ] {
        let n = counter(name);
        if n > 0 {
            eprintln!("  {} {what}", human_count(n));
        }
    }
    let steps = counter("frames.time_steps_back");
    if steps > 0 {
        eprintln!(
            "  the capture's clock stepped back {} time(s) (a frame stamped more than 1 s before the one just before it): durations and rates across a step are not the real ones",
            human_count(steps)
        );
    }
    let copies = counter("frames.duplicates");
    if copies > 0 {
        eprintln!(
            "  {} TCP or UDP frame(s) were copies of a frame just before them (the same packet captured twice: `-i any` on a bridge or VLAN, a mirror port): each analyzed once",
            human_count(copies)
        );
    }
    let evicted = counter("flows.evicted_capacity");
    if evicted > 0 {
        eprintln!(
            "  flow table full: {} flows ended early to make room (limit {} flows); raise [flows] max_memory_mb or max_flows if this was not a flood",
            human_count(evicted),
            human_count(counter("flows.limit"))
        );
    }
    let shed = counter("limits.parse_buffers_shed");
    if shed > 0 {
        eprintln!(
            "  parsing buffers full: {} flows no longer followed at the application layer (their TLS handshake or HTTP exchanges); raise [flows] max_parse_buffers_mb if this was not an attack",
            human_count(shed)
        );
    }
    let (untracked, clamped) = (
        counter("limits.latency_samples_untracked"),
        counter("limits.latency_samples_clamped"),
    );
    if untracked + clamped > 0 {
        eprintln!(
            "  latency histograms full: {} samples not recorded (no histogram yet), {} recorded at their histogram's top; raise [latency] max_histograms_mb",
            human_count(untracked),
            human_count(clamped)
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

/// observer's own log lines, on stderr.
fn init_logs(format: &str, level: tracing::Level) {
    let b = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false);
    if format == "json" {
        b.json().init();
    } else {
        b.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

/// `p` as one spelling of the place it names (`./x` and `x` are the same file), for telling
/// whether two outputs write to one place; as given when it cannot be resolved.
fn resolved(p: &std::path::Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| match (p.parent(), p.file_name()) {
        (Some(d), Some(name)) => {
            let d = if d.as_os_str().is_empty() {
                std::path::Path::new(".")
            } else {
                d
            };
            std::fs::canonicalize(d).map_or_else(|_| p.to_path_buf(), |d| d.join(name))
        }
        _ => p.to_path_buf(),
    })
}

/// The files a run writes only at its end (the report, the graph, a new baseline): each is
/// checked before anything is read, so that a mistyped directory is refused at once instead of
/// after a long capture's analysis. The check creates (and removes) a file of its own next to
/// the path, which is what writing it will take; a path that is a directory is refused too. A
/// disk that fills up meanwhile can still fail the write at the end (reported then, the
/// findings already written).
fn check_writable(writes: &[(&str, &std::path::Path)]) -> anyhow::Result<()> {
    for &(flag, path) in writes {
        let refuse = |why: String| {
            anyhow::anyhow!(
                "{flag} {}: cannot be written ({why}); nothing was read",
                path.display()
            )
        };
        if path.is_dir() || path.as_os_str().as_encoded_bytes().ends_with(b"/") {
            return Err(refuse("Is a directory".to_string()));
        }
        let Some(name) = path.file_name() else {
            return Err(refuse("it names no file".to_string()));
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => std::path::Path::new("."),
        };
        let mut probe_name = std::ffi::OsString::from(".");
        probe_name.push(name);
        probe_name.push(format!(".observer-check-{}", std::process::id()));
        let probe = dir.join(probe_name);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)
            .map_err(|e| refuse(e.to_string()))?;
        let _ = std::fs::remove_file(&probe);
    }
    Ok(())
}

/// What a run writes (`--output`, and `writes`: the report, the graph, a new baseline),
/// against what it reads (`reads`: the captures, the configuration) and each other: an output
/// on an input would overwrite the capture being read, or append events to it; the report
/// renamed over an events file would leave no events; two outputs on one place would each get
/// every event (twice in one file, with two rotations fighting over it), and two socket
/// outputs on one spool directory would send and truncate each other's queue. Refused before
/// anything is read or written, naming both; a clash of outputs with each other only when no
/// file clashes with an input or another file.
/// Where a path leads: its one spelling ([`resolved`]) and, for an existing regular file, its
/// device and inode, so that two names of one file (hard links) are one place too.
#[derive(Debug)]
struct Place {
    path: PathBuf,
    file: Option<(u64, u64)>,
}

impl Place {
    fn of(p: &std::path::Path) -> Place {
        use std::os::unix::fs::MetadataExt as _;
        let file = std::fs::metadata(p)
            .ok()
            .filter(std::fs::Metadata::is_file)
            .map(|m| (m.dev(), m.ino()));
        Place {
            path: resolved(p),
            file,
        }
    }

    fn stdout() -> Place {
        Place {
            path: PathBuf::from("\0stdout"),
            file: None,
        }
    }

    /// Whether writing to one would write to the other.
    fn same(&self, other: &Place) -> bool {
        self.path == other.path || (self.file.is_some() && self.file == other.file)
    }
}

fn check_files_apart(
    reads: &[(&str, &std::path::Path)],
    specs: &[OutputSpec],
    writes: &[(&str, &std::path::Path)],
) -> anyhow::Result<()> {
    /// What a place is to the run: an `--output` file is compared with the inputs and the
    /// other outputs; standard output and a spool directory with the other outputs only.
    #[derive(Clone, Copy, PartialEq)]
    enum Role {
        Input,
        OutputFile,
        OutputOther,
        Write,
    }
    use Role::{Input, OutputFile, OutputOther, Write};
    let mut seen: Vec<(String, Place, Role)> = reads
        .iter()
        .filter(|(_, p)| p.as_os_str() != "-")
        .map(|(what, p)| (format!("{what} {}", p.display()), Place::of(p), Input))
        .collect();
    let outputs = specs.iter().filter_map(|spec| {
        Some(match spec {
            OutputSpec::Stdout => ("--output stdout".to_string(), Place::stdout(), OutputOther),
            OutputSpec::File { path, .. } => (
                format!("--output file:{}", path.display()),
                Place::of(path),
                OutputFile,
            ),
            OutputSpec::Socket {
                spool: Some(dir), ..
            } => (
                format!("--output spool={}", dir.display()),
                Place::of(dir),
                OutputOther,
            ),
            OutputSpec::Socket { spool: None, .. } => return None,
        })
    });
    let writes = writes
        .iter()
        .map(|(flag, p)| (format!("{flag} {}", p.display()), Place::of(p), Write));
    // The first output on the same place as an earlier one, and that one.
    let mut outputs_clash: Option<(String, String)> = None;
    for (what, place, role) in outputs.chain(writes) {
        let clash = |against: &dyn Fn(Role) -> bool| {
            seen.iter()
                .find(|(_, p, r)| against(*r) && p.same(&place))
                .map(|(first, _, r)| (first.clone(), *r))
        };
        let with_file = match role {
            OutputFile => clash(&|r| r == Input),
            Write => clash(&|r| r != OutputOther),
            _ => None,
        };
        if let Some((first, r)) = with_file {
            let why = if r == Input {
                "it would be written over, or into, while it is read"
            } else {
                "one would replace what the other wrote"
            };
            anyhow::bail!("{what}: the same file as {first} ({why}): name another file");
        }
        if role != Write && outputs_clash.is_none() {
            outputs_clash = clash(&|r| r == OutputFile || r == OutputOther)
                .map(|(first, _)| (what.clone(), first));
        }
        seen.push((what, place, role));
    }
    if let Some((what, first)) = outputs_clash {
        anyhow::bail!(
            "{what}: the same place as {first} (every event would be written twice to it, or a spool directory shared by two outputs): give each output its own"
        );
    }
    Ok(())
}

/// The sinks `--output` asked for (stdout when none). `detached`: stdout and files write on
/// their own threads behind a bounded queue (live runs: a slow reader never blocks capture).
/// The caller has refused clashing places first ([`check_files_apart`]).
fn open_outputs(specs: &[OutputSpec], detached: bool) -> anyhow::Result<Box<dyn Sink>> {
    let detach = |s: Box<dyn Sink + Send>, name: &str| -> anyhow::Result<Box<dyn Sink>> {
        if detached {
            Ok(Box::new(Detached::new(s, 100_000, name)?))
        } else {
            Ok(s)
        }
    };
    let one = |spec: &OutputSpec| -> anyhow::Result<(String, Box<dyn Sink>)> {
        Ok(match spec {
            OutputSpec::Stdout if detached => (
                "stdout".to_string(),
                detach(
                    Box::new(NdjsonSink::new(std::io::stdout(), "standard output")),
                    "stdout",
                )?,
            ),
            OutputSpec::Stdout => (
                "stdout".to_string(),
                Box::new(NdjsonSink::new(std::io::stdout().lock(), "standard output")),
            ),
            OutputSpec::File {
                path,
                rotate_bytes,
                keep,
            } => (
                "file".to_string(),
                detach(
                    Box::new(
                        FileSink::open(path, *rotate_bytes, *keep)
                            .with_context(|| format!("--output file:{}", path.display()))?,
                    ),
                    "file",
                )?,
            ),
            OutputSpec::Socket {
                endpoint,
                spool,
                queue,
            } => {
                let mut o = SocketOptions::new(endpoint.clone());
                o.spool.clone_from(spool);
                o.queue = *queue;
                let kind = match endpoint {
                    Endpoint::Tcp(_) => "tcp",
                    Endpoint::Unix(_) => "unix",
                };
                (
                    kind.to_string(),
                    Box::new(SocketSink::start(o).with_context(|| format!("--output {endpoint}"))?),
                )
            }
        })
    };
    match specs {
        [] => Ok(one(&OutputSpec::Stdout)?.1),
        [only] => {
            let (name, s) = one(only)?;
            Ok(Box::new(FanOut::new(vec![(name, s)])))
        }
        many => {
            let mut v = Vec::new();
            for (i, spec) in many.iter().enumerate() {
                let (name, s) = one(spec)?;
                v.push((format!("{name}_{i}"), s));
            }
            Ok(Box::new(FanOut::new(v)))
        }
    }
}

/// The configuration file a run reads, for [`check_files_apart`].
#[cfg(any(feature = "live", feature = "probe"))]
fn config_read(config: Option<&std::path::Path>) -> Vec<(&'static str, &std::path::Path)> {
    config.map(|c| ("--config", c)).into_iter().collect()
}

#[cfg(feature = "live")]
fn live(args: LiveArgs) -> anyhow::Result<ExitCode> {
    use observer::source::live::{LiveCapture, LiveItem, LiveOptions};
    use std::sync::atomic::Ordering;

    let mut cfg = load_config(args.run.config.as_deref())?;
    cfg.report.streaming();
    let reads = config_read(args.run.config.as_deref());
    let writes: Vec<(&str, &std::path::Path)> = args
        .report
        .iter()
        .map(|r| ("--report", r.as_path()))
        .collect();
    check_files_apart(&reads, &args.out.outputs, &writes)?;
    check_writable(&writes)?;
    let stop = stop_on_signals()?;
    let opts = LiveOptions {
        interface: args.interface.clone(),
        filter: args.filter.clone(),
        snaplen: args.snaplen,
        promiscuous: args.promiscuous,
        ..LiveOptions::default()
    };
    let mut cap = LiveCapture::open(&opts)?;
    tracing::info!(
        interface = %args.interface,
        link_type = cap.link_type().0,
        filter = args.filter.as_deref().unwrap_or(""),
        "capturing"
    );
    let started = Instant::now();
    let mut sink = open_outputs(&args.out.outputs, true)?;
    let input = PathBuf::from(format!("live:{}", args.interface));
    let mut pipeline = Pipeline::new(&cfg, sink.as_mut(), std::slice::from_ref(&input));
    if args.report.is_some() {
        pipeline.enable_report();
    }
    let deadline = start_stream(&mut pipeline, &args.run, started)?;
    let mut read_error = None;
    let mut sink_error = None;
    let mut packets = 0u64;
    while !stop.load(Ordering::Relaxed) && deadline.is_none_or(|d| Instant::now() < d) {
        let r = match cap.next_item() {
            Ok(LiveItem::Packet(p)) => {
                packets += 1;
                pipeline.process(&p)
            }
            Ok(LiveItem::Idle) => match cap.idle() {
                Some(ts) => pipeline.heartbeat(ts),
                None => Ok(()),
            },
            Err(e) => {
                read_error = Some(e);
                break;
            }
        };
        match r {
            Ok(()) => {}
            Err(SinkError::Closed) => break,
            Err(e) => {
                // No output is left (one failing among several is left out by the fan-out,
                // which reports it at the end): stop capturing, still finishing the outputs.
                sink_error = Some(e);
                break;
            }
        }
    }
    let cs = cap.stats();
    if cs.dropped_kernel + cs.dropped_interface > 0 {
        tracing::warn!(
            dropped_kernel = cs.dropped_kernel,
            dropped_interface = cs.dropped_interface,
            "the kernel dropped packets: findings may undercount"
        );
    }
    pipeline.set_capture_stats(cs);
    // The report is written whatever happened to the outputs (the analysis is complete).
    let failed = read_error.as_ref().map(|e| e.to_string());
    let (summary, written) = end_stream(pipeline, input, "live", packets, failed);
    tracing::info!(packets, "stopped");
    if let (Some(path), Some(data)) = (&args.report, summary.report.as_deref()) {
        write_report(path, data)?;
    }
    if let Some(e) = sink_error {
        return Err(e)
            .context("writing findings (capture stopped; the other outputs were drained)");
    }
    match written {
        Ok(()) => {}
        Err(SinkError::Closed) => return Ok(ExitCode::SUCCESS),
        Err(e) => return Err(e).context("writing findings"),
    }
    if !args.run.quiet {
        print_summary(&summary, started.elapsed().as_secs_f64());
    }
    if let Some(e) = read_error {
        eprintln!(
            "observer: error: {:#} (everything captured before it was analyzed and reported)",
            anyhow::Error::from(e)
        );
        return Ok(ExitCode::from(2));
    }
    Ok(fail_on_gate(args.run.fail_on, &summary))
}

#[cfg(not(feature = "live"))]
fn live(_args: LiveArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!(
        "live capture is not compiled into this build (built without the `live` feature, which needs libpcap): rebuild with default features, or analyze a capture file with `observer analyze`"
    )
}

/// `observer manpage`: roff from the command line's definition.
fn manpage(dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let cmd = <Cli as clap::CommandFactory>::command();
    match dir {
        Some(d) => {
            std::fs::create_dir_all(&d)
                .and_then(|()| clap_mangen::generate_to(cmd, &d))
                .with_context(|| format!("{}: cannot write the man pages", d.display()))?;
        }
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .context("writing the man page")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The findings (alert events) of a run, kept in order; every other event is dropped.
#[derive(Default)]
struct Findings(Vec<serde_json::Value>);

impl observer::sink::Sink for Findings {
    fn write(&mut self, event: &serde_json::Value) -> Result<(), observer::sink::SinkError> {
        if event["event"]["kind"] == "alert" {
            self.0.push(event.clone());
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), observer::sink::SinkError> {
        Ok(())
    }
}

/// `observer baseline create|check`.
fn baseline(cmd: BaselineCommand) -> anyhow::Result<ExitCode> {
    use observer::baseline::{Baseline, fingerprint, severity_of};
    let (create, args, fail_on) = match cmd {
        BaselineCommand::Create(a) => (true, a, None),
        BaselineCommand::Check(a) => (false, a.common, a.fail_on),
    };
    args.input.check_stdin_once()?;
    if create {
        let writes = [("--baseline", args.baseline.as_path())];
        check_files_apart(&args.input.reads(), &[], &writes)?;
        check_writable(&writes)?;
    }
    let cfg = load_config(args.input.config.as_deref())?;
    // `check` reads the baseline first: a bad file is reported before any analysis runs.
    let accepted = if create {
        None
    } else {
        Some(Baseline::load(&args.baseline)?)
    };
    // Only the findings are compared: the metric events (latency histograms every interval,
    // per service) are not kept, so a long capture's run does not hold them all.
    let mut sink = Findings::default();
    let mut pipeline = Pipeline::new(&cfg, &mut sink, &args.input.files);
    pipeline.set_read_ahead(args.input.read_ahead());
    for f in &args.input.files {
        pipeline.run_file(f).context("analysis")?;
    }
    let summary = pipeline.finish().context("analysis")?;
    for r in &summary.inputs {
        match &r.status {
            InputStatus::Complete => {}
            InputStatus::Partial(observer::source::SourceError::Truncated { .. }) => {}
            InputStatus::Partial(e) | InputStatus::Failed(e) => anyhow::bail!(
                "{e}: a baseline needs every input read whole (nothing was {})",
                if create { "written" } else { "checked" }
            ),
        }
    }
    let events = sink.0;
    let Some(accepted) = accepted else {
        let b = Baseline::from_events(&events);
        b.save(&args.baseline)?;
        eprintln!(
            "observer: baseline {} written: {} finding(s) accepted",
            args.baseline.display(),
            b.findings.len()
        );
        return Ok(ExitCode::SUCCESS);
    };
    let (new, gone) = accepted.compare(&events);
    let gate = fail_on.unwrap_or(Severity::Low);
    let mut failing = 0usize;
    let mut worse = 0usize;
    let mut out = std::io::stdout().lock();
    for (ev, accepted_as) in &new {
        let sev = severity_of(ev);
        let fails = sev.is_some_and(|s| s >= gate);
        failing += usize::from(fails);
        worse += usize::from(accepted_as.is_some());
        eprintln!(
            "observer: {} finding {} [{}{}] {}: {}",
            match (fails, accepted_as.is_some()) {
                (true, false) => "NEW",
                (false, false) => "new (below --fail-on)",
                (true, true) => "MORE SEVERE",
                (false, true) => "more severe (below --fail-on)",
            },
            fingerprint(ev).unwrap_or_default(),
            sev.map_or("?", |s| s.name()),
            accepted_as.map_or_else(String::new, |e| format!(", accepted as {}", e.severity)),
            ev["rule"]["name"].as_str().unwrap_or("?"),
            ev["message"].as_str().unwrap_or("")
        );
        use std::io::Write as _;
        let _ = writeln!(out, "{ev}");
    }
    for (fp, e) in &gone {
        eprintln!(
            "observer: accepted finding {fp} {} no longer seen (fixed? remove it with `baseline create`)",
            e.rule
        );
    }
    eprintln!(
        "observer: baseline check: {} new finding(s) ({} of them accepted at a lower severity), {} failing at --fail-on {}, {} accepted, {} accepted not seen",
        new.len(),
        worse,
        failing,
        gate,
        accepted.findings.len(),
        gone.len()
    );
    Ok(if failing > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The configuration file, or the defaults.
fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<Config> {
    Ok(match path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    })
}

/// Starts a streaming run (`live`, `probe`): a random run id (two runs of one interface must
/// not share event ids), flushing per event, the start event written now; returns when
/// `--duration` ends it.
#[cfg(any(feature = "live", feature = "probe"))]
fn start_stream(
    pipeline: &mut Pipeline<'_>,
    run: &StreamArgs,
    started: Instant,
) -> anyhow::Result<Option<Instant>> {
    pipeline.set_run_id(format!("{:016x}", fastrand::u64(..)));
    pipeline.set_streaming(true);
    pipeline
        .heartbeat(observer::source::wall_clock())
        .context("writing findings")?;
    Ok(run
        .duration
        .map(|d| started + std::time::Duration::from_secs_f64(d.max(0.0))))
}

/// Ends a streaming run (live or probe): records the input, then finishes the pipeline (last
/// findings, summary event, outputs drained). The summary comes with the first output error,
/// if any (`Closed` when stdout's reader went away). `failed`: why the source stopped before
/// it was asked to (an interface that disappeared): the input is then partial, with that
/// error, as a capture file that ends damaged is.
#[cfg(any(feature = "live", feature = "probe"))]
fn end_stream(
    mut pipeline: Pipeline<'_>,
    path: PathBuf,
    format: &'static str,
    packets: u64,
    failed: Option<String>,
) -> (RunSummary, Result<(), SinkError>) {
    let status = match failed {
        None => InputStatus::Complete,
        Some(why) => InputStatus::Partial(observer::source::SourceError::Io {
            path: path.clone(),
            source: std::io::Error::other(why),
        }),
    };
    pipeline.add_input(observer::pipeline::InputReport {
        path,
        format: Some(format),
        gzip: false,
        packets,
        status,
        unsupported_links: Default::default(),
    });
    pipeline.finish_all()
}

/// SIGINT/SIGTERM: the first asks the loop to stop (the flag), the second exits at once.
#[cfg(any(feature = "live", feature = "probe"))]
fn stop_on_signals() -> anyhow::Result<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    use std::sync::Arc;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for (sig, code) in [
        (signal_hook::consts::SIGINT, 130),
        (signal_hook::consts::SIGTERM, 143),
    ] {
        signal_hook::flag::register_conditional_shutdown(sig, code, Arc::clone(&stop))
            .context("installing the signal handler")?;
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing the signal handler")?;
    }
    Ok(stop)
}

#[cfg(feature = "probe")]
fn probe(args: ProbeArgs) -> anyhow::Result<ExitCode> {
    use observer::probe::{Probe, ProbeOptions};
    use std::sync::atomic::Ordering;

    let mut cfg = load_config(args.run.config.as_deref())?;
    cfg.report.streaming();
    let reads = config_read(args.run.config.as_deref());
    check_files_apart(&reads, &args.out.outputs, &[])?;
    let stop = stop_on_signals()?;
    let attaching = Instant::now();
    let mut probe = Probe::attach(&ProbeOptions {
        interfaces: args.interface.clone(),
        ring_bytes: args.ring_size,
        max_flows: args.max_flows,
        wakeup_each: args.wakeup_each,
    })?;
    let names: Vec<&str> = probe.interfaces().iter().map(|i| i.name.as_str()).collect();
    // Outputs are opened before privileges go (a spool directory may need them).
    let mut sink = open_outputs(&args.out.outputs, true)?;
    if let Err(e) = probe.drop_privileges() {
        tracing::warn!(error = %e, "could not drop capabilities; continuing with them");
    }
    tracing::info!(
        interfaces = %names.join(","),
        attach_ms = attaching.elapsed().as_millis() as u64,
        "probe attached"
    );
    let started = Instant::now();
    let input = PathBuf::from(format!("probe:{}", names.join(",")));
    let mut pipeline = Pipeline::new(&cfg, sink.as_mut(), std::slice::from_ref(&input));
    pipeline.set_sampled_source(true);
    let deadline = start_stream(&mut pipeline, &args.run, started)?;
    let mut sink_error = None;
    let mut sweep_error = None;
    let mut packets = 0u64;
    let mut last_sweep = Instant::now();
    let sweep_every = std::time::Duration::from_millis(250);
    loop {
        let stopping =
            stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d);
        if !stopping {
            probe.wait(10);
        }
        // Bounded batches keep the heartbeat and sweeps on time under a flood; when stopping,
        // everything still in the rings is read.
        const BATCH: usize = 4096;
        let mut r = probe.drain(BATCH, |p| pipeline.process(p), |_| {});
        while stopping && matches!(r, Ok(n) if n == BATCH) {
            packets += BATCH as u64;
            r = probe.drain(BATCH, |p| pipeline.process(p), |_| {});
        }
        let r = r.and_then(|n| {
            packets += n as u64;
            if stopping || last_sweep.elapsed() >= sweep_every {
                last_sweep = Instant::now();
                if let Err(e) = probe.sweep(|f| pipeline.merge_totals(&f.totals)) {
                    sweep_error.get_or_insert(e);
                }
                pipeline.heartbeat(observer::source::wall_clock())?;
            }
            Ok(())
        });
        match r {
            Ok(()) => {}
            Err(SinkError::Closed) => break,
            Err(e) => {
                sink_error = Some(e);
                break;
            }
        }
        if stopping {
            break;
        }
    }
    let counters = probe.counters();
    let skipped = |name: &str| {
        counters
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, v)| *v)
    };
    let (resent, events) = (
        skipped("probe.dropped.retransmits_skipped"),
        skipped("probe.dropped.events_skipped"),
    );
    if resent + events > 0 {
        tracing::warn!(
            retransmits_skipped = resent,
            events_skipped = events,
            "the kernel skipped runs of the probe's tracepoint programs (another BPF program or a BPF system call held the CPU): retransmission counts may be short by what {resent} retransmitted skb(s) carried, and {events} socket event(s) were not seen"
        );
    }
    pipeline.set_source_counters(counters);
    let summary = match end_stream(pipeline, input, "probe", packets, None) {
        (s, Ok(())) => s,
        (_, Err(SinkError::Closed)) => return Ok(ExitCode::SUCCESS),
        (_, Err(e)) => return Err(e).context("writing findings"),
    };
    drop(probe);
    tracing::info!(packets, "probe detached");
    if let Some(e) = sink_error {
        return Err(e).context("writing findings (probe stopped; the other outputs were drained)");
    }
    if let Some(e) = sweep_error {
        tracing::warn!(error = %e, "reading the kernel flow map failed: byte and retransmission totals may be low");
    }
    if !args.run.quiet {
        print_summary(&summary, started.elapsed().as_secs_f64());
    }
    Ok(fail_on_gate(args.run.fail_on, &summary))
}

#[cfg(not(feature = "probe"))]
fn probe(_args: ProbeArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!(
        "the kernel probe is not compiled into this build (built without the `probe` feature, which needs the pinned nightly toolchain and bpf-linker: scripts/setup-ebpf.sh installs them); rebuild with default features, or analyze a capture file with `observer analyze`"
    )
}

/// `--fail-on`: exit 1 when a finding at or above the gate was emitted.
fn fail_on_gate(gate: Option<Severity>, summary: &RunSummary) -> ExitCode {
    if let (Some(gate), Some(max)) = (gate, summary.max_severity) {
        if max >= gate {
            eprintln!(
                "observer: failing: a finding of severity {max} is at or above --fail-on {gate}"
            );
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory as _;

    /// Every command and every flag says what it does and shows an example (the issue's
    /// contract for the CLI; completions and man pages are generated from the same text).
    #[test]
    fn every_command_and_flag_has_help_with_an_example() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                let help = arg
                    .get_long_help()
                    .or(arg.get_help())
                    .map(|h| h.to_string())
                    .unwrap_or_default();
                if help.trim().is_empty() || !help.contains("Example") {
                    missing.push(format!("{path} --{id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                let name = sub.get_name();
                if name == "help" {
                    continue;
                }
                let about = sub
                    .get_long_about()
                    .or(sub.get_about())
                    .map(|h| h.to_string())
                    .unwrap_or_default();
                if !about.contains("Example") {
                    missing.push(format!("{path} {name} (command)"));
                }
                walk(sub, &format!("{path} {name}"), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "observer", &mut missing);
        assert!(missing.is_empty(), "no help or no example: {missing:#?}");
    }
}
