//! There is one administrator (fallacy 6): which outside parties the system depends on, and
//! how they fail.
//!
//! A dependency is a server outside the internal networks (`[networks] internal`) that a
//! client of the capture connects to. Each is attributed to an *owner*, first match wins:
//! 1. a configured `[[owner]]` whose `cidrs` contain the server address;
//! 2. a configured `[[owner]]` whose `suffixes` match the flow's name (`api.stripe.com` matches
//!    `stripe.com`), the name being the TLS SNI, else the HTTP `Host`, else the name a DNS answer
//!    in the capture gave for the address (an address later given another name, a CDN's, keeps
//!    the one before for connections that started before that answer);
//! 3. that name's registrable domain (`eu-west-1.s3.amazonaws.com` → `amazonaws.com`,
//!    `www.example.co.uk` → `example.co.uk`; a built-in list of common multi-label public
//!    suffixes, not the whole Public Suffix List: configure owners where it matters);
//! 4. the address itself.
//!
//! Per owner: flows, bytes each way, HTTP requests, and failures — connections refused (RST to
//! SYN), unreachable (ICMP destination unreachable), timed out (SYN never answered), reset by
//! the server with data in flight (one reset idle is counted in `idle_resets`; one sent in the
//! server's name by something on the path, its TTL unlike the server's, in `path_resets`), TLS handshakes
//! ended by a fatal alert from the server, HTTP 5xx responses. Flags `dependency.failing` per owner once it has
//! had no new failure for `report_after_idle_secs` (and at the end of the input), severity by
//! the failing share of its attempts: each request, and each connection that carried none (a
//! connection's failure counts once, a request is not counted again as its connection). At the end, a `dependencies` event lists
//! every owner (the inventory: every administrator the system relies on), and
//! `--dependency-graph FILE` writes it as Graphviz DOT or Mermaid.
//!
//! Deliberately not flagged: inbound traffic from outside (external clients are not
//! dependencies), client-side resets, 4xx responses (the caller's mistake, not the owner's),
//! and the failed attempts of a client that sweeps (`tcp.sweep`: a scan's targets are not
//! dependencies) — also those it made before the sweep was recognised, which each owner holds
//! per client (up to 16 clients) until it reports (`dependencies.swept_attempts`).
//! Bounded: `MAX_OWNERS` owners; beyond that new ones are pooled under `(other)`.

use super::{AFlow, Analyzer, Counter, DnsView, FlowInfo, NoSynAck, no_synack};
use crate::app::HttpEvent;
use crate::config::{Config, NetworksSection, OwnerEntry};
use crate::finding::{Fallacy, Finding, FlowRef, Severity};
use crate::flow::EndReason;
use crate::flow::tcp::Phase;
use crate::time::{NANOS_PER_SEC, Nanos, Timestamp};
use rustc_hash::FxHashMap;
use serde::Serialize;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::net::IpAddr;

const MAX_OWNERS: usize = 10_000;
const MAX_NAMES: usize = 262_144;
const MAX_LISTED: usize = 8;
const MAX_CLIENTS_LISTED: usize = 16;
const OTHER: &str = "(other)";

/// Second-level labels under which registrations happen one level deeper (`example.co.uk`).
/// A compact, commonly hit subset of the Public Suffix List's ICANN section.
const MULTI_LABEL_SUFFIXES: &[&str] = &[
    "ac.uk", "co.uk", "gov.uk", "ltd.uk", "me.uk", "net.uk", "nhs.uk", "org.uk", "plc.uk",
    "sch.uk", "com.au", "edu.au", "gov.au", "net.au", "org.au", "co.nz", "govt.nz", "net.nz",
    "org.nz", "ac.jp", "co.jp", "go.jp", "ne.jp", "or.jp", "ac.kr", "co.kr", "go.kr", "or.kr",
    "com.br", "gov.br", "net.br", "org.br", "com.cn", "edu.cn", "gov.cn", "net.cn", "org.cn",
    "com.hk", "com.tw", "org.tw", "com.sg", "gov.sg", "com.my", "co.in", "gov.in", "net.in",
    "org.in", "co.za", "gov.za", "com.mx", "com.ar", "com.tr", "gov.tr", "co.il", "com.ua",
    "co.id", "com.vn", "com.ph", "com.pk", "com.sa", "com.eg", "co.th", "in.th", "com.pl",
    "com.es", "com.co", "com.pe", "com.ng", "co.ke",
];

/// The registrable domain of a DNS name (see the module doc), or `None` for an address.
pub fn registrable_domain(name: &str) -> Option<String> {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    if n.is_empty() || n.parse::<IpAddr>().is_ok() {
        return None;
    }
    let labels: Vec<&str> = n.split('.').collect();
    if labels.iter().any(|l| l.is_empty()) {
        return None;
    }
    let keep = if labels.len() >= 3 {
        let last_two = labels[labels.len() - 2..].join(".");
        if MULTI_LABEL_SUFFIXES.contains(&last_two.as_str()) {
            3
        } else {
            2
        }
    } else {
        labels.len()
    };
    Some(labels[labels.len() - keep..].join("."))
}

