//! Latency is zero (fallacy 2): latency distributions per service, and chatty call patterns.
//!
//! Samples, each attributed to the server's address:port (with the HTTP `Host` or TLS SNI as
//! its name when known):
//! * `tcp.handshake` — the most recent SYN to the client's ACK as seen at the capture point
//!   (the whole round trip wherever the capture point is; Wireshark's `initial_rtt`), less
//!   the server's wait before resending its SYN/ACK when the client's ACK was lost;
//! * `tcp.rtt` — data segment to the ACK covering it, one segment timed at a time per
//!   direction, never a retransmitted one (Karn's rule);
//! * `http.response` — end of the request to the first byte of the response;
//! * `http.response.complete` — end of the request to the last byte of the response;
//! * `dns.response` — first transmission of a query to its response;
//! * `tls.handshake` — the ClientHello to the handshake's end: the client's first
//!   application-data record (TLS 1.3: its encrypted Finished), or in TLS 1.2 and older the
//!   later of the two sides' ChangeCipherSpec (each with its Finished).
//!
//! HdrHistograms (2 significant digits, auto-resizing, microseconds) per service and metric are
//! written as `event.action = "latency"` metric events every `interval_secs` of capture time
//! (that interval's samples) and at the end of the run (all samples, `latency.scope = "run"`).
//! Their memory together is held within `max_histograms_mb`: each service-metric is counted at
//! twice the larger of its run and interval histograms (the interval's is added to the run's
//! when it ends, which grows the run's to that size at most); once the budget is spent, a
//! sample that would need a new histogram is counted only (`limits.latency_samples_untracked`)
//! and a value above an existing histogram's range is recorded at its top
//! (`limits.latency_samples_clamped`).
//!
//! Flags:
//! * `latency.budget.exceeded` — at the end, a service's run p99 above the configured budget
//!   for that metric with at least `min_samples` samples (medium);
//! * `http.chatty` — one client making at least `chatty_threshold` sequential requests of the
//!   same shape (numeric, UUID and long hex path segments folded) to one service within
//!   `chatty_window_secs`, each waiting for the previous response: the N+1 pattern (medium).
//!   Followed per client address and per connection (see [`ChattyKey`]): loops running at
//!   once from one host, each on its own connection, are found one by one. A host's run
//!   that has been a loop on a few keep-alive connections so far (one, or a pool's few in
//!   turn) is not broken by another connection's call that does not continue it (a health
//!   check between two of a loop's calls). A call
//!   sent within the window keeps its run open while it waits for its answer (a slow call
//!   inside a loop), for up to 2 minutes (`CHATTY_ANSWER_WAIT`).
//!   Not when the client spent more time between the calls than waiting for them, 50 ms or
//!   more between two on average (a client polling on a timer: counted in
//!   `http.chatty_runs_paced`), nor when every call asked for the same target, path, query
//!   and `Range` (a retry or refresh loop on one URL, which batching cannot merge: counted in
//!   `http.chatty_runs_one_target`).
//!
//! Not flagged: concurrent (pipelined or parallel) requests of one loop, whatever their number.

use super::{
    AFlow, Analyzer, Counter, DnsView, Facts as AllFacts, FlowHalf, FlowInfo, Note, PacketView,
};
use crate::app::HttpEvent;
use crate::config::LatencySection;
use crate::decode::Transport;
use crate::finding::{Fallacy, Finding, FlowRef, Severity};
use crate::flow::tcp::TcpEvents;
use crate::time::{NANOS_PER_SEC, Nanos, Timestamp};
use hdrhistogram::Histogram;
use rustc_hash::FxHashMap;
use serde::Serialize;
use serde_json::{Value, json};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;

/// The latency metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// TCP handshake.
    TcpHandshake = 0,
    /// TCP data round trip.
    TcpRtt = 1,
    /// HTTP time to first response byte.
    HttpResponse = 2,
    /// HTTP time to last response byte.
    HttpResponseComplete = 3,
    /// DNS query to response.
    DnsResponse = 4,
    /// TLS handshake.
    TlsHandshake = 5,
}

impl Metric {
    /// All metrics.
    pub const ALL: [Metric; 6] = [
        Metric::TcpHandshake,
        Metric::TcpRtt,
        Metric::HttpResponse,
        Metric::HttpResponseComplete,
        Metric::DnsResponse,
        Metric::TlsHandshake,
    ];

    /// `latency.metric`.
    pub fn name(self) -> &'static str {
        match self {
            Metric::TcpHandshake => "tcp.handshake",
            Metric::TcpRtt => "tcp.rtt",
            Metric::HttpResponse => "http.response",
            Metric::HttpResponseComplete => "http.response.complete",
            Metric::DnsResponse => "dns.response",
            Metric::TlsHandshake => "tls.handshake",
        }
    }
}

/// Per-flow state of the latency analyzer.
#[derive(Debug, Default)]
pub struct LatencyFlow {
    tls_hello: Option<Timestamp>,
    tls_done: bool,
    /// Per side (client, server): a ChangeCipherSpec record was seen after the ClientHello.
    tls_ccs: [bool; 2],
}

/// The latency analyzer's per-flow half: the handshake's round trip, and a TLS handshake's
/// time.
pub(crate) struct Half;

