//! HTTP/1.x message heads and body framing (RFC 9112): request and status lines, the header
//! fields this tool needs, Content-Length and chunked transfer coding.

/// A parse outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parse<T> {
    /// A complete head; `T` says how many bytes it took.
    Complete(T),
    /// More bytes are needed.
    Incomplete,
    /// Not HTTP/1.x (or broken beyond use).
    Invalid,
}

/// HTTP version of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// HTTP/1.0
    Http10,
    /// HTTP/1.1
    Http11,
}

impl Version {
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// How a message body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the connection closes (responses only).
    UntilClose,
}

/// Header facts common to requests and responses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fields<'a> {
    /// `Host`.
    pub host: Option<&'a [u8]>,
    /// `Content-Length`, when valid.
    pub content_length: Option<u64>,
    /// `Transfer-Encoding` ends in `chunked`.
    pub chunked: bool,
    /// `Connection: close`.
    pub close: bool,
    /// `Connection: keep-alive`.
    pub keep_alive: bool,
    /// `Idempotency-Key` (or `X-Idempotency-Key`) is present.
    pub idempotency_key: bool,
    /// Its value (the last one sent).
    pub idempotency_key_value: Option<&'a [u8]>,
    /// `Range` (the last one sent): the part of the target asked for.
    pub range: Option<&'a [u8]>,
    /// `Upgrade` is present.
    pub upgrade: bool,
    /// `Upgrade` asks for `h2c` (HTTP/2 over cleartext).
    pub upgrade_h2c: bool,
    /// The scheme of `Authorization` (`Basic`, `Bearer`, `Digest`, …, as sent): the credential
    /// itself is never kept.
    pub auth_scheme: Option<&'a [u8]>,
    /// The scheme of `Proxy-Authorization`: a request through a proxy can carry both.
    pub proxy_auth_scheme: Option<&'a [u8]>,
    /// A `Cookie` header carries a cookie named like a session or an authentication token
    /// ([`session_cookie_name`]).
    pub cookie: bool,
    /// A `Set-Cookie` header sets such a cookie.
    pub set_cookie: bool,
}

/// A request head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestHead<'a> {
    /// Method token.
    pub method: &'a [u8],
    /// Request target.
    pub target: &'a [u8],
    /// Version.
    pub version: Version,
    /// Header facts.
    pub fields: Fields<'a>,
    /// Bytes of the head including the final CRLF CRLF.
    pub len: usize,
}

impl RequestHead<'_> {
    /// How the request body is delimited.
    pub fn framing(&self) -> BodyFraming {
        if self.fields.chunked {
            BodyFraming::Chunked
        } else {
            match self.fields.content_length {
                Some(0) | None => BodyFraming::None,
                Some(n) => BodyFraming::Length(n),
            }
        }
    }
}

/// A response head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseHead<'a> {
    /// Version.
    pub version: Version,
    /// Status code.
    pub status: u16,
    /// Header facts.
    pub fields: Fields<'a>,
    /// Bytes of the head including the final CRLF CRLF.
    pub len: usize,
}

impl ResponseHead<'_> {
    /// How the response body is delimited, given the request method it answers.
    pub fn framing(&self, request_method: &[u8]) -> BodyFraming {
        if request_method == b"HEAD"
            || (100..200).contains(&self.status)
            || self.status == 204
            || self.status == 304
        {
            return BodyFraming::None;
        }
        if request_method == b"CONNECT" && (200..300).contains(&self.status) {
            return BodyFraming::UntilClose;
        }
        if self.fields.chunked {
            BodyFraming::Chunked
        } else {
            match self.fields.content_length {
                Some(0) => BodyFraming::None,
                Some(n) => BodyFraming::Length(n),
                None => BodyFraming::UntilClose,
            }
        }
    }
}

/// The protocol version a complete first line of `b` ends in (`HTTP/1.1`, `RTSP/1.0`,
/// `SIP/2.0`): the token after its last space, uppercase letters, `/`, then digits and dots;
/// `None` while the line is not complete or ends otherwise.
pub fn request_line_version(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let nl = b.iter().position(|&c| c == b'\n')?;
    let line = b[..nl].strip_suffix(b"\r").unwrap_or(&b[..nl]);
    let token = &line[line.iter().rposition(|&c| c == b' ')? + 1..];
    let slash = token.iter().position(|&c| c == b'/')?;
    let (name, version) = (&token[..slash], &token[slash + 1..]);
    (!name.is_empty()
        && name.iter().all(u8::is_ascii_uppercase)
        && !version.is_empty()
        && version.iter().all(|&c| c.is_ascii_digit() || c == b'.'))
    .then_some((name, version))
}

