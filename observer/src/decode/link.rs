//! Link layers and encapsulations: everything between the first captured byte and IP.

use crate::source::LinkType;

/// EtherType values used here.
pub mod ether_type {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// ARP.
    pub const ARP: u16 = 0x0806;
    /// 802.1Q VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad service tag (QinQ).
    pub const QINQ: u16 = 0x88a8;
    /// Pre-standard QinQ tag.
    pub const QINQ_OLD: u16 = 0x9100;
    /// IPv6.
    pub const IPV6: u16 = 0x86dd;
    /// MPLS unicast.
    pub const MPLS: u16 = 0x8847;
    /// MPLS multicast.
    pub const MPLS_MC: u16 = 0x8848;
    /// PPPoE session stage.
    pub const PPPOE_SESSION: u16 = 0x8864;
    /// Transparent Ethernet bridging (GRE, Geneve).
    pub const TRANSPARENT_ETHERNET: u16 = 0x6558;
    /// ERSPAN types I and II (II sets the GRE sequence bit).
    pub const ERSPAN_II: u16 = 0x88be;
    /// MACsec (802.1AE).
    pub const MACSEC: u16 = 0x88e5;
    /// Network Service Header.
    pub const NSH: u16 = 0x894f;
    /// WCCP redirect header inside GRE.
    pub const WCCP: u16 = 0x883e;
}

/// Where link-layer stripping got to.
pub enum Next<'a> {
    /// Continue with this EtherType and payload.
    Ether(u16, &'a [u8]),
    /// An IP packet (version from its first nibble) starts here.
    Ip(&'a [u8]),
    /// Not IP: the EtherType (or 0 when unknown).
    NotIp(u16),
    /// A link type this decoder does not know.
    Unsupported,
    /// The header is incomplete.
    Truncated,
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// Removes the link-layer header of a captured frame.
pub fn strip(link: LinkType, d: &[u8]) -> Next<'_> {
    match link {
        LinkType::ETHERNET => ethernet(d),
        // The version nibble decides, whatever the link type promised.
        LinkType::RAW | LinkType::RAW_12 | LinkType::RAW_14 | LinkType::IPV4 | LinkType::IPV6 => {
            ip_by_version(d)
        }
        LinkType::NULL | LinkType::LOOP => {
            if d.len() < 4 {
                return Next::Truncated;
            }
            // The family is in the capturing host's byte order (NULL) or big-endian (LOOP);
            // families are small numbers, so whichever reading is small is the right one.
            let le = u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
            let fam = if le > 0xffff { le.swap_bytes() } else { le };
            match fam {
                2 => Next::Ip(&d[4..]),
                10 | 24 | 28 | 30 => Next::Ip(&d[4..]),
                _ => Next::NotIp(0),
            }
        }
        LinkType::LINUX_SLL => {
            if d.len() < 16 {
                return Next::Truncated;
            }
            sll_protocol(be16(&d[2..4]), be16(&d[14..16]), &d[16..])
        }
        LinkType::LINUX_SLL2 => {
            if d.len() < 20 {
                return Next::Truncated;
            }
            sll_protocol(be16(&d[8..10]), be16(&d[0..2]), &d[20..])
        }
        LinkType::PPP | LinkType::PPP_SERIAL => ppp(d),
        LinkType::C_HDLC => {
            if d.len() < 4 {
                return Next::Truncated;
            }
            Next::Ether(be16(&d[2..4]), &d[4..])
        }
        LinkType::NFLOG => nflog(d),
        // IP over InfiniBand: 20-byte source and destination addresses, then a 2-byte
        // EtherType and 2 reserved bytes.
        LinkType(242) => {
            if d.len() < 44 {
                return Next::Truncated;
            }
            Next::Ether(be16(&d[40..42]), &d[44..])
        }
        // Juniper Ethernet: "MGC" magic, flags, optional extensions, then Ethernet (or IP when
        // the no-layer-2 flag is set).
        LinkType(178) => {
            if d.len() < 4 || &d[0..3] != b"MGC" {
                return Next::NotIp(0);
            }
            let flags = d[3];
            let mut hl = 4;
            if flags & 0x80 != 0 {
                if d.len() < 6 {
                    return Next::Truncated;
                }
                hl = 6 + usize::from(be16(&d[4..6]));
            }
            if flags & 0x02 != 0 {
                return match d.get(hl + 4..) {
                    Some(rest) => ip_by_version(rest),
                    None => Next::Truncated,
                };
            }
            match d.get(hl..) {
                Some(rest) => ethernet(rest),
                None => Next::Truncated,
            }
        }
        // Apple PKTAP (258, and the older USER2 number 149): a header whose length and inner
        // DLT are little-endian words.
        LinkType(258) | LinkType(149) => {
            if d.len() < 8 {
                return Next::Truncated;
            }
            let hl = u32::from_le_bytes([d[0], d[1], d[2], d[3]]) as usize;
            let dlt = u32::from_le_bytes([d[4], d[5], d[6], d[7]]);
            match d.get(hl..) {
                Some(rest) if hl >= 8 && dlt == 1 => ethernet(rest),
                Some(rest) if hl >= 8 && (dlt == 0 || dlt == 12 || dlt == 14) => {
                    strip(LinkType(dlt as u16), rest)
                }
                Some(_) => Next::Unsupported,
                None => Next::Truncated,
            }
        }
        LinkType(127) => radiotap(d),
        LinkType(105) => ieee80211(d),
        _ => Next::Unsupported,
    }
}

fn ip_by_version(d: &[u8]) -> Next<'_> {
    match d.first().map(|b| b >> 4) {
        Some(4) | Some(6) => Next::Ip(d),
        Some(_) => Next::NotIp(0),
        None => Next::Truncated,
    }
}

