//! Review of known defects in protocol identification, credentials and TCP counting
//! (`app::ident`, `analyze::security`, `flow::tcp`, `analyze::reliability`): an FTP STARTTLS
//! offer read from any line naming `AUTH TLS`, an SMTP connection left reading mail content
//! after its `.` was not captured, IMAP literals read as commands, RTSP URL passwords, a
//! TCP Fast Open SYN counted twice among the segments sent, MySQL cleartext passwords, and
//! an IMAP `* PREAUTH` greeting. Every capture is built here packet
//! by packet; the expected values follow from the construction (tshark as the oracle of the
//! segments counted). Every test failed before its fix.

use observer_tests::finding_ports;
use observer_tests::tcp_flags::{ACK, FIN, SYN};
use observer_tests::{
    PcapBuilder, SESSION_CLIENT as C, SESSION_SERVER as S, ScratchFile, analyze_built,
    credential_kinds, finding_at_port, finding_to, have, internal, message, never_written, session,
    stat, tshark_fields,
};

/// Like [`PcapBuilder::session`], but a step whose third member is `false` was sent and not
/// captured: its sequence space is used, its segment is not in the capture.
fn session_with_losses(
    b: &mut PcapBuilder,
    t0: f64,
    cport: u16,
    sport: u16,
    steps: &[(bool, &[u8], bool)],
) {
    let (c, s) = ((C, cport), (S, sport));
    let (mut cseq, mut sseq) = (101u32, 501u32);
    b.tcp(t0, c, s, 100, 0, SYN, &[])
        .tcp(t0 + 0.001, s, c, 500, 101, SYN | ACK, &[])
        .tcp(t0 + 0.002, c, s, 101, 501, ACK, &[]);
    let mut t = t0 + 0.002;
    for &(from_client, payload, captured) in steps {
        t += 0.001;
        if from_client {
            if captured {
                b.tcp(t, c, s, cseq, sseq, ACK, payload);
            }
            cseq += payload.len() as u32;
        } else {
            if captured {
                b.tcp(t, s, c, sseq, cseq, ACK, payload);
            }
            sseq += payload.len() as u32;
        }
    }
    b.tcp(t + 0.001, c, s, cseq, sseq, FIN | ACK, &[])
        .tcp(t + 0.002, s, c, sseq, cseq + 1, FIN | ACK, &[])
        .tcp(t + 0.003, c, s, cseq + 1, sseq + 1, ACK, &[]);
}

/// One segment of a [`session`]: from the client, and its payload.
type Step<'a> = (bool, &'a [u8]);

