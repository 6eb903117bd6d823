//! Review of the latency analyzer (N+1 runs per host and per connection, handshake and data
//! round trips, interval events, budgets) and the retries analyzer (duplicate requests, DNS
//! retransmissions). Every capture is built here packet by packet; the expected values follow
//! from the construction.

use observer_tests::tcp_flags::ACK;
use observer_tests::{
    Conn, PcapBuilder, analyze_built, dns_a_query, dns_a_response, run_latency, stat, with_rule,
};
use serde_json::Value;

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/// A request for `/items/{n}`.
fn item(n: u32) -> Vec<u8> {
    format!("GET /items/{n} HTTP/1.1\r\nHost: api\r\n\r\n").into_bytes()
}

/// The `http.chatty` findings' (source port, calls), sorted.
fn chatty_calls(ev: &[Value]) -> Vec<(u64, u64)> {
    let mut v: Vec<(u64, u64)> = with_rule(ev, "http.chatty")
        .iter()
        .map(|f| {
            (
                f["source"]["port"].as_u64().unwrap(),
                f["fallacy"]["evidence"]["calls"].as_u64().unwrap(),
            )
        })
        .collect();
    v.sort_unstable();
    v
}

/// One N+1 loop on one keep-alive connection (port 40001 to `10.80.0.2:80`): 50 sequential
/// `GET /items/{n}`, each answered in 5 ms, the next sent 1 ms later. Halfway through, the
/// same host's health check runs once on another connection (port 40002), between two of the
/// loop's calls, answered at once.
///
/// Right: one `http.chatty` finding of 50 calls (the loop is one loop; the health check is
/// no part of it). Wrong (before the fix): two findings, 26 and 24 calls (the second "after
/// `GET /health`") — the host's run broke at the other connection's call and the loop came
/// out in two pieces, while the connection's own run of 50, covered by them, was dropped.
#[test]
fn another_connections_call_does_not_cut_a_keep_alive_loop_in_two() {
    let s = ("10.80.0.2", 80);
    let mut b = PcapBuilder::default();
    let mut a = Conn::open(&mut b, 0.0, ("10.80.0.1", 40001), s);
    let mut o = Conn::open(&mut b, 0.003, ("10.80.0.1", 40002), s);
    let mut t = 0.01;
    for i in 0..50u32 {
        a.call(&mut b, t, &item(i), t + 0.005, OK);
        if i == 25 {
            let health = b"GET /health HTTP/1.1\r\nHost: api\r\n\r\n";
            o.call(&mut b, t + 0.0052, health, t + 0.0055, OK);
        }
        t += 0.006;
    }
    let ev = analyze_built(&b, "interleaved.pcap");
    assert_eq!(
        chatty_calls(&ev),
        [(40001, 50)],
        "{:#?}",
        with_rule(&ev, "http.chatty")
    );
    assert_eq!(stat(&ev, "http.chatty_runs"), 1);
}

/// One N+1 loop of 30 sequential `GET /items/{n}` whose client's pool hands out its two idle
/// keep-alive connections in turn (ports 40001 and 40002, the calls alternating), each call
/// answered in 5 ms and the next sent 1 ms after; meanwhile another thread of the host calls
/// `GET /other` on a third connection (port 40003) during every 5th call of the loop.
///
/// Right: one `http.chatty` finding of 30 calls. Wrong (before the fix): none — every
/// `/other` call broke the host's run, and each connection's run held 15 calls, fewer than
/// `chatty_threshold` (20).
#[test]
fn a_loop_over_two_pooled_connections_is_not_cut_by_a_third() {
    let s = ("10.80.2.2", 80);
    let mut b = PcapBuilder::default();
    let mut pool = [
        Conn::open(&mut b, 0.0, ("10.80.2.1", 40001), s),
        Conn::open(&mut b, 0.0, ("10.80.2.1", 40002), s),
    ];
    let mut other = Conn::open(&mut b, 0.0, ("10.80.2.1", 40003), s);
    let mut t = 0.01;
    for i in 0..30u32 {
        pool[i as usize % 2].call(&mut b, t, &item(i), t + 0.005, OK);
        if i % 5 == 4 {
            let req = b"GET /other HTTP/1.1\r\nHost: api\r\n\r\n";
            other.call(&mut b, t + 0.001, req, t + 0.002, OK);
        }
        t += 0.006;
    }
    let ev = analyze_built(&b, "pooled-loop.pcap");
    assert_eq!(
        chatty_calls(&ev),
        [(40001, 30)],
        "{:#?}",
        with_rule(&ev, "http.chatty")
    );
}

