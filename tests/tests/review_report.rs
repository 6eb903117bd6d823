//! Review of the HTML report (`--report FILE`: observer/src/report/): the numbers on the page
//! against the NDJSON of the same run and against what the test built.
//!
//! * The latency table's p99.9 is the NDJSON's `p999_us`, not the next sample up.
//! * A verdict card names the worst finding of its fallacy even when that finding came after
//!   the 5,000 the page keeps.
//! * The retransmission rate counts SYNs and FINs sent again against the segments that occupy
//!   sequence space (data, SYN, FIN), as the reliability analyzer does: a server that never
//!   answers is not "No TCP data segments", and a bucket is never above 100 %.

use observer::config::Config;
use observer::pipeline::Pipeline;
use observer::report::{MAX_FINDINGS, ReportData, html};
use observer::sink::MemorySink;
use observer_tests::page::{data_values, section};
use observer_tests::tcp_flags::{ACK, SYN};
use observer_tests::{PcapBuilder, ScratchFile, run_latency, stat};
use serde_json::{Value, json};

/// Analyzes the capture `b` built with a report asked for: (events, page).
fn report_of(b: &PcapBuilder, name: &str) -> (Vec<Value>, String) {
    let f = ScratchFile::new(name, &b.finish());
    let cfg = Config::default();
    let mut sink = MemorySink::default();
    let files = [f.to_path_buf()];
    let mut p = Pipeline::new(&cfg, &mut sink, &files);
    p.enable_report();
    p.run_file(&files[0]).expect("memory sink never fails");
    let s = p.finish().expect("memory sink never fails");
    let page = html::render(s.report.as_deref().expect("a report was asked for"));
    (sink.events, page)
}

#[test]
fn the_latency_tables_p999_is_the_ndjson_p999() {
    // 1,000 handshakes to one server: 999 answered within 1 ms, one after 200 ms. The 99.9th
    // percentile is the 999th sample (1 ms); only the maximum is the slow one.
    let mut b = PcapBuilder::default();
    let s = ("10.0.0.2", 80);
    for i in 0..1_000u16 {
        let t = f64::from(i) * 0.01;
        let c = ("10.0.0.1", 20_000 + i);
        let answer = if i == 500 { 0.2 } else { 0.001 };
        b.tcp(t, c, s, 100, 0, SYN, &[])
            .tcp(t + answer, s, c, 500, 101, SYN | ACK, &[])
            .tcp(t + answer + 0.0005, c, s, 101, 501, ACK, &[]);
    }
    let (events, page) = report_of(&b, "p999.pcap");
    let ndjson = run_latency(&events, "tcp.handshake", "10.0.0.2:80");
    assert_eq!(ndjson["count"], 1_000);
    let p999 = ndjson["p999_us"].as_u64().expect("p999_us");
    let max = ndjson["max_us"].as_u64().expect("max_us");
    assert!(
        p999 < 2_000,
        "by construction p99.9 is about 1 ms: {ndjson}"
    );
    assert!(
        max > 150_000,
        "by construction the max is about 200 ms: {ndjson}"
    );

    let latency = section(&page, "latency");
    let start = latency
        .find("<tr><td><code>tcp.handshake</code></td>")
        .expect("a tcp.handshake row");
    let row = &latency[start..start + latency[start..].find("</tr>").expect("row closed")];
    // Samples, p50, p90, p99, p99.9, max.
    let cells = data_values(row);
    assert_eq!(cells.len(), 6, "{row}");
    assert_eq!(cells[0], 1_000);
    assert_eq!(
        cells[4], p999,
        "the page's p99.9 is not the NDJSON's p999_us ({p999} µs): {row}"
    );
    assert_eq!(cells[5], max);
}

