//! HTTP/1.x transactions from the two directions of one TCP connection.

use crate::decode::TcpSegment;
use crate::decode::tcp_flags::ACK;
use crate::flow::SeqNum;
use crate::proto::http1::{self, BodyFraming, Chunked, Parse, Version};
use crate::proto::lossy_capped;
use crate::time::Timestamp;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;

/// Requests awaiting a response, per connection (pipelining depth).
const MAX_PENDING: usize = 64;
/// A head buffer larger than this is freed once its head is parsed, not kept for the next.
const KEEP_BUF: usize = 4096;
/// Characters of the path kept.
const MAX_PATH: usize = 512;
/// Characters of the host kept.
const MAX_HOST: usize = 255;

/// Characters of the method kept.
const MAX_METHOD: usize = 16;

/// At most `max` bytes of `b` as text, as [`lossy_capped`] makes it, without an allocation when
/// they are valid UTF-8 (the usual case).
fn capped(b: &[u8], max: usize) -> Cow<'_, str> {
    let b = &b[..b.len().min(max)];
    match std::str::from_utf8(b) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(lossy_capped(b, max)),
    }
}

/// A request method, held in place: its first [`MAX_METHOD`] bytes as text.
pub type Method = crate::proto::InlineText<MAX_METHOD>;

/// A complete request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestInfo {
    /// Unique in the run: flow id and request number.
    pub uid: u64,
    /// Method.
    pub method: Method,
    /// `Host` header (lowercase), empty when absent; shared by the requests of a connection
    /// that name the same host.
    pub host: Arc<str>,
    /// Path without the query string, the path parameters (`;jsessionid=…`) and, in an
    /// absolute-form target, the user and password (see [`split_target`]).
    pub path: Arc<str>,
    /// The target had a query string or path parameters (never reported: they may carry
    /// secrets).
    pub query_present: bool,
    /// FNV-1a 64 of the query string and path parameters, then of the whole path when
    /// [`RequestInfo::path`] could not keep it as it was (longer than 512 bytes, or not
    /// UTF-8), then of the `Range` header (0 without any of them): requests that differ there
    /// are different requests, told apart without keeping what may be a secret.
    pub target_hash: u64,
    /// Version.
    pub version: Version,
    /// Body length on the wire.
    pub body_len: u64,
    /// FNV-1a 64 of the captured body bytes.
    pub body_hash: u64,
    /// Some body bytes were not captured (snap length), so the hash covers less.
    pub body_partial: bool,
    /// An `Idempotency-Key` header was sent.
    pub idempotency_key: bool,
    /// FNV-1a 64 of its value (0 without): attempts of one request with different keys are
    /// different operations to the server.
    pub idempotency_key_hash: u64,
    /// An `Upgrade` header was sent.
    pub upgrade: bool,
    /// … asking for HTTP/2 over cleartext (`h2c`).
    pub upgrade_h2c: bool,
    /// Kinds of credentials the request carried (`app::Credentials` bits), never values.
    pub credentials: u32,
    /// `Connection: keep-alive` was asked for.
    pub keep_alive: bool,
    /// Its first byte came after the server's FIN: sent on a connection the server had
    /// already closed (the keep-alive race, RFC 9112 §9.3.1).
    pub after_server_close: bool,
    /// First byte of the request.
    pub start_ts: Timestamp,
    /// Last byte of the request.
    pub end_ts: Timestamp,
}

/// A complete response with its request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseInfo {
    /// The request it answers.
    pub request: RequestInfo,
    /// Status code.
    pub status: u16,
    /// Version.
    pub version: Version,
    /// First byte of the response.
    pub first_ts: Timestamp,
    /// Last byte of the response.
    pub end_ts: Timestamp,
    /// Body length on the wire.
    pub body_len: u64,
    /// The response asked to close the connection.
    pub close: bool,
    /// The response set a cookie.
    pub set_cookie: bool,
}

/// What the tracker saw complete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpEvent {
    /// A request was fully received.
    Request(RequestInfo),
    /// A response was fully received.
    Response(ResponseInfo),
}

enum Head {
    Used(usize),
    Incomplete,
    Invalid,
}

#[derive(Debug)]
enum Body {
    Length(u64),
    Chunked(Chunked),
    UntilClose,
}

#[derive(Debug, Default)]
struct Half {
    expect: Option<SeqNum>,
    buf: Vec<u8>,
    /// When the head being buffered started.
    head_ts: Timestamp,
    /// After a gap: skipping until a segment starts with a message head.
    resync: bool,
    body: Option<Body>,
    dead: bool,
    /// Segments captured ahead of the bytes expected.
    held: super::HeldRun,
}

#[derive(Debug)]
struct PartialResponse {
    status: u16,
    version: Version,
    first_ts: Timestamp,
    body_len: u64,
    close: bool,
    set_cookie: bool,
}

/// Requests waiting for their responses, with the heap bytes they hold kept up to date (the
/// parsing budget reads it after every payload segment).
#[derive(Debug, Default)]
struct Pending {
    queue: VecDeque<RequestInfo>,
    bytes: usize,
}

impl Pending {
    fn size(r: &RequestInfo) -> usize {
        std::mem::size_of::<RequestInfo>() + r.host.len() + r.path.len()
    }

