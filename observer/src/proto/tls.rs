//! TLS handshake messages (RFC 8446, 5246): ClientHello and ServerHello (versions, ALPN, SNI,
//! cipher suites, HelloRetryRequest) and plaintext alerts, from the first records of a
//! connection. Works on a byte buffer holding whole records; never panics on any input.

/// Record content types.
pub mod content {
    /// ChangeCipherSpec.
    pub const CHANGE_CIPHER_SPEC: u8 = 20;
    /// Alert.
    pub const ALERT: u8 = 21;
    /// Handshake.
    pub const HANDSHAKE: u8 = 22;
    /// Application data.
    pub const APPLICATION_DATA: u8 = 23;
}

/// A ClientHello's facts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientHello {
    /// `legacy_version`.
    pub legacy_version: u16,
    /// `supported_versions` (GREASE removed), in the client's order.
    pub supported_versions: Vec<u16>,
    /// ALPN protocol names offered (GREASE removed).
    pub alpn: Vec<String>,
    /// Server name (SNI), at most [`MAX_SNI`] bytes of it.
    pub sni: Option<String>,
    /// Number of cipher suites offered.
    pub cipher_suites: usize,
}

impl ClientHello {
    /// The highest version the client offers, in [`version_order`] (a draft of TLS 1.3 below
    /// TLS 1.3).
    pub fn max_version(&self) -> u16 {
        self.offered_versions()
            .max_by_key(|&v| version_order(v))
            .unwrap_or(self.legacy_version)
    }

    /// The versions offered: `supported_versions` when the hello has it (`legacy_version` is
    /// then 0x0303 for middleboxes' sake, no offer of TLS 1.2: RFC 8446 §4.2.1), else
    /// `legacy_version` alone.
    pub fn offered_versions(&self) -> impl Iterator<Item = u16> + '_ {
        let legacy = self
            .supported_versions
            .is_empty()
            .then_some(self.legacy_version);
        self.supported_versions.iter().copied().chain(legacy)
    }
}

/// A ServerHello's facts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerHello {
    /// `legacy_version`.
    pub legacy_version: u16,
    /// The `supported_versions` extension's selection, if present.
    pub selected_version: Option<u16>,
    /// ALPN protocol selected.
    pub alpn: Option<String>,
    /// A HelloRetryRequest (the special random).
    pub hello_retry: bool,
    /// Selected cipher suite.
    pub cipher_suite: u16,
}

impl ServerHello {
    /// The negotiated version.
    pub fn version(&self) -> u16 {
        self.selected_version.unwrap_or(self.legacy_version)
    }
}

/// A plaintext alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Alert {
    /// 1 warning, 2 fatal.
    pub level: u8,
    /// AlertDescription.
    pub description: u8,
}

/// The SHA-256 of "HelloRetryRequest", the random value that marks one.
const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

/// A version's name as Wireshark users write it (`TLS1.2`, `SSL3.0`, `TLS1.3-draft23`).
pub fn version_name(v: u16) -> String {
    match v {
        0x0002 => "SSL2.0".into(),
        0x0300 => "SSL3.0".into(),
        0x0301 => "TLS1.0".into(),
        0x0302 => "TLS1.1".into(),
        0x0303 => "TLS1.2".into(),
        0x0304 => "TLS1.3".into(),
        v if v >> 8 == 0x7f => format!("TLS1.3-draft{}", v & 0xff),
        v => format!("0x{v:04x}"),
    }
}

/// A key that orders versions from oldest to newest: a draft of TLS 1.3 (0x7fxx, numerically
/// above everything) comes after TLS 1.2 and before TLS 1.3 (0x0304), later drafts after
/// earlier ones.
pub fn version_order(v: u16) -> (u16, u16) {
    if v >> 8 == 0x7f {
        (0x0303, 1 + (v & 0xff))
    } else {
        (v, 0)
    }
}

/// Whether a negotiated version is obsolete (below TLS 1.2; drafts count as 1.3).
pub fn is_obsolete(v: u16) -> bool {
    v < 0x0303 && v >> 8 != 0x7f
}

