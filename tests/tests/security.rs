//! Fallacies 4 and 8 on captures of real programs (fixtures/make-security-captures.sh):
//! expected values from construction and tshark, in fixtures/security.expected.txt.

use observer_tests::{analyze, analyze_raw, credential_kinds, findings};
use serde_json::Value;

fn by_rule<'a>(f: &[&'a Value], rule: &str) -> Vec<&'a Value> {
    f.iter()
        .filter(|f| f["rule"]["name"] == rule)
        .copied()
        .collect()
}

#[test]
fn every_cleartext_credential_is_named_by_kind() {
    let ev = analyze("fixtures/security-plaintext.pcap");
    let f = findings(&ev);
    let plain = by_rule(&f, "plaintext.internal");
    let server = |port: u64| {
        plain
            .iter()
            .find(|p| p["destination"]["port"] == port)
            .unwrap_or_else(|| panic!("no plaintext finding for port {port}: {plain:#?}"))
    };
    // Streams 0–3 (HTTP): Basic, Bearer, Cookie, and one without credentials.
    let http = server(8080);
    assert_eq!(http["fallacy"]["evidence"]["connections"], 4);
    assert_eq!(
        credential_kinds(http),
        ["http-basic", "http-bearer", "http-cookie"]
    );
    assert_eq!(
        http["event"]["severity"], 4,
        "a password (Basic) makes it critical"
    );
    assert_eq!(credential_kinds(server(6379)), ["redis-auth"]);
    assert_eq!(server(6379)["fallacy"]["evidence"]["connections"], 2);
    assert_eq!(credential_kinds(server(5432)), ["postgresql-password"]);
    assert_eq!(credential_kinds(server(21)), ["ftp-pass"]);
    assert_eq!(credential_kinds(server(25)), ["smtp-auth"]);
    for p in &plain {
        assert_eq!(p["fallacy"]["id"], 4);
    }
    // Stream 8: the SMTP server offered STARTTLS, the client did not use it.
    let st = by_rule(&f, "plaintext.starttls_unused");
    assert_eq!(st.len(), 1);
    assert_eq!(st[0]["destination"]["port"], 25);
}

#[test]
fn no_secret_reaches_the_output() {
    // The secrets the capture script sent, and the base64 forms that were on the wire.
    let secrets = [
        "Tr0ub4dor-basic-SECRET",
        "YWxpY2U6VHIwdWI0ZG9yLWJhc2ljLVNFQ1JFVA",
        "eyJBEARER.SECRET.TOKEN",
        "COOKIE-SECRET-42",
        "redis-SECRET-pw",
        "pg-SECRET-pw",
        "ftp-SECRET-pw",
        "smtp-SECRET-pw",
        "AG1haWxlcgBzbXRwLVNFQ1JFVC1wdw",
        "SECRET",
    ];
    for name in ["security-plaintext.pcap", "security-tls.pcap"] {
        let text =
            String::from_utf8_lossy(&analyze_raw(&[&format!("fixtures/{name}")])).into_owned();
        for s in secrets {
            assert!(!text.contains(s), "{name}: output contains {s}");
        }
    }
}

#[test]
fn tls_version_and_alpn_disagreements_are_told_apart() {
    let ev = analyze("fixtures/security-tls.pcap");
    let f = findings(&ev);
    let failed = by_rule(&f, "tls.handshake.failed");
    let cause = |port: u64| {
        failed
            .iter()
            .find(|x| x["destination"]["port"] == port)
            .map(|x| {
                x["fallacy"]["evidence"]["detail"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
    };
    // (a) TLS 1.2-only client vs TLS 1.3-only server: protocol_version alert from the server.
    assert_eq!(cause(4433).as_deref(), Some("protocol_version"));
    // (b) ALPN h2 vs a server that only speaks http/1.1: no_application_protocol.
    assert_eq!(cause(4434).as_deref(), Some("no_application_protocol"));
    for x in &failed {
        assert_eq!(x["fallacy"]["id"], 8);
        assert_eq!(x["fallacy"]["evidence"]["alert_sent_by"][0], "server");
    }
    // (d) negotiated TLS 1.0.
    let old = by_rule(&f, "tls.version.obsolete");
    assert_eq!(old.len(), 1);
    assert_eq!(old[0]["destination"]["port"], 4436);
    assert_eq!(old[0]["fallacy"]["evidence"]["detail"], "TLS1.0");
    // (c) TLS 1.2 and (e) TLS 1.3 succeeded and are not findings; TLS is never "plaintext".
    assert!(
        f.iter()
            .all(|x| x["destination"]["port"] != 4435 && x["destination"]["port"] != 4437)
    );
    assert!(by_rule(&f, "plaintext.internal").is_empty());
    let inv = ev
        .iter()
        .find(|e| e["event"]["action"] == "inventory")
        .expect("inventory event");
    assert_eq!(
        inv["inventory"]["tls_negotiated"],
        serde_json::json!(["TLS1.0", "TLS1.2", "TLS1.3"])
    );
}

#[test]
fn a_finding_says_when_its_client_list_is_cut_short() {
    // `n` clients, each from its own address, send one HTTP request to the same server on a
    // port HTTP does not usually use: one `protocol.unexpected_port` finding, whose evidence
    // lists at most 16 clients and says when there were more.
    use observer_tests::PcapBuilder;
    use observer_tests::tcp_flags::{ACK, FIN, SYN};
    for (n, truncated) in [(16u8, false), (17, true)] {
        let s = ("10.0.0.2", 5555);
        let mut b = PcapBuilder::default();
        for i in 0..n {
            let ca = format!("10.0.1.{}", i + 1);
            let c = (ca.as_str(), 40000);
            let t = f64::from(i);
            let req = b"GET / HTTP/1.1\r\nHost: svc\r\n\r\n";
            let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
            let (rq, rs) = (req.len() as u32, resp.len() as u32);
            b.tcp(t, c, s, 100, 0, SYN, &[])
                .tcp(t + 0.001, s, c, 500, 101, SYN | ACK, &[])
                .tcp(t + 0.002, c, s, 101, 501, ACK, req)
                .tcp(t + 0.003, s, c, 501, 101 + rq, ACK, resp)
                .tcp(t + 0.004, c, s, 101 + rq, 501 + rs, FIN | ACK, &[])
                .tcp(t + 0.005, s, c, 501 + rs, 102 + rq, FIN | ACK, &[])
                .tcp(t + 0.006, c, s, 102 + rq, 502 + rs, ACK, &[]);
        }
        let ev = observer_tests::analyze_built(&b, "plaintext-clients.pcap");
        let f: Vec<&Value> = ev.iter().collect();
        let found = by_rule(&f, "protocol.unexpected_port");
        assert_eq!(found.len(), 1, "{found:#?}");
        let e = &found[0]["fallacy"]["evidence"];
        assert_eq!(e["connections"], u64::from(n), "{e}");
        assert_eq!(e["clients"].as_array().map(Vec::len), Some(16), "{e}");
        assert_eq!(e["clients_truncated"], truncated, "{e}");
    }
}
