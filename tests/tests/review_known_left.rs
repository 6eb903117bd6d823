//! Review of defects an earlier stop knew of and left: an endpoint outage keeping the time and
//! the client of a failed attempt that was taken back (it turned out answered), SMTP `BDAT`
//! chunks (RFC 3030) read as commands, an FTP `STAT` reply read as a `FEAT` feature list, and
//! an IMAP literal count `{n}` lost when its line is longer than the bytes kept across a
//! segment boundary. Every capture is built here packet by packet; the expected values follow
//! from the construction. Every test failed before its fix.

use observer_tests::tcp_flags::{ACK, RST, SYN};
use observer_tests::{
    PCAP_BUILDER_EPOCH, PcapBuilder, analyze_built, credential_kinds, internal, never_written,
    session, stat, with_rule,
};

/// `t` seconds after the builder's epoch, as the output writes times.
fn at(t: f64) -> String {
    let ns = PCAP_BUILDER_EPOCH as i64 * 1_000_000_000 + (t * 1e6).round() as i64 * 1_000;
    observer::time::Timestamp(ns).rfc3339_micros()
}

/// Item 1. 10.0.1.1:80 served 10.0.0.1 at 0 s, then refused two of its attempts (SYNs at 10 s
/// and 12 s). A third attempt, from 10.0.0.5 (SYNs at 20, 21 and 23 s), was counted
/// unanswered at its third SYN, then its client acknowledged a SYN/ACK the capture missed
/// (23.5 s): no failure. The outage's last failure is the refusal at 12 s, from 10.0.0.1 only,
/// and two attempts failed; it was reported with `last_failure_at` 20 s and 10.0.0.5 among
/// its clients.
#[test]
fn an_attempt_taken_back_leaves_neither_its_time_nor_its_client() {
    let (s, c1) = (("10.0.1.1", 80), "10.0.0.1");
    let mut b = PcapBuilder::default();
    b.connection(0.0, (c1, 40000), s);
    for (t, port) in [(10.0, 40001), (12.0, 40002)] {
        b.tcp(t, (c1, port), s, 7, 0, SYN, &[]).tcp(
            t + 0.0005,
            s,
            (c1, port),
            0,
            8,
            RST | ACK,
            &[],
        );
    }
    let c2 = ("10.0.0.5", 40003);
    for t in [20.0, 21.0, 23.0] {
        b.tcp(t, c2, s, 7, 0, SYN, &[]);
    }
    b.tcp(23.5, c2, s, 8, 501, ACK, &[]);
    b.udp(200.0, ("10.0.0.9", 5000), ("10.0.0.8", 5001), b"tick");
    let ev = analyze_built(&b, "review-left-taken-back.pcap");
    let v = with_rule(&ev, "endpoint.vanished");
    assert_eq!(v.len(), 1, "{v:#?}");
    let e = &v[0]["fallacy"]["evidence"];
    assert_eq!(e["failed_attempts"], 2, "{e:#}");
    assert_eq!(e["refused"], 2, "{e:#}");
    assert_eq!(e["unanswered"], 0, "{e:#}");
    assert_eq!(e["vanished_at"], at(10.0), "{e:#}");
    assert_eq!(e["last_failure_at"], at(12.0), "{e:#}");
    assert_eq!(e["clients"], serde_json::json!([c1]), "{e:#}");
    assert_eq!(e["clients_truncated"], false, "{e:#}");
}

/// The steps of an SMTP conversation up to its envelope (greeting, `EHLO` answered with
/// `CHUNKING`, `MAIL`, `RCPT`).
fn smtp_envelope() -> Vec<(bool, &'static [u8])> {
    vec![
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
    ]
}

