//! Review of TCP health and reliability (fallacy 1): the sequence state a reset leaves, the
//! unacknowledged data reported with `tcp.connection.reset`, and the segment count that
//! `tcp.retransmission.excessive` divides by. Each capture is built here, the expected values
//! follow from the construction (the retransmissions counted agree with tshark's
//! `tcp.analysis.retransmission` on them); every test failed before its fix.

use observer_tests::tcp_flags::{ACK, FIN, RST, SYN};
use observer_tests::{PcapBuilder, analyze_built, finding_at_port, message, stat, with_rule};

const C: &str = "10.0.0.1";
const S: &str = "10.0.0.2";

/// A connection from port `cport` to `S:sport` whose client sent 10 bytes, acknowledged.
fn opened(b: &mut PcapBuilder, t: f64, cport: u16, sport: u16) {
    let (c, s) = ((C, cport), (S, sport));
    b.tcp(t, c, s, 100, 0, SYN, &[])
        .tcp(t + 0.001, s, c, 500, 101, SYN | ACK, &[])
        .tcp(t + 0.002, c, s, 101, 501, ACK, &[])
        .tcp(t + 0.003, c, s, 101, 501, ACK, &[0x30; 10])
        .tcp(t + 0.004, s, c, 501, 111, ACK, &[]);
}

#[test]
fn a_reset_carrying_a_fin_or_text_leaves_nothing_in_flight() {
    let mut b = PcapBuilder::default();
    // The client drops an idle connection with one FIN+RST segment: nothing was in flight
    // either way (its 10 bytes were acknowledged), so it is the client's choice (low). The FIN
    // in the reset itself is no data waiting for an acknowledgment: no ACK can ever follow.
    opened(&mut b, 0.0, 40001, 7001);
    b.tcp(30.0, (C, 40001), (S, 7001), 111, 501, FIN | RST | ACK, &[]);
    // A server resets with diagnostic text in its RST (RFC 9293 lets it): the text is no data
    // in flight either; nothing else was unacknowledged.
    opened(&mut b, 1.0, 40002, 7002);
    b.tcp(
        1.5,
        (S, 7002),
        (C, 40002),
        501,
        111,
        RST | ACK,
        b"connection refused by policy",
    );
    let ev = analyze_built(&b, "review-tcp-rst-own-seq.pcap");
    assert_eq!(stat(&ev, "tcp.connections.aborted"), 2);
    let idle = finding_at_port(&ev, "tcp.connection.reset", 7001);
    let e = &idle["fallacy"]["evidence"];
    assert_eq!(e["aborted_with_unacked_data"], 0, "{idle:#}");
    assert_eq!(e["unacked_bytes"], 0, "{idle:#}");
    assert_eq!(idle["event"]["severity"], 1, "{idle:#}");
    let text = finding_at_port(&ev, "tcp.connection.reset", 7002);
    let e = &text["fallacy"]["evidence"];
    assert_eq!(e["aborted_with_unacked_data"], 0, "{text:#}");
    assert_eq!(e["unacked_bytes"], 0, "{text:#}");
    assert!(
        message(text).contains("0 with data still unacknowledged, 0 bytes"),
        "{text:#}"
    );
}

