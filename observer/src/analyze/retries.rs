//! The network is reliable (fallacy 1), application side: requests sent more than once, and
//! requests that never got an answer.
//!
//! Flags:
//! * `http.request.duplicate` — the same HTTP/1.x request (method, host, path, body hash) sent
//!   again by the same client within `duplicate_window_secs`, on any connection. A POST or
//!   PATCH repeated without an `Idempotency-Key` header is the unsafe case (high: the double
//!   charge; so are LOCK and CONNECT, the IANA HTTP method registry's other non-idempotent
//!   methods); one that carries the header, the same key, on every attempt is reported as
//!   handled (low); a new key on each attempt is no protection (high). An
//!   idempotent method (GET, HEAD, PUT, DELETE, OPTIONS, TRACE, WebDAV's, … as registered) is
//!   reported only when an earlier attempt never got a response — a retry, not polling or
//!   concurrent identical requests (low); so is a method outside the registry (UPnP's
//!   SUBSCRIBE and NOTIFY: GENA numbers its events and renews subscriptions by id), whose own
//!   protocol decides whether a repeat is safe (medium). Attempts the server refused without acting on them (401, 407, 408, 425,
//!   429) are left out: sent again after an authentication challenge is no duplicate
//!   (`http.resent_after_refusal`).
//!   A request whose body the capture cut (snap length) is not compared: requests that differ
//!   only past what was captured would look the same (`http.requests_not_compared`).
//! * `http.request.unanswered` — requests whose connection ended (closed, reset, idle) or whose
//!   capture ended without a response, per server address:port (medium). A response whose
//!   head was seen answers its request. Unknown instead (`http.unknown_outcome`): requests on
//!   a connection of which the capture holds nothing the server sent or missed the end of
//!   its data, and those sent less than 5 s (`HTTP_ANSWER_DUE`) before the capture ended on a
//!   connection the server had not closed and neither side had reset.
//! * `http.request.sent_after_close` — unanswered requests whose first byte came after the
//!   server's FIN: sent on a keep-alive connection the server had just closed as idle, the
//!   benign race a client recovers from on a new connection (RFC 9112 §9.3.1), per server
//!   (low); not in `http.request.unanswered`.
//! * `dns.query.unanswered` — DNS queries with no response `dns_timeout_secs` after their last
//!   transmission (or at the end of the capture, unless first sent less than
//!   1 s (`ANSWER_DUE`) before it: `dns.open_at_end`), per server (medium). Unknown instead
//!   (`dns.unknown_outcome`): a server's unanswered queries when, by the time they are
//!   reported, the capture holds no packet to any of their clients and shows each receiving
//!   what it does not hold (on a TCP connection of which it holds nothing from the other
//!   side, the client acknowledged a SYN/ACK or data): it misses that direction.
//! * `dns.query.retransmitted` — DNS queries sent more than once (same client, server, id and
//!   name; resolvers may change the source port) that were answered in the end, per server
//!   (low). A query asked again after its answer was seen, or later than `dns_timeout_secs`
//!   after its last transmission, is a new query, answered or not on its own.
//!
//! Evidence names what was repeated (method, host, path without its query string, body length
//! and hash), never header values or bodies. Deliberately not flagged: a client repeating a
//! request after getting its response (polling) unless the method is unsafe; DNS multicast
//! (mDNS, LLMNR).

use super::{
    AFlow, Analyzer, Counter, DnsView, Facts as AllFacts, FlowHalf, FlowInfo, Note, PacketView,
    Seen,
};
use crate::app::{AppState, HttpEvent, RequestInfo};
use crate::config::RetriesSection;
use crate::decode::Transport;
use crate::finding::{Fallacy, Finding, FlowRef, Severity};
use crate::flow::EndReason;
use crate::flow::tcp::TcpEvents;
use crate::proto::dns;
use crate::time::{NANOS_PER_SEC, Nanos, Timestamp};
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::collections::hash_map::Entry;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

const MAX_ATTEMPTS: usize = 32;
/// Distinct (client, request) pairs followed at once for duplicates; requests beyond are
/// counted in `limits.http_requests_untracked` and not compared.
const MAX_GROUPS: usize = 65_536;
/// DNS queries followed at once for an answer; queries beyond are counted in
/// `limits.dns_queries_untracked`.
const MAX_DNS: usize = 100_000;
/// Query names shared between pending queries (see [`Retries::intern`]).
const MAX_QUERY_NAMES: usize = 4_096;
const MAX_SAMPLES: usize = 5;
/// Hosts remembered as receiving traffic the capture does not hold, and as receiving
/// captured traffic (see `Retries::blind`); beyond the first, unanswered queries are reported
/// as usual; beyond the second, receivers are remembered in a filter of
/// [`RECEIVING_FILTER_BITS`] bits (no receiver is missed, but a host may be taken for one:
/// its unanswered queries are then reported as usual).
const MAX_BLIND: usize = 4_096;
const MAX_RECEIVING: usize = 65_536;
const RECEIVING_FILTER_BITS: usize = 1 << 21;

/// The bit of `ip` in the receivers' filter.
fn receiving_bit(ip: &IpAddr) -> usize {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(ip) as usize & (RECEIVING_FILTER_BITS - 1)
}

fn secs(n: Nanos) -> f64 {
    n as f64 / NANOS_PER_SEC as f64
}

fn to_nanos(s: f64) -> Nanos {
    (s * NANOS_PER_SEC as f64) as Nanos
}

#[derive(Debug)]
struct Attempt {
    uid: u64,
    start: Timestamp,
    client_port: u16,
    server: (IpAddr, u16),
    idempotency_key: bool,
    /// The key's value, hashed (see [`RequestInfo::idempotency_key_hash`]).
    key_hash: u64,
    response_at: Option<Timestamp>,
    status: Option<u16>,
    /// The client closed or a side reset the connection while this request was unanswered.
    abandoned: bool,
}

#[derive(Debug)]
struct DupGroup {
    req: RequestInfo,
    client: IpAddr,
    last: Timestamp,
    attempts: Vec<Attempt>,
    /// Attempts beyond the [`MAX_ATTEMPTS`] listed: counted, not described.
    more: u64,
}

#[derive(Serialize)]
struct AttemptEvidence {
    at: String,
    source_port: u16,
    community_id: String,
    idempotency_key: bool,
    response_status: Option<u16>,
    answered_before_next_attempt: Option<bool>,
    abandoned: bool,
}