/// One N+1 loop on one keep-alive connection: 50 sequential `GET /items/{n}`, each answered
/// in 5 ms and the next sent 1 ms after, except the 26th, which the server takes 12 s to
/// answer (more than `chatty_window_secs`, 10 s, after the previous answer; but it was sent
/// 1 ms after it). The capture's ticks come every second meanwhile (keep-alive ACKs).
///
/// Right: one finding of 50 calls — every call was sent 1 ms after the previous answer.
/// Wrong (before the fix): two findings of 25 calls — the tick 10 s after the 25th answer
/// took the run for finished while its next call was still waiting for its answer.
#[test]
fn a_slow_call_inside_a_loop_does_not_end_its_run() {
    let s = ("10.80.1.2", 80);
    let c = ("10.80.1.1", 40001);
    let mut b = PcapBuilder::default();
    let mut a = Conn::open(&mut b, 0.0, c, s);
    let mut t = 0.01;
    for i in 0..50u32 {
        if i == 25 {
            let req = item(i);
            b.tcp(t, c, s, a.cseq, a.sseq, ACK, &req);
            a.cseq += req.len() as u32;
            // The server's bare ACK, then one a second while it works.
            for k in 0..12 {
                b.tcp(t + 0.0005 + f64::from(k), s, c, a.sseq, a.cseq, ACK, &[]);
            }
            b.tcp(t + 12.0, s, c, a.sseq, a.cseq, ACK, OK);
            a.sseq += OK.len() as u32;
            t += 12.001;
        } else {
            a.call(&mut b, t, &item(i), t + 0.005, OK);
            t += 0.006;
        }
    }
    let ev = analyze_built(&b, "slow-call.pcap");
    assert_eq!(
        chatty_calls(&ev),
        [(40001, 50)],
        "{:#?}",
        with_rule(&ev, "http.chatty")
    );
}

/// A query for `a.test` (id 7) sent at 0 s and never answered; the client asks again with
/// the same id at 5.5 s (more than `dns_timeout_secs`, 5 s, after the first: it gave up on
/// that one), and that query is answered at 5.502 s. `with_traffic` adds one packet of
/// other hosts at 4.9 s (so that the capture's last tick before the second query came at
/// 4.9 s, not at 5.5 s).
///
/// Right, with or without that packet: the first query is unanswered (`dns.unanswered` 1,
/// one `dns.query.unanswered` finding), the second answered at once (no
/// `dns.query.retransmitted`). Wrong (before the fix), with the packet: one query "answered
/// only after being sent again" — the outcome depended on when other traffic made the ticks.
#[test]
fn a_query_asked_again_after_the_timeout_is_a_new_query_whatever_the_ticks() {
    let (c, s) = (("10.83.0.1", 5353), ("10.83.0.53", 53));
    for with_traffic in [false, true] {
        let mut b = PcapBuilder::default();
        b.udp(0.0, c, s, &dns_a_query(7, "a.test"));
        if with_traffic {
            b.udp(4.9, ("10.83.9.1", 9000), ("10.83.9.2", 9000), b"x");
        }
        b.udp(5.5, c, s, &dns_a_query(7, "a.test")).udp(
            5.502,
            s,
            c,
            &dns_a_response(7, "a.test", 0, &[("10.1.2.3", 60)]),
        );
        // Later traffic, so that the capture does not end while the query is young.
        b.udp(20.0, ("10.83.9.1", 9000), ("10.83.9.2", 9000), b"x");
        let ev = analyze_built(&b, "dns-asked-again.pcap");
        assert_eq!(stat(&ev, "dns.unanswered"), 1, "traffic {with_traffic}");
        assert_eq!(stat(&ev, "dns.retransmitted"), 0, "traffic {with_traffic}");
        assert_eq!(
            with_rule(&ev, "dns.query.unanswered").len(),
            1,
            "traffic {with_traffic}"
        );
        assert!(
            with_rule(&ev, "dns.query.retransmitted").is_empty(),
            "traffic {with_traffic}"
        );
        // The latency analyzer times the second query from its own transmission: 2 ms.
        let l = run_latency(&ev, "dns.response", "10.83.0.53:53");
        assert_eq!(l["count"], 1);
        assert_eq!(l["max_us"], 2000, "traffic {with_traffic}");
    }
}