#[test]
fn a_fin_sent_again_counts_among_the_segments_the_rate_divides() {
    // 26 data segments of 100 bytes from the client, each acknowledged; its FIN then goes
    // out 4 times (3 retransmissions, as tshark counts them) before the server answers. The
    // client sent 1 SYN + 26 data segments + 4 FINs = 31 segments that took sequence space,
    // 3 of them retransmitted: 9.7 %, medium (high is from 10 %).
    let (c, s) = ((C, 40003), (S, 7003));
    let mut b = PcapBuilder::default();
    b.tcp(0.0, c, s, 100, 0, SYN, &[])
        .tcp(0.001, s, c, 500, 101, SYN | ACK, &[])
        .tcp(0.002, c, s, 101, 501, ACK, &[]);
    let mut seq = 101;
    for k in 0..26 {
        let t = 0.01 + f64::from(k) * 0.001;
        b.tcp(t, c, s, seq, 501, ACK, &[0x31; 100]);
        seq += 100;
        b.tcp(t + 0.0005, s, c, 501, seq, ACK, &[]);
    }
    for k in 0..4 {
        b.tcp(0.1 + f64::from(k) * 0.3, c, s, seq, 501, FIN | ACK, &[]);
    }
    b.tcp(1.2, s, c, 501, seq + 1, FIN | ACK, &[])
        .tcp(1.201, c, s, seq + 1, 502, ACK, &[]);
    // A transfer whose last data segment carries the FIN, never resent, and whose 3 resent
    // data segments make the loss: 1 SYN + 25 data segments + 3 resent + the last one with
    // the FIN (one segment, not two) = 30 segments, 3 retransmitted: 10.0 %, high.
    let (c2, s2) = ((C, 40004), (S, 7004));
    b.tcp(2.0, c2, s2, 100, 0, SYN, &[])
        .tcp(2.001, s2, c2, 500, 101, SYN | ACK, &[])
        .tcp(2.002, c2, s2, 101, 501, ACK, &[]);
    let mut seq = 101;
    for k in 0..25 {
        let t = 2.01 + f64::from(k) * 0.001;
        b.tcp(t, c2, s2, seq, 501, ACK, &[0x31; 100]);
        if k < 3 {
            // Resent 300 ms later (a timer's retransmission, not a capture's copy).
            b.tcp(t + 0.3, c2, s2, seq, 501, ACK, &[0x31; 100]);
        }
        seq += 100;
    }
    b.tcp(2.5, s2, c2, 501, seq, ACK, &[])
        .tcp(2.6, c2, s2, seq, 501, FIN | ACK, &[0x31; 100])
        .tcp(2.601, s2, c2, 501, seq + 101, FIN | ACK, &[])
        .tcp(2.602, c2, s2, seq + 101, 502, ACK, &[]);
    let ev = analyze_built(&b, "review-tcp-fin-rate.pcap");
    assert_eq!(stat(&ev, "tcp.retransmissions"), 6);
    let rate = with_rule(&ev, "tcp.retransmission.excessive");
    assert_eq!(rate.len(), 2, "{rate:#?}");
    let fins = finding_at_port(&ev, "tcp.retransmission.excessive", 7003);
    assert!(
        message(fins).contains("retransmitted 3 of 31 segments (9.7 %"),
        "{fins:#}"
    );
    assert_eq!(fins["event"]["severity"], 2, "{fins:#}");
    let data = finding_at_port(&ev, "tcp.retransmission.excessive", 7004);
    assert!(
        message(data).contains("retransmitted 3 of 30 segments (10.0 %"),
        "{data:#}"
    );
    assert_eq!(data["event"]["severity"], 3, "{data:#}");
}

/// An attempt the server answered with its SYN/ACK and the client then reset instead of
/// completing (a client whose connect timed out just as the answer came, a SYN scan) is
/// counted among the handshakes: in `reset_after_synack`, not in `half_open` (a reset is no
/// missing ACK) and not in `completed`. Control: one SYN/ACK left without ACK or RST is
/// `half_open`.
#[test]
fn an_attempt_reset_after_the_synack_is_counted_among_the_handshakes() {
    let mut b = PcapBuilder::default();
    b.tcp(0.0, (C, 40010), (S, 7010), 100, 0, SYN, &[])
        .tcp(0.001, (S, 7010), (C, 40010), 500, 101, SYN | ACK, &[])
        .tcp(0.002, (C, 40010), (S, 7010), 101, 0, RST, &[]);
    b.tcp(1.0, (C, 40011), (S, 7011), 100, 0, SYN, &[]).tcp(
        1.001,
        (S, 7011),
        (C, 40011),
        500,
        101,
        SYN | ACK,
        &[],
    );
    b.udp(10.0, (C, 5000), (S, 5001), b"later");
    let ev = analyze_built(&b, "reset-after-synack.pcap");
    assert_eq!(stat(&ev, "tcp.handshakes.reset_after_synack"), 1);
    assert_eq!(stat(&ev, "tcp.handshakes.half_open"), 1);
    assert_eq!(stat(&ev, "tcp.handshakes.completed"), 0);
}

