//! Review of the topology analyzer (fallacy 5): outages of endpoints, stale DNS caches and
//! ICMP unreachable groups, each case built here from packets, the expected values from the
//! construction.

use observer_tests::tcp_flags::{ACK, FIN, RST, SYN};
use observer_tests::{
    PcapBuilder, analyze_built, dns_a_response, message, port_unreachable, stat, with_rule,
};

const DNS: (&str, u16) = ("10.0.0.53", 53);

/// A connection refused by `s`: SYN at `t`, RST/ACK from the server 1 ms later.
fn refused(b: &mut PcapBuilder, t: f64, c: (&str, u16), s: (&str, u16)) {
    b.tcp(t, c, s, 100, 0, SYN, &[])
        .tcp(t + 0.001, s, c, 0, 101, RST | ACK, &[]);
}

/// A backend being drained (a load balancer's or a firewall's "established only"): the
/// connection opened before the outage keeps being served and closes cleanly in the middle of
/// it, while every new connection is refused before and after. The endpoint never accepted a
/// new connection again: one outage with all four refusals, not "answered again" when the old
/// connection's last packets went by.
#[test]
fn an_old_connection_closing_during_an_outage_is_not_a_return() {
    let (c, s) = ("10.1.0.1", ("10.2.0.2", 80));
    let mut b = PcapBuilder::default();
    // The old connection: handshake at 0, a server answer at 1 s.
    b.tcp(0.0, (c, 50001), s, 100, 0, SYN, &[])
        .tcp(0.001, s, (c, 50001), 500, 101, SYN | ACK, &[])
        .tcp(0.002, (c, 50001), s, 101, 501, ACK, &[])
        .tcp(1.0, (c, 50001), s, 101, 501, ACK, b"ping")
        .tcp(1.001, s, (c, 50001), 501, 105, ACK, b"pong");
    refused(&mut b, 10.0, (c, 50002), s);
    refused(&mut b, 12.0, (c, 50003), s);
    // The old connection is still served, then closes at 20 s.
    b.tcp(20.0, (c, 50001), s, 105, 505, ACK, b"ping")
        .tcp(20.001, s, (c, 50001), 505, 109, ACK, b"pong")
        .tcp(20.002, (c, 50001), s, 109, 509, FIN | ACK, &[])
        .tcp(20.003, s, (c, 50001), 509, 110, FIN | ACK, &[])
        .tcp(20.004, (c, 50001), s, 110, 510, ACK, &[]);
    refused(&mut b, 30.0, (c, 50004), s);
    refused(&mut b, 32.0, (c, 50005), s);
    let ev = analyze_built(&b, "drained.pcap");
    let v = with_rule(&ev, "endpoint.vanished");
    assert_eq!(v.len(), 1, "{v:#?}");
    let e = &v[0]["fallacy"]["evidence"];
    assert!(
        e.get("returned_at").is_none(),
        "no new connection was answered: {e:#}"
    );
    assert_eq!(e["refused"], 4, "{e:#}");
    assert_eq!(e["failed_attempts"], 4, "{e:#}");
    assert_eq!(v[0]["event"]["severity"], 3, "still gone at the end: high");
    assert_eq!(stat(&ev, "topology.endpoints_returned"), 0);
    assert_eq!(stat(&ev, "topology.endpoints_vanished"), 1);
}

/// The addresses `10.5.0.{first}` .. `10.5.0.{first + 19}` wrapped into 1..=20: a 20-record
/// answer as a round-robin server rotates it.
fn rotated(first: u32) -> Vec<String> {
    (0..20)
        .map(|i| format!("10.5.0.{}", (first - 1 + i) % 20 + 1))
        .collect()
}

