//! Review of defects left known in the homogeneity analyzer (fallacy 8) and in protocol
//! identification (`app::ident`, `analyze::security`): a path-MTU black hole on a clamped path
//! whose handshake the capture missed, draft TLS 1.3 versions ranked above TLS 1.3, an HTTP/2
//! prior-knowledge connection read as refused from any server segment starting `HTTP/1.`, an
//! IMAP `CAPABILITY` line longer than the bytes kept across a segment boundary, and an SMTP
//! `BDAT` chunk sent behind a `DATA` still waiting for its `354`. Every capture is built here
//! packet by packet; the expected values follow from the construction. Every test failed
//! before its fix.

use observer_tests::tcp_flags::{ACK, FIN};
use observer_tests::{
    PcapBuilder, analyze_built, credential_kinds, finding_ports, internal, message, session, stat,
    tls_handshake_record, tls_record, with_rule,
};
use serde_json::json;

const C: &str = "10.0.0.1";
const S: &str = "10.0.0.2";

/// Item 1. A capture started mid-connection: no SYN, so neither side's MSS is known. The path
/// is a tunnel whose MSS clamp let 1,360-byte segments through at the handshake, but a link
/// beyond it drops them and no ICMP comes back. The client asks (18 bytes), the server's
/// first 700 bytes arrive and are acknowledged, then its 1,360-byte segment (sequence 5,700)
/// is sent and resent 4 times, never acknowledged; the client, alive, gives up with a FIN
/// that acknowledges only the 700 bytes. A path-MTU black hole: 1,360 bytes is the largest
/// segment the server sent. Before: without an MSS, "full size" was 1,460 bytes, so 1,360-byte
/// segments were never full size and the black hole was missed.
///
/// Control (port 8080, also without a handshake): 1,000-byte segments resent 4 times on an
/// otherwise quiet request-response connection: no segment near any path's MTU, no black
/// hole.
#[test]
fn a_black_hole_without_a_captured_handshake_is_judged_on_the_largest_segment_seen() {
    let mut b = PcapBuilder::default();
    for (port, big) in [(80u16, 1360usize), (8080, 1000)] {
        let (c, s) = ((C, 40000 + port), (S, port));
        let t0 = if port == 80 { 0.0 } else { 10.0 };
        b.tcp(t0, c, s, 1000, 5000, ACK, b"GET / HTTP/1.1\r\n\r\n")
            .tcp(t0 + 0.001, s, c, 5000, 1018, ACK, &[b'a'; 700])
            .tcp(t0 + 0.002, c, s, 1018, 5700, ACK, &[]);
        for gap in [0.0, 0.2, 0.6, 1.4, 3.0] {
            b.tcp(t0 + 0.01 + gap, s, c, 5700, 1018, ACK, &vec![b'x'; big]);
        }
        b.tcp(t0 + 5.0, c, s, 1018, 5700, FIN | ACK, &[]);
    }
    let ev = analyze_built(&b, "review-w-pmtu-midflow.pcap");
    assert_eq!(finding_ports(&ev, "tcp.pmtu.blackhole"), [80], "{ev:#?}");
    let bh = with_rule(&ev, "tcp.pmtu.blackhole");
    let e = &bh[0]["fallacy"]["evidence"];
    assert_eq!(e["segment_bytes"], json!(["1360"]), "{e}");
    // The message says what it knows: the size is the largest seen, the MSS was not seen.
    assert_eq!(
        e["detail"],
        "server segments of 1360 bytes (the largest it sent; its peer's MSS was not captured) retransmitted 4 times, never acknowledged; no ICMP fragmentation-needed reached the sender: filtered on the way back",
        "{e}"
    );
    assert_eq!(stat(&ev, "tcp.pmtu_blackholes_unconfirmed"), 0);
}

/// One extension: type, length, data.
fn ext(ty: u16, data: &[u8]) -> Vec<u8> {
    let mut e = ty.to_be_bytes().to_vec();
    e.extend_from_slice(&(data.len() as u16).to_be_bytes());
    e.extend_from_slice(data);
    e
}