/// A SYN flood against `10.0.9.9:80`: 300 attempts from 300 addresses, 10 ms apart, each
/// answered by a SYN/ACK at +0.5 ms that the server resends at +1, +3 and +7 s (its SYN/ACK
/// timer doubling) because no ACK ever comes; one more attempt answered once and never
/// acknowledged (the capture may have missed that ACK); and one ordinary connection to the
/// same server.
///
/// Right: one finding for the server, `tcp.handshake.half_open`, with the 300 attempts (300
/// SYNs, 1,200 SYN/ACKs, 16 clients listed of more); no per-connection
/// `tcp.retransmission.stall` for the SYN/ACK timer (the server waiting on ACKs that never
/// come is the flood, not a stall of 300 connections); the attempt answered once counted in
/// `stats.tcp.handshakes.half_open` only. Wrong (before the fix): 300
/// `tcp.retransmission.stall` findings ("the server stalled 3 time(s) … before resending its
/// SYN/ACK"), one per spoofed address, and nothing saying half-open.
#[test]
fn a_syn_flood_is_one_half_open_finding_not_a_stall_per_connection() {
    let mut b = PcapBuilder::default();
    let s = ("10.0.9.9", 80);
    let mut at: Vec<(f64, String, u16, bool)> = Vec::new();
    for i in 0..300u32 {
        let t = 1.0 + f64::from(i) * 0.01;
        let src = format!("172.16.{}.{}", i / 200, 1 + i % 200);
        let port = 1024 + i as u16;
        at.push((t, src.clone(), port, true));
        for dt in [0.0005, 1.0005, 3.0005, 7.0005] {
            at.push((t + dt, src.clone(), port, false));
        }
    }
    at.push((2.0, "172.16.9.1".into(), 5000, true));
    at.push((2.0005, "172.16.9.1".into(), 5000, false));
    at.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (t, src, port, syn) in &at {
        let c = (src.as_str(), *port);
        if *syn {
            b.tcp(*t, c, s, 100, 0, SYN, &[]);
        } else {
            b.tcp(*t, s, c, 500, 101, SYN | ACK, &[]);
        }
    }
    // The ordinary connection, after the flood.
    let (c, s2) = ((C, 40_000), s);
    b.tcp(20.0, c, s2, 100, 0, SYN, &[])
        .tcp(20.001, s2, c, 500, 101, SYN | ACK, &[])
        .tcp(20.002, c, s2, 101, 501, ACK, &[])
        .tcp(20.003, c, s2, 101, 501, ACK, &[0x30; 10])
        .tcp(20.004, s2, c, 501, 111, ACK, &[])
        .tcp(20.005, c, s2, 111, 501, FIN | ACK, &[])
        .tcp(20.006, s2, c, 501, 112, FIN | ACK, &[])
        .tcp(20.007, c, s2, 112, 502, ACK, &[]);
    let ev = analyze_built(&b, "syn-flood-half-open.pcap");
    let stalls = with_rule(&ev, "tcp.retransmission.stall");
    assert!(
        stalls.is_empty(),
        "{} stalls: {:#?}",
        stalls.len(),
        stalls.first()
    );
    let half = with_rule(&ev, "tcp.handshake.half_open");
    assert_eq!(half.len(), 1, "{half:#?}");
    let f = half[0];
    assert_eq!(f["destination"]["ip"], "10.0.9.9", "{f:#}");
    assert_eq!(f["destination"]["port"], 80, "{f:#}");
    let e = &f["fallacy"]["evidence"];
    assert_eq!(e["connections"], 300, "{e:#}");
    assert_eq!(e["syn_packets"], 300, "{e:#}");
    assert_eq!(e["synack_packets"], 1200, "{e:#}");
    assert_eq!(e["clients"].as_array().map(Vec::len), Some(16), "{e:#}");
    assert_eq!(e["clients_truncated"], true, "{e:#}");
    assert!(message(f).contains("300"), "{}", message(f));
    assert_eq!(stat(&ev, "tcp.handshakes.half_open"), 301);
    assert_eq!(stat(&ev, "tcp.handshakes.completed"), 1);
}