/// A name with more addresses in one answer than the analyzer follows (16): a round-robin
/// server rotates the records, so the second answer's first 16 leave out addresses it still
/// contains. A client that uses one of those past its TTL caches too long (its own lookup
/// expired: `ttl_expired`), but DNS did not remove the address: no `address_removed`.
#[test]
fn an_address_beyond_the_followed_part_of_a_big_answer_is_not_removed() {
    let (c1, c2) = ("10.1.0.1", "10.1.0.2");
    let first = rotated(1);
    let second = rotated(5);
    let a1: Vec<(&str, u32)> = first.iter().map(|a| (a.as_str(), 5)).collect();
    let a2: Vec<(&str, u32)> = second.iter().map(|a| (a.as_str(), 5)).collect();
    // The address used is in both answers, but 18th in the second.
    assert!(second[17] == "10.5.0.2" && first[1] == "10.5.0.2");
    let mut b = PcapBuilder::default();
    b.udp(
        0.0,
        DNS,
        (c1, 40001),
        &dns_a_response(1, "big.test", 0, &a1),
    )
    .udp(
        10.0,
        DNS,
        (c2, 40002),
        &dns_a_response(2, "big.test", 0, &a2),
    )
    .connection(20.0, (c1, 50001), ("10.5.0.2", 443));
    let ev = analyze_built(&b, "rotated.pcap");
    let st = with_rule(&ev, "dns.cache.stale");
    assert_eq!(st.len(), 1, "{st:#?}");
    let e = &st[0]["fallacy"]["evidence"];
    assert_eq!(e["reason"], "ttl_expired", "{e:#}");
    assert_eq!(st[0]["event"]["severity"], 1);
}

/// More clients than a finding lists (16): the message must not state the listed count as
/// the number of clients.
#[test]
fn messages_do_not_undercount_clients_beyond_the_list() {
    let mut b = PcapBuilder::default();
    // A stale address: moved from 10.6.0.1 to 10.6.0.2 at 10 s; 17 clients keep using it.
    b.udp(
        0.0,
        DNS,
        ("10.1.0.1", 40001),
        &dns_a_response(1, "moved.test", 0, &[("10.6.0.1", 5)]),
    )
    .udp(
        10.0,
        DNS,
        ("10.1.0.1", 40002),
        &dns_a_response(2, "moved.test", 0, &[("10.6.0.2", 5)]),
    );
    let clients: Vec<String> = (1..=17).map(|i| format!("10.1.1.{i}")).collect();
    for (i, c) in clients.iter().enumerate() {
        b.connection(20.0 + i as f64 * 0.01, (c, 50001), ("10.6.0.1", 443));
    }
    // ICMP port unreachable from the host itself to 17 clients' datagrams.
    for (i, c) in clients.iter().enumerate() {
        let t = 30.0 + i as f64 * 0.01;
        b.udp(t, (c, 40000), ("10.7.0.7", 9999), b"hello");
        b.frame(
            t + 0.001,
            &port_unreachable([10, 7, 0, 7], ((c, 40000), ("10.7.0.7", 9999)), b"hello"),
        );
    }
    let ev = analyze_built(&b, "many-clients.pcap");
    let st = with_rule(&ev, "dns.cache.stale");
    assert_eq!(st.len(), 1, "{st:#?}");
    assert_eq!(st[0]["fallacy"]["evidence"]["connections"], 17);
    assert_eq!(st[0]["fallacy"]["evidence"]["clients_truncated"], true);
    let m = message(st[0]);
    assert!(m.contains("more than 16 client"), "{m}");
    let ic = with_rule(&ev, "icmp.destination.unreachable");
    assert_eq!(ic.len(), 1, "{ic:#?}");
    assert_eq!(ic[0]["fallacy"]["evidence"]["packets"], 17);
    assert_eq!(ic[0]["fallacy"]["evidence"]["clients_truncated"], true);
    let m = message(ic[0]);
    assert!(m.contains("more than 16 client"), "{m}");
}

