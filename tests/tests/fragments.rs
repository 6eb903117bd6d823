//! IP reassembly, on packets built here: fragments sent in any order make one datagram that is
//! analyzed like any packet; fragments that disagree, never complete or do not fit are given
//! up, counted, and their first fragment is analyzed alone for its ports. Expected values
//! follow from the construction.

use etherparse::PacketBuilder;
use observer_tests::tcp_flags::{ACK, SYN};
use observer_tests::{PcapBuilder, analyze_built, stat, with_rule};

const C: &str = "10.0.0.1";
const S: &str = "10.0.0.2";
const ETH: [u8; 14] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];

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

/// The fragment of IPv4 packet `ip` (20-byte header) carrying its payload bytes
/// `from..to`, with identification `id`, as an Ethernet frame. `more`: more fragments follow.
fn fragment(ip: &[u8], id: u16, from: usize, to: usize, more: bool) -> Vec<u8> {
    assert_eq!(from % 8, 0, "fragment offsets are in 8-byte units");
    let mut h = ip[..20].to_vec();
    h[2..4].copy_from_slice(&((20 + to - from) as u16).to_be_bytes());
    h[4..6].copy_from_slice(&id.to_be_bytes());
    let off = (from / 8) as u16 | if more { 0x2000 } else { 0 };
    h[6..8].copy_from_slice(&off.to_be_bytes());
    let mut f = ETH.to_vec();
    f.extend_from_slice(&h);
    f.extend_from_slice(&ip[20 + from..20 + to]);
    f
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
    b.frame(0.010, &fragment(&ip, 7, 96, n, false))
        .frame(0.011, &fragment(&ip, 7, 48, 96, true))
        .frame(0.012, &fragment(&ip, 7, 0, 48, true));
    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    let end = 101 + req.len() as u32;
    b.tcp(0.020, (S, 80), (C, 40000), 501, end, ACK, resp);
    let ev = analyze_built(&b, "fragments-request.pcap");
    assert_eq!(stat(&ev, "ip.fragments"), 3);
    assert_eq!(stat(&ev, "ip.reassembled"), 1);
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
    b.frame(0.010, &fragment(&ip, 9, 0, 48, true))
        .frame(0.011, &fragment(&other, 9, 40, n, false));
    let ev = analyze_built(&b, "fragments-overlap.pcap");
    assert_eq!(stat(&ev, "ip.fragments"), 2);
    assert_eq!(stat(&ev, "ip.reassembled"), 0);
    assert_eq!(stat(&ev, "ip.reassembly_inconsistent"), 1);
    assert_eq!(stat(&ev, "http.requests"), 0);
    assert_eq!(stat(&ev, "flows.tcp"), 1);
    assert_eq!(
        stat(&ev, "packets.tcp"),
        4,
        "the handshake and the first fragment"
    );
}

#[test]
fn fragments_whose_rest_never_comes_time_out() {
    // A first fragment at 0 s whose rest never comes, then 31 s later a SYN of another
    // connection: the datagram is given up after 30 s and its first fragment analyzed then.
    // A lone last fragment of another datagram is given up at the end of the input.
    let ip = tcp_packet(101, 501, &request());
    let n = ip.len() - 20;
    let mut b = PcapBuilder::default();
    b.frame(0.0, &fragment(&ip, 11, 0, 48, true))
        .tcp(31.0, (C, 40001), (S, 81), 1, 0, SYN, &[])
        .frame(31.5, &fragment(&ip, 12, 48, n, false));
    let ev = analyze_built(&b, "fragments-timeout.pcap");
    assert_eq!(stat(&ev, "ip.reassembly_incomplete"), 2);
    assert_eq!(stat(&ev, "flows.tcp"), 2);
    assert_eq!(
        stat(&ev, "packets.tcp"),
        2,
        "the first fragment and the SYN"
    );
}

#[test]
fn waiting_datagrams_are_bounded() {
    // 4,097 first fragments whose rest never comes, all within a second: 4,096 wait, the
    // last is not tracked (analyzed alone at once), and the 4,096 are given up at the end.
    let ip = tcp_packet(101, 501, &request());
    let mut b = PcapBuilder::default();
    for id in 0..4097u16 {
        b.frame(f64::from(id) * 1e-4, &fragment(&ip, id, 0, 48, true));
    }
    let ev = analyze_built(&b, "fragments-many.pcap");
    assert_eq!(stat(&ev, "limits.fragments_untracked"), 1);
    assert_eq!(stat(&ev, "ip.reassembly_incomplete"), 4096);
    assert_eq!(stat(&ev, "ip.reassembly_peak_bytes"), 4096 * 48);
    assert_eq!(stat(&ev, "packets.tcp"), 4097);
}
