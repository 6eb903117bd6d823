//! Path-MTU black hole on a capture of real programs (fixtures/make-pmtu-capture.sh): a
//! router whose next hop has MTU 1400; once with ICMP "fragmentation needed" allowed (the
//! control), once with it dropped (the black hole). Expected values from construction and
//! tshark (fixtures/pmtu.expected.txt).

use observer_tests::{analyze, findings, stat};

#[test]
fn black_hole_is_found_and_the_healthy_path_is_not() {
    let ev = analyze("fixtures/pmtu-blackhole.pcap");
    // tshark: 12 retransmissions and 8 out-of-order segments; 11 ICMP frag-needed.
    assert_eq!(stat(&ev, "tcp.retransmissions"), 12);
    assert_eq!(stat(&ev, "tcp.out_of_order"), 8);
    assert_eq!(stat(&ev, "icmp.unreachable"), 11);
    let f = findings(&ev);
    let bh: Vec<_> = f
        .iter()
        .filter(|f| f["rule"]["name"] == "tcp.pmtu.blackhole")
        .collect();
    assert_eq!(bh.len(), 1, "{f:#?}");
    let b = bh[0];
    // Port 8081: the server's 1448-byte segments, resent 6 times, none acknowledged, and no
    // ICMP reached the server (the router's drop rule).
    assert_eq!(b["destination"]["port"], 8081);
    assert_eq!(b["fallacy"]["id"], 8);
    assert_eq!(b["fallacy"]["evidence"]["segment_bytes"][0], "1448");
    assert_eq!(b["fallacy"]["evidence"]["icmp_frag_needed"][0], "0");
    assert!(b["message"].as_str().unwrap().contains("filtered"));
}

/// A download on client port `port` whose first full-size segment (1,448 bytes) is sent and
/// then resent 4 times without an acknowledgment; the client sends a FIN at the end when
/// `client_fin`, or nothing more.
fn stuck_download(b: &mut observer_tests::PcapBuilder, t0: f64, port: u16, client_fin: bool) {
    use observer_tests::tcp_flags::{ACK, FIN, SYN};
    let (c, s) = (("10.0.0.1", port), ("10.0.0.2", 80));
    b.tcp(t0, c, s, 100, 0, SYN, &[])
        .tcp(t0 + 0.001, s, c, 500, 101, SYN | ACK, &[])
        .tcp(t0 + 0.002, c, s, 101, 501, ACK, b"GET / HTTP/1.1\r\n\r\n")
        .tcp(t0 + 0.003, s, c, 501, 119, ACK, b"HTTP/1.1 200 OK\r\n")
        .tcp(t0 + 0.004, c, s, 119, 518, ACK, &[]);
    let big = [b'x'; 1448];
    for gap in [0.0, 0.2, 0.6, 1.4, 3.0] {
        b.tcp(t0 + 0.01 + gap, s, c, 518, 119, ACK, &big);
    }
    if client_fin {
        // The client gives up: it is alive, and acknowledges only what came before.
        b.tcp(t0 + 5.0, c, s, 119, 518, FIN | ACK, &[]);
    }
}

#[test]
fn a_black_hole_needs_a_receiver_heard_from_after_the_large_segments() {
    let mut b = observer_tests::PcapBuilder::default();
    stuck_download(&mut b, 0.0, 40001, true);
    stuck_download(&mut b, 10.0, 40002, false);
    let ev = observer_tests::analyze_built(&b, "pmtu-silent.pcap");
    let bh = observer_tests::with_rule(&ev, "tcp.pmtu.blackhole");
    assert_eq!(bh.len(), 1, "{bh:#?}");
    assert_eq!(bh[0]["source"]["port"], 40001);
    assert_eq!(bh[0]["fallacy"]["evidence"]["segment_bytes"][0], "1448");
    assert_eq!(stat(&ev, "tcp.pmtu_blackholes_unconfirmed"), 1);
}
