//! The network is secure (fallacy 4): application traffic in clear, the credentials it
//! carries, STARTTLS left unused, and protocols on ports that hide them.
//!
//! Protocols are identified by content (`app::ident`), not by port.
//!
//! Flags, aggregated per client, server and protocol (reported once the group has been quiet
//! for `report_after_idle_secs`, and at the end):
//! * `plaintext.internal` — a cleartext application protocol between two addresses of the
//!   configured internal networks: medium; high when tokens or session cookies travel in it
//!   (HTTP Bearer, HTTP or RTSP Digest, cookies); critical when passwords do (HTTP or RTSP
//!   Basic, Redis AUTH, PostgreSQL cleartext password, FTP PASS, SMTP AUTH PLAIN/LOGIN, IMAP
//!   LOGIN, POP3 PASS, Telnet login, MQTT password, Kafka SASL/PLAIN, LDAP simple bind, AMQP PLAIN,
//!   MySQL cleartext password, an SNMP v1/v2c community; the SNMP default read community
//!   `public` alone is high);
//! * `plaintext.credentials` — the same credentials travelling in clear to or from an external
//!   address (critical or high);
//! * `plaintext.starttls_unused` — the server offered STARTTLS (or STLS, AUTH TLS) and the
//!   client carried on in clear (high);
//! * `protocol.unexpected_port` — a cleartext protocol or SSH on a port it is not registered
//!   on, per server address:port (low): port-based policies and monitoring miss it. (TLS is
//!   used on any port by design and is not reported.)
//! * `ip.fragments.inconsistent` — IP datagrams whose fragments overlap with different bytes
//!   or do not fit together, per source and destination address (medium): a firewall or IDS
//!   may reassemble them differently from the receiver, a known way past inspection (or a
//!   broken middlebox).
//!
//! A connection that carried credentials in clear and is still open after
//! `[report] active_group_secs` (set for `live` and `probe`, 60 s) joins its group then, with
//! its bytes so far, instead of at its end: a pooled database or cache connection that sent
//! its password when it opened may stay open for days, and a run streaming to a log pipeline
//! reports it within minutes. (Without that setting, as in `analyze`, every connection joins
//! its group when it ends.)
//!
//! Evidence names the kinds of credentials and where they travelled — never a value.
//! Not flagged: TLS, SSH, connections upgraded by STARTTLS before anything sensitive, DNS.

use super::{AFlow, Analyzer, Counter, FlowHalf, FlowInfo, Note, PacketView};
use crate::app::Protocol;
use crate::config::NetworksSection;
use crate::finding::{Fallacy, Finding, FlowRef, Severity};
use crate::flow::EndReason;
use crate::time::{NANOS_PER_SEC, Nanos, Timestamp};
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::net::IpAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Internal,
    External,
    StarttlsUnused,
    UnexpectedPort,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    kind: Kind,
    client: Option<IpAddr>,
    server: (IpAddr, u16),
    protocol: Protocol,
}

#[derive(Debug)]
struct Group {
    first: Timestamp,
    last: Timestamp,
    flows: u64,
    bytes: u64,
    credentials: u32,
    client_port: u16,
    clients: Vec<IpAddr>,
    /// More clients than the 16 in `clients`.
    more_clients: bool,
}

/// Inconsistent fragmented datagrams from one address to another.
#[derive(Debug)]
struct FragGroup {
    first: Timestamp,
    last: Timestamp,
    datagrams: u64,
    proto: u8,
}

#[derive(Serialize)]
struct FragEvidence {
    datagrams: u64,
    ip_protocol: u8,
    first_seen: String,
    last_seen: String,
}

#[derive(Serialize)]
struct Evidence<'a> {
    protocol: &'static str,
    connections: u64,
    bytes: u64,
    credentials: Vec<&'static str>,
    clients: &'a [IpAddr],
    clients_truncated: bool,
    first_seen: String,
    last_seen: String,
}

/// The security analyzer's per-flow state.
#[derive(Clone, Copy, Debug, Default)]
pub struct SecurityFlow {
    /// The credentials with which the connection joined its group while open
    /// ([`Note::Cleartext`]); 0 if it did not.
    noted: u32,
}

