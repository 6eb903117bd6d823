//! Review of suspected defects left by earlier reviews: the keep-alive race, a final response
//! sent before the request's body was in, and RTSP and Redis credentials split across
//! segments. Each case built here from packets, the expected values from the construction.

use observer_tests::tcp_flags::{ACK, FIN, RST, SYN};
use observer_tests::{
    PcapBuilder, SESSION_CLIENT as C, SESSION_SERVER as S, analyze_built, credential_kinds,
    internal, session, stat, with_rule,
};
use serde_json::Value;

/// The findings of `rule` for server port `port`.
fn for_port<'a>(ev: &'a [Value], rule: &str, port: u16) -> Vec<&'a Value> {
    with_rule(ev, rule)
        .into_iter()
        .filter(|f| f["destination"]["port"] == port)
        .collect()
}

/// The keep-alive race. Port 80: `GET /a` answered 200 at 10 ms; the connection then idles
/// 5 s and the server closes it (FIN at 5.020 s); 0.1 ms later the client's `GET /b` arrives
/// on it, and the server resets (it had closed). The client sends `GET /b` again on a new
/// connection and gets 200. `GET /b` was sent on a connection the server had already closed:
/// the benign race of RFC 9112 §9.3.1, not a failure of the service: no
/// `http.request.unanswered` for port 80, and the request counted apart
/// (`stats.http.sent_after_server_close` 1, a low `http.request.sent_after_close` naming it),
/// not in `stats.http.unanswered`. Control, port 8080: `GET /c` on an open connection the
/// server resets without having closed it: a real unanswered request (medium, count 1,
/// `ended_by.connection_reset` 1).
#[test]
fn a_request_sent_after_the_server_closed_the_keep_alive_connection_is_the_benign_race() {
    let mut b = PcapBuilder::default();
    let (c, s) = ((C, 40010), (S, 80));
    let get_a = b"GET /a HTTP/1.1\r\nHost: svc\r\n\r\n";
    let get_b = b"GET /b HTTP/1.1\r\nHost: svc\r\n\r\n";
    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let (ca, sa) = (101 + get_a.len() as u32, 501 + ok.len() as u32);
    b.handshake(c, s)
        .tcp(0.010, c, s, 101, 501, ACK, get_a)
        .tcp(0.020, s, c, 501, ca, ACK, ok)
        .tcp(0.030, c, s, ca, sa, ACK, &[])
        // 5 s idle: the server closes.
        .tcp(5.020, s, c, sa, ca, FIN | ACK, &[])
        // 0.1 ms later the client's next request, sent before the FIN reached it.
        .tcp(5.0201, c, s, ca, sa, ACK, get_b)
        .tcp(5.0202, s, c, sa + 1, 0, RST, &[]);
    // The client retries on a new connection.
    session(&mut b, 5.030, 40011, 80, &[(true, get_b), (false, ok)]);
    // Control: a real unanswered request, on port 8080.
    let (c2, s2) = ((C, 40012), (S, 8080));
    let get_c = b"GET /c HTTP/1.1\r\nHost: svc\r\n\r\n";
    b.tcp(6.0, c2, s2, 100, 0, SYN, &[])
        .tcp(6.001, s2, c2, 500, 101, SYN | ACK, &[])
        .tcp(6.002, c2, s2, 101, 501, ACK, &[])
        .tcp(6.010, c2, s2, 101, 501, ACK, get_c)
        .tcp(6.020, s2, c2, 501, 101 + get_c.len() as u32, ACK | RST, &[]);
    let ev = analyze_built(&b, "review_keepalive_race.pcap");
    assert_eq!(
        for_port(&ev, "http.request.unanswered", 80),
        Vec::<&Value>::new(),
        "GET /b was sent after the server's FIN: the keep-alive race, not a failure"
    );
    assert_eq!(stat(&ev, "http.sent_after_server_close"), 1);
    assert_eq!(stat(&ev, "http.unanswered"), 1, "only the control's GET /c");
    let race = for_port(&ev, "http.request.sent_after_close", 80);
    assert_eq!(race.len(), 1, "{race:#?}");
    assert_eq!(race[0]["event"]["severity"], 1, "low: {:#}", race[0]);
    assert_eq!(race[0]["fallacy"]["evidence"]["count"], 1);
    assert_eq!(race[0]["fallacy"]["evidence"]["samples"][0], "GET /b");
    let control = for_port(&ev, "http.request.unanswered", 8080);
    assert_eq!(control.len(), 1, "{ev:#?}");
    let e = &control[0]["fallacy"]["evidence"];
    assert_eq!(control[0]["event"]["severity"], 2, "medium");
    assert_eq!(e["count"], 1);
    assert_eq!(e["ended_by"]["connection_reset"], 1);
}

