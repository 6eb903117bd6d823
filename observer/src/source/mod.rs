//! Packet sources. A source yields frames with their capture timestamp and link type; nothing
//! downstream knows which source fed it.
//!
//! Call protocol: call [`CaptureFile::next_packet`] until it returns `Ok(None)` (clean end) or
//! an error (the input ended early or is damaged; everything read before it stays valid and
//! the caller decides whether to continue with the next input).

mod ahead;
mod capture_file;
pub mod handoff;
mod linktype;
mod mapped;

#[cfg(feature = "live")]
pub mod live;

pub use capture_file::{CaptureFile, CaptureFormat, FileStats};
pub use linktype::LinkType;

use crate::time::Timestamp;
use std::path::PathBuf;

/// The wall-clock time now, as capture time: a live source's one clock read (live capture
/// heartbeats, the kernel probe's clock offset).
pub fn wall_clock() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// One captured frame, borrowed from the source's buffer until the next call.
#[derive(Clone, Copy, Debug)]
pub struct Packet<'a> {
    /// Capture time.
    pub ts: Timestamp,
    /// How to interpret the first byte of `data`.
    pub link: LinkType,
    /// The captured bytes (possibly cut by the snap length).
    pub data: &'a [u8],
    /// The frame's length on the wire.
    pub wire_len: u32,
    /// Interface number within the file, 0 for pcap: pcapng's are numbered on across the
    /// file's sections in the order they are described (a section's interface 0 is the file's
    /// first interface of that section, as capinfos numbers them).
    pub interface: u32,
    /// Wire segments this frame stands for when the source knows it is an offload
    /// super-packet (a kernel probe's GSO skb); 1 otherwise (capture files, libpcap).
    pub segments: u16,
}

/// Why a capture could not be read (fully). Each names the input and, where it applies, the
/// byte offset (in the decompressed stream for gzip input).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The file could not be opened or read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// Input path.
        path: PathBuf,
        /// Operating-system error.
        #[source]
        source: std::io::Error,
    },
    /// The file has no bytes at all.
    #[error("{path}: empty file (0 bytes): not a capture")]
    Empty {
        /// Input path.
        path: PathBuf,
    },
    /// The first bytes match neither pcap, pcapng nor gzip.
    #[error(
        "{path}: not a pcap or pcapng capture (starts with {magic}); expected pcap (a1b2c3d4 / a1b23c4d), pcapng (0a0d0d0a) or gzip of either"
    )]
    NotCapture {
        /// Input path.
        path: PathBuf,
        /// The first bytes, in hex.
        magic: String,
    },
    /// The capture stops in the middle of a header or record.
    #[error(
        "{path}: truncated at byte offset {offset}{}: {what} needs {needed} bytes, only {available} left",
        if *.gzip_cut { " of the decompressed data (the gzip stream is cut before its end)" } else { "" }
    )]
    Truncated {
        /// Input path.
        path: PathBuf,
        /// Offset of the incomplete header or record.
        offset: u64,
        /// What was being read.
        what: &'static str,
        /// Bytes it needed.
        needed: u64,
        /// Bytes the file still had.
        available: u64,
        /// The file is gzip'd and its compressed stream ended in the middle: that is the cut
        /// (and `offset` counts decompressed bytes).
        gzip_cut: bool,
    },
    /// A header or record is inconsistent (impossible length, bad block structure).
    #[error("{path}: damaged at byte offset {offset}: {reason}")]
    Damaged {
        /// Input path.
        path: PathBuf,
        /// Offset of the damaged structure.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
}

impl SourceError {
    /// True when the input was read up to a point and then ended early or became unreadable;
    /// what was read before that point is valid.
    pub fn is_partial(&self) -> bool {
        matches!(
            self,
            SourceError::Truncated { .. } | SourceError::Damaged { .. }
        )
    }

    /// The input this error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            SourceError::Io { path, .. }
            | SourceError::Empty { path }
            | SourceError::NotCapture { path, .. }
            | SourceError::Truncated { path, .. }
            | SourceError::Damaged { path, .. } => path,
        }
    }
}

#[cfg(test)]
mod tests;
