//! Frame decoding: zero-copy, allocation-free, truncation-tolerant.
//!
//! The link layer, VLAN tags and tunnels are walked here; IPv4/IPv6 headers (with extension
//! headers and lax length checks) are sliced by `etherparse`; the transport headers are read
//! directly from the IP payload so that a frame cut by the snap length still yields its ports,
//! flags and sequence numbers. Lengths used for TCP sequence analysis and byte counts come from
//! the IP header (what was on the wire), not from the captured length.
//!
//! An IP fragment comes out as [`Transport::Fragment`], with where its bytes belong; the
//! pipeline reassembles the datagram ([`crate::defrag`]) and decodes its transport with
//! [`reassembled`], or, when that cannot be done, the first fragment's ports with
//! [`first_fragment`]. Not done: checksum verification (captures taken on the sending host
//! carry offloaded, invalid checksums).

mod link;

use crate::source::{LinkType, Packet};
use etherparse::{LaxIpSlice, LaxIpv6Slice};
use std::net::IpAddr;

pub use link::ether_type;

/// TCP flag bits as they appear in the header's flags byte.
pub mod tcp_flags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronise sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push function.
    pub const PSH: u8 = 0x08;
    /// Acknowledgment field is significant.
    pub const ACK: u8 = 0x10;
    /// Urgent pointer field is significant.
    pub const URG: u8 = 0x20;
}

/// A TCP segment's header fields and payload.
#[derive(Clone, Copy, Debug)]
pub struct TcpSegment<'a> {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Flags byte (see [`tcp_flags`]).
    pub flags: u8,
    /// Advertised window (unscaled).
    pub window: u16,
    /// Option bytes that were captured.
    pub options: &'a [u8],
    /// Payload bytes that were captured (may be shorter than `seg_len`).
    pub payload: &'a [u8],
    /// Payload length on the wire, from the IP header.
    pub seg_len: u32,
    /// The checksum field, as captured (not verified: a sender's offload leaves it partial).
    pub checksum: u16,
}

/// The top bit of [`TcpSegment::digest`]: the packet carried an IPv4 identification.
pub const IDENTIFIED: u32 = 1 << 31;

impl TcpSegment<'_> {
    /// True if every bit of `mask` is set.
    pub fn has(&self, mask: u8) -> bool {
        self.flags & mask == mask
    }

    /// A digest of everything that tells this segment from another of its direction: the
    /// IPv4 identification `ident` of its packet, sequence, acknowledgment, flags, window,
    /// length, checksum and options (timestamps). Two frames with the same digest moments
    /// apart, with nothing from the other side between them, are copies of one packet (see
    /// [`crate::flow::tcp::TcpConn::is_copy`]); a retransmission can be identical (IPv6, an
    /// identification left 0, a timestamp clock that has not ticked), but then it follows the
    /// other side's duplicate ACKs or a timeout. `None` for a bare ACK or RST without an
    /// identification (IPv6, or a stack that leaves it 0): repeated ACKs can be identical to
    /// the byte, so a copy cannot be told.
    pub fn digest(&self, ident: u16) -> Option<u32> {
        use std::hash::{BuildHasher, Hasher};
        if ident == 0 && self.seg_len == 0 && self.flags & (tcp_flags::SYN | tcp_flags::FIN) == 0 {
            return None;
        }
        let mut h = rustc_hash::FxBuildHasher.build_hasher();
        h.write_u16(ident);
        h.write_u32(self.seq);
        h.write_u32(self.ack);
        h.write_u32(self.seg_len);
        h.write_u16(self.window);
        h.write_u16(self.checksum);
        h.write_u8(self.flags);
        h.write(self.options);
        Some(folded_digest(h.finish(), ident))
    }

    /// The options this segment carries (parsed on demand: only SYNs need it on the hot path).
    pub fn parse_options(&self) -> TcpOptions {
        TcpOptions::parse(self.options)
    }
}

/// TCP options of interest (RFC 9293, 7323, 2018).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpOptions {
    /// Maximum segment size.
    pub mss: Option<u16>,
    /// Window scale shift count.
    pub wscale: Option<u8>,
    /// SACK permitted.
    pub sack_permitted: bool,
    /// SACK blocks present.
    pub sack: bool,
    /// Timestamps present.
    pub timestamps: bool,
}