/// Item 2. A message sent with `BDAT <size> LAST` (RFC 3030): the size's octets that follow
/// the command are the message, not commands, and this message quotes an SMTP transcript,
/// a line of which is `AUTH PLAIN <base64>`. The chunk is in the command's segment (25), or
/// spread over three segments (2525). No credential travelled: the findings name none and
/// are medium. Control (587): a chunk across two segments, then a real `AUTH PLAIN` right
/// after the chunk's last octet, in the same segment: `smtp-auth`, critical.
#[test]
fn smtp_bdat_chunks_are_not_read_as_commands() {
    let chunk: &[u8] = b"Subject: transcript\r\n\r\nC: AUTH PLAIN first\r\nAUTH PLAIN AGFsaWNlAFF1MHRlZFB3\r\n250 Ok\r\n";
    let bdat = format!("BDAT {} LAST\r\n", chunk.len());
    let mut whole = bdat.as_bytes().to_vec();
    whole.extend_from_slice(chunk);
    let after: [(bool, &[u8]); 3] = [
        (false, b"250 2.0.0 Ok: queued as 1A2B\r\n"),
        (true, b"QUIT\r\n"),
        (false, b"221 2.0.0 Bye\r\n"),
    ];
    let mut b = PcapBuilder::default();
    let mut steps = smtp_envelope();
    steps.push((true, &whole));
    steps.extend_from_slice(&after);
    session(&mut b, 0.0, 40001, 25, &steps);

    let (one, rest) = chunk.split_at(10);
    let (two, three) = rest.split_at(25);
    let mut first = bdat.as_bytes().to_vec();
    first.extend_from_slice(one);
    let mut steps = smtp_envelope();
    steps.extend_from_slice(&[(true, &first[..]), (true, two), (true, three)]);
    steps.extend_from_slice(&after);
    session(&mut b, 1.0, 40002, 2525, &steps);

    let (one, two) = chunk.split_at(40);
    let mut first = bdat.as_bytes().to_vec();
    first.extend_from_slice(one);
    let mut last = two.to_vec();
    last.extend_from_slice(b"AUTH PLAIN AGJvYgBSZTRsUGFzc3cwcmQ=\r\n");
    let mut steps = smtp_envelope();
    steps.extend_from_slice(&[
        (true, &first[..]),
        (true, &last[..]),
        (false, b"250 2.0.0 Ok: queued as 1A2C\r\n"),
        (false, b"235 2.7.0 Authentication successful\r\n"),
        (true, b"QUIT\r\n"),
        (false, b"221 2.0.0 Bye\r\n"),
    ]);
    session(&mut b, 2.0, 40003, 587, &steps);

    let ev = analyze_built(&b, "review-left-smtp-bdat.pcap");
    for port in [25, 2525] {
        let f = internal(&ev, port);
        assert_eq!(
            credential_kinds(f),
            Vec::<String>::new(),
            "port {port}: a chunk's line is no AUTH"
        );
        assert_eq!(
            f["event"]["severity"], 2,
            "port {port}: medium, no credential"
        );
    }
    let f = internal(&ev, 587);
    assert_eq!(credential_kinds(f), ["smtp-auth"]);
    assert_eq!(f["event"]["severity"], 4);
    assert_eq!(stat(&ev, "security.credential_connections"), 1);
    never_written(&ev, &["AGFsaWNlAFF1MHRlZFB3", "AGJvYgBSZTRsUGFzc3cwcmQ="]);
}

/// Item 4. An IMAP `APPEND` whose line is longer than 64 bytes (a long mailbox name) and ends
/// with the literal's count `{n}`, the line cut by a segment boundary: before the count
/// (143), and inside it, over three segments (1143). The literal is a message quoting an
/// IMAP transcript, a line of which is `a1 LOGIN alice …`: data, not a command. The client
/// had authenticated with GSSAPI: no credential travelled, the findings name none and are
/// medium. Control (2143): the same long line cut the same way, then a real `LOGIN` after
/// the literal: `imap-login`, critical.
#[test]
fn an_imap_literal_count_ending_a_long_cut_line_is_kept() {
    let message: &[u8] =
        b"Subject: transcript\r\n\r\na1 LOGIN alice Tr4nscriptPw\r\na1 OK LOGIN completed\r\n";
    let line = format!(
        "a2 APPEND \"INBOX/Archives/2026/projects/observer/reviews/transcripts\" (\\Seen) {{{}}}\r\n",
        message.len()
    );
    let line = line.as_bytes();
    assert!(line.len() > 80);
    let brace = line.iter().position(|&c| c == b'{').expect("a brace");
    let gssapi: [(bool, &[u8]); 5] = [
        (false, b"* OK [CAPABILITY IMAP4rev1 AUTH=GSSAPI] ready\r\n"),
        (true, b"a1 AUTHENTICATE GSSAPI\r\n"),
        (false, b"+ \r\n"),
        (
            true,
            b"YIIBdwYJKoZIhvcSAQICAQBuggFmMIIBYqADAgEFoQMCAQ4=\r\n",
        ),
        (false, b"a1 OK GSSAPI authentication successful\r\n"),
    ];
    let cuts: [Vec<&[u8]>; 2] = [
        vec![&line[..brace], &line[brace..]],
        vec![&line[..40], &line[40..brace + 2], &line[brace + 2..]],
    ];
    let mut b = PcapBuilder::default();
    for (i, (port, pieces)) in [(143, &cuts[0]), (1143, &cuts[1]), (2143, &cuts[0])]
        .into_iter()
        .enumerate()
    {
        let mut steps: Vec<(bool, &[u8])> = gssapi.to_vec();
        steps.extend(pieces.iter().map(|p| (true, *p)));
        steps.extend_from_slice(&[
            (false, b"+ Ready for literal data\r\n"),
            (true, message),
            (true, b"\r\n"),
            (false, b"a2 OK APPEND completed\r\n"),
        ]);
        if port == 2143 {
            steps.extend_from_slice(&[
                (true, b"a3 LOGIN carol Re4lPassw0rd\r\n"),
                (false, b"a3 OK\r\n"),
            ]);
        }
        steps.extend_from_slice(&[(true, b"a4 LOGOUT\r\n"), (false, b"* BYE\r\na4 OK\r\n")]);
        session(&mut b, i as f64, 40_001 + i as u16, port, &steps);
    }
    let ev = analyze_built(&b, "review-left-imap-long-literal.pcap");
    for port in [143, 1143] {
        let f = internal(&ev, port);
        assert_eq!(
            credential_kinds(f),
            Vec::<String>::new(),
            "port {port}: a literal's line is no LOGIN"
        );
        assert_eq!(
            f["event"]["severity"], 2,
            "port {port}: medium, no credential"
        );
    }
    let f = internal(&ev, 2143);
    assert_eq!(credential_kinds(f), ["imap-login"]);
    assert_eq!(f["event"]["severity"], 4);
    assert_eq!(stat(&ev, "security.credential_connections"), 1);
    never_written(&ev, &["Tr4nscriptPw", "Re4lPassw0rd"]);
}