    fn len(&self) -> usize {
        self.queue.len()
    }

    fn push(&mut self, r: RequestInfo) {
        self.bytes += Self::size(&r);
        self.queue.push_back(r);
    }

    fn pop(&mut self) -> Option<RequestInfo> {
        let r = self.queue.pop_front()?;
        self.bytes -= Self::size(&r);
        Some(r)
    }

    fn clear(&mut self) {
        self.queue.clear();
        self.bytes = 0;
    }
}

/// Per-connection HTTP/1.x state.
#[derive(Debug)]
pub struct HttpTracker {
    flow_id: u64,
    next_req: u64,
    client: Half,
    server: Half,
    /// Request being received (head parsed, body pending).
    req: Option<RequestInfo>,
    /// Response being received.
    resp: Option<PartialResponse>,
    /// The request being received was answered before its body was all in (a 413 or 401
    /// sent early): it is pending already, and is not again when its body ends.
    req_answered: bool,
    /// Complete requests without a final response yet, oldest first.
    pending: Pending,
    /// The connection switched protocols (Upgrade, CONNECT): no more HTTP/1 to parse.
    switched: bool,
    /// The host the last request named, shared with the next that names it too.
    last_host: Option<Arc<str>>,
    /// When the server's FIN was seen, if it was.
    server_fin: Option<Timestamp>,
    /// Kinds of credentials (`app::Credentials` bits) the message heads parsed so far carry,
    /// known as each head is parsed: a password sent in a request whose body never came
    /// (`Expect: 100-continue` answered 401, a reset upload) crossed the network all the same.
    pub(crate) head_credentials: u32,
    /// Response heads read so far (wrapping), and their number when the client's last
    /// segment was read: a client that waited for an answer before sending on.
    responses_seen: u32,
    responses_at_client: u32,
    /// Client bytes not captured while the client was not waiting for answers (pipelining):
    /// they may have held requests whose answers are still to come, so which request a later
    /// answer is for is unknown while the oldest waiting request is one of these many, sent
    /// after the gap.
    after_gap: Option<usize>,
    /// Counters.
    pub stats: HttpStats,
}

/// Per-connection counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct HttpStats {
    /// A direction had a gap (segment not captured) and parsing stopped there.
    pub gaps: u64,
    /// A message head or body coding was broken and parsing stopped.
    pub errors: u64,
    /// Responses with no request to answer.
    pub unmatched_responses: u64,
    /// Requests dropped because too many were pending.
    pub pending_overflow: u64,
    /// Message heads longer than the parser keeps (64 KiB): parsing stopped there.
    pub head_too_large: u64,
    /// Requests whose outcome is unknown because response bytes were not captured.
    pub unknown_outcome: u64,
}

/// A request target split into what may be reported and what may not: the path (for an
/// absolute-form target, `scheme://host…/path`, without any `user:password@`), and the query
/// string and path parameters after it (from the first `;` or `?` of the path), which may carry
/// a session id or a token.
fn split_target(target: &[u8]) -> (Cow<'_, [u8]>, &[u8]) {
    // Where the path starts: after the authority of an absolute-form target, whose scheme is
    // a letter and then letters, digits, `+`, `-` or `.` (RFC 3986 §3.1), and whose authority
    // ends at the first `/`, `?` or `#` (a `;` may be in a password).
    let scheme = |s: &[u8]| {
        s.first().is_some_and(u8::is_ascii_alphabetic)
            && s.iter()
                .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
    };
    let authority = target
        .windows(3)
        .position(|w| w == b"://")
        .filter(|&i| scheme(&target[..i]))
        .map(|i| {
            let from = i + 3;
            let len = target[from..]
                .iter()
                .position(|&c| matches!(c, b'/' | b'?' | b'#'))
                .unwrap_or(target.len() - from);
            (from, from + len)
        });
    let path_from = authority.map_or(0, |(_, end)| end);
    let cut = target[path_from..]
        .iter()
        .position(|&c| c == b';' || c == b'?')
        .map_or(target.len(), |i| path_from + i);
    let (kept, rest) = target.split_at(cut);
    match authority {
        Some((from, end)) if target[from..end].contains(&b'@') => {
            let at = from
                + target[from..end]
                    .iter()
                    .rposition(|&c| c == b'@')
                    .unwrap_or(0);
            let mut v = Vec::with_capacity(kept.len());
            v.extend_from_slice(&target[..from]);
            v.extend_from_slice(&kept[at + 1..]);
            (Cow::Owned(v), rest)
        }
        _ => (Cow::Borrowed(kept), rest),
    }
}

