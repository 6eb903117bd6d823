//! Review of the homogeneity analyzer (fallacy 8): findings on healthy traffic and mismatches
//! missed, each built here from packets, the expected values from the construction (every one
//! failed before its fix).

use etherparse::{PacketBuilder, TcpOptionElement};
use observer_tests::tcp_flags::{ACK, FIN, SYN};
use observer_tests::{PcapBuilder, analyze_built, stat, with_rule};

const C: &str = "10.0.0.1";
const S: &str = "10.0.0.2";

/// A server-to-client data segment of `len` bytes acknowledging `ack`, whose capture kept only
/// the Ethernet, IPv4 and TCP headers (a snap length of 54 bytes): the IP header still says
/// how long it was. Its sequence number is written at bytes 38–41 ([`at_seq`]).
fn cut_segment(ack: u32, len: usize) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
        .ipv4([10, 0, 0, 2], [10, 0, 0, 1], 64)
        .tcp(80, 40000, 0, 64240)
        .ack(ack);
    let mut v = Vec::with_capacity(b.size(len));
    b.write(&mut v, &vec![b'x'; len]).expect("frame builds");
    v.truncate(54);
    v
}

/// `frame` (Ethernet, IPv4 without options, TCP) with the sequence number `seq`.
fn at_seq(frame: &mut [u8], seq: u32) -> &[u8] {
    frame[38..42].copy_from_slice(&seq.to_be_bytes());
    frame
}

#[test]
fn a_download_past_2_gib_with_a_few_resent_segments_is_no_black_hole() {
    // A 2.1 GB download on one connection, captured on the server (segmentation offload:
    // 64,000-byte segments) with a snap length of 54 bytes. Early on, one 1,448-byte segment
    // is lost and resent three times before the client acknowledges it; everything else is
    // acknowledged as it comes, and both sides close normally. The first full-size segment
    // (sequence 519) was acknowledged at once: no path-MTU black hole. Before: its
    // acknowledgment was judged at the end, when the client's acknowledgment lay more than
    // 2^31 bytes past it and the wrapping comparison read it as before it, "never
    // acknowledged": a high-severity black hole on a healthy transfer.
    let (c, s) = ((C, 40000), (S, 80));
    let mut b = PcapBuilder::default();
    b.tcp(0.0, c, s, 100, 0, SYN, &[])
        .tcp(0.001, s, c, 500, 101, SYN | ACK, &[])
        .tcp(0.002, c, s, 101, 501, ACK, &[])
        .tcp(0.003, c, s, 101, 501, ACK, b"GET / HTTP/1.1\r\n\r\n")
        .tcp(0.004, s, c, 501, 119, ACK, b"HTTP/1.1 200 OK\r\n")
        .tcp(0.005, s, c, 518, 119, ACK, &[b'x'; 1448])
        .tcp(0.006, c, s, 119, 518 + 1448, ACK, &[]);
    let mut seq: u32 = 518 + 1448;
    // The lost segment, sent and resent three times, then acknowledged.
    for t in [0.007, 0.207, 0.607, 1.407] {
        b.tcp(t, s, c, seq, 119, ACK, &[b'y'; 1448]);
    }
    seq += 1448;
    b.tcp(1.408, c, s, 119, seq, ACK, &[]);
    // The bulk: 33,600 segments of 64,000 bytes, each acknowledged.
    let mut t = 1.5;
    let mut big = cut_segment(119, 64_000);
    for _ in 0..33_600 {
        b.frame(t, at_seq(&mut big, seq));
        seq = seq.wrapping_add(64_000);
        b.tcp(t + 0.000_05, c, s, 119, seq, ACK, &[]);
        t += 0.000_1;
    }
    // More than 2^31 bytes past the first full-size segment.
    assert!(seq.wrapping_sub(518) > 1 << 31);
    b.tcp(t + 0.001, s, c, seq, 119, FIN | ACK, &[])
        .tcp(t + 0.002, c, s, 119, seq.wrapping_add(1), FIN | ACK, &[])
        .tcp(t + 0.003, s, c, seq.wrapping_add(1), 120, ACK, &[]);
    let ev = analyze_built(&b, "pmtu-2gib.pcap");
    let bh = with_rule(&ev, "tcp.pmtu.blackhole");
    assert!(bh.is_empty(), "{bh:#?}");
    assert_eq!(stat(&ev, "tcp.pmtu_blackholes_unconfirmed"), 0);
}

/// A SYN or SYN/ACK carrying an MSS option.
fn syn_with_mss(
    src: [u8; 4],
    dst: [u8; 4],
    ports: (u16, u16),
    seq: u32,
    ack: Option<u32>,
    mss: u16,
) -> Vec<u8> {
    let mut tcp = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src, dst, 64)
        .tcp(ports.0, ports.1, seq, 64240)
        .syn();
    if let Some(a) = ack {
        tcp = tcp.ack(a);
    }
    let tcp = tcp
        .options(&[TcpOptionElement::MaximumSegmentSize(mss)])
        .expect("option fits");
    let mut v = Vec::new();
    tcp.write(&mut v, &[]).expect("frame builds");
    v
}

