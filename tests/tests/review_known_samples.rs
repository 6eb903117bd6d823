//! Review of defects left known in fragment accounting (fragments that reach no flow: a
//! datagram whose first fragment never came, late fragments of a datagram given up, fragments
//! refused by a full reassembly table; a first fragment given up late, taken for the clock
//! stepping back; each fragment's framing), in the line bytes of VLAN-tagged frames against a
//! link's capacity, in latency samples dropped without a count (negative ones, services beyond
//! `max_services`), in a live run's first latency interval, and in N+1 loops over a connection
//! pool of more than four connections.
//! Every capture is built here packet by packet; the expected values follow from the
//! construction (tshark as a second oracle where it applies); each test failed before its fix.

use etherparse::PacketBuilder;
use observer_tests::{
    Conn, PcapBuilder, ScratchFile, analyze_built_with, dns_a_query, dns_a_response, have,
    ipv4_fragment, stat, tshark_fields, with_rule,
};
use serde_json::Value;

const C: &str = "10.99.1.5";
const S: &str = "10.99.2.5";

const ZONES: &str = r#"
[[zone]]
cidr = "10.99.1.0/24"
zone = "use1-az1"
region = "us-east-1"
provider = "aws"

[[zone]]
cidr = "10.99.2.0/24"
zone = "use1-az2"
region = "us-east-1"
provider = "aws"
"#;

/// A UDP datagram `C:5000 → S:6000` of 4,000 payload bytes (an IPv4 packet of 4,028 bytes),
/// its bytes telling `n` apart.
fn big_datagram(n: u8) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4([10, 99, 1, 5], [10, 99, 2, 5], 64)
        .udp(5000, 6000)
        .write(&mut v, &[n; 4000])
        .expect("packet builds");
    v
}

/// tshark's sum of `ip.len` over the capture `b` (the IP bytes the wire carried).
fn tshark_ip_bytes(b: &PcapBuilder, name: &str) -> Option<u64> {
    if !have("tshark") {
        return None;
    }
    let f = ScratchFile::new(name, &b.finish());
    Some(
        tshark_fields(&f.to_string_lossy(), &["ip.len"], "")
            .lines()
            .map(|l| l.trim().parse::<u64>().expect("an ip.len"))
            .sum(),
    )
}

/// The `az1 → az2` zone pair's bytes in the summary's `stats.cost.bytes`.
fn pair_bytes(ev: &[Value]) -> u64 {
    let summary = ev.last().expect("a summary");
    let pairs = summary["stats"]["cost"]["bytes"]
        .as_array()
        .unwrap_or_else(|| panic!("stats.cost.bytes: {summary:#}"));
    pairs
        .iter()
        .find(|p| p["from_zone"] == "use1-az1" && p["to_zone"] == "use1-az2")
        .unwrap_or_else(|| panic!("no az1 → az2 pair: {pairs:#?}"))["bytes"]
        .as_u64()
        .expect("bytes")
}

/// Three datagrams of 4,028 IP bytes `C → S`, each sent as three fragments of 1,500, 1,500
/// and 1,068 IP bytes:
/// * the first whole (4,068 bytes on the wire);
/// * the second without its first fragment (a capture filtered by port keeps only first
///   fragments; here the opposite, the first was lost): 1,500 + 1,068 = 2,568 bytes;
/// * the third's last fragment 4 s late, after the datagram was given up (its first two,
///   3,000 bytes, analyzed as its first fragment alone), then 1,068 bytes more.
///
/// The wire carried 4,068 + 2,568 + 4,068 = 10,704 IP bytes from C to S (tshark's `ip.len`
/// sum says the same). Right: the link's bytes and the zone pair's are 10,704, each fragment
/// counted once. Wrong (before the fix): 4,068 + 3,000 = 7,068 — the second datagram's
/// fragments and the third's late one reached no byte total.
#[test]
fn fragments_that_reach_no_flow_still_count_on_the_wire() {
    let mut b = PcapBuilder::default();
    let whole = big_datagram(0);
    b.frame(0.1, &ipv4_fragment(&whole, 100, 0, 1480, true))
        .frame(0.101, &ipv4_fragment(&whole, 100, 1480, 2960, true))
        .frame(0.102, &ipv4_fragment(&whole, 100, 2960, 4008, false));
    let headless = big_datagram(1);
    b.frame(0.2, &ipv4_fragment(&headless, 101, 1480, 2960, true))
        .frame(0.201, &ipv4_fragment(&headless, 101, 2960, 4008, false));
    let late = big_datagram(2);
    b.frame(0.3, &ipv4_fragment(&late, 102, 0, 1480, true))
        .frame(0.301, &ipv4_fragment(&late, 102, 1480, 2960, true))
        .frame(4.3, &ipv4_fragment(&late, 102, 2960, 4008, false));
    let wire: u64 = 4068 + 2568 + 4068;
    if let Some(sum) = tshark_ip_bytes(&b, "orphans-oracle.pcap") {
        assert_eq!(sum, wire, "tshark's ip.len sum");
    }
    let ev = analyze_built_with(&b, "orphans.pcap", ZONES);
    assert_eq!(stat(&ev, "ip.fragments"), 8);
    assert_eq!(stat(&ev, "ip.reassembled"), 1);
    assert_eq!(stat(&ev, "ip.reassembly_incomplete"), 2);
    assert_eq!(stat(&ev, "bandwidth.bytes"), wire, "the link's IP bytes");
    assert_eq!(pair_bytes(&ev), wire, "the zone pair's IP bytes");
}

