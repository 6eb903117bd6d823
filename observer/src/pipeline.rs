//! The pipeline: capture source → decode → flow table / TCP state → analyzers → sink.
//!
//! One [`Pipeline`] processes any number of inputs in order as one continuous stream (rotated
//! capture files continue each other's flows). Findings go to the sink as soon as an analyzer
//! decides them; the summary event is written by [`Pipeline::finish`].

use crate::analyze::{
    self, AFlow, Counter, DnsView, Facts, FlowExt, FlowHalves, FlowInfo, FragmentBytes, Note,
    PacketView,
};
use crate::app::{self, AppStats, HttpEvent};
use crate::config::Config;
use crate::decode::{self, FragmentPart, Frame, IpPacket, Transport, TunnelOuter, Undecodable};
use crate::defrag::{Added, Defrag};
use crate::finding::{ECS_VERSION, Fallacy, Finding, SCHEMA_VERSION, Severity, nest_dotted};
use crate::flow::{Dir, EndReason, FlowKey, FlowTable};
use crate::report::{Recorder, ReportData};
use crate::sink::{Sink, SinkError};
use crate::source::handoff::{self, Item};
use crate::source::{CaptureFile, LinkType, Packet, SourceError};
use crate::time::{NANOS_PER_SEC, Nanos, Timestamp};
use serde_json::{Value, json};
use sha1::{Digest, Sha1};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Tool version written into the start event.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How reading one input ended.
#[derive(Debug)]
pub enum InputStatus {
    /// Read to its end.
    Complete,
    /// Read up to a point, then it ended early or was damaged; what came before was analyzed.
    Partial(SourceError),
    /// Could not be read at all.
    Failed(SourceError),
}

/// What happened to one input.
#[derive(Debug)]
pub struct InputReport {
    /// The path as given.
    pub path: PathBuf,
    /// Container format, when recognised.
    pub format: Option<&'static str>,
    /// gzip-compressed.
    pub gzip: bool,
    /// Frames read.
    pub packets: u64,
    /// Outcome.
    pub status: InputStatus,
    /// Frames per link type this build cannot decode.
    pub unsupported_links: BTreeMap<LinkType, u64>,
}

/// Packet-level counters.
#[derive(Clone, Debug, Default)]
pub struct PacketStats {
    /// Frames read.
    pub frames: u64,
    /// Bytes on the wire (original frame lengths).
    pub wire_bytes: u64,
    /// Bytes captured.
    pub captured_bytes: u64,
    /// Frames cut by the snap length.
    pub snapped: u64,
    /// IPv4 packets.
    pub ipv4: u64,
    /// IPv6 packets.
    pub ipv6: u64,
    /// IP fragments.
    pub fragments: u64,
    /// TCP segments.
    pub tcp: u64,
    /// … of which SYNs without ACK (connection attempts and their retries).
    pub tcp_syns: u64,
    /// UDP datagrams.
    pub udp: u64,
    /// ICMP and ICMPv6 messages.
    pub icmp: u64,
    /// ICMP destination unreachable (v4 type 3, v6 type 1).
    pub icmp_unreachable: u64,
    /// … of which quote no TCP or UDP packet (not handed to the analyzers).
    pub icmp_unreachable_unquoted: u64,
    /// IP packets of other protocols.
    pub other_ip: u64,
    /// Packets reached through a tunnel.
    pub tunneled: u64,
    /// Frames that are not IP.
    pub non_ip: u64,
    /// Frames whose link type is not supported.
    pub unsupported_link: u64,
    /// Frames that could not be decoded down to IP.
    pub undecodable: u64,
    /// IP packets whose transport header was cut.
    pub transport_truncated: u64,
    /// Frames stamped more than [`MAX_JUMP`] after the frame that followed them, analyzed at
    /// the capture's time instead.
    pub timestamp_outliers: u64,
    /// TCP frames and UDP datagrams that were copies of one just before them in their
    /// direction (see [`crate::flow::tcp::TcpConn::is_copy`] and
    /// [`crate::flow::tcp::TcpConn::is_datagram_copy`]), left out of the analysis, by
    /// [`CopyKind`].
    pub duplicates: [u64; 4],
    /// Frames stamped more than a second before the frame just before them: the capture's
    /// clock stepped back (an NTP correction, captures joined out of order). Durations and
    /// rates measured across such a step are not the real ones.
    pub time_steps_back: u64,
}

/// What a copied frame was: for TCP, what it would have counted as in tshark's analysis
/// (the index into [`PacketStats::duplicates`]).
#[derive(Clone, Copy)]
pub enum CopyKind {
    /// Data, SYN or FIN: a retransmission.
    Segment = 0,
    /// A bare ACK: a duplicate ACK.
    Ack = 1,
    /// A reset.
    Reset = 2,
    /// A UDP datagram.
    Datagram = 3,
}

impl CopyKind {
    fn of(seg: &decode::TcpSegment<'_>) -> CopyKind {
        use decode::tcp_flags::{FIN, RST, SYN};
        if seg.has(RST) {
            CopyKind::Reset
        } else if seg.seg_len > 0 || seg.flags & (SYN | FIN) != 0 {
            CopyKind::Segment
        } else {
            CopyKind::Ack
        }
    }
}

/// Whether the outputs still take events: once they stop, nothing more is written to them
/// (no flush either) while the run ends.
enum Outputs {
    Open,
    /// With a report being collected, why the outputs stopped (every one closed or failed):
    /// the analysis carries on for the report, and [`Pipeline::finish_all`] returns it.
    Gone(SinkError),
    /// Without a report, the outputs failed: the error went to the caller, which stops there.
    Failed,
}

/// The pipeline.
pub struct Pipeline<'s> {
    flows: FlowTable<FlowExt>,
    analyzers: analyze::Analyzers,
    /// The analyzers' per-flow halves.
    halves: FlowHalves,
    /// What the per-flow halves noted about the packet at hand (kept for its room).
    notes: Vec<Note>,
    sink: &'s mut dyn Sink,
    inputs_given: Vec<PathBuf>,
    started: bool,
    stats: PacketStats,
    first_ts: Option<Timestamp>,
    /// The previous frame's time, as it was stamped.
    prev_ts: Option<Timestamp>,
    last_ts: Option<Timestamp>,
    now: Timestamp,
    next_tick: Timestamp,
    findings: Vec<Finding>,
    ended: Vec<(AFlow, EndReason)>,
    by_fallacy: [u64; 8],
    by_severity: [u64; 4],
    by_rule: BTreeMap<&'static str, u64>,
    max_severity: Option<Severity>,
    reports: Vec<InputReport>,
    unsupported: BTreeMap<LinkType, u64>,
    http_events: Vec<HttpEvent>,
    app_stats: AppStats,
    dependencies: Option<Value>,
    run_id: Option<String>,
    seq: u64,
    /// Reused buffer for a DNS response's answers.
    dns_answers: Vec<(std::net::IpAddr, u32)>,
    /// The DNS-over-TCP messages of the segment at hand (buffers reused).
    dns_events: app::DnsEvents,
    streaming: bool,
    unflushed: bool,
    capture_stats: Option<CaptureStats>,
    source_counters: Vec<(String, u64)>,
    /// The most severe findings per fallacy (at most [`TOP_PER_FALLACY`]), for the human summary.
    top: [Vec<TopFinding>; 8],
    sampled: bool,
    metric_events: u64,
    /// What the HTML report is drawn from, when one was asked for.
    report: Option<Box<ReportData>>,
    /// Whether the outputs still take events ([`Pipeline::outputs_left`]).
    outputs: Outputs,
    /// TLS connections whose hello outgrew its buffer.
    tls_hello_dropped: u64,
    parse: ParseBudget,
    /// Frames waiting for the clock to be read again ([`Pipeline::process`]), at most
    /// [`HOLD_FRAMES`], and buffers for their bytes kept from earlier holds.
    held: Vec<Held>,
    spare: Vec<Vec<u8>>,
    /// IP fragments waiting for the rest of their datagram.
    defrag: Defrag,
    /// The length on the wire of the Ethernet frame being analyzed (0: not Ethernet, or a
    /// packet not the frame's: a datagram reassembled, a fragment released after it was held):
    /// the line bytes a link's capacity counts.
    frame_len: u32,
    /// The packet being analyzed is a first fragment released late from the reassembly table
    /// ([`PacketView::late`]).
    late: bool,
    /// Read large inputs on a second thread ([`Pipeline::set_read_ahead`]).
    read_ahead: bool,
}