/// An alert description's name.
pub fn alert_name(d: u8) -> &'static str {
    match d {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        40 => "handshake_failure",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        109 => "missing_extension",
        110 => "unsupported_extension",
        112 => "unrecognized_name",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => "unknown",
    }
}

/// Whether `b` starts like a TLS record (handshake, alert or CCS with a 3.x version).
pub fn looks_like_tls(b: &[u8]) -> bool {
    b.len() >= 3 && matches!(b[0], 20..=23) && b[1] == 3 && b[2] <= 4
}

/// Whether `b` starts like an SSLv2-framed ClientHello (old clients): a 2-byte length with the
/// high bit set, message type 1, and version 0x0002 or 0x03xx.
pub fn looks_like_sslv2_hello(b: &[u8]) -> bool {
    if b.len() < 11 || b[0] & 0x80 == 0 || b[2] != 1 {
        return false;
    }
    let len = (usize::from(b[0] & 0x7f) << 8) | usize::from(b[1]);
    let version_ok = (b[3] == 0 && b[4] == 2) || (b[3] == 3 && b[4] <= 4);
    // Cipher-spec length is a multiple of 3 in SSLv2.
    let specs = usize::from(u16::from_be_bytes([b[5], b[6]]));
    len >= 9 && version_ok && specs % 3 == 0
}

/// One record at the start of `b`: (content type, fragment), or None if incomplete.
pub fn record(b: &[u8]) -> Option<(u8, &[u8], usize)> {
    if b.len() < 5 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([b[3], b[4]]));
    let body = b.get(5..5 + len)?;
    Some((b[0], body, 5 + len))
}

/// Whether the first record is not a handshake record, or the first handshake message in the
/// leading handshake records is complete (a hello may span several records and segments).
pub fn first_message_complete(b: &[u8]) -> bool {
    if looks_like_sslv2_hello(b) {
        return b.len() >= 5;
    }
    if b.len() >= 5 && b[0] != content::HANDSHAKE {
        return true;
    }
    let mut msg = Vec::new();
    let mut rest = b;
    while rest.len() >= 5 && rest[0] == content::HANDSHAKE {
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        // A record still arriving counts with what it holds so far.
        let end = (5 + len).min(rest.len());
        msg.extend_from_slice(&rest[5..end]);
        if msg.len() >= 4 {
            let need = 4
                + ((usize::from(msg[1]) << 16) | (usize::from(msg[2]) << 8) | usize::from(msg[3]));
            if msg.len() >= need {
                return true;
            }
        }
        if end < 5 + len {
            break;
        }
        rest = &rest[end..];
    }
    false
}

/// Bytes needed for the complete first record (header included), once its header is known.
pub fn first_record_len(b: &[u8]) -> Option<usize> {
    (b.len() >= 5).then(|| 5 + usize::from(u16::from_be_bytes([b[3], b[4]])))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (a, b) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u24(&mut self) -> Option<usize> {
        let b = self.take(3)?;
        Some((usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]))
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = usize::from(self.u8()?);
        self.take(n)
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = usize::from(self.u16()?);
        self.take(n)
    }
}

/// Bytes of a server name kept: a DNS name has at most 253 characters, so anything longer is
/// not a name, and a hostile hello must not make every later use of it costly.
pub const MAX_SNI: usize = 255;

fn alpn_list(mut r: Reader<'_>) -> Vec<String> {
    let mut out = Vec::new();
    let Some(list) = r.vec16() else { return out };
    let mut l = Reader(list);
    while let Some(name) = l.vec8() {
        // GREASE (RFC 8701: 0x0A 0x0A, 0x1A 0x1A … 0xFA 0xFA) keeps servers tolerant of
        // unknown protocols; it names none.
        if let &[a, b] = name {
            if is_grease(u16::from_be_bytes([a, b])) {
                continue;
            }
        }
        out.push(String::from_utf8_lossy(name).into_owned());
        if out.len() >= 16 {
            break;
        }
    }
    out
}