/// A ClientHello record: legacy_version 0x0303 and `supported_versions` listing `versions`.
fn client_hello(versions: &[u16]) -> Vec<u8> {
    let mut data = vec![(2 * versions.len()) as u8];
    for v in versions {
        data.extend_from_slice(&v.to_be_bytes());
    }
    let exts = ext(43, &data);
    let mut ch = vec![3, 3];
    ch.extend_from_slice(&[7; 32]);
    ch.extend_from_slice(&[0, 0, 4, 0x13, 0x01, 0xc0, 0x2f, 1, 0]);
    ch.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    ch.extend_from_slice(&exts);
    tls_handshake_record(1, &ch)
}

/// A ServerHello record choosing `version`: through `supported_versions` for TLS 1.3 (and
/// its drafts), as legacy_version for TLS 1.2.
fn server_hello(version: u16) -> Vec<u8> {
    let mut sh = vec![3, 3];
    sh.extend_from_slice(&[9; 32]);
    sh.extend_from_slice(&[0, 0x13, 0x01, 0]);
    let exts = if version > 0x0303 {
        ext(43, &version.to_be_bytes())
    } else {
        Vec::new()
    };
    sh.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    sh.extend_from_slice(&exts);
    tls_handshake_record(2, &sh)
}

/// Item 2. Draft versions of TLS 1.3 (0x7fxx, draft 23 is 0x7f17) come before TLS 1.3 itself
/// (0x0304), though numerically above it. Browsers of 2018 offered both: [TLS 1.3, draft 23,
/// TLS 1.2]. Their highest version is TLS 1.3; it was read as "TLS1.3-draft23".
///
/// A fleet talking to 10.0.0.2:443: 10.0.0.3 offers [1.3, draft 23, 1.2] and gets TLS 1.3;
/// 10.0.0.4 offers [1.3, 1.2] and gets TLS 1.2: both offered TLS 1.3 and got different
/// versions, so `tls.version.mixed` (before: none, the first was filed under "up to draft 23").
/// 10.0.0.5 offers [draft 23, 1.2] only and gets TLS 1.2: the best version in common with a
/// server that speaks the final TLS 1.3, not a mix. A handshake to 10.0.0.6:443 offering
/// [1.3, draft 23, 1.2] is refused (`protocol_version`): its `client_max_version` is TLS1.3.
#[test]
fn draft_tls_1_3_versions_rank_below_tls_1_3() {
    let mut b = PcapBuilder::default();
    let fleet: [(&str, &[u16], u16); 3] = [
        ("10.0.0.3", &[0x0304, 0x7f17, 0x0303], 0x0304),
        ("10.0.0.4", &[0x0304, 0x0303], 0x0303),
        ("10.0.0.5", &[0x7f17, 0x0303], 0x0303),
    ];
    for (i, (ca, offer, got)) in fleet.into_iter().enumerate() {
        let (ch, sh) = (client_hello(offer), server_hello(got));
        b.session(
            i as f64,
            (ca, 40000),
            (S, 443),
            &[
                (true, &ch),
                (false, &sh),
                (true, &tls_record(23, &[0x5a; 40])),
            ],
        );
    }
    let ch = client_hello(&[0x0304, 0x7f17, 0x0303]);
    let alert = tls_record(21, &[2, 70]);
    b.session(
        5.0,
        (C, 40001),
        ("10.0.0.6", 443),
        &[(true, &ch), (false, &alert)],
    );
    let ev = analyze_built(&b, "review-w-tls-drafts.pcap");
    let m = with_rule(&ev, "tls.version.mixed");
    assert_eq!(m.len(), 1, "{m:#?}");
    let e = &m[0]["fallacy"]["evidence"];
    assert_eq!(
        e["detail"], "clients offering up to TLS1.3 got TLS1.2, TLS1.3",
        "{e}"
    );
    assert_eq!(e["connections"], 2, "{e}");
    assert_eq!(e["clients"], json!(["10.0.0.3", "10.0.0.4"]), "{e}");
    let f = with_rule(&ev, "tls.handshake.failed");
    assert_eq!(f.len(), 1, "{f:#?}");
    let e = &f[0]["fallacy"]["evidence"];
    assert_eq!(e["client_max_version"], json!(["TLS1.3"]), "{e}");
}

