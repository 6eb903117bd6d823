//! Bandwidth is infinite (fallacy 3): links running full, and the bulk transfers that fill
//! them.
//!
//! A link is a capture interface; its two directions are client → server and server → client
//! traffic. Throughput is counted in IP bytes over 100 ms buckets and a sliding 1 s window;
//! against a configured capacity (a line rate), each packet counts the bytes its Ethernet
//! frame took on the wire ([`line_bytes`]: an Ethernet frame's length with its FCS, preamble
//! and gap, VLAN tags included, 84 at least; 38 bytes of framing where the frame is not known).
//! The first [`MAX_LINKS`] interfaces seen are followed; packets on others are only counted.
//!
//! Flags:
//! * `bandwidth.saturation` — with a configured capacity (`capacity_mbps` or
//!   `interface_capacity_mbps`): a direction whose 1 s throughput stayed at or above
//!   `saturation_threshold` of it for at least `min_saturation_secs`; evidence: start,
//!   duration (to the end of the last 100 ms itself over the threshold), peak 1 s and 100 ms rates, top talkers during the episode (medium);
//! * `bandwidth.saturation.inferred` — without a capacity: a direction held within 20 % of its
//!   peak 1 s rate for at least 0.5 s while the handshake RTT of connections opened meanwhile
//!   was at least 5 times their RTT the rest of the time — a full queue; the plateau is the
//!   estimated capacity (medium). Evaluated over the last hour of traffic at the end of the
//!   run;
//! * `bandwidth.bulk_transfer` — a flow that moved at least `bulk_threshold_bytes`: duration
//!   (first to last payload, not the idle time of a connection kept open around it),
//!   throughput, share of its link while it ran (null on a link not followed, or for a flow
//!   seen on more than one interface), and what limited it — the receiver (zero
//!   windows, or at least 5 % of segments filling its window, or leaving less than a segment
//!   of it open), loss (at least 1 %
//!   retransmitted), or otherwise the sender or the path (low).
//!
//! Not flagged: a UDP tunnel's own flow (the flows decoded inside it are the transfers), short
//! bursts (under `min_saturation_secs`), fast links without queueing delay.

use super::{AFlow, Analyzer, Counter, Facts as AllFacts, FlowHalf, FlowInfo, PacketView};
use crate::config::BandwidthSection;
use crate::finding::{Fallacy, Finding, FlowRef, Severity};
use crate::flow::EndReason;
use crate::flow::tcp::TcpEvents;
use crate::time::{NANOS_PER_SEC, Nanos, Timestamp};
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::collections::VecDeque;
use std::net::IpAddr;

const BUCKET: Nanos = 100_000_000;
const WINDOW_BUCKETS: usize = 10;
/// History kept for inference: one hour of 100 ms buckets.
const HISTORY: usize = 36_000;
const MAX_TALKERS: usize = 256;
/// Seconds of a link's running byte count kept, one count a second: a flow ends (and its
/// share of the link is judged) up to `tcp_idle_timeout_secs` after its last packet, and the
/// link's bytes after that packet are not its competitors'. 56 KiB a link.
const TOTALS_SECS: usize = 7200;
/// Capture interfaces followed as links (each holds up to two [`HISTORY`]s, about 1.4 MB when
/// full); packets on further interfaces (a pcapng may describe any number) are counted in
/// `limits.bandwidth_packets_untracked` and not followed.
pub const MAX_LINKS: usize = 64;
/// Flows of at least 1 MB kept for the top talkers of an inferred saturation; beyond it,
/// flows that ended before the retained history are forgotten first, then the smallest.
const MAX_LARGE_FLOWS: usize = 1024;

/// Per-flow state of the bandwidth analyzer.
#[derive(Debug, Default)]
pub struct BandwidthFlow {
    started: bool,
    iface: u32,
    /// The first and latest packets that carried payload (any packet of a flow without TCP):
    /// a transfer's duration, without the idle time before or after it on a connection kept
    /// open.
    /// (`has_data`: any yet; kept apart so that the flags share one word.)
    data: (Timestamp, Timestamp),
    has_data: bool,
    /// A UDP tunnel's own flow (VXLAN, Geneve, GTP-U, Teredo) whose packets were decoded:
    /// the flows inside it are the transfers, its bytes are theirs.
    carrier: bool,
}

impl BandwidthFlow {
    /// This flow carries a tunnel whose inner flows are analyzed.
    pub fn note_carrier(&mut self) {
        self.carrier = true;
    }
}

/// What the bandwidth analyzer's per-flow half found about one packet.
#[derive(Clone, Copy, Debug, Default)]
pub struct Facts {
    /// The flow's first packet with payload (any packet of a flow without TCP), with the
    /// flow's bytes before it: where its share of the link starts, not at a handshake made
    /// long before (a pooled connection).
    start: Option<u64>,
    /// The flow was seen on another interface than its first (its share of one link is then
    /// not known).
    moved: bool,
}

/// Flows whose link's bytes before they started are held at once (see
/// [`Bandwidth::starts`]): more than the default flow table holds. A flow beyond gets no link
/// share, counted in `limits.bandwidth_link_shares_untracked`.
const MAX_STARTS: usize = 1 << 20;
/// What [`Starts`] takes for one flow at most.
pub(crate) const START_BYTES: usize = super::map_entry_bytes::<u64, u64>();

/// Each open flow's link's bytes before its first payload, by flow id.
#[derive(Default)]
struct Starts {
    by_flow: FxHashMap<u64, u64>,
    /// Flows refused a place (beyond [`MAX_STARTS`]).
    refused: u64,
}

impl Starts {
    /// Flow `id`'s first payload came with `total` bytes on its link.
    fn note(&mut self, id: u64, total: u64) {
        if self.by_flow.len() < MAX_STARTS {
            self.by_flow.insert(id, total);
        } else {
            self.refused += 1;
        }
    }

    /// Flow `id`'s start, forgotten.
    fn take(&mut self, id: u64) -> Option<u64> {
        if self.by_flow.is_empty() {
            return None;
        }
        self.by_flow.remove(&id)
    }
}

/// The bandwidth analyzer's per-flow half.
pub(crate) struct Half;

