//! IP reassembly, on packets built here: fragments sent in any order make one datagram that is
//! analyzed like any packet; fragments that disagree, never complete or do not fit are given
//! up, counted, and their first fragment is analyzed alone for its ports. Expected values
//! follow from the construction.

use etherparse::PacketBuilder;
use observer_tests::tcp_flags::{ACK, SYN};
use observer_tests::{ETHERNET_IPV4, ipv4_fragment};
use observer_tests::{PcapBuilder, analyze_built, stat, with_rule};

const C: &str = "10.0.0.1";
const S: &str = "10.0.0.2";

/// An IPv4 packet (no link header) from `C:40000` to `S:80` with `payload` in one TCP segment.
fn tcp_packet(seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(40000, 80, seq, 64240)
        .ack(ack)
        .psh()
        .write(&mut v, payload)
        .expect("packet builds");
    v
}

/// A handshake at 0 s (MSS 1460 both ways): client seq 100, server seq 500.
fn handshake(b: &mut PcapBuilder) {
    b.tcp(0.0, (C, 40000), (S, 80), 100, 0, SYN, &[])
        .tcp(0.001, (S, 80), (C, 40000), 500, 101, SYN | ACK, &[])
        .tcp(0.002, (C, 40000), (S, 80), 101, 501, ACK, &[]);
}

/// An HTTP request with a Basic password, 100 bytes or more.
fn request() -> Vec<u8> {
    let mut r =
        b"GET /private HTTP/1.1\r\nHost: s\r\nAuthorization: Basic dXNlcjpzZWNyZXQ=\r\n".to_vec();
    r.extend_from_slice(b"X-Pad: ");
    r.extend(std::iter::repeat_n(b'p', 40));
    r.extend_from_slice(b"\r\n\r\n");
    r
}

#[test]
fn a_request_split_over_fragments_in_any_order_is_reassembled() {
    // The request's segment (20-byte TCP header + the request) cut at 48 and 96 bytes of the
    // IP payload, sent last piece first; then the server's response.
    let req = request();
    let ip = tcp_packet(101, 501, &req);
    let n = ip.len() - 20;
    assert!(n > 96);
    let mut b = PcapBuilder::default();
    handshake(&mut b);
    b.frame(0.010, &ipv4_fragment(&ip, 7, 96, n, false))
        .frame(0.011, &ipv4_fragment(&ip, 7, 48, 96, true))
        .frame(0.012, &ipv4_fragment(&ip, 7, 0, 48, true));
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    let end = 101 + req.len() as u32;
    b.tcp(0.020, (S, 80), (C, 40000), 501, end, ACK, resp);
    let ev = analyze_built(&b, "fragments-request.pcap");
    assert_eq!(stat(&ev, "ip.fragments"), 3);
    assert_eq!(stat(&ev, "ip.reassembled"), 1);
    assert!(with_rule(&ev, "ip.fragments.inconsistent").is_empty());
    assert_eq!(stat(&ev, "http.requests"), 1);
    assert_eq!(stat(&ev, "http.responses"), 1);
    // One segment of the request's length, in order: no gap, nothing lost or resent.
    assert_eq!(stat(&ev, "tcp.lost_segments"), 0);
    assert_eq!(stat(&ev, "tcp.retransmissions"), 0);
    let plain = with_rule(&ev, "plaintext.internal");
    assert_eq!(plain.len(), 1, "{plain:#?}");
    assert_eq!(
        plain[0]["fallacy"]["evidence"]["credentials"],
        serde_json::json!(["http-basic"])
    );
}

#[test]
fn fragments_that_disagree_are_given_up_and_the_first_is_analyzed_alone() {
    // Two fragments covering payload bytes 40..48 twice with different bytes (an evasion
    // trick): the datagram is inconsistent. The first fragment still names the connection.
    let req = request();
    let ip = tcp_packet(101, 501, &req);
    let n = ip.len() - 20;
    let mut other = ip.clone();
    other[20 + 44] ^= 0xff;
    let mut b = PcapBuilder::default();
    handshake(&mut b);
    b.frame(0.010, &ipv4_fragment(&ip, 9, 0, 48, true))
        .frame(0.011, &ipv4_fragment(&other, 9, 40, n, false));
    let ev = analyze_built(&b, "fragments-overlap.pcap");
    assert_eq!(stat(&ev, "ip.fragments"), 2);
    assert_eq!(stat(&ev, "ip.reassembled"), 0);
    assert_eq!(stat(&ev, "ip.reassembly_inconsistent"), 1);
    let f = with_rule(&ev, "ip.fragments.inconsistent");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0]["fallacy"]["id"], 4);
    assert_eq!(f[0]["fallacy"]["evidence"]["datagrams"], 1);
    assert_eq!(f[0]["fallacy"]["evidence"]["ip_protocol"], 6);
    assert_eq!(f[0]["source"]["ip"], C);
    assert_eq!(f[0]["destination"]["ip"], S);
    assert_eq!(stat(&ev, "http.requests"), 0);
    assert_eq!(stat(&ev, "flows.tcp"), 1);
    assert_eq!(
        stat(&ev, "packets.tcp"),
        4,
        "the handshake and the first fragment"
    );
}

