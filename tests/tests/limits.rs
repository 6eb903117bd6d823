//! Per-flow buffers are capped, and hitting a cap is counted, never fatal. Three hostile
//! connections built packet by packet, then an ordinary one that must still be understood:
//! * an HTTP request head that never ends (84 KB of one header line; the parser keeps 64 KiB);
//! * 70 pipelined requests nobody answers (64 are kept pending per connection);
//! * a TLS ClientHello announcing 40,000 bytes (the handshake buffer keeps 32 KiB a direction).
//!
//! And the buffers of all flows together: a TLS connection frees its handshake's once
//! application data flows, and many hostile flows at once stay within `[flows]
//! max_parse_buffers_mb`, the ones past it shed and counted.

use observer::config::Config;
use observer_tests::tcp_flags::{ACK, SYN};
use observer_tests::{PcapBuilder, ScratchFile, dns_a_query, run, stat};

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

/// What `observer analyze` with `config` says on stderr about `capture` (it must succeed).
fn human_summary(config: &[u8], capture: &std::path::Path) -> String {
    let toml = ScratchFile::new("limits.toml", config);
    let out = observer_tests::observer(&[
        "analyze",
        "--config",
        &toml.to_string_lossy(),
        &capture.to_string_lossy(),
    ]);
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
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
    // The capture goes on for 2 s more: every attempt had time to be answered.
    b.udp(3.0, ("10.255.0.1", 5000), ("10.255.0.2", 5001), b"end");
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

/// A TLS record of content type `ty`.
fn tls_record(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut r = vec![ty, 3, 3];
    r.extend_from_slice(&(body.len() as u16).to_be_bytes());
    r.extend_from_slice(body);
    r
}

/// A handshake message of type `ty` in its own record.
fn handshake(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![ty];
    m.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    m.extend_from_slice(body);
    tls_record(22, &m)
}

/// A minimal TLS 1.2 ClientHello, and a ServerHello followed by a `cert`-byte Certificate.
fn hellos(cert: usize) -> (Vec<u8>, Vec<u8>) {
    let mut ch = vec![3, 3];
    ch.extend_from_slice(&[7; 32]);
    ch.extend_from_slice(&[0, 0, 2, 0xc0, 0x2f, 1, 0]); // no session id, one suite, null compression
    let mut sh = vec![3, 3];
    sh.extend_from_slice(&[9; 32]);
    sh.extend_from_slice(&[0, 0xc0, 0x2f, 0]);
    let mut flight = handshake(2, &sh);
    flight.extend(handshake(11, &vec![0x30; cert]));
    (handshake(1, &ch), flight)
}

/// A connection at `t`: handshake, then each (from the client?, bytes) in 1,400-byte segments,
/// each acknowledged; never closed. Returns the time after.
fn talk(b: &mut PcapBuilder, t: f64, cport: u16, sport: u16, msgs: &[(bool, Vec<u8>)]) -> f64 {
    let (c, s) = ((C, cport), (S, sport));
    b.tcp(t, c, s, 100, 0, SYN, &[])
        .tcp(t + 0.001, s, c, 500, 101, SYN | ACK, &[])
        .tcp(t + 0.002, c, s, 101, 501, ACK, &[]);
    let (mut cseq, mut sseq, mut now) = (101u32, 501u32, t + 0.003);
    for (from_client, bytes) in msgs {
        for piece in bytes.chunks(1400) {
            if *from_client {
                b.tcp(now, c, s, cseq, sseq, ACK, piece);
                cseq += piece.len() as u32;
                b.tcp(now + 0.0001, s, c, sseq, cseq, ACK, &[]);
            } else {
                b.tcp(now, s, c, sseq, cseq, ACK, piece);
                sseq += piece.len() as u32;
                b.tcp(now + 0.0001, c, s, cseq, sseq, ACK, &[]);
            }
            now += 0.0002;
        }
    }
    now
}

#[test]
fn a_tls_connection_keeps_no_handshake_buffers_once_data_flows() {
    // 200 TLS connections, one after the other and all left open, each with a 3,000-byte
    // Certificate. Whether application data followed the handshake decides whether the
    // handshake's bytes are still held when the next connection starts.
    const N: u16 = 200;
    const CERT: usize = 3_000;
    let (ch, flight) = hellos(CERT);
    let run_with = |app_data: bool| {
        let mut b = PcapBuilder::default();
        let mut t = 0.0;
        for i in 0..N {
            let mut msgs = vec![(true, ch.clone()), (false, flight.clone())];
            if app_data {
                msgs.push((true, tls_record(23, &[0x17; 200])));
                msgs.push((false, tls_record(23, &[0x17; 900])));
            }
            t = talk(&mut b, t, 20_000 + i, 443, &msgs) + 0.01;
        }
        let f = ScratchFile::new("tls-open.pcap", &b.finish());
        run(&[f.to_path_buf()], &Config::default()).0
    };
    let held = run_with(false);
    let done = run_with(true);
    for events in [&held, &done] {
        assert_eq!(stat(events, "tls.handshakes"), u64::from(N));
        assert_eq!(stat(events, "limits.tls_hello_dropped"), 0);
        assert_eq!(stat(events, "limits.parse_buffers_shed"), 0);
    }
    // Without application data every connection still holds at least its server's flight.
    assert!(stat(&held, "flows.parse_buffers_peak_bytes") >= u64::from(N) * flight.len() as u64);
    // With it, at most the connection in its handshake holds anything: its two flights, in
    // buffers of at most twice their size.
    let one = 2 * (ch.len() + flight.len()) as u64;
    let peak = stat(&done, "flows.parse_buffers_peak_bytes");
    assert!(
        peak >= flight.len() as u64 && peak <= one,
        "peak {peak}, one connection {one}"
    );
}

#[test]
fn parsing_buffers_of_all_flows_together_stay_within_their_budget() {
    // 300 connections each send 10,000 bytes of a ClientHello announcing 16,000 and stay
    // open: each alone is within its own 32 KiB cap, together they would hold 3 MB. The
    // budget is 1 MiB.
    const N: u16 = 300;
    const SENT: usize = 10_000;
    const LIMIT: u64 = 1 << 20;
    let mut hello = vec![1u8, 0, 0x3e, 0x80]; // client_hello, 16,000 bytes
    hello.resize(16_004, 0x42);
    let partial = tls_record(22, &hello)[..SENT].to_vec();
    let mut b = PcapBuilder::default();
    let mut t = 0.0;
    for i in 0..N {
        t = talk(&mut b, t, 20_000 + i, 443, &[(true, partial.clone())]) + 0.01;
    }
    // An ordinary HTTP exchange afterwards is still understood (its request is parsed from
    // one segment; no buffer needed).
    talk(
        &mut b,
        t,
        40_000,
        8080,
        &[(true, b"GET /ok HTTP/1.1\r\nHost: s\r\n\r\n".to_vec())],
    );
    let f = ScratchFile::new("budget.pcap", &b.finish());
    let mut cfg = Config::default();
    cfg.flows.max_parse_buffers_mb = 1;
    let (events, _) = run(&[f.to_path_buf()], &cfg);

    let shed = stat(&events, "limits.parse_buffers_shed");
    let peak = stat(&events, "flows.parse_buffers_peak_bytes");
    assert!(peak <= LIMIT, "peak {peak}");
    // A connection that kept its bytes holds at least the 10,000 it sent and at most twice
    // that (a buffer at most doubles), so between LIMIT / 20,000 and LIMIT / 10,000 of them
    // fit; every other one was shed.
    let kept = u64::from(N) - shed;
    assert!(
        (LIMIT / (2 * SENT as u64)..=LIMIT / SENT as u64).contains(&kept),
        "kept {kept}"
    );
    // Each shed connection's hello was cut, and is counted as such.
    assert_eq!(stat(&events, "limits.tls_hello_dropped"), shed);
    assert_eq!(stat(&events, "http.requests"), 1);

    // The command says so in its summary, and points at the setting.
    let err = human_summary(b"[flows]\nmax_parse_buffers_mb = 1\n", &f);
    assert!(
        err.contains(&format!("parsing buffers full: {shed} flows"))
            && err.contains("max_parse_buffers_mb"),
        "{err}"
    );
}

#[test]
fn requests_given_up_after_a_gap_in_the_responses_are_counted() {
    // Three pipelined requests; the first response arrives whole, then a segment of the
    // server's stream is missing (the next one starts 100 bytes further on): the two requests
    // still waiting can no longer be matched and have an unknown outcome, not "unanswered".
    let reqs: Vec<u8> = (0..3)
        .flat_map(|i| format!("GET /r{i} HTTP/1.1\r\nHost: s\r\n\r\n").into_bytes())
        .collect();
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let mut b = PcapBuilder::default();
    let t = talk(
        &mut b,
        0.0,
        40_000,
        8080,
        &[(true, reqs.clone()), (false, resp.to_vec())],
    );
    let cseq = 101 + reqs.len() as u32;
    let sseq = 501 + resp.len() as u32 + 100;
    b.tcp(t, (S, 8080), (C, 40_000), sseq, cseq, ACK, resp);
    let f = ScratchFile::new("gap.pcap", &b.finish());
    let (events, _) = run(&[f.to_path_buf()], &Config::default());
    assert_eq!(stat(&events, "http.requests"), 3);
    assert_eq!(stat(&events, "http.responses"), 1);
    assert_eq!(stat(&events, "http.gaps"), 1);
    assert_eq!(stat(&events, "http.unknown_outcome"), 2);
    assert_eq!(stat(&events, "http.unanswered"), 0);
}

#[test]
fn queries_and_requests_beyond_the_followed_ones_are_counted() {
    // 100,050 DNS queries for distinct names within 2 s, none answered: 100,000 are followed
    // (and end unanswered), 50 are not.
    const QUERIES: u32 = 100_050;
    let mut b = PcapBuilder::default();
    for i in 0..QUERIES {
        let q = dns_a_query(i as u16, &format!("n{i}.example"));
        b.udp(f64::from(i) * 2e-5, (C, 5353), ("10.0.0.53", 53), &q);
    }
    // 65,600 distinct HTTP requests on one connection within the 30 s duplicate window, each
    // answered: 65,536 (client, request) pairs are compared for duplicates, 64 are not.
    const REQUESTS: u32 = 65_600;
    let resp = b"HTTP/1.1 204 No Content\r\n\r\n";
    let (c, s) = ((C, 40_000), (S, 8080));
    b.tcp(3.0, c, s, 100, 0, SYN, &[])
        .tcp(3.0001, s, c, 500, 101, SYN | ACK, &[])
        .tcp(3.0002, c, s, 101, 501, ACK, &[]);
    let (mut cseq, mut sseq) = (101u32, 501u32);
    for i in 0..REQUESTS {
        let t = 3.001 + f64::from(i) * 1e-4;
        let req = format!("GET /item/{i} HTTP/1.1\r\nHost: s\r\n\r\n");
        b.tcp(t, c, s, cseq, sseq, ACK, req.as_bytes());
        cseq += req.len() as u32;
        b.tcp(t + 5e-5, s, c, sseq, cseq, ACK, resp);
        sseq += resp.len() as u32;
    }
    let f = ScratchFile::new("many.pcap", &b.finish());
    let (events, _) = run(&[f.to_path_buf()], &Config::default());
    assert_eq!(stat(&events, "dns.queries"), u64::from(QUERIES));
    assert_eq!(stat(&events, "dns.unanswered"), 100_000);
    assert_eq!(stat(&events, "limits.dns_queries_untracked"), 50);
    assert_eq!(stat(&events, "http.requests"), u64::from(REQUESTS));
    assert_eq!(stat(&events, "http.responses"), u64::from(REQUESTS));
    assert_eq!(stat(&events, "limits.http_requests_untracked"), 64);
    assert_eq!(stat(&events, "http.duplicate_requests"), 0);
}

/// A ClientHello offering `alpn` and TLS 1.2.
fn hello_offering(alpn: &[String]) -> Vec<u8> {
    let names: Vec<&str> = alpn.iter().map(String::as_str).collect();
    handshake(1, &observer_tests::client_hello_body(&names))
}

#[test]
fn the_run_wide_inventory_keeps_a_bounded_number_of_values() {
    // Five connections each offering 16 ALPN names no one else offers: the inventory keeps
    // 64 of the 80 and counts the other 16.
    let mut b = PcapBuilder::default();
    for k in 0..5u16 {
        let alpn: Vec<String> = (0..16).map(|i| format!("proto-{k}-{i}")).collect();
        talk(
            &mut b,
            f64::from(k),
            30_000 + k,
            443,
            &[(true, hello_offering(&alpn))],
        );
    }
    let f = ScratchFile::new("alpn.pcap", &b.finish());
    let (events, _) = run(&[f.to_path_buf()], &Config::default());
    let inv = events
        .iter()
        .find(|e| e["event"]["action"] == "inventory")
        .expect("an inventory event");
    assert_eq!(inv["inventory"]["alpn"].as_array().unwrap().len(), 64);
    assert_eq!(stat(&events, "limits.inventory_values_dropped"), 16);
    assert_eq!(stat(&events, "tls.handshakes"), 5);
}

/// An address of 10.64.0.0/10 numbered `i`.
fn nth_addr(i: u32) -> String {
    std::net::Ipv4Addr::from(0x0a40_0000 + i).to_string()
}

#[test]
fn waiting_groups_are_reported_when_too_many_are_held_on_a_frozen_clock() {
    // Every frame but the last has the same timestamp, so nothing goes idle. 65,537 internal
    // plaintext HTTP connections, each from its own client to its own server, none answered:
    // one `plaintext.internal` group per (client, server) and one `http.request.unanswered`
    // group per server, 65,537 of each. Both analyzers hold at most 65,536 groups waiting:
    // when the next would come, all of them are reported at once. Nothing is lost.
    const N: u32 = 65_537;
    let mut b = PcapBuilder::default();
    for i in 0..N {
        let (ca, sa) = (nth_addr(2 * i), nth_addr(2 * i + 1));
        let (c, s) = ((ca.as_str(), 40_000), (sa.as_str(), 80));
        let req = b"GET / HTTP/1.1\r\nHost: s\r\n\r\n";
        b.tcp(0.0, c, s, 100, 0, SYN, &[])
            .tcp(0.0, s, c, 500, 101, SYN | ACK, &[])
            .tcp(0.0, c, s, 101, 501, ACK, &[])
            .tcp(0.0, c, s, 101, 501, ACK, req);
    }
    // The capture ends 10 s later: the requests had time to be answered.
    b.udp(10.0, ("10.255.0.1", 5000), ("10.255.0.2", 5001), b"end");
    let f = ScratchFile::new("frozen.pcap", &b.finish());
    let (events, _) = run(&[f.to_path_buf()], &Config::default());
    let count = |rule: &str| events.iter().filter(|e| e["rule"]["name"] == rule).count() as u32;
    assert_eq!(count("plaintext.internal"), N);
    assert_eq!(count("http.request.unanswered"), N);
    assert_eq!(stat(&events, "limits.security_groups_reported_early"), 1);
    assert_eq!(stat(&events, "limits.retries_groups_reported_early"), 1);
    assert_eq!(stat(&events, "http.unanswered"), u64::from(N));
}

#[test]
fn latency_histograms_stay_within_their_budget() {
    // Service A's handshake takes 2 ms; then 2,000 other services, one 2 ms handshake each;
    // then A again, with a handshake of 5 s. With a 1 MiB budget for histograms the first
    // services get theirs, the later ones are counted only, and A's late 5 s is beyond the
    // range its histogram had when the budget ran out: it is recorded at that range's top.
    const N: u32 = 2_000;
    let a = ("10.0.0.9", 443);
    let mut b = PcapBuilder::default();
    b.connection(0.0, (C, 40_000), a);
    for i in 0..N {
        let server = nth_addr(i);
        b.connection(
            1.0 + f64::from(i) * 0.01,
            (C, 40_001),
            (server.as_str(), 80),
        );
    }
    let t = 100.0;
    let c = (C, 40_002);
    b.tcp(t, c, a, 100, 0, SYN, &[])
        .tcp(t + 5.0, a, c, 500, 101, SYN | ACK, &[])
        .tcp(t + 5.001, c, a, 101, 501, ACK, &[]);
    let f = ScratchFile::new("histograms.pcap", &b.finish());
    let run_a = |events: &[serde_json::Value]| {
        events
            .iter()
            .find(|e| {
                e["event"]["action"] == "latency"
                    && e["latency"]["scope"] == "run"
                    && e["latency"]["metric"] == "tcp.handshake"
                    && e["latency"]["service"] == "10.0.0.9:443"
            })
            .expect("service A's run histogram")["latency"]
            .clone()
    };

    // The default budget holds them all: every connection's handshake is a sample.
    let (all, _) = run(&[f.to_path_buf()], &Config::default());
    assert_eq!(
        stat(&all, "latency.samples.tcp_handshake"),
        u64::from(N) + 2
    );
    assert_eq!(stat(&all, "limits.latency_samples_untracked"), 0);
    assert_eq!(stat(&all, "limits.latency_samples_clamped"), 0);
    let unlimited = run_a(&all);
    assert_eq!(unlimited["count"], 2);
    assert!(
        unlimited["max_us"].as_u64().unwrap() >= 5_000_000,
        "{unlimited}"
    );

    let mut cfg = Config::default();
    cfg.latency.max_histograms_mb = 1;
    let (events, _) = run(&[f.to_path_buf()], &cfg);
    let bytes = stat(&events, "latency.histogram_bytes");
    let untracked = stat(&events, "limits.latency_samples_untracked");
    // Within the budget, past it by one histogram's growth at most (a 2-digit histogram of
    // microseconds up to 2^64 has 58 × 128 four-byte counters, counted twice).
    assert!(bytes <= (1 << 20) + 2 * 58 * 128 * 4, "{bytes}");
    assert!(bytes >= (1 << 20), "the budget was spent: {bytes}");
    assert!(untracked > 0 && untracked < u64::from(N), "{untracked}");
    // A 2-digit histogram holding values up to 2,047 µs has 256 + 3 × 128 = 640 counters
    // (HdrHistogram's layout: 256 sub-buckets, then 128 more per doubling); each service kept
    // is counted at twice that, four bytes a counter, and A's did not grow.
    let kept = u64::from(N) + 1 - untracked;
    assert_eq!(bytes, kept * 2 * 640 * 4);
    // Every sample is recorded or counted, for every metric.
    let metrics = [
        "tcp_handshake",
        "tcp_rtt",
        "http_response",
        "http_response_complete",
        "dns_response",
        "tls_handshake",
    ];
    let total = |ev: &[serde_json::Value]| {
        metrics
            .iter()
            .map(|m| stat(ev, &format!("latency.samples.{m}")))
            .sum::<u64>()
    };
    assert_eq!(total(&events) + untracked, total(&all));
    assert_eq!(stat(&events, "limits.latency_samples_clamped"), 1);
    let clamped = run_a(&events);
    assert_eq!(clamped["count"], 2);
    let max = clamped["max_us"].as_u64().unwrap();
    assert!((2_000..5_000_000).contains(&max), "{clamped}");
    // Each service past the budget had one sample (its handshake), so it is one untracked.
    assert_eq!(
        stat(&events, "latency.services") + untracked,
        stat(&all, "latency.services")
    );

    // The command says so in its summary, and points at the setting.
    let err = human_summary(b"[latency]\nmax_histograms_mb = 1\n", &f);
    assert!(
        err.contains(&format!(
            "latency histograms full: {},{:03} samples not recorded (no histogram yet), 1 recorded",
            untracked / 1000,
            untracked % 1000
        )) && err.contains("max_histograms_mb"),
        "{err}"
    );
}

#[test]
fn stale_address_groups_are_reported_when_too_many_are_held() {
    // A client learns 4,097 names of 16 addresses each (TTL 5 s) at 0 s, then at 100 s, on a
    // frozen clock, opens a connection to each of the first 65,537 addresses: every one uses
    // an answer past its TTL, one `dns.cache.stale` group per (name, address). Topology holds
    // at most 65,536 groups waiting: when the next would come, all of them are reported at
    // once. Nothing is lost.
    use observer_tests::dns_a_response;
    const N: u32 = 65_537;
    const PER_NAME: u32 = 16;
    let client = "10.0.0.9";
    let mut b = PcapBuilder::default();
    for k in 0..N.div_ceil(PER_NAME) {
        let addrs: Vec<String> = (0..PER_NAME).map(|j| nth_addr(k * PER_NAME + j)).collect();
        let answers: Vec<(&str, u32)> = addrs.iter().map(|a| (a.as_str(), 5)).collect();
        let resp = dns_a_response(k as u16, &format!("n{k}.test"), 0, &answers);
        b.udp(0.0, ("10.0.0.53", 53), (client, 40_000), &resp);
    }
    for i in 0..N {
        b.tcp(
            100.0,
            (client, 50_000),
            (&nth_addr(i), 443),
            100,
            0,
            SYN,
            &[],
        );
    }
    let f = ScratchFile::new("stale-groups.pcap", &b.finish());
    let (events, _) = run(&[f.to_path_buf()], &Config::default());
    let stale: Vec<_> = events
        .iter()
        .filter(|e| e["rule"]["name"] == "dns.cache.stale")
        .collect();
    assert_eq!(stale.len() as u32, N);
    assert!(
        stale
            .iter()
            .all(|e| e["fallacy"]["evidence"]["connections"] == 1)
    );
    assert_eq!(
        stat(&events, "topology.stale_dns_connections"),
        u64::from(N)
    );
    assert_eq!(stat(&events, "limits.topology_stale_reported_early"), 1);
}

#[test]
fn addresses_from_dns_answers_beyond_the_remembered_ones_are_counted() {
    // 262,150 DNS answers within 2.7 s, each giving the client one more external address for
    // the same name (TTL 300 s: nothing expires). The external-dependency analyzer remembers
    // 262,144 addresses' names; the topology analyzer 262,144 addresses and 262,144 (client,
    // address) lookups. The other 6 of each are counted, not silently dropped.
    const ANSWERS: u32 = 262_150;
    let mut b = PcapBuilder::default();
    for i in 0..ANSWERS {
        let addr = std::net::Ipv4Addr::from(0x2c00_0000 + i).to_string(); // 44.0.0.0 + i
        let r = observer_tests::dns_a_response(i as u16, "svc.example.com", 0, &[(&addr, 300)]);
        b.udp(f64::from(i) * 1e-5, ("10.0.0.53", 53), (C, 5353), &r);
    }
    let f = ScratchFile::new("many-answers.pcap", &b.finish());
    let (events, _) = run(&[f.to_path_buf()], &Config::default());
    assert_eq!(stat(&events, "topology.dns_answers"), u64::from(ANSWERS));
    assert_eq!(stat(&events, "limits.dependency_names_untracked"), 6);
    assert_eq!(stat(&events, "topology.untracked"), 12);
}
