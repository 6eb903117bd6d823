//! The findings wire format: one typed model, written as NDJSON with ECS-aligned field names.
//!
//! Every line is one JSON object with nested objects for dotted ECS names (`event.kind` is
//! `{"event":{"kind":…}}`). The contract (also the README's schema table, locked by
//! `tests/tests/schema.rs`):
//!
//! * every line: `@timestamp` (capture time, RFC 3339, microseconds, UTC), `event.id`
//!   (`RUN-SEQ`, unique, see [`crate::pipeline::Pipeline::set_run_id`]) and `event.kind`;
//! * first line: `event.kind = "event"`, `event.action = "start"`, `observer.*` (tool version,
//!   schema version), `observer.inputs` (paths);
//! * findings: `event.kind = "alert"`, `event.category = ["network"]`, `event.severity` (1–4),
//!   `rule.name`, `message`, `fallacy.id`, `fallacy.name`, `fallacy.evidence`, and where a flow
//!   applies `source.ip/port`, `destination.ip/port`, `network.transport`, `network.protocol`,
//!   `network.community_id`;
//! * last line: `event.kind = "metric"`, `event.action = "summary"`, `network.packets`,
//!   `network.bytes`, `stats.*`.

use crate::time::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Version of this wire format; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;
/// The ECS version the names follow.
pub const ECS_VERSION: &str = "8.17.0";

/// How bad a finding is (`event.severity`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Severity {
    /// Worth knowing.
    Low = 1,
    /// Degrades service.
    Medium = 2,
    /// Breaks requests or exposes data.
    High = 3,
    /// Active outage or secrets in the clear.
    Critical = 4,
}

impl Severity {
    /// The lowercase name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "low" | "1" => Ok(Severity::Low),
            "medium" | "2" => Ok(Severity::Medium),
            "high" | "3" => Ok(Severity::High),
            "critical" | "4" => Ok(Severity::Critical),
            other => Err(format!(
                "unknown severity `{other}`: expected low, medium, high or critical"
            )),
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The eight fallacies of distributed computing, in canonical order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fallacy {
    /// 1. The network is reliable.
    NetworkIsReliable = 1,
    /// 2. Latency is zero.
    LatencyIsZero = 2,
    /// 3. Bandwidth is infinite.
    BandwidthIsInfinite = 3,
    /// 4. The network is secure.
    NetworkIsSecure = 4,
    /// 5. Topology doesn't change.
    TopologyDoesntChange = 5,
    /// 6. There is one administrator.
    OneAdministrator = 6,
    /// 7. Transport cost is zero.
    TransportCostIsZero = 7,
    /// 8. The network is homogeneous.
    NetworkIsHomogeneous = 8,
}

impl Fallacy {
    /// All eight, in order.
    pub const ALL: [Fallacy; 8] = [
        Fallacy::NetworkIsReliable,
        Fallacy::LatencyIsZero,
        Fallacy::BandwidthIsInfinite,
        Fallacy::NetworkIsSecure,
        Fallacy::TopologyDoesntChange,
        Fallacy::OneAdministrator,
        Fallacy::TransportCostIsZero,
        Fallacy::NetworkIsHomogeneous,
    ];

    /// `fallacy.id`, 1–8.
    pub fn id(self) -> u8 {
        self as u8
    }

    /// `fallacy.name`, the stable slug.
    pub fn slug(self) -> &'static str {
        match self {
            Fallacy::NetworkIsReliable => "network-is-reliable",
            Fallacy::LatencyIsZero => "latency-is-zero",
            Fallacy::BandwidthIsInfinite => "bandwidth-is-infinite",
            Fallacy::NetworkIsSecure => "network-is-secure",
            Fallacy::TopologyDoesntChange => "topology-doesnt-change",
            Fallacy::OneAdministrator => "one-administrator",
            Fallacy::TransportCostIsZero => "transport-cost-is-zero",
            Fallacy::NetworkIsHomogeneous => "network-is-homogeneous",
        }
    }

    /// The fallacy as people say it.
    pub fn title(self) -> &'static str {
        match self {
            Fallacy::NetworkIsReliable => "The network is reliable",
            Fallacy::LatencyIsZero => "Latency is zero",
            Fallacy::BandwidthIsInfinite => "Bandwidth is infinite",
            Fallacy::NetworkIsSecure => "The network is secure",
            Fallacy::TopologyDoesntChange => "Topology doesn't change",
            Fallacy::OneAdministrator => "There is one administrator",
            Fallacy::TransportCostIsZero => "Transport cost is zero",
            Fallacy::NetworkIsHomogeneous => "The network is homogeneous",
        }
    }
}

/// The flow a finding is about.
#[derive(Clone, Debug, PartialEq)]
pub struct FlowRef {
    /// Client (initiator) address.
    pub src_ip: IpAddr,
    /// Client port.
    pub src_port: u16,
    /// Server (responder) address.
    pub dst_ip: IpAddr,
    /// Server port.
    pub dst_port: u16,
    /// `network.transport`: `tcp`, `udp`, `icmp`, …
    pub transport: &'static str,
    /// `network.protocol`: the application protocol, when known.
    pub protocol: Option<&'static str>,
    /// `network.community_id`.
    pub community_id: String,
}

