//! Review of known defects in the bandwidth analyzer and in the byte counts of reassembled IP
//! fragments: the IP bytes a fragmented datagram carried on the wire (link utilisation, zone
//! pair bytes), where a saturation episode ends, the framing bytes a link's line rate carries,
//! and a transfer held back by a receive window it never quite fills. Every test builds its
//! packets, so the expected values follow from the construction (tshark as a second oracle
//! where it is installed); each failed before its fix.

use etherparse::PacketBuilder;
use observer_tests::ipv4_fragment;
use observer_tests::tcp_flags::{ACK, SYN};
use observer_tests::{
    PcapBuilder, ScratchFile, analyze_built_with, have, root, stat, tshark_fields, with_rule,
};
use serde_json::Value;

const C: &str = "10.99.1.5";
const S: &str = "10.99.2.5";

fn evidence(f: &Value) -> &Value {
    &f["fallacy"]["evidence"]
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("a number: {v}"))
}

/// A UDP datagram `C:5000 → S:6000` of 4,000 payload bytes: an IPv4 packet of 4,028 bytes
/// (20 IP, 8 UDP), its IP payload 4,008 bytes, the payload's bytes telling `n` apart.
fn big_datagram(n: u8) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4([10, 99, 1, 5], [10, 99, 2, 5], 64)
        .udp(5000, 6000)
        .write(&mut v, &[n; 4000])
        .expect("packet builds");
    v
}

/// Ten datagrams of 4,008 IP payload bytes, each sent as three fragments of 1,480, 1,480 and
/// 1,048 payload bytes (1,500 + 1,500 + 1,068 = 4,068 IP bytes on the wire, where the
/// reassembled datagram has 4,028), then an eleventh whose last fragment never comes: its two
/// fragments carried 3,000 IP bytes. The wire carried 10 × 4,068 + 3,000 = 43,680 IP bytes
/// from C to S (tshark's sum of `ip.len` says the same).
///
/// Zones: fixtures/cost-zones.toml (10.99.1.0/24 is use1-az1, 10.99.2.0/24 use1-az2).
///
/// Right: the link's bytes and the zone pair's bytes are 43,680. Wrong (before the fix):
/// 10 × 4,028 + 1,500 = 41,780 — one IP header per datagram, and of the datagram given up only
/// its first fragment.
#[test]
fn fragmented_datagrams_count_the_ip_bytes_their_fragments_carried() {
    let mut b = PcapBuilder::default();
    for n in 0..10u8 {
        let ip = big_datagram(n);
        let t = 0.1 + f64::from(n) * 0.01;
        let id = 100 + u16::from(n);
        b.frame(t, &ipv4_fragment(&ip, id, 0, 1480, true))
            .frame(t + 0.001, &ipv4_fragment(&ip, id, 1480, 2960, true))
            .frame(t + 0.002, &ipv4_fragment(&ip, id, 2960, 4008, false));
    }
    let lost = big_datagram(10);
    b.frame(0.3, &ipv4_fragment(&lost, 200, 0, 1480, true))
        .frame(0.301, &ipv4_fragment(&lost, 200, 1480, 2960, true));
    let wire: u64 = 10 * (1500 + 1500 + 1068) + 3000;
    if have("tshark") {
        let f = ScratchFile::new("frag-bytes-oracle.pcap", &b.finish());
        let sum: u64 = tshark_fields(&f.to_string_lossy(), &["ip.len"], "")
            .lines()
            .map(|l| l.trim().parse::<u64>().expect("an ip.len"))
            .sum();
        assert_eq!(sum, wire, "tshark's ip.len sum");
    }
    let zones =
        std::fs::read_to_string(root().join("fixtures/cost-zones.toml")).expect("the zone map");
    let ev = analyze_built_with(&b, "frag-bytes.pcap", &zones);
    assert_eq!(stat(&ev, "ip.fragments"), 32);
    assert_eq!(stat(&ev, "ip.reassembled"), 10);
    assert_eq!(stat(&ev, "bandwidth.bytes"), wire, "the link's IP bytes");
    let summary = ev.last().expect("a summary");
    let pairs = summary["stats"]["cost"]["bytes"]
        .as_array()
        .unwrap_or_else(|| panic!("stats.cost.bytes: {summary:#}"));
    let pair = pairs
        .iter()
        .find(|p| p["from_zone"] == "use1-az1" && p["to_zone"] == "use1-az2")
        .unwrap_or_else(|| panic!("no az1 → az2 pair: {pairs:#?}"));
    assert_eq!(pair["bytes"], wire, "the zone pair's IP bytes: {pair:#}");
}

