//! Project orchestration (`cargo xtask …`): constructed fixtures, golden files, the benchmark
//! capture and the side-by-side benchmark. Nothing here is part of the product.

mod bench;
mod fixtures;
mod packets;
mod pcapw;
mod synth;

use anyhow::{Context as _, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

const USAGE: &str = "usage: cargo xtask <command>
  fixtures                 rewrite the constructed captures in fixtures/
  bless                    regenerate the golden NDJSON files fixtures/*.ndjson from the current build
  gen-capture OUT [MB]     write the reproducible synthetic benchmark capture (default 600 MB)
  bench [--capture FILE] [--size-mb N] [--runs N] [--slow]
                           side-by-side benchmark (--slow adds tshark and tcptrace)";

/// Captures with golden output: (capture, golden file), paths relative to the root.
pub const GOLDEN: &[(&str, &str)] = &[
    (
        "fixtures/constructed-tcp-health.pcap",
        "fixtures/constructed-tcp-health.ndjson",
    ),
    (
        "fixtures/loopback-tcp-health.pcap",
        "fixtures/loopback-tcp-health.ndjson",
    ),
    (
        "fixtures/reliability-retry.pcap",
        "fixtures/reliability-retry.ndjson",
    ),
    (
        "fixtures/reliability-dns.pcap",
        "fixtures/reliability-dns.ndjson",
    ),
    (
        "fixtures/latency-chatty.pcap",
        "fixtures/latency-chatty.ndjson",
    ),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask has a parent")
        .to_path_buf()
}

fn bless(root: &Path) -> Result<()> {
    let ok = Command::new("cargo")
        .current_dir(root)
        .args(["build", "--release", "--quiet", "-p", "observer"])
        .status()?
        .success();
    if !ok {
        bail!("build failed");
    }
    for (cap, golden) in GOLDEN {
        if !root.join(cap).exists() {
            eprintln!("skipping {cap}: not present");
            continue;
        }
        let out = Command::new(root.join("target/release/observer"))
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

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = root();
    match args.first().map(String::as_str) {
        Some("fixtures") => fixtures::write_all(&root.join("fixtures")),
        Some("bless") => bless(&root),
        Some("gen-capture") => {
            let out = args.get(1).context(USAGE)?;
            let mb: u64 = args.get(2).map_or(Ok(600), |s| s.parse())?;
            let (p, b) = synth::generate(Path::new(out), mb * 1_000_000, 42)?;
            println!("wrote {out}: {p} packets, {b} bytes");
            Ok(())
        }
        Some("bench") => {
            let mut capture = None;
            let mut size_mb = 600;
            let mut runs = 3;
            let mut slow = false;
            let mut it = args[1..].iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--capture" => capture = Some(PathBuf::from(it.next().context(USAGE)?)),
                    "--size-mb" => size_mb = it.next().context(USAGE)?.parse()?,
                    "--runs" => runs = it.next().context(USAGE)?.parse()?,
                    "--slow" => slow = true,
                    other => bail!("unknown option {other}\n{USAGE}"),
                }
            }
            bench::run(&root, capture, size_mb, runs.max(1), slow)
        }
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2)
        }
    }
}
