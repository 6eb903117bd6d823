//! DNS queries a server answered with a failure (SERVFAIL, REFUSED): the client got an answer
//! but no address, so its request fails as surely as an unanswered one. NXDOMAIN is an answer
//! (a name that does not exist; search domains ask for many) and not reported. Each case is
//! built from packets here; the expected values come from the construction.

use observer_tests::{PcapBuilder, analyze_built, dns_a_query, dns_a_response, stat, with_rule};

const C: &str = "10.60.0.1";
const S: (&str, u16) = ("10.60.0.53", 53);

/// Query `id` for `name` from client port `port` at `t`, answered `rcode` 4 ms later (an
/// address when the rcode is 0).
fn exchange(b: &mut PcapBuilder, t: f64, port: u16, id: u16, name: &str, rcode: u8) {
    let answers: &[(&str, u32)] = if rcode == 0 {
        &[("10.60.1.1", 60)]
    } else {
        &[]
    };
    b.udp(t, (C, port), S, &dns_a_query(id, name));
    b.udp(
        t + 0.004,
        S,
        (C, port),
        &dns_a_response(id, name, rcode, answers),
    );
}

#[test]
fn servfail_and_refused_answers_are_failed_queries_and_nxdomain_is_not() {
    let mut b = PcapBuilder::default();
    exchange(&mut b, 1.0, 40001, 1, "api.example.test", 2);
    exchange(&mut b, 2.0, 40002, 2, "db.example.test", 5);
    exchange(&mut b, 3.0, 40003, 3, "nope.example.test", 3);
    exchange(&mut b, 4.0, 40004, 4, "ok.example.test", 0);
    let ev = analyze_built(&b, "dns-failed.pcap");
    let f = with_rule(&ev, "dns.query.failed");
    assert_eq!(f.len(), 1, "{f:#?}");
    let f = f[0];
    assert_eq!(f["fallacy"]["id"], 1);
    assert_eq!(f["destination"]["ip"], S.0);
    assert_eq!(f["destination"]["port"], 53);
    let e = &f["fallacy"]["evidence"];
    assert_eq!(e["count"], 2, "{e}");
    assert_eq!(e["rcodes"]["SERVFAIL"], 1, "{e}");
    assert_eq!(e["rcodes"]["REFUSED"], 1, "{e}");
    assert_eq!(e["clients"], serde_json::json!([C]));
    let samples: Vec<&str> = e["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(
        samples,
        [
            "api.example.test (type 1): SERVFAIL",
            "db.example.test (type 1): REFUSED"
        ]
    );
    assert_eq!(e["first_seen"], "2026-01-01T00:00:01.000000Z");
    assert_eq!(e["last_seen"], "2026-01-01T00:00:02.004000Z");
    assert_eq!(stat(&ev, "dns.failed"), 2);
    assert_eq!(stat(&ev, "dns.responses"), 4);
    // Answered, so neither unanswered nor retransmitted.
    assert!(with_rule(&ev, "dns.query.unanswered").is_empty());
    assert!(with_rule(&ev, "dns.query.retransmitted").is_empty());
}

#[test]
fn a_query_sent_twice_then_answered_servfail_is_failed_not_retransmitted() {
    // The client sends its query again after 1 s of silence; the answer to it is SERVFAIL:
    // what the client got in the end is a failure (sent twice), not a late success.
    let mut b = PcapBuilder::default();
    b.udp(1.0, (C, 40001), S, &dns_a_query(9, "down.example.test"));
    b.udp(2.0, (C, 40001), S, &dns_a_query(9, "down.example.test"));
    b.udp(
        2.004,
        S,
        (C, 40001),
        &dns_a_response(9, "down.example.test", 2, &[]),
    );
    // Another query sent twice and answered with an address: retransmitted, as before.
    b.udp(5.0, (C, 40002), S, &dns_a_query(10, "flaky.example.test"));
    exchange(&mut b, 6.0, 40002, 10, "flaky.example.test", 0);
    let ev = analyze_built(&b, "dns-failed-retry.pcap");
    let failed = with_rule(&ev, "dns.query.failed");
    assert_eq!(failed.len(), 1, "{failed:#?}");
    let e = &failed[0]["fallacy"]["evidence"];
    assert_eq!(e["count"], 1, "{e}");
    assert_eq!(e["transmissions"], 2, "{e}");
    assert_eq!(e["samples"][0], "down.example.test (type 1): SERVFAIL");
    let retried = with_rule(&ev, "dns.query.retransmitted");
    assert_eq!(retried.len(), 1, "{retried:#?}");
    let r = &retried[0]["fallacy"]["evidence"];
    assert_eq!(r["count"], 1);
    assert_eq!(r["samples"][0], "flaky.example.test (type 1)");
    assert_eq!(stat(&ev, "dns.failed"), 1);
    assert_eq!(stat(&ev, "dns.retransmitted"), 1);
}