/// A datagram of 1,250 IP bytes from `S:5000` to `10.99.3.1:9000` at `t`, its payload
/// starting with its time.
fn datagram_1250(b: &mut PcapBuilder, t: f64) {
    let mut p = [0u8; 1250 - 28];
    p[..8].copy_from_slice(&t.to_bits().to_be_bytes());
    b.udp(t, (S, 5000), ("10.99.3.1", 9000), &p);
}

/// One datagram of 1,250 IP bytes a millisecond from 1.0 s to 2.999 s: 125,000 bytes in each
/// 100 ms bucket from 1.0 s to 3.0 s, then nothing. The link's capacity (with the framing
/// bytes of each frame, 38 + 1,250 on the wire: 100 × 1,288 × 80 bit/s a bucket) is
/// 10.304 Mbit/s, so every bucket with traffic runs at 100 %; the threshold is 85 %. The 1 s
/// window ending at 1.9 s (nine busy buckets, 90 %) opens the episode at 1.0 s; the windows
/// ending at 3.0 s and 3.1 s still hold nine busy buckets of the ten, and the one ending at
/// 3.2 s eight.
///
/// Right: the episode is the traffic's, 1.0 s to 3.0 s, 2.0 s long. Wrong (before the fix):
/// 2.1 s, until the end of the last window above the threshold, 0.1 s after the traffic
/// stopped.
#[test]
fn a_saturation_ends_with_its_last_busy_bucket_not_its_last_window_above() {
    let mut b = PcapBuilder::default();
    for i in 0..2000 {
        datagram_1250(&mut b, 1.0 + f64::from(i) * 0.001);
    }
    let toml = "[bandwidth]\ncapacity_mbps = 10.304\nsaturation_threshold = 0.85\nmin_saturation_secs = 0.5\n";
    let ev = analyze_built_with(&b, "episode-end.pcap", toml);
    let sat = with_rule(&ev, "bandwidth.saturation");
    assert_eq!(sat.len(), 1, "{sat:#?}");
    let e = evidence(sat[0]);
    assert_eq!(e["start"], "2026-01-01T00:00:01.000000Z", "{e:#}");
    assert!(
        (num(&e["duration_secs"]) - 2.0).abs() < 1e-9,
        "the episode lasted as long as its traffic: {e:#}"
    );
}

/// A flood of the smallest Ethernet frames: UDP datagrams of 18 payload bytes (46 IP bytes,
/// 60-byte frames without their FCS), one every 100 µs for 2 s. On the wire each frame takes
/// 84 bytes: 14 Ethernet header + 46 + 4 FCS + 8 preamble and start delimiter + 12 inter-frame
/// gap. 10,000 frames a second of 84 bytes are 6.72 Mbit/s: the link's line rate, configured
/// as its capacity.
///
/// Right: the link ran at 100 % of its capacity for 2 s, a saturation whose peak 1 s rate is
/// 6.72 Mbit/s. Wrong (before the fix): IP bytes only, 46 × 10,000 × 8 = 3.68 Mbit/s, 55 % of
/// the line rate: no saturation.
#[test]
fn a_small_frame_flood_at_line_rate_is_a_saturation() {
    let mut b = PcapBuilder::default();
    for i in 0..20_000u32 {
        let t = 1.0 + f64::from(i) * 0.0001;
        let mut p = [0u8; 18];
        p[..4].copy_from_slice(&i.to_be_bytes());
        b.udp(t, (S, 5000), ("10.99.3.1", 9000), &p);
    }
    let toml = "[bandwidth]\ncapacity_mbps = 6.72\nsaturation_threshold = 0.9\nmin_saturation_secs = 1.0\n";
    let ev = analyze_built_with(&b, "small-frames.pcap", toml);
    let sat = with_rule(&ev, "bandwidth.saturation");
    assert_eq!(sat.len(), 1, "{sat:#?}");
    let e = evidence(sat[0]);
    assert!(
        (num(&e["peak_1s_mbps"]) - 6.72).abs() < 1e-6,
        "the line rate, framing included: {e:#}"
    );
    assert!((num(&e["duration_secs"]) - 2.0).abs() < 1e-9, "{e:#}");
}

