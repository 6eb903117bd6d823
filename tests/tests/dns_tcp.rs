//! DNS over TCP (RFC 7766): each message after a two-byte length, followed like DNS over UDP
//! by the latency, retries, topology and administrators analyzers. Every capture is built
//! packet by packet; the expected values follow from the construction.

use observer_tests::tcp_flags::{ACK, RST};
use observer_tests::{
    Conn, PcapBuilder, analyze_built, dns_a_query, dns_a_response, dns_evidence, findings,
    run_latency, stat, with_rule,
};
use serde_json::Value;

const NS: &str = "10.0.0.53";
const C: &str = "10.0.0.1";

/// `msg` as it travels over TCP: its length, then itself.
fn framed(msg: &[u8]) -> Vec<u8> {
    let mut v = (msg.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(msg);
    v
}

fn dns_latency(ev: &[Value]) -> (u64, u64, u64) {
    let l = run_latency(ev, "dns.response", "10.0.0.53:53");
    (
        l["count"].as_u64().unwrap(),
        l["min_us"].as_u64().unwrap(),
        l["max_us"].as_u64().unwrap(),
    )
}

/// Within 0.1 % (the histograms' precision).
fn near(got: u64, want: u64) -> bool {
    got.abs_diff(want) * 1000 <= want
}

#[test]
fn a_query_over_tcp_answered_after_30_ms_is_one_dns_latency_sample() {
    let mut b = PcapBuilder::default();
    let mut k = Conn::open(&mut b, 0.0, (C, 40_001), (NS, 53));
    k.client(&mut b, 0.010, &framed(&dns_a_query(7, "a.test")))
        .server(
            &mut b,
            0.040,
            &framed(&dns_a_response(7, "a.test", 0, &[("10.0.1.1", 60)])),
        )
        .close(&mut b, 0.050);
    let ev = analyze_built(&b, "dns-tcp-30ms.pcap");
    let (count, min, max) = dns_latency(&ev);
    assert_eq!(count, 1, "{ev:#?}");
    assert!(near(min, 30_000) && near(max, 30_000), "{min} {max}");
    assert_eq!(stat(&ev, "dns.queries"), 1);
    assert_eq!(stat(&ev, "dns.responses"), 1);
    assert_eq!(stat(&ev, "dns.tcp.connections"), 1);
    assert_eq!(stat(&ev, "dns.tcp.messages"), 2);
    assert_eq!(stat(&ev, "dns.tcp.responses"), 1);
    assert!(with_rule(&ev, "dns.query.unanswered").is_empty());
}

#[test]
fn a_query_whose_length_prefix_comes_alone_is_joined_with_its_body() {
    // The length prefix alone at 10 ms, the message at 11 ms (complete then), the answer at
    // 31 ms: one 20 ms exchange.
    let q = framed(&dns_a_query(9, "split.test"));
    let mut b = PcapBuilder::default();
    let mut k = Conn::open(&mut b, 0.0, (C, 40_002), (NS, 53));
    k.client(&mut b, 0.010, &q[..2])
        .client(&mut b, 0.011, &q[2..])
        .server(
            &mut b,
            0.031,
            &framed(&dns_a_response(9, "split.test", 0, &[("10.0.1.2", 60)])),
        )
        .close(&mut b, 0.040);
    let ev = analyze_built(&b, "dns-tcp-split.pcap");
    let (count, min, _) = dns_latency(&ev);
    assert_eq!(count, 1, "{ev:#?}");
    assert!(near(min, 20_000), "{min}");
    assert_eq!(stat(&ev, "dns.queries"), 1);
    assert_eq!(stat(&ev, "dns.responses"), 1);
    assert_eq!(stat(&ev, "dns.tcp.messages"), 2);
}

#[test]
fn two_queries_in_one_segment_answered_in_reverse_order_are_two_exchanges() {
    // Ids 1 (a.test) and 2 (b.test) in one segment at 10 ms; 2 answered at 30 ms, 1 at 50 ms.
    let mut both = framed(&dns_a_query(1, "a.test"));
    both.extend_from_slice(&framed(&dns_a_query(2, "b.test")));
    let mut b = PcapBuilder::default();
    let mut k = Conn::open(&mut b, 0.0, (C, 40_003), (NS, 53));
    k.client(&mut b, 0.010, &both)
        .server(
            &mut b,
            0.030,
            &framed(&dns_a_response(2, "b.test", 0, &[("10.0.1.2", 60)])),
        )
        .server(
            &mut b,
            0.050,
            &framed(&dns_a_response(1, "a.test", 0, &[("10.0.1.1", 60)])),
        )
        .close(&mut b, 0.060);
    let ev = analyze_built(&b, "dns-tcp-pipelined.pcap");
    let (count, min, max) = dns_latency(&ev);
    assert_eq!(count, 2, "{ev:#?}");
    assert!(near(min, 20_000) && near(max, 40_000), "{min} {max}");
    assert_eq!(stat(&ev, "dns.queries"), 2);
    assert_eq!(stat(&ev, "dns.responses"), 2);
    assert_eq!(stat(&ev, "dns.unanswered"), 0);
    assert_eq!(stat(&ev, "dns.retransmitted"), 0);
}

#[test]
fn a_query_segment_retransmitted_by_tcp_is_no_dns_retransmission() {
    // The query at 10 ms, its segment sent again by TCP at 210 ms (the RTO), the answer at
    // 230 ms: one query, asked once, waited for 220 ms.
    let q = framed(&dns_a_query(5, "again.test"));
    let mut b = PcapBuilder::default();
    let mut k = Conn::open(&mut b, 0.0, (C, 40_004), (NS, 53));
    b.tcp(0.010, k.c, k.s, 101, 501, ACK, &q)
        .tcp(0.210, k.c, k.s, 101, 501, ACK, &q);
    k.cseq += q.len() as u32;
    k.server(
        &mut b,
        0.230,
        &framed(&dns_a_response(5, "again.test", 0, &[("10.0.1.5", 60)])),
    )
    .close(&mut b, 0.240);
    let ev = analyze_built(&b, "dns-tcp-retransmitted.pcap");
    assert!(stat(&ev, "tcp.retransmissions") >= 1, "built as one");
    assert_eq!(stat(&ev, "dns.queries"), 1);
    assert_eq!(stat(&ev, "dns.responses"), 1);
    assert_eq!(stat(&ev, "dns.retransmitted"), 0);
    assert!(with_rule(&ev, "dns.query.retransmitted").is_empty());
    let (count, min, _) = dns_latency(&ev);
    assert_eq!(count, 1);
    assert!(near(min, 220_000), "{min}");
}

#[test]
fn a_query_pending_when_its_connection_closes_is_unanswered() {
    // The query at 10 ms is acknowledged but never answered; the client gives up and closes
    // at 300 ms, and the capture ends 2 ms later: less than the 1 s after which a query still
    // open at the end counts, so only the close tells it was unanswered. On a second
    // connection, to another server, a query is answered by a reset.
    let mut b = PcapBuilder::default();
    let mut k = Conn::open(&mut b, 0.0, (C, 40_005), (NS, 53));
    k.client(&mut b, 0.010, &framed(&dns_a_query(3, "lost.test")));
    b.tcp(0.011, k.s, k.c, k.sseq, k.cseq, ACK, &[]);
    k.close(&mut b, 0.300);
    let other = ("10.0.0.54", 53);
    let mut r = Conn::open(&mut b, 0.100, (C, 40_006), other);
    r.client(&mut b, 0.110, &framed(&dns_a_query(4, "reset.test")));
    b.tcp(0.120, other, r.c, r.sseq, r.cseq, RST | ACK, &[]);
    let ev = analyze_built(&b, "dns-tcp-unanswered.pcap");
    assert_eq!(stat(&ev, "dns.queries"), 2);
    assert_eq!(stat(&ev, "dns.unanswered"), 2, "{ev:#?}");
    assert_eq!(stat(&ev, "dns.open_at_end"), 0);
    let lost = observer_tests::finding_to(&ev, "dns.query.unanswered", NS);
    assert_eq!(dns_evidence(lost), (1, 1, "lost.test (type 1)"));
    let reset = observer_tests::finding_to(&ev, "dns.query.unanswered", "10.0.0.54");
    assert_eq!(dns_evidence(reset), (1, 1, "reset.test (type 1)"));
}

#[test]
fn a_message_longer_than_the_kept_prefix_is_skipped_and_the_next_one_read() {
    // A zone-transfer-like answer of 20,000 bytes (its first answer an A record, the rest one
    // large TXT record) in 1,000-byte segments, then a second exchange on the same
    // connection, answered after 15 ms.
    let mut big = dns_a_response(1, "zone.test", 0, &[("10.0.9.9", 300)]);
    big[7] = 2; // a second answer: a TXT record filling the message to 20,000 bytes
    let rdlen = 20_000 - big.len() - 12;
    big.extend_from_slice(&[0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 60]);
    big.extend_from_slice(&(rdlen as u16).to_be_bytes());
    big.extend(std::iter::repeat_n(b'x', rdlen));
    assert_eq!(big.len(), 20_000);
    let big = framed(&big);
    let mut b = PcapBuilder::default();
    let mut k = Conn::open(&mut b, 0.0, (C, 40_007), (NS, 53));
    k.client(&mut b, 0.010, &framed(&dns_a_query(1, "zone.test")));
    for (i, part) in big.chunks(1000).enumerate() {
        k.server(&mut b, 0.020 + i as f64 * 0.0001, part);
    }
    k.client(&mut b, 0.100, &framed(&dns_a_query(2, "next.test")))
        .server(
            &mut b,
            0.115,
            &framed(&dns_a_response(2, "next.test", 0, &[("10.0.1.7", 60)])),
        )
        .close(&mut b, 0.200);
    let ev = analyze_built(&b, "dns-tcp-long.pcap");
    assert_eq!(stat(&ev, "dns.tcp.messages"), 4);
    assert_eq!(stat(&ev, "limits.dns_tcp_messages_cut"), 1);
    assert_eq!(stat(&ev, "dns.responses"), 2);
    assert_eq!(stat(&ev, "dns.unanswered"), 0);
    // The long answer's A record was in its kept prefix.
    assert_eq!(stat(&ev, "topology.dns_answers"), 2);
    // 12 ms (the long answer's last segment at 22 ms) and 15 ms.
    let (count, min, max) = dns_latency(&ev);
    assert_eq!(count, 2);
    assert!(near(min, 12_000) && near(max, 15_000), "{min} {max}");
}

#[test]
fn a_gap_in_the_servers_stream_is_counted_and_reading_resumes_at_a_message() {
    // Three queries; the segment with the first answer is not captured (a gap), the second
    // answer starts the next captured segment and is read, the third follows it.
    let answer = |id, name| framed(&dns_a_response(id, name, 0, &[("10.0.1.8", 60)]));
    let mut b = PcapBuilder::default();
    let mut k = Conn::open(&mut b, 0.0, (C, 40_008), (NS, 53));
    let mut qs = framed(&dns_a_query(1, "one.test"));
    qs.extend_from_slice(&framed(&dns_a_query(2, "two.test")));
    qs.extend_from_slice(&framed(&dns_a_query(3, "three.test")));
    k.client(&mut b, 0.010, &qs);
    let lost = answer(1, "one.test");
    k.sseq += lost.len() as u32; // sent, not captured
    k.server(&mut b, 0.030, &answer(2, "two.test"))
        .server(&mut b, 0.040, &answer(3, "three.test"))
        .close(&mut b, 0.100);
    let ev = analyze_built(&b, "dns-tcp-gap.pcap");
    assert_eq!(stat(&ev, "dns.tcp.gaps"), 1);
    assert_eq!(stat(&ev, "dns.responses"), 2);
    // The first query's answer may have been in the gap: its outcome is unknown, it is not
    // unanswered.
    assert_eq!(stat(&ev, "dns.unanswered"), 0);
    assert_eq!(stat(&ev, "dns.unknown_outcome"), 1);
    let (count, min, max) = dns_latency(&ev);
    assert_eq!(count, 2);
    assert!(near(min, 20_000) && near(max, 30_000), "{min} {max}");
}

/// Seconds after the builder's epoch as observer's RFC 3339 form.
fn at(t: f64) -> String {
    let ns = observer_tests::PCAP_BUILDER_EPOCH as i64 * 1_000_000_000
        + (t * 1e6).round() as i64 * 1_000;
    observer::time::Timestamp(ns).rfc3339_micros()
}

/// tests/tests/topology.rs's `nxdomain_and_ttl_expiry_make_stale_cache_findings`, with the
/// answers over TCP.
#[test]
fn answers_over_tcp_make_stale_cache_findings_like_answers_over_udp() {
    let resp = |id, name, rcode, ans: &[(&str, u32)]| framed(&dns_a_response(id, name, rcode, ans));
    let (c1, c2) = ("10.1.0.1", "10.1.0.2");
    let mut b = PcapBuilder::default();
    // c1 resolves a.test (answered at 4 ms) and b.test (at 6 ms), TTL 5 s each.
    let mut k = Conn::open(&mut b, 0.0, (c1, 40_001), (NS, 53));
    k.client(&mut b, 0.003, &framed(&dns_a_query(1, "a.test")))
        .server(&mut b, 0.004, &resp(1, "a.test", 0, &[("10.3.0.3", 5)]))
        .client(&mut b, 0.005, &framed(&dns_a_query(2, "b.test")))
        .server(&mut b, 0.006, &resp(2, "b.test", 0, &[("10.4.0.4", 5)]))
        .close(&mut b, 0.010);
    // Within the TTL: fine.
    b.connection(2.0, (c1, 50_001), ("10.3.0.3", 443));
    // Another client learns at 3.004 s that b.test is gone.
    let mut n = Conn::open(&mut b, 3.0, (c2, 40_003), (NS, 53));
    n.client(&mut b, 3.003, &framed(&dns_a_query(3, "b.test")))
        .server(&mut b, 3.004, &resp(3, "b.test", 3, &[]))
        .close(&mut b, 3.010);
    // Past both TTLs (5 s + 1 s grace): a.test never re-resolved; b.test no longer exists.
    b.connection(10.0, (c1, 50_002), ("10.3.0.3", 443))
        .connection(10.5, (c1, 50_003), ("10.4.0.4", 443));
    let ev = analyze_built(&b, "dns-tcp-stale.pcap");
    let st = with_rule(&ev, "dns.cache.stale");
    assert_eq!(st.len(), 2, "{:#?}", findings(&ev));
    let a = st
        .iter()
        .find(|f| f["fallacy"]["evidence"]["name"] == "a.test")
        .unwrap();
    let ae = &a["fallacy"]["evidence"];
    assert_eq!(ae["reason"], "ttl_expired");
    assert_eq!(
        ae["connections"], 1,
        "the connection at 2 s was within the TTL"
    );
    assert_eq!(ae["first_seen"], at(10.0));
    assert_eq!(ae["expired_at"], at(5.004));
    let b_ = st
        .iter()
        .find(|f| f["fallacy"]["evidence"]["name"] == "b.test")
        .unwrap();
    let be = &b_["fallacy"]["evidence"];
    assert_eq!(be["reason"], "address_removed");
    assert_eq!(be["nxdomain"], true);
    assert_eq!(be["changed_at"], at(3.004));
    assert_eq!(stat(&ev, "topology.dns_answers"), 3);
}
