//! Review of the external-dependency inventory and graph (fallacy 6, analyze/administrators.rs
//! and `--dependency-graph`): owners named from DNS answers that changed during a connection,
//! the failing share of a request answered 5xx and then reset, and a graph file that cannot be
//! written. Each case built here from packets; expected values from the construction.

use observer_tests::tcp_flags::{ACK, FIN, RST, SYN};
use observer_tests::{
    PcapBuilder, analyze_built, dns_a_query, dns_a_response, inventory, with_rule,
};
use serde_json::Value;

const C: &str = "10.0.0.1";
const C2: &str = "10.0.0.2";
const RESOLVER: &str = "10.0.0.53";

fn owner<'a>(inv: &'a [Value], name: &str) -> &'a Value {
    inv.iter()
        .find(|o| o["owner"] == name)
        .unwrap_or_else(|| panic!("owner {name} in {inv:#?}"))
}

/// A plain TCP connection (no TLS, no HTTP: only DNS can name it) from `c` to `s` opened at
/// `t0`, 100 bytes each way at `t0 + 1`, closed with FIN at `t_end`.
fn plain_connection(b: &mut PcapBuilder, t0: f64, t_end: f64, c: (&str, u16), s: (&str, u16)) {
    let data = [b'x'; 100];
    b.tcp(t0, c, s, 100, 0, SYN, &[])
        .tcp(t0 + 0.001, s, c, 500, 101, SYN | ACK, &[])
        .tcp(t0 + 0.002, c, s, 101, 501, ACK, &[])
        .tcp(t0 + 1.0, c, s, 101, 501, ACK, &data)
        .tcp(t0 + 1.001, s, c, 501, 201, ACK, &data)
        .tcp(t0 + 1.002, c, s, 201, 601, ACK, &[])
        .tcp(t_end, c, s, 201, 601, FIN | ACK, &[])
        .tcp(t_end + 0.001, s, c, 601, 202, FIN | ACK, &[])
        .tcp(t_end + 0.002, c, s, 202, 602, ACK, &[]);
}

/// A shared address (a CDN's, a hosting provider's) named by two DNS names in turn: at 0 s the
/// client resolves db.alpha-corp.com to 198.51.100.7 and at 1 s connects to it (plain TCP, no
/// SNI or Host); at 5 s another client resolves cdn.beta-shop.net to the same address; the
/// first connection closes at 10 s. At 12 s a new connection opens, after the second answer.
/// Right: the first connection is alpha-corp.com's (the name its client resolved before
/// connecting), the second beta-shop.net's. The later answer must not take over a connection
/// made before it.
#[test]
fn a_later_dns_answer_for_a_shared_address_does_not_rename_an_earlier_connection() {
    const ADDR: &str = "198.51.100.7";
    let mut b = PcapBuilder::default();
    b.udp(
        0.0,
        (C, 40000),
        (RESOLVER, 53),
        &dns_a_query(1, "db.alpha-corp.com"),
    )
    .udp(
        0.01,
        (RESOLVER, 53),
        (C, 40000),
        &dns_a_response(1, "db.alpha-corp.com", 0, &[(ADDR, 300)]),
    );
    plain_connection(&mut b, 1.0, 10.0, (C, 50000), (ADDR, 5432));
    b.udp(
        5.0,
        (C2, 40001),
        (RESOLVER, 53),
        &dns_a_query(2, "cdn.beta-shop.net"),
    )
    .udp(
        5.01,
        (RESOLVER, 53),
        (C2, 40001),
        &dns_a_response(2, "cdn.beta-shop.net", 0, &[(ADDR, 300)]),
    );
    plain_connection(&mut b, 12.0, 14.0, (C2, 50001), (ADDR, 5432));
    let ev = analyze_built(&b, "dns-shared-address.pcap");
    let inv = inventory(&ev);
    let alpha = owner(&inv, "alpha-corp.com");
    assert_eq!(alpha["owner_source"], "dns");
    assert_eq!(alpha["flows"], 1);
    assert_eq!(alpha["clients"], serde_json::json!([C]));
    assert_eq!(alpha["names"], serde_json::json!(["db.alpha-corp.com"]));
    // IP bytes: the client's SYN, ACK, 100-byte segment, ACK, FIN and ACK (40 + 40 + 140 + 40
    // + 40 + 40); the server's SYN/ACK, 100-byte segment and FIN (40 + 140 + 40).
    assert_eq!(alpha["bytes_sent"], 340);
    assert_eq!(alpha["bytes_received"], 220);
    let beta = owner(&inv, "beta-shop.net");
    assert_eq!(beta["flows"], 1);
    assert_eq!(beta["clients"], serde_json::json!([C2]));
    assert_eq!(inv.len(), 2, "{inv:#?}");
}

