//! Review of the bandwidth analyzer (fallacy 3): saturation episodes against a configured
//! capacity, inferred saturations, bulk transfers and the `[bandwidth]` configuration. Each
//! test builds its packets, so the expected values come from the construction; each failed
//! before its fix.

use observer_tests::tcp_flags::{ACK, FIN, SYN};
use observer_tests::{
    PcapBuilder, analyze_built_with, download, finding_to, message, stat, with_rule,
};
use serde_json::Value;

const C: &str = "10.0.0.1";
const S: &str = "10.0.0.2";

/// IPv4 and TCP headers of 20 bytes each: a segment is 40 IP bytes plus its payload.
const HDR: u64 = 40;

/// UDP payload of a datagram of 1,500 IP bytes (20 IPv4 + 8 UDP + 1,472).
const DGRAM: [u8; 1472] = [0; 1472];

/// A datagram of 1,500 IP bytes from `S:5000` to `10.0.1.1:9000` at `t`, its payload
/// starting with its time (datagrams alike within 1 ms would be taken for copies).
fn datagram(b: &mut PcapBuilder, t: f64) {
    let mut p = DGRAM;
    p[..8].copy_from_slice(&t.to_bits().to_be_bytes());
    b.udp(t, (S, 5000), ("10.0.1.1", 9000), &p);
}

/// The FIN exchange closing a [`download`] at `t`.
fn close(b: &mut PcapBuilder, t: f64, c: (&str, u16), s: (&str, u16), seq: u32) {
    b.tcp(t, c, s, 101, seq, FIN | ACK, &[])
        .tcp(t + 0.001, s, c, seq, 102, FIN | ACK, &[])
        .tcp(t + 0.002, c, s, 102, seq + 1, ACK, &[]);
}

fn evidence(f: &Value) -> &Value {
    &f["fallacy"]["evidence"]
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("a number: {v}"))
}

/// A burst of 60 datagrams (90,000 IP bytes; on the wire, with Ethernet's 38 bytes of framing
/// each, 92,280) in the 100 ms from 1.0 s, then 3 datagrams (4,614 wire bytes) in each of the
/// nine 100 ms after it. The 1 s window ending at 1.9 s holds 92,280 + 8 × 4,614 = 129,192
/// bytes, the first at or above 85 % of the link's 1.2 Mbit/s (127,500 bytes); the one ending
/// at 2.0 s holds 133,806 (1.070448 Mbit/s, the peak), the one ending at 2.1 s has lost the
/// burst.
///
/// Right: the busiest 100 ms of the episode (which starts at 1.0 s, with the burst) carried
/// 92,280 bytes, 7.3824 Mbit/s — never less than the peak 1 s rate, an average of ten of them.
/// Wrong (before the fix): 0.36 Mbit/s, the last 100 ms of the window that opened the episode,
/// below its own 1 s peak.
///
/// (Only the burst's 100 ms is itself over the threshold, so the episode lasts 0.1 s: reported
/// with `min_saturation_secs` 0.1.)
#[test]
fn a_saturations_peak_100ms_includes_the_window_that_opened_it() {
    let mut b = PcapBuilder::default();
    for i in 0..60 {
        datagram(&mut b, 1.0 + f64::from(i) * 0.001);
    }
    for bucket in 1..10 {
        for i in 0..3 {
            datagram(&mut b, 1.0 + f64::from(bucket) * 0.1 + f64::from(i) * 0.01);
        }
    }
    let toml = "[bandwidth]\ncapacity_mbps = 1.2\nsaturation_threshold = 0.85\nmin_saturation_secs = 0.1\n";
    let ev = analyze_built_with(&b, "peak-100ms.pcap", toml);
    let sat = with_rule(&ev, "bandwidth.saturation");
    assert_eq!(sat.len(), 1, "{sat:#?}");
    let e = evidence(sat[0]);
    assert_eq!(e["start"], "2026-01-01T00:00:01.000000Z", "{e:#}");
    let peak_1s = num(&e["peak_1s_mbps"]);
    assert!((peak_1s - 133_806.0 * 8.0 / 1e6).abs() < 1e-9, "{e:#}");
    let peak_100ms = num(&e["peak_100ms_mbps"]);
    assert!((peak_100ms - 92_280.0 * 80.0 / 1e6).abs() < 1e-9, "{e:#}");
}

