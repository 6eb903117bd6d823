//! Topology doesn't change (fallacy 5) on captures of real programs
//! (fixtures/make-topology-captures.sh): an HTTP server whose address is removed mid-run, a
//! closed port, an nft `reject with icmp`, a closed UDP port, and a DNS record that changes
//! while one client keeps the old address. Expected values from construction, the kernel's
//! counters and tshark (fixtures/topology.expected.txt).

use observer_tests::{ScratchFile, analyze, analyze_raw, findings, ndjson, stat, tshark_fields};
use serde_json::Value;
use std::collections::HashMap;

fn expected(section: &str) -> HashMap<String, String> {
    observer_tests::expected_sections("topology.expected.txt")
        .remove(section)
        .unwrap_or_else(|| panic!("section [{section}] in topology.expected.txt"))
}

fn num(e: &HashMap<String, String>, k: &str) -> u64 {
    e[k].parse()
        .unwrap_or_else(|_| panic!("{k}={} is a number", e[k]))
}

/// `1795861054.845110` (tshark's frame.time_epoch) as observer's RFC 3339 form.
fn rfc3339(epoch: &str) -> String {
    let (s, frac) = epoch.split_once('.').unwrap_or((epoch, "0"));
    let ns: i64 = s.parse::<i64>().unwrap() * 1_000_000_000
        + format!("{frac:0<9}")[..9].parse::<i64>().unwrap();
    observer::time::Timestamp(ns).rfc3339_micros()
}

fn by_rule<'a>(ev: &'a [Value], rule: &str) -> Vec<&'a Value> {
    findings(ev)
        .into_iter()
        .filter(|f| f["rule"]["name"] == rule)
        .collect()
}

#[test]
fn vanished_endpoint_closed_port_and_icmp_rejects() {
    let e = expected("topology-endpoints.pcap");
    let ev = analyze("fixtures/topology-endpoints.pcap");
    assert_eq!(stat(&ev, "frames.total"), num(&e, "packets"));

    // Part 1: five good exchanges with 10.97.1.2:8080, then the address is removed and three
    // attempts (streams 5–7) get nothing back at all.
    let v = by_rule(&ev, "endpoint.vanished");
    assert_eq!(v.len(), 1, "{v:#?}");
    let v = v[0];
    assert_eq!(v["destination"]["ip"], "10.97.1.2");
    assert_eq!(v["destination"]["port"], 8080);
    assert_eq!(v["fallacy"]["id"], 5);
    assert_eq!(v["event"]["severity"], 3, "still gone at the end: high");
    let ve = &v["fallacy"]["evidence"];
    assert_eq!(ve["vanished_at"], rfc3339(&e["first_unanswered_syn_time"]));
    assert_eq!(ve["last_good_at"], rfc3339(&e["last_server_8080_time"]));
    assert_eq!(ve["last_good_client"], "10.97.1.1");
    let no_reply = e["streams_no_reply_at_all"].split(',').count() as u64;
    assert_eq!(ve["unanswered"], no_reply);
    assert_eq!(ve["failed_attempts"], no_reply);
    assert_eq!(ve["refused"], 0);
    assert_eq!(ve["icmp_unreachable"], 0);
    assert!(ve.get("returned_at").is_none());

    // The same three attempts as TCP health sees them: 6 SYNs (each retried once).
    let un = by_rule(&ev, "tcp.handshake.unanswered");
    assert_eq!(
        un.len(),
        1,
        "only 8080 is unanswered (8443 got ICMP): {un:#?}"
    );
    assert_eq!(un[0]["destination"]["port"], 8080);
    assert_eq!(un[0]["fallacy"]["evidence"]["connections"], no_reply);
    assert_eq!(
        un[0]["fallacy"]["evidence"]["syn_packets"],
        num(&e, "part1b_syn")
    );

    // Part 2: the closed port answers each SYN with RST. It never served, so it is refused,
    // not vanished.
    let rf = by_rule(&ev, "tcp.handshake.refused");
    assert_eq!(rf.len(), 1, "{rf:#?}");
    assert_eq!(rf[0]["destination"]["ip"], "10.97.1.3");
    assert_eq!(rf[0]["destination"]["port"], 9);
    assert_eq!(
        rf[0]["fallacy"]["evidence"]["connections"],
        num(&e, "part2_rst")
    );

    // Part 3: ICMP host unreachable (nft reject) for TCP 8443, port unreachable for UDP 5353,
    // both sent by the destination itself.
    let icmp = by_rule(&ev, "icmp.destination.unreachable");
    assert_eq!(icmp.len(), 2, "{icmp:#?}");
    for (f, transport, port, code, key) in [
        (icmp[0], "tcp", 8443, 1, "icmp_type3_code1"),
        (icmp[1], "udp", 5353, 3, "icmp_type3_code3"),
    ] {
        let fe = &f["fallacy"]["evidence"];
        assert_eq!(f["destination"]["ip"], "10.97.1.3");
        assert_eq!(f["destination"]["port"], port);
        assert_eq!(f["network"]["transport"], transport);
        assert_eq!(fe["icmp_type"], 3);
        assert_eq!(fe["icmp_code"], code);
        assert_eq!(fe["packets"], num(&e, key));
        assert_eq!(fe["reported_by"][0], e[&format!("{key}_src")]);
        assert_eq!(fe["reported_by_destination"], true);
        let times: Vec<&str> = e[&format!("{key}_times")].split(',').collect();
        assert_eq!(fe["first_seen"], rfc3339(times[0]));
        assert_eq!(fe["last_seen"], rfc3339(times[times.len() - 1]));
    }
    assert_eq!(
        stat(&ev, "icmp.unreachable"),
        num(&e, "icmp_type3_code1") + num(&e, "icmp_type3_code3")
    );
    // Every stream with a SYN and no SYN/ACK is accounted for exactly once.
    assert_eq!(
        stat(&ev, "tcp.handshakes.refused")
            + stat(&ev, "tcp.handshakes.unanswered")
            + stat(&ev, "tcp.handshakes.icmp_unreachable")
            + stat(&ev, "tcp.handshakes.synack_not_captured"),
        num(&e, "streams_syn_without_synack")
    );
    assert_eq!(
        stat(&ev, "tcp.handshakes.icmp_unreachable"),
        num(&e, "part3_syn")
    );
}

