//! The flow table: a hash index over a slab of flows, with one LRU list per timeout class so
//! that idle eviction only ever looks at list heads (O(1) per evicted flow, no scans).

use super::key::{Dir, FlowKey};
use super::tcp::{Phase, TcpConn};
use crate::time::{NANOS_PER_SEC, Nanos, Timestamp};
use rustc_hash::FxHashMap;

/// Limits and timeouts of the flow table (capture time).
#[derive(Clone, Debug)]
pub struct FlowConfig {
    /// Most flows held at once; beyond it the least recently active flow is evicted.
    pub max_flows: usize,
    /// Most bytes the table may take (its slab and index, [`FlowTable::bytes_per_flow`] each,
    /// and `extra_per_flow`); lowers `max_flows` when smaller.
    pub max_memory: usize,
    /// Bytes kept elsewhere for each flow held, counted against `max_memory` with the table's
    /// own (the analyzers' run-wide state kept by flow id, [`crate::analyze::run_bytes_per_flow`]).
    pub extra_per_flow: usize,
    /// Idle time after which an open TCP connection is ended.
    pub tcp_idle: Nanos,
    /// Idle time after which a UDP (or other) flow is ended.
    pub udp_idle: Nanos,
    /// How long a closed TCP connection lingers to absorb late segments (final ACKs,
    /// retransmitted FINs) before it is ended.
    pub closed_linger: Nanos,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            max_flows: 1_000_000,
            max_memory: 1 << 30,
            extra_per_flow: 0,
            tcp_idle: 7200 * NANOS_PER_SEC,
            udp_idle: 900 * NANOS_PER_SEC,
            closed_linger: 120 * NANOS_PER_SEC,
        }
    }
}

/// Why a flow left the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// Idle for longer than its timeout (or closed and lingered).
    Idle,
    /// Evicted to make room (the table was full).
    Capacity,
    /// A new connection reused its ports.
    PortReuse,
    /// The input ended, at this capture time (the last frame's).
    EndOfInput(Timestamp),
}

impl EndReason {
    /// When the input ended, for a flow that ended with it.
    pub fn input_end(self) -> Option<Timestamp> {
        match self {
            EndReason::EndOfInput(t) => Some(t),
            _ => None,
        }
    }
}

/// Flow-table counters.
#[derive(Clone, Debug, Default)]
pub struct FlowStats {
    /// TCP flows created.
    pub tcp: u64,
    /// UDP flows created.
    pub udp: u64,
    /// Other-protocol flows created.
    pub other: u64,
    /// Flows ended by idle timeout.
    pub evicted_idle: u64,
    /// Flows evicted because the table was full.
    pub evicted_capacity: u64,
    /// Connections ended because a new SYN reused their ports.
    pub port_reuse: u64,
    /// Most flows held at once.
    pub peak_active: u64,
}

const NIL: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    TcpOpen = 0,
    Closed = 1,
    Other = 2,
}

/// One bidirectional flow. `E` is the analyzers' per-flow state.
#[derive(Debug)]
pub struct Flow<E> {
    /// The flow's key.
    pub key: FlowKey,
    /// Sequence number of the flow in this run (deterministic).
    pub id: u64,
    /// First packet time.
    pub first_ts: Timestamp,
    /// Last packet time.
    pub last_ts: Timestamp,
    /// Direction of the first packet seen.
    pub first_dir: Dir,
    /// Packets per direction ([`Dir::idx`]).
    pub packets: [u64; 2],
    /// IP bytes on the wire per direction.
    pub bytes: [u64; 2],
    /// TCP state (meaningful for TCP flows only).
    pub tcp: TcpConn,
    /// Analyzer state.
    pub ext: E,
}

/// A flow's place in its LRU list, kept apart from the (large) flows so that moving a flow
/// to the tail on every packet touches its neighbours' links, not their flows.
#[derive(Clone, Copy)]
struct Link {
    prev: u32,
    next: u32,
    class: Class,
}

const UNLINKED: Link = Link {
    prev: NIL,
    next: NIL,
    class: Class::Other,
};

impl<E> Flow<E> {
    /// Direction client → server: from the handshake where there was one, otherwise the
    /// first packet's direction.
    pub fn client_dir(&self) -> Dir {
        self.tcp.client_dir.unwrap_or(self.first_dir)
    }