/// Whether the first line of `b`, once complete, ends in a protocol version other than
/// HTTP's (`RTSP/1.0`, `SIP/2.0`).
fn other_protocol_version(b: &[u8]) -> bool {
    request_line_version(b).is_some_and(|(name, _)| name != b"HTTP")
}

/// Methods this parser recognises at the start of a stream (so that binary protocols are not
/// mistaken for HTTP).
pub const METHODS: [&[u8]; 9] = [
    b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH", b"CONNECT", b"TRACE",
];

/// Whether `b` plausibly starts an HTTP/1.x request: a method token (a known one, or 3–24
/// uppercase letters, digits, `-` or `_` such as WebDAV's `PROPFIND`) and a space; for an
/// unknown token the request line must also end in ` HTTP/1.x` once it is complete, and for a
/// known one it must not end in another protocol's version (RTSP and SIP share HTTP's
/// methods: `OPTIONS rtsp://camera/ RTSP/1.0`).
pub fn looks_like_request(b: &[u8]) -> bool {
    if METHODS
        .iter()
        .any(|m| b.len() > m.len() && b.starts_with(m) && b[m.len()] == b' ')
    {
        return !other_protocol_version(b);
    }
    let Some(sp) = b.iter().take(25).position(|&c| c == b' ') else {
        return false;
    };
    if !(3..=24).contains(&sp)
        || !b[..sp]
            .iter()
            .all(|&c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
        || !b[0].is_ascii_uppercase()
    {
        return false;
    }
    match b.iter().position(|&c| c == b'\n') {
        Some(nl) => {
            let line = b[..nl].strip_suffix(b"\r").unwrap_or(&b[..nl]);
            line.ends_with(b" HTTP/1.1") || line.ends_with(b" HTTP/1.0")
        }
        None => b[sp + 1..]
            .iter()
            .all(|&c| c.is_ascii_graphic() || c == b' '),
    }
}

/// Whether `b` plausibly starts an HTTP/1.x response.
pub fn looks_like_response(b: &[u8]) -> bool {
    b.starts_with(b"HTTP/1.")
}

/// Largest head accepted; longer heads are treated as not HTTP.
pub const MAX_HEAD: usize = 64 * 1024;

/// The end of a head: an empty line, CRLF or (leniently, RFC 9112 §2.2) bare LF.
fn find_head_end(b: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = b[from..].iter().position(|&c| c == b'\n') {
        let i = from + i;
        match b.get(i + 1) {
            Some(b'\n') => return Some(i + 2),
            Some(b'\r') if b.get(i + 2) == Some(&b'\n') => return Some(i + 3),
            _ => from = i + 1,
        }
    }
    None
}

fn trim_eol(mut v: &[u8]) -> &[u8] {
    while let [rest @ .., b'\r' | b'\n'] = v {
        v = rest;
    }
    v
}

fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

fn parse_version(v: &[u8]) -> Option<Version> {
    match v {
        b"HTTP/1.1" => Some(Version::Http11),
        b"HTTP/1.0" => Some(Version::Http10),
        _ => None,
    }
}

fn parse_u64(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 {
        return None;
    }
    let mut n = 0u64;
    for &c in v {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(c - b'0');
    }
    Some(n)
}

fn contains_token(v: &[u8], token: &[u8]) -> bool {
    v.split(|&c| c == b',')
        .any(|t| trim(t).eq_ignore_ascii_case(token))
}

/// The name of a `name=value` cookie pair.
fn cookie_name(pair: &[u8]) -> &[u8] {
    trim(pair.split(|&c| c == b'=').next().unwrap_or_default())
}

/// Prefixes of analytics and advertising cookies, whose names can look like sessions
/// (`_hjSession_…`, `_uetsid`, `_pin_unauth`) but which identify a browser to a tracker, not a
/// user to the application.
const ANALYTICS_COOKIES: [&[u8]; 22] = [
    b"_ga",
    b"_gid",
    b"_gat",
    b"_gcl",
    b"__utm",
    b"__gads",
    b"__gpi",
    b"_uet",
    b"_hj",
    b"_pin_",
    b"_fbp",
    b"_fbc",
    b"_clck",
    b"_clsk",
    b"_tt",
    b"_scid",
    b"_rdt",
    b"__hs",
    b"hubspotutk",
    b"ajs_",
    b"mp_",
    b"amplitude",
];

/// Whether a cookie's name says it holds a session or an authentication token, which
/// whoever reads it can replay: it contains `sess`, `token`, `auth`, `jwt`, `login`,
/// `logged_in`, `remember` or `credential`, or ends with `sid` (`connect.sid`, `SID`, `HSID`) —
/// but not `csrf` or `xsrf` (a request-forgery token is no credential alone), and it does not
/// start like an analytics cookie ([`ANALYTICS_COOKIES`]). Analytics and preference cookies
/// (`_ga`, `_hjSession_1`, `NID`, `__utma`, `lang`) are not credentials.
pub fn session_cookie_name(name: &[u8]) -> bool {
    fn has(name: &[u8], part: &[u8]) -> bool {
        name.windows(part.len())
            .any(|w| w.eq_ignore_ascii_case(part))
    }
    let analytics = ANALYTICS_COOKIES
        .iter()
        .any(|p| name.len() >= p.len() && name[..p.len()].eq_ignore_ascii_case(p));
    if name.is_empty() || analytics || has(name, b"csrf") || has(name, b"xsrf") {
        return false;
    }
    let ends_sid = name.len() >= 3 && name[name.len() - 3..].eq_ignore_ascii_case(b"sid");
    ends_sid
        || [
            &b"sess"[..],
            b"token",
            b"auth",
            b"jwt",
            b"login",
            b"logged_in",
            b"remember",
            b"credential",
        ]
        .iter()
        .any(|p| has(name, p))
}

/// The header fields of a request head in `b` in another protocol built on HTTP's syntax
/// (RTSP): the lines after the request line, up to the blank line that ends the head or the end
/// of `b`; `None` when a line is not a field.
pub fn head_fields(b: &[u8]) -> Option<Fields<'_>> {
    let head = &b[..find_head_end(b).unwrap_or(b.len())];
    let start = head.iter().position(|&c| c == b'\n')? + 1;
    parse_fields(trim_eol(&head[start..]))
}

