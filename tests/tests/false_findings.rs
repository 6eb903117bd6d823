//! Findings the packets do not support, found by checking the corpus's findings against
//! tshark: each case built here, the expected values from the construction (every one failed
//! before its fix).

use observer::config::Config;
use observer_tests::tcp_flags::{ACK, FIN, RST, SYN};
use observer_tests::{
    PcapBuilder, ScratchFile, analyze_built, analyze_built_with, credential_kinds, dns_a_query,
    dns_a_response, dns_evidence, message, port_unreachable, run, run_latency, stat, with_rule,
};
use serde_json::Value;

const C: &str = "10.0.0.1";
const S: &str = "10.0.0.2";

/// One connection from client port `port` at `t0`: `method /orders` (with an authorization
/// header when `auth`), answered with `status`, then closed.
fn attempt(b: &mut PcapBuilder, t0: f64, port: u16, method: &str, auth: bool, status: u16) {
    attempt_at(b, t0, port, method, "/orders", auth, status);
}

/// [`attempt`] with request target `target`.
fn attempt_at(
    b: &mut PcapBuilder,
    t0: f64,
    port: u16,
    method: &str,
    target: &str,
    auth: bool,
    status: u16,
) {
    let (c, s) = ((C, port), (S, 80));
    let req = format!(
        "{method} {target} HTTP/1.1\r\nHost: shop\r\n{}Content-Length: 2\r\n\r\n{{}}",
        if auth {
            "Authorization: NTLM TlRMTVNTUAADAAAA\r\n"
        } else {
            ""
        }
    );
    let resp = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n");
    let (q, r) = (req.len() as u32, resp.len() as u32);
    b.tcp(t0, c, s, 100, 0, SYN, &[])
        .tcp(t0 + 0.001, s, c, 500, 101, SYN | ACK, &[])
        .tcp(t0 + 0.002, c, s, 101, 501, ACK, req.as_bytes())
        .tcp(t0 + 0.003, s, c, 501, 101 + q, ACK, resp.as_bytes())
        .tcp(t0 + 0.004, c, s, 101 + q, 501 + r, FIN | ACK, &[])
        .tcp(t0 + 0.005, s, c, 501 + r, 102 + q, FIN | ACK, &[])
        .tcp(t0 + 0.006, c, s, 102 + q, 502 + r, ACK, &[]);
}

#[test]
fn a_request_sent_again_after_an_authentication_challenge_is_not_a_duplicate() {
    // A POST answered 401, then sent again with credentials and answered 200 (NTLM and
    // Negotiate always work so): the server acted on it once.
    let mut b = PcapBuilder::default();
    attempt(&mut b, 0.0, 45_000, "POST", false, 401);
    attempt(&mut b, 0.1, 45_001, "POST", true, 201);
    // Control: a POST answered 500, then sent again: the first may have been acted on.
    attempt(&mut b, 1.0, 45_002, "PATCH", false, 500);
    attempt(&mut b, 1.1, 45_003, "PATCH", false, 200);
    let ev = analyze_built(&b, "auth-challenge.pcap");
    let f = with_rule(&ev, "http.request.duplicate");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(f[0]["message"].as_str().unwrap().starts_with("PATCH "));
    assert_eq!(stat(&ev, "http.resent_after_refusal"), 1);
    assert_eq!(stat(&ev, "http.duplicate_requests"), 1);
}

#[test]
fn query_strings_tell_requests_apart_and_secrets_in_targets_are_never_written() {
    let mut b = PcapBuilder::default();
    // Two POSTs that differ in their query string only: two different requests.
    attempt_at(&mut b, 0.0, 45_000, "POST", "/cart/add?item=1", false, 500);
    attempt_at(&mut b, 0.1, 45_001, "POST", "/cart/add?item=2", false, 200);
    // The same POST twice, with a session id as a path parameter: a duplicate, whose
    // session id is not written.
    let session = "/cart;jsessionid=S3CR3T-SESSION/pay?x=1";
    attempt_at(&mut b, 1.0, 45_002, "POST", session, false, 500);
    attempt_at(&mut b, 1.1, 45_003, "POST", session, false, 200);
    // The same POST twice to a proxy, with a user and password in the target.
    let proxied = "http://alice:hunter2@proxy.test:3128/api/pay";
    attempt_at(&mut b, 2.0, 45_004, "POST", proxied, false, 500);
    attempt_at(&mut b, 2.1, 45_005, "POST", proxied, false, 200);
    let ev = analyze_built(&b, "targets.pcap");
    let paths: Vec<&str> = with_rule(&ev, "http.request.duplicate")
        .iter()
        .map(|f| f["fallacy"]["evidence"]["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        ["/cart", "http://proxy.test:3128/api/pay"],
        "{ev:#?}"
    );
    let all = ev.iter().map(|e| e.to_string()).collect::<String>();
    for secret in ["S3CR3T", "jsessionid", "hunter2", "alice"] {
        assert!(!all.contains(secret), "{secret} written out");
    }
}

/// A connection to `S:port` on which the server greets with `greeting` and the client then
/// sends `lines`, one segment each.
fn text_session(b: &mut PcapBuilder, t: f64, port: u16, greeting: &[u8], lines: &[&[u8]]) {
    let (c, s) = ((C, 46_000 + port), (S, port));
    b.tcp(t, c, s, 100, 0, SYN, &[])
        .tcp(t + 0.001, s, c, 500, 101, SYN | ACK, &[])
        .tcp(t + 0.002, c, s, 101, 501, ACK, &[]);
    let (mut cs, mut ss) = (101u32, 501u32);
    b.tcp(t + 0.01, s, c, ss, cs, ACK, greeting);
    ss += greeting.len() as u32;
    for (i, l) in lines.iter().enumerate() {
        b.tcp(t + 0.02 + 0.01 * i as f64, c, s, cs, ss, ACK, l);
        cs += l.len() as u32;
    }
}

#[test]
fn http_passwords_count_from_the_head_and_a_proxy_s_next_to_an_origin_s() {
    let mut b = PcapBuilder::default();
    // Port 8080: a proxy's Basic password next to the origin's Bearer token.
    let through_proxy: &[u8] = b"GET http://api.test/x HTTP/1.1\r\nHost: api.test\r\nProxy-Authorization: Basic YWxpY2U6c2VjcmV0\r\nAuthorization: Bearer abc.def\r\n\r\n";
    text_session(&mut b, 0.0, 8080, b"", &[through_proxy]);
    // Port 8081: an upload's head with a Basic password and `Expect: 100-continue`; the server
    // answers 401 and closes, the body never comes.
    let upload: &[u8] = b"PUT /big HTTP/1.1\r\nHost: s\r\nAuthorization: Basic YWxpY2U6c2VjcmV0\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n";
    text_session(&mut b, 1.0, 8081, b"", &[upload]);
    let ev = analyze_built(&b, "http-heads.pcap");
    let plain = with_rule(&ev, "plaintext.internal");
    let kinds = |port: u64| -> Vec<String> {
        let f = plain
            .iter()
            .find(|f| f["destination"]["port"] == port)
            .unwrap_or_else(|| panic!("no plaintext finding for {port}: {plain:#?}"));
        credential_kinds(f)
    };
    assert_eq!(kinds(8080), ["http-basic", "http-bearer"]);
    assert_eq!(kinds(8081), ["http-basic"]);
}

#[test]
fn sasl_login_and_plain_in_imap_and_pop3_are_passwords_in_clear() {
    let mut b = PcapBuilder::default();
    // IMAP AUTHENTICATE LOGIN: user and password in base64 on the next lines.
    text_session(
        &mut b,
        0.0,
        143,
        b"* OK IMAP4rev1 ready\r\n",
        &[
            b"a1 AUTHENTICATE LOGIN\r\n",
            b"YWxpY2U=\r\n",
            b"c2VjcmV0\r\n",
        ],
    );
    // POP3 AUTH PLAIN (RFC 5034): "\0alice\0secret" in base64.
    text_session(
        &mut b,
        1.0,
        110,
        b"+OK POP3 ready\r\n",
        &[b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"],
    );
    let ev = analyze_built(&b, "sasl.pcap");
    let kinds = |port: u64| -> Vec<String> {
        let f = with_rule(&ev, "plaintext.internal");
        let f = f
            .iter()
            .find(|f| f["destination"]["port"] == port)
            .unwrap_or_else(|| panic!("no plaintext finding for {port}: {ev:#?}"));
        credential_kinds(f)
    };
    assert_eq!(kinds(143), ["imap-login"]);
    assert_eq!(kinds(110), ["pop3-pass"]);
}

/// `n` connections to `S:6379`, each with a 1 ms handshake and 3 request segments the server
/// acknowledges only 210 ms later (its delayed-ACK timer).
fn delayed_acks(n: u16) -> PcapBuilder {
    let mut b = PcapBuilder::default();
    for i in 0..n {
        let (c, s) = ((C, 46_000 + i), (S, 6379));
        let t0 = f64::from(i);
        b.tcp(t0, c, s, 100, 0, SYN, &[])
            .tcp(t0 + 0.001, s, c, 500, 101, SYN | ACK, &[])
            .tcp(t0 + 0.002, c, s, 101, 501, ACK, &[]);
        for k in 0..3u32 {
            let t = t0 + 0.01 + f64::from(k) * 0.25;
            let seq = 101 + k * 10;
            b.tcp(t, c, s, seq, 501, ACK, b"PING\r\nPING").tcp(
                t + 0.21,
                s,
                c,
                501,
                seq + 10,
                ACK,
                &[],
            );
        }
    }
    b
}

#[test]
fn delayed_acks_make_no_latency_budget_finding_unless_a_tcp_rtt_budget_is_set() {
    // Every data segment's ACK comes 210 ms later: tcp.rtt p99 is 210 ms, the handshake 1 ms.
    let b = delayed_acks(25);
    let ev = analyze_built(&b, "delayed-acks.pcap");
    assert!(with_rule(&ev, "latency.budget.exceeded").is_empty());
    assert_eq!(stat(&ev, "latency.samples.tcp_rtt"), 75);
    // Asked for, the budget is judged.
    let toml = "[latency.budgets_ms]\n\"tcp.rtt\" = 200\n";
    let cfg = Config::parse(std::path::Path::new("budget.toml"), toml).expect("config");
    let f = ScratchFile::new("delayed-acks-budget.pcap", &b.finish());
    let ev = run(&[f.to_path_buf()], &cfg).0;
    let found = with_rule(&ev, "latency.budget.exceeded");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0]["message"].as_str().unwrap().contains("tcp.rtt"));
}