/// A Host header value without its port; `None` for an address literal.
fn host_name(host: &str) -> Option<&str> {
    if host.starts_with('[') {
        return None;
    }
    let h = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    (!h.is_empty() && h.parse::<IpAddr>().is_err()).then_some(h)
}

/// HTTP seen on a connection to an external server, until the connection ends.
#[derive(Debug, Default)]
struct HttpSeen {
    /// First Host of the connection (shared with its HTTP tracker; at most 255 bytes).
    host: Option<std::sync::Arc<str>>,
    requests: u64,
    http_5xx: u64,
}

/// What [`Administrators::http`] takes for one flow at most (its Host name is the HTTP
/// tracker's own).
pub(crate) const HTTP_BYTES: usize = super::map_entry_bytes::<u64, HttpSeen>();

#[derive(Clone, Copy, Debug, Default, Serialize)]
struct Failures {
    refused: u64,
    unreachable: u64,
    timed_out: u64,
    reset: u64,
    tls_alert: u64,
    http_5xx: u64,
}

impl Failures {
    fn counts(&self) -> [u64; 6] {
        [
            self.refused,
            self.unreachable,
            self.timed_out,
            self.reset,
            self.tls_alert,
            self.http_5xx,
        ]
    }

    fn counts_mut(&mut self) -> [&mut u64; 6] {
        [
            &mut self.refused,
            &mut self.unreachable,
            &mut self.timed_out,
            &mut self.reset,
            &mut self.tls_alert,
            &mut self.http_5xx,
        ]
    }

    fn total(&self) -> u64 {
        self.counts().iter().sum()
    }

    fn add(&mut self, o: &Failures) {
        for (c, n) in self.counts_mut().into_iter().zip(o.counts()) {
            *c += n;
        }
    }

    fn sub(&mut self, o: &Failures) {
        for (c, n) in self.counts_mut().into_iter().zip(o.counts()) {
            *c -= n;
        }
    }
}

#[derive(Debug)]
struct Owner {
    source: &'static str,
    names: Vec<String>,
    addresses: Vec<IpAddr>,
    services: Vec<String>,
    clients: Vec<IpAddr>,
    flows: u64,
    bytes_sent: u64,
    bytes_received: u64,
    requests: u64,
    failed_flows: u64,
    failures: Failures,
    first: Timestamp,
    last: Timestamp,
    /// Failures not yet reported, and the window they cover.
    pending: Failures,
    pending_flows: u64,
    pending_failed_flows: u64,
    pending_requests: u64,
    /// Attempts the failing share is of: each request, and each connection that carried none
    /// (a request is not counted again as its connection).
    pending_attempts: u64,
    /// The failed ones among them: per connection, its failure and its 5xx answers, at most
    /// its attempts (a request answered 5xx on a connection then reset is one failed attempt).
    pending_failed_attempts: u64,
    pending_first: Option<Timestamp>,
    pending_last: Timestamp,
    /// When the newest pending failure became known (its flow ended, which for a refused
    /// connection is `closed_linger_secs` after its last packet): the group is quiet from
    /// there, so failures a few seconds apart are one group however long their flows linger.
    pending_noted: Timestamp,
    pending_flow: Option<FlowRef>,
    /// Start of the window `pending_flows` and `pending_requests` count.
    window_start: Timestamp,
    /// The failed connection attempts among the pending ones, per client (at most
    /// [`MAX_CLIENTS_LISTED`] clients): those of a client later seen sweeping are taken out
    /// before the failures are reported.
    attempts: Vec<ClientAttempts>,
}

impl Owner {
    /// Starts a new window of pending attempts where the last one ended.
    fn reset_pending(&mut self) {
        self.window_start = self.pending_last;
        self.pending_flows = 0;
        self.pending_failed_flows = 0;
        self.pending_requests = 0;
        self.pending_attempts = 0;
        self.pending_failed_attempts = 0;
        self.pending_first = None;
    }
}

/// Failed connection attempts of one client to one owner (see [`Owner::attempts`]).
#[derive(Debug)]
struct ClientAttempts {
    client: IpAddr,
    /// The first of them.
    flow: FlowRef,
    /// When they started and ended.
    first: Timestamp,
    last: Timestamp,
    flows: u64,
    failures: Failures,
    bytes_sent: u64,
    bytes_received: u64,
}

#[derive(Serialize)]
struct FailingEvidence<'a> {
    owner: &'a str,
    owner_source: &'static str,
    names: &'a [String],
    addresses: &'a [IpAddr],
    connections: u64,
    failed_connections: u64,
    requests: u64,
    failures: Failures,
    first_failure: String,
    last_failure: String,
}

