//! IP reassembly: fragments are held until their datagram is whole, then its transport is
//! decoded like any packet's (so a request, a credential or a DNS answer split over
//! fragments is seen, and a TCP segment keeps its real length).
//!
//! Bounded: at most [`MAX_DATAGRAMS`] datagrams wait at once, holding at most [`MAX_BYTES`] of
//! payload, each at most 64 KiB in at most [`MAX_PIECES`] separate pieces, for at most [`HOLD`]
//! (2 to 3 s of capture time). A datagram that cannot be reassembled
//! (a fragment cut by the snap length, fragments that overlap with different bytes or claim
//! more than an IP datagram holds, no room, or the rest never came) is given up: its first
//! fragment is then analyzed alone, for the ports it names, as it would be without
//! reassembly. Later fragments of a given-up datagram are counted and dropped until the
//! receiver's reassembly timeout ([`TIMEOUT_V4`], [`TIMEOUT_V6`]); the fragments held for a
//! datagram given up without its first fragment are handed back ([`Defrag::pop_headless`]) so
//! that their bytes are counted. Every outcome is counted ([`DefragStats`]).

use crate::decode::{FragmentPart, IpPacket, Transport};
use crate::time::{NANOS_PER_SEC, Nanos, Timestamp};
use rustc_hash::FxHashMap;
use std::net::IpAddr;

/// Datagrams waiting for fragments at once.
pub const MAX_DATAGRAMS: usize = 4096;
/// Payload bytes held for all waiting datagrams together.
pub const MAX_BYTES: usize = 16 << 20;
/// Separate pieces (received ranges with holes between them) one datagram may have.
pub const MAX_PIECES: usize = 64;
/// How long a datagram waits for its missing fragments, from its first one, before it is given
/// up and its first fragment analyzed alone. A sender puts a datagram's fragments on the wire
/// back to back, so they arrive within milliseconds; a capture filtered by port keeps only
/// first fragments (a filter cannot see the ports of the others), and their analysis must not
/// wait for the receiver's reassembly timeout. Checked once a second of capture time, so a
/// datagram waits 2 to 3 s (a 64 KiB datagram crosses a 256 kbit/s link in 2 s).
pub const HOLD: Nanos = 2 * NANOS_PER_SEC;
/// How long a given-up IPv4 datagram's later fragments are still recognized and dropped, from
/// its first fragment (the receiver's reassembly timeout, Linux's `ipfrag_time`).
pub const TIMEOUT_V4: Nanos = 30 * NANOS_PER_SEC;
/// The same for IPv6 (RFC 8200, section 4.5; Linux's `ip6frag_time`).
pub const TIMEOUT_V6: Nanos = 60 * NANOS_PER_SEC;
/// The largest payload an IP datagram can have.
const MAX_PAYLOAD: u32 = 65_535;

/// Which datagram a fragment belongs to (RFC 791 / RFC 8200).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    proto: u8,
}

/// A first fragment kept while its datagram is incomplete, without its bytes (they are at the
/// start of the datagram's buffer).
#[derive(Clone, Copy, Debug)]
pub struct First {
    /// The fragment's packet, its payload left empty.
    pub ip: IpPacket<'static>,
    /// When it was captured.
    pub ts: Timestamp,
    /// Its capture interface.
    pub interface: u32,
    /// Its segment count (GRO).
    pub segments: u16,
}

impl First {
    fn of(ip: &IpPacket<'_>, part: FragmentPart<'_>, ts: Timestamp, iface: u32, seg: u16) -> Self {
        First {
            ip: IpPacket {
                transport: Transport::Fragment(FragmentPart { data: &[], ..part }),
                ..*ip
            },
            ts,
            interface: iface,
            segments: seg,
        }
    }

    /// Bytes of IP header before the payload.
    pub fn header_len(&self) -> u32 {
        match self.ip.transport {
            Transport::Fragment(part) => part.header_len,
            _ => unreachable!("kept only for fragments"),
        }
    }

    /// The fragment's packet again, its payload read from `data`.
    pub fn packet<'a>(&self, data: &'a [u8]) -> IpPacket<'a> {
        let Transport::Fragment(part) = self.ip.transport else {
            unreachable!("kept only for fragments")
        };
        // All of its bytes: a fragment cut by the snap length is never kept.
        let n = (part.wire_len as usize).min(data.len());
        IpPacket {
            transport: Transport::Fragment(FragmentPart {
                data: &data[..n],
                ..part
            }),
            ..self.ip
        }
    }
}

