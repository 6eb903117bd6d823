//! Fallacy 8 on packets built here: `tcp.mss.exceeded`, a segment longer than the MSS its
//! receiver announced, and the offload giants it must not report. Expected values follow from
//! the construction.

use etherparse::{PacketBuilder, TcpOptionElement};
use observer_tests::tcp_flags::{ACK, SYN};
use observer_tests::{PcapBuilder, analyze_built, with_rule};
use serde_json::Value;

const C: &str = "10.0.0.1";
const S: &str = "10.0.0.2";

/// A SYN or SYN/ACK carrying an MSS option.
fn syn_with_mss(
    src: [u8; 4],
    dst: [u8; 4],
    ports: (u16, u16),
    seq: u32,
    ack: Option<u32>,
    mss: u16,
) -> Vec<u8> {
    let mut tcp = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(src, dst, 64)
        .tcp(ports.0, ports.1, seq, 64240)
        .syn();
    if let Some(a) = ack {
        tcp = tcp.ack(a);
    }
    let tcp = tcp
        .options(&[TcpOptionElement::MaximumSegmentSize(mss)])
        .expect("option fits");
    let mut v = Vec::new();
    tcp.write(&mut v, &[]).expect("frame builds");
    v
}

/// A connection whose client announces `client_mss` and server `server_mss`, then one client
/// segment of `len` bytes.
fn mss_connection(client_mss: u16, server_mss: u16, len: usize) -> Vec<Value> {
    let (c, s) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    let mut b = PcapBuilder::default();
    b.frame(0.0, &syn_with_mss(c, s, (40000, 80), 100, None, client_mss))
        .frame(
            0.001,
            &syn_with_mss(s, c, (80, 40000), 500, Some(101), server_mss),
        )
        .tcp(0.002, (C, 40000), (S, 80), 101, 501, ACK, &[])
        .tcp(0.003, (C, 40000), (S, 80), 101, 501, ACK, &vec![b'x'; len]);
    analyze_built(&b, "mss.pcap")
}

#[test]
fn a_segment_over_the_peers_mss_is_found_and_an_offload_giant_is_not() {
    // A middlebox clamped the server's MSS to 1360; the client (MSS 1460) sends 1460 bytes.
    let ev = mss_connection(1460, 1360, 1460);
    let f = with_rule(&ev, "tcp.mss.exceeded");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(
        f[0]["fallacy"]["evidence"]["detail"],
        "client sent 1460 bytes against an MSS of 1360"
    );
    // Both announce 1460 and the client's segment holds 2,739 bytes: more than its own link
    // carries in one packet, so segmentation offload made it (or a mirror copied it before
    // segmentation). Not a finding.
    assert!(with_rule(&mss_connection(1460, 1460, 2739), "tcp.mss.exceeded").is_empty());
    // A clamp past which the capture was taken lowered both SYNs' MSS to 1360, and the
    // client sends 1460 bytes anyway: larger than its own (clamped) MSS, but its 1,500-byte
    // packet crossed a standard link as it is. A finding.
    let f = mss_connection(1360, 1360, 1460);
    assert_eq!(with_rule(&f, "tcp.mss.exceeded").len(), 1, "{f:#?}");
    // Within both MSS: nothing.
    assert!(with_rule(&mss_connection(1460, 1460, 1460), "tcp.mss.exceeded").is_empty());
}

#[test]
fn a_finding_says_when_its_client_list_is_cut_short() {
    // The same clamped server (MSS 1360) overrun by `n` clients, each from its own address:
    // the evidence lists at most 16 clients and says when there were more.
    for (n, truncated) in [(16u8, false), (17, true)] {
        let s = [10, 0, 0, 2];
        let mut b = PcapBuilder::default();
        for i in 0..n {
            let c = [10, 0, 1, i + 1];
            let ca = format!("10.0.1.{}", i + 1);
            let t = f64::from(i);
            b.frame(t, &syn_with_mss(c, s, (40000, 80), 100, None, 1460))
                .frame(
                    t + 0.001,
                    &syn_with_mss(s, c, (80, 40000), 500, Some(101), 1360),
                )
                .tcp(t + 0.002, (&ca, 40000), (S, 80), 101, 501, ACK, &[])
                .tcp(
                    t + 0.003,
                    (&ca, 40000),
                    (S, 80),
                    101,
                    501,
                    ACK,
                    &[b'x'; 1460],
                );
        }
        let ev = analyze_built(&b, "mss-clients.pcap");
        let f = with_rule(&ev, "tcp.mss.exceeded");
        assert_eq!(f.len(), 1, "{f:#?}");
        let e = &f[0]["fallacy"]["evidence"];
        assert_eq!(e["clients"].as_array().map(Vec::len), Some(16), "{e}");
        assert_eq!(e["clients_truncated"], truncated, "{e}");
    }
}

