//! Just enough of the kernel's BTF (`/sys/kernel/btf/vmlinux`) to find where a struct member
//! sits, for the one kernel-struct read the probe does outside tracepoint records: how many
//! segments a retransmitted skb carried (`TCP_SKB_CB(skb)->tcp_gso_segs`), which the
//! `tcp_retransmit_skb` tracepoint does not report and the kernel's `TcpRetransSegs` counts.
//! A kernel without BTF, or whose structs lack the members, gets 0 (one segment per event).

use std::collections::HashMap;

const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;

struct Member {
    name_off: u32,
    ty: u32,
    bit_offset: u32,
}

struct Composite {
    members: Vec<Member>,
}

/// Struct and union layouts by type id, and names.
pub struct Btf {
    strings: Vec<u8>,
    composites: HashMap<u32, Composite>,
    names: HashMap<String, u32>,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

impl Btf {
    /// Parses raw BTF (little-endian).
    pub fn parse(data: &[u8]) -> Option<Btf> {
        if data.get(0..2)? != [0x9f, 0xeb] {
            return None;
        }
        let hdr_len = u32_at(data, 4)? as usize;
        let type_off = u32_at(data, 8)? as usize;
        let type_len = u32_at(data, 12)? as usize;
        let str_off = u32_at(data, 16)? as usize;
        let str_len = u32_at(data, 20)? as usize;
        let types = data.get(hdr_len + type_off..hdr_len + type_off + type_len)?;
        let strings = data
            .get(hdr_len + str_off..hdr_len + str_off + str_len)?
            .to_vec();
        let mut btf = Btf {
            strings,
            composites: HashMap::new(),
            names: HashMap::new(),
        };
        let mut at = 0usize;
        let mut id = 1u32;
        while at + 12 <= types.len() {
            let name_off = u32_at(types, at)?;
            let info = u32_at(types, at + 4)?;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kflag = info >> 31 == 1;
            at += 12;
            let extra = match kind {
                1 | 14 | 17 => 4,     // INT, VAR, DECL_TAG
                3 => 12,              // ARRAY
                4 | 5 => 12 * vlen,   // STRUCT, UNION
                6 | 13 => 8 * vlen,   // ENUM, FUNC_PROTO
                15 | 19 => 12 * vlen, // DATASEC, ENUM64
                2 | 7..=12 | 16 | 18 => 0,
                _ => return None,
            };
            if kind == KIND_STRUCT || kind == KIND_UNION {
                let mut members = Vec::with_capacity(vlen);
                for m in 0..vlen {
                    let o = at + m * 12;
                    let off = u32_at(types, o + 8)?;
                    members.push(Member {
                        name_off: u32_at(types, o)?,
                        ty: u32_at(types, o + 4)?,
                        bit_offset: if kflag { off & 0x00ff_ffff } else { off },
                    });
                }
                if name_off != 0 {
                    let name = btf.string(name_off).to_string();
                    btf.names.entry(name).or_insert(id);
                }
                btf.composites.insert(id, Composite { members });
            }
            at += extra;
            id += 1;
        }
        Some(btf)
    }

    fn string(&self, off: u32) -> &str {
        let s = self.strings.get(off as usize..).unwrap_or_default();
        let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
        std::str::from_utf8(&s[..end]).unwrap_or("")
    }

    /// Byte offset of `member` in the struct or union named `name`, looking through
    /// anonymous struct/union members.
    pub fn member_offset(&self, name: &str, member: &str) -> Option<usize> {
        let id = *self.names.get(name)?;
        self.find(id, member, 0).map(|bits| (bits / 8) as usize)
    }

    fn find(&self, id: u32, member: &str, base_bits: u32) -> Option<u32> {
        let c = self.composites.get(&id)?;
        for m in &c.members {
            if m.name_off != 0 && self.string(m.name_off) == member {
                return Some(base_bits + m.bit_offset);
            }
        }
        for m in &c.members {
            if m.name_off == 0 {
                if let Some(b) = self.find(m.ty, member, base_bits + m.bit_offset) {
                    return Some(b);
                }
            }
        }
        None
    }
}

/// Offset from an `sk_buff` pointer to `TCP_SKB_CB(skb)->tcp_gso_segs` on this kernel, from
/// its BTF; 0 if it cannot be found.
pub fn skb_gso_segs_offset() -> u64 {
    let Ok(data) = std::fs::read("/sys/kernel/btf/vmlinux") else {
        return 0;
    };
    let Some(btf) = Btf::parse(&data) else {
        return 0;
    };
    match (
        btf.member_offset("sk_buff", "cb"),
        btf.member_offset("tcp_skb_cb", "tcp_gso_segs"),
    ) {
        (Some(cb), Some(segs)) => (cb + segs) as u64,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The offsets bpftool (an independent BTF reader) prints for this kernel's structs.
    fn bpftool_offset(strukt: &str, member: &str) -> Option<usize> {
        let out = std::process::Command::new("bpftool")
            .args([
                "btf",
                "dump",
                "file",
                "/sys/kernel/btf/vmlinux",
                "format",
                "raw",
            ])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let head = format!("STRUCT '{strukt}' size=");
        let mut inside = false;
        for line in text.lines() {
            if line.starts_with('[') {
                inside = line.contains(&head);
                continue;
            }
            if inside && line.trim_start().starts_with(&format!("'{member}' ")) {
                let bits: usize = line.split("bits_offset=").nth(1)?.trim().parse().ok()?;
                return Some(bits / 8);
            }
        }
        None
    }

    #[test]
    fn member_offsets_agree_with_bpftool() {
        let Ok(data) = std::fs::read("/sys/kernel/btf/vmlinux") else {
            eprintln!("skipped: no /sys/kernel/btf/vmlinux");
            return;
        };
        let Some(cb) = bpftool_offset("sk_buff", "cb") else {
            eprintln!("skipped: bpftool not installed");
            return;
        };
        let btf = Btf::parse(&data).expect("this kernel's BTF parses");
        assert_eq!(btf.member_offset("sk_buff", "cb"), Some(cb));
        assert_eq!(
            btf.member_offset("tcp_skb_cb", "seq"),
            bpftool_offset("tcp_skb_cb", "seq")
        );
        // tcp_gso_segs sits in an anonymous union inside tcp_skb_cb: 8 bytes in (after seq
        // and end_seq), as include/net/tcp.h lays it out.
        assert_eq!(btf.member_offset("tcp_skb_cb", "tcp_gso_segs"), Some(8));
        assert_eq!(skb_gso_segs_offset(), (cb + 8) as u64);
    }

    #[test]
    fn garbage_is_refused() {
        assert!(Btf::parse(b"").is_none());
        assert!(Btf::parse(&[0x9f, 0xeb, 1, 0, 24, 0, 0, 0]).is_none());
    }
}