#[test]
fn a_client_keeping_an_address_dns_moved_away_from_is_a_stale_cache() {
    let e = expected("topology-dns.pcap");
    // Answers: (frame, time, client, address, ttl).
    let a1: Vec<&str> = e["dns_answer_1"].split(',').collect();
    let a2: Vec<&str> = e["dns_answer_2"].split(',').collect();
    assert_eq!(a1[3], "10.98.1.10");
    assert_eq!(a2[3], "10.98.1.20");
    let ttl: f64 = a1[4].parse().unwrap();
    let expiry: f64 = a1[1].parse::<f64>().unwrap() + ttl;
    assert_eq!(expiry, e["a_ttl_expiry_time"].parse::<f64>().unwrap());

    // Client A's SYNs to the old address, from tshark.
    let syn_times: Vec<String> = tshark_fields(
        "fixtures/topology-dns.pcap",
        &["frame.time_epoch"],
        "tcp.flags.syn==1 && tcp.flags.ack==0 && ip.src==10.98.2.1 && ip.dst==10.98.1.10",
    )
    .lines()
    .map(str::to_string)
    .collect();
    assert_eq!(syn_times.len() as u64, num(&e, "a_to_old_connections"));

    for (grace, config) in [
        (1.0, None),
        (0.0, Some("[topology]\ndns_ttl_grace_secs = 0\n")),
    ] {
        let cfg = config.map(|c| ScratchFile::new("topology.toml", c.as_bytes()));
        let ev = match &cfg {
            Some(c) => ndjson(&analyze_raw(&[
                "--config",
                c.to_str().unwrap(),
                "fixtures/topology-dns.pcap",
            ])),
            None => analyze("fixtures/topology-dns.pcap"),
        };
        let late: Vec<&String> = syn_times
            .iter()
            .filter(|t| t.parse::<f64>().unwrap() > expiry + grace)
            .collect();
        if grace == 0.0 {
            assert_eq!(late.len() as u64, num(&e, "a_to_old_after_ttl_expiry"));
        }
        let st = by_rule(&ev, "dns.cache.stale");
        assert_eq!(st.len(), 1, "grace {grace}: {st:#?}");
        let s = st[0];
        let se = &s["fallacy"]["evidence"];
        assert_eq!(s["event"]["severity"], 3);
        assert_eq!(se["reason"], "address_removed");
        assert_eq!(se["name"], "api.svc.test");
        assert_eq!(se["address"], "10.98.1.10");
        assert_eq!(se["current_addresses"], serde_json::json!(["10.98.1.20"]));
        assert_eq!(se["ttl_secs"], 2);
        assert_eq!(se["answered_at"], rfc3339(a1[1]));
        assert_eq!(se["changed_at"], rfc3339(a2[1]));
        assert_eq!(
            se["clients"],
            serde_json::json!(["10.98.2.1"]),
            "B is not stale"
        );
        assert_eq!(se["connections"], late.len() as u64, "grace {grace}");
        assert_eq!(se["first_seen"], rfc3339(late[0]));
        assert_eq!(se["last_seen"], rfc3339(late[late.len() - 1]));
        assert_eq!(
            stat(&ev, "topology.stale_dns_connections"),
            late.len() as u64
        );
        assert_eq!(stat(&ev, "topology.dns_answers"), num(&e, "dns_responses"));
        assert!(by_rule(&ev, "endpoint.vanished").is_empty());
    }
}