#[test]
fn fragments_whose_rest_never_comes_are_given_up_within_three_seconds() {
    // A first fragment at 0 s whose rest never comes, then 3.5 s later a SYN of another
    // connection: the datagram was given up (2 to 3 s) and its first fragment analyzed. A lone
    // last fragment of another datagram is given up at the end of the input.
    let ip = tcp_packet(101, 501, &request());
    let n = ip.len() - 20;
    let mut b = PcapBuilder::default();
    b.frame(0.0, &ipv4_fragment(&ip, 11, 0, 48, true))
        .tcp(3.5, (C, 40001), (S, 81), 1, 0, SYN, &[])
        .frame(4.0, &ipv4_fragment(&ip, 12, 48, n, false));
    let ev = analyze_built(&b, "fragments-timeout.pcap");
    assert_eq!(stat(&ev, "ip.reassembly_incomplete"), 2);
    assert_eq!(stat(&ev, "flows.tcp"), 2);
    assert_eq!(
        stat(&ev, "packets.tcp"),
        2,
        "the first fragment and the SYN"
    );
}

/// A UDP datagram from `src` to `dst` as an IPv4 packet (no link header).
fn udp_packet(src: ([u8; 4], u16), dst: ([u8; 4], u16), payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(src.0, dst.0, 64)
        .udp(src.1, dst.1)
        .write(&mut v, payload)
        .expect("packet builds");
    v
}

#[test]
fn a_dns_answer_whose_later_fragments_were_filtered_out_still_answers_its_query() {
    // A capture filtered by port keeps only first fragments. The client asks at 0 s; the
    // answer (100 addresses, 1,700 bytes) arrives at 0.02 s as a first fragment of 1,480
    // bytes, the rest not captured. Its first fragment is analyzed within 3 s, before
    // the 5 s after which a query counts as unanswered; the capture goes on to 10 s.
    let (client, server) = (([10, 0, 0, 1], 40000), ([10, 0, 0, 53], 53));
    let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    query.extend_from_slice(b"\x07example\x04test\x00\x00\x01\x00\x01");
    let addrs: Vec<String> = (0..100).map(|i| format!("10.9.0.{i}")).collect();
    let answers: Vec<(&str, u32)> = addrs.iter().map(|a| (a.as_str(), 300)).collect();
    let answer = observer_tests::dns_a_response(0x1234, "example.test", 0, &answers);
    assert!(answer.len() > 1500);
    let mut b = PcapBuilder::default();
    let mut q = ETHERNET_IPV4.to_vec();
    q.extend_from_slice(&udp_packet(client, server, &query));
    b.frame(0.0, &q)
        .frame(
            0.02,
            &ipv4_fragment(&udp_packet(server, client, &answer), 5, 0, 1480, true),
        )
        .tcp(10.0, (C, 40001), (S, 81), 1, 0, SYN, &[]);
    let ev = analyze_built(&b, "fragments-dns.pcap");
    assert_eq!(stat(&ev, "ip.reassembly_incomplete"), 1);
    assert!(with_rule(&ev, "dns.query.unanswered").is_empty(), "{ev:#?}");
    assert_eq!(stat(&ev, "packets.udp"), 2);
}

#[test]
fn waiting_datagrams_are_bounded() {
    // 4,097 first fragments whose rest never comes, all within a second: 4,096 wait, the
    // last is not tracked (analyzed alone at once), and the 4,096 are given up at the end.
    let ip = tcp_packet(101, 501, &request());
    let mut b = PcapBuilder::default();
    for id in 0..4097u16 {
        b.frame(f64::from(id) * 1e-4, &ipv4_fragment(&ip, id, 0, 48, true));
    }
    let ev = analyze_built(&b, "fragments-many.pcap");
    assert_eq!(stat(&ev, "limits.fragments_untracked"), 1);
    assert_eq!(stat(&ev, "ip.reassembly_incomplete"), 4096);
    assert_eq!(stat(&ev, "ip.reassembly_peak_bytes"), 4096 * 48);
    assert_eq!(stat(&ev, "packets.tcp"), 4097);
}