/// A download of 200 × 1,000 bytes in about 1 s (its data from 3 ms to 0.998 s), then the
/// connection idles, the client sending a one-byte keep-alive (one below its next sequence
/// number, as Windows does) every 10 s, each acknowledged, until FINs at 61 s. While it
/// idles (10–11 s) another download of the same size runs on the link.
///
/// Right (README: "from its first to its last payload: a pooled connection's idle head and
/// keep-alive tail are left out"): 0.995 s, and the link to itself while it moved its bytes
/// (share 1). Wrong (before the fix): the keep-alives' byte counted as payload, so 50 s and
/// about 0.04 Mbit/s, and the other download counted as its competition (share about 0.5).
#[test]
fn one_byte_keep_alives_are_no_payload_of_a_bulk_transfer() {
    let mut b = PcapBuilder::default();
    let (c, s) = ((C, 40_000), (S, 80));
    let (bytes, last, seq) = download(&mut b, 0.0, c, s, 200);
    assert!((last - 0.998).abs() < 1e-9);
    let mut ka = 0u64;
    let (c2, s2) = ((C, 40_001), ("10.0.0.3", 80));
    for i in 1..=5 {
        let t = f64::from(i) * 10.0;
        b.tcp(t, c, s, 100, seq, ACK, &[0])
            .tcp(t + 0.001, s, c, seq, 101, ACK, &[]);
        ka += 2 * HDR + 1;
        if i == 1 {
            // The other download, between the first and second keep-alives.
            let (_, _, seq2) = download(&mut b, 10.1, c2, s2, 200);
            close(&mut b, 11.5, c2, s2, seq2);
        }
    }
    close(&mut b, 61.0, c, s, seq);
    let total = bytes + ka + 3 * HDR;
    let ev = analyze_built_with(
        &b,
        "keep-alive-tail.pcap",
        "[bandwidth]\nbulk_threshold_bytes = 100000\n",
    );
    let f = finding_to(&ev, "bandwidth.bulk_transfer", S);
    let e = evidence(f);
    assert_eq!(e["bytes"], total, "{e:#}");
    let d = num(&e["duration_secs"]);
    assert!((d - 0.995).abs() < 1e-6, "duration {d} s: {}", message(f));
    let share = num(&e["link_share"]);
    assert!(
        (share - 1.0).abs() < 1e-9,
        "link share {share}: {}",
        message(f)
    );
    // The keep-alives are what TCP analysis takes them for.
    assert_eq!(stat(&ev, "tcp.keep_alives"), 5);
}

/// Records of [`inferred_talkers`], each `(µs, what, port)`, sorted into time order.
fn handshake(at: &mut Vec<(u64, u8, u16)>, t: u64, rtt: u64, port: u16) {
    at.extend([(t, 1, port), (t + rtt / 2, 2, port), (t + rtt, 3, port)]);
}

