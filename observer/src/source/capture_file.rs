//! A reader of pcap and pcapng files of its own: zero-copy (frames are borrowed from one large
//! read buffer), gzip read transparently, the format detected by magic number, and every
//! problem reported with the file name and byte offset.
//!
//! Why not libpcap: it cannot read gzip, does not say where a file is damaged, and its per-packet
//! callback costs more than a buffer walk (the benchmark in `xtask` compares them).

use super::{LinkType, Packet, SourceError};
use crate::time::{NANOS_PER_SEC, Timestamp};
use std::fs::File;
use std::io::{self, BufRead, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The container format a capture file turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureFormat {
    /// Classic pcap (either byte order; micro- or nanosecond).
    Pcap {
        /// Timestamps are nanoseconds.
        nanos: bool,
        /// The file was written big-endian.
        big_endian: bool,
    },
    /// pcapng.
    Pcapng,
}

impl CaptureFormat {
    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            CaptureFormat::Pcap { nanos: false, .. } => "pcap",
            CaptureFormat::Pcap { nanos: true, .. } => "pcap-ns",
            CaptureFormat::Pcapng => "pcapng",
        }
    }
}

/// Per-file counters kept by the reader.
#[derive(Clone, Debug, Default)]
pub struct FileStats {
    /// Records that carried a frame.
    pub packets: u64,
    /// Captured bytes of those frames.
    pub captured_bytes: u64,
    /// pcapng blocks skipped because this reader does not need them (name resolution,
    /// statistics, custom, unknown).
    pub skipped_blocks: u64,
}

/// Largest record or block accepted; anything larger means the length field is damaged.
const MAX_RECORD: usize = 16 * 1024 * 1024;
/// Interfaces one pcapng section may describe (each description is kept while the section
/// is read: 24 bytes, about 1.5 MiB at the limit). A section describing more stops the file
/// there, damaged: real captures describe a few, and a file of nothing but descriptions would
/// otherwise need more memory than its own size.
const MAX_PCAPNG_INTERFACES: usize = 65_536;
/// Read granularity.
const READ_CHUNK: usize = 1 << 20;
/// Buffer size once a file turns out to be larger than the initial buffer.
const BIG_BUFFER: usize = 4 * READ_CHUNK;
/// Files at least this large are read ahead on a second thread when asked to.
const READ_AHEAD_MIN: u64 = 4 << 20;
/// … and gzip files at least this large (inflating costs several times what reading does).
const READ_AHEAD_MIN_GZIP: u64 = 1 << 20;
/// Initial buffer size: small captures (most test inputs) never need more.
const SMALL_BUFFER: usize = 64 * 1024;

#[derive(Clone, Copy)]
struct Interface {
    link: LinkType,
    snaplen: u32,
    /// Timestamp units per second (10^6 by default).
    units_per_sec: u64,
    /// Seconds added to every timestamp (if_tsoffset).
    offset_secs: i64,
}

enum State {
    Pcap {
        swap: bool,
        nanos: bool,
        link: LinkType,
        /// Kuznetzov's modified pcap: 8 extra bytes per record header.
        extended: bool,
        max_caplen: usize,
    },
    Pcapng {
        swap: bool,
        interfaces: Vec<Interface>,
        /// Interfaces described by the file's earlier sections: a packet's interface number
        /// restarts at 0 in each section, but each section's interfaces are links of their
        /// own (two captures joined with `cat`), so the file numbers them on from there, in
        /// the order they are described (as capinfos does).
        base: u32,
    },
}

/// An open capture file.
pub struct CaptureFile {
    path: PathBuf,
    inner: Box<dyn Read + Send>,
    /// The thread reading ahead, when [`CaptureFile::open_with`] started one (then `inner` is
    /// empty and the bytes arrive as chunks).
    ahead: Option<super::ahead::ReadAhead>,
    buf: Vec<u8>,
    /// The file mapped in place of `buf` ([`super::mapped`]); `start` and `end` then index it.
    map: Option<Arc<super::mapped::Mapped>>,
    /// While another thread consumes the frames ([`CaptureFile::share_map`]): the mapping's
    /// offset up to which it has finished with them; pages are given back only below it.
    consumed: Option<Arc<AtomicUsize>>,
    /// The mapped file, read from where the mapping ends if it grows meanwhile.
    mapped_file: Option<File>,
    start: usize,
    end: usize,
    eof: bool,
    /// Stream offset of `buf[start]`.
    offset: u64,
    state: State,
    format: CaptureFormat,
    gzip: bool,
    /// The compressed stream ended in the middle (a cut `.gz`).
    stream_cut: bool,
    stats: FileStats,
}

