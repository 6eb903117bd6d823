//! DNS messages (RFC 1035): the header and the first question, plus the answers' A/AAAA
//! addresses and TTLs (for the topology analyzer). Names are decoded with compression
//! pointers followed under a loop guard.

use std::net::IpAddr;

/// The parts of a DNS message this tool uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Transaction id.
    pub id: u16,
    /// A response (QR bit).
    pub response: bool,
    /// Opcode.
    pub opcode: u8,
    /// Response code.
    pub rcode: u8,
    /// Truncated (TC bit).
    pub truncated: bool,
    /// First question name, lowercase, without the trailing dot (`.` for the root); empty
    /// without a question.
    pub qname: Name,
    /// First question type (0 without a question).
    pub qtype: u16,
    /// The message has a question section: a response may leave it out (RFC 1035 allows it;
    /// FORMERR, NOTIMP and REFUSED often do), and is then matched to its query by id alone.
    pub question: bool,
    /// Number of answer records announced.
    pub answers: u16,
}

/// Largest name accepted (RFC 1035: 255 octets).
const MAX_NAME: usize = 255;

/// Characters a decoded name may have: its octets, with room for some of them written
/// `\ddd`; a longer one is no name.
const NAME_CHARS: usize = MAX_NAME + 64;

/// A decoded name, held in place (no allocation per message): lowercase, its labels joined by
/// dots, an octet that is not printable ASCII (or a dot inside a label) written `\\ddd`.
pub type Name = super::InlineText<NAME_CHARS>;

/// Decodes the name at `off` into `out`; returns the offset after it (in the original
/// position).
fn read_name(msg: &[u8], mut off: usize, out: &mut Name) -> Option<usize> {
    let mut end_after = None;
    let mut jumps = 0;
    loop {
        let len = *msg.get(off)?;
        match len >> 6 {
            0 => {
                let len = usize::from(len);
                if len == 0 {
                    return Some(end_after.unwrap_or(off + 1));
                }
                let label = msg.get(off + 1..off + 1 + len)?;
                if !out.is_empty() {
                    out.push(b'.')?;
                }
                for &c in label {
                    let c = c.to_ascii_lowercase();
                    if c.is_ascii_graphic() && c != b'.' {
                        out.push(c)?;
                    } else {
                        for d in [b'\\', b'0' + c / 100, b'0' + c / 10 % 10, b'0' + c % 10] {
                            out.push(d)?;
                        }
                    }
                }
                off += 1 + len;
            }
            3 => {
                let ptr = (usize::from(len & 0x3f) << 8) | usize::from(*msg.get(off + 1)?);
                if end_after.is_none() {
                    end_after = Some(off + 2);
                }
                jumps += 1;
                if jumps > 32 || ptr >= msg.len() {
                    return None;
                }
                off = ptr;
            }
            _ => return None,
        }
    }
}

/// Parses a DNS message (UDP payload, or a TCP message without its length prefix).
pub fn parse(msg: &[u8]) -> Option<Message> {
    if msg.len() < 12 {
        return None;
    }
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    let qdcount = u16::from_be_bytes([msg[4], msg[5]]);
    let ancount = u16::from_be_bytes([msg[6], msg[7]]);
    let response = flags & 0x8000 != 0;
    if qdcount > 16 || (qdcount == 0 && !response) {
        return None;
    }
    if qdcount == 0 {
        return Some(Message {
            id,
            response,
            opcode: ((flags >> 11) & 0xf) as u8,
            rcode: (flags & 0xf) as u8,
            truncated: flags & 0x0200 != 0,
            qname: Name::EMPTY,
            qtype: 0,
            answers: ancount,
            question: false,
        });
    }
    let mut qname = Name::EMPTY;
    let off = read_name(msg, 12, &mut qname)?;
    let qtype = u16::from_be_bytes([*msg.get(off)?, *msg.get(off + 1)?]);
    let _qclass = msg.get(off + 2..off + 4)?;
    if qname.is_empty() {
        qname.push(b'.')?;
    }
    Some(Message {
        id,
        response: flags & 0x8000 != 0,
        opcode: ((flags >> 11) & 0xf) as u8,
        rcode: (flags & 0xf) as u8,
        truncated: flags & 0x0200 != 0,
        qname,
        qtype,
        answers: ancount,
        question: true,
    })
}

/// The A and AAAA records of a response's answer section, with their TTLs.
pub fn answer_addresses(msg: &[u8]) -> Vec<(IpAddr, u32)> {
    let mut out = Vec::new();
    answer_addresses_into(msg, &mut out);
    out
}