/// 20 one-request keep-alive-less HTTP connections to api.pay.example (198.51.100.20): 19 are
/// answered 200; one is answered 503, after which the server resets the connection before the
/// client acknowledged the response (data in flight: a failed connection by the documented
/// rule). That is one failed attempt of 20 (5 %): the one request and its connection are one
/// attempt, which is counted once. Right: one `dependency.failing`, severity low (under 10 %).
#[test]
fn a_5xx_answer_then_reset_is_one_failed_attempt_in_the_failing_share() {
    const S: (&str, u16) = ("198.51.100.20", 80);
    let req: &[u8] = b"GET /pay HTTP/1.1\r\nHost: api.pay.example\r\n\r\n";
    let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    let bad: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
    let mut b = PcapBuilder::default();
    for i in 0..19u16 {
        b.session(f64::from(i), (C, 50000 + i), S, &[(true, req), (false, ok)]);
    }
    let c = (C, 50100);
    let t = 30.0;
    let rl = req.len() as u32;
    let bl = bad.len() as u32;
    b.tcp(t, c, S, 100, 0, SYN, &[])
        .tcp(t + 0.001, S, c, 500, 101, SYN | ACK, &[])
        .tcp(t + 0.002, c, S, 101, 501, ACK, &[])
        .tcp(t + 0.003, c, S, 101, 501, ACK, req)
        .tcp(t + 0.004, S, c, 501, 101 + rl, ACK, bad)
        .tcp(t + 0.005, S, c, 501 + bl, 101 + rl, RST | ACK, &[]);
    let ev = analyze_built(&b, "dependency-503-reset.pcap");
    let inv = inventory(&ev);
    let o = owner(&inv, "pay.example");
    assert_eq!(o["flows"], 20);
    assert_eq!(o["requests"], 20);
    assert_eq!(o["failures"]["http_5xx"], 1);
    let f = with_rule(&ev, "dependency.failing");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(
        f[0]["event"]["severity"], 1,
        "low: 1 failed attempt of 20 is 5 %: {:#}",
        f[0]
    );
}

/// `--report` that fails to be written at the end (the file size limit of `ulimit -f`, 8 KiB:
/// the page is larger, the graph is not; SIGXFSZ ignored so that the write fails with EFBIG as
/// a full disk's would), with `--dependency-graph`: the report's failure is reported (exit 2,
/// the path named), and the graph, which could be written, still is: one unwritable output
/// must not take another with it. (A path that cannot be written at all is refused before
/// anything is read: `tests/tests/cli.rs`.)
#[test]
fn a_report_failing_at_the_end_still_writes_the_graph() {
    let dir = std::env::temp_dir().join(format!("observer-test-{}-deps-efbig", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (report, graph) = (dir.join("deps-report.html"), dir.join("deps.dot"));
    let out = std::process::Command::new("sh")
        .args(["-c", "trap '' XFSZ; ulimit -f 8; exec \"$0\" \"$@\""])
        .arg(observer_tests::observer_bin())
        .args(["analyze", "-q", "--report"])
        .arg(&report)
        .arg("--dependency-graph")
        .arg(&graph)
        .arg(observer_tests::root().join("fixtures/dependencies.pcap"))
        .output()
        .unwrap();
    let dot = std::fs::read_to_string(&graph);
    let page = report.exists();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("--report {}", report.display())),
        "{stderr}"
    );
    assert!(!page, "no half-written report");
    let dot = dot.unwrap_or_else(|e| panic!("the graph was not written ({e}); stderr: {stderr}"));
    assert!(dot.starts_with("digraph"), "a Graphviz graph: {dot}");
}