/// A client data segment of `len` bytes carrying a timestamp option (12 bytes with padding).
fn data_with_timestamps(seq: u32, len: usize) -> Vec<u8> {
    let tcp = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(40000, 80, seq, 64240)
        .ack(501)
        .options(&[
            TcpOptionElement::Noop,
            TcpOptionElement::Noop,
            TcpOptionElement::Timestamp(1, 2),
        ])
        .expect("options fit");
    let mut v = Vec::new();
    tcp.write(&mut v, &vec![b'x'; len]).expect("frame builds");
    v
}

#[test]
fn segments_a_receiver_merged_are_not_over_the_mss() {
    // suricata-verify's dump_mtu300.pcap: MSS 260, timestamps on, so a packet carries 248
    // bytes; the capture, taken after the receiver's GRO, holds 496 (two packets) and then
    // 294 bytes (one packet and part of the next). Neither is a sender ignoring the MSS.
    let (c, s) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    let run = |lens: &[usize]| {
        let mut b = PcapBuilder::default();
        b.frame(0.0, &syn_with_mss(c, s, (40000, 80), 100, None, 1460))
            .frame(0.001, &syn_with_mss(s, c, (80, 40000), 500, Some(101), 260))
            .tcp(0.002, (C, 40000), (S, 80), 101, 501, ACK, &[]);
        let mut seq = 101;
        for (i, &len) in lens.iter().enumerate() {
            b.frame(0.003 + i as f64 * 0.001, &data_with_timestamps(seq, len));
            seq += len as u32;
        }
        analyze_built(&b, "gro.pcap")
    };
    assert!(with_rule(&run(&[496, 294]), "tcp.mss.exceeded").is_empty());
    assert!(with_rule(&run(&[294, 496]), "tcp.mss.exceeded").is_empty());
    // 294 bytes alone, with nothing showing merges: a sender over the MSS.
    let ev = run(&[294]);
    let f = with_rule(&ev, "tcp.mss.exceeded");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(
        f[0]["fallacy"]["evidence"]["detail"],
        "client sent 294 bytes against an MSS of 260"
    );
}

/// A TLS record of handshake message `ty`.
fn tls_handshake(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![ty];
    m.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    m.extend_from_slice(body);
    let mut r = vec![22, 3, 1];
    r.extend_from_slice(&(m.len() as u16).to_be_bytes());
    r.extend_from_slice(&m);
    r
}

/// A ClientHello offering TLS 1.2, and TLS 1.3 too when `tls13`; a ServerHello choosing TLS 1.3
/// (`supported_versions`) when `chose13`, else TLS 1.2.
fn hellos(tls13: bool, chose13: bool) -> (Vec<u8>, Vec<u8>) {
    let mut ch = vec![3, 3];
    ch.extend_from_slice(&[7; 32]);
    ch.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
    if tls13 {
        let ext = [0, 43, 0, 5, 4, 3, 4, 3, 3];
        ch.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        ch.extend_from_slice(&ext);
    }
    let mut sh = vec![3, 3];
    sh.extend_from_slice(&[9; 32]);
    sh.extend_from_slice(&[0, 0x13, 0x01, 0]);
    if chose13 {
        let ext = [0, 43, 0, 2, 3, 4];
        sh.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        sh.extend_from_slice(&ext);
    }
    (tls_handshake(1, &ch), tls_handshake(2, &sh))
}

/// TLS handshakes to 10.0.0.2:443, one per (client address, offers 1.3, gets 1.3), a second
/// apart.
fn tls_service(conns: &[(&str, bool, bool)]) -> Vec<Value> {
    let mut b = PcapBuilder::default();
    for (i, &(ca, offers, gets)) in conns.iter().enumerate() {
        let t = i as f64;
        let (c, s) = ((ca, 40000 + i as u16), (S, 443));
        let (ch, sh) = hellos(offers, gets);
        b.tcp(t, c, s, 100, 0, SYN, &[])
            .tcp(t + 0.001, s, c, 500, 101, SYN | ACK, &[])
            .tcp(t + 0.002, c, s, 101, 501, ACK, &[])
            .tcp(t + 0.003, c, s, 101, 501, ACK, &ch)
            .tcp(t + 0.004, s, c, 501, 101 + ch.len() as u32, ACK, &sh);
    }
    analyze_built(&b, "tls-versions.pcap")
}