impl FlowHalf for Half {
    fn on_packet(
        &self,
        pkt: &PacketView<'_>,
        flow: &mut AFlow,
        _facts: &mut AllFacts,
        notes: &mut Vec<Note>,
        _out: &mut Vec<Finding>,
    ) {
        let (Transport::Tcp(seg), Some(_)) = (pkt.ip.transport, pkt.tcp) else {
            return;
        };
        // TLS: ClientHello, then the handshake's end: the client's first application-data
        // record (TLS 1.3: its Finished), or in TLS 1.2 and older the second of the two
        // ChangeCipherSpecs (each followed by its side's Finished): the first request may come
        // much later on a connection opened ahead of use.
        let p = seg.payload;
        if p.len() < 6 || p[1] != 3 {
            return;
        }
        let client = pkt.dir == flow.client_dir();
        let st = &mut flow.ext.latency;
        if client && p[0] == 22 && p[5] == 1 {
            st.tls_hello.get_or_insert(pkt.ts);
            return;
        }
        let Some(h) = st.tls_hello.filter(|_| !st.tls_done) else {
            return;
        };
        // The records that start in this segment (a Finished after a ChangeCipherSpec, a
        // request after a Finished).
        let (mut ccs, mut app, mut rest) = (false, false, p);
        while rest.len() >= 5 && matches!(rest[0], 20..=23) && rest[1] == 3 {
            ccs |= rest[0] == 20;
            app |= rest[0] == 23;
            let len = 5 + usize::from(u16::from_be_bytes([rest[3], rest[4]]));
            let Some(next) = rest.get(len..) else { break };
            rest = next;
        }
        st.tls_ccs[usize::from(!client)] |= ccs;
        let tls = flow.ext.conn.tls.as_ref();
        let tls12 = tls.and_then(|t| t.version()).is_some_and(|v| v <= 0x0303);
        if (client && app) || (tls12 && st.tls_ccs == [true, true]) {
            st.tls_done = true;
            // The SNI names the service when the ClientHello was parsed.
            let sni = tls
                .and_then(|t| t.client_hello.as_ref())
                .and_then(|c| c.sni.clone());
            notes.push(Note::TlsHandshake(pkt.ts.since(h), sni));
        }
    }
}

/// The run's histogram, and the current interval's (allocated on the first sample of an
/// interval and freed when the interval is written, so idle services cost one histogram).
/// A sample is recorded in the interval's only, which is added to the run's when the interval
/// ends ([`Hists::fold`]): the counts come out the same. The histograms keep a value to 1 %
/// (a bucket's edges, not the value), so the smallest and largest samples are kept beside
/// them as they were.
struct Hists {
    interval: Option<Histogram<u32>>,
    interval_range: Range,
    run: Histogram<u32>,
    run_range: Range,
}

/// The smallest and largest sample of a histogram, in µs.
#[derive(Clone, Copy)]
struct Range {
    min: u64,
    max: u64,
}

impl Range {
    const EMPTY: Range = Range {
        min: u64::MAX,
        max: 0,
    };

    fn add(&mut self, v: u64) {
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    fn merge(&mut self, o: Range) {
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }

    /// `v` (a value read from the histogram, to its precision) kept within what was seen.
    fn clamp(&self, v: u64) -> u64 {
        if self.min > self.max {
            return v;
        }
        v.clamp(self.min, self.max)
    }
}

impl Hists {
    /// Ends the interval: its samples are added to the run's; returns its histogram and range.
    fn fold(&mut self) -> Option<(Histogram<u32>, Range)> {
        let interval = self.interval.take()?;
        self.run
            .add(&interval)
            .expect("an auto-resizing histogram takes another's values");
        let range = std::mem::replace(&mut self.interval_range, Range::EMPTY);
        self.run_range.merge(range);
        Some((interval, range))
    }

    /// The highest value recordable without growing.
    fn high(&self) -> u64 {
        self.interval
            .as_ref()
            .map_or(0, Histogram::high)
            .max(self.run.high())
    }
}

fn new_hist() -> Histogram<u32> {
    Histogram::new(2).expect("2 significant digits is a valid histogram")
}

/// What a service-metric's histograms are counted at against the budget: the larger one's
/// counts, twice (adding the interval's to the run's grows the run's to the larger size).
fn hist_cost(h: &Hists) -> usize {
    let interval = h.interval.as_ref().map_or(0, Histogram::distinct_values);
    2 * interval.max(h.run.distinct_values()) * std::mem::size_of::<u32>()
}

struct Service {
    key: ServiceKey,
    name: Option<String>,
    proto: u8,
    hists: [Option<Box<Hists>>; 6],
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
struct ServiceKey(IpAddr, u16);

/// Hashed as one word for an IPv4 service (it is looked up for nearly every ACK: each RTT
/// sample).
impl Hash for ServiceKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self.0 {
            IpAddr::V4(a) => state.write_u64(crate::flow::v4_endpoint(a, self.1)),
            IpAddr::V6(a) => {
                state.write_u128(a.to_bits());
                state.write_u32(u32::from(self.1) | 1 << 16);
            }
        }
    }
}

/// Handshake samples kept exactly for the run-wide median.
const MAX_EXACT: usize = 100_000;

/// The run-wide median handshake RTT (µs) over every connection: exact, as Wireshark users
/// compute it (the mean of the two middle values for an even count), while there are at most
/// [`MAX_EXACT`]; beyond, all of them go into a histogram of 3 significant digits, whose
/// median is within 0.1 % of the exact one and memory stays bounded.
#[derive(Default)]
struct HandshakeMedian {
    exact: Vec<u64>,
    all: Option<Histogram<u64>>,
}

impl HandshakeMedian {
    fn push(&mut self, us: u64) {
        if let Some(h) = &mut self.all {
            h.saturating_record(us);
        } else if self.exact.len() < MAX_EXACT {
            self.exact.push(us);
        } else {
            // Up to an hour (longer ones are recorded as an hour).
            let mut h =
                Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds");
            for &v in &self.exact {
                h.saturating_record(v);
            }
            h.saturating_record(us);
            self.exact = Vec::new();
            self.all = Some(h);
        }
    }

    fn median(&self) -> u64 {
        if let Some(h) = &self.all {
            return h
                .median_equivalent(h.value_at_quantile(0.5))
                .clamp(h.min(), h.max());
        }
        let mut v = self.exact.clone();
        v.sort_unstable();
        match v.len() {
            0 => 0,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2,
        }
    }
}
/// DNS queries waiting for their answer at once (beyond: counted in
/// `limits.latency_samples_untracked`).
const MAX_DNS_PENDING: usize = 100_000;

/// The mean pause between a poller's calls at least (with more time paused than waiting):
/// 20 calls a second or fewer.
const CHATTY_PACED_GAP: Nanos = 50_000_000;

/// How long a run's call sent within the window after the previous answer keeps the run open
/// while it waits for its own answer (a slow call inside a loop); an answer later than this is
/// taken as that of a new run.
const CHATTY_ANSWER_WAIT: Nanos = 120 * NANOS_PER_SEC;

