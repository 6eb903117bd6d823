//! Stop 36's own review: defects found reading other reviews' leftovers (ICMP
//! fragmentation-needed without a next-hop MTU).

use observer_tests::tcp_flags::{ACK, FIN, SYN};
use observer_tests::{PcapBuilder, analyze_built, message, with_rule};

/// An ICMP "fragmentation needed" from router `from` to the server `S`, about the server's
/// 1,448-byte segment to the client, with next-hop MTU `mtu` (0: a router older than
/// RFC 1191, which names none).
fn frag_needed(from: [u8; 4], mtu: u16) -> Vec<u8> {
    use etherparse::{Icmpv4Type, PacketBuilder, icmpv4::DestUnreachableHeader};
    let mut q = Vec::new();
    PacketBuilder::ipv4([10, 0, 0, 2], [10, 0, 0, 1], 64)
        .tcp(80, 40001, 518, 65535)
        .write(&mut q, &[b'x'; 1448])
        .expect("quoted packet builds");
    q.truncate(28);
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(from, [10, 0, 0, 2], 64)
        .icmpv4(Icmpv4Type::DestinationUnreachable(
            DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: mtu },
        ))
        .write(&mut v, &q)
        .expect("ICMP error builds");
    v
}

/// A download whose first full-size segment (1,448 bytes) the server sends and resends 4
/// times, never acknowledged; after each of the first two sends a router answers "fragmentation
/// needed", with next-hop MTU `mtus[0]` then `mtus[1]`; the client, alive, gives up with a FIN.
fn black_hole(mtus: [u16; 2]) -> Vec<serde_json::Value> {
    let mut b = PcapBuilder::default();
    let (c, s) = (("10.0.0.1", 40001), ("10.0.0.2", 80));
    b.tcp(0.0, c, s, 100, 0, SYN, &[])
        .tcp(0.001, s, c, 500, 101, SYN | ACK, &[])
        .tcp(0.002, c, s, 101, 501, ACK, b"GET / HTTP/1.1\r\n\r\n")
        .tcp(0.003, s, c, 501, 119, ACK, b"HTTP/1.1 200 OK\r\n")
        .tcp(0.004, c, s, 119, 518, ACK, &[]);
    let big = [b'x'; 1448];
    for (i, gap) in [0.0, 0.2, 0.6, 1.4, 3.0].into_iter().enumerate() {
        b.tcp(0.01 + gap, s, c, 518, 119, ACK, &big);
        if i < 2 {
            b.frame(0.0105 + gap, &frag_needed([10, 0, 0, 254], mtus[i]));
        }
    }
    b.tcp(5.0, c, s, 119, 518, FIN | ACK, &[]);
    analyze_built(&b, "pmtu-mtu0.pcap")
}

/// The second "fragmentation needed" names no MTU (0), the first named 1,400: the finding
/// must give 1,400, what the path said, not 0 (wrong before: the latest message's 0
/// overwrote it, "next-hop MTU 0"). When none names one, the message says so instead of
/// "next-hop MTU 0", a value no link has.
#[test]
fn a_frag_needed_without_an_mtu_does_not_hide_the_one_given() {
    let ev = black_hole([1400, 0]);
    let bh = with_rule(&ev, "tcp.pmtu.blackhole");
    assert_eq!(bh.len(), 1, "{bh:#?}");
    let m = message(bh[0]);
    assert!(
        m.contains("2 ICMP fragmentation-needed (next-hop MTU 1400)"),
        "{m}"
    );
    let ev = black_hole([0, 0]);
    let bh = with_rule(&ev, "tcp.pmtu.blackhole");
    assert_eq!(bh.len(), 1, "{bh:#?}");
    let m = message(bh[0]);
    assert!(!m.contains("MTU 0"), "{m}");
    assert!(m.contains("no next-hop MTU"), "{m}");
}