/// A client data segment of `len` bytes at 101 carrying a timestamp option (12 bytes with
/// padding).
fn data_with_timestamps(len: usize) -> Vec<u8> {
    let tcp = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(40000, 80, 101, 64240)
        .ack(501)
        .options(&[
            TcpOptionElement::Noop,
            TcpOptionElement::Noop,
            TcpOptionElement::Timestamp(1, 2),
        ])
        .expect("options fit");
    let mut v = Vec::new();
    tcp.write(&mut v, &vec![b'x'; len]).expect("frame builds");
    v
}

#[test]
fn an_mss_counts_the_segments_tcp_options_too() {
    // RFC 6691 (and RFC 9293 §3.7.1): the MSS is announced as the MTU less the fixed IP and
    // TCP headers, and a sender carrying TCP options must shorten its data by their length.
    // The server announces 1,360 (a tunnel behind it); the client sends 1,360 bytes of data
    // and a 12-byte timestamp option: its packet is 12 bytes over what the server's path
    // carries. Before: only the data was compared with the MSS, and this was missed.
    let run = |len: usize| {
        let (c, s) = ([10, 0, 0, 1], [10, 0, 0, 2]);
        let mut b = PcapBuilder::default();
        b.frame(0.0, &syn_with_mss(c, s, (40000, 80), 100, None, 1460))
            .frame(
                0.001,
                &syn_with_mss(s, c, (80, 40000), 500, Some(101), 1360),
            )
            .tcp(0.002, (C, 40000), (S, 80), 101, 501, ACK, &[])
            .frame(0.003, &data_with_timestamps(len));
        analyze_built(&b, "mss-options.pcap")
    };
    let ev = run(1360);
    let f = with_rule(&ev, "tcp.mss.exceeded");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(
        f[0]["fallacy"]["evidence"]["detail"],
        "client sent 1360 bytes and 12 bytes of TCP options against an MSS of 1360"
    );
    // 1,348 bytes and the 12-byte option: exactly the MSS, as a sender should do. Nothing.
    let ev = run(1348);
    assert!(with_rule(&ev, "tcp.mss.exceeded").is_empty(), "{ev:#?}");
}

#[test]
fn a_black_hole_is_found_when_the_receiver_announced_jumbo_frames() {
    // The client sits on a 9,000-byte link (MSS 8,960), the server on a 1,500-byte one (MSS
    // 1,460): the server's segments are at most 1,460 bytes (1,448 here), limited by its own
    // link, and full size for this path. Between them a tunnel with a smaller MTU drops them
    // and no ICMP comes back: the first 1,448-byte segment is resent four times, never
    // acknowledged, and the client, still there, gives up with a FIN acknowledging only what
    // came before. A path-MTU black hole. Before: "full size" was measured against the
    // receiver's MSS alone (8,960), so the server's largest segments were never full size and
    // the black hole was missed.
    let (ca, sa) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    let (c, s) = ((C, 40001), (S, 80));
    let mut b = PcapBuilder::default();
    b.frame(0.0, &syn_with_mss(ca, sa, (40001, 80), 100, None, 8960))
        .frame(
            0.001,
            &syn_with_mss(sa, ca, (80, 40001), 500, Some(101), 1460),
        )
        .tcp(0.002, c, s, 101, 501, ACK, b"GET / HTTP/1.1\r\n\r\n")
        .tcp(0.003, s, c, 501, 119, ACK, b"HTTP/1.1 200 OK\r\n")
        .tcp(0.004, c, s, 119, 518, ACK, &[]);
    for gap in [0.0, 0.2, 0.6, 1.4, 3.0] {
        b.tcp(0.01 + gap, s, c, 518, 119, ACK, &[b'x'; 1448]);
    }
    b.tcp(5.0, c, s, 119, 518, FIN | ACK, &[]);
    let ev = analyze_built(&b, "pmtu-jumbo.pcap");
    let bh = with_rule(&ev, "tcp.pmtu.blackhole");
    assert_eq!(bh.len(), 1, "{bh:#?}");
    let e = &bh[0]["fallacy"]["evidence"];
    assert_eq!(e["segment_bytes"][0], "1448", "{e}");
    assert_eq!(
        e["detail"],
        "server segments of 1448 bytes retransmitted 4 times, never acknowledged; no ICMP fragmentation-needed reached the sender: filtered on the way back",
        "{e}"
    );
    assert_eq!(bh[0]["source"]["port"], 40001);
}