#[derive(Serialize)]
struct DupEvidence {
    method: String,
    host: String,
    path: String,
    query_present: bool,
    body_bytes: u64,
    body_hash: String,
    attempts: Vec<AttemptEvidence>,
    /// Every attempt, the listed ones and those beyond [`MAX_ATTEMPTS`].
    attempts_total: u64,
    span_secs: f64,
    idempotency_key: &'static str,
    retried_before_response: bool,
}

/// How long before the end of the capture a request still unanswered then, on a connection
/// still open, must have been sent for it to count as unanswered; a younger one was cut off
/// by the end, its outcome unknown.
const HTTP_ANSWER_DUE: Nanos = 5 * NANOS_PER_SEC;

/// Aggregated failures per server (HTTP unanswered, DNS unanswered / retransmitted).
#[derive(Debug)]
struct ServerGroup {
    seen: Seen,
    /// When its newest failure became known (an unanswered request when its connection
    /// ended, which can be `closed_linger_secs` after the request): the group is quiet from
    /// there, so failures a few seconds apart are one group however late each is known.
    noted: Timestamp,
    samples: Vec<String>,
    transmissions: u64,
    closed_by: [u64; 4],
    /// Failed DNS queries: answered SERVFAIL, REFUSED.
    rcodes: [u64; 2],
    /// Unanswered DNS queries whose datagram (from its client port) an ICMP destination
    /// unreachable came back for.
    icmp_unreachable: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    HttpUnanswered,
    /// Unanswered requests sent after the server's FIN (the keep-alive race).
    HttpAfterClose,
    DnsUnanswered,
    DnsRetransmitted,
    /// Answered with a failure: SERVFAIL or REFUSED.
    DnsFailed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct ServerKey {
    kind: Kind,
    server: (IpAddr, u16),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct DnsKey {
    client: IpAddr,
    server: IpAddr,
    server_port: u16,
    id: u16,
    name: u64,
}

impl DnsKey {
    /// Query `id` (its question's key `name`) on the connection `flow`, from its client.
    fn on(flow: &FlowInfo, id: u16, name: u64) -> DnsKey {
        let (client, server) = (flow.client(), flow.server());
        DnsKey {
            client: client.0,
            server: server.0,
            server_port: server.1,
            id,
            name,
        }
    }
}

#[derive(Debug)]
struct DnsQuery {
    name: Arc<str>,
    qtype: u16,
    client_port: u16,
    first: Timestamp,
    last: Timestamp,
    transmissions: u64,
    answered: bool,
    /// The answer's response code.
    rcode: u8,
    /// Sent on a TCP connection before a gap in the capture of its server's direction: its
    /// answer may have been in the gap, so unless one is seen its outcome is unknown.
    uncertain: bool,
}

/// The retries and timeouts analyzer.
pub struct Retries {
    /// Capture time of the last tick: about when a flow's end is seen.
    clock: Timestamp,
    window: Nanos,
    dns_timeout: Nanos,
    report_after: Nanos,
    /// See [`super::due`].
    active_max: Option<Nanos>,
    groups: FxHashMap<(IpAddr, u64), DupGroup>,
    by_uid: FxHashMap<u64, (IpAddr, u64)>,
    servers: FxHashMap<ServerKey, ServerGroup>,
    dns: FxHashMap<DnsKey, DnsQuery>,
    /// The name of the latest pending query per (client, server, server port, id): a response
    /// without a question section is matched to it.
    dns_by_id: FxHashMap<(IpAddr, IpAddr, u16, u16), u64>,
    /// (client, client port, server, server port) of UDP datagrams to a DNS server that an
    /// ICMP destination unreachable came back for, and when: an unanswered query sent from
    /// there was refused, not lost. At most [`MAX_DNS`], forgotten once older than every query
    /// still waiting.
    dns_icmp: FxHashMap<(IpAddr, u16, IpAddr, u16), Timestamp>,
    query_names: rustc_hash::FxHashSet<Arc<str>>,
    /// Room for the queries [`Retries::settle_dns`] takes out, and their keys.
    settling: Vec<(DnsKey, DnsQuery)>,
    due: Vec<DnsKey>,
    requests: u64,
    responses: u64,
    duplicates: u64,
    unsafe_groups: u64,
    /// Requests sent again only after the server refused them without acting (401, 407, …).
    challenged: u64,
    http_unanswered: u64,
    /// Unanswered requests sent on a connection the server had closed (its FIN came first).
    sent_after_close: u64,
    dns_queries: u64,
    dns_responses: u64,
    dns_unanswered: u64,
    dns_retransmitted: u64,
    dns_failed: u64,
    /// Unanswered DNS queries first sent less than [`super::ANSWER_DUE`] before the end of the
    /// capture.
    dns_open_at_end: u64,
    /// Hosts the capture shows receiving what it does not hold: on a TCP connection of which
    /// it holds nothing from the other side, the host acknowledged a SYN/ACK or data. Those
    /// of them to which the capture holds no packet at all miss everything that reaches them
    /// (a tap on one fibre, asymmetric routing): their DNS queries without a response have an
    /// unknown outcome (`dns.unknown_outcome`).
    blind: rustc_hash::FxHashSet<IpAddr>,
    /// Packets of hosts left out of `blind` once it held [`MAX_BLIND`]: their unanswered DNS queries
    /// are reported as unanswered, not as of unknown outcome.
    blind_untracked: u64,
    /// Destinations of captured packets (noted on a flow's first packet each way), and
    /// whether there were more than [`MAX_RECEIVING`].
    receiving: rustc_hash::FxHashSet<IpAddr>,
    /// Receivers beyond [`MAX_RECEIVING`]: one bit each (allocated when first needed).
    receiving_more: Vec<u64>,
    /// Receivers noted in `receiving_more`, once each (two sharing a bit count once).
    receiving_approximate: u64,
    dns_unknown_outcome: u64,
    parse_errors: u64,
    head_too_large: u64,
    pending_full: u64,
    gaps: u64,
    unknown_outcome: u64,
    requests_untracked: u64,
    /// Requests whose body the capture cut (snap length): not compared for duplicates.
    requests_not_compared: u64,
    dns_untracked: u64,
    servers_reported_early: u64,
}

fn request_key(r: &RequestInfo) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    r.method.hash(&mut h);
    r.host.hash(&mut h);
    r.path.hash(&mut h);
    r.query_present.hash(&mut h);
    r.target_hash.hash(&mut h);
    r.body_len.hash(&mut h);
    r.body_hash.hash(&mut h);
    h.finish()
}

fn name_key(name: &str, qtype: u16) -> u64 {
    dns::question_key(name, qtype)
}

/// What repeating a request of this method may do, after the IANA HTTP method registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Repeat {
    /// Registered as idempotent: repeating it has the effect of sending it once.
    Idempotent,
    /// Registered as not idempotent (POST, PATCH, LOCK, CONNECT): a repeat may act twice.
    Unsafe,
    /// Not in the registry (UPnP's SUBSCRIBE and NOTIFY, a home-made verb): its own protocol
    /// says (GENA numbers its events, renews subscriptions by id).
    Unregistered,
}

