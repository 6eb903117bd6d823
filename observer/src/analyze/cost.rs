//! Transport cost is zero (fallacy 7): bytes between zones and regions, and what they cost.
//!
//! Active only when the configuration has a zone map (`[[zone]]` tables: `cidr`, `zone`,
//! `region`, optional `provider` and `nat_gateway`). Every flow's IP bytes (the IP total
//! length of each packet, as the capture counts them; flows inside a UDP tunnel — VXLAN, Geneve,
//! Teredo — are left out, the tunnel's own flow counts, also when the capture holds their
//! packets plain as well, as `-i any` on a node does; inside GRE or IP-in-IP, which make no
//! flow of their own, the inner flows count, without the tunnel's headers) are added, per
//! direction, to the pair (zone of the sender, zone of the
//! receiver). Addresses outside every zone are `internet` when they are outside the internal
//! networks (`[networks]`), else `unmapped` (no price: the map is incomplete, said in the
//! summary). Flows to a multicast group or the broadcast address (mDNS, SSDP, DHCP) stay on
//! their link: they are not priced, only counted (`stats.cost.group_flows`).
//!
//! Prices (`[pricing]`, US dollars per GB = 10^9 bytes; defaults are 2026 list prices of the big
//! clouds, all overridable):
//! * same zone: free;
//! * another zone of the same region and provider: `cross_zone_usd_per_gb` (0.01) *each way*:
//!   the sender pays it out and the receiver pays it in, so a transfer costs twice that;
//! * another region of the same provider: `inter_region_usd_per_gb` (0.02), paid by the sender;
//! * the internet, or a zone of another provider: `internet_egress_usd_per_gb` (0.09), paid by
//!   the sender; traffic from the internet is free;
//! * through a NAT gateway (a zone with `nat_gateway = true` talking to the internet or to a
//!   zone of another provider): `nat_gateway_usd_per_gb` (0.045) on the bytes in both
//!   directions, on top.
//!
//! Reports at the end of the input: the bytes per pair and direction with their cost in the
//! summary (`stats.cost`), a `cost.zone_pair` finding per priced pair with the capture's cost and
//! the cost per 30-day month projected at the observed rate (severity by the monthly figure:
//! `[cost] medium_usd_per_month`, `high_usd_per_month`), and the `[cost] top_talkers` host
//! pairs that cost most as `cost.top_talker` findings.
//!
//! Deliberately not counted: non-TCP/UDP packets (ICMP, GRE carrying no IP), and link-layer
//! bytes. Not modelled: tiered volume discounts, PrivateLink, VPC peering prices, free tiers.

use super::{AFlow, Analyzer, Facts, FlowHalf, FlowInfo, PacketView};
use crate::config::{Config, CostSection, PricingSection};
use crate::finding::{Fallacy, Finding, FlowRef, Severity};
use crate::flow::EndReason;
use crate::time::{NANOS_PER_SEC, Timestamp};
use rustc_hash::FxHashMap;
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::hash_map::Entry;
use std::net::IpAddr;

const BYTES_PER_GB: f64 = 1e9;
const MONTH_SECS: f64 = 30.0 * 86_400.0;
const MAX_TALKERS: usize = 100_000;

/// The cost analyzer's per-flow state.
#[derive(Debug, Default)]
pub struct CostFlow {
    /// The flow was carried inside a UDP tunnel (the tunnel's own flow is counted instead).
    inner: bool,
}

impl CostFlow {
    /// A copy of one of the flow's packets came inside a UDP tunnel and was dropped as a
    /// duplicate of one captured plain (a capture on the tunnel's interface and the inner
    /// one, `tcpdump -i any` on a node): the flow is carried by the tunnel, whose own flow is
    /// priced, even though its analyzers never saw it tunnelled.
    pub(crate) fn note_tunnel_copy(&mut self) {
        self.inner = true;
    }
}

