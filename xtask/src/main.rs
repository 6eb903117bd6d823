//! Project orchestration (`cargo xtask …`): constructed fixtures, golden files, the benchmark
//! capture and the side-by-side benchmark. Nothing here is part of the product.

mod bench;
mod compare;
mod fixtures;
mod packets;
mod pcapw;
mod probe_bench;
mod synth;

use anyhow::{Context as _, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

const USAGE: &str = "usage: cargo xtask <command>
  fixtures                 rewrite the constructed captures in fixtures/
  bless [fixtures/NEW.pcap…]
                           regenerate the golden files fixtures/NAME.ndjson (the output for
                           fixtures/NAME.pcap) from the current build, adding those for NEW
  gen-capture OUT [MB] [SLOWDOWN]
                           write the reproducible synthetic benchmark capture (default 600 MB;
                           SLOWDOWN multiplies the gaps between packets, default 1)
  gen-synflood OUT [N] [--scan]
                           write a SYN flood: N SYNs (default 1,000,000) from distinct clients
                           to one server within 10 s, so all N flows are open at once (--scan:
                           from one client to N distinct addresses)
  bench [--capture FILE] [--size-mb N] [--runs N] [--slow] [--keep-cache]
                           side-by-side benchmark (--slow adds tshark and tcptrace); the
                           capture is first dropped from the page cache and read back once
                           (--keep-cache: measure the page cache as found)
  compare-builds --capture FILE [--runs N] [--keep-cache] BIN BIN…
                           observer binaries (builds of two commits or settings) on one capture:
                           says whether they write the same output, then N rounds (default 21) of
                           each once, alternating, pinned to CPU 0: wall-time quartiles and
                           each median against the first build's
  bench-probe [--rounds N] [--secs S] [--connections N]
                           what the kernel probe costs (root): loopback throughput with and
                           without it, ns per event from the kernel's BPF stats, delivery
                           counts over N short connections (defaults 5, 3, 10000)
  memory-scaling           peak RSS of observer on a 200 MB and a 2 GB capture of the same
                           steady traffic mix, and their ratio
  histogram-memory [SERVICES]
                           measure the memory of the latency histograms for N services (default 100000)";

/// The golden files: every `fixtures/NAME.ndjson` is the output for `fixtures/NAME.pcap` (the
/// rule `tests/tests/golden.rs` follows too). Paths relative to the root, sorted.
fn golden_files(root: &Path) -> Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    for entry in std::fs::read_dir(root.join("fixtures")).context("reading fixtures/")? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".ndjson") {
            pairs.push((format!("fixtures/{stem}.pcap"), format!("fixtures/{name}")));
        }
    }
    pairs.sort();
    Ok(pairs)
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask has a parent")
        .to_path_buf()
}

/// Rewrites every golden file, plus new ones for `new_captures` (`fixtures/NAME.pcap`).
fn bless(root: &Path, new_captures: &[String]) -> Result<()> {
    let observer = bench::build_observer(root)?;
    let mut goldens = golden_files(root)?;
    for cap in new_captures {
        let Some(stem) = cap
            .strip_prefix("fixtures/")
            .and_then(|c| c.strip_suffix(".pcap"))
        else {
            bail!("{cap}: a golden capture is fixtures/NAME.pcap");
        };
        goldens.push((cap.clone(), format!("fixtures/{stem}.ndjson")));
    }
    for (cap, golden) in &goldens {
        if !root.join(cap).exists() {
            eprintln!("skipping {cap}: not present");
            continue;
        }
        let out = Command::new(&observer)
            .current_dir(root)
            .args(["analyze", "-q", cap])
            .output()
            .with_context(|| format!("running observer on {cap}"))?;
        std::fs::write(root.join(golden), &out.stdout)?;
        println!(
            "blessed {golden} ({} lines)",
            out.stdout.split(|b| *b == b'\n').count() - 1
        );
    }
    Ok(())
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The latency analyzer keeps, per service and metric, two auto-resizing HdrHistograms
/// (2 significant digits, u32 counts, microseconds): one for the interval, one for the run.
/// This fills N services × one metric with 200 samples spread 50 µs … 200 ms (the width of a
/// typical HTTP service's distribution) and reports the resident memory they take.
fn histogram_memory(n: usize) -> Result<()> {
    let before = rss_kib();
    let mut all: Vec<[hdrhistogram::Histogram<u32>; 2]> = Vec::with_capacity(n);
    let mut x: u64 = 0x9e37_79b9;
    for _ in 0..n {
        let mut pair = [
            hdrhistogram::Histogram::<u32>::new(2)?,
            hdrhistogram::Histogram::<u32>::new(2)?,
        ];
        for _ in 0..200 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = 50 + x % 200_000;
            for h in &mut pair {
                h.record(v)?;
            }
        }
        all.push(pair);
    }
    let after = rss_kib();
    let per = (after.saturating_sub(before)) as f64 * 1024.0 / n as f64;
    println!(
        "{n} services x 1 metric (interval + run histograms): {:.1} MiB resident, {:.0} bytes per service-metric",
        (after.saturating_sub(before)) as f64 / 1024.0,
        per
    );
    println!(
        "an idle service-metric keeps only the run histogram (about {:.0} bytes); a service with all 6 metrics active costs up to {:.0} KiB; [latency] max_services (default 10,000) bounds the total",
        per / 2.0,
        per * 6.0 / 1024.0
    );
    drop(all);
    Ok(())
}

