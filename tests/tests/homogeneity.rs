//! Fallacy 8 on packets built here: `tcp.mss.exceeded`, a segment longer than the MSS its
//! receiver announced, and the offload giants it must not report. Expected values follow from
//! the construction.

use etherparse::{PacketBuilder, TcpOptionElement};
use observer_tests::tcp_flags::ACK;
use observer_tests::{PcapBuilder, analyze_built, with_rule};
use serde_json::Value;

const C: &str = "10.0.0.1";
const S: &str = "10.0.0.2";

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

/// A connection whose client announces `client_mss` and server `server_mss`, then one client
/// segment of `len` bytes.
fn mss_connection(client_mss: u16, server_mss: u16, len: usize) -> Vec<Value> {
    let (c, s) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    let mut b = PcapBuilder::default();
    b.frame(0.0, &syn_with_mss(c, s, (40000, 80), 100, None, client_mss))
        .frame(
            0.001,
            &syn_with_mss(s, c, (80, 40000), 500, Some(101), server_mss),
        )
        .tcp(0.002, (C, 40000), (S, 80), 101, 501, ACK, &[])
        .tcp(0.003, (C, 40000), (S, 80), 101, 501, ACK, &vec![b'x'; len]);
    analyze_built(&b, "mss.pcap")
}

#[test]
fn a_segment_over_the_peers_mss_is_found_and_an_offload_giant_is_not() {
    // A middlebox clamped the server's MSS to 1360; the client (MSS 1460) sends 1460 bytes.
    let ev = mss_connection(1460, 1360, 1460);
    let f = with_rule(&ev, "tcp.mss.exceeded");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(
        f[0]["fallacy"]["evidence"]["detail"],
        "client sent 1460 bytes against an MSS of 1360"
    );
    // Both announce 1460 and the client's segment holds 2,739 bytes: more than its own link
    // carries in one packet, so segmentation offload made it (or a mirror copied it before
    // segmentation). Not a finding.
    assert!(with_rule(&mss_connection(1460, 1460, 2739), "tcp.mss.exceeded").is_empty());
    // A clamp past which the capture was taken lowered both SYNs' MSS to 1360, and the
    // client sends 1460 bytes anyway: larger than its own (clamped) MSS, but its 1,500-byte
    // packet crossed a standard link as it is. A finding.
    let f = mss_connection(1360, 1360, 1460);
    assert_eq!(with_rule(&f, "tcp.mss.exceeded").len(), 1, "{f:#?}");
    // Within both MSS: nothing.
    assert!(with_rule(&mss_connection(1460, 1460, 1460), "tcp.mss.exceeded").is_empty());
}

#[test]
fn a_finding_says_when_its_client_list_is_cut_short() {
    // The same clamped server (MSS 1360) overrun by `n` clients, each from its own address:
    // the evidence lists at most 16 clients and says when there were more.
    for (n, truncated) in [(16u8, false), (17, true)] {
        let s = [10, 0, 0, 2];
        let mut b = PcapBuilder::default();
        for i in 0..n {
            let c = [10, 0, 1, i + 1];
            let ca = format!("10.0.1.{}", i + 1);
            let t = f64::from(i);
            b.frame(t, &syn_with_mss(c, s, (40000, 80), 100, None, 1460))
                .frame(
                    t + 0.001,
                    &syn_with_mss(s, c, (80, 40000), 500, Some(101), 1360),
                )
                .tcp(t + 0.002, (&ca, 40000), (S, 80), 101, 501, ACK, &[])
                .tcp(
                    t + 0.003,
                    (&ca, 40000),
                    (S, 80),
                    101,
                    501,
                    ACK,
                    &[b'x'; 1460],
                );
        }
        let ev = analyze_built(&b, "mss-clients.pcap");
        let f = with_rule(&ev, "tcp.mss.exceeded");
        assert_eq!(f.len(), 1, "{f:#?}");
        let e = &f[0]["fallacy"]["evidence"];
        assert_eq!(e["clients"].as_array().map(Vec::len), Some(16), "{e}");
        assert_eq!(e["clients_truncated"], truncated, "{e}");
    }
}

/// A client data segment of `len` bytes carrying a timestamp option (12 bytes with padding).
fn data_with_timestamps(seq: u32, len: usize) -> Vec<u8> {
    let tcp = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(40000, 80, seq, 64240)
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
fn segments_a_receiver_merged_are_not_over_the_mss() {
    // suricata-verify's dump_mtu300.pcap: MSS 260, timestamps on, so a packet carries 248
    // bytes; the capture, taken after the receiver's GRO, holds 496 (two packets) and then
    // 294 bytes (one packet and part of the next). Neither is a sender ignoring the MSS.
    let (c, s) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    let run = |lens: &[usize]| {
        let mut b = PcapBuilder::default();
        b.frame(0.0, &syn_with_mss(c, s, (40000, 80), 100, None, 1460))
            .frame(0.001, &syn_with_mss(s, c, (80, 40000), 500, Some(101), 260))
            .tcp(0.002, (C, 40000), (S, 80), 101, 501, ACK, &[]);
        let mut seq = 101;
        for (i, &len) in lens.iter().enumerate() {
            b.frame(0.003 + i as f64 * 0.001, &data_with_timestamps(seq, len));
            seq += len as u32;
        }
        analyze_built(&b, "gro.pcap")
    };
    assert!(with_rule(&run(&[496, 294]), "tcp.mss.exceeded").is_empty());
    assert!(with_rule(&run(&[294, 496]), "tcp.mss.exceeded").is_empty());
    // 294 bytes alone, with nothing showing merges: a sender over the MSS.
    let ev = run(&[294]);
    let f = with_rule(&ev, "tcp.mss.exceeded");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(
        f[0]["fallacy"]["evidence"]["detail"],
        "client sent 294 bytes against an MSS of 260"
    );
}