#[test]
fn tls_versions_are_mixed_only_when_clients_offering_the_same_got_different_ones() {
    // nDPI's android.pcap: clients without TLS 1.3 got TLS 1.2, the others TLS 1.3. The server
    // chose the best common version every time: nothing mixed on its side.
    let ev = tls_service(&[
        ("10.0.0.1", false, false),
        ("10.0.0.3", true, true),
        ("10.0.0.4", true, true),
    ]);
    assert!(with_rule(&ev, "tls.version.mixed").is_empty());
    // Two clients offering TLS 1.3, one of them served TLS 1.2: two servers configured
    // differently behind one address. The evidence names those two connections' clients and
    // times (before: the server's own address, port 0, one connection, the end of the run).
    let ev = tls_service(&[
        ("10.0.0.1", false, false),
        ("10.0.0.3", true, true),
        ("10.0.0.4", true, false),
    ]);
    let f = with_rule(&ev, "tls.version.mixed");
    assert_eq!(f.len(), 1, "{f:#?}");
    let e = &f[0]["fallacy"]["evidence"];
    assert_eq!(e["connections"], 2, "{e}");
    assert_eq!(
        e["clients"],
        serde_json::json!(["10.0.0.3", "10.0.0.4"]),
        "{e}"
    );
    assert_eq!(
        e["detail"], "clients offering up to TLS1.3 got TLS1.2, TLS1.3",
        "{e}"
    );
    assert_eq!(e["first_seen"], "2026-01-01T00:00:01.003000Z", "{e}");
    assert_eq!(e["last_seen"], "2026-01-01T00:00:02.003000Z", "{e}");
    assert_eq!(f[0]["source"]["ip"], "10.0.0.3");
    assert_eq!(f[0]["source"]["port"], 40001);
}

#[test]
fn mixed_http_versions_name_the_requests_clients_and_times() {
    // One client asks in HTTP/1.1 at 0 s, another in HTTP/1.0 at 1 s.
    let mut b = PcapBuilder::default();
    for (i, (ca, v)) in [("10.0.0.5", "1.1"), ("10.0.0.6", "1.0")]
        .into_iter()
        .enumerate()
    {
        let t = i as f64;
        let (c, s) = ((ca, 41000 + i as u16), (S, 80));
        let req = format!("GET / HTTP/{v}\r\nHost: s\r\n\r\n");
        let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let n = req.len() as u32;
        b.tcp(t, c, s, 100, 0, SYN, &[])
            .tcp(t + 0.001, s, c, 500, 101, SYN | ACK, &[])
            .tcp(t + 0.002, c, s, 101, 501, ACK, &[])
            .tcp(t + 0.003, c, s, 101, 501, ACK, req.as_bytes())
            .tcp(t + 0.004, s, c, 501, 101 + n, ACK, resp);
    }
    let ev = analyze_built(&b, "http-versions.pcap");
    let f = with_rule(&ev, "http.version.mixed");
    assert_eq!(f.len(), 1, "{f:#?}");
    let e = &f[0]["fallacy"]["evidence"];
    assert_eq!(e["connections"], 2, "{e}");
    assert_eq!(
        e["clients"],
        serde_json::json!(["10.0.0.5", "10.0.0.6"]),
        "{e}"
    );
    assert_eq!(e["detail"], "HTTP/1.0, HTTP/1.1", "{e}");
    assert_eq!(e["first_seen"], "2026-01-01T00:00:00.003000Z", "{e}");
    assert_eq!(e["last_seen"], "2026-01-01T00:00:01.003000Z", "{e}");
    assert_eq!(f[0]["source"]["ip"], "10.0.0.5");
}

/// A TLS 1.2 ClientHello offering the ALPN protocols `alpn`, and a ServerHello choosing none.
fn alpn_hellos(alpn: &[&str]) -> (Vec<u8>, Vec<u8>) {
    let ch = observer_tests::client_hello_body(alpn);
    let mut sh = vec![3, 3];
    sh.extend_from_slice(&[9; 32]);
    sh.extend_from_slice(&[0, 0xc0, 0x2f, 0]);
    (tls_handshake(1, &ch), tls_handshake(2, &sh))
}

#[test]
fn no_alpn_choice_matters_only_when_the_client_offered_more_than_http_1_1() {
    // Without a choice the connection speaks HTTP/1.1, which is all the first client offered;
    // the second wanted HTTP/2; the third offered IMAP only, which is no HTTP at all.
    let mut b = PcapBuilder::default();
    for (i, alpn) in [&["http/1.1"][..], &["h2", "http/1.1"], &["imap"]]
        .iter()
        .enumerate()
    {
        let t = i as f64;
        let (c, s) = ((C, 40000 + i as u16), (S, 443));
        let (ch, sh) = alpn_hellos(alpn);
        b.tcp(t, c, s, 100, 0, SYN, &[])
            .tcp(t + 0.001, s, c, 500, 101, SYN | ACK, &[])
            .tcp(t + 0.002, c, s, 101, 501, ACK, &[])
            .tcp(t + 0.003, c, s, 101, 501, ACK, &ch)
            .tcp(t + 0.004, s, c, 501, 101 + ch.len() as u32, ACK, &sh);
    }
    let ev = analyze_built(&b, "alpn.pcap");
    let f = with_rule(&ev, "tls.alpn.not_agreed");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0]["fallacy"]["evidence"]["detail"], "h2, http/1.1");
    assert_eq!(f[0]["fallacy"]["evidence"]["connections"], 1);
    assert_eq!(f[0]["source"]["port"], 40001);
}