/// The value after option `flag`, parsed; an error names the option and the value.
fn value<'a, T>(it: &mut impl Iterator<Item = &'a String>, flag: &str) -> Result<T>
where
    T: std::str::FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let v = it
        .next()
        .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
    v.parse()
        .with_context(|| format!("{flag} {v}: not a valid value"))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = root();
    match args.first().map(String::as_str) {
        Some("fixtures") => fixtures::write_all(&root.join("fixtures")),
        Some("bless") => bless(&root, &args[1..]),
        Some("gen-capture") => {
            let out = args.get(1).context(USAGE)?;
            let mb: u64 = args.get(2).map_or(Ok(600), |s| s.parse())?;
            let slowdown: u64 = args.get(3).map_or(Ok(1), |s| s.parse())?;
            let (p, b) = synth::generate(Path::new(out), mb * 1_000_000, 42, slowdown)?;
            println!("wrote {out}: {p} packets, {b} bytes");
            Ok(())
        }
        Some("gen-synflood") => {
            let out = args.get(1).context(USAGE)?;
            let n: u64 = args.get(2).map_or(Ok(1_000_000), |s| s.parse())?;
            let bytes = if args.iter().any(|a| a == "--scan") {
                synth::syn_scan(Path::new(out), n)?
            } else {
                synth::syn_flood(Path::new(out), n)?
            };
            println!("wrote {out}: {n} packets, {bytes} bytes");
            Ok(())
        }
        Some("memory-scaling") => bench::memory_scaling(&root),
        Some("histogram-memory") => {
            let n: usize = args.get(1).map_or(Ok(100_000), |s| s.parse())?;
            histogram_memory(n)
        }
        Some("bench") => {
            let mut capture = None;
            let mut size_mb = 600;
            let mut runs = 3;
            let mut slow = false;
            let mut keep_cache = false;
            let mut it = args[1..].iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--capture" => capture = Some(PathBuf::from(it.next().context(USAGE)?)),
                    "--size-mb" => size_mb = value(&mut it, "--size-mb")?,
                    "--runs" => runs = value(&mut it, "--runs")?,
                    "--slow" => slow = true,
                    "--keep-cache" => keep_cache = true,
                    other => bail!("unknown option {other}\n{USAGE}"),
                }
            }
            bench::run(&root, capture, size_mb, runs.max(1), slow, keep_cache)
        }
        Some("compare-builds") => {
            let mut capture = None;
            let mut runs = 21;
            let mut keep_cache = false;
            let mut bins = Vec::new();
            let mut it = args[1..].iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--capture" => capture = Some(PathBuf::from(it.next().context(USAGE)?)),
                    "--runs" => runs = value(&mut it, "--runs")?,
                    "--keep-cache" => keep_cache = true,
                    other if other.starts_with('-') => bail!("unknown option {other}\n{USAGE}"),
                    bin => bins.push(PathBuf::from(bin)),
                }
            }
            let capture = capture.context("compare-builds needs --capture FILE")?;
            compare::run(&capture, &bins, runs.max(1), keep_cache)
        }
        Some("bench-probe") => {
            let (mut rounds, mut secs, mut conns) = (5usize, 3.0f64, 10_000usize);
            let mut it = args[1..].iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--rounds" => rounds = value(&mut it, "--rounds")?,
                    "--secs" => secs = value(&mut it, "--secs")?,
                    "--connections" => conns = value(&mut it, "--connections")?,
                    other => bail!("unknown option {other}\n{USAGE}"),
                }
            }
            probe_bench::run(&root, rounds.max(1), secs, conns.max(1))
        }
        // Helpers bench-probe runs inside its network namespace.
        Some("loopback-bulk") => {
            probe_bench::loopback_bulk(args.get(1).map_or(Ok(3.0), |s| s.parse())?)
        }
        Some("churn") => probe_bench::churn(args.get(1).map_or(Ok(10_000), |s| s.parse())?),
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2)
        }
    }
}