pub(crate) fn parse_fields(lines: &[u8]) -> Option<Fields<'_>> {
    let mut f = Fields::default();
    for line in lines.split(|&c| c == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let colon = line.iter().position(|&c| c == b':')?;
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        if name.eq_ignore_ascii_case(b"host") {
            f.host = Some(value);
        } else if name.eq_ignore_ascii_case(b"content-length") {
            f.content_length = parse_u64(value);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            f.chunked = value
                .split(|&c| c == b',')
                .next_back()
                .is_some_and(|t| trim(t).eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case(b"connection") {
            f.close |= contains_token(value, b"close");
            f.keep_alive |= contains_token(value, b"keep-alive");
        } else if name.eq_ignore_ascii_case(b"idempotency-key")
            || name.eq_ignore_ascii_case(b"x-idempotency-key")
        {
            f.idempotency_key = true;
            f.idempotency_key_value = Some(value);
        } else if name.eq_ignore_ascii_case(b"range") {
            f.range = Some(value);
        } else if name.eq_ignore_ascii_case(b"authorization") {
            f.auth_scheme = Some(value.split(|&c| c == b' ').next().unwrap_or_default());
        } else if name.eq_ignore_ascii_case(b"proxy-authorization") {
            f.proxy_auth_scheme = Some(value.split(|&c| c == b' ').next().unwrap_or_default());
        } else if name.eq_ignore_ascii_case(b"cookie") {
            f.cookie |= value
                .split(|&c| c == b';')
                .any(|pair| session_cookie_name(cookie_name(pair)));
        } else if name.eq_ignore_ascii_case(b"set-cookie") {
            f.set_cookie |= session_cookie_name(cookie_name(value));
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            f.upgrade = true;
            f.upgrade_h2c |= contains_token(value, b"h2c");
        }
    }
    Some(f)
}

/// Parses a request head at the start of `b`.
pub fn parse_request(b: &[u8]) -> Parse<RequestHead<'_>> {
    if !looks_like_request(b) {
        // "GE" may still become "GET /…".
        let prefix = METHODS
            .iter()
            .any(|m| b.len() <= m.len() && m.starts_with(b));
        return if prefix {
            Parse::Incomplete
        } else {
            Parse::Invalid
        };
    }
    let Some(end) = find_head_end(b) else {
        return if b.len() > MAX_HEAD {
            Parse::Invalid
        } else {
            Parse::Incomplete
        };
    };
    let head = trim_eol(&b[..end]);
    let (line, rest) = match head.iter().position(|&c| c == b'\n') {
        Some(i) => (&head[..i], &head[i + 1..]),
        None => (head, &head[head.len()..]),
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&c| c == b' ').filter(|p| !p.is_empty());
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Parse::Invalid;
    };
    let Some(version) = parse_version(version) else {
        return Parse::Invalid;
    };
    let Some(fields) = parse_fields(rest) else {
        return Parse::Invalid;
    };
    Parse::Complete(RequestHead {
        method,
        target,
        version,
        fields,
        len: end,
    })
}

