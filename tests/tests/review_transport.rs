//! Review of bandwidth, TCP health and the TCP state: wrong numbers and duplicate findings
//! found by reading, each built here from packets, the expected values from the
//! construction (every one failed before its fix).

use observer_tests::tcp_flags::{ACK, FIN, SYN};
use observer_tests::{
    PcapBuilder, analyze_built_with, download, finding_to, message, stat, with_rule,
};
use serde_json::Value;

const C: &str = "10.0.0.1";
const S: &str = "10.0.0.2";

/// IPv4 and TCP headers of 20 bytes each: a segment is 40 IP bytes plus its payload.
const HDR: u64 = 40;

fn bulk_to<'a>(events: &'a [Value], server: &str) -> &'a Value {
    finding_to(events, "bandwidth.bulk_transfer", server)
}

/// A download of 200 × 1,000 bytes in 1 s (its last data segment at 0.998 s), then the
/// connection sits idle (HTTP keep-alive) and is closed by FINs at 61 s. While it idles,
/// another download of the same size runs on the same link (10–11 s).
///
/// Right: the transfer moved its bytes in about 1 s (0.995 s from its first data segment at
/// 3 ms to its last at 0.998 s), about 1.74 Mbit/s, and it had the link to itself while it moved them (share 1).
/// Wrong (before the fix): duration 61 s, 0.028 Mbit/s, and a share of about 0.5 (the other
/// download's bytes, sent while it idled, counted as competition).
#[test]
fn bulk_throughput_and_share_leave_out_the_idle_tail_before_the_fin() {
    let mut b = PcapBuilder::default();
    let (c, s) = ((C, 40_000), (S, 80));
    let (bytes, last, seq) = download(&mut b, 0.0, c, s, 200);
    assert!((last - 0.998).abs() < 1e-9);
    // Idle, then closed at 61 s.
    b.tcp(61.0, c, s, 101, seq, FIN | ACK, &[])
        .tcp(61.001, s, c, seq, 102, FIN | ACK, &[])
        .tcp(61.002, c, s, 102, seq + 1, ACK, &[]);
    let total = bytes + 3 * HDR;
    // Control: another download on the same link while the first idles (closed at once).
    let (c2, s2) = ((C, 40_001), ("10.0.0.3", 80));
    let (_, _, seq2) = download(&mut b, 10.0, c2, s2, 200);
    b.tcp(11.5, c2, s2, 101, seq2, FIN | ACK, &[])
        .tcp(11.501, s2, c2, seq2, 102, FIN | ACK, &[])
        .tcp(11.502, c2, s2, 102, seq2 + 1, ACK, &[]);
    let ev = analyze_built_with(
        &b,
        "idle-tail.pcap",
        "[bandwidth]\nbulk_threshold_bytes = 100000\n",
    );
    let f = bulk_to(&ev, S);
    let e = &f["fallacy"]["evidence"];
    assert_eq!(e["bytes"], total);
    let d = e["duration_secs"].as_f64().unwrap();
    assert!((d - 0.995).abs() < 1e-6, "duration {d} s: {}", message(f));
    let mbps = e["throughput_mbps"].as_f64().unwrap();
    let expected = total as f64 * 8.0 / 0.995 / 1e6;
    assert!(
        (mbps - expected).abs() / expected < 0.01,
        "{mbps} Mbit/s, expected {expected}"
    );
    let share = e["link_share"].as_f64().unwrap();
    assert!((share - 1.0).abs() < 1e-9, "link share {share}");
    // The control ran alone on the link too, closed 0.5 s after its data.
    let e2 = &bulk_to(&ev, "10.0.0.3")["fallacy"]["evidence"];
    assert!((e2["link_share"].as_f64().unwrap() - 1.0).abs() < 1e-9);
}