/// An address two names share: the client looked up only `a.test`, which moved away from the
/// address; another client's lookup of `b.test` gave the same address later. Once every
/// answer has expired, the client's connection is judged by its own lookup: `a.test`, which
/// DNS no longer answers with the address (`address_removed`), not `b.test`, a name the
/// client never asked for.
#[test]
fn a_shared_address_is_judged_by_the_clients_own_lookup() {
    let (c1, c2) = ("10.1.0.1", "10.1.0.2");
    let (x, y) = ("10.8.0.1", "10.8.0.2");
    let mut b = PcapBuilder::default();
    b.udp(
        0.0,
        DNS,
        (c1, 40001),
        &dns_a_response(1, "a.test", 0, &[(x, 60)]),
    )
    .udp(
        100.0,
        DNS,
        (c2, 40002),
        &dns_a_response(2, "b.test", 0, &[(x, 60)]),
    )
    .udp(
        110.0,
        DNS,
        (c2, 40003),
        &dns_a_response(3, "a.test", 0, &[(y, 60)]),
    )
    // Past every answer's TTL (60 s + 1 s grace).
    .connection(170.0, (c1, 50001), (x, 443));
    let ev = analyze_built(&b, "shared.pcap");
    let st = with_rule(&ev, "dns.cache.stale");
    assert_eq!(st.len(), 1, "{st:#?}");
    let e = &st[0]["fallacy"]["evidence"];
    assert_eq!(e["name"], "a.test", "{e:#}");
    assert_eq!(e["reason"], "address_removed", "{e:#}");
    assert_eq!(e["ttl_secs"], 60);
    assert_eq!(e["answered_at"], "2026-01-01T00:00:00.000000Z");
    assert_eq!(e["changed_at"], "2026-01-01T00:01:50.000000Z");
    assert_eq!(e["current_addresses"], serde_json::json!([y]));
}

/// NXDOMAIN says the name does not exist, for every record type: an AAAA lookup answered
/// NXDOMAIN removes the name's IPv4 addresses as well. A client still connecting to the
/// address its A lookup gave is talking to where the service was (`address_removed`).
#[test]
fn nxdomain_to_an_aaaa_lookup_removes_the_ipv4_addresses_too() {
    let (c1, c2) = ("10.1.0.1", "10.1.0.2");
    let x = "10.9.0.1";
    let mut gone = dns_a_response(2, "gone.test", 3, &[]);
    // The question's type (its last four bytes: type, class) is AAAA.
    let n = gone.len();
    gone[n - 3] = 28;
    let mut b = PcapBuilder::default();
    b.udp(
        0.0,
        DNS,
        (c1, 40001),
        &dns_a_response(1, "gone.test", 0, &[(x, 5)]),
    )
    .udp(10.0, DNS, (c2, 40002), &gone)
    .connection(20.0, (c1, 50001), (x, 443));
    let ev = analyze_built(&b, "gone.pcap");
    assert_eq!(stat(&ev, "topology.dns_answers"), 2);
    let st = with_rule(&ev, "dns.cache.stale");
    assert_eq!(st.len(), 1, "{st:#?}");
    let e = &st[0]["fallacy"]["evidence"];
    assert_eq!(e["reason"], "address_removed", "{e:#}");
    assert_eq!(e["nxdomain"], true, "{e:#}");
    assert_eq!(e["changed_at"], "2026-01-01T00:00:10.000000Z");
}

/// How many clients an `icmp.destination.unreachable` message names: their number, or more
/// than the 16 listed, each followed by "client(s)". Two hosts answer port unreachable, to 3
/// and to 17 clients.
#[test]
fn unreachable_messages_name_their_clients_by_count() {
    let mut b = PcapBuilder::default();
    let mut t = 1.0;
    for (host, octets, n) in [
        ("10.7.1.7", [10, 7, 1, 7], 3u8),
        ("10.7.2.7", [10, 7, 2, 7], 17),
    ] {
        for i in 1..=n {
            let c = format!("10.1.2.{i}");
            b.udp(t, (&c, 40000), (host, 9999), b"hello");
            b.frame(
                t + 0.001,
                &port_unreachable(octets, ((&c, 40000), (host, 9999)), b"hello"),
            );
            t += 0.01;
        }
    }
    let ev = analyze_built(&b, "unreachable-clients.pcap");
    for (host, text) in [
        (
            "10.7.1.7",
            "3 packet(s) from 3 client(s) answered with ICMP",
        ),
        (
            "10.7.2.7",
            "17 packet(s) from more than 16 client(s) answered with ICMP",
        ),
    ] {
        let f = observer_tests::finding_to(&ev, "icmp.destination.unreachable", host);
        assert!(message(f).contains(text), "{f:#}");
    }
}