/// The administrators analyzer.
pub struct Administrators {
    internal: NetworksSection,
    owners_cfg: Vec<OwnerEntry>,
    report_after: Nanos,
    /// See [`super::due`].
    active_max: Option<Nanos>,
    /// External address → the latest DNS name that resolved to it (and the one before).
    names: FxHashMap<IpAddr, DnsName>,
    /// DNS answers' external addresses not remembered by name: [`MAX_NAMES`] already were
    /// (their owner is then named by address).
    names_untracked: u64,
    owners: FxHashMap<String, Owner>,
    /// Per live flow id (external servers only).
    http: FxHashMap<u64, HttpSeen>,
    external_flows: u64,
    /// External connection attempts left out as part of a sweep.
    swept: u64,
    /// External connections the server reset with nothing in flight (not failures).
    idle_resets: u64,
    /// External connections reset in the server's name by something on the path (the RST's
    /// TTL unlike the server's packets): not the owner's failures.
    path_resets: u64,
    /// Clients seen sweeping (`tcp.sweep`), with the first and last time of their swept
    /// attempts; at most [`MAX_SWEEPERS`], the one quiet the longest forgotten first.
    sweepers: FxHashMap<IpAddr, (Timestamp, Timestamp)>,
    pending_events: Vec<Value>,
    /// Capture time of the last tick: about when a flow's end is seen.
    clock: Timestamp,
}

/// The DNS names an external address was given: the latest, since when, and the one before
/// it (an address shared by several names, a CDN's or a host's, is named by each in turn: a
/// connection made before the latest answer keeps the name its client had resolved).
#[derive(Debug)]
struct DnsName {
    name: Box<str>,
    since: Timestamp,
    before: Option<Box<str>>,
}

impl DnsName {
    /// The name the address had when a connection to it started at `at`.
    fn at(&self, at: Timestamp) -> &str {
        match &self.before {
            Some(b) if at < self.since => b,
            _ => &self.name,
        }
    }
}

/// Sweeping clients remembered.
const MAX_SWEEPERS: usize = 10_000;

fn push_unique<T: PartialEq>(v: &mut Vec<T>, x: T, max: usize) {
    if v.len() < max && !v.contains(&x) {
        v.push(x);
    }
}

impl Administrators {
    /// A new analyzer with its configuration.
    pub fn new(cfg: &Config) -> Self {
        Administrators {
            internal: cfg.networks.clone(),
            owners_cfg: cfg.owners.clone(),
            report_after: (cfg.dependencies.report_after_idle_secs * NANOS_PER_SEC as f64) as Nanos,
            active_max: cfg.report.active_group_max(),
            names: FxHashMap::default(),
            names_untracked: 0,
            owners: FxHashMap::default(),
            http: FxHashMap::default(),
            external_flows: 0,
            swept: 0,
            idle_resets: 0,
            path_resets: 0,
            sweepers: Default::default(),
            pending_events: Vec::new(),
            clock: Timestamp::default(),
        }
    }

    /// Whether `client` was sweeping around `[first, last]` (within `report_after` of its
    /// swept attempts): a client that scanned once is not a sweeper for the rest of the run.
    fn sweeping(
        sweepers: &FxHashMap<IpAddr, (Timestamp, Timestamp)>,
        report_after: Nanos,
        client: IpAddr,
        first: Timestamp,
        last: Timestamp,
    ) -> bool {
        sweepers
            .get(&client)
            .is_some_and(|&(f, l)| last >= f.plus(-report_after) && first <= l.plus(report_after))
    }

    /// Takes out of `o`'s pending failures (and its totals) the failed attempts of clients
    /// seen sweeping since, around the time they made them: a scan's attempts made before it
    /// was recognised are not the dependency's failures either. Returns the attempts taken out.
    fn discount_sweeps(
        sweepers: &FxHashMap<IpAddr, (Timestamp, Timestamp)>,
        report_after: Nanos,
        o: &mut Owner,
    ) -> u64 {
        let mut taken = 0;
        o.attempts.retain(|a| {
            if !Self::sweeping(sweepers, report_after, a.client, a.first, a.last) {
                return true;
            }
            o.pending.sub(&a.failures);
            o.failures.sub(&a.failures);
            o.pending_flows -= a.flows;
            o.pending_failed_flows -= a.flows;
            // Each a failed connection attempt that carried no request: one attempt, failed.
            o.pending_attempts -= a.flows;
            o.pending_failed_attempts -= a.flows;
            o.flows -= a.flows;
            o.failed_flows -= a.flows;
            o.bytes_sent -= a.bytes_sent;
            o.bytes_received -= a.bytes_received;
            taken += a.flows;
            false
        });
        if taken > 0
            && o.pending_flow
                .as_ref()
                .is_some_and(|f| sweepers.contains_key(&f.src_ip))
        {
            // The finding's example flow was a sweeper's: another client's failed attempt, if
            // one is known.
            o.pending_flow = o.attempts.first().map(|a| a.flow.clone());
        }
        taken
    }