fn fnv(mut h: u64, data: &[u8]) -> u64 {
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// The kinds of credentials a request head carries.
pub(crate) fn request_credentials(f: &http1::Fields<'_>) -> u32 {
    use crate::app::ident::Credentials;
    let mut c = Credentials::default();
    for scheme in [f.auth_scheme, f.proxy_auth_scheme].into_iter().flatten() {
        c.set(if scheme.eq_ignore_ascii_case(b"basic") {
            "http-basic"
        } else if scheme.eq_ignore_ascii_case(b"digest") {
            "http-digest"
        } else {
            "http-bearer"
        });
    }
    if f.cookie {
        c.set("http-cookie");
    }
    c.0
}

/// Secrets a request target carries in clear: a password in an absolute-form target's user
/// information (`scheme://user:password@host/…`), a query or path parameter named as a
/// password (`password`, `passwd`, `pwd`) or as an API token (`access_token`, `api_key`,
/// `apikey`, `client_secret`, `auth_token`, `private_token`), with a value. `rest` is the
/// target's part from its first `;` or `?` ([`split_target`]). Only the kinds are kept.
fn target_credentials(target: &[u8], rest: &[u8]) -> u32 {
    use crate::app::ident::Credentials;
    let mut c = Credentials::default();
    let absolute = !target.starts_with(b"/");
    if let Some(i) = target
        .windows(3)
        .position(|w| w == b"://")
        .filter(|_| absolute)
    {
        let authority = &target[i + 3..];
        let end = authority
            .iter()
            .position(|&b| matches!(b, b'/' | b'?' | b'#'))
            .unwrap_or(authority.len());
        if let Some(at) = authority[..end].iter().rposition(|&b| b == b'@') {
            let info = &authority[..at];
            if info
                .iter()
                .position(|&b| b == b':')
                .is_some_and(|p| p + 1 < info.len())
            {
                c.set("http-url-password");
            }
        }
    }
    let named = |name: &[u8], list: &[&[u8]]| list.iter().any(|n| name.eq_ignore_ascii_case(n));
    for pair in rest.split(|&b| matches!(b, b'?' | b'&' | b';')) {
        let Some(eq) = pair.iter().position(|&b| b == b'=') else {
            continue;
        };
        let (name, value) = (&pair[..eq], &pair[eq + 1..]);
        if value.is_empty() {
            continue;
        }
        if named(name, &[b"password", b"passwd", b"pwd"]) {
            c.set("http-url-password");
        } else if named(
            name,
            &[
                b"access_token",
                b"api_key",
                b"apikey",
                b"client_secret",
                b"auth_token",
                b"private_token",
            ],
        ) {
            c.set("http-query-token");
        }
    }
    c.0
}

/// The kinds of credentials a request target carries ([`target_credentials`]), for a
/// request line read outside this module (RTSP's, whose URLs cameras take `user:password@` in).
pub(crate) fn request_target_credentials(target: &[u8]) -> u32 {
    let path_from = target.windows(3).position(|w| w == b"://").map_or(0, |i| {
        let from = i + 3;
        from + target[from..]
            .iter()
            .position(|&c| matches!(c, b'/' | b'?' | b'#'))
            .unwrap_or(target.len() - from)
    });
    let rest = target[path_from..]
        .iter()
        .position(|&c| c == b';' || c == b'?')
        .map_or(&[][..], |i| &target[path_from + i..]);
    target_credentials(target, rest)
}

/// `HTTP/1.x NNN` at the start of a (possibly cut) response.
fn status_line(b: &[u8]) -> Option<(Version, u16)> {
    let version = match b.get(..9)? {
        b"HTTP/1.1 " => Version::Http11,
        b"HTTP/1.0 " => Version::Http10,
        _ => return None,
    };
    let code = b.get(9..12)?;
    if !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let status = code.iter().fold(0u16, |n, c| n * 10 + u16::from(c - b'0'));
    (100..600).contains(&status).then_some((version, status))
}

impl HttpTracker {
    /// A tracker for the flow with this id.
    pub fn new(flow_id: u64) -> Self {
        HttpTracker {
            flow_id,
            next_req: 0,
            client: Half::default(),
            server: Half::default(),
            req: None,
            resp: None,
            req_answered: false,
            pending: Pending::default(),
            switched: false,
            last_host: None,
            server_fin: None,
            head_credentials: 0,
            responses_seen: 0,
            responses_at_client: 0,
            after_gap: None,
            stats: HttpStats::default(),
        }
    }

    /// The server sent its FIN at `ts` (called before the payload of later segments): a
    /// request that starts after it was sent on a connection the server had closed.
    pub fn server_closed(&mut self, ts: Timestamp) {
        self.server_fin.get_or_insert(ts);
    }

    /// Requests still waiting for their response.
    pub fn pending(&self) -> impl Iterator<Item = &RequestInfo> {
        self.pending.queue.iter()
    }

    /// The pending requests no response has started for: the first one is left out while its
    /// response's head has been seen and its body is still coming (or was cut off by the end
    /// of the capture): that request was answered.
    pub fn unanswered(&self) -> impl Iterator<Item = &RequestInfo> {
        self.pending
            .queue
            .iter()
            .skip(usize::from(self.resp.is_some()))
    }

    /// The sequence number after the last server byte followed, if any was.
    pub fn server_followed_to(&self) -> Option<SeqNum> {
        self.server.expect
    }

    /// Whether a missing response would have been seen: false once the server's side could
    /// no longer be parsed (snap length, broken message), so pending requests have an unknown
    /// outcome rather than no answer.
    pub fn responses_visible(&self) -> bool {
        !self.server.dead
    }

    /// One segment from the client (`from_client`) or the server; `start` is its direction's
    /// first data byte, when that direction's SYN was seen.
    pub fn on_segment(
        &mut self,
        from_client: bool,
        seg: &TcpSegment<'_>,
        start: Option<SeqNum>,
        ts: Timestamp,
        events: &mut Vec<HttpEvent>,
    ) {
        if self.switched || seg.seg_len == 0 {
            return;
        }
        if seg.flags & ACK != 0 {
            self.on_ack(from_client, SeqNum(seg.ack), events);
        }
        let half = self.half_mut(from_client);
        if half.dead {
            return;
        }
        if half.expect.is_none()
            && from_client
            && let Some(s) = start.filter(|&s| SeqNum(seg.seq).diff(s) > 0)
        {
            // The client's first bytes were not captured: a gap, which may have held requests
            // whose answers are still to come.
            half.expect = Some(s);
        }
        if half.expect.is_none() && !from_client && !http1::looks_like_response(seg.payload) {
            // The first server bytes followed do not start a response (the client's side
            // starts with the request that made the connection HTTP): the middle of a
            // message, whose start is unknown.
            match start {
                // Bytes since the SYN were not captured (a response's head lost): a gap,
                // in which the requests waiting may have been answered.
                Some(s) if SeqNum(seg.seq).diff(s) > 0 => half.expect = Some(s),
                // Picked up mid-stream: read from the next response's start.
                _ => half.resync = true,
            }
        }
        let seq = SeqNum(seg.seq);
        if half.expect.is_some_and(|e| seq.diff(e) > 0) {
            // Ahead of the bytes expected: held while the bytes before it may still come.
            if half.held.offer(seg, ts) {
                return;
            }
            // Not held: what is held is read after its gap, then this segment.
            self.release_held(from_client, None, events);
        }
        self.take(from_client, seg, ts, events);
        let half = self.half_mut(from_client);
        if let (Some(at), Some(e)) = (half.held.start(), half.expect) {
            if at.diff(e) <= 0 {
                // The bytes before the held run came: it continues the stream, now.
                self.release_held(from_client, Some(ts), events);
            }
        }
    }

    /// `from_client`'s side acknowledged the other's bytes up to `ack` (a segment with or
    /// without payload): past the start of the hole before the other direction's held run,
    /// the hole was filled where the peer is, not in the capture: the run is read after its
    /// gap.
    pub fn on_ack(&mut self, from_client: bool, ack: SeqNum, events: &mut Vec<HttpEvent>) -> bool {
        let other = self.half_mut(!from_client);
        if other.held.start().is_some() && other.expect.is_some_and(|e| ack.diff(e) > 0) {
            self.release_held(!from_client, None, events);
            return true;
        }
        false
    }

    /// Reads the segments `from_client`'s direction held: at `now` when the bytes before them
    /// came, else (`None`: they never will) after a gap, each as of when it was captured.
    fn release_held(
        &mut self,
        from_client: bool,
        now: Option<Timestamp>,
        events: &mut Vec<HttpEvent>,
    ) {
        let Some(run) = self.half_mut(from_client).held.take() else {
            return;
        };
        for (piece, ts) in run.pieces() {
            self.take(from_client, &piece, now.unwrap_or(ts), events);
        }
        let half = self.half_mut(from_client);
        if !half.dead {
            half.held.give_back(run, KEEP_BUF);
        }
    }

    /// Segment `seg` of `from_client`'s direction, read in order.
    fn take(
        &mut self,
        from_client: bool,
        seg: &TcpSegment<'_>,
        ts: Timestamp,
        events: &mut Vec<HttpEvent>,
    ) {
        let half = self.half_mut(from_client);
        let taken = super::take_in_order(&mut half.expect, SeqNum(seg.seq), seg);
        if taken.gap {
            // Data beyond what was expected: a segment was not captured. What was being
            // received is lost; resume at the next segment that starts a message.
            half.buf = Vec::new();
            half.body = None;
            half.resync = true;
            self.stats.gaps += 1;
            if from_client {
                self.req = None;
                self.req_answered = false;
                if self.responses_seen == self.responses_at_client {
                    // No answer since the client's last bytes: it was not waiting for one.
                    self.after_gap.get_or_insert(0);
                }
            } else {
                self.resp = None;
                self.stats.unknown_outcome += self.pending.len() as u64;
                self.pending.clear();
            }
        }
        let Some((skip, captured, wire)) = taken.new else {
            return; // a retransmission of what was already seen
        };
        if from_client {
            if !taken.gap
                && self.responses_seen != self.responses_at_client
                && self.pending.len() == 0
                && self.req.is_none()
            {
                // The client waited for the answers before sending on: requests and answers
                // are in step again.
                self.after_gap = None;
            }
            self.responses_at_client = self.responses_seen;
        }
        let half = self.half_mut(from_client);
        if half.resync {
            let starts = if from_client {
                http1::looks_like_request(seg.payload)
            } else {
                http1::looks_like_response(seg.payload)
            };
            if skip > 0 || !starts {
                if !from_client && self.pending.len() > 0 {
                    // Server bytes passed over unread after the requests waiting were sent:
                    // the answer to the oldest may be among them (its head not captured), or
                    // they end an answer to one sent before the capture's first. Which
                    // request a later answer is for is unknown: theirs is an unknown outcome.
                    self.stats.unknown_outcome += self.pending.len() as u64;
                    self.pending.clear();
                }
                return;
            }
            half.resync = false;
        }
        self.consume(from_client, captured, wire, ts, events);
    }

    fn consume(
        &mut self,
        from_client: bool,
        mut data: &[u8],
        mut wire: usize,
        ts: Timestamp,
        events: &mut Vec<HttpEvent>,
    ) {
        // Each pass handles one message part; a head or a body end always makes progress.
        for _ in 0..4096 {
            if self.switched || self.half_mut(from_client).dead {
                return;
            }
            match self.half_mut(from_client).body.take() {
                Some(Body::Length(remaining)) => {
                    let n = remaining.min(wire as u64) as usize;
                    let c = n.min(data.len());
                    self.body_bytes(from_client, &data[..c], n, c < n);
                    data = &data[c..];
                    wire -= n;
                    let left = remaining - n as u64;
                    if left > 0 {
                        self.half_mut(from_client).body = Some(Body::Length(left));
                        return;
                    }
                    self.message_done(from_client, ts, events);
                }
                Some(Body::Chunked(mut ch)) => {
                    if wire == 0 {
                        self.half_mut(from_client).body = Some(Body::Chunked(ch));
                        return;
                    }
                    if data.len() < wire {
                        self.fail(from_client);
                        return;
                    }
                    let mut h = self.req.as_ref().map_or(FNV_OFFSET, |r| r.body_hash);
                    let mut got = 0u64;
                    let p = ch.feed(data, |d| {
                        h = fnv(h, d);
                        got += d.len() as u64;
                    });
                    if from_client {
                        if let Some(r) = self.req.as_mut() {
                            r.body_hash = h;
                            r.body_len += got;
                        }
                    } else if let Some(r) = self.resp.as_mut() {
                        r.body_len += got;
                    }
                    if p.error {
                        self.fail(from_client);
                        return;
                    }
                    data = &data[p.consumed..];
                    wire -= p.consumed;
                    if !p.done {
                        self.half_mut(from_client).body = Some(Body::Chunked(ch));
                        return;
                    }
                    self.message_done(from_client, ts, events);
                }
                Some(Body::UntilClose) => {
                    self.body_bytes(from_client, data, wire, data.len() < wire);
                    self.half_mut(from_client).body = Some(Body::UntilClose);
                    return;
                }
                None => {
                    if wire == 0 {
                        return;
                    }
                    if data.len() < wire {
                        // A head cut by the snap length cannot be parsed whole. A response's
                        // status line usually survives: it still answers the oldest request
                        // (its end is then unknown: the first byte stands in for it).
                        if !from_client && self.half_mut(false).buf.is_empty() {
                            if let Some((version, status)) = status_line(data) {
                                self.resp = Some(PartialResponse {
                                    status,
                                    version,
                                    first_ts: ts,
                                    body_len: 0,
                                    close: false,
                                    set_cookie: false,
                                });
                                self.finish_response(ts, events);
                            }
                        }
                        self.fail(from_client);
                        return;
                    }
                    let mut buf = std::mem::take(&mut self.half_mut(from_client).buf);
                    let before = buf.len();
                    let start = if before == 0 {
                        ts
                    } else {
                        self.half_mut(from_client).head_ts
                    };
                    let result = if before == 0 {
                        self.head(from_client, data, start, ts, events)
                    } else {
                        buf.extend_from_slice(data);
                        self.head(from_client, &buf, start, ts, events)
                    };
                    match result {
                        Head::Used(n) => {
                            let from_data = n - before;
                            data = &data[from_data..];
                            wire -= from_data;
                            if buf.capacity() > KEEP_BUF {
                                // One long head does not leave the connection holding its
                                // buffer for the rest of its life.
                                buf = Vec::new();
                            }
                            buf.clear();
                            self.half_mut(from_client).buf = buf;
                        }
                        Head::Incomplete => {
                            if before == 0 {
                                buf.extend_from_slice(data);
                                self.half_mut(from_client).head_ts = ts;
                            }
                            if buf.len() > http1::MAX_HEAD {
                                self.stats.head_too_large += 1;
                                self.fail(from_client);
                            } else {
                                self.half_mut(from_client).buf = buf;
                            }
                            return;
                        }
                        Head::Invalid => {
                            // The parser gives up on a head longer than it keeps.
                            let seen = if before == 0 { data.len() } else { buf.len() };
                            if seen > http1::MAX_HEAD {
                                self.stats.head_too_large += 1;
                            }
                            self.fail(from_client);
                            return;
                        }
                    }
                }
            }
        }
    }

    fn fail(&mut self, from_client: bool) {
        let h = self.half_mut(from_client);
        h.dead = true;
        h.buf = Vec::new();
        h.held.free();
        self.stats.errors += 1;
    }

    fn half_mut(&mut self, from_client: bool) -> &mut Half {
        if from_client {
            &mut self.client
        } else {
            &mut self.server
        }
    }

    fn body_bytes(&mut self, from_client: bool, captured: &[u8], wire: usize, partial: bool) {
        if from_client {
            if let Some(r) = self.req.as_mut() {
                r.body_hash = fnv(r.body_hash, captured);
                r.body_len += wire as u64;
                r.body_partial |= partial;
            }
        } else if let Some(r) = self.resp.as_mut() {
            r.body_len += wire as u64;
        }
    }

    /// Parses a head that started arriving at `start`; `ts` is now.
    fn head(
        &mut self,
        from_client: bool,
        buf: &[u8],
        start: Timestamp,
        ts: Timestamp,
        events: &mut Vec<HttpEvent>,
    ) -> Head {
        if from_client {
            self.request_head(buf, start, ts, events)
        } else {
            self.response_head(buf, start, ts, events)
        }
    }

    fn request_head(
        &mut self,
        buf: &[u8],
        start: Timestamp,
        ts: Timestamp,
        events: &mut Vec<HttpEvent>,
    ) -> Head {
        let h = match http1::parse_request(buf) {
            Parse::Complete(h) => h,
            Parse::Incomplete => return Head::Incomplete,
            Parse::Invalid => return Head::Invalid,
        };
        let (path, rest) = split_target(h.target);
        let query = !rest.is_empty();
        // The path is kept to MAX_PATH bytes as text: one longer, or not UTF-8, is told apart
        // from another by its hash too.
        let path_cut = path.len() > MAX_PATH || std::str::from_utf8(&path).is_err();
        let uid = (self.flow_id << 20) | (self.next_req & 0xf_ffff);
        self.next_req += 1;
        let named = capped(h.fields.host.unwrap_or_default(), MAX_HOST);
        let host = match &self.last_host {
            // Stored lowercase: equal to the lowercase of what is named now.
            Some(last) if last.eq_ignore_ascii_case(&named) => Arc::clone(last),
            _ => {
                let mut lower = named.into_owned();
                lower.make_ascii_lowercase();
                let host: Arc<str> = Arc::from(lower);
                self.last_host = Some(Arc::clone(&host));
                host
            }
        };
        self.req = Some(RequestInfo {
            uid,
            method: Method::new(&capped(h.method, MAX_METHOD)),
            host,
            path: Arc::from(capped(&path, MAX_PATH)),
            query_present: query,
            target_hash: if query || path_cut || h.fields.range.is_some() {
                let t = fnv(FNV_OFFSET, rest);
                let t = fnv(t, if path_cut { &path } else { &[] });
                // A part of the target (`Range`) is another request than the whole.
                h.fields.range.map_or(t, |r| fnv(fnv(t, b"\0range\0"), r))
            } else {
                0
            },
            version: h.version,
            body_len: 0,
            body_hash: FNV_OFFSET,
            body_partial: false,
            idempotency_key: h.fields.idempotency_key,
            idempotency_key_hash: h
                .fields
                .idempotency_key_value
                .map_or(0, |v| fnv(FNV_OFFSET, v)),
            upgrade: h.fields.upgrade,
            upgrade_h2c: h.fields.upgrade_h2c,
            credentials: {
                let mut c = request_credentials(&h.fields);
                // An origin-form target without a query (the usual one) has none.
                if query || !h.target.starts_with(b"/") {
                    c |= target_credentials(h.target, rest);
                }
                self.head_credentials |= c;
                c
            },
            keep_alive: h.fields.keep_alive,
            after_server_close: self.server_fin.is_some_and(|fin| start >= fin),
            start_ts: start,
            end_ts: ts,
        });
        match h.framing() {
            BodyFraming::Length(n) => self.client.body = Some(Body::Length(n)),
            BodyFraming::Chunked => self.client.body = Some(Body::Chunked(Chunked::default())),
            BodyFraming::None | BodyFraming::UntilClose => self.message_done(true, ts, events),
        }
        if h.method == b"CONNECT" {
            // What follows is the tunnel, not HTTP; the response still is.
            self.client.dead = true;
        }
        Head::Used(h.len)
    }

    fn response_head(
        &mut self,
        buf: &[u8],
        start: Timestamp,
        ts: Timestamp,
        events: &mut Vec<HttpEvent>,
    ) -> Head {
        let h = match http1::parse_response(buf) {
            Parse::Complete(h) => h,
            Parse::Incomplete => return Head::Incomplete,
            Parse::Invalid => return Head::Invalid,
        };
        self.responses_seen = self.responses_seen.wrapping_add(1);
        if (100..200).contains(&h.status) && h.status != 101 {
            // 100 Continue and friends: not the final response.
            return Head::Used(h.len);
        }
        if let Some(n) = self.after_gap {
            if n > 0 && self.pending.len() <= n {
                // The oldest request waiting was sent after client bytes not captured, whose
                // own requests may be what this answers: the outcome of those waiting is
                // unknown, and this answer is for none of them.
                self.stats.unknown_outcome += self.pending.len() as u64;
                self.pending.clear();
                self.after_gap = Some(0);
            }
        }
        // A final response while the request's body is still coming (413 Content Too Large,
        // 401, a server that answers early: RFC 9110 §15.5.14, RFC 9112 §9.5): it answers
        // that request, complete as far as it came.
        if self.pending.len() == 0 && !self.req_answered {
            if let Some(r) = &self.req {
                let mut r = r.clone();
                r.end_ts = ts;
                events.push(HttpEvent::Request(r.clone()));
                self.pending.push(r);
                self.req_answered = true;
            }
        }
        let method = self
            .pending
            .queue
            .front()
            .map(|r| r.method)
            .unwrap_or_default();
        let framing = h.framing(method.as_bytes());
        self.resp = Some(PartialResponse {
            status: h.status,
            version: h.version,
            first_ts: start,
            body_len: 0,
            close: h.fields.close,
            set_cookie: h.fields.set_cookie,
        });
        if h.fields.set_cookie {
            let mut c = crate::app::ident::Credentials(self.head_credentials);
            c.set("http-set-cookie");
            self.head_credentials = c.0;
        }
        if h.status == 101 || (method == "CONNECT" && (200..300).contains(&h.status)) {
            self.switched = true;
        }
        match framing {
            BodyFraming::Length(n) if !self.switched => self.server.body = Some(Body::Length(n)),
            BodyFraming::Chunked if !self.switched => {
                self.server.body = Some(Body::Chunked(Chunked::default()))
            }
            BodyFraming::UntilClose if !self.switched => self.server.body = Some(Body::UntilClose),
            _ => self.finish_response(ts, events),
        }
        Head::Used(h.len)
    }

    fn message_done(&mut self, from_client: bool, ts: Timestamp, events: &mut Vec<HttpEvent>) {
        if from_client {
            if std::mem::take(&mut self.req_answered) {
                self.req = None;
                return;
            }
            if let Some(mut r) = self.req.take() {
                r.end_ts = ts;
                if self.pending.len() >= MAX_PENDING {
                    self.pending.pop();
                    self.stats.pending_overflow += 1;
                }
                events.push(HttpEvent::Request(r.clone()));
                self.pending.push(r);
                if let Some(n) = self.after_gap.as_mut() {
                    *n = (*n + 1).min(self.pending.len());
                }
            }
        } else {
            self.finish_response(ts, events);
        }
    }

    fn finish_response(&mut self, ts: Timestamp, events: &mut Vec<HttpEvent>) {
        let Some(r) = self.resp.take() else { return };
        match self.pending.pop() {
            Some(req) => events.push(HttpEvent::Response(ResponseInfo {
                request: req,
                status: r.status,
                version: r.version,
                first_ts: r.first_ts,
                end_ts: ts,
                body_len: r.body_len,
                close: r.close,
                set_cookie: r.set_cookie,
            })),
            None => self.stats.unmatched_responses += 1,
        }
    }

    /// Heap bytes held: the buffered partial heads, and the requests waiting for responses.
    pub fn buffered_bytes(&self) -> usize {
        self.client.buf.capacity()
            + self.server.buf.capacity()
            + self.client.held.capacity()
            + self.server.held.capacity()
            + self.pending.bytes
    }

    /// Stops following the connection and frees what [`HttpTracker::buffered_bytes`] counts
    /// (the run-wide budget for such buffers is spent): requests still waiting have an unknown
    /// outcome, like after a gap.
    pub fn shed(&mut self) {
        for h in [&mut self.client, &mut self.server] {
            h.dead = true;
            h.buf = Vec::new();
            h.body = None;
            h.held.free();
        }
        self.req = None;
        self.req_answered = false;
        self.resp = None;
        self.stats.unknown_outcome += self.pending.len() as u64;
        self.pending = Pending::default();
    }

    /// The connection closed: a response delimited by the close is complete.
    pub fn on_close(&mut self, ts: Timestamp, events: &mut Vec<HttpEvent>) {
        // Segments held for bytes that never came: read after their gap.
        self.release_held(true, None, events);
        self.release_held(false, None, events);
        if matches!(self.server.body, Some(Body::UntilClose)) {
            self.server.body = None;
            self.finish_response(ts, events);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_split_before_anything_that_may_be_a_secret() {
        let split = |t: &str| {
            let (path, rest) = split_target(t.as_bytes());
            (
                String::from_utf8(path.into_owned()).unwrap(),
                String::from_utf8(rest.to_vec()).unwrap(),
            )
        };
        // (target, path kept, rest told apart by its hash only)
        for (target, path, rest) in [
            ("/a/b?x=1", "/a/b", "?x=1"),
            ("/a;jsessionid=X/b?y", "/a", ";jsessionid=X/b?y"),
            ("/plain", "/plain", ""),
            (
                "http://u:p@proxy:3128/p;k=v?q",
                "http://proxy:3128/p",
                ";k=v?q",
            ),
            ("https://a@b@host/x", "https://host/x", ""),
            ("http://host?q=1", "http://host", "?q=1"),
            ("http://u:p@host", "http://host", ""),
            // Not absolute-form: a "://" inside the path is the path's.
            ("/go/http://x", "/go/http://x", ""),
            ("example.com:443", "example.com:443", ""),
            // No scheme before "://": a query holding a URL stays the query.
            ("a?token=T&r=http://x", "a", "?token=T&r=http://x"),
            ("x?t=T&u=http://u:p@h", "x", "?t=T&u=http://u:p@h"),
            // A `;` in a password is the password's.
            ("http://user:p;w@host/path", "http://host/path", ""),
            ("svn+ssh://u:p@h/r", "svn+ssh://h/r", ""),
            ("*", "*", ""),
            ("", "", ""),
        ] {
            assert_eq!(
                split(target),
                (path.to_string(), rest.to_string()),
                "{target}"
            );
        }
    }

    fn seg(seq: u32, payload: &[u8]) -> TcpSegment<'_> {
        TcpSegment {
            sport: 40000,
            dport: 80,
            seq,
            ack: 0,
            flags: 0x18,
            window: 65535,
            options: &[],
            payload,
            seg_len: payload.len() as u32,
            checksum: 0,
        }
    }

    fn t(ms: i64) -> Timestamp {
        Timestamp(ms * 1_000_000)
    }

    #[test]
    fn pipelined_requests_split_across_segments_match_responses_in_order() {
        let mut h = HttpTracker::new(7);
        let mut ev = Vec::new();
        let reqs = b"POST /a?x=1 HTTP/1.1\r\nHost: Svc\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\nHost: svc\r\n\r\n";
        // Split in the middle of the first body.
        h.on_segment(true, &seg(100, &reqs[..60]), None, t(0), &mut ev);
        h.on_segment(true, &seg(160, &reqs[60..]), None, t(1), &mut ev);
        assert_eq!(ev.len(), 2);
        let HttpEvent::Request(a) = &ev[0] else {
            panic!()
        };
        assert_eq!(
            (a.method.as_str(), &*a.host, &*a.path),
            ("POST", "svc", "/a")
        );
        assert!(a.query_present);
        assert_eq!(a.body_len, 5);
        assert_eq!(a.body_hash, fnv(FNV_OFFSET, b"hello"));
        let resp = b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        h.on_segment(false, &seg(900, &resp[..40]), None, t(10), &mut ev);
        h.on_segment(false, &seg(940, &resp[40..]), None, t(12), &mut ev);
        assert_eq!(ev.len(), 4);
        let HttpEvent::Response(r1) = &ev[2] else {
            panic!()
        };
        assert_eq!((r1.status, &*r1.request.path, r1.body_len), (201, "/a", 2));
        let HttpEvent::Response(r2) = &ev[3] else {
            panic!()
        };
        assert_eq!((r2.status, &*r2.request.path, r2.body_len), (200, "/b", 3));
        assert_eq!(r2.end_ts, t(12));
        assert_eq!(h.pending().count(), 0);
    }

    #[test]
    fn retransmitted_request_is_not_counted_twice_and_a_gap_resynchronises() {
        let mut h = HttpTracker::new(1);
        let mut ev = Vec::new();
        let r = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        h.on_segment(true, &seg(1, r), None, t(0), &mut ev);
        h.on_segment(true, &seg(1, r), None, t(5), &mut ev);
        assert_eq!(ev.len(), 1);
        // A segment (the middle of a request) was not captured; the next segment continues
        // that request and is skipped; the one after starts a new request and is parsed,
        // once the server acknowledged past the hole (until then the bytes before them might
        // still come: they are held).
        let base = 1 + r.len() as u32;
        h.on_segment(true, &seg(base + 10, b"er: x\r\n\r\n"), None, t(6), &mut ev);
        assert_eq!(ev.len(), 1);
        h.on_segment(true, &seg(base + 19, r), None, t(7), &mut ev);
        assert_eq!(ev.len(), 1);
        let mut answer = seg(900, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        answer.ack = base + 19 + r.len() as u32;
        h.on_segment(false, &answer, None, t(8), &mut ev);
        assert_eq!(ev.len(), 3);
        let HttpEvent::Request(q) = &ev[1] else {
            panic!()
        };
        assert_eq!((q.start_ts, q.end_ts), (t(7), t(7)));
        assert_eq!(h.stats.gaps, 1);
    }

    #[test]
    fn response_until_close_completes_at_close() {
        let mut h = HttpTracker::new(1);
        let mut ev = Vec::new();
        h.on_segment(
            true,
            &seg(1, b"GET / HTTP/1.0\r\n\r\n"),
            None,
            t(0),
            &mut ev,
        );
        h.on_segment(
            false,
            &seg(1, b"HTTP/1.0 200 OK\r\n\r\nbody"),
            None,
            t(3),
            &mut ev,
        );
        h.on_segment(false, &seg(24, b"more"), None, t(4), &mut ev);
        assert_eq!(ev.len(), 1);
        h.on_close(t(9), &mut ev);
        let HttpEvent::Response(r) = &ev[1] else {
            panic!()
        };
        assert_eq!((r.body_len, r.end_ts, r.first_ts), (8, t(9), t(3)));
    }

    #[test]
    fn head_split_over_three_segments() {
        let mut h = HttpTracker::new(1);
        let mut ev = Vec::new();
        let r = b"PATCH /orders/9 HTTP/1.1\r\nHost: x\r\nIdempotency-Key: k\r\nContent-Length: 0\r\n\r\n";
        h.on_segment(true, &seg(1, &r[..10]), None, t(0), &mut ev);
        h.on_segment(true, &seg(11, &r[10..30]), None, t(1), &mut ev);
        assert!(ev.is_empty());
        h.on_segment(true, &seg(31, &r[30..]), None, t(2), &mut ev);
        let HttpEvent::Request(q) = &ev[0] else {
            panic!()
        };
        assert!(q.idempotency_key);
        assert_eq!((q.start_ts, q.end_ts), (t(0), t(2)));
    }
}
