//! The network is homogeneous (fallacy 8): where the two ends of a conversation disagree about
//! the protocol.
//!
//! Flags, aggregated per server address:port (and cause), reported once the group has been
//! quiet for `report_after_idle_secs`, and at the end:
//! * `tls.handshake.failed` — a fatal alert before any application data; the cause is the
//!   alert (`protocol_version` — the versions do not overlap, `handshake_failure`,
//!   `no_application_protocol`…), with what the client offered and the server chose (high);
//! * `tls.version.obsolete` — a handshake that negotiated SSL 3.0, TLS 1.0 or 1.1 (medium;
//!   high for SSL);
//! * `tls.alpn.not_agreed` — the client offered ALPN protocols beyond HTTP/1.x and a TLS ≤ 1.2
//!   server selected none (medium): the client falls back or fails (TLS 1.3 encrypts the
//!   selection);
//! * `tls.version.mixed` — at the end, one service negotiated several TLS versions with clients
//!   that offered the same highest version (low); clients that offer less getting less is the
//!   server choosing the best common version, not a mix;
//! * `http2.prior_knowledge.rejected` — a client opened with the HTTP/2 preface and the server
//!   answered in HTTP/1.x (medium);
//! * `http.upgrade.failed` — a request asked to `Upgrade` and got no `101` (low);
//! * `http.version.legacy_client` — HTTP/1.0 requests without keep-alive to a server that
//!   speaks HTTP/1.1: a new connection for every request (low);
//! * `http.version.mixed` — at the end, one service received both HTTP/1.0 and HTTP/1.1
//!   requests (low);
//! * `tcp.options.asymmetric` — clients offered window scaling, SACK or timestamps in the SYN and
//!   the server's SYN/ACK left them out, per server and option (low);
//! * `tcp.pmtu.blackhole` — full-size segments retransmitted at least 3 times and never
//!   acknowledged while the smaller ones before them were, on a connection whose receiver was
//!   heard from after the first of them: a path MTU black hole; says whether ICMP
//!   "fragmentation needed" / "packet too big" reached the sender (ignored) or not (filtered)
//!   (high). A receiver silent from then on cannot be told from one gone (or a capture
//!   missing its side): counted in `tcp.pmtu_blackholes_unconfirmed`. Full size is the
//!   receiver's MSS (or the sender's, when smaller); when the capture missed the receiver's
//!   SYN, the largest segment seen in that direction, from 1,220 bytes, and the message says
//!   the MSS was not captured;
//! * `tcp.mss.exceeded` — a segment whose data and TCP options are longer than the MSS its
//!   receiver announced (RFC 6691; but shorter than two packets of that MSS less the
//!   segment's own options, and no longer than its sender's own MSS unless its packet fits
//!   1,500 bytes: the others are offload artefacts of a capture taken on the sender or of a
//!   port mirror, or a receiver's GRO merges) (medium).
//!
//! At the end it also writes an inventory event (`event.action = "inventory"`) with every TLS
//! version offered and negotiated, every ALPN protocol and every HTTP request version seen.

use super::{AFlow, Analyzer, Counter, Facts as AllFacts, FlowHalf, FlowInfo, PacketView, Seen};
use crate::app::HttpEvent;
use crate::finding::{Fallacy, Finding, FlowRef, Severity};
use crate::flow::EndReason;
use crate::flow::tcp::TcpEvents;
use crate::proto::http1::Version;
use crate::proto::tls;
use crate::time::{NANOS_PER_SEC, Nanos, Timestamp};
use rustc_hash::FxHashMap;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

type Server = (IpAddr, u16);

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    rule: &'static str,
    server: Server,
    detail: String,
}

#[derive(Debug)]
struct Group {
    seen: Seen,
    extra: BTreeMap<&'static str, BTreeSet<String>>,
}

impl Group {
    fn new(client: (IpAddr, u16), ts: Timestamp) -> Group {
        Group {
            seen: Seen::new(client, ts),
            extra: BTreeMap::new(),
        }
    }
}

