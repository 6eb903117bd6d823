//! Fallacy 1 on captures of real programs (fixtures/make-reliability-captures.sh): expected
//! values come from tshark (fixtures/reliability.expected.txt, commands at its top) and from
//! how the traffic was made (the retry server's own log, quoted in the same file).

use observer_tests::{analyze, analyze_raw, findings, stat};
use serde_json::Value;
use std::collections::HashMap;

fn expected() -> HashMap<String, HashMap<String, String>> {
    observer_tests::expected_sections("reliability.expected.txt")
}

fn num(e: &HashMap<String, String>, k: &str) -> u64 {
    e.get(k)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{k} missing from the expected values"))
}

#[test]
fn tcp_counters_equal_tshark_on_every_reliability_capture() {
    let exp = expected();
    for name in [
        "reliability-loss.pcap",
        "reliability-retry.pcap",
        "reliability-dns.pcap",
    ] {
        let e = &exp[name];
        let ev = analyze(&format!("fixtures/{name}"));
        assert_eq!(stat(&ev, "frames.total"), num(e, "packets"), "{name}");
        assert_eq!(stat(&ev, "flows.tcp"), num(e, "tcp_streams"), "{name}");
        assert_eq!(stat(&ev, "flows.udp"), num(e, "udp_streams"), "{name}");
        // Wireshark's tcp.analysis.retransmission also marks fast and spurious ones.
        assert_eq!(
            stat(&ev, "tcp.retransmissions"),
            num(e, "retransmission"),
            "{name}"
        );
        assert_eq!(
            stat(&ev, "tcp.retransmission_kinds.fast"),
            num(e, "fast_retransmission"),
            "{name}"
        );
        assert_eq!(
            stat(&ev, "tcp.retransmission_kinds.spurious"),
            num(e, "spurious_retransmission"),
            "{name}"
        );
        assert_eq!(
            stat(&ev, "tcp.duplicate_acks"),
            num(e, "duplicate_ack"),
            "{name}"
        );
        assert_eq!(
            stat(&ev, "tcp.zero_windows"),
            num(e, "zero_window"),
            "{name}"
        );
        assert_eq!(
            stat(&ev, "tcp.lost_segments"),
            num(e, "lost_segment"),
            "{name}"
        );
        assert_eq!(
            stat(&ev, "tcp.out_of_order"),
            num(e, "out_of_order"),
            "{name}"
        );
        assert_eq!(stat(&ev, "tcp.resets"), num(e, "rst_frames"), "{name}");
    }
}

#[test]
fn lossy_downloads_are_flagged_and_the_clean_one_is_not() {
    let exp = expected();
    let e = &exp["reliability-loss.pcap"];
    let ev = analyze("fixtures/reliability-loss.pcap");
    let f = findings(&ev);
    let lossy: Vec<_> = f
        .iter()
        .filter(|f| f["rule"]["name"] == "tcp.retransmission.excessive")
        .collect();
    assert_eq!(lossy.len(), 2, "{f:#?}");
    for l in &lossy {
        assert_eq!(l["destination"]["port"], 8080);
        let s2c = &l["fallacy"]["evidence"]["server_to_client"];
        // tshark: 11 retransmissions in each lossy stream.
        assert_eq!(
            s2c["retransmissions"].as_u64().unwrap()
                + s2c["fast_retransmissions"].as_u64().unwrap()
                + s2c["spurious_retransmissions"].as_u64().unwrap(),
            num(e, "stream_0_retransmission")
        );
    }
    assert!(
        f.iter()
            .filter(|f| f["rule"]["name"]
                .as_str()
                .unwrap()
                .starts_with("tcp.retransmission"))
            .all(|f| f["destination"]["port"] != 8081),
        "the loss-free download is flagged"
    );
    assert_eq!(stat(&ev, "http.requests"), num(e, "http_requests"));
    assert_eq!(stat(&ev, "http.responses"), num(e, "http_responses_200"));
}

