//! Review of the security analyzer and the text protocols' credential and STARTTLS detection:
//! each case built here from packets, the expected values from the construction.

use observer_tests::{
    PcapBuilder, analyze_built, credential_kinds, internal, session, stat, with_rule,
};

/// Four connections, each sending its password command in two client segments (as a client
/// that writes the verb and its argument separately, or a segment boundary at the MSS does):
/// POP3 `PA` + `SS secret\r\n` (110), SMTP `AUTH PL` + `AIN <base64>\r\n` (25), IMAP
/// `a1 LOG` + `IN alice secret\r\n` (143), FTP `PASS` + ` secret\r\n` (21). Every one carried a
/// password in clear inside the internal network: each port's `plaintext.internal` names its
/// kind and is critical. Control: the same POP3 session with `PASS secret\r\n` whole (port
/// 1110 is not used; the control is a second connection to 110 from another client port,
/// counted in the same finding).
#[test]
fn a_password_command_split_across_segments_is_still_a_password() {
    let mut b = PcapBuilder::default();
    session(
        &mut b,
        0.0,
        40001,
        110,
        &[
            (false, b"+OK POP3 ready\r\n"),
            (true, b"USER alice\r\n"),
            (false, b"+OK\r\n"),
            (true, b"PA"),
            (true, b"SS secret\r\n"),
            (false, b"+OK logged in\r\n"),
            (true, b"QUIT\r\n"),
            (false, b"+OK bye\r\n"),
        ],
    );
    session(
        &mut b,
        1.0,
        40002,
        25,
        &[
            (false, b"220 mx.example ESMTP\r\n"),
            (true, b"EHLO c\r\n"),
            (false, b"250-mx.example\r\n250 AUTH PLAIN LOGIN\r\n"),
            (true, b"AUTH PL"),
            (true, b"AIN AGFsaWNlAHNlY3JldA==\r\n"),
            (false, b"235 2.7.0 Authentication successful\r\n"),
            (true, b"QUIT\r\n"),
            (false, b"221 bye\r\n"),
        ],
    );
    session(
        &mut b,
        2.0,
        40003,
        143,
        &[
            (false, b"* OK IMAP4rev1 ready\r\n"),
            (true, b"a1 LOG"),
            (true, b"IN alice secret\r\n"),
            (false, b"a1 OK LOGIN completed\r\n"),
            (true, b"a2 LOGOUT\r\n"),
            (false, b"* BYE\r\na2 OK\r\n"),
        ],
    );
    session(
        &mut b,
        3.0,
        40004,
        21,
        &[
            (false, b"220 FTP server ready\r\n"),
            (true, b"USER alice\r\n"),
            (false, b"331 Password required\r\n"),
            (true, b"PASS"),
            (true, b" secret\r\n"),
            (false, b"230 Logged in\r\n"),
            (true, b"QUIT\r\n"),
            (false, b"221 bye\r\n"),
        ],
    );
    let ev = analyze_built(&b, "review_split_password.pcap");
    for (port, kind) in [
        (110, "pop3-pass"),
        (25, "smtp-auth"),
        (143, "imap-login"),
        (21, "ftp-pass"),
    ] {
        let f = internal(&ev, port);
        assert_eq!(credential_kinds(f), [kind], "port {port}");
        assert_eq!(
            f["event"]["severity"], 4,
            "port {port}: a password is critical"
        );
    }
    assert_eq!(stat(&ev, "security.credential_connections"), 4);
}

/// An SMTP session (25) without authentication that sends a message whose body line
/// "In the mail client, choose AUTH PLAIN and then Save." is cut by a segment boundary just
/// before "AUTH PLAIN": the second segment starts mid-line. No credential travelled: the
/// `plaintext.internal` finding names none and is medium. Control: the same session with the
/// body in one segment (port 2525) names none either.
#[test]
fn a_segment_starting_mid_line_is_not_a_command() {
    let body = |split: bool| -> Vec<(bool, &'static [u8])> {
        let mut v: Vec<(bool, &'static [u8])> = vec![
            (false, b"220 mx.example ESMTP\r\n"),
            (true, b"EHLO c\r\n"),
            (false, b"250 mx.example\r\n"),
            (true, b"MAIL FROM:<a@example.org>\r\n"),
            (false, b"250 2.1.0 Ok\r\n"),
            (true, b"RCPT TO:<b@example.org>\r\n"),
            (false, b"250 2.1.5 Ok\r\n"),
            (true, b"DATA\r\n"),
            (false, b"354 End data with <CR><LF>.<CR><LF>\r\n"),
        ];
        if split {
            v.push((true, b"Subject: setup\r\n\r\nIn the mail client, choose "));
            v.push((true, b"AUTH PLAIN and then Save.\r\n.\r\n"));
        } else {
            v.push((
                true,
                b"Subject: setup\r\n\r\nIn the mail client, choose AUTH PLAIN and then Save.\r\n.\r\n",
            ));
        }
        v.extend_from_slice(&[
            (false, b"250 2.0.0 Ok: queued\r\n"),
            (true, b"QUIT\r\n"),
            (false, b"221 bye\r\n"),
        ]);
        v
    };
    let mut b = PcapBuilder::default();
    session(&mut b, 0.0, 40001, 25, &body(true));
    session(&mut b, 1.0, 40002, 2525, &body(false));
    let ev = analyze_built(&b, "review_mid_line.pcap");
    for port in [2525, 25] {
        let f = internal(&ev, port);
        assert_eq!(
            credential_kinds(f),
            Vec::<String>::new(),
            "port {port}: no credential was sent"
        );
        assert_eq!(f["event"]["severity"], 2, "port {port}: medium");
    }
    assert_eq!(stat(&ev, "security.credential_connections"), 0);
}

