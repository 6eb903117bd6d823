//! Review of reading captures and decoding frames (observer/src/source/, observer/src/decode/,
//! observer/src/defrag.rs), checked against tshark: one TCP connection is built and wrapped in
//! an encapsulation, and what observer counts of it (TCP segments, flows, bytes) must be what
//! the construction says and what tshark decodes of the same file.

use etherparse::PacketBuilder;
use observer_tests::tcp_flags::{ACK, FIN, SYN};
use observer_tests::{PcapBuilder, ScratchFile, have, run, stat, tshark_fields, with_tcp_flags};

const C: [u8; 4] = [10, 0, 0, 1];
const S: [u8; 4] = [10, 0, 0, 2];
/// Ethernet addresses (destination, source) of every frame built here.
const MACS: [u8; 12] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];

/// One IPv4 TCP segment (no link header) between `C:40000` and `S:80`.
fn segment(from_client: bool, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let (src, dst, sp, dp) = if from_client {
        (C, S, 40000, 80)
    } else {
        (S, C, 80, 40000)
    };
    let b = with_tcp_flags(
        PacketBuilder::ipv4(src, dst, 64).tcp(sp, dp, seq, 64240),
        ack,
        flags,
    );
    let mut v = Vec::new();
    b.write(&mut v, payload).expect("segment builds");
    v
}

/// A whole connection, as IP packets: handshake, 5 bytes each way, FIN exchange: 8 segments
/// carrying 10 bytes of data, 330 bytes of IP in all (8 × 40 + 10).
fn connection() -> Vec<Vec<u8>> {
    vec![
        segment(true, 100, 0, SYN, &[]),
        segment(false, 500, 101, SYN | ACK, &[]),
        segment(true, 101, 501, ACK, &[]),
        segment(true, 101, 501, ACK, b"hello"),
        segment(false, 501, 106, ACK, b"world"),
        segment(true, 106, 506, FIN | ACK, &[]),
        segment(false, 506, 107, FIN | ACK, &[]),
        segment(true, 107, 507, ACK, &[]),
    ]
}

const SEGMENTS: u64 = 8;
const IP_BYTES: u64 = 330;

/// An Ethernet frame of EtherType `et` carrying `payload`.
fn ethernet(et: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = MACS.to_vec();
    f.extend_from_slice(&et.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An IPv4 packet from 192.0.2.1 to 192.0.2.2 of protocol `proto` carrying `payload`.
fn outer_ipv4(proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0, 0, 64, proto, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2]);
    let sum = checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip.extend_from_slice(payload);
    ip
}

