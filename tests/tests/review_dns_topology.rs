//! Review of DNS, topology, administrators and cost: each case built here from packets, the
//! expected values from the construction.

use observer_tests::tcp_flags::{ACK, FIN, RST, SYN};
use observer_tests::{PcapBuilder, analyze_built, client_hello_body, inventory, with_rule};

const C: &str = "10.0.0.1";
const EXT: &str = "203.0.113.10";

/// A TLS record of `kind` holding `body`.
fn record(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut r = vec![kind, 3, 1];
    r.extend_from_slice(&(body.len() as u16).to_be_bytes());
    r.extend_from_slice(body);
    r
}

/// A ClientHello record.
fn client_hello() -> Vec<u8> {
    let body = client_hello_body(&["http/1.1"]);
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    record(22, &hs)
}

/// Packets: an internal client opens a TLS connection to an external server (port `port`) and
/// sends its ClientHello; the server answers with a fatal handshake_failure alert. In `reset`,
/// the server has closed its socket: the client's own alert that follows is answered with a
/// RST (the kernel's answer to data for a closed socket, a consequence of the alert). Else
/// the client's alert is acknowledged and both sides close with FIN.
fn refused_handshake(b: &mut PcapBuilder, t: f64, port: u16, reset: bool) {
    let (c, s) = ((C, port), (EXT, 443));
    let ch = client_hello();
    let alert = record(21, &[2, 40]);
    let q = ch.len() as u32;
    let a = alert.len() as u32;
    b.tcp(t, c, s, 100, 0, SYN, &[])
        .tcp(t + 0.001, s, c, 500, 101, SYN | ACK, &[])
        .tcp(t + 0.002, c, s, 101, 501, ACK, &[])
        .tcp(t + 0.003, c, s, 101, 501, ACK, &ch)
        .tcp(t + 0.004, s, c, 501, 101 + q, ACK, &alert);
    // The client's close_notify-sized alert.
    let own = record(21, &[1, 0]);
    let o = own.len() as u32;
    if reset {
        b.tcp(t + 0.005, c, s, 101 + q, 501 + a, ACK, &own).tcp(
            t + 0.006,
            s,
            c,
            501 + a,
            0,
            RST,
            &[],
        );
    } else {
        b.tcp(t + 0.005, c, s, 101 + q, 501 + a, ACK, &own)
            .tcp(t + 0.006, s, c, 501 + a, 101 + q + o, ACK, &[])
            .tcp(t + 0.007, c, s, 101 + q + o, 501 + a, FIN | ACK, &[])
            .tcp(t + 0.008, s, c, 501 + a, 102 + q + o, FIN | ACK, &[])
            .tcp(t + 0.009, c, s, 102 + q + o, 502 + a, ACK, &[]);
    }
}

/// One TLS handshake the server ends with a fatal alert, after which it resets the client's
/// next segment: one failed connection with one cause, the alert. The owner's failures must
/// add up to its failed connections (1), not count the alert's RST as a second failure
/// (`reset` 0, `tls_alert` 1). Control: the same alert closed with FIN (`tls_alert` 1).
#[test]
fn a_tls_alert_and_its_reset_are_one_failure() {
    let mut b = PcapBuilder::default();
    refused_handshake(&mut b, 0.0, 40_000, true);
    let ev = analyze_built(&b, "alert-rst.pcap");
    let inv = inventory(&ev);
    assert_eq!(inv.len(), 1, "{inv:#?}");
    let o = &inv[0];
    assert_eq!(o["flows"], 1);
    assert_eq!(o["failed_flows"], 1);
    assert_eq!(o["failures"]["tls_alert"], 1, "{o:#?}");
    assert_eq!(
        o["failures"]["reset"], 0,
        "the RST answered data sent after the server's fatal alert: {o:#?}"
    );

    let mut b = PcapBuilder::default();
    refused_handshake(&mut b, 0.0, 40_000, false);
    let ev = analyze_built(&b, "alert-fin.pcap");
    let inv = inventory(&ev);
    let o = &inv[0];
    assert_eq!(o["failed_flows"], 1);
    assert_eq!(o["failures"]["tls_alert"], 1, "{o:#?}");
    assert_eq!(o["failures"]["reset"], 0);
}