impl TcpOptions {
    /// Parses option bytes; malformed options end the walk (what was read is kept).
    pub fn parse(mut o: &[u8]) -> TcpOptions {
        let mut r = TcpOptions::default();
        while let Some(&kind) = o.first() {
            match kind {
                0 => break,
                1 => {
                    o = &o[1..];
                    continue;
                }
                _ => {}
            }
            let Some(&len) = o.get(1) else { break };
            let len = usize::from(len);
            if len < 2 || len > o.len() {
                break;
            }
            let v = &o[2..len];
            match (kind, v.len()) {
                (2, 2) => r.mss = Some(u16::from_be_bytes([v[0], v[1]])),
                (3, 1) => r.wscale = Some(v[0].min(14)),
                (4, 0) => r.sack_permitted = true,
                (5, _) => r.sack = true,
                (8, 8) => r.timestamps = true,
                _ => {}
            }
            o = &o[len..];
        }
        r
    }
}

/// A UDP datagram.
#[derive(Clone, Copy, Debug)]
pub struct UdpDatagram<'a> {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// The UDP checksum (0: none, IPv4 only).
    pub checksum: u16,
    /// Captured payload.
    pub payload: &'a [u8],
}

impl UdpDatagram<'_> {
    /// What tells this datagram from another of its flow, for telling a copy of one
    /// (captured twice) from one sent again: the IP identification `ident` (0 when there is
    /// none: IPv6, or a stack that leaves it 0; the top bit [`IDENTIFIED`] says which), the
    /// checksum, the length and the payload's first 32 bytes (a DNS query sent again keeps its
    /// id and question: the same bytes). See [`crate::flow::tcp::TcpConn::is_datagram_copy`].
    pub fn digest(&self, ident: u16) -> u32 {
        use std::hash::{BuildHasher, Hasher};
        let mut h = rustc_hash::FxBuildHasher.build_hasher();
        h.write_u16(ident);
        h.write_u16(self.checksum);
        h.write_usize(self.payload.len());
        h.write(&self.payload[..self.payload.len().min(32)]);
        folded_digest(h.finish(), ident)
    }
}

/// A frame's 64-bit hash folded to 31 bits, with the top bit [`IDENTIFIED`] saying whether
/// its packet carried an IPv4 identification `ident`: a copy with one needs no other proof
/// (see [`crate::flow::tcp::TcpConn::is_copy`]).
fn folded_digest(h: u64, ident: u16) -> u32 {
    let d = ((h ^ (h >> 32)) as u32) & !IDENTIFIED;
    if ident != 0 { d | IDENTIFIED } else { d }
}

/// An ICMP or ICMPv6 message.
#[derive(Clone, Copy, Debug)]
pub struct IcmpMessage<'a> {
    /// ICMPv6 rather than ICMPv4.
    pub v6: bool,
    /// Message type.
    pub icmp_type: u8,
    /// Message code.
    pub code: u8,
    /// Bytes after the 4-byte type/code/checksum header.
    pub rest: &'a [u8],
    /// For error messages (unreachable, time exceeded, …): the flow of the packet they quote.
    pub quoted: Option<QuotedFlow>,
    /// Next-hop MTU of an ICMPv4 "fragmentation needed" or ICMPv6 "packet too big", else 0.
    pub mtu: u16,
}

/// The endpoints of the packet an ICMP error message quotes (the packet that failed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotedFlow {
    /// Source of the failed packet.
    pub src: IpAddr,
    /// Destination of the failed packet.
    pub dst: IpAddr,
    /// Its IP protocol.
    pub proto: u8,
    /// Its source port (0 when not TCP/UDP).
    pub sport: u16,
    /// Its destination port (0 when not TCP/UDP).
    pub dport: u16,
}