/// Parses a response head at the start of `b`.
pub fn parse_response(b: &[u8]) -> Parse<ResponseHead<'_>> {
    if b.len() >= 7 && !looks_like_response(b) {
        return Parse::Invalid;
    }
    let Some(end) = find_head_end(b) else {
        return if b.len() > MAX_HEAD {
            Parse::Invalid
        } else {
            Parse::Incomplete
        };
    };
    let head = trim_eol(&b[..end]);
    let (line, rest) = match head.iter().position(|&c| c == b'\n') {
        Some(i) => (&head[..i], &head[i + 1..]),
        None => (head, &head[head.len()..]),
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.splitn(3, |&c| c == b' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Parse::Invalid;
    };
    let (Some(version), Some(status)) = (parse_version(version), parse_u64(code)) else {
        return Parse::Invalid;
    };
    if !(100..1000).contains(&status) {
        return Parse::Invalid;
    }
    let Some(fields) = parse_fields(rest) else {
        return Parse::Invalid;
    };
    Parse::Complete(ResponseHead {
        version,
        status: status as u16,
        fields,
        len: end,
    })
}

/// Incremental decoder of the chunked transfer coding. It reports how many bytes of input it
/// consumed and which of them were payload, so a caller can hash the body without copying.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Chunked {
    state: ChunkState,
    remaining: u64,
    size: u64,
    size_digits: u8,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    SizeExt,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// After the last chunk: trailer lines until an empty line.
    Trailer,
    TrailerLineStart,
    TrailerLf,
    Done,
    Error,
}

/// What one [`Chunked::feed`] call did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkProgress {
    /// Input bytes consumed.
    pub consumed: usize,
    /// The body ended (last chunk and trailer seen).
    pub done: bool,
    /// The coding is broken.
    pub error: bool,
}

