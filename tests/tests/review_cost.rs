//! Review of the transport cost analyzer (fallacy 7) and the zone map, prices and error
//! messages of its configuration, with the zone maps an SRE writes for a cloud region: the
//! bytes built here packet by packet, the prices the documented ones (US dollars per 10^9
//! bytes), every expected figure computed from the construction.

use observer::config::Config;
use observer_tests::tcp_flags::{ACK, FIN, SYN};
use observer_tests::{PcapBuilder, analyze_built_with, message, with_rule};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

const CROSS_ZONE_EACH_WAY: f64 = 0.01;
const INTERNET_EGRESS: f64 = 0.09;

/// IPv4 + TCP headers (no options), and IPv6 + TCP.
const V4: u64 = 40;
const V6: u64 = 60;

/// AWS-like: three zones of eu-west-1 as /20s of the VPC, the rest of the VPC's /16 mapped to
/// a third zone, a host route (/32) of an instance of az1 whose address lies in that /16, and
/// the VPC's IPv6 /56s. Every table header carries a comment, as in the README's example.
const ZONES: &str = r#"
[[zone]]                      # eu-west-1a
cidr = "10.0.0.0/20"
zone = "euw1-az1"
region = "eu-west-1"
provider = "aws"

[[zone]]                      # eu-west-1b
cidr = "10.0.16.0/20"
zone = "euw1-az2"
region = "eu-west-1"
provider = "aws"

[[zone]]                      # the rest of the VPC lives in eu-west-1c
cidr = "10.0.0.0/16"
zone = "euw1-az3"
region = "eu-west-1"
provider = "aws"

[[zone]]                      # an ENI of az1 with a secondary address in the /16
cidr = "10.0.40.7/32"
zone = "euw1-az1"
region = "eu-west-1"
provider = "aws"

[[zone]]
cidr = "2a05:d018:1:a00::/56"
zone = "euw1-az1"
region = "eu-west-1"
provider = "aws"

[[zone]]
cidr = "2a05:d018:1:b00::/56"
zone = "euw1-az2"
region = "eu-west-1"
provider = "aws"
"#;

/// An IPv6 TCP segment (no options), built here.
#[allow(clippy::too_many_arguments)]
fn tcp6(
    b: &mut PcapBuilder,
    t: f64,
    src: (&str, u16),
    dst: (&str, u16),
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) {
    let a: std::net::Ipv6Addr = src.0.parse().unwrap();
    let z: std::net::Ipv6Addr = dst.0.parse().unwrap();
    let p = observer_tests::with_tcp_flags(
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv6(a.octets(), z.octets(), 64)
            .tcp(src.1, dst.1, seq, 64240),
        ack,
        flags,
    );
    let mut frame = Vec::new();
    p.write(&mut frame, payload).unwrap();
    b.frame(t, &frame);
}

/// The bytes each directed zone pair should carry, from the construction.
#[derive(Default)]
struct Want(BTreeMap<(&'static str, &'static str), (u64, u64)>);

impl Want {
    /// A session (`PcapBuilder::session`) of `steps` client segments of `payload` bytes and
    /// nothing from the server: 4 + steps segments one way, 2 the other.
    fn session(&mut self, cz: &'static str, sz: &'static str, hdr: u64, steps: u64, payload: u64) {
        self.add(cz, sz, 4 * hdr + steps * (hdr + payload));
        self.add(sz, cz, 2 * hdr);
    }
    fn add(&mut self, from: &'static str, to: &'static str, bytes: u64) {
        let e = self.0.entry((from, to)).or_default();
        e.0 += bytes;
        e.1 += 1;
    }
}

