//! Fallacy 3 on a capture of real programs (fixtures/make-latency-captures.sh): a 1 MB
//! download through an 8 Mbit/s `tc tbf` link while another client makes small requests.
//! Expected values from the construction (the tbf rate) and tshark (`-z conv,tcp`, initial
//! RTTs), quoted with their commands in fixtures/latency.expected.txt.

use observer_tests::{findings, ndjson};
use serde_json::Value;

fn analyze_with(config: &str) -> Vec<Value> {
    let cfg = observer_tests::ScratchFile::new("bandwidth.toml", config.as_bytes());
    ndjson(&observer_tests::analyze_raw(&[
        "--config",
        cfg.to_str().unwrap(),
        "fixtures/bandwidth-bulk.pcap",
    ]))
}

fn one<'a>(f: &[&'a Value], rule: &str) -> &'a Value {
    let m: Vec<_> = f.iter().filter(|f| f["rule"]["name"] == rule).collect();
    assert_eq!(m.len(), 1, "expected one {rule}: {f:#?}");
    m[0]
}

#[test]
fn bulk_transfer_bytes_and_duration_equal_tshark() {
    let ev = analyze_with("[bandwidth]\nbulk_threshold_bytes = 500000\n");
    let f = findings(&ev);
    let b = &one(&f, "bandwidth.bulk_transfer")["fallacy"]["evidence"];
    // tshark -z conv,tcp: 696 frames / 1,046,149 bytes server→client, 147 / 9,796 the other
    // way, Ethernet headers included (14 bytes a frame); observer counts IP bytes.
    assert_eq!(b["bytes_server_to_client"], 1_046_149 - 696 * 14);
    assert_eq!(b["bytes_client_to_server"], 9_796 - 147 * 14);
    let d = b["duration_secs"].as_f64().unwrap();
    assert!((d - 1.0502).abs() < 0.001, "duration {d}");
    // The tbf rate was 8 Mbit/s.
    let mbps = b["throughput_mbps"].as_f64().unwrap();
    assert!((7.5..=8.1).contains(&mbps), "{mbps}");
    assert_eq!(b["retransmitted_segments"], 0);
    assert_eq!(b["direction"], "server_to_client");
}

#[test]
fn known_capacity_gives_a_saturation_episode_with_the_bulk_flow_on_top() {
    let ev = analyze_with("[bandwidth]\ncapacity_mbps = 8\n");
    let f = findings(&ev);
    let s = one(&f, "bandwidth.saturation");
    assert_eq!(s["fallacy"]["id"], 3);
    let e = &s["fallacy"]["evidence"];
    assert_eq!(e["direction"], "server_to_client");
    assert!(e["duration_secs"].as_f64().unwrap() >= 1.0);
    assert_eq!(e["top_talkers"][0]["client"], "10.97.0.1:40856");
    // The default bulk threshold (10 MB) is not reached by a 1 MB download.
    assert!(
        f.iter()
            .all(|f| f["rule"]["name"] != "bandwidth.bulk_transfer")
    );
}

#[test]
fn unknown_capacity_is_inferred_from_queueing_delay() {
    let ev = analyze_with("");
    let f = findings(&ev);
    let s = one(&f, "bandwidth.saturation.inferred");
    let e = &s["fallacy"]["evidence"];
    // tshark's initial RTTs: 21–43 ms for the 6 connections opened during the download,
    // 30–72 µs after it.
    let during = e["handshake_rtt_during_ms"].as_f64().unwrap();
    let otherwise = e["handshake_rtt_otherwise_ms"].as_f64().unwrap();
    assert!((21.0..=43.0).contains(&during), "{during}");
    assert!(otherwise < 0.1, "{otherwise}");
    let plateau = e["plateau_mbps"].as_f64().unwrap();
    assert!((7.0..=8.1).contains(&plateau), "{plateau}");
}

/// Built captures (pcapng, several interfaces): IPv4 and TCP headers of 20 bytes each, so a
/// segment is 40 IP bytes plus its payload.
mod built {
    use observer::config::Config;
    use observer_tests::tcp_flags::{ACK, SYN};
    use observer_tests::{PcapBuilder, ScratchFile, finding_to, run, stat};
    use serde_json::Value;

    /// A handshake at `t`, then `segments` data segments of `size` bytes from the server, each
    /// acknowledged. Returns the flow's IP bytes: 3 × 40 + segments × (40 + size + 40).
    fn download(
        b: &mut PcapBuilder,
        t: f64,
        c: (&str, u16),
        s: (&str, u16),
        segments: u32,
        size: usize,
    ) -> u64 {
        b.tcp(t, c, s, 100, 0, SYN, &[])
            .tcp(t + 0.001, s, c, 500, 101, SYN | ACK, &[])
            .tcp(t + 0.002, c, s, 101, 501, ACK, &[]);
        let mut seq = 501;
        for i in 0..segments {
            let at = t + 0.003 + f64::from(i) * 0.001;
            b.tcp(at, s, c, seq, 101, ACK, &vec![0x61; size]);
            seq += size as u32;
            b.tcp(at + 0.0005, c, s, 101, seq, ACK, &[]);
        }
        3 * 40 + u64::from(segments) * (80 + size as u64)
    }

    fn analyze(b: &PcapBuilder) -> Vec<Value> {
        let f = ScratchFile::new("links.pcapng", &b.finish_pcapng());
        let mut cfg = Config::default();
        cfg.bandwidth.bulk_threshold_bytes = 10_000;
        run(&[f.to_path_buf()], &cfg).0
    }