/// A live capture's own counters, as the capture library reports them.
#[derive(Clone, Copy, Debug, Default)]
pub struct CaptureStats {
    /// Packets the capture received.
    pub received: u64,
    /// Packets dropped because the capture buffer was full.
    pub dropped_kernel: u64,
    /// Packets the interface or its driver dropped.
    pub dropped_interface: u64,
}

/// What one endpoint of a flow sent, as a source counted it outside the packets it handed to
/// the pipeline (a kernel probe's per-flow map): totals since the source first saw the flow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SentTotals {
    /// Packets.
    pub packets: u64,
    /// IP bytes.
    pub bytes: u64,
    /// Segments carrying payload.
    pub data_segments: u64,
    /// Payload bytes.
    pub payload: u64,
    /// Retransmissions the sender's own TCP stack made.
    pub retransmissions: u64,
    /// Retransmissions after a silence of at least the minimum RTO.
    pub stalls: u64,
    /// The longest such silence.
    pub longest_stall: Nanos,
    /// All such silences.
    pub stalled: Nanos,
    /// Payload bytes sent again.
    pub retransmitted_bytes: u64,
}

/// A flow's totals from such a source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowTotals {
    /// IP protocol.
    pub proto: u8,
    /// The two endpoints.
    pub ends: [(std::net::IpAddr, u16); 2],
    /// What `ends[i]` sent.
    pub sent: [SentTotals; 2],
    /// When the source started counting these totals (its entry for the flow was created),
    /// if known: totals with another start count from zero again.
    pub since: Option<Timestamp>,
    /// Last activity.
    pub last: Timestamp,
    /// Smoothed RTT of the socket at `ends[i]` (a host's own TCP stack), if known.
    pub srtt: Option<(usize, Nanos)>,
}

/// What a source's totals ([`Pipeline::merge_totals`]) credited one flow with. The source
/// counts per 4-tuple, from when it first saw it: its totals can go on from an earlier
/// connection on the same ports, so a flow is credited with their growth while it is held, not
/// with the totals themselves.
#[derive(Clone, Copy, Debug, Default)]
pub struct SourceCredit {
    /// The source's totals at the last merge (per endpoint, in the source's order).
    last: [SentTotals; 2],
    /// When the source started counting them, if known.
    since: Option<Timestamp>,
    /// Their growth while the flow was held.
    credited: [SentTotals; 2],
}

impl SourceCredit {
    /// Credits the growth from the last totals to `now`, counted since `since`.
    fn credit(&mut self, now: &[SentTotals; 2], since: Option<Timestamp>) {
        // Another start, or fewer packets than last time: the source's entry was deleted and
        // created again (the probe deletes closed and non-TCP flows' entries idle for 10 s)
        // and counts from zero; all it holds now is new.
        let restarted = matches!((self.since, since), (Some(a), Some(b)) if a != b)
            || now
                .iter()
                .zip(&self.last)
                .any(|(s, was)| s.packets < was.packets);
        if restarted {
            self.last = Default::default();
        }
        self.since = since.or(self.since);
        for ((c, was), s) in self.credited.iter_mut().zip(&mut self.last).zip(now) {
            c.packets += s.packets.saturating_sub(was.packets);
            c.bytes += s.bytes.saturating_sub(was.bytes);
            c.data_segments += s.data_segments.saturating_sub(was.data_segments);
            c.payload += s.payload.saturating_sub(was.payload);
            c.retransmissions += s.retransmissions.saturating_sub(was.retransmissions);
            c.retransmitted_bytes += s
                .retransmitted_bytes
                .saturating_sub(was.retransmitted_bytes);
            if s.stalls > was.stalls {
                c.stalls += s.stalls - was.stalls;
                c.stalled += (s.stalled - was.stalled).max(0);
                // The source's longest is over all it counted: taken once this flow stalled.
                c.longest_stall = c.longest_stall.max(s.longest_stall);
            }
            *was = *s;
        }
    }
}

/// How far the reading of one input has got (for a progress display).
#[derive(Clone, Copy, Debug)]
pub struct Progress<'a> {
    /// The input.
    pub path: &'a Path,
    /// Bytes of the (decompressed) stream consumed.
    pub offset: u64,
    /// The file's size, when it is the stream's size (not gzip).
    pub size: Option<u64>,
    /// Frames read so far.
    pub frames: u64,
    /// The input has ended.
    pub done: bool,
}

/// The run's budget for every flow's parsing buffers together
/// ([`analyze::FlowExt::buffered_bytes`]: TLS handshakes, HTTP heads, pending requests).
#[derive(Debug, Default)]
struct ParseBudget {
    /// Bytes counted, the sum of the flows' `FlowExt::buffered`.
    used: usize,
    /// The highest `used`.
    peak: usize,
    /// The budget.
    limit: usize,
    /// Flows shed because the budget was spent.
    shed: u64,
}

impl ParseBudget {
    /// Counts a flow's buffers after they may have changed. A flow that grew them past the
    /// budget is shed (freed, its TLS handshake and HTTP exchanges no longer followed), so
    /// hostile flows cannot take together the memory each may hold alone.
    fn count(&mut self, ext: &mut analyze::FlowExt) {
        let was = ext.buffered;
        let mut now = ext.buffered_bytes();
        if now == was {
            return;
        }
        let others = self.used - was;
        if now > was && others + now > self.limit {
            ext.shed();
            self.shed += 1;
            now = ext.buffered_bytes();
        }
        ext.buffered = now;
        self.used = others + now;
        self.peak = self.peak.max(self.used);
    }
}

/// A forward jump of the capture clock larger than this must be confirmed by the frames after
/// it ([`Pipeline::process`]).
pub const MAX_JUMP: Nanos = 3600 * NANOS_PER_SEC;

/// Frames held at most while a jump waits for confirmation: the one after them confirms it
/// (a few consecutive corrupt frames do not confirm each other).
pub const HOLD_FRAMES: usize = 4;

/// A frame held by [`Pipeline::process`], with a copy of its bytes.
struct Held {
    pkt: Packet<'static>,
    data: Vec<u8>,
}

/// Findings kept per fallacy for the human summary.
pub const TOP_PER_FALLACY: usize = 3;

/// One finding as the human summary shows it.
#[derive(Clone, Debug)]
pub struct TopFinding {
    /// Severity.
    pub severity: Severity,
    /// Rule name.
    pub rule: &'static str,
    /// The finding's message.
    pub message: String,
}

/// Totals of a finished run, for the caller's exit code and human summary.
#[derive(Debug)]
pub struct RunSummary {
    /// Packet counters.
    pub packets: PacketStats,
    /// Per-input outcomes.
    pub inputs: Vec<InputReport>,
    /// Findings per fallacy (index = id − 1).
    pub by_fallacy: [u64; 8],
    /// Findings per rule name.
    pub by_rule: BTreeMap<&'static str, u64>,
    /// Highest severity emitted.
    pub max_severity: Option<Severity>,
    /// First and last capture time.
    pub span: Option<(Timestamp, Timestamp)>,
    /// TCP and UDP flows created.
    pub flows_tcp: u64,
    /// UDP flows created.
    pub flows_udp: u64,
    /// Every counter by its `stats.*` name.
    pub counters: BTreeMap<String, u64>,
    /// The external-dependency inventory event (`event.action = "dependencies"`).
    pub dependencies: Option<Value>,
    /// The most severe findings per fallacy (index = id − 1), most severe first.
    pub top: [Vec<TopFinding>; 8],
    /// What the HTML report is drawn from ([`Pipeline::enable_report`]).
    pub report: Option<Box<ReportData>>,
}

