//! A SYN flood of 1,000,000 distinct clients inside 10 s (so every flow is open at once)
//! against a flow table capped at 64 MiB: the table holds what fits, the rest are evicted and
//! counted, the one server is reported as never answering every attempt, and the process's
//! peak memory stays within the cap over a run of a tiny capture. Expected values come from the
//! construction: 1,000,000 unique SYNs, one server.
//!
//! The only test in its binary: the peak RSS of waited-for children (`getrusage`) must be this
//! run's alone.

use observer_tests::{PcapBuilder, ScratchFile, ndjson, observer_bin, root};
use std::process::Command;

const FLOWS: u32 = 1_000_000;

/// Peak RSS of every child waited for so far, in KiB. (`getrusage` has no safe wrapper in std;
/// this is the only unsafe code in the tests.)
#[expect(
    unsafe_code,
    reason = "getrusage is the only way to read the children's peak RSS"
)]
fn children_max_rss_kib() -> i64 {
    // SAFETY: getrusage fills the struct it is given; zeroed is a valid initial value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage struct.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    assert_eq!(rc, 0, "getrusage failed");
    ru.ru_maxrss
}

fn run(args: &[&str]) -> (Vec<serde_json::Value>, String, i64) {
    let out = Command::new(observer_bin())
        .current_dir(root())
        .args(args)
        .output()
        .expect("observer runs");
    assert!(
        out.status.success(),
        "observer {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        ndjson(&out.stdout),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        children_max_rss_kib(),
    )
}

#[test]
fn a_million_flow_syn_flood_stays_under_the_flow_table_cap() {
    let mut b = PcapBuilder::default();
    for i in 0..FLOWS {
        let host = 0x0b00_0000 + i / 50_000; // 11.0.0.0 onwards
        let ip = std::net::Ipv4Addr::from(host).to_string();
        let port = 10_000 + (i % 50_000) as u16;
        b.tcp(
            f64::from(i) * 1e-5,
            (&ip, port),
            ("10.0.0.2", 80),
            i,
            0,
            observer_tests::tcp_flags::SYN,
            &[],
        );
    }
    let flood = ScratchFile::new("synflood.pcap", &b.finish());
    drop(b);
    let cfg = ScratchFile::new("cap.toml", b"[flows]\nmax_memory_mb = 64\n");

    // The baseline: the same program on a small capture.
    let (_, _, base_kib) = run(&["analyze", "fixtures/reliability-loss.pcap"]);

    let (events, stderr, peak_kib) = run(&[
        "analyze",
        "--config",
        cfg.to_str().unwrap(),
        flood.to_str().unwrap(),
    ]);
    let summary = events.last().unwrap();
    let flows = &summary["stats"]["flows"];
    let limit = flows["limit"].as_u64().unwrap();
    // 64 MiB at roughly a kilobyte a flow: tens of thousands, far below the flood.
    assert!((40_000..100_000).contains(&limit), "limit {limit}");
    assert_eq!(flows["tcp"], u64::from(FLOWS));
    assert_eq!(flows["peak_active"], limit);
    assert_eq!(flows["evicted_capacity"], u64::from(FLOWS) - limit);
    assert!(
        stderr.contains("flow table full"),
        "the human summary says the table overflowed:\n{stderr}"
    );
    // Every attempt is still counted against the server, evicted or not. The flows still in
    // the table when the capture ends are its last `limit` SYNs, sent less than 1 s
    // (`limit` × 10 µs) before that end: cut off by it, without a verdict.
    let unanswered: Vec<_> = events
        .iter()
        .filter(|e| e["rule"]["name"] == "tcp.handshake.unanswered")
        .collect();
    assert_eq!(unanswered.len(), 1);
    assert_eq!(
        unanswered[0]["fallacy"]["evidence"]["connections"],
        u64::from(FLOWS) - limit
    );
    assert_eq!(
        observer_tests::stat(&events, "tcp.handshakes.open_at_end"),
        limit
    );
    // Memory: the cap plus a tenth, over the small run's peak.
    let allowed = base_kib + 64 * 1024 * 11 / 10;
    assert!(
        peak_kib <= allowed,
        "peak {peak_kib} KiB > {allowed} KiB (baseline {base_kib} KiB + 64 MiB cap)"
    );
}