impl Chatty {
    /// Whether the run is quiet at `now`: nothing answered for more than `window`, and no
    /// call sent since waiting for its answer (for at most [`CHATTY_ANSWER_WAIT`]).
    fn quiet(&self, now: Timestamp, window: Nanos) -> bool {
        now.since(self.last_end) > window
            && !self
                .asked
                .is_some_and(|a| a >= self.last_end && now.since(a) <= CHATTY_ANSWER_WAIT)
    }
}

struct Chatty {
    shape: String,
    before: Option<String>,
    count: u64,
    first_start: Timestamp,
    last_end: Timestamp,
    waiting: Nanos,
    /// Time between a response's end and the next request: the client's own pace.
    idle: Nanos,
    /// The start times of the last `chatty_threshold` calls.
    starts: std::collections::VecDeque<Timestamp>,
    flagged: bool,
    client_port: u16,
    handshake_rtt: Option<Nanos>,
    /// The run's first request's path and query hash, and whether a later one asked for
    /// another target: one URL fetched again and again is no N+1 pattern.
    first_target: (std::sync::Arc<str>, u64),
    varied: bool,
    /// A run of one connection (see [`ChattyKey`]): some of its calls were also counted in
    /// a flagged run of its host's, which reports them.
    covered: bool,
    /// When the latest request that may continue the run was sent (within the window after
    /// its last answer): while it waits for its answer, the run is not taken for finished.
    asked: Option<Timestamp>,
    /// A run of one connection's, not of its host's.
    one_connection: bool,
    /// The client ports of the run's calls, the first [`CHATTY_PORTS`] (`nports` of them;
    /// more: `nports` is above it).
    ports: [u16; CHATTY_PORTS],
    nports: u8,
}

/// A host's run whose calls came on at most this many connections, two or more calls each on
/// average, is a loop on keep-alive connections (one, or a pool's in turn): another
/// connection's call that does not continue it is no part of it. 16 holds the usual pool
/// sizes (10 in Python's requests and HikariCP, 5 in OkHttp, 2 in Go's net/http) for 32 bytes
/// a run (at most `MAX_PENDING_GROUPS` of each kind), looked through once a response.
const CHATTY_PORTS: usize = 16;

impl Chatty {
    /// Notes the client port of a call of the run.
    fn add_port(&mut self, port: u16) {
        let n = usize::from(self.nports);
        if n <= CHATTY_PORTS && !self.ports[..n].contains(&port) {
            if n < CHATTY_PORTS {
                self.ports[n] = port;
            }
            self.nports += 1;
        }
    }

    /// Whether the run's calls came on a few keep-alive connections, none of them `port`'s.
    fn on_other_connections(&self, port: u16) -> bool {
        let n = usize::from(self.nports);
        n <= CHATTY_PORTS && self.count >= 2 * n as u64 && !self.ports[..n].contains(&port)
    }
}

/// A run of sequential calls is followed per client address and service (the connection
/// port 0), and per connection (the client's port): a loop that opens a connection per call
/// is seen by the first, two loops running at once from one host (a service's worker threads,
/// each on its own pooled connection), whose calls overlap, only by the second. A connection's
/// run is reported only when its host's run did not report its calls.
type ChattyKey = (IpAddr, u16, ServiceKey);

#[derive(Serialize)]
struct ChattyEvidence<'a> {
    shape: &'a str,
    after: Option<&'a str>,
    calls: u64,
    duration_secs: f64,
    waiting_secs: f64,
    idle_secs: f64,
    round_trip_ms: Option<f64>,
    round_trips_secs: Option<f64>,
    /// A run found on one connection while the host's other calls ran at the same time.
    one_connection: bool,
}

#[derive(Serialize)]
struct BudgetEvidence {
    /// `ip:port`, as the latency events name it: what the finding is about (it has no flow).
    service: String,
    metric: &'static str,
    count: u64,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
    budget_us: u64,
}

/// The latency analyzer.
pub struct Latency {
    cfg: LatencySection,
    /// Where the service last recorded is in `services`, plus one (see [`Latency::service`]):
    /// a connection's samples come in runs.
    last_service: u32,
    interval: Nanos,
    next_emit: Option<Timestamp>,
    interval_start: Option<Timestamp>,
    /// Every service seen, in the order first seen, and where each key is in it.
    services: Vec<Service>,
    service_index: FxHashMap<ServiceKey, u32>,
    /// Services beyond `max_services`, each counted once: remembered up to as many again
    /// (beyond, `services_dropped` is a lower bound).
    services_dropped: u64,
    dropped: rustc_hash::FxHashSet<ServiceKey>,
    /// Samples of the services beyond `max_services`, not recorded.
    samples_services_dropped: u64,
    /// Samples that came out negative (the answer captured before the question: clocks that
    /// disagree, a reordered capture), not recorded.
    samples_negative: u64,
    /// Histogram memory counted against `max_histograms_mb` (bytes), and that budget.
    hist_bytes: usize,
    hist_budget: usize,
    /// Samples not recorded because they needed a new histogram past the budget.
    samples_untracked: u64,
    /// Samples recorded at their histogram's top because it could not grow past the budget.
    samples_clamped: u64,
    /// Times the open runs of sequential calls reached [`super::MAX_PENDING_GROUPS`] and were
    /// all closed at once.
    chatty_closed_early: u64,
    /// Queries waiting for their response: when first sent, and when last (sent again).
    dns: FxHashMap<(IpAddr, IpAddr, u16, u64), (Timestamp, Timestamp)>,
    /// `[retries] dns_timeout_secs`: a query sent again later than this after its last
    /// transmission is a new query (the one before was never answered).
    dns_timeout: Nanos,
    /// Runs per client address and service (connection port 0).
    chatty: FxHashMap<ChattyKey, Chatty>,
    /// Runs per connection, kept apart (and capped on their own) so that a host opening many
    /// connections never crowds out the runs of its address.
    chatty_conn: FxHashMap<ChattyKey, Chatty>,
    /// Responses whose connection's run was not followed: [`super::MAX_PENDING_GROUPS`]
    /// connections' runs were open.
    chatty_conn_untracked: u64,
    samples: [u64; 6],
    /// The run-wide median handshake RTT.
    handshakes: HandshakeMedian,
    run_start: Option<Timestamp>,
    chatty_found: u64,
    /// Sequences long enough to be chatty whose client spent more time between the calls
    /// than waiting for them (polling), not reported.
    chatty_paced: u64,
    /// Runs of calls all for one target (path and query), not reported.
    chatty_one_target: u64,
    intervals_emitted: u64,
    /// Metric events to write (the pipeline drains them).
    pending_metrics: Vec<Value>,
    /// Room for a request's shape ([`Latency::chatty_step`]).
    shape_buf: String,
}