/// A download held back by the receiver's window on a 100 ms path: the client advertises
/// 64,240 bytes (no window scaling), the server sends segments of 1,000 bytes, so 64 fit
/// (64,000 bytes) and the 240 left are less than a segment. The first 64 go out back to back;
/// each is acknowledged 100 ms later, and each ACK lets the server send one more at once: from
/// then on every segment leaves 64,000 bytes in flight, the window all but full, and none
/// fills it exactly (no zero window, no retransmission). 2,000 segments, 2 MB.
///
/// Right: a bulk transfer limited by the receiver (1,937 of its 2,000 segments left less
/// than a segment of the window). Wrong (before the fix): "sender or path" — the rule counted
/// only segments filling the window to the byte.
#[test]
fn a_transfer_held_at_a_64k_window_it_never_fills_exactly_is_receiver_limited() {
    let (c, s) = ((C, 40000), (S, 80));
    let mut ev: Vec<(f64, bool, u32, u32)> = Vec::new(); // (t, from server, seq, ack)
    let rtt = 0.1;
    let mut sent = Vec::new();
    for i in 0..2000u32 {
        let t = if i < 64 {
            0.010 + f64::from(i) * 0.0001
        } else {
            sent[(i - 64) as usize] + rtt + 0.00001
        };
        sent.push(t);
        let seq = 501 + i * 1000;
        ev.push((t, true, seq, 101));
        ev.push((t + rtt, false, 101, seq + 1000));
    }
    ev.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut b = PcapBuilder::default();
    b.tcp(0.0, c, s, 100, 0, SYN, &[])
        .tcp(0.001, s, c, 500, 101, SYN | ACK, &[])
        .tcp(0.002, c, s, 101, 501, ACK, &[]);
    for (t, from_server, seq, ack) in ev {
        if from_server {
            b.tcp(t, s, c, seq, ack, ACK, &[0x61; 1000]);
        } else {
            b.tcp(t, c, s, seq, ack, ACK, &[]);
        }
    }
    let toml = "[bandwidth]\nbulk_threshold_bytes = 1000000\n";
    let out = analyze_built_with(&b, "window-held.pcap", toml);
    let bulk = with_rule(&out, "bandwidth.bulk_transfer");
    assert_eq!(bulk.len(), 1, "{bulk:#?}");
    let e = evidence(bulk[0]);
    assert_eq!(e["zero_windows"], 0, "{e:#}");
    assert_eq!(e["retransmitted_segments"], 0, "{e:#}");
    assert_eq!(e["window_full_segments"], 0, "none fills it exactly: {e:#}");
    assert_eq!(e["window_bound_segments"], 1937, "{e:#}");
    assert_eq!(e["limited_by"], "receiver", "{e:#}");
    assert_eq!(stat(&out, "bandwidth.flows_receiver_limited"), 1);
}

/// No capacity: handshakes of 1 ms at 20, 30 and 40 s, then 1,000 datagrams of 1,500 IP
/// bytes, one every 2 ms from 50 s to 51.998 s (75,000 bytes in each 100 ms from 50 s to
/// 52 s), during which handshakes at 50.5 s and 51 s take 100 ms: a full queue. The windows
/// ending at 52.0 s and after still hold most of the burst, but the traffic stopped at 52 s.
///
/// Right: the plateau lasts the burst's 2.0 s. Wrong (before the fix): 2.1 s, to the end of
/// the last 1 s window within 20 % of the peak.
#[test]
fn an_inferred_plateau_ends_with_its_traffic() {
    let (d_src, d_dst) = ((S, 5000), ("10.99.3.1", 9000));
    // (t, step, port): step 0 a datagram, 1-3 a handshake's SYN, SYN/ACK and ACK.
    let mut at: Vec<(f64, u8, u16)> = Vec::new();
    let handshake = |at: &mut Vec<(f64, u8, u16)>, t: f64, rtt: f64, port: u16| {
        at.extend([
            (t, 1, port),
            (t + rtt, 2, port),
            (t + rtt + 0.0001, 3, port),
        ]);
    };
    for (i, t) in [20.0, 30.0, 40.0].into_iter().enumerate() {
        handshake(&mut at, t, 0.001, 41_000 + i as u16);
    }
    handshake(&mut at, 50.5001, 0.1, 41_010);
    handshake(&mut at, 51.0001, 0.1, 41_011);
    for i in 0..1000u32 {
        at.push((50.0 + f64::from(i) * 0.002, 0, 0));
    }
    at.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut b = PcapBuilder::default();
    for (t, step, port) in at {
        let (c, s) = ((C, port), ("10.99.3.2", 443));
        match step {
            0 => {
                let mut p = [0u8; 1472];
                p[..8].copy_from_slice(&t.to_bits().to_be_bytes());
                b.udp(t, d_src, d_dst, &p)
            }
            1 => b.tcp(t, c, s, 100, 0, SYN, &[]),
            2 => b.tcp(t, s, c, 500, 101, SYN | ACK, &[]),
            _ => b.tcp(t, c, s, 101, 501, ACK, &[]),
        };
    }
    let ev = analyze_built_with(&b, "plateau-end.pcap", "");
    let found = with_rule(&ev, "bandwidth.saturation.inferred");
    assert_eq!(found.len(), 1, "{found:#?}");
    let e = evidence(found[0]);
    assert_eq!(
        found[0]["@timestamp"], "2026-01-01T00:00:50.000000Z",
        "{e:#}"
    );
    assert!(
        (num(&e["plateau_secs"]) - 2.0).abs() < 1e-9,
        "the plateau lasted as long as its traffic: {e:#}"
    );
}