impl<'s> Pipeline<'s> {
    /// A pipeline with every analyzer, writing to `sink`. `inputs` is recorded in the start
    /// event.
    pub fn new(cfg: &Config, sink: &'s mut dyn Sink, inputs: &[PathBuf]) -> Self {
        Pipeline {
            flows: FlowTable::new(cfg.flow_config()),
            halves: FlowHalves::new(cfg),
            notes: Vec::new(),
            analyzers: analyze::Analyzers::new(cfg),
            sink,
            inputs_given: inputs.to_vec(),
            started: false,
            stats: PacketStats::default(),
            first_ts: None,
            last_ts: None,
            prev_ts: None,
            now: Timestamp(i64::MIN),
            next_tick: Timestamp(i64::MIN),
            findings: Vec::new(),
            ended: Vec::new(),
            by_fallacy: [0; 8],
            by_severity: [0; 4],
            by_rule: BTreeMap::new(),
            max_severity: None,
            reports: Vec::new(),
            unsupported: BTreeMap::new(),
            http_events: Vec::new(),
            app_stats: AppStats::default(),
            dependencies: None,
            run_id: None,
            seq: 0,
            dns_answers: Vec::new(),
            dns_events: app::DnsEvents::default(),
            streaming: false,
            unflushed: false,
            capture_stats: None,
            source_counters: Vec::new(),
            top: Default::default(),
            sampled: false,
            metric_events: 0,
            report: None,
            outputs: Outputs::Open,
            tls_hello_dropped: 0,
            parse: ParseBudget {
                limit: usize::try_from(cfg.flows.max_parse_buffers_mb.saturating_mul(1 << 20))
                    .unwrap_or(usize::MAX),
                ..ParseBudget::default()
            },
            held: Vec::new(),
            spare: Vec::new(),
            defrag: Defrag::new(),
            frame_len: 0,
            late: false,
            read_ahead: false,
        }
    }

    /// Reads (and inflates) inputs of a few MiB or more on a second thread while this one
    /// analyzes: the same frames in the same order, so the output is the same either way.
    pub fn set_read_ahead(&mut self, on: bool) {
        self.read_ahead = on;
    }

    /// Reads one capture file to its end (or to the point where it is damaged). Returns an
    /// error only when the sink failed; input problems are recorded in the input report.
    pub fn run_file(&mut self, path: &Path) -> Result<(), SinkError> {
        self.run_file_with_progress(path, &mut |_| {})
    }