/// 4,096 first fragments (68 IP bytes each: 48 bytes of payload) of datagrams whose rest never
/// comes fill the reassembly table; then the second fragment (1,500 IP bytes) of another
/// datagram is refused by the full table. The wire carried 4,096 × 68 + 1,500 = 280,028 IP
/// bytes. Right: all of them on the link and in the zone pair. Wrong (before the fix):
/// 278,528 — the refused fragment reached no total.
#[test]
fn a_fragment_refused_by_a_full_table_still_counts_on_the_wire() {
    let ip = big_datagram(3);
    let mut b = PcapBuilder::default();
    for id in 0..4096u16 {
        b.frame(f64::from(id) * 1e-5, &ipv4_fragment(&ip, id, 0, 48, true));
    }
    b.frame(0.05, &ipv4_fragment(&ip, 5000, 1480, 2960, true));
    let wire: u64 = 4096 * 68 + 1500;
    if let Some(sum) = tshark_ip_bytes(&b, "refused-oracle.pcap") {
        assert_eq!(sum, wire, "tshark's ip.len sum");
    }
    let ev = analyze_built_with(&b, "refused.pcap", ZONES);
    assert_eq!(stat(&ev, "limits.fragments_untracked"), 1);
    assert_eq!(stat(&ev, "bandwidth.bytes"), wire, "the link's IP bytes");
    assert_eq!(pair_bytes(&ev), wire, "the zone pair's IP bytes");
}

/// A flood of the smallest UDP datagrams (18 payload bytes, 46 IP bytes) in frames carrying one
/// 802.1Q tag: 14 + 4 + 46 = 64 bytes each (tshark's `frame.len`), no padding needed. On the
/// wire each takes 64 + 4 (FCS) + 8 (preamble, delimiter) + 12 (gap) = 88 bytes; one every
/// 100 µs for 2 s is 10,000 × 88 × 8 = 7.04 Mbit/s, the link's configured capacity. Threshold
/// 96 %.
///
/// Right: a saturation at 100 % (peak 1 s rate 7.04 Mbit/s). Wrong (before the fix): the tag
/// left out, 84 bytes a frame, 6.72 Mbit/s = 95.5 % of the capacity: no saturation.
#[test]
fn a_vlan_tag_counts_in_a_frames_line_bytes() {
    let mut b = PcapBuilder::default();
    for i in 0..20_000u32 {
        let t = 1.0 + f64::from(i) * 0.0001;
        let mut p = [0u8; 18];
        p[..4].copy_from_slice(&i.to_be_bytes());
        let mut plain = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 99, 2, 5], [10, 99, 3, 1], 64)
            .udp(5000, 9000)
            .write(&mut plain, &p)
            .expect("frame builds");
        // The tag goes after the addresses: TPID 0x8100, VLAN 10, then the IPv4 EtherType.
        let mut frame = plain[..12].to_vec();
        frame.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
        frame.extend_from_slice(&plain[12..]);
        b.frame(t, &frame);
    }
    if have("tshark") {
        let f = ScratchFile::new("vlan-oracle.pcap", &b.finish());
        let lens = tshark_fields(&f.to_string_lossy(), &["frame.len", "vlan.id"], "");
        assert_eq!(lens.lines().count(), 20_000);
        assert!(lens.lines().all(|l| l == "64\t10"), "{}", &lens[..200]);
    }
    let toml = "[bandwidth]\ncapacity_mbps = 7.04\nsaturation_threshold = 0.96\nmin_saturation_secs = 1.0\n";
    let ev = analyze_built_with(&b, "vlan-flood.pcap", toml);
    let sat = with_rule(&ev, "bandwidth.saturation");
    assert_eq!(sat.len(), 1, "{sat:#?}");
    let e = &sat[0]["fallacy"]["evidence"];
    let peak = e["peak_1s_mbps"].as_f64().expect("peak");
    assert!(
        (peak - 7.04).abs() < 1e-6,
        "the tagged frames' line rate: {e:#}"
    );
}