/// Three sessions whose server offered STARTTLS (or STLS) and refused it when the client asked;
/// the client then carried on in clear, and a later, unrelated success reply came:
/// * POP3 (110): `STLS` → `-ERR TLS not available`, then `USER alice` → `+OK`;
/// * SMTP (25): `STARTTLS` → `454 4.7.0 TLS not available`, then `MAIL FROM` → `250 2.1.0 Ok`;
/// * IMAP (143): `a1 STARTTLS` → `a1 NO TLS is broken here` (the word "broken" holds "ok"),
///   then `a2 NOOP` → `a2 OK`.
///
/// No TLS ever started: each is a connection in clear inside the internal network
/// (`plaintext.internal`, medium, no credentials) and one whose server offered STARTTLS and
/// which carried on in clear (`plaintext.starttls_unused`). Control: a POP3 session (port
/// 1110) whose STLS was answered `+OK` and followed by a TLS ClientHello is neither.
#[test]
fn a_refused_starttls_is_not_an_upgrade() {
    let mut b = PcapBuilder::default();
    session(
        &mut b,
        0.0,
        40001,
        110,
        &[
            (false, b"+OK POP3 ready\r\n"),
            (true, b"CAPA\r\n"),
            (false, b"+OK\r\nUSER\r\nSTLS\r\n.\r\n"),
            (true, b"STLS\r\n"),
            (false, b"-ERR TLS not available\r\n"),
            (true, b"USER alice\r\n"),
            (false, b"+OK\r\n"),
            (true, b"QUIT\r\n"),
            (false, b"+OK bye\r\n"),
        ],
    );
    session(
        &mut b,
        1.0,
        40002,
        25,
        &[
            (false, b"220 mx.example ESMTP\r\n"),
            (true, b"EHLO c\r\n"),
            (false, b"250-mx.example\r\n250 STARTTLS\r\n"),
            (true, b"STARTTLS\r\n"),
            (false, b"454 4.7.0 TLS not available\r\n"),
            (true, b"MAIL FROM:<a@example.org>\r\n"),
            (false, b"250 2.1.0 Ok\r\n"),
            (true, b"QUIT\r\n"),
            (false, b"221 bye\r\n"),
        ],
    );
    session(
        &mut b,
        2.0,
        40003,
        143,
        &[
            (false, b"* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n"),
            (true, b"a1 STARTTLS\r\n"),
            (false, b"a1 NO TLS is broken here\r\n"),
            (true, b"a2 NOOP\r\n"),
            (false, b"a2 OK NOOP completed\r\n"),
            (true, b"a3 LOGOUT\r\n"),
            (false, b"* BYE\r\na3 OK\r\n"),
        ],
    );
    // Control: STLS accepted, then TLS.
    let body = observer_tests::client_hello_body(&[]);
    let mut hello = vec![1, 0];
    hello.extend_from_slice(&(body.len() as u16).to_be_bytes());
    hello.extend_from_slice(&body);
    let mut record = vec![0x16, 3, 1];
    record.extend_from_slice(&(hello.len() as u16).to_be_bytes());
    record.extend_from_slice(&hello);
    session(
        &mut b,
        3.0,
        40004,
        1110,
        &[
            (false, b"+OK POP3 ready\r\n"),
            (true, b"CAPA\r\n"),
            (false, b"+OK\r\nSTLS\r\n.\r\n"),
            (true, b"STLS\r\n"),
            (false, b"+OK Begin TLS\r\n"),
            (true, &record),
        ],
    );
    let ev = analyze_built(&b, "review_refused_starttls.pcap");
    let ports = |rule: &str| -> Vec<u64> {
        let mut v: Vec<_> = with_rule(&ev, rule)
            .iter()
            .map(|f| f["destination"]["port"].as_u64().expect("a port"))
            .collect();
        v.sort_unstable();
        v
    };
    assert_eq!(
        ports("plaintext.internal"),
        [25, 110, 143],
        "in clear inside the internal network (not the upgraded control, 1110)"
    );
    assert_eq!(
        ports("plaintext.starttls_unused"),
        [25, 110, 143],
        "STARTTLS refused, carried on in clear"
    );
    for port in [110, 25, 143] {
        let f = internal(&ev, port);
        assert_eq!(credential_kinds(f), Vec::<String>::new(), "port {port}");
        assert_eq!(f["event"]["severity"], 2, "port {port}: medium");
    }
    assert_eq!(stat(&ev, "security.starttls_unused"), 3);
}