#[derive(Debug)]
struct Zone {
    name: String,
    region: String,
    provider: Option<String>,
    nat_gateway: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
enum Category {
    IntraZone,
    CrossZone,
    InterRegion,
    InterProvider,
    InternetEgress,
    InternetIngress,
    Unmapped,
    External,
}

impl Category {
    /// The category in a message: its name with hyphens (`internet-egress`).
    fn text(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(|s| s.replace('_', "-")))
            .unwrap_or_default()
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    bytes: u64,
    packets: u64,
    flows: u64,
}

#[derive(Debug)]
struct Talker {
    bytes: u64,
    pair: (u16, u16),
    biggest: (u64, (IpAddr, u16), (IpAddr, u16), u8),
}

/// The cost analyzer.
pub struct Cost {
    zones: Vec<Zone>,
    /// CIDR → zone index, longest prefix first.
    map: Vec<(crate::config::Cidr, u16)>,
    internal: crate::config::NetworksSection,
    pricing: PricingSection,
    cfg: CostSection,
    pairs: FxHashMap<(u16, u16), Totals>,
    talkers: FxHashMap<(IpAddr, IpAddr), Talker>,
    talkers_untracked: u64,
    /// Flows to a multicast group or the broadcast address: they stay on their link, so they
    /// are priced nowhere (see [`super::one_host`]).
    group_flows: u64,
    first: Option<Timestamp>,
    last: Option<Timestamp>,
}

#[derive(Serialize)]
struct PairEvidence<'a> {
    from_zone: &'a str,
    to_zone: &'a str,
    from_region: &'a str,
    to_region: &'a str,
    category: Category,
    bytes: u64,
    packets: u64,
    flows: u64,
    usd_per_gb: f64,
    usd: f64,
    usd_per_month: Option<f64>,
    observed_secs: f64,
}

#[derive(Serialize)]
struct TalkerEvidence<'a> {
    rank: usize,
    from_zone: &'a str,
    to_zone: &'a str,
    category: Category,
    bytes: u64,
    usd: f64,
    usd_per_month: Option<f64>,
    observed_secs: f64,
}

impl Cost {
    /// The talker `from → to` (`key`), new with `pair` and `biggest` if there is room; `None`
    /// (counted untracked) when the table is full.
    fn talker(
        &mut self,
        key: (IpAddr, IpAddr),
        pair: (u16, u16),
        biggest: (u64, (IpAddr, u16), (IpAddr, u16), u8),
    ) -> Option<&mut Talker> {
        let len = self.talkers.len();
        match self.talkers.entry(key) {
            Entry::Occupied(o) => Some(o.into_mut()),
            Entry::Vacant(v) if len < MAX_TALKERS => Some(v.insert(Talker {
                bytes: 0,
                pair,
                biggest,
            })),
            Entry::Vacant(_) => {
                self.talkers_untracked += 1;
                None
            }
        }
    }

    /// A new analyzer from the zone map, networks and prices of `cfg`.
    pub fn new(cfg: &Config) -> Self {
        let mut zones: Vec<Zone> = Vec::new();
        let mut map = Vec::new();
        for z in &cfg.zones {
            let idx = match zones.iter().position(|x| x.name == z.zone) {
                Some(i) => i,
                None => {
                    zones.push(Zone {
                        name: z.zone.clone(),
                        region: z.region.clone(),
                        provider: z.provider.clone(),
                        nat_gateway: z.nat_gateway,
                    });
                    zones.len() - 1
                }
            };
            map.push((z.cidr, idx as u16));
        }
        map.sort_by_key(|(c, _)| std::cmp::Reverse(c.prefix));
        Cost {
            zones,
            map,
            internal: cfg.networks.clone(),
            pricing: cfg.pricing.clone(),
            cfg: cfg.cost.clone(),
            pairs: FxHashMap::default(),
            talkers: FxHashMap::default(),
            talkers_untracked: 0,
            group_flows: 0,
            first: None,
            last: None,
        }
    }

    fn internet(&self) -> u16 {
        self.zones.len() as u16
    }

    fn unmapped(&self) -> u16 {
        self.zones.len() as u16 + 1
    }