fn checksum(b: &[u8]) -> u16 {
    let mut s: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// The connection with each IP packet wrapped into a frame by `wrap`, 1 ms apart, as a pcap.
fn wrapped(wrap: impl Fn(&[u8]) -> Vec<u8>) -> ScratchFile {
    let mut b = PcapBuilder::default();
    for (i, ip) in connection().iter().enumerate() {
        b.frame(i as f64 * 0.001, &wrap(ip));
    }
    ScratchFile::new("review-decode.pcap", &b.finish())
}

/// What observer makes of `file`: (TCP segments, TCP flows, IP bytes counted for bandwidth).
fn observed(file: &ScratchFile) -> (u64, u64, u64) {
    let ev = run(&[file.to_path_buf()], &Default::default()).0;
    (
        stat(&ev, "packets.tcp"),
        stat(&ev, "flows.tcp"),
        stat(&ev, "bandwidth.bytes"),
    )
}

/// tshark's TCP segments of `file` from `10.0.0.1:40000` or to it: the oracle that the
/// encapsulation built is a valid one it decodes.
fn tshark_segments(file: &ScratchFile) -> Option<usize> {
    if !have("tshark") {
        eprintln!("tshark not installed: the oracle is skipped");
        return None;
    }
    let out = tshark_fields(
        file.to_str().expect("UTF-8 path"),
        &["tcp.srcport", "tcp.dstport"],
        "tcp.port == 40000",
    );
    Some(out.lines().filter(|l| !l.trim().is_empty()).count())
}

/// Asserts that observer and tshark both see the whole connection in `file`.
fn whole_connection_seen(file: &ScratchFile, what: &str) {
    if let Some(n) = tshark_segments(file) {
        assert_eq!(n as u64, SEGMENTS, "tshark decodes every segment of {what}");
    }
    assert_eq!(
        observed(file),
        (SEGMENTS, 1, IP_BYTES),
        "(TCP segments, TCP flows, IP bytes) of {what}"
    );
}

#[test]
fn erspan_type_one_carries_the_mirrored_frame_right_after_gre() {
    // ERSPAN type I: GRE protocol 0x88be without a sequence number, and no ERSPAN header:
    // the mirrored Ethernet frame follows the 4-byte GRE header (type II sets the sequence
    // bit and puts an 8-byte header first). Wireshark tells them apart by that bit.
    let f = wrapped(|ip| {
        let mut gre = vec![0x00, 0x00, 0x88, 0xbe];
        gre.extend_from_slice(&ethernet(0x0800, ip));
        ethernet(0x0800, &outer_ipv4(47, &gre))
    });
    whole_connection_seen(&f, "ERSPAN type I");
    // Type II, with the sequence bit and its 8-byte header (version 1, session 7), as before.
    let f = wrapped(|ip| {
        let mut gre = vec![0x10, 0x00, 0x88, 0xbe, 0, 0, 0, 1];
        gre.extend_from_slice(&[0x10, 0x00, 0x00, 0x07, 0, 0, 0, 0]);
        gre.extend_from_slice(&ethernet(0x0800, ip));
        ethernet(0x0800, &outer_ipv4(47, &gre))
    });
    whole_connection_seen(&f, "ERSPAN type II");
}

#[test]
fn an_llc_snap_frame_inside_a_vlan_tag_is_ip() {
    // 802.1Q tag, then an 802.3 length instead of an EtherType, then LLC/SNAP naming IPv4:
    // as an untagged 802.3 frame with SNAP is read.
    let f = wrapped(|ip| {
        let mut tagged = vec![0x00, 0x05];
        tagged.extend_from_slice(&((8 + ip.len()) as u16).to_be_bytes());
        tagged.extend_from_slice(&[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00]);
        tagged.extend_from_slice(ip);
        ethernet(0x8100, &tagged)
    });
    whole_connection_seen(&f, "802.1Q + LLC/SNAP");
}

/// [`connection`] over IPv6 (`2001:db8::1` and `::2`), each packet in an Ethernet frame.
fn connection_v6() -> Vec<Vec<u8>> {
    let c: std::net::Ipv6Addr = "2001:db8::1".parse().expect("IPv6 literal");
    let s: std::net::Ipv6Addr = "2001:db8::2".parse().expect("IPv6 literal");
    connection()
        .iter()
        .map(|v4| {
            // The same TCP segment (after the 20-byte IPv4 header), its checksum left as is.
            let from_client = v4[12..16] == C;
            let (src, dst) = if from_client { (c, s) } else { (s, c) };
            let tcp = &v4[20..];
            let mut ip = vec![0x60, 0, 0, 0];
            ip.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
            ip.extend_from_slice(&[6, 64]);
            ip.extend_from_slice(&src.octets());
            ip.extend_from_slice(&dst.octets());
            ip.extend_from_slice(tcp);
            ethernet(0x86dd, &ip)
        })
        .collect()
}

/// A pcap of `frames` (1 ms apart) written with snap length `snap`: each record keeps at most
/// `snap` bytes and the frame's length on the wire.
fn snapped_pcap(frames: &[Vec<u8>], snap: usize) -> ScratchFile {
    let mut out = Vec::new();
    for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, snap as u32, 1] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for (i, f) in frames.iter().enumerate() {
        let kept = &f[..f.len().min(snap)];
        let us = i as u32 * 1000;
        for v in [1_767_225_600, us, kept.len() as u32, f.len() as u32] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(kept);
    }
    ScratchFile::new("review-decode-snapped.pcap", &out)
}

