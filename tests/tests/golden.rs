//! Replay of the fixtures through the real binary.
//!
//! * Constructed fixtures (written by `cargo xtask fixtures`): the facts asserted here follow
//!   from how each packet was built (see fixtures/README.md), not from the program's output.
//! * Where tshark is installed, its packet and stream counts are checked too (independent
//!   oracle).
//! * Golden NDJSON: the whole output, byte for byte, regenerated only by `cargo xtask bless`.

use observer_tests::{analyze, findings, have, observer, root, stat};
use serde_json::Value;

const CONSTRUCTED: &str = "fixtures/constructed-tcp-health.pcap";
const CONSTRUCTED_NG: &str = "fixtures/constructed-tcp-health.pcapng.gz";
const LOOPBACK: &str = "fixtures/loopback-tcp-health.pcap";

fn finding<'a>(events: &'a [Value], rule: &str) -> &'a Value {
    let f = findings(events);
    let matching: Vec<_> = f.iter().filter(|f| f["rule"]["name"] == rule).collect();
    assert_eq!(matching.len(), 1, "expected one {rule} finding in {f:#?}");
    matching[0]
}

fn check_constructed_facts(events: &[Value]) {
    // 33 frames: 10 (orderly exchange) + 6 (3 refused) + 3 (SYN + 2 retries) + 6 (reset
    // exchange) + 6 (IPv6 exchange) + 2 (UDP).
    assert_eq!(stat(events, "frames.total"), 33);
    assert_eq!(stat(events, "flows.tcp"), 7);
    assert_eq!(stat(events, "flows.udp"), 1);
    assert_eq!(stat(events, "tcp.handshakes.completed"), 3);
    assert_eq!(stat(events, "tcp.handshakes.refused"), 3);
    assert_eq!(stat(events, "tcp.handshakes.unanswered"), 1);
    assert_eq!(stat(events, "tcp.connections.aborted"), 1);
    assert_eq!(stat(events, "tcp.resets"), 4);
    assert_eq!(stat(events, "findings.total"), 3);
    assert_eq!(stat(events, "findings.topology-doesnt-change"), 2);
    assert_eq!(stat(events, "findings.network-is-reliable"), 1);

    let refused = finding(events, "tcp.handshake.refused");
    assert_eq!(refused["destination"]["ip"], "10.0.0.2");
    assert_eq!(refused["destination"]["port"], 81);
    assert_eq!(refused["fallacy"]["evidence"]["connections"], 3);
    assert_eq!(refused["fallacy"]["id"], 5);
    assert_eq!(refused["@timestamp"], "2026-01-01T00:00:01.001000Z");

    let unanswered = finding(events, "tcp.handshake.unanswered");
    assert_eq!(unanswered["destination"]["ip"], "10.0.0.3");
    assert_eq!(unanswered["destination"]["port"], 8080);
    assert_eq!(unanswered["fallacy"]["evidence"]["syn_packets"], 3);
    assert_eq!(
        unanswered["fallacy"]["evidence"]["last_seen"],
        "2026-01-01T00:00:05.000000Z"
    );
    assert_eq!(unanswered["event"]["severity"], 3);

    let reset = finding(events, "tcp.connection.reset");
    assert_eq!(reset["destination"]["port"], 80);
    assert_eq!(reset["source"]["port"], 40020);
    assert_eq!(reset["fallacy"]["evidence"]["reset_by_server"], 1);
    // The 500 response bytes were never acknowledged by the client.
    assert_eq!(reset["fallacy"]["evidence"]["unacked_bytes"], 500);
    assert_eq!(reset["fallacy"]["id"], 1);
}

#[test]
fn constructed_pcap_gives_the_constructed_facts() {
    check_constructed_facts(&analyze(CONSTRUCTED));
}

#[test]
fn pcapng_gzip_variant_gives_identical_findings() {
    let a = analyze(CONSTRUCTED);
    let b = analyze(CONSTRUCTED_NG);
    check_constructed_facts(&b);
    // Identical but for `event.id`, whose run id is derived from the input's name.
    let without_id = |ev: &[serde_json::Value]| -> Vec<serde_json::Value> {
        findings(ev)
            .into_iter()
            .map(|f| {
                let mut f = f.clone();
                f["event"].as_object_mut().unwrap().remove("id");
                f
            })
            .collect()
    };
    assert_eq!(without_id(&a), without_id(&b));
    assert_ne!(a[1]["event"]["id"], b[1]["event"]["id"]);
}

fn tshark_counts(path: &str) -> (u64, u64, u64) {
    let text = observer_tests::tshark_fields(path, &["tcp.stream", "udp.stream"], "");
    let mut tcp = std::collections::BTreeSet::new();
    let mut udp = std::collections::BTreeSet::new();
    let mut frames = 0;
    for l in text.lines() {
        frames += 1;
        let mut cols = l.split('\t');
        if let Some(t) = cols.next().filter(|s| !s.is_empty()) {
            tcp.insert(t.to_string());
        }
        if let Some(u) = cols.next().filter(|s| !s.is_empty()) {
            udp.insert(u.to_string());
        }
    }
    (frames, tcp.len() as u64, udp.len() as u64)
}