/// A DNS name's labels, uncompressed.
fn labels(name: &str) -> Vec<u8> {
    let mut m = Vec::new();
    for l in name.split('.') {
        m.push(l.len() as u8);
        m.extend_from_slice(l.as_bytes());
    }
    m.push(0);
    m
}

/// A response to an A query for `name`, id `id`: `name` CNAME `target` (TTL `cname_ttl`), and
/// `target` A `addr` (TTL `a_ttl`), as a recursive resolver answers a name hosted on a CDN.
fn cname_response(
    id: u16,
    name: &str,
    target: &str,
    cname_ttl: u32,
    addr: &str,
    a_ttl: u32,
) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0]);
    m.extend_from_slice(&labels(name));
    m.extend_from_slice(&[0, 1, 0, 1]);
    let t = labels(target);
    m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1]);
    m.extend_from_slice(&cname_ttl.to_be_bytes());
    m.extend_from_slice(&(t.len() as u16).to_be_bytes());
    let target_at = m.len() as u8;
    m.extend_from_slice(&t);
    m.extend_from_slice(&[0xc0, target_at, 0, 1, 0, 1]);
    m.extend_from_slice(&a_ttl.to_be_bytes());
    let a: std::net::Ipv4Addr = addr.parse().unwrap();
    m.extend_from_slice(&[0, 4]);
    m.extend_from_slice(&a.octets());
    m
}

/// A name that is a CNAME to a CDN host: www.shop.test CNAME old.cdn.test (TTL 5 s), whose
/// A record 10.9.0.10 has a TTL of 3600 s. A client caches the answer for the name for the
/// chain's shortest TTL, 5 s: after that it must ask again for www.shop.test. At 3 s another
/// client learns the name moved: www.shop.test CNAME new.cdn.test, A 10.9.0.20. The first
/// client connects to 10.9.0.10 at 2 s (within 5 s: fine) and at 20 s (past 5 s + 1 s grace,
/// and the name no longer gives that address). Right: one `dns.cache.stale` finding,
/// `address_removed`, name www.shop.test, TTL 5, current address 10.9.0.20, 1 connection.
#[test]
fn a_cname_chain_is_cached_for_its_shortest_ttl() {
    let r = ("10.0.0.53", 53);
    let (c1, c2) = ("10.1.0.1", "10.1.0.2");
    let mut b = PcapBuilder::default();
    b.udp(
        0.0,
        r,
        (c1, 40_001),
        &cname_response(1, "www.shop.test", "old.cdn.test", 5, "10.9.0.10", 3600),
    )
    .connection(2.0, (c1, 50_001), ("10.9.0.10", 443))
    .udp(
        3.0,
        r,
        (c2, 40_002),
        &cname_response(2, "www.shop.test", "new.cdn.test", 5, "10.9.0.20", 3600),
    )
    .connection(20.0, (c1, 50_002), ("10.9.0.10", 443));
    let ev = analyze_built(&b, "cname-ttl.pcap");
    let st = with_rule(&ev, "dns.cache.stale");
    assert_eq!(
        st.len(),
        1,
        "the connection at 20 s used an answer expired at 5 s: {st:#?}"
    );
    let e = &st[0]["fallacy"]["evidence"];
    assert_eq!(e["reason"], "address_removed");
    assert_eq!(e["name"], "www.shop.test");
    assert_eq!(e["address"], "10.9.0.10");
    assert_eq!(e["ttl_secs"], 5);
    assert_eq!(e["current_addresses"], serde_json::json!(["10.9.0.20"]));
    assert_eq!(
        e["connections"], 1,
        "the connection at 2 s was within the TTL"
    );
}