/// An FTP server offers TLS by listing `AUTH TLS` among the features of its `FEAT` reply
/// (RFC 2389, RFC 4217): a line of its own, after a space, inside the `211-` reply. Other
/// lines that name the command offer nothing: a refusal quoting it (21: the client asked with
/// `AUTH TLS`, the server answered `534 AUTH TLS not available…`), and help text mentioning it
/// (2121: `SITE HELP` answered by a `214` reply whose last line says to ask for it). Neither
/// is `plaintext.starttls_unused`. Nor is a status reply: the client asks for the features
/// (none is `AUTH TLS`), then for the server's status with `STAT`, whose `211-` reply has a
/// line ` AUTH TLS not negotiated …` (4121), or sends `STAT` alone (5121): only the reply to
/// `FEAT` lists features. Control (3121): the `FEAT` reply lists ` AUTH TLS` and the client
/// logs in in clear: the offer was left unused.
#[test]
fn only_a_feat_reply_offers_ftp_auth_tls() {
    let stat_reply: &[u8] = b"211-FTP server status:\r\n Connected to 10.0.0.1\r\n AUTH TLS not negotiated: control connection in clear\r\n211 End of status\r\n";
    let login: [(bool, &[u8]); 6] = [
        (true, b"USER bob\r\n"),
        (false, b"331 Password required for bob\r\n"),
        (true, b"PASS Ftp5ecretPw\r\n"),
        (false, b"230 User bob logged in\r\n"),
        (true, b"QUIT\r\n"),
        (false, b"221 Goodbye\r\n"),
    ];
    let conversations: [(u16, Vec<Step>); 5] = [
        (
            21,
            vec![
                (false, b"220 FTP server ready\r\n"),
                (true, b"AUTH TLS\r\n"),
                (
                    false,
                    b"534 AUTH TLS not available: TLS is not configured\r\n",
                ),
            ],
        ),
        (
            2121,
            vec![
                (false, b"220 FTP server ready\r\n"),
                (true, b"SITE HELP\r\n"),
                (
                    false,
                    b"214-The following SITE commands are recognized:\r\n CHMOD\r\n HELP\r\n214 To use AUTH TLS, ask the administrator to enable it\r\n",
                ),
            ],
        ),
        (
            3121,
            vec![
                (false, b"220 FTP server ready\r\n"),
                (true, b"FEAT\r\n"),
                (
                    false,
                    b"211-Features:\r\n AUTH TLS\r\n PBSZ\r\n PROT\r\n UTF8\r\n211 End\r\n",
                ),
            ],
        ),
        (
            4121,
            vec![
                (false, b"220 FTP server ready\r\n"),
                (true, b"FEAT\r\n"),
                (false, b"211-Features:\r\n UTF8\r\n MDTM\r\n211 End\r\n"),
                (true, b"STAT\r\n"),
                (false, stat_reply),
            ],
        ),
        (
            5121,
            vec![
                (false, b"220 FTP server ready\r\n"),
                (true, b"STAT\r\n"),
                (false, stat_reply),
            ],
        ),
    ];
    let mut b = PcapBuilder::default();
    for (i, (port, head)) in conversations.iter().enumerate() {
        let steps: Vec<(bool, &[u8])> = head.iter().chain(&login).copied().collect();
        session(&mut b, i as f64, 40_001 + i as u16, *port, &steps);
    }
    let ev = analyze_built(&b, "review-known-ftp-auth-tls.pcap");
    assert_eq!(
        finding_ports(&ev, "plaintext.starttls_unused"),
        [3121],
        "only the FEAT reply's feature line offers TLS"
    );
    assert_eq!(stat(&ev, "security.starttls_unused"), 1);
    for port in [21, 2121, 3121, 4121, 5121] {
        assert_eq!(credential_kinds(internal(&ev, port)), ["ftp-pass"]);
    }
    never_written(&ev, &["Ftp5ecretPw"]);
}

/// An SMTP client sends a message (`DATA`, the server's `354`, the content), but the segment
/// holding the lone `.` that ends it is missing from the capture (25), or the whole content
/// is (2525); the server's `250` after the end of data is captured. The client then
/// authenticates with `AUTH PLAIN <base64>` on the same connection and sends a second
/// message. The `250` after `354` means the content ended: the `AUTH PLAIN` is a command, a
/// password in clear (`smtp-auth`, critical) on both connections. The base64 never appears in
/// the output.
#[test]
fn an_smtp_end_of_data_not_captured_does_not_hide_later_commands() {
    let auth: &[u8] = b"AUTH PLAIN AGJvYgBTbXRwUzNjcmV0\r\n";
    let mut b = PcapBuilder::default();
    for (t, cport, sport, dot_alone) in [(0.0, 40001, 25, true), (1.0, 40002, 2525, false)] {
        let mut steps: Vec<(bool, &[u8], bool)> = vec![
            (false, b"220 mx.example ESMTP\r\n", true),
            (true, b"EHLO c\r\n", true),
            (false, b"250-mx.example\r\n250 AUTH PLAIN LOGIN\r\n", true),
            (true, b"MAIL FROM:<a@example.org>\r\n", true),
            (false, b"250 2.1.0 Ok\r\n", true),
            (true, b"RCPT TO:<b@example.org>\r\n", true),
            (false, b"250 2.1.5 Ok\r\n", true),
            (true, b"DATA\r\n", true),
            (false, b"354 End data with <CR><LF>.<CR><LF>\r\n", true),
        ];
        if dot_alone {
            steps.push((true, b"Subject: hello\r\n\r\nHello.\r\n", true));
            steps.push((true, b".\r\n", false));
        } else {
            steps.push((true, b"Subject: hello\r\n\r\nHello.\r\n.\r\n", false));
        }
        steps.extend_from_slice(&[
            (false, &b"250 2.0.0 Ok: queued as 1A2B\r\n"[..], true),
            (true, auth, true),
            (false, b"235 2.7.0 Authentication successful\r\n", true),
            (true, b"QUIT\r\n", true),
            (false, b"221 2.0.0 Bye\r\n", true),
        ]);
        session_with_losses(&mut b, t, cport, sport, &steps);
    }
    let ev = analyze_built(&b, "review-known-smtp-lost-dot.pcap");
    for port in [25, 2525] {
        let f = internal(&ev, port);
        assert_eq!(credential_kinds(f), ["smtp-auth"], "port {port}");
        assert_eq!(f["event"]["severity"], 4, "a password is critical");
    }
    assert_eq!(stat(&ev, "security.credential_connections"), 2);
    never_written(&ev, &["AGJvYgBTbXRwUzNjcmV0"]);
}