#[derive(Serialize)]
struct Evidence<'a> {
    connections: u64,
    detail: &'a str,
    clients: &'a [IpAddr],
    clients_truncated: bool,
    #[serde(flatten)]
    extra: BTreeMap<&'static str, Vec<&'a str>>,
    first_seen: String,
    last_seen: String,
}

/// Per-flow state of the homogeneity analyzer.
#[derive(Debug, Default)]
pub struct HomogeneityFlow {
    /// The first segment longer than its receiver's MSS: when, which way, its length, the
    /// length of its TCP options, the MSS.
    mss_exceeded: Option<(Timestamp, crate::flow::Dir, u32, u32, u32)>,
    /// A segment of two packets or more was seen: the capture holds GRO merges.
    merged: bool,
    /// Per direction: the first full-size segment's sequence number, its size and the packets
    /// captured from its receiver until then (saturating), and how often full-size segments
    /// were retransmitted.
    first_full: [Option<(crate::flow::SeqNum, u32, u32)>; 2],
    /// Per direction: its receiver acknowledged (part of) that first full-size segment. Judged
    /// as each acknowledgment comes: at the end, one more than 2 GiB further on would read as
    /// before it in sequence space.
    first_full_acked: [bool; 2],
    full_retransmissions: [u32; 2],
    /// ICMP "fragmentation needed" / "packet too big" about each direction, and the MTU.
    frag_needed: [u32; 2],
    next_hop_mtu: [u16; 2],
}

/// Without a captured MSS, the smallest segment taken for full size: what the smallest IPv6
/// path (1,280 bytes) carries less 60 bytes of headers.
const MIN_UNCLAMPED: u32 = 1_220;

/// Services whose TLS and HTTP versions are followed for `*.version.mixed`; further ones are
/// counted in `limits.services_versions_untracked`.
const MAX_SERVICES: usize = 65_536;
/// Distinct versions kept per service, and distinct values per inventory list (TLS versions
/// offered and negotiated, ALPN): a hostile peer could otherwise add one per connection.
/// Values beyond are counted in `limits.inventory_values_dropped`.
const MAX_VALUES: usize = 64;

/// Inserts `v` into `set` unless it is full; whether it was dropped.
fn insert_capped<T: Ord>(set: &mut BTreeSet<T>, v: T) -> bool {
    if set.len() >= MAX_VALUES && !set.contains(&v) {
        return true;
    }
    set.insert(v);
    false
}

/// Notes that `server` used `v` with `client` at `ts`, in a per-service map of at most
/// [`MAX_SERVICES`] services and [`MAX_VALUES`] values each (each with the connections, clients
/// and times that used it); what does not fit is counted in `untracked` or `dropped`.
fn note_service<T: Ord>(
    map: &mut BTreeMap<Server, BTreeMap<T, Group>>,
    server: Server,
    v: T,
    (client, ts): ((IpAddr, u16), Timestamp),
    untracked: &mut u64,
    dropped: &mut u64,
) {
    if map.len() >= MAX_SERVICES && !map.contains_key(&server) {
        *untracked += 1;
        return;
    }
    let values = map.entry(server).or_default();
    if values.len() >= MAX_VALUES && !values.contains_key(&v) {
        *dropped += 1;
        return;
    }
    values
        .entry(v)
        .or_insert_with(|| Group::new(client, ts))
        .seen
        .note(client, ts);
}

/// The homogeneity analyzer.
pub struct Homogeneity {
    report_after: Nanos,
    groups: FxHashMap<Key, Group>,
    /// Per service, per (highest version the client offered, version negotiated).
    service_tls: BTreeMap<Server, BTreeMap<(u16, u16), Group>>,
    service_http: BTreeMap<Server, BTreeMap<&'static str, Group>>,
    tls_offered: BTreeSet<String>,
    tls_negotiated: BTreeSet<String>,
    alpn: BTreeSet<String>,
    http_versions: BTreeSet<&'static str>,
    handshakes: u64,
    failures: u64,
    /// Connections that would be `tcp.pmtu.blackhole` but whose receiver sent nothing after
    /// the first full-size segment.
    pmtu_unconfirmed: u64,
    pending_events: Vec<Value>,
    services_untracked: u64,
    values_dropped: u64,
    /// Times the groups reached [`super::MAX_PENDING_GROUPS`] and were all reported at once.
    reported_early: u64,
}