fn ethernet(d: &[u8]) -> Next<'_> {
    if d.len() < 14 {
        return Next::Truncated;
    }
    let et = be16(&d[12..14]);
    if et <= 1500 {
        return llc(&d[14..]);
    }
    Next::Ether(et, &d[14..])
}

/// 802.2 LLC: only SNAP carries an EtherType.
fn llc(d: &[u8]) -> Next<'_> {
    if d.len() >= 8 && d[0] == 0xaa && d[1] == 0xaa && d[2] == 0x03 {
        return Next::Ether(be16(&d[6..8]), &d[8..]);
    }
    Next::NotIp(0)
}

fn sll_protocol(arphrd: u16, proto: u16, rest: &[u8]) -> Next<'_> {
    match arphrd {
        // ARPHRD_NETLINK and friends: not IP.
        824 => Next::NotIp(0),
        _ => match proto {
            // Linux "802.2 frame" pseudo protocol: LLC follows.
            0x0004 => llc(rest),
            0x0001 | 0x0003 => Next::NotIp(proto),
            _ => Next::Ether(proto, rest),
        },
    }
}

fn ppp(d: &[u8]) -> Next<'_> {
    let mut d = d;
    if d.len() >= 2 && d[0] == 0xff && d[1] == 0x03 {
        d = &d[2..];
    } else if d.len() >= 4 && (d[0] == 0x0f || d[0] == 0x8f) && d[1] == 0x00 {
        // Cisco HDLC framing inside a PPP_SERIAL capture.
        return Next::Ether(be16(&d[2..4]), &d[4..]);
    }
    let Some(&first) = d.first() else {
        return Next::Truncated;
    };
    let (proto, rest) = if first & 1 == 1 {
        (u16::from(first), &d[1..])
    } else if d.len() >= 2 {
        (be16(&d[0..2]), &d[2..])
    } else {
        return Next::Truncated;
    };
    match proto {
        0x0021 => Next::Ether(ether_type::IPV4, rest),
        0x0057 => Next::Ether(ether_type::IPV6, rest),
        0x0281 => Next::Ether(ether_type::MPLS, rest),
        0x0283 => Next::Ether(ether_type::MPLS_MC, rest),
        _ => Next::NotIp(0),
    }
}

