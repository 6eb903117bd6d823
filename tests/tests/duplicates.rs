//! Capture artefacts. A frame captured twice (`tcpdump -i any` on a bridge or VLAN host, a
//! mirror port copying both directions, a capture merged with itself) is analyzed once: the
//! copies are counted in `stats.frames.duplicates`, and the findings are those of the capture
//! without them. A clock stepping back is counted in `stats.frames.time_steps_back`. Expected
//! values follow from the construction.

use etherparse::PacketBuilder;
use observer_tests::tcp_flags::{ACK, FIN, SYN};
use observer_tests::{
    PcapBuilder, ScratchFile, analyze_built, dns_a_query, dns_a_response, dns_evidence, observer,
    stat, with_rule,
};
use serde_json::Value;

/// A TCP frame 10.0.0.1:40000 ⇄ 10.0.0.2:80 (`up`: from the client) with IPv4 identification
/// `id`.
fn frame(up: bool, seq: u32, ack: u32, flags: u8, payload: &[u8], id: u16) -> Vec<u8> {
    let (c, s) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    let (src, dst, sp, dp) = if up {
        (c, s, 40000, 80)
    } else {
        (s, c, 80, 40000)
    };
    let mut b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src, dst, 64)
        .tcp(sp, dp, seq, 64240);
    if flags & SYN != 0 {
        b = b.syn();
    }
    if flags & ACK != 0 {
        b = b.ack(ack);
    }
    if flags & FIN != 0 {
        b = b.fin();
    }
    let mut v = Vec::new();
    b.write(&mut v, payload).expect("frame builds");
    v[18..20].copy_from_slice(&id.to_be_bytes());
    v
}

/// A download of 40 segments of 1,000 bytes; segments 10 and 30 are lost once and sent again
/// 300 ms later (new identification). Each frame is captured `copies` times, 20 µs apart.
fn download(copies: usize) -> (PcapBuilder, u64) {
    let mut frames: Vec<(f64, Vec<u8>)> = Vec::new();
    let (mut cid, mut sid) = (100u16, 5000u16);
    let mut up = |t: f64, seq, ack, flags, p: &[u8], frames: &mut Vec<(f64, Vec<u8>)>| {
        cid += 1;
        frames.push((t, frame(true, seq, ack, flags, p, cid)));
    };
    let mut down = |t: f64, seq, ack, flags, p: &[u8], frames: &mut Vec<(f64, Vec<u8>)>| {
        sid += 1;
        frames.push((t, frame(false, seq, ack, flags, p, sid)));
    };
    up(0.0, 100, 0, SYN, &[], &mut frames);
    down(0.001, 500, 101, SYN | ACK, &[], &mut frames);
    up(0.002, 101, 501, ACK, &[], &mut frames);
    let data = [b'x'; 1000];
    let mut t = 0.01;
    for i in 0..40u32 {
        let seq = 501 + i * 1000;
        down(t, seq, 101, ACK, &data, &mut frames);
        if i == 10 || i == 30 {
            down(t + 0.3, seq, 101, ACK, &data, &mut frames);
            t += 0.3;
        }
        up(t + 0.002, 101, seq + 1000, ACK, &[], &mut frames);
        t += 0.01;
    }
    let end = 501 + 40 * 1000;
    down(t, end, 101, FIN | ACK, &[], &mut frames);
    up(t + 0.001, 101, end + 1, FIN | ACK, &[], &mut frames);
    down(t + 0.002, end + 1, 102, ACK, &[], &mut frames);
    let mut b = PcapBuilder::default();
    for (t, f) in &frames {
        for k in 0..copies {
            b.frame(t + k as f64 * 0.000_02, f);
        }
    }
    (b, frames.len() as u64)
}

fn rules(ev: &[Value]) -> Vec<String> {
    let mut r: Vec<String> = ev
        .iter()
        .filter(|e| e["event"]["kind"] == "alert")
        .map(|e| format!("{} {}", e["rule"]["name"], e["message"]))
        .collect();
    r.sort();
    r
}

#[test]
fn a_capture_holding_every_frame_twice_gives_the_findings_of_the_capture_without_copies() {
    let (once, n) = download(1);
    let once = analyze_built(&once, "download.pcap");
    for copies in [2u64, 3] {
        let (b, _) = download(copies as usize);
        let ev = analyze_built(&b, "download-copies.pcap");
        assert_eq!(stat(&ev, "frames.total"), n * copies);
        assert_eq!(stat(&ev, "frames.duplicates"), n * (copies - 1));
        for s in [
            "tcp.retransmissions",
            "tcp.duplicate_acks",
            "tcp.handshakes.completed",
        ] {
            assert_eq!(stat(&ev, s), stat(&once, s), "{s} with {copies} copies");
        }
        assert_eq!(stat(&ev, "tcp.retransmissions"), 2);
        assert_eq!(rules(&ev), rules(&once), "{copies} copies");
    }
    // Before, every copy of a data segment was a retransmission: 50 % of the server's
    // segments with two copies.
    assert!(with_rule(&once, "tcp.retransmission.excessive").is_empty());
}

