//! Conformance on the public capture corpus (`../shared/corpus`, skipped when absent):
//! every file is analyzed without a panic or a hang, and for every file tshark read cleanly
//! (`tshark_rc` 0) the packet count and the TCP and UDP conversation counts equal tshark's
//! (ORACLE.tsv), except the differences listed with their reasons in
//! `tests/corpus-differences.tsv`. A listed difference that no longer differs fails the test
//! too, so the list stays true.
//!
//! TCP analysis: per file, retransmissions (plain + fast + spurious), duplicate ACKs, zero
//! windows and RST frames are within 5 % (or ±2 when small) of tshark's
//! `tcp.analysis.retransmission` (which Wireshark also sets on fast and spurious ones),
//! `tcp.analysis.duplicate_ack`, `tcp.analysis.zero_window` and `tcp.flags.reset` counts; the
//! median handshake RTT is within 10 % of tshark's median `tcp.analysis.initial_rtt`; and the
//! TLS versions offered and negotiated, the ALPN protocols and the HTTP request versions equal
//! tshark's sets, except the files listed with reasons in `tests/corpus-version-differences.tsv`.

use observer::config::Config;
use observer_tests::{corpus_captures, corpus_dir, read_tsv, root, run};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PER_FILE_LIMIT: Duration = Duration::from_secs(60);

