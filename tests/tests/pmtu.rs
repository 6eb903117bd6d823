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
