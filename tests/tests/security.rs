//! Fallacies 4 and 8 on captures of real programs (fixtures/make-security-captures.sh):
//! expected values from construction and tshark, in fixtures/security.expected.txt.

use observer_tests::{analyze, analyze_raw, findings};
use serde_json::Value;

fn by_rule<'a>(f: &[&'a Value], rule: &str) -> Vec<&'a Value> {
    f.iter()
        .filter(|f| f["rule"]["name"] == rule)
        .copied()
        .collect()
}

fn creds(f: &Value) -> Vec<String> {
    f["fallacy"]["evidence"]["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
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
    assert_eq!(creds(http), ["http-basic", "http-bearer", "http-cookie"]);
    assert_eq!(
        http["event"]["severity"], 4,
        "a password (Basic) makes it critical"
    );
    assert_eq!(creds(server(6379)), ["redis-auth"]);
    assert_eq!(server(6379)["fallacy"]["evidence"]["connections"], 2);
    assert_eq!(creds(server(5432)), ["postgresql-password"]);
    assert_eq!(creds(server(21)), ["ftp-pass"]);
    assert_eq!(creds(server(25)), ["smtp-auth"]);
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