/// A first fragment whose datagram was given up, to be analyzed alone.
#[derive(Debug)]
pub struct GivenUp {
    /// The fragment.
    pub first: First,
    /// The datagram's buffer: the fragment's bytes are at its start. Give it back with
    /// [`Defrag::recycle`].
    pub data: Vec<u8>,
    /// The IP bytes (headers and payload) of the datagram's fragments held when it was given
    /// up (its first among them): what the wire carried of it.
    pub wire: u64,
}

/// The fragments held for a datagram given up without its first fragment (it never came):
/// no flow is known for them, but the wire carried them.
#[derive(Clone, Copy, Debug)]
pub struct Headless {
    /// The datagram's source address.
    pub src: IpAddr,
    /// Its destination address.
    pub dst: IpAddr,
    /// Its IP protocol.
    pub proto: u8,
    /// When its first fragment held was captured.
    pub ts: Timestamp,
    /// That fragment's capture interface.
    pub interface: u32,
    /// The IP bytes (headers and payload) of its fragments held.
    pub wire: u64,
    /// How many fragments were held.
    pub fragments: u32,
}

/// A datagram made whole.
#[derive(Debug)]
pub struct Whole {
    /// Its first fragment (its packet gives the addresses, protocol, tunnel and header
    /// length).
    pub first: First,
    /// The payload. Give the buffer back with [`Defrag::recycle`].
    pub data: Vec<u8>,
    /// The IP bytes (headers and payload) of all its fragments: what the wire carried, where
    /// the datagram made whole has one IP header.
    pub wire: u64,
    /// How many fragments it came in.
    pub fragments: u32,
}

/// What became of a fragment.
#[derive(Debug)]
pub enum Added {
    /// Held until the rest of its datagram comes.
    Held,
    /// It completed its datagram (boxed: it carries the first fragment's packet).
    Whole(Box<Whole>),
    /// Its datagram cannot be reassembled: a first fragment is analyzed alone; any other is
    /// only counted. `inconsistent`: this fragment showed the datagram's fragments do not fit
    /// together.
    Alone {
        /// The datagram was given up as inconsistent just now.
        inconsistent: bool,
    },
}

#[derive(Debug)]
struct Datagram {
    since: Timestamp,
    /// Payload bytes by offset; empty once given up.
    data: Vec<u8>,
    /// Ranges received, sorted, disjoint and not touching.
    have: Vec<(u32, u32)>,
    /// The payload's length, known from the last fragment.
    total: Option<u32>,
    first: Option<First>,
    /// Given up: later fragments are dropped until the timeout.
    dead: bool,
    /// The IP bytes of the fragments held (each one's IP header and payload), and how many.
    wire: u64,
    fragments: u32,
    /// The capture interface of its first fragment held.
    interface: u32,
}

/// Reassembly counters, reported under `stats.ip.*` and `stats.limits.*`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DefragStats {
    /// Datagrams made whole.
    pub reassembled: u64,
    /// Datagrams whose missing fragments never came (timed out, or the input ended).
    pub incomplete: u64,
    /// Datagrams given up because fragments overlapped with different bytes, or claimed more
    /// than an IP datagram holds, or came in more than [`MAX_PIECES`] pieces.
    pub inconsistent: u64,
    /// Fragments cut by the snap length (their datagram cannot be reassembled).
    pub snapped: u64,
    /// Fragments not reassembled because [`MAX_DATAGRAMS`] or [`MAX_BYTES`] were reached.
    pub untracked: u64,
    /// Most payload bytes held at once.
    pub peak_bytes: u64,
}

/// The reassembly table.
#[derive(Debug, Default)]
pub struct Defrag {
    pending: FxHashMap<Key, Datagram>,
    bytes: usize,
    spare: Vec<Vec<u8>>,
    given_up: std::collections::VecDeque<GivenUp>,
    /// Datagrams given up without their first fragment, not yet taken (at most one a
    /// datagram: bounded by [`MAX_DATAGRAMS`] between two takes).
    headless: std::collections::VecDeque<Headless>,
    /// Counters.
    pub stats: DefragStats,
}

impl Defrag {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Datagrams waiting (given-up ones included, until their timeout).
    pub fn waiting(&self) -> usize {
        self.pending.len()
    }