    /// Who sends in `dir`: "client" or "server", for messages.
    pub fn side_name(&self, dir: Dir) -> &'static str {
        if dir == self.client_dir() {
            "client"
        } else {
            "server"
        }
    }

    /// Client address and port.
    pub fn client(&self) -> (std::net::IpAddr, u16) {
        self.key.src(self.client_dir())
    }

    /// Server address and port.
    pub fn server(&self) -> (std::net::IpAddr, u16) {
        self.key.dst(self.client_dir())
    }
}

#[derive(Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

/// The flow table.
pub struct FlowTable<E> {
    map: FxHashMap<FlowKey, u32>,
    slots: Vec<Option<Flow<E>>>,
    /// `links[i]` is the list place of `slots[i]`'s flow.
    links: Vec<Link>,
    free: Vec<u32>,
    lists: [List; 3],
    cfg: FlowConfig,
    next_id: u64,
    /// Counters.
    pub stats: FlowStats,
}

impl<E: Default> FlowTable<E> {
    /// An empty table.
    pub fn new(cfg: FlowConfig) -> Self {
        FlowTable {
            map: FxHashMap::default(),
            slots: Vec::new(),
            links: Vec::new(),
            free: Vec::new(),
            lists: [List {
                head: NIL,
                tail: NIL,
            }; 3],
            cfg: FlowConfig {
                max_flows: cfg
                    .max_flows
                    .min(cfg.max_memory / (Self::bytes_per_flow() + cfg.extra_per_flow))
                    .max(1),
                ..cfg
            },
            next_id: 0,
            stats: FlowStats::default(),
        }
    }

    /// What one held flow costs the table: its slab slot and list links, its index entry
    /// (key, slot number, control byte) and a free-list entry. Heap memory analyzers attach
    /// to a flow is not in it.
    pub const fn bytes_per_flow() -> usize {
        std::mem::size_of::<Option<Flow<E>>>()
            + std::mem::size_of::<Link>()
            + std::mem::size_of::<(FlowKey, u32)>()
            + 1
            + std::mem::size_of::<u32>()
    }

    /// The most flows held at once (the configured count, or fewer to fit the memory limit).
    pub fn max_flows(&self) -> usize {
        self.cfg.max_flows
    }

    /// Flows currently held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no flow is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The index of `key`'s flow, if held.
    pub fn find(&self, key: &FlowKey) -> Option<u32> {
        self.map.get(key).copied()
    }

    /// Finds the flow of `key` or creates it (evicting the least recently active flow into
    /// `ended` when full). Returns the flow's index and whether it is new.
    pub fn get_or_create(
        &mut self,
        key: FlowKey,
        dir: Dir,
        ts: Timestamp,
        ended: &mut Vec<(Flow<E>, EndReason)>,
    ) -> (u32, bool) {
        if let Some(&idx) = self.map.get(&key) {
            return (idx, false);
        }
        if self.map.len() >= self.cfg.max_flows {
            if let Some(victim) = self.lru_victim() {
                let f = self.remove(victim);
                self.stats.evicted_capacity += 1;
                ended.push((f, EndReason::Capacity));
            }
        }
        let class = if key.proto == 6 {
            self.stats.tcp += 1;
            Class::TcpOpen
        } else {
            if key.proto == 17 {
                self.stats.udp += 1;
            } else {
                self.stats.other += 1;
            }
            Class::Other
        };
        let flow = Flow {
            key,
            id: self.next_id,
            first_ts: ts,
            last_ts: ts,
            first_dir: dir,
            packets: [0; 2],
            bytes: [0; 2],
            tcp: TcpConn::default(),
            ext: E::default(),
        };
        self.next_id += 1;
        let idx = match self.free.pop() {
            Some(i) => {
                // Its link was reset when the flow before it was removed.
                self.slots[i as usize] = Some(flow);
                i
            }
            None => {
                if self.slots.len() == self.slots.capacity() {
                    // Grow by doubling, but never past the limit: the slab is most of the
                    // table's memory.
                    let want = (self.slots.len() * 2).clamp(64, self.cfg.max_flows.max(64));
                    let more = want.saturating_sub(self.slots.len()).max(1);
                    self.slots.reserve_exact(more);
                    self.links.reserve_exact(more);
                }
                self.slots.push(Some(flow));
                self.links.push(UNLINKED);
                (self.slots.len() - 1) as u32
            }
        };
        self.map.insert(key, idx);
        self.push_tail(idx, class);
        self.stats.peak_active = self.stats.peak_active.max(self.map.len() as u64);
        (idx, true)
    }