    /// [`Pipeline::run_file`], calling `progress` every 65,536 frames and at the end.
    pub fn run_file_with_progress(
        &mut self,
        path: &Path,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<(), SinkError> {
        let mut file = match CaptureFile::open_with(path, self.read_ahead) {
            Ok(f) => f,
            Err(e) => {
                self.reports.push(InputReport {
                    path: path.to_path_buf(),
                    format: None,
                    gzip: false,
                    packets: 0,
                    status: InputStatus::Failed(e),
                    unsupported_links: BTreeMap::new(),
                });
                return Ok(());
            }
        };
        self.unsupported.clear();
        let size = (!file.is_gzip())
            .then(|| std::fs::metadata(path).ok().map(|m| m.len()))
            .flatten();
        // A mapped file's records are walked on a second thread when there is one to use.
        let ended = handoff::read_frames(&mut file, self.read_ahead, |item| match item {
            Item::Frame(pkt, frame) => self.process_decoded(pkt, frame),
            Item::Progress { frames, offset } => {
                progress(&Progress {
                    path,
                    offset,
                    size,
                    frames,
                    done: false,
                });
                Ok(())
            }
        })?;
        let status = match ended.result {
            Ok(()) => InputStatus::Complete,
            Err(e) => InputStatus::Partial(e),
        };
        self.end_of_input()?;
        progress(&Progress {
            path,
            offset: ended.offset,
            size,
            frames: ended.frames,
            done: true,
        });
        self.reports.push(InputReport {
            path: path.to_path_buf(),
            format: Some(file.format().name()),
            gzip: file.is_gzip(),
            packets: ended.frames,
            status,
            unsupported_links: std::mem::take(&mut self.unsupported),
        });
        Ok(())
    }

    fn emit_start(&mut self, ts: Timestamp) -> Result<(), SinkError> {
        self.started = true;
        let inputs: Vec<String> = self
            .inputs_given
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let ev = json!({
            "@timestamp": ts.rfc3339_micros(),
            "event": {"kind": "event", "action": "start", "category": ["network"], "type": ["start"], "dataset": "observer.run"},
            "message": format!("observer {VERSION} analyzing {} input(s)", inputs.len()),
            "ecs": {"version": ECS_VERSION},
            "observer": {
                "product": "observer",
                "type": "sensor",
                "version": VERSION,
                "schema_version": SCHEMA_VERSION,
                "inputs": inputs,
            },
        });
        self.send(ev)
    }

    /// Names this run in every event's `event.id` (`RUN-SEQ`). By default the run id is
    /// derived from the inputs and the first packet's time, so analyzing the same capture
    /// again gives the same ids (a pipeline de-duplicates replays); a live source sets its own.
    pub fn set_run_id(&mut self, id: impl Into<String>) {
        self.run_id = Some(id.into());
    }

    fn send(&mut self, mut ev: Value) -> Result<(), SinkError> {
        let run = self.run_id.get_or_insert_with(|| {
            let mut h = Sha1::new();
            h.update(b"observer-run\0");
            for p in &self.inputs_given {
                h.update(p.display().to_string().as_bytes());
                h.update(b"\0");
            }
            h.update(self.first_ts.unwrap_or_default().0.to_be_bytes());
            h.finalize()[..8]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        });
        self.seq += 1;
        self.unflushed = true;
        if let Some(e) = ev.get_mut("event").and_then(Value::as_object_mut) {
            e.insert("id".into(), Value::String(format!("{run}-{}", self.seq)));
        }
        if let Some(r) = &mut self.report {
            r.on_event(&ev);
        }
        if !matches!(self.outputs, Outputs::Open) {
            return Ok(());
        }
        let written = self.sink.write(&ev);
        self.outputs_left(written)
    }

    /// An output error, kept instead of returned when a report is being collected: the report
    /// is an output too, and still wants the whole analysis when the others are gone (stdout
    /// closed by `| head`, a full disk). [`Pipeline::finish_all`] returns it.
    fn outputs_left(&mut self, r: Result<(), SinkError>) -> Result<(), SinkError> {
        match r {
            Err(e) if self.report.is_some() => {
                if !matches!(e, SinkError::Closed) {
                    tracing::warn!(error = %e, "no output left; the analysis carries on for the report");
                }
                self.outputs = Outputs::Gone(e);
                Ok(())
            }
            Err(e) => {
                self.outputs = Outputs::Failed;
                Err(e)
            }
            r => r,
        }
    }

    fn emit_findings(&mut self) -> Result<(), SinkError> {
        if !self.started {
            let ts = self.first_ts.unwrap_or_default();
            self.emit_start(ts)?;
        }
        let mut findings = std::mem::take(&mut self.findings);
        for f in findings.drain(..) {
            self.by_fallacy[usize::from(f.fallacy.id() - 1)] += 1;
            self.by_severity[f.severity as usize - 1] += 1;
            *self.by_rule.entry(f.rule).or_default() += 1;
            self.max_severity = self.max_severity.max(Some(f.severity));
            let top = &mut self.top[usize::from(f.fallacy.id() - 1)];
            // Keep the first of the most severe: replace the least severe only by a worse one.
            let weakest = top
                .iter()
                .enumerate()
                .min_by_key(|(i, t)| (t.severity, std::cmp::Reverse(*i)))
                .map(|(i, t)| (i, t.severity));
            if top.len() < TOP_PER_FALLACY {
                top.push(TopFinding {
                    severity: f.severity,
                    rule: f.rule,
                    message: f.message.clone(),
                });
            } else if let Some((i, _)) = weakest.filter(|&(_, sev)| f.severity > sev) {
                top[i] = TopFinding {
                    severity: f.severity,
                    rule: f.rule,
                    message: f.message.clone(),
                };
            }
            self.send(f.to_json())?;
        }
        self.findings = findings;
        Ok(())
    }

    /// Collects what the HTML report is drawn from (returned in [`RunSummary::report`]): the
    /// events written, a traffic timeline and the ended flows, all bounded. Call before the
    /// first packet.
    pub fn enable_report(&mut self) {
        if self.report.is_none() {
            self.report = Some(Box::default());
            self.analyzers.push(Box::new(Recorder::default()));
        }
    }

    /// Streaming (a live source): every event is pushed to the sinks' readers as soon as it is
    /// written, not when a buffer fills.
    pub fn set_streaming(&mut self, on: bool) {
        self.streaming = on;
    }

    fn flush_if_streaming(&mut self) -> Result<(), SinkError> {
        if self.streaming && self.unflushed && matches!(self.outputs, Outputs::Open) {
            self.unflushed = false;
            let flushed = self.sink.flush();
            self.outputs_left(flushed)?;
        }
        Ok(())
    }

    /// Records a non-file input (a live capture) in the summary's `observer.inputs`.
    pub fn add_input(&mut self, r: InputReport) {
        self.reports.push(r);
    }

    /// Capture time has reached `ts` without a packet (a live source's heartbeat while the
    /// link is quiet): flows go idle and findings that wait for quiet are decided on time.
    pub fn heartbeat(&mut self, ts: Timestamp) -> Result<(), SinkError> {
        // The heartbeat reads the clock that stamps the frames: it settles held frames (a live
        // source may stay quiet for long after a jump).
        if let Some(first) = self.held.first().map(|h| h.pkt.ts) {
            self.release_held(ts < first.plus(-MAX_JUMP), ts)?;
        }
        if self.first_ts.is_none() {
            // A live run starts when it starts, not at its first packet.
            self.first_ts = Some(ts);
            self.last_ts = Some(ts);
            self.now = ts;
            self.next_tick = ts.plus(NANOS_PER_SEC);
            self.emit_start(ts)?;
            return self.flush_if_streaming();
        }
        if ts <= self.now {
            return Ok(());
        }
        self.now = ts;
        self.last_ts = Some(self.last_ts.map_or(ts, |l| l.max(ts)));
        if ts >= self.next_tick {
            self.tick()?;
            self.next_tick = ts.plus(NANOS_PER_SEC);
        }
        if !self.findings.is_empty() {
            self.emit_findings()?;
        }
        self.flush_if_streaming()
    }

    /// Records the live capture's own counters (packets the kernel received and dropped) for
    /// the summary.
    pub fn set_capture_stats(&mut self, stats: CaptureStats) {
        self.capture_stats = Some(stats);
    }

    /// The source hands over a sample of each TCP connection's segments (the kernel probe) and
    /// merges its own totals with [`Pipeline::merge_totals`]: TCP sequence analysis of the
    /// gaps is switched off for its flows (see `TcpConn::sampled`).
    pub fn set_sampled_source(&mut self, on: bool) {
        self.sampled = on;
    }

    /// Records a source's own counters (`stats.<name>` in the summary), replacing earlier ones.
    pub fn set_source_counters(&mut self, counters: Vec<(String, u64)>) {
        self.source_counters = counters;
    }

    /// Merges a source's totals for a flow the pipeline holds (packets it counted but did not
    /// hand over): counters only ever grow to what the totals credited the flow with (their
    /// growth while it was held, see [`SourceCredit`]), and the flow stays active.
    /// Returns false when the pipeline holds no such flow (ended, or never sampled).
    pub fn merge_totals(&mut self, t: &FlowTotals) -> bool {
        let (key, dir0) = FlowKey::new(t.ends[0].0, t.ends[0].1, t.ends[1].0, t.ends[1].1, t.proto);
        let Some(idx) = self.flows.find(&key) else {
            return false;
        };
        let f = self.flows.get_mut(idx);
        let m = f.ext.source.get_or_insert_with(Box::default);
        m.credit(&t.sent, t.since);
        let credited = m.credited;
        for (i, s) in credited.iter().enumerate() {
            let d = if i == 0 { dir0 } else { dir0.rev() };
            let k = d.idx();
            f.packets[k] = f.packets[k].max(s.packets);
            f.bytes[k] = f.bytes[k].max(s.bytes);
            if t.proto == 6 {
                let h = &mut f.tcp.half[k];
                h.counters.data_segments = h.counters.data_segments.max(s.data_segments);
                h.payload_bytes = h.payload_bytes.max(s.payload);
                // The source's count is the whole count (a sampled flow infers none itself).
                let seen = h.counters.all_retransmissions();
                if s.retransmissions > seen {
                    h.counters.retransmissions += s.retransmissions - seen;
                }
                let c = &mut h.counters;
                c.stalls = c.stalls.max(s.stalls);
                c.longest_stall = c.longest_stall.max(s.longest_stall);
                c.stalled = c.stalled.max(s.stalled);
                // What the kernel resent is not known: its stalls count as data.
                c.raise_stalls_before(crate::flow::tcp::Resent::Data, s.stalls, s.longest_stall);
                c.retransmitted_bytes = c.retransmitted_bytes.max(s.retransmitted_bytes);
            }
        }
        if let Some((i, rtt)) = t.srtt {
            f.tcp.host_srtt = Some((if i == 0 { dir0 } else { dir0.rev() }, rtt));
        }
        self.flows.refresh(idx, t.last.min(self.now));
        true
    }

    /// Feeds one frame through the pipeline.
    ///
    /// The run's clock follows the frames' timestamps, so a frame stamped far ahead of the
    /// others (a corrupt record, a clock glitch) would stop every time-based decision for the
    /// rest of the input: nothing would look idle again. A frame that moves the clock forward by
    /// more than [`MAX_JUMP`] (and the very first frame) is therefore held, with up to
    /// [`HOLD_FRAMES`] − 1 frames after it within [`MAX_JUMP`] of it (a corrupt stretch of a
    /// file often spans a few records), until the clock is read again. A frame more than
    /// [`MAX_JUMP`] earlier than the first held one shows their timestamps were wrong: they are
    /// analyzed at the capture's time instead (counted in `stats.frames.timestamp_outliers`).
    /// Any other frame — one more after [`HOLD_FRAMES`], or one jumping further on — or a live
    /// source's [`Pipeline::heartbeat`] (the same clock) confirms the jump (a silence, the next
    /// input): the held frames go through as they are. A single frame still held when its input
    /// ends is an outlier too (see [`Pipeline::end_of_input`]).
    pub fn process(&mut self, pkt: &Packet<'_>) -> Result<(), SinkError> {
        self.process_decoded(pkt, None)
    }

    /// [`Pipeline::process`] with the frame already decoded, when it was.
    fn process_decoded(
        &mut self,
        pkt: &Packet<'_>,
        frame: Option<&Frame<'_>>,
    ) -> Result<(), SinkError> {
        if let (Some(first), Some(last)) = (self.held.first(), self.held.last()) {
            let wrong = pkt.ts < first.pkt.ts.plus(-MAX_JUMP);
            // Within the held frames' own stretch of time: wait for one more.
            let along = !wrong && pkt.ts <= last.pkt.ts.plus(MAX_JUMP);
            if along && self.held.len() < HOLD_FRAMES {
                self.hold(pkt);
                return Ok(());
            }
            self.release_held(wrong, pkt.ts)?;
        }
        if self.first_ts.is_none() || pkt.ts > self.now.plus(MAX_JUMP) {
            self.hold(pkt);
            return Ok(());
        }
        self.process_now(pkt, frame)
    }

    /// Keeps a copy of `pkt` until the clock is read again ([`Pipeline::process`]).
    fn hold(&mut self, pkt: &Packet<'_>) {
        let mut data = self.spare.pop().unwrap_or_default();
        data.clear();
        data.extend_from_slice(pkt.data);
        self.held.push(Held {
            pkt: Packet { data: &[], ..*pkt },
            data,
        });
    }

    /// Lets the held frames through (see [`Pipeline::process`]): at the capture's time when
    /// their timestamps were `wrong` (or at `next`, the time that showed it, when the run has
    /// no time yet), else at their own.
    fn release_held(&mut self, wrong: bool, next: Timestamp) -> Result<(), SinkError> {
        let mut held = std::mem::take(&mut self.held);
        let mut result = Ok(());
        for h in held.drain(..) {
            let ts = match (wrong, self.first_ts) {
                (false, _) => h.pkt.ts,
                (true, Some(_)) => self.now,
                (true, None) => next,
            };
            if wrong {
                self.stats.timestamp_outliers += 1;
            }
            if result.is_ok() {
                result = self.process_now(
                    &Packet {
                        ts,
                        data: &h.data,
                        ..h.pkt
                    },
                    None,
                );
            }
            self.spare.push(h.data);
        }
        // Its room is kept for the next jump, like the frames' buffers.
        if self.held.is_empty() {
            self.held = held;
        }
        result
    }

    /// An input has ended: nothing more will confirm the jump of frames still held. One frame
    /// alone is an outlier (analyzed at the capture's time): the last record of a capture cut
    /// off mid-write is the likeliest to carry a corrupt timestamp. Several, within
    /// [`MAX_JUMP`] of each other, are a stretch of real time (captures joined end to end),
    /// and the run's very first frames have no time to compare with: they go through as they
    /// are.
    fn end_of_input(&mut self) -> Result<(), SinkError> {
        if self.held.is_empty() {
            return Ok(());
        }
        let wrong = self.first_ts.is_some() && self.held.len() == 1;
        self.release_held(wrong, self.now)
    }

    fn process_now(
        &mut self,
        pkt: &Packet<'_>,
        frame: Option<&Frame<'_>>,
    ) -> Result<(), SinkError> {
        let ts = pkt.ts;
        if self.first_ts.is_none() {
            self.first_ts = Some(ts);
            self.emit_start(ts)?;
        }
        if self.prev_ts.is_some_and(|p| ts < p.plus(-NANOS_PER_SEC)) {
            self.stats.time_steps_back += 1;
        }
        self.prev_ts = Some(ts);
        self.last_ts = Some(self.last_ts.map_or(ts, |l| l.max(ts)));
        let st = &mut self.stats;
        st.frames += 1;
        st.wire_bytes += u64::from(pkt.wire_len);
        st.captured_bytes += pkt.data.len() as u64;
        if (pkt.data.len() as u64) < u64::from(pkt.wire_len) {
            st.snapped += 1;
        }
        if ts > self.now {
            self.now = ts;
            if ts >= self.next_tick {
                self.tick()?;
                self.next_tick = ts.plus(NANOS_PER_SEC);
            }
        }
        self.frame_len = if pkt.link == LinkType::ETHERNET {
            pkt.wire_len
        } else {
            0
        };
        // Matched by reference: binding the packet by value copied its 152 bytes.
        let decoded;
        let frame = match frame {
            Some(f) => f,
            None => {
                decoded = decode::decode(pkt);
                &decoded
            }
        };
        match frame {
            Frame::Ip(ip) => self.ip_packet(ts, ip, pkt.interface, pkt.segments),
            Frame::NotIp(_) => self.stats.non_ip += 1,
            &Frame::UnsupportedLink(lt) => {
                self.stats.unsupported_link += 1;
                *self.unsupported.entry(lt).or_default() += 1;
            }
            Frame::Undecodable(Undecodable::LinkTruncated | Undecodable::BadIp)
            | Frame::Undecodable(Undecodable::TooManyLayers) => self.stats.undecodable += 1,
        }
        if !self.ended.is_empty() {
            self.end_flows();
        }
        if !self.findings.is_empty() {
            self.emit_findings()?;
        }
        if self.unflushed && self.streaming {
            self.flush_if_streaming()?;
        }
        Ok(())
    }

    fn ip_packet(&mut self, ts: Timestamp, ip: &IpPacket<'_>, interface: u32, segments: u16) {
        let st = &mut self.stats;
        if ip.src.is_ipv4() {
            st.ipv4 += 1;
        } else {
            st.ipv6 += 1;
        }
        if ip.fragment {
            st.fragments += 1;
        }
        if ip.tunnel_depth > 0 {
            st.tunneled += 1;
        }
        self.dispatch(ts, ip, interface, segments);
    }

    /// An IP packet after its counters: its tunnel's flow, then its fragment or transport.
    fn dispatch(&mut self, ts: Timestamp, ip: &IpPacket<'_>, interface: u32, segments: u16) {
        if let Some(o) = ip.outer {
            self.touch_tunnel(o, self.now.max(ts));
        }
        match ip.transport {
            Transport::Fragment(part) => self.fragment(ts, ip, part, interface, segments),
            _ => self.transport(ts, ip, interface, segments),
        }
    }

    /// The tunnel's own UDP flow exists on the wire too.
    fn touch_tunnel(&mut self, o: TunnelOuter, clock: Timestamp) {
        let (key, dir) = FlowKey::new(o.src, o.sport, o.dst, o.dport, 17);
        let (idx, _) = self.flows.get_or_create(key, dir, clock, &mut self.ended);
        self.flows.touch(idx, dir, clock, o.ip_len);
        self.flows.get_mut(idx).ext.bandwidth.note_carrier();
    }

    /// An IP fragment: held until its datagram is whole, which is then analyzed as one packet
    /// (see [`crate::defrag`]).
    fn fragment(
        &mut self,
        ts: Timestamp,
        ip: &IpPacket<'_>,
        part: FragmentPart<'_>,
        interface: u32,
        segments: u16,
    ) {
        let added = self.defrag.add(ip, part, ts, interface, segments);
        self.release_given_up();
        match added {
            Added::Held => {}
            Added::Alone { inconsistent } => {
                if part.offset != 0 {
                    // Not held and not a first: no flow gets its bytes, but the wire carried
                    // them.
                    let frags = FragmentBytes {
                        ts,
                        interface,
                        src: ip.src,
                        dst: ip.dst,
                        proto: ip.proto,
                        bytes: u64::from(ip.ip_len),
                        packets: 1,
                        frame_len: self.frame_len,
                    };
                    for a in self.analyzers.iter_mut() {
                        a.on_fragment_bytes(&frags, &mut self.findings);
                    }
                }
                if inconsistent {
                    for a in self.analyzers.iter_mut() {
                        a.on_fragments_inconsistent(
                            ts,
                            ip.src,
                            ip.dst,
                            ip.proto,
                            &mut self.findings,
                        );
                    }
                }
                if part.offset == 0 {
                    self.transport(ts, &decode::first_fragment(ip), interface, segments);
                }
            }
            Added::Whole(w) => {
                // Its frames are its fragments': each with this one's link header (tags, a
                // tunnel's outer headers) and the 24 bytes of FCS, preamble and gap between
                // them, as the length of one frame (the line bytes add the last 24).
                let frame_len = std::mem::take(&mut self.frame_len);
                if frame_len > 0 {
                    let n = u64::from(w.fragments);
                    let link = u64::from(frame_len.saturating_sub(ip.ip_len));
                    let frames = (w.wire + n * (link + 24)).saturating_sub(24);
                    self.frame_len = u32::try_from(frames).unwrap_or(u32::MAX);
                }
                let first = w.first.packet(&[]);
                if let Frame::Ip(whole) = decode::reassembled(&first, w.first.header_len(), &w.data)
                {
                    if whole.tunnel_depth > first.tunnel_depth {
                        // The datagram carried a tunnel: its inner packet, which may itself be
                        // a fragment.
                        self.stats.tunneled += 1;
                        self.dispatch(ts, &whole, interface, segments);
                    } else {
                        // Its bytes are its fragments' (an IP header each), not the one
                        // datagram's: link, flow and zone pair bytes are what the wire carried.
                        let whole = IpPacket {
                            ip_len: u32::try_from(w.wire).unwrap_or(u32::MAX),
                            ..whole
                        };
                        self.transport(ts, &whole, interface, segments);
                    }
                }
                self.defrag.recycle(w.data);
                self.frame_len = frame_len;
            }
        }
    }

    /// The first fragments of datagrams given up (see [`crate::defrag`]), each analyzed alone
    /// for the ports it names.
    fn release_given_up(&mut self) {
        // Their frames are not the one being analyzed.
        let frame_len = std::mem::take(&mut self.frame_len);
        while let Some(g) = self.defrag.pop_given_up() {
            let ip = decode::first_fragment(&g.first.packet(&g.data));
            // With the bytes of the other fragments held with it: the wire carried them.
            let ip = IpPacket {
                ip_len: u32::try_from(g.wire).unwrap_or(u32::MAX).max(ip.ip_len),
                ..ip
            };
            self.late = true;
            self.transport(g.first.ts, &ip, g.first.interface, g.first.segments);
            self.late = false;
            self.defrag.recycle(g.data);
        }
        // Datagrams given up without their first fragment: no flow, but the wire carried the
        // fragments held.
        while let Some(h) = self.defrag.pop_headless() {
            let frags = FragmentBytes {
                ts: h.ts,
                interface: h.interface,
                src: h.src,
                dst: h.dst,
                proto: h.proto,
                bytes: h.wire,
                packets: u64::from(h.fragments),
                frame_len: 0,
            };
            for a in self.analyzers.iter_mut() {
                a.on_fragment_bytes(&frags, &mut self.findings);
            }
        }
        self.frame_len = frame_len;
    }

    /// The transport layer of a whole IP packet (or of a first fragment analyzed alone).
    fn transport(&mut self, ts: Timestamp, ip: &IpPacket<'_>, interface: u32, segments: u16) {
        // The flow table runs on a monotonic clock: a capture whose timestamps jump backwards
        // must not make live flows look idle.
        let clock = self.now.max(ts);
        match ip.transport {
            Transport::Tcp(seg) => {
                self.stats.tcp += 1;
                if seg.flags & (decode::tcp_flags::SYN | decode::tcp_flags::ACK)
                    == decode::tcp_flags::SYN
                {
                    self.stats.tcp_syns += 1;
                }
                let (key, dir) = FlowKey::new(ip.src, seg.sport, ip.dst, seg.dport, 6);
                // One lookup for a packet of a known connection; a new one (or a new use of
                // the same ports) is looked up again as it is created.
                let mut carried = None;
                let known = match self.flows.find(&key) {
                    Some(idx) if self.flows.get_mut(idx).tcp.is_port_reuse(dir, &seg) => {
                        let old = self.flows.remove(idx);
                        // A source's totals for these ports go on from the old connection's:
                        // the new one is credited with what they add from here.
                        carried = old.ext.source.as_ref().map(|m| (m.last, m.since));
                        self.flows.stats.port_reuse += 1;
                        self.ended.push((old, EndReason::PortReuse));
                        self.end_flows();
                        None
                    }
                    found => found,
                };
                let (idx, new) = match known {
                    Some(idx) => (idx, false),
                    None => self.flows.get_or_create(key, dir, clock, &mut self.ended),
                };
                if new && self.sampled {
                    self.flows.get_mut(idx).tcp.sampled = true;
                }
                if let Some((last, since)) = carried {
                    self.flows.get_mut(idx).ext.source = Some(Box::new(SourceCredit {
                        last,
                        since,
                        credited: Default::default(),
                    }));
                }
                // The same frame captured twice is analyzed once (a kernel source's sampled
                // events are no frames).
                if let Some(digest) = seg.digest(ip.ident).filter(|_| !self.sampled) {
                    if self.flows.get_mut(idx).tcp.is_copy(dir, digest, ts) {
                        self.stats.duplicates[CopyKind::of(&seg) as usize] += 1;
                        if ip.outer.is_some() {
                            self.flows.get_mut(idx).ext.cost.note_tunnel_copy();
                        }
                        return;
                    }
                }
                let tcp = &mut self.flows.get_mut(idx).tcp;
                let update = tcp.observe(dir, &seg, ts);
                tcp.note_ttl(dir, ip.ttl, &update);
                self.flows.touch(idx, dir, clock, ip.ip_len);
                let view = PacketView {
                    ts,
                    ip,
                    dir,
                    tcp: Some(update),
                    interface,
                    segments,
                    frame_len: self.frame_len,
                    late: self.late,
                    dns: None,
                };
                let flow = self.flows.get_mut(idx);
                if update.events.has(crate::flow::tcp::TcpEvents::FIN) && dir != flow.client_dir() {
                    app::on_server_fin(&mut flow.ext.app, ts);
                }
                if seg.seg_len > 0 {
                    let at = app_segment(flow, dir);
                    flow.ext
                        .conn
                        .on_segment(dir == at.client_dir, at.server_port, &seg, ts);
                    flow.ext.conn.credentials.0 |= app::on_tcp_payload(
                        &mut flow.ext.app,
                        &mut self.app_stats,
                        at,
                        &seg,
                        ts,
                        &mut self.http_events,
                        &mut self.dns_events,
                    );
                    self.parse.count(&mut flow.ext);
                } else if seg.flags & crate::decode::tcp_flags::ACK != 0
                    && app::holds_segments(&flow.ext.app)
                {
                    // Segments held ahead of a hole this acknowledgment passes are read.
                    let at = app_segment(flow, dir);
                    if app::on_tcp_ack(
                        &mut flow.ext.app,
                        &mut self.app_stats,
                        at,
                        seg.ack,
                        &mut self.http_events,
                        &mut self.dns_events,
                    ) {
                        if let app::AppState::Http(h) = &flow.ext.app {
                            flow.ext.conn.credentials.0 |= h.head_credentials;
                        }
                        self.parse.count(&mut flow.ext);
                    }
                }
                let info = analyze_packet(
                    &self.halves,
                    &mut self.analyzers,
                    &view,
                    flow,
                    &mut self.notes,
                    &mut self.findings,
                );
                deliver_app(
                    &mut self.analyzers,
                    &mut self.http_events,
                    &mut self.dns_events,
                    flow,
                    &info,
                    &mut self.findings,
                );
            }
            Transport::Udp(d) => {
                self.stats.udp += 1;
                let (key, dir) = FlowKey::new(ip.src, d.sport, ip.dst, d.dport, 17);
                let (idx, _) = self.flows.get_or_create(key, dir, clock, &mut self.ended);
                // The same datagram captured twice is analyzed once, like a TCP frame.
                if !self.sampled
                    && self
                        .flows
                        .get_mut(idx)
                        .tcp
                        .is_datagram_copy(dir, d.digest(ip.ident), ts)
                {
                    self.stats.duplicates[CopyKind::Datagram as usize] += 1;
                    if ip.outer.is_some() {
                        self.flows.get_mut(idx).ext.cost.note_tunnel_copy();
                    }
                    return;
                }
                self.flows.touch(idx, dir, clock, ip.ip_len);
                let dns = if d.sport == 53 || d.dport == 53 {
                    crate::proto::dns::parse(d.payload)
                } else {
                    None
                };
                let mut answers = std::mem::take(&mut self.dns_answers);
                answers.clear();
                if dns
                    .as_ref()
                    .is_some_and(|m| m.response && m.question && m.answers > 0)
                {
                    crate::proto::dns::answer_addresses_into(d.payload, &mut answers);
                }
                let view = PacketView {
                    ts,
                    ip,
                    dir,
                    tcp: None,
                    interface,
                    segments,
                    frame_len: self.frame_len,
                    late: self.late,
                    dns: dns.as_ref(),
                };
                let flow = self.flows.get_mut(idx);
                if matches!(d.sport, 161 | 162) || matches!(d.dport, 161 | 162) {
                    flow.ext.conn.on_snmp_datagram(d.payload);
                }
                let info = analyze_packet(
                    &self.halves,
                    &mut self.analyzers,
                    &view,
                    flow,
                    &mut self.notes,
                    &mut self.findings,
                );
                if let Some(msg) = &dns {
                    let message = DnsView {
                        ts,
                        src: (ip.src, d.sport),
                        dst: (ip.dst, d.dport),
                        proto: 17,
                        msg,
                        answers: &answers,
                    };
                    for a in self.analyzers.iter_mut() {
                        a.on_dns(&message, &info, &mut self.findings);
                    }
                }
                self.dns_answers = answers;
            }
            Transport::Icmp(m) => {
                self.stats.icmp += 1;
                if (!m.v6 && m.icmp_type == 3) || (m.v6 && m.icmp_type == 1) {
                    self.stats.icmp_unreachable += 1;
                }
                let unreachable = (!m.v6 && m.icmp_type == 3) || (m.v6 && m.icmp_type == 1);
                if unreachable && !m.quoted.is_some_and(|q| matches!(q.proto, 6 | 17)) {
                    self.stats.icmp_unreachable_unquoted += 1;
                }
                if let Some(q) = m.quoted {
                    // The failed packet's flow exists even if only its quote was captured.
                    if matches!(q.proto, 6 | 17) {
                        let (key, dir) = FlowKey::new(q.src, q.sport, q.dst, q.dport, q.proto);
                        let (idx, _) = self.flows.get_or_create(key, dir, clock, &mut self.ended);
                        let flow = self.flows.get_mut(idx);
                        let frag_needed = !m.v6 && m.code == 4;
                        if unreachable && !frag_needed {
                            flow.ext.icmp_unreachable = flow.ext.icmp_unreachable.saturating_add(1);
                        }
                        let mut facts = Facts::default();
                        self.halves.on_icmp_error(ip.src, &m, dir, flow, &mut facts);
                        let info = FlowInfo::of(flow);
                        for a in self.analyzers.iter_mut() {
                            a.on_icmp_error(ts, ip.src, &m, dir, &info, &facts, &mut self.findings);
                        }
                    }
                }
            }
            Transport::TcpPorts { sport, dport } => {
                self.stats.transport_truncated += 1;
                let (key, dir) = FlowKey::new(ip.src, sport, ip.dst, dport, 6);
                let (idx, _) = self.flows.get_or_create(key, dir, clock, &mut self.ended);
                self.flows.touch(idx, dir, clock, ip.ip_len);
            }
            // Fragments go through `fragment`; one analyzed alone that names no ports.
            Transport::Fragment(_) => {}
            Transport::Truncated => self.stats.transport_truncated += 1,
            Transport::Other(_) => self.stats.other_ip += 1,
        }
    }

    fn end_flows(&mut self) {
        let mut ended = std::mem::take(&mut self.ended);
        for (mut flow, reason) in ended.drain(..) {
            self.parse.used -= flow.ext.buffered;
            if flow.ext.conn.tls.as_ref().is_some_and(|t| t.limit_hit) {
                self.tls_hello_dropped += 1;
            }
            let at = app_segment(&flow, flow.client_dir());
            app::on_flow_end(
                &mut flow.ext.app,
                &mut self.app_stats,
                at,
                flow.last_ts,
                &mut self.http_events,
                &mut self.dns_events,
            );
            // A response that ends with the connection is completed only now; DNS messages
            // held for bytes that never came are given up.
            let info = FlowInfo::of(&flow);
            deliver_app(
                &mut self.analyzers,
                &mut self.http_events,
                &mut self.dns_events,
                &mut flow,
                &info,
                &mut self.findings,
            );
            for a in self.analyzers.iter_mut() {
                a.on_flow_end(&mut flow, reason, &mut self.findings);
            }
        }
        self.ended = ended;
    }

    fn tick(&mut self) -> Result<(), SinkError> {
        self.defrag.expire(Some(self.now));
        self.release_given_up();
        self.flows.expire(self.now, &mut self.ended);
        self.end_flows();
        for a in self.analyzers.iter_mut() {
            a.on_tick(self.now, &mut self.findings);
        }
        if !self.findings.is_empty() {
            self.emit_findings()?;
        }
        self.emit_metrics()
    }

    fn emit_metrics(&mut self) -> Result<(), SinkError> {
        let mut events = Vec::new();
        for a in self.analyzers.iter_mut() {
            a.drain_events(&mut events);
        }
        self.metric_events += events.len() as u64;
        for e in events {
            if e["event"]["action"] == "dependencies" {
                self.dependencies = Some(e.clone());
            }
            self.send(e)?;
        }
        Ok(())
    }

    /// Ends every flow, lets the analyzers report what is pending, writes the summary event
    /// and flushes the sink.
    pub fn finish(self) -> Result<RunSummary, SinkError> {
        let (summary, written) = self.finish_all();
        written.map(|()| summary)
    }

    /// [`Pipeline::finish`], returning the summary (and the report's data) even when an output
    /// failed or closed: the analysis is complete whatever happened to the outputs, and the
    /// first output error comes with it.
    pub fn finish_all(mut self) -> (RunSummary, Result<(), SinkError>) {
        let mut written = self.end_of_input();
        self.defrag.expire(None);
        self.release_given_up();
        // End the flows still open, oldest first, a batch at a time (a million open flows are
        // never held twice).
        let now = self.last_ts.unwrap_or_default();
        let order = self.flows.creation_order();
        for batch in order.chunks(4096) {
            for &idx in batch {
                let f = self.flows.remove(idx);
                self.ended.push((f, EndReason::EndOfInput(now)));
            }
            self.end_flows();
        }
        self.flows.clear();
        for a in self.analyzers.iter_mut() {
            a.finish(now, &mut self.findings);
        }
        if !self.started || !self.findings.is_empty() {
            written = written.and(self.emit_findings());
        }
        written = written.and(self.emit_metrics());
        let counters = self.counters();
        let summary = self.summary_json(&counters);
        // The sinks are finished (drained, synced) even when the summary cannot be written.
        written = written.and(self.send(summary));
        let finished = self.sink.finish();
        let written = match std::mem::replace(&mut self.outputs, Outputs::Open) {
            Outputs::Gone(e) => Err(e),
            Outputs::Open | Outputs::Failed => written.and(finished),
        };
        if let Some(r) = &mut self.report {
            for a in self.analyzers.iter_mut() {
                a.report(r);
            }
        }
        let summary = RunSummary {
            packets: self.stats.clone(),
            inputs: self.reports,
            by_fallacy: self.by_fallacy,
            by_rule: self.by_rule,
            max_severity: self.max_severity,
            span: self.first_ts.zip(self.last_ts),
            flows_tcp: self.flows.stats.tcp,
            flows_udp: self.flows.stats.udp,
            counters,
            dependencies: self.dependencies,
            top: self.top.map(|mut v| {
                v.sort_by_key(|t| std::cmp::Reverse(t.severity));
                v
            }),
            report: self.report,
        };
        (summary, written)
    }

    fn counters(&self) -> BTreeMap<String, u64> {
        let s = &self.stats;
        let d = &self.defrag.stats;
        let f = &self.flows.stats;
        let inputs_partial = self
            .reports
            .iter()
            .filter(|r| matches!(r.status, InputStatus::Partial(_)))
            .count() as u64;
        let inputs_failed = self
            .reports
            .iter()
            .filter(|r| matches!(r.status, InputStatus::Failed(_)))
            .count() as u64;
        let mut c: Vec<Counter> = vec![
            ("inputs.files", self.reports.len() as u64),
            ("inputs.partial", inputs_partial),
            ("inputs.failed", inputs_failed),
            ("frames.total", s.frames),
            ("frames.captured_bytes", s.captured_bytes),
            ("frames.snapped", s.snapped),
            ("frames.non_ip", s.non_ip),
            ("frames.unsupported_link", s.unsupported_link),
            ("frames.undecodable", s.undecodable),
            ("frames.timestamp_outliers", s.timestamp_outliers),
            ("frames.duplicates", s.duplicates.iter().sum()),
            ("frames.time_steps_back", s.time_steps_back),
            (
                "tcp.duplicate_frames.segments",
                s.duplicates[CopyKind::Segment as usize],
            ),
            (
                "tcp.duplicate_frames.acks",
                s.duplicates[CopyKind::Ack as usize],
            ),
            (
                "tcp.duplicate_frames.resets",
                s.duplicates[CopyKind::Reset as usize],
            ),
            (
                "udp.duplicate_datagrams",
                s.duplicates[CopyKind::Datagram as usize],
            ),
            ("ip.v4", s.ipv4),
            ("ip.v6", s.ipv6),
            ("ip.fragments", s.fragments),
            ("ip.reassembled", d.reassembled),
            ("ip.reassembly_incomplete", d.incomplete),
            ("ip.reassembly_inconsistent", d.inconsistent),
            ("ip.fragments_snapped", d.snapped),
            ("ip.reassembly_peak_bytes", d.peak_bytes),
            ("ip.tunneled", s.tunneled),
            ("ip.other_protocol", s.other_ip),
            ("ip.transport_truncated", s.transport_truncated),
            ("packets.tcp", s.tcp),
            ("packets.tcp_syns", s.tcp_syns),
            ("packets.udp", s.udp),
            ("packets.icmp", s.icmp),
            ("icmp.unreachable", s.icmp_unreachable),
            ("icmp.unreachable_unquoted", s.icmp_unreachable_unquoted),
            ("flows.tcp", f.tcp),
            ("flows.udp", f.udp),
            ("flows.other", f.other),
            ("flows.evicted_idle", f.evicted_idle),
            ("flows.evicted_capacity", f.evicted_capacity),
            ("flows.limit", self.flows.max_flows() as u64),
            ("flows.port_reuse", f.port_reuse),
            ("flows.peak_active", f.peak_active),
            ("http.connections", self.app_stats.http_connections),
            ("dns.tcp.connections", self.app_stats.dns_connections),
            ("dns.tcp.messages", self.app_stats.dns.messages),
            ("dns.tcp.responses", self.app_stats.dns.responses),
            ("dns.tcp.unparsed", self.app_stats.dns.unparsed),
            ("dns.tcp.gaps", self.app_stats.dns.gaps),
            ("limits.dns_tcp_messages_cut", self.app_stats.dns.cut),
            (
                "limits.dns_tcp_queries_untracked",
                self.app_stats.dns.untracked,
            ),
            ("limits.tls_hello_dropped", self.tls_hello_dropped),
            ("limits.fragments_untracked", d.untracked),
            ("limits.parse_buffers_shed", self.parse.shed),
            ("flows.parse_buffers_peak_bytes", self.parse.peak as u64),
            ("events.metrics", self.metric_events),
        ];
        if let Some(cs) = &self.capture_stats {
            c.extend([
                ("capture.received", cs.received),
                ("capture.dropped_kernel", cs.dropped_kernel),
                ("capture.dropped_interface", cs.dropped_interface),
            ]);
        }
        for a in self.analyzers.iter() {
            a.stats(&mut c);
        }
        let mut m: BTreeMap<String, u64> = c.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        m.extend(self.source_counters.iter().cloned());
        let mut outputs = Vec::new();
        self.sink.counters("outputs", &mut outputs);
        m.extend(outputs);
        let total: u64 = self.by_fallacy.iter().sum();
        m.insert("findings.total".into(), total);
        for fal in Fallacy::ALL {
            m.insert(
                format!("findings.{}", fal.slug()),
                self.by_fallacy[usize::from(fal.id() - 1)],
            );
        }
        for sev in [
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ] {
            m.insert(
                format!("findings.severity.{}", sev.name()),
                self.by_severity[sev as usize - 1],
            );
        }
        m
    }

    fn summary_json(&self, counters: &BTreeMap<String, u64>) -> Value {
        let mut stats = nest_dotted(counters.iter().map(|(k, v)| (k.as_str(), json!(v))));
        for a in self.analyzers.iter() {
            a.summary(&mut stats);
        }
        let inputs: Vec<Value> = self.reports.iter().map(input_json).collect();
        let start = self.first_ts.unwrap_or_default();
        let end = self.last_ts.unwrap_or_default();
        json!({
            "@timestamp": end.rfc3339_micros(),
            "event": {
                "kind": "metric",
                "action": "summary",
                "category": ["network"],
                "type": ["end"],
                "dataset": "observer.run",
                "start": start.rfc3339_micros(),
                "end": end.rfc3339_micros(),
                "duration": end.since(start),
            },
            "message": format!(
                "{} packets, {} TCP and {} UDP flows, {} findings",
                self.stats.frames, self.flows.stats.tcp, self.flows.stats.udp,
                self.by_fallacy.iter().sum::<u64>()
            ),
            "network": {"packets": self.stats.frames, "bytes": self.stats.wire_bytes},
            "observer": {"product": "observer", "version": VERSION, "schema_version": SCHEMA_VERSION, "inputs": inputs},
            "stats": Value::Object(stats),
        })
    }
}

fn input_json(r: &InputReport) -> Value {
    let (status, error) = match &r.status {
        InputStatus::Complete => ("complete", None),
        InputStatus::Partial(e) => ("partial", Some(e.to_string())),
        InputStatus::Failed(e) => ("failed", Some(e.to_string())),
    };
    let mut v = json!({
        "path": r.path.display().to_string(),
        "status": status,
        "packets": r.packets,
    });
    if let Some(fmt) = r.format {
        v["format"] = json!(fmt);
        v["gzip"] = json!(r.gzip);
    }
    if let Some(e) = error {
        v["error"] = json!(e);
    }
    if !r.unsupported_links.is_empty() {
        let m: serde_json::Map<String, Value> = r
            .unsupported_links
            .iter()
            .map(|(k, n)| (k.to_string(), json!(n)))
            .collect();
        v["unsupported_link_types"] = Value::Object(m);
    }
    v
}

/// Packets of `flow` travelling in `dir`, as the application parsers see them.
fn app_segment(flow: &AFlow, dir: Dir) -> app::Segment {
    let half = &flow.tcp.half[dir.idx()];
    app::Segment {
        flow_id: flow.id,
        client_dir: flow.client_dir(),
        server_port: flow.server().1,
        dir,
        start: (half.syns > 0).then(|| half.base_seq.plus(1)),
    }
}

/// One packet of `flow` through the analyzers: their per-flow halves, then their run-wide
/// halves with what the per-flow halves found, then the notes those left. Returns the flow as
/// the run-wide halves saw it (for the packet's HTTP events).
fn analyze_packet(
    halves: &FlowHalves,
    analyzers: &mut analyze::Analyzers,
    view: &PacketView<'_>,
    flow: &mut AFlow,
    notes: &mut Vec<Note>,
    findings: &mut Vec<Finding>,
) -> FlowInfo {
    let mut facts = Facts::default();
    halves.on_packet(view, flow, &mut facts, notes, findings);
    let info = FlowInfo::of(flow);
    analyzers.on_packet(view, &info, &facts, findings);
    if !notes.is_empty() {
        for note in notes.drain(..) {
            for a in analyzers.iter_mut() {
                a.on_note(&note, &info, findings);
            }
        }
    }
    info
}

/// The DNS-over-TCP messages of one segment of `info`'s connection (and the queries whose
/// answers a gap may have held), each to every analyzer, in order.
fn deliver_dns(
    analyzers: &mut analyze::Analyzers,
    dns: &app::DnsEvents,
    info: &FlowInfo,
    findings: &mut Vec<Finding>,
) {
    for ev in &dns.events {
        match ev {
            app::DnsEvent::Message {
                ts,
                from_client,
                msg,
                answers,
            } => {
                let (src, dst) = if *from_client {
                    (info.client(), info.server())
                } else {
                    (info.server(), info.client())
                };
                let d = DnsView {
                    ts: *ts,
                    src,
                    dst,
                    proto: 6,
                    msg,
                    answers: dns.answers.get(answers.clone()).unwrap_or(&[]),
                };
                for a in analyzers.iter_mut() {
                    a.on_dns(&d, info, findings);
                }
            }
            &app::DnsEvent::Lost { id, key } => {
                for a in analyzers.iter_mut() {
                    a.on_dns_lost(id, key, info);
                }
            }
            app::DnsEvent::LostUntracked => {
                for a in analyzers.iter_mut() {
                    a.on_dns_lost_untracked(info);
                }
            }
        }
    }
}

/// The HTTP credentials, by kind, that `ev`'s parsed head shows, noted on its connection
/// (before the analyzers see the event, whenever it completes).
/// The HTTP and DNS events a TCP flow's parsers produced, to the analyzers (emptied).
fn deliver_app(
    analyzers: &mut analyze::Analyzers,
    http: &mut Vec<HttpEvent>,
    dns: &mut app::DnsEvents,
    flow: &mut AFlow,
    info: &FlowInfo,
    findings: &mut Vec<Finding>,
) {
    for ev in http.drain(..) {
        note_credentials(flow, &ev);
        for a in analyzers.iter_mut() {
            a.on_http(&ev, info, findings);
        }
    }
    if !dns.events.is_empty() {
        deliver_dns(analyzers, dns, info, findings);
        dns.clear();
    }
}

fn note_credentials(flow: &mut AFlow, ev: &HttpEvent) {
    match ev {
        HttpEvent::Request(r) => flow.ext.conn.credentials.0 |= r.credentials,
        HttpEvent::Response(r) if r.set_cookie => flow.ext.conn.credentials.set("http-set-cookie"),
        HttpEvent::Response(_) => {}
    }
}