#[test]
fn retried_post_without_key_is_unsafe_with_key_is_handled() {
    let exp = expected();
    let e = &exp["reliability-retry.pcap"];
    let ev = analyze("fixtures/reliability-retry.pcap");
    assert_eq!(stat(&ev, "http.requests"), num(e, "http_requests"));
    assert_eq!(stat(&ev, "http.responses"), num(e, "http_responses"));
    let f = findings(&ev);
    let dups: Vec<_> = f
        .iter()
        .filter(|f| f["rule"]["name"] == "http.request.duplicate")
        .collect();
    assert_eq!(dups.len(), 2, "{f:#?}");
    // The server log shows each POST body received twice; the first attempts got no response.
    let (unsafe_, handled): (Vec<&Value>, Vec<&Value>) = dups
        .iter()
        .map(|d| **d)
        .partition(|d| d["fallacy"]["evidence"]["idempotency_key"] == "none");
    assert_eq!((unsafe_.len(), handled.len()), (1, 1));
    let u = unsafe_[0];
    assert_eq!(u["event"]["severity"], 3);
    assert_eq!(u["fallacy"]["evidence"]["method"], "POST");
    assert_eq!(u["fallacy"]["evidence"]["path"], "/charge");
    assert_eq!(
        u["fallacy"]["evidence"]["body_bytes"], 27,
        "body-len=27 in the server log"
    );
    assert_eq!(u["fallacy"]["evidence"]["retried_before_response"], true);
    let attempts = u["fallacy"]["evidence"]["attempts"].as_array().unwrap();
    let client_ports: Vec<String> = attempts
        .iter()
        .map(|a| format!("10.98.0.1:{}", a["source_port"]))
        .collect();
    assert_eq!(
        client_ports,
        vec![
            e["post.A-1.attempt1.client"].clone(),
            e["post.A-1.attempt2.client"].clone()
        ]
    );
    assert_eq!(attempts[0]["response_status"], Value::Null);
    assert_eq!(attempts[1]["response_status"], 200);
    let h = handled[0];
    assert_eq!(h["event"]["severity"], 1);
    assert_eq!(
        h["fallacy"]["evidence"]["body_bytes"], 26,
        "body-len=26 in the server log"
    );
    // The idempotency key's value is never echoed.
    let all =
        String::from_utf8_lossy(&analyze_raw(&["fixtures/reliability-retry.pcap"])).into_owned();
    assert!(!all.contains("5f0c1a2e-retry-test"));
    // GET /status was answered: no duplicate, no timeout for it.
    let unanswered: Vec<_> = f
        .iter()
        .filter(|f| f["rule"]["name"] == "http.request.unanswered")
        .collect();
    assert_eq!(unanswered.len(), 1);
    assert_eq!(
        unanswered[0]["fallacy"]["evidence"]["count"], 2,
        "the two timed-out first attempts"
    );
    assert_eq!(stat(&ev, "http.duplicate_requests"), 2);
    assert_eq!(stat(&ev, "http.unanswered"), 2);
}

#[test]
fn dns_retry_and_silence_are_told_apart() {
    let ev = analyze("fixtures/reliability-dns.pcap");
    let f = findings(&ev);
    let un: Vec<_> = f
        .iter()
        .filter(|f| f["rule"]["name"] == "dns.query.unanswered")
        .collect();
    assert_eq!(un.len(), 1);
    // dead.test: 3 queries, 0 responses (tshark); flaky.test: 2 queries, answered the second.
    assert_eq!(un[0]["fallacy"]["evidence"]["transmissions"], 3);
    assert!(
        un[0]["fallacy"]["evidence"]["samples"][0]
            .as_str()
            .unwrap()
            .starts_with("dead.test")
    );
    let re: Vec<_> = f
        .iter()
        .filter(|f| f["rule"]["name"] == "dns.query.retransmitted")
        .collect();
    assert_eq!(re.len(), 1);
    assert_eq!(re[0]["fallacy"]["evidence"]["transmissions"], 2);
    assert!(
        re[0]["fallacy"]["evidence"]["samples"][0]
            .as_str()
            .unwrap()
            .starts_with("flaky.test")
    );
    assert_eq!(stat(&ev, "dns.queries"), 6);
    assert_eq!(stat(&ev, "dns.responses"), 2);
    assert_eq!(stat(&ev, "dns.unanswered"), 1);
}