    /// Payload bytes held for the waiting datagrams.
    pub fn held_bytes(&self) -> usize {
        self.bytes
    }

    /// Adds fragment `part` of packet `ip`, captured at `ts`. First fragments of datagrams
    /// given up meanwhile are queued for [`Defrag::pop_given_up`].
    pub fn add(
        &mut self,
        ip: &IpPacket<'_>,
        part: FragmentPart<'_>,
        ts: Timestamp,
        interface: u32,
        segments: u16,
    ) -> Added {
        let key = Key {
            src: ip.src,
            dst: ip.dst,
            id: part.id,
            proto: ip.proto,
        };
        let snapped = (part.data.len() as u32) < part.wire_len;
        if snapped {
            self.stats.snapped += 1;
        }
        if !self.pending.contains_key(&key) {
            if snapped {
                // Its datagram can never be whole: nothing to wait for.
                return Added::Alone {
                    inconsistent: false,
                };
            }
            if self.pending.len() >= MAX_DATAGRAMS {
                // Given-up datagrams only wait to drop their late fragments: room goes to
                // live ones first.
                self.pending.retain(|_, d| !d.dead);
            }
            if self.pending.len() >= MAX_DATAGRAMS {
                self.stats.untracked += 1;
                return Added::Alone {
                    inconsistent: false,
                };
            }
        }
        let dg = self.pending.entry(key).or_insert_with(|| Datagram {
            since: ts,
            data: self.spare.pop().unwrap_or_default(),
            have: Vec::new(),
            total: None,
            first: None,
            dead: false,
            wire: 0,
            fragments: 0,
            interface,
        });
        if dg.dead {
            return Added::Alone {
                inconsistent: false,
            };
        }
        let end = part.offset.saturating_add(part.wire_len);
        // An empty fragment only says where the datagram ends (when it is the last).
        let grow = if part.wire_len == 0 {
            0
        } else {
            (end as usize).saturating_sub(dg.data.len())
        };
        let why = if snapped {
            Some(GiveUp::Snapped)
        } else if end > MAX_PAYLOAD
            || dg
                .total
                .is_some_and(|t| end > t || (!part.more && t != end))
            || (!part.more && dg.have.last().is_some_and(|&(_, e)| e > end))
        {
            Some(GiveUp::Inconsistent)
        } else if self.bytes + grow > MAX_BYTES {
            Some(GiveUp::Full)
        } else if !place(dg, part) {
            Some(GiveUp::Inconsistent)
        } else {
            None
        };
        if let Some(why) = why {
            let inconsistent = matches!(why, GiveUp::Inconsistent);
            match why {
                GiveUp::Snapped => {}
                GiveUp::Inconsistent => self.stats.inconsistent += 1,
                GiveUp::Full => self.stats.untracked += 1,
            }
            // A first fragment goes alone now, not through the queue (a copy held before it
            // goes through the queue).
            self.give_up(key);
            return Added::Alone { inconsistent };
        }
        if part.offset == 0 {
            dg.first = Some(First::of(ip, part, ts, interface, segments));
        }
        self.bytes += grow;
        dg.wire += u64::from(ip.ip_len);
        dg.fragments += 1;
        self.stats.peak_bytes = self.stats.peak_bytes.max(self.bytes as u64);
        if !part.more {
            dg.total = Some(end);
        }
        if dg.first.is_none() || dg.total.is_none_or(|t| dg.have != [(0, t)]) {
            return Added::Held;
        }
        let dg = self.pending.remove(&key).expect("present");
        self.bytes -= dg.data.len();
        self.stats.reassembled += 1;
        Added::Whole(Box::new(Whole {
            first: dg.first.expect("checked"),
            data: dg.data,
            wire: dg.wire,
            fragments: dg.fragments,
        }))
    }

    /// Gives up the datagrams waiting for more than [`HOLD`], and forgets the given-up ones
    /// older than [`TIMEOUT_V4`] or [`TIMEOUT_V6`]; at the end of the input (`None`), all of
    /// them.
    pub fn expire(&mut self, now: Option<Timestamp>) {
        let older = |since: Timestamp, limit: Nanos| now.is_none_or(|n| n.since(since) > limit);
        let mut late: Vec<(Timestamp, Key)> = self
            .pending
            .iter()
            .filter(|(_, d)| !d.dead && older(d.since, HOLD))
            .map(|(k, d)| (d.since, *k))
            .collect();
        // Oldest first, so the first fragments given up are analyzed in capture order.
        late.sort_unstable_by_key(|&(since, k)| (since, k.src, k.dst, k.id, k.proto));
        for (_, k) in late {
            self.stats.incomplete += 1;
            self.give_up(k);
        }
        self.pending.retain(|k, d| {
            let timeout = if k.src.is_ipv6() {
                TIMEOUT_V6
            } else {
                TIMEOUT_V4
            };
            !(d.dead && older(d.since, timeout))
        });
    }