fn repeat(method: &str) -> Repeat {
    match method {
        "POST" | "PATCH" | "LOCK" | "CONNECT" => Repeat::Unsafe,
        "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" | "TRACE" | "PROPFIND" | "PROPPATCH"
        | "MKCOL" | "COPY" | "MOVE" | "UNLOCK" | "SEARCH" | "REPORT" | "ACL" | "BIND"
        | "UNBIND" | "REBIND" | "LINK" | "UNLINK" | "MKCALENDAR" | "MKWORKSPACE" | "MKACTIVITY"
        | "MKREDIRECTREF" | "UPDATEREDIRECTREF" | "ORDERPATCH" | "LABEL" | "MERGE" | "UPDATE"
        | "CHECKIN" | "CHECKOUT" | "UNCHECKOUT" | "VERSION-CONTROL" | "BASELINE-CONTROL"
        | "PRI" => Repeat::Idempotent,
        _ => Repeat::Unregistered,
    }
}

/// A response status saying the request was not acted on: an authentication challenge (401,
/// 407: the client is expected to send it again with credentials, as NTLM and Negotiate always
/// do), or a refusal before processing (408, 425, 429).
fn not_executed(status: Option<u16>) -> bool {
    matches!(status, Some(401 | 407 | 408 | 425 | 429))
}

impl Retries {
    /// A new analyzer.
    pub fn new(cfg: &RetriesSection, active_max: Option<Nanos>) -> Self {
        Retries {
            clock: Timestamp::default(),
            active_max,
            window: to_nanos(cfg.duplicate_window_secs),
            dns_timeout: to_nanos(cfg.dns_timeout_secs),
            report_after: to_nanos(cfg.report_after_idle_secs),
            groups: FxHashMap::default(),
            by_uid: FxHashMap::default(),
            servers: FxHashMap::default(),
            dns: FxHashMap::default(),
            dns_by_id: FxHashMap::default(),
            dns_icmp: FxHashMap::default(),
            query_names: Default::default(),
            settling: Vec::new(),
            due: Vec::new(),
            requests: 0,
            responses: 0,
            duplicates: 0,
            unsafe_groups: 0,
            challenged: 0,
            http_unanswered: 0,
            sent_after_close: 0,
            dns_queries: 0,
            dns_responses: 0,
            dns_unanswered: 0,
            dns_open_at_end: 0,
            blind: rustc_hash::FxHashSet::default(),
            blind_untracked: 0,
            receiving: rustc_hash::FxHashSet::default(),
            receiving_more: Vec::new(),
            receiving_approximate: 0,
            dns_unknown_outcome: 0,
            dns_retransmitted: 0,
            dns_failed: 0,
            parse_errors: 0,
            head_too_large: 0,
            pending_full: 0,
            gaps: 0,
            unknown_outcome: 0,
            requests_untracked: 0,
            requests_not_compared: 0,
            dns_untracked: 0,
            servers_reported_early: 0,
        }
    }

    fn server_group(
        &mut self,
        kind: Kind,
        server: (IpAddr, u16),
        client: (IpAddr, u16),
        ts: Timestamp,
    ) -> &mut ServerGroup {
        let g = self
            .servers
            .entry(ServerKey { kind, server })
            .or_insert_with(|| ServerGroup {
                seen: Seen::new(client, ts),
                noted: ts,
                samples: Vec::new(),
                transmissions: 0,
                closed_by: [0; 4],
                rcodes: [0; 2],
                icmp_unreachable: 0,
            });
        g.seen.note(client, ts);
        g.noted = g.noted.max(ts).max(self.clock);
        g
    }