/// The transport layer of an IP packet.
#[derive(Clone, Copy, Debug)]
pub enum Transport<'a> {
    /// TCP.
    Tcp(TcpSegment<'a>),
    /// UDP.
    Udp(UdpDatagram<'a>),
    /// ICMP / ICMPv6.
    Icmp(IcmpMessage<'a>),
    /// An IP fragment (first or not): the transport is decoded once the datagram is whole.
    Fragment(FragmentPart<'a>),
    /// A TCP header cut short (first fragment or snap length): only the ports are known.
    TcpPorts {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
    },
    /// Transport header cut by the snap length before the ports (a TCP header cut after
    /// them is [`Transport::TcpPorts`]), or one an IP length too short holds.
    Truncated,
    /// Another IP protocol (number).
    Other(u8),
}

/// One IP fragment: which datagram it belongs to and where its bytes go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentPart<'a> {
    /// IPv4 identification or IPv6 fragment identification.
    pub id: u32,
    /// Where `data` starts in the datagram's payload (after the IP header), in bytes.
    pub offset: u32,
    /// More fragments follow (the last one has this clear).
    pub more: bool,
    /// The fragment's payload bytes that were captured.
    pub data: &'a [u8],
    /// The fragment's payload length on the wire (from the IP header).
    pub wire_len: u32,
    /// Bytes of IP header (and IPv6 extension headers) before the payload.
    pub header_len: u32,
}

/// The outer UDP endpoints of a tunnel (VXLAN, Geneve, Teredo) whose inner packet was decoded.
#[derive(Clone, Copy, Debug)]
pub struct TunnelOuter {
    /// Outer source address.
    pub src: IpAddr,
    /// Outer destination address.
    pub dst: IpAddr,
    /// Outer UDP source port.
    pub sport: u16,
    /// Outer UDP destination port.
    pub dport: u16,
    /// Outer IP length on the wire.
    pub ip_len: u32,
}

/// A decoded IP packet (the innermost one when tunnels were unwrapped).
#[derive(Clone, Copy, Debug)]
pub struct IpPacket<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol number of the transport.
    pub proto: u8,
    /// IP length on the wire (header + payload), from the IP header.
    pub ip_len: u32,
    /// IPv4 "more fragments" or a non-zero offset / an IPv6 fragment header.
    pub fragment: bool,
    /// The frame was cut before the end of the IP packet.
    pub truncated: bool,
    /// The transport layer.
    pub transport: Transport<'a>,
    /// Tunnels unwrapped to reach this packet.
    pub tunnel_depth: u8,
    /// The outer UDP flow of a UDP-based tunnel, when there was one.
    pub outer: Option<TunnelOuter>,
    /// The IPv4 identification field (0 for IPv6): with the transport's fields, it tells a
    /// copy of a frame from a packet sent again.
    pub ident: u16,
    /// The IPv4 TTL or IPv6 hop limit as captured: the hops left, which tell a packet sent by
    /// something on the path from one sent by the endpoint whose address it carries.
    pub ttl: u8,
}

/// What a frame turned out to be.
#[derive(Clone, Copy, Debug)]
pub enum Frame<'a> {
    /// An IP packet.
    Ip(IpPacket<'a>),
    /// A frame that is not IP (ARP, LLDP, STP, …), with its EtherType when known.
    NotIp(u16),
    /// The link type is not one this decoder understands.
    UnsupportedLink(LinkType),
    /// The frame ended before a complete IP header (cut by the snap length or malformed).
    Undecodable(Undecodable),
}

/// Why a frame could not be decoded down to IP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Undecodable {
    /// The link-layer header is incomplete.
    LinkTruncated,
    /// The IP header is incomplete or invalid.
    BadIp,
    /// Tunnels nested deeper than the decoder follows.
    TooManyLayers,
}

/// Maximum tunnel nesting followed.
const MAX_TUNNEL_DEPTH: u8 = 4;

/// Decodes one captured frame.
pub fn decode<'a>(pkt: &Packet<'a>) -> Frame<'a> {
    // Bytes of the frame the snap length cut off: an IP length claiming more than the frame
    // had on the wire is bogus and clamped, as Wireshark does.
    let cut = (pkt.wire_len as usize).saturating_sub(pkt.data.len());
    match link::strip(pkt.link, pkt.data) {
        link::Next::Ether(et, rest) => from_ether_type(et, rest, 0, None, cut),
        link::Next::Ip(rest) => from_ip(rest, 0, None, cut),
        link::Next::NotIp(et) => Frame::NotIp(et),
        link::Next::Unsupported => Frame::UnsupportedLink(pkt.link),
        link::Next::Truncated => Frame::Undecodable(Undecodable::LinkTruncated),
    }
}

fn from_ether_type<'a>(
    et: u16,
    data: &'a [u8],
    depth: u8,
    outer: Option<TunnelOuter>,
    cut: usize,
) -> Frame<'a> {
    match link::strip_ether_type(et, data) {
        link::Next::Ip(rest) => from_ip(rest, depth, outer, cut),
        link::Next::Ether(ether_type::IPV4 | ether_type::IPV6, rest) => {
            from_ip(rest, depth, outer, cut)
        }
        link::Next::Ether(et, _) => Frame::NotIp(et),
        link::Next::NotIp(et) => Frame::NotIp(et),
        link::Next::Unsupported => Frame::NotIp(et),
        link::Next::Truncated => Frame::Undecodable(Undecodable::LinkTruncated),
    }
}