impl Homogeneity {
    /// A new analyzer.
    pub fn new(report_after_secs: f64) -> Self {
        Homogeneity {
            report_after: (report_after_secs * NANOS_PER_SEC as f64) as Nanos,
            groups: FxHashMap::default(),
            service_tls: BTreeMap::new(),
            service_http: BTreeMap::new(),
            tls_offered: BTreeSet::new(),
            tls_negotiated: BTreeSet::new(),
            alpn: BTreeSet::new(),
            http_versions: BTreeSet::new(),
            handshakes: 0,
            failures: 0,
            pmtu_unconfirmed: 0,
            pending_events: Vec::new(),
            services_untracked: 0,
            values_dropped: 0,
            reported_early: 0,
        }
    }

    /// Reports every waiting group when too many are held (see [`super::MAX_PENDING_GROUPS`]).
    fn make_room(&mut self, out: &mut Vec<Finding>) {
        if self.groups.len() >= super::MAX_PENDING_GROUPS {
            self.report(None, out);
            self.reported_early += 1;
        }
    }

    /// Notes that `server` spoke HTTP `version` with `client` at `ts`.
    fn service_http(
        &mut self,
        server: Server,
        version: &'static str,
        seen: ((IpAddr, u16), Timestamp),
    ) {
        self.values_dropped += u64::from(insert_capped(&mut self.http_versions, version));
        note_service(
            &mut self.service_http,
            server,
            version,
            seen,
            &mut self.services_untracked,
            &mut self.values_dropped,
        );
    }