/// The first handshake message in a handshake record's fragment: (type, body).
fn handshake(frag: &[u8]) -> Option<(u8, &[u8])> {
    let mut r = Reader(frag);
    let ty = r.u8()?;
    let len = r.u24()?;
    // A hello may continue in the next record: use what this one holds.
    let body = &frag[4..];
    Some((ty, &body[..len.min(body.len())]))
}

/// Parses the ClientHello in the handshake records at the start of `b` (records may be
/// fragmented: their fragments are joined up to `b`'s end).
pub fn client_hello(b: &[u8]) -> Option<ClientHello> {
    if looks_like_sslv2_hello(b) && b.len() >= 5 {
        // SSLv2-framed ClientHello: 2-byte length, type 1, then the highest version offered.
        return Some(ClientHello {
            legacy_version: u16::from_be_bytes([b[3], b[4]]),
            ..ClientHello::default()
        });
    }
    let msg = join_handshake(b)?;
    let (ty, body) = handshake(&msg)?;
    if ty != 1 {
        return None;
    }
    let mut r = Reader(body);
    let mut ch = ClientHello {
        legacy_version: r.u16()?,
        ..ClientHello::default()
    };
    r.take(32)?;
    r.vec8()?;
    let suites = r.vec16()?;
    ch.cipher_suites = suites.len() / 2;
    r.vec8()?;
    let Some(exts) = r.vec16() else {
        return Some(ch);
    };
    let mut e = Reader(exts);
    while let (Some(ty), Some(data)) = (e.u16(), e.vec16()) {
        match ty {
            0 => {
                let mut s = Reader(data);
                if let Some(list) = s.vec16() {
                    let mut l = Reader(list);
                    if let (Some(0), Some(name)) = (l.u8(), l.vec16()) {
                        ch.sni = Some(super::lossy_capped(name, MAX_SNI));
                    }
                }
            }
            16 => ch.alpn = alpn_list(Reader(data)),
            43 => {
                let mut s = Reader(data);
                if let Some(list) = s.vec8() {
                    ch.supported_versions = list
                        .chunks_exact(2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]))
                        .filter(|v| !is_grease(*v))
                        .collect();
                }
            }
            _ => {}
        }
    }
    Some(ch)
}

/// Parses the ServerHello at the start of the server's first records.
pub fn server_hello(b: &[u8]) -> Option<ServerHello> {
    let msg = join_handshake(b)?;
    let (ty, body) = handshake(&msg)?;
    if ty != 2 {
        return None;
    }
    let mut r = Reader(body);
    let mut sh = ServerHello {
        legacy_version: r.u16()?,
        ..ServerHello::default()
    };
    let random = r.take(32)?;
    sh.hello_retry = random == HRR_RANDOM;
    r.vec8()?;
    sh.cipher_suite = r.u16()?;
    r.u8()?;
    let Some(exts) = r.vec16() else {
        return Some(sh);
    };
    let mut e = Reader(exts);
    while let (Some(ty), Some(data)) = (e.u16(), e.vec16()) {
        match ty {
            16 => sh.alpn = alpn_list(Reader(data)).into_iter().next(),
            43 if data.len() == 2 => {
                sh.selected_version = Some(u16::from_be_bytes([data[0], data[1]]))
            }
            _ => {}
        }
    }
    Some(sh)
}

/// The handshake bytes of the leading handshake records, joined (bounded).
fn join_handshake(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    while let Some((ty, frag, used)) = record(b) {
        if ty != content::HANDSHAKE {
            break;
        }
        out.extend_from_slice(frag);
        b = &b[used..];
        // Enough for the hello once the declared message length is there.
        if out.len() >= 4 {
            let need = 4
                + ((usize::from(out[1]) << 16) | (usize::from(out[2]) << 8) | usize::from(out[3]));
            if out.len() >= need || out.len() > 64 * 1024 {
                break;
            }
        }
    }
    // A record still arriving (or cut short): use what it holds.
    if b.len() > 5 && b[0] == content::HANDSHAKE && record(b).is_none() {
        out.extend_from_slice(&b[5..]);
    }
    if out.is_empty() {
        return None;
    }
    Some(out)
}

