//! Protocol identification by content (not by port), plaintext-credential detection and the
//! TLS handshake of each TCP connection.
//!
//! Every check looks at the first bytes of each direction (bounded: `SCAN_LIMIT` bytes per
//! direction) and records *kinds* of credentials, never their values.

use crate::decode::TcpSegment;
use crate::flow::SeqNum;
use crate::proto::tls::{self, Alert, ClientHello, ServerHello};
use crate::time::Timestamp;

/// Payload bytes per direction examined for identification and credentials.
const SCAN_LIMIT: u32 = 64 * 1024;
/// Bytes per direction buffered to parse the TLS hellos.
const TLS_BUFFER: usize = 32 * 1024;
/// Out-of-order segments held per direction while the hellos are reassembled.
const MAX_HELD: usize = 8;

/// Application protocols recognised by content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// HTTP/1.x.
    Http,
    /// HTTP/2 with prior knowledge (cleartext h2c).
    Http2,
    /// TLS (any version).
    Tls,
    /// SSH.
    Ssh,
    /// Redis (RESP).
    Redis,
    /// PostgreSQL.
    Postgres,
    /// MySQL.
    Mysql,
    /// SMTP.
    Smtp,
    /// IMAP.
    Imap,
    /// POP3.
    Pop3,
    /// FTP control.
    Ftp,
    /// Telnet.
    Telnet,
    /// MQTT.
    Mqtt,
    /// AMQP 0-9-1 / 1.0.
    Amqp,
    /// Apache Kafka.
    Kafka,
    /// RTSP (camera and media streams' control channel).
    Rtsp,
    /// LDAP (a directory: Active Directory, OpenLDAP).
    Ldap,
    /// SNMP v1 or v2c (UDP: requests to 161, traps to 162).
    Snmp,
}

impl Protocol {
    /// `network.protocol` name.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Http2 => "http2",
            Protocol::Tls => "tls",
            Protocol::Ssh => "ssh",
            Protocol::Redis => "redis",
            Protocol::Postgres => "postgresql",
            Protocol::Mysql => "mysql",
            Protocol::Smtp => "smtp",
            Protocol::Imap => "imap",
            Protocol::Pop3 => "pop3",
            Protocol::Ftp => "ftp",
            Protocol::Telnet => "telnet",
            Protocol::Mqtt => "mqtt",
            Protocol::Amqp => "amqp",
            Protocol::Kafka => "kafka",
            Protocol::Rtsp => "rtsp",
            Protocol::Ldap => "ldap",
            Protocol::Snmp => "snmp",
        }
    }

    /// Its counter in the summary, `stats.protocols.<name>`.
    pub fn counter(self) -> &'static str {
        match self {
            Protocol::Http => "protocols.http",
            Protocol::Http2 => "protocols.http2",
            Protocol::Tls => "protocols.tls",
            Protocol::Ssh => "protocols.ssh",
            Protocol::Redis => "protocols.redis",
            Protocol::Postgres => "protocols.postgresql",
            Protocol::Mysql => "protocols.mysql",
            Protocol::Smtp => "protocols.smtp",
            Protocol::Imap => "protocols.imap",
            Protocol::Pop3 => "protocols.pop3",
            Protocol::Ftp => "protocols.ftp",
            Protocol::Telnet => "protocols.telnet",
            Protocol::Mqtt => "protocols.mqtt",
            Protocol::Amqp => "protocols.amqp",
            Protocol::Kafka => "protocols.kafka",
            Protocol::Rtsp => "protocols.rtsp",
            Protocol::Ldap => "protocols.ldap",
            Protocol::Snmp => "protocols.snmp",
        }
    }

    /// Whether the protocol itself encrypts.
    pub fn encrypted(self) -> bool {
        matches!(self, Protocol::Tls | Protocol::Ssh)
    }

    /// The ports it is registered on (IANA, plus common alternatives).
    pub fn usual_ports(self) -> &'static [u16] {
        match self {
            // IPP (631) and UPnP's device descriptions and events (2869) are HTTP.
            Protocol::Http | Protocol::Http2 => {
                &[80, 8000, 8008, 8080, 8081, 8088, 8888, 3128, 631, 2869]
            }
            Protocol::Tls => &[443, 8443, 993, 995, 465, 636, 853, 5061, 6443, 4433, 9443],
            Protocol::Ssh => &[22, 2222],
            Protocol::Redis => &[6379, 6380],
            Protocol::Postgres => &[5432, 15432],
            Protocol::Mysql => &[3306, 33060],
            Protocol::Smtp => &[25, 587, 2525],
            Protocol::Imap => &[143],
            Protocol::Pop3 => &[110],
            Protocol::Ftp => &[21],
            Protocol::Telnet => &[23],
            Protocol::Mqtt => &[1883],
            Protocol::Amqp => &[5672],
            Protocol::Kafka => &[9092],
            Protocol::Rtsp => &[554, 8554],
            // The global catalog of Active Directory is LDAP on 3268.
            Protocol::Ldap => &[389, 3268],
            Protocol::Snmp => &[161, 162],
        }
    }
}

/// Kinds of credentials seen in clear (a bit set).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Credentials(pub u32);

/// (bit, name, is a password rather than a token).
pub const CREDENTIAL_KINDS: [(u32, &str, bool); 22] = [
    (1, "http-basic", true),
    (1 << 1, "http-bearer", false),
    (1 << 2, "http-digest", false),
    (1 << 3, "http-cookie", false),
    (1 << 4, "http-set-cookie", false),
    (1 << 5, "redis-auth", true),
    (1 << 6, "postgresql-password", true),
    (1 << 7, "postgresql-md5", false),
    (1 << 8, "ftp-pass", true),
    (1 << 9, "smtp-auth", true),
    (1 << 10, "imap-login", true),
    (1 << 11, "pop3-pass", true),
    (1 << 12, "telnet-login", true),
    (1 << 13, "mqtt-password", true),
    (1 << 14, "kafka-sasl-plain", true),
    (1 << 15, "ldap-simple-bind", true),
    (1 << 16, "amqp-plain", true),
    (1 << 17, "http-url-password", true),
    (1 << 18, "http-query-token", false),
    (1 << 19, "mysql-clear-password", true),
    // An SNMP v1/v2c community: the agent's password (a write community, or a read one that
    // is the operator's own).
    (1 << 20, "snmp-community", true),
    // The well-known default read community `public`: no secret, but an agent that answers it
    // lets anyone on the path or the network read it.
    (1 << 21, "snmp-community-public", false),
];

impl Credentials {
    /// Adds a kind by its name (one of [`CREDENTIAL_KINDS`]).
    pub fn set(&mut self, name: &str) {
        if let Some((bit, _, _)) = CREDENTIAL_KINDS.iter().find(|(_, n, _)| *n == name) {
            self.0 |= bit;
        }
    }

    /// The kinds present, by name.
    pub fn names(self) -> Vec<&'static str> {
        CREDENTIAL_KINDS
            .iter()
            .filter(|(b, _, _)| self.0 & b != 0)
            .map(|(_, n, _)| *n)
            .collect()
    }

    /// Whether any kind is a password (rather than a token or cookie).
    pub fn has_password(self) -> bool {
        CREDENTIAL_KINDS
            .iter()
            .any(|(b, _, pw)| *pw && self.0 & b != 0)
    }

    /// Whether any credential was seen.
    pub fn any(self) -> bool {
        self.0 != 0
    }
}

/// The TLS handshake of a connection.
#[derive(Debug, Default)]
pub struct TlsInfo {
    client_buf: Vec<u8>,
    server_buf: Vec<u8>,
    client_next: Option<SeqNum>,
    server_next: Option<SeqNum>,
    client_broken: bool,
    server_broken: bool,
    server_offset: usize,
    client_held: Vec<(SeqNum, Vec<u8>)>,
    server_held: Vec<(SeqNum, Vec<u8>)>,
    /// The ClientHello.
    pub client_hello: Option<ClientHello>,
    /// The ServerHello (the first one; a HelloRetryRequest is noted).
    pub server_hello: Option<ServerHello>,
    /// A HelloRetryRequest was seen.
    pub hello_retry: bool,
    /// Plaintext alerts: (sent by the client, alert).
    pub alerts: Vec<(bool, Alert)>,
    /// Application data flowed (the handshake completed as far as a capture can tell).
    pub app_data: bool,
    /// Started inside a STARTTLS-upgraded or SSLRequest connection.
    pub upgraded: bool,
    /// Time of the ClientHello.
    pub client_hello_ts: Option<Timestamp>,
    /// A hello outgrew its buffer (32 KiB a direction), or too many out-of-order segments
    /// came before it was whole: part of it was dropped (counted in
    /// `stats.limits.tls_hello_dropped`).
    pub limit_hit: bool,
}

/// What a TCP connection carries, as far as its content tells.
#[derive(Debug, Default)]
pub struct ConnInfo {
    /// The protocol, once identified.
    pub protocol: Option<Protocol>,
    /// Credentials seen in clear.
    pub credentials: Credentials,
    /// STARTTLS (or STLS, or PostgreSQL SSLRequest) was offered by the server.
    pub starttls_offered: bool,
    /// … and the client used it (TLS followed).
    pub starttls_used: bool,
    /// The client sent the HTTP/2 connection preface.
    pub h2_preface: bool,
    /// The server answered the preface with HTTP/1.x.
    pub h2_rejected: bool,
    /// TLS handshake facts, when the connection is or became TLS.
    pub tls: Option<Box<TlsInfo>>,
    client_seen: u32,
    server_seen: u32,
    pg_auth: u8,
    pg_ssl_requested: bool,
    telnet_password_prompt: bool,
    starttls_requested: bool,
    kafka_sasl_plain: bool,
    /// MySQL: the server asked for `mysql_clear_password` (an AuthSwitchRequest): the
    /// client's next packet is the password.
    mysql_clear_asked: bool,
    /// SMTP was only a guess from a `220` greeting that named neither SMTP nor FTP, on a port
    /// of neither: the client's first command tells.
    smtp_guessed: bool,
    /// SMTP, IMAP, POP3, FTP, RTSP and Redis: what is read across segments (boxed: a flow of
    /// any other protocol pays a pointer).
    text: Option<Box<TextState>>,
}

/// What a text protocol's reading keeps across segments.
#[derive(Debug, Default)]
struct TextState {
    /// The line each direction (server, client) is inside of.
    lines: [LineCarry; 2],
    /// IMAP: the tag of the STARTTLS command, which the server's answer carries.
    starttls_tag: Vec<u8>,
    /// Redis: the client's command stream.
    resp: RespCarry,
    /// SMTP: where the client stands with a message's content (`DATA`).
    smtp_data: SmtpData,
    /// FTP: the last `USER` named the anonymous account, whose `PASS` is an e-mail address
    /// by custom (RFC 1635), no secret.
    ftp_anonymous: bool,
    /// FTP: the client asked for the server's features (`FEAT`), whose reply has not begun.
    ftp_feat_asked: bool,
    /// FTP: the server's lines are inside a `211-` reply to `FEAT`, whose lines that start
    /// with a space list its features.
    ftp_feat: bool,
}