impl FlowHalf for Half {
    fn on_packet(
        &self,
        pkt: &PacketView<'_>,
        flow: &mut AFlow,
        facts: &mut AllFacts,
        _notes: &mut Vec<super::Note>,
        _out: &mut Vec<Finding>,
    ) {
        let st = &mut flow.ext.bandwidth;
        if !st.started {
            st.started = true;
            st.iface = pkt.interface;
        } else if st.iface != pkt.interface {
            facts.bandwidth.moved = true;
        }
        // (A keep-alive's one byte, sent one below the next sequence number, is no payload:
        // it marks a connection idling.)
        let payload = match &pkt.ip.transport {
            crate::decode::Transport::Tcp(seg) => {
                seg.seg_len > 0
                    && !pkt
                        .tcp
                        .is_some_and(|u| u.analysis.has(crate::flow::tcp::SegFlags::KEEP_ALIVE))
            }
            _ => true,
        };
        if payload && let crate::decode::Transport::Tcp(seg) = &pkt.ip.transport {
            let rev = &flow.tcp.half[pkt.dir.rev().idx()];
            if rev.window_seen
                && let Some((acked, _)) = rev.last_ack
            {
                // (A retransmission below what was acknowledged is not in flight; more in
                // flight than the window allows means its scale is not known: a connection
                // whose handshake was not seen.)
                let in_flight = crate::flow::SeqNum(seg.seq).plus(seg.seg_len).diff(acked);
                // A segment: the MSS the receiver announced, or (its handshake not seen)
                // this one's length, of each packet a receiver's GRO merged into it.
                let segment = rev
                    .mss
                    .map_or(seg.seg_len / u32::from(pkt.segments.max(1)), u32::from);
                if in_flight > 0
                    && (in_flight as u32) <= rev.window_scaled
                    && rev.window_scaled - (in_flight as u32) < segment
                {
                    // Kept in the TCP state's padding: the per-flow size stays as it was.
                    let n = &mut flow.tcp.half[pkt.dir.idx()].window_bound;
                    *n = n.saturating_add(1);
                }
            }
        }
        if payload {
            st.data = if st.has_data {
                (st.data.0.min(pkt.ts), st.data.1.max(pkt.ts))
            } else {
                // (Not on another link than the flow's first: its share is then unknown.)
                if !facts.bandwidth.moved {
                    let before = flow.bytes[0] + flow.bytes[1];
                    facts.bandwidth.start = Some(before.saturating_sub(u64::from(pkt.ip.ip_len)));
                }
                (pkt.ts, pkt.ts)
            };
            st.has_data = true;
        }
    }
}

type Endpoint = (IpAddr, u16);

struct Episode {
    start: Timestamp,
    last: Timestamp,
    peak_1s_bps: f64,
    peak_100ms_bps: f64,
    talkers: Talkers,
}

#[derive(Default)]
struct Link {
    ring: [[u64; 2]; WINDOW_BUCKETS],
    cur: i64,
    window: [u64; 2],
    total: u64,
    /// (bucket, 1 s rolling bytes per direction) for each bucket that had traffic.
    history: VecDeque<(i64, [u64; 2])>,
    /// (bucket, handshake RTT µs).
    rtts: VecDeque<(i64, u64)>,
    episode: [Option<Episode>; 2],
    /// `total` at the end of each of the last [`TOTALS_SECS`] capture seconds (by second
    /// modulo their number), made on the link's first packet.
    totals: Vec<u64>,
    /// The capture second `total` is counting now.
    totals_sec: i64,
    /// A link with a capacity: each flow's bytes in each bucket of the window (by bucket
    /// modulo [`WINDOW_BUCKETS`]) and direction, at most [`MAX_TALKERS`] flows a bucket, so
    /// that a saturation's talkers include the bytes that filled the window it opened on.
    recent: Vec<[Talkers; 2]>,
    /// The history and handshake RTTs of earlier stretches of the capture, before its clock
    /// stepped back (see [`Bandwidth::restart`]), at most [`MAX_STRETCHES`]: inferred at the
    /// end of the run, when the flows that moved their bytes have ended and are known.
    past: Vec<Stretch>,
    /// Times a flow was left out of (or forgotten by) a full talkers map (see [`Talkers::add`]).
    talkers_dropped: u64,
    /// The analyzer's clock (the latest capture time of any link) at this link's latest
    /// packet: how long it has been quiet is told on that clock, not on its own, so that an
    /// interface whose clock runs behind the others' is not taken for a quiet one.
    seen: Timestamp,
}

/// An earlier stretch of a link's history: (bucket, 1 s bytes per direction) and (bucket,
/// handshake RTT µs), as in [`Link`].
type Stretch = (VecDeque<(i64, [u64; 2])>, VecDeque<(i64, u64)>);

/// Capture time a link with an open episode goes without a packet (on [`Bandwidth`]'s clock)
/// before its episode is closed by [`Analyzer::on_tick`]: longer than the 1 s window, so that
/// the link's next packet, if any, falls after the buckets closed.
const QUIET: Nanos = 2 * NANOS_PER_SEC;

/// Earlier stretches kept per link for inference at the end of the run; a clock stepping
/// back more often has the oldest inferred when it steps back (its talkers then only the
/// flows ended by then).
const MAX_STRETCHES: usize = 4;

/// Bytes per flow (client, server), at most [`MAX_TALKERS`] flows.
#[derive(Default)]
struct Talkers {
    flows: FxHashMap<(Endpoint, Endpoint), u64>,
    /// No flow held has fewer bytes (flows only gain bytes; set by the last look for the
    /// lightest), so a packet bringing no more than this cannot take a place: no look.
    floor: u64,
}

impl Talkers {
    /// Adds `bytes` to `key`'s. When full, a flow not held takes the place of the one with
    /// the fewest bytes if it brings more, so that a heavy flow arriving after many light
    /// ones is still among the talkers (a flow forgotten and taken again counts its bytes
    /// from then on); each time a flow is left out or forgotten so is counted in `dropped`.
    /// The look for the lightest (all [`MAX_TALKERS`] flows) is made only by a packet
    /// bringing more than `floor`, and each look raises `floor` or replaces a flow: a flood
    /// of equal packets from new flows costs one look, not one a packet.
    fn add(&mut self, key: (Endpoint, Endpoint), bytes: u64, dropped: &mut u64) {
        if let Some(b) = self.flows.get_mut(&key) {
            *b += bytes;
            return;
        }
        if self.flows.len() < MAX_TALKERS {
            self.flows.insert(key, bytes);
            return;
        }
        *dropped += 1;
        if bytes <= self.floor {
            return;
        }
        let (mut least, mut min, mut second) = (None, u64::MAX, u64::MAX);
        for (k, &b) in &self.flows {
            if b < min {
                (least, second, min) = (Some(*k), min, b);
            } else if b < second {
                second = b;
            }
        }
        match least {
            Some(k) if min < bytes => {
                self.flows.remove(&k);
                self.flows.insert(key, bytes);
                self.floor = second.min(bytes);
            }
            _ => self.floor = min,
        }
    }

    fn clear(&mut self) {
        self.flows.clear();
        self.floor = 0;
    }
}