    /// First fragments of the datagrams given up since the last call, in the order they were.
    pub fn take_given_up(&mut self) -> std::collections::vec_deque::Drain<'_, GivenUp> {
        self.given_up.drain(..)
    }

    /// The first fragment of the oldest datagram given up and not yet taken, if any.
    pub fn pop_given_up(&mut self) -> Option<GivenUp> {
        self.given_up.pop_front()
    }

    /// The datagram given up without its first fragment longest ago and not yet taken, if any
    /// (its fragments held reach no flow; the caller counts their bytes).
    pub fn pop_headless(&mut self) -> Option<Headless> {
        self.headless.pop_front()
    }

    /// Takes back a datagram's buffer for reuse.
    pub fn recycle(&mut self, mut data: Vec<u8>) {
        if self.spare.len() < 16 && (1..=MAX_PAYLOAD as usize).contains(&data.capacity()) {
            data.clear();
            self.spare.push(data);
        }
    }

    /// Marks the datagram of `key` dead and frees its bytes; a first fragment it held is
    /// queued to be analyzed alone.
    fn give_up(&mut self, key: Key) {
        let Some(dg) = self.pending.get_mut(&key) else {
            return;
        };
        if dg.dead {
            return;
        }
        dg.dead = true;
        dg.have = Vec::new();
        self.bytes -= dg.data.len();
        let data = std::mem::take(&mut dg.data);
        match dg.first.take() {
            Some(first) => self.given_up.push_back(GivenUp {
                first,
                data,
                wire: dg.wire,
            }),
            None => {
                if dg.fragments > 0 {
                    self.headless.push_back(Headless {
                        src: key.src,
                        dst: key.dst,
                        proto: key.proto,
                        ts: dg.since,
                        interface: dg.interface,
                        wire: dg.wire,
                        fragments: dg.fragments,
                    });
                }
                self.recycle(data)
            }
        }
    }
}

enum GiveUp {
    Snapped,
    Inconsistent,
    Full,
}