impl TextState {
    /// FTP: whether the server's `line` offers TLS: a feature line ` AUTH TLS` (or `AUTH SSL`,
    /// or a list such as `AUTH TLS;SSL`) of a `FEAT` reply (RFC 2389, RFC 4217), the lines
    /// that start with a space inside the `211-` reply to the client's `FEAT`. Any other line
    /// that names the command (a refusal quoting it, help text, the `211-` reply to `STAT`)
    /// offers nothing.
    fn ftp_feature_offers_tls(&mut self, line: &[u8]) -> bool {
        if !self.ftp_feat {
            if line
                .get(..3)
                .is_some_and(|c| c.iter().all(u8::is_ascii_digit))
            {
                // A reply begins: the features when it is the answer to `FEAT`.
                let asked = std::mem::take(&mut self.ftp_feat_asked);
                self.ftp_feat = asked && line.starts_with(b"211-");
            }
            return false;
        }
        if line.first() != Some(&b' ') {
            // `211 End`, or a line of no feature: the reply is over.
            self.ftp_feat = false;
            return false;
        }
        let feature = line.trim_ascii();
        starts_ci(feature, b"AUTH ")
            && (contains_ci(&feature[5..], b"TLS") || contains_ci(&feature[5..], b"SSL"))
    }
}

/// Where an SMTP client stands with a message's content: its lines are mail, not commands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum SmtpData {
    /// Commands.
    #[default]
    Commands,
    /// `DATA` was sent: the content follows the server's `354`.
    Asked,
    /// Inside the content, until a line of a lone `.`.
    Content,
}

/// Bytes kept of a text protocol's line that a segment boundary cuts: more than any command or
/// reply prefix read here (an IMAP tag, then `AUTHENTICATE PLAIN`).
const LINE_HEAD: usize = 64;

/// Bytes kept of the end of a line that a segment boundary cuts: more than an IMAP literal's
/// count (`{` and ten digits, `+` and `}`), which ends its line however long the line is.
const LINE_TAIL: usize = 16;

/// The last bytes of a line (at most [`LINE_TAIL`]).
#[derive(Clone, Copy, Debug, Default)]
struct LineTail {
    b: [u8; LINE_TAIL],
    len: u8,
}

impl LineTail {
    /// The line goes on with `add`.
    fn push(&mut self, add: &[u8]) {
        let len = usize::from(self.len);
        if add.len() >= LINE_TAIL {
            self.b.copy_from_slice(&add[add.len() - LINE_TAIL..]);
            self.len = LINE_TAIL as u8;
            return;
        }
        let keep = len.min(LINE_TAIL - add.len());
        self.b.copy_within(len - keep..len, 0);
        self.b[keep..keep + add.len()].copy_from_slice(add);
        self.len = (keep + add.len()) as u8;
    }

    /// The last bytes of `line`.
    fn of(line: &[u8]) -> Self {
        let mut t = LineTail::default();
        t.push(line);
        t
    }

    fn bytes(&self) -> &[u8] {
        &self.b[..usize::from(self.len)]
    }
}

/// Where one direction of a text protocol stands between segments, so a line cut by a segment
/// boundary is read whole, and a segment that starts inside a line is not read as a command.
#[derive(Debug)]
struct LineCarry {
    /// The sequence number after the bytes read.
    next: Option<SeqNum>,
    /// The bytes read end inside a line, which started with `head[..len]`.
    inside: bool,
    len: u8,
    head: [u8; LINE_HEAD],
    /// … and ends (so far) with these bytes (a line longer than the head keeps its end).
    tail: LineTail,
    /// The last bytes of the line the last read returned first (it may be longer than the
    /// bytes of it returned).
    first_tail: LineTail,
    /// IMAP: a literal's octets, SMTP: a `BDAT` chunk's (data, not lines) run up to this
    /// sequence number.
    skip_to: Option<SeqNum>,
    /// The bytes after those skipped continue the line that announced them (an IMAP
    /// literal), rather than start a new one (a `BDAT` chunk).
    skip_line_goes_on: bool,
    /// The line the last read returned first was ended (by a LF in that segment).
    ended: bool,
}

impl Default for LineCarry {
    fn default() -> Self {
        LineCarry {
            next: None,
            inside: false,
            len: 0,
            head: [0; LINE_HEAD],
            tail: LineTail::default(),
            first_tail: LineTail::default(),
            skip_to: None,
            skip_line_goes_on: false,
            ended: false,
        }
    }
}

impl LineCarry {
    /// Reads `seg`: the length of the line it finishes or continues, joined in `line` with its
    /// start from earlier segments (CR LF cut off, at most [`LINE_HEAD`] bytes), its bytes
    /// after that line, and its bytes of that line (all of them, CR LF cut off, however long
    /// the line: `line` holds its first [`LINE_HEAD`] bytes only); `None` for a retransmission
    /// of bytes already read.
    fn read<'a>(
        &mut self,
        seg: &TcpSegment<'a>,
        line: &mut [u8; LINE_HEAD],
    ) -> Option<(Option<usize>, &'a [u8], &'a [u8])> {
        let seq = SeqNum(seg.seq);
        let end = seq.plus(seg.seg_len);
        let mut p = seg.payload;
        match self.next.map(|n| seq.diff(n)) {
            Some(d) if d < 0 => {
                // Bytes already read; those after them continue the stream.
                let skip = d.unsigned_abs() as usize;
                p = p.get(skip..).filter(|r| !r.is_empty())?;
            }
            // Bytes missing before this segment: where it starts is unknown (a line start).
            Some(d) if d > 0 => self.inside = false,
            _ => {}
        }
        if self.next.is_none_or(|n| end.diff(n) > 0) {
            self.next = Some(end);
        }
        if let Some(to) = self.skip_to {
            // An IMAP literal's octets: skipped. The bytes after it continue the line that
            // announced it (not a line's start).
            let from = seq.plus((seg.payload.len() - p.len()) as u32);
            let left = to.diff(from);
            if left >= 0 && left as usize >= p.len() {
                if left as usize == p.len() {
                    self.skip_to = None;
                }
                self.ended = false;
                return Some((None, &[], &[]));
            }
            self.skip_to = None;
            if left > 0 {
                p = &p[left as usize..];
                (self.inside, self.len) = (self.skip_line_goes_on, 0);
                self.tail = LineTail::default();
            }
        }
        let nl = p.iter().position(|&c| c == b'\n');
        self.ended = nl.is_some();
        let continued: &'a [u8] = match (self.inside, nl) {
            (false, _) => &[],
            (true, Some(i)) => p[..i].strip_suffix(b"\r").unwrap_or(&p[..i]),
            (true, None) => p,
        };
        let first = self.inside.then(|| {
            let held = usize::from(self.len);
            line[..held].copy_from_slice(&self.head[..held]);
            let more = &p[..nl.unwrap_or(p.len())];
            let add = more.len().min(LINE_HEAD - held);
            line[held..held + add].copy_from_slice(&more[..add]);
            let n = held + add;
            if nl.is_some() && n > 0 && line[n - 1] == b'\r' {
                n - 1
            } else {
                n
            }
        });
        if first.is_some() {
            let mut t = self.tail;
            t.push(&p[..nl.unwrap_or(p.len())]);
            if nl.is_some() && t.bytes().last() == Some(&b'\r') {
                t.len -= 1;
            }
            self.first_tail = t;
        }
        let rest = match (first, nl) {
            (None, _) => p,
            (Some(_), Some(i)) => &p[i + 1..],
            (Some(_), None) => &[],
        };
        let cut = seg.payload.len() < seg.seg_len as usize;
        // Bytes cut by the snap length: where the next segment starts is unknown.
        let started: &[u8] = match p.iter().rposition(|&c| c == b'\n') {
            _ if cut => &[],
            Some(i) => &p[i + 1..],
            None => match first {
                Some(n) => &line[..n],
                None => p,
            },
        };
        self.tail = match (cut, nl, first) {
            // The line read first goes on.
            (false, None, Some(_)) => self.first_tail,
            _ => LineTail::of(started),
        };
        self.inside = !started.is_empty();
        let n = started.len().min(LINE_HEAD);
        self.head[..n].copy_from_slice(&started[..n]);
        self.len = n as u8;
        Some((first, rest, continued))
    }

    /// The bytes read end with `started`, the start of a line not ended (none if empty).
    fn restart(&mut self, started: &[u8]) {
        self.tail = LineTail::of(started);
        self.inside = !started.is_empty();
        let n = started.len().min(LINE_HEAD);
        self.head[..n].copy_from_slice(&started[..n]);
        self.len = n as u8;
    }
}