/// `cut`: bytes of the frame beyond `data`'s end that the snap length removed.
fn from_ip<'a>(data: &'a [u8], depth: u8, outer: Option<TunnelOuter>, cut: usize) -> Frame<'a> {
    if depth > MAX_TUNNEL_DEPTH {
        return Frame::Undecodable(Undecodable::TooManyLayers);
    }
    let Some(l3) = ipv4(data, cut).or_else(|| lax_ip(data, cut)) else {
        return Frame::Undecodable(Undecodable::BadIp);
    };
    let L3 {
        src,
        dst,
        proto,
        claimed_total,
        frag,
        incomplete,
        l4_offset,
        payload: p,
        ident,
        ttl,
    } = l3;
    let head = IpHead {
        src,
        dst,
        proto,
        ip_len: claimed_total as u32,
        truncated: incomplete,
        depth,
        outer,
        ident,
        ttl,
    };
    let l4_wire_len = claimed_total.saturating_sub(l4_offset) as u32;
    if let Some((id, offset, more)) = frag {
        let part = FragmentPart {
            id,
            offset,
            more,
            data: p,
            wire_len: l4_wire_len,
            header_len: l4_offset as u32,
        };
        return head.packet(Transport::Fragment(part));
    }
    with_transport(head, p, l4_wire_len, false, cut)
}

/// An IP packet's own fields, before its transport.
#[derive(Clone, Copy)]
struct IpHead {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    ip_len: u32,
    truncated: bool,
    depth: u8,
    outer: Option<TunnelOuter>,
    ident: u16,
    ttl: u8,
}

impl IpHead {
    fn of(ip: &IpPacket<'_>) -> IpHead {
        IpHead {
            src: ip.src,
            dst: ip.dst,
            proto: ip.proto,
            ip_len: ip.ip_len,
            truncated: ip.truncated,
            depth: ip.tunnel_depth,
            outer: ip.outer,
            ident: ip.ident,
            ttl: ip.ttl,
        }
    }

    #[inline(always)]
    fn packet(self, transport: Transport<'_>) -> Frame<'_> {
        Frame::Ip(IpPacket {
            src: self.src,
            dst: self.dst,
            proto: self.proto,
            ip_len: self.ip_len,
            fragment: matches!(transport, Transport::Fragment(_)),
            truncated: self.truncated,
            transport,
            tunnel_depth: self.depth,
            outer: self.outer,
            ident: self.ident,
            ttl: self.ttl,
        })
    }
}

/// The datagram `ip` (a fragment) belongs to, whole: its payload `data`, reassembled. The
/// transport is decoded as for any packet, tunnels included.
pub fn reassembled<'a>(ip: &IpPacket<'_>, header_len: u32, data: &'a [u8]) -> Frame<'a> {
    let (proto, start) = upper_layer(ip.src.is_ipv6(), ip.proto, data).unwrap_or((ip.proto, 0));
    let p = &data[start..];
    let head = IpHead {
        proto,
        ip_len: header_len.saturating_add(data.len() as u32),
        truncated: false,
        ..IpHead::of(ip)
    };
    with_transport(head, p, p.len() as u32, false, 0)
}

/// A first fragment (offset 0) whose datagram cannot be reassembled, decoded as far as it
/// goes: the ports (and the header fields it holds whole), no tunnel. Any other fragment is
/// returned as it is.
pub fn first_fragment<'a>(ip: &IpPacket<'a>) -> IpPacket<'a> {
    match ip.transport {
        Transport::Fragment(part) if part.offset == 0 => {
            let (proto, start) =
                upper_layer(ip.src.is_ipv6(), ip.proto, part.data).unwrap_or((ip.proto, 0));
            let head = IpHead {
                proto,
                ..IpHead::of(ip)
            };
            let wire_len = part.wire_len.saturating_sub(start as u32);
            match with_transport(head, &part.data[start..], wire_len, true, 0) {
                Frame::Ip(p) => IpPacket {
                    fragment: true,
                    ..p
                },
                _ => *ip,
            }
        }
        _ => *ip,
    }
}