/// IMAP literals (`{n}` then, after the server's `+`, n octets; `{n+}` without waiting,
/// RFC 7888) are data, not commands. A client authenticated with GSSAPI (no password in
/// clear) appends a message whose text quotes an IMAP transcript, a line of which is
/// `a1 LOGIN alice …`: with a synchronizing literal (143) and with a non-synchronizing one cut
/// across two segments (1143). No credential travelled: the `plaintext.internal` findings name
/// none and are medium. Control (2143): a message appended the same way, then a real `LOGIN`
/// after the literal: `imap-login`, critical (the literal's end is found again).
#[test]
fn imap_literals_are_not_read_as_commands() {
    let message: &[u8] =
        b"Subject: transcript\r\n\r\na1 LOGIN alice Tr4nscriptPw\r\na1 OK LOGIN completed\r\n";
    let sync = format!("a2 APPEND INBOX {{{}}}\r\n", message.len());
    let plus = format!("a2 APPEND INBOX {{{}+}}\r\n", message.len());
    let (head, tail) = message.split_at(30);
    let mut plus_head = plus.as_bytes().to_vec();
    plus_head.extend_from_slice(head);
    let mut tail_end = tail.to_vec();
    tail_end.extend_from_slice(b"\r\n");
    let gssapi: [(bool, &[u8]); 5] = [
        (
            false,
            b"* OK [CAPABILITY IMAP4rev1 LITERAL+ AUTH=GSSAPI] ready\r\n",
        ),
        (true, b"a1 AUTHENTICATE GSSAPI\r\n"),
        (false, b"+ \r\n"),
        (
            true,
            b"YIIBdwYJKoZIhvcSAQICAQBuggFmMIIBYqADAgEFoQMCAQ4=\r\n",
        ),
        (false, b"a1 OK GSSAPI authentication successful\r\n"),
    ];
    let mut b = PcapBuilder::default();
    let mut steps: Vec<(bool, &[u8])> = gssapi.to_vec();
    steps.extend_from_slice(&[
        (true, sync.as_bytes()),
        (false, b"+ Ready for literal data\r\n"),
        (true, message),
        (true, b"\r\n"),
        (false, b"a2 OK APPEND completed\r\n"),
        (true, b"a3 LOGOUT\r\n"),
        (false, b"* BYE\r\na3 OK\r\n"),
    ]);
    session(&mut b, 0.0, 40001, 143, &steps);
    let mut steps: Vec<(bool, &[u8])> = gssapi.to_vec();
    steps.extend_from_slice(&[
        (true, &plus_head),
        (true, &tail_end),
        (false, b"a2 OK APPEND completed\r\n"),
        (true, b"a3 LOGOUT\r\n"),
        (false, b"* BYE\r\na3 OK\r\n"),
    ]);
    session(&mut b, 1.0, 40002, 1143, &steps);
    let mut literal_then_login = plus.as_bytes().to_vec();
    literal_then_login.extend_from_slice(message);
    literal_then_login.extend_from_slice(b"\r\na3 LOGIN carol Re4lPassw0rd\r\n");
    session(
        &mut b,
        2.0,
        40003,
        2143,
        &[
            (false, b"* OK [CAPABILITY IMAP4rev1 LITERAL+] ready\r\n"),
            (true, &literal_then_login),
            (
                false,
                b"a2 NO [AUTHENTICATIONFAILED] log in first\r\na3 OK\r\n",
            ),
            (true, b"a4 LOGOUT\r\n"),
            (false, b"* BYE\r\na4 OK\r\n"),
        ],
    );
    let ev = analyze_built(&b, "review-known-imap-literal.pcap");
    for port in [143, 1143] {
        let f = internal(&ev, port);
        assert_eq!(
            credential_kinds(f),
            Vec::<String>::new(),
            "port {port}: a literal's line is no LOGIN"
        );
        assert_eq!(f["event"]["severity"], 2, "medium: no credential");
    }
    let f = internal(&ev, 2143);
    assert_eq!(credential_kinds(f), ["imap-login"]);
    assert_eq!(f["event"]["severity"], 4);
    assert_eq!(stat(&ev, "security.credential_connections"), 1);
    never_written(&ev, &["Tr4nscriptPw", "Re4lPassw0rd"]);
}