#[test]
fn a_segment_sent_again_is_no_copy_even_when_it_is_identical_or_quick() {
    let data = [b'y'; 500];
    // The same bytes and identification 300 ms later: a retransmission of a stack that does
    // not change the identification. A new identification 100 µs later: a retransmission.
    for (label, dt, id2) in [("late", 0.3, 7u16), ("new identification", 0.0001, 8)] {
        let mut b = PcapBuilder::default();
        b.frame(0.0, &frame(true, 100, 0, SYN, &[], 1))
            .frame(0.001, &frame(false, 500, 101, SYN | ACK, &[], 2))
            .frame(0.002, &frame(true, 101, 501, ACK, &[], 3))
            .frame(0.01, &frame(false, 501, 101, ACK, &data, 7))
            .frame(0.01 + dt, &frame(false, 501, 101, ACK, &data, id2));
        let ev = analyze_built(&b, "resent.pcap");
        assert_eq!(stat(&ev, "frames.duplicates"), 0, "{label}");
        assert_eq!(stat(&ev, "tcp.retransmissions"), 1, "{label}");
    }
    // Bare ACKs without an identification (IPv6, or a stack that leaves it 0) are never taken
    // for copies: repeated ACKs are identical to the byte.
    let mut b = PcapBuilder::default();
    b.frame(0.0, &frame(true, 100, 0, SYN, &[], 1))
        .frame(0.001, &frame(false, 500, 101, SYN | ACK, &[], 2))
        .frame(0.002, &frame(true, 101, 501, ACK, &[], 0))
        .frame(0.01, &frame(false, 501, 101, ACK, &data, 4))
        .frame(0.011, &frame(true, 101, 501, ACK, &[], 0))
        .frame(0.011_05, &frame(true, 101, 501, ACK, &[], 0))
        .frame(0.011_1, &frame(true, 101, 501, ACK, &[], 0));
    let ev = analyze_built(&b, "acks.pcap");
    assert_eq!(stat(&ev, "frames.duplicates"), 0);
    assert_eq!(stat(&ev, "tcp.duplicate_acks"), 3);
}

#[test]
fn a_clock_stepping_back_is_counted_once_and_a_small_reorder_is_not() {
    // 10 segments, the 6th onward stamped 10 s earlier (an NTP step during the capture), and
    // two frames 50 µs out of order (a multi-queue capture).
    let mut b = PcapBuilder::default();
    b.frame(100.0, &frame(true, 100, 0, SYN, &[], 1))
        .frame(100.001, &frame(false, 500, 101, SYN | ACK, &[], 2))
        .frame(100.002, &frame(true, 101, 501, ACK, &[], 3));
    for i in 0..10u32 {
        let t = 100.01 + f64::from(i) * 0.01 - if i >= 5 { 10.0 } else { 0.0 };
        b.frame(
            t,
            &frame(false, 501 + i * 100, 101, ACK, &[b'z'; 100], 10 + i as u16),
        );
    }
    b.frame(90.2, &frame(true, 101, 1501, ACK, &[], 4))
        .frame(90.199_95, &frame(true, 101, 1501, ACK, &[], 5));
    let ev = analyze_built(&b, "step-back.pcap");
    assert_eq!(stat(&ev, "frames.time_steps_back"), 1);
    assert_eq!(stat(&ev, "frames.duplicates"), 0);
}

#[test]
fn a_capture_of_nothing_but_syns_is_called_out_in_the_summary() {
    // 20 attempts to 20 servers, every one answered on the wire, captured with a filter that
    // kept only SYNs: nothing in the file tells an answered attempt from an unanswered one,
    // so the summary says the verdicts are not real. With the SYN/ACKs kept, it says nothing.
    let build = |with_answers: bool| {
        let mut b = PcapBuilder::default();
        for i in 0..20u16 {
            let t = f64::from(i) * 0.1;
            let s = format!("10.0.1.{}", i + 1);
            b.tcp(t, ("10.0.0.1", 40000 + i), (&s, 443), 100, 0, SYN, &[]);
            if with_answers {
                b.tcp(
                    t + 0.01,
                    (&s, 443),
                    ("10.0.0.1", 40000 + i),
                    500,
                    101,
                    SYN | ACK,
                    &[],
                );
            }
        }
        b.tcp(
            5.0,
            ("10.0.0.1", 40100),
            ("10.0.1.99", 443),
            100,
            0,
            SYN,
            &[],
        );
        ScratchFile::new(
            if with_answers {
                "answers.pcap"
            } else {
                "syn-only.pcap"
            },
            &b.finish(),
        )
    };
    for (with_answers, said) in [(false, true), (true, false)] {
        let f = build(with_answers);
        let out = observer(&["analyze", f.to_path_buf().to_str().unwrap()]);
        assert!(out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.contains("every packet is a TCP SYN"), said, "{err}");
    }
}