#[test]
fn the_verdict_names_the_worst_finding_even_beyond_the_kept_ones() {
    let finding = |i: usize, severity: u64, message: &str| {
        json!({
            "@timestamp": "2026-01-01T00:00:00.000000Z",
            "event": {"kind": "alert", "severity": severity, "id": format!("r-{i}")},
            "rule": {"name": "tcp.connection.reset"},
            "message": message,
            "fallacy": {"id": 1, "evidence": {}},
        })
    };
    let mut d = ReportData::default();
    for i in 0..MAX_FINDINGS {
        d.on_event(&finding(i, 1, "a low one"));
    }
    d.on_event(&finding(MAX_FINDINGS, 4, "the critical outage"));
    // And the only finding of fallacy 3, after the cap too.
    let mut other = finding(MAX_FINDINGS + 1, 2, "the link is full");
    other["fallacy"]["id"] = json!(3);
    d.on_event(&other);
    d.on_event(&json!({
        "event": {"kind": "metric", "action": "summary"},
        "stats": {"findings": {
            "total": MAX_FINDINGS + 2,
            "network-is-reliable": MAX_FINDINGS + 1,
            "bandwidth-is-infinite": 1,
        }},
    }));
    let page = html::render(&d);
    let verdict = section(&page, "verdict");
    let card = |id: u64| {
        let start = verdict
            .find(&format!("data-fallacy=\"{id}\""))
            .expect("a card per fallacy");
        &verdict[verdict[..start].rfind("<a ").unwrap()
            ..start + verdict[start..].find("</a>").expect("card closed")]
    };
    let c1 = card(1);
    assert!(
        c1.contains(&format!(
            "Hurting: {} finding(s), worst critical",
            MAX_FINDINGS + 1
        )),
        "the card hides the critical finding: {c1}"
    );
    assert!(c1.contains("class=\"card sev-4\""), "{c1}");
    assert!(c1.contains("the critical outage"), "{c1}");
    let c3 = card(3);
    assert!(
        c3.contains("Hurting: 1 finding(s), worst medium") && c3.contains("the link is full"),
        "the card says nothing was found: {c3}"
    );
    assert!(c3.contains("class=\"card sev-2\""), "{c3}");
    // What the page left out is still said, and where to find it.
    assert!(page.contains("2 further finding(s) are in the NDJSON output only"));
    let findings = section(&page, "findings");
    let f3 = &findings[findings.find("<h3 id=\"fallacy-3\">").unwrap()
        ..findings.find("<h3 id=\"fallacy-4\">").unwrap()];
    assert!(
        !f3.contains("No findings."),
        "fallacy 3 has a finding, in the NDJSON only: {f3}"
    );
}

#[test]
fn syns_sent_again_count_against_the_segments_they_are_part_of() {
    let mut b = PcapBuilder::default();
    // A connection that works: SYN, SYN/ACK, one data segment each way, FIN each way (six
    // segments occupying sequence space; the ACKs carry nothing).
    b.session(
        0.0,
        ("10.0.0.1", 40_000),
        ("10.0.0.2", 80),
        &[(true, b"ping"), (false, b"pong")],
    );
    // A server that never answers: the SYN sent at 0 s, again at 1 s and 3 s.
    for t in [0.0, 1.0, 3.0] {
        b.tcp(t, ("10.0.0.1", 40_001), ("10.0.0.3", 80), 100, 0, SYN, &[]);
    }
    let (events, page) = report_of(&b, "syn-retrans.pcap");
    assert_eq!(stat(&events, "tcp.retransmissions"), 2);
    let s = section(&page, "retransmissions");
    assert!(
        !s.contains("No TCP data segments"),
        "the two SYNs sent again are not on the page:\n{s}"
    );
    // Segments (data, SYN, FIN): 6 + 3; retransmissions: the 2 SYNs sent again.
    assert_eq!(data_values(s)[..2], [9, 2], "{s}");
    assert!(s.contains("<td class=\"num\">22.222 %</td>"), "{s}");
}

#[test]
fn a_server_that_never_answers_has_a_retransmission_rate() {
    // Only SYNs: 0 s, 1 s, 3 s. Two of the three segments were sent again.
    let mut b = PcapBuilder::default();
    for t in [0.0, 1.0, 3.0] {
        b.tcp(t, ("10.0.0.1", 40_001), ("10.0.0.3", 80), 100, 0, SYN, &[]);
    }
    let (events, page) = report_of(&b, "syn-only.pcap");
    assert_eq!(stat(&events, "tcp.retransmissions"), 2);
    let s = section(&page, "retransmissions");
    assert!(
        !s.contains("No TCP data segments"),
        "the retransmissions are hidden:\n{s}"
    );
    assert_eq!(data_values(s)[..2], [3, 2], "{s}");
    // Both buckets with a SYN sent again have a point at 100 %: the line is drawn.
    assert!(s.contains("<path class=\"s2\""), "no rate line:\n{s}");
}

#[test]
fn a_capture_without_packets_has_no_capture_time() {
    // A pcap with its file header and no record: nothing was captured, at no time.
    let (events, page) = report_of(&PcapBuilder::default(), "empty.pcap");
    assert_eq!(stat(&events, "frames.total"), 0);
    let header = &page[page.find("<header>").unwrap()..page.find("</header>").unwrap()];
    assert!(
        !header.contains("1970-01-01"),
        "the page dates an empty capture to the epoch: {header}"
    );
    assert!(header.contains("no packets"), "{header}");
}
