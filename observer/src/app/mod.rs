//! Application-layer transaction tracking shared by the analyzers: HTTP/1.x requests and
//! responses reassembled in order from each TCP direction (bounded buffers, heads only;
//! bodies are hashed as they stream by, never stored).
//!
//! Call protocol: the pipeline calls [`on_tcp_payload`] for every TCP segment with payload,
//! after the TCP state was updated and before the analyzers run; the events it produces are
//! handed to the analyzers with the packet. At flow end, [`on_flow_end`] completes responses
//! delimited by the connection's close; requests still pending are unanswered.

pub mod http;
pub mod ident;

use crate::decode::TcpSegment;
use crate::flow::Dir;
use crate::time::Timestamp;

pub use http::{HttpEvent, HttpTracker, RequestInfo, ResponseInfo};
pub use ident::{ConnInfo, Credentials, Protocol, TlsInfo};

/// Client payload segments examined before a flow is declared not HTTP (a proxy or SOCKS
/// handshake may come first).
const DETECT_SEGMENTS: u8 = 4;

/// What the flow carries, as far as the app layer knows.
#[derive(Debug, Default)]
pub enum AppState {
    /// Nothing decided yet; the number of client payload segments examined.
    #[default]
    Unknown,
    /// Still undecided after this many client segments.
    Probing(u8),
    /// HTTP/1.x.
    Http(Box<HttpTracker>),
    /// Something else (not tracked).
    Other,
}

/// Counters of the app layer.
#[derive(Clone, Debug, Default)]
pub struct AppStats {
    /// HTTP/1.x connections tracked.
    pub http_connections: u64,
}

/// One TCP segment with payload of a flow whose client side travels in `client_dir`.
/// `flow_id` makes request ids unique within the run.
#[allow(clippy::too_many_arguments)]
pub fn on_tcp_payload(
    state: &mut AppState,
    stats: &mut AppStats,
    flow_id: u64,
    client_dir: Dir,
    dir: Dir,
    seg: &TcpSegment<'_>,
    ts: Timestamp,
    events: &mut Vec<HttpEvent>,
) {
    let from_client = dir == client_dir;
    let seen = match state {
        AppState::Unknown => 0,
        AppState::Probing(n) => *n,
        _ => u8::MAX,
    };
    if seen != u8::MAX {
        if !from_client || seg.payload.is_empty() {
            return;
        }
        if crate::proto::http1::looks_like_request(seg.payload) {
            stats.http_connections += 1;
            *state = AppState::Http(Box::new(HttpTracker::new(flow_id)));
        } else if seen + 1 >= DETECT_SEGMENTS {
            *state = AppState::Other;
        } else {
            *state = AppState::Probing(seen + 1);
            return;
        }
    }
    if let AppState::Http(h) = state {
        h.on_segment(from_client, seg, ts, events);
    }
}

/// The flow ended at `ts`: responses delimited by the close are complete.
pub fn on_flow_end(state: &mut AppState, ts: Timestamp, events: &mut Vec<HttpEvent>) {
    if let AppState::Http(h) = state {
        h.on_close(ts, events);
    }
}