/// The packet of `head` with its transport decoded from `p` (`l4_wire_len` bytes on the wire);
/// a tunnel's inner packet instead when it carries one. A `fragmented` payload is a first
/// fragment's: its headers may be cut short, and tunnels are not followed. Inlined: on the
/// hot path (`from_ip`) a call passing the head by value measured 4 % slower in all.
#[inline(always)]
fn with_transport<'a>(
    head: IpHead,
    p: &'a [u8],
    l4_wire_len: u32,
    fragmented: bool,
    cut: usize,
) -> Frame<'a> {
    let IpHead {
        src,
        dst,
        proto,
        ip_len,
        depth,
        ..
    } = head;
    let transport = match proto {
        6 => tcp(p, l4_wire_len, fragmented),
        17 => {
            if p.len() < 8 {
                Transport::Truncated
            } else {
                let sport = u16::from_be_bytes([p[0], p[1]]);
                let dport = u16::from_be_bytes([p[2], p[3]]);
                let body = &p[8..];
                if !fragmented {
                    // A tunnel whose inner frame is not IP (ARP in VXLAN, say) is still a UDP
                    // datagram of the outer flow.
                    let outer = TunnelOuter {
                        src,
                        dst,
                        sport,
                        dport,
                        ip_len,
                    };
                    if let Some(inner @ Frame::Ip(_)) = udp_tunnel(outer, body, depth, cut) {
                        return inner;
                    }
                }
                Transport::Udp(UdpDatagram {
                    sport,
                    dport,
                    checksum: u16::from_be_bytes([p[6], p[7]]),
                    payload: body,
                })
            }
        }
        1 | 58 => {
            if p.len() < 4 {
                Transport::Truncated
            } else {
                let v6 = proto == 58;
                let is_error = if v6 {
                    matches!(p[0], 1..=4)
                } else {
                    matches!(p[0], 3 | 4 | 5 | 11 | 12)
                };
                let mtu = match (v6, p[0], p[1]) {
                    (false, 3, 4) if p.len() >= 8 => u16::from_be_bytes([p[6], p[7]]),
                    (true, 2, _) if p.len() >= 8 => {
                        u32::from_be_bytes([p[4], p[5], p[6], p[7]]).min(u32::from(u16::MAX)) as u16
                    }
                    _ => 0,
                };
                Transport::Icmp(IcmpMessage {
                    v6,
                    icmp_type: p[0],
                    code: p[1],
                    mtu,
                    rest: &p[4..],
                    quoted: if is_error {
                        quoted_flow(&p[4..])
                    } else if v6 && p[0] == 137 {
                        redirected_header(&p[4..])
                    } else {
                        None
                    },
                })
            }
        }
        // PIM register: the data packet travels inside.
        103 if !fragmented && p.len() > 8 && p[0] & 0x0f == 1 && p[0] >> 4 == 2 => {
            match from_ip(&p[8..], depth + 1, None, cut) {
                inner @ Frame::Ip(_) => return inner,
                _ => Transport::Other(proto),
            }
        }
        4 | 41 if !fragmented => match from_ip(p, depth + 1, None, cut) {
            inner @ Frame::Ip(_) => return inner,
            _ => Transport::Other(proto),
        },
        47 if !fragmented => {
            match link::gre(p).map(|(et, inner)| from_ether_type(et, inner, depth + 1, None, cut)) {
                Some(inner @ Frame::Ip(_)) => return inner,
                _ => Transport::Other(proto),
            }
        }
        _ => Transport::Other(proto),
    };
    head.packet(transport)
}

/// The IP layer of a packet, as the transport decoding needs it.
#[derive(Debug, PartialEq, Eq)]
struct L3<'a> {
    src: IpAddr,
    dst: IpAddr,
    /// The transport's protocol number (after an IPv4 authentication header or IPv6
    /// extension headers).
    proto: u8,
    /// The IP length, never more than the frame had on the wire.
    claimed_total: usize,
    /// A fragment's identification, byte offset and more-fragments flag; `None` for a whole
    /// datagram.
    frag: Option<(u32, u32, bool)>,
    /// The IP length claims more than was captured.
    incomplete: bool,
    /// Where the transport header starts in the IP packet.
    l4_offset: usize,
    /// The transport's captured bytes.
    payload: &'a [u8],
    /// The IPv4 identification field (0 for IPv6).
    ident: u16,
    /// The IPv4 TTL or IPv6 hop limit.
    ttl: u8,
}