/// A final response before the request's body is in. Port 80: `POST /upload` announces
/// 100,000 bytes, sends 1,000, and the server answers `413` and closes; the client resets.
/// Port 8080: `POST /login` announces 3,000 bytes, sends 1,000, the server answers `401` (keeping
/// the connection), the client sends the other 2,000 bytes, then both close. Each response
/// answers its POST: two requests, two responses, no `http.request.unanswered`.
#[test]
fn a_final_response_before_the_request_body_is_in_answers_the_request() {
    let mut b = PcapBuilder::default();
    let body = [b'x'; 1000];
    let (c, s) = ((C, 40020), (S, 80));
    let post = b"POST /upload HTTP/1.1\r\nHost: svc\r\nContent-Length: 100000\r\n\r\n";
    let too_large =
        b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let c1 = 101 + post.len() as u32;
    let c2 = c1 + body.len() as u32;
    b.handshake(c, s)
        .tcp(0.010, c, s, 101, 501, ACK, post)
        .tcp(0.011, c, s, c1, 501, ACK, &body)
        .tcp(0.020, s, c, 501, c2, ACK, too_large)
        .tcp(
            0.021,
            s,
            c,
            501 + too_large.len() as u32,
            c2,
            FIN | ACK,
            &[],
        )
        .tcp(0.022, c, s, c2, 0, RST, &[]);
    let login = b"POST /login HTTP/1.1\r\nHost: svc\r\nContent-Length: 3000\r\n\r\n";
    let unauthorized = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n";
    session(
        &mut b,
        1.0,
        40021,
        8080,
        &[
            (true, login),
            (true, &body),
            (false, unauthorized),
            (true, &body),
            (true, &body),
        ],
    );
    let ev = analyze_built(&b, "review_early_response.pcap");
    assert_eq!(
        with_rule(&ev, "http.request.unanswered"),
        Vec::<&Value>::new(),
        "the 413 and the 401 answer their POSTs"
    );
    assert_eq!(stat(&ev, "http.requests"), 2);
    assert_eq!(stat(&ev, "http.responses"), 2);
    assert_eq!(stat(&ev, "http.unanswered"), 0);
}

/// Credentials split across segments. Port 554: an RTSP `DESCRIBE` whose head comes in two
/// segments, the request line and `CSeq` in the first, `Authorization: Basic …` and the blank
/// line in the second: a password in clear (`http-basic`). Port 6379: a Redis `PING`, then
/// `AUTH secret` as RESP cut inside the word `AUTH` (`*2\r\n$4\r\nAU` + `TH\r\n$6\r\nsecret\r\n`):
/// `redis-auth`. Port 6380: a Redis `PING`, then `SET k <20-byte value>` whose value's second
/// half starts the next segment with `AUTH `: a value, no password (no credentials). Control,
/// port 8554: the same RTSP request in one segment (`http-basic`).
#[test]
fn rtsp_and_redis_credentials_split_across_segments() {
    let mut b = PcapBuilder::default();
    let head = b"DESCRIBE rtsp://cam/stream RTSP/1.0\r\nCSeq: 2\r\n";
    let auth = b"Authorization: Basic YWRtaW46c2VjcmV0\r\n\r\n";
    let ok = b"RTSP/1.0 200 OK\r\nCSeq: 2\r\n\r\n";
    session(
        &mut b,
        0.0,
        40030,
        554,
        &[(true, head), (true, auth), (false, ok)],
    );
    let whole = [&head[..], &auth[..]].concat();
    session(&mut b, 1.0, 40031, 8554, &[(true, &whole), (false, ok)]);
    let ping: &[u8] = b"*1\r\n$4\r\nPING\r\n";
    session(
        &mut b,
        2.0,
        40032,
        6379,
        &[
            (true, ping),
            (false, b"+PONG\r\n"),
            (true, b"*2\r\n$4\r\nAU"),
            (true, b"TH\r\n$6\r\nsecret\r\n"),
            (false, b"+OK\r\n"),
        ],
    );
    session(
        &mut b,
        3.0,
        40033,
        6380,
        &[
            (true, ping),
            (false, b"+PONG\r\n"),
            (true, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$20\r\nxxxxxxxxxx"),
            (true, b"AUTH yyyyy\r\n"),
            (false, b"+OK\r\n"),
        ],
    );
    let ev = analyze_built(&b, "review_split_credentials.pcap");
    let seen: Vec<(u16, Vec<String>)> = [8554, 554, 6379, 6380]
        .into_iter()
        .map(|port| (port, credential_kinds(internal(&ev, port))))
        .collect();
    let kinds = |k: &[&str]| k.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        seen,
        [
            (8554, kinds(&["http-basic"])),
            (554, kinds(&["http-basic"])),
            (6379, kinds(&["redis-auth"])),
            (6380, kinds(&[])),
        ]
    );
}
