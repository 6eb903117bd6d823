//! Review of the latency analyzer (histograms, interval and run events, budgets, the histogram
//! memory budget, chatty N+1 runs) and the retries analyzer (duplicate requests, DNS queries
//! unanswered or answered late). Every capture is built here packet by packet; the expected
//! values follow from the construction.

use observer::config::Config;
use observer_tests::tcp_flags::ACK;
use observer_tests::{
    PcapBuilder, ScratchFile, analyze_built, analyze_built_with, dns_a_query, dns_a_response, run,
    stat, with_rule,
};
use serde_json::Value;

const C: &str = "10.70.0.1";
const S: (&str, u16) = ("10.70.0.2", 80);
const DNS: (&str, u16) = ("10.70.0.53", 53);

/// A request `head` (and `body` in a segment of its own) on a new connection from client port
/// `port` at `t0`, answered `200 OK` 1 ms later.
fn post(b: &mut PcapBuilder, t0: f64, port: u16, head: &[u8], body: &[u8]) {
    let resp: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let mut steps: Vec<(bool, &[u8])> = vec![(true, head)];
    if !body.is_empty() {
        steps.push((true, body));
    }
    steps.push((false, resp));
    b.session(t0, (C, port), S, &steps);
}

/// The pcap `bytes` as `tcpdump -s` would have cut it: each record whose index `cut` names
/// keeps its first `keep` bytes (its original length stays in the record header).
fn snapped(bytes: &[u8], cut: &[usize], keep: usize) -> Vec<u8> {
    let mut out = bytes[..24].to_vec();
    let mut rest = &bytes[24..];
    let mut i = 0;
    while rest.len() >= 16 {
        let word = |k: usize| u32::from_le_bytes(rest[k * 4..k * 4 + 4].try_into().unwrap());
        let (secs, us, caplen, wire) = (word(0), word(1), word(2) as usize, word(3));
        let frame = &rest[16..16 + caplen];
        let kept = if cut.contains(&i) {
            &frame[..keep.min(caplen)]
        } else {
            frame
        };
        for v in [secs, us, kept.len() as u32, wire] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(kept);
        rest = &rest[16 + caplen..];
        i += 1;
    }
    out
}

fn analyze_bytes(bytes: &[u8], name: &str) -> Vec<Value> {
    let f = ScratchFile::new(name, bytes);
    run(&[f.to_path_buf()], &Config::default()).0
}

/// Two payments of the same length whose bodies differ after their first 12 bytes, in a
/// capture cut at 66 bytes a frame for the bodies (Ethernet, IPv4 and TCP headers: 54 bytes,
/// then 12 of the body): the capture cannot tell them apart, so they are no duplicate.
#[test]
fn bodies_the_capture_cut_are_not_taken_for_the_same_request() {
    let a = b"{\"amount\": 100, \"card\": \"4111-0000-0001\"}";
    let b2 = b"{\"amount\": 100, \"card\": \"5500-0000-0002\"}";
    assert_eq!(a.len(), b2.len());
    let head = format!(
        "POST /pay HTTP/1.1\r\nHost: shop.test\r\nContent-Length: {}\r\n\r\n",
        a.len()
    );
    let head = head.as_bytes();
    let mut b = PcapBuilder::default();
    post(&mut b, 1.0, 40001, head, a);
    post(&mut b, 2.0, 40002, head, b2);
    // Each session: 3 handshake frames, head (3), body (4), response (5), 3 closing: 9.
    let ev = analyze_bytes(&snapped(&b.finish(), &[4, 13], 54 + 12), "snapped-pay.pcap");
    assert_eq!(stat(&ev, "http.requests"), 2);
    assert_eq!(stat(&ev, "http.responses"), 2);
    let d = with_rule(&ev, "http.request.duplicate");
    assert!(d.is_empty(), "different payments taken for one: {d:#?}");
    assert_eq!(stat(&ev, "http.duplicate_requests"), 0);
    assert_eq!(stat(&ev, "http.unsafe_retries"), 0);
    assert_eq!(stat(&ev, "http.requests_not_compared"), 2);
    // The same capture uncut: two different bodies, no duplicate either, and both compared.
    let ev = analyze_built(&b, "whole-pay.pcap");
    assert!(with_rule(&ev, "http.request.duplicate").is_empty());
    assert_eq!(stat(&ev, "http.requests_not_compared"), 0);
    // The same body twice, uncut: the unsafe duplicate it is.
    let mut b = PcapBuilder::default();
    post(&mut b, 1.0, 40001, head, a);
    post(&mut b, 2.0, 40002, head, a);
    let ev = analyze_built(&b, "twice-pay.pcap");
    assert_eq!(with_rule(&ev, "http.request.duplicate").len(), 1);
}

