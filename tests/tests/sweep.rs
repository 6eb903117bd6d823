//! One client failing against many destinations is one `tcp.sweep` finding, not one finding per
//! destination. Expected values come from the construction, and on the corpus's real nmap SYN
//! scan from tshark.

use observer::config::Config;
use observer_tests::tcp_flags::{ACK, RST, SYN};
use observer_tests::{PcapBuilder, ScratchFile, corpus_dir, have, run, stat, tshark_fields};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

const SCANNER: &str = "10.0.0.66";
/// Outside the internal networks: the scan's attempts are also external connections.
const TARGET: &str = "203.0.113.1";

/// The scanner's SYN to `port` of the target at `t`, refused 1 ms later when `refused`.
fn scanner_tries(b: &mut PcapBuilder, t: f64, port: u16, refused: bool) {
    b.tcp(t, (SCANNER, 40_000), (TARGET, port), 1000, 0, SYN, &[]);
    if refused {
        b.tcp(
            t + 0.001,
            (TARGET, port),
            (SCANNER, 40_000),
            0,
            1001,
            RST | ACK,
            &[],
        );
    }
}

/// The scanner tries ports 1–200 of one host (every 4th refused, the rest unanswered);
/// another client also gets no answer from port 10; an ordinary client is refused by three
/// ports of another host; the capture ends 2 s after the last attempt.
fn scan() -> Vec<u8> {
    let mut b = PcapBuilder::default();
    for i in 0..200u16 {
        scanner_tries(&mut b, f64::from(i) * 0.01, i + 1, i % 4 == 0);
    }
    b.tcp(0.5, ("10.0.0.7", 50_000), (TARGET, 10), 1, 0, SYN, &[]);
    for (k, port) in [80u16, 81, 82].into_iter().enumerate() {
        let t = 1.0 + k as f64 * 0.1;
        b.tcp(t, ("10.0.0.8", 50_001), ("10.1.0.2", port), 1, 0, SYN, &[]);
        b.tcp(
            t + 0.001,
            ("10.1.0.2", port),
            ("10.0.0.8", 50_001),
            0,
            2,
            RST | ACK,
            &[],
        );
    }
    // The capture goes on for 2 s more: every attempt had time to be answered.
    b.udp(3.2, ("10.255.0.1", 5000), ("10.255.0.2", 5001), b"end");
    b.finish()
}

fn by_rule(events: &[Value]) -> BTreeMap<String, Vec<&Value>> {
    let mut m: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for e in events.iter().filter(|e| e["event"]["kind"] == "alert") {
        m.entry(e["rule"]["name"].as_str().unwrap().to_string())
            .or_default()
            .push(e);
    }
    m
}

#[test]
fn a_port_scan_is_one_finding_and_every_attempt_is_counted_once() {
    let f = ScratchFile::new("scan.pcap", &scan());
    let (events, _) = run(&[f.to_path_buf()], &Config::default());
    let rules = by_rule(&events);
    let sweeps = &rules["tcp.sweep"];
    assert_eq!(sweeps.len(), 1);
    let ev = &sweeps[0]["fallacy"]["evidence"];
    assert_eq!(ev["client"], SCANNER);
    // 200 attempts, minus the one to port 10 that shares its group with another client.
    assert_eq!(ev["connections"], 199);
    assert_eq!(ev["refused"], 50);
    assert_eq!(ev["unanswered"], 149);
    assert_eq!(ev["syn_packets"], 199);
    assert_eq!(ev["distinct_hosts"], 1);
    assert_eq!(ev["distinct_ports"], 200);
    assert_eq!(sweeps[0]["fallacy"]["id"], 4);
    assert!(
        sweeps[0]["message"]
            .as_str()
            .unwrap()
            .contains("a port scan of one host"),
        "{}",
        sweeps[0]["message"]
    );
    // Port 10: the scanner and 10.0.0.7, reported as that destination's group.
    let unanswered = &rules["tcp.handshake.unanswered"];
    assert_eq!(unanswered.len(), 1);
    assert_eq!(unanswered[0]["destination"]["port"], 10);
    assert_eq!(unanswered[0]["fallacy"]["evidence"]["connections"], 2);
    // The ordinary client's three refusals stay three findings.
    let refused = &rules["tcp.handshake.refused"];
    assert_eq!(refused.len(), 3);
    assert!(refused.iter().all(|e| e["source"]["ip"] == "10.0.0.8"));
    // The scanner's first 63 destinations were grouped before it was recognised: all but
    // port 10's folded into the sweep.
    assert_eq!(stat(&events, "tcp.sweeps.groups_folded"), 62);
    assert_eq!(stat(&events, "tcp.sweeps.reported"), 1);
    assert_eq!(stat(&events, "tcp.handshakes.refused"), 53);
    assert_eq!(stat(&events, "tcp.handshakes.unanswered"), 151);
    // The external-dependency analyzer leaves out every failed attempt of the scanner: the
    // 137 counted in the sweep itself, and the 63 made before it was recognised (port 10's
    // included: the scanner sweeps, whoever else failed there). 10.0.0.7's one attempt is its
    // target's only failure.
    assert_eq!(stat(&events, "dependencies.swept_attempts"), 200);
    assert_eq!(stat(&events, "dependencies.external_flows"), 1);
    let failing = &rules["dependency.failing"];
    assert_eq!(failing.len(), 1);
    assert_eq!(failing[0]["fallacy"]["evidence"]["failed_connections"], 1);
    assert_eq!(failing[0]["fallacy"]["evidence"]["connections"], 1);
    assert_eq!(failing[0]["source"]["ip"], "10.0.0.7");

    // The HTML report lists it with the other findings, not among the plaintext flows.
    let html = ScratchFile::new("scan.html", b"");
    let out = observer_tests::observer(&[
        "analyze",
        "-q",
        "--report",
        &html.to_string_lossy(),
        &f.to_string_lossy(),
    ]);
    assert!(out.status.success());
    let page = std::fs::read_to_string(&*html).expect("report written");
    let plaintext = &page[page
        .find("<section id=\"plaintext\">")
        .expect("plaintext section")..];
    let plaintext = &plaintext[..plaintext.find("</section>").unwrap()];
    assert!(page.contains("tcp.sweep"));
    assert!(!plaintext.contains("tcp.sweep"), "{plaintext}");

    // Switched off, or with a threshold the scan does not reach: one finding per destination.
    for n in [0, 201] {
        let mut cfg = Config::default();
        cfg.tcp_health.sweep_destinations = n;
        let (events, _) = run(&[f.to_path_buf()], &cfg);
        let rules = by_rule(&events);
        assert!(!rules.contains_key("tcp.sweep"));
        assert_eq!(rules["tcp.handshake.refused"].len(), 53);
        assert_eq!(rules["tcp.handshake.unanswered"].len(), 150);
    }
}

