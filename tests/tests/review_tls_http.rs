//! TLS and HTTP parsing, and the latency, reliability and homogeneity findings built on them:
//! cases built packet by packet, the expected values from the construction (each failed
//! before its fix).

use observer_tests::tcp_flags::{ACK, FIN};
use observer_tests::{PcapBuilder, analyze_built, message, run_latency, stat, with_rule};
use observer_tests::{tls_handshake_record, tls_record};
use serde_json::Value;

const C: &str = "10.0.0.1";
const S: &str = "10.0.0.2";

/// A TLS 1.2 ClientHello record (ALPN http/1.1 only).
fn client_hello() -> Vec<u8> {
    tls_handshake_record(1, &observer_tests::client_hello_body(&["http/1.1"]))
}

/// A TLS 1.2 ServerHello record (ECDHE-RSA-AES128-GCM-SHA256, no extensions).
fn server_hello() -> Vec<u8> {
    let mut sh = vec![3, 3];
    sh.extend_from_slice(&[9; 32]);
    sh.extend_from_slice(&[0, 0xc0, 0x2f, 0]);
    tls_handshake_record(2, &sh)
}

/// Client `port` → `server`: the TCP handshake at `t`, the ClientHello at `t` + 10 ms, the
/// ServerHello at `t` + 20 ms, then `server_then` from the server at `t` + 30 ms, and the
/// server's FIN. Returns nothing; sequence numbers follow the bytes.
fn hello_then_server(
    b: &mut PcapBuilder,
    t: f64,
    port: u16,
    server: (&str, u16),
    server_then: &[u8],
) {
    let c = (C, port);
    let (ch, sh) = (client_hello(), server_hello());
    let (cn, sn) = (ch.len() as u32, sh.len() as u32);
    b.tcp(t, c, server, 100, 0, observer_tests::tcp_flags::SYN, &[])
        .tcp(
            t + 0.001,
            server,
            c,
            500,
            101,
            observer_tests::tcp_flags::SYN | ACK,
            &[],
        )
        .tcp(t + 0.002, c, server, 101, 501, ACK, &[])
        .tcp(t + 0.010, c, server, 101, 501, ACK, &ch)
        .tcp(t + 0.020, server, c, 501, 101 + cn, ACK, &sh)
        .tcp(t + 0.030, server, c, 501 + sn, 101 + cn, ACK, server_then)
        .tcp(
            t + 0.031,
            server,
            c,
            501 + sn + server_then.len() as u32,
            101 + cn,
            FIN | ACK,
            &[],
        );
}

/// Defect: a TLS 1.2 record may carry several alerts (RFC 5246 §6.2.1: messages of one
/// content type may be coalesced into one record). A server answering the ClientHello with
/// one alert record holding a warning `close_notify` (1, 0) and a fatal `handshake_failure`
/// (2, 40), 4 bytes of alert payload, failed the handshake exactly as one sending them as two
/// records does.
///
/// Packets: two TLS connections to 10.0.0.2:443, each ClientHello, ServerHello, then the
/// server's two alerts and FIN, no application data: in one 4-byte alert record on the first,
/// in two 2-byte records in one segment on the second (the control).
/// Right: one `tls.handshake.failed` group with cause `handshake_failure` and 2 connections,
/// `tls.failed_handshakes` = 2.
#[test]
fn two_alerts_coalesced_in_one_record_are_both_read() {
    let mut b = PcapBuilder::default();
    hello_then_server(
        &mut b,
        0.0,
        40000,
        (S, 443),
        &tls_record(21, &[1, 0, 2, 40]),
    );
    let two = [tls_record(21, &[1, 0]), tls_record(21, &[2, 40])].concat();
    hello_then_server(&mut b, 1.0, 40001, (S, 443), &two);
    let ev = analyze_built(&b, "tls-coalesced-alerts.pcap");
    let f = with_rule(&ev, "tls.handshake.failed");
    assert_eq!(f.len(), 1, "{f:#?}");
    let e = &f[0]["fallacy"]["evidence"];
    assert_eq!(e["detail"], "handshake_failure", "{e}");
    assert_eq!(e["connections"], 2, "{e}");
    assert_eq!(stat(&ev, "tls.failed_handshakes"), 2);
}

/// The run `tls.handshake` latency of `service`: (count, p50 µs, max µs).
fn tls_handshake_latency(ev: &[Value], service: &str) -> (u64, i64, i64) {
    let l = run_latency(ev, "tls.handshake", service);
    (
        l["count"].as_u64().unwrap(),
        l["p50_us"].as_i64().unwrap(),
        l["max_us"]
            .as_i64()
            .unwrap_or_else(|| l["p100_us"].as_i64().unwrap_or(-1)),
    )
}