    fn close_group(&mut self, key: (IpAddr, u64), out: &mut Vec<Finding>) {
        let Some(g) = self.groups.remove(&key) else {
            return;
        };
        for a in &g.attempts {
            self.by_uid.remove(&a.uid);
        }
        if g.attempts.len() < 2 {
            return;
        }
        // Attempts the server refused without acting on them (an authentication challenge,
        // say) leave the others: sent again after a 401 is what a client must do.
        let executable = g
            .attempts
            .iter()
            .filter(|a| !not_executed(a.status))
            .count();
        if executable as u64 + g.more < 2 {
            self.challenged += 1;
            return;
        }
        let n = g.attempts.len();
        let retried_before_response = g
            .attempts
            .windows(2)
            .any(|w| w[0].response_at.is_none_or(|r| r > w[1].start));
        let keys = g.attempts.iter().filter(|a| a.idempotency_key).count();
        // A key the server can match a retry by is the same on every attempt: a new one each
        // time makes each attempt a new operation to it.
        let same_key = g
            .attempts
            .windows(2)
            .all(|w| w[0].key_hash == w[1].key_hash);
        let method = g.req.method.as_str();
        // An earlier attempt that never got a response was given up on: that is a retry.
        // Identical requests in flight at once on several connections (a load balancer
        // fan-out, pipelining, a benchmark) are not.
        let abandoned = g.attempts[..n - 1]
            .iter()
            .any(|a| a.abandoned && a.response_at.is_none());
        let kind = repeat(method);
        let (severity, verdict) = if kind != Repeat::Unsafe && !abandoned {
            return; // polling or concurrency, not retrying
        } else if kind == Repeat::Idempotent {
            (Severity::Low, "an idempotent method: safe to retry")
        } else if kind == Repeat::Unregistered {
            (
                Severity::Medium,
                "a method outside the HTTP method registry: safe to retry only if its own protocol makes it so",
            )
        } else if keys == n && same_key {
            (
                Severity::Low,
                "every attempt carried an Idempotency-Key: handled if the server honours it",
            )
        } else if keys == n {
            self.unsafe_groups += 1;
            (
                Severity::High,
                "with a different Idempotency-Key on each attempt: the server cannot tell a retry and may have executed it more than once",
            )
        } else {
            self.unsafe_groups += 1;
            (
                Severity::High,
                "without an Idempotency-Key: the server may have executed it more than once",
            )
        };
        let total = n as u64 + g.more;
        self.duplicates += total - 1;
        let first = &g.attempts[0];
        let span = g.last.since(first.start);
        let community =
            |a: &Attempt| FlowRef::new((g.client, a.client_port), a.server, 6).community_id;
        let attempts: Vec<AttemptEvidence> = g
            .attempts
            .iter()
            .enumerate()
            .map(|(i, a)| AttemptEvidence {
                at: a.start.rfc3339_micros(),
                source_port: a.client_port,
                community_id: community(a),
                idempotency_key: a.idempotency_key,
                response_status: a.status,
                answered_before_next_attempt: g
                    .attempts
                    .get(i + 1)
                    .map(|next| a.response_at.is_some_and(|r| r <= next.start)),
                abandoned: a.abandoned,
            })
            .collect();
        let target = if g.req.host.is_empty() {
            g.req.path.to_string()
        } else {
            format!("{}{}", g.req.host, g.req.path)
        };
        let message = format!(
            "{method} {target} was sent {total} times by {} within {:.2} s{}; {verdict}",
            g.client,
            secs(span),
            if retried_before_response {
                ", retried before a response arrived"
            } else {
                ""
            }
        );
        let ev = DupEvidence {
            method: g.req.method.to_string(),
            host: g.req.host.to_string(),
            path: g.req.path.to_string(),
            query_present: g.req.query_present,
            body_bytes: g.req.body_len,
            body_hash: format!("{:016x}", g.req.body_hash),
            attempts,
            attempts_total: total,
            span_secs: secs(span),
            idempotency_key: if keys == n && !same_key {
                "all, differing"
            } else if keys == n {
                "all"
            } else if keys == 0 {
                "none"
            } else {
                "some"
            },
            retried_before_response,
        };
        out.push(Finding {
            ts: first.start,
            rule: "http.request.duplicate",
            severity,
            fallacy: Fallacy::NetworkIsReliable,
            message,
            flow: Some(FlowRef {
                protocol: Some("http"),
                ..FlowRef::new((g.client, first.client_port), first.server, 6)
            }),
            evidence: Finding::evidence_from(&ev),
        });
    }

