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
//!   longer than max(200 ms, 3 × handshake RTT), RTO-style, and the longest such stall before
//!   resending data or a SYN (or SYN/ACK) reached `stall_threshold_secs` (medium; high from
//!   3 s). A FIN resent alone after such a stall kept nobody waiting (everything before it was
//!   acknowledged): when only those reach the threshold, the finding is low and says the peer,
//!   or a middlebox's state for the connection, is likely gone.
//!
//! A connection open for `report_open_after_secs` (60 s) is judged while it is open instead of
//! waiting for its end, which for a long-lived one (a database pool's, a stream) can be hours
//! away: its stalls at each of its retransmissions, and its rate over each stretch of
//! `report_open_after_secs` of its life (the loss it suffers now, not diluted by hours of
//! clean data before, nor kept alive by a burst long past). A finding it has earned is reported
//! while it is still open (evidence `open: true`, and for the rate `window`: the stretch's
//! length, segments and retransmissions), and at its end again only if its severity has grown
//! (over the whole connection, or over its last stretch, cut short by its end: loss just before
//! it closed). Not for a kernel probe's flows, whose retransmissions arrive as totals.
//!
//! Evidence: per direction segments, bytes, every counter above, the stall times.
//! Deliberately not flagged: connections that never got a SYN/ACK, and attempts whose SYN/ACK
//! was resent and never acknowledged (the connection-health analyzer reports those, per server), out-of-order segments, keep-alives, lost segments alone (they
//! describe the capture point more often than the network), zero windows (a receiver limit:
//! reported with the bandwidth analyzer).

use super::{AFlow, Analyzer, Counter, Facts as AllFacts, FlowHalf, FlowInfo, PacketView};
use crate::config::ReliabilitySection;
use crate::finding::{Fallacy, Finding, FlowRef, Severity};
use crate::flow::tcp::{Resent, SegFlags, SeqCounters, TcpHalf};
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
    /// Stalls by what was resent after them.
    stalls_before: ByResent<u32>,
    longest_stall_before_secs: ByResent<f64>,
}

/// One value per kind of segment resent after a stall ([`Resent`]).
#[derive(Serialize)]
struct ByResent<T> {
    data: T,
    syn: T,
    fin: T,
}

impl<T: Copy> ByResent<T> {
    fn of(v: [T; 3]) -> Self {
        ByResent {
            data: v[Resent::Data as usize],
            syn: v[Resent::Syn as usize],
            fin: v[Resent::Fin as usize],
        }
    }
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
    /// Reported while the connection was still open: the counters are so far.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    open: bool,
    /// The stretch of the connection its rate was judged on while it was open.
    #[serde(skip_serializing_if = "Option::is_none")]
    window: Option<WindowEvidence>,
}

#[derive(Serialize)]
struct WindowEvidence {
    secs: f64,
    client_to_server: WindowDir,
    server_to_client: WindowDir,
}

#[derive(Serialize)]
struct WindowDir {
    segments: u64,
    retransmissions: u64,
    retransmission_rate: f64,
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
        stalls_before: ByResent::of(c.stalls_before),
        longest_stall_before_secs: ByResent::of(
            c.longest_stall_before_ms.map(|ms| f64::from(ms) / 1e3),
        ),
    }
}

/// The segments of one direction that took sequence space: data, SYNs, FINs without data
/// (a FIN riding on data is one segment, counted with the data, and so is a SYN carrying
/// data, TCP Fast Open's). The retransmissions counted include SYNs and FINs sent again (as
/// tshark counts them), so every one sent is counted here too and the rate stays a share of
/// what was sent.
fn segments(h: &TcpHalf) -> u64 {
    h.counters.data_segments
        + u64::from(h.syns.saturating_sub(h.data_syns))
        + u64::from(h.bare_fins)
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
    for i in 0..3 {
        t.stalls_before[i] = t.stalls_before[i].saturating_add(c.stalls_before[i]);
        t.longest_stall_before_ms[i] =
            t.longest_stall_before_ms[i].max(c.longest_stall_before_ms[i]);
    }
}

/// The longest stall of one direction after which something the application waits on was
/// resent (data, or the handshake), and what that was.
fn waited(h: &TcpHalf) -> (Nanos, Resent) {
    let c = &h.counters;
    let (syn, data) = (
        c.longest_stall_before(Resent::Syn),
        c.longest_stall_before(Resent::Data),
    );
    if syn > data {
        (syn, Resent::Syn)
    } else {
        (data, Resent::Data)
    }
}