    fn add(
        &mut self,
        rule: &'static str,
        server: Server,
        detail: String,
        client: (IpAddr, u16),
        ts: Timestamp,
        extra: &[(&'static str, String)],
    ) {
        let g = self
            .groups
            .entry(Key {
                rule,
                server,
                detail,
            })
            .or_insert_with(|| Group::new(client, ts));
        g.seen.note(client, ts);
        for (k, v) in extra {
            let set = g.extra.entry(k).or_default();
            if set.len() < 16 {
                set.insert(v.clone());
            }
        }
    }

    fn report(&mut self, now: Option<Timestamp>, out: &mut Vec<Finding>) {
        for (k, g) in super::take_due(&mut self.groups, now, (self.report_after, None), |g| {
            (g.seen.first, g.seen.last)
        }) {
            out.push(finding(&k, &g));
        }
    }
}

fn finding(k: &Key, g: &Group) -> Finding {
    let (ip, port) = k.server;
    let d = k.detail.as_str();
    let (severity, protocol, message) = match k.rule {
        "tls.handshake.failed" => (
            Severity::High,
            "tls",
            format!(
                "{} TLS handshake(s) with {ip}:{port} failed: {d}",
                g.seen.count
            ),
        ),
        "tls.version.obsolete" => (
            if d.starts_with("SSL") {
                Severity::High
            } else {
                Severity::Medium
            },
            "tls",
            format!(
                "{ip}:{port} negotiated obsolete {d} with {} connection(s)",
                g.seen.count
            ),
        ),
        "tls.alpn.not_agreed" => (
            Severity::Medium,
            "tls",
            format!(
                "{ip}:{port} selected no application protocol for {} connection(s) whose clients offered {d}",
                g.seen.count
            ),
        ),
        "tls.version.mixed" => (
            Severity::Low,
            "tls",
            format!(
                "{ip}:{port} negotiated different TLS versions on {} connection(s) whose clients offered the same: {d} (servers configured differently behind one address?)",
                g.seen.count
            ),
        ),
        "http2.prior_knowledge.rejected" => (
            Severity::Medium,
            "http2",
            format!(
                "{} client connection(s) opened {ip}:{port} with the HTTP/2 preface and got HTTP/1.x back",
                g.seen.count
            ),
        ),
        "http.upgrade.failed" => (
            Severity::Low,
            "http",
            format!(
                "{} request(s) to {ip}:{port} asked to upgrade ({d}) and got no 101",
                g.seen.count
            ),
        ),
        "http.version.legacy_client" => (
            Severity::Low,
            "http",
            format!(
                "{} HTTP/1.0 request(s) without keep-alive to {ip}:{port}, which speaks HTTP/1.1: one connection per request",
                g.seen.count
            ),
        ),
        "http.version.mixed" => (
            Severity::Low,
            "http",
            format!("{ip}:{port} receives requests in several HTTP versions: {d}"),
        ),
        "tcp.pmtu.blackhole" => (
            Severity::High,
            "tcp",
            format!(
                "{} connection(s) to {ip}:{port} hit a path-MTU black hole: {d}",
                g.seen.count
            ),
        ),
        "tcp.mss.exceeded" => (
            Severity::Medium,
            "tcp",
            format!(
                "{} connection(s) to {ip}:{port} carried segments larger than the peer's MSS ({d}): MSS clamping or a middlebox disagrees",
                g.seen.count
            ),
        ),
        _ => (
            Severity::Low,
            "tcp",
            format!(
                "{} connection(s) to {ip}:{port}: clients offered {d} in the SYN, the server's SYN/ACK did not",
                g.seen.count
            ),
        ),
    };
    let extra: BTreeMap<&'static str, Vec<&str>> = g
        .extra
        .iter()
        .map(|(k, v)| (*k, v.iter().map(String::as_str).collect()))
        .collect();
    let ev = Evidence {
        connections: g.seen.count,
        detail: d,
        clients: &g.seen.clients,
        clients_truncated: g.seen.more_clients,
        extra,
        first_seen: g.seen.first.rfc3339_micros(),
        last_seen: g.seen.last.rfc3339_micros(),
    };
    Finding {
        ts: g.seen.first,
        rule: k.rule,
        severity,
        fallacy: Fallacy::NetworkIsHomogeneous,
        message,
        flow: Some(FlowRef {
            protocol: Some(protocol),
            ..FlowRef::new(g.seen.client, k.server, 6)
        }),
        evidence: Finding::evidence_from(&ev),
    }
}

/// What the homogeneity analyzer's per-flow half found about one packet.
#[derive(Clone, Copy, Debug, Default)]
pub struct Facts {
    /// At the first SYN/ACK: TCP options the client offered and the server did not answer
    /// (window scaling, SACK, timestamps).
    asymmetric: [bool; 3],
}

/// The homogeneity analyzer's per-flow half: path-MTU and MSS bookkeeping, and the TCP
/// options of the handshake.
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
        let Some(u) = pkt.tcp else { return };
        if let crate::decode::Transport::Tcp(seg) = pkt.ip.transport {
            // An acknowledgment of the other side's first full-size segment.
            let other = pkt.dir.rev().idx();
            if seg.has(crate::decode::tcp_flags::ACK) {
                let st = &mut flow.ext.homogeneity;
                if let Some((first, _, _)) = st.first_full[other] {
                    st.first_full_acked[other] |= crate::flow::SeqNum(seg.ack).diff(first) > 0;
                }
            }
            // Path-MTU bookkeeping: full-size segments and their retransmissions.
            if seg.seg_len > 0 {
                let d = pkt.dir.idx();
                let st = &mut flow.ext.homogeneity;
                // The largest segment this side sends: the receiver's MSS, or its own when
                // that is smaller (its own link's MTU: a sender on a 1,500-byte link talking to
                // a receiver on jumbo frames). Without the receiver's SYN (a capture started
                // mid-connection) the MSS is unknown, and a path may be clamped below any
                // default (a tunnel's 1,360): the largest segment seen so far in this
                // direction stands for it, from 1,220 bytes (what fits the smallest IPv6
                // path, 1,280 bytes, with the headers): no black hole hides below that. A
                // larger one than that first full-size segment starts the count again.
                let full = match flow.tcp.half[pkt.dir.rev().idx()].mss {
                    Some(peer) => {
                        let peer = u32::from(peer);
                        let largest = flow.tcp.half[d]
                            .mss
                            .map_or(peer, |own| peer.min(u32::from(own)));
                        seg.seg_len + 64 >= largest && seg.seg_len >= 512
                    }
                    None => {
                        let seen = st.first_full[d].map_or(0, |(_, size, _)| size);
                        if seg.seg_len >= MIN_UNCLAMPED && seg.seg_len > seen + 64 {
                            st.first_full[d] = None;
                            st.first_full_acked[d] = false;
                            st.full_retransmissions[d] = 0;
                        }
                        seg.seg_len >= MIN_UNCLAMPED && seg.seg_len + 64 >= seen
                    }
                };
                if full {
                    if st.first_full[d].is_none() {
                        let heard = flow.packets[pkt.dir.rev().idx()];
                        st.first_full[d] = Some((
                            crate::flow::SeqNum(seg.seq),
                            seg.seg_len,
                            u32::try_from(heard).unwrap_or(u32::MAX),
                        ));
                    }
                    if u.analysis
                        .has(crate::flow::tcp::SegFlags::ANY_RETRANSMISSION)
                    {
                        st.full_retransmissions[d] += 1;
                    }
                }
            }
            // A segment larger than the receiver's announced MSS (but not a TSO/GSO giant the
            // capturing host made before segmentation, nor a super-packet a kernel source
            // says is one). A segment larger than its sender's own MSS, which follows from
            // the sender's link MTU, in a packet over the 1,500 bytes of a standard link,
            // never crossed that link as one packet: an offload artefact too (a port mirror
            // copies it before segmentation). Within 1,500 bytes it may be real: a clamp
            // that lowered both SYNs' MSS, and a sender that ignores it. The MSS bounds the
            // data and the TCP options together (RFC 6691: a sender shortens its data by the
            // options it carries).
            if seg.seg_len > 0 && pkt.segments <= 1 {
                if let Some(mss) = flow.tcp.half[pkt.dir.rev().idx()].mss {
                    let mss = u32::from(mss);
                    let own = flow.tcp.half[pkt.dir.idx()].mss.map(u32::from);
                    // Two packets' worth, each carrying these options (timestamps: 12
                    // bytes), is a receiver's GRO merge, even when shorter than two MSS; and
                    // then a longer segment of the same connection may be one full packet
                    // merged with a short one. Judged when the connection ends.
                    let two_packets = 2 * mss.saturating_sub(seg.options.len() as u32);
                    let options = seg.options.len() as u32;
                    let with_options = seg.seg_len + options;
                    let st = &mut flow.ext.homogeneity;
                    if seg.seg_len > mss && seg.seg_len >= two_packets {
                        st.merged = true;
                    } else if with_options > mss
                        && own.is_none_or(|own| with_options <= own || pkt.ip.ip_len <= 1500)
                        && st.mss_exceeded.is_none()
                    {
                        st.mss_exceeded = Some((pkt.ts, pkt.dir, seg.seg_len, options, mss));
                    }
                }
            }
        }
        if !u.events.has(TcpEvents::SYN_ACK) || u.events.has(TcpEvents::SYN_RETRY) {
            return;
        }
        let cd = flow.client_dir();
        let (Some(c), Some(s)) = (
            flow.tcp.half[cd.idx()].syn_options,
            flow.tcp.half[cd.rev().idx()].syn_options,
        ) else {
            return;
        };
        if flow.tcp.half[cd.rev().idx()].syns > 1 {
            return; // judged on the first SYN/ACK only
        }
        // Offered by the client, not answered by the server.
        facts.homogeneity.asymmetric = [
            c.wscale.is_some() && s.wscale.is_none(),
            c.sack_permitted && !s.sack_permitted,
            c.timestamps && !s.timestamps,
        ];
    }