/// A camera's RTSP URL with `user:password@` in its authority (`DESCRIBE
/// rtsp://admin:…@10.0.0.2:554/stream1 RTSP/1.0`, 554) sends the password in clear, as an HTTP
/// absolute-form target does: `http-url-password`, critical. Controls: a URL with a user and
/// no password (8554) and one without user information (1554) carry none. The password never
/// appears in the output.
#[test]
fn an_rtsp_url_password_is_a_password_in_clear() {
    let reply: &[u8] = b"RTSP/1.0 200 OK\r\nCSeq: 2\r\n\r\n";
    let urls: [(u16, &str); 3] = [
        (554, "rtsp://admin:Cam3raS3cret@10.0.0.2:554/stream1"),
        (8554, "rtsp://viewer@10.0.0.2:8554/stream1"),
        (1554, "rtsp://10.0.0.2:1554/stream1"),
    ];
    let reqs: Vec<String> = urls
        .iter()
        .map(|(_, u)| {
            format!("DESCRIBE {u} RTSP/1.0\r\nCSeq: 2\r\nAccept: application/sdp\r\n\r\n")
        })
        .collect();
    let mut b = PcapBuilder::default();
    for (i, ((port, _), req)) in urls.iter().zip(&reqs).enumerate() {
        session(
            &mut b,
            i as f64,
            40_001 + i as u16,
            *port,
            &[(true, req.as_bytes()), (false, reply)],
        );
    }
    let ev = analyze_built(&b, "review-known-rtsp-url.pcap");
    let f = internal(&ev, 554);
    assert_eq!(f["fallacy"]["evidence"]["protocol"], "rtsp");
    assert_eq!(credential_kinds(f), ["http-url-password"]);
    assert_eq!(f["event"]["severity"], 4, "a password is critical");
    for port in [8554, 1554] {
        assert!(credential_kinds(internal(&ev, port)).is_empty(), "{port}");
    }
    assert_eq!(stat(&ev, "security.credential_connections"), 1);
    never_written(&ev, &["Cam3raS3cret"]);
}

