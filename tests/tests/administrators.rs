//! There is one administrator (fallacy 6) on a capture of real programs
//! (fixtures/make-dependencies-capture.sh): an internal client resolving and calling four
//! external parties — an HTTP API answering some requests with 503, a TLS CDN with one
//! handshake ended by the server's fatal alert, a name whose port refuses, and an unnamed
//! address whose traffic is dropped. Expected values from construction and tshark
//! (fixtures/dependencies.expected.txt).

use observer_tests::{
    ScratchFile, analyze, analyze_raw, findings, inventory, ndjson, observer, stat,
};
use serde_json::Value;
use std::collections::HashMap;

const CAPTURE: &str = "fixtures/dependencies.pcap";

fn expected() -> HashMap<String, String> {
    observer_tests::expected_sections("dependencies.expected.txt")
        .remove("dependencies.pcap")
        .expect("[dependencies.pcap]")
}

fn num(e: &HashMap<String, String>, k: &str) -> u64 {
    e[k].parse()
        .unwrap_or_else(|_| panic!("{k}={} is a number", e[k]))
}

fn owner<'a>(inv: &'a [Value], name: &str) -> &'a Value {
    inv.iter()
        .find(|o| o["owner"] == name)
        .unwrap_or_else(|| panic!("owner {name} in {inv:#?}"))
}

/// (address, owner by the documented rule, how it was named, failure field, failures).
fn parties(
    e: &HashMap<String, String>,
) -> Vec<(&'static str, &'static str, &'static str, &'static str, u64)> {
    vec![
        // HTTP Host api.payments.example: registrable domain = the last two labels.
        (
            "198.51.100.10",
            "payments.example",
            "host",
            "http_5xx",
            num(e, "198_51_100_10_http_503"),
        ),
        // TLS SNI cdn.assets.example.net.
        (
            "203.0.113.20",
            "example.net",
            "sni",
            "tls_alert",
            num(e, "203_0_113_20_tls_alerts"),
        ),
        // Only a DNS answer names login.idp.example.org.
        (
            "203.0.113.30",
            "example.org",
            "dns",
            "refused",
            num(e, "203_0_113_30_rst_refused_streams"),
        ),
        // No name at all.
        (
            "192.0.2.40",
            "192.0.2.40",
            "address",
            "timed_out",
            num(e, "192_0_2_40_unanswered_streams"),
        ),
    ]
}