    /// The flow at `idx`.
    ///
    /// # Panics
    /// If `idx` is not a live flow (a caller bug).
    pub fn get_mut(&mut self, idx: u32) -> &mut Flow<E> {
        self.slots[idx as usize]
            .as_mut()
            .expect("flow index refers to a live flow")
    }

    /// Records a packet: updates counters and moves the flow to the tail of its LRU list
    /// (changing list when a TCP connection has closed).
    pub fn touch(&mut self, idx: u32, dir: Dir, ts: Timestamp, ip_len: u32) {
        let class = self.links[idx as usize].class;
        let f = self.get_mut(idx);
        if ts > f.last_ts {
            f.last_ts = ts;
        }
        f.packets[dir.idx()] += 1;
        f.bytes[dir.idx()] += u64::from(ip_len);
        // An attempt nothing at all answered (one side seen, its SYNs) ends as a closed
        // connection does, `closed_linger` after its last SYN (a client gives up long before),
        // not after `tcp_idle`: its failure is then known within minutes, and under memory
        // pressure it goes first. Not for a kernel source's sampled segments, whose phases
        // are not followed closely enough.
        let unanswered = f.tcp.phase == Phase::SynSent
            && !(f.tcp.half[0].seen && f.tcp.half[1].seen)
            && !f.tcp.sampled;
        let closed = f.tcp.phase == Phase::Closed || unanswered;
        let new_class = match class {
            Class::TcpOpen if closed => Class::Closed,
            Class::Closed if !closed => Class::TcpOpen,
            c => c,
        };
        self.move_to_tail(idx, class, new_class);
    }

    /// Marks the flow active at `ts` without a packet (a source that counts packets elsewhere
    /// saw it move): it stays out of idle expiry like a flow that got a packet.
    pub fn refresh(&mut self, idx: u32, ts: Timestamp) {
        let f = self.get_mut(idx);
        if ts <= f.last_ts {
            return;
        }
        f.last_ts = ts;
        let class = self.links[idx as usize].class;
        self.move_to_tail(idx, class, class);
    }

    /// Makes the flow at `idx` the most recent of list `to` (it is in list `from`).
    fn move_to_tail(&mut self, idx: u32, from: Class, to: Class) {
        if from == to && self.lists[from as usize].tail == idx {
            // Already there (a flow's packets often come in a row).
            return;
        }
        self.unlink(idx, from);
        self.push_tail(idx, to);
    }

    /// Removes the flow at `idx` and returns it.
    pub fn remove(&mut self, idx: u32) -> Flow<E> {
        let class = self.links[idx as usize].class;
        self.unlink(idx, class);
        let f = self.slots[idx as usize]
            .take()
            .expect("flow index refers to a live flow");
        self.map.remove(&f.key);
        self.free.push(idx);
        f
    }

    /// Ends every flow idle for longer than its timeout at capture time `now`.
    pub fn expire(&mut self, now: Timestamp, ended: &mut Vec<(Flow<E>, EndReason)>) {
        for class in [Class::Closed, Class::TcpOpen, Class::Other] {
            let timeout = match class {
                Class::TcpOpen => self.cfg.tcp_idle,
                Class::Closed => self.cfg.closed_linger,
                Class::Other => self.cfg.udp_idle,
            };
            loop {
                let head = self.lists[class as usize].head;
                if head == NIL {
                    break;
                }
                let last = self.slots[head as usize]
                    .as_ref()
                    .map_or(now, |f| f.last_ts);
                if now.since(last) <= timeout {
                    break;
                }
                let f = self.remove(head);
                self.stats.evicted_idle += 1;
                ended.push((f, EndReason::Idle));
            }
        }
    }

    /// Removes every flow, in creation order: the input ended at `now`.
    pub fn drain(&mut self, now: Timestamp, ended: &mut Vec<(Flow<E>, EndReason)>) {
        for idx in self.creation_order() {
            ended.push((self.remove(idx), EndReason::EndOfInput(now)));
        }
        self.clear();
    }

