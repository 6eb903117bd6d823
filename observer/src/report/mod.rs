//! The HTML report (`observer analyze --report report.html`): one self-contained page, no
//! network access and no JavaScript needed to view it.
//!
//! What goes in, all bounded whatever the capture's length:
//! * the run's findings and its `dependencies`, `inventory` and `summary` events, exactly as
//!   written to the NDJSON outputs (at most [`MAX_FINDINGS`] findings; the rest are counted);
//! * each service's run-wide latency distribution ([`LatencyCurve`], from the latency
//!   analyzer's histograms; the [`MAX_SERVICES`] busiest services);
//! * a [`timeline::Timeline`] of bytes per link and direction, TCP segments sent (data, SYN,
//!   FIN) and retransmissions (at most 512 buckets, coarsened as the run grows);
//! * a row per ended flow ([`FlowRow`], the first [`MAX_FLOWS`]), so each finding links to the
//!   flows behind it by community ID.
//!
//! [`Recorder`] collects the timeline and flow rows as one more analyzer, added only when a
//! report is asked for; [`html::render`] turns the result into the page.

pub mod html;
pub mod svg;
pub mod timeline;

use crate::analyze::{AFlow, Analyzer, PacketView};
use crate::decode::{Transport, tcp_flags};
use crate::finding::Finding;
use crate::flow::EndReason;
use crate::flow::tcp::{Phase, SegFlags};
use crate::time::Timestamp;
use serde_json::Value;
use std::net::IpAddr;
use timeline::Timeline;

/// Findings kept for the report.
pub const MAX_FINDINGS: usize = 5_000;
/// Services whose latency is plotted.
pub const MAX_SERVICES: usize = 16;
/// Flow rows kept.
pub const MAX_FLOWS: usize = 50_000;

/// One service's latency distribution for one metric.
#[derive(Clone, Debug)]
pub struct LatencyCurve {
    /// `address:port`.
    pub service: String,
    /// The name clients used for it (HTTP `Host`, TLS SNI), when known.
    pub name: Option<String>,
    /// `latency.metric`.
    pub metric: &'static str,
    /// Samples.
    pub count: u64,
    /// (percentile 0–100, microseconds), ascending.
    pub points: Vec<(f64, u64)>,
}

/// One ended flow.
#[derive(Clone, Debug)]
pub struct FlowRow {
    /// Client address and port.
    pub client: (IpAddr, u16),
    /// Server address and port.
    pub server: (IpAddr, u16),
    /// IP protocol number.
    pub proto: u8,
    /// Application protocol, when identified.
    pub protocol: Option<&'static str>,
    /// First and last packet.
    pub first: Timestamp,
    /// Last packet.
    pub last: Timestamp,
    /// Packets client → server, server → client.
    pub packets: [u64; 2],
    /// IP bytes client → server, server → client.
    pub bytes: [u64; 2],
    /// Retransmitted segments, both directions.
    pub retransmissions: u64,
    /// How it ended: `closed`, `reset`, `unanswered`, `open at end of capture`, …
    pub end: &'static str,
}

impl FlowRow {
    /// `network.community_id` of the flow.
    pub fn community_id(&self) -> String {
        crate::community_id::community_id_v1(
            self.client.0,
            self.client.1,
            self.server.0,
            self.server.1,
            self.proto,
        )
    }
}

/// Everything the page is drawn from.
#[derive(Debug, Default)]
pub struct ReportData {
    /// Alert events, in the order they were written.
    pub findings: Vec<Value>,
    /// Findings not kept (beyond [`MAX_FINDINGS`]).
    pub findings_omitted: u64,
    /// Per fallacy (id − 1), the most severe of the findings not kept, the first of its
    /// severity: (severity, message), so the verdict still names it.
    pub omitted_worst: [Option<(u64, String)>; 8],
    /// The last `dependencies` event.
    pub dependencies: Option<Value>,
    /// The last `inventory` event.
    pub inventory: Option<Value>,
    /// The run's summary event.
    pub summary: Option<Value>,
    /// Latency distributions, busiest services first.
    pub latency: Vec<LatencyCurve>,
    /// Services with latency samples that were not plotted.
    pub latency_services_omitted: u64,
    /// Traffic over time.
    pub timeline: Timeline,
    /// Ended flows, in the order they ended.
    pub flows: Vec<FlowRow>,
    /// Flows not kept (beyond [`MAX_FLOWS`]).
    pub flows_omitted: u64,
}