    fn on_icmp_error(
        &self,
        _from: std::net::IpAddr,
        msg: &crate::decode::IcmpMessage<'_>,
        dir: crate::flow::Dir,
        flow: &mut AFlow,
        _facts: &mut AllFacts,
    ) {
        // IPv4 type 3 code 4 (fragmentation needed, MTU in bytes 2–3 of the rest field's
        // header word) or ICMPv6 type 2 (packet too big, MTU in the 4-byte word).
        let frag_needed =
            (!msg.v6 && msg.icmp_type == 3 && msg.code == 4) || (msg.v6 && msg.icmp_type == 2);
        if !frag_needed {
            return;
        }
        let st = &mut flow.ext.homogeneity;
        st.frag_needed[dir.idx()] += 1;
        // A router older than RFC 1191 names no MTU (0): it does not undo one named before.
        if msg.mtu != 0 {
            st.next_hop_mtu[dir.idx()] = msg.mtu;
        }
    }
}

impl Analyzer for Homogeneity {
    fn name(&self) -> &'static str {
        "homogeneity"
    }

    fn on_packet(
        &mut self,
        pkt: &PacketView<'_>,
        flow: &FlowInfo,
        facts: &AllFacts,
        out: &mut Vec<Finding>,
    ) {
        self.make_room(out);
        if facts.homogeneity.asymmetric == [false; 3] {
            return;
        }
        let names = ["window scaling", "SACK", "timestamps"];
        for (name, asymmetric) in names.into_iter().zip(facts.homogeneity.asymmetric) {
            if asymmetric {
                self.add(
                    "tcp.options.asymmetric",
                    flow.server(),
                    name.to_string(),
                    flow.client(),
                    pkt.ts,
                    &[],
                );
            }
        }
    }

    fn on_http(&mut self, ev: &HttpEvent, flow: &FlowInfo, out: &mut Vec<Finding>) {
        self.make_room(out);
        let server = flow.server();
        match ev {
            HttpEvent::Request(r) => {
                self.service_http(server, r.version.as_str(), (flow.client(), r.start_ts));
            }
            HttpEvent::Response(r) => {
                let q = &r.request;
                if q.upgrade_h2c && r.status == 101 {
                    // The connection continues in HTTP/2 (h2c upgrade).
                    self.service_http(server, "HTTP/2", (flow.client(), r.first_ts));
                }
                if q.upgrade && r.status != 101 {
                    self.add(
                        "http.upgrade.failed",
                        server,
                        format!("status {}", r.status),
                        flow.client(),
                        q.start_ts,
                        &[],
                    );
                }
                if q.version == Version::Http10 && !q.keep_alive && r.version == Version::Http11 {
                    self.add(
                        "http.version.legacy_client",
                        server,
                        String::new(),
                        flow.client(),
                        q.start_ts,
                        &[],
                    );
                }
            }
        }
    }

    fn on_flow_end(&mut self, flow: &mut AFlow, _reason: EndReason, out: &mut Vec<Finding>) {
        self.make_room(out);
        let c = &flow.ext.conn;
        let (client, server) = (flow.client(), flow.server());
        // PMTU black hole: full-size segments resent again and again, none acknowledged, while
        // the smaller ones before them were.
        let st = &flow.ext.homogeneity;
        for d in [flow.client_dir(), flow.client_dir().rev()] {
            let i = d.idx();
            let Some((first, size, heard)) = st.first_full[i] else {
                continue;
            };
            // (An acknowledgment stamped before the segment it acknowledges, two capture
            // ports merged, is caught by the highest one at the end.)
            let acked = st.first_full_acked[i]
                || flow.tcp.half[d.rev().idx()]
                    .ack
                    .is_some_and(|a| a.diff(first) > 0);
            // The receiver is heard from after the first full-size segment (an ACK of what came
            // before it, a window update, its FIN when it gives up): it is there, and only
            // the large segments do not reach it. Silent, it cannot be told from a receiver or
            // a way back gone, or a capture that missed it.
            let alive = u32::try_from(flow.packets[d.rev().idx()]).unwrap_or(u32::MAX) > heard;
            if st.full_retransmissions[i] >= 3 && !acked && !alive {
                self.pmtu_unconfirmed += 1;
            } else if st.full_retransmissions[i] >= 3 && !acked {
                let sender = flow.side_name(d);
                let icmp = if st.frag_needed[i] == 0 {
                    "no ICMP fragmentation-needed reached the sender: filtered on the way back"
                        .to_string()
                } else if st.next_hop_mtu[i] == 0 {
                    format!(
                        "{} ICMP fragmentation-needed (no next-hop MTU given: a router older than RFC 1191) were sent and ignored",
                        st.frag_needed[i]
                    )
                } else {
                    format!(
                        "{} ICMP fragmentation-needed (next-hop MTU {}) were sent and ignored",
                        st.frag_needed[i], st.next_hop_mtu[i]
                    )
                };
                // Without the receiver's MSS, the size is only the largest seen.
                let known = if flow.tcp.half[d.rev().idx()].mss.is_none() {
                    " (the largest it sent; its peer's MSS was not captured)"
                } else {
                    ""
                };
                self.add(
                    "tcp.pmtu.blackhole",
                    server,
                    format!("{sender} segments of {size} bytes{known} retransmitted {} times, never acknowledged; {icmp}", st.full_retransmissions[i]),
                    client,
                    flow.first_ts,
                    &[
                        ("segment_bytes", size.to_string()),
                        ("icmp_frag_needed", st.frag_needed[i].to_string()),
                    ],
                );
            }
        }
        if let (Some((ts, dir, len, options, mss)), false) = (st.mss_exceeded, st.merged) {
            let sender = flow.side_name(dir);
            // The options named when they are what tips the segment over.
            let options = if len > mss {
                String::new()
            } else {
                format!(" and {options} bytes of TCP options")
            };
            self.add(
                "tcp.mss.exceeded",
                server,
                format!("{sender} sent {len} bytes{options} against an MSS of {mss}"),
                client,
                ts,
                &[],
            );
        }
        if c.h2_preface {
            self.service_http(server, "HTTP/2", (client, flow.first_ts));
            if c.h2_rejected {
                self.add(
                    "http2.prior_knowledge.rejected",
                    server,
                    String::new(),
                    client,
                    flow.first_ts,
                    &[],
                );
            }
        }
        let Some(t) = c.tls.as_ref() else { return };
        let Some(ch) = t.client_hello.as_ref() else {
            return;
        };
        self.handshakes += 1;
        let offered: Vec<String> = ch.offered_versions().map(tls::version_name).collect();
        let mut dropped = 0;
        for v in &offered {
            dropped += u64::from(insert_capped(&mut self.tls_offered, v.clone()));
        }
        for a in &ch.alpn {
            dropped += u64::from(insert_capped(&mut self.alpn, a.clone()));
        }
        let ts = t.client_hello_ts.unwrap_or(flow.first_ts);
        let negotiated = t.version();
        if let Some(a) = t.server_hello.as_ref().and_then(|sh| sh.alpn.as_ref()) {
            dropped += u64::from(insert_capped(&mut self.alpn, a.clone()));
        }
        if let Some(v) = negotiated {
            let name = tls::version_name(v);
            dropped += u64::from(insert_capped(&mut self.tls_negotiated, name.clone()));
            note_service(
                &mut self.service_tls,
                server,
                (ch.max_version(), v),
                (client, ts),
                &mut self.services_untracked,
                &mut dropped,
            );
        }
        self.values_dropped += dropped;
        let fatal = t.alerts.iter().find(|(_, a)| a.level == 2);
        if let (Some((by_client, alert)), false) = (fatal, t.app_data) {
            self.failures += 1;
            let cause = tls::alert_name(alert.description);
            let mut extra = vec![
                (
                    "alert_sent_by",
                    if *by_client { "client" } else { "server" }.to_string(),
                ),
                ("client_max_version", tls::version_name(ch.max_version())),
            ];
            extra.extend(offered.iter().map(|o| ("client_offered", o.clone())));
            extra.extend(ch.alpn.iter().map(|a| ("alpn_offered", a.clone())));
            if let Some(v) = negotiated {
                extra.push(("server_version", tls::version_name(v)));
            }
            self.add(
                "tls.handshake.failed",
                server,
                cause.to_string(),
                client,
                ts,
                &extra,
            );
            return;
        }
        if let Some(v) = negotiated.filter(|v| tls::is_obsolete(*v)) {
            self.add(
                "tls.version.obsolete",
                server,
                tls::version_name(v),
                client,
                ts,
                &[("client_max_version", tls::version_name(ch.max_version()))],
            );
        }
        // ALPN is visible in a TLS 1.2 ServerHello only (1.3 encrypts it). Without a choice
        // an HTTP connection speaks HTTP/1.1: only a client that offered HTTP beyond it
        // (HTTP/2, SPDY) did not get what it asked for. An offer of another protocol only
        // (`imap`, `acme-tls/1`) left unanswered is no HTTP fall-back.
        let beyond_http1 = ch.alpn.iter().any(|p| p == "h2" || p.starts_with("spdy/"));
        if beyond_http1 && negotiated.is_some_and(|v| v <= 0x0303) {
            if let Some(sh) = t.server_hello.as_ref().filter(|s| !s.hello_retry) {
                if sh.alpn.is_none() {
                    self.add(
                        "tls.alpn.not_agreed",
                        server,
                        ch.alpn.join(", "),
                        client,
                        ts,
                        &[],
                    );
                }
            }
        }
    }

    fn on_tick(&mut self, now: Timestamp, out: &mut Vec<Finding>) {
        self.report(Some(now), out);
    }

    fn finish(&mut self, now: Timestamp, out: &mut Vec<Finding>) {
        // TLS: clients that offered the same highest version got different ones. (Clients
        // offering different highest versions and each getting its own is the server
        // choosing the best common version every time: nothing mixed on its side.)
        let mut mixed: Vec<(Key, Group)> = Vec::new();
        for (s, versions) in &self.service_tls {
            let mut by_offer: BTreeMap<u16, Vec<(u16, &Group)>> = BTreeMap::new();
            for (&(offered, got), g) in versions {
                by_offer.entry(offered).or_default().push((got, g));
            }
            for (offered, mut got) in by_offer.into_iter().filter(|(_, v)| v.len() > 1) {
                got.sort_by_key(|(v, _)| tls::version_order(*v));
                let names: Vec<String> = got.iter().map(|(v, _)| tls::version_name(*v)).collect();
                // Clients listed in the order they came.
                got.sort_by_key(|(v, g)| (g.seen.first, *v));
                let mut all = Group::new(got[0].1.seen.client, got[0].1.seen.first);
                for (_, g) in &got {
                    all.seen.merge(&g.seen);
                }
                let detail = format!(
                    "clients offering up to {} got {}",
                    tls::version_name(offered),
                    names.join(", ")
                );
                mixed.push((
                    Key {
                        rule: "tls.version.mixed",
                        server: *s,
                        detail,
                    },
                    all,
                ));
            }
        }
        for (s, versions) in &self.service_http {
            if let (Some(old), Some(new)) = (versions.get("HTTP/1.0"), versions.get("HTTP/1.1")) {
                let (a, b) = if new.seen.first < old.seen.first {
                    (new, old)
                } else {
                    (old, new)
                };
                let mut all = Group::new(a.seen.client, a.seen.first);
                all.seen.merge(&a.seen);
                all.seen.merge(&b.seen);
                mixed.push((
                    Key {
                        rule: "http.version.mixed",
                        server: *s,
                        detail: "HTTP/1.0, HTTP/1.1".to_string(),
                    },
                    all,
                ));
            }
        }
        self.groups.extend(mixed);
        self.report(None, out);
        self.pending_events.push(json!({
            "@timestamp": now.rfc3339_micros(),
            "event": {"kind": "metric", "action": "inventory", "category": ["network"], "type": ["info"], "dataset": "observer.inventory"},
            "message": format!(
                "TLS offered {:?}, negotiated {:?}; ALPN {:?}; HTTP {:?}",
                self.tls_offered, self.tls_negotiated, self.alpn, self.http_versions
            ),
            "inventory": {
                "tls_offered": self.tls_offered,
                "tls_negotiated": self.tls_negotiated,
                "alpn": self.alpn,
                "http_request_versions": self.http_versions,
            },
        }));
    }

    fn drain_events(&mut self, out: &mut Vec<Value>) {
        out.append(&mut self.pending_events);
    }

    fn stats(&self, out: &mut Vec<Counter>) {
        out.extend([
            ("tls.handshakes", self.handshakes),
            ("tls.failed_handshakes", self.failures),
            ("tcp.pmtu_blackholes_unconfirmed", self.pmtu_unconfirmed),
            (
                "limits.services_versions_untracked",
                self.services_untracked,
            ),
            ("limits.inventory_values_dropped", self.values_dropped),
            (
                "limits.homogeneity_groups_reported_early",
                self.reported_early,
            ),
        ]);
    }
}