fn nflog(d: &[u8]) -> Next<'_> {
    if d.len() < 4 {
        return Next::Truncated;
    }
    let mut tlvs = &d[4..];
    while tlvs.len() >= 4 {
        // NFLOG TLV length and type are in host byte order; captures are little-endian hosts.
        let len = usize::from(u16::from_le_bytes([tlvs[0], tlvs[1]]));
        let ty = u16::from_le_bytes([tlvs[2], tlvs[3]]);
        if len < 4 {
            return Next::NotIp(0);
        }
        if ty == 9 {
            let end = len.min(tlvs.len());
            return ip_by_version(&tlvs[4..end]);
        }
        let padded = (len + 3) & !3;
        if padded > tlvs.len() {
            break;
        }
        tlvs = &tlvs[padded..];
    }
    Next::NotIp(0)
}

fn radiotap(d: &[u8]) -> Next<'_> {
    if d.len() < 4 {
        return Next::Truncated;
    }
    let len = usize::from(u16::from_le_bytes([d[2], d[3]]));
    match d.get(len..) {
        Some(rest) => ieee80211(rest),
        None => Next::Truncated,
    }
}

/// 802.11 data frames with an LLC/SNAP header; everything else is not IP.
fn ieee80211(d: &[u8]) -> Next<'_> {
    if d.len() < 24 {
        return Next::Truncated;
    }
    let fc0 = d[0];
    let fc1 = d[1];
    let ftype = (fc0 >> 2) & 0x3;
    let subtype = fc0 >> 4;
    if ftype != 2 || subtype & 0x4 != 0 {
        // Not data, or a null-data subtype.
        return Next::NotIp(0);
    }
    if fc1 & 0x40 != 0 {
        // Protected frame: encrypted payload.
        return Next::NotIp(0);
    }
    let mut hl = 24;
    if fc1 & 0x03 == 0x03 {
        hl += 6;
    }
    if subtype & 0x8 != 0 {
        hl += 2;
        if fc1 & 0x80 != 0 {
            hl += 4;
        }
    }
    match d.get(hl..) {
        Some(rest) => llc(rest),
        None => Next::Truncated,
    }
}

/// GRE: returns the protocol type and the payload.
pub fn gre(p: &[u8]) -> Option<(u16, &[u8])> {
    if p.len() < 4 {
        return None;
    }
    let flags = p[0];
    let version = p[1] & 0x7;
    let proto = be16(&p[2..4]);
    let mut off = 4;
    if version == 1 {
        // Enhanced GRE (PPTP): key is always present, then optional sequence and ack.
        off += 4;
        if flags & 0x10 != 0 {
            off += 4;
        }
        if p[1] & 0x80 != 0 {
            off += 4;
        }
        let rest = p.get(off..)?;
        return match ppp(rest) {
            Next::Ether(et, inner) => Some((et, inner)),
            _ => None,
        };
    }
    if flags & 0x80 != 0 {
        off += 4; // checksum + reserved
    }
    if flags & 0x20 != 0 {
        off += 4; // key
    }
    if flags & 0x10 != 0 {
        off += 4; // sequence
    }
    let rest = p.get(off..)?;
    match proto {
        // Aruba WLAN: an 802.11 frame follows.
        0x8200 => match ieee80211(rest) {
            Next::Ether(et, inner) => Some((et, inner)),
            _ => None,
        },
        // PPP in GRE (version 0).
        0x880b => match ppp(rest) {
            Next::Ether(et, inner) => Some((et, inner)),
            _ => None,
        },
        ether_type::TRANSPARENT_ETHERNET => {
            if rest.len() < 14 {
                return None;
            }
            Some((be16(&rest[12..14]), &rest[14..]))
        }
        ether_type::ERSPAN_II => {
            // Type II sets the sequence bit and has an 8-byte header; type I has neither: the
            // mirrored frame follows GRE at once (as Wireshark tells them apart).
            let eth = if flags & 0x10 != 0 {
                rest.get(8..)?
            } else {
                rest
            };
            if eth.len() < 14 {
                return None;
            }
            Some((be16(&eth[12..14]), &eth[14..]))
        }
        // WCCP v2 redirect header (4 bytes), then IP.
        ether_type::WCCP => {
            let inner = rest.get(4..)?;
            match inner.first().map(|b| b >> 4) {
                Some(6) => Some((ether_type::IPV6, inner)),
                _ => Some((ether_type::IPV4, inner)),
            }
        }
        _ => Some((proto, rest)),
    }
}