fn row<'a>(ev: &'a [Value], from: &str, to: &str) -> &'a Value {
    let rows = ev.last().unwrap()["stats"]["cost"]["bytes"]
        .as_array()
        .expect("stats.cost.bytes");
    rows.iter()
        .find(|r| r["from_zone"] == from && r["to_zone"] == to)
        .unwrap_or_else(|| panic!("no {from} -> {to} in {rows:#?}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs() + 1e-15
}

/// A capture of a region: cross-zone both ways (IPv4 and IPv6), same-zone, the /16's
/// longest-prefix question, a /32 host route, internet egress.
fn region() -> (PcapBuilder, Want) {
    let mut b = PcapBuilder::default();
    let mut w = Want::default();
    let kb = vec![b'x'; 1000];
    let half = vec![b'y'; 500];
    // az1 -> az2, two 1,000-byte segments.
    b.session(
        0.0,
        ("10.0.0.10", 40000),
        ("10.0.16.20", 443),
        &[(true, &kb), (true, &kb)],
    );
    w.session("euw1-az1", "euw1-az2", V4, 2, 1000);
    // Same zone: free.
    b.session(
        0.1,
        ("10.0.0.10", 40001),
        ("10.0.0.11", 443),
        &[(true, &kb)],
    );
    w.session("euw1-az1", "euw1-az1", V4, 1, 1000);
    // az2 -> the az1 instance's /32 inside the /16 (longest prefix: az1, not az3).
    b.session(
        0.2,
        ("10.0.16.20", 40002),
        ("10.0.40.7", 8080),
        &[(true, &half)],
    );
    w.session("euw1-az2", "euw1-az1", V4, 1, 500);
    // az3 (the /16 only) -> az2 (its /20 wins over the /16).
    b.session(
        0.3,
        ("10.0.200.1", 40003),
        ("10.0.17.1", 8080),
        &[(true, &half)],
    );
    w.session("euw1-az3", "euw1-az2", V4, 1, 500);
    // az1 -> the internet.
    b.session(
        0.4,
        ("10.0.0.10", 40004),
        ("203.0.113.10", 443),
        &[(true, &kb)],
    );
    w.session("euw1-az1", "internet", V4, 1, 1000);
    // IPv6 az1 -> az2, one 1,000-byte segment, then a FIN exchange.
    let (c, s) = (("2a05:d018:1:a00::10", 40005), ("2a05:d018:1:b00::20", 443));
    tcp6(&mut b, 0.5, c, s, 100, 0, SYN, &[]);
    tcp6(&mut b, 0.501, s, c, 500, 101, SYN | ACK, &[]);
    tcp6(&mut b, 0.502, c, s, 101, 501, ACK, &[]);
    tcp6(&mut b, 0.503, c, s, 101, 501, ACK, &kb);
    tcp6(&mut b, 0.504, c, s, 1101, 501, FIN | ACK, &[]);
    tcp6(&mut b, 0.505, s, c, 501, 1102, FIN | ACK, &[]);
    tcp6(&mut b, 0.506, c, s, 1102, 502, ACK, &[]);
    w.session("euw1-az1", "euw1-az2", V6, 1, 1000);
    (b, w)
}

#[test]
fn a_region_is_priced_by_longest_prefix_each_way_and_same_zone_is_free() {
    let (b, want) = region();
    let ev = analyze_built_with(&b, "review-cost-region.pcap", ZONES);
    let mut total = 0.0;
    for (&(from, to), &(bytes, flows)) in &want.0 {
        let r = row(&ev, from, to);
        assert_eq!(r["bytes"], bytes, "{from} -> {to}: {r}");
        assert_eq!(r["flows"], flows, "{from} -> {to}: {r}");
        let per_gb = match (from, to) {
            (a, b) if a == b => 0.0,
            ("internet", _) => 0.0,
            (_, "internet") => INTERNET_EGRESS,
            _ => 2.0 * CROSS_ZONE_EACH_WAY,
        };
        let usd = bytes as f64 / 1e9 * per_gb;
        assert!(
            close(r["usd"].as_f64().unwrap(), usd),
            "{from} -> {to}: {r}"
        );
        total += usd;
    }
    let rows = ev.last().unwrap()["stats"]["cost"]["bytes"]
        .as_array()
        .unwrap();
    assert_eq!(rows.len(), want.0.len(), "{rows:#?}");
    assert!(close(
        ev.last().unwrap()["stats"]["cost"]["usd"].as_f64().unwrap(),
        total
    ));
    // A finding per priced pair: not same-zone, not from the internet.
    let zp = with_rule(&ev, "cost.zone_pair");
    let priced = want
        .0
        .keys()
        .filter(|(a, b)| a != b && *a != "internet")
        .count();
    assert_eq!(zp.len(), priced, "{zp:#?}");
    assert!(
        zp.iter()
            .all(|f| f["fallacy"]["evidence"]["from_zone"] != f["fallacy"]["evidence"]["to_zone"])
    );
}

#[test]
fn a_top_talker_is_named_by_its_own_category() {
    let (b, want) = region();
    let ev = analyze_built_with(&b, "review-cost-talkers.pcap", ZONES);
    // The costliest host pair is the egress one (1,080 IP bytes at 0.09 against at most
    // 2,240 at 0.02).
    let egress = want.0[&("euw1-az1", "internet")].0;
    let top = with_rule(&ev, "cost.top_talker");
    let first = top
        .iter()
        .find(|t| t["fallacy"]["evidence"]["rank"] == 1)
        .expect("rank 1");
    let e = &first["fallacy"]["evidence"];
    assert_eq!(e["category"], "internet_egress", "{first:#}");
    assert_eq!(e["bytes"], egress);
    let msg = message(first);
    assert!(
        !msg.contains("cross-zone") && msg.contains("internet-egress"),
        "an egress talker is not a cross-zone one: {msg}"
    );
    for t in &top {
        let cat = t["fallacy"]["evidence"]["category"].as_str().unwrap();
        assert!(message(t).contains(&cat.replace('_', "-")), "{t:#}");
    }
}

fn config_error(text: &str) -> String {
    match Config::parse(Path::new("zones.toml"), text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn zone_and_owner_errors_name_their_line_under_commented_headers() {
    // The README's own example writes `[[zone]]   # comment`.
    let text = "[[zone]]   # eu-west-1a\ncidr = \"10.0.0.0/20\"\nzone = \"euw1-az1\"\nregion = \"eu-west-1\"\n\n[[zone]]   # eu-west-1b\ncidr = \"10.0.16.0/20\"\nzone = \"euw1-az2\"\nregion = \"\"\n";
    let e = config_error(text);
    assert!(e.contains("line 6: `zone[1]`"), "{e}");
    let text = "[[owner]]   # the payments SaaS\nname = \"\"\nsuffixes = [\"stripe.com\"]\n";
    let e = config_error(text);
    assert!(e.contains("line 1: `owner[0]`"), "{e}");
    // Two zones of one name in two regions: the second table's line is where it is given.
    let text = "[[zone]] # a\ncidr = \"10.0.0.0/20\"\nzone = \"a\"\nregion = \"eu-west-1\"\n[[zone]] # b\ncidr = \"10.0.16.0/20\"\nzone = \"a\"\nregion = \"us-east-1\"\n";
    let e = config_error(text);
    assert!(e.contains("line 1: `zone[0].region`"), "{e}");
}

#[test]
fn a_bad_value_is_reported_at_its_own_line() {
    // The same key name in two sections: the bad one is the second.
    let text =
        "[tcp_health]\nreport_after_idle_secs = 60\n\n[dependencies]\nreport_after_idle_secs = 0\n";
    let e = config_error(text);
    assert!(
        e.contains("line 5: `dependencies.report_after_idle_secs`"),
        "{e}"
    );
    // A dotted key at the top level.
    let e = config_error("# prices\npricing.cross_zone_usd_per_gb = -0.01\n");
    assert!(e.contains("line 2: `pricing.cross_zone_usd_per_gb`"), "{e}");
    // A key in a comment above the real one.
    let e = config_error(
        "[pricing]\n# cross_zone_usd_per_gb = 0.01 is the list price\ncross_zone_usd_per_gb = -0.01\n",
    );
    assert!(e.contains("line 3: `pricing.cross_zone_usd_per_gb`"), "{e}");
}

#[test]
fn a_cidr_with_host_bits_is_an_error_not_another_network() {
    // Meant eu-west-1b's /20, typed /12: taken as 10.0.0.0/12, it would price another VPC's
    // 10.1.0.0/16 as eu-west-1b.
    let text = "[[zone]]\nzone = \"euw1-az2\"\ncidr = \"10.0.16.0/12\"\nregion = \"eu-west-1\"\n";
    let e = config_error(text);
    assert!(
        e.contains("10.0.16.0/12") && e.contains("host bits") && e.contains("line 3"),
        "{e}"
    );
    for (text, cidr) in [
        ("[networks]\ninternal = [\"10.0.0.1/8\"]\n", "10.0.0.1/8"),
        (
            "[[owner]]\nname = \"x\"\ncidrs = [\"2001:db8::1/64\"]\n",
            "2001:db8::1/64",
        ),
    ] {
        let e = config_error(text);
        assert!(e.contains(cidr) && e.contains("host bits"), "{e}");
    }
    // A network address, a host route and the whole space are fine.
    for cidr in [
        "10.0.16.0/20",
        "10.0.40.7/32",
        "10.0.40.7",
        "0.0.0.0/0",
        "::/0",
    ] {
        let text = format!("[[zone]]\ncidr = \"{cidr}\"\nzone = \"a\"\nregion = \"r\"\n");
        Config::parse(Path::new("z.toml"), &text).unwrap_or_else(|e| panic!("{cidr}: {e}"));
    }
}

#[test]
fn one_network_in_two_zones_is_an_error() {
    let text = "[[zone]]\ncidr = \"10.0.0.0/20\"\nzone = \"euw1-az1\"\nregion = \"eu-west-1\"\n\n[[zone]]\ncidr = \"10.0.0.0/20\"\nzone = \"euw1-az2\"\nregion = \"eu-west-1\"\n";
    let e = config_error(text);
    assert!(
        e.contains("line 6: `zone[1].cidr`") && e.contains("10.0.0.0/20") && e.contains("euw1-az1"),
        "{e}"
    );
}

#[test]
fn one_zone_given_two_providers_or_nat_settings_is_an_error() {
    // A private subnet of az1 behind a NAT gateway, listed after az1's public subnet: the zone
    // took the first table's `nat_gateway = false` and its NAT charges were silently dropped.
    let text = "[[zone]]\ncidr = \"10.0.0.0/20\"\nzone = \"euw1-az1\"\nregion = \"eu-west-1\"\n\n[[zone]]\ncidr = \"10.0.128.0/20\"\nzone = \"euw1-az1\"\nregion = \"eu-west-1\"\nnat_gateway = true\n";
    let e = config_error(text);
    assert!(e.contains("line 1: `zone[0].nat_gateway`"), "{e}");
    let text = "[[zone]]\ncidr = \"10.0.0.0/20\"\nzone = \"z\"\nregion = \"r\"\nprovider = \"aws\"\n\n[[zone]]\ncidr = \"10.0.16.0/20\"\nzone = \"z\"\nregion = \"r\"\nprovider = \"gcp\"\n";
    let e = config_error(text);
    assert!(
        e.contains("line 1: `zone[0].provider`") && e.contains("aws") && e.contains("gcp"),
        "{e}"
    );
}

#[test]
fn a_nat_zone_pays_its_gateway_on_traffic_to_another_provider() {
    // Zones of different providers talk over the internet, so a zone behind a NAT gateway
    // reaches the other provider's zone through it, both ways.
    let zones = r#"
[[zone]]                      # private subnet of eu-west-1a, out through a NAT gateway
cidr = "10.0.128.0/20"
zone = "euw1-az1"
region = "eu-west-1"
provider = "aws"
nat_gateway = true

[[zone]]                      # a GCP zone, reached at its public addresses
cidr = "34.140.0.0/16"
zone = "europe-west1-b"
region = "europe-west1"
provider = "gcp"
"#;
    const NAT: f64 = 0.045;
    let mut b = PcapBuilder::default();
    let kb = vec![b'x'; 1000];
    b.session(
        0.0,
        ("10.0.128.10", 40000),
        ("34.140.1.2", 443),
        &[(true, &kb), (false, &kb), (false, &kb)],
    );
    // Client: SYN, ACK, 1 data, FIN, ACK; server: SYN/ACK, 2 data, FIN.
    let up = 4 * V4 + (V4 + 1000);
    let down = 2 * V4 + 2 * (V4 + 1000);
    let ev = analyze_built_with(&b, "review-cost-nat-provider.pcap", zones);
    for (from, to, bytes) in [
        ("euw1-az1", "europe-west1-b", up),
        ("europe-west1-b", "euw1-az1", down),
    ] {
        let r = row(&ev, from, to);
        assert_eq!(r["category"], "inter_provider");
        assert_eq!(r["bytes"], bytes);
        // Each way: the sender's egress, and the NAT gateway's processing.
        let usd = bytes as f64 / 1e9 * (INTERNET_EGRESS + NAT);
        assert!(
            close(r["usd"].as_f64().unwrap(), usd),
            "{from} -> {to}: {r}"
        );
    }
}
