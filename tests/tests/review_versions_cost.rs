//! Review of the homogeneity analyzer (fallacy 8), the TLS hello parsing it reads, and the
//! transport cost analyzer (fallacy 7): what a client offered and a server chose, and the bytes
//! priced between zones, built record by record and packet by packet, every expected value
//! following from the construction (each test failed before its fix).

use observer_tests::{PcapBuilder, analyze_built, with_rule};
use observer_tests::{tls_handshake_record, tls_record};
use serde_json::{Value, json};

const C: &str = "10.0.0.1";
const S: &str = "10.0.0.2";

/// One extension: type, length, data.
fn ext(ty: u16, data: &[u8]) -> Vec<u8> {
    let mut e = ty.to_be_bytes().to_vec();
    e.extend_from_slice(&(data.len() as u16).to_be_bytes());
    e.extend_from_slice(data);
    e
}

/// A ClientHello record: legacy_version 0x0303 (as every TLS 1.3 client sends it), the
/// `supported_versions` extension listing `versions` when there are any, and ALPN listing
/// `alpn` (raw protocol identifiers) when there are any.
fn client_hello(versions: &[u16], alpn: &[&[u8]]) -> Vec<u8> {
    let mut exts = Vec::new();
    if !alpn.is_empty() {
        let mut list = Vec::new();
        for a in alpn {
            list.push(a.len() as u8);
            list.extend_from_slice(a);
        }
        let mut data = (list.len() as u16).to_be_bytes().to_vec();
        data.extend_from_slice(&list);
        exts.extend(ext(16, &data));
    }
    if !versions.is_empty() {
        let mut data = vec![(2 * versions.len()) as u8];
        for v in versions {
            data.extend_from_slice(&v.to_be_bytes());
        }
        exts.extend(ext(43, &data));
    }
    let mut ch = vec![3, 3];
    ch.extend_from_slice(&[7; 32]);
    // No session id, two cipher suites (TLS_AES_128_GCM_SHA256, ECDHE-RSA-AES128-GCM-SHA256),
    // the null compression method.
    ch.extend_from_slice(&[0, 0, 4, 0x13, 0x01, 0xc0, 0x2f, 1, 0]);
    ch.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    ch.extend_from_slice(&exts);
    tls_handshake_record(1, &ch)
}

/// A ServerHello record: legacy_version 0x0303, and `supported_versions` selecting `selected`
/// when given (TLS 1.3); no ALPN.
fn server_hello(selected: Option<u16>) -> Vec<u8> {
    let mut sh = vec![3, 3];
    sh.extend_from_slice(&[9; 32]);
    sh.extend_from_slice(&[0, 0x13, 0x01, 0]);
    let exts = selected
        .map(|v| ext(43, &v.to_be_bytes()))
        .unwrap_or_default();
    sh.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    sh.extend_from_slice(&exts);
    tls_handshake_record(2, &sh)
}

/// A fatal alert record with `description`.
fn fatal(description: u8) -> Vec<u8> {
    tls_record(21, &[2, description])
}

/// An application-data record of `n` opaque bytes.
fn app_data(n: usize) -> Vec<u8> {
    tls_record(23, &vec![0x5a; n])
}

/// The run's inventory event's `inventory` object.
fn inventory(ev: &[Value]) -> &Value {
    let inv: Vec<&Value> = ev
        .iter()
        .filter(|e| e["event"]["action"] == "inventory")
        .collect();
    assert_eq!(inv.len(), 1, "one inventory event");
    &inv[0]["inventory"]
}