fn starts_ci(line: &[u8], prefix: &[u8]) -> bool {
    line.len() >= prefix.len() && line[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Whether `needle` occurs in `hay`, ASCII case ignored. Each position's first byte is
/// compared before the rest (this runs on every segment of a Redis or telnet connection).
fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    let Some(last) = hay.len().checked_sub(needle.len()) else {
        return false;
    };
    let first = first.to_ascii_lowercase();
    (0..=last).any(|i| {
        hay[i].to_ascii_lowercase() == first
            && hay[i + 1..i + needle.len()].eq_ignore_ascii_case(rest)
    })
}

/// Where a Redis client's command stream stands between segments (RESP arrays of bulk
/// strings, or inline commands), so a command cut by a segment boundary is read whole and a
/// value's bytes are never read as a command.
#[derive(Debug, Default)]
struct RespCarry {
    /// The sequence number after the bytes read.
    next: Option<SeqNum>,
    /// Bytes were missed: read again from a segment that starts an array (`*`).
    lost: bool,
    state: RespState,
    /// The number being read (array count, bulk length).
    number: u64,
    /// Arguments of the array command still to come.
    args_left: u64,
    /// The argument being read (0: the command).
    arg: u32,
    /// The argument's first bytes, and its length.
    word: [u8; 8],
    word_len: u64,
    /// The command is HELLO, and the next argument is SETNAME's value.
    hello: bool,
    skip_next: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum RespState {
    /// Between commands.
    #[default]
    Start,
    /// The array count, after `*`.
    Count,
    /// Before an argument's `$`.
    LenStart,
    /// The bulk length, after `$`.
    Len,
    /// Bytes of the argument still to come.
    Bulk(u64),
    /// The CR LF after an argument (bytes still to come).
    BulkEnd(u8),
    /// Inside an inline command's line.
    Inline,
}

impl RespCarry {
    /// Reads a client segment: whether a command it finishes or continues sends a password.
    fn read(&mut self, seg: &TcpSegment<'_>) -> bool {
        let seq = SeqNum(seg.seq);
        let end = seq.plus(seg.seg_len);
        let mut p = seg.payload;
        match self.next.map(|n| seq.diff(n)) {
            Some(d) if d < 0 => {
                // Bytes already read; those after them continue the stream.
                match p.get(d.unsigned_abs() as usize..) {
                    Some(r) if !r.is_empty() => p = r,
                    _ => return false,
                }
            }
            Some(d) if d > 0 => self.lost = true,
            _ => {}
        }
        if self.next.is_none_or(|n| end.diff(n) > 0) {
            self.next = Some(end);
        }
        let found = self.feed(p);
        // Bytes cut by the snap length: where the next segment stands is unknown.
        if seg.payload.len() < seg.seg_len as usize {
            self.lost = true;
        }
        found
    }

    /// Reads bytes that follow those read before.
    fn feed(&mut self, p: &[u8]) -> bool {
        if self.lost {
            if !p.starts_with(b"*") {
                return false;
            }
            self.lost = false;
            self.state = RespState::Start;
        }
        let mut found = false;
        let mut i = 0;
        while i < p.len() {
            let c = p[i];
            i += 1;
            match self.state {
                RespState::Start => {
                    (self.arg, self.word_len, self.number) = (0, 0, 0);
                    if c == b'*' {
                        self.state = RespState::Count;
                    } else if !c.is_ascii_whitespace() {
                        self.state = RespState::Inline;
                        self.push(c);
                    }
                }
                RespState::Count | RespState::Len if c.is_ascii_digit() => {
                    self.number = self
                        .number
                        .saturating_mul(10)
                        .saturating_add(u64::from(c - b'0'));
                }
                RespState::Count | RespState::Len if c == b'\r' => {}
                RespState::Count if c == b'\n' => {
                    self.args_left = self.number;
                    self.state = if self.args_left == 0 {
                        RespState::Start
                    } else {
                        RespState::LenStart
                    };
                }
                RespState::Len if c == b'\n' => {
                    self.word_len = 0;
                    self.state = RespState::Bulk(self.number);
                    if self.number == 0 {
                        found |= self.arg_done();
                        self.state = RespState::BulkEnd(2);
                    }
                }
                RespState::LenStart if c == b'$' => {
                    self.number = 0;
                    self.state = RespState::Len;
                }
                RespState::Bulk(left) => {
                    let n = (left.min((p.len() - i + 1) as u64)) as usize;
                    for &b in p[i - 1..i - 1 + n].iter().take(8) {
                        self.push(b);
                    }
                    self.word_len += (n - n.min(8)) as u64;
                    i += n - 1;
                    let left = left - n as u64;
                    self.state = RespState::Bulk(left);
                    if left == 0 {
                        found |= self.arg_done();
                        self.state = RespState::BulkEnd(2);
                    }
                }
                RespState::BulkEnd(2) => self.state = RespState::BulkEnd(1),
                RespState::BulkEnd(_) => {
                    self.arg += 1;
                    self.word_len = 0;
                    self.args_left -= 1;
                    self.state = if self.args_left == 0 {
                        RespState::Start
                    } else {
                        RespState::LenStart
                    };
                }
                RespState::Inline => {
                    if matches!(c, b' ' | b'\t' | b'\r' | b'\n') {
                        if self.word_len > 0 {
                            found |= self.arg_done();
                            self.arg += 1;
                            self.word_len = 0;
                        }
                        if c == b'\n' {
                            self.state = RespState::Start;
                        }
                    } else {
                        self.push(c);
                    }
                }
                // Not RESP after all: read again from a segment that starts an array.
                RespState::Count | RespState::Len | RespState::LenStart => {
                    self.lost = true;
                    return found;
                }
            }
        }
        found
    }

    /// One byte of the current argument (the first 8 are kept).
    fn push(&mut self, b: u8) {
        if let Some(w) = self.word.get_mut(self.word_len as usize) {
            *w = b;
        }
        self.word_len += 1;
    }

    /// The current argument is complete: whether it makes the command send a password
    /// (`AUTH …`, or `HELLO protover` with the `AUTH` option, `SETNAME`'s value skipped).
    fn arg_done(&mut self) -> bool {
        let kept = &self.word[..self.word_len.min(8) as usize];
        let is = |w: &[u8]| self.word_len == w.len() as u64 && kept.eq_ignore_ascii_case(w);
        if self.arg == 0 {
            self.hello = is(b"HELLO");
            self.skip_next = false;
            return is(b"AUTH");
        }
        if !self.hello || self.arg == 1 {
            return false;
        }
        if std::mem::take(&mut self.skip_next) {
            return false;
        }
        self.skip_next = is(b"SETNAME");
        is(b"AUTH")
    }
}

/// Whether a Redis client's bytes, read from a command's start, send a password.
#[cfg(test)]
fn redis_sends_password(p: &[u8]) -> bool {
    RespCarry::default().feed(p)
}

/// Lines of `b` (split at LF, CR trimmed).
fn lines(b: &[u8]) -> impl Iterator<Item = &[u8]> {
    b.split(|&c| c == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
}

/// `wire_len`: the payload's length on the wire (`p` may be cut short by the snap length).
fn identify_client(p: &[u8], wire_len: usize, server_port: u16) -> Option<Protocol> {
    if tls::looks_like_tls(p) || tls::looks_like_sslv2_hello(p) {
        return Some(Protocol::Tls);
    }
    if p.starts_with(b"SSH-") {
        return Some(Protocol::Ssh);
    }
    if p.starts_with(b"PRI * HTTP/2.0") {
        return Some(Protocol::Http2);
    }
    if crate::proto::http1::looks_like_request(p) {
        return Some(Protocol::Http);
    }
    if looks_like_rtsp_request(p) {
        return Some(Protocol::Rtsp);
    }
    if p.len() >= 8 {
        let len = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as usize;
        let code = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
        if (8..=10_000).contains(&len) && matches!(code, 0x0003_0000 | 80_877_103 | 80_877_104) {
            return Some(Protocol::Postgres);
        }
    }
    if p.len() >= 4
        && p[0] == b'*'
        && p[1].is_ascii_digit()
        && contains_ci(&p[..p.len().min(32)], b"\r\n$")
    {
        return Some(Protocol::Redis);
    }
    // Redis inline commands ("PING", "SET k v", "AUTH pw"), on its own port only: as text
    // they could be anything elsewhere.
    if server_port == 6379
        && REDIS_INLINE
            .iter()
            .any(|c| starts_ci(p, c) && matches!(p.get(c.len()), Some(b' ' | b'\r' | b'\n')))
    {
        return Some(Protocol::Redis);
    }
    if p.len() >= 10
        && p[0] == 0x10
        && (contains_ci(&p[2..p.len().min(12)], b"MQTT")
            || contains_ci(&p[2..p.len().min(12)], b"MQIsdp"))
    {
        return Some(Protocol::Mqtt);
    }
    if p.starts_with(b"AMQP") {
        return Some(Protocol::Amqp);
    }
    if looks_like_kafka(p, wire_len) {
        return Some(Protocol::Kafka);
    }
    if looks_like_ldap(p, wire_len) {
        return Some(Protocol::Ldap);
    }
    None
}

/// A BER tag and definite length at the start of `b` (one tag byte; a length in the short
/// form or the long form of up to 4 bytes): the tag, the content's length and where it starts.
fn ber_header(b: &[u8]) -> Option<(u8, usize, usize)> {
    let (&tag, rest) = b.split_first()?;
    let &first = rest.first()?;
    if first < 0x80 {
        return Some((tag, usize::from(first), 2));
    }
    let n = usize::from(first & 0x7f);
    if !(1..=4).contains(&n) {
        return None; // the indefinite form (LDAP forbids it) or absurd
    }
    let len = rest
        .get(1..1 + n)?
        .iter()
        .fold(0usize, |l, &c| l << 8 | usize::from(c));
    Some((tag, len, 2 + n))
}

/// The community string of an SNMP v1 or v2c message (RFC 1157, RFC 1901): a SEQUENCE of
/// the version (INTEGER 0 or 1), the community (OCTET STRING), then a PDU (a context tag
/// 0xa0 to 0xa8). `None` for anything else, SNMPv3 included (its security is in its header).
fn snmp_community(p: &[u8]) -> Option<&[u8]> {
    let (tag, _, at) = ber_header(p)?;
    let p = p.get(at..)?;
    let version = p.get(..3)?;
    if tag != 0x30 || version[..2] != [0x02, 0x01] || version[2] > 1 {
        return None;
    }
    let p = &p[3..];
    let (tag, len, at) = ber_header(p)?;
    let community = p.get(at..at + len)?;
    let pdu = *p.get(at + len)?;
    (tag == 0x04 && (0xa0..=0xa8).contains(&pdu)).then_some(community)
}

/// An LDAP request at the start of `p` (RFC 4511 §4.1.1): an LDAPMessage SEQUENCE, its
/// messageID INTEGER, then the protocolOp's tag, which must be a request's: the operation's
/// tag and where its content starts, and the message's end.
fn ldap_request(p: &[u8]) -> Option<(u8, usize, usize)> {
    let (tag, len, at) = ber_header(p)?;
    let (id_tag, id_len, id_at) = ber_header(p.get(at..)?)?;
    if tag != 0x30 || id_tag != 0x02 || !(1..=4).contains(&id_len) {
        return None;
    }
    let op_at = at + id_at + id_len;
    let (op, op_len, op_hdr) = ber_header(p.get(op_at..)?)?;
    // Bind, Unbind, Search, Modify, Add, Delete, ModifyDN, Compare, Abandon, Extended.
    let request = matches!(
        op,
        0x60 | 0x42 | 0x63 | 0x66 | 0x68 | 0x4a | 0x6c | 0x6e | 0x50 | 0x77
    );
    let end = at + len;
    (request && op_at + op_hdr + op_len == end).then_some((op, op_at + op_hdr, end))
}

/// A segment that starts with an LDAP request whose length agrees with the segment (as for
/// Kafka: one request, the first full-sized segment of a larger one, or requests back to back).
fn looks_like_ldap(p: &[u8], wire_len: usize) -> bool {
    let Some((_, _, end)) = ldap_request(p) else {
        return false;
    };
    match end.cmp(&wire_len) {
        std::cmp::Ordering::Equal => true,
        std::cmp::Ordering::Greater => wire_len >= 512,
        std::cmp::Ordering::Less => p.get(end..).is_some_and(|n| ldap_request(n).is_some()),
    }
}

/// Whether `p` starts with an AMQP 0-9-1 Connection.Start-Ok (a method frame on channel 0,
/// class 10, method 11) that logs in with PLAIN (`\0user\0password`) or RabbitMQ's AMQPLAIN
/// (a table of LOGIN and PASSWORD): a password in clear, whatever the response holds beyond
/// not being empty. EXTERNAL and the challenge-response mechanisms carry none.
fn amqp_password(p: &[u8]) -> bool {
    let be32 = |i: usize| {
        p.get(i..i + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    if p.get(..3) != Some(&[1, 0, 0]) || p.get(7..11) != Some(&[0, 10, 0, 11]) {
        return false;
    }
    // client-properties (a table: its length, then its bytes), then the mechanism.
    let Some(at) = be32(11).and_then(|n| n.checked_add(15)) else {
        return false;
    };
    let Some(&n) = p.get(at) else {
        return false;
    };
    let n = usize::from(n);
    let plain = p
        .get(at + 1..at + 1 + n)
        .is_some_and(|m| m == b"PLAIN" || m == b"AMQPLAIN");
    plain && be32(at + 1 + n).is_some_and(|len| len > 0)
}

/// Whether the LDAP requests that start `p` include a simple bind with a password (RFC 4511
/// §4.2: BindRequest { version, name, authentication [0] simple }); an anonymous or
/// unauthenticated bind (empty password) carries none, SASL is not simple.
fn ldap_simple_bind(mut p: &[u8]) -> bool {
    for _ in 0..8 {
        let Some((op, from, end)) = ldap_request(p) else {
            return false;
        };
        if op == 0x60 {
            let password = (|| {
                let b = p.get(from..)?;
                let (vt, vl, va) = ber_header(b)?;
                let b = b.get(va + vl..).filter(|_| vt == 0x02)?;
                let (nt, nl, na) = ber_header(b)?;
                let b = b.get(na + nl..).filter(|_| nt == 0x04)?;
                let (at, al, _) = ber_header(b)?;
                Some(at == 0x80 && al > 0)
            })();
            if password == Some(true) {
                return true;
            }
        }
        match p.get(end..) {
            Some(rest) if !rest.is_empty() => p = rest,
            _ => return false,
        }
    }
    false
}

/// An RTSP request line: an uppercase method, a space, and ` RTSP/1.0` (or 2.0) at its end.
fn looks_like_rtsp_request(p: &[u8]) -> bool {
    p.first().is_some_and(u8::is_ascii_uppercase)
        && crate::proto::http1::request_line_version(p)
            .is_some_and(|v| matches!(v, (b"RTSP", b"1.0" | b"2.0")))
}

/// MySQL's authentication plugin that sends the password itself, NUL-terminated.
const MYSQL_CLEAR: &[u8] = b"mysql_clear_password\0";

/// Whether `p` is a MySQL HandshakeResponse41 that logs in with `mysql_clear_password` and a
/// non-empty password as its auth response: capabilities (4), max packet (4), character set
/// (1), filler (23), the user (NUL-terminated), the auth response (length-encoded, one length
/// byte, or NUL-terminated, by the capabilities), the database when CONNECT_WITH_DB, then the
/// plugin's name when PLUGIN_AUTH.
fn mysql_login_in_clear(p: &[u8]) -> bool {
    const CONNECT_WITH_DB: u32 = 0x0008;
    const PROTOCOL_41: u32 = 0x0200;
    const SECURE_CONNECTION: u32 = 0x8000;
    const PLUGIN_AUTH: u32 = 0x0008_0000;
    const LENENC_CLIENT_DATA: u32 = 0x0020_0000;
    let Some(body) = p.get(4..).filter(|_| p[3] == 1) else {
        return false;
    };
    let Some(caps) = body
        .get(..4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
    else {
        return false;
    };
    if caps & PROTOCOL_41 == 0 || caps & PLUGIN_AUTH == 0 {
        return false;
    }
    /// A NUL-terminated string at the start of `b`, and the bytes it takes with its NUL.
    fn nul_ended(b: &[u8]) -> Option<(&[u8], usize)> {
        b.iter().position(|&c| c == 0).map(|n| (&b[..n], n + 1))
    }
    let Some((_, used)) = body.get(32..).and_then(nul_ended) else {
        return false;
    };
    let Some(rest) = body.get(32 + used..) else {
        return false;
    };
    let (auth, rest): (&[u8], &[u8]) = if caps & LENENC_CLIENT_DATA != 0 {
        // A length-encoded integer: one byte below 0xfb (longer forms: no password fits).
        match rest.split_first() {
            Some((&n, r)) if n < 0xfb && r.len() >= usize::from(n) => r.split_at(usize::from(n)),
            _ => return false,
        }
    } else if caps & SECURE_CONNECTION != 0 {
        match rest.split_first() {
            Some((&n, r)) if r.len() >= usize::from(n) => r.split_at(usize::from(n)),
            _ => return false,
        }
    } else {
        match nul_ended(rest) {
            Some((a, n)) => (a, &rest[n..]),
            None => return false,
        }
    };
    let rest = if caps & CONNECT_WITH_DB != 0 {
        match nul_ended(rest) {
            Some((_, n)) => &rest[n..],
            None => return false,
        }
    } else {
        rest
    };
    rest.starts_with(MYSQL_CLEAR) && !auth.is_empty() && auth != [0]
}

/// The target of an RTSP request line (`METHOD target RTSP/1.0`, or 2.0; CR LF cut off).
fn rtsp_request_target(line: &[u8]) -> Option<&[u8]> {
    let mut words = line.split(|&c| c == b' ');
    let (method, target, version) = (words.next()?, words.next()?, words.next()?);
    let method_ok = !method.is_empty()
        && method
            .iter()
            .all(|&c| c.is_ascii_uppercase() || c == b'_' || c == b'-');
    (method_ok && words.next().is_none() && matches!(version, b"RTSP/1.0" | b"RTSP/2.0"))
        .then_some(target)
}

/// Kafka's SaslHandshake request.
const KAFKA_SASL_HANDSHAKE: i16 = 17;
/// Kafka's largest API key (KIP-890 era brokers stop below 80).
const KAFKA_MAX_API_KEY: i16 = 80;
/// Kafka brokers' default `socket.request.max.bytes` (100 MiB).
const KAFKA_MAX_REQUEST: usize = 100 * 1024 * 1024;

/// A segment that starts with a Kafka request whose size agrees with the segment: exactly one
/// request, the first full-sized segment of a larger one, or requests back to back. A binary
/// header is easy to match by chance (DNS over TCP, OpenFlow, FastCGI all have a plausible one);
/// its size matching the segment is not.
fn looks_like_kafka(p: &[u8], wire_len: usize) -> bool {
    let Some(_) = kafka_request(p) else {
        return false;
    };
    let end = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as usize + 4;
    match end.cmp(&wire_len) {
        std::cmp::Ordering::Equal => true,
        std::cmp::Ordering::Greater => wire_len >= 512,
        std::cmp::Ordering::Less => p
            .get(end..)
            .is_some_and(|next| kafka_request(next).is_some()),
    }
}

/// A Kafka request header at the start of `p`: INT32 size, INT16 api_key, INT16 api_version,
/// INT32 correlation_id, then (header v1 and later, which every client sends) the client id as a
/// NULLABLE_STRING (INT16 length, -1 for null). Returns the api key and the offset after the
/// client id. The client id must be printable and whole in this segment, which keeps binary
/// protocols that happen to start with a plausible length from matching.
fn kafka_request(p: &[u8]) -> Option<(i16, usize)> {
    let be16 = |i: usize| p.get(i..i + 2).map(|b| i16::from_be_bytes([b[0], b[1]]));
    let size = u32::from_be_bytes(p.get(..4)?.try_into().ok()?) as usize;
    let (key, version, id_len) = (be16(4)?, be16(6)?, be16(12)?);
    if !(10..=KAFKA_MAX_REQUEST).contains(&size)
        || !(0..=KAFKA_MAX_API_KEY).contains(&key)
        || !(0..=20).contains(&version)
    {
        return None;
    }
    let end = match id_len {
        -1 => 14,
        0..=255 => {
            let id = p.get(14..14 + id_len as usize)?;
            if !id.iter().all(|c| c.is_ascii_graphic() || *c == b' ') {
                return None;
            }
            14 + id.len()
        }
        _ => return None,
    };
    (size + 4 >= end).then_some((key, end))
}

/// The octet count of the IMAP literal that ends `line` (`{n}`, or `{n+}` / `{n-}` without
/// waiting for the server, RFC 7888; `~{n}` is binary, RFC 3516), at most 1 GiB.
fn imap_literal(line: &[u8]) -> Option<usize> {
    let inner = line.strip_suffix(b"}")?;
    let inner = inner
        .strip_suffix(b"+")
        .or_else(|| inner.strip_suffix(b"-"))
        .unwrap_or(inner);
    let open = inner.iter().rposition(|&c| c == b'{')?;
    let digits = &inner[open + 1..];
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0u64, |n, &c| n * 10 + u64::from(c - b'0'));
    Some(n.min(1 << 30) as usize)
}

/// The size of the SMTP `BDAT` chunk (RFC 3030) that `line` announces (`BDAT <size>`, maybe
/// then `LAST`), at most 1 GiB: that many octets of message follow the line.
fn smtp_bdat_chunk(line: &[u8]) -> Option<usize> {
    if !starts_ci(line, b"BDAT ") {
        return None;
    }
    let mut words = line[5..].split(|&c| c == b' ').filter(|w| !w.is_empty());
    let digits = words.next()?;
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    match words.next() {
        Some(w) if !w.eq_ignore_ascii_case(b"LAST") => return None,
        _ => {}
    }
    let n = digits
        .iter()
        .fold(0u64, |n, &c| n * 10 + u64::from(c - b'0'));
    Some(n.min(1 << 30) as usize)
}

/// Whether an IMAP server's line announces STARTTLS among its capabilities: a `CAPABILITY`
/// response (`* CAPABILITY …`) or a `[CAPABILITY …]` response code after the status (the
/// greeting's `* OK [CAPABILITY …]`, a tagged `OK`). Other lines may be mail content (a
/// fetched message that mentions STARTTLS), which offers nothing.
fn imap_offers_starttls(line: &[u8]) -> bool {
    // After the tag (or `*`).
    let rest = after_word(line);
    let caps = if starts_ci(rest, b"CAPABILITY ") {
        rest
    } else {
        match after_word(rest).strip_prefix(b"[") {
            Some(code) if starts_ci(code, b"CAPABILITY ") => {
                &code[..code.iter().position(|&c| c == b']').unwrap_or(code.len())]
            }
            _ => return false,
        }
    };
    caps.split(|&c| c == b' ')
        .any(|w| w.eq_ignore_ascii_case(b"STARTTLS"))
}

/// Whether an IMAP server's line that begins with `head` (its first [`LINE_HEAD`] bytes, the
/// rest cut off) is a capability list still going on at the end of `head` (a `CAPABILITY`
/// response, or a `[CAPABILITY …` response code not closed in `head`), and the line's bytes
/// `more` of a later segment, after the line's end `before` (its last bytes until then),
/// name STARTTLS in that list: a word of `more`, or one cut in two between `before` and
/// `more`.
fn imap_list_goes_on_with_starttls(head: &[u8], before: &[u8], more: &[u8]) -> bool {
    const WORD: &[u8] = b"STARTTLS";
    let rest = after_word(head);
    let bracket = if starts_ci(rest, b"CAPABILITY ") {
        false
    } else {
        match after_word(rest).strip_prefix(b"[") {
            Some(code) if starts_ci(code, b"CAPABILITY ") && !code.contains(&b']') => true,
            _ => return false,
        }
    };
    let more = match more.iter().position(|&c| c == b']') {
        Some(i) if bracket => &more[..i],
        _ => more,
    };
    let mut words = more.split(|&c| c == b' ');
    let start = words.next().unwrap_or_default();
    let cut = &before[before.iter().rposition(|&c| c == b' ').map_or(0, |i| i + 1)..];
    let joined = cut.len() + start.len() == WORD.len()
        && cut.eq_ignore_ascii_case(&WORD[..cut.len()])
        && start.eq_ignore_ascii_case(&WORD[cut.len()..]);
    joined || words.any(|w| w.eq_ignore_ascii_case(WORD))
}

/// The protocol a `220` greeting names (its text, or the port): SMTP or FTP; `None` when
/// neither tells.
fn greeting_220(p: &[u8], server_port: u16) -> Option<Protocol> {
    let head = &p[..p.len().min(200)];
    if contains_ci(head, b"SMTP") || matches!(server_port, 25 | 465 | 587 | 2525) {
        Some(Protocol::Smtp)
    } else if contains_ci(head, b"FTP") || server_port == 21 {
        Some(Protocol::Ftp)
    } else {
        None
    }
}

/// Commands an FTP client sends first (RFC 959, 2228, 2389) that an SMTP client does not.
const FTP_FIRST_COMMANDS: [&[u8]; 8] = [
    b"USER ",
    b"AUTH TLS",
    b"AUTH SSL",
    b"FEAT",
    b"SYST",
    b"OPTS ",
    b"PBSZ ",
    b"CLNT ",
];

/// What follows the first word of `b` and its space (nothing without one).
fn after_word(b: &[u8]) -> &[u8] {
    b.splitn(2, |&c| c == b' ').nth(1).unwrap_or_default()
}

/// Redis commands a client may send inline (as text, not RESP).
const REDIS_INLINE: [&[u8]; 16] = [
    b"PING",
    b"AUTH",
    b"HELLO",
    b"SELECT",
    b"SET",
    b"GET",
    b"DEL",
    b"INCR",
    b"EXPIRE",
    b"PUBLISH",
    b"SUBSCRIBE",
    b"INFO",
    b"KEYS",
    b"LPUSH",
    b"RPUSH",
    b"QUIT",
];

/// `client_spoke`: the client sent payload first. The banners recognised here are greetings,
/// which the server sends before the client says anything. A bare "+OK" or "220" after the
/// client has spoken is more likely an answer in some other protocol (Redis, NNTP) than a
/// greeting, so it identifies nothing then unless the port or the text says which.
fn identify_server(p: &[u8], server_port: u16, client_spoke: bool) -> Option<Protocol> {
    if tls::looks_like_tls(p) {
        return Some(Protocol::Tls); // a capture that missed the client's side
    }
    if p.starts_with(b"SSH-") {
        return Some(Protocol::Ssh);
    }
    // The greeting: `* OK`, or `* PREAUTH` for a client already authenticated (RFC 9051
    // §7.1.4).
    if p.starts_with(b"* OK") || p.starts_with(b"* PREAUTH ") {
        return Some(Protocol::Imap);
    }
    if p.starts_with(b"RTSP/1.0 ") || p.starts_with(b"RTSP/2.0 ") {
        return Some(Protocol::Rtsp);
    }
    if p.starts_with(b"+OK") && (!client_spoke || matches!(server_port, 110 | 995)) {
        return Some(Protocol::Pop3);
    }
    if p.starts_with(b"220") {
        return match greeting_220(p, server_port) {
            Some(known) => Some(known),
            None => (!client_spoke).then_some(Protocol::Smtp),
        };
    }
    if p.len() >= 2 && p[0] == 0xff && (0xfb..=0xfe).contains(&p[1]) {
        return Some(Protocol::Telnet);
    }
    // MySQL greeting: 3-byte length, sequence 0, protocol 10, version string.
    if p.len() >= 8 && p[3] == 0 && p[4] == 10 && p[5].is_ascii_digit() {
        let len = usize::from(p[0]) | (usize::from(p[1]) << 8) | (usize::from(p[2]) << 16);
        if (20..=1024).contains(&len) {
            return Some(Protocol::Mysql);
        }
    }
    None
}

impl ConnInfo {
    /// Examines one UDP datagram's payload to or from port 161 or 162: an SNMP v1 or v2c
    /// message makes the flow SNMP, its community a credential in clear (never kept).
    pub fn on_snmp_datagram(&mut self, payload: &[u8]) {
        if self.protocol.is_some_and(|p| p != Protocol::Snmp) {
            return;
        }
        if let Some(community) = snmp_community(payload) {
            self.protocol = Some(Protocol::Snmp);
            self.credentials.set(if community == b"public" {
                "snmp-community-public"
            } else {
                "snmp-community"
            });
        }
    }

    /// Examines one TCP segment's payload; `from_client` tells its direction.
    pub fn on_segment(
        &mut self,
        from_client: bool,
        server_port: u16,
        seg: &TcpSegment<'_>,
        ts: Timestamp,
    ) {
        let p = seg.payload;
        if p.is_empty() {
            return;
        }
        // A TLS ClientHello on a connection that started in clear (a banner first, or a
        // STARTTLS this tracker did not recognise): follow TLS from here.
        if self.tls.is_none()
            && from_client
            && self.protocol.is_some_and(|p| !p.encrypted())
            && p.len() > 5
            && p[0] == tls::content::HANDSHAKE
            && tls::looks_like_tls(p)
            && p[5] == 1
        {
            self.starttls_used = true;
            self.tls = Some(Box::new(TlsInfo {
                upgraded: true,
                ..TlsInfo::default()
            }));
        }
        if let Some(t) = self.tls.as_mut() {
            t.feed(from_client, seg, ts);
            if !t.upgraded {
                return;
            }
        }
        let seen = if from_client {
            &mut self.client_seen
        } else {
            &mut self.server_seen
        };
        if *seen >= SCAN_LIMIT {
            return;
        }
        // The server's first payload: its answer to how the client opened.
        let servers_first = !from_client && *seen == 0;
        *seen = seen.saturating_add(seg.seg_len);
        if self.protocol.is_none() {
            self.protocol = if from_client {
                identify_client(p, seg.seg_len as usize, server_port)
            } else {
                identify_server(p, server_port, self.client_seen > 0)
            };
            if self.protocol == Some(Protocol::Tls) {
                let mut t = Box::<TlsInfo>::default();
                t.feed(from_client, seg, ts);
                self.tls = Some(t);
                return;
            }
            if self.protocol == Some(Protocol::Http2) {
                self.h2_preface = true;
            }
            self.smtp_guessed = self.protocol == Some(Protocol::Smtp)
                && !from_client
                && greeting_220(p, server_port).is_none();
        }
        match self.protocol {
            // The server answered the HTTP/2 preface in HTTP/1.x. (Later segments may start
            // anywhere in a frame, in a body that quotes an HTTP/1.1 message.)
            Some(Protocol::Http2) if servers_first && p.starts_with(b"HTTP/1.") => {
                self.h2_rejected = true;
            }
            // (Reading the segment moves the command stream on, password or not.)
            Some(Protocol::Redis)
                if from_client && self.text.get_or_insert_default().resp.read(seg) =>
            {
                self.credentials.set("redis-auth");
            }
            Some(Protocol::Rtsp) if from_client => {
                // RTSP authenticates with HTTP's schemes (RFC 2326 §D, RFC 7826 §19): a
                // camera's password in clear is an `Authorization: Basic` header, read
                // line by line (a header may come in a later segment than the request line).
                let carry = &mut self.text.get_or_insert_default().lines[1];
                let mut joined = [0; LINE_HEAD];
                if let Some((first, rest, _)) = carry.read(seg, &mut joined) {
                    for line in first.map(|n| &joined[..n]).into_iter().chain(lines(rest)) {
                        // A password in the request URL (`rtsp://user:password@camera/…`).
                        if let Some(target) = rtsp_request_target(line) {
                            self.credentials.0 |=
                                crate::app::http::request_target_credentials(target);
                        }
                        if let Some(f) = crate::proto::http1::parse_fields(line) {
                            self.credentials.0 |= crate::app::http::request_credentials(&f);
                        }
                    }
                }
            }
            Some(Protocol::Postgres) => self.postgres(from_client, seg),
            Some(Protocol::Smtp | Protocol::Imap | Protocol::Pop3 | Protocol::Ftp) => {
                self.text_protocol(from_client, seg)
            }
            Some(Protocol::Telnet) => {
                if from_client {
                    if self.telnet_password_prompt && p.iter().any(|&c| c.is_ascii_graphic()) {
                        self.credentials.set("telnet-login");
                    }
                } else if contains_ci(p, b"assword") {
                    self.telnet_password_prompt = true;
                }
            }
            Some(Protocol::Mysql) if from_client => {
                if std::mem::take(&mut self.mysql_clear_asked) {
                    // The answer to the switch: the password and a NUL.
                    if p.get(4..).is_some_and(|b| !b.is_empty() && b != [0]) {
                        self.credentials.set("mysql-clear-password");
                    }
                } else if mysql_login_in_clear(p) {
                    self.credentials.set("mysql-clear-password");
                }
            }
            Some(Protocol::Mysql)
                if p.len() > 4 && p[3] > 0 && p[4] == 0xfe && p[5..].starts_with(MYSQL_CLEAR) =>
            {
                // AuthSwitchRequest: 0xfe, the plugin's name (NUL-terminated), its data.
                self.mysql_clear_asked = true;
            }
            Some(Protocol::Mysql) if !self.starttls_offered => {
                // Greeting: header (4), protocol 10, version string NUL-terminated, thread id (4),
                // auth data (8), filler (1), then the low capability flags: CLIENT_SSL is 0x0800.
                if let Some(nul) = p.get(5..).and_then(|v| v.iter().position(|&c| c == 0)) {
                    let caps = 5 + nul + 1 + 4 + 8 + 1;
                    if let Some(c) = p.get(caps..caps + 2) {
                        if u16::from_le_bytes([c[0], c[1]]) & 0x0800 != 0 {
                            self.starttls_offered = true;
                        }
                    }
                }
            }
            Some(Protocol::Mqtt) if from_client && p[0] == 0x10 => {
                // CONNECT: remaining length (varint), protocol name, level, flags.
                let mut i = 1;
                while i < p.len() && i < 5 && p[i] & 0x80 != 0 {
                    i += 1;
                }
                let name_len = p
                    .get(i + 1..i + 3)
                    .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])));
                if let Some(n) = name_len {
                    if let Some(&flags) = p.get(i + 3 + n + 1) {
                        if flags & 0x40 != 0 {
                            self.credentials.set("mqtt-password");
                        }
                    }
                }
            }
            Some(Protocol::Amqp) if from_client && amqp_password(p) => {
                self.credentials.set("amqp-plain");
            }
            Some(Protocol::Ldap) if from_client && ldap_simple_bind(p) => {
                self.credentials.set("ldap-simple-bind");
            }
            Some(Protocol::Kafka) if from_client => {
                if self.kafka_sasl_plain {
                    // The request after a PLAIN handshake carries `\0user\0password`
                    // (SaslAuthenticate, or the bare token after a v0 handshake).
                    self.credentials.set("kafka-sasl-plain");
                    self.kafka_sasl_plain = false;
                } else if let Some((KAFKA_SASL_HANDSHAKE, at)) = kafka_request(p) {
                    // SaslHandshake v0/v1: the mechanism as a STRING.
                    let n = p
                        .get(at..at + 2)
                        .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])));
                    self.kafka_sasl_plain =
                        n.and_then(|n| p.get(at + 2..at + 2 + n)) == Some(b"PLAIN");
                }
            }
            None => {
                // The other side may speak first: identify from its first payload.
            }
            _ => {}
        }
    }

    fn text_protocol(&mut self, from_client: bool, seg: &TcpSegment<'_>) {
        let carry = &mut self.text.get_or_insert_default().lines[usize::from(from_client)];
        let mut joined = [0; LINE_HEAD];
        // The end of the line the segment may continue, before it is read.
        let before = carry.tail;
        let Some((first, rest, continued)) = carry.read(seg, &mut joined) else {
            return; // bytes already read
        };
        // The first line's bytes in this segment, when it continues one begun before, and
        // that line's end before them.
        let mut continued = first.map(|_| (before, continued));
        let first_ended = carry.ended;
        // The end of the first line, which a line longer than `joined` holds is cut from it.
        let mut first_tail = first.map(|_| carry.first_tail);
        let mut go_ahead = false;
        // The lines: `first` (ended or not), then those of `rest`, the last one not ended
        // unless `rest` ends with a LF. IMAP literals (`{n}` ending a line, then n octets of
        // data) are skipped.
        let mut first = first.map(|n| (&joined[..n], first_ended));
        let mut rest = rest;
        let mut more = true;
        while let Some((line, ended)) = first.take().or_else(|| {
            let piece = std::mem::take(&mut more).then_some(rest)?;
            Some(match rest.iter().position(|&c| c == b'\n') {
                Some(i) => {
                    more = true;
                    rest = &piece[i + 1..];
                    let l = &piece[..i];
                    (l.strip_suffix(b"\r").unwrap_or(l), true)
                }
                None => (piece.strip_suffix(b"\r").unwrap_or(piece), false),
            })
        }) {
            // The line's end (the first line's may be cut from `line`).
            let end = first_tail.take();
            let continued = continued.take();
            // Data announced by the line: (its octets, whether the line goes on after them).
            let data = match self.protocol {
                _ if !ended => None,
                Some(Protocol::Imap) => {
                    imap_literal(end.as_ref().map_or(line, LineTail::bytes)).map(|n| (n, true))
                }
                // A `BDAT` among commands, or pipelined behind a `DATA` whose `354` has not
                // come (refused, as it must be for a client that chunks, it is a command).
                Some(Protocol::Smtp)
                    if from_client
                        && self
                            .text
                            .as_ref()
                            .is_some_and(|t| t.smtp_data != SmtpData::Content) =>
                {
                    smtp_bdat_chunk(line).map(|n| (n, false))
                }
                _ => None,
            };
            if let Some((n, goes_on)) = data {
                let Some(t) = self.text.as_mut() else {
                    break;
                };
                let carry = &mut t.lines[usize::from(from_client)];
                if n <= rest.len() {
                    // The data ends in this segment: its line goes on after it, or a new
                    // one starts.
                    rest = &rest[n..];
                    if !rest.contains(&b'\n') {
                        if goes_on {
                            (carry.inside, carry.len) = (true, 0);
                            carry.tail = LineTail::default();
                        } else if seg.payload.len() == seg.seg_len as usize {
                            carry.restart(rest);
                        }
                    }
                } else {
                    let at = seg.payload.len() - rest.len();
                    carry.skip_to = Some(SeqNum(seg.seq).plus((at + n) as u32));
                    carry.skip_line_goes_on = goes_on;
                    (carry.inside, carry.len) = (goes_on, 0);
                    carry.tail = LineTail::default();
                    more = false;
                }
            }
            if from_client && std::mem::take(&mut self.smtp_guessed) {
                // A greeting that did not say which: an FTP client's first command does.
                if FTP_FIRST_COMMANDS.iter().any(|c| starts_ci(line, c)) {
                    self.protocol = Some(Protocol::Ftp);
                }
            }
            if self.protocol == Some(Protocol::Smtp) && self.smtp_content(from_client, line) {
                continue;
            }
            if from_client {
                let cmd = match self.protocol {
                    // IMAP commands carry a tag first.
                    Some(Protocol::Imap) => {
                        line.splitn(2, |&c| c == b' ').nth(1).unwrap_or_default()
                    }
                    _ => line,
                };
                match self.protocol {
                    Some(Protocol::Ftp) if starts_ci(cmd, b"USER ") => {
                        let user = cmd[5..].trim_ascii();
                        if let Some(t) = self.text.as_mut() {
                            t.ftp_anonymous = user.eq_ignore_ascii_case(b"anonymous")
                                || user.eq_ignore_ascii_case(b"ftp");
                        }
                    }
                    Some(Protocol::Ftp) if cmd.trim_ascii().eq_ignore_ascii_case(b"FEAT") => {
                        if let Some(t) = self.text.as_mut() {
                            t.ftp_feat_asked = true;
                        }
                    }
                    Some(Protocol::Ftp)
                        if starts_ci(cmd, b"PASS ")
                            && !self.text.as_ref().is_some_and(|t| t.ftp_anonymous) =>
                    {
                        self.credentials.set("ftp-pass")
                    }
                    Some(Protocol::Smtp)
                        if starts_ci(cmd, b"AUTH PLAIN") || starts_ci(cmd, b"AUTH LOGIN") =>
                    {
                        self.credentials.set("smtp-auth")
                    }
                    // SASL PLAIN and LOGIN carry the password in base64 (on the command's
                    // line, or the lines after it).
                    Some(Protocol::Imap)
                        if starts_ci(cmd, b"LOGIN ")
                            || starts_ci(cmd, b"AUTHENTICATE PLAIN")
                            || starts_ci(cmd, b"AUTHENTICATE LOGIN") =>
                    {
                        self.credentials.set("imap-login")
                    }
                    Some(Protocol::Pop3)
                        if starts_ci(cmd, b"PASS ")
                            || starts_ci(cmd, b"APOP ")
                            || starts_ci(cmd, b"AUTH PLAIN")
                            || starts_ci(cmd, b"AUTH LOGIN") =>
                    {
                        self.credentials.set("pop3-pass")
                    }
                    _ => {}
                }
                if starts_ci(cmd, b"STARTTLS")
                    || starts_ci(cmd, b"STLS")
                    || starts_ci(cmd, b"AUTH TLS")
                {
                    self.starttls_requested = true;
                    if self.protocol == Some(Protocol::Imap) {
                        let tag = line.split(|&c| c == b' ').next().unwrap_or_default();
                        if let Some(t) = self.text.as_mut() {
                            t.starttls_tag = tag[..tag.len().min(32)].to_vec();
                        }
                    }
                }
            } else {
                let offered = match self.protocol {
                    Some(Protocol::Smtp) => {
                        contains_ci(line, b"STARTTLS") && line.starts_with(b"250")
                    }
                    // A capability list longer than `line` may go on in `continued`.
                    Some(Protocol::Imap) => {
                        imap_offers_starttls(line)
                            || continued.is_some_and(|(before, more)| {
                                imap_list_goes_on_with_starttls(line, before.bytes(), more)
                            })
                    }
                    Some(Protocol::Pop3) => line.eq_ignore_ascii_case(b"STLS"),
                    Some(Protocol::Ftp) => self
                        .text
                        .as_mut()
                        .is_some_and(|t| t.ftp_feature_offers_tls(line)),
                    _ => false,
                };
                self.starttls_offered |= offered;
                if self.starttls_requested && !self.starttls_used {
                    match self.starttls_answer(line) {
                        Some(true) => go_ahead = true,
                        // Refused: the connection goes on in clear.
                        Some(false) => self.starttls_requested = false,
                        None => {}
                    }
                }
            }
        }
        // The server's go-ahead after STARTTLS: TLS follows on both sides.
        if go_ahead {
            self.tls_after(seg);
        }
    }

    /// SMTP: whether `line` is a message's content (after `DATA` and the server's `354`, up
    /// to the lone `.` that ends it, or the server's reply to it when the `.` was not seen),
    /// which is mail, not a command; follows `DATA` and `354`.
    fn smtp_content(&mut self, from_client: bool, line: &[u8]) -> bool {
        let Some(t) = self.text.as_mut() else {
            return false;
        };
        match (from_client, t.smtp_data) {
            (true, SmtpData::Content) => {
                if line == b"." {
                    t.smtp_data = SmtpData::Commands;
                }
                true
            }
            (true, _) if line.eq_ignore_ascii_case(b"DATA") => {
                t.smtp_data = SmtpData::Asked;
                false
            }
            (false, SmtpData::Asked) if line.starts_with(b"354") => {
                t.smtp_data = SmtpData::Content;
                false
            }
            // The server says nothing during the content but its reply to the end of it: a
            // reply now means the `.` was sent, though not captured (a lost segment, a
            // capture started or filtered short). The client's lines are commands again.
            (false, SmtpData::Content)
                if line
                    .get(..3)
                    .is_some_and(|c| c.iter().all(u8::is_ascii_digit)) =>
            {
                t.smtp_data = SmtpData::Commands;
                false
            }
            _ => false,
        }
    }

    /// The server's go-ahead `seg` for STARTTLS (or PostgreSQL's `S`): TLS follows on both
    /// sides, after it (a retransmitted go-ahead is not TLS).
    fn tls_after(&mut self, seg: &TcpSegment<'_>) {
        self.starttls_used = true;
        self.tls = Some(Box::new(TlsInfo {
            upgraded: true,
            server_next: Some(SeqNum(seg.seq).plus(seg.seg_len)),
            ..TlsInfo::default()
        }));
    }

    /// The server's answer to STARTTLS (STLS, AUTH TLS) if `line` is one: `Some(true)` the
    /// go-ahead (SMTP 220, FTP 234, POP3 +OK, IMAP the command's tag and OK), `Some(false)` a
    /// refusal (4xx or 5xx, -ERR, the tag and NO or BAD).
    fn starttls_answer(&self, line: &[u8]) -> Option<bool> {
        match self.protocol? {
            Protocol::Pop3 if line.starts_with(b"+OK") => Some(true),
            Protocol::Pop3 if line.starts_with(b"-ERR") => Some(false),
            Protocol::Imap => {
                let status = line
                    .strip_prefix(self.text.as_ref()?.starttls_tag.as_slice())?
                    .strip_prefix(b" ")?;
                if starts_ci(status, b"OK") {
                    Some(true)
                } else {
                    (starts_ci(status, b"NO") || starts_ci(status, b"BAD")).then_some(false)
                }
            }
            protocol @ (Protocol::Smtp | Protocol::Ftp) => {
                let code = line.get(..3).filter(|c| c.iter().all(u8::is_ascii_digit))?;
                let go: &[u8] = if protocol == Protocol::Smtp {
                    b"220"
                } else {
                    b"234"
                };
                if code == go {
                    Some(true)
                } else {
                    // A reply's last line (code, then a space or nothing) refuses.
                    (matches!(code[0], b'4' | b'5') && line.get(3).is_none_or(|&c| c == b' '))
                        .then_some(false)
                }
            }
            _ => None,
        }
    }

    fn postgres(&mut self, from_client: bool, seg: &TcpSegment<'_>) {
        let p = seg.payload;
        if from_client {
            if p.len() >= 8 && u32::from_be_bytes([p[4], p[5], p[6], p[7]]) == 80_877_103 {
                self.pg_ssl_requested = true;
                return;
            }
            if p.first() == Some(&b'p') && matches!(self.pg_auth, 3 | 5) {
                self.credentials.set(if self.pg_auth == 3 {
                    "postgresql-password"
                } else {
                    "postgresql-md5"
                });
            }
        } else {
            if self.pg_ssl_requested && !self.starttls_used && p.len() == 1 {
                self.starttls_offered = p[0] == b'S';
                if p[0] == b'S' {
                    self.tls_after(seg);
                }
                return;
            }
            // Authentication request: 'R', length 8 or more, auth code.
            if p.len() >= 9 && p[0] == b'R' {
                self.pg_auth = u32::from_be_bytes([p[5], p[6], p[7], p[8]]) as u8;
            }
        }
    }

    /// Whether the application payload travelled in clear (identified, not TLS/SSH, and not
    /// upgraded to TLS before credentials could flow).
    pub fn plaintext(&self) -> bool {
        self.protocol.is_some_and(|p| !p.encrypted())
    }

    /// Heap bytes this connection holds for parsing (the TLS handshake's buffers).
    pub fn buffered_bytes(&self) -> usize {
        self.tls.as_ref().map_or(0, |t| t.buffered_bytes())
    }

    /// Frees what [`ConnInfo::buffered_bytes`] counts and stops following the TLS handshake.
    pub fn shed(&mut self) {
        if let Some(t) = self.tls.as_mut() {
            t.shed();
        }
    }
}