/// A connection opened at 0 s (a pooled one) sits idle until 20 s, then downloads 200 × 1,000
/// bytes in 1 s and closes at 22 s. While it idled (2–3 s), another download ran on the same
/// link.
///
/// Right: the first had the link to itself while it moved its bytes (share 1). Wrong (before
/// the fix): its share started at its handshake, so the other download's bytes during its idle
/// head counted as competition (about 0.5).
#[test]
fn bulk_share_leaves_out_the_idle_head_before_the_transfer() {
    let mut b = PcapBuilder::default();
    let (c, s) = ((C, 40_000), (S, 80));
    b.tcp(0.0, c, s, 100, 0, SYN, &[])
        .tcp(0.001, s, c, 500, 101, SYN | ACK, &[])
        .tcp(0.002, c, s, 101, 501, ACK, &[]);
    let (c2, s2) = ((C, 40_001), ("10.0.0.3", 80));
    let (_, _, seq2) = download(&mut b, 2.0, c2, s2, 200);
    b.tcp(3.5, c2, s2, 101, seq2, FIN | ACK, &[])
        .tcp(3.501, s2, c2, seq2, 102, FIN | ACK, &[])
        .tcp(3.502, c2, s2, 102, seq2 + 1, ACK, &[]);
    let mut seq = 501;
    for i in 0..200 {
        let t = 20.0 + f64::from(i) * 0.005;
        b.tcp(t, s, c, seq, 101, ACK, &[0x61; 1000]);
        seq += 1000;
        b.tcp(t + 0.0005, c, s, 101, seq, ACK, &[]);
    }
    b.tcp(22.0, c, s, 101, seq, FIN | ACK, &[])
        .tcp(22.001, s, c, seq, 102, FIN | ACK, &[])
        .tcp(22.002, c, s, 102, seq + 1, ACK, &[]);
    let ev = analyze_built_with(
        &b,
        "idle-head.pcap",
        "[bandwidth]\nbulk_threshold_bytes = 100000\n",
    );
    let e = &bulk_to(&ev, S)["fallacy"]["evidence"];
    let share = e["link_share"].as_f64().unwrap();
    assert!((share - 1.0).abs() < 1e-9, "link share {share}");
    // The other download ran alone too (the first carried no payload then).
    let e2 = &bulk_to(&ev, "10.0.0.3")["fallacy"]["evidence"];
    assert!((e2["link_share"].as_f64().unwrap() - 1.0).abs() < 1e-9);
}

/// An Ethernet frame carrying the TCP segment `src → dst` in VXLAN (UDP 10.9.0.1:50000 →
/// 10.9.0.2:4789, VNI 1).
#[allow(clippy::too_many_arguments)]
fn vxlan_tcp(
    src: (&str, u16),
    dst: (&str, u16),
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let ip = |s: &str| s.parse::<std::net::Ipv4Addr>().unwrap().octets();
    let inner_b = observer_tests::with_tcp_flags(
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 1, 1], [2, 0, 0, 0, 1, 2])
            .ipv4(ip(src.0), ip(dst.0), 64)
            .tcp(src.1, dst.1, seq, 64240),
        ack,
        flags,
    );
    let mut inner = vec![0x08, 0, 0, 0, 0, 0, 1, 0];
    inner_b.write(&mut inner, payload).unwrap();
    let outer = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(ip("10.9.0.1"), ip("10.9.0.2"), 64)
        .udp(50_000, 4789);
    let mut frame = Vec::new();
    outer.write(&mut frame, &inner).unwrap();
    frame
}

/// A 200 × 1,000-byte download (handshake, data, FINs) carried in VXLAN, the only traffic.
///
/// Right: one bulk transfer, the TCP connection inside the tunnel (its bytes were moved
/// once), `bandwidth.bulk_transfers` 1. Wrong (before the fix): the tunnel's own UDP flow,
/// which carried the same bytes, is reported as a second bulk transfer ("limited by the
/// unknown (not TCP)"), and the count is 2.
#[test]
fn a_transfer_inside_a_udp_tunnel_is_one_bulk_transfer() {
    let mut b = PcapBuilder::default();
    let (c, s) = ((C, 40_000), (S, 80));
    b.frame(0.0, &vxlan_tcp(c, s, 100, 0, SYN, &[]))
        .frame(0.001, &vxlan_tcp(s, c, 500, 101, SYN | ACK, &[]))
        .frame(0.002, &vxlan_tcp(c, s, 101, 501, ACK, &[]));
    let mut seq = 501;
    for i in 0..200 {
        let t = 0.003 + f64::from(i) * 0.005;
        b.frame(t, &vxlan_tcp(s, c, seq, 101, ACK, &[0x61; 1000]));
        seq += 1000;
        b.frame(t + 0.0005, &vxlan_tcp(c, s, 101, seq, ACK, &[]));
    }
    b.frame(1.1, &vxlan_tcp(c, s, 101, seq, FIN | ACK, &[]))
        .frame(1.101, &vxlan_tcp(s, c, seq, 102, FIN | ACK, &[]))
        .frame(1.102, &vxlan_tcp(c, s, 102, seq + 1, ACK, &[]));
    let ev = analyze_built_with(
        &b,
        "vxlan-bulk.pcap",
        "[bandwidth]\nbulk_threshold_bytes = 100000\n",
    );
    assert_eq!(stat(&ev, "ip.tunneled"), 406);
    let bulk = with_rule(&ev, "bandwidth.bulk_transfer");
    let msgs: Vec<&str> = bulk.iter().map(|f| message(f)).collect();
    assert_eq!(bulk.len(), 1, "{msgs:#?}");
    let e = &bulk_to(&ev, S)["fallacy"]["evidence"];
    // The inner connection's IP bytes: 6 control segments and 200 data segments with ACKs.
    assert_eq!(e["bytes"], 6 * HDR + 200 * (HDR + 1000 + HDR));
    assert_eq!(stat(&ev, "bandwidth.bulk_transfers"), 1);
}