/// The longest stall of one direction after which it resent a FIN alone.
fn fin_stall(h: &TcpHalf) -> Nanos {
    h.counters.longest_stall_before(Resent::Fin)
}

/// What one stretch of an open connection's life held, per direction ([`Dir::idx`]): the
/// segments that took sequence space, and the retransmissions.
struct Window {
    secs: f64,
    segments: [u64; 2],
    retransmissions: [u64; 2],
}

impl Window {
    fn rate(&self, i: usize) -> f64 {
        match self.segments[i] {
            0 => 0.0,
            n => self.retransmissions[i] as f64 / n as f64,
        }
    }
}

/// What a connection's counters make of it, so far or at its end.
struct Verdict {
    /// The direction losing the most, when its rate makes a finding, and the severity.
    rate: Option<(Dir, Severity)>,
    /// The stall finding's direction, what it resent (`None`: only FINs resent alone reached
    /// the threshold) and severity.
    stall: Option<(Dir, Option<Resent>, Severity)>,
}

/// The reliability analyzer's per-flow state: the severity each finding was reported with
/// while the connection was still open (see [`Reliability::on_packet`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct ReliabilityFlow {
    rate: Option<Severity>,
    stall: Option<Severity>,
    /// The stall reported was a FIN's alone (counted in `flows_flagged.fin_stall`).
    fin_only: bool,
    /// The stretch of the connection its rate is judged on while it is open: its start, in
    /// milliseconds after the connection's first packet (a connection open for 49 days has
    /// its last stretch run to its end), and each direction's segments and retransmissions
    /// then (their low 32 bits: a stretch's counts are differences).
    window_ms: u32,
    window_counts: [[u32; 2]; 2],
}

impl ReliabilityFlow {
    /// When the current stretch started, after the connection's first packet.
    fn window_start(&self) -> Nanos {
        i64::from(self.window_ms) * 1_000_000
    }
}

/// The TCP reliability analyzer.
pub struct Reliability {
    rules: Rules,
    totals: SeqCounters,
    flagged_rate: u64,
    flagged_stall: u64,
    /// … of which only a FIN was resent after the stall.
    flagged_fin_stall: u64,
    /// Findings reported while their connection was open.
    reported_open: u64,
}

impl Reliability {
    /// A new analyzer.
    pub fn new(cfg: &ReliabilitySection) -> Self {
        Reliability {
            rules: Rules::new(cfg),
            totals: SeqCounters::default(),
            flagged_rate: 0,
            flagged_stall: 0,
            flagged_fin_stall: 0,
            reported_open: 0,
        }
    }

    /// Adds what a report counted.
    fn add(&mut self, t: &Facts) {
        self.reported_open += u64::from(t.reported_open);
        self.flagged_rate += u64::from(t.flagged_rate);
        self.flagged_stall += u64::from(t.flagged_stall);
        self.flagged_fin_stall = self
            .flagged_fin_stall
            .wrapping_add_signed(i64::from(t.flagged_fin_stall));
    }
}

/// What decides the findings, shared by both halves.
#[derive(Clone, Debug)]
struct Rules {
    cfg: ReliabilitySection,
    /// [`ReliabilitySection::report_open_after_secs`] in nanoseconds.
    open_after: Nanos,
}

/// What the reliability analyzer's reports counted (at one packet, or one flow's end).
#[derive(Clone, Copy, Debug, Default)]
pub struct Facts {
    reported_open: u8,
    flagged_rate: u8,
    flagged_stall: u8,
    /// +1, -1 or 0: a flow's stall finding came to be, or stopped being, about a FIN only.
    flagged_fin_stall: i8,
}

/// The reliability analyzer's per-flow half: a connection's findings while it is open.
pub(crate) struct Half(Rules);

impl Half {
    /// The half for `cfg`.
    pub(crate) fn new(cfg: &ReliabilitySection) -> Half {
        Half(Rules::new(cfg))
    }
}