/// The common case read directly: an IPv4 header without an authentication header (which
/// `etherparse` unwraps, so it goes to [`lax_ip`]). Gives exactly what [`lax_ip`] gives for
/// such a packet (the `decode` fuzz target and `decode::tests` check it); `None` for
/// anything else.
fn ipv4(data: &[u8], cut: usize) -> Option<L3<'_>> {
    let &first = data.first()?;
    let hl = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || hl < 20 || data.len() < hl || data[9] == 51 {
        return None;
    }
    let field = usize::from(u16::from_be_bytes([data[2], data[3]]));
    // The captured payload: by the header's length when it is plausible, else what is there.
    let (end, incomplete) = if field < hl {
        (data.len(), false)
    } else if data.len() < field {
        (data.len(), true)
    } else {
        (field, false)
    };
    let offset = u32::from(u16::from_be_bytes([data[6] & 0x1f, data[7]])) * 8;
    let more = data[6] & 0x20 != 0;
    let id = u32::from(u16::from_be_bytes([data[4], data[5]]));
    let claimed_total = v4_claimed_total(field, hl, data.len() + cut)?;
    let addr = |i: usize| IpAddr::from([data[i], data[i + 1], data[i + 2], data[i + 3]]);
    Some(L3 {
        src: addr(12),
        dst: addr(16),
        proto: data[9],
        claimed_total,
        frag: (more || offset != 0).then_some((id, offset, more)),
        incomplete,
        l4_offset: hl,
        payload: &data[hl..end],
        ident: id as u16,
        ttl: data[8],
    })
}

/// Whether [`ipv4`]'s direct reading of `data` gives what `etherparse`'s does (true when it
/// declines the packet). For the `decode` fuzz target; not part of the API.
#[doc(hidden)]
pub fn ipv4_fast_path_agrees(data: &[u8], cut: usize) -> bool {
    ipv4(data, cut).is_none_or(|fast| lax_ip(data, cut) == Some(fast))
}

/// Any IP packet, through `etherparse`'s lax slicing (IPv6 extension headers, an IPv4
/// authentication header).
fn lax_ip(data: &[u8], cut: usize) -> Option<L3<'_>> {
    let (ip, _stop) = LaxIpSlice::from_slice(data).ok()?;
    let avail = data.len() + cut;
    let payload = ip.payload();
    let mut proto = payload.ip_number.0;
    let mut l4_offset = payload.payload.as_ptr() as usize - data.as_ptr() as usize;
    let mut ident = 0;
    let ttl;
    let (src, dst, claimed_total, frag) = match &ip {
        LaxIpSlice::Ipv4(v4) => {
            let h = v4.header();
            ident = h.identification();
            ttl = h.ttl();
            let total = v4_claimed_total(usize::from(h.total_len()), h.slice().len(), avail)?;
            let frag = payload.fragmented.then(|| {
                // A fragment's bytes start right after the IP header, whatever they hold (an
                // authentication header is only read once the datagram is whole).
                proto = h.protocol().0;
                l4_offset = h.slice().len();
                (
                    u32::from(h.identification()),
                    u32::from(h.fragments_offset().value()) * 8,
                    h.more_fragments(),
                )
            });
            (
                IpAddr::from(h.source()),
                IpAddr::from(h.destination()),
                total,
                frag,
            )
        }
        LaxIpSlice::Ipv6(v6) => {
            ttl = v6.header().hop_limit();
            let (src, dst, total) = v6_fields(v6, avail);
            let frag = payload
                .fragmented
                .then(|| v6_fragment(data))
                .flatten()
                .map(|f| {
                    // After the fragment header, not after the extension headers etherparse
                    // reads past it: those belong to the datagram, and later fragments have none.
                    proto = f.next_header;
                    l4_offset = f.start;
                    (f.id, f.offset, f.more)
                });
            // Never more than the frame had on the wire.
            (src, dst, total.min(avail), frag)
        }
    };
    let end = l4_offset.max(claimed_total.min(data.len()));
    let payload_bytes = if frag.is_some() {
        &data[l4_offset..end]
    } else {
        payload.payload
    };
    Some(L3 {
        src,
        dst,
        proto,
        claimed_total,
        frag,
        incomplete: payload.incomplete,
        l4_offset,
        payload: payload_bytes,
        ident,
        ttl,
    })
}

/// An IPv4 packet's length from its total-length `field` and header length `hl`, when `avail`
/// bytes were on the wire: 0 is TCP segmentation offload on the capturing host (what was
/// captured is used), and never more than the frame had; `None` when shorter than its own
/// header ("bogus IP length").
fn v4_claimed_total(field: usize, hl: usize, avail: usize) -> Option<usize> {
    let total = if field == 0 { avail } else { field };
    Some(total.min(avail)).filter(|&t| t >= hl)
}

/// An IPv6 packet's addresses and length.
fn v6_fields(v6: &LaxIpv6Slice<'_>, avail: usize) -> (IpAddr, IpAddr, usize) {
    let h = v6.header();
    let plen = usize::from(h.payload_length());
    let total = if plen == 0 { avail } else { 40 + plen };
    (
        IpAddr::from(h.source()),
        IpAddr::from(h.destination()),
        total,
    )
}