/// A TCP Fast Open connection: the client's SYN carries 100 bytes (RFC 7413), which the
/// SYN/ACK acknowledges. The client then sends 26 segments of 100 bytes, 3 of them sent again
/// 300 ms later after the server acknowledged only what came before (RTO retransmissions). The
/// client sent 30 segments that took sequence space (the SYN with its data is one segment,
/// counted once, as README says and as tshark counts frames) and 3 retransmissions: 10.0 %,
/// high. (Counted twice, the SYN makes 31 segments: 9.7 %, medium.)
#[test]
fn a_fast_open_syn_with_data_is_one_segment_sent() {
    let (c, s) = ((C, 40001), (S, 7443));
    let mut b = PcapBuilder::default();
    b.tcp(0.0, c, s, 1000, 0, SYN, &[0x41; 100])
        .tcp(0.001, s, c, 5000, 1101, SYN | ACK, &[])
        .tcp(0.002, c, s, 1101, 5001, ACK, &[]);
    let mut seq = 1101u32;
    let mut t = 0.01;
    for i in 0..26 {
        b.tcp(t, c, s, seq, 5001, ACK, &[0x42; 100]);
        if i % 9 == 4 {
            // Lost on the way: the server acknowledges what came before, the client resends.
            b.tcp(t + 0.001, s, c, 5001, seq, ACK, &[]);
            t += 0.3;
            b.tcp(t, c, s, seq, 5001, ACK, &[0x42; 100]);
        }
        seq += 100;
        b.tcp(t + 0.001, s, c, 5001, seq, ACK, &[]);
        t += 0.01;
    }
    let file = ScratchFile::new("review-known-tfo.pcap", &b.finish());
    if have("tshark") {
        let path = file.to_string_lossy();
        let sent = tshark_fields(
            &path,
            &["frame.number"],
            "tcp.srcport == 40001 && (tcp.len > 0 || tcp.flags.syn == 1 || tcp.flags.fin == 1)",
        );
        assert_eq!(sent.lines().count(), 30, "tshark: segments sent");
        let resent = tshark_fields(&path, &["frame.number"], "tcp.analysis.retransmission");
        assert_eq!(resent.lines().count(), 3, "tshark: retransmissions");
    }
    let ev = analyze_built(&b, "review-known-tfo.pcap");
    let f = finding_at_port(&ev, "tcp.retransmission.excessive", 7443);
    assert!(
        message(f).contains("retransmitted 3 of 30 segments (10.0 %"),
        "{}",
        message(f)
    );
    assert_eq!(f["event"]["severity"], 3, "10 % is high: {f:#}");
    let rate = f["fallacy"]["evidence"]["client_to_server"]["retransmission_rate"]
        .as_f64()
        .expect("a rate");
    assert!((rate - 0.1).abs() < 1e-9, "rate {rate}");
}

/// A MySQL packet: 3-byte little-endian length, sequence number, body.
fn mysql_packet(seq: u8, body: &[u8]) -> Vec<u8> {
    let mut p = (body.len() as u32).to_le_bytes()[..3].to_vec();
    p.push(seq);
    p.extend_from_slice(body);
    p
}

/// A MySQL server greeting (protocol 10) without CLIENT_SSL, whose default plugin is
/// `caching_sha2_password`.
fn mysql_greeting() -> Vec<u8> {
    let mut g = vec![10];
    g.extend_from_slice(b"8.0.36\0");
    g.extend_from_slice(&7u32.to_le_bytes()); // thread id
    g.extend_from_slice(b"abcdefgh\0"); // auth data, filler
    g.extend_from_slice(&0xf7ffu16.to_le_bytes()); // capabilities (low), no CLIENT_SSL
    g.push(255); // character set
    g.extend_from_slice(&2u16.to_le_bytes()); // status
    g.extend_from_slice(&0x00ffu16.to_le_bytes()); // capabilities (high)
    g.push(21);
    g.extend_from_slice(&[0; 10]);
    g.extend_from_slice(b"ijklmnopqrst\0");
    g.extend_from_slice(b"caching_sha2_password\0");
    mysql_packet(0, &g)
}

/// A HandshakeResponse41 for user `app` (CLIENT_PROTOCOL_41, SECURE_CONNECTION,
/// PLUGIN_AUTH): the auth response with a 1-byte length, then the plugin's name.
fn mysql_login(auth: &[u8], plugin: &str) -> Vec<u8> {
    let caps: u32 = 0x0200 | 0x8000 | 0x0008_0000;
    let mut r = caps.to_le_bytes().to_vec();
    r.extend_from_slice(&(16u32 << 20).to_le_bytes()); // max packet
    r.push(255);
    r.extend_from_slice(&[0; 23]);
    r.extend_from_slice(b"app\0");
    r.push(auth.len() as u8);
    r.extend_from_slice(auth);
    r.extend_from_slice(plugin.as_bytes());
    r.push(0);
    mysql_packet(1, &r)
}