#[test]
fn corpus_matches_tshark_and_never_panics() {
    let Some(dir) = corpus_dir() else {
        eprintln!("skipped: ../shared/corpus is not present");
        return;
    };
    let oracle: HashMap<String, HashMap<String, String>> = read_tsv(&dir.join("ORACLE.tsv"))
        .into_iter()
        .map(|r| (r["file"].clone(), r))
        .collect();
    // Listed differences: (file, field) → (our count, tshark's count). A listed file must still
    // give exactly the listed count, so a change in behaviour shows up here too.
    let allowed: BTreeMap<(String, String), (f64, f64)> =
        read_tsv(&root().join("tests/corpus-differences.tsv"))
            .into_iter()
            .map(|r| {
                assert!(
                    !r["reason"].trim().is_empty(),
                    "difference without a reason: {r:?}"
                );
                (
                    (r["file"].clone(), r["field"].clone()),
                    (
                        r["ours"].parse().expect("ours is a number"),
                        r["tshark"].parse().expect("tshark is a number"),
                    ),
                )
            })
            .collect();

    let files = corpus_captures(&dir);
    assert!(
        files.len() > 1000,
        "corpus looks incomplete: {}",
        files.len()
    );

    // Watchdog: a hang on any file fails the whole run with the file's name.
    let current: Arc<Mutex<(String, Instant)>> =
        Arc::new(Mutex::new((String::new(), Instant::now())));
    let done = Arc::new(AtomicBool::new(false));
    {
        let current = current.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(500));
                let (name, since) = current.lock().unwrap().clone();
                if since.elapsed() > PER_FILE_LIMIT {
                    eprintln!("HANG: {name} took more than {PER_FILE_LIMIT:?}");
                    std::process::abort();
                }
            }
        });
    }

    let version_allowed: BTreeMap<(String, String), String> =
        read_tsv(&root().join("tests/corpus-version-differences.tsv"))
            .into_iter()
            .map(|r| ((r["file"].clone(), r["field"].clone()), r["reason"].clone()))
            .collect();
    let mut panics = Vec::new();
    let mut mismatches = Vec::new();
    let mut matched_listed = Vec::new();
    let mut compared = 0usize;
    // Per field: (ours, tshark's) summed over the compared files, and files equal exactly.
    let mut totals: std::collections::BTreeMap<&str, (u64, u64, usize)> = Default::default();
    let cfg = Config::default();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        *current.lock().unwrap() = (name.clone(), Instant::now());
        let p = path.clone();
        let cfg2 = cfg.clone();
        let result = std::panic::catch_unwind(move || run(&[p], &cfg2));
        let (events, summary) = match result {
            Ok(r) => r,
            Err(_) => {
                panics.push(name);
                continue;
            }
        };
        let Some(o) = oracle.get(&name) else { continue };
        if o["tshark_rc"] != "0" {
            continue;
        }
        compared += 1;
        let c = &summary.counters;
        // Connection attempts without SYN/ACK and ICMP unreachable, counted from the findings
        // (plus what is deliberately not reported: a SYN/ACK the capture missed while the
        // server answered; fragmentation-needed, which is a path-MTU matter; errors quoting
        // neither TCP nor UDP).
        let from_findings = |rule: &str, field: &str| -> u64 {
            events
                .iter()
                .filter(|e| e["rule"]["name"] == rule)
                .map(|e| e["fallacy"]["evidence"][field].as_u64().expect("count"))
                .sum()
        };
        let handshake_failures = from_findings("tcp.handshake.refused", "connections")
            + from_findings("tcp.handshake.unanswered", "connections")
            + from_findings("tcp.sweep", "connections");
        assert_eq!(
            handshake_failures,
            c["tcp.handshakes.refused"] + c["tcp.handshakes.unanswered"],
            "{name}: handshake findings disagree with the counters"
        );
        let unreachable = from_findings("icmp.destination.unreachable", "packets");
        assert_eq!(
            unreachable, c["topology.icmp_unreachable_reported"],
            "{name}: ICMP findings disagree with the counter"
        );
        let ours = [
            ("packets", summary.packets.frames),
            ("tcp_conversations", summary.flows_tcp),
            ("udp_conversations", summary.flows_udp),
            (
                "syn_no_synack",
                handshake_failures
                    + c["tcp.handshakes.synack_not_captured"]
                    + c["tcp.handshakes.icmp_unreachable"]
                    + c["tcp.handshakes.open_at_end"],
            ),
            (
                "icmp_unreach",
                unreachable
                    + c["topology.icmp_unreachable_not_reported"]
                    + c["icmp.unreachable_unquoted"],
            ),
        ];
        // A frame captured twice is analyzed once; tshark counts the copy as a retransmission
        // (data, SYN or FIN), a duplicate ACK (a bare ACK) or another reset.
        for (field, ours, copies) in [
            (
                "retransmission",
                "tcp.retransmissions",
                "tcp.duplicate_frames.segments",
            ),
            (
                "duplicate_ack",
                "tcp.duplicate_acks",
                "tcp.duplicate_frames.acks",
            ),
            ("zero_window", "tcp.zero_windows", ""),
            ("rst", "tcp.resets", "tcp.duplicate_frames.resets"),
        ] {
            let got = c[ours] + c.get(copies).copied().unwrap_or(0);
            let want: u64 = o[field].parse().expect("oracle count");
            let t = totals.entry(field).or_default();
            *t = (t.0 + got, t.1 + want, t.2 + usize::from(got == want));
            let tolerance = (want as f64 * 0.05).max(2.0);
            let key = (name.clone(), field.to_string());
            let within = (got as f64 - want as f64).abs() <= tolerance;
            match (within, allowed.get(&key)) {
                (true, None) => {}
                (true, Some(_)) => matched_listed.push(format!("{name} {field}")),
                (false, Some(&(o, t))) if o == got as f64 && t == want as f64 => {}
                (false, _) => {
                    mismatches.push(format!("{name}\t{field}\tours={got}\ttshark={want}"))
                }
            }
        }
        // Protocol versions, from the inventory event.
        if let Some(inv) = events.iter().find(|e| e["event"]["action"] == "inventory") {
            let set = |v: &serde_json::Value| -> std::collections::BTreeSet<String> {
                v.as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let theirs = |f: &str| -> std::collections::BTreeSet<String> {
                o[f].split(',')
                    .filter(|x| !x.is_empty() && *x != "-")
                    .map(str::to_string)
                    .collect()
            };
            let inv = &inv["inventory"];
            for (field, ours) in [
                ("tls_client_versions", set(&inv["tls_offered"])),
                ("tls_server_versions", set(&inv["tls_negotiated"])),
                ("alpn", set(&inv["alpn"])),
                ("http_req_versions", set(&inv["http_request_versions"])),
            ] {
                let want = theirs(field);
                let key = (name.clone(), field.to_string());
                match (ours == want, version_allowed.contains_key(&key)) {
                    (true, true) => matched_listed.push(format!("{name} {field}")),
                    (false, false) => {
                        mismatches.push(format!("{name}\t{field}\tours={ours:?}\ttshark={want:?}"))
                    }
                    _ => {}
                }
            }
        }
        // Handshake RTT: the median over connections of Wireshark's initial RTT, within 10 %
        // (and 1.5 µs for timestamp rounding).
        if o["initial_rtt_median_ms"] != "-" {
            let want: f64 = o["initial_rtt_median_ms"].parse().expect("oracle rtt");
            let got = c["latency.tcp_handshake_median_us"] as f64 / 1000.0;
            let key = (name.clone(), "initial_rtt_median_ms".to_string());
            let within = (got - want).abs() <= want * 0.10 + 0.0015;
            match (within, allowed.get(&key)) {
                (true, None) | (false, Some(_)) => {}
                (true, Some(_)) => matched_listed.push(format!("{name} initial_rtt_median_ms")),
                (false, None) => mismatches.push(format!(
                    "{name}\tinitial_rtt_median_ms\tours={got:.3}\ttshark={want:.3}"
                )),
            }
        }
        for (field, got) in ours {
            let want: u64 = o[field].parse().expect("oracle count");
            let t = totals.entry(field).or_default();
            *t = (t.0 + got, t.1 + want, t.2 + usize::from(got == want));
            let key = (name.clone(), field.to_string());
            match (got == want, allowed.get(&key)) {
                (true, None) => {}
                (true, Some(_)) => matched_listed.push(format!("{name} {field}")),
                (false, Some(&(ours, theirs))) if ours == got as f64 && theirs == want as f64 => {}
                (false, _) => {
                    mismatches.push(format!("{name}\t{field}\tours={got}\ttshark={want}"))
                }
            }
        }
    }
    done.store(true, Ordering::Relaxed);
    eprintln!(
        "corpus: {} files analyzed, {} compared with tshark, {} listed differences",
        files.len(),
        compared,
        allowed.len()
    );
    for (field, (ours, theirs, equal)) in &totals {
        eprintln!(
            "corpus: {field}: observer {ours}, tshark {theirs}, equal on {equal} of {compared} files"
        );
    }
    assert!(panics.is_empty(), "panicked on: {panics:#?}");
    assert!(
        mismatches.is_empty(),
        "{} unexplained differences from tshark (add to tests/corpus-differences.tsv only with a reason):\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert!(
        matched_listed.is_empty(),
        "listed differences that now agree with tshark (remove them from tests/corpus-differences.tsv or tests/corpus-version-differences.tsv):\n{}",
        matched_listed.join("\n")
    );
}