#[test]
fn a_fast_retransmission_identical_to_its_original_is_no_copy() {
    // IPv4 identification 0 (as IPv6 has none): the server sends 4 segments, the client
    // acknowledges the first three times (the 2nd, 3rd and 4th arrived, the 1st did not reach
    // it), and the server sends the 1st again 400 µs after it first did, byte for byte.
    let data = [b'q'; 1000];
    let mut b = PcapBuilder::default();
    b.frame(0.0, &frame(true, 100, 0, SYN, &[], 0))
        .frame(0.001, &frame(false, 500, 101, SYN | ACK, &[], 0))
        .frame(0.002, &frame(true, 101, 501, ACK, &[], 0));
    for i in 0..4u32 {
        b.frame(
            0.01 + f64::from(i) * 0.000_01,
            &frame(false, 501 + i * 1000, 101, ACK, &data, 0),
        );
    }
    for k in 0..3 {
        b.frame(
            0.010_2 + f64::from(k) * 0.000_01,
            &frame(true, 101, 501, ACK, &[], 0),
        );
    }
    b.frame(0.010_4, &frame(false, 501, 101, ACK, &data, 0))
        .frame(0.011, &frame(true, 101, 4501, ACK, &[], 0));
    let ev = analyze_built(&b, "fast-retransmission.pcap");
    assert_eq!(stat(&ev, "frames.duplicates"), 0);
    assert_eq!(stat(&ev, "tcp.retransmissions"), 1);
    assert_eq!(stat(&ev, "tcp.retransmission_kinds.fast"), 1);
}

/// A UDP frame 10.0.0.1:40001 ⇄ 10.0.0.53:53 (`up`: from the client) with IPv4
/// identification `id`.
fn datagram(up: bool, payload: &[u8], id: u16) -> Vec<u8> {
    let (c, s) = ([10, 0, 0, 1], [10, 0, 0, 53]);
    let b = if up {
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4(c, s, 64)
            .udp(40001, 53)
    } else {
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
            .ipv4(s, c, 64)
            .udp(53, 40001)
    };
    let mut v = Vec::new();
    b.write(&mut v, payload).expect("frame builds");
    v[18..20].copy_from_slice(&id.to_be_bytes());
    v
}

#[test]
fn a_datagram_captured_twice_is_analyzed_once_and_one_sent_again_is_a_retransmission() {
    let (qa, ra) = (
        dns_a_query(0x1111, "a.test"),
        dns_a_response(0x1111, "a.test", 0, &[("10.0.1.1", 60)]),
    );
    let (qb, rb) = (
        dns_a_query(0x2222, "b.test"),
        dns_a_response(0x2222, "b.test", 0, &[("10.0.1.2", 60)]),
    );
    let qc = dns_a_query(0x3333, "c.test");
    let rc = dns_a_response(0x3333, "c.test", 0, &[("10.0.1.3", 60)]);
    let mut b = PcapBuilder::default();
    // a.test: the query and its answer each captured twice, 30 µs apart (same identification).
    b.frame(0.0, &datagram(true, &qa, 10))
        .frame(0.000_03, &datagram(true, &qa, 10))
        .frame(0.02, &datagram(false, &ra, 20))
        .frame(0.020_03, &datagram(false, &ra, 20))
        // b.test: unanswered for 1 s, sent again (a new identification), then answered.
        .frame(0.1, &datagram(true, &qb, 11))
        .frame(1.1, &datagram(true, &qb, 12))
        .frame(1.12, &datagram(false, &rb, 21))
        // c.test: no identification (0), captured twice 50 µs apart, nothing between.
        .frame(2.0, &datagram(true, &qc, 0))
        .frame(2.000_05, &datagram(true, &qc, 0))
        .frame(2.02, &datagram(false, &rc, 0));
    let ev = analyze_built(&b, "dns-copies.pcap");
    assert_eq!(stat(&ev, "frames.total"), 10);
    assert_eq!(stat(&ev, "frames.duplicates"), 3);
    assert_eq!(stat(&ev, "udp.duplicate_datagrams"), 3);
    assert_eq!(stat(&ev, "dns.queries"), 4);
    let resent = with_rule(&ev, "dns.query.retransmitted");
    assert_eq!(resent.len(), 1, "{resent:?}");
    assert_eq!(dns_evidence(resent[0]), (1, 2, "b.test (type 1)"));
}