#[test]
fn a_tcp_header_cut_by_the_snap_length_still_names_its_connection() {
    // tcpdump's old default snap length, 68 bytes, keeps 14 of an IPv6 TCP segment's 20
    // header bytes (14 + 40 + 14): the ports (and sequence numbers) are there, the window is
    // not. tshark shows every segment's ports; the connection must be one TCP flow, not
    // eight packets of no flow at all.
    let f = snapped_pcap(&connection_v6(), 68);
    if have("tshark") {
        let ports = tshark_fields(
            f.to_str().expect("UTF-8 path"),
            &["tcp.srcport", "tcp.dstport"],
            "",
        );
        let ports: Vec<&str> = ports.lines().collect();
        assert_eq!(ports.len() as u64, SEGMENTS);
        assert!(
            ports.iter().all(|l| *l == "40000\t80" || *l == "80\t40000"),
            "tshark: {ports:?}"
        );
    }
    let ev = run(&[f.to_path_buf()], &Default::default()).0;
    assert_eq!(stat(&ev, "ip.v6"), SEGMENTS);
    assert_eq!(stat(&ev, "ip.transport_truncated"), SEGMENTS);
    assert_eq!(stat(&ev, "flows.tcp"), 1, "one TCP flow");
}

/// An IPv4 header (no options) from `src` to `dst` of protocol `proto`, identification `id`
/// and flags/fragment-offset field `frag`, followed by `payload`.
fn ipv4_with(src: [u8; 4], dst: [u8; 4], proto: u8, id: u16, frag: u16, payload: &[u8]) -> Vec<u8> {
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&id.to_be_bytes());
    ip.extend_from_slice(&frag.to_be_bytes());
    ip.extend_from_slice(&[64, proto, 0, 0]);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let sum = checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip.extend_from_slice(payload);
    ip
}

#[test]
fn an_icmp_error_quoting_a_later_fragment_names_no_ports() {
    // A UDP datagram 10.0.0.1:5000 -> 10.0.0.2:53 of 1608 bytes in two fragments (the
    // second at offset 1480), then a router's host unreachable, three times, about the
    // second fragment: it quotes that fragment's IP header and first 8 bytes, which are
    // payload (here bytes reading as ports 40001 -> 8080), not a UDP header. tshark shows no
    // ports in the quote; observer made up a flow to port 8080 and a finding about it.
    let payload: Vec<u8> = [0x9c, 0x41, 0x1f, 0x90].repeat(400);
    let mut udp = 5000u16.to_be_bytes().to_vec();
    udp.extend_from_slice(&53u16.to_be_bytes());
    udp.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(&payload);
    let first = ipv4_with(C, S, 17, 9, 0x2000, &udp[..1480]);
    let second = ipv4_with(C, S, 17, 9, 1480 / 8, &udp[1480..]);
    let mut b = PcapBuilder::default();
    b.frame(0.0, &ethernet(0x0800, &first))
        .frame(0.0001, &ethernet(0x0800, &second));
    for i in 0..3 {
        let mut icmp = vec![3, 1, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&second[..28]);
        let sum = checksum(&icmp);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        let ip = ipv4_with([192, 0, 2, 254], C, 1, 100 + i, 0, &icmp);
        b.frame(0.001 + f64::from(i) * 0.5, &ethernet(0x0800, &ip));
    }
    let f = ScratchFile::new("review-decode-icmp-fragment.pcap", &b.finish());
    if have("tshark") {
        let quoted = tshark_fields(
            f.to_str().expect("UTF-8 path"),
            &["udp.srcport", "udp.dstport"],
            "icmp",
        );
        assert_eq!(quoted.lines().count(), 3, "three ICMP errors");
        assert!(
            quoted.lines().all(|l| l.trim().is_empty()),
            "tshark reads no ports in a later fragment's quote: {quoted:?}"
        );
    }
    let ev = run(&[f.to_path_buf()], &Default::default()).0;
    assert_eq!(stat(&ev, "icmp.unreachable"), 3);
    assert_eq!(
        stat(&ev, "icmp.unreachable_unquoted"),
        3,
        "the quotes name no flow"
    );
    assert_eq!(
        stat(&ev, "flows.udp"),
        1,
        "only 10.0.0.1:5000 -> 10.0.0.2:53"
    );
    let made_up: Vec<_> = ev
        .iter()
        .filter(|e| e["destination"]["port"] == 8080 || e["source"]["port"] == 40001)
        .collect();
    assert!(
        made_up.is_empty(),
        "events about made-up ports: {made_up:#?}"
    );
}