    /// `name` shared with the pending queries that asked for it before: a name asked again
    /// takes no allocation. At most [`MAX_QUERY_NAMES`] are kept; then they start anew (the
    /// queries keep theirs).
    fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(n) = self.query_names.get(name) {
            return Arc::clone(n);
        }
        if self.query_names.len() >= MAX_QUERY_NAMES {
            self.query_names.clear();
        }
        let n: Arc<str> = Arc::from(name);
        self.query_names.insert(Arc::clone(&n));
        n
    }

    fn dns_message(&mut self, d: &DnsView<'_>) {
        let (m, ts) = (d.msg, d.ts);
        let ((client, client_port), (server, server_port)) = if m.response {
            (d.dst, d.src)
        } else {
            (d.src, d.dst)
        };
        let by_id = (client, server, server_port, m.id);
        let name = if m.question {
            name_key(&m.qname, m.qtype)
        } else {
            match self.dns_by_id.get(&by_id) {
                Some(&n) => n,
                None => {
                    self.dns_responses += 1;
                    return;
                }
            }
        };
        let key = DnsKey {
            client,
            server,
            server_port,
            id: m.id,
            name,
        };
        if m.response {
            self.dns_responses += 1;
            // An answer later than the timeout after the last transmission came after the
            // client gave up: the query is unanswered, as a tick between would have settled it
            // (ticks come with packets, so that must not depend on other traffic).
            if let Entry::Occupied(e) = self.dns.entry(key) {
                if !e.get().answered && ts.since(e.get().last) > self.dns_timeout {
                    let q = e.remove();
                    self.settle_query(key, q, ts, false);
                    return;
                }
            }
            if let Some(q) = self.dns.get_mut(&key) {
                q.answered = true;
                q.rcode = m.rcode;
                q.last = q.last.max(ts);
            }
        } else {
            self.dns_queries += 1;
            // Sent again after its answer was seen: the client asks anew (its resolver lost
            // the answer after the capture point, or it reuses the id), so that is a new
            // query; the answered one is settled as it stands.
            // So is one sent again later than the timeout after its last transmission: the
            // client gave up on that one, which is unanswered (as a tick between would have
            // settled it: that must not depend on other traffic).
            if let Entry::Occupied(e) = self.dns.entry(key) {
                let q = e.get();
                if q.answered || ts.since(q.last) > self.dns_timeout {
                    let q = e.remove();
                    self.settle_query(key, q, ts, false);
                }
            }
            if self.dns.len() >= MAX_DNS && !self.dns.contains_key(&key) {
                self.dns_untracked += 1;
                return;
            }
            self.dns_by_id.insert(by_id, key.name);
            let name = self.intern(&m.qname);
            let q = self.dns.entry(key).or_insert_with(|| DnsQuery {
                name,
                qtype: m.qtype,
                client_port,
                first: ts,
                last: ts,
                transmissions: 0,
                answered: false,
                rcode: 0,
                uncertain: false,
            });
            q.transmissions += 1;
            q.last = q.last.max(ts);
        }
    }

    /// Settles the queries quiet for more than the DNS timeout at `now`, or all of them when
    /// the input has ended (`ended`); an unanswered one first sent less than
    /// [`super::ANSWER_DUE`] before the end was cut off by it: counted in `dns.open_at_end`,
    /// not reported.
    fn settle_dns(&mut self, now: Timestamp, ended: bool) {
        let timeout = self.dns_timeout;
        // Into buffers kept from the last time: no allocation per second.
        let mut due = std::mem::take(&mut self.due);
        due.extend(
            self.dns
                .iter()
                .filter(|(_, q)| ended || now.since(q.last) > timeout)
                .map(|(k, _)| *k),
        );
        let mut settled = std::mem::take(&mut self.settling);
        settled.extend(
            due.drain(..)
                .filter_map(|k| self.dns.remove(&k).map(|q| (k, q))),
        );
        self.due = due;
        settled.sort_by_key(|(k, q)| (q.first, k.id));
        for (k, q) in settled.drain(..) {
            self.settle_query(k, q, now, ended);
        }
        self.settling = settled;
        // Refusals that came before every query still waiting was first sent are about none
        // of them (after settling: a quiet capture settles its queries late).
        if !self.dns_icmp.is_empty() {
            match self.dns.values().map(|q| q.first).min() {
                Some(oldest) => self.dns_icmp.retain(|_, &mut t| t >= oldest),
                None => self.dns_icmp.clear(),
            }
        }
    }

    /// Reports query `q` to `k`'s server as unanswered or retransmitted (or neither) at `now`;
    /// see [`Retries::settle_dns`].
    fn settle_query(&mut self, k: DnsKey, q: DnsQuery, now: Timestamp, ended: bool) {
        let by_id = (k.client, k.server, k.server_port, k.id);
        if self.dns_by_id.get(&by_id) == Some(&k.name) {
            self.dns_by_id.remove(&by_id);
        }
        let kind = if ended && !q.answered && now.since(q.first) < super::ANSWER_DUE {
            self.dns_open_at_end += 1;
            return;
        } else if !q.answered && q.uncertain {
            self.dns_unknown_outcome += 1;
            return;
        } else if !q.answered {
            self.dns_unanswered += 1;
            Kind::DnsUnanswered
        } else if failure_rcode(q.rcode).is_some() {
            // What the client got in the end is a failure, however often it asked.
            self.dns_failed += 1;
            Kind::DnsFailed
        } else if q.transmissions > 1 {
            self.dns_retransmitted += 1;
            Kind::DnsRetransmitted
        } else {
            return;
        };
        let sample = match failure_rcode(q.rcode).filter(|_| kind == Kind::DnsFailed) {
            Some(rcode) => format!("{} (type {}): {rcode}", q.name, q.qtype),
            None => format!("{} (type {})", q.name, q.qtype),
        };
        let refused = kind == Kind::DnsUnanswered
            && self
                .dns_icmp
                .contains_key(&(k.client, q.client_port, k.server, k.server_port));
        let g = self.server_group(
            kind,
            (k.server, k.server_port),
            (k.client, q.client_port),
            q.first,
        );
        g.seen.last = g.seen.last.max(q.last);
        g.transmissions += q.transmissions;
        if kind == Kind::DnsFailed {
            g.rcodes[usize::from(q.rcode == REFUSED)] += 1;
        }
        g.icmp_unreachable += u64::from(refused);
        if g.samples.len() < MAX_SAMPLES && !g.samples.contains(&sample) {
            g.samples.push(sample);
        }
    }

    /// Reports every waiting server group when too many are held (see
    /// [`super::MAX_PENDING_GROUPS`]).
    fn make_room(&mut self, out: &mut Vec<Finding>) {
        if self.servers.len() >= super::MAX_PENDING_GROUPS {
            self.report_servers(None, out);
            self.servers_reported_early += 1;
        }
    }

    fn report_servers(&mut self, now: Option<Timestamp>, out: &mut Vec<Finding>) {
        let after = (self.report_after, self.active_max);
        for (k, g) in super::take_due(&mut self.servers, now, after, |g| (g.seen.first, g.noted)) {
            if k.kind == Kind::DnsUnanswered && self.blind_to(&g.seen) {
                self.dns_unanswered -= g.seen.count;
                self.dns_unknown_outcome += g.seen.count;
                continue;
            }
            out.push(server_finding(k, &g));
        }
    }

    /// Whether the capture holds nothing that reached the clients of `seen`, every one of
    /// which it shows receiving (see [`Retries::blind`]).
    fn blind_to(&self, seen: &Seen) -> bool {
        !seen.more_clients
            && seen
                .clients
                .iter()
                .all(|c| self.blind.contains(c) && !self.received(c))
    }

    /// Whether captured traffic reached `ip` (or, beyond [`MAX_RECEIVING`] receivers, may have).
    fn received(&self, ip: &IpAddr) -> bool {
        if self.receiving.contains(ip) {
            return true;
        }
        let b = receiving_bit(ip);
        self.receiving_more
            .get(b / 64)
            .is_some_and(|w| w & (1 << (b % 64)) != 0)
    }
}

#[derive(Serialize)]
struct ServerEvidence<'a> {
    count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    transmissions: Option<u64>,
    clients: &'a [IpAddr],
    clients_truncated: bool,
    samples: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    ended_by: Option<EndedBy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rcodes: Option<Rcodes>,
    /// Unanswered DNS queries: how many came back as ICMP destination unreachable.
    #[serde(skip_serializing_if = "Option::is_none")]
    icmp_unreachable: Option<u64>,
    first_seen: String,
    last_seen: String,
}

/// How many of a server's failed DNS queries were answered each way.
#[derive(Serialize)]
struct Rcodes {
    #[serde(rename = "SERVFAIL")]
    servfail: u64,
    #[serde(rename = "REFUSED")]
    refused: u64,
}

/// DNS response code REFUSED.
const REFUSED: u8 = 5;

/// The name of a response code that leaves the client without an answer: SERVFAIL (the server
/// could not get one: its upstream or the zone's servers failed, or DNSSEC validation did) or
/// REFUSED (the server will not answer this client or name). NXDOMAIN and NODATA are answers.
fn failure_rcode(rcode: u8) -> Option<&'static str> {
    match rcode {
        2 => Some("SERVFAIL"),
        REFUSED => Some("REFUSED"),
        _ => None,
    }
}

#[derive(Serialize)]
struct EndedBy {
    connection_closed: u64,
    connection_reset: u64,
    idle_or_evicted: u64,
    capture_ended: u64,
}