impl TlsInfo {
    /// This side's first handshake message (its hello) is not whole in the buffer.
    fn hello_cut(&self, from_client: bool) -> bool {
        if from_client {
            !tls::first_message_complete(&self.client_buf)
        } else {
            self.server_buf
                .get(self.server_offset..)
                .is_none_or(|r| !tls::first_message_complete(r))
        }
    }

    fn feed(&mut self, from_client: bool, seg: &TcpSegment<'_>, ts: Timestamp) {
        let (buf, next, broken) = if from_client {
            (
                &mut self.client_buf,
                &mut self.client_next,
                &mut self.client_broken,
            )
        } else {
            (
                &mut self.server_buf,
                &mut self.server_next,
                &mut self.server_broken,
            )
        };
        // Once application data flows the handshake is over: nothing more to learn (and the
        // rest of the connection costs nothing here).
        if *broken || self.app_data {
            return;
        }
        let mut seq = SeqNum(seg.seq);
        let expect = *next.get_or_insert(seq);
        let mut d = seq.diff(expect);
        let mut payload = seg.payload;
        if d < 0 {
            // A retransmission: of bytes already buffered, or overlapping them and carrying
            // new ones after (repacketised). The receiver kept its first copy of the overlap.
            let skip = d.unsigned_abs();
            if skip >= seg.seg_len {
                return;
            }
            payload = payload.get(skip as usize..).unwrap_or(&[]);
            seq = expect;
            d = 0;
        }
        if seg.payload.len() < seg.seg_len as usize {
            // Bytes cut by the snap length: the records can no longer be followed.
            *broken = true;
            return;
        }
        let held = if from_client {
            &mut self.client_held
        } else {
            &mut self.server_held
        };
        if d > 0 {
            // Out of order: hold a few segments until the gap fills.
            if held.len() < MAX_HELD && payload.len() <= TLS_BUFFER {
                held.push((seq, payload.to_vec()));
            } else {
                *broken = true;
                self.limit_hit |= self.hello_cut(from_client);
            }
            return;
        }
        let mut end = seq.plus(payload.len() as u32);
        let room = TLS_BUFFER.saturating_sub(buf.len());
        buf.extend_from_slice(&payload[..payload.len().min(room)]);
        let mut dropped = payload.len() > room;
        // Held segments that now continue the stream.
        while let Some(i) = held.iter().position(|(s, _)| s.diff(end) <= 0) {
            let (s, data) = held.swap_remove(i);
            let skip = end.diff(s) as usize;
            if skip < data.len() {
                let room = TLS_BUFFER.saturating_sub(buf.len());
                let tail = &data[skip..];
                buf.extend_from_slice(&tail[..tail.len().min(room)]);
                dropped |= tail.len() > room;
                end = s.plus(data.len() as u32);
            }
        }
        *next = Some(end);
        if from_client {
            if self.client_hello.is_none()
                && (tls::first_message_complete(&self.client_buf)
                    || self.client_buf.len() >= TLS_BUFFER)
            {
                if let Some(ch) = tls::client_hello(&self.client_buf) {
                    self.client_hello = Some(ch);
                    self.client_hello_ts = Some(ts);
                }
            }
            if self.client_hello.is_some()
                && contains_record(&self.client_buf, tls::content::APPLICATION_DATA)
            {
                if self.version().is_some() {
                    self.app_data = true;
                } else {
                    // Before the ServerHello it is 0-RTT early data (RFC 8446 §2.3): the
                    // handshake is not over, the server's answer is still to be read; the
                    // client's side has nothing more to tell, and keeps no copy.
                    self.client_broken = true;
                    self.client_buf = Vec::new();
                    self.client_held = Vec::new();
                }
            }
        } else {
            while self.server_hello.as_ref().is_none_or(|s| s.hello_retry) {
                let Some(rest) = self.server_buf.get(self.server_offset..) else {
                    break;
                };
                if !tls::first_message_complete(rest) && self.server_buf.len() < TLS_BUFFER {
                    break;
                }
                let Some(sh) = tls::server_hello(rest) else {
                    // A ChangeCipherSpec (middlebox compatibility) may sit between a
                    // HelloRetryRequest and the real ServerHello: skip whole non-handshake
                    // records.
                    match tls::record(rest) {
                        Some((ty, _, used)) if ty != tls::content::HANDSHAKE => {
                            self.server_offset += used;
                            continue;
                        }
                        _ => break,
                    }
                };
                if sh.hello_retry {
                    self.hello_retry = true;
                    // The real ServerHello comes after the HelloRetryRequest's record.
                    match tls::record(rest) {
                        Some((_, _, used)) => self.server_offset += used,
                        None => break,
                    }
                    self.server_hello = Some(sh);
                    continue;
                }
                self.server_hello = Some(sh);
            }
            if contains_record(&self.server_buf, tls::content::APPLICATION_DATA) {
                self.app_data = true;
            }
        }
        // Only bytes dropped from this side's hello matter.
        self.limit_hit |= dropped && self.hello_cut(from_client);
        self.alerts = tls::alerts(&self.client_buf)
            .into_iter()
            .map(|a| (true, a))
            .chain(
                tls::alerts(&self.server_buf)
                    .into_iter()
                    .map(|a| (false, a)),
            )
            .collect();
        if self.app_data {
            // Nothing more will be read from the handshake: a long-lived connection keeps no
            // copy of it.
            self.release();
        }
    }