impl Link {
    /// Adds `ip_bytes` sent in direction `d` to the window's bucket `bucket` (current or
    /// ahead); against a capacity (a line rate) it counts the bytes the frames took on the
    /// wire, `line()`. Returns the bucket's slot.
    fn add_rate(
        &mut self,
        bucket: i64,
        d: usize,
        ip_bytes: u64,
        line: impl FnOnce() -> u64,
    ) -> usize {
        let slot = bucket.rem_euclid(WINDOW_BUCKETS as i64) as usize;
        let b = if self.recent.is_empty() {
            ip_bytes
        } else {
            line()
        };
        self.ring[slot][d] += b;
        self.window[d] += b;
        slot
    }

    /// The link's clock reached capture second `sec`: the seconds it left are noted.
    #[inline]
    fn note_second(&mut self, sec: i64) {
        if sec <= self.totals_sec && !self.totals.is_empty() {
            return;
        }
        if self.totals.is_empty() {
            self.totals.resize(TOTALS_SECS, 0);
            self.totals_sec = sec;
            return;
        }
        let left = (sec - self.totals_sec).min(TOTALS_SECS as i64);
        for s in sec - left..sec {
            self.totals[s.rem_euclid(TOTALS_SECS as i64) as usize] = self.total;
        }
        self.totals_sec = sec;
    }

    /// The link's bytes up to the end of the capture second holding `ts` (all of them, if
    /// that second is older than what is kept).
    fn total_by(&self, ts: Timestamp) -> u64 {
        let sec = ts.0.div_euclid(NANOS_PER_SEC);
        if sec >= self.totals_sec || self.totals_sec - sec > TOTALS_SECS as i64 {
            return self.total;
        }
        self.totals[sec.rem_euclid(TOTALS_SECS as i64) as usize]
    }
}

struct LargeFlow {
    client: Endpoint,
    server: Endpoint,
    bytes: u64,
    /// Its first and last payload (a pooled connection idling around its transfer was no
    /// talker while it idled).
    first: Timestamp,
    last: Timestamp,
    iface: u32,
}

#[derive(Serialize)]
struct Talker {
    client: String,
    server: String,
    bytes: u64,
}

#[derive(Serialize)]
struct SaturationEvidence {
    interface: u32,
    direction: &'static str,
    capacity_mbps: f64,
    start: String,
    duration_secs: f64,
    peak_1s_mbps: f64,
    peak_100ms_mbps: f64,
    top_talkers: Vec<Talker>,
}

#[derive(Serialize)]
struct InferredEvidence {
    interface: u32,
    direction: &'static str,
    plateau_mbps: f64,
    plateau_secs: f64,
    handshake_rtt_during_ms: f64,
    handshake_rtt_otherwise_ms: f64,
    samples_during: usize,
    samples_otherwise: usize,
    top_talkers: Vec<Talker>,
}

#[derive(Serialize)]
struct BulkEvidence {
    bytes: u64,
    bytes_client_to_server: u64,
    bytes_server_to_client: u64,
    direction: &'static str,
    duration_secs: f64,
    throughput_mbps: f64,
    link_share: Option<f64>,
    limited_by: &'static str,
    zero_windows: u64,
    window_full_segments: u64,
    window_bound_segments: u32,
    retransmitted_segments: u64,
    data_segments: u64,
}

/// Ethernet's bytes on the wire around a frame's IP bytes: its header (14) and FCS (4), the
/// preamble and start delimiter (8) and the inter-frame gap (12).
const FRAMING: u64 = 38;
/// The least a frame takes on the wire: the minimum frame (64 bytes with its FCS, its IP
/// payload padded to 46) with its preamble, delimiter and gap.
const MIN_LINE: u64 = 84;

/// Ethernet's bytes on the wire around a frame as captured (its header and any VLAN tags
/// included, its FCS not): the FCS (4), the preamble and start delimiter (8) and the
/// inter-frame gap (12).
const FRAME_FRAMING: u64 = 24;

/// What an IP packet of `ip_bytes` takes of an Ethernet line rate: a configured capacity is a
/// line rate, and a flood of small frames fills it with half its bytes framing. `frame_len`:
/// the length on the wire of the Ethernet frame that carried it (its VLAN tags, and a tunnel's
/// outer headers, with it), or 0 when not known (another link type, a reassembled datagram):
/// then 38 bytes of untagged framing.
fn line_bytes(ip_bytes: u64, frame_len: u32) -> u64 {
    if frame_len > 0 {
        (u64::from(frame_len) + FRAME_FRAMING).max(MIN_LINE)
    } else {
        (ip_bytes + FRAMING).max(MIN_LINE)
    }
}

/// The start of a bucket, saturating at the ends of time (captures can carry timestamps at
/// the very limit of what a nanosecond clock holds).
fn bucket_start(bucket: i64) -> Timestamp {
    Timestamp(bucket.saturating_mul(BUCKET))
}

fn dir_name(d: usize) -> &'static str {
    if d == 0 {
        "client_to_server"
    } else {
        "server_to_client"
    }
}

/// The plateau (an index into `plateaus`: runs `(first, last, buckets)` in bucket order, more
/// than a window apart) whose queue each RTT sample saw — a plateau bucket ends a 1 s window,
/// so the queue was full over `[first - 1 s, last]` — as `(plateau, rtt)`, and the samples that
/// saw none. A binary search a sample: the samples need not be in order (a clock stepping
/// back), the plateaus are.
fn split_by_plateau(
    rtts: &VecDeque<(i64, u64)>,
    plateaus: &[(i64, i64, usize)],
) -> (Vec<u64>, Vec<(usize, u64)>) {
    let (mut otherwise, mut during) = (Vec::new(), Vec::new());
    for &(b, r) in rtts {
        let i = plateaus.partition_point(|&(_, last, _)| last < b);
        match plateaus.get(i) {
            Some(&(first, _, _)) if b >= first - WINDOW_BUCKETS as i64 => during.push((i, r)),
            _ => otherwise.push(r),
        }
    }
    (otherwise, during)
}

/// The first bucket with traffic in direction `d` in the 1 s window ending at `history[j]`'s
/// bucket (a plateau's first), when the history shows it — the window ending just before that
/// bucket carried nothing that way — or else that window's first bucket: a plateau reached
/// from silence starts with its first byte, not up to 0.9 s before it.
fn traffic_start(history: &VecDeque<(i64, [u64; 2])>, j: usize, d: usize) -> i64 {
    let b = history[j].0;
    let earliest = b.saturating_sub(WINDOW_BUCKETS as i64 - 1);
    let (mut s, mut k) = (b, j);
    while s > earliest {
        if k == 0 {
            // The oldest bucket kept: before it, nothing (or, the history full, not known).
            return if history.len() >= HISTORY {
                earliest
            } else {
                s
            };
        }
        match history[k - 1] {
            // A window ending at `s - 1` with traffic that way: its traffic may be older.
            (pb, w) if pb == s - 1 && w[d] > 0 => (s, k) = (pb, k - 1),
            // None (not kept: nothing either way) or none that way: `s` has the first.
            _ => return s,
        }
    }
    earliest
}