/// The security analyzer's per-flow half: a connection still open after `after` with
/// credentials in clear is noted for its group.
pub(crate) struct Half {
    after: Option<Nanos>,
}

impl Half {
    /// The half for `[report] active_group_secs` (`None`: connections join their groups when
    /// they end).
    pub(crate) fn new(after: Option<Nanos>) -> Half {
        Half { after }
    }
}

impl FlowHalf for Half {
    fn on_packet(
        &self,
        pkt: &PacketView<'_>,
        flow: &mut AFlow,
        _facts: &mut super::Facts,
        notes: &mut Vec<Note>,
        _out: &mut Vec<Finding>,
    ) {
        let Some(after) = self.after else {
            return;
        };
        let c = &flow.ext.conn;
        if flow.ext.security.noted != 0
            || !c.credentials.any()
            || pkt.ts.since(flow.first_ts) < after
        {
            return;
        }
        let Some(protocol) = c.protocol.filter(|p| !p.encrypted()) else {
            return;
        };
        flow.ext.security.noted = c.credentials.0;
        notes.push(Note::Cleartext {
            protocol,
            credentials: c.credentials.0,
            bytes: flow.bytes[0] + flow.bytes[1],
            at: pkt.ts,
        });
    }
}

/// The security analyzer.
pub struct Security {
    networks: NetworksSection,
    report_after: Nanos,
    groups: FxHashMap<Key, Group>,
    frag_groups: FxHashMap<(IpAddr, IpAddr), FragGroup>,
    plaintext_flows: u64,
    credential_flows: u64,
    starttls_unused: u64,
    unexpected_port: u64,
    identified: FxHashMap<crate::app::ident::Protocol, u64>,
    /// Times the groups reached [`crate::analyze::MAX_PENDING_GROUPS`] and were all reported
    /// at once.
    reported_early: u64,
    /// Connections that joined their group while open.
    joined_open: u64,
}

impl Security {
    /// A new analyzer.
    pub fn new(networks: &NetworksSection, report_after_secs: f64) -> Self {
        Security {
            networks: networks.clone(),
            report_after: (report_after_secs * NANOS_PER_SEC as f64) as Nanos,
            groups: FxHashMap::default(),
            frag_groups: FxHashMap::default(),
            plaintext_flows: 0,
            credential_flows: 0,
            starttls_unused: 0,
            unexpected_port: 0,
            identified: FxHashMap::default(),
            reported_early: 0,
            joined_open: 0,
        }
    }

    fn add(&mut self, key: Key, flow: &AFlow, credentials: u32) {
        let span = (flow.first_ts, flow.last_ts);
        self.add_seen(
            key,
            flow.client(),
            span,
            flow.bytes[0] + flow.bytes[1],
            credentials,
        );
    }

    /// Adds a connection of `client` seen from `first` to `last` to the group `key`.
    fn add_seen(
        &mut self,
        key: Key,
        client: (IpAddr, u16),
        (first, last): (Timestamp, Timestamp),
        bytes: u64,
        credentials: u32,
    ) {
        let g = self.groups.entry(key).or_insert_with(|| Group {
            first,
            last,
            flows: 0,
            bytes: 0,
            credentials: 0,
            client_port: client.1,
            clients: Vec::new(),
            more_clients: false,
        });
        g.first = g.first.min(first);
        g.last = g.last.max(last);
        g.flows += 1;
        g.bytes += bytes;
        g.credentials |= credentials;
        super::push_listed(
            &mut g.clients,
            &mut g.more_clients,
            client.0,
            super::MAX_CLIENTS_LISTED,
        );
    }

    /// The group a connection in clear between `client` and `server` goes to, with
    /// `credentials` in clear: inside the internal network, or carrying credentials to or
    /// from outside it (else none).
    fn plaintext_kind(&self, client: IpAddr, server: IpAddr, credentials: u32) -> Option<Kind> {
        if self.networks.is_internal(client) && self.networks.is_internal(server) {
            Some(Kind::Internal)
        } else if credentials != 0 {
            Some(Kind::External)
        } else {
            None
        }
    }

