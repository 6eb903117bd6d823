//! The NDJSON wire contract, locked: every line of the fixtures' output must deserialize into
//! this independent copy of the schema with `deny_unknown_fields` everywhere except the
//! documented free-form objects (`fallacy.evidence`, `stats`). Adding, renaming or removing a
//! field fails here first; update the README's schema table with it.

#![allow(
    dead_code,
    reason = "the structs exist to be deserialized with deny_unknown_fields: each field's presence and type is the assertion"
)]

use observer_tests::{ndjson, observer};
use serde::Deserialize;
use serde_json::Value;

/// `event` of the start and inventory events (the same fields).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventHeader {
    kind: String,
    action: String,
    category: Vec<String>,
    r#type: Vec<String>,
    dataset: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Ecs {
    version: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ObserverStart {
    product: String,
    r#type: String,
    version: String,
    schema_version: u32,
    inputs: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Start {
    #[serde(rename = "@timestamp")]
    timestamp: String,
    event: EventHeader,
    message: String,
    ecs: Ecs,
    observer: ObserverStart,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventAlert {
    kind: String,
    category: Vec<String>,
    r#type: Vec<String>,
    severity: u8,
    dataset: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FallacyField {
    id: u8,
    name: String,
    evidence: serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Endpoint {
    ip: std::net::IpAddr,
    port: u16,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Network {
    transport: String,
    #[serde(default)]
    protocol: Option<String>,
    community_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Alert {
    #[serde(rename = "@timestamp")]
    timestamp: String,
    event: EventAlert,
    rule: Rule,
    message: String,
    fallacy: FallacyField,
    #[serde(default)]
    source: Option<Endpoint>,
    #[serde(default)]
    destination: Option<Endpoint>,
    #[serde(default)]
    network: Option<Network>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventSummary {
    kind: String,
    action: String,
    category: Vec<String>,
    r#type: Vec<String>,
    dataset: String,
    start: String,
    end: String,
    duration: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkTotals {
    packets: u64,
    bytes: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputReport {
    path: String,
    status: String,
    packets: u64,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    gzip: Option<bool>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    unsupported_link_types: Option<serde_json::Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ObserverSummary {
    product: String,
    version: String,
    schema_version: u32,
    inputs: Vec<InputReport>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Summary {
    #[serde(rename = "@timestamp")]
    timestamp: String,
    event: EventSummary,
    message: String,
    network: NetworkTotals,
    observer: ObserverSummary,
    stats: serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventMetric {
    kind: String,
    action: String,
    category: Vec<String>,
    r#type: Vec<String>,
    dataset: String,
    start: String,
    end: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LatencyFields {
    metric: String,
    service: String,
    #[serde(default)]
    service_name: Option<String>,
    scope: String,
    count: u64,
    min_us: u64,
    p50_us: u64,
    p90_us: u64,
    p99_us: u64,
    p999_us: u64,
    max_us: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LatencyEvent {
    #[serde(rename = "@timestamp")]
    timestamp: String,
    event: EventMetric,
    message: String,
    destination: Endpoint,
    latency: LatencyFields,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InventoryFields {
    tls_offered: Vec<String>,
    tls_negotiated: Vec<String>,
    alpn: Vec<String>,
    http_request_versions: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InventoryEvent {
    #[serde(rename = "@timestamp")]
    timestamp: String,
    event: EventHeader,
    message: String,
    inventory: InventoryFields,
}

const METRICS: [&str; 6] = [
    "tcp.handshake",
    "tcp.rtt",
    "http.response",
    "http.response.complete",
    "dns.response",
    "tls.handshake",
];

const SLUGS: [&str; 8] = [
    "network-is-reliable",
    "latency-is-zero",
    "bandwidth-is-infinite",
    "network-is-secure",
    "topology-doesnt-change",
    "one-administrator",
    "transport-cost-is-zero",
    "network-is-homogeneous",
];

fn is_rfc3339_micros(s: &str) -> bool {
    // 2026-01-01T00:00:00.000000Z
    s.len() == 27
        && s.as_bytes()[4] == b'-'
        && s.as_bytes()[10] == b'T'
        && s.as_bytes()[19] == b'.'
        && s.ends_with('Z')
}

#[test]
fn every_line_follows_the_schema() {
    for cap in [
        "fixtures/constructed-tcp-health.pcap",
        "fixtures/loopback-tcp-health.pcap",
        "fixtures/reliability-loss.pcap",
        "fixtures/reliability-retry.pcap",
        "fixtures/reliability-dns.pcap",
        "fixtures/latency-http.pcap",
        "fixtures/latency-chatty.pcap",
        "fixtures/bandwidth-bulk.pcap",
        "fixtures/security-plaintext.pcap",
        "fixtures/security-tls.pcap",
    ] {
        let out = observer(&["analyze", "-q", cap]);
        let lines = ndjson(&out.stdout);
        assert!(lines.len() >= 2);
        let start: Start = serde_json::from_value(lines[0].clone()).expect("start event");
        assert_eq!(start.event.kind, "event");
        assert_eq!(start.event.action, "start");
        assert_eq!(start.observer.schema_version, 1);
        assert_eq!(start.observer.inputs, vec![cap.to_string()]);
        assert!(is_rfc3339_micros(&start.timestamp));
        for line in &lines[1..lines.len() - 1] {
            if line["event"]["action"] == "inventory" {
                let i: InventoryEvent = serde_json::from_value(line.clone())
                    .unwrap_or_else(|e| panic!("inventory event off schema ({e}): {line}"));
                assert_eq!(i.event.kind, "metric");
                continue;
            }
            if line["event"]["action"] == "latency" {
                let m: LatencyEvent = serde_json::from_value(line.clone())
                    .unwrap_or_else(|e| panic!("latency event off schema ({e}): {line}"));
                assert_eq!(m.event.kind, "metric");
                assert!(METRICS.contains(&m.latency.metric.as_str()));
                assert!(["interval", "run"].contains(&m.latency.scope.as_str()));
                let l = &m.latency;
                assert!(l.count > 0 && l.min_us <= l.p50_us && l.p50_us <= l.p90_us);
                assert!(l.p90_us <= l.p99_us && l.p99_us <= l.p999_us && l.p999_us <= l.max_us);
                continue;
            }
            let a: Alert = serde_json::from_value(line.clone())
                .unwrap_or_else(|e| panic!("finding does not follow the schema ({e}): {line}"));
            assert_eq!(a.event.kind, "alert");
            assert_eq!(a.event.category, vec!["network"]);
            assert!((1..=4).contains(&a.event.severity));
            assert!((1..=8).contains(&a.fallacy.id));
            assert_eq!(SLUGS[usize::from(a.fallacy.id - 1)], a.fallacy.name);
            assert!(a.rule.name.contains('.'));
            assert!(!a.message.is_empty());
            assert!(is_rfc3339_micros(&a.timestamp));
            if let Some(n) = &a.network {
                assert!(n.community_id.starts_with("1:"));
                assert!(a.source.is_some() && a.destination.is_some());
            }
        }
        let s: Summary =
            serde_json::from_value(lines.last().unwrap().clone()).expect("summary event");
        assert_eq!(
            (s.event.kind.as_str(), s.event.action.as_str()),
            ("metric", "summary")
        );
        assert!(s.network.packets > 0);
        let stats = Value::Object(s.stats);
        for key in [
            "flows.tcp",
            "flows.udp",
            "frames.undecodable",
            "findings.total",
        ]
        .iter()
        .map(|k| k.to_string())
        .chain(SLUGS.iter().map(|s| format!("findings.{s}")))
        {
            let mut v = &stats;
            for p in key.split('.') {
                v = &v[p];
            }
            assert!(v.is_u64(), "stats.{key} missing");
        }
    }
}