fn median(v: &mut [u64]) -> f64 {
    v.sort_unstable();
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2] as f64,
        n => (v[n / 2 - 1] + v[n / 2]) as f64 / 2.0,
    }
}

fn secs(n: Nanos) -> f64 {
    n as f64 / NANOS_PER_SEC as f64
}

/// The bandwidth analyzer.
pub struct Bandwidth {
    cfg: BandwidthSection,
    /// `interface_capacity_mbps`, by interface index.
    capacities: FxHashMap<u32, f64>,
    /// Each flow's link's bytes before its first payload (its share of the link when it
    /// ends), by flow id, while it lasts.
    starts: Starts,
    links: FxHashMap<u32, Link>,
    /// Packets on interfaces past [`MAX_LINKS`].
    untracked: u64,
    large: Vec<LargeFlow>,
    /// Large flows not kept (or forgotten for larger ones) once `large` was full.
    large_dropped: u64,
    episodes: u64,
    bulk: u64,
    receiver_limited: u64,
    loss_limited: u64,
    /// The latest capture time of a packet on any link.
    clock: Timestamp,
}

impl Bandwidth {
    /// A new analyzer.
    pub fn new(cfg: &BandwidthSection) -> Self {
        Bandwidth {
            cfg: cfg.clone(),
            // By the index the key reads as ("00" is interface 0, as the validation took it).
            capacities: cfg
                .interface_capacity_mbps
                .iter()
                .filter_map(|(k, &v)| Some((k.parse().ok()?, v)))
                .collect(),
            starts: Starts::default(),
            links: FxHashMap::default(),
            untracked: 0,
            large: Vec::new(),
            large_dropped: 0,
            episodes: 0,
            bulk: 0,
            receiver_limited: 0,
            loss_limited: 0,
            clock: Timestamp::default(),
        }
    }

    fn capacity_bps(&self, iface: u32) -> Option<f64> {
        let mbps = self
            .capacities
            .get(&iface)
            .copied()
            .unwrap_or(self.cfg.capacity_mbps);
        (mbps > 0.0).then_some(mbps * 1e6)
    }