/// [`answer_addresses`] into a caller's buffer (cleared first): no allocation once it has grown.
/// An address reached through a CNAME (or DNAME) chain is valid for the chain's shortest TTL:
/// once an alias expires, the question name must be resolved again, whatever the target's
/// record says.
pub fn answer_addresses_into(msg: &[u8], out: &mut Vec<(IpAddr, u32)>) {
    out.clear();
    answer_addresses_append(msg, out);
}

/// [`answer_addresses_into`] without clearing `out` first: the answers are added after what
/// it holds.
pub fn answer_addresses_append(msg: &[u8], out: &mut Vec<(IpAddr, u32)>) {
    let first = out.len();
    if msg.len() < 12 {
        return;
    }
    let qdcount = u16::from_be_bytes([msg[4], msg[5]]);
    let ancount = u16::from_be_bytes([msg[6], msg[7]]);
    let mut off = 12;
    let mut scratch = Name::EMPTY;
    for _ in 0..qdcount {
        scratch.clear();
        let Some(o) = read_name(msg, off, &mut scratch) else {
            return;
        };
        off = o + 4;
    }
    let mut chain_ttl = u32::MAX;
    for _ in 0..ancount.min(64) {
        scratch.clear();
        let Some(o) = read_name(msg, off, &mut scratch) else {
            break;
        };
        let Some(rr) = msg.get(o..o + 10) else {
            break;
        };
        let rtype = u16::from_be_bytes([rr[0], rr[1]]);
        let ttl = u32::from_be_bytes([rr[4], rr[5], rr[6], rr[7]]);
        let rdlen = usize::from(u16::from_be_bytes([rr[8], rr[9]]));
        let Some(rdata) = msg.get(o + 10..o + 10 + rdlen) else {
            break;
        };
        match (rtype, rdlen) {
            (5 | 39, _) => chain_ttl = chain_ttl.min(ttl),
            (1, 4) => out.push((IpAddr::from([rdata[0], rdata[1], rdata[2], rdata[3]]), ttl)),
            (28, 16) => {
                let mut a = [0u8; 16];
                a.copy_from_slice(rdata);
                out.push((IpAddr::from(a), ttl));
            }
            _ => {}
        }
        off = o + 10 + rdlen;
    }
    for (_, t) in out[first..].iter_mut() {
        *t = (*t).min(chain_ttl);
    }
}

/// A key for a question (its name and type), the same for a query and its answer: how the
/// analyzers match them besides the id.
pub fn question_key(name: &str, qtype: u16) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    name.hash(&mut h);
    qtype.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query for www.Example.com A, id 0x1234, as dig sends it (no EDNS).
    fn query() -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in ["www", "Example", "com"] {
            m.push(l.len() as u8);
            m.extend_from_slice(l.as_bytes());
        }
        m.extend_from_slice(&[0, 0, 1, 0, 1]);
        m
    }

    #[test]
    fn query_header_and_question() {
        let m = parse(&query()).unwrap();
        assert_eq!(m.id, 0x1234);
        assert!(!m.response);
        assert_eq!(m.qname, "www.example.com");
        assert_eq!(m.qtype, 1);
    }

    #[test]
    fn response_with_compressed_answer_names() {
        let mut r = query();
        r[2] = 0x81;
        r[3] = 0x80;
        r[7] = 2; // two answers
        // answer 1: pointer to the question name (offset 12), A, IN, TTL 300, 10.0.0.7
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 0x2c, 0, 4, 10, 0, 0, 7]);
        // answer 2: AAAA fd00::1, TTL 60
        r.extend_from_slice(&[0xc0, 12, 0, 28, 0, 1, 0, 0, 0, 60, 0, 16]);
        r.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        let m = parse(&r).unwrap();
        assert!(m.response);
        assert_eq!(m.rcode, 0);
        assert_eq!(m.answers, 2);
        assert_eq!(
            answer_addresses(&r),
            vec![
                ("10.0.0.7".parse().unwrap(), 300),
                ("fd00::1".parse().unwrap(), 60)
            ]
        );
    }

    #[test]
    fn pointer_loops_and_garbage_do_not_hang_or_panic() {
        let mut m = vec![0, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0];
        m.extend_from_slice(&[0xc0, 12]); // name points at itself
        assert!(parse(&m).is_none());
        assert!(answer_addresses(&m).is_empty());
        for n in 0..query().len() {
            let _ = parse(&query()[..n]);
        }
        assert!(parse(&[0u8; 11]).is_none());
    }
}