    /// Frees the handshake buffers and held segments.
    fn release(&mut self) {
        self.client_buf = Vec::new();
        self.server_buf = Vec::new();
        self.client_held = Vec::new();
        self.server_held = Vec::new();
    }

    /// Heap bytes held for the handshake (buffers and out-of-order segments).
    pub fn buffered_bytes(&self) -> usize {
        let held = |h: &[(SeqNum, Vec<u8>)]| {
            h.iter()
                .map(|(_, d)| d.capacity() + std::mem::size_of::<(SeqNum, Vec<u8>)>())
                .sum::<usize>()
        };
        self.client_buf.capacity()
            + self.server_buf.capacity()
            + held(&self.client_held)
            + held(&self.server_held)
    }

    /// Stops following the handshake and frees what it held (the run-wide budget for such
    /// buffers is spent); a hello not yet whole counts as cut.
    fn shed(&mut self) {
        // A side that sent nothing yet lost nothing.
        let cut = (!self.client_broken && !self.client_buf.is_empty() && self.hello_cut(true))
            || (!self.server_broken && !self.server_buf.is_empty() && self.hello_cut(false));
        self.limit_hit |= cut;
        self.client_broken = true;
        self.server_broken = true;
        self.release();
    }

    /// The negotiated version, when the ServerHello was seen.
    pub fn version(&self) -> Option<u16> {
        self.server_hello
            .as_ref()
            .filter(|s| !s.hello_retry)
            .map(ServerHello::version)
    }
}