impl FlowHalf for Half {
    fn on_packet(
        &self,
        pkt: &PacketView<'_>,
        flow: &mut AFlow,
        facts: &mut AllFacts,
        _notes: &mut Vec<super::Note>,
        out: &mut Vec<Finding>,
    ) {
        let Some(u) = pkt.tcp else {
            return;
        };
        let age = pkt.ts.since(flow.first_ts);
        if age < self.0.open_after {
            return;
        }
        let resent = u.analysis.has(SegFlags::ANY_RETRANSMISSION);
        let mut reported = flow.ext.reliability;
        // A kernel probe's flow has its retransmissions as totals, judged at its end; a
        // connection open for 49 days has its last stretch run to its end.
        let due = !flow.tcp.sampled
            && reported.window_ms != u32::MAX
            && age >= reported.window_start() + self.0.open_after;
        if !resent && !due {
            return;
        }
        // The rate over the stretch that ended (a rate so far could fall back under the
        // threshold by the end, after a burst of loss and hours of clean data); the stall so
        // far, which can only grow.
        let window = due.then(|| self.0.next_window(flow, &mut reported, age));
        let whole = self.0.verdict(flow);
        let v = Verdict {
            rate: window.as_ref().and_then(|w| self.0.window_rate(flow, w)),
            stall: whole.stall.filter(|_| resent),
        };
        self.0.report(
            flow,
            &v,
            window.as_ref(),
            &mut reported,
            true,
            out,
            &mut facts.reliability,
        );
        flow.ext.reliability = reported;
    }
}

impl Rules {
    fn new(cfg: &ReliabilitySection) -> Rules {
        Rules {
            cfg: cfg.clone(),
            open_after: (cfg.report_open_after_secs * NANOS_PER_SEC as f64) as Nanos,
        }
    }

    /// Ends the stretch of `flow`'s life its rate is judged on while open, at `age` (since its
    /// first packet), and starts the next: what the stretch held.
    fn next_window(&self, flow: &AFlow, reported: &mut ReliabilityFlow, age: Nanos) -> Window {
        let mut w = Window {
            secs: secs(age - reported.window_start()),
            segments: [0; 2],
            retransmissions: [0; 2],
        };
        for (i, h) in flow.tcp.half.iter().enumerate() {
            let now = [segments(h) as u32, h.counters.all_retransmissions() as u32];
            let then = reported.window_counts[i];
            w.segments[i] = u64::from(now[0].wrapping_sub(then[0]));
            w.retransmissions[i] = u64::from(now[1].wrapping_sub(then[1]));
            reported.window_counts[i] = now;
        }
        reported.window_ms = u32::try_from(age / 1_000_000).unwrap_or(u32::MAX);
        w
    }

    /// The rate finding one stretch of an open connection makes: the direction losing the
    /// most, among those with `min_segments` segments and `min_retransmissions` in it, when its
    /// rate reaches the threshold (the rules of a whole connection, but for the SYN or FIN a
    /// stretch may hold, which count towards `min_segments` here).
    fn window_rate(&self, flow: &AFlow, w: &Window) -> Option<(Dir, Severity)> {
        if super::handshake_failed_empty(flow) {
            return None;
        }
        let judged = |d: Dir| {
            let i = d.idx();
            (d, w.segments[i], w.retransmissions[i], w.rate(i))
        };
        let cd = flow.client_dir();
        self.rate_finding([judged(cd), judged(cd.rev())])
    }

    /// The rate finding of two directions, each given as (direction, segments counted towards
    /// `min_segments`, retransmissions, rate): the one losing the most among those with enough
    /// segments and retransmissions to judge (the first on a tie), when its rate reaches the
    /// threshold; high from 10 %.
    fn rate_finding(&self, dirs: [(Dir, u64, u64, f64); 2]) -> Option<(Dir, Severity)> {
        dirs.into_iter()
            .filter(|&(_, n, resent, _)| {
                n >= self.cfg.min_segments && resent >= self.cfg.min_retransmissions
            })
            .fold(None, |best: Option<(Dir, f64)>, (d, _, _, r)| match best {
                Some((_, b)) if b >= r => best,
                _ => Some((d, r)),
            })
            .filter(|&(_, r)| r >= self.cfg.rate_threshold && r > 0.0)
            .map(|(d, r)| {
                let severity = if r >= 0.10 {
                    Severity::High
                } else {
                    Severity::Medium
                };
                (d, severity)
            })
    }