/// A BER element: `tag`, its length (short or two-byte long form) and `content`.
fn ber(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    if content.len() < 128 {
        v.push(content.len() as u8);
    } else {
        v.push(0x82);
        v.extend_from_slice(&(content.len() as u16).to_be_bytes());
    }
    v.extend_from_slice(content);
    v
}

/// An SNMP v1 (`version` 0) or v2c (1) message (RFC 1157, RFC 1901) with `community` and a
/// PDU of tag `pdu` asking for sysDescr.0.
fn snmp_message(version: u8, community: &[u8], pdu: u8) -> Vec<u8> {
    let oid = ber(0x06, &[0x2b, 6, 1, 2, 1, 1, 1, 0]);
    let mut bind = oid;
    bind.extend_from_slice(&[0x05, 0x00]);
    let binds = ber(0x30, &ber(0x30, &bind));
    let mut body = ber(0x02, &[0x12, 0x34]);
    body.extend_from_slice(&ber(0x02, &[0]));
    body.extend_from_slice(&ber(0x02, &[0]));
    body.extend_from_slice(&binds);
    let mut msg = ber(0x02, &[version]);
    msg.extend_from_slice(&ber(0x04, community));
    msg.extend_from_slice(&ber(pdu, &body));
    ber(0x30, &msg)
}

/// Item 5. SNMP v1 and v2c carry their community string, the agent's password, in clear in
/// every message (UDP 161, traps to 162). A v2c `SetRequest` with a community of the
/// operator's own (10.0.0.2:161) is `snmp-community`, a password: critical. A v1
/// `GetRequest` with the well-known default `public` (10.0.0.3:161) is `snmp-community-public`,
/// no secret but an agent readable by anyone: high. A v1 trap with its own community
/// (10.0.0.4:162) is `snmp-community` too. An SNMPv3 message (10.0.0.5:161, its security in
/// its own header, no community) carries none: no finding. The communities never appear in
/// the output.
#[test]
fn snmp_communities_are_credentials_in_clear() {
    let c = "10.0.0.1";
    let mut b = PcapBuilder::default();
    b.udp(
        0.0,
        (c, 40001),
        ("10.0.0.2", 161),
        &snmp_message(1, b"n0c-Wr1te-S3cret", 0xa3),
    )
    .udp(
        0.001,
        ("10.0.0.2", 161),
        (c, 40001),
        &snmp_message(1, b"n0c-Wr1te-S3cret", 0xa2),
    )
    .udp(
        1.0,
        (c, 40002),
        ("10.0.0.3", 161),
        &snmp_message(0, b"public", 0xa0),
    )
    .udp(
        1.001,
        ("10.0.0.3", 161),
        (c, 40002),
        &snmp_message(0, b"public", 0xa2),
    )
    .udp(
        2.0,
        ("10.0.0.9", 40003),
        ("10.0.0.4", 162),
        &snmp_message(0, b"Tr4p-C0mmunity", 0xa4),
    );
    // SNMPv3: version 3, then the header's SEQUENCE (no community).
    let mut v3 = ber(0x02, &[3]);
    v3.extend_from_slice(&ber(
        0x30,
        &[2, 2, 0x12, 0x34, 2, 2, 5, 0xdc, 4, 1, 4, 2, 1, 3],
    ));
    v3.extend_from_slice(&ber(0x04, b"usm-params"));
    b.udp(3.0, (c, 40004), ("10.0.0.5", 161), &ber(0x30, &v3));
    let ev = analyze_built(&b, "review-left-snmp.pcap");
    let f = observer_tests::finding_to(&ev, "plaintext.internal", "10.0.0.2");
    assert_eq!(credential_kinds(f), ["snmp-community"]);
    assert_eq!(
        f["event"]["severity"], 4,
        "a community of its own: critical"
    );
    let f = observer_tests::finding_to(&ev, "plaintext.internal", "10.0.0.3");
    assert_eq!(credential_kinds(f), ["snmp-community-public"]);
    assert_eq!(
        f["event"]["severity"], 3,
        "the default read community: high"
    );
    let f = observer_tests::finding_to(&ev, "plaintext.internal", "10.0.0.4");
    assert_eq!(credential_kinds(f), ["snmp-community"]);
    assert!(
        with_rule(&ev, "plaintext.internal")
            .iter()
            .all(|f| f["destination"]["ip"] != "10.0.0.5"),
        "SNMPv3 has no community"
    );
    assert_eq!(stat(&ev, "security.credential_connections"), 3);
    assert_eq!(stat(&ev, "protocols.snmp"), 3);
    never_written(&ev, &["n0c-Wr1te-S3cret", "Tr4p-C0mmunity"]);
}