/// An HTTP/2 frame header: length, type, flags, stream.
fn h2_frame(len: usize, ty: u8, flags: u8, stream: u32) -> Vec<u8> {
    let mut f = (len as u32).to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[ty, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f
}

/// Item 3. `http2.prior_knowledge.rejected` means: the client opened with the HTTP/2 preface
/// and the server answered in HTTP/1.x. That is the server's first answer; any server
/// segment starting with `HTTP/1.` was taken as the refusal.
///
/// Port 8081: preface and SETTINGS, answered `HTTP/1.1 400 Bad Request`: refused (the finding).
/// Port 8082: preface and SETTINGS, answered with SETTINGS, a SETTINGS ack, a HEADERS frame,
/// then a 60-byte DATA frame (a proxied HTTP/1.1 message as the body) whose payload starts a
/// new segment: the server speaks HTTP/2, nothing refused (before: a finding). Port 8083: a
/// client that never offered HTTP/2, an HTTP/1.1 request and answer: nothing.
#[test]
fn http2_is_refused_by_the_servers_first_answer_only() {
    let mut preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    preface.extend_from_slice(&h2_frame(0, 4, 0, 0));
    let mut settings = h2_frame(0, 4, 0, 0);
    settings.extend_from_slice(&h2_frame(0, 4, 1, 0));
    let mut headers = h2_frame(1, 1, 4, 1);
    headers.push(0x88); // :status 200, indexed
    headers.extend_from_slice(&h2_frame(60, 0, 1, 1));
    let body = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: 21\r\n\r\n{:21}",
        "proxied body"
    );
    assert_eq!(body.len(), 60);
    let mut b = PcapBuilder::default();
    session(
        &mut b,
        0.0,
        40001,
        8081,
        &[
            (true, &preface),
            (
                false,
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
            ),
        ],
    );
    session(
        &mut b,
        1.0,
        40002,
        8082,
        &[
            (true, &preface),
            (false, &settings),
            (false, &headers),
            (false, body.as_bytes()),
        ],
    );
    session(
        &mut b,
        2.0,
        40003,
        8083,
        &[
            (true, b"GET / HTTP/1.1\r\nHost: s\r\n\r\n"),
            (false, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ],
    );
    let ev = analyze_built(&b, "review-w-h2-rejected.pcap");
    assert_eq!(
        finding_ports(&ev, "http2.prior_knowledge.rejected"),
        [8081],
        "{ev:#?}"
    );
}

/// Item 4. An IMAP server's `* CAPABILITY` line of 92 bytes, STARTTLS its 10th word (from
/// byte 71), comes in two segments; the client then logs in in clear. STARTTLS was offered:
/// `plaintext.starttls_unused`. Only the line's first 64 bytes were kept across the segment
/// boundary, and STARTTLS past them was lost.
///
/// Port 143: the line cut at byte 40, STARTTLS wholly in the second segment. Port 1143: cut at
/// byte 75, inside the word (`STAR` | `TTLS`). Port 2143 (control): the greeting's
/// `[CAPABILITY …]` response code names no STARTTLS; the free text after its `]`, which goes
/// past the 64 bytes into the second segment, mentions STARTTLS: no offer.
#[test]
fn starttls_past_the_head_of_a_split_capability_line_is_offered() {
    let caps: &[u8] =
        b"* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN\r\n";
    assert_eq!(caps.len(), 92);
    assert_eq!(&caps[71..79], b"STARTTLS");
    let tail: &[u8] = b"a1 OK CAPABILITY completed\r\n";
    let mut b = PcapBuilder::default();
    for (i, (port, cut)) in [(143u16, 40usize), (1143, 75)].into_iter().enumerate() {
        let mut second = caps[cut..].to_vec();
        second.extend_from_slice(tail);
        session(
            &mut b,
            i as f64,
            40000 + port,
            port,
            &[
                (false, b"* OK IMAP ready\r\n"),
                (true, b"a1 CAPABILITY\r\n"),
                (false, &caps[..cut]),
                (false, &second),
                (true, b"a2 LOGIN bob s3cret\r\n"),
                (false, b"a2 OK LOGIN completed\r\n"),
            ],
        );
    }
    let greeting: &[u8] =
        b"* OK [CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN] Dovecot ready; we will offer STARTTLS soon\r\n";
    let (one, two) = greeting.split_at(50);
    session(
        &mut b,
        3.0,
        42143,
        2143,
        &[
            (false, one),
            (false, two),
            (true, b"a2 LOGIN bob s3cret\r\n"),
            (false, b"a2 OK LOGIN completed\r\n"),
        ],
    );
    let ev = analyze_built(&b, "review-w-imap-caps.pcap");
    assert_eq!(
        finding_ports(&ev, "plaintext.starttls_unused"),
        [143, 1143],
        "{ev:#?}"
    );
    assert_eq!(stat(&ev, "security.starttls_unused"), 2);
    for port in [143, 1143, 2143] {
        assert_eq!(credential_kinds(internal(&ev, port)), ["imap-login"]);
    }
}

/// Item 5. A client pipelines `BDAT <size> LAST` and its chunk behind a `DATA` whose `354` has
/// not come (the server then refuses `DATA`: a client that chunks must not use it, RFC 3030
/// §2). The chunk's octets are message, not commands; it quotes a transcript with a line
/// `AUTH PLAIN <base64>`. No credential travelled: the finding names none and is medium.
/// Port 25: `DATA`, `BDAT` and the chunk in one segment; port 2525: the chunk's end in a second
/// segment. Before: the chunk was read as commands while `DATA` waited, and `smtp-auth` was
/// reported (critical).
#[test]
fn a_bdat_chunk_behind_a_data_waiting_for_its_354_is_not_read_as_commands() {
    let chunk: &[u8] = b"Subject: log\r\n\r\nAUTH PLAIN AGFsaWNlAFF1MHRlZFB3\r\n";
    let mut pipelined = format!("DATA\r\nBDAT {} LAST\r\n", chunk.len()).into_bytes();
    pipelined.extend_from_slice(chunk);
    let envelope: [(bool, &[u8]); 7] = [
        (false, b"220 mx.example ESMTP\r\n"),
        (true, b"EHLO c\r\n"),
        (
            false,
            b"250-mx.example\r\n250-CHUNKING\r\n250 AUTH PLAIN LOGIN\r\n",
        ),
        (true, b"MAIL FROM:<a@example.org>\r\n"),
        (false, b"250 2.1.0 Ok\r\n"),
        (true, b"RCPT TO:<b@example.org>\r\n"),
        (false, b"250 2.1.5 Ok\r\n"),
    ];
    let after: [(bool, &[u8]); 4] = [
        (false, b"503 5.5.1 DATA not allowed with BDAT\r\n"),
        (false, b"250 2.0.0 Ok: queued as 1A2B\r\n"),
        (true, b"QUIT\r\n"),
        (false, b"221 2.0.0 Bye\r\n"),
    ];
    let mut b = PcapBuilder::default();
    let mut steps = envelope.to_vec();
    steps.push((true, &pipelined));
    steps.extend_from_slice(&after);
    session(&mut b, 0.0, 40001, 25, &steps);
    let (one, two) = pipelined.split_at(pipelined.len() - 20);
    let mut steps = envelope.to_vec();
    steps.extend_from_slice(&[(true, one), (true, two)]);
    steps.extend_from_slice(&after);
    session(&mut b, 1.0, 40002, 2525, &steps);
    let ev = analyze_built(&b, "review-w-smtp-bdat-after-data.pcap");
    for port in [25, 2525] {
        let f = internal(&ev, port);
        assert_eq!(
            credential_kinds(f),
            Vec::<String>::new(),
            "port {port}: {}",
            message(f)
        );
        assert_eq!(f["event"]["severity"], 2, "port {port}: medium");
    }
    assert_eq!(stat(&ev, "security.credential_connections"), 0);
}