    /// The findings `flow`'s counters make, without their text.
    fn verdict(&self, flow: &AFlow) -> Verdict {
        let none = Verdict {
            rate: None,
            stall: None,
        };
        let cd = flow.client_dir();
        let c2s = &flow.tcp.half[cd.idx()];
        let s2c = &flow.tcp.half[cd.rev().idx()];
        if super::handshake_failed_empty(flow) {
            return none;
        }
        let judged = |d: Dir, h: &TcpHalf| {
            let c = &h.counters;
            (d, c.data_segments, c.all_retransmissions(), rate(h))
        };
        let rate = self.rate_finding([judged(cd, c2s), judged(cd.rev(), s2c)]);
        // A stall before data or a handshake segment kept the application waiting; one before
        // a FIN resent alone (all data acknowledged) kept nobody waiting, but says the peer, or
        // the state a firewall or NAT kept for the connection, is gone: reported at low
        // severity, and only when no stall of the first kind is.
        let threshold = |n: Nanos| n > 0 && secs(n) >= self.cfg.stall_threshold_secs;
        let stall = if threshold(waited(c2s).0.max(waited(s2c).0)) {
            let (d, h) = if waited(c2s).0 >= waited(s2c).0 {
                (cd, c2s)
            } else {
                (cd.rev(), s2c)
            };
            let (longest, what) = waited(h);
            let severity = if secs(longest) >= 3.0 {
                Severity::High
            } else {
                Severity::Medium
            };
            Some((d, Some(what), severity))
        } else if threshold(fin_stall(c2s).max(fin_stall(s2c))) {
            let d = if fin_stall(c2s) >= fin_stall(s2c) {
                cd
            } else {
                cd.rev()
            };
            Some((d, None, Severity::Low))
        } else {
            None
        };
        Verdict { rate, stall }
    }

    /// Reports what `v` found of `flow` with a severity above `reported`'s, noting it there.
    /// `open`: the connection is still open (the counters are so far); `window`: the stretch
    /// of it `v`'s rate was judged on.
    #[allow(clippy::too_many_arguments)]
    fn report(
        &self,
        flow: &AFlow,
        v: &Verdict,
        window: Option<&Window>,
        reported: &mut ReliabilityFlow,
        open: bool,
        out: &mut Vec<Finding>,
        tally: &mut Facts,
    ) {
        let above = |new: Severity, old: Option<Severity>| old.is_none_or(|o| new > o);
        let rate_hit = v.rate.filter(|&(_, s)| above(s, reported.rate));
        let stall = v.stall.filter(|&(_, _, s)| above(s, reported.stall));
        if rate_hit.is_none() && stall.is_none() {
            return;
        }
        let (client, server) = (flow.client(), flow.server());
        // The rate's evidence has the stretch it was judged on, the stall's does not.
        let evidence = |window: Option<&Window>| {
            Finding::evidence_from(&Evidence {
                client_to_server: dir_evidence(&flow.tcp.half[flow.client_dir().idx()]),
                server_to_client: dir_evidence(&flow.tcp.half[flow.client_dir().rev().idx()]),
                initial_rtt_ms: flow.tcp.initial_rtt().map(|r| r as f64 / 1e6),
                host_srtt_ms: flow.tcp.host_srtt.map(|(_, r)| r as f64 / 1e6),
                duration_secs: secs(flow.last_ts.since(flow.first_ts)),
                open,
                window: window.map(|w| {
                    let dir = |d: Dir| WindowDir {
                        segments: w.segments[d.idx()],
                        retransmissions: w.retransmissions[d.idx()],
                        retransmission_rate: w.rate(d.idx()),
                    };
                    WindowEvidence {
                        secs: w.secs,
                        client_to_server: dir(flow.client_dir()),
                        server_to_client: dir(flow.client_dir().rev()),
                    }
                }),
            })
        };
        let ends = format!("{}:{} → {}:{}", client.0, client.1, server.0, server.1);
        let so_far = if open {
            " (so far: the connection is still open)"
        } else {
            ""
        };
        if open {
            tally.reported_open += u8::from(rate_hit.is_some()) + u8::from(stall.is_some());
        }
        if let Some((d, severity)) = rate_hit {
            tally.flagged_rate += u8::from(reported.rate.is_none());
            reported.rate = Some(severity);
            let h = &flow.tcp.half[d.idx()];
            let message = match window {
                Some(w) => format!(
                    "{ends}: the {} retransmitted {} of {} segments in the last {:.0} s ({:.1} %){so_far}",
                    flow.side_name(d),
                    w.retransmissions[d.idx()],
                    w.segments[d.idx()],
                    w.secs,
                    w.rate(d.idx()) * 100.0,
                ),
                None => format!(
                    "{ends}: the {} retransmitted {} of {} segments ({:.1} %, {} bytes){so_far}",
                    flow.side_name(d),
                    h.counters.all_retransmissions(),
                    segments(h),
                    rate(h) * 100.0,
                    h.counters.retransmitted_bytes
                ),
            };
            out.push(Finding {
                ts: flow.first_ts,
                rule: "tcp.retransmission.excessive",
                severity,
                fallacy: Fallacy::NetworkIsReliable,
                message,
                flow: Some(FlowRef::new(client, server, 6)),
                evidence: evidence(window),
            });
        }
        if let Some((d, what, severity)) = stall {
            tally.flagged_stall += u8::from(reported.stall.is_none());
            reported.stall = Some(severity);
            // Counted once per flow, by what its last stall finding was about.
            let fin_only = what.is_none();
            if fin_only != reported.fin_only {
                if fin_only {
                    tally.flagged_fin_stall += 1;
                } else {
                    tally.flagged_fin_stall -= 1;
                }
                reported.fin_only = fin_only;
            }
            let h = &flow.tcp.half[d.idx()];
            let message = match what {
                Some(what) => {
                    let resent = match what {
                        Resent::Syn if d == flow.client_dir() => "its SYN",
                        Resent::Syn => "its SYN/ACK",
                        _ => "data",
                    };
                    let c = &h.counters;
                    format!(
                        "{ends}: the {} stalled {} time(s) waiting to resend data or its handshake (longest {:.2} s, before resending {resent}){so_far}",
                        flow.side_name(d),
                        u64::from(c.stalls_before[Resent::Data as usize])
                            + u64::from(c.stalls_before[Resent::Syn as usize]),
                        secs(waited(h).0),
                    )
                }
                None => {
                    format!(
                        "{ends}: the {}'s FIN went unacknowledged: resent {} time(s) after up to {:.2} s of silence, with all its data acknowledged; the peer, or a firewall's or NAT's state for the connection, is likely gone{so_far}",
                        flow.side_name(d),
                        h.counters.stalls_before[Resent::Fin as usize],
                        secs(fin_stall(h)),
                    )
                }
            };
            out.push(Finding {
                ts: flow.first_ts,
                rule: "tcp.retransmission.stall",
                severity,
                fallacy: Fallacy::NetworkIsReliable,
                message,
                flow: Some(FlowRef::new(client, server, 6)),
                evidence: evidence(None),
            });
        }
    }
}