/// Defect: a TLS 1.3 client puts 0x0303 (TLS 1.2) in the ClientHello's `legacy_version` for
/// middleboxes' sake; when it sends `supported_versions`, servers must ignore that field
/// (RFC 8446 §4.2.1): the list is the whole offer. It was counted as an offer of TLS 1.2, so a
/// TLS 1.3-only client refused with `protocol_version` by a TLS 1.2-only server read "the
/// client offered TLS1.2, TLS1.3": the one version the server speaks looked offered, and the
/// failure made no sense.
///
/// Packets: a client whose ClientHello offers TLS 1.3 only (`supported_versions` = [0x0304],
/// legacy_version 0x0303) to 10.0.0.2:443, answered by a fatal `protocol_version` alert.
/// Right: `tls.handshake.failed` with cause `protocol_version` whose `client_offered` is
/// ["TLS1.3"] only; the inventory's `tls_offered` is ["TLS1.3"].
#[test]
fn a_tls_1_3_only_client_offered_no_tls_1_2() {
    let mut b = PcapBuilder::default();
    let ch = client_hello(&[0x0304], &[]);
    b.session(
        0.0,
        (C, 40000),
        (S, 443),
        &[(true, &ch), (false, &fatal(70))],
    );
    let ev = analyze_built(&b, "tls13-only.pcap");
    let f = with_rule(&ev, "tls.handshake.failed");
    assert_eq!(f.len(), 1, "{f:#?}");
    let e = &f[0]["fallacy"]["evidence"];
    assert_eq!(e["detail"], "protocol_version", "{e}");
    assert_eq!(e["client_offered"], json!(["TLS1.3"]), "{e}");
    assert_eq!(e["client_max_version"], json!(["TLS1.3"]), "{e}");
    assert_eq!(inventory(&ev)["tls_offered"], json!(["TLS1.3"]));
}

/// Defect: clients put GREASE values (RFC 8701: the two-byte identifiers 0x0A 0x0A, 0x1A 0x1A
/// … 0xFA 0xFA) among their ALPN protocols so that servers keep tolerating unknown ones;
/// `supported_versions` GREASE was left out, ALPN GREASE was kept: the inventory listed a
/// protocol of two control characters and `tls.alpn.not_agreed` named it among what the
/// client offered.
///
/// Packets: a TLS 1.2 ClientHello offering ALPN [0x1A 0x1A, h2, http/1.1] to 10.0.0.2:443,
/// a TLS 1.2 ServerHello selecting none.
/// Right: one `tls.alpn.not_agreed` whose detail is "h2, http/1.1"; inventory `alpn`
/// ["h2", "http/1.1"].
#[test]
fn grease_is_no_alpn_protocol() {
    let mut b = PcapBuilder::default();
    let ch = client_hello(&[], &[&[0x1a, 0x1a], b"h2", b"http/1.1"]);
    let sh = server_hello(None);
    b.session(0.0, (C, 40000), (S, 443), &[(true, &ch), (false, &sh)]);
    let ev = analyze_built(&b, "alpn-grease.pcap");
    let f = with_rule(&ev, "tls.alpn.not_agreed");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0]["fallacy"]["evidence"]["detail"], "h2, http/1.1");
    assert_eq!(inventory(&ev)["alpn"], json!(["h2", "http/1.1"]));
}

/// Defect: a TLS 1.3 client resuming a session may send early data (0-RTT, RFC 8446 §2.3):
/// application-data records right behind its ClientHello, before the server said anything.
/// Those were read as "application data flowed, the handshake is over": the server's side
/// was no longer read, so its ServerHello (the negotiated version) was never seen, and a
/// server refusing the handshake with a plaintext fatal alert was no `tls.handshake.failed`.
///
/// Packets: two connections to 10.0.0.2:443 whose client sends, in one segment, a ClientHello
/// offering TLS 1.3 and 1.2, a ChangeCipherSpec and a 0-RTT application-data record. The
/// first server answers a ServerHello selecting TLS 1.3, a ChangeCipherSpec and encrypted
/// records; the second a fatal `handshake_failure` alert.
/// Right: the inventory's `tls_negotiated` is ["TLS1.3"]; one `tls.handshake.failed` with
/// cause `handshake_failure`, 1 connection, client port 40001; `tls.failed_handshakes` 1.
#[test]
fn early_data_does_not_hide_the_servers_answer() {
    let mut b = PcapBuilder::default();
    let mut first = client_hello(&[0x0304, 0x0303], &[]);
    first.extend(tls_record(20, &[1]));
    first.extend(app_data(40));
    let mut accepted = server_hello(Some(0x0304));
    accepted.extend(tls_record(20, &[1]));
    accepted.extend(app_data(200));
    b.session(
        0.0,
        (C, 40000),
        (S, 443),
        &[(true, &first), (false, &accepted), (true, &app_data(30))],
    );
    b.session(
        1.0,
        (C, 40001),
        (S, 443),
        &[(true, &first), (false, &fatal(40))],
    );
    let ev = analyze_built(&b, "early-data.pcap");
    assert_eq!(inventory(&ev)["tls_negotiated"], json!(["TLS1.3"]));
    let f = with_rule(&ev, "tls.handshake.failed");
    assert_eq!(f.len(), 1, "{f:#?}");
    let e = &f[0]["fallacy"]["evidence"];
    assert_eq!(e["detail"], "handshake_failure", "{e}");
    assert_eq!(e["connections"], 1, "{e}");
    assert_eq!(f[0]["source"]["port"], 40001);
    assert_eq!(observer_tests::stat(&ev, "tls.failed_handshakes"), 1);
}