/// A pooled connection to 10.0.3.3:443 downloads 800 segments of 1,400 bytes (each
/// acknowledged: 800 × 1,480 IP bytes, 148 kB/s) from 1 s to 8.99 s, then
/// idles until its FINs at 100 s. At 50 s, a burst of 1,000 datagrams of 1,500 bytes (one
/// every 2 ms: 750 kB/s, 6 Mbit/s) runs 2 s; two connections opened during it take 100 ms to
/// complete their handshakes, five opened away from it 1 ms.
///
/// Right: one inferred saturation around the burst, whose top talker is the burst's flow
/// alone: the pooled connection moved nothing from 9 s on. Wrong (before the fix): the pooled
/// connection is listed too, from its whole life (1 s to 100 s) overlapping the plateau.
#[test]
fn an_idle_pooled_connection_is_no_talker_of_an_inferred_saturation() {
    let mut at: Vec<(u64, u8, u16)> = Vec::new();
    for (i, t) in [20u64, 30, 40, 70, 80].into_iter().enumerate() {
        handshake(&mut at, t * 1_000_000, 1_000, 41_000 + i as u16);
    }
    for i in 0..1_000u64 {
        at.push((50_000_000 + i * 2_000, 0, 0));
    }
    handshake(&mut at, 50_500_001, 100_000, 42_000);
    handshake(&mut at, 51_000_001, 100_000, 42_001);
    at.sort_unstable();
    let mut b = PcapBuilder::default();
    let (pc, ps) = ((C, 40_000), ("10.0.3.3", 443));
    b.tcp(0.0, pc, ps, 100, 0, SYN, &[])
        .tcp(0.001, ps, pc, 500, 101, SYN | ACK, &[])
        .tcp(0.002, pc, ps, 101, 501, ACK, &[]);
    let mut seq = 501u32;
    for i in 0..800 {
        let t = 1.0 + f64::from(i) * 0.01;
        b.tcp(t, ps, pc, seq, 101, ACK, &[0x62; 1400]);
        seq += 1400;
        b.tcp(t + 0.0005, pc, ps, 101, seq, ACK, &[]);
    }
    play(&mut b, &at);
    close(&mut b, 100.0, pc, ps, seq);
    let ev = analyze_built_with(&b, "inferred-talkers.pcap", "");
    let found = with_rule(&ev, "bandwidth.saturation.inferred");
    assert_eq!(found.len(), 1, "{found:#?}");
    let e = evidence(found[0]);
    let talkers: Vec<(&str, &str, u64)> = e["top_talkers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["client"].as_str().unwrap(),
                t["server"].as_str().unwrap(),
                t["bytes"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        talkers,
        [("10.0.0.2:5000", "10.0.1.1:9000", 1_500_000)],
        "{e:#}"
    );
}

/// The capture's clock steps back (captures joined out of order): a few datagrams at 100 s,
/// then, stamped 0–3 s, the link runs at its 1.2 Mbit/s (a datagram of 1,500 bytes every
/// 10 ms), and from 5 s two downloads of 200 × 1,000 bytes share it (a segment each every
/// 50 ms, 0.35 Mbit/s together: no saturation).
///
/// Right: the saturation from 0 s, about 3 s long, and each download's share of the link
/// about a half (the other's bytes while it ran are counted). Wrong (before the fix): after
/// the step every packet fell before the link's clock, out of its 1 s window, so no
/// saturation at all, and the link's count of bytes a second was of the other stretch, so
/// each download had the whole link (share 1).
#[test]
fn a_clock_stepping_back_does_not_blind_the_link() {
    let mut b = PcapBuilder::default();
    for i in 0..3 {
        datagram(&mut b, 100.0 + f64::from(i));
    }
    for i in 0..300 {
        datagram(&mut b, f64::from(i) * 0.01);
    }
    // Two downloads interleaved on the link, 5–15 s.
    let (c1, s1) = ((C, 40_000), ("10.0.3.1", 80));
    let (c2, s2) = ((C, 40_001), ("10.0.3.2", 80));
    let mut seq = 501u32;
    b.tcp(5.0, c1, s1, 100, 0, SYN, &[])
        .tcp(5.0001, s1, c1, 500, 101, SYN | ACK, &[])
        .tcp(5.0002, c1, s1, 101, 501, ACK, &[])
        .tcp(5.0003, c2, s2, 100, 0, SYN, &[])
        .tcp(5.0004, s2, c2, 500, 101, SYN | ACK, &[])
        .tcp(5.0005, c2, s2, 101, 501, ACK, &[]);
    for i in 0..200 {
        let t = 5.001 + f64::from(i) * 0.05;
        b.tcp(t, s1, c1, seq, 101, ACK, &[0x61; 1000])
            .tcp(t + 0.0005, c1, s1, 101, seq + 1000, ACK, &[])
            .tcp(t + 0.001, s2, c2, seq, 101, ACK, &[0x61; 1000])
            .tcp(t + 0.0015, c2, s2, 101, seq + 1000, ACK, &[]);
        seq += 1000;
    }
    close(&mut b, 16.0, c1, s1, seq);
    close(&mut b, 16.1, c2, s2, seq);
    let toml = "[bandwidth]\ncapacity_mbps = 1.2\nsaturation_threshold = 0.85\nbulk_threshold_bytes = 100000\n";
    let ev = analyze_built_with(&b, "step-back.pcap", toml);
    assert_eq!(stat(&ev, "frames.time_steps_back"), 1);
    let sat = with_rule(&ev, "bandwidth.saturation");
    assert_eq!(sat.len(), 1, "{sat:#?}");
    let e = evidence(sat[0]);
    assert_eq!(e["start"], "2026-01-01T00:00:00.000000Z", "{e:#}");
    let d = num(&e["duration_secs"]);
    assert!((2.9..=3.3).contains(&d), "{e:#}");
    // Each download: its bytes against both's (3 × 40 + 200 × 1,080 each, the first's
    // handshake and FINs aside), so about a half.
    for server in ["10.0.3.1", "10.0.3.2"] {
        let f = finding_to(&ev, "bandwidth.bulk_transfer", server);
        let share = num(&evidence(f)["link_share"]);
        assert!((0.45..=0.55).contains(&share), "{server}: {}", message(f));
    }
}

/// Builds `at`'s events in order: (µs, what, client port), what being 0 a burst datagram, 1
/// a client's SYN, 2 the server's SYN/ACK, 3 the client's ACK (server 10.0.2.2:443).
fn play(b: &mut PcapBuilder, at: &[(u64, u8, u16)]) {
    for &(t, what, port) in at {
        let t = t as f64 / 1e6;
        let (c, s) = ((C, port), ("10.0.2.2", 443));
        match what {
            0 => b.udp(t, (S, 5000), ("10.0.1.1", 9000), &DGRAM),
            1 => b.tcp(t, c, s, 100, 0, SYN, &[]),
            2 => b.tcp(t, s, c, 500, 101, SYN | ACK, &[]),
            _ => b.tcp(t, c, s, 101, 501, ACK, &[]),
        };
    }
}

/// One stretch of [`a_clock_stepping_back_keeps_both_stretches_inferred_saturations`] from
/// `base` µs on: handshakes of 1 ms at 20, 30 and 40 s, then a burst of 1,000 datagrams of
/// 1,500 bytes (one every 2 ms) at 50 s during which two handshakes take 100 ms; the
/// connections from ports `ports` on.
fn slow_handshakes_during_a_burst(b: &mut PcapBuilder, base: u64, ports: u16) {
    let mut at: Vec<(u64, u8, u16)> = Vec::new();
    for (i, t) in [20u64, 30, 40].into_iter().enumerate() {
        handshake(&mut at, base + t * 1_000_000, 1_000, ports + i as u16);
    }
    for i in 0..1_000u64 {
        at.push((base + 50_000_000 + i * 2_000, 0, 0));
    }
    handshake(&mut at, base + 50_500_001, 100_000, ports + 10);
    handshake(&mut at, base + 51_000_001, 100_000, ports + 11);
    at.sort_unstable();
    play(b, &at);
}

/// The same stretch twice, the first stamped from 1,000 s, the second (joined after it) from
/// 0 s: each has a full queue under its burst.
///
/// Right: two inferred saturations, one at 1,050 s, one at 50 s. Wrong (before the fix):
/// only the first; the second stretch's packets fell before the link's clock and never made
/// its history (its handshakes counted as the first's quiet ones).
#[test]
fn a_clock_stepping_back_keeps_both_stretches_inferred_saturations() {
    let mut b = PcapBuilder::default();
    slow_handshakes_during_a_burst(&mut b, 1_000_000_000, 41_000);
    slow_handshakes_during_a_burst(&mut b, 0, 43_000);
    let ev = analyze_built_with(&b, "step-back-inferred.pcap", "");
    assert_eq!(stat(&ev, "frames.time_steps_back"), 1);
    let found: Vec<&str> = with_rule(&ev, "bandwidth.saturation.inferred")
        .iter()
        .map(|f| f["@timestamp"].as_str().unwrap())
        .collect();
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].starts_with("2026-01-01T00:17:"), "{found:?}");
    assert!(found[1].starts_with("2026-01-01T00:00:"), "{found:?}");
    assert_eq!(stat(&ev, "bandwidth.saturation_episodes"), 2);
}