#[cfg(test)]
fn shape_of(method: &str, path: &str) -> String {
    let mut out = String::new();
    shape_into(method, path, &mut out);
    out
}

/// The shape of a request (`GET /orders/{id}`) into `out`, which is cleared first.
fn shape_into(method: &str, path: &str, out: &mut String) {
    out.clear();
    out.push_str(method);
    out.push(' ');
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        let is_num = !seg.is_empty() && seg.bytes().all(|c| c.is_ascii_digit());
        let is_uuid = seg.len() == 36
            && seg.bytes().enumerate().all(|(j, c)| {
                if matches!(j, 8 | 13 | 18 | 23) {
                    c == b'-'
                } else {
                    c.is_ascii_hexdigit()
                }
            });
        let is_hex = seg.len() >= 16 && seg.bytes().all(|c| c.is_ascii_hexdigit());
        if is_num {
            out.push_str("{id}");
        } else if is_uuid {
            out.push_str("{uuid}");
        } else if is_hex {
            out.push_str("{hex}");
        } else {
            out.push_str(seg);
        }
    }
}

/// A percentile (`p` in 0–1) as the middle of its histogram bucket (at 2 significant digits a
/// bucket is under 0.8 % wide), kept within the recorded min and max.
fn quantile_us(h: &Histogram<u32>, range: Range, p: f64) -> u64 {
    range.clamp(h.median_equivalent(h.value_at_quantile(p)))
}

/// Percentiles drawn in the report's latency plots, each with its quantile written out: the
/// quantile must be the literal the NDJSON events use (`99.9 / 100.0` is 0.9990000000000001,
/// which over 1,000 samples is the 1,000th, not the 999th).
const REPORT_PERCENTILES: [(f64, f64); 14] = [
    (0.0, 0.0),
    (10.0, 0.10),
    (25.0, 0.25),
    (50.0, 0.50),
    (75.0, 0.75),
    (90.0, 0.90),
    (95.0, 0.95),
    (99.0, 0.99),
    (99.5, 0.995),
    (99.9, 0.999),
    (99.95, 0.9995),
    (99.99, 0.9999),
    (99.999, 0.99999),
    (100.0, 1.0),
];

fn us(n: Nanos) -> u64 {
    (n.max(0) / 1000) as u64
}

fn secs(n: Nanos) -> f64 {
    n as f64 / NANOS_PER_SEC as f64
}

impl Latency {
    /// A new analyzer; `dns_timeout_secs` is `[retries] dns_timeout_secs`.
    pub fn new(cfg: &LatencySection, dns_timeout_secs: f64) -> Self {
        Latency {
            dns_timeout: (dns_timeout_secs * NANOS_PER_SEC as f64) as Nanos,
            cfg: cfg.clone(),
            last_service: 0,
            interval: (cfg.interval_secs * NANOS_PER_SEC as f64) as Nanos,
            next_emit: None,
            interval_start: None,
            services: Vec::new(),
            service_index: FxHashMap::default(),
            services_dropped: 0,
            dropped: Default::default(),
            samples_services_dropped: 0,
            samples_negative: 0,
            hist_bytes: 0,
            hist_budget: usize::try_from(cfg.max_histograms_mb.saturating_mul(1 << 20))
                .unwrap_or(usize::MAX),
            samples_untracked: 0,
            samples_clamped: 0,
            chatty_closed_early: 0,
            dns: FxHashMap::default(),
            chatty: FxHashMap::default(),
            chatty_conn: FxHashMap::default(),
            chatty_conn_untracked: 0,
            samples: [0; 6],
            handshakes: HandshakeMedian::default(),
            run_start: None,
            chatty_found: 0,
            chatty_paced: 0,
            chatty_one_target: 0,
            intervals_emitted: 0,
            pending_metrics: Vec::new(),
            shape_buf: String::new(),
        }
    }

