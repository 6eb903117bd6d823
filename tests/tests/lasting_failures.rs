//! A failure that lasts (a service refusing every connection, a resolver answering nothing)
//! keeps its group of findings growing: with `[report] active_group_secs` (60 s by default in
//! `live` and `probe`) it is reported while it lasts, one finding per stretch, instead of only
//! once it stops. Expected values from the construction: one refused connection attempt and
//! one unanswered DNS query each second for 200 s.

use observer::config::Config;
use observer_tests::tcp_flags::{ACK, RST, SYN};
use observer_tests::{PcapBuilder, ScratchFile, dns_a_query, observer, run, with_rule};
use serde_json::Value;

const SECONDS: u32 = 200;

/// At each second `i` from 1 to 200: a SYN from 10.0.0.1 to 10.0.0.2:81 answered by RST 1 ms
/// later, and at `i` + 0.5 a DNS query from 10.0.0.3 to 10.0.0.53 that nothing answers.
fn capture() -> ScratchFile {
    let mut b = PcapBuilder::default();
    for i in 1..=SECONDS {
        let t = f64::from(i);
        let port = 30_000 + i as u16;
        b.tcp(t, ("10.0.0.1", port), ("10.0.0.2", 81), 100, 0, SYN, &[])
            .tcp(
                t + 0.001,
                ("10.0.0.2", 81),
                ("10.0.0.1", port),
                0,
                101,
                RST | ACK,
                &[],
            )
            .udp(
                t + 0.5,
                ("10.0.0.3", 40_000 + i as u16),
                ("10.0.0.53", 53),
                &dns_a_query(i as u16, &format!("q{i}.example")),
            );
    }
    ScratchFile::new("lasting.pcap", &b.finish())
}

fn analyze(active_group_secs: Option<f64>) -> Vec<Value> {
    let pcap = capture();
    let mut cfg = Config::default();
    cfg.report.active_group_secs = active_group_secs;
    run(&[pcap.to_path_buf()], &cfg).0
}

fn secs(f: &Value) -> f64 {
    f["fallacy"]["evidence"]["duration_secs"]
        .as_f64()
        .unwrap_or_else(|| panic!("duration_secs in {f:#}"))
}

#[test]
fn a_lasting_failure_is_one_finding_per_group_by_default() {
    for setting in [None, Some(0.0)] {
        let ev = analyze(setting);
        let refused = with_rule(&ev, "tcp.handshake.refused");
        assert_eq!(refused.len(), 1, "{setting:?}: {refused:#?}");
        assert_eq!(refused[0]["fallacy"]["evidence"]["connections"], SECONDS);
        let dns = with_rule(&ev, "dns.query.unanswered");
        assert_eq!(dns.len(), 1, "{setting:?}: {dns:#?}");
        // The last query, sent as the capture ends, is not known to be unanswered.
        assert_eq!(dns[0]["fallacy"]["evidence"]["count"], SECONDS - 1);
    }
}

#[test]
fn a_lasting_failure_is_reported_while_it_lasts_with_active_group_secs() {
    let ev = analyze(Some(60.0));
    let refused = with_rule(&ev, "tcp.handshake.refused");
    // 200 s of refusals in stretches of at most 60 s (plus the second that ends one): at least
    // four findings, which together count every attempt once.
    assert!(refused.len() >= 4, "{refused:#?}");
    let total: u64 = refused
        .iter()
        .map(|f| f["fallacy"]["evidence"]["connections"].as_u64().unwrap())
        .sum();
    assert_eq!(total, u64::from(SECONDS), "{refused:#?}");
    for f in &refused {
        assert!(secs(f) <= 61.0, "{f:#}");
    }
    // Reported in the order the stretches happened.
    let firsts: Vec<&str> = refused
        .iter()
        .map(|f| f["fallacy"]["evidence"]["first_seen"].as_str().unwrap())
        .collect();
    assert!(firsts.windows(2).all(|w| w[0] < w[1]), "{firsts:?}");

    let dns = with_rule(&ev, "dns.query.unanswered");
    assert!(dns.len() >= 4, "{dns:#?}");
    let total: u64 = dns
        .iter()
        .map(|f| f["fallacy"]["evidence"]["count"].as_u64().unwrap())
        .sum();
    assert_eq!(total, u64::from(SECONDS - 1), "{dns:#?}");
}

#[test]
fn a_negative_active_group_secs_is_refused_naming_the_key() {
    let cfg = ScratchFile::new("bad.toml", b"[report]\nactive_group_secs = -1\n");
    let o = observer(&[
        "analyze",
        "-q",
        "--config",
        cfg.to_str().unwrap(),
        "fixtures/loopback-tcp-health.pcap",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("report.active_group_secs"), "{err}");
}

#[test]
fn a_slow_sweep_is_still_one_sweep_with_active_group_secs() {
    // One client refused by 100 different hosts, one every 2 s: it reaches the 64 destinations
    // of a sweep after 126 s, without a pause; reporting lasting groups by age must not cut its
    // record short before then.
    let mut b = PcapBuilder::default();
    for i in 0..100u32 {
        let t = f64::from(i) * 2.0;
        let host = format!("10.0.1.{}", i + 1);
        let port = 30_000 + i as u16;
        b.tcp(t, ("10.0.0.1", port), (host.as_str(), 80), 100, 0, SYN, &[])
            .tcp(
                t + 0.001,
                (host.as_str(), 80),
                ("10.0.0.1", port),
                0,
                101,
                RST | ACK,
                &[],
            );
    }
    let pcap = ScratchFile::new("slow-sweep.pcap", &b.finish());
    for setting in [None, Some(60.0)] {
        let mut cfg = Config::default();
        cfg.report.active_group_secs = setting;
        let ev = run(&[pcap.to_path_buf()], &cfg).0;
        let sweeps = with_rule(&ev, "tcp.sweep");
        assert_eq!(sweeps.len(), 1, "{setting:?}: {sweeps:#?}");
    }
}
