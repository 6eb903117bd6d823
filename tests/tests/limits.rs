//! Per-flow buffers are capped, and hitting a cap is counted, never fatal. Three hostile
//! connections built packet by packet, then an ordinary one that must still be understood:
//! * an HTTP request head that never ends (84 KB of one header line; the parser keeps 64 KiB);
//! * 70 pipelined requests nobody answers (64 are kept pending per connection);
//! * a TLS ClientHello announcing 40,000 bytes (the handshake buffer keeps 32 KiB a direction).

use observer::config::Config;
use observer_tests::tcp_flags::{ACK, SYN};
use observer_tests::{PcapBuilder, ScratchFile, run, stat};

const C: &str = "10.0.0.1";
const S: &str = "10.0.0.2";

/// Handshake at `t`, then the client's `chunks` one segment each. Returns the time after.
fn client_sends(b: &mut PcapBuilder, t: f64, cport: u16, sport: u16, chunks: &[Vec<u8>]) -> f64 {
    b.tcp(t, (C, cport), (S, sport), 100, 0, SYN, &[])
        .tcp(t + 0.001, (S, sport), (C, cport), 500, 101, SYN | ACK, &[])
        .tcp(t + 0.002, (C, cport), (S, sport), 101, 501, ACK, &[]);
    let mut seq = 101u32;
    let mut now = t + 0.003;
    for c in chunks {
        b.tcp(now, (C, cport), (S, sport), seq, 501, ACK, c);
        seq += c.len() as u32;
        now += 0.0001;
        b.tcp(now, (S, sport), (C, cport), 501, seq, ACK, &[]);
        now += 0.0001;
    }
    now
}

fn split(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes.chunks(1400).map(<[u8]>::to_vec).collect()
}

#[test]
fn hostile_flows_hit_their_caps_and_are_counted() {
    let mut b = PcapBuilder::default();
    // 1. A head that never ends.
    let mut head = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
    head.resize(84_000, b'a');
    let t = client_sends(&mut b, 0.0, 40000, 8080, &split(&head));
    // 2. Seventy pipelined requests, no response.
    let reqs: Vec<Vec<u8>> = (0..70)
        .map(|i| format!("GET /item/{i} HTTP/1.1\r\nHost: s\r\n\r\n").into_bytes())
        .collect();
    let t = client_sends(&mut b, t + 1.0, 40001, 8081, &reqs);
    // 3. A ClientHello announcing 40,000 bytes, in TLS records of at most 16 KiB.
    let mut hs = vec![1u8, 0, 0x9c, 0x40]; // client_hello, 3-byte length 40,000
    hs.resize(4 + 40_000, 0x42);
    let mut tls = Vec::new();
    for rec in hs.chunks(16_384) {
        tls.extend_from_slice(&[0x16, 0x03, 0x01]);
        tls.extend_from_slice(&(rec.len() as u16).to_be_bytes());
        tls.extend_from_slice(rec);
    }
    let t = client_sends(&mut b, t + 1.0, 40002, 443, &split(&tls));
    // 4. An ordinary exchange afterwards.
    let t = client_sends(
        &mut b,
        t + 1.0,
        40003,
        8082,
        &[b"GET /ok HTTP/1.1\r\nHost: s\r\n\r\n".to_vec()],
    );
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    b.tcp(t, (S, 8082), (C, 40003), 501, 131, ACK, resp);
    let f = ScratchFile::new("limits.pcap", &b.finish());
    let (events, _) = run(&[f.to_path_buf()], &Config::default());

    assert_eq!(stat(&events, "limits.http_head_too_large"), 1);
    assert_eq!(stat(&events, "limits.http_pending_dropped"), 70 - 64);
    assert_eq!(stat(&events, "limits.tls_hello_dropped"), 1);
    // Nothing else was lost: the other connections' requests and the response were parsed.
    assert_eq!(stat(&events, "http.requests"), 70 + 1);
    assert_eq!(stat(&events, "http.responses"), 1);
}

#[test]
fn destinations_beyond_the_tracked_ones_are_one_finding() {
    // 10,050 clients each send a single SYN to an address of their own (no client fails
    // twice, so none is a sweep): the first 10,000 destinations are tracked one by one, the
    // other 50 are counted together.
    let mut b = PcapBuilder::default();
    let dst = |i: u32| std::net::Ipv4Addr::from(0x0c00_0000 + i).to_string();
    let src = |i: u32| std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string();
    for i in 0..10_050u32 {
        b.tcp(
            f64::from(i) * 1e-4,
            (&src(i), 30_000 + (i % 20_000) as u16),
            (&dst(i), 80),
            i,
            0,
            SYN,
            &[],
        );
    }
    let f = ScratchFile::new("sweep.pcap", &b.finish());
    let (events, _) = run(&[f.to_path_buf()], &Config::default());
    let unanswered: Vec<_> = events
        .iter()
        .filter(|e| e["rule"]["name"] == "tcp.handshake.unanswered")
        .collect();
    assert_eq!(unanswered.len(), 10_000 + 1);
    let merged: Vec<_> = unanswered
        .iter()
        .filter(|e| e["destination"].is_null())
        .collect();
    assert_eq!(merged.len(), 1);
    let ev = &merged[0]["fallacy"]["evidence"];
    assert_eq!(ev["connections"], 50);
    let samples: Vec<&str> = ev["sample_destinations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let expected: Vec<String> = (10_000..10_016).map(|i| format!("{}:80", dst(i))).collect();
    assert_eq!(samples, expected);
    assert_eq!(stat(&events, "limits.tcp_destinations_merged"), 50);
    assert_eq!(stat(&events, "tcp.handshakes.unanswered"), 10_050);
}