    /// The flow's name: TLS SNI, else HTTP Host, else a DNS answer's name for the address.
    fn flow_name<'a>(
        &'a self,
        flow: &'a AFlow,
        http: Option<&'a HttpSeen>,
    ) -> Option<(&'a str, &'static str)> {
        let sni = flow
            .ext
            .conn
            .tls
            .as_ref()
            .and_then(|t| t.client_hello.as_ref())
            .and_then(|c| c.sni.as_deref())
            .filter(|s| !s.is_empty());
        if let Some(s) = sni {
            return Some((s, "sni"));
        }
        if let Some(h) = http.and_then(|h| h.host.as_deref()).and_then(host_name) {
            return Some((h, "host"));
        }
        self.names
            .get(&flow.server().0)
            .map(|n| (n.at(flow.first_ts), "dns"))
    }

    /// Owner name and how it was decided.
    fn owner_of(
        &self,
        ip: IpAddr,
        name: Option<&str>,
        name_source: &'static str,
    ) -> (String, &'static str) {
        if let Some(o) = self
            .owners_cfg
            .iter()
            .find(|o| o.cidrs.iter().any(|c| c.contains(ip)))
        {
            return (o.name.clone(), "config");
        }
        if let Some(n) = name {
            let n = n.trim_end_matches('.').to_ascii_lowercase();
            if let Some(o) = self.owners_cfg.iter().find(|o| {
                o.suffixes.iter().any(|s| {
                    // `stripe.com.` (a fully qualified name) is `stripe.com`.
                    let s = s.trim_matches('.').to_ascii_lowercase();
                    n == s || n.ends_with(&format!(".{s}"))
                })
            }) {
                return (o.name.clone(), "config");
            }
            if let Some(d) = registrable_domain(&n) {
                return (d, name_source);
            }
        }
        (ip.to_string(), "address")
    }

    fn flush(&mut self, now: Option<Timestamp>, out: &mut Vec<Finding>) {
        let (report_after, active_max) = (self.report_after, self.active_max);
        let mut due: Vec<String> = self
            .owners
            .iter()
            .filter(|(_, o)| {
                o.pending.total() > 0
                    && super::due(
                        now,
                        (o.pending_first.unwrap_or(o.pending_noted), o.pending_noted),
                        report_after,
                        active_max,
                    )
            })
            .map(|(k, _)| k.clone())
            .collect();
        due.sort_by_key(|k| (self.owners[k].pending_first, k.clone()));
        for k in due {
            let Some(o) = self.owners.get_mut(&k) else {
                continue;
            };
            let taken = Self::discount_sweeps(&self.sweepers, report_after, o);
            self.swept += taken;
            self.external_flows -= taken;
            if o.flows == 0 {
                // Only a scan's attempts: not a dependency at all.
                self.owners.remove(&k);
                continue;
            }
            if o.pending.total() == 0 {
                o.reset_pending();
                o.pending_flow = None;
                continue;
            }
            let f = o.pending;
            let attempts = o.pending_attempts;
            let share = o.pending_failed_attempts as f64 / attempts.max(1) as f64;
            let severity = if share >= 0.5 {
                Severity::High
            } else if share >= 0.1 {
                Severity::Medium
            } else {
                Severity::Low
            };
            // What failed, leading with it: the connections that failed and how, then the
            // requests answered with 5xx (a clause with nothing failed is left out).
            let kinds: Vec<String> = [
                (f.refused, "refused"),
                (f.unreachable, "ICMP unreachable"),
                (f.timed_out, "timed out"),
                (f.reset, "reset by the server"),
                (f.tls_alert, "TLS alert"),
            ]
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, w)| format!("{n} {w}"))
            .collect();
            let mut what = Vec::with_capacity(2);
            if o.pending_failed_flows > 0 {
                let mut c = format!(
                    "{} of {} connection(s) failed",
                    o.pending_failed_flows, o.pending_flows
                );
                if !kinds.is_empty() {
                    c += &format!(" ({})", kinds.join(", "));
                }
                what.push(c);
            }
            if f.http_5xx > 0 {
                what.push(format!(
                    "{} of {} request(s) got HTTP 5xx",
                    f.http_5xx, o.pending_requests
                ));
            }
            let first = o.pending_first.unwrap_or(o.first);
            let message = format!(
                "external dependency {k} ({}) is failing: {}",
                if o.names.is_empty() {
                    o.addresses
                        .iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                } else {
                    o.names.join(", ")
                },
                what.join(", ")
            );
            let ev = FailingEvidence {
                owner: &k,
                owner_source: o.source,
                names: &o.names,
                addresses: &o.addresses,
                connections: o.pending_flows,
                failed_connections: o.pending_failed_flows,
                requests: o.pending_requests,
                failures: f,
                first_failure: first.rfc3339_micros(),
                last_failure: o.pending_last.rfc3339_micros(),
            };
            out.push(Finding {
                ts: first,
                rule: "dependency.failing",
                severity,
                fallacy: Fallacy::OneAdministrator,
                message,
                flow: o.pending_flow.take(),
                evidence: Finding::evidence_from(&ev),
            });
            o.pending = Failures::default();
            o.reset_pending();
            o.attempts.clear();
        }
    }

    fn inventory(&self, now: Timestamp) -> Value {
        let mut owners: Vec<(&String, &Owner)> = self.owners.iter().collect();
        owners.sort_by(|a, b| {
            (b.1.bytes_sent + b.1.bytes_received)
                .cmp(&(a.1.bytes_sent + a.1.bytes_received))
                .then(a.0.cmp(b.0))
        });
        let list: Vec<Value> = owners
            .iter()
            .map(|(k, o)| {
                json!({
                    "owner": k,
                    "owner_source": o.source,
                    "names": o.names,
                    "addresses": o.addresses,
                    "services": o.services,
                    "clients": o.clients,
                    "flows": o.flows,
                    "failed_flows": o.failed_flows,
                    "bytes_sent": o.bytes_sent,
                    "bytes_received": o.bytes_received,
                    "requests": o.requests,
                    "failures": o.failures,
                    "first_seen": o.first.rfc3339_micros(),
                    "last_seen": o.last.rfc3339_micros(),
                })
            })
            .collect();
        let failing = owners
            .iter()
            .filter(|(_, o)| o.failures.total() > 0)
            .count();
        json!({
            "@timestamp": now.rfc3339_micros(),
            "event": {"kind": "metric", "action": "dependencies", "category": ["network"], "type": ["info"], "dataset": "observer.dependencies"},
            "message": format!("{} external owner(s) depended on, {failing} with failures", list.len()),
            "dependencies": list,
        })
    }
}