/// An HTTP call whose response was captured 10 ms before its request's end (a capture whose
/// two directions came from two clocks, merged), and a DNS query answered "10 ms before" it
/// was sent: three samples that come out negative (`http.response`,
/// `http.response.complete`, `dns.response`), which no histogram can hold.
///
/// Right: they are counted, `latency.samples_negative` = 3. Wrong (before the fix): dropped
/// without a trace (no such counter).
#[test]
fn negative_latency_samples_are_counted() {
    let mut b = PcapBuilder::default();
    let mut c = Conn::open(&mut b, 0.0, (C, 40000), (S, 80));
    let req = b"GET /items/1 HTTP/1.1\r\nHost: api\r\n\r\n";
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    c.call(&mut b, 0.5, req, 0.49, resp);
    b.udp(
        0.7,
        (C, 53000),
        ("10.99.2.53", 53),
        &dns_a_query(7, "a.test"),
    );
    b.udp(
        0.69,
        ("10.99.2.53", 53),
        (C, 53000),
        &dns_a_response(7, "a.test", 0, &[("10.99.2.9", 60)]),
    );
    let ev = analyze_built_with(&b, "negative.pcap", "");
    assert_eq!(stat(&ev, "latency.samples.http_response"), 0);
    assert_eq!(stat(&ev, "latency.samples.dns_response"), 0);
    assert_eq!(stat(&ev, "latency.samples_negative"), 3);
}

/// With `max_services = 1`, a second service's 5 connections give 5 handshake samples that
/// have no histogram. Right: `latency.samples_services_dropped` = 5 (and one service
/// dropped). Wrong (before the fix): only `services_dropped` = 1, the 5 samples not counted.
#[test]
fn samples_of_services_beyond_the_limit_are_counted() {
    let mut b = PcapBuilder::default();
    for i in 0..5u16 {
        b.connection(f64::from(i), (C, 30000 + i), (S, 80));
        b.connection(f64::from(i) + 0.5, (C, 31000 + i), ("10.70.0.3", 80));
    }
    let ev = analyze_built_with(&b, "services-samples.pcap", "[latency]\nmax_services = 1\n");
    assert_eq!(stat(&ev, "latency.services"), 1);
    assert_eq!(stat(&ev, "latency.services_dropped"), 1);
    assert_eq!(stat(&ev, "latency.samples.tcp_handshake"), 5);
    assert_eq!(stat(&ev, "latency.samples_services_dropped"), 5);
}

/// A request for `/items/{n}`.
fn item(n: u32) -> Vec<u8> {
    format!("GET /items/{n} HTTP/1.1\r\nHost: api\r\n\r\n").into_bytes()
}