impl std::fmt::Debug for CaptureFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureFile")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("gzip", &self.gzip)
            .finish()
    }
}

/// A classic pcap record's header fields.
#[derive(Clone, Copy)]
struct PcapRecord {
    secs: u32,
    frac: u32,
    caplen: usize,
    wire_len: u32,
}

fn u16_at(b: &[u8], swap: bool) -> u16 {
    let v = u16::from_le_bytes([b[0], b[1]]);
    if swap { v.swap_bytes() } else { v }
}

fn u32_at(b: &[u8], swap: bool) -> u32 {
    let v = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    if swap { v.swap_bytes() } else { v }
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why a mapped file of `mapped` bytes lost pages, given its size `now`.
pub(super) fn shrank_reason(now: Option<u64>, mapped: u64) -> String {
    match now {
        Some(now) if now < mapped => format!(
            "the file shrank to {now} bytes while being read: another program truncated or rewrote it"
        ),
        // The size did not change: the storage failed to give a page back.
        _ => "a page of the file could not be read from its storage (I/O error)".to_string(),
    }
}

/// How a read-ahead thread would read an input (see [`CaptureFile::open_with`]).
struct AheadPlan {
    /// The input's size in bytes (`u64::MAX` when unknown: always read ahead).
    size: u64,
    /// Bytes read at a time.
    chunk: usize,
    /// Room left in front of each chunk for a record cut at the chunk before.
    room: usize,
}

impl CaptureFile {
    /// Opens a capture file (`-` reads standard input). Detects gzip, pcap and pcapng by their
    /// magic numbers and reads the file header.
    pub fn open(path: &Path) -> Result<CaptureFile, SourceError> {
        Self::open_with(path, false)
    }

    /// [`CaptureFile::open`]; with `read_ahead`, a gzip'd file of at least 1 MiB is read and
    /// inflated on a second thread while this one walks the chunk before (so is an
    /// uncompressed one of 4 MiB that could not be mapped). An uncompressed regular file is
    /// otherwise mapped and read in place either way. The frames and errors are the same every
    /// way.
    pub fn open_with(path: &Path, read_ahead: bool) -> Result<CaptureFile, SourceError> {
        let io_err = |source| SourceError::Io {
            path: path.to_path_buf(),
            source,
        };
        let raw: Box<dyn Read + Send> = if path.as_os_str() == "-" {
            Box::new(io::stdin())
        } else {
            let f = File::open(path).map_err(io_err)?;
            if f.metadata().map_err(io_err)?.is_dir() {
                return Err(io_err(io::Error::new(
                    io::ErrorKind::IsADirectory,
                    "is a directory",
                )));
            }
            let meta = f.metadata().map_err(io_err)?;
            // Read in place, whatever the threads: a second thread reading copies ahead was
            // measured no faster than one reading the mapping (0.163 against 0.161 s on the
            // real-program benchmark capture). It still reads ahead what must be inflated.
            if meta.is_file() {
                if let Some(map) = super::mapped::Mapped::new(&f, meta.len()) {
                    if !map.bytes().starts_with(&[0x1f, 0x8b]) {
                        return Self::build_mapped(path, f, map);
                    }
                }
            }
            if read_ahead {
                let size = meta.len();
                let ahead = AheadPlan {
                    size,
                    chunk: super::ahead::CHUNK,
                    room: super::ahead::PREFIX,
                };
                return Self::build(path, Box::new(f), Some(ahead));
            }
            Box::new(f)
        };
        Self::from_reader(path, raw)
    }

    /// [`CaptureFile::from_reader`] through a read-ahead thread whatever the size, reading
    /// `chunk` bytes at a time with `prefix` bytes of room in front of each chunk (the sizes the
    /// thread uses are 1 MiB and 256 KiB; tiny ones test every boundary case).
    pub fn from_reader_ahead(
        path: &Path,
        raw: Box<dyn Read + Send>,
        chunk: usize,
        prefix: usize,
    ) -> Result<CaptureFile, SourceError> {
        let ahead = AheadPlan {
            size: u64::MAX,
            chunk,
            room: prefix,
        };
        Self::build(path, raw, Some(ahead))
    }

    /// Reads a capture from any byte stream; `path` is only used in messages.
    pub fn from_reader(path: &Path, raw: Box<dyn Read + Send>) -> Result<CaptureFile, SourceError> {
        Self::build(path, raw, None)
    }

    /// `ahead`: set when a read-ahead thread may be used; it is, when the file turns out large
    /// enough for one to pay off.
    fn build(
        path: &Path,
        mut raw: Box<dyn Read + Send>,
        ahead: Option<AheadPlan>,
    ) -> Result<CaptureFile, SourceError> {
        let path = path.to_path_buf();
        let mut head = [0u8; 2];
        let n = read_up_to(&mut raw, &mut head).map_err(|source| SourceError::Io {
            path: path.clone(),
            source,
        })?;
        if n == 0 {
            return Err(SourceError::Empty { path });
        }
        let prefix = io::Cursor::new(head[..n].to_vec());
        let gzip = n == 2 && head == [0x1f, 0x8b];
        let inner: Box<dyn Read + Send> = if gzip {
            Box::new(Pieces::new(flate2::read::MultiGzDecoder::new(
                prefix.chain(raw),
            )))
        } else {
            Box::new(prefix.chain(raw))
        };
        let min = if gzip {
            READ_AHEAD_MIN_GZIP
        } else {
            READ_AHEAD_MIN
        };
        let (inner, ahead) = if let Some(AheadPlan { size, chunk, room }) = ahead
            && size >= min
        {
            let ahead = super::ahead::ReadAhead::start(inner, chunk, room).map_err(|source| {
                SourceError::Io {
                    path: path.clone(),
                    source,
                }
            })?;
            (Box::new(io::empty()) as Box<dyn Read + Send>, Some(ahead))
        } else {
            (inner, None)
        };
        let mut cf = CaptureFile::unread(path, inner, gzip);
        cf.ahead = ahead;
        cf.buf = vec![0; SMALL_BUFFER];
        cf.read_file_header()?;
        Ok(cf)
    }

    /// A reader of `inner` before its file header is read, with nothing buffered or mapped.
    fn unread(path: PathBuf, inner: Box<dyn Read + Send>, gzip: bool) -> CaptureFile {
        CaptureFile {
            path,
            inner,
            ahead: None,
            buf: Vec::new(),
            map: None,
            consumed: None,
            mapped_file: None,
            start: 0,
            end: 0,
            eof: false,
            offset: 0,
            state: State::Pcap {
                swap: false,
                nanos: false,
                link: LinkType::ETHERNET,
                extended: false,
                max_caplen: MAX_RECORD,
            },
            format: CaptureFormat::Pcapng,
            gzip,
            stream_cut: false,
            stats: FileStats::default(),
        }
    }

    /// A capture read in place from its mapping (an uncompressed regular file).
    fn build_mapped(
        path: &Path,
        file: File,
        map: super::mapped::Mapped,
    ) -> Result<CaptureFile, SourceError> {
        let mut cf = CaptureFile::unread(path.to_path_buf(), Box::new(io::empty()), false);
        cf.end = map.bytes().len();
        cf.eof = true;
        cf.map = Some(Arc::new(map));
        cf.mapped_file = Some(file);
        cf.read_file_header()?;
        Ok(cf)
    }

    /// The bytes `start..end` index: the mapping, or the buffer.
    #[inline]
    fn data(&self) -> &[u8] {
        match &self.map {
            Some(m) => m.bytes(),
            None => &self.buf,
        }
    }

    /// [`CaptureFile::fill`] from the mapping: the bytes are there unless the file ends
    /// first, or shrank under the mapping (see [`super::mapped`]); if it has grown since it was
    /// mapped, the rest is read as from any file.
    fn fill_mapped(&mut self, n: usize) -> Result<bool, SourceError> {
        let available = self.available();
        let Some(map) = self.map.as_ref() else {
            return Ok(available >= n);
        };
        if available >= n {
            self.mapped_step(map, self.start + n)?;
            return Ok(true);
        }
        let mapped = map.bytes().len() as u64;
        let Some(file) = self.mapped_file.as_mut() else {
            return Ok(false);
        };
        let io_err = |source| SourceError::Io {
            path: self.path.clone(),
            source,
        };
        let now = file.metadata().map_err(io_err)?.len();
        if now <= mapped {
            return Ok(false);
        }
        // Grown: the unread tail becomes the buffer, and the file is read on from the
        // mapping's end.
        use std::io::Seek;
        file.seek(io::SeekFrom::Start(mapped)).map_err(io_err)?;
        let tail = self.data()[self.start..self.end].to_vec();
        self.buf = tail;
        self.buf.resize(self.buf.len().max(SMALL_BUFFER), 0);
        self.end -= self.start;
        self.start = 0;
        self.map = None;
        self.inner = Box::new(self.mapped_file.take().expect("checked above"));
        self.eof = false;
        self.fill(n)
    }

    /// A step of the reader through the mapping up to byte `to`, all of which is mapped: the
    /// mapping is checked (a file that shrank under it is an error) and the pages before what
    /// the consumer has finished with are given back.
    #[inline(always)]
    fn mapped_step(&self, map: &super::mapped::Mapped, to: usize) -> Result<(), SourceError> {
        if map.check(to) {
            return Err(self.shrank());
        }
        let done = match &self.consumed {
            Some(c) => self.start.min(c.load(Ordering::Acquire)),
            None => self.start,
        };
        map.release_before(done);
        Ok(())
    }

    /// The error for a mapped file that lost bytes while being read: the input ends where
    /// the reader was, damaged (what came before was analyzed).
    fn shrank(&self) -> SourceError {
        let now = self
            .mapped_file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map(|m| m.len());
        let mapped = self.map.as_ref().map_or(0, |m| m.bytes().len() as u64);
        SourceError::Damaged {
            path: self.path.clone(),
            offset: self.offset,
            reason: shrank_reason(now, mapped),
        }
    }

    /// The mapped file itself, to ask its size from another thread.
    pub(crate) fn mapped_file(&self) -> Option<File> {
        self.mapped_file.as_ref().and_then(|f| f.try_clone().ok())
    }

    /// For a mapped file: whether it has become shorter than when it was mapped, and too short
    /// for the `needed` bytes at the reader's offset. The last page of a file that shrank reads
    /// as zeros past its new end without a fault (see [`super::mapped`]); a header of zeros, or
    /// what looks like damage or a cut, is checked against the file's size now.
    fn lost(&self, needed: usize) -> bool {
        let (Some(map), Some(file)) = (&self.map, &self.mapped_file) else {
            return false;
        };
        let Ok(now) = file.metadata().map(|m| m.len()) else {
            return false;
        };
        map.shrank() || (now < map.bytes().len() as u64 && now < self.offset + needed as u64)
    }

    /// The input's path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The detected container format.
    pub fn format(&self) -> CaptureFormat {
        self.format
    }

    /// Whether the file is read in place (mapped) rather than copied out by reads.
    pub fn is_mapped(&self) -> bool {
        self.map.is_some()
    }

    /// Undoes [`CaptureFile::share_map`]: pages are given back behind this reader again.
    pub(crate) fn unshare_map(&mut self) {
        self.consumed = None;
    }

    /// The mapping, for a thread that will read the frames' bytes in place after this reader
    /// has handed them out ([`super::handoff`]): the reader then gives pages back only below
    /// the offset `consumed` says that thread has finished with.
    pub(crate) fn share_map(
        &mut self,
        consumed: Arc<AtomicUsize>,
    ) -> Option<Arc<super::mapped::Mapped>> {
        let map = self.map.clone()?;
        self.consumed = Some(consumed);
        Some(map)
    }

    /// Whether the file was gzip-compressed.
    pub fn is_gzip(&self) -> bool {
        self.gzip
    }

    /// Counters so far.
    pub fn stats(&self) -> &FileStats {
        &self.stats
    }

    /// Bytes of the (decompressed) stream consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn available(&self) -> usize {
        self.end - self.start
    }

    /// Makes at least `n` bytes available in the buffer, unless the stream ends first.
    fn fill(&mut self, n: usize) -> Result<bool, SourceError> {
        if self.map.is_some() {
            return self.fill_mapped(n);
        }
        if self.available() >= n {
            return Ok(true);
        }
        if self.ahead.is_some() {
            return self.fill_ahead(n);
        }
        if self.start + n > self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            let want = if self.eof { n } else { n.max(BIG_BUFFER) };
            if want > self.buf.len() {
                self.buf.resize(want.next_power_of_two(), 0);
            }
        }
        while self.available() < n && !self.eof {
            let room = self.buf.len() - self.end;
            let want = room.min(READ_CHUNK.max(n - self.available()));
            match self.inner.read(&mut self.buf[self.end..self.end + want]) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.read_failed(e)?,
            }
        }
        Ok(self.available() >= n)
    }

    /// [`CaptureFile::fill`] from the read-ahead thread's chunks: the next chunk becomes the
    /// buffer, with the unread tail of this one copied in front of it.
    fn fill_ahead(&mut self, n: usize) -> Result<bool, SourceError> {
        use super::ahead::Msg;
        while self.available() < n && !self.eof {
            let Some(ahead) = self.ahead.as_mut() else {
                break;
            };
            let prefix = ahead.prefix();
            match ahead.next() {
                Msg::Data(mut chunk, end) => {
                    let tail = self.end - self.start;
                    if tail <= prefix {
                        chunk[prefix - tail..prefix]
                            .copy_from_slice(&self.buf[self.start..self.end]);
                        let used = std::mem::replace(&mut self.buf, chunk);
                        ahead.give_back(used);
                        self.start = prefix - tail;
                        self.end = end;
                    } else {
                        // A record longer than the room in front: grow this buffer instead.
                        self.buf.copy_within(self.start..self.end, 0);
                        self.buf.truncate(tail);
                        self.buf.extend_from_slice(&chunk[prefix..end]);
                        self.start = 0;
                        self.end = self.buf.len();
                        ahead.give_back(chunk);
                    }
                }
                Msg::End => self.eof = true,
                Msg::Failed(e) => {
                    self.eof = true;
                    self.read_failed(e)?;
                }
            }
        }
        Ok(self.available() >= n)
    }

    /// A read error: a cut gzip stream ends the input (reported at its end), anything else is
    /// returned.
    fn read_failed(&mut self, e: io::Error) -> Result<(), SourceError> {
        if self.gzip && e.kind() == io::ErrorKind::UnexpectedEof {
            // A cut .gz: keep what was decompressed, report the cut at the end.
            self.eof = true;
            self.stream_cut = true;
            return Ok(());
        }
        // A corrupt gzip stream surfaces here as InvalidInput/InvalidData.
        if matches!(
            e.kind(),
            io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData
        ) {
            return Err(SourceError::Damaged {
                path: self.path.clone(),
                offset: self.offset + self.available() as u64,
                reason: format!("compressed stream is corrupt: {e}"),
            });
        }
        Err(SourceError::Io {
            path: self.path.clone(),
            source: e,
        })
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        self.offset += n as u64;
    }

    /// End of input at a record boundary: clean, unless the compressed stream was cut.
    fn clean_end<T>(&self) -> Result<Option<T>, SourceError> {
        if self.stream_cut {
            return Err(self.truncated("the next record", 1));
        }
        Ok(None)
    }

    fn truncated(&self, what: &'static str, needed: usize) -> SourceError {
        if self.lost(needed) {
            return self.shrank();
        }
        SourceError::Truncated {
            path: self.path.clone(),
            offset: self.offset,
            what,
            needed: needed as u64,
            available: self.available() as u64,
            gzip_cut: self.stream_cut,
        }
    }

    fn damaged(&self, reason: String) -> SourceError {
        // Damage within a record's reach of a new, shorter end is the file shrinking.
        if self.lost(MAX_RECORD + 64) {
            return self.shrank();
        }
        SourceError::Damaged {
            path: self.path.clone(),
            offset: self.offset,
            reason,
        }
    }

    fn read_file_header(&mut self) -> Result<(), SourceError> {
        self.fill(4)?;
        if self.available() < 4 {
            let got = self.available();
            return Err(SourceError::NotCapture {
                path: self.path.clone(),
                magic: format!(
                    "{} (only {got} bytes)",
                    hex(&self.data()[self.start..self.start + got])
                ),
            });
        }
        let magic = &self.data()[self.start..self.start + 4];
        let m = u32::from_le_bytes([magic[0], magic[1], magic[2], magic[3]]);
        let (swap, nanos, extended) = match m {
            0xa1b2_c3d4 => (false, false, false),
            0xd4c3_b2a1 => (true, false, false),
            0xa1b2_3c4d => (false, true, false),
            0x4d3c_b2a1 => (true, true, false),
            0xa1b2_cd34 => (false, false, true),
            0x34cd_b2a1 => (true, false, true),
            0x0a0d_0d0a => {
                self.format = CaptureFormat::Pcapng;
                self.state = State::Pcapng {
                    swap: false,
                    interfaces: Vec::new(),
                    base: 0,
                };
                // The section header block is read like any other block.
                return Ok(());
            }
            _ => {
                return Err(SourceError::NotCapture {
                    path: self.path.clone(),
                    magic: hex(magic),
                });
            }
        };
        if !self.fill(24)? {
            return Err(self.truncated("pcap file header", 24));
        }
        let h = &self.data()[self.start..self.start + 24];
        let snaplen = u32_at(&h[16..20], swap);
        let network = u32_at(&h[20..24], swap);
        // Low 16 bits are the link type; the top bits may carry FCS information.
        let link = LinkType((network & 0xffff) as u16);
        let max_caplen = (snaplen as usize).clamp(262_144, MAX_RECORD);
        self.format = CaptureFormat::Pcap {
            nanos,
            big_endian: (m == 0xd4c3_b2a1 || m == 0x4d3c_b2a1 || m == 0x34cd_b2a1)
                != cfg!(target_endian = "big"),
        };
        self.state = State::Pcap {
            swap,
            nanos,
            link,
            extended,
            max_caplen,
        };
        self.consume(24);
        Ok(())
    }

    /// The next frame, `Ok(None)` at a clean end of file.
    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>, SourceError> {
        match self.state {
            State::Pcap { .. } => self.next_pcap(),
            State::Pcapng { .. } => self.next_pcapng(),
        }
    }

    fn next_pcap(&mut self) -> Result<Option<Packet<'_>>, SourceError> {
        let State::Pcap {
            swap,
            nanos,
            link,
            extended,
            max_caplen,
        } = self.state
        else {
            unreachable!("next_pcap on a pcapng reader")
        };
        let hlen = if extended { 24 } else { 16 };
        if let Some(rec) = self.mapped_pcap_record(hlen, swap, max_caplen) {
            return self.mapped_pcap_packet(rec, hlen, nanos, link).map(Some);
        }
        if !self.fill(hlen)? {
            if self.available() == 0 {
                return self.clean_end();
            }
            return Err(self.truncated("pcap record header", hlen));
        }
        let h = &self.data()[self.start..self.start + hlen];
        if self.map.is_some() && h.iter().all(|&b| b == 0) && self.lost(hlen) {
            return Err(self.shrank());
        }
        let rec = PcapRecord {
            secs: u32_at(&h[0..4], swap),
            frac: u32_at(&h[4..8], swap),
            caplen: u32_at(&h[8..12], swap) as usize,
            wire_len: u32_at(&h[12..16], swap),
        };
        let caplen = rec.caplen;
        if caplen > max_caplen {
            return Err(self.damaged(format!(
                "record claims {caplen} captured bytes (more than the {max_caplen}-byte limit for this file)"
            )));
        }
        if !self.fill(hlen + caplen)? {
            return Err(self.truncated("pcap record", hlen + caplen));
        }
        Ok(Some(self.pcap_packet(rec, hlen, nanos, link)))
    }

    /// The common case of a mapped file, read in one step: the whole record is inside the
    /// mapping and its header is not zeros (zeros may be a page the file lost, which
    /// [`CaptureFile::next_pcap`]'s careful path checks). `None` sends the record down that
    /// path: a cut, a record over the limit, or the end.
    #[inline]
    fn mapped_pcap_record(&self, hlen: usize, swap: bool, max_caplen: usize) -> Option<PcapRecord> {
        let map = self.map.as_ref()?;
        let at = self.start;
        let h = map.bytes().get(at..at + hlen)?;
        let caplen = u32_at(&h[8..12], swap) as usize;
        if caplen > max_caplen || at + hlen + caplen > self.end || h.iter().all(|&b| b == 0) {
            return None;
        }
        Some(PcapRecord {
            secs: u32_at(&h[0..4], swap),
            frac: u32_at(&h[4..8], swap),
            caplen,
            wire_len: u32_at(&h[12..16], swap),
        })
    }

    /// The packet of a record [`CaptureFile::mapped_pcap_record`] found whole: one
    /// [`CaptureFile::mapped_step`] over it (as [`CaptureFile::fill`] would take), then
    /// [`CaptureFile::pcap_packet`].
    #[inline]
    fn mapped_pcap_packet(
        &mut self,
        rec: PcapRecord,
        hlen: usize,
        nanos: bool,
        link: LinkType,
    ) -> Result<Packet<'_>, SourceError> {
        if let Some(map) = self.map.as_ref() {
            self.mapped_step(map, self.start + hlen + rec.caplen)?;
        }
        Ok(self.pcap_packet(rec, hlen, nanos, link))
    }

    /// The packet of a pcap record whose `hlen`-byte header starts at `start` and whose
    /// bytes are all available; the reader moves past it.
    #[inline]
    fn pcap_packet(
        &mut self,
        rec: PcapRecord,
        hlen: usize,
        nanos: bool,
        link: LinkType,
    ) -> Packet<'_> {
        let data_start = self.start + hlen;
        let data_end = data_start + rec.caplen;
        let frac_ns = if nanos {
            i64::from(rec.frac)
        } else {
            i64::from(rec.frac) * 1000
        };
        self.consume(hlen + rec.caplen);
        self.stats.packets += 1;
        self.stats.captured_bytes += rec.caplen as u64;
        Packet {
            ts: Timestamp::from_secs_nanos(i64::from(rec.secs), frac_ns),
            link,
            data: &self.data()[data_start..data_end],
            wire_len: rec.wire_len.max(rec.caplen as u32),
            interface: 0,
            segments: 1,
        }
    }

    fn next_pcapng(&mut self) -> Result<Option<Packet<'_>>, SourceError> {
        loop {
            if !self.fill(12)? {
                if self.available() == 0 {
                    return self.clean_end();
                }
                return Err(self.truncated("pcapng block header", 12));
            }
            let block_start = self.start;
            let b = &self.data()[block_start..block_start + 12];
            let raw_type = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            if raw_type == 0x0a0d_0d0a {
                // Section header: the byte-order magic decides the endianness of the section.
                let bom = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
                let swap = match bom {
                    0x1a2b_3c4d => false,
                    0x4d3c_2b1a => true,
                    _ => {
                        return Err(self.damaged(format!(
                            "pcapng section header has byte-order magic {bom:08x}"
                        )));
                    }
                };
                let base = match &self.state {
                    State::Pcapng {
                        interfaces, base, ..
                    } => base.saturating_add(interfaces.len() as u32),
                    State::Pcap { .. } => 0,
                };
                self.state = State::Pcapng {
                    swap,
                    interfaces: Vec::new(),
                    base,
                };
            }
            let State::Pcapng { swap, .. } = self.state else {
                unreachable!("next_pcapng on a pcap reader")
            };
            let b = &self.data()[block_start..block_start + 12];
            let btype = u32_at(&b[0..4], swap);
            let total = u32_at(&b[4..8], swap) as usize;
            if total < 12 || !total.is_multiple_of(4) || total > MAX_RECORD {
                return Err(self.damaged(format!(
                    "pcapng block of type {btype:#x} has impossible length {total}"
                )));
            }
            if !self.fill(total)? {
                return Err(self.truncated("pcapng block", total));
            }
            let body_start = self.start + 8;
            let body_end = self.start + total - 4;
            let trailer = u32_at(&self.data()[body_end..body_end + 4], swap) as usize;
            if trailer != total {
                return Err(self.damaged(format!(
                    "pcapng block of type {btype:#x}: leading length {total} != trailing length {trailer}"
                )));
            }
            match btype {
                0x0a0d_0d0a => {
                    self.consume(total);
                }
                1 => {
                    let iface = parse_idb(&self.data()[body_start..body_end], swap);
                    let Some(iface) = iface else {
                        return Err(self.damaged("pcapng interface block is too short".into()));
                    };
                    if let State::Pcapng { interfaces, .. } = &self.state
                        && interfaces.len() >= MAX_PCAPNG_INTERFACES
                    {
                        return Err(self.damaged(
                            "pcapng section describes more than 65,536 interfaces (the limit; real captures describe a few): the rest of the file is not read"
                                .into(),
                        ));
                    }
                    if let State::Pcapng { interfaces, .. } = &mut self.state {
                        interfaces.push(iface);
                    }
                    self.consume(total);
                }
                6 | 2 | 3 => {
                    let body = &self.data()[body_start..body_end];
                    let (iface_id, ts_raw, caplen, wire_len, data_off) = match btype {
                        6 => {
                            if body.len() < 20 {
                                return Err(
                                    self.damaged("enhanced packet block is too short".into())
                                );
                            }
                            let hi = u64::from(u32_at(&body[4..8], swap));
                            let lo = u64::from(u32_at(&body[8..12], swap));
                            (
                                u32_at(&body[0..4], swap),
                                Some((hi << 32) | lo),
                                u32_at(&body[12..16], swap) as usize,
                                u32_at(&body[16..20], swap),
                                20,
                            )
                        }
                        2 => {
                            if body.len() < 20 {
                                return Err(self.damaged("packet block is too short".into()));
                            }
                            let hi = u64::from(u32_at(&body[4..8], swap));
                            let lo = u64::from(u32_at(&body[8..12], swap));
                            (
                                u32::from(u16_at(&body[0..2], swap)),
                                Some((hi << 32) | lo),
                                u32_at(&body[12..16], swap) as usize,
                                u32_at(&body[16..20], swap),
                                20,
                            )
                        }
                        _ => {
                            if body.len() < 4 {
                                return Err(self.damaged("simple packet block is too short".into()));
                            }
                            let wire = u32_at(&body[0..4], swap);
                            (0, None, (wire as usize).min(body.len() - 4), wire, 4)
                        }
                    };
                    let State::Pcapng {
                        interfaces, base, ..
                    } = &self.state
                    else {
                        unreachable!()
                    };
                    let link_number = base.saturating_add(iface_id);
                    let Some(iface) = interfaces.get(iface_id as usize).copied() else {
                        return Err(self.damaged(format!(
                            "packet refers to interface {iface_id}, but only {} interface(s) were described",
                            interfaces.len()
                        )));
                    };
                    let caplen = if btype == 3 && iface.snaplen != 0 {
                        caplen.min(iface.snaplen as usize)
                    } else {
                        caplen
                    };
                    if data_off + caplen > body.len() {
                        return Err(self.damaged(format!(
                            "packet claims {caplen} captured bytes but its block holds {}",
                            body.len().saturating_sub(data_off)
                        )));
                    }
                    let ts = ts_raw.map_or(Timestamp(0), |raw| iface_ts(&iface, raw));
                    let data_start = body_start + data_off;
                    self.consume(total);
                    self.stats.packets += 1;
                    self.stats.captured_bytes += caplen as u64;
                    return Ok(Some(Packet {
                        ts,
                        link: iface.link,
                        data: &self.data()[data_start..data_start + caplen],
                        wire_len: wire_len.max(caplen as u32),
                        interface: link_number,
                        segments: 1,
                    }));
                }
                _ => {
                    self.stats.skipped_blocks += 1;
                    self.consume(total);
                }
            }
        }
    }
}

