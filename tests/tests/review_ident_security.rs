//! Review of protocol identification by content and the plaintext-security findings
//! (`app::ident`, `analyze::security`): credentials missed or invented, STARTTLS offers read
//! where there were none. Every conversation is built here packet by packet; the expected values
//! follow from the construction.

use observer_tests::finding_ports;
use observer_tests::{
    PcapBuilder, ScratchFile, analyze_built, credential_kinds, internal, session, stat,
};
use serde_json::Value;

/// An SMTP session (25) without authentication whose message body has a line starting
/// "AUTH PLAIN is required…" (a mail about the relay's new rules): the body follows `DATA`
/// and the server's `354`, and ends at the lone `.`. No credential travelled: the
/// `plaintext.internal` finding for 25 names none and is medium. Control: a session (587)
/// that authenticates with `AUTH PLAIN <base64>` before sending the same message names
/// `smtp-auth` and is critical.
#[test]
fn an_smtp_message_body_is_not_read_as_commands() {
    let body: &[u8] = b"Subject: relay\r\n\r\nAUTH PLAIN is required on port 587 from Monday.\r\nAUTH LOGIN too.\r\n.\r\n";
    let mail = |auth: bool| -> Vec<(bool, &'static [u8])> {
        let mut v: Vec<(bool, &'static [u8])> = vec![
            (false, b"220 mx.example ESMTP\r\n"),
            (true, b"EHLO c\r\n"),
            (false, b"250-mx.example\r\n250 AUTH PLAIN LOGIN\r\n"),
        ];
        if auth {
            v.push((true, b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"));
            v.push((false, b"235 2.7.0 Authentication successful\r\n"));
        }
        v.extend_from_slice(&[
            (true, b"MAIL FROM:<a@example.org>\r\n"),
            (false, b"250 2.1.0 Ok\r\n"),
            (true, b"RCPT TO:<b@example.org>\r\n"),
            (false, b"250 2.1.5 Ok\r\n"),
            (true, b"DATA\r\n"),
            (false, b"354 End data with <CR><LF>.<CR><LF>\r\n"),
        ]);
        v
    };
    let mut b = PcapBuilder::default();
    for (t, cport, sport, auth) in [(0.0, 40001, 25, false), (1.0, 40002, 587, true)] {
        let mut steps = mail(auth);
        steps.push((true, body));
        steps.push((false, b"250 2.0.0 Ok: queued\r\n"));
        steps.push((true, b"QUIT\r\n"));
        steps.push((false, b"221 bye\r\n"));
        session(&mut b, t, cport, sport, &steps);
    }
    let ev = analyze_built(&b, "review_ident_smtp_body.pcap");
    let f = internal(&ev, 25);
    assert_eq!(
        credential_kinds(f),
        Vec::<String>::new(),
        "a body line is no AUTH command"
    );
    assert_eq!(f["event"]["severity"], 2, "medium: no credential");
    let f = internal(&ev, 587);
    assert_eq!(credential_kinds(f), ["smtp-auth"]);
    assert_eq!(f["event"]["severity"], 4, "a password is critical");
    assert_eq!(stat(&ev, "security.credential_connections"), 1);
}

/// Two anonymous FTP logins (21), `USER anonymous` and `USER FTP`, each with the customary
/// e-mail address as `PASS` (RFC 1635): public access, no secret. The `plaintext.internal`
/// finding for 21 counts both connections, names no credential and is medium. (A named
/// user's `PASS` stays `ftp-pass`, critical: review_security.rs covers it.)
#[test]
fn an_anonymous_ftp_login_carries_no_password() {
    let mut b = PcapBuilder::default();
    for (t, cport, user) in [
        (0.0, 40001, &b"USER anonymous\r\n"[..]),
        (1.0, 40002, b"USER FTP\r\n"),
    ] {
        session(
            &mut b,
            t,
            cport,
            21,
            &[
                (false, b"220 FTP server ready\r\n"),
                (true, user),
                (
                    false,
                    b"331 Guest login ok, send your e-mail address as password\r\n",
                ),
                (true, b"PASS guest@example.org\r\n"),
                (false, b"230 Guest login ok\r\n"),
                (true, b"QUIT\r\n"),
                (false, b"221 bye\r\n"),
            ],
        );
    }
    let ev = analyze_built(&b, "review_ident_anonymous_ftp.pcap");
    let f = internal(&ev, 21);
    assert_eq!(f["fallacy"]["evidence"]["connections"], 2);
    assert_eq!(credential_kinds(f), Vec::<String>::new(), "anonymous");
    assert_eq!(f["event"]["severity"], 2, "medium: no password");
    assert_eq!(stat(&ev, "security.credential_connections"), 0);
}

/// An IMAP session (143) whose server never announces STARTTLS (`* OK [CAPABILITY IMAP4rev1
/// AUTH=PLAIN]`), and which fetches a message whose subject and text mention STARTTLS: that is
/// mail content in a literal, no offer. No `plaintext.starttls_unused` for 143. Controls, which
/// are offers the client ignored: the capability in the greeting (1143), and in the answer to
/// `CAPABILITY` (2143).
#[test]
fn mail_mentioning_starttls_is_no_imap_offer() {
    let mut b = PcapBuilder::default();
    session(
        &mut b,
        0.0,
        40001,
        143,
        &[
            (false, b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n"),
            (true, b"a1 SELECT INBOX\r\n"),
            (false, b"* 1 EXISTS\r\na1 OK [READ-WRITE] SELECT completed\r\n"),
            (true, b"a2 FETCH 1 BODY[]\r\n"),
            (
                false,
                b"* 1 FETCH (BODY[] {80}\r\nSubject: STARTTLS on the relay\r\n\r\nThe relay still takes mail without STARTTLS.\r\n)\r\na2 OK FETCH completed\r\n",
            ),
            (true, b"a3 LOGOUT\r\n"),
            (false, b"* BYE\r\na3 OK\r\n"),
        ],
    );
    session(
        &mut b,
        1.0,
        40002,
        1143,
        &[
            (
                false,
                b"* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] ready\r\n",
            ),
            (true, b"a1 LOGOUT\r\n"),
            (false, b"* BYE\r\na1 OK\r\n"),
        ],
    );
    session(
        &mut b,
        2.0,
        40003,
        2143,
        &[
            (false, b"* OK ready\r\n"),
            (true, b"a1 CAPABILITY\r\n"),
            (
                false,
                b"* CAPABILITY IMAP4rev1 STARTTLS\r\na1 OK CAPABILITY completed\r\n",
            ),
            (true, b"a2 LOGOUT\r\n"),
            (false, b"* BYE\r\na2 OK\r\n"),
        ],
    );
    let ev = analyze_built(&b, "review_ident_imap_offer.pcap");
    assert_eq!(
        finding_ports(&ev, "plaintext.starttls_unused"),
        [1143, 2143],
        "only the announced offers"
    );
    assert_eq!(stat(&ev, "security.starttls_unused"), 2);
}

/// BER definite length of `n` bytes.
fn ber_len(n: usize) -> Vec<u8> {
    match n {
        0..=127 => vec![n as u8],
        128..=255 => vec![0x81, n as u8],
        _ => vec![0x82, (n >> 8) as u8, n as u8],
    }
}

/// A BER element: `tag`, its length, `content`.
fn ber(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend_from_slice(&ber_len(content.len()));
    v.extend_from_slice(content);
    v
}

/// An LDAPMessage (RFC 4511 §4.1.1): SEQUENCE { messageID INTEGER, protocolOp }.
fn ldap_message(id: u8, op: &[u8]) -> Vec<u8> {
    ber(0x30, &[&[0x02, 0x01, id][..], op].concat())
}

/// A BindRequest ([APPLICATION 0]) of version 3 with simple authentication ([0]).
fn simple_bind(id: u8, dn: &[u8], password: &[u8]) -> Vec<u8> {
    let op = [
        &[0x02, 0x01, 0x03][..],
        &ber(0x04, dn),
        &ber(0x80, password),
    ]
    .concat();
    ldap_message(id, &ber(0x60, &op))
}

/// A BindResponse ([APPLICATION 1]) with resultCode success, empty matchedDN and message.
fn bind_success(id: u8) -> Vec<u8> {
    ldap_message(id, &ber(0x61, &[0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00]))
}

/// An application binding to a directory (389) with a simple bind: its DN and password in
/// clear (RFC 4513 §5.1.3), then an UnbindRequest. That is a password inside the internal
/// network: `plaintext.internal` for 389 names `ldap-simple-bind`, is critical, its evidence
/// says `ldap`, and the password is nowhere in the output. Control: an anonymous bind (empty
/// DN and password, RFC 4513 §5.1.1) to 10389 is LDAP in clear without a credential (medium).
/// tshark, when installed, decodes the same binds (its `ldap.simple` field holds the password).
#[test]
fn an_ldap_simple_bind_is_a_password_in_clear() {
    const SECRET: &[u8] = b"Ldap-SECRET-pw";
    let unbind = ldap_message(2, &[0x42, 0x00]);
    let mut b = PcapBuilder::default();
    for (t, cport, sport, dn, pw) in [
        (
            0.0,
            40001,
            389,
            &b"cn=svc,ou=apps,dc=example,dc=org"[..],
            SECRET,
        ),
        (1.0, 40002, 10389, b"", b""),
    ] {
        session(
            &mut b,
            t,
            cport,
            sport,
            &[
                (true, &simple_bind(1, dn, pw)),
                (false, &bind_success(1)),
                (true, &unbind),
            ],
        );
    }
    if observer_tests::have("tshark") {
        let f = ScratchFile::new("review_ident_ldap_oracle.pcap", &b.finish());
        let simple = observer_tests::tshark_fields(
            &f.to_string_lossy(),
            &["tcp.dstport", "ldap.simple"],
            "ldap.bindRequest_element",
        );
        let secret = String::from_utf8_lossy(SECRET);
        assert!(
            simple.lines().any(|l| l == format!("389\t{secret}")),
            "tshark reads the bind to 389: {simple}"
        );
    }
    let ev = analyze_built(&b, "review_ident_ldap.pcap");
    let f = internal(&ev, 389);
    assert_eq!(f["fallacy"]["evidence"]["protocol"], "ldap");
    assert_eq!(credential_kinds(f), ["ldap-simple-bind"]);
    assert_eq!(f["event"]["severity"], 4, "a password is critical");
    let f = internal(&ev, 10389);
    assert_eq!(f["fallacy"]["evidence"]["protocol"], "ldap");
    assert_eq!(credential_kinds(f), Vec::<String>::new(), "anonymous bind");
    assert_eq!(f["event"]["severity"], 2);
    assert_eq!(stat(&ev, "security.credential_connections"), 1);
    assert_eq!(stat(&ev, "protocols.ldap"), 2);
    let text = serde_json::to_string(&ev).expect("events serialize");
    assert!(
        !text.contains("Ldap-SECRET-pw"),
        "the password is not echoed"
    );
}

/// An FTP server on a port of its own (2121) whose greeting does not say FTP (FileZilla
/// Server's: `220-FileZilla Server 0.9.60 beta` … `220 Please visit https://filezilla-project.org/`),
/// and a client that logs in with `USER alice` and `PASS secret`. The client's commands are
/// FTP's, not SMTP's: the connection is FTP (`network.protocol` `ftp`, counted in
/// `protocols.ftp`), its `plaintext.internal` names `ftp-pass` and is critical. Control: an
/// SMTP server on 2526 with a greeting that does not say SMTP either, and a client that says
/// `EHLO`, stays SMTP.
#[test]
fn an_ftp_greeting_that_does_not_say_ftp_is_told_by_the_client_s_commands() {
    let mut b = PcapBuilder::default();
    session(
        &mut b,
        0.0,
        40001,
        2121,
        &[
            (
                false,
                b"220-FileZilla Server 0.9.60 beta\r\n220-written by Tim Kosse (tim.kosse@filezilla-project.org)\r\n220 Please visit https://filezilla-project.org/\r\n",
            ),
            (true, b"USER alice\r\n"),
            (false, b"331 Password required for alice\r\n"),
            (true, b"PASS secret\r\n"),
            (false, b"230 Logged on\r\n"),
            (true, b"QUIT\r\n"),
            (false, b"221 Goodbye\r\n"),
        ],
    );
    session(
        &mut b,
        1.0,
        40002,
        2526,
        &[
            (false, b"220 relay.example ready\r\n"),
            (true, b"EHLO c\r\n"),
            (false, b"250 relay.example\r\n"),
            (true, b"QUIT\r\n"),
            (false, b"221 bye\r\n"),
        ],
    );
    let ev = analyze_built(&b, "review_ident_ftp_greeting.pcap");
    let f = internal(&ev, 2121);
    assert_eq!(f["fallacy"]["evidence"]["protocol"], "ftp");
    assert_eq!(credential_kinds(f), ["ftp-pass"]);
    assert_eq!(f["event"]["severity"], 4, "a password is critical");
    assert_eq!(
        internal(&ev, 2526)["fallacy"]["evidence"]["protocol"],
        "smtp"
    );
    assert_eq!(stat(&ev, "protocols.ftp"), 1);
    assert_eq!(stat(&ev, "protocols.smtp"), 1);
}

/// An AMQP 0-9-1 method frame on channel 0 (type 1, channel, size, payload, frame-end 0xCE).
fn amqp_method(class: u16, method: u16, args: &[u8]) -> Vec<u8> {
    let mut payload = class.to_be_bytes().to_vec();
    payload.extend_from_slice(&method.to_be_bytes());
    payload.extend_from_slice(args);
    let mut f = vec![1, 0, 0];
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(&payload);
    f.push(0xce);
    f
}

/// Connection.Start-Ok (class 10, method 11): client-properties (a table holding one
/// long string, `product`), mechanism (short string), response (long string), locale.
fn amqp_start_ok(mechanism: &[u8], response: &[u8]) -> Vec<u8> {
    let mut table = vec![7];
    table.extend_from_slice(b"product");
    table.push(b'S');
    table.extend_from_slice(&(6u32).to_be_bytes());
    table.extend_from_slice(b"client");
    let mut a = (table.len() as u32).to_be_bytes().to_vec();
    a.extend_from_slice(&table);
    a.push(mechanism.len() as u8);
    a.extend_from_slice(mechanism);
    a.extend_from_slice(&(response.len() as u32).to_be_bytes());
    a.extend_from_slice(response);
    a.push(5);
    a.extend_from_slice(b"en_US");
    amqp_method(10, 11, &a)
}

/// An AMQP 0-9-1 client (RabbitMQ's default, 5672) that answers Connection.Start with
/// Start-Ok choosing PLAIN, whose response is `\0user\0password` in clear (RFC 4616): a
/// password inside the internal network. `plaintext.internal` for 5672 names `amqp-plain`, is
/// critical, and the password is nowhere in the output. Control: the same client choosing
/// EXTERNAL (the identity from a client certificate elsewhere; an empty response) on 5673
/// carries none (medium). tshark, when installed, reads the mechanisms of both.
#[test]
fn an_amqp_plain_login_is_a_password_in_clear() {
    const SECRET: &[u8] = b"Amqp-SECRET-pw";
    // Connection.Start: version 0-9, empty server-properties, mechanisms, locales.
    let mut start = vec![0, 9, 0, 0, 0, 0];
    start.extend_from_slice(&(14u32).to_be_bytes());
    start.extend_from_slice(b"PLAIN EXTERNAL");
    start.extend_from_slice(&(5u32).to_be_bytes());
    start.extend_from_slice(b"en_US");
    let start = amqp_method(10, 10, &start);
    let plain = amqp_start_ok(b"PLAIN", &[&b"\0app\0"[..], SECRET].concat());
    let external = amqp_start_ok(b"EXTERNAL", b"");
    let close_ok = amqp_method(10, 51, b"");
    let mut b = PcapBuilder::default();
    for (t, cport, sport, start_ok) in [(0.0, 40001, 5672, &plain), (1.0, 40002, 5673, &external)] {
        session(
            &mut b,
            t,
            cport,
            sport,
            &[
                (true, b"AMQP\x00\x00\x09\x01"),
                (false, &start),
                (true, start_ok),
                (false, &close_ok),
            ],
        );
    }
    if observer_tests::have("tshark") {
        let f = ScratchFile::new("review_ident_amqp_oracle.pcap", &b.finish());
        let mech = observer_tests::tshark_fields(
            &f.to_string_lossy(),
            &["amqp.method.arguments.mechanism"],
            "amqp.method.method == 11 && amqp.method.class == 10",
        );
        assert!(
            mech.lines().any(|l| l == "PLAIN"),
            "tshark reads the PLAIN Start-Ok: {mech}"
        );
    }
    let ev = analyze_built(&b, "review_ident_amqp.pcap");
    let f = internal(&ev, 5672);
    assert_eq!(f["fallacy"]["evidence"]["protocol"], "amqp");
    assert_eq!(credential_kinds(f), ["amqp-plain"]);
    assert_eq!(f["event"]["severity"], 4, "a password is critical");
    let f = internal(&ev, 5673);
    assert_eq!(credential_kinds(f), Vec::<String>::new(), "EXTERNAL");
    assert_eq!(f["event"]["severity"], 2);
    assert_eq!(stat(&ev, "security.credential_connections"), 1);
    let text = serde_json::to_string(&ev).expect("events serialize");
    assert!(
        !text.contains("Amqp-SECRET-pw"),
        "the password is not echoed"
    );
}

/// Secrets in a request's target travel in clear as surely as in a header: a proxy request
/// whose absolute-form target carries `user:password@` (8080), a login form sent with GET
/// (`?user=bob&password=…`, 8081) and an API token in the query (`?access_token=…`, 8082).
/// Control (8083): a search for the word "password" and a paging token, no secret. The
/// secrets themselves never appear in the output.
#[test]
fn secrets_in_a_request_target_are_credentials_in_clear() {
    let resp: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    let targets: [(u16, &str); 4] = [
        (8080, "http://alice:Pr0xyS3cret@api.test/v1/items"),
        (8081, "/login?user=bob&password=Hunter2Secret"),
        (8082, "/v1/items?limit=5&access_token=T0kenS3cretValue"),
        (8083, "/search?q=password&page_token=abc123"),
    ];
    let reqs: Vec<String> = targets
        .iter()
        .map(|(_, t)| format!("GET {t} HTTP/1.1\r\nHost: api.test\r\n\r\n"))
        .collect();
    let mut b = PcapBuilder::default();
    for (i, ((port, _), req)) in targets.iter().zip(&reqs).enumerate() {
        session(
            &mut b,
            i as f64,
            40_000 + i as u16,
            *port,
            &[(true, req.as_bytes()), (false, resp)],
        );
    }
    let ev = analyze_built(&b, "target-secrets.pcap");
    assert_eq!(credential_kinds(internal(&ev, 8080)), ["http-url-password"]);
    assert_eq!(
        internal(&ev, 8080)["event"]["severity"],
        4,
        "a password is critical"
    );
    assert_eq!(
        internal(&ev, 8081)["event"]["severity"],
        4,
        "a password is critical"
    );
    assert_eq!(
        internal(&ev, 8082)["event"]["severity"],
        3,
        "a token is high"
    );
    assert_eq!(
        internal(&ev, 8083)["event"]["severity"],
        2,
        "medium: no credential"
    );
    assert_eq!(credential_kinds(internal(&ev, 8081)), ["http-url-password"]);
    assert_eq!(credential_kinds(internal(&ev, 8082)), ["http-query-token"]);
    assert!(credential_kinds(internal(&ev, 8083)).is_empty());
    let all: String = ev.iter().map(Value::to_string).collect();
    for secret in ["Pr0xyS3cret", "Hunter2Secret", "T0kenS3cretValue"] {
        assert!(!all.contains(secret), "{secret} written");
    }
}