impl FlowRef {
    /// A flow reference for a client → server flow with the given IP protocol number.
    pub fn new(client: (IpAddr, u16), server: (IpAddr, u16), proto: u8) -> FlowRef {
        FlowRef {
            src_ip: client.0,
            src_port: client.1,
            dst_ip: server.0,
            dst_port: server.1,
            transport: transport_name(proto),
            protocol: None,
            community_id: crate::community_id::community_id_v1(
                client.0, client.1, server.0, server.1, proto,
            ),
        }
    }
}

/// `network.transport` for an IP protocol number.
pub fn transport_name(proto: u8) -> &'static str {
    match proto {
        1 => "icmp",
        6 => "tcp",
        17 => "udp",
        58 => "ipv6-icmp",
        132 => "sctp",
        _ => "ip",
    }
}

/// One finding: a fallacy observed in the traffic, with its evidence.
#[derive(Clone, Debug)]
pub struct Finding {
    /// Capture time the finding refers to (usually the first evidence).
    pub ts: Timestamp,
    /// `rule.name`, dotted, e.g. `tcp.handshake.refused`.
    pub rule: &'static str,
    /// `event.severity`.
    pub severity: Severity,
    /// Which fallacy.
    pub fallacy: Fallacy,
    /// One human line.
    pub message: String,
    /// The flow, where one applies.
    pub flow: Option<FlowRef>,
    /// `fallacy.evidence`: rule-specific facts.
    pub evidence: Map<String, Value>,
}

impl Finding {
    /// Serialises a typed evidence struct into the finding's evidence object.
    pub fn evidence_from<T: Serialize>(ev: &T) -> Map<String, Value> {
        match serde_json::to_value(ev) {
            Ok(Value::Object(m)) => m,
            Ok(other) => {
                let mut m = Map::new();
                m.insert("value".into(), other);
                m
            }
            Err(_) => Map::new(),
        }
    }

    /// The NDJSON object of this finding.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "@timestamp": self.ts.rfc3339_micros(),
            "event": {
                "kind": "alert",
                "category": ["network"],
                "type": ["info"],
                "severity": self.severity as u8,
                "dataset": "observer.finding",
            },
            "rule": { "name": self.rule },
            "message": self.message,
            "fallacy": {
                "id": self.fallacy.id(),
                "name": self.fallacy.slug(),
                "evidence": Value::Object(self.evidence.clone()),
            },
        });
        if let Some(f) = &self.flow {
            let obj = v.as_object_mut().expect("finding is an object");
            obj.insert(
                "source".into(),
                json!({"ip": f.src_ip.to_string(), "port": f.src_port}),
            );
            obj.insert(
                "destination".into(),
                json!({"ip": f.dst_ip.to_string(), "port": f.dst_port}),
            );
            let mut net = json!({
                "transport": f.transport,
                "community_id": f.community_id,
            });
            if let Some(p) = f.protocol {
                net["protocol"] = json!(p);
            }
            obj.insert("network".into(), net);
        }
        v
    }
}

/// Turns dotted counter names into nested JSON objects: `tcp.resets` → `{"tcp":{"resets":…}}`.
pub fn nest_dotted<'a>(pairs: impl IntoIterator<Item = (&'a str, Value)>) -> Map<String, Value> {
    let mut root = Map::new();
    for (name, value) in pairs {
        let mut parts = name.split('.').peekable();
        let mut cur = &mut root;
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                cur.insert(part.to_string(), value);
                break;
            }
            let entry = cur
                .entry(part.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            cur = entry.as_object_mut().expect("just made an object");
        }
    }
    root
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_names_nest() {
        let m = nest_dotted([
            ("flows.tcp", json!(3)),
            ("flows.udp", json!(1)),
            ("frames.undecodable", json!(0)),
        ]);
        assert_eq!(
            Value::Object(m),
            json!({"flows":{"tcp":3,"udp":1},"frames":{"undecodable":0}})
        );
    }

    #[test]
    fn severity_parses_names_and_numbers() {
        assert_eq!("HIGH".parse::<Severity>(), Ok(Severity::High));
        assert_eq!("1".parse::<Severity>(), Ok(Severity::Low));
        assert!("severe".parse::<Severity>().is_err());
        assert!(Severity::Critical > Severity::High);
    }

    #[test]
    fn fallacy_ids_and_slugs_are_the_contract() {
        let ids: Vec<u8> = Fallacy::ALL.iter().map(|f| f.id()).collect();
        assert_eq!(ids, (1..=8).collect::<Vec<u8>>());
        assert_eq!(
            Fallacy::TopologyDoesntChange.slug(),
            "topology-doesnt-change"
        );
    }
}