/// Captured at the server: SYN at 0, SYN/ACK at 0.1 ms; the client's ACK is lost on the way,
/// so the server resends its SYN/ACK at 1.0001 s (its 1 s SYN/ACK timer) and the client's ACK
/// comes 20 ms later. The server then sends 1,000 bytes at 1.03 s that are lost; it resends
/// them at 3.03 s after 2 s of silence (an RTO), acknowledged 20 ms later.
///
/// Right: the path's round trip is 20.1 ms (0.1 ms to the SYN/ACK, 20 ms from the SYN/ACK
/// answered to the ACK), so the 2 s silence before resending data is a stall of the data,
/// above the 1 s `stall_threshold_secs`. Wrong (before the fix): the SYN/ACK timer's 1 s was
/// taken as the initial RTT (1.0201 s), the stall threshold became 3 × that (3.06 s), and the
/// data stall was not counted (`stalls_before.data` 0; the finding only named the SYN/ACK's
/// wait). Control: the same connection without the lost ACK has its data stall counted.
#[test]
fn a_resent_syn_ack_does_not_hide_a_later_data_stall() {
    let mut b = PcapBuilder::default();
    let conn = |b: &mut PcapBuilder, server: &str, port: u16, resent: bool| {
        let (c, s) = ((C, port), (server, 80));
        b.tcp(0.0, c, s, 100, 0, SYN, &[])
            .tcp(0.0001, s, c, 500, 101, SYN | ACK, &[]);
        let t = if resent {
            b.tcp(1.0001, s, c, 500, 101, SYN | ACK, &[]);
            1.0001
        } else {
            0.0001
        };
        b.tcp(t + 0.02, c, s, 101, 501, ACK, &[])
            .tcp(t + 0.03, s, c, 501, 101, ACK, &[0x61; 1000])
            .tcp(t + 2.03, s, c, 501, 101, ACK, &[0x61; 1000])
            .tcp(t + 2.05, c, s, 101, 1501, ACK, &[])
            .tcp(t + 2.1, c, s, 101, 1501, FIN | ACK, &[])
            .tcp(t + 2.101, s, c, 1501, 102, FIN | ACK, &[])
            .tcp(t + 2.102, c, s, 102, 1502, ACK, &[]);
    };
    conn(&mut b, S, 40_000, true);
    conn(&mut b, "10.0.0.3", 40_001, false);
    let ev = analyze_built_with(&b, "synack-resent.pcap", "");
    let stall_to = |server: &str| {
        let m: Vec<_> = with_rule(&ev, "tcp.retransmission.stall")
            .into_iter()
            .filter(|f| f["destination"]["ip"] == server)
            .collect();
        assert_eq!(m.len(), 1, "one stall finding to {server}: {m:#?}");
        m[0]["fallacy"]["evidence"].clone()
    };
    for server in ["10.0.0.3", S] {
        let e = stall_to(server);
        let d = &e["server_to_client"];
        assert_eq!(d["stalls_before"]["data"], 1, "{server}: {e:#}");
        let longest = d["longest_stall_before_secs"]["data"].as_f64().unwrap();
        assert!((longest - 2.0).abs() < 0.002, "{server}: {longest}");
        let irtt = e["initial_rtt_ms"].as_f64().unwrap();
        assert!(
            (irtt - 20.1).abs() < 0.01,
            "{server}: initial RTT {irtt} ms"
        );
    }
}