fn iface_ts(iface: &Interface, raw: u64) -> Timestamp {
    let units = iface.units_per_sec.max(1);
    let secs = (raw / units) as i64;
    let frac = raw % units;
    let nanos = (u128::from(frac) * NANOS_PER_SEC as u128 / u128::from(units)) as i64;
    Timestamp::from_secs_nanos(secs.saturating_add(iface.offset_secs), nanos)
}

fn parse_idb(body: &[u8], swap: bool) -> Option<Interface> {
    if body.len() < 8 {
        return None;
    }
    let mut iface = Interface {
        link: LinkType(u16_at(&body[0..2], swap)),
        snaplen: u32_at(&body[4..8], swap),
        units_per_sec: 1_000_000,
        offset_secs: 0,
    };
    let mut opts = &body[8..];
    while opts.len() >= 4 {
        let code = u16_at(&opts[0..2], swap);
        let len = u16_at(&opts[2..4], swap) as usize;
        let padded = (len + 3) & !3;
        if code == 0 || 4 + len > opts.len() {
            break;
        }
        let val = &opts[4..4 + len];
        match (code, len) {
            (9, 1) => {
                let v = val[0];
                let exp = u32::from(v & 0x7f);
                iface.units_per_sec = if v & 0x80 == 0 {
                    10u64.checked_pow(exp).unwrap_or(1_000_000)
                } else {
                    1u64.checked_shl(exp).unwrap_or(1_000_000)
                };
            }
            (14, 8) => {
                let mut b = [0u8; 8];
                b.copy_from_slice(val);
                let v = u64::from_le_bytes(b);
                iface.offset_secs = (if swap { v.swap_bytes() } else { v }) as i64;
            }
            _ => {}
        }
        opts = &opts[(4 + padded).min(opts.len())..];
    }
    Some(iface)
}

/// Decompressed bytes produced in pieces of a fixed size whatever the caller asks for.
///
/// The inflater drops what it decoded in a call that then fails on corrupt input, so without
/// this, how much of a damaged `.gz` is read would depend on the sizes of the reads — and the
/// read-ahead thread reads in other sizes than the reader on its own. `BufReader::fill_buf`
/// always asks its inner reader for its whole (empty) buffer, so with every read going through
/// it both see the same bytes up to the damage and the same error after them.
struct Pieces<R>(io::BufReader<R>);

impl<R: Read> Pieces<R> {
    fn new(inner: R) -> Self {
        Pieces(io::BufReader::with_capacity(64 * 1024, inner))
    }
}

impl<R: Read> Read for Pieces<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let piece = self.0.fill_buf()?;
        let n = buf.len().min(piece.len());
        buf[..n].copy_from_slice(&piece[..n]);
        self.0.consume(n);
        Ok(n)
    }
}

fn read_up_to(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
