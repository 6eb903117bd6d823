//! A SYN flood of 1,000,000 distinct clients inside 10 s (so every flow is open at once)
//! against a flow table capped at 64 MiB: the table holds what fits, the rest are evicted and
//! counted, the one server is reported as never answering every attempt, and the process's
//! peak memory stays within the cap over a run of a tiny capture. Expected values come from the
//! construction: 1,000,000 unique SYNs, one server.
//!
//! Each run's peak RSS is its own (`wait4` on that process): the build of the binary, or any
//! other child, is not in it.

use observer_tests::{PcapBuilder, ScratchFile, ndjson, observer_bin, root};
use std::io::{Read as _, Write as _};
use std::process::{Command, Stdio};

const FLOWS: u32 = 1_000_000;

/// Runs observer with `args` to its end: its events, its stderr and its own peak RSS in KiB.
/// (`wait4` has no safe wrapper in std; this is the only unsafe code in the tests.)
#[expect(
    unsafe_code,
    reason = "wait4 is the only way to read one child's peak RSS"
)]
#[expect(
    clippy::zombie_processes,
    reason = "the child is reaped by wait4, not by std's wait"
)]
fn run(args: &[&str]) -> (Vec<serde_json::Value>, String, i64) {
    let mut child = Command::new(observer_bin())
        .current_dir(root())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("observer runs");
    let mut err = child.stderr.take().expect("piped stderr");
    let errors = std::thread::spawn(move || {
        let mut b = Vec::new();
        err.read_to_end(&mut b).map(|_| b)
    });
    let mut stdout = Vec::new();
    child
        .stdout
        .take()
        .expect("piped stdout")
        .read_to_end(&mut stdout)
        .expect("observer's output");
    let stderr = errors
        .join()
        .expect("stderr reader")
        .expect("observer's stderr");
    let pid = libc::pid_t::try_from(child.id()).expect("a pid");
    let mut status = 0;
    // SAFETY: wait4 fills the struct it is given; zeroed is a valid initial value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is this test's own child, not yet waited for; valid pointers.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    assert_eq!(rc, pid, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "observer {args:?}: status {status}: {}",
        String::from_utf8_lossy(&stderr)
    );
    (
        ndjson(&stdout),
        String::from_utf8_lossy(&stderr).into_owned(),
        ru.ru_maxrss,
    )
}

#[test]
fn a_million_flow_syn_flood_stays_under_the_flow_table_cap() {
    // Written a slice at a time: a child's peak RSS includes the high-water mark of this
    // process's memory when it was started (it was this process until its `exec`), so this
    // process never holds the whole capture.
    const SLICE: u32 = 10_000;
    let mut flood = None;
    for from in (0..FLOWS).step_by(SLICE as usize) {
        let mut b = PcapBuilder::default();
        for i in from..from + SLICE {
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
        let bytes = b.finish();
        match &flood {
            None => flood = Some(ScratchFile::new("synflood.pcap", &bytes)),
            // After the first slice, its records without the file header.
            Some(f) => std::fs::OpenOptions::new()
                .append(true)
                .open(&**f)
                .and_then(|mut w| w.write_all(&bytes[24..]))
                .expect("appending to the capture"),
        }
    }
    let flood = flood.expect("a capture");
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
    eprintln!("flood: peak {peak_kib} KiB, baseline {base_kib} KiB, allowed {allowed} KiB");
    assert!(
        peak_kib <= allowed,
        "peak {peak_kib} KiB > {allowed} KiB (baseline {base_kib} KiB + 64 MiB cap)"
    );
}