/// Corpus files whose reassembly differs from tshark's on purpose, with the reason.
const REASSEMBLY_DIFFERENCES: [(&str, &str); 3] = [
    (
        "zeek__ipv4__fragmented-1.pcap",
        "the third fragment overlaps the first with different bytes and runs past the end the last one set: tshark reassembles it as malformed, observer gives the datagram up as inconsistent",
    ),
    (
        "zeek__ipv4__fragmented-4.pcap",
        "a fragment overlaps another with different bytes (an evasion test): tshark reassembles it, flagging the conflict; observer gives the datagram up as inconsistent",
    ),
    (
        "zeek__ipv6-reassembly-state-leak.pcap",
        "two datagrams of 46 fragments sent one a second: observer waits 2 to 3 s for a datagram's fragments (defrag::HOLD) so that a first fragment whose rest a port-filtered capture dropped is analyzed in time; tshark waits without limit",
    ),
];

#[test]
fn reassembled_datagrams_match_tshark() {
    // For every corpus file with IP fragments: our count of reassembled datagrams equals the
    // number of frames tshark reassembles a datagram in (those with an
    // `ip.fragment.count` or `ipv6.fragment.count`), except the files listed above; and every
    // file where tshark flags fragments overlapping with different bytes has a datagram we
    // gave up as inconsistent.
    let Some(dir) = corpus_dir() else {
        eprintln!("skipped: ../shared/corpus is not present");
        return;
    };
    if !observer_tests::have("tshark") {
        eprintln!("skipped: tshark is not installed");
        return;
    }
    let files = corpus_captures(&dir);
    let cfg = Config::default();
    let (mut with_fragments, mut reassembled, mut conflicts) = (0, 0, 0);
    let mut mismatches = Vec::new();
    for path in &files {
        let (_, summary) = run(std::slice::from_ref(path), &cfg);
        if summary.packets.fragments == 0 {
            continue;
        }
        with_fragments += 1;
        let ours = summary.counters["ip.reassembled"];
        let fields = observer_tests::tshark_fields(
            path.to_str().unwrap(),
            &[
                "ip.fragment.count",
                "ipv6.fragment.count",
                "ip.fragment.overlap.conflict",
                "ipv6.fragment.overlap.conflict",
            ],
            "",
        );
        let has = |line: &str, cols: std::ops::Range<usize>| {
            line.split('\t')
                .skip(cols.start)
                .take(cols.len())
                .any(|c| c.chars().any(|c| c.is_ascii_digit() && c != '0'))
        };
        let theirs = fields.lines().filter(|l| has(l, 0..2)).count() as u64;
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        // Fragments tshark finds overlapping with different bytes: a datagram we give up as
        // inconsistent (which raises an `ip.fragments.inconsistent` finding).
        if fields.lines().any(|l| has(l, 2..4)) {
            conflicts += 1;
            if summary.counters["ip.reassembly_inconsistent"] == 0 {
                mismatches.push(format!(
                    "{name}: tshark sees conflicting fragments, we do not"
                ));
            }
        }
        reassembled += ours;
        let listed = REASSEMBLY_DIFFERENCES.iter().any(|(f, _)| *f == name);
        match (ours == theirs, listed) {
            (true, true) => mismatches.push(format!("{name}: listed, but now equal ({ours})")),
            (false, false) => mismatches.push(format!("{name}: ours {ours}, tshark {theirs}")),
            _ => {}
        }
    }
    eprintln!(
        "reassembly: {with_fragments} corpus files with fragments, {reassembled} datagrams reassembled, {conflicts} files with conflicting fragments"
    );
    assert!(with_fragments >= 40, "{with_fragments}");
    assert!(conflicts >= 2, "{conflicts}");
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}