/// [`slow_handshakes_during_a_burst`] alone: the burst's first datagram is at 50 s, and the
/// link carried nothing that way in the second before it.
///
/// Right: the inferred saturation starts at 50 s, with the burst (as a configured capacity's
/// does: at the first 100 ms with traffic in the window that reached it). Wrong (before the
/// fix): 49.9 s, the start of that 1 s window whether it carried anything or not, so before
/// the first byte of the burst, and the plateau 0.1 s longer.
#[test]
fn an_inferred_saturation_starts_with_its_traffic() {
    let mut b = PcapBuilder::default();
    slow_handshakes_during_a_burst(&mut b, 0, 41_000);
    let ev = analyze_built_with(&b, "inferred-start.pcap", "");
    let found = with_rule(&ev, "bandwidth.saturation.inferred");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0]["@timestamp"], "2026-01-01T00:00:50.000000Z");
    // The burst's datagrams run 50–51.998 s; the plateau ends with them (52 s).
    let secs = num(&evidence(found[0])["plateau_secs"]);
    assert!((2.0..=2.15).contains(&secs), "{}", message(found[0]));
}

/// Interface 0 carries 100 datagrams of 1,500 bytes a second (1.2 Mbit/s, the link's
/// capacity) from 1.0 s to 2.99 s, then nothing; interface 1 goes on with a datagram a second
/// from 3.5 s to 30.5 s and a handshake at 20 s, whose latency interval (`interval_secs = 5`:
/// 20–25 s) is written once capture time passes 25 s.
///
/// Right: interface 0's saturation ended at 3 s; it is reported once the link has been
/// quiet a while (README: episodes are reported as they end), before the 20–25 s interval is
/// written. Wrong (before the fix): a link gone quiet closed its episode only at its next
/// packet or the end of the run, so an SRE watching a live capture never saw the episode
/// of a link that went silent (it came after every later event).
#[test]
fn a_saturation_on_a_link_gone_quiet_is_reported_while_the_capture_goes_on() {
    let mut b = PcapBuilder::default();
    b.on_interface(0);
    for i in 0..200 {
        datagram(&mut b, 1.0 + f64::from(i) * 0.01);
    }
    b.on_interface(1);
    for i in 0..28 {
        let t = 3.5 + f64::from(i);
        if i == 17 {
            let (c, s) = (("10.0.5.1", 40_000), ("10.0.5.2", 443));
            b.tcp(20.0, c, s, 100, 0, SYN, &[])
                .tcp(20.001, s, c, 500, 101, SYN | ACK, &[])
                .tcp(20.002, c, s, 101, 501, ACK, &[]);
        }
        let mut p = [0u8; 100];
        p[..8].copy_from_slice(&t.to_bits().to_be_bytes());
        b.udp(t, ("10.0.6.1", 5000), ("10.0.6.2", 9000), &p);
    }
    let toml = "[bandwidth]\ncapacity_mbps = 1.2\nsaturation_threshold = 0.85\n\
                min_saturation_secs = 0.5\n[latency]\ninterval_secs = 5\n";
    let cfg =
        observer::config::Config::parse(std::path::Path::new("test.toml"), toml).expect("config");
    let f = observer_tests::ScratchFile::new("quiet-link.pcapng", &b.finish_pcapng());
    let ev = observer_tests::run(&[f.to_path_buf()], &cfg).0;
    let sat = ev
        .iter()
        .position(|e| e["rule"]["name"] == "bandwidth.saturation")
        .unwrap_or_else(|| panic!("a saturation: {ev:#?}"));
    assert_eq!(with_rule(&ev, "bandwidth.saturation").len(), 1);
    let e = evidence(&ev[sat]);
    assert_eq!(e["start"], "2026-01-01T00:00:01.000000Z", "{e:#}");
    let interval = ev
        .iter()
        .position(|e| {
            e["event"]["action"] == "latency"
                && e["latency"]["scope"] == "interval"
                && e["latency"]["metric"] == "tcp.handshake"
        })
        .unwrap_or_else(|| panic!("the 20-25 s handshake interval: {ev:#?}"));
    assert!(
        sat < interval,
        "saturation at event {sat}, after the 20-25 s interval at {interval}"
    );
}