/// A refused attempt: `c`'s SYN to `s` at `t`, the server's RST 1 ms later.
fn refused(b: &mut PcapBuilder, t: f64, c: (&str, u16), s: (&str, u16)) {
    b.tcp(t, c, s, 1, 0, SYN, &[])
        .tcp(t + 0.001, s, c, 0, 2, RST | ACK, &[]);
}

/// 198.51.100.50:443 (no name: owned by its address) is used by 10.0.0.8: three connections
/// that work and one refused. 10.0.0.1 is refused there seven times too, then sweeps: refused
/// by port 443 of 80 other addresses, recognised as `tcp.sweep` once 64 destinations failed;
/// its seven attempts at 198.51.100.50, made before the sweep was recognised, are taken out of
/// that owner's failures (`swept_attempts`). They must leave its failing share too, numerator
/// and denominator alike: 1 failed attempt of 4 is 25 %, medium (not 1 of 11, low, nor 8 of
/// 11, high).
#[test]
fn a_sweepers_attempts_taken_out_leave_the_failing_share_too() {
    const X: (&str, u16) = ("198.51.100.50", 443);
    const SCANNER: &str = "10.0.0.1";
    const USER: &str = "10.0.0.8";
    let mut b = PcapBuilder::default();
    for i in 0..3u16 {
        b.connection(f64::from(i) * 0.1, (USER, 50000 + i), X);
    }
    for i in 0..7u16 {
        refused(&mut b, 0.05 + f64::from(i) * 0.01, (SCANNER, 40000 + i), X);
    }
    refused(&mut b, 0.5, (USER, 50010), X);
    for i in 1..=80u16 {
        let target = format!("203.0.113.{i}");
        refused(
            &mut b,
            1.0 + f64::from(i) * 0.01,
            (SCANNER, 41000 + i),
            (&target, 443),
        );
    }
    // The capture goes on for 3 s more: every attempt had time to be answered.
    b.udp(5.0, ("10.255.0.1", 5000), ("10.255.0.2", 5001), b"end");
    let ev = analyze_built(&b, "dependency-sweeper.pcap");
    assert_eq!(with_rule(&ev, "tcp.sweep").len(), 1, "the scan is a sweep");
    let inv = inventory(&ev);
    let o = owner(&inv, "198.51.100.50");
    assert_eq!(o["flows"], 4, "{o:#}");
    assert_eq!(o["failed_flows"], 1, "{o:#}");
    let f = with_rule(&ev, "dependency.failing");
    let f: Vec<_> = f
        .iter()
        .filter(|f| f["fallacy"]["evidence"]["owner"] == "198.51.100.50")
        .collect();
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0]["fallacy"]["evidence"]["connections"], 4);
    assert_eq!(f[0]["fallacy"]["evidence"]["failed_connections"], 1);
    assert_eq!(
        f[0]["event"]["severity"], 2,
        "medium: 1 failed attempt of 4 is 25 %: {:#}",
        f[0]
    );
}

/// Names are case-insensitive and a final dot names the same host: three HTTP connections to
/// 198.51.100.30 with `Host: API.Pay.Example`, `Host: api.pay.example` and
/// `Host: api.pay.example.` are one name of one owner. Right: `names` is
/// `["api.pay.example"]` (its 8 places are not spent on spellings of one name).
#[test]
fn one_name_spelt_three_ways_is_listed_once() {
    const S: (&str, u16) = ("198.51.100.30", 80);
    let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    let mut b = PcapBuilder::default();
    for (i, host) in ["API.Pay.Example", "api.pay.example", "api.pay.example."]
        .iter()
        .enumerate()
    {
        let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        b.session(
            i as f64,
            (C, 50000 + i as u16),
            S,
            &[(true, req.as_bytes()), (false, ok)],
        );
    }
    let ev = analyze_built(&b, "dependency-name-case.pcap");
    let inv = inventory(&ev);
    let o = owner(&inv, "pay.example");
    assert_eq!(o["flows"], 3);
    assert_eq!(o["names"], serde_json::json!(["api.pay.example"]), "{o:#}");
}