    fn report(&mut self, now: Option<Timestamp>, out: &mut Vec<Finding>) {
        let after = (self.report_after, None);
        for (k, g) in super::take_due(&mut self.groups, now, after, |g| (g.first, g.last)) {
            out.push(finding(k, &g));
        }
        for (k, g) in super::take_due(&mut self.frag_groups, now, after, |g| (g.first, g.last)) {
            out.push(fragments_finding(k, &g));
        }
    }
}

fn fragments_finding((src, dst): (IpAddr, IpAddr), g: &FragGroup) -> Finding {
    let ev = FragEvidence {
        datagrams: g.datagrams,
        ip_protocol: g.proto,
        first_seen: g.first.rfc3339_micros(),
        last_seen: g.last.rfc3339_micros(),
    };
    Finding {
        ts: g.first,
        rule: "ip.fragments.inconsistent",
        severity: Severity::Medium,
        fallacy: Fallacy::NetworkIsSecure,
        message: format!(
            "{src} → {dst}: {} IP datagram(s) whose fragments overlap with different bytes or do not fit together: a firewall or IDS may reassemble them differently from the receiver (a known way past inspection), or a middlebox is broken",
            g.datagrams
        ),
        flow: Some(FlowRef::new((src, 0), (dst, 0), g.proto)),
        evidence: Finding::evidence_from(&ev),
    }
}

fn finding(k: Key, g: &Group) -> Finding {
    let creds = crate::app::Credentials(g.credentials);
    let names = creds.names();
    let (ip, port) = k.server;
    let proto = k.protocol.name();
    let who = match k.client {
        Some(c) => format!("{c} → {ip}:{port}"),
        None => format!("{ip}:{port}"),
    };
    let cred_text = if names.is_empty() {
        String::new()
    } else {
        format!(", carrying {}", names.join(", "))
    };
    let (rule, severity, message) = match k.kind {
        Kind::Internal => (
            "plaintext.internal",
            if creds.has_password() {
                Severity::Critical
            } else if creds.any() {
                Severity::High
            } else {
                Severity::Medium
            },
            format!(
                "{who}: {} {proto} connection(s) in clear inside the internal network ({} bytes){cred_text}",
                g.flows, g.bytes
            ),
        ),
        Kind::External => (
            "plaintext.credentials",
            if creds.has_password() {
                Severity::Critical
            } else {
                Severity::High
            },
            format!(
                "{who}: credentials in clear over {proto} to or from an external address ({}){}",
                names.join(", "),
                ""
            ),
        ),
        Kind::StarttlsUnused => (
            "plaintext.starttls_unused",
            Severity::High,
            format!(
                "{who}: the server offered STARTTLS over {proto} and {} connection(s) carried on in clear{cred_text}",
                g.flows
            ),
        ),
        Kind::UnexpectedPort => (
            "protocol.unexpected_port",
            Severity::Low,
            format!(
                "{who} speaks {proto} on a port {proto} is not registered on ({} connection(s)): port-based rules and monitoring miss it",
                g.flows
            ),
        ),
    };
    let ev = Evidence {
        protocol: proto,
        connections: g.flows,
        bytes: g.bytes,
        credentials: names,
        clients: &g.clients,
        clients_truncated: g.more_clients,
        first_seen: g.first.rfc3339_micros(),
        last_seen: g.last.rfc3339_micros(),
    };
    let client = (g.clients.first().copied().unwrap_or(ip), g.client_port);
    Finding {
        ts: g.first,
        rule,
        severity,
        fallacy: Fallacy::NetworkIsSecure,
        message,
        flow: Some(FlowRef {
            protocol: Some(proto),
            ..FlowRef::new(client, k.server, 6)
        }),
        evidence: Finding::evidence_from(&ev),
    }
}