    /// Moves `iface`'s clock to `bucket`, closing the buckets in between (a new link starts
    /// there), and returns the link.
    fn advance(&mut self, iface: u32, bucket: i64, out: &mut Vec<Finding>) -> &mut Link {
        let cap = self.capacity_bps(iface);
        let thr = self.cfg.saturation_threshold;
        let min_secs = self.cfg.min_saturation_secs;
        let link = match self.links.entry(iface) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let mut recent = Vec::new();
                if cap.is_some() {
                    recent.resize_with(WINDOW_BUCKETS, Default::default);
                }
                return v.insert(Link {
                    cur: bucket,
                    recent,
                    ..Link::default()
                });
            }
        };
        let episodes = &mut self.episodes;
        if bucket <= link.cur {
            return link;
        }
        // Close the current bucket, then roll empty ones (at most a window's worth matters).
        let steps = (bucket - link.cur).min(WINDOW_BUCKETS as i64 + 1);
        for step in 0..steps {
            let closing = link.cur + step;
            let slot = closing.rem_euclid(WINDOW_BUCKETS as i64) as usize;
            let in_bucket = link.ring[slot];
            if link.history.len() >= HISTORY {
                link.history.pop_front();
            }
            if link.window != [0, 0] {
                link.history.push_back((closing, link.window));
            }
            for (d, &bucket_bytes) in in_bucket.iter().enumerate() {
                let rate = link.window[d] as f64 * 8.0;
                let end = bucket_start(closing.saturating_add(1));
                match (cap, &mut link.episode[d]) {
                    (Some(c), Some(ep)) if rate >= thr * c => {
                        // Ends with its last bucket itself over the threshold, not with the
                        // windows after it that still hold enough of the traffic before.
                        if bucket_bytes as f64 * 80.0 >= thr * c {
                            ep.last = end;
                        }
                        ep.peak_1s_bps = ep.peak_1s_bps.max(rate);
                        ep.peak_100ms_bps = ep.peak_100ms_bps.max(bucket_bytes as f64 * 80.0);
                    }
                    (Some(c), None) if rate >= thr * c => {
                        // The window that crossed the threshold: from its first bucket with
                        // traffic, its bytes credited to the flows that sent them.
                        let in_window =
                            |b: i64| link.ring[b.rem_euclid(WINDOW_BUCKETS as i64) as usize][d];
                        let first = (closing - WINDOW_BUCKETS as i64 + 1..=closing)
                            .find(|&b| in_window(b) > 0)
                            .unwrap_or(closing);
                        // The episode starts there: its busiest 100 ms may be any of them.
                        let busiest = (first..=closing).map(in_window).max().unwrap_or(0);
                        // It runs to the last of them over the threshold itself (there is
                        // one: the window's average is).
                        let hot = (first..=closing)
                            .rev()
                            .find(|&b| in_window(b) as f64 * 80.0 >= thr * c)
                            .unwrap_or(closing);
                        let mut talkers = Talkers::default();
                        for bucket in &link.recent {
                            for (k, b) in &bucket[d].flows {
                                talkers.add(*k, *b, &mut link.talkers_dropped);
                            }
                        }
                        link.episode[d] = Some(Episode {
                            start: bucket_start(first),
                            last: bucket_start(hot.saturating_add(1)),
                            peak_1s_bps: rate,
                            peak_100ms_bps: busiest as f64 * 80.0,
                            talkers,
                        });
                    }
                    (Some(c), Some(_)) => {
                        let ep = link.episode[d].take().expect("matched Some");
                        if secs(ep.last.since(ep.start)) >= min_secs {
                            out.push(saturation_finding(iface, d, c, ep));
                            *episodes += 1;
                        }
                    }
                    _ => {}
                }
            }
            // The next bucket enters the window: the one it replaces leaves it.
            let next_slot = (closing + 1).rem_euclid(WINDOW_BUCKETS as i64) as usize;
            for d in 0..2 {
                link.window[d] -= link.ring[next_slot][d];
            }
            link.ring[next_slot] = [0, 0];
            if let Some(r) = link.recent.get_mut(next_slot) {
                r[0].clear();
                r[1].clear();
            }
        }
        if bucket - link.cur > steps {
            link.ring = [[0, 0]; WINDOW_BUCKETS];
            link.window = [0, 0];
            for r in &mut link.recent {
                r[0].clear();
                r[1].clear();
            }
        }
        link.cur = bucket;
        link
    }

    /// The clock of `iface` stepped back to `bucket`, more than a window before the link's
    /// (captures joined out of order, a clock set back): what the link measured is closed as
    /// at the end of the run (open episodes reported; its history kept aside for inference at
    /// the end, when its flows are known), and its clock starts again at `bucket`. Without it every packet until the clock caught
    /// up again fell before the window, and the link's bytes a second were another stretch's.
    fn restart(&mut self, iface: u32, bucket: i64, out: &mut Vec<Finding>) {
        let Some(cur) = self.links.get(&iface).map(|l| l.cur) else {
            return;
        };
        self.advance(iface, cur.saturating_add(WINDOW_BUCKETS as i64 + 2), out);
        let Some(mut link) = self.links.remove(&iface) else {
            return;
        };
        if self.capacity_bps(iface).is_none() {
            if link.past.len() >= MAX_STRETCHES {
                let before = out.len();
                let (history, rtts) = link.past.remove(0);
                self.infer(iface, &history, &rtts, out);
                self.episodes += (out.len() - before) as u64;
            }
            // Inferred at the end: the flows that moved its bytes may still be open.
            link.past.push((
                std::mem::take(&mut link.history),
                std::mem::take(&mut link.rtts),
            ));
        }
        link.history.clear();
        link.rtts.clear();
        link.totals.clear();
        link.cur = bucket;
        self.links.insert(iface, link);
    }

    /// Counts packet `pkt` of `flow` on its `link`, whose clock is at `bucket` or past it.
    /// `start`: the flow's first payload, with the flow's bytes before it.
    fn count(
        link: &mut Link,
        starts: &mut Starts,
        pkt: &PacketView<'_>,
        flow: &FlowInfo,
        bucket: i64,
        start: Option<u64>,
        clock: Timestamp,
    ) {
        let d = usize::from(pkt.dir != flow.client_dir);
        let bytes = u64::from(pkt.ip.ip_len);
        link.seen = clock;
        link.note_second(pkt.ts.0.div_euclid(NANOS_PER_SEC));
        if let Some(head) = start {
            // Its own bytes before (a handshake) count as if they came now: its share is of
            // the link from its first payload on, with them.
            starts.note(flow.id, link.total.saturating_sub(head));
        }
        link.total += bytes;
        let key = || (flow.client(), flow.server());
        if bucket >= link.cur {
            let slot = link.add_rate(bucket, d, bytes, || line_bytes(bytes, pkt.frame_len));
            if let Some(r) = link.recent.get_mut(slot) {
                r[d].add(key(), bytes, &mut link.talkers_dropped);
            }
        }
        if let Some(ep) = link.episode[d].as_mut() {
            ep.talkers.add(key(), bytes, &mut link.talkers_dropped);
        }
        if let Some(u) = pkt.tcp {
            if u.events.has(TcpEvents::INITIAL_RTT) {
                if let Some(r) = flow.initial_rtt {
                    if link.rtts.len() >= HISTORY {
                        link.rtts.pop_front();
                    }
                    link.rtts.push_back((bucket, (r.max(0) / 1000) as u64));
                }
            }
        }
    }

    /// The saturations a stretch of `iface`'s history shows without a capacity: plateaus of
    /// its 1 s bytes (`history`) during which new connections' handshake RTTs (`rtts`) rose.
    fn infer(
        &self,
        iface: u32,
        history: &VecDeque<(i64, [u64; 2])>,
        rtts: &VecDeque<(i64, u64)>,
        out: &mut Vec<Finding>,
    ) {
        for d in 0..2 {
            let peak = history.iter().map(|(_, w)| w[d]).max().unwrap_or(0);
            let peak_bps = peak as f64 * 8.0;
            if peak_bps < 1e6 {
                continue;
            }
            // The plateaus: runs of buckets whose 1 s window is within 20 % of the peak, a run
            // going on across gaps shorter than a window (two bursts an hour apart are two).
            // Each with where its traffic started (`starts`).
            // And where its traffic ended (`ends`): its last bucket itself within 20 % of the
            // peak's share of a window, not the windows after it that still hold the traffic
            // before. A bucket's own bytes are its window's less the window before, plus the
            // bucket that left (`own`, by bucket modulo the window): exact from a bucket whose
            // window before was empty (`known`; the history full, its oldest are not).
            let hot = 0.8 * peak as f64 / WINDOW_BUCKETS as f64;
            let mut own = [0u64; WINDOW_BUCKETS];
            let (mut prev, mut known, mut hot_last) = (None, history.len() < HISTORY, None);
            let mut plateaus: Vec<(i64, i64, usize)> = Vec::new();
            let mut starts: Vec<i64> = Vec::new();
            let mut ends: Vec<i64> = Vec::new();
            for (j, &(b, w)) in history.iter().enumerate() {
                let slot = b.rem_euclid(WINDOW_BUCKETS as i64) as usize;
                match prev {
                    Some((pb, pw)) if pb == b - 1 => match (w[d] + own[slot]).checked_sub(pw) {
                        Some(v) => own[slot] = v,
                        None => (known, own[slot]) = (false, 0),
                    },
                    _ => {
                        // The window before was empty (a gap), or this is the oldest kept.
                        known |= prev.is_some();
                        own = [0; WINDOW_BUCKETS];
                        own[slot] = w[d];
                    }
                }
                prev = Some((b, w[d]));
                if known && own[slot] as f64 >= hot {
                    hot_last = Some(b);
                }
                if (w[d] as f64) < 0.8 * peak as f64 {
                    continue;
                }
                let end = hot_last
                    .filter(|&h| known && h > b - WINDOW_BUCKETS as i64)
                    .unwrap_or(b);
                match plateaus.last_mut() {
                    Some((_, last, n)) if b - *last <= WINDOW_BUCKETS as i64 => {
                        *last = b;
                        *n += 1;
                        if let Some(e) = ends.last_mut() {
                            *e = end;
                        }
                    }
                    _ => {
                        plateaus.push((b, b, 1));
                        starts.push(traffic_start(history, j, d));
                        ends.push(end);
                    }
                }
            }
            // Each RTT sample to the plateau whose queue it saw, or to none (one pass: the
            // history holds up to 36,000 buckets, so thousands of plateaus and samples).
            let (mut otherwise, mut during) = split_by_plateau(rtts, &plateaus);
            if otherwise.len() < 2 {
                continue;
            }
            let mo = median(&mut otherwise);
            during.sort_unstable();
            for (i, &(_, _, n)) in plateaus.iter().enumerate() {
                if n < 5 {
                    continue;
                }
                let from = during.partition_point(|&(p, _)| p < i);
                let to = during.partition_point(|&(p, _)| p <= i);
                let mut during: Vec<u64> = during[from..to].iter().map(|&(_, r)| r).collect();
                if during.len() < 2 {
                    continue;
                }
                let md = median(&mut during);
                if mo <= 0.0 || md < 5.0 * mo {
                    continue;
                }
                let start = bucket_start(starts[i]);
                let end = bucket_start(ends[i].saturating_add(1)).max(start);
                let talkers = self.talkers_between(iface, start, end);
                let ev = InferredEvidence {
                    interface: iface,
                    direction: dir_name(d),
                    plateau_mbps: peak_bps / 1e6,
                    plateau_secs: secs(end.since(start)),
                    handshake_rtt_during_ms: md / 1000.0,
                    handshake_rtt_otherwise_ms: mo / 1000.0,
                    samples_during: during.len(),
                    samples_otherwise: otherwise.len(),
                    top_talkers: talkers,
                };
                out.push(Finding {
                    ts: start,
                    rule: "bandwidth.saturation.inferred",
                    severity: Severity::Medium,
                    fallacy: Fallacy::BandwidthIsInfinite,
                    message: format!(
                        "link {iface} {} ran flat out at about {:.1} Mbit/s for {:.1} s while new connections' handshake RTT rose from {:.2} ms to {:.2} ms: a full queue",
                        dir_name(d).replace('_', " "),
                        peak_bps / 1e6,
                        secs(end.since(start)),
                        mo / 1000.0,
                        md / 1000.0
                    ),
                    flow: None,
                    evidence: Finding::evidence_from(&ev),
                });
            }
        }
    }

    fn talkers_between(&self, iface: u32, start: Timestamp, end: Timestamp) -> Vec<Talker> {
        let mut t: Vec<&LargeFlow> = self
            .large
            .iter()
            .filter(|f| f.iface == iface && f.first <= end && f.last >= start)
            .collect();
        t.sort_by_key(|f| std::cmp::Reverse(f.bytes));
        t.iter()
            .take(5)
            .map(|f| Talker {
                client: format!("{}:{}", f.client.0, f.client.1),
                server: format!("{}:{}", f.server.0, f.server.1),
                bytes: f.bytes,
            })
            .collect()
    }
}