#[test]
fn fixtures_agree_with_tshark() {
    if !have("tshark") {
        eprintln!("skipped: tshark is not installed");
        return;
    }
    for path in [CONSTRUCTED, CONSTRUCTED_NG, LOOPBACK] {
        if !root().join(path).exists() {
            continue;
        }
        let ev = analyze(path);
        let (frames, tcp, udp) = tshark_counts(path);
        assert_eq!(stat(&ev, "frames.total"), frames, "{path}: packets");
        assert_eq!(stat(&ev, "flows.tcp"), tcp, "{path}: TCP conversations");
        assert_eq!(stat(&ev, "flows.udp"), udp, "{path}: UDP conversations");
    }
}

/// Real programs in a private network namespace (fixtures/make-loopback-capture.sh); the
/// expected values in fixtures/loopback-tcp-health.expected.txt were derived with tshark.
#[test]
fn loopback_capture_matches_its_tshark_derived_expectations() {
    let exp_path = root().join("fixtures/loopback-tcp-health.expected.txt");
    let Ok(text) = std::fs::read_to_string(&exp_path) else {
        eprintln!("skipped: no expected values");
        return;
    };
    let exp: std::collections::HashMap<String, String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('='))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let num = |k: &str| -> u64 {
        exp[k]
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{k} in {}", exp_path.display()))
    };
    let ev = analyze(LOOPBACK);
    assert_eq!(stat(&ev, "frames.total"), num("packets"));
    assert_eq!(stat(&ev, "flows.tcp"), num("tcp_streams"));
    assert_eq!(stat(&ev, "flows.udp"), num("udp_streams"));
    assert_eq!(
        stat(&ev, "tcp.handshakes.completed"),
        num("handshakes_completed")
    );
    assert_eq!(stat(&ev, "tcp.handshakes.refused"), num("refused"));
    assert_eq!(stat(&ev, "tcp.handshakes.unanswered"), num("unanswered"));
    assert_eq!(stat(&ev, "tcp.connections.aborted"), num("aborted"));
    assert_eq!(stat(&ev, "tcp.resets"), num("rst_frames"));
    let refused = finding(&ev, "tcp.handshake.refused");
    assert_eq!(refused["destination"]["port"], 81);
    assert_eq!(
        refused["fallacy"]["evidence"]["connections"],
        num("refused")
    );
    let unanswered = finding(&ev, "tcp.handshake.unanswered");
    assert_eq!(unanswered["destination"]["ip"], "10.99.0.3");
    assert_eq!(
        finding(&ev, "tcp.connection.reset")["destination"]["port"],
        8081
    );
}

#[test]
fn golden_outputs_are_unchanged() {
    // Every fixtures/NAME.ndjson is the output for fixtures/NAME.pcap (the rule `cargo xtask
    // bless` follows).
    let mut goldens: Vec<String> = std::fs::read_dir(root().join("fixtures"))
        .expect("fixtures/ is readable")
        .map(|e| {
            e.expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter_map(|n| n.strip_suffix(".ndjson").map(str::to_string))
        .collect();
    goldens.sort();
    assert_eq!(goldens.len(), 9, "golden files: {goldens:?}");
    for stem in &goldens {
        let (cap, golden) = (
            format!("fixtures/{stem}.pcap"),
            format!("fixtures/{stem}.ndjson"),
        );
        let cap = cap.as_str();
        let Ok(want) = std::fs::read_to_string(root().join(&golden)) else {
            panic!("{golden} is missing: run `cargo xtask bless`");
        };
        let out = observer(&["analyze", "-q", cap]);
        let got = String::from_utf8_lossy(&out.stdout);
        assert!(
            got == want,
            "{cap}: output differs from {golden}; if the change is intended, run `cargo xtask bless` and review the diff\n--- got ---\n{got}"
        );
    }
}

/// Regression (review): a retransmitted SYN/ACK after an injected RST must withdraw that
/// connection's refusal once, and never another connection's.
#[test]
fn a_duplicated_syn_ack_withdraws_one_refusal_only() {
    use observer_tests::tcp_flags::{ACK, RST, SYN};
    let s = ("10.0.0.9", 80);
    let mut p = observer_tests::PcapBuilder::default();
    // B: plainly refused.
    p.tcp(0.0, ("10.0.0.1", 40002), s, 100, 0, SYN, &[]).tcp(
        0.001,
        s,
        ("10.0.0.1", 40002),
        0,
        101,
        RST | ACK,
        &[],
    );
    // A: an injected RST, then the real SYN/ACK, twice.
    let c = ("10.0.0.2", 40001);
    p.tcp(0.5, c, s, 100, 0, SYN, &[])
        .tcp(0.501, s, c, 0, 101, RST | ACK, &[])
        .tcp(0.502, s, c, 500, 101, SYN | ACK, &[])
        .tcp(0.503, s, c, 500, 101, SYN | ACK, &[]);
    let cap = observer_tests::ScratchFile::new("refusal-twice.pcap", &p.finish());
    let ev = analyze(cap.to_str().unwrap());
    let refused: Vec<_> = findings(&ev)
        .into_iter()
        .filter(|f| f["rule"]["name"] == "tcp.handshake.refused")
        .collect();
    assert_eq!(refused.len(), 1, "B's refusal stands: {refused:#?}");
    assert_eq!(refused[0]["fallacy"]["evidence"]["connections"], 1);
    assert_eq!(refused[0]["source"]["port"], 40002);
    assert_eq!(stat(&ev, "tcp.handshakes.refused"), 1);
    assert_eq!(stat(&ev, "tcp.handshakes.refusals_withdrawn"), 1);
}