impl Analyzer for Reliability {
    fn name(&self) -> &'static str {
        "reliability"
    }

    /// A connection open for `report_open_after_secs` has its stalls judged at each
    /// retransmission and its rate over each stretch of that length, so that a long-lived one
    /// (a database pool's, a stream) is reported while it is still open rather than hours
    /// later when it closes; a finding it already got is reported again at its end only if
    /// its severity has grown.
    fn on_packet(
        &mut self,
        _pkt: &PacketView<'_>,
        _info: &FlowInfo,
        facts: &AllFacts,
        _out: &mut Vec<Finding>,
    ) {
        self.add(&facts.reliability);
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
        let mut v = self.rules.verdict(flow);
        let mut reported = flow.ext.reliability;
        // A connection judged in stretches while open has its last one judged too (the
        // loss just before it closed), when that says more than the whole connection.
        let age = flow.last_ts.since(flow.first_ts);
        let mut last = None;
        if !flow.tcp.sampled && age >= self.rules.open_after && reported.window_ms != u32::MAX {
            let mut scratch = reported;
            let w = self.rules.next_window(flow, &mut scratch, age);
            if let Some(hit) = self.rules.window_rate(flow, &w) {
                if v.rate.is_none_or(|(_, s)| hit.1 > s) {
                    v.rate = Some(hit);
                    last = Some(w);
                }
            }
        }
        let mut tally = Facts::default();
        self.rules.report(
            flow,
            &v,
            last.as_ref(),
            &mut reported,
            false,
            out,
            &mut tally,
        );
        self.add(&tally);
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
            ("tcp.flows_flagged.fin_stall", self.flagged_fin_stall),
            ("tcp.findings_while_open", self.reported_open),
            (
                "tcp.stalls_before.data",
                u64::from(t.stalls_before[Resent::Data as usize]),
            ),
            (
                "tcp.stalls_before.syn",
                u64::from(t.stalls_before[Resent::Syn as usize]),
            ),
            (
                "tcp.stalls_before.fin",
                u64::from(t.stalls_before[Resent::Fin as usize]),
            ),
        ]);
    }
}
