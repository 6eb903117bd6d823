//! Review of bounded state under hostile or huge input: collections whose cap, once reached,
//! changed what was reported (a false finding, a missing culprit) or was reached without
//! being counted. Every capture is built packet by packet; the expected values follow from
//! the construction.

use observer_tests::tcp_flags::{ACK, FIN, SYN};
use observer_tests::{PcapBuilder, analyze_built, dns_a_query, dns_a_response, stat, with_rule};

/// `msg` as it travels over TCP: its length, then itself.
fn framed(msg: &[u8]) -> Vec<u8> {
    let mut v = (msg.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(msg);
    v
}

#[test]
fn queries_pipelined_beyond_the_per_connection_cap_are_not_unanswered_after_a_gap() {
    // 100 queries (ids 1..=100) sent at once on one DNS-over-TCP connection. The segment with
    // the answers to ids 1..=99 is not captured (a gap in the server's stream); the answer to
    // id 100 is. Each of the 99 may have been answered in the gap: their outcome is unknown,
    // none is unanswered. Another conversation 10 s later makes the capture end long after
    // the queries' timeout.
    let (c, s) = (("10.0.0.1", 40_000), ("10.0.0.53", 53));
    let mut b = PcapBuilder::default();
    b.tcp(0.0, c, s, 100, 0, SYN, &[])
        .tcp(0.001, s, c, 500, 101, SYN | ACK, &[])
        .tcp(0.002, c, s, 101, 501, ACK, &[]);
    let mut qs = Vec::new();
    for id in 1..=100u16 {
        qs.extend_from_slice(&framed(&dns_a_query(id, &format!("q{id}.test"))));
    }
    let cseq = 101 + qs.len() as u32;
    b.tcp(0.010, c, s, 101, 501, ACK, &qs);
    let mut lost = 0u32;
    for id in 1..=99u16 {
        let name = format!("q{id}.test");
        lost += framed(&dns_a_response(id, &name, 0, &[("10.0.1.8", 60)])).len() as u32;
    }
    let last = framed(&dns_a_response(100, "q100.test", 0, &[("10.0.1.8", 60)]));
    let sseq = 501 + lost;
    b.tcp(0.030, s, c, sseq, cseq, ACK, &last);
    let sseq = sseq + last.len() as u32;
    b.tcp(0.100, c, s, cseq, sseq, FIN | ACK, &[])
        .tcp(0.101, s, c, sseq, cseq + 1, FIN | ACK, &[])
        .tcp(0.102, c, s, cseq + 1, sseq + 1, ACK, &[]);
    b.udp(10.0, ("10.0.0.7", 5555), ("10.0.0.8", 6666), b"later");
    let ev = analyze_built(&b, "bounds-dns-tcp-pipelined.pcap");
    assert_eq!(stat(&ev, "dns.tcp.gaps"), 1);
    assert_eq!(stat(&ev, "dns.queries"), 100);
    assert_eq!(stat(&ev, "dns.responses"), 1);
    assert_eq!(stat(&ev, "dns.unanswered"), 0, "{ev:#?}");
    assert_eq!(stat(&ev, "dns.unknown_outcome"), 99);
    assert!(with_rule(&ev, "dns.query.unanswered").is_empty());
    // The 36 queries beyond the 64 followed on the connection are counted.
    assert_eq!(stat(&ev, "limits.dns_tcp_queries_untracked"), 36);
}