fn server_finding(k: ServerKey, g: &ServerGroup) -> Finding {
    let (ip, port) = k.server;
    let span = secs(g.seen.last.since(g.seen.first));
    let clients = super::clients_named(&g.seen.clients, g.seen.more_clients);
    let (rule, severity, message, proto, transport) = match k.kind {
        Kind::HttpUnanswered => (
            "http.request.unanswered",
            Severity::Medium,
            format!(
                "{} HTTP request(s) to {ip}:{port} from {clients} never got a response over {span:.1} s (e.g. {})",
                g.seen.count,
                g.samples.first().map_or("-", String::as_str)
            ),
            "http",
            6,
        ),
        Kind::HttpAfterClose => (
            "http.request.sent_after_close",
            Severity::Low,
            format!(
                "{} HTTP request(s) to {ip}:{port} from {clients} were sent on a connection the server had already closed (its FIN came first) and got no response over {span:.1} s (e.g. {}): the keep-alive race, which a client recovers from by sending the request again on a new connection (RFC 9112 §9.3.1; a non-idempotent one only if it may); a client idle timeout shorter than the server's avoids it",
                g.seen.count,
                g.samples.first().map_or("-", String::as_str)
            ),
            "http",
            6,
        ),
        Kind::DnsUnanswered => (
            "dns.query.unanswered",
            Severity::Medium,
            format!(
                "{} DNS query(ies) to {ip}:{port} from {clients} got no response ({} transmissions, e.g. {}){}",
                g.seen.count,
                g.transmissions,
                g.samples.first().map_or("-", String::as_str),
                if g.icmp_unreachable > 0 {
                    format!(
                        "; {} of them came back as ICMP destination unreachable: nothing answers DNS there",
                        g.icmp_unreachable
                    )
                } else {
                    String::new()
                }
            ),
            "dns",
            17,
        ),
        Kind::DnsRetransmitted => (
            "dns.query.retransmitted",
            Severity::Low,
            format!(
                "{} DNS query(ies) to {ip}:{port} from {clients} were answered only after being sent again ({} transmissions, e.g. {})",
                g.seen.count,
                g.transmissions,
                g.samples.first().map_or("-", String::as_str)
            ),
            "dns",
            17,
        ),
        Kind::DnsFailed => (
            "dns.query.failed",
            Severity::Medium,
            format!(
                "{} DNS query(ies) to {ip}:{port} from {clients} were answered with a failure ({} SERVFAIL, {} REFUSED; e.g. {}): the server could not or would not resolve them, so the clients got no address",
                g.seen.count,
                g.rcodes[0],
                g.rcodes[1],
                g.samples.first().map_or("-", String::as_str)
            ),
            "dns",
            17,
        ),
    };
    let http = matches!(k.kind, Kind::HttpUnanswered | Kind::HttpAfterClose);
    let ev = ServerEvidence {
        count: g.seen.count,
        transmissions: (!http).then_some(g.transmissions),
        clients: &g.seen.clients,
        clients_truncated: g.seen.more_clients,
        samples: &g.samples,
        ended_by: http.then_some(EndedBy {
            connection_closed: g.closed_by[0],
            connection_reset: g.closed_by[1],
            idle_or_evicted: g.closed_by[2],
            capture_ended: g.closed_by[3],
        }),
        icmp_unreachable: (k.kind == Kind::DnsUnanswered).then_some(g.icmp_unreachable),
        rcodes: (k.kind == Kind::DnsFailed).then_some(Rcodes {
            servfail: g.rcodes[0],
            refused: g.rcodes[1],
        }),
        first_seen: g.seen.first.rfc3339_micros(),
        last_seen: g.seen.last.rfc3339_micros(),
    };
    Finding {
        ts: g.seen.first,
        rule,
        severity,
        fallacy: Fallacy::NetworkIsReliable,
        message,
        flow: Some(FlowRef {
            protocol: Some(proto),
            ..FlowRef::new(g.seen.client, k.server, transport)
        }),
        evidence: Finding::evidence_from(&ev),
    }
}

/// What the retries analyzer's per-flow half found about one packet.
#[derive(Clone, Copy, Debug, Default)]
pub struct Facts {
    /// The flow's first packet this way: its destination receives.
    first_in_dir: bool,
    /// Nothing from the other side is in the capture, yet this host acknowledged it.
    blind: bool,
}

/// The retries analyzer's per-flow half.
pub(crate) struct Half;

impl FlowHalf for Half {
    fn on_packet(
        &self,
        pkt: &PacketView<'_>,
        flow: &mut AFlow,
        facts: &mut AllFacts,
        notes: &mut Vec<Note>,
        _out: &mut Vec<Finding>,
    ) {
        let f = &mut facts.retries;
        f.first_in_dir = flow.packets[pkt.dir.idx()] == 1;
        let Some(u) = pkt.tcp else { return };
        if flow.packets[pkt.dir.rev().idx()] == 0 {
            let h = &flow.tcp.half[pkt.dir.idx()];
            // (Only the client sets `client_acked`: with nothing captured from the other
            // side, this host is that client.)
            let acked_synack = flow.tcp.syn_ts.is_some() && flow.tcp.client_acked;
            f.blind = h.first_ack != h.ack || acked_synack;
        }
        // The client closing, or either side resetting, gives up on pending requests (noted
        // before this packet's HTTP events: a request it completed is not among them).
        let gives_up = u.events.has(TcpEvents::RST)
            || (u.events.has(TcpEvents::FIN) && pkt.dir == flow.client_dir());
        if !gives_up {
            return;
        }
        let AppState::Http(h) = &flow.ext.app else {
            return;
        };
        if !h.responses_visible() {
            return;
        }
        notes.extend(h.pending().map(|r| Note::Abandoned(r.uid)));
    }
}