    /// The indices of every held flow, oldest first: a caller that removes them a batch at a
    /// time never holds a million flows twice.
    pub fn creation_order(&self) -> Vec<u32> {
        let mut v: Vec<(u64, u32)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.as_ref().map(|f| (f.id, i as u32)))
            .collect();
        v.sort_unstable();
        v.into_iter().map(|(_, i)| i).collect()
    }

    /// Frees the table's memory once it is empty.
    pub fn clear(&mut self) {
        debug_assert!(self.map.is_empty());
        self.map = FxHashMap::default();
        self.slots = Vec::new();
        self.links = Vec::new();
        self.free = Vec::new();
        self.lists = [List {
            head: NIL,
            tail: NIL,
        }; 3];
    }

    fn lru_victim(&self) -> Option<u32> {
        let closed = self.lists[Class::Closed as usize].head;
        if closed != NIL {
            return Some(closed);
        }
        let a = self.lists[Class::TcpOpen as usize].head;
        let b = self.lists[Class::Other as usize].head;
        match (a, b) {
            (NIL, NIL) => None,
            (x, NIL) | (NIL, x) => Some(x),
            (x, y) => {
                let tx = self.slots[x as usize].as_ref().map(|f| f.last_ts);
                let ty = self.slots[y as usize].as_ref().map(|f| f.last_ts);
                Some(if tx <= ty { x } else { y })
            }
        }
    }

    fn unlink(&mut self, idx: u32, class: Class) {
        let Link { prev, next, .. } = std::mem::replace(&mut self.links[idx as usize], UNLINKED);
        let list = &mut self.lists[class as usize];
        if prev == NIL {
            list.head = next;
        } else {
            self.links[prev as usize].next = next;
        }
        if next == NIL {
            list.tail = prev;
        } else {
            self.links[next as usize].prev = prev;
        }
    }

    fn push_tail(&mut self, idx: u32, class: Class) {
        let list = &mut self.lists[class as usize];
        let tail = list.tail;
        if tail == NIL {
            list.head = idx;
        } else {
            self.links[tail as usize].next = idx;
        }
        list.tail = idx;
        self.links[idx as usize] = Link {
            prev: tail,
            next: NIL,
            class,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn key(port: u16, proto: u8) -> (FlowKey, Dir) {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        FlowKey::new(a, port, b, 80, proto)
    }

    fn secs(s: i64) -> Timestamp {
        Timestamp(s * NANOS_PER_SEC)
    }

    #[test]
    fn idle_udp_flow_expires_after_timeout_only() {
        let mut t: FlowTable<()> = FlowTable::new(FlowConfig {
            udp_idle: 10 * NANOS_PER_SEC,
            ..FlowConfig::default()
        });
        let mut ended = Vec::new();
        let (k, d) = key(1000, 17);
        let (i, new) = t.get_or_create(k, d, secs(0), &mut ended);
        assert!(new);
        t.touch(i, d, secs(0), 100);
        t.expire(secs(10), &mut ended);
        assert!(ended.is_empty(), "not idle for longer than 10 s yet");
        t.expire(secs(11), &mut ended);
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].1, EndReason::Idle);
        assert_eq!(ended[0].0.bytes[d.idx()], 100);
        assert!(t.is_empty());
        assert_eq!(t.stats.evicted_idle, 1);
    }

    #[test]
    fn full_table_evicts_least_recently_active() {
        let mut t: FlowTable<()> = FlowTable::new(FlowConfig {
            max_flows: 2,
            ..FlowConfig::default()
        });
        let mut ended = Vec::new();
        let (k1, d1) = key(1, 17);
        let (k2, d2) = key(2, 17);
        let (k3, d3) = key(3, 17);
        let (i1, _) = t.get_or_create(k1, d1, secs(0), &mut ended);
        t.touch(i1, d1, secs(0), 1);
        let (i2, _) = t.get_or_create(k2, d2, secs(1), &mut ended);
        t.touch(i2, d2, secs(1), 1);
        // Flow 1 becomes the most recent.
        t.touch(i1, d1, secs(2), 1);
        t.get_or_create(k3, d3, secs(3), &mut ended);
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].0.key, k2);
        assert_eq!(ended[0].1, EndReason::Capacity);
        assert_eq!(t.len(), 2);
        assert!(t.find(&k1).is_some() && t.find(&k3).is_some());
        assert_eq!(t.stats.evicted_capacity, 1);
    }

    #[test]
    fn drain_returns_flows_in_creation_order() {
        let mut t: FlowTable<()> = FlowTable::new(FlowConfig::default());
        let mut ended = Vec::new();
        for p in [5u16, 3, 9] {
            let (k, d) = key(p, 6);
            t.get_or_create(k, d, secs(0), &mut ended);
        }
        t.drain(secs(1), &mut ended);
        let ports: Vec<u16> = ended.iter().map(|(f, _)| f.key.lo_port).collect();
        assert_eq!(ports, vec![5, 3, 9]);
        assert!(
            ended
                .iter()
                .all(|(_, r)| *r == EndReason::EndOfInput(secs(1)))
        );
    }
}