/// Copies `part` into `dg` (its buffer grown to the fragment's end); false, leaving `dg` as
/// it was, when the fragment overlaps bytes already there with different ones or would leave
/// more than [`MAX_PIECES`] pieces.
fn place(dg: &mut Datagram, part: FragmentPart<'_>) -> bool {
    let (start, end) = (part.offset, part.offset + part.data.len() as u32);
    if start == end {
        return true;
    }
    for &(a, b) in &dg.have {
        let (lo, hi) = (a.max(start), b.min(end));
        if lo < hi
            && dg.data[lo as usize..hi as usize]
                != part.data[(lo - start) as usize..(hi - start) as usize]
        {
            return false;
        }
    }
    // Merge [start, end) into the sorted ranges, in place: the ones it overlaps or touches,
    // [i, j), become one.
    let i = dg.have.partition_point(|&(_, b)| b < start);
    let j = dg.have.partition_point(|&(a, _)| a <= end);
    if dg.have.len() - (j - i) + 1 > MAX_PIECES {
        return false;
    }
    let merged = if i < j {
        (start.min(dg.have[i].0), end.max(dg.have[j - 1].1))
    } else {
        (start, end)
    };
    dg.have.splice(i..j, [merged]);
    if dg.data.len() < end as usize {
        dg.data.resize(end as usize, 0);
    }
    dg.data[start as usize..end as usize].copy_from_slice(part.data);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(part: FragmentPart<'_>) -> IpPacket<'_> {
        IpPacket {
            src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            proto: 17,
            ip_len: 20 + part.wire_len,
            fragment: true,
            truncated: false,
            transport: Transport::Fragment(part),
            tunnel_depth: 0,
            outer: None,
            ident: 0,
            ttl: 64,
        }
    }

    fn add(d: &mut Defrag, offset: u32, data: &[u8], more: bool) -> Added {
        let part = FragmentPart {
            id: 1,
            offset,
            more,
            data,
            wire_len: data.len() as u32,
            header_len: 20,
        };
        d.add(&ip(part), part, Timestamp(0), 0, 1)
    }

    #[test]
    fn an_empty_fragment_far_ahead_does_not_pad_the_datagram() {
        // Found by the `defrag` fuzz target: an empty fragment at 2,048 grew the buffer with
        // zeros, and the datagram made whole by a 128-byte last fragment at 0 carried them.
        let mut d = Defrag::new();
        assert!(matches!(add(&mut d, 2048, &[], true), Added::Held));
        assert_eq!(d.held_bytes(), 0);
        let data = [7u8; 128];
        match add(&mut d, 0, &data, false) {
            Added::Whole(w) => assert_eq!(w.data, data),
            other => panic!("{other:?}"),
        }
        assert_eq!((d.waiting(), d.held_bytes()), (0, 0));
    }

    #[test]
    fn pieces_in_any_order_and_repeated_make_the_datagram() {
        // Bytes 0..24 in three pieces, the middle one twice, the last first.
        let all: Vec<u8> = (0..24).collect();
        let mut d = Defrag::new();
        assert!(matches!(add(&mut d, 16, &all[16..], false), Added::Held));
        assert!(matches!(add(&mut d, 8, &all[8..16], true), Added::Held));
        assert!(matches!(add(&mut d, 8, &all[8..16], true), Added::Held));
        match add(&mut d, 0, &all[..8], true) {
            Added::Whole(w) => assert_eq!(w.data, all),
            other => panic!("{other:?}"),
        }
        assert_eq!(d.stats.reassembled, 1);
    }

    #[test]
    fn a_piece_past_the_end_or_disagreeing_gives_the_datagram_up() {
        let mut d = Defrag::new();
        add(&mut d, 0, &[1; 8], true);
        add(&mut d, 16, &[2; 8], false);
        // Past the end the last fragment set.
        assert!(matches!(
            add(&mut d, 24, &[3; 8], true),
            Added::Alone { .. }
        ));
        assert_eq!(d.stats.inconsistent, 1);
        // The first fragment, held, is handed back to be analyzed alone.
        let given: Vec<_> = d.take_given_up().collect();
        assert_eq!(given.len(), 1);
        let first = given[0].first.packet(&given[0].data);
        assert!(matches!(first.transport, Transport::Fragment(p) if p.data == [1; 8]));
        // Later fragments of the given-up datagram are dropped, not started afresh.
        assert!(matches!(add(&mut d, 0, &[1; 8], true), Added::Alone { .. }));
        assert_eq!(d.held_bytes(), 0);

        let mut d = Defrag::new();
        add(&mut d, 0, &[1; 16], true);
        assert!(matches!(
            add(&mut d, 8, &[9; 16], false),
            Added::Alone { .. }
        ));
        assert_eq!(d.stats.inconsistent, 1);
    }

    #[test]
    fn waiting_datagrams_are_given_up_after_the_hold_and_forgotten_after_the_timeout() {
        let mut d = Defrag::new();
        add(&mut d, 0, &[1; 16], true);
        d.expire(Some(Timestamp(HOLD)));
        assert_eq!(d.stats.incomplete, 0, "not yet: exactly the hold");
        d.expire(Some(Timestamp(HOLD + 1)));
        assert_eq!(d.stats.incomplete, 1);
        assert_eq!(d.take_given_up().count(), 1);
        // Its bytes are freed; a late fragment is recognized and dropped.
        assert_eq!((d.waiting(), d.held_bytes()), (1, 0));
        assert!(matches!(
            add(&mut d, 16, &[1; 8], false),
            Added::Alone { .. }
        ));
        d.expire(Some(Timestamp(TIMEOUT_V4 + 1)));
        assert_eq!(d.waiting(), 0);
        assert_eq!(d.stats.incomplete, 1);
    }

    #[test]
    fn a_snapped_fragment_waits_for_nothing() {
        let mut d = Defrag::new();
        let part = FragmentPart {
            id: 1,
            offset: 0,
            more: true,
            data: &[1; 8],
            wire_len: 64,
            header_len: 20,
        };
        assert!(matches!(
            d.add(&ip(part), part, Timestamp(0), 0, 1),
            Added::Alone { .. }
        ));
        assert_eq!((d.waiting(), d.stats.snapped), (0, 1));
    }
}