    fn zone_of(&self, ip: IpAddr) -> u16 {
        match self.map.iter().find(|(c, _)| c.contains(ip)) {
            Some((_, z)) => *z,
            None if self.internal.is_internal(ip) => self.unmapped(),
            None => self.internet(),
        }
    }

    fn zone_name(&self, z: u16) -> &str {
        match self.zones.get(usize::from(z)) {
            Some(zone) => &zone.name,
            None if z == self.internet() => "internet",
            None => "unmapped",
        }
    }

    fn region_name(&self, z: u16) -> &str {
        match self.zones.get(usize::from(z)) {
            Some(zone) => &zone.region,
            None if z == self.internet() => "internet",
            None => "unmapped",
        }
    }

    /// The category of bytes sent from zone `a` to zone `b`, and their price per GB.
    fn price(&self, a: u16, b: u16) -> (Category, f64) {
        let p = &self.pricing;
        let (za, zb) = (
            self.zones.get(usize::from(a)),
            self.zones.get(usize::from(b)),
        );
        let nat = |z: Option<&Zone>| {
            if z.is_some_and(|z| z.nat_gateway) {
                p.nat_gateway_usd_per_gb
            } else {
                0.0
            }
        };
        if a == self.unmapped() || b == self.unmapped() {
            return (Category::Unmapped, 0.0);
        }
        match (za, zb) {
            (None, None) => (Category::External, 0.0),
            (Some(_), None) => (
                Category::InternetEgress,
                p.internet_egress_usd_per_gb + nat(za),
            ),
            (None, Some(_)) => (Category::InternetIngress, nat(zb)),
            (Some(x), Some(y)) => {
                if a == b {
                    (Category::IntraZone, 0.0)
                } else if x.provider.is_some() && y.provider.is_some() && x.provider != y.provider {
                    // Over the internet: through either side's NAT gateway.
                    (
                        Category::InterProvider,
                        p.internet_egress_usd_per_gb + nat(za) + nat(zb),
                    )
                } else if x.region != y.region {
                    (Category::InterRegion, p.inter_region_usd_per_gb)
                } else {
                    (Category::CrossZone, 2.0 * p.cross_zone_usd_per_gb)
                }
            }
        }
    }

    fn observed_secs(&self) -> f64 {
        match (self.first, self.last) {
            (Some(a), Some(b)) => b.since(a) as f64 / NANOS_PER_SEC as f64,
            _ => 0.0,
        }
    }

    fn per_month(&self, usd: f64) -> Option<f64> {
        let s = self.observed_secs();
        (s >= 1.0).then(|| usd * MONTH_SECS / s)
    }

    fn severity(&self, per_month: Option<f64>) -> Severity {
        match per_month {
            Some(m) if m >= self.cfg.high_usd_per_month => Severity::High,
            Some(m) if m >= self.cfg.medium_usd_per_month => Severity::Medium,
            _ => Severity::Low,
        }
    }

    fn sorted_pairs(&self) -> Vec<((u16, u16), Totals)> {
        let mut v: Vec<((u16, u16), Totals)> = self.pairs.iter().map(|(k, t)| (*k, *t)).collect();
        v.sort_by(|a, b| b.1.bytes.cmp(&a.1.bytes).then(a.0.cmp(&b.0)));
        v
    }
}

fn money(usd: f64) -> String {
    if usd >= 100.0 {
        format!("${usd:.0}")
    } else if usd >= 0.01 {
        format!("${usd:.2}")
    } else {
        format!("${usd:.6}")
    }
}

/// The cost analyzer's per-flow half: whether the flow travelled inside a tunnel (noted only
/// when zones are configured).
pub(crate) struct Half {
    on: bool,
}

impl Half {
    /// The half for `cfg`.
    pub(crate) fn new(cfg: &Config) -> Half {
        Half {
            on: !cfg.zones.is_empty(),
        }
    }
}

impl FlowHalf for Half {
    fn on_packet(
        &self,
        pkt: &PacketView<'_>,
        flow: &mut AFlow,
        _facts: &mut Facts,
        _notes: &mut Vec<super::Note>,
        _out: &mut Vec<Finding>,
    ) {
        if self.on && pkt.ip.outer.is_some() {
            flow.ext.cost.inner = true;
        }
    }
}

