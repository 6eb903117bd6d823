//! Fallacy 3 on a capture of real programs (fixtures/make-latency-captures.sh): a 1 MB
//! download through an 8 Mbit/s `tc tbf` link while another client makes small requests.
//! Expected values from the construction (the tbf rate) and tshark (`-z conv,tcp`, initial
//! RTTs), quoted with their commands in fixtures/latency.expected.txt.

use observer_tests::{findings, ndjson};
use serde_json::Value;

fn analyze_with(config: &str) -> Vec<Value> {
    let cfg = observer_tests::ScratchFile::new("bandwidth.toml", config.as_bytes());
    ndjson(&observer_tests::analyze_raw(&[
        "--config",
        cfg.to_str().unwrap(),
        "fixtures/bandwidth-bulk.pcap",
    ]))
}

fn one<'a>(f: &[&'a Value], rule: &str) -> &'a Value {
    let m: Vec<_> = f.iter().filter(|f| f["rule"]["name"] == rule).collect();
    assert_eq!(m.len(), 1, "expected one {rule}: {f:#?}");
    m[0]
}

#[test]
fn bulk_transfer_bytes_and_duration_equal_tshark() {
    let ev = analyze_with("[bandwidth]\nbulk_threshold_bytes = 500000\n");
    let f = findings(&ev);
    let b = &one(&f, "bandwidth.bulk_transfer")["fallacy"]["evidence"];
    // tshark -z conv,tcp: 696 frames / 1,046,149 bytes server→client, 147 / 9,796 the other
    // way, Ethernet headers included (14 bytes a frame); observer counts IP bytes.
    assert_eq!(b["bytes_server_to_client"], 1_046_149 - 696 * 14);
    assert_eq!(b["bytes_client_to_server"], 9_796 - 147 * 14);
    let d = b["duration_secs"].as_f64().unwrap();
    assert!((d - 1.0502).abs() < 0.001, "duration {d}");
    // The tbf rate was 8 Mbit/s.
    let mbps = b["throughput_mbps"].as_f64().unwrap();
    assert!((7.5..=8.1).contains(&mbps), "{mbps}");
    assert_eq!(b["retransmitted_segments"], 0);
    assert_eq!(b["direction"], "server_to_client");
}

#[test]
fn known_capacity_gives_a_saturation_episode_with_the_bulk_flow_on_top() {
    let ev = analyze_with("[bandwidth]\ncapacity_mbps = 8\n");
    let f = findings(&ev);
    let s = one(&f, "bandwidth.saturation");
    assert_eq!(s["fallacy"]["id"], 3);
    let e = &s["fallacy"]["evidence"];
    assert_eq!(e["direction"], "server_to_client");
    assert!(e["duration_secs"].as_f64().unwrap() >= 1.0);
    assert_eq!(e["top_talkers"][0]["client"], "10.97.0.1:40856");
    // The default bulk threshold (10 MB) is not reached by a 1 MB download.
    assert!(
        f.iter()
            .all(|f| f["rule"]["name"] != "bandwidth.bulk_transfer")
    );
}

#[test]
fn unknown_capacity_is_inferred_from_queueing_delay() {
    let ev = analyze_with("");
    let f = findings(&ev);
    let s = one(&f, "bandwidth.saturation.inferred");
    let e = &s["fallacy"]["evidence"];
    // tshark's initial RTTs: 21–43 ms for the 6 connections opened during the download,
    // 30–72 µs after it.
    let during = e["handshake_rtt_during_ms"].as_f64().unwrap();
    let otherwise = e["handshake_rtt_otherwise_ms"].as_f64().unwrap();
    assert!((21.0..=43.0).contains(&during), "{during}");
    assert!(otherwise < 0.1, "{otherwise}");
    let plateau = e["plateau_mbps"].as_f64().unwrap();
    assert!((7.0..=8.1).contains(&plateau), "{plateau}");
}