/// An IPv6 fragment header: identification, byte offset, more-fragments flag, the protocol
/// after it and where the fragment's bytes start in the packet.
struct V6Fragment {
    id: u32,
    offset: u32,
    more: bool,
    next_header: u8,
    start: usize,
}

/// The fragment header of the IPv6 packet `data`, found by walking its extension headers
/// (bounds-checked here: etherparse's iterator over a lax slice's extensions builds its slices
/// unchecked, and the `pipeline` fuzz target found an input on which it reads past them).
fn v6_fragment(data: &[u8]) -> Option<V6Fragment> {
    let (_, at) = walk_extensions(*data.get(6)?, data, 40, |next| next != 44)?;
    let h = data.get(at..at + 8)?;
    let field = u16::from_be_bytes([h[2], h[3]]);
    Some(V6Fragment {
        id: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
        offset: u32::from(field >> 3) * 8,
        more: field & 1 == 1,
        next_header: h[0],
        start: at + 8,
    })
}

/// Walks the extension headers of `data` from protocol `next` at `at` for as long as `walks`
/// says, each bounds-checked, and returns the first header not walked and where it starts.
/// `None` when a walked one is not an extension header or does not fit, or after 8 of them (a
/// chain longer than that is not one a sender builds).
fn walk_extensions(
    mut next: u8,
    data: &[u8],
    mut at: usize,
    walks: impl Fn(u8) -> bool,
) -> Option<(u8, usize)> {
    for _ in 0..8 {
        if !walks(next) {
            return Some((next, at));
        }
        let h = data.get(at..at + 8)?;
        let len = extension_len(next, h)?;
        next = h[0];
        at = at.checked_add(len).filter(|&end| end <= data.len())?;
    }
    None
}

/// The length of the extension header `next` whose first 8 bytes are `h`; `None` for any
/// other protocol number (an upper-layer protocol, a fragment header, ESP).
fn extension_len(next: u8, h: &[u8]) -> Option<usize> {
    match next {
        // Hop-by-hop, routing, destination options, mobility, HIP, shim6.
        0 | 43 | 60 | 135 | 139 | 140 => Some((usize::from(h[1]) + 1) * 8),
        // Authentication header.
        51 => Some((usize::from(h[1]) + 2) * 4),
        _ => None,
    }
}

/// The upper-layer protocol of a datagram whose fragments carried `proto`, and where it
/// starts in the datagram's bytes `data`: the extension headers after an IPv6 fragment header
/// (destination options, say) and an IPv4 authentication header are part of the fragmented
/// payload, so they are walked here, once the bytes are there. `None` when one does not fit.
fn upper_layer(v6: bool, proto: u8, data: &[u8]) -> Option<(u8, usize)> {
    walk_extensions(proto, data, 0, |p| {
        p == 51 || (v6 && matches!(p, 43 | 60 | 135 | 139 | 140))
    })
}

/// ICMPv6 Redirect: after the 4 reserved bytes and the two addresses come ND options; option 4
/// (Redirected Header: type, length, 6 reserved bytes) quotes the redirected packet.
fn redirected_header(body: &[u8]) -> Option<QuotedFlow> {
    let mut opts = body.get(36..)?;
    while opts.len() >= 8 {
        let len = usize::from(opts[1]) * 8;
        if len == 0 || len > opts.len() {
            return None;
        }
        if opts[0] == 4 {
            return quoted_flow(&opts[4..len]);
        }
        opts = &opts[len..];
    }
    None
}

fn quoted_flow(q: &[u8]) -> Option<QuotedFlow> {
    // ICMPv4 errors carry 4 bytes (unused / pointer / MTU) before the quoted header; so do
    // ICMPv6 errors.
    let q = q.get(4..)?;
    let (ip, _) = LaxIpSlice::from_slice(q).ok()?;
    let payload = ip.payload();
    // A fragment after the first (a router's error about each fragment it could not
    // forward) quotes payload bytes, not a transport header: it names no flow.
    let later_fragment = match &ip {
        LaxIpSlice::Ipv4(v4) => v4.header().fragments_offset().value() != 0,
        LaxIpSlice::Ipv6(_) => payload.fragmented && v6_fragment(q).is_none_or(|f| f.offset != 0),
    };
    if later_fragment {
        return None;
    }
    let proto = payload.ip_number.0;
    let p = payload.payload;
    let (sport, dport) = if matches!(proto, 6 | 17) && p.len() >= 4 {
        (
            u16::from_be_bytes([p[0], p[1]]),
            u16::from_be_bytes([p[2], p[3]]),
        )
    } else {
        (0, 0)
    };
    Some(QuotedFlow {
        src: ip.source_addr(),
        dst: ip.destination_addr(),
        proto,
        sport,
        dport,
    })
}