#[test]
fn a_real_nmap_syn_scan_is_one_finding_matching_tshark() {
    let Some(dir) = corpus_dir() else {
        eprintln!("skipped: ../shared/corpus is not here");
        return;
    };
    assert!(have("tshark"), "tshark is installed by scripts/test.sh");
    let path = dir.join("ndpi__synscan.pcap");
    let p = path.to_string_lossy();
    // (client port, server port) of the packets matching `filter`, from the two fields given
    // in that order.
    let pairs = |filter: &str, client: &str, server: &str| -> BTreeSet<(String, String)> {
        tshark_fields(&p, &[client, server], filter)
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    // Connection attempts: SYNs; answered ones got a SYN/ACK, refused ones a RST from the
    // server.
    let syns = pairs(
        "tcp.flags.syn == 1 && tcp.flags.ack == 0",
        "tcp.srcport",
        "tcp.dstport",
    );
    let answered = pairs(
        "tcp.flags.syn == 1 && tcp.flags.ack == 1",
        "tcp.dstport",
        "tcp.srcport",
    );
    let refused: BTreeSet<_> = pairs("tcp.flags.reset == 1", "tcp.dstport", "tcp.srcport")
        .into_iter()
        .filter(|k| syns.contains(k) && !answered.contains(k))
        .collect();
    let failed: Vec<&(String, String)> = syns.iter().filter(|k| !answered.contains(k)).collect();
    let ports: BTreeSet<&String> = failed.iter().map(|k| &k.1).collect();
    assert!(
        failed.len() > 1000,
        "the capture is the scan it is documented to be"
    );

    let (events, _) = run(std::slice::from_ref(&path), &Config::default());
    let rules = by_rule(&events);
    assert_eq!(rules["tcp.sweep"].len(), 1);
    assert!(!rules.contains_key("tcp.handshake.unanswered"));
    assert!(!rules.contains_key("tcp.handshake.refused"));
    let ev = &rules["tcp.sweep"][0]["fallacy"]["evidence"];
    assert_eq!(ev["connections"], failed.len() as u64);
    assert_eq!(ev["refused"], refused.len() as u64);
    assert_eq!(ev["unanswered"], (failed.len() - refused.len()) as u64);
    assert_eq!(ev["distinct_ports"], ports.len() as u64);
    assert_eq!(ev["distinct_hosts"], 1);
    // The scanned host is outside the internal networks, so every attempt is also an external
    // connection: all of them, the ones before the scan was recognised included, are left out
    // of its dependency failures. What remains are the connections it answered.
    assert_eq!(
        stat(&events, "dependencies.swept_attempts"),
        failed.len() as u64
    );
    assert_eq!(
        stat(&events, "dependencies.external_flows"),
        (syns.len() - failed.len()) as u64
    );
    assert!(!rules.contains_key("dependency.failing"));
}

#[test]
fn a_client_that_swept_once_is_not_a_sweeper_hours_later() {
    // The scan above, then three hours later the scanner's two connections to an outside
    // service are refused: those are that service's failures, not part of a sweep long over.
    let mut b = PcapBuilder::default();
    let later = ("198.51.100.7", 443);
    for (k, port) in [41_000u16, 41_001].into_iter().enumerate() {
        let t = 3.0 * 3600.0 + k as f64;
        b.tcp(t, (SCANNER, port), later, 1, 0, SYN, &[]);
        b.tcp(t + 0.001, later, (SCANNER, port), 0, 2, RST | ACK, &[]);
    }
    let mut bytes = scan();
    bytes.extend_from_slice(&b.finish()[24..]);
    let f = ScratchFile::new("scan-later.pcap", &bytes);
    let (events, _) = run(&[f.to_path_buf()], &Config::default());
    let rules = by_rule(&events);
    assert_eq!(rules["tcp.sweep"].len(), 1);
    assert_eq!(stat(&events, "dependencies.swept_attempts"), 200);
    let failing: Vec<_> = rules["dependency.failing"]
        .iter()
        .filter(|e| e["destination"]["ip"] == later.0)
        .collect();
    assert_eq!(failing.len(), 1);
    assert_eq!(failing[0]["fallacy"]["evidence"]["failed_connections"], 2);
    assert_eq!(failing[0]["fallacy"]["evidence"]["connections"], 2);
}

#[test]
fn a_scan_that_outlasts_its_folded_groups_is_still_reported() {
    // The scanner alone, refused by ports 1–64 of one host within 0.64 s (recognised as a
    // sweep at the 64th), then by ports 65–139, one every 2 s, until 150 s. The first 63
    // attempts were grouped per destination before it was recognised; those groups go quiet
    // and are folded into the sweep after 60 s, while the scan goes on, and its later attempts
    // go to the sweep directly. At the end no group is left: the sweep must still be reported.
    let mut b = PcapBuilder::default();
    let mut t = 0.0;
    for i in 0..139u16 {
        t = if i < 64 {
            f64::from(i) * 0.01
        } else {
            2.0 * f64::from(i - 63)
        };
        scanner_tries(&mut b, t, i + 1, true);
    }
    assert!(
        t > 60.0 + 64.0 * 0.01 + 60.0,
        "the scan outlasts the groups' report delay"
    );
    let f = ScratchFile::new("long-scan.pcap", &b.finish());
    let (events, _) = run(&[f.to_path_buf()], &Config::default());
    let rules = by_rule(&events);
    let names: Vec<(&String, usize)> = rules.iter().map(|(k, v)| (k, v.len())).collect();
    assert!(!rules.contains_key("tcp.handshake.refused"), "{names:?}");
    assert_eq!(stat(&events, "tcp.sweeps.groups_folded"), 63, "{names:?}");
    assert_eq!(stat(&events, "tcp.sweeps.reported"), 1, "{names:?}");
    let sweeps = &rules["tcp.sweep"];
    assert_eq!(sweeps.len(), 1);
    let ev = &sweeps[0]["fallacy"]["evidence"];
    assert_eq!(ev["connections"], 139);
    assert_eq!(ev["refused"], 139);
    assert_eq!(ev["distinct_ports"], 139);
}

#[test]
fn a_gateway_whose_clients_mostly_connect_is_no_sweep() {
    // One address (a NAT gateway) refused by 80 distinct destinations, each refusal between
    // two connections it completes to other servers: 160 made, 80 failed.
    const GATEWAY: &str = "10.0.0.99";
    let mut b = PcapBuilder::default();
    for i in 0..80u16 {
        let t = f64::from(i) * 0.05;
        b.connection(t, (GATEWAY, 20_000 + 2 * i), ("10.2.0.1", 443));
        b.connection(t + 0.01, (GATEWAY, 20_001 + 2 * i), ("10.2.0.2", 443));
        let dst = format!("10.3.{}.{}", i / 200, i % 200 + 1);
        b.tcp(
            t + 0.02,
            (GATEWAY, 30_000 + i),
            (&dst, 8080),
            1,
            0,
            SYN,
            &[],
        );
        b.tcp(
            t + 0.021,
            (&dst, 8080),
            (GATEWAY, 30_000 + i),
            0,
            2,
            RST | ACK,
            &[],
        );
    }
    b.udp(8.0, ("10.255.0.1", 5000), ("10.255.0.2", 5001), b"end");
    let f = ScratchFile::new("gateway.pcap", &b.finish());
    let (events, _) = run(&[f.to_path_buf()], &Config::default());
    let rules = by_rule(&events);
    assert!(!rules.contains_key("tcp.sweep"), "{:?}", rules.keys());
    let refused = &rules["tcp.handshake.refused"];
    assert_eq!(refused.len(), 80);
    let s = events.last().unwrap();
    assert_eq!(s["stats"]["tcp"]["handshakes"]["refused"], 80);
    assert_eq!(s["stats"]["tcp"]["handshakes"]["completed"], 160);
    assert_eq!(s["stats"]["tcp"]["sweeps"]["reported"], 0);
}