/// Defect: the `tls.handshake` time ran from the ClientHello to the client's first
/// application-data record. In TLS 1.2 that record is the first request, which a connection
/// opened ahead of use (a pool warmed up, a gRPC channel connected eagerly) sends whenever the
/// application needs it: the handshake is over at the server's ChangeCipherSpec + Finished.
///
/// Packets: to 10.0.0.2:443, a TLS 1.2 full handshake: ClientHello at 10 ms, ServerHello +
/// ServerHelloDone at 20 ms, the client's ClientKeyExchange + ChangeCipherSpec + Finished at
/// 30 ms, the server's ChangeCipherSpec + Finished at 40 ms; the first request (application
/// data) 5 s later. Control, to 10.0.0.2:8443, TLS 1.3: ClientHello at 10 ms, the server's
/// ServerHello + ChangeCipherSpec + encrypted flight at 20 ms, the client's ChangeCipherSpec +
/// Finished (application data) at 30 ms, a request 5 s later.
/// Right: one sample each, 30 ms (±1 %, the histogram's precision) for TLS 1.2 and 20 ms for
/// TLS 1.3.
#[test]
fn tls_handshake_time_ends_with_the_handshake_not_the_first_request() {
    let mut b = PcapBuilder::default();
    let ch = client_hello();
    let cn = ch.len() as u32;
    let finished = [0x5au8; 40]; // an encrypted Finished
    // TLS 1.2.
    {
        let (c, s) = ((C, 40000), (S, 443));
        let server1 = [server_hello(), tls_handshake_record(14, &[])].concat();
        let client2 = [
            tls_handshake_record(16, &[0; 66]),
            tls_record(20, &[1]),
            tls_record(22, &finished),
        ]
        .concat();
        let server2 = [tls_record(20, &[1]), tls_record(22, &finished)].concat();
        let req = tls_record(23, &[0x33; 64]);
        let resp = tls_record(23, &[0x44; 64]);
        let (s1, c2, s2, q) = (
            server1.len() as u32,
            client2.len() as u32,
            server2.len() as u32,
            req.len() as u32,
        );
        b.handshake(c, s)
            .tcp(0.010, c, s, 101, 501, ACK, &ch)
            .tcp(0.020, s, c, 501, 101 + cn, ACK, &server1)
            .tcp(0.030, c, s, 101 + cn, 501 + s1, ACK, &client2)
            .tcp(0.040, s, c, 501 + s1, 101 + cn + c2, ACK, &server2)
            .tcp(5.040, c, s, 101 + cn + c2, 501 + s1 + s2, ACK, &req)
            .tcp(5.050, s, c, 501 + s1 + s2, 101 + cn + c2 + q, ACK, &resp);
    }
    // TLS 1.3 (the control).
    {
        let (c, s) = ((C, 40001), (S, 8443));
        let server1 = [
            server_hello(),
            tls_record(20, &[1]),
            tls_record(23, &[0x66; 120]),
        ]
        .concat();
        let client2 = [tls_record(20, &[1]), tls_record(23, &finished)].concat();
        let req = tls_record(23, &[0x33; 64]);
        let (s1, c2) = (server1.len() as u32, client2.len() as u32);
        b.handshake(c, s)
            .tcp(0.010, c, s, 101, 501, ACK, &ch)
            .tcp(0.020, s, c, 501, 101 + cn, ACK, &server1)
            .tcp(0.030, c, s, 101 + cn, 501 + s1, ACK, &client2)
            .tcp(5.030, c, s, 101 + cn + c2, 501 + s1, ACK, &req);
    }
    let ev = analyze_built(&b, "tls-handshake-time.pcap");
    let (n, p50, _) = tls_handshake_latency(&ev, "10.0.0.2:8443");
    assert_eq!(n, 1);
    assert!((19_800..=20_200).contains(&p50), "TLS 1.3: {p50} µs");
    let (n, p50, _) = tls_handshake_latency(&ev, "10.0.0.2:443");
    assert_eq!(n, 1);
    assert!(
        (29_700..=30_300).contains(&p50),
        "TLS 1.2: {p50} µs, expected 30 000 µs (ClientHello → server Finished)"
    );
}