    /// The services in key order (for reports that come out the same on every run).
    fn sorted_services(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.services.len()).collect();
        order.sort_unstable_by_key(|&i| self.services[i].key);
        order
    }

    /// Where `key`'s service is in `services`, added when there is room for it. `cache` (a
    /// connection's, or a scratch 0) remembers the answer for the next call.
    fn service(&mut self, key: ServiceKey, room: bool, cache: &mut u32) -> Option<usize> {
        if let Some(i) = cache.checked_sub(1).map(|i| i as usize) {
            if self.services.get(i).is_some_and(|s| s.key == key) {
                return Some(i);
            }
        }
        let i = match self.service_index.get(&key) {
            Some(&i) => i as usize,
            None if self.services.len() >= self.cfg.max_services => {
                self.samples_services_dropped += 1;
                if self.dropped.len() < self.cfg.max_services && self.dropped.insert(key) {
                    self.services_dropped += 1;
                }
                return None;
            }
            None if !room => {
                self.samples_untracked += 1;
                return None;
            }
            None => {
                let i = self.services.len();
                self.service_index.insert(key, i as u32);
                self.services.push(Service {
                    key,
                    name: None,
                    proto: 0,
                    hists: Default::default(),
                });
                i
            }
        };
        *cache = i as u32 + 1;
        Some(i)
    }

    /// Records `v` for `key`'s `metric`; `cache` as for [`Latency::service`].
    fn record(
        &mut self,
        key: ServiceKey,
        cache: &mut u32,
        proto: u8,
        metric: Metric,
        v: Nanos,
        name: Option<&str>,
    ) {
        if v < 0 {
            self.samples_negative += 1;
            return;
        }
        let room = self.hist_bytes < self.hist_budget;
        let Some(i) = self.service(key, room, cache) else {
            return;
        };
        let s = &mut self.services[i];
        let slot = &mut s.hists[metric as usize];
        if slot.is_none() {
            if !room {
                self.samples_untracked += 1;
                return;
            }
            let h = Hists {
                interval: None,
                interval_range: Range::EMPTY,
                run: new_hist(),
                run_range: Range::EMPTY,
            };
            self.hist_bytes += hist_cost(&h);
            *slot = Some(Box::new(h));
        }
        let h = slot.as_mut().expect("set above");
        self.samples[metric as usize] += 1;
        s.proto = proto;
        if s.name.is_none() {
            if let Some(n) = name.filter(|n| !n.is_empty()) {
                s.name = Some(n.to_string());
            }
        }
        let mut v = us(v).max(1);
        let before = hist_cost(h);
        if v > h.high() && !room {
            v = h.high();
            self.samples_clamped += 1;
        }
        // `record` grows an auto-resizing histogram; values beyond what it can ever hold are
        // clamped rather than lost.
        let interval = h.interval.get_or_insert_with(new_hist);
        if interval.record(v).is_err() {
            interval.saturating_record(v);
        }
        h.interval_range.add(v);
        self.hist_bytes += hist_cost(h) - before;
    }

    fn metric_event(
        key: &ServiceKey,
        name: Option<&str>,
        metric: Metric,
        (h, range): (&Histogram<u32>, Range),
        scope: &str,
        start: Timestamp,
        end: Timestamp,
    ) -> Value {
        let q = |p: f64| quantile_us(h, range, p);
        let mut latency = json!({
            "metric": metric.name(),
            "service": format!("{}", std::net::SocketAddr::new(key.0, key.1)),
            "scope": scope,
            "count": h.len(),
            "min_us": range.clamp(h.min()),
            "p50_us": q(0.50),
            "p90_us": q(0.90),
            "p99_us": q(0.99),
            "p999_us": q(0.999),
            "max_us": range.clamp(h.max()),
        });
        if let Some(n) = name {
            latency["service_name"] = json!(n);
        }
        json!({
            "@timestamp": end.rfc3339_micros(),
            "event": {
                "kind": "metric",
                "action": "latency",
                "category": ["network"],
                "type": ["info"],
                "dataset": "observer.latency",
                "start": start.rfc3339_micros(),
                "end": end.rfc3339_micros(),
            },
            "message": format!(
                "{} {}: {} samples, p50 {} µs, p99 {} µs",
                metric.name(),
                std::net::SocketAddr::new(key.0, key.1),
                h.len(),
                q(0.5),
                q(0.99)
            ),
            "destination": {"ip": key.0.to_string(), "port": key.1},
            "latency": latency,
        })
    }

    fn emit_interval(&mut self, end: Timestamp) {
        let start = self.interval_start.unwrap_or(end);
        for i in self.sorted_services() {
            let s = &mut self.services[i];
            let k = s.key;
            let name = s.name.clone();
            for m in Metric::ALL {
                if let Some(h) = s.hists[m as usize].as_mut() {
                    let Some((interval, range)) = h.fold() else {
                        continue;
                    };
                    let ev = Self::metric_event(
                        &k,
                        name.as_deref(),
                        m,
                        (&interval, range),
                        "interval",
                        start,
                        end,
                    );
                    self.pending_metrics.push(ev);
                }
            }
        }
        self.interval_start = Some(end);
    }

    /// The runs of `key`'s kind: its address's (port 0) or its connection's.
    fn runs(&mut self, key: &ChattyKey) -> &mut FxHashMap<ChattyKey, Chatty> {
        if key.1 == 0 {
            &mut self.chatty
        } else {
            &mut self.chatty_conn
        }
    }

    /// Closes the runs of sequential calls still open that `done` picks (of the hosts', and of
    /// the connections' too when `connections`), in key order.
    fn close_chatty_where(
        &mut self,
        connections: bool,
        done: impl Fn(&Chatty) -> bool,
        out: &mut Vec<Finding>,
    ) {
        let conn = connections.then_some(&self.chatty_conn);
        let mut keys: Vec<ChattyKey> = self
            .chatty
            .iter()
            .chain(conn.into_iter().flatten())
            .filter(|(_, c)| done(c))
            .map(|(k, _)| *k)
            .collect();
        keys.sort();
        for k in keys {
            if let Some(c) = self.runs(&k).remove(&k) {
                self.close_chatty(k.0, k.2, c, out);
            }
        }
    }

    /// Request `q` sent on `flow`: the runs it may continue (its host's and its connection's)
    /// wait for its answer ([`Chatty::asked`]).
    fn chatty_asked(&mut self, q: &crate::app::RequestInfo, flow: &FlowInfo) {
        let window = (self.cfg.chatty_window_secs * NANOS_PER_SEC as f64) as Nanos;
        let (client, server) = (flow.client(), flow.server());
        let service = ServiceKey(server.0, server.1);
        for key in [(client.0, 0, service), (client.0, client.1, service)] {
            if let Some(c) = self.runs(&key).get_mut(&key) {
                if q.start_ts >= c.last_end && q.start_ts.since(c.last_end) <= window {
                    c.asked = Some(q.start_ts);
                }
            }
        }
    }

    /// Closes every run of sequential calls still open.
    fn close_all_chatty(&mut self, out: &mut Vec<Finding>) {
        self.close_chatty_where(true, |_| true, out);
    }

    /// One response `ev`, its request of `shape`, in the run of `key` ([`ChattyKey`]);
    /// `covered`: its host's run is flagged (for a connection's run). Returns whether the run
    /// holds this call and is flagged.
    #[allow(clippy::too_many_arguments)]
    fn chatty_step(
        &mut self,
        key: ChattyKey,
        shape: &str,
        ev: &crate::app::ResponseInfo,
        client_port: u16,
        rtt: Option<Nanos>,
        covered: bool,
        out: &mut Vec<Finding>,
    ) -> bool {
        let (client, _, server) = key;
        let window = (self.cfg.chatty_window_secs * NANOS_PER_SEC as f64) as Nanos;
        let threshold = self.cfg.chatty_threshold as usize;
        let (mut continues, mut foreign) = (false, false);
        if let Some(c) = self.runs(&key).get(&key) {
            let within = ev.request.start_ts.since(c.last_end) <= window;
            continues = c.shape == shape && ev.request.start_ts >= c.last_end && within;
            // A host's run that has so far been a loop on one keep-alive connection (or a
            // pool's few, in turn) is not broken by another connection's call (a health
            // check, another thread's): the call is no part of it.
            foreign = !continues && within && key.1 == 0 && c.on_other_connections(client_port);
        }
        if foreign {
            return false;
        }
        if !continues {
            let before = self.runs(&key).remove(&key).map(|c| {
                let b = c.shape.clone();
                self.close_chatty(client, server, c, out);
                b
            });
            self.runs(&key).insert(
                key,
                Chatty {
                    shape: shape.to_string(),
                    before,
                    count: 0,
                    first_start: ev.request.start_ts,
                    last_end: ev.end_ts,
                    waiting: 0,
                    idle: 0,
                    starts: std::collections::VecDeque::new(),
                    flagged: false,
                    client_port,
                    handshake_rtt: rtt,
                    first_target: (
                        std::sync::Arc::clone(&ev.request.path),
                        ev.request.target_hash,
                    ),
                    varied: false,
                    covered: false,
                    asked: None,
                    one_connection: key.1 != 0,
                    ports: [0; CHATTY_PORTS],
                    nports: 0,
                },
            );
        }
        let c = self.runs(&key).get_mut(&key).expect("just inserted");
        if !c.varied {
            c.varied =
                c.first_target.1 != ev.request.target_hash || *c.first_target.0 != *ev.request.path;
        }
        if c.count > 0 {
            c.idle += ev.request.start_ts.since(c.last_end).max(0);
        }
        c.add_port(client_port);
        c.count += 1;
        c.last_end = ev.end_ts;
        c.waiting += ev.end_ts.since(ev.request.start_ts).max(0);
        if c.handshake_rtt.is_none() {
            c.handshake_rtt = rtt;
        }
        if c.starts.len() >= threshold {
            c.starts.pop_front();
        }
        c.starts.push_back(ev.request.start_ts);
        if !c.flagged && c.starts.len() >= threshold {
            let oldest = c.starts[0];
            if ev.request.start_ts.since(oldest) <= window {
                c.flagged = true;
            }
        }
        c.covered |= covered;
        c.flagged
    }

    fn close_chatty(
        &mut self,
        client: IpAddr,
        server: ServiceKey,
        c: Chatty,
        out: &mut Vec<Finding>,
    ) {
        if !c.flagged || c.covered {
            return;
        }
        if c.idle > c.waiting && c.idle / (c.count.max(2) - 1) as Nanos >= CHATTY_PACED_GAP {
            // More time between the calls than waiting for them, and long pauses: a client on
            // a timer (polling a status), not one held up by each answer (whose pauses are its
            // own work on each item, shorter); batching saves little.
            self.chatty_paced += 1;
            return;
        }
        if !c.varied {
            // Every call asked for the same target (a retry or refresh loop on one URL):
            // batching cannot merge them.
            self.chatty_one_target += 1;
            return;
        }
        self.chatty_found += 1;
        // The part a single batched call would save: one round trip per call (the
        // connection's handshake RTT), never more than the time actually spent waiting.
        let round_trips = c
            .handshake_rtt
            .map(|r| r.saturating_mul(c.count as Nanos).min(c.waiting));
        let ev = ChattyEvidence {
            shape: &c.shape,
            after: c.before.as_deref(),
            calls: c.count,
            duration_secs: secs(c.last_end.since(c.first_start)),
            waiting_secs: secs(c.waiting),
            idle_secs: secs(c.idle),
            round_trip_ms: c.handshake_rtt.map(|r| r as f64 / 1e6),
            round_trips_secs: round_trips.map(secs),
            one_connection: c.one_connection,
        };
        let message = format!(
            "{client} made {} sequential `{}` calls to {}:{}{}{}, each waiting for the previous: {:.3} s spent waiting{}; batch them",
            c.count,
            c.shape,
            server.0,
            server.1,
            if c.one_connection {
                format!(
                    " on one connection (port {}) while its other calls ran at the same time",
                    c.client_port
                )
            } else {
                String::new()
            },
            c.before
                .as_ref()
                .map(|b| format!(" after `{b}`"))
                .unwrap_or_default(),
            secs(c.waiting),
            round_trips
                .map(|r| format!(", {:.3} s of it pure round trips", secs(r)))
                .unwrap_or_default()
        );
        out.push(Finding {
            ts: c.first_start,
            rule: "http.chatty",
            severity: Severity::Medium,
            fallacy: Fallacy::LatencyIsZero,
            message,
            flow: Some(FlowRef {
                protocol: Some("http"),
                ..FlowRef::new((client, c.client_port), (server.0, server.1), 6)
            }),
            evidence: Finding::evidence_from(&ev),
        });
    }

    fn budgets(&self, out: &mut Vec<Finding>, now: Timestamp) {
        for i in self.sorted_services() {
            let s = &self.services[i];
            let k = s.key;
            for m in Metric::ALL {
                let Some(h) = s.hists[m as usize].as_ref() else {
                    continue;
                };
                let Some(&budget_ms) = self.cfg.budgets_ms.get(m.name()) else {
                    continue;
                };
                let budget_us = (budget_ms * 1000.0) as u64;
                // As the metric events give it: a bucket's middle, within the samples seen (a
                // bucket's top would put samples just under the budget over it).
                let p99 = quantile_us(&h.run, h.run_range, 0.99);
                if h.run.len() < self.cfg.min_samples || p99 <= budget_us {
                    continue;
                }
                let ev = BudgetEvidence {
                    service: std::net::SocketAddr::new(k.0, k.1).to_string(),
                    metric: m.name(),
                    count: h.run.len(),
                    p50_us: quantile_us(&h.run, h.run_range, 0.5),
                    p99_us: p99,
                    max_us: h.run_range.clamp(h.run.max()),
                    budget_us,
                };
                let name = s
                    .name
                    .as_ref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default();
                out.push(Finding {
                    ts: now,
                    rule: "latency.budget.exceeded",
                    severity: Severity::Medium,
                    fallacy: Fallacy::LatencyIsZero,
                    message: format!(
                        "{}:{}{name} {} p99 is {:.1} ms over {} samples, above the {budget_ms} ms budget",
                        k.0,
                        k.1,
                        m.name(),
                        p99 as f64 / 1000.0,
                        h.run.len()
                    ),
                    flow: None,
                    evidence: Finding::evidence_from(&ev),
                });
            }
        }
    }
}

