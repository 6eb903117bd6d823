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
    /// `RUN-SEQ`, unique per event.
    id: String,
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
    /// `RUN-SEQ`, unique per event.
    id: String,
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
    /// `RUN-SEQ`, unique per event.
    id: String,
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
    /// `RUN-SEQ`, unique per event.
    id: String,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Failures {
    refused: u64,
    unreachable: u64,
    timed_out: u64,
    reset: u64,
    tls_alert: u64,
    http_5xx: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Dependency {
    owner: String,
    owner_source: String,
    names: Vec<String>,
    addresses: Vec<String>,
    services: Vec<String>,
    clients: Vec<String>,
    flows: u64,
    failed_flows: u64,
    bytes_sent: u64,
    bytes_received: u64,
    requests: u64,
    failures: Failures,
    first_seen: String,
    last_seen: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DependenciesEvent {
    #[serde(rename = "@timestamp")]
    timestamp: String,
    event: EventHeader,
    message: String,
    dependencies: Vec<Dependency>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CostPair {
    from_zone: String,
    to_zone: String,
    from_region: String,
    to_region: String,
    category: String,
    bytes: u64,
    packets: u64,
    flows: u64,
    usd: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Pricing {
    cross_zone_usd_per_gb: f64,
    inter_region_usd_per_gb: f64,
    internet_egress_usd_per_gb: f64,
    nat_gateway_usd_per_gb: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CostStats {
    bytes: Vec<CostPair>,
    usd: f64,
    usd_per_month: Option<f64>,
    observed_secs: f64,
    unmapped_bytes: u64,
    talkers_untracked: u64,
    group_flows: u64,
    pricing: Pricing,
}

const CATEGORIES: [&str; 8] = [
    "intra_zone",
    "cross_zone",
    "inter_region",
    "inter_provider",
    "internet_egress",
    "internet_ingress",
    "unmapped",
    "external",
];

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
    let mut dependency_events = 0;
    let mut cost_summaries = 0;
    for (cap, config) in [
        ("fixtures/constructed-tcp-health.pcap", None),
        ("fixtures/loopback-tcp-health.pcap", None),
        ("fixtures/reliability-loss.pcap", None),
        ("fixtures/reliability-retry.pcap", None),
        ("fixtures/reliability-dns.pcap", None),
        ("fixtures/latency-http.pcap", None),
        ("fixtures/latency-chatty.pcap", None),
        ("fixtures/bandwidth-bulk.pcap", None),
        ("fixtures/security-plaintext.pcap", None),
        ("fixtures/security-tls.pcap", None),
        ("fixtures/topology-endpoints.pcap", None),
        ("fixtures/topology-dns.pcap", None),
        ("fixtures/cost-zones.pcap", Some("fixtures/cost-zones.toml")),
    ] {
        let mut args = vec!["analyze", "-q"];
        if let Some(c) = config {
            args.extend(["--config", c]);
        }
        args.push(cap);
        let out = observer(&args);
        let lines = ndjson(&out.stdout);
        assert!(lines.len() >= 2);
        // Every event has a unique id: one run id, then 1, 2, 3… in output order.
        let run = lines[0]["event"]["id"]
            .as_str()
            .unwrap()
            .rsplit_once('-')
            .unwrap()
            .0;
        for (i, l) in lines.iter().enumerate() {
            assert_eq!(l["event"]["id"], format!("{run}-{}", i + 1), "{cap}: {l}");
        }
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
            if line["event"]["action"] == "dependencies" {
                let d: DependenciesEvent = serde_json::from_value(line.clone())
                    .unwrap_or_else(|e| panic!("dependencies event off schema ({e}): {line}"));
                assert_eq!(d.event.kind, "metric");
                assert!(is_rfc3339_micros(&d.timestamp));
                for o in &d.dependencies {
                    assert!(
                        ["config", "sni", "host", "dns", "address"]
                            .contains(&o.owner_source.as_str())
                    );
                    assert!(o.flows >= o.failed_flows);
                    assert!(is_rfc3339_micros(&o.first_seen) && is_rfc3339_micros(&o.last_seen));
                }
                dependency_events += 1;
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
        if let Some(c) = s.stats.get("cost") {
            let c: CostStats = serde_json::from_value(c.clone())
                .unwrap_or_else(|e| panic!("stats.cost off schema ({e}): {c}"));
            assert!(!c.bytes.is_empty() && c.observed_secs > 0.0);
            for p in &c.bytes {
                assert!(CATEGORIES.contains(&p.category.as_str()), "{}", p.category);
            }
            cost_summaries += 1;
        }
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
    assert_eq!(dependency_events, 13, "one dependencies event per run");
    assert_eq!(cost_summaries, 1, "stats.cost only with a zone map");
}