impl Analyzer for Cost {
    fn name(&self) -> &'static str {
        "cost"
    }

    fn on_packet(
        &mut self,
        pkt: &PacketView<'_>,
        _flow: &FlowInfo,
        _facts: &Facts,
        _out: &mut Vec<Finding>,
    ) {
        if self.zones.is_empty() {
            return;
        }
        if self.first.is_none() {
            self.first = Some(pkt.ts);
        }
        self.last = self.last.max(Some(pkt.ts));
    }

    fn on_fragment_bytes(&mut self, frags: &super::FragmentBytes, _out: &mut Vec<Finding>) {
        // Fragments no flow got (their ports not known): their bytes still crossed from the
        // source's zone to the destination's, counted in the pair and its talker (no flow).
        if self.zones.is_empty() || !super::one_host(frags.dst) {
            return;
        }
        if self.first.is_none() {
            self.first = Some(frags.ts);
        }
        self.last = self.last.max(Some(frags.ts));
        let (zf, zt) = (self.zone_of(frags.src), self.zone_of(frags.dst));
        let t = self.pairs.entry((zf, zt)).or_default();
        t.bytes += frags.bytes;
        t.packets += frags.packets;
        if zf == zt || self.price(zf, zt).1 == 0.0 {
            return;
        }
        let biggest = (0, (frags.src, 0), (frags.dst, 0), frags.proto);
        if let Some(tk) = self.talker((frags.src, frags.dst), (zf, zt), biggest) {
            tk.bytes += frags.bytes;
        }
    }

    fn on_flow_end(&mut self, flow: &mut AFlow, _reason: EndReason, _out: &mut Vec<Finding>) {
        if self.zones.is_empty() || flow.ext.cost.inner {
            return;
        }
        let (c, s) = (flow.client(), flow.server());
        if !super::one_host(s.0) {
            self.group_flows += 1;
            return;
        }
        let (zc, zs) = (self.zone_of(c.0), self.zone_of(s.0));
        let cd = flow.client_dir();
        for (from, to, zf, zt, d) in [(c, s, zc, zs, cd), (s, c, zs, zc, cd.rev())] {
            let (bytes, packets) = (flow.bytes[d.idx()], flow.packets[d.idx()]);
            if packets == 0 {
                continue;
            }
            let t = self.pairs.entry((zf, zt)).or_default();
            t.bytes += bytes;
            t.packets += packets;
            t.flows += 1;
            if zf == zt || self.price(zf, zt).1 == 0.0 {
                continue;
            }
            let Some(tk) = self.talker((from.0, to.0), (zf, zt), (0, c, s, flow.key.proto)) else {
                continue;
            };
            tk.bytes += bytes;
            if bytes > tk.biggest.0 {
                tk.biggest = (bytes, c, s, flow.key.proto);
            }
        }
    }

    fn finish(&mut self, now: Timestamp, out: &mut Vec<Finding>) {
        if self.zones.is_empty() {
            return;
        }
        if self.first.is_some() {
            self.last = self.last.max(Some(now));
        }
        let observed = self.observed_secs();
        for ((a, b), t) in self.sorted_pairs() {
            let (category, per_gb) = self.price(a, b);
            if per_gb == 0.0 {
                continue;
            }
            let usd = t.bytes as f64 / BYTES_PER_GB * per_gb;
            let per_month = self.per_month(usd);
            let (fz, tz) = (self.zone_name(a), self.zone_name(b));
            let month_text = match per_month {
                Some(m) => format!("{}/month at this rate", money(m)),
                None => "too short a capture to project a month".to_string(),
            };
            let ev = PairEvidence {
                from_zone: fz,
                to_zone: tz,
                from_region: self.region_name(a),
                to_region: self.region_name(b),
                category,
                bytes: t.bytes,
                packets: t.packets,
                flows: t.flows,
                usd_per_gb: per_gb,
                usd,
                usd_per_month: per_month,
                observed_secs: observed,
            };
            out.push(Finding {
                ts: self.first.unwrap_or(now),
                rule: "cost.zone_pair",
                severity: self.severity(per_month),
                fallacy: Fallacy::TransportCostIsZero,
                message: format!(
                    "{fz} -> {tz} ({}): {} bytes in {observed:.1} s at ${per_gb}/GB cost {}, {month_text}",
                    category.text(),
                    t.bytes,
                    money(usd)
                ),
                flow: None,
                evidence: Finding::evidence_from(&ev),
            });
        }
        let mut talkers: Vec<(&(IpAddr, IpAddr), &Talker, f64)> = self
            .talkers
            .iter()
            .map(|(k, t)| {
                let per_gb = self.price(t.pair.0, t.pair.1).1;
                (k, t, t.bytes as f64 / BYTES_PER_GB * per_gb)
            })
            .collect();
        talkers.sort_by(|x, y| y.2.total_cmp(&x.2).then(x.0.cmp(y.0)));
        for (rank, ((src, dst), t, usd)) in
            talkers.into_iter().take(self.cfg.top_talkers).enumerate()
        {
            let per_month = self.per_month(usd);
            let (category, _) = self.price(t.pair.0, t.pair.1);
            let (fz, tz) = (self.zone_name(t.pair.0), self.zone_name(t.pair.1));
            let ev = TalkerEvidence {
                rank: rank + 1,
                from_zone: fz,
                to_zone: tz,
                category,
                bytes: t.bytes,
                usd,
                usd_per_month: per_month,
                observed_secs: observed,
            };
            let (_, c, s, proto) = t.biggest;
            out.push(Finding {
                ts: self.first.unwrap_or(now),
                rule: "cost.top_talker",
                severity: self.severity(per_month),
                fallacy: Fallacy::TransportCostIsZero,
                message: format!(
                    "#{} {} talker: {src} ({fz}) sent {} bytes to {dst} ({tz}) costing {}{}",
                    rank + 1,
                    category.text(),
                    t.bytes,
                    money(usd),
                    per_month
                        .map(|m| format!(", {}/month at this rate", money(m)))
                        .unwrap_or_default()
                ),
                flow: Some(FlowRef::new(c, s, proto)),
                evidence: Finding::evidence_from(&ev),
            });
        }
    }

    fn summary(&self, stats: &mut Map<String, Value>) {
        if self.zones.is_empty() {
            return;
        }
        let mut total = 0.0;
        let mut unmapped_bytes = 0;
        let bytes: Vec<Value> = self
            .sorted_pairs()
            .into_iter()
            .map(|((a, b), t)| {
                let (category, per_gb) = self.price(a, b);
                let usd = t.bytes as f64 / BYTES_PER_GB * per_gb;
                total += usd;
                if category == Category::Unmapped {
                    unmapped_bytes += t.bytes;
                }
                json!({
                    "from_zone": self.zone_name(a),
                    "to_zone": self.zone_name(b),
                    "from_region": self.region_name(a),
                    "to_region": self.region_name(b),
                    "category": category,
                    "bytes": t.bytes,
                    "packets": t.packets,
                    "flows": t.flows,
                    "usd": usd,
                })
            })
            .collect();
        stats.insert(
            "cost".into(),
            json!({
                "bytes": bytes,
                "usd": total,
                "usd_per_month": self.per_month(total),
                "observed_secs": self.observed_secs(),
                "unmapped_bytes": unmapped_bytes,
                "talkers_untracked": self.talkers_untracked,
                "group_flows": self.group_flows,
                "pricing": {
                    "cross_zone_usd_per_gb": self.pricing.cross_zone_usd_per_gb,
                    "inter_region_usd_per_gb": self.pricing.inter_region_usd_per_gb,
                    "internet_egress_usd_per_gb": self.pricing.internet_egress_usd_per_gb,
                    "nat_gateway_usd_per_gb": self.pricing.nat_gateway_usd_per_gb,
                },
            }),
        );
    }
}