impl Analyzer for Latency {
    fn name(&self) -> &'static str {
        "latency"
    }

    fn on_packet(
        &mut self,
        pkt: &PacketView<'_>,
        info: &FlowInfo,
        _facts: &AllFacts,
        _out: &mut Vec<Finding>,
    ) {
        if self.interval_start.is_none() {
            self.interval_start = Some(pkt.ts);
            self.run_start = Some(pkt.ts);
        }
        // (A DNS message comes through `on_dns`.)
        if !matches!(pkt.ip.transport, Transport::Tcp(_)) {
            return;
        }
        let Some(u) = pkt.tcp else { return };
        let handshake = u.events.has(TcpEvents::INITIAL_RTT);
        if !handshake && u.rtt.is_none() {
            return;
        }
        let server = info.server();
        let key = ServiceKey(server.0, server.1);
        let mut cache = self.last_service;
        if let Some(r) = info.initial_rtt.filter(|_| handshake) {
            self.record(key, &mut cache, 6, Metric::TcpHandshake, r, None);
            self.handshakes.push(us(r));
        }
        if let Some(r) = u.rtt {
            self.record(key, &mut cache, 6, Metric::TcpRtt, r, None);
        }
        self.last_service = cache;
    }

    fn on_dns(&mut self, d: &DnsView<'_>, _flow: &FlowInfo, _out: &mut Vec<Finding>) {
        let m = d.msg;
        let name = crate::proto::dns::question_key(&m.qname, m.qtype);
        if m.response {
            let k = (d.dst.0, d.src.0, m.id, name);
            if let Some((t0, _)) = self.dns.remove(&k) {
                self.record(
                    ServiceKey(d.src.0, d.src.1),
                    &mut 0,
                    d.proto,
                    Metric::DnsResponse,
                    d.ts.since(t0),
                    None,
                );
            }
        } else {
            let k = (d.src.0, d.dst.0, m.id, name);
            let full = self.dns.len() >= MAX_DNS_PENDING;
            match self.dns.entry(k) {
                // Sent again: timed from its first transmission, as the client waits, unless
                // the one before went unanswered (its answer cannot be this one's, as for
                // `[retries]`). (Over TCP a message is handed once, however often TCP sent it.)
                std::collections::hash_map::Entry::Occupied(mut e) => {
                    let (first, last) = e.get_mut();
                    if d.ts.since(*last) > self.dns_timeout {
                        *first = d.ts;
                    }
                    *last = d.ts.max(*last);
                }
                // Its answer, if one comes, gives no sample: counted now.
                std::collections::hash_map::Entry::Vacant(_) if full => {
                    self.samples_untracked += 1;
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert((d.ts, d.ts));
                }
            }
        }
    }

    fn on_note(&mut self, note: &Note, info: &FlowInfo, _out: &mut Vec<Finding>) {
        let Note::TlsHandshake(took, sni) = note else {
            return;
        };
        let server = info.server();
        let mut cache = self.last_service;
        self.record(
            ServiceKey(server.0, server.1),
            &mut cache,
            6,
            Metric::TlsHandshake,
            *took,
            sni.as_deref(),
        );
        self.last_service = cache;
    }

    fn on_http(&mut self, ev: &HttpEvent, flow: &FlowInfo, out: &mut Vec<Finding>) {
        let r = match ev {
            HttpEvent::Response(r) => r,
            HttpEvent::Request(q) => {
                self.chatty_asked(q, flow);
                return;
            }
        };
        if self.chatty.len() >= super::MAX_PENDING_GROUPS {
            // Too many runs open: the hosts' all closed now (see `MAX_PENDING_GROUPS`).
            self.close_chatty_where(false, |_| true, out);
            self.chatty_closed_early += 1;
        }
        let server = flow.server();
        let key = ServiceKey(server.0, server.1);
        let host = Some(&*r.request.host);
        self.record(
            key,
            &mut 0,
            6,
            Metric::HttpResponse,
            r.first_ts.since(r.request.end_ts),
            host,
        );
        self.record(
            key,
            &mut 0,
            6,
            Metric::HttpResponseComplete,
            r.end_ts.since(r.request.end_ts),
            host,
        );
        let client = flow.client();
        let rtt = flow.initial_rtt;
        // Made in a buffer kept from the last response: a request of the same shape as the
        // one before (the usual case) takes no allocation.
        let mut shape = std::mem::take(&mut self.shape_buf);
        shape_into(&r.request.method, &r.request.path, &mut shape);
        let host = self.chatty_step((client.0, 0, key), &shape, r, client.1, rtt, false, out);
        let conn = (client.0, client.1, key);
        if self.chatty_conn.len() < super::MAX_PENDING_GROUPS
            || self.chatty_conn.contains_key(&conn)
        {
            self.chatty_step(conn, &shape, r, client.1, rtt, host, out);
        } else {
            self.chatty_conn_untracked += 1;
        }
        self.shape_buf = shape;
    }

    fn on_tick(&mut self, now: Timestamp, out: &mut Vec<Finding>) {
        // The first interval ends `interval` after the run's first packet (as each later one
        // after the one before), not after the first tick: a live run's comes up to a second
        // after its start, which made its first interval a tick longer than the others.
        if let Some(start) = self.interval_start {
            let next = *self.next_emit.get_or_insert(start.plus(self.interval));
            if now >= next {
                self.emit_interval(now);
                self.intervals_emitted += 1;
                self.next_emit = Some(now.plus(self.interval));
            }
        }
        // Chatty runs that went quiet.
        let window = (self.cfg.chatty_window_secs * NANOS_PER_SEC as f64) as Nanos;
        self.close_chatty_where(true, |c| c.quiet(now, window), out);
        // Queries that will never be answered do not stay forever.
        if self.dns.len() > 10_000 {
            self.dns
                .retain(|_, (_, last)| now.since(*last) < 60 * NANOS_PER_SEC);
        }
    }

    fn finish(&mut self, now: Timestamp, out: &mut Vec<Finding>) {
        self.close_all_chatty(out);
        // The last partial interval, unless the whole run was one interval (the run events say
        // the same).
        if self.intervals_emitted > 0 {
            self.emit_interval(now);
        } else {
            for h in self
                .services
                .iter_mut()
                .flat_map(|s| s.hists.iter_mut().flatten())
            {
                h.fold();
            }
        }
        let start = self.run_start.unwrap_or(now);
        for i in self.sorted_services() {
            let s = &self.services[i];
            for m in Metric::ALL {
                if let Some(h) = s.hists[m as usize].as_ref() {
                    let ev = Self::metric_event(
                        &s.key,
                        s.name.as_deref(),
                        m,
                        (&h.run, h.run_range),
                        "run",
                        start,
                        now,
                    );
                    self.pending_metrics.push(ev);
                }
            }
        }
        self.budgets(out, now);
    }

    fn drain_events(&mut self, out: &mut Vec<Value>) {
        out.append(&mut self.pending_metrics);
    }

    fn report(&mut self, r: &mut crate::report::ReportData) {
        // The busiest services (most samples over every metric) first.
        let mut ranked: Vec<(u64, ServiceKey, usize)> = self
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let n = s.hists.iter().flatten().map(|h| h.run.len()).sum();
                (n, s.key, i)
            })
            .collect();
        ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let keep = crate::report::MAX_SERVICES.min(ranked.len());
        r.latency_services_omitted = (ranked.len() - keep) as u64;
        for &(_, k, i) in &ranked[..keep] {
            let s = &self.services[i];
            for m in Metric::ALL {
                let Some((h, range)) = s.hists[m as usize].as_ref().map(|h| (&h.run, h.run_range))
                else {
                    continue;
                };
                let points = REPORT_PERCENTILES
                    .iter()
                    .map(|&(p, q)| {
                        let v = match p {
                            0.0 => range.clamp(h.min()),
                            100.0 => range.clamp(h.max()),
                            _ => quantile_us(h, range, q),
                        };
                        (p, v)
                    })
                    .collect();
                r.latency.push(crate::report::LatencyCurve {
                    service: std::net::SocketAddr::new(k.0, k.1).to_string(),
                    name: s.name.clone(),
                    metric: m.name(),
                    count: h.len(),
                    points,
                });
            }
        }
    }

    fn stats(&self, out: &mut Vec<Counter>) {
        out.push(("latency.tcp_handshake_median_us", self.handshakes.median()));
        out.extend([
            ("latency.services", self.services.len() as u64),
            ("latency.services_dropped", self.services_dropped),
            (
                "latency.samples_services_dropped",
                self.samples_services_dropped,
            ),
            ("latency.samples_negative", self.samples_negative),
            ("latency.histogram_bytes", self.hist_bytes as u64),
            ("limits.latency_samples_untracked", self.samples_untracked),
            ("limits.latency_samples_clamped", self.samples_clamped),
            (
                "limits.latency_chatty_reported_early",
                self.chatty_closed_early,
            ),
            (
                "limits.latency_chatty_connections_untracked",
                self.chatty_conn_untracked,
            ),
            ("latency.samples.tcp_handshake", self.samples[0]),
            ("latency.samples.tcp_rtt", self.samples[1]),
            ("latency.samples.http_response", self.samples[2]),
            ("latency.samples.http_response_complete", self.samples[3]),
            ("latency.samples.dns_response", self.samples[4]),
            ("latency.samples.tls_handshake", self.samples[5]),
            ("http.chatty_runs", self.chatty_found),
            ("http.chatty_runs_paced", self.chatty_paced),
            ("http.chatty_runs_one_target", self.chatty_one_target),
        ]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handshake_median_covers_every_connection() {
        let mut m = HandshakeMedian::default();
        assert_eq!(m.median(), 0);
        // Exact while few: 10, 20, 30, 40 → (20 + 30) / 2.
        for v in [40, 10, 30, 20] {
            m.push(v);
        }
        assert_eq!(m.median(), 25);
        // 100,000 handshakes of 1,000 µs, then 150,000 of 5,000 µs: the median of them all is
        // 5,000 µs (the first 100,000 alone would say 1,000).
        let mut m = HandshakeMedian::default();
        for _ in 0..MAX_EXACT {
            m.push(1_000);
        }
        assert_eq!(m.median(), 1_000);
        for _ in 0..150_000 {
            m.push(5_000);
        }
        let got = m.median();
        assert!(got.abs_diff(5_000) <= 5, "{got}");
        assert!(m.exact.is_empty());
        // Many distinct values: within 0.1 % of the exact median.
        let mut m = HandshakeMedian::default();
        let values: Vec<u64> = (0..300_001u64)
            .map(|i| 100 + (i * 7_919) % 1_000_000)
            .collect();
        for &v in &values {
            m.push(v);
        }
        let mut sorted = values.clone();
        sorted.sort_unstable();
        let exact = sorted[sorted.len() / 2];
        let got = m.median();
        assert!(got.abs_diff(exact) * 1_000 <= exact, "{got} vs {exact}");
    }

    #[test]
    fn shapes_fold_ids() {
        assert_eq!(shape_of("GET", "/orders/1042"), "GET /orders/{id}");
        assert_eq!(
            shape_of("GET", "/u/123e4567-e89b-12d3-a456-426614174000/x"),
            "GET /u/{uuid}/x"
        );
        assert_eq!(
            shape_of("GET", "/blob/0123456789abcdef01"),
            "GET /blob/{hex}"
        );
        assert_eq!(shape_of("POST", "/orders"), "POST /orders");
    }
}
