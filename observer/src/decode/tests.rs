//! Decoder tests on frames built by construction (etherparse's `PacketBuilder` plus hand-made
//! link headers): every expected value below is what the frame was built with.

use super::*;
use crate::source::{LinkType, Packet};
use crate::time::Timestamp;
use etherparse::PacketBuilder;

const SRC4: [u8; 4] = [10, 0, 0, 1];
const DST4: [u8; 4] = [10, 0, 0, 2];

fn pkt(link: LinkType, data: &[u8]) -> Packet<'_> {
    Packet {
        ts: Timestamp(0),
        link,
        data,
        wire_len: data.len() as u32,
        interface: 0,
        segments: 1,
    }
}

/// IPv4/TCP (no link header) with 100 payload bytes.
fn ipv4_tcp(payload_len: usize) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(SRC4, DST4, 64)
        .tcp(40000, 80, 1000, 5000)
        .ack(77)
        .psh()
        .write(&mut v, &vec![b'x'; payload_len])
        .unwrap();
    v
}

fn eth(et: u16, inner: &[u8]) -> Vec<u8> {
    let mut v = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    v.extend_from_slice(&et.to_be_bytes());
    v.extend_from_slice(inner);
    v
}

fn expect_tcp<'a>(f: Frame<'a>) -> (IpPacket<'a>, TcpSegment<'a>) {
    match f {
        Frame::Ip(ip) => match ip.transport {
            Transport::Tcp(s) => (ip, s),
            other => panic!("expected TCP, got {other:?}"),
        },
        other => panic!("expected IP, got {other:?}"),
    }
}

#[test]
fn ethernet_ipv4_tcp_fields_are_the_built_ones() {
    let frame = eth(0x0800, &ipv4_tcp(100));
    let (ip, s) = expect_tcp(decode(&pkt(LinkType::ETHERNET, &frame)));
    assert_eq!(ip.src, IpAddr::from(SRC4));
    assert_eq!(ip.dst, IpAddr::from(DST4));
    assert_eq!(ip.ip_len, 20 + 20 + 100);
    assert_eq!(
        (s.sport, s.dport, s.seq, s.ack, s.window),
        (40000, 80, 1000, 77, 5000)
    );
    assert!(s.has(tcp_flags::ACK | tcp_flags::PSH));
    assert!(!s.has(tcp_flags::SYN));
    assert_eq!(s.payload.len(), 100);
    assert_eq!(s.seg_len, 100);
    assert!(!ip.truncated && !ip.fragment);
}

#[test]
fn snapped_frame_keeps_wire_lengths() {
    let full = eth(0x0800, &ipv4_tcp(100));
    let cut = &full[..14 + 40 + 10];
    let snapped = Packet {
        wire_len: full.len() as u32,
        ..pkt(LinkType::ETHERNET, cut)
    };
    let (ip, s) = expect_tcp(decode(&snapped));
    assert!(ip.truncated);
    assert_eq!(s.payload.len(), 10);
    assert_eq!(
        s.seg_len, 100,
        "sequence analysis needs the on-the-wire length"
    );
    assert_eq!(ip.ip_len, 140);
}

