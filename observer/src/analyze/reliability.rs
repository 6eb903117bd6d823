//! The network is reliable (fallacy 1), TCP side: loss and recovery per flow.
//!
//! Counts, with Wireshark's semantics (see `flow::tcp`), retransmissions (plain, fast,
//! spurious), out-of-order segments (not loss), lost segments (a gap before the data: the
//! capture missed it), duplicate ACKs, zero windows, window-full segments and keep-alives (not
//! retransmissions).
//!
//! Flags, once per flow when it ends:
//! * `tcp.retransmission.excessive` — a direction that sent at least `min_segments` data
//!   segments retransmitted at least `min_retransmissions` of them and at least
//!   `rate_threshold` of them (medium; high from 10 %);
//! * `tcp.retransmission.stall` — a retransmission came after the sender had been silent for
//!   longer than max(200 ms, 3 × handshake RTT), RTO-style, and the longest such stall reached
//!   `stall_threshold_secs` (medium; high from 3 s).
//!
//! Evidence: per direction segments, bytes, every counter above, the stall times.
//! Deliberately not flagged: connections that never got a SYN/ACK (the connection-health
//! analyzer reports those), out-of-order segments, keep-alives, lost segments alone (they
//! describe the capture point more often than the network), zero windows (a receiver limit:
//! reported with the bandwidth analyzer).

use super::{AFlow, Analyzer, Counter};
use crate::config::ReliabilitySection;
use crate::finding::{Fallacy, Finding, FlowRef, Severity};
use crate::flow::tcp::{SeqCounters, TcpHalf};
use crate::flow::{Dir, EndReason};
use crate::time::{NANOS_PER_SEC, Nanos};
use serde::Serialize;

#[derive(Serialize)]
struct DirEvidence {
    data_segments: u64,
    payload_bytes: u64,
    retransmissions: u64,
    fast_retransmissions: u64,
    spurious_retransmissions: u64,
    retransmitted_bytes: u64,
    retransmission_rate: f64,
    out_of_order: u64,
    lost_segments: u64,
    duplicate_acks: u64,
    zero_windows: u64,
    window_full: u64,
    keep_alives: u64,
    stalls: u64,
    longest_stall_secs: f64,
    stalled_secs: f64,
}

#[derive(Serialize)]
struct Evidence {
    client_to_server: DirEvidence,
    server_to_client: DirEvidence,
    initial_rtt_ms: Option<f64>,
    /// The smoothed RTT the host's own TCP stack computed (kernel probe only).
    #[serde(skip_serializing_if = "Option::is_none")]
    host_srtt_ms: Option<f64>,
    duration_secs: f64,
}

fn secs(n: Nanos) -> f64 {
    n as f64 / NANOS_PER_SEC as f64
}

fn dir_evidence(h: &TcpHalf) -> DirEvidence {
    let (c, payload) = (&h.counters, h.payload_bytes);
    DirEvidence {
        data_segments: c.data_segments,
        payload_bytes: payload,
        retransmissions: c.retransmissions,
        fast_retransmissions: c.fast_retransmissions,
        spurious_retransmissions: c.spurious_retransmissions,
        retransmitted_bytes: c.retransmitted_bytes,
        retransmission_rate: rate(h),
        out_of_order: c.out_of_order,
        lost_segments: c.lost_segments,
        duplicate_acks: c.duplicate_acks,
        zero_windows: c.zero_windows,
        window_full: c.window_full,
        keep_alives: c.keep_alives,
        stalls: c.stalls,
        longest_stall_secs: secs(c.longest_stall),
        stalled_secs: secs(c.stalled),
    }
}

/// The segments of one direction that took sequence space: data, SYNs, its FIN. The
/// retransmissions counted include SYNs and FINs sent again (as tshark counts them), so they
/// are counted here too and the rate stays a share of what was sent.
fn segments(h: &TcpHalf) -> u64 {
    h.counters.data_segments + u64::from(h.syns) + u64::from(h.fin)
}

/// Retransmissions per segment sent, in one direction.
fn rate(h: &TcpHalf) -> f64 {
    match segments(h) {
        0 => 0.0,
        n => h.counters.all_retransmissions() as f64 / n as f64,
    }
}

fn add(t: &mut SeqCounters, c: &SeqCounters) {
    t.data_segments += c.data_segments;
    t.retransmissions += c.retransmissions;
    t.fast_retransmissions += c.fast_retransmissions;
    t.spurious_retransmissions += c.spurious_retransmissions;
    t.retransmitted_bytes += c.retransmitted_bytes;
    t.out_of_order += c.out_of_order;
    t.lost_segments += c.lost_segments;
    t.duplicate_acks += c.duplicate_acks;
    t.zero_windows += c.zero_windows;
    t.window_full += c.window_full;
    t.keep_alives += c.keep_alives;
    t.stalls += c.stalls;
    t.stalled += c.stalled;
    t.longest_stall = t.longest_stall.max(c.longest_stall);
}

/// The TCP reliability analyzer.
pub struct Reliability {
    cfg: ReliabilitySection,
    totals: SeqCounters,
    flagged_rate: u64,
    flagged_stall: u64,
}

impl Reliability {
    /// A new analyzer.
    pub fn new(cfg: &ReliabilitySection) -> Self {
        Reliability {
            cfg: cfg.clone(),
            totals: SeqCounters::default(),
            flagged_rate: 0,
            flagged_stall: 0,
        }
    }
}

