//! A capture stops at an arbitrary moment (`-c N`, a rotation, Ctrl-C): what was still waiting
//! for its answer then, and had not waited long, was cut off by the end of the capture, not
//! left unanswered. And a response whose head was seen answered its request, however much of
//! its body the capture holds. Every capture is built here; the expected values follow from
//! the construction.

use observer_tests::tcp_flags::{ACK, FIN, SYN};
use observer_tests::{PcapBuilder, analyze_built, dns_a_query, stat, with_rule};

const C: &str = "10.0.0.1";
const S: &str = "10.0.0.2";

/// Enough traffic on another connection to carry the capture's clock to `end` seconds.
fn last_frame_at(b: &mut PcapBuilder, end: f64) {
    b.udp(end, ("10.0.0.9", 5000), ("10.0.0.8", 5001), b"tick");
}

#[test]
fn a_syn_just_before_the_end_of_the_capture_is_not_unanswered() {
    let s = (S, 443);
    let mut b = PcapBuilder::default();
    // Open at the end: single SYNs 16 ms and 900 ms before it (a client retries after its
    // 1 s initial retransmission timeout).
    b.tcp(0.0, (C, 40_000), s, 100, 0, SYN, &[])
        .tcp(0.001, s, (C, 40_000), 500, 101, SYN | ACK, &[])
        .tcp(29.1, (C, 40_001), s, 100, 0, SYN, &[])
        .tcp(29.984, (C, 40_002), s, 100, 0, SYN, &[]);
    // Unanswered: a SYN 10 s before the end, and one retried once, the retry being the last
    // frame (the client waited its timeout without an answer).
    b.tcp(20.0, (C, 40_003), s, 100, 0, SYN, &[])
        .tcp(29.0, (C, 40_004), s, 100, 0, SYN, &[])
        // Open at the end too: one SYN captured twice (a duplicated frame), 10 ms apart.
        .tcp(29.98, (C, 40_005), s, 100, 0, SYN, &[])
        .tcp(29.99, (C, 40_005), s, 100, 0, SYN, &[])
        .tcp(30.0, (C, 40_004), s, 100, 0, SYN, &[]);
    last_frame_at(&mut b, 30.0);
    let ev = analyze_built(&b, "syn-at-the-end.pcap");
    assert_eq!(stat(&ev, "tcp.handshakes.open_at_end"), 3);
    assert_eq!(stat(&ev, "tcp.handshakes.unanswered"), 2);
    let f = with_rule(&ev, "tcp.handshake.unanswered");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0]["fallacy"]["evidence"]["connections"], 2);
}

#[test]
fn a_dns_query_just_before_the_end_of_the_capture_is_not_unanswered() {
    let (c, s) = ((C, 53_000), (S, 53));
    let mut b = PcapBuilder::default();
    // Unanswered: sent 10 s before the end, and one retransmitted, the retry being the last
    // frame (the client waited for its answer).
    b.udp(20.0, c, s, &dns_a_query(1, "gone.example"));
    b.udp(29.0, c, s, &dns_a_query(3, "retried.example"));
    // Cut off: sent 0.5 s before the end, captured twice (a duplicated frame).
    b.udp(29.5, c, s, &dns_a_query(2, "late.example"));
    b.udp(29.51, c, s, &dns_a_query(2, "late.example"));
    b.udp(30.0, c, s, &dns_a_query(3, "retried.example"));
    last_frame_at(&mut b, 30.0);
    let ev = analyze_built(&b, "dns-at-the-end.pcap");
    assert_eq!(stat(&ev, "dns.unanswered"), 2);
    assert_eq!(stat(&ev, "dns.open_at_end"), 1);
    let f = with_rule(&ev, "dns.query.unanswered");
    assert_eq!(f.len(), 1, "{f:#?}");
    let samples = f[0]["fallacy"]["evidence"]["samples"].to_string();
    assert!(samples.contains("gone.example"), "{samples}");
    assert!(samples.contains("retried.example"), "{samples}");
    assert!(!samples.contains("late.example"), "{samples}");
}