impl ReportData {
    /// Keeps an event written to the outputs, if the report shows it.
    pub fn on_event(&mut self, ev: &Value) {
        match (ev["event"]["kind"].as_str(), ev["event"]["action"].as_str()) {
            (Some("alert"), _) => {
                if self.findings.len() < MAX_FINDINGS {
                    self.findings.push(ev.clone());
                } else {
                    self.findings_omitted += 1;
                    let severity = ev["event"]["severity"].as_u64().unwrap_or(0);
                    let slot = ev["fallacy"]["id"]
                        .as_u64()
                        .and_then(|id| usize::try_from(id).ok()?.checked_sub(1))
                        .and_then(|i| self.omitted_worst.get_mut(i));
                    if let Some(slot) = slot
                        && slot.as_ref().is_none_or(|(worst, _)| severity > *worst)
                    {
                        let message = ev["message"].as_str().unwrap_or_default().to_string();
                        *slot = Some((severity, message));
                    }
                }
            }
            (_, Some("dependencies")) => self.dependencies = Some(ev.clone()),
            (_, Some("inventory")) => self.inventory = Some(ev.clone()),
            (_, Some("summary")) => self.summary = Some(ev.clone()),
            _ => {}
        }
    }
}

/// Collects the timeline and the flow rows: an analyzer that flags nothing.
#[derive(Default)]
pub struct Recorder {
    timeline: Timeline,
    flows: Vec<FlowRow>,
    flows_omitted: u64,
}

impl Analyzer for Recorder {
    fn name(&self) -> &'static str {
        "report"
    }

    fn on_packet(
        &mut self,
        pkt: &PacketView<'_>,
        flow: &crate::analyze::FlowInfo,
        _facts: &crate::analyze::Facts,
        _out: &mut Vec<Finding>,
    ) {
        // Segments that occupy sequence space (data, SYN, FIN): what a retransmission resends,
        // as the reliability analyzer counts its rate.
        let (data, retransmission) = match (&pkt.ip.transport, &pkt.tcp) {
            (Transport::Tcp(seg), Some(u)) => (
                seg.seg_len > 0 || seg.flags & (tcp_flags::SYN | tcp_flags::FIN) != 0,
                u.analysis.has(SegFlags::ANY_RETRANSMISSION),
            ),
            _ => (false, false),
        };
        self.timeline.add(
            pkt.ts,
            pkt.interface,
            pkt.dir == flow.client_dir,
            u64::from(pkt.ip.ip_len),
            data,
            retransmission,
        );
    }

    fn on_flow_end(&mut self, flow: &mut AFlow, reason: EndReason, _out: &mut Vec<Finding>) {
        if self.flows.len() >= MAX_FLOWS {
            self.flows_omitted += 1;
            return;
        }
        let c = flow.client_dir();
        let (ci, si) = (c.idx(), c.rev().idx());
        let tcp = flow.key.proto == 6;
        let half = &flow.tcp.half;
        let end = if tcp && (half[0].rst || half[1].rst) {
            "reset"
        } else if tcp && matches!(flow.tcp.phase, Phase::SynSent) {
            "unanswered"
        } else if tcp && matches!(flow.tcp.phase, Phase::Closed) {
            "closed"
        } else {
            match reason {
                EndReason::Idle => "idle",
                EndReason::Capacity => "evicted (flow table full)",
                EndReason::PortReuse => "replaced (port reuse)",
                EndReason::EndOfInput(_) => "open at end of capture",
            }
        };
        let retransmissions = half
            .iter()
            .map(|h| {
                h.counters.retransmissions
                    + h.counters.fast_retransmissions
                    + h.counters.spurious_retransmissions
            })
            .sum();
        self.flows.push(FlowRow {
            client: flow.client(),
            server: flow.server(),
            proto: flow.key.proto,
            protocol: flow.ext.conn.protocol.map(|p| p.name()),
            first: flow.first_ts,
            last: flow.last_ts,
            packets: [flow.packets[ci], flow.packets[si]],
            bytes: [flow.bytes[ci], flow.bytes[si]],
            retransmissions: if tcp { retransmissions } else { 0 },
            end,
        });
    }

    fn report(&mut self, r: &mut ReportData) {
        r.timeline = std::mem::take(&mut self.timeline);
        r.flows = std::mem::take(&mut self.flows);
        r.flows_omitted = self.flows_omitted;
    }
}