impl Analyzer for Administrators {
    fn name(&self) -> &'static str {
        "administrators"
    }

    fn on_dns(&mut self, d: &DnsView<'_>, _flow: &FlowInfo, _out: &mut Vec<Finding>) {
        let msg = d.msg;
        if !msg.response || msg.rcode != 0 || !matches!(msg.qtype, 1 | 28) || msg.qname.is_empty() {
            return;
        }
        for &(a, _) in d.answers {
            if self.internal.is_internal(a) {
                continue;
            }
            if let Some(n) = self.names.get_mut(&a) {
                // The same name again (the usual case) takes no allocation.
                if *n.name != *msg.qname.as_str() {
                    let old = std::mem::replace(&mut n.name, msg.qname.as_str().into());
                    n.before = Some(old);
                    n.since = d.ts;
                }
            } else if self.names.len() < MAX_NAMES {
                self.names.insert(
                    a,
                    DnsName {
                        name: msg.qname.as_str().into(),
                        since: d.ts,
                        before: None,
                    },
                );
            } else {
                self.names_untracked += 1;
            }
        }
    }

    fn on_http(&mut self, ev: &HttpEvent, flow: &FlowInfo, _out: &mut Vec<Finding>) {
        if self.internal.is_internal(flow.server().0) {
            return;
        }
        let h = self.http.entry(flow.id).or_default();
        match ev {
            HttpEvent::Request(r) => {
                h.requests += 1;
                if h.host.is_none() && !r.host.is_empty() {
                    h.host = Some(std::sync::Arc::clone(&r.host));
                }
            }
            HttpEvent::Response(r) => {
                if r.status >= 500 {
                    h.http_5xx += 1;
                }
            }
        }
    }

    fn on_flow_end(&mut self, flow: &mut AFlow, reason: EndReason, _out: &mut Vec<Finding>) {
        let server = flow.server();
        // A group or everyone on the link (mDNS, SSDP, DHCP, LLMNR) is no party depended on.
        let one_host = super::one_host(server.0);
        // Taken whatever becomes of the flow here, so that it is never left behind.
        let http = self.http.remove(&flow.id).unwrap_or_default();
        if self.internal.is_internal(server.0) || !one_host {
            return;
        }
        let client = flow.client();
        // Inbound from outside to an outside server we only see as a transit: not ours.
        if !self.internal.is_internal(client.0) {
            return;
        }
        // One attempt of a scan or sweep (reported as `tcp.sweep`): the address it tried is
        // not a dependency.
        if flow.ext.tcp_health.swept() {
            if let Some(w) = self.sweepers.get_mut(&client.0) {
                if flow.first_ts > w.1.plus(self.report_after) {
                    // A new sweep, long after the last: its window, not one spanning both.
                    *w = (flow.first_ts, flow.last_ts);
                } else {
                    w.0 = w.0.min(flow.first_ts);
                    w.1 = w.1.max(flow.last_ts);
                }
            } else {
                if self.sweepers.len() >= MAX_SWEEPERS {
                    // Full: the sweeper quiet the longest makes room (a time-window check, not
                    // this map, decides which attempts a sweep explains).
                    if let Some(oldest) = self
                        .sweepers
                        .iter()
                        .min_by_key(|(c, w)| (w.1, **c))
                        .map(|(c, _)| *c)
                    {
                        self.sweepers.remove(&oldest);
                    }
                }
                self.sweepers
                    .insert(client.0, (flow.first_ts, flow.last_ts));
            }
            self.swept += 1;
            return;
        }
        // One host however spelt: case and a final dot make no other name.
        let (name, name_source) = match self
            .flow_name(flow, Some(&http))
            .map(|(n, s)| (n.trim_end_matches('.'), s))
            .filter(|(n, _)| !n.is_empty())
        {
            Some((n, s)) => (Some(n.to_ascii_lowercase()), s),
            None => (None, "address"),
        };
        let (mut key, source) = self.owner_of(server.0, name.as_deref(), name_source);
        if !self.owners.contains_key(&key) && self.owners.len() >= MAX_OWNERS {
            key = OTHER.to_string();
        }
        let t = &flow.tcp;
        let cd = flow.client_dir();
        let mut f = Failures::default();
        match no_synack(flow, reason.input_end()) {
            Some(NoSynAck::Refused) => f.refused = 1,
            Some(NoSynAck::Unreachable) => f.unreachable = 1,
            Some(NoSynAck::Unanswered) => f.timed_out = 1,
            Some(NoSynAck::NotCaptured | NoSynAck::OpenAtEnd) | None => {}
        }
        // A handshake the server ended with a fatal alert: the connection's one failure (a RST
        // that follows, to whatever the client sent after the alert, is part of it).
        if flow.ext.conn.tls.as_ref().is_some_and(|tls| {
            tls.alerts
                .iter()
                .any(|(by_client, a)| !by_client && a.level == 2)
        }) {
            f.tls_alert = 1;
        } else if t.reset_in == Some(Phase::Established)
            && t.reset_by == Some(cd.rev())
            && t.reset_by_path()
        {
            // A RST in the server's name that something on the path sent (its TTL unlike the
            // server's packets): a firewall's or load balancer's doing, not the owner's.
            self.path_resets += 1;
        } else if t.reset_in == Some(Phase::Established) && t.reset_by == Some(cd.rev()) {
            // A server's RST with nothing in flight either way and no request waiting dropped
            // an idle connection (a load balancer's idle timeout): nobody's request failed
            // with it.
            if super::unacked_bytes(flow) > 0 || super::request_pending(flow) {
                f.reset = 1;
            } else {
                self.idle_resets += 1;
            }
        }
        f.http_5xx = http.http_5xx;
        let failed_flow =
            u64::from(f.refused + f.unreachable + f.timed_out + f.reset + f.tls_alert > 0);
        // A connection attempt that failed (never established): a sweeper's, if its client is
        // known to sweep, is part of the sweep too.
        let failed_attempt = f.refused + f.unreachable + f.timed_out > 0;
        if failed_attempt
            && Self::sweeping(
                &self.sweepers,
                self.report_after,
                client.0,
                flow.first_ts,
                flow.last_ts,
            )
        {
            self.swept += 1;
            return;
        }
        self.external_flows += 1;
        let requests = http.requests;
        let o = self.owners.entry(key).or_insert_with(|| Owner {
            source,
            names: Vec::new(),
            addresses: Vec::new(),
            services: Vec::new(),
            clients: Vec::new(),
            flows: 0,
            bytes_sent: 0,
            bytes_received: 0,
            requests: 0,
            failed_flows: 0,
            failures: Failures::default(),
            first: flow.first_ts,
            last: flow.last_ts,
            pending: Failures::default(),
            pending_flows: 0,
            pending_failed_flows: 0,
            pending_requests: 0,
            pending_attempts: 0,
            pending_failed_attempts: 0,
            pending_first: None,
            pending_last: flow.last_ts,
            pending_noted: flow.last_ts,
            pending_flow: None,
            window_start: flow.first_ts,
            attempts: Vec::new(),
        });
        if let Some(n) = name {
            push_unique(&mut o.names, n, MAX_LISTED);
        }
        push_unique(&mut o.addresses, server.0, MAX_LISTED);
        let proto = crate::finding::transport_name(flow.key.proto);
        push_unique(&mut o.services, format!("{proto}/{}", server.1), MAX_LISTED);
        push_unique(&mut o.clients, client.0, MAX_CLIENTS_LISTED);
        o.flows += 1;
        o.bytes_sent += flow.bytes[cd.idx()];
        o.bytes_received += flow.bytes[cd.rev().idx()];
        o.requests += requests;
        o.failed_flows += failed_flow;
        o.failures.add(&f);
        o.first = o.first.min(flow.first_ts);
        o.last = o.last.max(flow.last_ts);
        // The failing share is of recent traffic: while nothing is failing, the window of
        // counted connections restarts every `report_after_idle_secs`, so hours of clean
        // traffic do not dilute an outage.
        if o.pending.total() == 0 && flow.first_ts.since(o.window_start) > self.report_after {
            o.pending_flows = 0;
            o.pending_requests = 0;
            o.pending_attempts = 0;
            o.window_start = flow.first_ts;
            o.attempts.clear();
        }
        if failed_attempt {
            let i = match o.attempts.iter().position(|a| a.client == client.0) {
                Some(i) => Some(i),
                None if o.attempts.len() < MAX_CLIENTS_LISTED => {
                    o.attempts.push(ClientAttempts {
                        client: client.0,
                        flow: FlowRef::new(client, server, flow.key.proto),
                        first: flow.first_ts,
                        last: flow.last_ts,
                        flows: 0,
                        failures: Failures::default(),
                        bytes_sent: 0,
                        bytes_received: 0,
                    });
                    Some(o.attempts.len() - 1)
                }
                None => None,
            };
            if let Some(i) = i {
                let a = &mut o.attempts[i];
                a.first = a.first.min(flow.first_ts);
                a.last = a.last.max(flow.last_ts);
                a.flows += 1;
                a.failures.add(&f);
                a.bytes_sent += flow.bytes[cd.idx()];
                a.bytes_received += flow.bytes[cd.rev().idx()];
            }
        }
        o.pending_flows += 1;
        o.pending_requests += requests;
        o.pending_attempts += requests.max(1);
        if f.total() > 0 {
            o.pending.add(&f);
            o.pending_failed_flows += failed_flow;
            o.pending_failed_attempts += (failed_flow + f.http_5xx).min(requests.max(1));
            o.pending_first = Some(
                o.pending_first
                    .map_or(flow.first_ts, |p| p.min(flow.first_ts)),
            );
            o.pending_last = o.pending_last.max(flow.last_ts);
            o.pending_noted = o.pending_noted.max(flow.last_ts).max(self.clock);
            if o.pending_flow.is_none() {
                o.pending_flow = Some(FlowRef::new(client, server, flow.key.proto));
            }
        }
    }

    fn on_tick(&mut self, now: Timestamp, out: &mut Vec<Finding>) {
        self.clock = now;
        self.flush(Some(now), out);
    }

    fn finish(&mut self, now: Timestamp, out: &mut Vec<Finding>) {
        self.flush(None, out);
        let inv = self.inventory(now);
        self.pending_events.push(inv);
    }

    fn drain_events(&mut self, out: &mut Vec<Value>) {
        out.append(&mut self.pending_events);
    }

    fn stats(&self, out: &mut Vec<Counter>) {
        out.extend([
            ("dependencies.owners", self.owners.len() as u64),
            (
                "dependencies.failing_owners",
                self.owners
                    .values()
                    .filter(|o| o.failures.total() > 0)
                    .count() as u64,
            ),
            ("dependencies.external_flows", self.external_flows),
            ("dependencies.swept_attempts", self.swept),
            ("dependencies.idle_resets", self.idle_resets),
            ("dependencies.path_resets", self.path_resets),
            ("limits.dependency_names_untracked", self.names_untracked),
        ]);
    }
}