impl Chunked {
    /// Feeds body bytes; `on_data` receives the chunk payload slices.
    pub fn feed(&mut self, b: &[u8], mut on_data: impl FnMut(&[u8])) -> ChunkProgress {
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            match self.state {
                ChunkState::Size => match c {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        self.size_digits += 1;
                        if self.size_digits > 15 {
                            self.state = ChunkState::Error;
                            continue;
                        }
                        self.size =
                            self.size * 16 + u64::from((c as char).to_digit(16).unwrap_or(0));
                        i += 1;
                    }
                    b';' | b' ' | b'\t' => {
                        self.state = ChunkState::SizeExt;
                        i += 1;
                    }
                    b'\r' => {
                        self.state = ChunkState::SizeLf;
                        i += 1;
                    }
                    b'\n' => {
                        self.end_size_line();
                        i += 1;
                    }
                    _ => self.state = ChunkState::Error,
                },
                ChunkState::SizeExt => {
                    if c == b'\n' {
                        self.end_size_line();
                    }
                    i += 1;
                }
                ChunkState::SizeLf => {
                    if c != b'\n' {
                        self.state = ChunkState::Error;
                        continue;
                    }
                    self.end_size_line();
                    i += 1;
                }
                ChunkState::Data => {
                    let n = (self.remaining.min((b.len() - i) as u64)) as usize;
                    on_data(&b[i..i + n]);
                    i += n;
                    self.remaining -= n as u64;
                    if self.remaining == 0 {
                        self.state = ChunkState::DataCr;
                    }
                }
                ChunkState::DataCr => {
                    self.state = match c {
                        b'\r' => ChunkState::DataLf,
                        b'\n' => ChunkState::Size,
                        _ => ChunkState::Error,
                    };
                    i += 1;
                }
                ChunkState::DataLf => {
                    self.state = if c == b'\n' {
                        ChunkState::Size
                    } else {
                        ChunkState::Error
                    };
                    i += 1;
                }
                ChunkState::TrailerLineStart => {
                    self.state = match c {
                        b'\r' => ChunkState::TrailerLf,
                        b'\n' => ChunkState::Done,
                        _ => ChunkState::Trailer,
                    };
                    i += 1;
                }
                ChunkState::Trailer => {
                    if c == b'\n' {
                        self.state = ChunkState::TrailerLineStart;
                    }
                    i += 1;
                }
                ChunkState::TrailerLf => {
                    self.state = if c == b'\n' {
                        ChunkState::Done
                    } else {
                        ChunkState::Trailer
                    };
                    i += 1;
                }
                ChunkState::Done | ChunkState::Error => break,
            }
            if self.state == ChunkState::Done {
                break;
            }
        }
        ChunkProgress {
            consumed: i,
            done: self.state == ChunkState::Done,
            error: self.state == ChunkState::Error,
        }
    }

    fn end_size_line(&mut self) {
        if self.size_digits == 0 {
            self.state = ChunkState::Error;
            return;
        }
        self.remaining = self.size;
        self.state = if self.size == 0 {
            ChunkState::TrailerLineStart
        } else {
            ChunkState::Data
        };
        self.size = 0;
        self.size_digits = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtsp_and_sip_requests_are_not_http() {
        for other in [
            &b"OPTIONS rtsp://10.2.2.2:8554/ RTSP/1.0\r\nCSeq: 1\r\n\r\n"[..],
            b"OPTIONS sip:bob@example.org SIP/2.0\r\n",
            b"GET_PARAMETER rtsp://10.2.2.2:8554/ RTSP/1.0\r\n",
        ] {
            assert!(
                !looks_like_request(other),
                "{}",
                String::from_utf8_lossy(other)
            );
        }
        for http in [
            &b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"GET / HTTP/1.0\r\n",
            b"GET /a/b\r\n",
            b"OPTIONS rtsp://10.2.2.2:8554/ RT",
        ] {
            assert!(
                looks_like_request(http),
                "{}",
                String::from_utf8_lossy(http)
            );
        }
    }

    #[test]
    fn only_cookies_named_like_sessions_or_tokens_are_credentials() {
        for name in [
            "JSESSIONID",
            "PHPSESSID",
            "ASP.NET_SessionId",
            "connect.sid",
            "SID",
            "__Secure-3PSID",
            "access_token",
            ".ASPXAUTH",
            "jwt",
            "wordpress_logged_in_0a1b",
            "remember_user_token",
        ] {
            assert!(session_cookie_name(name.as_bytes()), "{name}");
        }
        for name in [
            "_ga",
            "_gid",
            "__utma",
            "NID",
            "1P_JAR",
            "lang",
            "sidebar",
            "csrftoken",
            "XSRF-TOKEN",
            "AWSALB",
            "",
            "_uetsid",
            "_hjSession_123",
            "_hjSessionUser_123",
            "_pin_unauth",
            "ajs_user_id",
        ] {
            assert!(!session_cookie_name(name.as_bytes()), "{name}");
        }
        let head = |cookie: &str| {
            let raw = format!("GET / HTTP/1.1\r\nHost: a\r\n{cookie}\r\n\r\n");
            let Parse::Complete(h) = parse_request(raw.as_bytes()) else {
                panic!("complete head expected")
            };
            h.fields.cookie
        };
        assert!(!head("Cookie: _ga=GA1.2.3; _gid=GA1.2.4; lang=en"));
        assert!(head("Cookie: _ga=GA1.2.3; JSESSIONID=0123ABCD"));
        assert!(head("Cookie:  sid = x "));
        let set = |line: &str| {
            let raw = format!("HTTP/1.1 200 OK\r\n{line}\r\nContent-Length: 0\r\n\r\n");
            let Parse::Complete(h) = parse_response(raw.as_bytes()) else {
                panic!("complete head expected")
            };
            h.fields.set_cookie
        };
        assert!(!set(
            "Set-Cookie: _gid=GA1.2.4; Path=/; Expires=Wed, 21 Oct 2026 07:28:00 GMT"
        ));
        assert!(set("Set-Cookie: session-token=abc; Path=/; HttpOnly"));
    }

    #[test]
    fn request_head_with_body_framing_and_idempotency_key() {
        let raw = b"POST /charge?x=1 HTTP/1.1\r\nHost: pay.internal\r\nContent-Length: 27\r\nIdempotency-Key: abc\r\n\r\n{\"amount\":42,\"order\":\"A-1\"}";
        let Parse::Complete(h) = parse_request(raw) else {
            panic!("complete head expected")
        };
        assert_eq!(h.method, b"POST");
        assert_eq!(h.target, b"/charge?x=1");
        assert_eq!(h.version, Version::Http11);
        assert_eq!(h.fields.host, Some(&b"pay.internal"[..]));
        assert!(h.fields.idempotency_key);
        assert_eq!(h.framing(), BodyFraming::Length(27));
        assert_eq!(&raw[h.len..], b"{\"amount\":42,\"order\":\"A-1\"}");
    }

    #[test]
    fn partial_head_is_incomplete_and_binary_is_invalid() {
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\nHost: a"),
            Parse::Incomplete
        );
        assert_eq!(parse_request(b"PO"), Parse::Incomplete);
        assert_eq!(parse_request(b"GEX"), Parse::Invalid);
        assert!(looks_like_request(b"PROPFIND /d HTTP/1.1\r\n"));
        assert!(looks_like_request(b"CCM_POST /x HTTP/1.0\r\n\r\n"));
        assert!(!looks_like_request(b"HELO mail.example\r\n"));
        assert!(!looks_like_request(b"SSH-2.0-OpenSSH\r\n"));
        assert_eq!(parse_request(b"\x16\x03\x01\x02\x00"), Parse::Invalid);
        assert_eq!(parse_request(b"GET / SPDY/3\r\n\r\n"), Parse::Invalid);
        assert_eq!(parse_response(b"SSH-2.0-OpenSSH\r\n"), Parse::Invalid);
    }

    #[test]
    fn response_framing_rules() {
        let Parse::Complete(r) =
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
        else {
            panic!()
        };
        assert_eq!(r.status, 200);
        assert_eq!(r.framing(b"GET"), BodyFraming::Chunked);
        assert_eq!(r.framing(b"HEAD"), BodyFraming::None);
        let Parse::Complete(r) = parse_response(b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\n") else {
            panic!()
        };
        assert_eq!(r.version, Version::Http10);
        assert_eq!(r.framing(b"GET"), BodyFraming::UntilClose);
        let Parse::Complete(r) =
            parse_response(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n")
        else {
            panic!()
        };
        assert_eq!(r.framing(b"GET"), BodyFraming::None);
    }

    #[test]
    fn chunked_body_split_anywhere_gives_the_same_payload() {
        let body =
            b"4\r\nWiki\r\n6;ext=1\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for split in 0..body.len() {
            let mut d = Chunked::default();
            let mut out = Vec::new();
            let p1 = d.feed(&body[..split], |x| out.extend_from_slice(x));
            assert!(!p1.error);
            let mut consumed = p1.consumed;
            if !p1.done {
                let p2 = d.feed(&body[split..], |x| out.extend_from_slice(x));
                assert!(p2.done && !p2.error, "split {split}");
                consumed += p2.consumed;
            }
            assert_eq!(out, b"Wikipedia in \r\n\r\nchunks.");
            assert_eq!(&body[consumed..], b"NEXT", "split {split}");
        }
    }

    #[test]
    fn bare_lf_heads_are_accepted() {
        let raw = b"GET / HTTP/1.1\nHost: www.example.com\nAuthorization: Bearer x\n\nNEXT";
        let Parse::Complete(h) = parse_request(raw) else {
            panic!()
        };
        assert_eq!(h.fields.host, Some(&b"www.example.com"[..]));
        assert_eq!(&raw[h.len..], b"NEXT");
    }

    #[test]
    fn broken_chunk_size_is_an_error() {
        let mut d = Chunked::default();
        assert!(d.feed(b"zz\r\n", |_| {}).error);
    }

    #[test]
    fn no_input_panics() {
        let inputs: [&[u8]; 6] = [
            b"",
            b"GET ",
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
            b"HTTP/1.1 999999999999999999999 X\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        ];
        for i in inputs {
            let _ = parse_request(i);
            let _ = parse_response(i);
        }
    }
}