/// A connection to `server_port` carrying `turns` in order (from the client when `true`),
/// then closed.
fn text_exchange(b: &mut PcapBuilder, t0: f64, server_port: u16, turns: &[(bool, &[u8])]) {
    let (c, s) = ((C, 47_000 + server_port % 1000), (S, server_port));
    let (mut cs, mut ss) = (101u32, 501u32);
    b.tcp(t0, c, s, 100, 0, SYN, &[])
        .tcp(t0 + 0.001, s, c, 500, 101, SYN | ACK, &[])
        .tcp(t0 + 0.002, c, s, 101, 501, ACK, &[]);
    let mut t = t0 + 0.003;
    for (from_client, p) in turns {
        let n = p.len() as u32;
        if *from_client {
            b.tcp(t, c, s, cs, ss, ACK, p);
            cs += n;
        } else {
            b.tcp(t, s, c, ss, cs, ACK, p);
            ss += n;
        }
        t += 0.001;
    }
    b.tcp(t, c, s, cs, ss, FIN | ACK, &[])
        .tcp(t + 0.001, s, c, ss, cs + 1, FIN | ACK, &[])
        .tcp(t + 0.002, c, s, cs + 1, ss + 1, ACK, &[]);
}

#[test]
fn answers_are_not_mistaken_for_greetings() {
    let mut b = PcapBuilder::default();
    // Redis inline commands answered "+OK" (not a POP3 greeting: the client spoke first),
    // an inline AUTH among them.
    text_exchange(
        &mut b,
        0.0,
        6379,
        &[
            (true, b"AUTH s3cret\r\n"),
            (false, b"+OK\r\n"),
            (true, b"SET k 1\r\n"),
            (false, b"+OK\r\n"),
        ],
    );
    // NNTP: greeting "200", then an article answered "220" (not an SMTP greeting).
    text_exchange(
        &mut b,
        1.0,
        119,
        &[
            (false, b"200 news.example ready\r\n"),
            (true, b"ARTICLE 1\r\n"),
            (false, b"220 1 <a@b> article\r\n"),
        ],
    );
    let ev = analyze_built(&b, "greetings.pcap");
    let unexpected = with_rule(&ev, "protocol.unexpected_port");
    assert!(unexpected.is_empty(), "{unexpected:#?}");
    // The Redis connection is known as Redis: its inline AUTH is a credential in clear.
    let creds: Vec<String> = with_rule(&ev, "plaintext.internal")
        .iter()
        .flat_map(|f| {
            f["fallacy"]["evidence"]["credentials"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|c| c.as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(creds, ["redis-auth"]);
}

#[test]
fn multicast_and_broadcast_destinations_are_not_external_dependencies() {
    let mut b = PcapBuilder::default();
    b.udp(0.0, (C, 5353), ("224.0.0.251", 5353), b"mdns query")
        .udp(
            0.1,
            (C, 50_000),
            ("239.255.255.250", 1900),
            b"M-SEARCH * HTTP/1.1\r\n\r\n",
        )
        .udp(0.2, (C, 68), ("255.255.255.255", 67), b"dhcp discover");
    // The one real external party.
    b.connection(1.0, (C, 48_000), ("198.51.100.7", 443));
    let ev = analyze_built(&b, "multicast.pcap");
    assert_eq!(stat(&ev, "dependencies.owners"), 1);
    assert_eq!(stat(&ev, "dependencies.external_flows"), 1);
    let inv = ev
        .iter()
        .find(|e| e["event"]["action"] == "dependencies")
        .expect("a dependencies event");
    let addrs: Vec<&Value> = inv["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d["addresses"].as_array().unwrap())
        .collect();
    assert_eq!(addrs, ["198.51.100.7"]);
}

#[test]
fn an_attempt_refused_after_its_retries_is_one_failure() {
    // The server answered at 0 s. Then one attempt: SYNs at 10, 11 and 13 s (counted
    // unanswered at the second retry), refused with RST at 13.5 s. One failed attempt, refused,
    // is below the two an endpoint needs to have vanished; it was counted twice before.
    let s = ("198.51.100.9", 443);
    let mut b = PcapBuilder::default();
    b.connection(0.0, (C, 49_000), s);
    for t in [10.0, 11.0, 13.0] {
        b.tcp(t, (C, 49_001), s, 100, 0, SYN, &[]);
    }
    b.tcp(
        13.5,
        s,
        (C, 49_001),
        0,
        101,
        observer_tests::tcp_flags::RST | ACK,
        &[],
    );
    b.udp(20.0, ("10.255.0.1", 5000), ("10.255.0.2", 5001), b"end");
    let ev = analyze_built(&b, "refused-after-retries.pcap");
    assert_eq!(stat(&ev, "tcp.handshakes.refused"), 1);
    assert_eq!(stat(&ev, "tcp.handshakes.unanswered"), 0);
    assert_eq!(stat(&ev, "topology.endpoints_vanished"), 0);
    assert!(with_rule(&ev, "endpoint.vanished").is_empty());
}

#[test]
fn a_reset_after_a_syn_ack_the_capture_missed_aborts_a_connection_it_does_not_refuse_it() {
    // The client acknowledged the SYN/ACK (missed by the capture) and sent a request; the
    // server then reset the connection. Before, the reset came "in SYN-SENT": a refusal, and
    // two such attempts made the endpoint "vanished".
    let mut b = PcapBuilder::default();
    for (i, port) in [40_000u16, 40_001].into_iter().enumerate() {
        let t0 = i as f64;
        let (c, s) = ((C, port), (S, 8080));
        b.tcp(t0, c, s, 100, 0, SYN, &[])
            .tcp(t0 + 0.002, c, s, 101, 501, ACK, &[])
            .tcp(t0 + 0.003, c, s, 101, 501, ACK, b"ping\n")
            .tcp(t0 + 0.004, s, c, 501, 106, RST | ACK, &[]);
    }
    b.tcp(10.0, (C, 40_002), (S, 9), 1, 0, SYN, &[]);
    let ev = analyze_built(&b, "rst-after-missed-synack.pcap");
    assert_eq!(stat(&ev, "tcp.handshakes.refused"), 0);
    assert_eq!(stat(&ev, "tcp.connections.aborted"), 2);
    assert_eq!(stat(&ev, "tcp.handshakes.synack_not_captured"), 2);
    assert!(with_rule(&ev, "tcp.handshake.refused").is_empty());
    assert!(with_rule(&ev, "endpoint.vanished").is_empty());
    assert_eq!(with_rule(&ev, "tcp.connection.reset").len(), 1);
}

/// 40 `GET /api/jobs/<n>/status` calls on one keep-alive connection, each answered in 2 ms,
/// the next sent `gap` seconds after the answer.
fn status_calls(gap: f64) -> Vec<Value> {
    analyze_built(&status_calls_built(40, gap), "status-calls.pcap")
}

/// `n` such calls.
fn status_calls_built(n: u32, gap: f64) -> PcapBuilder {
    calls_built(n, gap, |i| format!("/api/jobs/{}/status", 1000 + i))
}

/// `n` GETs of `target(i)` on one keep-alive connection, each answered in 2 ms, the next sent
/// `gap` seconds after the answer.
fn calls_built(n: u32, gap: f64, target: impl Fn(u32) -> String) -> PcapBuilder {
    let (c, s) = (("10.1.1.5", 40000), ("10.2.2.2", 80));
    let mut b = PcapBuilder::default();
    b.handshake(c, s);
    let (mut cs, mut ss, mut t) = (101u32, 501u32, 0.01);
    let resp: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    for i in 0..n {
        let req = format!("GET {} HTTP/1.1\r\nHost: s\r\n\r\n", target(i));
        b.tcp(t, c, s, cs, ss, ACK, req.as_bytes());
        cs += req.len() as u32;
        b.tcp(t + 0.002, s, c, ss, cs, ACK, resp);
        ss += resp.len() as u32;
        t += 0.002 + gap;
    }
    b
}

#[test]
fn a_client_polling_on_a_timer_is_not_chatty() {
    // Sent as soon as the answer came (0.5 ms later): an N+1 loop held up by each answer.
    let ev = status_calls(0.0005);
    assert_eq!(with_rule(&ev, "http.chatty").len(), 1);
    // Every 250 ms, 2 ms of it waiting: a poller; batching cannot fetch states that do not
    // exist yet. Before, reported all the same ("0.080 s spent waiting; batch them").
    let ev = status_calls(0.248);
    assert!(with_rule(&ev, "http.chatty").is_empty());
    assert_eq!(stat(&ev, "http.chatty_runs_paced"), 1);
    // 3 ms of the client's own work on each item between 2 ms calls: more time between the
    // calls than waiting, but short pauses: still an N+1 loop.
    let ev = status_calls(0.003);
    assert_eq!(with_rule(&ev, "http.chatty").len(), 1);
}

/// The same item fetched 40 times in a row (a retry or refresh loop on one URL) is no N+1
/// pattern: batching cannot merge calls for one item, so "batch them" is the wrong advice. It
/// is counted, not reported. Items told apart by their query string are an N+1 loop.
#[test]
fn one_url_fetched_again_and_again_is_not_chatty() {
    let same = calls_built(40, 0.0005, |_| "/api/jobs/1000/status".into());
    let ev = analyze_built(&same, "same-url.pcap");
    assert!(with_rule(&ev, "http.chatty").is_empty());
    assert_eq!(stat(&ev, "http.chatty_runs_one_target"), 1);
    let items = calls_built(40, 0.0005, |i| format!("/api/jobs?id={i}"));
    let ev = analyze_built(&items, "query-items.pcap");
    assert_eq!(with_rule(&ev, "http.chatty").len(), 1);
    assert_eq!(stat(&ev, "http.chatty_runs_one_target"), 0);
}

#[test]
fn a_chatty_threshold_above_64_calls_is_judged_with_that_many() {
    // With `chatty_threshold = 100`: 99 calls in a row are not enough, 120 are one run.
    let toml = "[latency]\nchatty_threshold = 100\n";
    let cfg = Config::parse(std::path::Path::new("chatty.toml"), toml).expect("config");
    let runs = |n: u32| -> Vec<u64> {
        let f = ScratchFile::new("chatty-100.pcap", &status_calls_built(n, 0.0005).finish());
        let (ev, _) = run(&[f.to_path_buf()], &cfg);
        with_rule(&ev, "http.chatty")
            .iter()
            .map(|f| f["fallacy"]["evidence"]["calls"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(runs(99), Vec::<u64>::new());
    assert_eq!(runs(120), [120]);
    // A threshold no run could be judged with is refused, naming the key.
    let e = Config::parse(
        std::path::Path::new("chatty.toml"),
        "[latency]\nchatty_threshold = 1001\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("latency.chatty_threshold") && e.contains("2 to 1000"),
        "{e}"
    );
}

#[test]
fn a_stray_ack_before_a_refusal_does_not_open_the_connection() {
    // An ACK left from an earlier connection on the same ports (its sequence number far from
    // this SYN's) between the SYN and the server's RST: still a refusal.
    let mut b = PcapBuilder::default();
    for (i, port) in [40_000u16, 40_001, 40_002].into_iter().enumerate() {
        let t = i as f64;
        let (c, s) = ((C, port), (S, 8080));
        b.tcp(t, c, s, 1000, 0, SYN, &[])
            .tcp(t + 0.0001, c, s, 55_555, 77_777, ACK, &[])
            .tcp(t + 0.0005, s, c, 0, 1001, RST | ACK, &[]);
    }
    b.tcp(10.0, (C, 40_010), (S, 9), 1, 0, SYN, &[]);
    let ev = analyze_built(&b, "stray-ack.pcap");
    assert_eq!(stat(&ev, "tcp.handshakes.refused"), 3);
    assert_eq!(stat(&ev, "tcp.connections.aborted"), 0);
}

#[test]
fn a_dns_response_without_its_question_answers_its_query() {
    // Query id 7 for a.test, answered 20 ms later by a FORMERR that leaves out the question
    // section (a 12-byte header: QR, rcode 1, all counts 0), as RFC 1035 allows. Query id 8
    // for b.test, from the same client and port, is never answered at all.
    let (c, s) = (("10.0.0.1", 40_001), ("10.0.0.53", 53));
    let formerr = [0, 7, 0x81, 0x81, 0, 0, 0, 0, 0, 0, 0, 0];
    let mut b = PcapBuilder::default();
    b.udp(0.0, c, s, &dns_a_query(7, "a.test"))
        .udp(0.02, s, c, &formerr)
        .udp(1.0, c, s, &dns_a_query(8, "b.test"))
        .udp(30.0, ("10.0.0.9", 5000), ("10.0.0.8", 5001), b"tick");
    let ev = analyze_built(&b, "dns-formerr.pcap");
    assert_eq!(stat(&ev, "dns.queries"), 2);
    assert_eq!(stat(&ev, "dns.responses"), 1);
    let unanswered: Vec<u64> = with_rule(&ev, "dns.query.unanswered")
        .iter()
        .map(|f| dns_evidence(f).0)
        .collect();
    assert_eq!(unanswered, [1], "only b.test: {ev:#?}");
}

#[test]
fn a_dns_query_asked_again_after_its_answer_is_not_a_retransmission() {
    let (c, s) = (("10.0.0.1", 40001), ("10.0.0.53", 53));
    let q = |id, name| dns_a_query(id, name);
    let r = |id, name| dns_a_response(id, name, 0, &[("10.0.1.1", 60)]);
    let mut b = PcapBuilder::default();
    // a.test: answered in 20 ms, asked again 2 s later with the same id and port (the client
    // reuses them), answered again.
    b.udp(0.0, c, s, &q(0x1111, "a.test"))
        .udp(0.02, s, c, &r(0x1111, "a.test"))
        .udp(2.0, c, s, &q(0x1111, "a.test"))
        .udp(2.02, s, c, &r(0x1111, "a.test"))
        // b.test: unanswered for 1 s, sent again, answered: the one retransmission.
        .udp(3.0, c, s, &q(0x2222, "b.test"))
        .udp(4.0, c, s, &q(0x2222, "b.test"))
        .udp(4.02, s, c, &r(0x2222, "b.test"))
        // c.test: answered, asked again, and that second query is never answered.
        .udp(5.0, c, s, &q(0x3333, "c.test"))
        .udp(5.02, s, c, &r(0x3333, "c.test"))
        .udp(6.0, c, s, &q(0x3333, "c.test"))
        .udp(20.0, ("10.0.0.9", 5000), ("10.0.0.8", 5001), b"tick");
    let ev = analyze_built(&b, "dns-asked-again.pcap");
    assert_eq!(stat(&ev, "dns.queries"), 6);
    assert_eq!(stat(&ev, "dns.retransmitted"), 1);
    let resent = with_rule(&ev, "dns.query.retransmitted");
    assert_eq!(resent.len(), 1, "{resent:?}");
    assert_eq!(dns_evidence(resent[0]), (1, 2, "b.test (type 1)"));
    let unanswered = with_rule(&ev, "dns.query.unanswered");
    assert_eq!(unanswered.len(), 1, "{unanswered:?}");
    assert_eq!(dns_evidence(unanswered[0]), (1, 1, "c.test (type 1)"));
}

#[test]
fn dns_queries_of_a_client_whose_incoming_traffic_the_capture_misses_have_an_unknown_outcome() {
    let ns = ("10.0.0.53", 53);
    let mut b = PcapBuilder::default();
    // 10.0.0.1: a connection of which the capture holds only what the client sent; its
    // acknowledgment moves on (the server's 500 and then 800 bytes were not captured).
    let (c1, s1) = (("10.0.0.1", 40000), ("10.0.0.2", 443));
    b.tcp(0.0, c1, s1, 100, 0, SYN, &[])
        .tcp(0.01, c1, s1, 101, 1001, ACK, b"hello")
        .tcp(0.05, c1, s1, 106, 1501, ACK, &[])
        .tcp(0.09, c1, s1, 106, 2301, ACK, &[]);
    // 10.0.0.7: its connection's server is silent (it sends its data again, its
    // acknowledgment never moves, and it never acknowledged a SYN/ACK): a server gone, not a
    // capture missing a direction.
    let (c7, s7) = (("10.0.0.7", 40000), ("10.0.0.2", 443));
    b.tcp(0.0, c7, s7, 100, 7000, ACK, b"data")
        .tcp(0.3, c7, s7, 100, 7000, ACK, b"data")
        .tcp(0.9, c7, s7, 100, 7000, ACK, b"data");
    // 10.0.0.3: like 10.0.0.1, but the capture does hold a packet to it (so it sees that
    // direction, if not all of it).
    let (c3, s3) = (("10.0.0.3", 40000), ("10.0.0.2", 443));
    b.tcp(0.0, c3, s3, 100, 0, SYN, &[])
        .tcp(0.01, c3, s3, 101, 1001, ACK, b"hello")
        .tcp(0.05, c3, s3, 106, 1501, ACK, &[])
        .udp(0.5, ("10.0.0.2", 123), ("10.0.0.3", 123), b"time");
    // Each sends two queries to its name server that get no answer.
    let (ns7, ns3) = (("10.0.0.54", 53), ("10.0.0.55", 53));
    let clients = [("10.0.0.1", ns), ("10.0.0.7", ns7), ("10.0.0.3", ns3)];
    for (i, (c, ns)) in clients.into_iter().enumerate() {
        for (j, name) in ["a.test", "b.test"].into_iter().enumerate() {
            let id = 0x100 * (i as u16 + 1) + j as u16;
            b.udp(1.0 + j as f64, (c, 41000), ns, &dns_a_query(id, name));
        }
    }
    b.udp(20.0, ("10.0.0.9", 5000), ("10.0.0.8", 5001), b"tick");
    let f = ScratchFile::new("dns-blind-client.pcap", &b.finish());
    let out = observer_tests::observer(&["analyze", f.to_path_buf().to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("2 DNS query(ies) without a response came from clients the capture holds nothing sent to"),
        "{err}"
    );
    let ev = analyze_built(&b, "dns-blind-client.pcap");
    assert_eq!(stat(&ev, "dns.queries"), 6);
    assert_eq!(stat(&ev, "dns.unknown_outcome"), 2);
    assert_eq!(stat(&ev, "dns.unanswered"), 4);
    let unanswered = with_rule(&ev, "dns.query.unanswered");
    let reported: Vec<(&Value, &Value, &Value)> = unanswered
        .iter()
        .map(|f| {
            let e = &f["fallacy"]["evidence"];
            (&f["destination"]["ip"], &e["clients"][0], &e["count"])
        })
        .collect();
    assert_eq!(
        reported,
        vec![
            (&"10.0.0.54".into(), &"10.0.0.7".into(), &2.into()),
            (&"10.0.0.55".into(), &"10.0.0.3".into(), &2.into())
        ]
    );
}

#[test]
fn a_failed_attempt_counts_when_the_run_holds_all_the_icmp_groups_it_can() {
    use etherparse::{Icmpv4Type, PacketBuilder, icmpv4::DestUnreachableHeader};
    let (c, x) = (("10.0.0.1", 40_000), ("10.9.9.9", 80));
    let mut b = PcapBuilder::default();
    // A good exchange with 10.9.9.9:80.
    b.connection(0.0, c, x);
    // 131,072 port unreachables about as many destinations within 0.14 s (a UDP scan's
    // answers): the most ICMP groups the topology analyzer holds at once.
    for i in 0..131_072u32 {
        let dst = format!("10.1.{}.{}", i / 60_000 / 250, 1 + (i / 60_000) % 250);
        let dport = 1 + (i % 60_000) as u16;
        let from: std::net::Ipv4Addr = dst.parse().expect("IPv4 literal");
        let frame = port_unreachable(
            from.octets(),
            (("10.0.0.2", 5000), (dst.as_str(), dport)),
            b"hello",
        );
        b.frame(1.0 + f64::from(i) * 1e-6, &frame);
    }
    // Two attempts to 10.9.9.9:80, each answered "host unreachable" by a router; the ICMP
    // errors cannot be grouped (no room), but the attempts failed all the same.
    for (k, port) in [40_001u16, 40_002].into_iter().enumerate() {
        let t = 2.0 + 0.1 * k as f64;
        b.tcp(t, (c.0, port), x, 7000, 0, SYN, &[]);
        let mut quoted = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 1], [10, 9, 9, 9], 64)
            .tcp(port, 80, 7000, 64_240)
            .syn()
            .write(&mut quoted, &[])
            .expect("quoted SYN builds");
        quoted.truncate(28);
        let mut frame = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 254], [10, 0, 0, 1], 64)
            .icmpv4(Icmpv4Type::DestinationUnreachable(
                DestUnreachableHeader::Host,
            ))
            .write(&mut frame, &quoted)
            .expect("ICMP error builds");
        b.frame(t + 0.01, &frame);
    }
    let ev = analyze_built(&b, "icmp-groups-full.pcap");
    assert!(stat(&ev, "topology.untracked") >= 2, "the cap was reached");
    let vanished = with_rule(&ev, "endpoint.vanished");
    assert_eq!(vanished.len(), 1, "{vanished:#?}");
    let e = &vanished[0]["fallacy"]["evidence"];
    assert_eq!(vanished[0]["destination"]["ip"], "10.9.9.9", "{e:#}");
    assert_eq!(e["failed_attempts"], 2, "{e:#}");
    assert_eq!(e["icmp_unreachable"], 2, "{e:#}");
}

#[test]
fn a_reply_that_finds_its_clients_port_closed_is_no_unreachable_endpoint() {
    let (c, ns) = (("10.0.0.1", 40001), ("10.0.0.53", 53));
    let (q, r) = (
        dns_a_query(0x1111, "a.test"),
        dns_a_response(0x1111, "a.test", 0, &[("10.0.1.1", 60)]),
    );
    let mut b = PcapBuilder::default();
    // The query sent twice and answered twice; the client closed its port after the first
    // answer, so the second gets a port unreachable from the client itself.
    b.udp(0.0, c, ns, &q)
        .udp(0.01, c, ns, &q)
        .udp(0.05, ns, c, &r)
        .udp(0.06, ns, c, &r)
        .frame(0.060_05, &port_unreachable([10, 0, 0, 1], (ns, c), &r));
    // A service port that is closed: 10.0.0.60 refuses the client's datagram.
    let (c2, svc) = (("10.0.0.1", 40002), ("10.0.0.60", 5000));
    b.udp(1.0, c2, svc, b"ping").frame(
        1.000_1,
        &port_unreachable([10, 0, 0, 60], (c2, svc), b"ping"),
    );
    let f = ScratchFile::new("late-reply.pcap", &b.finish());
    let out = observer_tests::observer(&["analyze", f.to_path_buf().to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("1 reply(ies) found their client's port already closed"),
        "{err}"
    );
    let ev = analyze_built(&b, "late-reply.pcap");
    assert_eq!(stat(&ev, "icmp.unreachable"), 2);
    assert_eq!(stat(&ev, "topology.icmp_unreachable_late_replies"), 1);
    assert_eq!(stat(&ev, "topology.icmp_unreachable_not_reported"), 1);
    assert_eq!(stat(&ev, "topology.icmp_unreachable_reported"), 1);
    let icmp = with_rule(&ev, "icmp.destination.unreachable");
    assert_eq!(icmp.len(), 1, "{icmp:?}");
    assert_eq!(
        (
            &icmp[0]["destination"]["ip"],
            &icmp[0]["destination"]["port"]
        ),
        (&"10.0.0.60".into(), &5000.into())
    );
}

#[test]
fn a_method_outside_the_http_registry_repeated_after_its_answer_is_no_duplicate() {
    let mut b = PcapBuilder::default();
    // UPnP's NOTIFY sent twice, answered each time (GENA numbers its events: the receiver
    // drops a repeat), and LOCK, registered as not idempotent, likewise: only LOCK is reported.
    attempt(&mut b, 0.0, 45_000, "NOTIFY", false, 200);
    attempt(&mut b, 0.5, 45_001, "NOTIFY", false, 200);
    attempt(&mut b, 1.0, 45_002, "LOCK", false, 200);
    attempt(&mut b, 1.5, 45_003, "LOCK", false, 200);
    // SUBSCRIBE given up unanswered (the client closes), then sent again and answered: a retry
    // of a method whose safety its own protocol decides (medium).
    let (c, s) = ((C, 45_004), (S, 80));
    let req = b"SUBSCRIBE /orders HTTP/1.1\r\nHost: shop\r\nContent-Length: 2\r\n\r\n{}";
    let q = req.len() as u32;
    b.tcp(2.0, c, s, 100, 0, SYN, &[])
        .tcp(2.001, s, c, 500, 101, SYN | ACK, &[])
        .tcp(2.002, c, s, 101, 501, ACK, req)
        .tcp(2.003, s, c, 501, 101 + q, ACK, &[])
        .tcp(4.0, c, s, 101 + q, 501, FIN | ACK, &[])
        .tcp(4.001, s, c, 501, 102 + q, FIN | ACK, &[])
        .tcp(4.002, c, s, 102 + q, 502, ACK, &[]);
    attempt(&mut b, 4.5, 45_005, "SUBSCRIBE", false, 200);
    let ev = analyze_built(&b, "unregistered-methods.pcap");
    let f = with_rule(&ev, "http.request.duplicate");
    let got: Vec<(&str, u64)> = f
        .iter()
        .map(|f| {
            let m = message(f);
            (
                &m[..m.find(' ').unwrap()],
                f["event"]["severity"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, vec![("LOCK", 3), ("SUBSCRIBE", 2)], "{f:#?}");
}

/// One connection from client port `port`: handshake at `t0` (1 ms RTT), 100 bytes from the
/// client at `t0 + 0.01`, first sent at `data[0]` and again at each later time in `data` (the
/// server acknowledges after the last), then the client's FIN sent at each time in `fin`, never
/// acknowledged.
fn stalled(b: &mut PcapBuilder, t0: f64, port: u16, data: &[f64], fin: &[f64]) {
    let (c, s) = ((C, port), (S, 80));
    b.tcp(t0, c, s, 100, 0, SYN, &[])
        .tcp(t0 + 0.001, s, c, 500, 101, SYN | ACK, &[])
        .tcp(t0 + 0.002, c, s, 101, 501, ACK, &[]);
    for &t in data {
        b.tcp(t, c, s, 101, 501, ACK, &[b'x'; 100]);
    }
    let last = data.last().copied().unwrap_or(t0);
    b.tcp(last + 0.001, s, c, 501, 201, ACK, &[]);
    for &t in fin {
        b.tcp(t, c, s, 201, 501, FIN | ACK, &[]);
    }
}

#[test]
fn a_fin_resent_to_a_silent_peer_is_no_data_stall() {
    let mut b = PcapBuilder::default();
    // Only the FIN was resent, after 1.5 and 3 s of silence: nobody waited on it.
    stalled(&mut b, 0.0, 40001, &[0.01], &[0.1, 1.6, 4.6]);
    // Data resent after 1.2 s of silence, then the FIN after 5 s: the data stall is what the
    // application waited on (medium, under 3 s), not the FIN's.
    stalled(&mut b, 10.0, 40002, &[10.01, 11.21], &[11.3, 16.3]);
    // The handshake: the SYN/ACK never came for 2 s (the client resent its SYN at 1 s and 3 s,
    // the last one answered).
    let (c, s) = ((C, 40003), (S, 80));
    b.tcp(20.0, c, s, 100, 0, SYN, &[])
        .tcp(21.0, c, s, 100, 0, SYN, &[])
        .tcp(23.0, c, s, 100, 0, SYN, &[])
        .tcp(23.001, s, c, 500, 101, SYN | ACK, &[])
        .tcp(23.002, c, s, 101, 501, ACK, &[]);
    let ev = analyze_built(&b, "stalls");
    let stalls = with_rule(&ev, "tcp.retransmission.stall");
    let of = |port: u64| {
        stalls
            .iter()
            .find(|f| f["source"]["port"] == port)
            .unwrap_or_else(|| panic!("a stall finding for client port {port}: {stalls:#?}"))
    };
    let fin = of(40001);
    assert_eq!(fin["event"]["severity"], 1, "{fin:#}");
    let c2s = &fin["fallacy"]["evidence"]["client_to_server"];
    assert_eq!(c2s["stalls_before"]["fin"], 2, "{fin:#}");
    assert_eq!(c2s["stalls_before"]["data"], 0, "{fin:#}");
    assert_eq!(c2s["longest_stall_before_secs"]["fin"], 3.0, "{fin:#}");
    assert!(message(fin).contains("FIN went unacknowledged"), "{fin:#}");

    let data = of(40002);
    assert_eq!(data["event"]["severity"], 2, "{data:#}");
    let c2s = &data["fallacy"]["evidence"]["client_to_server"];
    assert_eq!(c2s["stalls_before"]["data"], 1, "{data:#}");
    assert_eq!(c2s["stalls_before"]["fin"], 1, "{data:#}");
    assert_eq!(c2s["longest_stall_before_secs"]["data"], 1.2, "{data:#}");
    assert!(
        message(data)
            .contains("stalled 1 time(s) waiting to resend data or its handshake (longest 1.20 s, before resending data)"),
        "{data:#}"
    );

    let syn = of(40003);
    assert_eq!(syn["event"]["severity"], 2, "{syn:#}");
    assert_eq!(
        syn["fallacy"]["evidence"]["client_to_server"]["stalls_before"]["syn"], 2,
        "{syn:#}"
    );
    assert!(
        message(syn)
            .contains("stalled 2 time(s) waiting to resend data or its handshake (longest 2.00 s, before resending its SYN)"),
        "{syn:#}"
    );
    assert_eq!(stalls.len(), 3, "{stalls:#?}");
    assert_eq!(stat(&ev, "tcp.flows_flagged.fin_stall"), 1);
    assert_eq!(stat(&ev, "tcp.stalls_before.syn"), 2);
}

/// A segment of [`long_lived`]: time, from the client, sequence and acknowledgment numbers,
/// flags, payload length.
type Seg = (f64, bool, u32, u32, u8, usize);

/// A connection opened at 0 s: a 100-byte request from the client each second from 1 s to
/// 99 s, each acknowledged 1 ms after it arrives; the one sent at `t` for each `(t, gap)` in
/// `lost` is acknowledged only after being sent again `gap` seconds later, and the client
/// sends nothing new meanwhile. Closed at 100 s.
fn long_lived(lost: &[(f64, f64)]) -> Vec<Seg> {
    long_lived_for(100, lost)
}

/// [`long_lived`] lasting `secs` seconds: a segment every second from 1 s to `secs - 1`.
fn long_lived_for(secs: u32, lost: &[(f64, f64)]) -> Vec<Seg> {
    let mut out = vec![
        (0.0, true, 100, 0, SYN, 0),
        (0.001, false, 500, 101, SYN | ACK, 0),
        (0.002, true, 101, 501, ACK, 0),
    ];
    let (mut seq, mut busy_until) = (101u32, 0.0);
    for i in 1..secs {
        let t = f64::from(i);
        if t < busy_until {
            continue;
        }
        out.push((t, true, seq, 501, ACK, 100));
        let acked = match lost.iter().find(|(at, _)| *at == t) {
            Some(&(_, gap)) => {
                out.push((t + gap, true, seq, 501, ACK, 100));
                t + gap + 0.001
            }
            None => t + 0.001,
        };
        busy_until = acked;
        seq += 100;
        out.push((acked, false, 501, seq, ACK, 0));
    }
    let end = f64::from(secs);
    out.extend([
        (end, true, seq, 501, FIN | ACK, 0),
        (end + 0.001, false, 501, seq + 1, FIN | ACK, 0),
        (end + 0.002, true, seq + 1, 502, ACK, 0),
    ]);
    out
}

/// Connections from client ports to the server's port 5432, their segments in time order.
fn interleaved(conns: Vec<(u16, Vec<Seg>)>) -> PcapBuilder {
    let mut segs: Vec<(u16, Seg)> = conns
        .into_iter()
        .flat_map(|(port, s)| s.into_iter().map(move |seg| (port, seg)))
        .collect();
    segs.sort_by(|a, b| a.1.0.total_cmp(&b.1.0));
    let mut b = PcapBuilder::default();
    for (port, (t, from_client, seq, ack, flags, len)) in segs {
        let (c, s) = ((C, port), (S, 5432));
        let (src, dst) = if from_client { (c, s) } else { (s, c) };
        b.tcp(t, src, dst, seq, ack, flags, &vec![b'q'; len]);
    }
    b
}

#[test]
fn loss_on_a_long_lived_connection_is_reported_while_open_for_the_stretch_it_happened_in() {
    // Two connections of 300 s, a client segment a second, each with 8 segments resent
    // after 0.3 s (under the stall threshold). Client port 42001 loses them all between
    // 61 s and 120 s; 42002 loses them spread over its life, two or fewer in any minute.
    let burst: Vec<(f64, f64)> = (0..8).map(|i| (f64::from(65 + 7 * i), 0.3)).collect();
    let spread: Vec<(f64, f64)> = (0..8).map(|i| (f64::from(20 + 35 * i), 0.3)).collect();
    // Client port 42003 lives 290 s and loses 8 between 245 s and 280 s, in its last stretch,
    // which its end cuts short.
    let late: Vec<(f64, f64)> = (0..8).map(|i| (f64::from(245 + 5 * i), 0.3)).collect();
    let b = interleaved(vec![
        (42001, long_lived_for(300, &burst)),
        (42002, long_lived_for(300, &spread)),
        (42003, long_lived_for(290, &late)),
    ]);
    let ev = analyze_built(&b, "long-lived-loss");
    let rate = with_rule(&ev, "tcp.retransmission.excessive");
    let of = |port: u64| -> Vec<&Value> {
        rate.iter()
            .filter(|f| f["source"]["port"] == port)
            .copied()
            .collect()
    };
    // 42001: the stretch from the segment at 60 s to the one at 120 s, which ends it,
    // holds the client's segments from 61 s to 120 s (60) and the 8 resent: 8 of 68,
    // 11.8 %, high. Over the whole connection, 8 of 309 (SYN, 299 segments, 8 resent, FIN),
    // 2.6 %: medium, not reported again at the end.
    let burst = of(42001);
    assert_eq!(burst.len(), 1, "{burst:#?}");
    let f = burst[0];
    assert_eq!(f["event"]["severity"], 3, "{f:#}");
    let evidence = &f["fallacy"]["evidence"];
    assert_eq!(evidence["open"], true, "{f:#}");
    assert_eq!(evidence["window"]["secs"], 60.0, "{f:#}");
    assert_eq!(
        evidence["window"]["client_to_server"]["segments"], 68,
        "{f:#}"
    );
    assert_eq!(
        evidence["window"]["client_to_server"]["retransmissions"], 8,
        "{f:#}"
    );
    assert_eq!(
        evidence["window"]["server_to_client"]["segments"], 0,
        "{f:#}"
    );
    assert!(
        message(f).contains(
            "the client retransmitted 8 of 68 segments in the last 60 s (11.8 %) (so far: the connection is still open)"
        ),
        "{f:#}"
    );
    // 42002: no minute holds the 3 retransmissions a judgement needs; over the whole
    // connection, the same 8 of 309: medium, at its end.
    let spread = of(42002);
    assert_eq!(spread.len(), 1, "{spread:#?}");
    let f = spread[0];
    assert_eq!(f["event"]["severity"], 2, "{f:#}");
    assert!(f["fallacy"]["evidence"].get("open").is_none(), "{f:#}");
    assert!(f["fallacy"]["evidence"].get("window").is_none(), "{f:#}");
    assert!(
        message(f).contains("the client retransmitted 8 of 309 segments (2.6 %, 800 bytes)"),
        "{f:#}"
    );
    // 42003: its last stretch, from the segment at 240 s to its end at 290.002 s, holds the
    // client's segments from 241 s to 289 s (49), the 8 resent and its FIN: 8 of 58, 13.8 %,
    // high, at its end. Over the whole connection, 8 of 299 (2.7 %) would say medium.
    let late = of(42003);
    assert_eq!(late.len(), 1, "{late:#?}");
    let f = late[0];
    assert_eq!(f["event"]["severity"], 3, "{f:#}");
    let evidence = &f["fallacy"]["evidence"];
    assert!(evidence.get("open").is_none(), "{f:#}");
    assert_eq!(evidence["window"]["secs"], 50.002, "{f:#}");
    assert_eq!(
        evidence["window"]["client_to_server"]["segments"], 58,
        "{f:#}"
    );
    assert!(
        message(f).ends_with("the client retransmitted 8 of 58 segments in the last 50 s (13.8 %)"),
        "{f:#}"
    );
    assert_eq!(stat(&ev, "tcp.findings_while_open"), 1);
    assert_eq!(stat(&ev, "tcp.flows_flagged.retransmission_rate"), 3);
    assert_eq!(stat(&ev, "tcp.flows_flagged.stall"), 0);
}

#[test]
fn a_long_lived_connection_is_reported_while_open_and_again_only_when_worse() {
    // Client port 41001: stalls of 1.5 s at 70 s (medium, the connection then 70 s old),
    // 0.9 s at 80 s (under the 1 s threshold) and 3.5 s at 90 s (high: reported again).
    // Client port 41002: stalls of 1.5 s at 10 s and 3.5 s at 50 s, while the connection is
    // younger than 60 s: one finding, at its end. Both in time order.
    let b = interleaved(vec![
        (41001, long_lived(&[(70.0, 1.5), (80.0, 0.9), (90.0, 3.5)])),
        (41002, long_lived(&[(10.0, 1.5), (50.0, 3.5)])),
    ]);
    let ev = analyze_built(&b, "long-lived");
    let stalls = with_rule(&ev, "tcp.retransmission.stall");
    let of = |port: u64| -> Vec<&Value> {
        stalls
            .iter()
            .filter(|f| f["source"]["port"] == port)
            .copied()
            .collect()
    };
    let open = of(41001);
    assert_eq!(open.len(), 2, "{open:#?}");
    let (first, worse) = (open[0], open[1]);
    assert_eq!(first["event"]["severity"], 2, "{first:#}");
    assert_eq!(first["fallacy"]["evidence"]["open"], true, "{first:#}");
    // The counts as they stood at 71.5 s, when the resent segment earned the finding.
    let c2s = &first["fallacy"]["evidence"]["client_to_server"];
    assert_eq!(c2s["stalls"], 1, "{first:#}");
    assert_eq!(c2s["data_segments"], 71, "{first:#}");
    assert_eq!(
        first["fallacy"]["evidence"]["duration_secs"], 71.5,
        "{first:#}"
    );
    assert!(
        message(first).ends_with("(so far: the connection is still open)"),
        "{first:#}"
    );
    assert_eq!(worse["event"]["severity"], 3, "{worse:#}");
    assert_eq!(worse["fallacy"]["evidence"]["open"], true, "{worse:#}");
    let c2s = &worse["fallacy"]["evidence"]["client_to_server"];
    assert_eq!(c2s["stalls"], 3, "{worse:#}");
    assert_eq!(c2s["longest_stall_secs"], 3.5, "{worse:#}");

    let young = of(41002);
    assert_eq!(young.len(), 1, "{young:#?}");
    assert_eq!(young[0]["event"]["severity"], 3, "{:#}", young[0]);
    assert!(
        young[0]["fallacy"]["evidence"].get("open").is_none(),
        "{:#}",
        young[0]
    );
    assert_eq!(
        young[0]["fallacy"]["evidence"]["client_to_server"]["data_segments"],
        95 + 2,
        "{:#}",
        young[0]
    );
    // The client's rate, 3 of 100 segments (95 first sendings, 3 resent, the SYN and the
    // FIN), is over the 2 % threshold: reported at its end, since the stretch it is judged on
    // while open (60 s to 120 s, which holds all three) had not ended when it closed at 100 s.
    let rate = with_rule(&ev, "tcp.retransmission.excessive");
    assert_eq!(rate.len(), 1, "{rate:#?}");
    assert_eq!(rate[0]["source"]["port"], 41001);
    assert!(rate[0]["fallacy"]["evidence"].get("open").is_none());
    assert!(
        rate[0]["message"]
            .as_str()
            .unwrap()
            .contains("the client retransmitted 3 of 100 segments (3.0 %, 300 bytes)"),
        "{:#}",
        rate[0]
    );
    assert_eq!(stat(&ev, "tcp.findings_while_open"), 2);
    assert_eq!(stat(&ev, "tcp.flows_flagged.stall"), 2);
}

#[test]
fn analytics_cookies_in_clear_are_no_credentials_a_session_cookie_is() {
    // Two requests to an external server over plain HTTP, one from each client port: the first
    // carries only analytics and preference cookies, the second a PHP session cookie.
    let mut b = PcapBuilder::default();
    let server = ("93.184.216.34", 80);
    for (i, cookies) in [
        "_ga=GA1.2.1; _gid=GA1.2.2; lang=en",
        "_ga=GA1.2.1; PHPSESSID=0123456789abcdef",
    ]
    .iter()
    .enumerate()
    {
        let (t0, c) = (1.0 + i as f64, (C, 42000 + i as u16));
        let req = format!("GET /page HTTP/1.1\r\nHost: example\r\nCookie: {cookies}\r\n\r\n");
        let resp = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let (q, r) = (req.len() as u32, resp.len() as u32);
        b.tcp(t0, c, server, 100, 0, SYN, &[])
            .tcp(t0 + 0.001, server, c, 500, 101, SYN | ACK, &[])
            .tcp(t0 + 0.002, c, server, 101, 501, ACK, req.as_bytes())
            .tcp(t0 + 0.003, server, c, 501, 101 + q, ACK, resp.as_bytes())
            .tcp(t0 + 0.004, c, server, 101 + q, 501 + r, FIN | ACK, &[])
            .tcp(t0 + 0.005, server, c, 501 + r, 102 + q, FIN | ACK, &[])
            .tcp(t0 + 0.006, c, server, 102 + q, 502 + r, ACK, &[]);
    }
    let ev = analyze_built(&b, "cookies");
    let creds = with_rule(&ev, "plaintext.credentials");
    assert_eq!(creds.len(), 1, "{creds:#?}");
    let e = &creds[0]["fallacy"]["evidence"];
    assert_eq!(
        e["credentials"],
        serde_json::json!(["http-cookie"]),
        "{e:#}"
    );
    assert_eq!(
        e["connections"], 1,
        "only the session cookie's connection: {e:#}"
    );
    assert_eq!(creds[0]["event"]["severity"], 3);
    // The cookie's value never appears in what is written.
    let all = serde_json::to_string(&ev).unwrap();
    assert!(!all.contains("0123456789abcdef"));
}

#[test]
fn http_on_the_printing_and_upnp_ports_is_where_it_belongs() {
    // IPP (631) and UPnP descriptions (2869) are HTTP by their specifications; on 5001 HTTP
    // is unexpected.
    let mut b = PcapBuilder::default();
    for (i, port) in [631u16, 2869, 5001].into_iter().enumerate() {
        let (c, s) = ((C, 43000 + i as u16), (S, port));
        let t0 = i as f64;
        let req = b"POST /ipp/print HTTP/1.1\r\nHost: p\r\nContent-Type: application/ipp\r\nContent-Length: 0\r\n\r\n";
        b.tcp(t0, c, s, 100, 0, SYN, &[])
            .tcp(t0 + 0.001, s, c, 500, 101, SYN | ACK, &[])
            .tcp(t0 + 0.002, c, s, 101, 501, ACK, req);
    }
    let ev = analyze_built(&b, "ipp");
    let f = with_rule(&ev, "protocol.unexpected_port");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0]["destination"]["port"], 5001);
}

#[test]
fn a_client_dropping_an_idle_connection_is_no_loss_a_server_reset_is() {
    let mut b = PcapBuilder::default();
    // To 10.0.0.2:80: a request answered and acknowledged, then the client's RST a second later.
    let (c, s) = ((C, 44001), (S, 80));
    let req = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    let (q, r) = (req.len() as u32, resp.len() as u32);
    b.tcp(0.0, c, s, 100, 0, SYN, &[])
        .tcp(0.001, s, c, 500, 101, SYN | ACK, &[])
        .tcp(0.002, c, s, 101, 501, ACK, req)
        .tcp(0.003, s, c, 501, 101 + q, ACK, resp)
        .tcp(0.004, c, s, 101 + q, 501 + r, ACK, &[])
        .tcp(1.004, c, s, 101 + q, 501 + r, RST | ACK, &[]);
    // To 10.0.0.3:80: the same exchange, then the server's RST.
    let (c, s) = ((C, 44002), ("10.0.0.3", 80));
    b.tcp(2.0, c, s, 100, 0, SYN, &[])
        .tcp(2.001, s, c, 500, 101, SYN | ACK, &[])
        .tcp(2.002, c, s, 101, 501, ACK, req)
        .tcp(2.003, s, c, 501, 101 + q, ACK, resp)
        .tcp(2.004, c, s, 101 + q, 501 + r, ACK, &[])
        .tcp(3.004, s, c, 501 + r, 101 + q, RST | ACK, &[]);
    // To 10.0.0.4:80: the request acknowledged, no answer, the client's RST 5 s later (it gave
    // up waiting: a failed request, not an idle connection).
    let (c, s) = ((C, 44003), ("10.0.0.4", 80));
    b.tcp(4.0, c, s, 100, 0, SYN, &[])
        .tcp(4.001, s, c, 500, 101, SYN | ACK, &[])
        .tcp(4.002, c, s, 101, 501, ACK, req)
        .tcp(4.003, s, c, 501, 101 + q, ACK, &[])
        .tcp(9.003, c, s, 101 + q, 501, RST | ACK, &[]);
    let ev = analyze_built(&b, "resets");
    let resets = with_rule(&ev, "tcp.connection.reset");
    assert_eq!(resets.len(), 3, "{resets:#?}");
    let to = |ip: &str| {
        resets
            .iter()
            .find(|f| f["destination"]["ip"] == ip)
            .unwrap_or_else(|| panic!("a reset finding for {ip}"))
    };
    let idle = to(S);
    assert_eq!(idle["event"]["severity"], 1, "{idle:#}");
    assert_eq!(idle["fallacy"]["evidence"]["reset_by_client"], 1);
    assert_eq!(idle["fallacy"]["evidence"]["aborted_with_unacked_data"], 0);
    let server = to("10.0.0.3");
    assert_eq!(server["event"]["severity"], 2, "{server:#}");
    assert_eq!(server["fallacy"]["evidence"]["reset_by_server"], 1);
    let gave_up = to("10.0.0.4");
    assert_eq!(gave_up["event"]["severity"], 2, "{gave_up:#}");
    assert_eq!(
        gave_up["fallacy"]["evidence"]["aborted_with_request_pending"],
        1
    );
    assert_eq!(
        gave_up["fallacy"]["evidence"]["aborted_with_unacked_data"],
        0
    );
}

#[test]
fn a_server_dropping_an_idle_connection_is_no_failing_dependency() {
    let mut b = PcapBuilder::default();
    let req = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    let (q, r) = (req.len() as u32, resp.len() as u32);
    // 93.184.216.34: the request answered and acknowledged, then the server's RST 5 s later.
    let (c, s) = ((C, 45001), ("93.184.216.34", 80));
    b.tcp(0.0, c, s, 100, 0, SYN, &[])
        .tcp(0.001, s, c, 500, 101, SYN | ACK, &[])
        .tcp(0.002, c, s, 101, 501, ACK, req)
        .tcp(0.003, s, c, 501, 101 + q, ACK, resp)
        .tcp(0.004, c, s, 101 + q, 501 + r, ACK, &[])
        .tcp(5.004, s, c, 501 + r, 101 + q, RST | ACK, &[]);
    // 93.184.216.35: the server resets the connection with the request unacknowledged.
    let (c, s) = ((C, 45002), ("93.184.216.35", 80));
    b.tcp(10.0, c, s, 100, 0, SYN, &[])
        .tcp(10.001, s, c, 500, 101, SYN | ACK, &[])
        .tcp(10.002, c, s, 101, 501, ACK, req)
        .tcp(10.003, s, c, 501, 101, RST | ACK, &[]);
    // 93.184.216.36: the server acknowledges the request, answers nothing, and resets 2 s later.
    let (c, s) = ((C, 45003), ("93.184.216.36", 80));
    b.tcp(20.0, c, s, 100, 0, SYN, &[])
        .tcp(20.001, s, c, 500, 101, SYN | ACK, &[])
        .tcp(20.002, c, s, 101, 501, ACK, req)
        .tcp(20.003, s, c, 501, 101 + q, ACK, &[])
        .tcp(22.003, s, c, 501, 101 + q, RST | ACK, &[]);
    let ev = analyze_built(&b, "idle-reset");
    // The requests name host `a`: one owner, whose two resets with a request in flight or
    // waiting failed.
    let failing = with_rule(&ev, "dependency.failing");
    assert_eq!(failing.len(), 1, "{failing:#?}");
    assert!(
        failing[0]["message"]
            .as_str()
            .unwrap()
            .contains("is failing: 2 of 3 connection(s) failed"),
        "{:#}",
        failing[0]
    );
    assert_eq!(stat(&ev, "dependencies.idle_resets"), 1);
}

/// Two external servers, each 8 hops away (their packets arrive with TTL 56; the client's
/// with 64), each connection reset with a request unacknowledged: 93.184.216.40's RST arrives
/// with TTL 56, the server's own; 93.184.216.41's with TTL 250, which none of its packets
/// arrives with (a firewall near the client, whose packets start at 255, dropping a
/// connection it no longer keeps). Right: the first owner is failing (1 of 1 reset by the
/// server); the second is not (its RST came from the path, not from it), counted in
/// `dependencies.path_resets`. Wrong (before): both failing, the middlebox's reset blamed on
/// the external party.
#[test]
fn a_reset_sent_by_the_path_is_not_the_external_partys_failure() {
    let mut b = PcapBuilder::default();
    for (i, (server, host, rst_ttl)) in [
        ("93.184.216.40", "a.example.com", 56u8),
        ("93.184.216.41", "b.example.net", 250),
    ]
    .into_iter()
    .enumerate()
    {
        let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let t = i as f64 * 10.0;
        let (c, s) = ((C, 46_000 + i as u16), (server, 80));
        b.with_ttl(64).tcp(t, c, s, 100, 0, SYN, &[]);
        b.with_ttl(56)
            .tcp(t + 0.001, s, c, 500, 101, SYN | ACK, &[]);
        b.with_ttl(64)
            .tcp(t + 0.002, c, s, 101, 501, ACK, req.as_bytes());
        b.with_ttl(rst_ttl)
            .tcp(t + 0.5, s, c, 501, 101, RST | ACK, &[]);
    }
    b.with_ttl(64)
        .udp(200.0, (C, 5000), ("10.0.0.9", 5001), b"later");
    let ev = analyze_built(&b, "path-reset-dependency");
    let failing = with_rule(&ev, "dependency.failing");
    assert_eq!(failing.len(), 1, "{failing:#?}");
    let f = failing[0].to_string();
    assert!(f.contains("a.example.com"), "{:#}", failing[0]);
    assert!(!f.contains("b.example.net"), "{:#}", failing[0]);
    assert_eq!(stat(&ev, "dependencies.path_resets"), 1);
}

#[test]
fn failures_seconds_apart_are_one_group_however_long_their_flows_linger() {
    // An external service refuses a connection every 10 s from 0 to 290 s, then once more at
    // 500 s; other traffic goes on to 700 s. A refused connection ends only after it has
    // lingered (120 s), longer than a group's quiet time (60 s): the first 30 are still one
    // group, since each became known 10 s after the one before; the last, 210 s after them,
    // is a group of its own.
    let s = ("203.0.113.10", 443);
    let mut b = PcapBuilder::default();
    let refused = |b: &mut PcapBuilder, t: f64, port: u16| {
        b.tcp(t, (C, port), s, 100, 0, SYN, &[]).tcp(
            t + 0.001,
            s,
            (C, port),
            0,
            101,
            RST | ACK,
            &[],
        );
    };
    for i in 0..30u16 {
        refused(&mut b, f64::from(i) * 10.0, 40_000 + i);
    }
    refused(&mut b, 500.0, 40_100);
    for i in 0..700u16 {
        b.udp(f64::from(i) + 0.5, (C, 5000), (S, 5000), b"tick");
    }
    let ev = analyze_built(&b, "refusals");
    let failing = with_rule(&ev, "dependency.failing");
    let groups: Vec<(u64, u64, &str, &str)> = failing
        .iter()
        .map(|f| {
            let e = &f["fallacy"]["evidence"];
            (
                e["failures"]["refused"].as_u64().unwrap(),
                e["connections"].as_u64().unwrap(),
                e["first_failure"].as_str().unwrap(),
                e["last_failure"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        [
            (
                30,
                30,
                "2026-01-01T00:00:00.000000Z",
                "2026-01-01T00:04:50.001000Z"
            ),
            (
                1,
                1,
                "2026-01-01T00:08:20.000000Z",
                "2026-01-01T00:08:20.001000Z"
            )
        ],
        "{failing:#?}"
    );
}

#[test]
fn multicast_and_broadcast_from_a_zone_are_not_priced() {
    // A host of zone use1-az1 sends 50 mDNS and 50 SSDP datagrams of 1,028 IP bytes each, and
    // one DHCP broadcast: they stay on the link. It also sends 10 datagrams of 1,028 IP bytes
    // to an internet address: those leave the zone and are internet egress.
    let h = "10.0.1.5";
    let mut b = PcapBuilder::default();
    for i in 0..50 {
        let t = f64::from(i);
        b.udp(t, (h, 5353), ("224.0.0.251", 5353), &[0; 1000]);
        b.udp(t + 0.5, (h, 40_000), ("239.255.255.250", 1900), &[0; 1000]);
    }
    b.udp(60.0, (h, 68), ("255.255.255.255", 67), &[0; 300]);
    for i in 0..10 {
        b.udp(
            70.0 + f64::from(i),
            (h, 40_001),
            ("198.51.100.7", 443),
            &[0; 1000],
        );
    }
    let toml = "[[zone]]\ncidr = \"10.0.1.0/24\"\nzone = \"use1-az1\"\nregion = \"us-east-1\"\n";
    let ev = analyze_built_with(&b, "multicast.pcap", toml);
    let pairs: Vec<(&str, u64)> = with_rule(&ev, "cost.zone_pair")
        .iter()
        .map(|f| {
            let e = &f["fallacy"]["evidence"];
            (e["to_zone"].as_str().unwrap(), e["bytes"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(pairs, [("internet", 10 * 1028)], "{ev:#?}");
    assert_eq!(stat(&ev, "cost.group_flows"), 3);
}

#[test]
fn handshakes_just_within_the_budget_are_not_over_it_and_extremes_are_as_seen() {
    // 30 handshakes to port 443 whose client ACK comes 199.9 ms after its SYN, under the
    // default 200 ms budget; 30 to port 8443 taking 250 ms, over it.
    let mut b = PcapBuilder::default();
    for i in 0..30u16 {
        let t = f64::from(i);
        for (port, rtt) in [(443, 0.1999), (8443, 0.25)] {
            let (c, s) = ((C, 40_000 + i + port), (S, port));
            b.tcp(t, c, s, 100, 0, SYN, &[])
                .tcp(t + 0.001, s, c, 500, 101, SYN | ACK, &[])
                .tcp(t + rtt, c, s, 101, 501, ACK, &[]);
        }
    }
    let ev = analyze_built(&b, "budget-edge");
    let within = run_latency(&ev, "tcp.handshake", "10.0.0.2:443");
    assert_eq!(within["count"], 30);
    assert_eq!(within["min_us"], 199_900, "{within:#}");
    assert_eq!(within["max_us"], 199_900, "{within:#}");
    assert_eq!(within["p99_us"], 199_900, "{within:#}");
    let over = run_latency(&ev, "tcp.handshake", "10.0.0.2:8443");
    assert_eq!(over["max_us"], 250_000, "{over:#}");
    let found = with_rule(&ev, "latency.budget.exceeded");
    let services: Vec<(&str, u64)> = found
        .iter()
        .map(|f| {
            (
                message(f).split(' ').next().unwrap(),
                f["fallacy"]["evidence"]["max_us"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(services, [("10.0.0.2:8443", 250_000)], "{found:#?}");
}

#[test]
fn a_dns_query_lost_long_ago_does_not_time_a_later_one() {
    // Query id 7 for a.test is lost at 0 s; the client asks again with the same id at 120 s
    // and is answered in 5 ms. Query id 8 is sent at 200 s, again at 201 s (within the 5 s
    // DNS timeout: the client still waits for it), and answered at 201.010 s: 1,010 ms from
    // its first transmission.
    let (c, s) = (("10.0.0.1", 40_001), ("10.0.0.53", 53));
    let answer = |id| dns_a_response(id, "a.test", 0, &[("10.0.1.1", 60)]);
    let mut b = PcapBuilder::default();
    b.udp(0.0, c, s, &dns_a_query(7, "a.test"))
        .udp(120.0, c, s, &dns_a_query(7, "a.test"))
        .udp(120.005, s, c, &answer(7))
        .udp(200.0, c, s, &dns_a_query(8, "a.test"))
        .udp(201.0, c, s, &dns_a_query(8, "a.test"))
        .udp(201.010, s, c, &answer(8));
    let ev = analyze_built(&b, "dns-lost-long-ago");
    let l = run_latency(&ev, "dns.response", "10.0.0.53:53");
    assert_eq!(l["count"], 2, "{l:#}");
    assert_eq!(l["min_us"], 5_000, "{l:#}");
    assert_eq!(l["max_us"], 1_010_000, "{l:#}");
}

#[test]
fn an_address_two_names_share_is_not_stale_while_one_answer_holds() {
    // Client C resolves a.test -> 10.0.5.5 (TTL 300) at 0 s. Client 10.0.0.7 resolves b.test,
    // served from the same address (virtual hosting), TTL 10, at 1 s; at 20 s b.test moves to
    // 10.0.6.6. C connects to 10.0.5.5 at 30 s (a.test's answer holds: not stale) and again at
    // 400 s (every answer with 10.0.5.5 expired, C's own at 300 s: stale).
    let (c2, r) = ("10.0.0.7", ("10.0.0.53", 53));
    let mut b = PcapBuilder::default();
    b.udp(0.0, (C, 40_000), r, &dns_a_query(1, "a.test")).udp(
        0.01,
        r,
        (C, 40_000),
        &dns_a_response(1, "a.test", 0, &[("10.0.5.5", 300)]),
    );
    b.udp(1.0, (c2, 40_001), r, &dns_a_query(2, "b.test")).udp(
        1.01,
        r,
        (c2, 40_001),
        &dns_a_response(2, "b.test", 0, &[("10.0.5.5", 10)]),
    );
    b.udp(20.0, (c2, 40_002), r, &dns_a_query(3, "b.test")).udp(
        20.01,
        r,
        (c2, 40_002),
        &dns_a_response(3, "b.test", 0, &[("10.0.6.6", 10)]),
    );
    b.connection(30.0, (C, 45_000), ("10.0.5.5", 443))
        .connection(400.0, (C, 45_001), ("10.0.5.5", 443));
    let ev = analyze_built(&b, "shared-address");
    let stale: Vec<(&str, &str)> = with_rule(&ev, "dns.cache.stale")
        .iter()
        .map(|f| {
            let e = &f["fallacy"]["evidence"];
            (
                e["name"].as_str().unwrap(),
                e["first_seen"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        stale,
        [("a.test", "2026-01-01T00:06:40.000000Z")],
        "{ev:#?}"
    );
}

#[test]
fn a_udp_server_that_answered_and_then_vanished_is_reported_while_its_flow_lives() {
    // A resolver answers five queries from one client port (0.01 s to 4.01 s: one flow, which
    // lives on for the 900 s UDP idle time), then its process dies: queries from four other
    // ports (10 s to 13 s) each draw a port unreachable from the resolver itself.
    let ns = ("10.0.0.53", 53);
    let mut b = PcapBuilder::default();
    let c = (C, 40_000);
    for i in 0..5u16 {
        let t = f64::from(i);
        b.udp(t, c, ns, &dns_a_query(i, "a.test")).udp(
            t + 0.01,
            ns,
            c,
            &dns_a_response(i, "a.test", 0, &[("10.0.1.1", 60)]),
        );
    }
    for i in 0..4u16 {
        let (t, c) = (10.0 + f64::from(i), (C, 41_000 + i));
        let q = dns_a_query(100 + i, "a.test");
        b.udp(t, c, ns, &q)
            .frame(t + 0.0001, &port_unreachable([10, 0, 0, 53], (c, ns), &q));
    }
    b.udp(20.0, (S, 5000), ("10.0.0.8", 5001), b"tick");
    let ev = analyze_built(&b, "udp-vanished");
    let v = with_rule(&ev, "endpoint.vanished");
    assert_eq!(v.len(), 1, "{v:#?}");
    let e = &v[0]["fallacy"]["evidence"];
    assert_eq!(e["icmp_unreachable"], 4, "{e:#}");
    assert_eq!(e["last_good_at"], "2026-01-01T00:00:04.010000Z", "{e:#}");
    assert_eq!(e["vanished_at"], "2026-01-01T00:00:10.000100Z", "{e:#}");
}

/// A download of 40 segments of 1,000 bytes starting at `t`, 1 ms apart, each acknowledged,
/// then closed with FINs (0.044 s in all).
fn download(b: &mut PcapBuilder, t: f64, c: (&str, u16), s: (&str, u16)) {
    b.tcp(t, c, s, 100, 0, SYN, &[])
        .tcp(t + 0.001, s, c, 500, 101, SYN | ACK, &[])
        .tcp(t + 0.002, c, s, 101, 501, ACK, &[]);
    let (mut seq, mut at) = (501u32, t + 0.003);
    for _ in 0..40 {
        b.tcp(at, s, c, seq, 101, ACK, &[0x61; 1000]);
        seq += 1000;
        b.tcp(at + 0.0005, c, s, 101, seq, ACK, &[]);
        at += 0.001;
    }
    b.tcp(at, s, c, seq, 101, FIN | ACK, &[])
        .tcp(at + 0.0005, c, s, 101, seq + 1, FIN | ACK, &[])
        .tcp(at + 0.001, s, c, seq + 1, 102, ACK, &[]);
}

#[test]
fn a_bulk_transfer_alone_on_its_link_has_all_of_it_whatever_came_after() {
    // Two downloads, the second starting 5 s after the first closed: each had the link to
    // itself while it ran. The first ends (after lingering 120 s) long after the second.
    let mut b = PcapBuilder::default();
    download(&mut b, 0.0, (C, 40_000), ("10.0.1.1", 80));
    download(&mut b, 5.0, (C, 40_001), ("10.0.1.2", 80));
    let toml = "[bandwidth]\nbulk_threshold_bytes = 10000\n";
    let ev = analyze_built_with(&b, "two-downloads.pcap", toml);
    let shares: Vec<(&str, f64)> = with_rule(&ev, "bandwidth.bulk_transfer")
        .iter()
        .map(|f| {
            (
                f["destination"]["ip"].as_str().unwrap(),
                f["fallacy"]["evidence"]["link_share"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(shares, [("10.0.1.1", 1.0), ("10.0.1.2", 1.0)], "{ev:#?}");
}

#[test]
fn a_saturation_credits_the_bytes_that_filled_the_link_to_their_flow() {
    // Flow A sends 90 datagrams of 1,500 IP bytes, one every 10 ms from 1 s to 1.89 s: at the
    // link's 1.2 Mbit/s for 0.9 s, which fills its 1 s window past 85 %. Flow B then sends
    // one of 128 bytes at 1.95 s. (The episode lasts A's 0.9 s: reported from 0.5 s.)
    let mut b = PcapBuilder::default();
    for i in 0..90u32 {
        b.udp(
            1.0 + f64::from(i) * 0.01,
            (C, 5000),
            ("10.0.1.1", 9000),
            &[0; 1472],
        );
    }
    b.udp(1.95, (S, 5001), ("10.0.1.2", 9001), &[0; 100]);
    let toml = "[bandwidth]\ncapacity_mbps = 1.2\nsaturation_threshold = 0.85\nmin_saturation_secs = 0.5\n";
    let ev = analyze_built_with(&b, "saturation.pcap", toml);
    let sat = with_rule(&ev, "bandwidth.saturation");
    assert_eq!(sat.len(), 1, "{sat:#?}");
    let e = &sat[0]["fallacy"]["evidence"];
    // From the first 100 ms bucket with traffic in that window.
    assert_eq!(e["start"], "2026-01-01T00:00:01.000000Z", "{e:#}");
    let talkers: Vec<(&str, u64)> = e["top_talkers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["client"].as_str().unwrap(), t["bytes"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        talkers,
        [("10.0.0.1:5000", 90 * 1500), ("10.0.0.2:5001", 128)],
        "{e:#}"
    );
}

#[test]
fn two_bursts_ten_minutes_apart_are_two_inferred_saturations_not_one() {
    // Two bursts of 400 datagrams of 1,500 IP bytes, one every 5 ms (2.4 Mbit/s for 2 s),
    // at 10 s and at 610 s. During each, two connections' handshakes take 100 ms; five others,
    // away from them, take 1 ms. The peak 1 s window (10.5 s to 11.5 s) holds 300,000 bytes
    // of datagrams and the six 40-byte handshake segments: 300,240. Within 20 % of it
    // (240,192) are the windows ending at 10.9 s (270,000 + 120) to 12.1 s (270,000 + 40);
    // those ending at 10.8 s (240,000 + 120) and 12.2 s (240,000) are not. The plateau runs
    // from the burst's first datagram at 10 s (the link carried nothing that way in the second
    // before it) to its last 100 ms, ending at 12.0 s (the windows after it only hold the
    // burst's earlier bytes): 2.0 s, and the same 600 s later.
    // (time in µs, what): the records in time order.
    let mut at: Vec<(u64, u8, u16)> = Vec::new();
    let mut port = 41_000;
    let mut handshake = |at: &mut Vec<(u64, u8, u16)>, t: u64, rtt: u64| {
        at.extend([(t, 1, port), (t + rtt / 2, 2, port), (t + rtt, 3, port)]);
        port += 1;
    };
    for t in [1, 2, 3, 700, 701] {
        handshake(&mut at, t * 1_000_000, 1_000);
    }
    for start in [10_000_000, 610_000_000] {
        for i in 0..400u64 {
            at.push((start + i * 5_000, 0, 0));
        }
        handshake(&mut at, start + 500_001, 100_000);
        handshake(&mut at, start + 1_000_001, 100_000);
    }
    at.sort_unstable();
    let mut b = PcapBuilder::default();
    for (t, what, port) in at {
        let t = t as f64 / 1e6;
        let (c, s) = ((C, port), ("10.0.2.2", 443));
        match what {
            0 => b.udp(t, (S, 5000), ("10.0.1.1", 9000), &[0; 1472]),
            1 => b.tcp(t, c, s, 100, 0, SYN, &[]),
            2 => b.tcp(t, s, c, 500, 101, SYN | ACK, &[]),
            _ => b.tcp(t, c, s, 101, 501, ACK, &[]),
        };
    }
    let ev = analyze_built(&b, "two-bursts");
    let found: Vec<(&str, f64)> = with_rule(&ev, "bandwidth.saturation.inferred")
        .iter()
        .map(|f| {
            (
                f["@timestamp"].as_str().unwrap(),
                f["fallacy"]["evidence"]["plateau_secs"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("2026-01-01T00:00:10.000000Z", 2.0),
            ("2026-01-01T00:10:10.000000Z", 2.0)
        ],
        "{ev:#?}"
    );
}

/// Datagrams of no interest every `step` seconds from `from` to `to`: they move the capture's
/// clock, as a live link's other traffic does.
fn filler(b: &mut PcapBuilder, from: f64, to: f64, step: f64) {
    let mut t = from;
    while t <= to {
        b.udp(t, ("10.9.9.1", 9999), ("10.9.9.2", 9999), b"tick");
        t += step;
    }
}

#[test]
fn failures_known_only_when_their_connection_ends_are_grouped_and_reported_in_minutes() {
    let mut b = PcapBuilder::default();
    // Two attempts to S:5432, 30 s apart, each two SYNs 1 s apart (a 2 s connect timeout),
    // nothing answering. A connection nothing answered ends 120 s after its last SYN.
    for (t, port) in [(0.0, 40_001), (30.0, 40_002)] {
        b.tcp(t, (C, port), (S, 5432), 100, 0, SYN, &[]).tcp(
            t + 1.0,
            (C, port),
            (S, 5432),
            100,
            0,
            SYN,
            &[],
        );
    }
    // Two GETs to S:80, 10 s apart, acknowledged and never answered; the client resets each
    // connection 10 s later (it ends 120 s after that).
    let req = b"GET /orders HTTP/1.1\r\nHost: shop\r\n\r\n";
    let q = req.len() as u32;
    for (t, port) in [(40.0, 41_001), (50.0, 41_002)] {
        let (c, s) = ((C, port), (S, 80));
        b.tcp(t, c, s, 100, 0, SYN, &[])
            .tcp(t + 0.001, s, c, 500, 101, SYN | ACK, &[])
            .tcp(t + 0.002, c, s, 101, 501, ACK, req)
            .tcp(t + 0.003, s, c, 501, 101 + q, ACK, &[])
            .tcp(t + 10.0, c, s, 101 + q, 501, RST | ACK, &[]);
    }
    filler(&mut b, 70.0, 1_190.0, 20.0);
    // A refusal at 1,200 s, reported once quiet for 60 s: the failures above, known about two
    // minutes after they happened, come out before it, not two hours later.
    b.tcp(1_200.0, (C, 40_100), (S, 81), 100, 0, SYN, &[]).tcp(
        1_200.001,
        (S, 81),
        (C, 40_100),
        0,
        101,
        RST | ACK,
        &[],
    );
    filler(&mut b, 1_210.0, 7_600.0, 20.0);
    let ev = analyze_built(&b, "known-late");
    let counts = |rule: &str, field: &str| -> Vec<u64> {
        with_rule(&ev, rule)
            .iter()
            .map(|f| f["fallacy"]["evidence"][field].as_u64().unwrap())
            .collect()
    };
    assert_eq!(counts("tcp.handshake.unanswered", "connections"), [2]);
    assert_eq!(counts("http.request.unanswered", "count"), [2]);
    let pos = |rule: &str| {
        ev.iter()
            .position(|e| e["rule"]["name"] == rule)
            .unwrap_or_else(|| panic!("no {rule}"))
    };
    assert!(pos("tcp.handshake.unanswered") < pos("tcp.handshake.refused"));
    assert!(pos("http.request.unanswered") < pos("tcp.handshake.refused"));
}

#[test]
fn credentials_on_a_long_lived_connection_join_their_group_while_it_is_open() {
    // A Redis connection that authenticates at once (AUTH in clear), then asks every 10 s
    // and closes at 300 s: a pooled connection, as a cache client keeps one.
    let (c, s) = ((C, 47_379), (S, 6379));
    let mut b = PcapBuilder::default();
    b.handshake(c, s);
    let (mut cs, mut ss) = (101u32, 501u32);
    let mut turn = |b: &mut PcapBuilder, t: f64, ask: &[u8], answer: &[u8]| {
        b.tcp(t, c, s, cs, ss, ACK, ask);
        cs += ask.len() as u32;
        b.tcp(t + 0.001, s, c, ss, cs, ACK, answer);
        ss += answer.len() as u32;
    };
    turn(&mut b, 0.01, b"AUTH s3cret\r\n", b"+OK\r\n");
    for i in 1..30 {
        turn(&mut b, f64::from(i) * 10.0, b"GET k\r\n", b"$-1\r\n");
    }
    b.tcp(300.0, c, s, cs, ss, FIN | ACK, &[])
        .tcp(300.001, s, c, ss, cs + 1, FIN | ACK, &[])
        .tcp(300.002, c, s, cs + 1, ss + 1, ACK, &[]);
    let f = ScratchFile::new("redis-pool.pcap", &b.finish());
    // Bytes (IP packets of 40 bytes of headers and the payload) up to and including the GET
    // at 60 s, the first packet 60 s after the connection opened: the handshake, AUTH and its
    // answer, five GETs answered, the sixth GET.
    let at_60 = 3 * 40 + (40 + 13) + (40 + 5) + 5 * ((40 + 7) + (40 + 5)) + (40 + 7);
    // … and at the end: 29 GETs answered and the three closing segments.
    let at_end = 3 * 40 + (40 + 13) + (40 + 5) + 29 * ((40 + 7) + (40 + 5)) + 3 * 40;

    // As `live` and `probe` run (active_group_secs = 60): it joins its group at 60 s, with
    // its bytes then; the group, quiet from then on, is reported while it is still open.
    let mut cfg = Config::default();
    cfg.report.active_group_secs = Some(60.0);
    let ev = run(&[f.to_path_buf()], &cfg).0;
    let found = with_rule(&ev, "plaintext.internal");
    assert_eq!(found.len(), 1, "{found:#?}");
    let e = &found[0]["fallacy"]["evidence"];
    assert_eq!(found[0]["event"]["severity"], 4, "{:#}", found[0]);
    assert_eq!(e["credentials"][0], "redis-auth", "{e:#}");
    assert_eq!(e["connections"], 1, "{e:#}");
    assert_eq!(e["bytes"], at_60, "{e:#}");
    assert_eq!(e["last_seen"], "2026-01-01T00:01:00.000000Z", "{e:#}");
    // Written while the connection was open: before the latency metrics of its fourth
    // minute (the group, quiet from 60 s on, is due at 120 s). The summary counts it once.
    let at = |pred: &dyn Fn(&Value) -> bool| ev.iter().position(pred).expect("an event");
    let finding = at(&|e| e["rule"]["name"] == "plaintext.internal");
    let minute_3 = at(&|e| {
        e["event"]["action"] == "latency" && e["@timestamp"] == "2026-01-01T00:03:00.000000Z"
    });
    assert!(
        finding < minute_3,
        "finding at {finding}, 3rd minute's metrics at {minute_3}"
    );
    assert_eq!(stat(&ev, "security.joined_while_open"), 1);
    assert_eq!(stat(&ev, "security.plaintext_connections"), 1);
    assert_eq!(stat(&ev, "security.credential_connections"), 1);

    // As `analyze` runs by default: it joins its group when it ends.
    let ev = run(&[f.to_path_buf()], &Config::default()).0;
    let found = with_rule(&ev, "plaintext.internal");
    assert_eq!(found.len(), 1, "{found:#?}");
    let e = &found[0]["fallacy"]["evidence"];
    assert_eq!(e["connections"], 1, "{e:#}");
    assert_eq!(e["bytes"], at_end, "{e:#}");
    assert_eq!(e["last_seen"], "2026-01-01T00:05:00.002000Z", "{e:#}");
    assert_eq!(stat(&ev, "security.joined_while_open"), 0);
}

#[test]
fn credentials_a_connection_carries_after_joining_its_group_are_reported_too() {
    // An internal HTTP keep-alive connection: a session cookie at once (high), requests every
    // 10 s, and at 120 s a Basic password (critical), closed at 300 s.
    let (c, s) = ((C, 47_080), (S, 80));
    let mut b = PcapBuilder::default();
    b.handshake(c, s);
    let (mut cs, mut ss) = (101u32, 501u32);
    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    for i in 0..30u32 {
        let t = f64::from(i) * 10.0 + 0.01;
        let ask: &[u8] = match i {
            0 => b"GET / HTTP/1.1\r\nHost: app\r\nCookie: sessionid=abc\r\n\r\n",
            12 => {
                b"GET /admin HTTP/1.1\r\nHost: app\r\nAuthorization: Basic YWRtaW46cGFzcw==\r\n\r\n"
            }
            _ => b"GET /poll HTTP/1.1\r\nHost: app\r\n\r\n",
        };
        b.tcp(t, c, s, cs, ss, ACK, ask);
        cs += ask.len() as u32;
        b.tcp(t + 0.001, s, c, ss, cs, ACK, answer);
        ss += answer.len() as u32;
    }
    b.tcp(300.0, c, s, cs, ss, FIN | ACK, &[])
        .tcp(300.001, s, c, ss, cs + 1, FIN | ACK, &[])
        .tcp(300.002, c, s, cs + 1, ss + 1, ACK, &[]);
    let f = ScratchFile::new("http-keepalive.pcap", &b.finish());

    // Streaming: it joins its group at 60.01 s with the cookie; the group is reported at
    // 120 s (high). The password that came after is reported at its end (critical).
    let mut cfg = Config::default();
    cfg.report.active_group_secs = Some(60.0);
    let ev = run(&[f.to_path_buf()], &cfg).0;
    let found = with_rule(&ev, "plaintext.internal");
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!(found[0]["event"]["severity"], 3, "{:#}", found[0]);
    assert_eq!(credential_kinds(found[0]), ["http-cookie"]);
    assert_eq!(found[1]["event"]["severity"], 4, "{:#}", found[1]);
    assert_eq!(credential_kinds(found[1]), ["http-basic", "http-cookie"]);

    // analyze: one finding at its end, with both.
    let ev = run(&[f.to_path_buf()], &Config::default()).0;
    let found = with_rule(&ev, "plaintext.internal");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0]["event"]["severity"], 4, "{:#}", found[0]);
    assert_eq!(credential_kinds(found[0]), ["http-basic", "http-cookie"]);
}