/// One request on connection `port` → `server` at `t` and its response with `status` (the
/// requests of `statuses` one after the other on the same keep-alive connection), then the
/// client's FIN.
fn keep_alive(
    b: &mut PcapBuilder,
    t: f64,
    port: u16,
    server: (&str, u16),
    host: &str,
    statuses: &[u16],
) {
    let c = (C, port);
    b.tcp(t, c, server, 100, 0, observer_tests::tcp_flags::SYN, &[])
        .tcp(
            t + 0.001,
            server,
            c,
            500,
            101,
            observer_tests::tcp_flags::SYN | ACK,
            &[],
        )
        .tcp(t + 0.002, c, server, 101, 501, ACK, &[]);
    let (mut cs, mut ss) = (101u32, 501u32);
    let mut at = t + 0.010;
    for st in statuses {
        let req = format!("GET /v1/prices HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let req = req.as_bytes();
        let resp = format!("HTTP/1.1 {st} X\r\nContent-Length: 0\r\n\r\n");
        b.tcp(at, c, server, cs, ss, ACK, req);
        cs += req.len() as u32;
        b.tcp(at + 0.005, server, c, ss, cs, ACK, resp.as_bytes());
        ss += resp.len() as u32;
        at += 0.010;
    }
    b.tcp(at, c, server, cs, ss, FIN | ACK, &[])
        .tcp(at + 0.001, server, c, ss, cs + 1, FIN | ACK, &[])
        .tcp(at + 0.002, c, server, cs + 1, ss + 1, ACK, &[]);
}

/// Defect: `dependency.failing`'s severity comes from the failing share of attempts, which
/// counted every connection and, besides, every request on it: each request was counted
/// twice on a one-request connection (once as the connection), so 1 failure in 10 requests
/// was a share of 1/20, and one keep-alive connection's 10 requests were 11 attempts.
///
/// Packets: to the external 203.0.113.10:80 (`api.example.net`), ten connections, one GET
/// each, nine answered 200 and one 503; to 198.51.100.20:80 (`api.example.org`), one keep-alive
/// connection carrying ten GETs, nine answered 200 and one 503.
/// Right: each owner (`example.net`, `example.org`) failing at 1 request in 10 = 10 %, medium
/// (`share >= 0.1`); it was low (1/20 and 1/11).
#[test]
fn a_failing_share_counts_each_request_once() {
    let mut b = PcapBuilder::default();
    for i in 0..10u16 {
        let st = if i == 4 { 503 } else { 200 };
        keep_alive(
            &mut b,
            f64::from(i) * 0.1,
            41000 + i,
            ("203.0.113.10", 80),
            "api.example.net",
            &[st],
        );
    }
    let mut st = [200u16; 10];
    st[6] = 503;
    keep_alive(
        &mut b,
        2.0,
        42000,
        ("198.51.100.20", 80),
        "api.example.org",
        &st,
    );
    let ev = analyze_built(&b, "dependency-share.pcap");
    let f = with_rule(&ev, "dependency.failing");
    assert_eq!(f.len(), 2, "{f:#?}");
    for f in f {
        let e = &f["fallacy"]["evidence"];
        assert_eq!(e["requests"], 10, "{e}");
        assert_eq!(e["failures"]["http_5xx"], 1, "{e}");
        assert_eq!(
            f["event"]["severity"],
            2,
            "1 of 10 requests failed (10 %) is medium: {}",
            message(f)
        );
    }
}

/// Defect: `http.request.unanswered` says how each unanswered request's connection ended
/// (`ended_by`), and counted a connection the server had reset as ended by the capture
/// whenever the capture ended before the reset connection's linger time was over.
///
/// Packets: to 10.0.0.2:80 a GET at 10 ms, reset by the server at 20 ms, no response; the
/// capture ends 1 s later.
/// Right: `ended_by.connection_reset` = 1, `capture_ended` = 0.
#[test]
fn a_reset_connection_is_ended_by_its_reset_not_by_the_capture_end() {
    let mut b = PcapBuilder::default();
    let (c, s) = ((C, 44000), (S, 80));
    let req = b"GET /a HTTP/1.1\r\nHost: svc\r\n\r\n";
    let q = req.len() as u32;
    b.handshake(c, s)
        .tcp(0.010, c, s, 101, 501, ACK, req)
        .tcp(
            0.020,
            s,
            c,
            501,
            101 + q,
            observer_tests::tcp_flags::RST | ACK,
            &[],
        )
        // Another host's packet a second later: the end of the capture.
        .udp(1.020, ("10.0.0.9", 5000), ("10.0.0.8", 5000), b"x");
    let ev = analyze_built(&b, "reset-ended-by.pcap");
    let f = with_rule(&ev, "http.request.unanswered");
    assert_eq!(f.len(), 1, "{f:#?}");
    let e = &f[0]["fallacy"]["evidence"]["ended_by"];
    assert_eq!(e["connection_reset"], 1, "{e}");
    assert_eq!(e["capture_ended"], 0, "{e}");
}