fn tcp(p: &[u8], wire_len: u32, fragment: bool) -> Transport<'_> {
    let ports = || {
        if p.len() >= 4 {
            Transport::TcpPorts {
                sport: u16::from_be_bytes([p[0], p[1]]),
                dport: u16::from_be_bytes([p[2], p[3]]),
            }
        } else {
            Transport::Truncated
        }
    };
    if !fragment && wire_len < 20 {
        // An IP length too short for a TCP header: malformed.
        return Transport::Truncated;
    }
    if p.len() < 20 {
        // A first fragment too small for the whole header, or a header cut by the snap
        // length (68 bytes keep 14 of an IPv6 segment's), still names the connection.
        return ports();
    }
    let doff = usize::from(p[12] >> 4) * 4;
    if doff < 20 {
        // A header of fewer than five words is malformed (RFC 9293): Linux drops the segment,
        // and Wireshark reads its ports but no flags. So do we.
        return ports();
    }
    let opt_end = doff.min(p.len());
    let payload = if p.len() > doff { &p[doff..] } else { &[] };
    Transport::Tcp(TcpSegment {
        sport: u16::from_be_bytes([p[0], p[1]]),
        dport: u16::from_be_bytes([p[2], p[3]]),
        seq: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
        ack: u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
        flags: p[13],
        window: u16::from_be_bytes([p[14], p[15]]),
        options: &p[20..opt_end],
        payload,
        seg_len: wire_len.saturating_sub(doff as u32),
        checksum: u16::from_be_bytes([p[16], p[17]]),
    })
}

/// VXLAN (4789), Geneve (6081) and Teredo (3544) carried in UDP.
fn udp_tunnel(outer: TunnelOuter, body: &[u8], depth: u8, cut: usize) -> Option<Frame<'_>> {
    let is = |p: u16| outer.sport == p || outer.dport == p;
    let outer = Some(outer);
    if is(4789) && body.len() >= 8 + 14 && body[0] & 0x08 != 0 {
        let eth = &body[8..];
        let et = u16::from_be_bytes([eth[12], eth[13]]);
        return Some(from_ether_type(et, &eth[14..], depth + 1, outer, cut));
    }
    if is(6081) && body.len() >= 8 && body[0] >> 6 == 0 {
        let opt_len = usize::from(body[0] & 0x3f) * 4;
        let proto = u16::from_be_bytes([body[2], body[3]]);
        let inner = body.get(8 + opt_len..)?;
        if proto == ether_type::TRANSPARENT_ETHERNET {
            if inner.len() < 14 {
                return None;
            }
            let et = u16::from_be_bytes([inner[12], inner[13]]);
            return Some(from_ether_type(et, &inner[14..], depth + 1, outer, cut));
        }
        return Some(from_ether_type(proto, inner, depth + 1, outer, cut));
    }
    if is(2152) && body.len() >= 8 && body[0] >> 5 == 1 && body[0] & 0x10 != 0 && body[1] == 0xff {
        // GTP-U G-PDU: 8-byte header, 4 more when any of E/S/PN is set, then extension
        // headers (each len*4 bytes, the last byte naming the next type) when E is set.
        let mut off = if body[0] & 0x07 != 0 { 12 } else { 8 };
        if body[0] & 0x04 != 0 {
            let mut next = *body.get(11)?;
            let mut guard = 0;
            while next != 0 && guard < 16 {
                let len = usize::from(*body.get(off)?) * 4;
                if len == 0 {
                    return None;
                }
                next = *body.get(off + len - 1)?;
                off += len;
                guard += 1;
            }
        }
        let inner = body.get(off..)?;
        return match inner.first().map(|b| b >> 4) {
            Some(4) | Some(6) => Some(from_ip(inner, depth + 1, outer, cut)),
            _ => None,
        };
    }
    if is(3544) {
        let mut b = body;
        // Teredo authentication (0x0001) and origin indication (0x0000) headers.
        if b.len() >= 4 && b[0] == 0 && b[1] == 1 {
            let id_len = usize::from(b[2]);
            let au_len = usize::from(b[3]);
            b = b.get(4 + id_len + au_len + 9..)?;
        }
        if b.len() >= 8 && b[0] == 0 && b[1] == 0 {
            b = &b[8..];
        }
        if b.len() >= 40 && b[0] >> 4 == 6 {
            return Some(from_ip(b, depth + 1, outer, cut));
        }
    }
    None
}

#[cfg(test)]
mod tests;