/// The zone map of a Kubernetes cluster over two zones: the nodes' subnets and the pods'
/// ranges of the node in each.
const NODE_ZONES: &str = r#"
[[zone]]
cidr = "10.0.0.0/20"
zone = "az1"
region = "eu-west-1"

[[zone]]
cidr = "10.244.1.0/24"
zone = "az1"
region = "eu-west-1"

[[zone]]
cidr = "10.0.16.0/20"
zone = "az2"
region = "eu-west-1"

[[zone]]
cidr = "10.244.2.0/24"
zone = "az2"
region = "eu-west-1"
"#;

/// An Ethernet frame carrying the UDP datagram `src → dst` with `payload`, plain or (`vxlan`)
/// inside VXLAN from node 10.0.0.10:50000 to node 10.0.16.20:4789 (VNI 7).
fn udp_frame(src: (&str, u16), dst: (&str, u16), payload: &[u8], vxlan: bool) -> Vec<u8> {
    let v4 = |s: &str| s.parse::<std::net::Ipv4Addr>().unwrap().octets();
    let inner = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 2, 1], [2, 0, 0, 0, 2, 2])
        .ipv4(v4(src.0), v4(dst.0), 64)
        .udp(src.1, dst.1);
    let mut frame = Vec::new();
    if !vxlan {
        inner.write(&mut frame, payload).unwrap();
        return frame;
    }
    let mut carried = vec![0x08, 0, 0, 0, 0, 0, 7, 0];
    inner.write(&mut carried, payload).unwrap();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(v4("10.0.0.10"), v4("10.0.16.20"), 64)
        .udp(50_000, 4789)
        .write(&mut frame, &carried)
        .unwrap();
    frame
}

/// Defect: a capture on every interface of a node (`tcpdump -i any`) holds each datagram a pod
/// sends to another node twice: plain on the pod's veth, then inside VXLAN on the node's NIC.
/// The tunnel's flow is priced and the flow inside it left out, but the VXLAN copy, a
/// duplicate of the plain one, was dropped before the flow was marked as tunnelled: the pod's
/// flow was priced too, and the cross-zone bytes and cost came out nearly doubled.
///
/// Packets: 10 datagrams of 500 bytes from pod 10.244.1.5:5000 (az1) to pod 10.244.2.7:8125
/// (az2), each seen plain, then 50 µs later in VXLAN between the two nodes, over 9 s.
/// Right: az1 → az2 carries the tunnel's bytes only: 10 × (20 + 8 + 8 + 14 + 20 + 8 + 500)
/// IP bytes, 10 packets, 1 flow; the `cost.zone_pair` finding says the same.
#[test]
fn a_tunnelled_copy_of_a_plain_datagram_is_priced_once() {
    let mut b = PcapBuilder::default();
    let (src, dst) = (("10.244.1.5", 5000), ("10.244.2.7", 8125));
    for i in 0..10 {
        let t = f64::from(i);
        b.frame(t, &udp_frame(src, dst, &[0x42; 500], false))
            .frame(t + 0.000_05, &udp_frame(src, dst, &[0x42; 500], true));
    }
    let ev = observer_tests::analyze_built_with(&b, "vxlan-any.pcap", NODE_ZONES);
    let rows = ev.last().unwrap()["stats"]["cost"]["bytes"]
        .as_array()
        .expect("stats.cost.bytes")
        .clone();
    let row: Vec<&Value> = rows
        .iter()
        .filter(|r| r["from_zone"] == "az1" && r["to_zone"] == "az2")
        .collect();
    assert_eq!(row.len(), 1, "{rows:#?}");
    let outer = 20 + 8 + 8 + 14 + 20 + 8 + 500;
    assert_eq!(row[0]["bytes"], 10 * outer, "{rows:#?}");
    assert_eq!(row[0]["packets"], 10, "{rows:#?}");
    assert_eq!(row[0]["flows"], 1, "{rows:#?}");
    let f = with_rule(&ev, "cost.zone_pair");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0]["fallacy"]["evidence"]["bytes"], 10 * outer);
}