#[test]
fn failed_queries_match_tsharks_servfail_and_refused_answers_on_the_corpus() {
    let Some(dir) = observer_tests::corpus_dir() else {
        eprintln!("skipped: no ../shared/corpus");
        return;
    };
    assert!(
        observer_tests::have("tshark"),
        "tshark is the oracle (scripts/test.sh installs it)"
    );
    // Captures whose SERVFAIL and REFUSED answers each came within the DNS timeout of their
    // query (in zeek__erspan.pcap three SERVFAILs come 11 s after their queries: the client's
    // resolver has given up by then, they are unanswered queries). Teredo's is inside a tunnel.
    for name in [
        "ndpi__bad-dns-traffic.pcap",
        "ndpi__dns_fragmented.pcap",
        "zeek__tunnels__Teredo.pcap",
    ] {
        let path = dir.join(name);
        let want = observer_tests::tshark_fields(
            path.to_str().unwrap(),
            &["frame.number"],
            "udp && dns.flags.response == 1 && (dns.flags.rcode == 2 || dns.flags.rcode == 5)",
        )
        .lines()
        .count() as u64;
        assert!(want > 0, "{name}: tshark sees a failed answer");
        let ev = observer_tests::run(&[path], &observer::config::Config::default()).0;
        assert_eq!(stat(&ev, "dns.failed"), want, "{name}");
        let reported: u64 = with_rule(&ev, "dns.query.failed")
            .iter()
            .map(|f| f["fallacy"]["evidence"]["count"].as_u64().unwrap())
            .sum();
        assert_eq!(reported, want, "{name}");
    }
}

#[test]
fn an_unanswered_query_refused_by_icmp_says_so() {
    // Two queries to the server get no answer: the first draws an ICMP port unreachable from
    // the server itself (nothing listens on 53 there), the second nothing at all.
    let mut b = PcapBuilder::default();
    let q1 = dns_a_query(1, "api.example.test");
    b.udp(1.0, (C, 40001), S, &q1).frame(
        1.0001,
        &observer_tests::port_unreachable([10, 60, 0, 53], ((C, 40001), S), &q1),
    );
    b.udp(2.0, (C, 40002), S, &dns_a_query(2, "db.example.test"));
    // The capture goes on past the DNS timeout.
    b.udp(20.0, ("10.60.0.9", 5000), ("10.60.0.8", 5001), b"tick");
    let ev = analyze_built(&b, "dns-icmp.pcap");
    let f = with_rule(&ev, "dns.query.unanswered");
    assert_eq!(f.len(), 1, "{f:#?}");
    let e = &f[0]["fallacy"]["evidence"];
    assert_eq!(e["count"], 2, "{e}");
    assert_eq!(e["icmp_unreachable"], 1, "{e}");
    let m = observer_tests::message(f[0]);
    assert!(
        m.ends_with(
            "; 1 of them came back as ICMP destination unreachable: nothing answers DNS there"
        ),
        "{m}"
    );
    assert_eq!(stat(&ev, "dns.unanswered"), 2);
}

/// How many clients a `dns.query.failed` message names: one by its address, a few by their
/// number, more than the 16 listed as "more than 16". Three servers, each answering SERVFAIL
/// to 1, 3 and 17 clients.
#[test]
fn failed_queries_name_their_clients_by_count() {
    let mut b = PcapBuilder::default();
    let mut t = 1.0;
    for (server, n) in [("10.61.0.1", 1u8), ("10.61.0.3", 3), ("10.61.0.17", 17)] {
        for i in 1..=n {
            let c = format!("10.61.1.{i}");
            let s = (server, 53);
            b.udp(
                t,
                (&c, 40001),
                s,
                &dns_a_query(u16::from(i), "x.example.test"),
            );
            b.udp(
                t + 0.004,
                s,
                (&c, 40001),
                &dns_a_response(u16::from(i), "x.example.test", 2, &[]),
            );
            t += 0.01;
        }
    }
    let ev = analyze_built(&b, "dns-failed-clients.pcap");
    for (server, text) in [
        ("10.61.0.1", "from 1 client (10.61.1.1) were answered"),
        ("10.61.0.3", "from 3 clients were answered"),
        ("10.61.0.17", "from more than 16 clients were answered"),
    ] {
        let f = observer_tests::finding_to(&ev, "dns.query.failed", server);
        assert!(observer_tests::message(f).contains(text), "{f:#}");
    }
}