/// One N+1 loop of 30 sequential `GET /items/{n}` whose client's pool hands out its six idle
/// keep-alive connections in turn (ports 40001 to 40006), each call answered in 5 ms and the
/// next sent 1 ms after; after the 15th and the 25th call, another thread of the host calls
/// `GET /other` once on a seventh connection (port 40007).
///
/// Right: one `http.chatty` finding of 30 calls (from 40001). Wrong (before the fix): none —
/// the host's run followed at most 4 connections, so with 6 the `/other` calls broke it into
/// runs of 15, 10 and 5 calls, and each connection's own run held 5, all under
/// `chatty_threshold` (20).
#[test]
fn a_loop_over_six_pooled_connections_is_not_cut_by_another() {
    let s = (S, 80);
    let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let mut b = PcapBuilder::default();
    let ports = [40001u16, 40002, 40003, 40004, 40005, 40006];
    let mut pool: Vec<Conn> = ports
        .iter()
        .map(|&p| Conn::open(&mut b, 0.0, (C, p), s))
        .collect();
    let mut other = Conn::open(&mut b, 0.0, (C, 40007), s);
    let mut t = 0.01;
    for i in 0..30u32 {
        pool[i as usize % 6].call(&mut b, t, &item(i), t + 0.005, ok);
        if i == 14 || i == 24 {
            let req = b"GET /other HTTP/1.1\r\nHost: api\r\n\r\n";
            other.call(&mut b, t + 0.0052, req, t + 0.0055, ok);
        }
        t += 0.006;
    }
    let ev = analyze_built_with(&b, "pool-of-six.pcap", "");
    let found: Vec<(u64, u64)> = with_rule(&ev, "http.chatty")
        .iter()
        .map(|f| {
            (
                f["source"]["port"].as_u64().unwrap(),
                f["fallacy"]["evidence"]["calls"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(found, [(40001, 30)], "{:#?}", with_rule(&ev, "http.chatty"));
}

/// The records of the pcap `b` built: (capture time in ns since the epoch, frame).
fn records(b: &PcapBuilder) -> Vec<(i64, Vec<u8>)> {
    let pcap = b.finish();
    let mut rest = &pcap[24..];
    let mut out = Vec::new();
    while rest.len() >= 16 {
        let word = |i: usize| u32::from_le_bytes(rest[i * 4..i * 4 + 4].try_into().unwrap());
        let ns = (i64::from(word(0)) * 1_000_000 + i64::from(word(1))) * 1000;
        let len = word(2) as usize;
        out.push((ns, rest[16..16 + len].to_vec()));
        rest = &rest[16 + len..];
    }
    out
}

/// A live run (as `observer capture`: a heartbeat at its start, then frames with heartbeats
/// between them) of one connection a second, at 0.1 s past each second for 35 s, the wall
/// clock's heartbeat at 0.5 s past each; `interval_secs = 10`. Every interval of 10 s holds
/// 10 handshakes.
///
/// Right: the first interval event, like the others, spans 10 s and counts 10 handshakes.
/// Wrong (before the fix): the first spans 11 s (0.1 s to 11.1 s) and counts 11 — its end was
/// set at the run's first tick, a second after the run's start, plus the interval; the next
/// ones span 10 s.
#[test]
fn the_first_latency_interval_is_as_long_as_the_others() {
    use observer::config::Config;
    use observer::pipeline::Pipeline;
    use observer::sink::MemorySink;
    use observer::source::{LinkType, Packet};
    use observer::time::Timestamp;
    let mut b = PcapBuilder::default();
    for k in 0..35u16 {
        b.connection(f64::from(k) + 0.1, (C, 30000 + k), (S, 80));
    }
    let frames = records(&b);
    let t0 = observer_tests::PCAP_BUILDER_EPOCH as i64 * 1_000_000_000;
    let cfg = Config::parse(
        std::path::Path::new("test.toml"),
        "[latency]\ninterval_secs = 10\n",
    )
    .expect("config");
    let mut sink = MemorySink::default();
    let mut p = Pipeline::new(&cfg, &mut sink, &[]);
    p.heartbeat(Timestamp(t0)).unwrap();
    let mut beat = 0i64;
    for (ts, data) in &frames {
        while t0 + beat * 1_000_000_000 + 500_000_000 <= *ts {
            p.heartbeat(Timestamp(t0 + beat * 1_000_000_000 + 500_000_000))
                .unwrap();
            beat += 1;
        }
        p.process(&Packet {
            ts: Timestamp(*ts),
            link: LinkType::ETHERNET,
            data,
            wire_len: data.len() as u32,
            interface: 0,
            segments: 1,
        })
        .unwrap();
    }
    p.finish().unwrap();
    let iv: Vec<&Value> = sink
        .events
        .iter()
        .filter(|e| {
            e["event"]["action"] == "latency"
                && e["latency"]["scope"] == "interval"
                && e["latency"]["metric"] == "tcp.handshake"
        })
        .collect();
    let span = |e: &Value| -> (String, String, u64) {
        (
            e["event"]["start"].as_str().unwrap().to_string(),
            e["event"]["end"].as_str().unwrap().to_string(),
            e["latency"]["count"].as_u64().unwrap(),
        )
    };
    let spans: Vec<_> = iv.iter().map(|e| span(e)).collect();
    assert!(spans.len() >= 3, "{spans:#?}");
    assert_eq!(
        spans[0],
        (
            "2026-01-01T00:00:00.100000Z".to_string(),
            "2026-01-01T00:00:10.100000Z".to_string(),
            10
        ),
        "{spans:#?}"
    );
    assert_eq!(
        spans[1],
        (
            "2026-01-01T00:00:10.100000Z".to_string(),
            "2026-01-01T00:00:20.100000Z".to_string(),
            10
        ),
        "{spans:#?}"
    );
}

/// A datagram of 1,250 IP bytes from `S:5000` to `10.99.3.1:9000` at `t`.
fn datagram_1250(b: &mut PcapBuilder, t: f64) {
    let mut p = [0u8; 1250 - 28];
    p[..8].copy_from_slice(&t.to_bits().to_be_bytes());
    b.udp(t, (S, 5000), ("10.99.3.1", 9000), &p);
}

/// One datagram of 1,250 IP bytes a millisecond from 1.0 s to 4.999 s on a link whose
/// capacity is their line rate (1,288 bytes each with the framing: 10.304 Mbit/s), and at
/// 1.5 s the first fragment of another datagram on the same link, whose rest never comes: it
/// is given up 2 to 3 s later, while the link is still full, and analyzed alone then (at its
/// own capture time, 1.5 s).
///
/// Right: one saturation of 4.0 s, from 1.0 s. Wrong (before the fix): the late first fragment,
/// more than a 1 s window behind the link's clock, was taken for the capture's clock stepping
/// back: the link's measurement was closed (the episode reported cut short) and started again
/// from 1.5 s, which cut the saturation in two.
#[test]
fn a_fragment_given_up_late_does_not_cut_a_saturation() {
    let mut b = PcapBuilder::default();
    let lone = big_datagram(4);
    let mut lone_sent = false;
    for i in 0..4000 {
        let t = 1.0 + f64::from(i) * 0.001;
        if !lone_sent && t >= 1.5 {
            b.frame(1.5, &ipv4_fragment(&lone, 900, 0, 1480, true));
            lone_sent = true;
        }
        datagram_1250(&mut b, t);
    }
    let toml = "[bandwidth]\ncapacity_mbps = 10.304\nsaturation_threshold = 0.85\nmin_saturation_secs = 0.5\n";
    let ev = analyze_built_with(&b, "late-fragment-saturation.pcap", toml);
    assert_eq!(stat(&ev, "ip.reassembly_incomplete"), 1);
    let sat = with_rule(&ev, "bandwidth.saturation");
    assert_eq!(sat.len(), 1, "{sat:#?}");
    let e = &sat[0]["fallacy"]["evidence"];
    assert_eq!(e["start"], "2026-01-01T00:00:01.000000Z", "{e:#}");
    assert!(
        (e["duration_secs"].as_f64().unwrap() - 4.0).abs() < 0.11,
        "{e:#}"
    );
}

/// A datagram of 4,028 IP bytes `C → S` every millisecond for 2 s, each sent as three
/// fragments of 1,500, 1,500 and 1,068 IP bytes in untagged Ethernet frames: on the wire each
/// datagram takes 4,068 IP bytes plus 38 bytes of framing per fragment (14 header, 4 FCS, 8
/// preamble and delimiter, 12 gap): 4,182 bytes, 33.456 Mbit/s at 1,000 a second, the link's
/// configured capacity. Threshold 99 %.
///
/// Right: a saturation at 100 % (peak 1 s rate 33.456 Mbit/s). Wrong (before the fix): the
/// framing of one frame per datagram, 4,106 bytes, 32.848 Mbit/s = 98.2 %: no saturation.
#[test]
fn each_fragment_of_a_reassembled_datagram_counts_its_own_framing() {
    let mut b = PcapBuilder::default();
    for i in 0..2000u32 {
        let ip = big_datagram(i as u8);
        let t = 1.0 + f64::from(i) * 0.001;
        let id = i as u16;
        b.frame(t, &ipv4_fragment(&ip, id, 0, 1480, true))
            .frame(t + 0.0001, &ipv4_fragment(&ip, id, 1480, 2960, true))
            .frame(t + 0.0002, &ipv4_fragment(&ip, id, 2960, 4008, false));
    }
    let toml = "[bandwidth]\ncapacity_mbps = 33.456\nsaturation_threshold = 0.99\nmin_saturation_secs = 1.0\n";
    let ev = analyze_built_with(&b, "fragment-framing.pcap", toml);
    assert_eq!(stat(&ev, "ip.reassembled"), 2000);
    let sat = with_rule(&ev, "bandwidth.saturation");
    assert_eq!(sat.len(), 1, "{sat:#?}");
    let e = &sat[0]["fallacy"]["evidence"];
    let peak = e["peak_1s_mbps"].as_f64().expect("peak");
    assert!(
        (peak - 33.456).abs() < 1e-6,
        "every fragment's framing: {e:#}"
    );
}