/// Adds `f` to `large`, at most [`MAX_LARGE_FLOWS`]: when full, the flows of its link that
/// ended before `history_start` (the oldest bucket inference still sees) are forgotten, then
/// the smallest flow gives way to a larger one. Whether a flow was dropped (`f` or the one it
/// replaced): `false`.
fn keep_large(large: &mut Vec<LargeFlow>, f: LargeFlow, history_start: Option<Timestamp>) -> bool {
    if large.len() >= MAX_LARGE_FLOWS
        && let Some(start) = history_start
    {
        large.retain(|l| l.iface != f.iface || l.last >= start);
    }
    if large.len() < MAX_LARGE_FLOWS {
        large.push(f);
        return true;
    }
    if let Some(smallest) = large
        .iter_mut()
        .min_by_key(|l| l.bytes)
        .filter(|l| l.bytes < f.bytes)
    {
        *smallest = f;
    }
    false
}

fn saturation_finding(iface: u32, d: usize, cap_bps: f64, ep: Episode) -> Finding {
    let mut talkers: Vec<_> = ep.talkers.flows.into_iter().collect();
    talkers.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let top: Vec<Talker> = talkers
        .iter()
        .take(5)
        .map(|((c, s), bytes)| Talker {
            client: format!("{}:{}", c.0, c.1),
            server: format!("{}:{}", s.0, s.1),
            bytes: *bytes,
        })
        .collect();
    let duration = secs(ep.last.since(ep.start));
    let ev = SaturationEvidence {
        interface: iface,
        direction: dir_name(d),
        capacity_mbps: cap_bps / 1e6,
        start: ep.start.rfc3339_micros(),
        duration_secs: duration,
        peak_1s_mbps: ep.peak_1s_bps / 1e6,
        peak_100ms_mbps: ep.peak_100ms_bps / 1e6,
        top_talkers: top,
    };
    Finding {
        ts: ep.start,
        rule: "bandwidth.saturation",
        severity: Severity::Medium,
        fallacy: Fallacy::BandwidthIsInfinite,
        message: format!(
            "link {iface} {} ran at or above the saturation threshold of its {:.1} Mbit/s for {duration:.1} s (peak {:.1} Mbit/s over 1 s, {:.0} %)",
            dir_name(d).replace('_', " "),
            cap_bps / 1e6,
            ep.peak_1s_bps / 1e6,
            100.0 * ep.peak_1s_bps / cap_bps
        ),
        flow: None,
        evidence: Finding::evidence_from(&ev),
    }
}

