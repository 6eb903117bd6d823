//! Live capture from a network interface through libpcap (the `live` feature).
//!
//! Call protocol: [`LiveCapture::open`] once, then [`LiveCapture::next_item`] in a loop until the
//! caller stops: a frame, or [`LiveItem::Idle`] when none is waiting — then call
//! [`LiveCapture::idle`], which waits a few milliseconds and returns a heartbeat (the wall-clock
//! time) every `heartbeat_ms` of quiet, so the pipeline's capture clock keeps moving on a quiet
//! link. Then [`LiveCapture::stats`] for the kernel's counters. (The handle is non-blocking:
//! libpcap's read timeout does not return on Linux while nothing arrives.) Timestamps are the kernel's capture times
//! in nanoseconds, converted to [`Timestamp`] here, once; the heartbeat reads the wall clock
//! here too — nothing downstream reads a clock.

use super::{LinkType, Packet};
use crate::pipeline::CaptureStats;
use crate::time::Timestamp;

/// Live capture settings.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    /// Interface name (`eth0`, `any`).
    pub interface: String,
    /// A pcap filter expression (`tcp port 443`), compiled by libpcap.
    pub filter: Option<String>,
    /// Bytes kept of each frame.
    pub snaplen: i32,
    /// Put the interface in promiscuous mode.
    pub promiscuous: bool,
    /// Kernel capture buffer, bytes.
    pub buffer_bytes: i32,
    /// Longest wait for a packet before a heartbeat, milliseconds.
    pub heartbeat_ms: i32,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            interface: "any".into(),
            filter: None,
            snaplen: 262_144,
            promiscuous: false,
            buffer_bytes: 16 << 20,
            heartbeat_ms: 200,
        }
    }
}

/// Why a live capture could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The interface could not be opened (missing, down, or no permission).
    #[error(
        "cannot capture on interface `{interface}`: {reason}{hint}",
        hint = permission_hint(reason)
    )]
    Open {
        /// Interface name.
        interface: String,
        /// libpcap's description.
        reason: String,
    },
    /// The filter expression did not compile.
    #[error("capture filter `{filter}` on `{interface}` is not valid: {reason}")]
    Filter {
        /// Interface name.
        interface: String,
        /// The expression.
        filter: String,
        /// libpcap's description.
        reason: String,
    },
    /// Reading failed after the capture started.
    #[error("capture on `{interface}` failed: {reason}")]
    Read {
        /// Interface name.
        interface: String,
        /// libpcap's description.
        reason: String,
    },
}

fn permission_hint(text: &str) -> &'static str {
    if text.contains("ermission") || text.contains("not permitted") {
        " (capturing needs CAP_NET_RAW and CAP_NET_ADMIN: run as root, or grant them with `sudo setcap cap_net_raw,cap_net_admin=eip $(command -v observer)`)"
    } else {
        ""
    }
}

/// What [`LiveCapture::next_item`] produced.
pub enum LiveItem<'a> {
    /// A captured frame.
    Packet(Packet<'a>),
    /// No frame is waiting.
    Idle,
}

/// An open live capture.
pub struct LiveCapture {
    cap: pcap::Capture<pcap::Active>,
    link: LinkType,
    interface: String,
    heartbeat: std::time::Duration,
    last_activity: std::time::Instant,
}

pub use super::wall_clock;

impl LiveCapture {
    /// Opens the interface in immediate mode with nanosecond timestamps and applies the filter.
    pub fn open(o: &LiveOptions) -> Result<Self, LiveError> {
        let open_err = |e: pcap::Error| LiveError::Open {
            interface: o.interface.clone(),
            reason: e.to_string(),
        };
        let mut cap = pcap::Capture::from_device(o.interface.as_str())
            .map_err(open_err)?
            .immediate_mode(true)
            .precision(pcap::Precision::Nano)
            .snaplen(o.snaplen)
            .promisc(o.promiscuous)
            .buffer_size(o.buffer_bytes)
            .timeout(o.heartbeat_ms)
            .open()
            .and_then(pcap::Capture::setnonblock)
            .map_err(open_err)?;
        if let Some(f) = &o.filter {
            cap.filter(f, true).map_err(|e| LiveError::Filter {
                interface: o.interface.clone(),
                filter: f.clone(),
                reason: e.to_string(),
            })?;
        }
        let link = LinkType(u16::try_from(cap.get_datalink().0).unwrap_or(u16::MAX));
        Ok(LiveCapture {
            cap,
            link,
            interface: o.interface.clone(),
            heartbeat: std::time::Duration::from_millis(
                u64::try_from(o.heartbeat_ms).unwrap_or(200),
            ),
            last_activity: std::time::Instant::now(),
        })
    }

    /// The interface's link type.
    pub fn link_type(&self) -> LinkType {
        self.link
    }

    /// Nothing was waiting: sleeps briefly; returns the wall-clock time when the link has
    /// been quiet for a heartbeat interval.
    pub fn idle(&mut self) -> Option<Timestamp> {
        std::thread::sleep(std::time::Duration::from_millis(5));
        if self.last_activity.elapsed() >= self.heartbeat {
            self.last_activity = std::time::Instant::now();
            return Some(wall_clock());
        }
        None
    }

    /// The next frame, if one is waiting.
    pub fn next_item(&mut self) -> Result<LiveItem<'_>, LiveError> {
        match self.cap.next_packet() {
            Ok(p) => {
                self.last_activity = std::time::Instant::now();
                // Nanosecond precision was asked for: the "usec" field holds nanoseconds.
                let (secs, nanos): (i64, i64) = (p.header.ts.tv_sec, p.header.ts.tv_usec);
                let ts = Timestamp(secs * 1_000_000_000 + nanos);
                Ok(LiveItem::Packet(Packet {
                    ts,
                    link: self.link,
                    data: p.data,
                    wire_len: p.header.len,
                    interface: 0,
                    segments: 1,
                }))
            }
            Err(pcap::Error::TimeoutExpired) => Ok(LiveItem::Idle),
            Err(e) => Err(LiveError::Read {
                interface: self.interface.clone(),
                reason: e.to_string(),
            }),
        }
    }

    /// The kernel's counters so far.
    pub fn stats(&mut self) -> CaptureStats {
        match self.cap.stats() {
            Ok(s) => CaptureStats {
                received: u64::from(s.received),
                dropped_kernel: u64::from(s.dropped),
                dropped_interface: u64::from(s.if_dropped),
            },
            Err(_) => CaptureStats::default(),
        }
    }
}
