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

/// Seconds after the builder's epoch as observer's RFC 3339 form.
fn at(t: f64) -> String {
    let ns = observer_tests::PCAP_BUILDER_EPOCH as i64 * 1_000_000_000
        + (t * 1e6).round() as i64 * 1_000;
    observer::time::Timestamp(ns).rfc3339_micros()
}

/// Constructed: an endpoint serves, fails two attempts of three SYNs each, then answers again.
#[test]
fn an_endpoint_that_comes_back_is_reported_with_its_outage() {
    use observer_tests::tcp_flags::SYN;
    let (c, s) = ("10.1.0.1", ("10.2.0.2", 80));
    let mut p = observer_tests::PcapBuilder::default();
    p.connection(0.0, (c, 50001), s);
    for (port, t) in [(50002, 10.0), (50003, 14.0)] {
        for d in [0.0, 1.0, 3.0] {
            p.tcp(t + d, (c, port), s, 7, 0, SYN, &[]);
        }
    }
    p.connection(30.0, (c, 50004), s);
    let cap = ScratchFile::new("returns.pcap", &p.finish());
    let ev = analyze(cap.to_str().unwrap());
    let v = by_rule(&ev, "endpoint.vanished");
    assert_eq!(v.len(), 1, "{v:#?}");
    let ve = &v[0]["fallacy"]["evidence"];
    assert_eq!(v[0]["event"]["severity"], 2, "came back: medium");
    assert_eq!(ve["vanished_at"], at(10.0));
    // The server's last packet of the first connection: its FIN/ACK at 0.004.
    assert_eq!(ve["last_good_at"], at(0.004));
    assert_eq!(ve["unanswered"], 2);
    assert_eq!(
        ve["returned_at"],
        at(30.001),
        "the SYN/ACK of the last connection"
    );
    assert!((ve["outage_secs"].as_f64().unwrap() - 20.001).abs() < 1e-9);
    assert_eq!(stat(&ev, "topology.endpoints_returned"), 1);

    // Fewer failures than the threshold: a blip, not a finding.
    let cfg = ScratchFile::new("topology.toml", b"[topology]\nmin_failed_attempts = 3\n");
    let ev = ndjson(&analyze_raw(&[
        "--config",
        cfg.to_str().unwrap(),
        cap.to_str().unwrap(),
    ]));
    assert!(by_rule(&ev, "endpoint.vanished").is_empty());
    assert_eq!(stat(&ev, "topology.outages_below_min_attempts"), 1);
}

/// Constructed: a name that stops existing (NXDOMAIN) and an answer used past its TTL by the
/// client that received it.
#[test]
fn nxdomain_and_ttl_expiry_make_stale_cache_findings() {
    use observer_tests::dns_a_response as resp;
    let (dns, c1, c2) = (("10.0.0.53", 53), "10.1.0.1", "10.1.0.2");
    let mut p = observer_tests::PcapBuilder::default();
    p.udp(
        0.0,
        dns,
        (c1, 40001),
        &resp(1, "a.test", 0, &[("10.3.0.3", 5)]),
    )
    .udp(
        0.1,
        dns,
        (c1, 40002),
        &resp(2, "b.test", 0, &[("10.4.0.4", 5)]),
    )
    // Within the TTL: fine.
    .connection(2.0, (c1, 50001), ("10.3.0.3", 443))
    // Another client learns that b.test is gone.
    .udp(3.0, dns, (c2, 40003), &resp(3, "b.test", 3, &[]))
    // Past both TTLs (5 s + 1 s grace): a.test never re-resolved; b.test no longer exists.
    .connection(10.0, (c1, 50002), ("10.3.0.3", 443))
    .connection(10.5, (c1, 50003), ("10.4.0.4", 443));
    let cap = ScratchFile::new("stale.pcap", &p.finish());
    let ev = analyze(cap.to_str().unwrap());
    let st = by_rule(&ev, "dns.cache.stale");
    assert_eq!(st.len(), 2, "{st:#?}");
    let a = st
        .iter()
        .find(|f| f["fallacy"]["evidence"]["name"] == "a.test")
        .unwrap();
    let ae = &a["fallacy"]["evidence"];
    assert_eq!(ae["reason"], "ttl_expired");
    assert_eq!(a["event"]["severity"], 1);
    assert_eq!(
        ae["connections"], 1,
        "the connection at 2 s was within the TTL"
    );
    assert_eq!(ae["first_seen"], at(10.0));
    assert_eq!(ae["expired_at"], at(5.0));
    let b = st
        .iter()
        .find(|f| f["fallacy"]["evidence"]["name"] == "b.test")
        .unwrap();
    let be = &b["fallacy"]["evidence"];
    assert_eq!(be["reason"], "address_removed");
    assert_eq!(be["nxdomain"], true);
    assert_eq!(be["changed_at"], at(3.0));
    assert_eq!(be["current_addresses"], serde_json::json!([]));
    assert_eq!(b["event"]["severity"], 3);
    assert_eq!(stat(&ev, "topology.dns_answers"), 3);
}
