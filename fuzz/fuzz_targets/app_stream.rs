//! The stateful app-layer trackers fed one connection's segments: protocol identification and
//! credential detection (`app::ConnInfo`), HTTP/1.x reassembly (`app::on_tcp_payload`, the
//! `HttpTracker`) and DNS over TCP (server port 53, the `DnsTracker`), with holes, overlaps,
//! retransmissions and snapped payloads.
//!
//! Input: bytes 0..2 = the server port (big-endian; it steers the port-based guesses), then
//! records of `[control, len, step]` followed by `len` payload bytes (fewer if the input ends).
//! `control` bit 0: from the client; bits 1–2: where the segment starts in its direction's
//! sequence space (0 next in order, 1 `step` × 97 bytes further: a hole, 2 `step` bytes back:
//! a retransmission or overlap, 3 just before the 2^32 wrap); bit 3: the wire length is longer
//! than the payload (`step` × 13 bytes were not captured); bit 4: after this segment, shed the
//! flow's buffers (as the pipeline does when the run's budget for them is spent); bit 5: the
//! direction's SYN was seen (its first data byte is known; taken at its first segment); bit 6:
//! the segment carries no payload, only its acknowledgment of what the other direction sent
//! and `step` bytes more (held segments a bare ACK releases). Time advances `step`
//! milliseconds.
//!
//! Besides never panicking: a flow's parsing buffers stay within the per-flow caps (2 MiB is
//! far above what the caps allow), are empty after a shed, the HTTP events are consistent, and
//! each DNS message's answers lie in the segment's answer buffer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use observer::app::{self, AppState, AppStats, ConnInfo, HttpEvent};

/// Far above what one flow's capped buffers can hold.
const MAX_FLOW_BYTES: usize = 2 << 20;
use observer::decode::TcpSegment;
use observer::flow::{Dir, SeqNum};
use observer::time::Timestamp;
use std::collections::HashSet;

/// Records read from one input.
const MAX_SEGMENTS: usize = 4_096;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let server_port = u16::from_be_bytes([data[0], data[1]]);
    let mut rest = &data[2..];
    let mut conn = ConnInfo::default();
    let mut state = AppState::default();
    let mut stats = AppStats::default();
    let mut events = Vec::new();
    let mut dns = app::DnsEvents::default();
    // Next sequence number of each direction: [client, server].
    let mut next = [1_000u32, 50_000u32];
    let first = next;
    let mut ts = Timestamp(1_000_000_000);
    let mut requests = HashSet::new();
    let mut answered = HashSet::new();
    let mut last_request = None;
    let mut last_answered = None;
    for _ in 0..MAX_SEGMENTS {
        let [control, len, step, ..] = *rest else { break };
        rest = &rest[3..];
        let payload = &rest[..rest.len().min(usize::from(len))];
        rest = &rest[payload.len()..];
        let from_client = control & 1 == 1;
        let d = usize::from(!from_client);
        let seq = match (control >> 1) & 3 {
            0 => next[d],
            1 => next[d].wrapping_add(u32::from(step) * 97),
            2 => next[d].wrapping_sub(u32::from(step)),
            _ => u32::MAX - u32::from(step),
        };
        let missing = if control & 8 != 0 { u32::from(step) * 13 } else { 0 };
        let seg_len = payload.len() as u32 + missing;
        next[d] = next[d].max(seq.wrapping_add(seg_len));
        ts = ts.plus(i64::from(step) * 1_000_000);
        let seg = TcpSegment {
            sport: if from_client { 40_000 } else { server_port },
            dport: if from_client { server_port } else { 40_000 },
            seq,
            ack: next[1 - d],
            flags: 0x18,
            window: 65_535,
            options: &[],
            payload,
            seg_len,
            checksum: 0,
        };
        conn.on_segment(from_client, server_port, &seg, ts);
        let dir = if from_client { Dir::LoToHi } else { Dir::HiToLo };
        let at = app::Segment {
            flow_id: 7,
            client_dir: Dir::LoToHi,
            server_port,
            dir,
            start: (control & 0x20 != 0).then_some(SeqNum(first[d])),
        };
        if control & 0x40 != 0 {
            // A segment without payload: its acknowledgment only (what the other direction
            // sent, and `step` bytes more: past bytes not captured).
            let ack = next[1 - d].wrapping_add(u32::from(step));
            app::on_tcp_ack(&mut state, &mut stats, at, ack, &mut events, &mut dns);
        } else {
            app::on_tcp_payload(&mut state, &mut stats, at, &seg, ts, &mut events, &mut dns);
        }
        check(&mut events, &mut requests, &mut answered, &mut last_request, &mut last_answered);
        check_dns(&mut dns);
        let http = |s: &AppState| match s {
            AppState::Http(h) => h.buffered_bytes(),
            AppState::Dns(d) => d.buffered_bytes(),
            _ => 0,
        };
        assert!(conn.buffered_bytes() + http(&state) <= MAX_FLOW_BYTES, "buffers past the caps");
        if control & 0x10 != 0 {
            conn.shed();
            match &mut state {
                AppState::Http(h) => h.shed(),
                AppState::Dns(d) => d.shed(),
                _ => {}
            }
            assert_eq!(conn.buffered_bytes() + http(&state), 0, "a shed flow still holds bytes");
        }
    }
    let at = app::Segment {
        flow_id: 7,
        client_dir: Dir::LoToHi,
        server_port,
        dir: Dir::LoToHi,
        start: None,
    };
    app::on_flow_end(&mut state, &mut stats, at, ts, &mut events, &mut dns);
    check_dns(&mut dns);
    check(&mut events, &mut requests, &mut answered, &mut last_request, &mut last_answered);
    std::hint::black_box((conn.plaintext(), conn.credentials.names(), stats.http_connections));
    std::hint::black_box(format!("{conn:?}"));
});

/// A DNS message's answers are a range of the segment's answer buffer; the buffers are
/// emptied for the next segment (as the pipeline does).
fn check_dns(dns: &mut app::DnsEvents) {
    for ev in &dns.events {
        if let app::DnsEvent::Message { answers, msg, .. } = ev {
            assert!(answers.start <= answers.end && answers.end <= dns.answers.len(), "answers out of range");
            assert!(answers.is_empty() || msg.response, "a query with answers");
        }
    }
    dns.clear();
}

/// Requests are numbered in order; a response answers a request that was reported, at most
/// once, and in the order the requests came.
fn check(
    events: &mut Vec<HttpEvent>,
    requests: &mut HashSet<u64>,
    answered: &mut HashSet<u64>,
    last_request: &mut Option<u64>,
    last_answered: &mut Option<u64>,
) {
    for ev in events.drain(..) {
        match ev {
            HttpEvent::Request(r) => {
                assert!(last_request.is_none_or(|l| r.uid > l), "request ids out of order");
                *last_request = Some(r.uid);
                requests.insert(r.uid);
            }
            HttpEvent::Response(r) => {
                let uid = r.request.uid;
                assert!(requests.contains(&uid), "a response to a request never reported");
                assert!(answered.insert(uid), "a request answered twice");
                assert!(last_answered.is_none_or(|l| uid > l), "responses out of order");
                *last_answered = Some(uid);
                assert!(r.end_ts >= r.first_ts, "a response ends before it starts");
            }
        }
    }
}