/// The shortest encrypted alert record: 2 bytes and the smallest MAC or tag (RC4-MD5,
/// ChaCha20-Poly1305, CCM_8 with its nonce).
const MIN_SEALED_ALERT: usize = 18;

/// Every plaintext alert among the records at the start of `b`, up to the first application
/// data. A ChangeCipherSpec does not end them: in TLS 1.3 it is a dummy (middlebox
/// compatibility, RFC 8446 §D.4), sent after a HelloRetryRequest before any key exists, and a
/// server may still refuse the second ClientHello with a plaintext alert; in TLS 1.2 an
/// alert encrypted after it carries its MAC or tag (18 bytes at least), so it is never a
/// record shorter than `MIN_SEALED_ALERT` bytes. A TLS 1.2 record may hold several alerts,
/// two bytes each (RFC 5246 §6.2.1: messages of one content type may be coalesced).
pub fn alerts(mut b: &[u8]) -> Vec<Alert> {
    let mut out = Vec::new();
    while let Some((ty, frag, used)) = record(b) {
        if ty == content::ALERT && frag.len() % 2 == 0 && frag.len() < MIN_SEALED_ALERT {
            out.extend(frag.chunks_exact(2).map(|a| Alert {
                level: a[0],
                description: a[1],
            }));
        }
        if ty == content::APPLICATION_DATA {
            break; // what follows is encrypted
        }
        b = &b[used..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plaintext_alert_after_a_change_cipher_spec_is_read_until_application_data() {
        let ccs = [20, 3, 3, 0, 1, 1];
        let alert = [21, 3, 3, 0, 2, 2, 47];
        // TLS 1.2: an alert encrypted after the CCS (2 bytes, a nonce and a tag): not read.
        let mut sealed = vec![21, 3, 3, 0, 26];
        sealed.extend_from_slice(&[0xaa; 26]);
        let app = [23, 3, 3, 0, 3, 1, 2, 3];
        let all = [&ccs[..], &sealed, &alert, &app, &alert].concat();
        let found: Vec<(u8, u8)> = alerts(&all)
            .iter()
            .map(|a| (a.level, a.description))
            .collect();
        assert_eq!(found, [(2, 47)]);
    }

    fn ext(ty: u16, data: &[u8]) -> Vec<u8> {
        let mut v = ty.to_be_bytes().to_vec();
        v.extend_from_slice(&(data.len() as u16).to_be_bytes());
        v.extend_from_slice(data);
        v
    }

    fn hs_record(ty: u8, body: &[u8]) -> Vec<u8> {
        let mut hs = vec![ty];
        hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(body);
        let mut rec = vec![22, 3, 1];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        rec
    }

    /// A ClientHello built field by field: legacy 1.2, offers GREASE, 1.3, 1.2; ALPN h2 and
    /// http/1.1; SNI svc.internal.
    fn client_hello_bytes() -> Vec<u8> {
        client_hello_named(b"svc.internal")
    }

    /// The same with another server name.
    fn client_hello_named(name: &[u8]) -> Vec<u8> {
        let mut b = vec![3, 3];
        b.extend_from_slice(&[7u8; 32]);
        b.push(0);
        b.extend_from_slice(&[0, 4, 0x13, 0x01, 0xc0, 0x2f]);
        b.extend_from_slice(&[1, 0]);
        let mut exts = Vec::new();
        let mut sni = ((name.len() + 3) as u16).to_be_bytes().to_vec();
        sni.push(0);
        sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
        sni.extend_from_slice(name);
        exts.extend(ext(0, &sni));
        let alpn_list = b"\x02h2\x08http/1.1";
        let mut alpn = (alpn_list.len() as u16).to_be_bytes().to_vec();
        alpn.extend_from_slice(alpn_list);
        exts.extend(ext(16, &alpn));
        exts.extend(ext(43, &[6, 0x1a, 0x1a, 3, 4, 3, 3]));
        b.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        b.extend_from_slice(&exts);
        hs_record(1, &b)
    }

    #[test]
    fn client_hello_fields() {
        let ch = client_hello(&client_hello_bytes()).unwrap();
        assert_eq!(ch.legacy_version, 0x0303);
        assert_eq!(ch.supported_versions, vec![0x0304, 0x0303]);
        assert_eq!(ch.max_version(), 0x0304);
        assert_eq!(ch.alpn, vec!["h2", "http/1.1"]);
        assert_eq!(ch.sni.as_deref(), Some("svc.internal"));
        assert_eq!(ch.cipher_suites, 2);
    }

    #[test]
    fn a_server_name_longer_than_a_dns_name_is_cut() {
        let long = vec![b'a'; 1000];
        let ch = client_hello(&client_hello_named(&long)).unwrap();
        assert_eq!(ch.sni.as_deref().map(str::len), Some(MAX_SNI));
        assert_eq!(ch.alpn, vec!["h2", "http/1.1"]);
        // Invalid UTF-8 grows when replaced: still at most MAX_SNI bytes.
        let ch = client_hello(&client_hello_named(&[0xff; 1000])).unwrap();
        let sni = ch.sni.unwrap();
        assert!(
            sni.len() <= MAX_SNI && sni.len() > MAX_SNI - 3,
            "{}",
            sni.len()
        );
    }

    #[test]
    fn client_hello_split_over_two_records_is_joined() {
        let whole = client_hello_bytes();
        let hs = &whole[5..];
        let (a, b) = hs.split_at(20);
        let mut two = vec![22, 3, 1];
        two.extend_from_slice(&(a.len() as u16).to_be_bytes());
        two.extend_from_slice(a);
        two.extend_from_slice(&[22, 3, 1]);
        two.extend_from_slice(&(b.len() as u16).to_be_bytes());
        two.extend_from_slice(b);
        assert_eq!(client_hello(&two), client_hello(&whole));
    }

    #[test]
    fn server_hello_selected_version_and_alpn() {
        let mut b = vec![3, 3];
        b.extend_from_slice(&[9u8; 32]);
        b.push(0);
        b.extend_from_slice(&[0x13, 0x01, 0]);
        let mut exts = ext(43, &[3, 4]);
        exts.extend(ext(16, &[0, 3, 2, b'h', b'2']));
        b.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        b.extend_from_slice(&exts);
        let sh = server_hello(&hs_record(2, &b)).unwrap();
        assert_eq!(sh.version(), 0x0304);
        assert_eq!(sh.alpn.as_deref(), Some("h2"));
        assert!(!sh.hello_retry);
    }

    #[test]
    fn two_byte_alerts_are_read_across_a_change_cipher_spec() {
        // A 2-byte alert record after a CCS cannot be an encrypted one (see `alerts`).
        let b = [
            21, 3, 3, 0, 2, 2, 70, 20, 3, 3, 0, 1, 1, 21, 3, 3, 0, 2, 2, 40,
        ];
        assert_eq!(
            alerts(&b),
            vec![
                Alert {
                    level: 2,
                    description: 70
                },
                Alert {
                    level: 2,
                    description: 40
                }
            ]
        );
        assert_eq!(alert_name(70), "protocol_version");
    }

    #[test]
    fn names_and_obsolescence() {
        assert_eq!(version_name(0x0301), "TLS1.0");
        assert_eq!(version_name(0x7f17), "TLS1.3-draft23");
        assert!(is_obsolete(0x0302) && !is_obsolete(0x0303) && !is_obsolete(0x7f17));
        assert!(is_grease(0x3a3a) && !is_grease(0x0304));
    }

    #[test]
    fn no_input_panics() {
        let ch = client_hello_bytes();
        for n in 0..ch.len() {
            let _ = client_hello(&ch[..n]);
            let _ = server_hello(&ch[..n]);
            let _ = alerts(&ch[..n]);
        }
    }
}