impl Analyzer for Retries {
    fn name(&self) -> &'static str {
        "retries"
    }

    fn on_packet(
        &mut self,
        pkt: &PacketView<'_>,
        _info: &FlowInfo,
        facts: &AllFacts,
        _out: &mut Vec<Finding>,
    ) {
        let f = facts.retries;
        if f.first_in_dir {
            let dst = pkt.ip.dst;
            if self.receiving.len() < MAX_RECEIVING {
                self.receiving.insert(dst);
            } else if !self.receiving.contains(&dst) {
                if self.receiving_more.is_empty() {
                    self.receiving_more = vec![0; RECEIVING_FILTER_BITS / 64];
                }
                let b = receiving_bit(&dst);
                let (word, bit) = (&mut self.receiving_more[b / 64], 1u64 << (b % 64));
                // A host counts once (two sharing a bit count as one).
                if *word & bit == 0 {
                    *word |= bit;
                    self.receiving_approximate += 1;
                }
            }
        }
        // (A DNS message comes through `on_dns`.)
        if let Transport::Udp(_) = pkt.ip.transport {
            return;
        }
        if f.blind {
            // One hash either way: below the cap an insert (a no-op for a known host), at it
            // a lookup.
            if self.blind.len() < MAX_BLIND {
                self.blind.insert(pkt.ip.src);
            } else if !self.blind.contains(&pkt.ip.src) {
                self.blind_untracked += 1;
            }
        }
    }

    fn on_dns(&mut self, d: &DnsView<'_>, _flow: &FlowInfo, _out: &mut Vec<Finding>) {
        self.dns_message(d);
    }

    fn on_dns_lost(&mut self, id: u16, name: u64, flow: &FlowInfo) {
        let key = DnsKey::on(flow, id, name);
        // Its answer may have been in the gap: unless one comes after it, neither answered
        // nor unanswered.
        if let Some(q) = self.dns.get_mut(&key) {
            q.uncertain = true;
        }
    }

    fn on_dns_lost_untracked(&mut self, flow: &FlowInfo) {
        // Rare (a gap on a connection with more queries pipelined than followed): a look at
        // every query waiting, at most MAX_DNS.
        let (client, server) = (flow.client(), flow.server());
        for (k, q) in self.dns.iter_mut() {
            if k.client == client.0
                && k.server == server.0
                && k.server_port == server.1
                && q.client_port == client.1
                && !q.answered
            {
                q.uncertain = true;
            }
        }
    }

    fn on_icmp_error(
        &mut self,
        ts: Timestamp,
        _from: IpAddr,
        msg: &crate::decode::IcmpMessage<'_>,
        _dir: crate::flow::Dir,
        _flow: &FlowInfo,
        _facts: &AllFacts,
        _out: &mut Vec<Finding>,
    ) {
        // A destination unreachable about a UDP datagram to a DNS server (port 53): the
        // queries sent from its client port were refused. (Fragmentation needed is no refusal.)
        let unreachable = if msg.v6 {
            msg.icmp_type == 1
        } else {
            msg.icmp_type == 3 && msg.code != 4
        };
        let Some(q) = msg
            .quoted
            .filter(|q| unreachable && q.proto == 17 && q.dport == 53)
        else {
            return;
        };
        let key = (q.src, q.sport, q.dst, q.dport);
        if self.dns_icmp.len() < MAX_DNS || self.dns_icmp.contains_key(&key) {
            self.dns_icmp.insert(key, ts);
        }
    }

    fn on_note(&mut self, note: &Note, _flow: &FlowInfo, _out: &mut Vec<Finding>) {
        // The client closed, or either side reset, while it waited (see `Half`).
        let &Note::Abandoned(uid) = note else { return };
        if let Some(key) = self.by_uid.get(&uid) {
            if let Some(g) = self.groups.get_mut(key) {
                if let Some(a) = g.attempts.iter_mut().find(|a| a.uid == uid) {
                    a.abandoned = true;
                }
            }
        }
    }

    fn on_http(&mut self, ev: &HttpEvent, flow: &FlowInfo, out: &mut Vec<Finding>) {
        match ev {
            HttpEvent::Request(r) => {
                self.requests += 1;
                // A body the capture cut is hashed only as far as captured: another request
                // of the same length and prefix cannot be told from it.
                if r.body_partial {
                    self.requests_not_compared += 1;
                    return;
                }
                let client = flow.client();
                let key = (client.0, request_key(r));
                if let Some(g) = self.groups.get(&key) {
                    if r.start_ts.since(g.last) > self.window {
                        self.close_group(key, out);
                    }
                }
                if self.groups.len() >= MAX_GROUPS && !self.groups.contains_key(&key) {
                    self.requests_untracked += 1;
                    return;
                }
                let g = self.groups.entry(key).or_insert_with(|| DupGroup {
                    req: r.clone(),
                    client: client.0,
                    last: r.start_ts,
                    attempts: Vec::new(),
                    more: 0,
                });
                g.last = g.last.max(r.start_ts);
                if g.attempts.len() < MAX_ATTEMPTS {
                    g.attempts.push(Attempt {
                        uid: r.uid,
                        start: r.start_ts,
                        client_port: client.1,
                        server: flow.server(),
                        idempotency_key: r.idempotency_key,
                        key_hash: r.idempotency_key_hash,
                        response_at: None,
                        status: None,
                        abandoned: false,
                    });
                    self.by_uid.insert(r.uid, key);
                } else {
                    g.more += 1;
                }
            }
            HttpEvent::Response(resp) => {
                self.responses += 1;
                if let Some(key) = self.by_uid.get(&resp.request.uid) {
                    if let Some(g) = self.groups.get_mut(key) {
                        if let Some(a) = g.attempts.iter_mut().find(|a| a.uid == resp.request.uid) {
                            a.response_at = Some(resp.first_ts);
                            a.status = Some(resp.status);
                        }
                    }
                }
            }
        }
    }

    fn on_flow_end(&mut self, flow: &mut AFlow, reason: EndReason, out: &mut Vec<Finding>) {
        self.make_room(out);
        if let AppState::Dns(d) = &flow.ext.app {
            // A DNS-over-TCP connection reset, closed by its server, or closed by its client
            // before the capture ended, with queries waiting: they are not answered on it
            // (whenever the capture ends; one still open at the end waits for the timeout).
            let closed = flow.tcp.reset_by.is_some()
                || flow.tcp.half[flow.client_dir().rev().idx()].fin
                || (flow.tcp.half.iter().any(|x| x.fin) && reason.input_end().is_none());
            if closed {
                let info = FlowInfo::of(flow);
                for &(id, name) in d.pending() {
                    let key = DnsKey::on(&info, id, name);
                    if let Entry::Occupied(e) = self.dns.entry(key) {
                        if !e.get().answered {
                            let q = e.remove();
                            self.settle_query(key, q, flow.last_ts, false);
                        }
                    }
                }
            }
            return;
        }
        let AppState::Http(h) = &flow.ext.app else {
            return;
        };
        self.parse_errors += h.stats.errors;
        self.gaps += h.stats.gaps;
        self.head_too_large += h.stats.head_too_large;
        self.pending_full += h.stats.pending_overflow;
        // Requests given up on before the end (a gap in the server's stream, or the run's
        // buffer budget spent).
        self.unknown_outcome += h.stats.unknown_outcome;
        // The capture missed the server's direction (asymmetric routing, a tap on one fibre),
        // or the end of its data (its sequence numbers went past the bytes followed), or its
        // side could no longer be parsed: the answers may have been there, and nothing can be
        // said.
        let server = &flow.tcp.half[flow.client_dir().rev().idx()];
        let missed_end = match (h.server_followed_to(), server.next_seq) {
            (Some(followed), Some(next)) => next.diff(followed) > i32::from(server.fin),
            _ => server.counters.lost_segments > 0,
        };
        // Nothing the server sent is in the capture, yet it did send: the handshake's SYN/ACK
        // (the client went on to send requests), or data the client's acknowledgments moved
        // past. A server picked up mid-stream is silent only when the client said so: it sent
        // its data again (nothing acknowledged it) and its own acknowledgment never moved.
        let client = &flow.tcp.half[flow.client_dir().idx()];
        let server_missed = flow.packets[flow.client_dir().rev().idx()] == 0
            && (flow.tcp.syn_ts.is_some()
                || client.first_ack != client.ack
                || client.counters.all_retransmissions() == 0);
        if server_missed || missed_end || !h.responses_visible() {
            self.unknown_outcome += h.unanswered().count() as u64;
            return;
        }
        // How the connection ended: its reset or FIN, whether the flow then lingered out, was
        // evicted or was still in the table when the capture ended.
        let ended = match reason {
            _ if flow.tcp.reset_by.is_some() => 1,
            _ if flow.tcp.half.iter().any(|x| x.fin) => 0,
            EndReason::EndOfInput(_) => 3,
            _ => 2,
        };
        // A request sent less than HTTP_ANSWER_DUE before the end of the capture, on a
        // connection still open then, was cut off by it: its outcome is unknown. (One whose
        // connection the server closed, or either side reset, was given up on; a client's
        // FIN alone only ends its sending.)
        let open = flow.tcp.reset_by.is_none() && !server.fin;
        let due = |r: &&RequestInfo| {
            !open
                || reason
                    .input_end()
                    .is_none_or(|end| end.since(r.end_ts) >= HTTP_ANSWER_DUE)
        };
        let (unanswered, cut): (Vec<&RequestInfo>, Vec<&RequestInfo>) =
            h.unanswered().partition(due);
        self.unknown_outcome += cut.len() as u64;
        // Requests sent after the server's FIN met a connection already closed: the
        // keep-alive race, which a client recovers from on a new connection, apart from the
        // requests the service left unanswered.
        let (after_close, unanswered): (Vec<&RequestInfo>, Vec<&RequestInfo>) =
            unanswered.into_iter().partition(|r| r.after_server_close);
        for (kind, requests) in [
            (Kind::HttpUnanswered, unanswered),
            (Kind::HttpAfterClose, after_close),
        ] {
            let first = requests.iter().map(|r| r.start_ts).min();
            let last = requests.iter().map(|r| r.end_ts).max();
            let (Some(first), Some(last)) = (first, last) else {
                continue;
            };
            let n = requests.len() as u64;
            if kind == Kind::HttpUnanswered {
                self.http_unanswered += n;
            } else {
                self.sent_after_close += n;
            }
            let g = self.server_group(kind, flow.server(), flow.client(), first);
            g.seen.count += n - 1;
            g.seen.last = g.seen.last.max(last);
            g.closed_by[ended] += n;
            for r in requests {
                let p = format!("{} {}", r.method, r.path);
                if g.samples.len() < MAX_SAMPLES && !g.samples.contains(&p) {
                    g.samples.push(p);
                }
            }
        }
    }

    fn on_tick(&mut self, now: Timestamp, out: &mut Vec<Finding>) {
        self.clock = now;
        let window = self.window;
        let mut due: Vec<(Timestamp, (IpAddr, u64))> = self
            .groups
            .iter()
            .filter(|(_, g)| now.since(g.last) > window)
            .map(|(k, g)| (g.attempts.first().map_or(g.last, |a| a.start), *k))
            .collect();
        due.sort();
        for (_, k) in due {
            self.close_group(k, out);
        }
        self.settle_dns(now, false);
        self.report_servers(Some(now), out);
        self.make_room(out);
    }

    fn finish(&mut self, now: Timestamp, out: &mut Vec<Finding>) {
        let mut keys: Vec<(Timestamp, (IpAddr, u64))> = self
            .groups
            .iter()
            .map(|(k, g)| (g.attempts.first().map_or(g.last, |a| a.start), *k))
            .collect();
        keys.sort();
        for (_, k) in keys {
            self.close_group(k, out);
        }
        self.settle_dns(now, true);
        self.report_servers(None, out);
    }

    fn stats(&self, out: &mut Vec<Counter>) {
        out.extend([
            ("http.requests", self.requests),
            ("http.responses", self.responses),
            ("http.duplicate_requests", self.duplicates),
            ("http.unsafe_retries", self.unsafe_groups),
            ("http.resent_after_refusal", self.challenged),
            ("http.unanswered", self.http_unanswered),
            ("http.sent_after_server_close", self.sent_after_close),
            ("http.parse_errors", self.parse_errors),
            ("http.gaps", self.gaps),
            ("limits.http_head_too_large", self.head_too_large),
            ("limits.http_pending_dropped", self.pending_full),
            ("limits.http_requests_untracked", self.requests_untracked),
            ("http.requests_not_compared", self.requests_not_compared),
            ("limits.dns_queries_untracked", self.dns_untracked),
            ("limits.retries_blind_hosts_untracked", self.blind_untracked),
            ("limits.receivers_approximate", self.receiving_approximate),
            (
                "limits.retries_groups_reported_early",
                self.servers_reported_early,
            ),
            ("http.unknown_outcome", self.unknown_outcome),
            ("dns.queries", self.dns_queries),
            ("dns.responses", self.dns_responses),
            ("dns.unanswered", self.dns_unanswered),
            ("dns.open_at_end", self.dns_open_at_end),
            ("dns.unknown_outcome", self.dns_unknown_outcome),
            ("dns.retransmitted", self.dns_retransmitted),
            ("dns.failed", self.dns_failed),
        ]);
    }
}