/// MySQL's `mysql_clear_password` authentication sends the password itself (for PAM or LDAP
/// accounts): named in the client's handshake response with the password as its auth
/// response (10.0.0.2), or asked for by the server's AuthSwitchRequest (0xfe, the plugin's
/// name), which the client answers with the password and a NUL (10.0.0.3). Both are a password
/// in clear: `mysql-clear-password`, critical. Control (10.0.0.4): `caching_sha2_password`'s
/// 32-byte scramble is no password. The passwords never appear in the output.
#[test]
fn a_mysql_cleartext_password_is_a_password_in_clear() {
    let ok = mysql_packet(2, &[0, 0, 0, 2, 0, 0, 0]);
    let direct = mysql_login(b"MyClearS3cret\0", "mysql_clear_password");
    let scramble = mysql_login(&[0x5a; 32], "caching_sha2_password");
    let mut switch = vec![0xfe];
    switch.extend_from_slice(b"mysql_clear_password\0");
    let switch = mysql_packet(2, &switch);
    let answer = mysql_packet(3, b"Sw1tchedS3cret\0");
    let ok4 = mysql_packet(4, &[0, 0, 0, 2, 0, 0, 0]);
    let greeting = mysql_greeting();
    let conversations: [(&str, Vec<Step>); 3] = [
        (
            "10.0.0.2",
            vec![(false, &greeting), (true, &direct), (false, &ok)],
        ),
        (
            "10.0.0.3",
            vec![
                (false, &greeting),
                (true, &scramble),
                (false, &switch),
                (true, &answer),
                (false, &ok4),
            ],
        ),
        (
            "10.0.0.4",
            vec![(false, &greeting), (true, &scramble), (false, &ok)],
        ),
    ];
    let mut b = PcapBuilder::default();
    for (i, (server, steps)) in conversations.iter().enumerate() {
        b.session(i as f64, (C, 40_001 + i as u16), (server, 3306), steps);
    }
    let file = ScratchFile::new("review-known-mysql-clear.pcap", &b.finish());
    if have("tshark") {
        // tshark reads the packets as built: the plugins named, the switch asked.
        let path = file.to_string_lossy();
        let plugins = tshark_fields(&path, &["mysql.client_auth_plugin"], "mysql.user");
        assert_eq!(
            plugins.lines().collect::<Vec<_>>(),
            [
                "mysql_clear_password",
                "caching_sha2_password",
                "caching_sha2_password"
            ]
        );
        let switch = tshark_fields(&path, &["mysql.auth_switch_request.name"], "");
        assert_eq!(switch.trim(), "mysql_clear_password");
    }
    let ev = analyze_built(&b, "review-known-mysql-clear.pcap");
    for server in ["10.0.0.2", "10.0.0.3"] {
        let f = finding_to(&ev, "plaintext.internal", server);
        assert_eq!(f["fallacy"]["evidence"]["protocol"], "mysql");
        assert_eq!(credential_kinds(f), ["mysql-clear-password"], "{server}");
        assert_eq!(f["event"]["severity"], 4, "a password is critical");
    }
    let f = finding_to(&ev, "plaintext.internal", "10.0.0.4");
    assert!(credential_kinds(f).is_empty(), "a scramble is no password");
    assert_eq!(f["event"]["severity"], 2);
    assert_eq!(stat(&ev, "security.credential_connections"), 2);
    never_written(&ev, &["MyClearS3cret", "Sw1tchedS3cret"]);
}

/// An IMAP server that greets a client already authenticated (by its address, or a
/// pre-authenticated tunnel) sends `* PREAUTH` instead of `* OK` (RFC 9051 §7.1.4): the
/// session is IMAP in clear all the same, mail and all. `plaintext.internal` for 143 names
/// the protocol `imap`, which `stats.protocols.imap` counts.
#[test]
fn an_imap_preauth_greeting_is_imap() {
    let mut b = PcapBuilder::default();
    session(
        &mut b,
        0.0,
        40001,
        143,
        &[
            (
                false,
                b"* PREAUTH [CAPABILITY IMAP4rev1] IMAP server logged in as alice\r\n",
            ),
            (true, b"a1 SELECT INBOX\r\n"),
            (
                false,
                b"* 3 EXISTS\r\na1 OK [READ-WRITE] SELECT completed\r\n",
            ),
            (true, b"a2 LOGOUT\r\n"),
            (false, b"* BYE\r\na2 OK\r\n"),
        ],
    );
    let ev = analyze_built(&b, "review-known-imap-preauth.pcap");
    let f = internal(&ev, 143);
    assert_eq!(f["fallacy"]["evidence"]["protocol"], "imap");
    assert_eq!(stat(&ev, "protocols.imap"), 1);
}