#[test]
fn every_external_party_is_inventoried_with_its_traffic_and_failures() {
    let e = expected();
    let ev = analyze(CAPTURE);
    let inv = inventory(&ev);
    assert_eq!(
        inv.len(),
        4,
        "four external parties, the internal DNS server is not one: {inv:#?}"
    );
    let failing = findings(&ev)
        .into_iter()
        .filter(|f| f["rule"]["name"] == "dependency.failing")
        .collect::<Vec<_>>();
    assert_eq!(failing.len(), 4, "{failing:#?}");
    for (addr, name, source, failure, count) in parties(&e) {
        let k = addr.replace('.', "_");
        let o = owner(&inv, name);
        assert_eq!(o["owner_source"], source, "{name}");
        assert_eq!(o["addresses"], serde_json::json!([addr]));
        assert_eq!(o["clients"], serde_json::json!(["10.96.1.1"]));
        assert_eq!(o["flows"], num(&e, &format!("{k}_tcp_streams")), "{name}");
        assert_eq!(
            o["bytes_sent"],
            num(&e, &format!("{k}_ip_len_c2s")),
            "{name}"
        );
        assert_eq!(
            o["bytes_received"],
            num(&e, &format!("{k}_ip_len_s2c")),
            "{name}"
        );
        let requests = e
            .get(&format!("{k}_http_requests"))
            .map_or(0, |v| v.parse().unwrap());
        assert_eq!(o["requests"], requests, "{name}");
        let f = &o["failures"];
        assert_eq!(f[failure], count, "{name}: {f}");
        let total: u64 = f
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(total, count, "{name}: no other failure: {f}");
        // The finding says the same.
        let fd = failing
            .iter()
            .find(|x| x["fallacy"]["evidence"]["owner"] == name)
            .unwrap_or_else(|| panic!("dependency.failing for {name}"));
        assert_eq!(fd["fallacy"]["id"], 6);
        assert_eq!(fd["fallacy"]["evidence"]["failures"][failure], count);
        assert_eq!(fd["destination"]["ip"], addr);
    }
    // Severity by the failing share: 2 of 6 requests got 5xx (33 %) → medium; every
    // connection refused or dropped → high.
    let sev = |name: &str| {
        failing
            .iter()
            .find(|x| x["fallacy"]["evidence"]["owner"] == name)
            .unwrap()["event"]["severity"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(sev("payments.example"), 2);
    // The message leads with what failed: every connection to payments succeeded, 2 of its 6
    // requests got 5xx (the fixture's script), so there is no connection clause.
    let msg = |name: &str| {
        failing
            .iter()
            .find(|x| x["fallacy"]["evidence"]["owner"] == name)
            .unwrap()["message"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        msg("payments.example"),
        "external dependency payments.example (api.payments.example) is failing: \
         2 of 6 request(s) got HTTP 5xx"
    );
    assert_eq!(sev("example.org"), 3);
    assert_eq!(sev("192.0.2.40"), 3);
    assert_eq!(stat(&ev, "dependencies.owners"), 4);
    assert_eq!(stat(&ev, "dependencies.failing_owners"), 4);
    assert_eq!(
        stat(&ev, "dependencies.external_flows"),
        num(&e, "external_tcp_streams")
    );
}

#[test]
fn configured_owners_win_over_names() {
    let cfg = ScratchFile::new(
        "owners.toml",
        b"[[owner]]\nname = \"Payments Inc\"\nsuffixes = [\"payments.example\"]\n\n[[owner]]\nname = \"Legacy DB hosting\"\ncidrs = [\"192.0.2.0/24\"]\n",
    );
    let ev = ndjson(&analyze_raw(&["--config", cfg.to_str().unwrap(), CAPTURE]));
    let inv = inventory(&ev);
    let p = owner(&inv, "Payments Inc");
    assert_eq!(p["owner_source"], "config");
    assert_eq!(p["names"], serde_json::json!(["api.payments.example"]));
    let l = owner(&inv, "Legacy DB hosting");
    assert_eq!(l["addresses"], serde_json::json!(["192.0.2.40"]));
    assert_eq!(owner(&inv, "example.net")["owner_source"], "sni");
    assert_eq!(inv.len(), 4);

    let bad = ScratchFile::new("owners.toml", b"[[owner]]\nname = \"Nobody\"\n");
    let out = observer(&["analyze", "-q", "--config", bad.to_str().unwrap(), CAPTURE]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 1: `owner[0]`") && err.contains("cidrs"),
        "{err}"
    );
}

#[test]
fn the_inventory_is_written_as_a_graph_on_request() {
    let e = expected();
    for (ext, edge, head) in [
        ("dot", " -> ", "digraph dependencies {"),
        ("mmd", " --> ", "flowchart LR"),
    ] {
        let out_file = ScratchFile::new(&format!("deps.{ext}"), b"");
        let ev = ndjson(&analyze_raw(&[
            "--dependency-graph",
            out_file.to_str().unwrap(),
            CAPTURE,
        ]));
        assert!(!inventory(&ev).is_empty());
        let g = std::fs::read_to_string(&*out_file).unwrap();
        assert!(g.starts_with(head), "{g}");
        assert_eq!(g.matches(edge).count(), 4, "one client, four owners: {g}");
        for (_, name, _, _, _) in parties(&e) {
            assert!(g.contains(name), "{name} in {g}");
        }
    }
    let out = observer(&["analyze", "-q", "--dependency-graph", "deps.txt", CAPTURE]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("deps.txt") && err.contains(".dot"), "{err}");
}