/// Two POSTs whose paths (600 characters) differ only in their last characters are two
/// requests, not one sent twice.
#[test]
fn long_paths_that_differ_at_their_end_are_different_requests() {
    let stem = "a".repeat(590);
    let mut b = PcapBuilder::default();
    for (i, tail) in ["order-0001", "order-0002"].iter().enumerate() {
        let head = format!(
            "POST /{stem}/{tail} HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 2\r\n\r\n{{}}"
        );
        post(
            &mut b,
            1.0 + i as f64,
            40001 + i as u16,
            head.as_bytes(),
            &[],
        );
    }
    let ev = analyze_built(&b, "long-paths.pcap");
    assert_eq!(stat(&ev, "http.requests"), 2);
    let d = with_rule(&ev, "http.request.duplicate");
    assert!(d.is_empty(), "two orders taken for one: {d:#?}");
    assert_eq!(stat(&ev, "http.unsafe_retries"), 0);
    // The same long path twice is one request sent twice.
    let head = format!(
        "POST /{stem}/order-0001 HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 2\r\n\r\n{{}}"
    );
    let mut b = PcapBuilder::default();
    post(&mut b, 1.0, 40001, head.as_bytes(), &[]);
    post(&mut b, 2.0, 40002, head.as_bytes(), &[]);
    let ev = analyze_built(&b, "long-path-twice.pcap");
    assert_eq!(with_rule(&ev, "http.request.duplicate").len(), 1);
}

/// A query answered 5.2 s after it was sent, past the 5 s `dns_timeout_secs`: the client had
/// given up, so it is unanswered (README: a failure answered that late is unanswered), whether
/// or not some unrelated packet came between (which moves when the analyzer's clock ticks).
#[test]
fn an_answer_after_the_dns_timeout_leaves_the_query_unanswered_whatever_came_between() {
    for (rcode, between) in [(2u8, false), (2, true), (0, true)] {
        let name = "late.example.test";
        let answers: &[(&str, u32)] = if rcode == 0 {
            &[("10.70.1.1", 60)]
        } else {
            &[]
        };
        let mut b = PcapBuilder::default();
        b.udp(0.5, (C, 40001), DNS, &dns_a_query(7, name));
        if between {
            // Traffic of other hosts, 4.5 s after the query (before its timeout).
            b.udp(5.0, ("10.70.0.7", 5000), ("10.70.0.8", 6000), b"x");
        }
        b.udp(
            5.7,
            DNS,
            (C, 40001),
            &dns_a_response(7, name, rcode, answers),
        );
        b.udp(20.0, ("10.70.0.7", 5000), ("10.70.0.8", 6000), b"y");
        let ev = analyze_built(&b, "dns-late.pcap");
        let case = format!("rcode {rcode}, a packet between: {between}");
        assert_eq!(stat(&ev, "dns.unanswered"), 1, "{case}");
        assert_eq!(stat(&ev, "dns.failed"), 0, "{case}");
        assert_eq!(with_rule(&ev, "dns.query.unanswered").len(), 1, "{case}");
        assert!(with_rule(&ev, "dns.query.failed").is_empty(), "{case}");
    }
}

/// The latency metric events of `metric` and `scope` for `service`.
fn latency_events<'a>(ev: &'a [Value], metric: &str, scope: &str, service: &str) -> Vec<&'a Value> {
    ev.iter()
        .filter(|e| {
            e["event"]["action"] == "latency"
                && e["latency"]["metric"] == metric
                && e["latency"]["scope"] == scope
                && e["latency"]["service"] == service
        })
        .collect()
}