/// How many clients a `tcp.handshake.refused` message names: one by its address, a few by
/// their number, more than the 16 listed as "more than 16". Three ports, refused for 1, 3 and
/// 17 clients (each a SYN answered by RST/ACK).
#[test]
fn refused_attempts_name_their_clients_by_count() {
    let mut b = PcapBuilder::default();
    let mut t = 0.0;
    for (port, n) in [(7021u16, 1u8), (7022, 3), (7023, 17)] {
        for i in 1..=n {
            let c = format!("10.0.21.{i}");
            b.tcp(t, (&c, 40021), (S, port), 100, 0, SYN, &[]).tcp(
                t + 0.001,
                (S, port),
                (&c, 40021),
                0,
                101,
                RST | ACK,
                &[],
            );
            t += 0.01;
        }
    }
    let ev = analyze_built(&b, "refused-clients.pcap");
    for (port, text) in [
        (
            7021,
            "refused 1 connection attempt(s) from 1 client (10.0.21.1) (RST in reply to SYN)",
        ),
        (
            7022,
            "refused 3 connection attempt(s) from 3 clients (RST in reply to SYN)",
        ),
        (
            7023,
            "refused 17 connection attempt(s) from more than 16 clients (RST in reply to SYN)",
        ),
    ] {
        let f = finding_at_port(&ev, "tcp.handshake.refused", port);
        assert!(message(f).contains(text), "{f:#}");
    }
}

/// Two connections from `C` to `S:7101`, the server 6 hops away (its packets arrive with TTL
/// 58, the client's with 64), each with 10 bytes of request the server has not acknowledged,
/// then a RST "from the server": on the first with TTL 58, the server's own; on the second
/// with TTL 250, which no packet of the server's arrives with (a firewall or load balancer
/// near the client, whose packets start at 255, resetting a connection it no longer keeps).
///
/// Right: one `tcp.connection.reset` for `S:7101` that counts 1 reset by the server and 1 by
/// something on the path, naming the TTLs (58 at the handshake, 250 on the reset). Wrong
/// (before): 2 resets "by the server", the middlebox's blamed on the server.
#[test]
fn a_reset_whose_ttl_is_unlike_the_senders_is_told_apart_as_sent_by_the_path() {
    let mut b = PcapBuilder::default();
    for (i, rst_ttl) in [58u8, 250].into_iter().enumerate() {
        let t = f64::from(i as u32) * 10.0;
        let (c, s) = ((C, 41_000 + i as u16), (S, 7101));
        b.with_ttl(64).tcp(t, c, s, 100, 0, SYN, &[]);
        b.with_ttl(58)
            .tcp(t + 0.001, s, c, 500, 101, SYN | ACK, &[]);
        b.with_ttl(64).tcp(t + 0.002, c, s, 101, 501, ACK, &[]).tcp(
            t + 0.003,
            c,
            s,
            101,
            501,
            ACK,
            &[0x30; 10],
        );
        b.with_ttl(rst_ttl)
            .tcp(t + 0.5, s, c, 501, 101, RST | ACK, &[]);
    }
    b.with_ttl(64).udp(100.0, (C, 5000), (S, 5001), b"later");
    let ev = analyze_built(&b, "path-reset-ttl.pcap");
    let f = finding_at_port(&ev, "tcp.connection.reset", 7101);
    let e = &f["fallacy"]["evidence"];
    assert_eq!(e["connections"], 2, "{f:#}");
    assert_eq!(e["reset_by_server"], 1, "{f:#}");
    assert_eq!(e["reset_by_client"], 0, "{f:#}");
    assert_eq!(e["reset_by_path"], 1, "{f:#}");
    assert_eq!(e["path_reset_ttls"], serde_json::json!([58, 250]), "{f:#}");
    assert!(message(f).contains("1 by the server"), "{}", message(f));
    assert!(
        message(f).contains("1 by something on the path"),
        "{}",
        message(f)
    );
}