#[test]
fn tcp_header_cut_by_snaplen_keeps_its_ports() {
    let full = eth(0x0800, &ipv4_tcp(0));
    let cut = &full[..14 + 20 + 8];
    let snapped = Packet {
        wire_len: full.len() as u32,
        ..pkt(LinkType::ETHERNET, cut)
    };
    match decode(&snapped) {
        Frame::Ip(ip) => assert!(matches!(
            ip.transport,
            Transport::TcpPorts {
                sport: 40000,
                dport: 80
            }
        )),
        other => panic!("{other:?}"),
    }
    // The same bytes as the whole frame: an IP length claiming more than was on the wire is
    // clamped to it, too short for a TCP header.
    match decode(&pkt(LinkType::ETHERNET, cut)) {
        Frame::Ip(ip) => assert!(matches!(ip.transport, Transport::Truncated)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn tiny_first_fragment_still_names_the_ports() {
    // A first fragment carrying only 8 bytes of the TCP header (MF set, offset 0).
    let mut ip = ipv4_tcp(0);
    ip.truncate(28);
    ip[2..4].copy_from_slice(&28u16.to_be_bytes());
    ip[6] = 0x20;
    match decode(&pkt(LinkType::RAW, &ip)) {
        Frame::Ip(p) => match super::first_fragment(&p).transport {
            Transport::TcpPorts { sport, dport } => assert_eq!((sport, dport), (40000, 80)),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

#[test]
fn ip_length_shorter_than_its_header_is_bogus_but_zero_is_tso() {
    let mut ip = ipv4_tcp(10);
    ip[2..4].copy_from_slice(&19u16.to_be_bytes());
    assert!(matches!(
        decode(&pkt(LinkType::RAW, &ip)),
        Frame::Undecodable(Undecodable::BadIp)
    ));
    ip[2..4].copy_from_slice(&0u16.to_be_bytes());
    let (p, s) = expect_tcp(decode(&pkt(LinkType::RAW, &ip)));
    assert_eq!(p.ip_len, 50);
    assert_eq!(s.seg_len, 10);
}

#[test]
fn tunnel_carrying_arp_is_still_outer_udp() {
    let arp = eth(0x0806, &[0u8; 28]);
    let mut vx = vec![0x08, 0, 0, 0, 0, 0, 0x2a, 0];
    vx.extend_from_slice(&arp);
    let mut outer = Vec::new();
    PacketBuilder::ipv4([192, 168, 0, 1], [192, 168, 0, 2], 64)
        .udp(50000, 4789)
        .write(&mut outer, &vx)
        .unwrap();
    match decode(&pkt(LinkType::RAW, &outer)) {
        Frame::Ip(ip) => match ip.transport {
            Transport::Udp(u) => assert_eq!(u.dport, 4789),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

#[test]
fn gtp_u_inner_packet_is_decoded() {
    let inner = ipv4_tcp(3);
    let mut gtp = vec![0x30, 0xff];
    gtp.extend_from_slice(&(inner.len() as u16).to_be_bytes());
    gtp.extend_from_slice(&[0, 0, 0, 1]);
    gtp.extend_from_slice(&inner);
    let mut outer = Vec::new();
    PacketBuilder::ipv4([172, 16, 0, 1], [172, 16, 0, 2], 64)
        .udp(2152, 2152)
        .write(&mut outer, &gtp)
        .unwrap();
    let (ip, s) = expect_tcp(decode(&pkt(LinkType::RAW, &outer)));
    assert_eq!(ip.src, IpAddr::from(SRC4));
    assert_eq!(s.payload.len(), 3);
    assert_eq!(ip.outer.map(|o| o.dport), Some(2152));
}

#[test]
fn ip_length_beyond_the_wire_length_is_clamped() {
    // The IP header claims 140 bytes but the frame was only 14 + 60 bytes on the wire.
    let full = eth(0x0800, &ipv4_tcp(100));
    let short = &full[..14 + 60];
    let (ip, s) = expect_tcp(decode(&pkt(LinkType::ETHERNET, short)));
    assert_eq!(ip.ip_len, 60);
    assert_eq!(s.seg_len, 20);
}

#[test]
fn ethernet_padding_is_not_payload() {
    // A bare ACK is padded to the 60-byte Ethernet minimum.
    let mut frame = eth(0x0800, &ipv4_tcp(0));
    frame.resize(60, 0);
    let (_, s) = expect_tcp(decode(&pkt(LinkType::ETHERNET, &frame)));
    assert_eq!(s.payload.len(), 0);
    assert_eq!(s.seg_len, 0);
}

#[test]
fn vlan_and_qinq_are_stripped() {
    let ip = ipv4_tcp(5);
    let mut inner = vec![0x00, 0x64, 0x08, 0x00];
    inner.extend_from_slice(&ip);
    let single = eth(0x8100, &inner);
    expect_tcp(decode(&pkt(LinkType::ETHERNET, &single)));
    let mut outer = vec![0x00, 0x0a, 0x81, 0x00];
    outer.extend_from_slice(&inner);
    let qinq = eth(0x88a8, &outer);
    let (_, s) = expect_tcp(decode(&pkt(LinkType::ETHERNET, &qinq)));
    assert_eq!(s.payload.len(), 5);
}

#[test]
fn linux_cooked_v1_and_v2() {
    let ip = ipv4_tcp(3);
    let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00];
    sll.extend_from_slice(&ip);
    expect_tcp(decode(&pkt(LinkType::LINUX_SLL, &sll)));
    let mut sll2 = vec![
        0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0,
    ];
    sll2.extend_from_slice(&ip);
    expect_tcp(decode(&pkt(LinkType::LINUX_SLL2, &sll2)));
}

#[test]
fn null_loopback_in_either_byte_order_and_raw_ip() {
    let ip = ipv4_tcp(0);
    for fam in [2u32.to_le_bytes(), 2u32.to_be_bytes()] {
        let mut f = fam.to_vec();
        f.extend_from_slice(&ip);
        expect_tcp(decode(&pkt(LinkType::NULL, &f)));
    }
    let mut lo = 2u32.to_be_bytes().to_vec();
    lo.extend_from_slice(&ip);
    expect_tcp(decode(&pkt(LinkType::LOOP, &lo)));
    for lt in [LinkType::RAW, LinkType::IPV4, LinkType::RAW_12] {
        expect_tcp(decode(&pkt(lt, &ip)));
    }
}

#[test]
fn ipv6_with_extension_header_reaches_udp() {
    let mut v = Vec::new();
    PacketBuilder::ipv6([0xfd; 16], [0xfe; 16], 64)
        .udp(5353, 53)
        .write(&mut v, b"query")
        .unwrap();
    // Insert an 8-byte hop-by-hop header: next header UDP (17), length 0, PadN padding.
    let mut with_ext = v[..40].to_vec();
    with_ext[6] = 0; // next header: hop-by-hop
    let plen = u16::from_be_bytes([v[4], v[5]]) + 8;
    with_ext[4..6].copy_from_slice(&plen.to_be_bytes());
    with_ext.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
    with_ext.extend_from_slice(&v[40..]);
    match decode(&pkt(LinkType::IPV6, &with_ext)) {
        Frame::Ip(ip) => {
            assert_eq!(ip.ip_len as usize, with_ext.len());
            match ip.transport {
                Transport::Udp(u) => {
                    assert_eq!((u.sport, u.dport), (5353, 53));
                    assert_eq!(u.payload, b"query");
                }
                other => panic!("{other:?}"),
            }
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn ipv4_fragments_say_where_their_bytes_go() {
    // A 40-byte TCP payload behind a 20-byte TCP header: 60 bytes of IP payload, id 0x1234.
    let mut first = ipv4_tcp(40);
    first[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    first[6] = 0x20; // MF, offset 0
    match decode(&pkt(LinkType::RAW, &first)) {
        Frame::Ip(ip) => {
            assert!(ip.fragment);
            let Transport::Fragment(part) = ip.transport else {
                panic!("{:?}", ip.transport)
            };
            assert_eq!(
                (
                    part.id,
                    part.offset,
                    part.more,
                    part.wire_len,
                    part.header_len
                ),
                (0x1234, 0, true, 60, 20)
            );
            assert_eq!(part.data, &first[20..]);
            // Analyzed alone, it names its connection.
            assert!(matches!(
                super::first_fragment(&ip).transport,
                Transport::Tcp(TcpSegment {
                    sport: 40000,
                    dport: 80,
                    ..
                })
            ));
        }
        other => panic!("{other:?}"),
    }
    let mut later = ipv4_tcp(40);
    later[6] = 0x00;
    later[7] = 0x05; // offset 5 * 8 bytes, last fragment
    match decode(&pkt(LinkType::RAW, &later)) {
        Frame::Ip(ip) => {
            assert!(ip.fragment);
            let Transport::Fragment(part) = ip.transport else {
                panic!("{:?}", ip.transport)
            };
            assert_eq!((part.offset, part.more), (40, false));
            // Not a first fragment: nothing to name alone.
            assert!(matches!(
                super::first_fragment(&ip).transport,
                Transport::Fragment(_)
            ));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn icmp_unreachable_names_the_quoted_flow() {
    let mut quoted = Vec::new();
    PacketBuilder::ipv4([10, 0, 0, 9], [10, 0, 0, 53], 64)
        .udp(33000, 53)
        .write(&mut quoted, b"dns")
        .unwrap();
    let mut v = Vec::new();
    PacketBuilder::ipv4([10, 0, 0, 53], [10, 0, 0, 9], 64)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Port,
        ))
        .write(&mut v, &quoted)
        .unwrap();
    match decode(&pkt(LinkType::RAW, &v)) {
        Frame::Ip(ip) => match ip.transport {
            Transport::Icmp(m) => {
                assert_eq!((m.icmp_type, m.code), (3, 3));
                assert_eq!(
                    m.quoted,
                    Some(QuotedFlow {
                        src: "10.0.0.9".parse().unwrap(),
                        dst: "10.0.0.53".parse().unwrap(),
                        proto: 17,
                        sport: 33000,
                        dport: 53,
                    })
                );
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

#[test]
fn vxlan_inner_tcp_with_outer_udp_recorded() {
    let inner = eth(0x0800, &ipv4_tcp(7));
    let mut vx = vec![0x08, 0, 0, 0, 0, 0, 0x2a, 0];
    vx.extend_from_slice(&inner);
    let mut outer = Vec::new();
    PacketBuilder::ipv4([192, 168, 0, 1], [192, 168, 0, 2], 64)
        .udp(50000, 4789)
        .write(&mut outer, &vx)
        .unwrap();
    let (ip, s) = expect_tcp(decode(&pkt(LinkType::RAW, &outer)));
    assert_eq!(ip.tunnel_depth, 1);
    assert_eq!(s.payload.len(), 7);
    let o = ip.outer.expect("outer UDP recorded");
    assert_eq!((o.sport, o.dport), (50000, 4789));
    assert_eq!(o.src, IpAddr::from([192, 168, 0, 1]));
}

#[test]
fn gre_and_ip_in_ip_are_unwrapped() {
    let inner = ipv4_tcp(1);
    let mut gre = vec![0, 0, 0x08, 0x00];
    gre.extend_from_slice(&inner);
    let mut outer = Vec::new();
    PacketBuilder::ipv4([1, 1, 1, 1], [2, 2, 2, 2], 64)
        .write(&mut outer, etherparse::IpNumber(47), &gre)
        .unwrap();
    let (ip, _) = expect_tcp(decode(&pkt(LinkType::RAW, &outer)));
    assert_eq!(ip.src, IpAddr::from(SRC4));
    assert_eq!(ip.tunnel_depth, 1);
    let mut ipip = Vec::new();
    PacketBuilder::ipv4([1, 1, 1, 1], [2, 2, 2, 2], 64)
        .write(&mut ipip, etherparse::IpNumber(4), &inner)
        .unwrap();
    let (ip, _) = expect_tcp(decode(&pkt(LinkType::RAW, &ipip)));
    assert_eq!(ip.dst, IpAddr::from(DST4));
}

#[test]
fn mpls_and_pppoe_are_stripped() {
    let ip = ipv4_tcp(2);
    let mut mpls = vec![0x00, 0x01, 0x01, 0x40]; // label 16, bottom of stack, TTL 64
    mpls.extend_from_slice(&ip);
    expect_tcp(decode(&pkt(LinkType::ETHERNET, &eth(0x8847, &mpls))));
    let mut pppoe = vec![0x11, 0x00, 0x00, 0x01];
    pppoe.extend_from_slice(&((ip.len() + 2) as u16).to_be_bytes());
    pppoe.extend_from_slice(&[0x00, 0x21]);
    pppoe.extend_from_slice(&ip);
    expect_tcp(decode(&pkt(LinkType::ETHERNET, &eth(0x8864, &pppoe))));
}

#[test]
fn arp_is_not_ip_and_unknown_links_are_reported() {
    let arp = eth(0x0806, &[0u8; 28]);
    assert!(matches!(
        decode(&pkt(LinkType::ETHERNET, &arp)),
        Frame::NotIp(0x0806)
    ));
    assert!(matches!(
        decode(&pkt(LinkType(147), &[1, 2, 3])),
        Frame::UnsupportedLink(LinkType(147))
    ));
}

#[test]
fn garbage_never_panics_and_is_classified() {
    assert!(matches!(
        decode(&pkt(LinkType::ETHERNET, &[1, 2, 3])),
        Frame::Undecodable(Undecodable::LinkTruncated)
    ));
    assert!(matches!(
        decode(&pkt(LinkType::ETHERNET, &eth(0x0800, &[0x45, 0, 0]))),
        Frame::Undecodable(Undecodable::BadIp)
    ));
    // Every prefix of a valid frame decodes to something without panicking.
    let frame = eth(0x0800, &ipv4_tcp(30));
    for n in 0..frame.len() {
        let _ = decode(&pkt(LinkType::ETHERNET, &frame[..n]));
        let _ = decode(&pkt(LinkType::LINUX_SLL, &frame[..n]));
        let _ = decode(&pkt(LinkType(127), &frame[..n]));
    }
}

#[test]
fn direct_ipv4_reading_agrees_with_etherparse() {
    // Two million IPv4-looking headers with random fields (header lengths, total lengths
    // around the captured length, fragment bits, the authentication-header protocol) and
    // random snap cuts: wherever the direct reading answers, it answers what etherparse's lax
    // slicing does, slice for slice.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut taken, mut declined) = (0u32, 0u32);
    let mut buf = [0u8; 96];
    for _ in 0..2_000_000 {
        let len = (next() % 97) as usize;
        for b in buf.iter_mut() {
            *b = next() as u8;
        }
        let r = next();
        if r % 10 != 0 {
            buf[0] = 0x40 | (buf[0] & 0x0f);
        }
        if r % 7 == 0 {
            buf[9] = 51;
        }
        // Total lengths near the captured one are the interesting ones.
        let total = match (r >> 8) % 4 {
            0 => 0,
            1 => len as u16,
            2 => (len as u16).saturating_sub((r >> 16) as u16 % 24),
            _ => len as u16 + (r >> 16) as u16 % 24,
        };
        buf[2..4].copy_from_slice(&total.to_be_bytes());
        let cut = ((r >> 32) % 64) as usize;
        let data = &buf[..len];
        assert!(ipv4_fast_path_agrees(data, cut), "{data:02x?} cut {cut}");
        if ipv4(data, cut).is_some() {
            taken += 1;
        } else {
            declined += 1;
        }
    }
    assert!(taken > 500_000 && declined > 500_000, "{taken} {declined}");
}

#[test]
fn a_fragments_bytes_start_right_after_the_fragment_header() {
    // IPv6: fixed header (next: fragment), fragment header (next: destination options,
    // offset 0, more fragments, id 0x0a0b0c0d), then the fragmentable part: an 8-byte
    // destination-options header (next: UDP) and the start of a UDP datagram. etherparse reads
    // past the fragment header into the options; the fragment's bytes must not skip them.
    let frag_part: Vec<u8> = [
        vec![17, 0, 1, 4, 0, 0, 0, 0],        // destination options, PadN
        vec![0x9c, 0x40, 0, 53, 0, 24, 0, 0], // UDP 40000 → 53
        vec![0xab; 8],
    ]
    .concat();
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&((8 + frag_part.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[44, 64]);
    p.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    p.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    p.extend_from_slice(&[60, 0, 0x00, 0x01, 0x0a, 0x0b, 0x0c, 0x0d]);
    p.extend_from_slice(&frag_part);
    match decode(&pkt(LinkType::RAW, &p)) {
        Frame::Ip(ip) => {
            let Transport::Fragment(part) = ip.transport else {
                panic!("{:?}", ip.transport)
            };
            assert_eq!(ip.proto, 60, "the protocol after the fragment header");
            assert_eq!(
                (part.id, part.offset, part.more, part.header_len),
                (0x0a0b_0c0d, 0, true, 48)
            );
            assert_eq!(part.data, &frag_part[..]);
            assert_eq!(part.wire_len, frag_part.len() as u32);
        }
        other => panic!("{other:?}"),
    }

    // IPv4 with an authentication header (protocol 51), a first fragment: its bytes start
    // after the IP header, the authentication header among them.
    let mut v4 = ipv4_tcp(40);
    v4[9] = 51;
    v4[6] = 0x20;
    match decode(&pkt(LinkType::RAW, &v4)) {
        Frame::Ip(ip) => {
            let Transport::Fragment(part) = ip.transport else {
                panic!("{:?}", ip.transport)
            };
            assert_eq!(ip.proto, 51);
            assert_eq!(part.header_len, 20);
            assert_eq!(part.data, &v4[20..]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn extension_headers_inside_a_fragmented_datagram_are_walked_once_it_is_whole() {
    // IPv6: a fragment header (next: destination options), then the fragmentable part: an
    // 8-byte destination-options header (next: UDP) and a UDP datagram 40000 → 53 with 8
    // payload bytes.
    let udp_payload = [0xab; 8];
    let frag_part: Vec<u8> = [
        vec![17, 0, 1, 4, 0, 0, 0, 0],        // destination options, PadN
        vec![0x9c, 0x40, 0, 53, 0, 16, 0, 0], // UDP 40000 → 53, length 16
        udp_payload.to_vec(),
    ]
    .concat();
    let v6 = |more: bool| {
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&((8 + frag_part.len()) as u16).to_be_bytes());
        p.extend_from_slice(&[44, 64]);
        p.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        p.extend_from_slice(&[60, 0, 0, u8::from(more), 0, 0, 0, 9]);
        p.extend_from_slice(&frag_part);
        p
    };
    let udp_53 = |f: Frame<'_>| match f {
        Frame::Ip(ip) => match ip.transport {
            Transport::Udp(u) => {
                assert_eq!(ip.proto, 17);
                assert_eq!((u.sport, u.dport), (40000, 53));
                u.payload.to_vec()
            }
            other => panic!("expected UDP, got {other:?}"),
        },
        other => panic!("expected IP, got {other:?}"),
    };
    // An atomic fragment (offset 0, no more) is a whole packet already.
    assert_eq!(udp_53(decode(&pkt(LinkType::RAW, &v6(false)))), udp_payload);
    let bytes = v6(true);
    let Frame::Ip(ip) = decode(&pkt(LinkType::RAW, &bytes)) else {
        panic!("not IP")
    };
    let Transport::Fragment(part) = ip.transport else {
        panic!("{:?}", ip.transport)
    };
    let whole = reassembled(&ip, part.header_len, part.data);
    assert_eq!(udp_53(whole), udp_payload);
    assert_eq!(udp_53(Frame::Ip(first_fragment(&ip))), udp_payload);

    // IPv4 with an authentication header (next: TCP, 24 bytes: length field 4) in one
    // fragment: the TCP segment after it.
    let tcp = ipv4_tcp(10);
    let mut v4 = tcp[..20].to_vec();
    v4[9] = 51;
    v4[2..4].copy_from_slice(&((20 + 24 + tcp.len() - 20) as u16).to_be_bytes());
    v4[10..12].copy_from_slice(&[0, 0]);
    v4.extend_from_slice(&[6, 4, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);
    v4.extend_from_slice(&[0x5a; 12]);
    v4.extend_from_slice(&tcp[20..]);
    v4[6] = 0x20; // more fragments
    let Frame::Ip(ip) = decode(&pkt(LinkType::RAW, &v4)) else {
        panic!("not IP")
    };
    let Transport::Fragment(part) = ip.transport else {
        panic!("{:?}", ip.transport)
    };
    let (whole, seg) = expect_tcp(reassembled(&ip, part.header_len, part.data));
    assert_eq!(whole.proto, 6);
    assert_eq!((seg.sport, seg.dport, seg.payload.len()), (40000, 80, 10));
    // An extension header cut short leaves the protocol as it was: nothing is read as TCP.
    let cut = reassembled(&ip, part.header_len, &part.data[..16]);
    let Frame::Ip(cut) = cut else {
        panic!("not IP")
    };
    assert_eq!(cut.proto, 51);
    assert!(
        !matches!(cut.transport, Transport::Tcp(_)),
        "{:?}",
        cut.transport
    );
}