/// [`slow_handshakes_during_a_burst`] six times, each stretch stamped 1,000 s before the one
/// before it (five steps back): a link keeps four earlier stretches for the end of the run, so
/// the oldest is inferred when the fifth step comes. Each stretch has its own saturation,
/// starting with its burst, 50 s after its first stamp.
#[test]
fn every_stretch_of_a_clock_stepping_back_often_is_inferred() {
    let mut b = PcapBuilder::default();
    let bases = [5_000u64, 4_000, 3_000, 2_000, 1_000, 0];
    for (i, base) in bases.into_iter().enumerate() {
        slow_handshakes_during_a_burst(&mut b, base * 1_000_000, 41_000 + 100 * i as u16);
    }
    let ev = analyze_built_with(&b, "step-back-often.pcap", "");
    assert_eq!(stat(&ev, "frames.time_steps_back"), 5);
    let mut found: Vec<&str> = with_rule(&ev, "bandwidth.saturation.inferred")
        .iter()
        .map(|f| f["@timestamp"].as_str().unwrap())
        .collect();
    found.sort_unstable();
    assert_eq!(
        found,
        [
            "2026-01-01T00:00:50.000000Z",
            "2026-01-01T00:17:30.000000Z",
            "2026-01-01T00:34:10.000000Z",
            "2026-01-01T00:50:50.000000Z",
            "2026-01-01T01:07:30.000000Z",
            "2026-01-01T01:24:10.000000Z",
        ]
    );
    assert_eq!(stat(&ev, "bandwidth.saturation_episodes"), 6);
}