/// Node id safe for DOT and Mermaid.
fn node_id(prefix: &str, i: usize) -> String {
    format!("{prefix}{i}")
}

/// A name made safe inside a quoted DOT or Mermaid label.
fn esc(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '"' | '\\' | '<' | '>' | '`' => '\'',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Graph output format for the dependency inventory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphFormat {
    /// Graphviz DOT.
    Dot,
    /// Mermaid flowchart.
    Mermaid,
}

impl GraphFormat {
    /// From a file name: `.dot`/`.gv` → DOT, `.mmd`/`.mermaid` → Mermaid.
    pub fn from_path(p: &std::path::Path) -> Option<GraphFormat> {
        match p.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "dot" | "gv" => Some(GraphFormat::Dot),
            "mmd" | "mermaid" => Some(GraphFormat::Mermaid),
            _ => None,
        }
    }
}

/// Renders a `dependencies` event (as written by this analyzer) as a graph: internal clients
/// on the left, external owners on the right, one edge per (client, owner) with the owner's
/// totals on the owner node; failing owners drawn in red.
pub fn render_graph(deps: &Value, fmt: GraphFormat) -> String {
    let list = deps["dependencies"].as_array().cloned().unwrap_or_default();
    let mut clients: Vec<String> = Vec::new();
    let mut edges: Vec<(usize, usize)> = Vec::new();
    for (oi, o) in list.iter().enumerate() {
        for c in o["clients"].as_array().into_iter().flatten() {
            let c = c.as_str().unwrap_or_default().to_string();
            let ci = match clients.iter().position(|x| *x == c) {
                Some(i) => i,
                None => {
                    clients.push(c);
                    clients.len() - 1
                }
            };
            edges.push((ci, oi));
        }
    }
    let owner_label = |o: &Value| {
        let failures: u64 = o["failures"]
            .as_object()
            .map(|m| m.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0);
        let mut l = format!(
            "{}\\n{} flows, {} out, {} in",
            esc(o["owner"].as_str().unwrap_or_default()),
            o["flows"].as_u64().unwrap_or(0),
            human_bytes(o["bytes_sent"].as_u64().unwrap_or(0)),
            human_bytes(o["bytes_received"].as_u64().unwrap_or(0)),
        );
        if failures > 0 {
            let _ = write!(l, "\\n{failures} failures");
        }
        (l, failures > 0)
    };
    let mut s = String::new();
    match fmt {
        GraphFormat::Dot => {
            s.push_str("digraph dependencies {\n  rankdir=LR;\n  node [shape=box, fontname=\"sans-serif\"];\n");
            for (i, c) in clients.iter().enumerate() {
                let _ = writeln!(s, "  {} [label=\"{}\"];", node_id("c", i), esc(c));
            }
            for (i, o) in list.iter().enumerate() {
                let (label, failing) = owner_label(o);
                let style = if failing {
                    ", color=red, fontcolor=red"
                } else {
                    ""
                };
                let _ = writeln!(
                    s,
                    "  {} [label=\"{label}\", shape=ellipse{style}];",
                    node_id("o", i)
                );
            }
            for (c, o) in &edges {
                let _ = writeln!(s, "  {} -> {};", node_id("c", *c), node_id("o", *o));
            }
            s.push_str("}\n");
        }
        GraphFormat::Mermaid => {
            s.push_str("flowchart LR\n");
            for (i, c) in clients.iter().enumerate() {
                let _ = writeln!(s, "  {}[\"{}\"]", node_id("c", i), esc(c));
            }
            for (i, o) in list.iter().enumerate() {
                let (label, failing) = owner_label(o);
                let _ = writeln!(
                    s,
                    "  {}([\"{}\"])",
                    node_id("o", i),
                    label.replace("\\n", "<br/>")
                );
                if failing {
                    let _ = writeln!(s, "  style {} stroke:#d00,color:#d00", node_id("o", i));
                }
            }
            for (c, o) in &edges {
                let _ = writeln!(s, "  {} --> {}", node_id("c", *c), node_id("o", *o));
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrable_domains() {
        assert_eq!(
            registrable_domain("eu-west-1.s3.amazonaws.com").as_deref(),
            Some("amazonaws.com")
        );
        assert_eq!(
            registrable_domain("www.example.co.uk.").as_deref(),
            Some("example.co.uk")
        );
        assert_eq!(
            registrable_domain("API.Stripe.com").as_deref(),
            Some("stripe.com")
        );
        assert_eq!(
            registrable_domain("localhost").as_deref(),
            Some("localhost")
        );
        assert_eq!(registrable_domain("10.0.0.1"), None);
        assert_eq!(registrable_domain("a..b"), None);
    }

    #[test]
    fn host_header_ports_and_literals() {
        assert_eq!(host_name("api.example.com:8443"), Some("api.example.com"));
        assert_eq!(host_name("api.example.com"), Some("api.example.com"));
        assert_eq!(host_name("[2001:db8::1]:80"), None);
        assert_eq!(host_name("192.0.2.1:80"), None);
    }

    #[test]
    fn graph_formats_by_extension() {
        let p = std::path::Path::new;
        assert_eq!(GraphFormat::from_path(p("x.dot")), Some(GraphFormat::Dot));
        assert_eq!(
            GraphFormat::from_path(p("x.MMD")),
            Some(GraphFormat::Mermaid)
        );
        assert_eq!(GraphFormat::from_path(p("x.txt")), None);
    }

    #[test]
    fn graph_lists_every_owner_and_edge() {
        let deps = json!({"dependencies": [
            {"owner": "stripe.com", "clients": ["10.0.0.1", "10.0.0.2"], "flows": 3, "bytes_sent": 1500, "bytes_received": 20, "failures": {"refused": 1, "http_5xx": 0}},
            {"owner": "github.com", "clients": ["10.0.0.1"], "flows": 1, "bytes_sent": 10, "bytes_received": 10, "failures": {"refused": 0}},
        ]});
        let dot = render_graph(&deps, GraphFormat::Dot);
        assert!(dot.starts_with("digraph dependencies {"));
        assert_eq!(dot.matches(" -> ").count(), 3);
        assert!(dot.contains("stripe.com\\n3 flows, 1.5 kB out, 20 B in\\n1 failures"));
        assert_eq!(dot.matches("fontcolor=red").count(), 1);
        let mmd = render_graph(&deps, GraphFormat::Mermaid);
        assert_eq!(mmd.matches(" --> ").count(), 3);
        assert!(mmd.contains("github.com<br/>1 flows"));
    }
}