/// Strips VLAN tags, MPLS labels and PPPoE down to IP. Inlined: IP at once (the usual frame)
/// returns without a call; the tags, labels and LLC are read out of line.
#[inline]
pub fn strip_ether_type(et: u16, d: &[u8]) -> Next<'_> {
    if et == ether_type::IPV4 || et == ether_type::IPV6 {
        return Next::Ip(d);
    }
    strip_tags(et, d)
}

/// [`strip_ether_type`] for a frame whose EtherType is not IP.
#[inline(never)]
fn strip_tags(mut et: u16, mut d: &[u8]) -> Next<'_> {
    for _ in 0..8 {
        match et {
            ether_type::IPV4 | ether_type::IPV6 => return Next::Ip(d),
            ether_type::VLAN | ether_type::QINQ | ether_type::QINQ_OLD => {
                if d.len() < 4 {
                    return Next::Truncated;
                }
                et = be16(&d[2..4]);
                d = &d[4..];
                if et <= 1500 {
                    // An 802.3 length, as after the addresses of an untagged frame: LLC
                    // follows, and only SNAP names an EtherType.
                    match llc(d) {
                        Next::Ether(e, rest) => {
                            et = e;
                            d = rest;
                        }
                        other => return other,
                    }
                }
            }
            ether_type::MPLS | ether_type::MPLS_MC => {
                // Pop labels to the bottom of the stack, then guess by the IP version nibble.
                loop {
                    if d.len() < 4 {
                        return Next::Truncated;
                    }
                    let bottom = d[2] & 0x01 != 0;
                    d = &d[4..];
                    if bottom {
                        break;
                    }
                }
                return match d.first().map(|b| b >> 4) {
                    Some(4) | Some(6) => Next::Ip(d),
                    // Pseudowire with a control word, then Ethernet.
                    Some(0) if d.len() >= 18 => {
                        et = be16(&d[16..18]);
                        d = &d[18..];
                        continue;
                    }
                    _ => Next::NotIp(et),
                };
            }
            ether_type::PPPOE_SESSION => {
                if d.len() < 6 {
                    return Next::Truncated;
                }
                match ppp(&d[6..]) {
                    Next::Ether(e, rest) => {
                        et = e;
                        d = rest;
                    }
                    other => return other,
                }
            }
            ether_type::MACSEC => {
                // SecTAG: TCI/AN, SL, 4-byte PN, optional 8-byte SCI. Encrypted (E bit) or
                // modified (C bit) payloads cannot be read.
                let Some(&tci) = d.first() else {
                    return Next::Truncated;
                };
                if tci & 0x0c != 0 {
                    return Next::NotIp(et);
                }
                let tag = if tci & 0x20 != 0 { 14 } else { 6 };
                if d.len() < tag + 2 {
                    return Next::Truncated;
                }
                et = be16(&d[tag..tag + 2]);
                d = &d[tag + 2..];
            }
            ether_type::NSH => {
                if d.len() < 4 {
                    return Next::Truncated;
                }
                let len = usize::from(d[1] & 0x3f) * 4;
                let next = d[3];
                let Some(rest) = d.get(len.max(4)..) else {
                    return Next::Truncated;
                };
                match next {
                    1 => return Next::Ether(ether_type::IPV4, rest),
                    2 => return Next::Ether(ether_type::IPV6, rest),
                    3 => {
                        if rest.len() < 14 {
                            return Next::Truncated;
                        }
                        et = be16(&rest[12..14]);
                        d = &rest[14..];
                    }
                    _ => return Next::NotIp(et),
                }
            }
            ether_type::TRANSPARENT_ETHERNET => {
                if d.len() < 14 {
                    return Next::Truncated;
                }
                et = be16(&d[12..14]);
                d = &d[14..];
            }
            other => return Next::NotIp(other),
        }
    }
    Next::NotIp(et)
}