    fn bulk_to<'a>(events: &'a [Value], server: &str) -> &'a Value {
        finding_to(events, "bandwidth.bulk_transfer", server)
    }

    #[test]
    fn link_share_is_kept_with_many_flows_open() {
        // 70,000 one-datagram UDP flows, all still open (UDP flows idle out after 900 s),
        // then a download alone on the link: its share is all of the link's bytes while it
        // ran. (A cap of 65,536 open flows' starting bytes once left it with no share.)
        let mut b = PcapBuilder::default();
        for i in 0..70_000u32 {
            let src = format!("10.1.0.{}", 1 + i % 2);
            let port = 1024 + (i / 2) as u16;
            b.udp(f64::from(i) * 1e-5, (&src, port), ("10.2.0.1", 9999), b"x");
        }
        download(&mut b, 1.0, ("10.0.0.1", 40000), ("10.0.1.1", 80), 40, 1000);
        let events = analyze(&b);
        let share = bulk_to(&events, "10.0.1.1")["fallacy"]["evidence"]["link_share"]
            .as_f64()
            .expect("a followed link has a share");
        assert!((share - 1.0).abs() < 1e-9, "{share}");
        assert_eq!(stat(&events, "flows.udp"), 70_000);
        assert_eq!(stat(&events, "limits.bandwidth_link_shares_untracked"), 0);
    }

    #[test]
    fn link_share_counts_only_the_flows_own_link() {
        let mut b = PcapBuilder::default();
        // Interface 0: a download, and a small exchange while it runs.
        b.on_interface(0);
        let a = download(&mut b, 0.0, ("10.0.0.1", 40000), ("10.0.1.1", 80), 40, 1000);
        let small = download(&mut b, 0.010, ("10.0.0.1", 40001), ("10.0.1.2", 80), 1, 500);
        // Interface 1: a download of the same size at the same time, alone on its link.
        b.on_interface(1);
        let other = download(&mut b, 0.0, ("10.0.0.3", 40000), ("10.0.1.3", 80), 40, 1000);
        assert_eq!((a, small, other), (43_320, 700, 43_320));
        let events = analyze(&b);
        let share = |server: &str| {
            bulk_to(&events, server)["fallacy"]["evidence"]["link_share"]
                .as_f64()
                .expect("a followed link has a share")
        };
        // Before the fix, both links' bytes were the denominator (about 0.49 each).
        let expected = a as f64 / (a + small) as f64;
        assert!(
            (share("10.0.1.1") - expected).abs() < 1e-9,
            "{}",
            share("10.0.1.1")
        );
        assert!(
            (share("10.0.1.3") - 1.0).abs() < 1e-9,
            "{}",
            share("10.0.1.3")
        );
        assert_eq!(stat(&events, "bandwidth.links"), 2);
        assert_eq!(stat(&events, "limits.bandwidth_packets_untracked"), 0);
    }

    #[test]
    fn a_flow_seen_on_two_interfaces_has_no_share_of_one() {
        // Its handshake on interface 0, its data on interface 1 (or the same traffic captured
        // on both sides of a router): neither link's bytes measure its share.
        let mut b = PcapBuilder::default();
        let (c, s) = (("10.0.0.1", 40000), ("10.0.1.1", 80));
        b.on_interface(0)
            .tcp(0.0, c, s, 100, 0, SYN, &[])
            .tcp(0.001, s, c, 500, 101, SYN | ACK, &[])
            .tcp(0.002, c, s, 101, 501, ACK, &[]);
        b.on_interface(1);
        let mut seq = 501;
        for i in 0..20 {
            let at = 0.003 + f64::from(i) * 0.001;
            b.tcp(at, s, c, seq, 101, ACK, &[0x61; 1000]);
            seq += 1000;
            b.tcp(at + 0.0005, c, s, 101, seq, ACK, &[]);
        }
        let events = analyze(&b);
        let f = bulk_to(&events, "10.0.1.1");
        assert_eq!(f["fallacy"]["evidence"]["bytes"], 3 * 40 + 20 * 1080);
        assert!(f["fallacy"]["evidence"]["link_share"].is_null(), "{f:#}");
        assert_eq!(stat(&events, "bandwidth.links"), 2);
    }

    #[test]
    fn interfaces_past_the_cap_are_counted_not_followed() {
        let mut b = PcapBuilder::default();
        for i in 0..70u32 {
            b.on_interface(i).connection(
                f64::from(i),
                ("10.0.0.1", 40000 + i as u16),
                ("10.0.1.1", 8000 + i as u16),
            );
        }
        // A download on the last interface, which is not followed.
        let bytes = download(
            &mut b,
            80.0,
            ("10.0.0.9", 40000),
            ("10.0.1.9", 80),
            20,
            1000,
        );
        let events = analyze(&b);
        assert_eq!(stat(&events, "bandwidth.links"), 64);
        // Six interfaces past the first 64, six packets a connection, and the download's
        // 3 + 2 × 20 packets.
        assert_eq!(
            stat(&events, "limits.bandwidth_packets_untracked"),
            6 * 6 + 43
        );
        let f = bulk_to(&events, "10.0.1.9");
        assert_eq!(f["fallacy"]["evidence"]["bytes"], bytes);
        assert!(f["fallacy"]["evidence"]["link_share"].is_null(), "{f:#}");
        let msg = f["message"].as_str().unwrap();
        assert!(!msg.contains("% of the link"), "{msg}");
    }
}