/// Connections every 1 s for 150 s with `interval_secs = 60`: each handshake is counted in
/// exactly one interval event, the intervals follow one another without overlap, and their
/// counts add up to the run's.
#[test]
fn interval_events_count_each_handshake_once_and_follow_one_another() {
    let mut b = PcapBuilder::default();
    for i in 0..150u16 {
        b.connection(f64::from(i), (C, 30000 + i), S);
    }
    let ev = analyze_built_with(&b, "intervals.pcap", "[latency]\ninterval_secs = 60\n");
    let svc = format!("{}:{}", S.0, S.1);
    let run = latency_events(&ev, "tcp.handshake", "run", &svc);
    assert_eq!(run.len(), 1);
    assert_eq!(run[0]["latency"]["count"], 150);
    let iv = latency_events(&ev, "tcp.handshake", "interval", &svc);
    assert!(iv.len() >= 2, "{iv:#?}");
    let total: u64 = iv
        .iter()
        .map(|e| e["latency"]["count"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 150);
    for w in iv.windows(2) {
        assert_eq!(w[0]["event"]["end"], w[1]["event"]["start"]);
    }
    assert_eq!(iv[0]["event"]["start"], "2026-01-01T00:00:00.000000Z");
    assert_eq!(
        iv.last().unwrap()["event"]["end"],
        "2026-01-01T00:02:29.005000Z"
    );
}

/// With `max_services = 1`, a second service's 5 handshakes are dropped: one service dropped
/// (README: services beyond `max_services` "are counted: services_dropped"), not 5.
#[test]
fn services_beyond_the_limit_are_counted_once_each() {
    let mut b = PcapBuilder::default();
    for i in 0..5u16 {
        b.connection(f64::from(i), (C, 30000 + i), S);
        b.connection(f64::from(i) + 0.5, (C, 31000 + i), ("10.70.0.3", 80));
    }
    let ev = analyze_built_with(&b, "services.pcap", "[latency]\nmax_services = 1\n");
    assert_eq!(stat(&ev, "latency.services"), 1);
    assert_eq!(stat(&ev, "latency.services_dropped"), 1);
}

/// A payment sent twice, each attempt with an `Idempotency-Key` but a different one (a client
/// that makes a new key per attempt): the server cannot tell the second for a retry, so this
/// is the unsafe duplicate (high), not one "handled" by the key. With the same key on both it
/// is handled (low).
#[test]
fn a_retry_with_a_new_idempotency_key_is_not_handled() {
    let body = b"{\"amount\": 100}";
    for (keys, severity, unsafe_retries) in
        [(["k-1", "k-2"], "high", 1), (["k-1", "k-1"], "low", 0)]
    {
        let mut b = PcapBuilder::default();
        for (i, key) in keys.iter().enumerate() {
            let head = format!(
                "POST /pay HTTP/1.1\r\nHost: shop.test\r\nIdempotency-Key: {key}\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            post(
                &mut b,
                1.0 + i as f64,
                40001 + i as u16,
                head.as_bytes(),
                body,
            );
        }
        let ev = analyze_built(&b, "idempotency-keys.pcap");
        let d = with_rule(&ev, "http.request.duplicate");
        assert_eq!(d.len(), 1, "{keys:?}: {d:#?}");
        let sev = &d[0]["event"]["severity"];
        let want = if severity == "high" { 3 } else { 1 };
        assert_eq!(sev, want, "{keys:?}: {}", d[0]["message"]);
        assert_eq!(stat(&ev, "http.unsafe_retries"), unsafe_retries, "{keys:?}");
    }
}

/// A file fetched in 40 sequential `Range` requests, each waiting for the one before: one URL,
/// but each call asks for other bytes, so it is an N+1 loop a larger range would merge (as in
/// suricata-verify's http-range-multiflows capture), not a refresh loop on one target.
#[test]
fn sequential_range_requests_for_one_file_are_chatty() {
    let (c, s) = (("10.1.1.5", 40000), ("10.2.2.2", 80));
    let mut b = PcapBuilder::default();
    b.handshake(c, s);
    let (mut cs, mut ss, mut t) = (101u32, 501u32, 0.01);
    let resp: &[u8] = b"HTTP/1.1 206 Partial Content\r\nContent-Length: 2\r\n\r\nok";
    for i in 0..40u32 {
        let req = format!(
            "GET /video.mp4 HTTP/1.1\r\nHost: s\r\nRange: bytes={}-{}\r\n\r\n",
            i * 1000,
            i * 1000 + 999
        );
        b.tcp(t, c, s, cs, ss, ACK, req.as_bytes());
        cs += req.len() as u32;
        b.tcp(t + 0.002, s, c, ss, cs, ACK, resp);
        ss += resp.len() as u32;
        t += 0.0025;
    }
    let ev = analyze_built(&b, "range-calls.pcap");
    let chatty = with_rule(&ev, "http.chatty");
    assert_eq!(chatty.len(), 1, "{:#?}", ev.last());
    assert_eq!(chatty[0]["fallacy"]["evidence"]["calls"], 40);
    assert_eq!(stat(&ev, "http.chatty_runs_one_target"), 0);
}

/// Two N+1 loops at once from one host, each on its own keep-alive connection (ports 40001
/// and 40002) to `10.0.0.2:8080`: 25 sequential `GET /items/{n}` each, 20 ms apart, each
/// answered in 8 ms; the second loop's calls start 4 ms into the first's, so the host's calls
/// overlap two by two (the way a service's worker threads each run their own loop).
///
/// Right: two `http.chatty` findings, one per connection, 25 calls each. Wrong (before the
/// fix): none — the runs were kept per client address and service, and every call that
/// started before the other loop's answer came broke the run.
#[test]
fn two_concurrent_n_plus_one_loops_from_one_host_are_both_found() {
    use observer_tests::tcp_flags::{ACK, SYN};
    let s = ("10.0.0.2", 8080);
    // (time, client port, from client, payload)
    let mut at: Vec<(f64, u16, bool, Vec<u8>)> = Vec::new();
    for (k, port) in [(0u16, 40001u16), (1, 40002)] {
        let off = f64::from(k) * 0.004;
        for i in 0..25u32 {
            let t = 0.010 + off + f64::from(i) * 0.020;
            let req = format!(
                "GET /items/{} HTTP/1.1\r\nHost: api\r\n\r\n",
                100 + i + 1000 * u32::from(k)
            );
            at.push((t, port, true, req.into_bytes()));
            at.push((
                t + 0.008,
                port,
                false,
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            ));
        }
    }
    at.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut b = PcapBuilder::default();
    let mut seq = std::collections::HashMap::new();
    for port in [40001u16, 40002] {
        let c = ("10.0.0.1", port);
        let t = if port == 40001 { 0.0 } else { 0.001 };
        b.tcp(t, c, s, 100, 0, SYN, &[])
            .tcp(t + 0.0003, s, c, 500, 101, SYN | ACK, &[])
            .tcp(t + 0.0006, c, s, 101, 501, ACK, &[]);
        seq.insert(port, (101u32, 501u32));
    }
    for (t, port, from_client, payload) in &at {
        let c = ("10.0.0.1", *port);
        let (cs, ss) = seq[port];
        if *from_client {
            b.tcp(*t, c, s, cs, ss, ACK, payload);
            seq.insert(*port, (cs + payload.len() as u32, ss));
        } else {
            b.tcp(*t, s, c, ss, cs, ACK, payload);
            seq.insert(*port, (cs, ss + payload.len() as u32));
        }
    }
    let ev = observer_tests::analyze_built(&b, "two-loops.pcap");
    let chatty = observer_tests::with_rule(&ev, "http.chatty");
    let mut ports: Vec<u64> = chatty
        .iter()
        .map(|f| f["source"]["port"].as_u64().unwrap())
        .collect();
    ports.sort_unstable();
    assert_eq!(ports, [40001, 40002], "{chatty:#?}");
    for f in &chatty {
        assert_eq!(f["fallacy"]["evidence"]["calls"], 25, "{f:#}");
    }
}

/// 70,000 one-request connections from `10.0.0.1` within 4.9 s, alternately to
/// `10.0.0.2:80` and `10.0.0.2:8080` (35,000 each, client ports 1024 on), each request sent
/// after the previous answer: two N+1 loops of the host's, one per service. Each connection's
/// own run holds one call; more than 65,536 of them are open at once.
///
/// Right: the host's two runs found whole (35,000 calls each), nothing closed early; the
/// connections' runs past 65,536 are not followed, and counted
/// (`limits.latency_chatty_connections_untracked`: 70,000 − 65,536 = 4,464). Wrong (before
/// the fix, which added the connections' runs to the host runs' map): the map filled with
/// one-call connection runs, every run was closed at once (`latency_chatty_reported_early`),
/// and each host loop came out in pieces.
#[test]
fn many_one_request_connections_do_not_break_the_hosts_runs() {
    use observer_tests::tcp_flags::{ACK, SYN};
    let mut b = PcapBuilder::default();
    for i in 0..70_000u32 {
        let t = f64::from(i) * 70e-6;
        let c = ("10.0.0.1", 1024 + (i / 2) as u16);
        let s = ("10.0.0.2", if i % 2 == 0 { 80 } else { 8080 });
        let req = format!("GET /items/{i} HTTP/1.1\r\nHost: api\r\n\r\n");
        b.tcp(t, c, s, 100, 0, SYN, &[])
            .tcp(t + 10e-6, s, c, 500, 101, SYN | ACK, &[])
            .tcp(t + 20e-6, c, s, 101, 501, ACK, &[])
            .tcp(t + 30e-6, c, s, 101, 501, ACK, req.as_bytes())
            .tcp(
                t + 40e-6,
                s,
                c,
                501,
                101 + req.len() as u32,
                ACK,
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            );
    }
    let ev = observer_tests::analyze_built(&b, "many-connections.pcap");
    assert_eq!(
        observer_tests::stat(&ev, "limits.latency_chatty_reported_early"),
        0
    );
    assert_eq!(
        observer_tests::stat(&ev, "limits.latency_chatty_connections_untracked"),
        4_464
    );
    let mut calls: Vec<(u64, u64)> = observer_tests::with_rule(&ev, "http.chatty")
        .iter()
        .map(|f| {
            (
                f["destination"]["port"].as_u64().unwrap(),
                f["fallacy"]["evidence"]["calls"].as_u64().unwrap(),
            )
        })
        .collect();
    calls.sort_unstable();
    assert_eq!(calls, [(80, 35_000), (8080, 35_000)]);
}