fn contains_record(mut b: &[u8], ty: u8) -> bool {
    while let Some((t, _, used)) = tls::record(b) {
        if t == ty {
            return true;
        }
        b = &b[used..];
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Kafka request as the protocol guide lays it out: INT32 size, then the request header
    /// (api_key, api_version, correlation_id, client_id as a NULLABLE_STRING) and the body.
    fn kafka(key: i16, version: i16, client: Option<&[u8]>, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&key.to_be_bytes());
        m.extend_from_slice(&version.to_be_bytes());
        m.extend_from_slice(&7i32.to_be_bytes());
        match client {
            Some(c) => {
                m.extend_from_slice(&(c.len() as i16).to_be_bytes());
                m.extend_from_slice(c);
            }
            None => m.extend_from_slice(&(-1i16).to_be_bytes()),
        }
        m.extend_from_slice(body);
        let mut out = (m.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&m);
        out
    }

    fn seg(payload: &[u8]) -> TcpSegment<'_> {
        TcpSegment {
            sport: 40000,
            dport: 9092,
            seq: 1,
            ack: 1,
            flags: 0x18,
            window: 65535,
            options: &[],
            payload,
            seg_len: payload.len() as u32,
            checksum: 0,
        }
    }

    fn conversation(client: &[&[u8]]) -> ConnInfo {
        let mut c = ConnInfo::default();
        let answer = kafka(0, 0, None, &[0; 6]); // any broker bytes in between
        for (i, p) in client.iter().enumerate() {
            c.on_segment(true, 9092, &seg(p), Timestamp(i as i64 * 2));
            c.on_segment(false, 9092, &seg(&answer), Timestamp(i as i64 * 2 + 1));
        }
        c
    }

    #[test]
    fn rtsp_is_rtsp_not_http() {
        for req in [
            &b"OPTIONS rtsp://10.2.2.2:8554/ RTSP/1.0\r\nCSeq: 2\r\n\r\n"[..],
            b"DESCRIBE rtsp://cam/stream RTSP/1.0\r\nCSeq: 3\r\n\r\n",
            b"GET_PARAMETER rtsp://cam/ RTSP/2.0\r\n",
        ] {
            let n = req.len();
            assert_eq!(identify_client(req, n, 8554), Some(Protocol::Rtsp));
        }
        assert_eq!(
            identify_server(b"RTSP/1.0 200 OK\r\nCSeq: 2\r\n\r\n", 554, false),
            Some(Protocol::Rtsp)
        );
        let http = b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(identify_client(http, http.len(), 80), Some(Protocol::Http));
    }

    #[test]
    fn a_redis_password_is_an_auth_command_or_hello_s_auth_option() {
        for (p, expect) in [
            (&b"*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n"[..], true),
            (b"*3\r\n$4\r\nauth\r\n$5\r\nalice\r\n$6\r\nsecret\r\n", true),
            (b"AUTH secret\r\n", true),
            (
                b"*5\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nAUTH\r\n$1\r\na\r\n$1\r\nb\r\n",
                true,
            ),
            (b"HELLO 3 SETNAME x AUTH a b\r\n", true),
            // The AUTH after a first command of the segment (a pipeline).
            (b"*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nAUTH\r\n$1\r\np\r\n", true),
            // No password: HELLO naming the client "auth…", a key holding the word.
            (
                b"*4\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$7\r\nSETNAME\r\n$4\r\nauth\r\n",
                false,
            ),
            (b"HELLO 3\r\nCLIENT SETNAME auth-svc\r\n", false),
            (b"*2\r\n$3\r\nGET\r\n$12\r\nhello:author\r\n", false),
            (b"*3\r\n$3\r\nSET\r\n$4\r\nAUTH\r\n$1\r\nx\r\n", false),
            (b"*2\r\n$4\r\nAUTH\r\n$6\r\nsec", true),
            (b"*99999999999\r\n", false),
            (b"", false),
        ] {
            assert_eq!(
                redis_sends_password(p),
                expect,
                "{}",
                String::from_utf8_lossy(p)
            );
        }
    }

    #[test]
    fn imap_literals_are_counted_from_the_end_of_their_line() {
        assert_eq!(imap_literal(b"a1 APPEND INBOX {310}"), Some(310));
        assert_eq!(imap_literal(b"a1 APPEND INBOX (\\Seen) {12+}"), Some(12));
        assert_eq!(imap_literal(b"a1 LOGIN {5-}"), Some(5));
        assert_eq!(imap_literal(b"* 1 FETCH (BINARY[] ~{0}"), Some(0));
        assert_eq!(
            imap_literal(b"* 1 FETCH (BODY[] {9999999999}"),
            Some(1 << 30)
        );
        for no in [
            &b"a1 SELECT {x}"[..],
            b"a1 NOOP {}",
            b"{12} a1 NOOP",
            b"}",
            b"",
        ] {
            assert_eq!(imap_literal(no), None, "{}", String::from_utf8_lossy(no));
        }
    }

    #[test]
    fn contains_ci_finds_the_needle_anywhere_in_any_case() {
        assert!(contains_ci(b"AUTH", b"auth"));
        assert!(contains_ci(b"xxHeLLo", b"hello"));
        assert!(contains_ci(b"hello world", b"HELLO"));
        assert!(contains_ci(b"*2\r\n$4\r\nAUTH\r\n", b"\r\nauth\r\n"));
        // A first byte that matches where the rest does not, then the match.
        assert!(contains_ci(b"aaassword", b"assword"));
        assert!(!contains_ci(b"passwor", b"assword"));
        assert!(!contains_ci(b"ab", b"abc"));
        assert!(!contains_ci(b"", b"a"));
        // Only ASCII letters fold: '@' (0x40) is not '`' (0x60).
        assert!(!contains_ci(b"@", b"`"));
    }

    #[test]
    fn rtsp_authorization_is_a_credential_in_clear() {
        let cases: [(&[u8], &[&str]); 5] = [
            (
                b"DESCRIBE rtsp://cam/s RTSP/1.0\r\nCSeq: 3\r\nAuthorization: Basic YWRtaW46MTIzNDU=\r\n\r\n",
                &["http-basic"],
            ),
            (
                b"DESCRIBE rtsp://cam/s RTSP/1.0\r\nCSeq: 3\r\nauthorization: digest username=\"a\", realm=\"c\"\r\n\r\n",
                &["http-digest"],
            ),
            (b"DESCRIBE rtsp://cam/s RTSP/1.0\r\nCSeq: 2\r\n\r\n", &[]),
            (
                b"SETUP rtsp://cam/s RTSP/1.0\nCSeq: 4\nAuthorization:\tBasic YTpi\n\n",
                &["http-basic"],
            ),
            (
                b"DESCRIBE rtsp://cam/s RTSP/1.0\r\nX-Authorization: Basic YTpi\r\n\r\n",
                &[],
            ),
        ];
        for (req, want) in cases {
            let mut c = ConnInfo::default();
            c.on_segment(true, 554, &seg(req), Timestamp(0));
            assert_eq!(c.protocol, Some(Protocol::Rtsp));
            assert_eq!(
                c.credentials.names(),
                want,
                "{}",
                String::from_utf8_lossy(req)
            );
        }
    }

    #[test]
    fn kafka_requests_are_identified() {
        // ApiVersions v3 (flexible header: an empty tagged-field section after the client id).
        let api_versions = kafka(18, 3, Some(b"rdkafka"), &[0, 8, b'l', b'i', b'b', 0]);
        let n = api_versions.len();
        assert_eq!(identify_client(&api_versions, n, 0), Some(Protocol::Kafka));
        // Captured with a short snap length (the client id whole, the body cut): the wire
        // length still matches.
        assert_eq!(
            identify_client(&api_versions[..21], n, 0),
            Some(Protocol::Kafka)
        );
        // Two requests back to back.
        let two = [api_versions.clone(), api_versions.clone()].concat();
        assert_eq!(identify_client(&two, two.len(), 0), Some(Protocol::Kafka));
        // Produce v3 with a null client id: its first, full-sized (536-byte) segment.
        let produce = kafka(0, 3, None, &[0xff; 1000]);
        assert_eq!(
            identify_client(&produce[..536], 536, 0),
            Some(Protocol::Kafka)
        );
        // … but a short segment whose header claims more is not enough.
        assert_eq!(identify_client(&produce[..40], 40, 0), None);
        // A PostgreSQL startup message has a plausible Kafka header too; it stays PostgreSQL.
        let mut pg = 0x0003_0000u32.to_be_bytes().to_vec();
        pg.extend_from_slice(b"user\0app\0\0");
        let mut startup = ((pg.len() + 4) as u32).to_be_bytes().to_vec();
        startup.extend_from_slice(&pg);
        assert_eq!(
            identify_client(&startup, startup.len(), 0),
            Some(Protocol::Postgres)
        );
    }

    #[test]
    fn implausible_kafka_headers_are_not_identified() {
        // An API key beyond the protocol's, an absurd version, a client id with control bytes,
        // a client id longer than the segment, a size too small for the header.
        for p in [
            kafka(200, 0, Some(b"x"), b""),
            kafka(3, 99, Some(b"x"), b""),
            kafka(3, 1, Some(b"a\x01b"), b""),
            kafka(3, 1, Some(b"client"), b"")[..16].to_vec(),
            vec![0, 0, 0, 2, 0, 3, 0, 1, 0, 0, 0, 7, 0xff, 0xff],
            // DNS over TCP (an LLMNR query): length 0x21, id 0x7b2a, flags 0, one question —
            // read as Kafka: api key 0, version 1, an empty client id, but a size of 0x21_7b2a.
            [
                &[0x00, 0x21, 0x7b, 0x2a, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0][..],
                &[5, b'w', b'p', b'a', b'd', 0, 0, 1, 0, 1][..],
            ]
            .concat(),
        ] {
            assert_eq!(identify_client(&p, p.len(), 0), None, "{p:?}");
        }
    }

    #[test]
    fn sasl_plain_is_a_password_in_clear_and_scram_is_not() {
        let plain = kafka(17, 1, Some(b"app"), b"\x00\x05PLAIN");
        let mut token = 13i32.to_be_bytes().to_vec();
        token.extend_from_slice(b"\0alice\0secret");
        let auth = kafka(36, 1, Some(b"app"), &token);
        let c = conversation(&[&plain, &auth]);
        assert_eq!(c.protocol, Some(Protocol::Kafka));
        assert_eq!(c.credentials.names(), ["kafka-sasl-plain"]);
        assert!(c.credentials.has_password());

        // The PLAIN handshake alone (the connection ended before authenticating) carried none.
        assert!(!conversation(&[&plain]).credentials.any());

        let scram = kafka(17, 1, Some(b"app"), b"\x00\x0dSCRAM-SHA-512");
        let c = conversation(&[&scram, &kafka(36, 1, Some(b"app"), b"\0\0\0\x04n,,n")]);
        assert_eq!(c.protocol, Some(Protocol::Kafka));
        assert!(!c.credentials.any());
    }
}