/// A connection at `t0` on client port `port` whose client sends `req`; the server answers
/// with `resp` (possibly only the head of a longer response) unless it is empty, and the
/// capture goes on to `end`.
fn http_exchange(b: &mut PcapBuilder, t0: f64, port: u16, req: &[u8], resp: &[u8]) {
    let (c, s) = ((C, port), (S, 80));
    let n = req.len() as u32;
    b.tcp(t0, c, s, 100, 0, SYN, &[])
        .tcp(t0 + 0.001, s, c, 500, 101, SYN | ACK, &[])
        .tcp(t0 + 0.002, c, s, 101, 501, ACK, &[])
        .tcp(t0 + 0.003, c, s, 101, 501, ACK, req)
        .tcp(t0 + 0.004, s, c, 501, 101 + n, ACK, &[]);
    if !resp.is_empty() {
        b.tcp(t0 + 0.010, s, c, 501, 101 + n, ACK, resp);
    }
}

#[test]
fn an_http_request_is_answered_by_a_response_head_and_cut_off_by_the_end() {
    let req = b"GET /big HTTP/1.1\r\nHost: svc\r\n\r\n";
    let mut b = PcapBuilder::default();
    // Answered: the head of a 1 MB response came, then the capture ended mid-body.
    http_exchange(
        &mut b,
        1.0,
        41_000,
        req,
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\npartial body",
    );
    // Unanswered: the server acknowledged the request 20 s before the end and said nothing.
    http_exchange(&mut b, 10.0, 41_001, req, &[]);
    // Cut off: sent 50 ms before the end, and sent 40 ms before it by a client that then
    // closed its side (its FIN ends its sending, not its wait for the answer).
    http_exchange(&mut b, 29.95, 41_002, req, &[]);
    http_exchange(&mut b, 29.96, 41_003, req, &[]);
    let n = req.len() as u32;
    b.tcp(29.97, (C, 41_003), (S, 80), 101 + n, 501, FIN | ACK, &[]);
    last_frame_at(&mut b, 30.0);
    let ev = analyze_built(&b, "http-at-the-end.pcap");
    assert_eq!(stat(&ev, "http.requests"), 4);
    assert_eq!(stat(&ev, "http.unanswered"), 1);
    assert_eq!(stat(&ev, "http.unknown_outcome"), 2);
    let f = with_rule(&ev, "http.request.unanswered");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0]["source"]["port"], 41_001, "{:#?}", f[0]);
}

#[test]
fn a_response_in_server_data_the_capture_missed_is_an_unknown_outcome() {
    // The server's FIN comes at a sequence number past the bytes the capture holds (its data
    // segments were missed); the client acknowledged them. Whatever answered the request was
    // there, unseen.
    let (c, s) = ((C, 42_000), (S, 80));
    let req = b"GET / HTTP/1.1\r\nHost: svc\r\n\r\n";
    let n = req.len() as u32;
    let mut b = PcapBuilder::default();
    b.tcp(0.0, c, s, 100, 0, SYN, &[])
        .tcp(0.001, s, c, 500, 101, SYN | ACK, &[])
        .tcp(0.002, c, s, 101, 501, ACK, &[])
        .tcp(0.003, c, s, 101, 501, ACK, req)
        .tcp(0.004, s, c, 501, 101 + n, ACK, b"HTTP/1.1 200 OK\r\n")
        .tcp(0.020, s, c, 2000, 101 + n, FIN | ACK, &[])
        .tcp(0.021, c, s, 101 + n, 2001, FIN | ACK, &[])
        .tcp(0.022, s, c, 2001, 102 + n, ACK, &[]);
    last_frame_at(&mut b, 30.0);
    let ev = analyze_built(&b, "http-missed-end.pcap");
    assert!(with_rule(&ev, "http.request.unanswered").is_empty());
    assert_eq!(stat(&ev, "http.unanswered"), 0);
    assert_eq!(stat(&ev, "http.unknown_outcome"), 1);
}