impl Analyzer for Reliability {
    fn name(&self) -> &'static str {
        "reliability"
    }

    fn on_flow_end(&mut self, flow: &mut AFlow, _reason: EndReason, out: &mut Vec<Finding>) {
        if flow.key.proto != 6 {
            return;
        }
        // Totals from the flows' counters, so counts a source merged into a flow (a kernel
        // probe's retransmissions) are in the summary too.
        for h in &flow.tcp.half {
            add(&mut self.totals, &h.counters);
        }
        let cd = flow.client_dir();
        let c2s = &flow.tcp.half[cd.idx()];
        let s2c = &flow.tcp.half[cd.rev().idx()];
        // A connection that never got its SYN/ACK and carried nothing is the connection-health
        // analyzer's finding (refused or unanswered); its SYN retries are not reported twice.
        // One that carried data had its SYN/ACK missed by the capture: its loss is ours.
        if flow.tcp.syn_ts.is_some()
            && flow.tcp.synack_ts.is_none()
            && c2s.payload_bytes == 0
            && s2c.payload_bytes == 0
        {
            return;
        }
        // The direction losing the most, among those with enough segments and retransmissions
        // to judge (the client's on a tie).
        let worst = [(cd, c2s), (cd.rev(), s2c)]
            .into_iter()
            .filter(|(_, h)| {
                h.counters.data_segments >= self.cfg.min_segments
                    && h.counters.all_retransmissions() >= self.cfg.min_retransmissions
            })
            .fold(None, |best: Option<(Dir, &TcpHalf)>, (d, h)| match best {
                Some((_, b)) if rate(b) >= rate(h) => best,
                _ => Some((d, h)),
            });
        let worst_rate = worst.map_or(0.0, |(_, h)| rate(h));
        let longest_stall = c2s.counters.longest_stall.max(s2c.counters.longest_stall);
        let rate_hit = worst_rate >= self.cfg.rate_threshold && worst_rate > 0.0;
        let stall_hit = longest_stall > 0 && secs(longest_stall) >= self.cfg.stall_threshold_secs;
        if !rate_hit && !stall_hit {
            return;
        }
        let (client, server) = (flow.client(), flow.server());
        let ev = Evidence {
            client_to_server: dir_evidence(c2s),
            server_to_client: dir_evidence(s2c),
            initial_rtt_ms: flow.tcp.initial_rtt().map(|r| r as f64 / 1e6),
            host_srtt_ms: flow.tcp.host_srtt.map(|(_, r)| r as f64 / 1e6),
            duration_secs: secs(flow.last_ts.since(flow.first_ts)),
        };
        let evidence = Finding::evidence_from(&ev);

        if let Some((d, h)) = worst.filter(|_| rate_hit) {
            self.flagged_rate += 1;
            out.push(Finding {
                ts: flow.first_ts,
                rule: "tcp.retransmission.excessive",
                severity: if worst_rate >= 0.10 {
                    Severity::High
                } else {
                    Severity::Medium
                },
                fallacy: Fallacy::NetworkIsReliable,
                message: format!(
                    "{}:{} → {}:{}: the {} retransmitted {} of {} segments ({:.1} %, {} bytes)",
                    client.0,
                    client.1,
                    server.0,
                    server.1,
                    flow.side_name(d),
                    h.counters.all_retransmissions(),
                    segments(h),
                    worst_rate * 100.0,
                    h.counters.retransmitted_bytes
                ),
                flow: Some(FlowRef::new(client, server, 6)),
                evidence: evidence.clone(),
            });
        }
        if stall_hit {
            self.flagged_stall += 1;
            let (d, h) = if c2s.counters.longest_stall >= s2c.counters.longest_stall {
                (cd, c2s)
            } else {
                (cd.rev(), s2c)
            };
            out.push(Finding {
                ts: flow.first_ts,
                rule: "tcp.retransmission.stall",
                severity: if secs(longest_stall) >= 3.0 {
                    Severity::High
                } else {
                    Severity::Medium
                },
                fallacy: Fallacy::NetworkIsReliable,
                message: format!(
                    "{}:{} → {}:{}: the {} stalled {} time(s) waiting to retransmit (longest {:.2} s, {:.2} s in all)",
                    client.0,
                    client.1,
                    server.0,
                    server.1,
                    flow.side_name(d),
                    h.counters.stalls,
                    secs(h.counters.longest_stall),
                    secs(h.counters.stalled)
                ),
                flow: Some(FlowRef::new(client, server, 6)),
                evidence,
            });
        }
    }

    fn stats(&self, out: &mut Vec<Counter>) {
        let t = &self.totals;
        out.extend([
            ("tcp.retransmissions", t.all_retransmissions()),
            ("tcp.retransmission_kinds.plain", t.retransmissions),
            ("tcp.retransmission_kinds.fast", t.fast_retransmissions),
            (
                "tcp.retransmission_kinds.spurious",
                t.spurious_retransmissions,
            ),
            ("tcp.out_of_order", t.out_of_order),
            ("tcp.lost_segments", t.lost_segments),
            ("tcp.duplicate_acks", t.duplicate_acks),
            ("tcp.zero_windows", t.zero_windows),
            ("tcp.window_full", t.window_full),
            ("tcp.keep_alives", t.keep_alives),
            ("tcp.stalls", t.stalls),
            ("tcp.flows_flagged.retransmission_rate", self.flagged_rate),
            ("tcp.flows_flagged.stall", self.flagged_stall),
        ]);
    }
}