impl Analyzer for Security {
    fn name(&self) -> &'static str {
        "security"
    }

    fn on_flow_end(&mut self, flow: &mut AFlow, _reason: EndReason, out: &mut Vec<Finding>) {
        if self.groups.len() >= crate::analyze::MAX_PENDING_GROUPS {
            self.report(None, out);
            self.reported_early += 1;
        }
        let c = &flow.ext.conn;
        let Some(protocol) = c.protocol else { return };
        *self.identified.entry(protocol).or_default() += 1;
        let (client, server) = (flow.client(), flow.server());
        // Which side is the server is only certain when the handshake was seen.
        // TLS runs on any port by design; the others have registered ones.
        if flow.tcp.syn_ts.is_some()
            && protocol != Protocol::Tls
            && !protocol.usual_ports().contains(&server.1)
        {
            self.unexpected_port += 1;
            self.add(
                Key {
                    kind: Kind::UnexpectedPort,
                    client: None,
                    server,
                    protocol,
                },
                flow,
                0,
            );
        }
        if !c.plaintext() {
            return;
        }
        let creds = c.credentials.0;
        if creds != 0 {
            self.credential_flows += 1;
        }
        // Upgraded by STARTTLS before any credential: the rest was encrypted.
        if c.starttls_used && creds == 0 {
            return;
        }
        self.plaintext_flows += 1;
        let noted = flow.ext.security.noted;
        if let Some(kind) = self.plaintext_kind(client.0, server.0, creds) {
            let key = Key {
                kind,
                client: Some(client.0),
                server,
                protocol,
            };
            if noted == 0 {
                self.add(key, flow, creds);
            } else {
                // It joined its group while open (with its bytes then). Credentials it carried
                // since go to that group if it is still pending, else make the connection a
                // finding again, for what it adds.
                match self.groups.get_mut(&key) {
                    Some(g) => g.credentials |= creds,
                    None if creds & !noted != 0 => self.add(key, flow, creds),
                    None => {}
                }
            }
        }
        if c.starttls_offered && !c.starttls_used {
            self.starttls_unused += 1;
            self.add(
                Key {
                    kind: Kind::StarttlsUnused,
                    client: Some(client.0),
                    server,
                    protocol,
                },
                flow,
                creds,
            );
        }
    }

    fn on_fragments_inconsistent(
        &mut self,
        ts: Timestamp,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        out: &mut Vec<Finding>,
    ) {
        if self.frag_groups.len() >= crate::analyze::MAX_PENDING_GROUPS
            && !self.frag_groups.contains_key(&(src, dst))
        {
            self.report(None, out);
            self.reported_early += 1;
        }
        let g = self.frag_groups.entry((src, dst)).or_insert(FragGroup {
            first: ts,
            last: ts,
            datagrams: 0,
            proto,
        });
        g.first = g.first.min(ts);
        g.last = g.last.max(ts);
        g.datagrams += 1;
    }

    fn on_note(&mut self, note: &Note, flow: &FlowInfo, out: &mut Vec<Finding>) {
        let &Note::Cleartext {
            protocol,
            credentials,
            bytes,
            at,
        } = note
        else {
            return;
        };
        let (client, server) = (flow.client(), flow.server());
        let Some(kind) = self.plaintext_kind(client.0, server.0, credentials) else {
            return;
        };
        if self.groups.len() >= crate::analyze::MAX_PENDING_GROUPS {
            self.report(None, out);
            self.reported_early += 1;
        }
        self.joined_open += 1;
        let key = Key {
            kind,
            client: Some(client.0),
            server,
            protocol,
        };
        self.add_seen(key, client, (flow.first_ts, at), bytes, credentials);
    }

    fn on_tick(&mut self, now: Timestamp, out: &mut Vec<Finding>) {
        self.report(Some(now), out);
    }

    fn finish(&mut self, _now: Timestamp, out: &mut Vec<Finding>) {
        self.report(None, out);
    }

    fn stats(&self, out: &mut Vec<Counter>) {
        out.extend([
            ("security.plaintext_connections", self.plaintext_flows),
            ("security.credential_connections", self.credential_flows),
            ("security.starttls_unused", self.starttls_unused),
            ("security.unexpected_port", self.unexpected_port),
            ("security.joined_while_open", self.joined_open),
            ("limits.security_groups_reported_early", self.reported_early),
        ]);
        let mut counted: Vec<_> = self.identified.iter().collect();
        counted.sort_by_key(|(p, _)| p.name());
        out.extend(counted.into_iter().map(|(p, n)| (p.counter(), *n)));
    }
}