impl Analyzer for Bandwidth {
    fn name(&self) -> &'static str {
        "bandwidth"
    }

    fn on_packet(
        &mut self,
        pkt: &PacketView<'_>,
        info: &FlowInfo,
        facts: &AllFacts,
        out: &mut Vec<Finding>,
    ) {
        let bucket = pkt.ts.0.div_euclid(BUCKET);
        self.clock = self.clock.max(pkt.ts);
        let clock = self.clock;
        let f = facts.bandwidth;
        if f.moved {
            self.starts.take(info.id);
        }
        // Most packets fall in the current bucket of a known link: one lookup. Only a new
        // bucket needs `advance` (and its second lookup).
        if let Some(link) = self.links.get_mut(&pkt.interface) {
            if bucket <= link.cur {
                // (A first fragment released late, its datagram given up, is no step back of
                // the clock: its bytes count in the link's total only.)
                if link.cur - bucket <= WINDOW_BUCKETS as i64 || pkt.late {
                    Self::count(link, &mut self.starts, pkt, info, bucket, f.start, clock);
                    return;
                }
                // The clock stepped back more than a window: measured again from here.
                self.restart(pkt.interface, bucket, out);
                let link = self.links.get_mut(&pkt.interface).expect("kept by restart");
                Self::count(link, &mut self.starts, pkt, info, bucket, f.start, clock);
                return;
            }
        } else if self.links.len() >= MAX_LINKS {
            self.untracked += 1;
            return;
        }
        self.advance(pkt.interface, bucket, out);
        let link = self
            .links
            .get_mut(&pkt.interface)
            .expect("added by advance");
        Self::count(link, &mut self.starts, pkt, info, bucket, f.start, clock);
    }

    fn on_fragment_bytes(&mut self, frags: &super::FragmentBytes, out: &mut Vec<Finding>) {
        // On the link like any packet's bytes, without a flow (no talker, no link share): as
        // sent by a client, its source (the ports that would tell are not known). Fragments
        // held, then given up, come 2 to 3 s late: older than the window, they count in the
        // link's total only, and are no step back of the clock (the next packet tells).
        let bucket = frags.ts.0.div_euclid(BUCKET);
        self.clock = self.clock.max(frags.ts);
        let clock = self.clock;
        if !self.links.contains_key(&frags.interface) && self.links.len() >= MAX_LINKS {
            self.untracked += 1;
            return;
        }
        let link = self.advance(frags.interface, bucket, out);
        link.seen = clock;
        link.note_second(frags.ts.0.div_euclid(NANOS_PER_SEC));
        link.total += frags.bytes;
        if bucket >= link.cur {
            link.add_rate(bucket, 0, frags.bytes, || {
                if frags.frame_len > 0 {
                    line_bytes(frags.bytes, frags.frame_len)
                } else {
                    // Each fragment its own frame.
                    (frags.bytes + FRAMING * frags.packets).max(MIN_LINE * frags.packets)
                }
            });
        }
    }

    fn on_flow_end(&mut self, flow: &mut AFlow, _reason: EndReason, out: &mut Vec<Finding>) {
        let at_start = self.starts.take(flow.id);
        if flow.ext.bandwidth.carrier {
            // Its inner flows moved these bytes, and are reported (and are the talkers).
            return;
        }
        let total = flow.bytes[0] + flow.bytes[1];
        let cd = flow.client_dir();
        let iface = flow.ext.bandwidth.iface;
        // From its first to its last payload: a connection kept open before or after the
        // transfer (pooled, keep-alive) did not move its bytes while it idled.
        let bw = &flow.ext.bandwidth;
        let (first, last) = if bw.has_data {
            bw.data
        } else {
            (flow.first_ts, flow.last_ts)
        };
        if total >= 1_000_000 {
            // The oldest bucket inference will still see, of any stretch.
            let history_start = self.links.get(&iface).and_then(|l| {
                l.past
                    .iter()
                    .map(|(h, _)| h)
                    .chain([&l.history])
                    .filter_map(|h| h.front().map(|(b, _)| *b))
                    .min()
                    .map(bucket_start)
            });
            let f = LargeFlow {
                client: flow.client(),
                server: flow.server(),
                bytes: total,
                first,
                last,
                iface,
            };
            if !keep_large(&mut self.large, f, history_start) {
                self.large_dropped += 1;
            }
        }
        if total < self.cfg.bulk_threshold_bytes {
            return;
        }
        self.bulk += 1;
        // The direction that carried most of it.
        let up = flow.bytes[cd.idx()];
        let down = flow.bytes[cd.rev().idx()];
        let (sender, receiver, direction) = if up >= down {
            (cd, cd.rev(), 0)
        } else {
            (cd.rev(), cd, 1)
        };
        let sc = &flow.tcp.half[sender.idx()].counters;
        let rc = &flow.tcp.half[receiver.idx()].counters;
        let data = sc.data_segments.max(1);
        let window_bound = flow.tcp.half[sender.idx()].window_bound;
        let limited_by = if flow.key.proto != 6 {
            "unknown (not TCP)"
        } else if rc.zero_windows > 0
            || sc.window_full * 20 >= data
            || u64::from(window_bound) * 20 >= data
        {
            self.receiver_limited += 1;
            "receiver"
        } else if sc.all_retransmissions() * 100 >= data {
            self.loss_limited += 1;
            "loss"
        } else {
            "sender or path"
        };
        let duration = secs(last.since(first)).max(1e-6);
        // The bytes its own link carried while it ran (it among them), to the end of the
        // second of its last payload: not what came after, while it lingered or idled.
        let link_share = at_start.and_then(|at_start| {
            let link = self.links.get(&iface)?;
            let by_end = link.total_by(last);
            Some(total as f64 / by_end.saturating_sub(at_start).max(total) as f64)
        });
        let ev = BulkEvidence {
            bytes: total,
            bytes_client_to_server: up,
            bytes_server_to_client: down,
            direction: dir_name(direction),
            duration_secs: duration,
            throughput_mbps: total as f64 * 8.0 / duration / 1e6,
            link_share,
            limited_by,
            zero_windows: rc.zero_windows,
            window_full_segments: sc.window_full,
            window_bound_segments: window_bound,
            retransmitted_segments: sc.all_retransmissions(),
            data_segments: sc.data_segments,
        };
        let (client, server) = (flow.client(), flow.server());
        let share = match ev.link_share {
            Some(s) => format!(", {:.0} % of the link meanwhile", s * 100.0),
            None => String::new(),
        };
        out.push(Finding {
            ts: flow.first_ts,
            rule: "bandwidth.bulk_transfer",
            severity: Severity::Low,
            fallacy: Fallacy::BandwidthIsInfinite,
            message: format!(
                "{}:{} ↔ {}:{} moved {:.1} MB in {duration:.1} s ({:.1} Mbit/s{share}), limited by the {limited_by}",
                client.0,
                client.1,
                server.0,
                server.1,
                total as f64 / 1e6,
                ev.throughput_mbps,
            ),
            flow: Some(FlowRef::new(client, server, flow.key.proto)),
            evidence: Finding::evidence_from(&ev),
        });
    }

    /// A link with an open episode that has gone [`QUIET`] has its buckets closed until its
    /// window is empty, which ends the episode (reported now, not at the link's next packet or
    /// the end of the run). Its clock stops a window after its last packet: a packet of its
    /// own later than that still finds it ahead of its clock.
    fn on_tick(&mut self, now: Timestamp, out: &mut Vec<Finding>) {
        let quiet = |l: &Link| l.episode.iter().any(Option::is_some) && now.since(l.seen) > QUIET;
        if !self.links.values().any(quiet) {
            return;
        }
        let mut ifaces: Vec<(u32, i64)> = self
            .links
            .iter()
            .filter(|(_, l)| quiet(l))
            .map(|(&i, l)| (i, l.cur))
            .collect();
        ifaces.sort_unstable();
        for (iface, cur) in ifaces {
            self.advance(iface, cur.saturating_add(WINDOW_BUCKETS as i64 + 1), out);
        }
    }

    fn finish(&mut self, now: Timestamp, out: &mut Vec<Finding>) {
        let mut ifaces: Vec<u32> = self.links.keys().copied().collect();
        ifaces.sort_unstable();
        for iface in &ifaces {
            // Close the last buckets and any open episode.
            self.advance(
                *iface,
                now.0
                    .div_euclid(BUCKET)
                    .saturating_add(WINDOW_BUCKETS as i64 + 2),
                out,
            );
        }
        for iface in ifaces {
            if self.capacity_bps(iface).is_none() {
                let before = out.len();
                let past = self
                    .links
                    .get_mut(&iface)
                    .map(|l| std::mem::take(&mut l.past))
                    .unwrap_or_default();
                for (history, rtts) in past {
                    self.infer(iface, &history, &rtts, out);
                }
                let link = &self.links[&iface];
                self.infer(iface, &link.history, &link.rtts, out);
                self.episodes += (out.len() - before) as u64;
            }
        }
    }

    fn stats(&self, out: &mut Vec<Counter>) {
        let bytes: u64 = self.links.values().map(|l| l.total).sum();
        out.extend([
            ("bandwidth.links", self.links.len() as u64),
            ("limits.bandwidth_packets_untracked", self.untracked),
            (
                "limits.bandwidth_link_shares_untracked",
                self.starts.refused,
            ),
            ("limits.bandwidth_large_flows_dropped", self.large_dropped),
            (
                "limits.bandwidth_talkers_dropped",
                self.links.values().map(|l| l.talkers_dropped).sum(),
            ),
            ("bandwidth.bytes", bytes),
            ("bandwidth.saturation_episodes", self.episodes),
            ("bandwidth.bulk_transfers", self.bulk),
            ("bandwidth.flows_receiver_limited", self.receiver_limited),
            ("bandwidth.flows_loss_limited", self.loss_limited),
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_flows_beyond_the_cap_make_room_by_age_then_by_size() {
        let ep = |p: u16| ("10.0.0.1".parse().unwrap(), p);
        let flow = |i: u16, bytes: u64, first: i64, last: i64| LargeFlow {
            client: ep(i),
            server: ep(80),
            bytes,
            first: Timestamp(first),
            last: Timestamp(last),
            iface: 0,
        };
        let mut large = Vec::new();
        // 1,024 flows of 2 MB that ended at 10 s (their ports 0..1023).
        for i in 0..MAX_LARGE_FLOWS as u16 {
            assert!(keep_large(&mut large, flow(i, 2_000_000, 0, 10), None));
        }
        // Full, and nothing older than the history: a smaller flow is dropped, a larger one
        // replaces the smallest.
        assert!(!keep_large(
            &mut large,
            flow(5000, 1_000_000, 20, 30),
            Some(Timestamp(0))
        ));
        assert!(!large.iter().any(|l| l.client.1 == 5000));
        assert!(!keep_large(
            &mut large,
            flow(5001, 3_000_000, 20, 30),
            Some(Timestamp(0))
        ));
        assert_eq!(large.len(), MAX_LARGE_FLOWS);
        assert!(large.iter().any(|l| l.client.1 == 5001));
        // History now starts at 15 s: every flow that ended at 10 s is forgotten for a new one.
        assert!(keep_large(
            &mut large,
            flow(5002, 1_000_000, 20, 30),
            Some(Timestamp(15))
        ));
        let mut ports: Vec<u16> = large.iter().map(|l| l.client.1).collect();
        ports.sort_unstable();
        assert_eq!(ports, [5001, 5002]);
        // Another link's flows are not its history's to forget.
        let mut other = (0..MAX_LARGE_FLOWS as u16)
            .map(|i| LargeFlow {
                iface: 1,
                ..flow(i, 2_000_000, 0, 10)
            })
            .collect::<Vec<_>>();
        assert!(!keep_large(
            &mut other,
            flow(5003, 1_000_000, 20, 30),
            Some(Timestamp(15))
        ));
        assert_eq!(other.len(), MAX_LARGE_FLOWS);
    }

    #[test]
    fn bucket_arithmetic_saturates_at_the_end_of_time() {
        // A packet stamped at the last representable nanosecond (a pcapng with a coarse
        // timestamp resolution can produce it: found by the `pipeline` fuzz target).
        let last = i64::MAX.div_euclid(BUCKET);
        assert_eq!(bucket_start(last.saturating_add(1)), Timestamp(i64::MAX));
        assert!(bucket_start(last) <= Timestamp(i64::MAX));
        let mut b = Bandwidth::new(&BandwidthSection::default());
        let mut out = Vec::new();
        b.advance(0, last, &mut out);
        b.advance(0, last.saturating_add(WINDOW_BUCKETS as i64 + 2), &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn rtt_samples_go_to_the_plateau_whose_window_they_fall_in() {
        // Plateaus (first, last, buckets) more than a window apart; samples before, inside,
        // in the window before a plateau's first bucket, between, after, and out of order.
        let plateaus = [(20, 25, 6), (40, 40, 1), (100, 130, 20)];
        let buckets = [
            0, 9, 10, 15, 25, 26, 29, 30, 35, 40, 41, 89, 90, 131, 500, 12, 95, -3,
        ];
        let rtts: VecDeque<(i64, u64)> = buckets.iter().map(|&b| (b, b as u64)).collect();
        let (otherwise, during) = split_by_plateau(&rtts, &plateaus);
        // Written out from the rule: plateau i saw [first - 10, last].
        assert_eq!(
            during,
            [
                (0, 10),
                (0, 15),
                (0, 25),
                (1, 30),
                (1, 35),
                (1, 40),
                (2, 90),
                (0, 12),
                (2, 95)
            ]
        );
        assert_eq!(otherwise, [0, 9, 26, 29, 41, 89, 131, 500, -3i64 as u64]);
    }

    #[test]
    fn a_full_talkers_map_gives_its_lightest_place_to_a_heavier_newcomer_and_learns_its_floor() {
        let key = |p: u16| {
            let a: IpAddr = "10.0.0.1".parse().unwrap();
            ((a, p), (a, 80))
        };
        let mut t = Talkers::default();
        let mut dropped = 0;
        // Full: flows 0..255 with 100 + port bytes (flow 0 the lightest, 100 bytes).
        for p in 0..MAX_TALKERS as u16 {
            t.add(key(p), 100 + u64::from(p), &mut dropped);
        }
        assert_eq!((t.flows.len(), dropped, t.floor), (MAX_TALKERS, 0, 0));
        // A newcomer bringing no more than the lightest is left out; the look learns the floor.
        t.add(key(1000), 100, &mut dropped);
        assert_eq!((dropped, t.floor), (1, 100));
        assert!(!t.flows.contains_key(&key(1000)));
        // Below the floor: left out without a look (the floor cannot move).
        t.add(key(1001), 99, &mut dropped);
        assert_eq!((dropped, t.floor), (2, 100));
        // Heavier than the lightest: takes flow 0's place; the floor is then the lighter of
        // the next lightest (flow 1, 101 bytes) and the newcomer.
        t.add(key(1002), 5000, &mut dropped);
        assert_eq!((t.flows.len(), dropped, t.floor), (MAX_TALKERS, 3, 101));
        assert_eq!(t.flows.get(&key(1002)), Some(&5000));
        assert!(!t.flows.contains_key(&key(0)));
        // A flow held keeps counting; a newcomer lighter than everyone then is left out.
        t.add(key(1002), 10, &mut dropped);
        assert_eq!(t.flows.get(&key(1002)), Some(&5010));
        t.add(key(1003), 101, &mut dropped);
        assert_eq!((dropped, t.floor), (4, 101));
        // Cleared with its bucket: the floor goes with the flows.
        t.clear();
        assert_eq!((t.flows.len(), t.floor), (0, 0));
    }
}
