//! A socket sink: NDJSON over TCP or a Unix stream socket, as Vector, Fluent Bit, Logstash and
//! rsyslog (`imtcp`/`imptcp`) consume it. The network is treated as unreliable, as the tool
//! preaches:
//!
//! * `write` never blocks the capture: it serialises the event and queues the line; a
//!   background thread does all network I/O;
//! * connect and write timeouts; reconnection with exponential backoff (100 ms doubling to
//!   10 s) and ±50 % jitter; a connection lost within 10 s of being made counts as a failed
//!   attempt (a collector that accepts and closes every connection is not hammered);
//! * before each batch the connection is checked for an orderly close by the peer (a
//!   collector restart), so lines are not written into a dead socket;
//! * after every reconnection the lines sent in the `replay_window` (10 s) before the failure
//!   are sent again (a TCP write that succeeded may still have died in the peer's buffer):
//!   delivery is at least once, and `event.id` lets the pipeline drop the duplicates;
//! * the queue is bounded (`queue` lines): when full, the oldest line is dropped and counted;
//! * with a spool directory the queue is a file on disk instead (bounded by `spool_bytes`;
//!   beyond it new lines are dropped and counted; the file, which also holds sent lines until
//!   the sent part reaches `spool_bytes` and is cut off, stays within about twice that), so a collector that is down for a long time
//!   loses nothing, and lines still unsent when the run ends are sent first by the next run
//!   that uses the same spool.
//!
//! `finish` waits up to `flush_timeout` for the queue to drain, then reports what is still
//! undelivered (the spool keeps it).

use super::{Counters, Sink, SinkError};
use serde_json::Value;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Where the socket sink connects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `host:port`.
    Tcp(String),
    /// A Unix stream socket path.
    Unix(PathBuf),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Tcp(a) => write!(f, "tcp:{a}"),
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Socket sink settings.
#[derive(Clone, Debug)]
pub struct SocketOptions {
    /// Where to send.
    pub endpoint: Endpoint,
    /// In-memory queue bound, lines.
    pub queue: usize,
    /// Spool directory (a disk-backed queue) instead of the in-memory one.
    pub spool: Option<PathBuf>,
    /// Spool bound, bytes.
    pub spool_bytes: u64,
    /// After a reconnection, lines sent within this window before the failure are sent again
    /// (at most `replay_lines` of them).
    pub replay_window: Duration,
    /// Bound on the lines kept for replay.
    pub replay_lines: usize,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Write timeout.
    pub write_timeout: Duration,
    /// How long `finish` waits for the queue to drain.
    pub flush_timeout: Duration,
}

impl SocketOptions {
    /// Defaults for `endpoint`.
    pub fn new(endpoint: Endpoint) -> Self {
        SocketOptions {
            endpoint,
            queue: 100_000,
            spool: None,
            spool_bytes: 1 << 30,
            replay_window: Duration::from_secs(10),
            replay_lines: 10_000,
            connect_timeout: Duration::from_secs(2),
            write_timeout: Duration::from_secs(5),
            flush_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Default)]
struct Stats {
    queued: AtomicU64,
    sent: AtomicU64,
    dropped: AtomicU64,
    replayed: AtomicU64,
    connects: AtomicU64,
    failures: AtomicU64,
    undelivered: AtomicU64,
}

/// The queue between the producer and the sender thread.
enum Queue {
    /// Lines with their sequence numbers (a line dropped while a batch is in flight must not
    /// make the commit remove an unsent one).
    Memory(VecDeque<(u64, String)>),
    /// Lines appended to `file`; the sender reads from `read_at`.
    Spool {
        file: File,
        size: u64,
        read_at: u64,
        /// Complete lines between `read_at` and `size`.
        lines: u64,
    },
}

struct State {
    queue: Queue,
    closing: bool,
    next_seq: u64,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    stats: Stats,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// NDJSON to a TCP or Unix socket, with a background sender (see the module doc).
pub struct SocketSink {
    opts: SocketOptions,
    shared: Arc<Shared>,
    sender: Option<JoinHandle<()>>,
    spool_path: Option<PathBuf>,
}

/// Newlines in `path` from byte `from` on.
fn count_lines(path: &Path, from: u64) -> std::io::Result<u64> {
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(from))?;
    let mut n = 0;
    let mut buf = [0u8; 65536];
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            return Ok(n);
        }
        n += buf[..k].iter().filter(|&&b| b == b'\n').count() as u64;
    }
}

/// The length of `path` up to and including its last newline.
fn complete_lines_len(path: &Path) -> std::io::Result<u64> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let mut pos = len;
    let mut buf = [0u8; 4096];
    while pos > 0 {
        let n = (pos as usize).min(buf.len());
        pos -= n as u64;
        f.seek(SeekFrom::Start(pos))?;
        f.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            return Ok(pos + i as u64 + 1);
        }
    }
    Ok(0)
}

fn spool_files(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("queue.ndjson"), dir.join("queue.offset"))
}

impl SocketSink {
    /// Starts the sender thread. Fails only when the spool directory cannot be used (a
    /// collector that is down is not an error: lines wait for it).
    pub fn start(opts: SocketOptions) -> Result<Self, SinkError> {
        let (queue, spool_path) = match &opts.spool {
            None => (Queue::Memory(VecDeque::new()), None),
            Some(dir) => {
                let io = |error| SinkError::Io {
                    target: format!("spool {}", dir.display()),
                    error,
                };
                std::fs::create_dir_all(dir).map_err(io)?;
                let (qp, op) = spool_files(dir);
                let file = OpenOptions::new()
                    .create(true)
                    .read(true)
                    .append(true)
                    .open(&qp)
                    .map_err(io)?;
                // A line cut short by a crash (or a full disk) would glue itself to the next
                // one: the spool ends at its last complete line.
                let size = complete_lines_len(&qp).map_err(io)?;
                file.set_len(size).map_err(io)?;
                let read_at = std::fs::read_to_string(&op)
                    .ok()
                    .and_then(|t| t.trim().parse::<u64>().ok())
                    .unwrap_or(0)
                    .min(size);
                let lines = count_lines(&qp, read_at).map_err(io)?;
                (
                    Queue::Spool {
                        file,
                        size,
                        read_at,
                        lines,
                    },
                    Some(qp),
                )
            }
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue,
                closing: false,
                next_seq: 0,
            }),
            wake: Condvar::new(),
            stats: Stats::default(),
        });
        let s2 = Arc::clone(&shared);
        let o2 = opts.clone();
        let sp = spool_path.clone();
        let sender = std::thread::Builder::new()
            .name("observer-socket-sink".into())
            .spawn(move || run_sender(&o2, &s2, sp.as_deref()))
            .map_err(|error| SinkError::Io {
                target: opts.endpoint.to_string(),
                error,
            })?;
        Ok(SocketSink {
            opts,
            shared,
            sender: Some(sender),
            spool_path,
        })
    }

    /// Lines queued and not yet sent.
    pub fn pending(&self) -> u64 {
        pending(&self.shared.lock())
    }
}

fn pending(st: &State) -> u64 {
    match &st.queue {
        Queue::Memory(q) => q.len() as u64,
        Queue::Spool { lines, .. } => *lines,
    }
}

impl Sink for SocketSink {
    fn write(&mut self, event: &Value) -> Result<(), SinkError> {
        let mut line = event.to_string();
        line.push('\n');
        let stats = &self.shared.stats;
        {
            let mut st = self.shared.lock();
            st.next_seq += 1;
            let seq = st.next_seq;
            match &mut st.queue {
                Queue::Memory(q) => {
                    if q.len() >= self.opts.queue {
                        q.pop_front();
                        stats.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    q.push_back((seq, line));
                }
                Queue::Spool {
                    file,
                    size,
                    read_at,
                    lines,
                } => {
                    // The bound is on what is still to send, not on the file's length.
                    if *size - *read_at + line.len() as u64 > self.opts.spool_bytes {
                        stats.dropped.fetch_add(1, Ordering::Relaxed);
                        return Ok(());
                    }
                    if let Err(e) = file.write_all(line.as_bytes()) {
                        // A full disk: cut the partial line off, count the event as dropped,
                        // keep capturing.
                        let _ = file.set_len(*size);
                        stats.dropped.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            spool = %self.spool_path.as_deref().unwrap_or(Path::new("?")).display(),
                            error = %e,
                            "cannot append to the spool; event dropped"
                        );
                        return Ok(());
                    }
                    *size += line.len() as u64;
                    *lines += 1;
                }
            }
        }
        stats.queued.fetch_add(1, Ordering::Relaxed);
        self.shared.wake.notify_one();
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        let deadline = Instant::now() + self.opts.flush_timeout;
        {
            let mut st = self.shared.lock();
            while pending(&st) > 0 && Instant::now() < deadline {
                self.shared.wake.notify_one();
                st = self
                    .shared
                    .wake
                    .wait_timeout(st, Duration::from_millis(50))
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
            let left = pending(&st);
            self.shared.stats.undelivered.store(left, Ordering::Relaxed);
            st.closing = true;
        }
        self.shared.wake.notify_all();
        if let Some(h) = self.sender.take() {
            let _ = h.join();
        }
        let st = self.shared.lock();
        if pending(&st) > 0 {
            tracing::warn!(
                output = %self.opts.endpoint,
                undelivered = self.shared.stats.undelivered.load(Ordering::Relaxed),
                spooled = matches!(st.queue, Queue::Spool { .. }),
                "output not drained within the flush timeout"
            );
        }
        Ok(())
    }

    fn counters(&self, prefix: &str, out: &mut Counters) {
        let s = &self.shared.stats;
        for (k, v) in [
            ("queued", &s.queued),
            ("sent", &s.sent),
            ("dropped", &s.dropped),
            ("replayed", &s.replayed),
            ("connects", &s.connects),
            ("failures", &s.failures),
        ] {
            out.push((format!("{prefix}.{k}"), v.load(Ordering::Relaxed)));
        }
        out.push((format!("{prefix}.pending"), self.pending()));
    }
}

impl Drop for SocketSink {
    fn drop(&mut self) {
        if self.sender.is_some() {
            self.shared.lock().closing = true;
            self.shared.wake.notify_all();
            if let Some(h) = self.sender.take() {
                let _ = h.join();
            }
        }
    }
}

enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    fn connect(o: &SocketOptions) -> std::io::Result<Conn> {
        let c = match &o.endpoint {
            Endpoint::Tcp(a) => {
                let addrs: Vec<SocketAddr> = a.to_socket_addrs()?.collect();
                let mut last = std::io::Error::other(format!("{a}: no address"));
                let mut found = None;
                for addr in addrs {
                    match TcpStream::connect_timeout(&addr, o.connect_timeout) {
                        Ok(s) => {
                            found = Some(s);
                            break;
                        }
                        Err(e) => last = e,
                    }
                }
                let s = found.ok_or(last)?;
                s.set_nodelay(true)?;
                s.set_write_timeout(Some(o.write_timeout))?;
                Conn::Tcp(s)
            }
            Endpoint::Unix(p) => {
                let s = UnixStream::connect(p)?;
                s.set_write_timeout(Some(o.write_timeout))?;
                Conn::Unix(s)
            }
        };
        Ok(c)
    }

    /// Whether the peer has closed its side (a collector that restarted): a non-blocking
    /// peek that returns end of stream.
    fn peer_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        let r = match self {
            Conn::Tcp(s) => s
                .set_nonblocking(true)
                .and_then(|()| s.peek(&mut b))
                .and_then(|n| s.set_nonblocking(false).map(|()| n)),
            Conn::Unix(s) => {
                // No peek on Unix streams in std: a non-blocking read of nothing-to-read.
                let r = s.set_nonblocking(true).and_then(|()| s.read(&mut b));
                let _ = s.set_nonblocking(false);
                r
            }
        };
        match r {
            Ok(0) => true,
            Ok(_) => false, // the collector said something; ignore it
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if let Conn::Tcp(s) = self {
                    let _ = s.set_nonblocking(false);
                }
                false
            }
            Err(_) => true,
        }
    }

    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Tcp(s) => s.write_all(b),
            Conn::Unix(s) => s.write_all(b),
        }
    }
}

/// Takes up to `max` lines to send; `None` when closing with nothing left.
fn next_batch(
    o: &SocketOptions,
    shared: &Shared,
    reader: &mut Option<BufReader<File>>,
    max: usize,
) -> Option<Vec<(u64, String)>> {
    let mut st = shared.lock();
    loop {
        if pending(&st) > 0 {
            break;
        }
        if st.closing {
            return None;
        }
        st = shared
            .wake
            .wait_timeout(st, Duration::from_millis(200))
            .map(|(g, _)| g)
            .unwrap_or_else(|p| p.into_inner().0);
    }
    let _ = o;
    let mut batch = Vec::new();
    match &mut st.queue {
        Queue::Memory(q) => {
            // Peeked, not popped: removed only once written.
            batch.extend(q.iter().take(max).map(|(seq, l)| (*seq, l.clone())));
        }
        Queue::Spool { size, read_at, .. } => {
            let (size, at) = (*size, *read_at);
            drop(st);
            let r = reader.as_mut()?;
            if r.seek(SeekFrom::Start(at)).is_err() {
                return Some(batch);
            }
            let mut read = 0u64;
            while batch.len() < max && at + read < size {
                let mut line = String::new();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(n) if line.ends_with('\n') => {
                        read += n as u64;
                        batch.push((0, line));
                    }
                    Ok(_) => break, // a line still being written
                }
            }
        }
    }
    Some(batch)
}

/// The sent lines leave the queue.
fn commit(shared: &Shared, lines: &[(u64, String)], offset_path: Option<&Path>) {
    let mut st = shared.lock();
    match &mut st.queue {
        Queue::Memory(q) => {
            // By sequence number: lines dropped meanwhile are already gone.
            let last = lines.last().map_or(0, |(seq, _)| *seq);
            while q.front().is_some_and(|(seq, _)| *seq <= last) {
                q.pop_front();
            }
        }
        Queue::Spool {
            file,
            size,
            read_at,
            lines: pending_lines,
        } => {
            *read_at += lines.iter().map(|(_, l)| l.len() as u64).sum::<u64>();
            *pending_lines = pending_lines.saturating_sub(lines.len() as u64);
            if *read_at >= *size {
                // Everything sent: start the spool afresh so it does not grow forever.
                if file.set_len(0).is_ok() {
                    *size = 0;
                    *read_at = 0;
                }
            }
            if let Some(p) = offset_path {
                let _ = std::fs::write(p, read_at.to_string());
            }
        }
    }
    drop(st);
    shared
        .stats
        .sent
        .fetch_add(lines.len() as u64, Ordering::Relaxed);
    shared.wake.notify_all();
}

fn run_sender(o: &SocketOptions, shared: &Shared, spool: Option<&Path>) {
    let offset_path = spool.and_then(|q| q.parent()).map(|d| spool_files(d).1);
    let mut reader = spool.and_then(|p| File::open(p).ok()).map(BufReader::new);
    let mut conn: Option<Conn> = None;
    let mut backoff = Duration::from_millis(100);
    let mut recent: VecDeque<(Instant, String)> = VecDeque::new();
    let mut replay_due = false;
    let mut closing_since: Option<Instant> = None;
    let mut connected_at = Instant::now();
    loop {
        if shared.lock().closing {
            // `finish` already waited for the drain; one last short attempt at most.
            let since = *closing_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_millis(500) || pending(&shared.lock()) == 0 {
                return;
            }
        }
        if conn.is_none() {
            match Conn::connect(o) {
                Ok(c) => {
                    shared.stats.connects.fetch_add(1, Ordering::Relaxed);
                    if shared.stats.connects.load(Ordering::Relaxed) > 1 {
                        tracing::info!(output = %o.endpoint, "output reconnected");
                    }
                    conn = Some(c);
                    connected_at = Instant::now();
                }
                Err(e) => {
                    shared.stats.failures.fetch_add(1, Ordering::Relaxed);
                    if shared.lock().closing {
                        // `finish` already waited for the collector as long as it may: one
                        // attempt after that, not one per loop until the grace period ends.
                        return;
                    }
                    tracing::warn!(output = %o.endpoint, error = %e, retry_in_ms = backoff.as_millis() as u64, "output unreachable");
                    back_off(shared, &mut backoff);
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("connected above");
        if replay_due {
            let again: Vec<String> = recent
                .iter()
                .filter(|(t, _)| t.elapsed() <= o.replay_window)
                .map(|(_, l)| l.clone())
                .collect();
            let ok = again.iter().all(|l| c.write_all(l.as_bytes()).is_ok());
            if !ok {
                conn = None;
                shared.stats.failures.fetch_add(1, Ordering::Relaxed);
                connection_lost(shared, connected_at, &mut backoff);
                continue;
            }
            shared
                .stats
                .replayed
                .fetch_add(again.len() as u64, Ordering::Relaxed);
            replay_due = false;
        }
        let Some(batch) = next_batch(o, shared, &mut reader, 512) else {
            return;
        };
        if batch.is_empty() {
            // Only a partial line is pending (being written): wait for more.
            let st = shared.lock();
            let _ = shared.wake.wait_timeout(st, Duration::from_millis(50));
            continue;
        }
        if c.peer_closed() {
            tracing::warn!(output = %o.endpoint, "output closed by the collector; reconnecting");
            conn = None;
            replay_due = !recent.is_empty();
            shared.stats.failures.fetch_add(1, Ordering::Relaxed);
            connection_lost(shared, connected_at, &mut backoff);
            continue;
        }
        let mut buf = Vec::with_capacity(batch.iter().map(|(_, l)| l.len()).sum());
        for (_, l) in &batch {
            buf.extend_from_slice(l.as_bytes());
        }
        match c.write_all(&buf) {
            Ok(()) => {
                commit(shared, &batch, offset_path.as_deref());
                if let (Some(q), Some(op)) = (spool, offset_path.as_deref()) {
                    compact(o, shared, q, op, &mut reader);
                }
                let now = Instant::now();
                while recent.front().is_some_and(|(t, _)| {
                    now.duration_since(*t) > o.replay_window || recent.len() >= o.replay_lines
                }) {
                    recent.pop_front();
                }
                if o.replay_lines > 0 {
                    for (_, l) in batch.into_iter().rev().take(o.replay_lines).rev() {
                        recent.push_back((now, l));
                    }
                }
            }
            Err(e) => {
                tracing::warn!(output = %o.endpoint, error = %e, "writing to the output failed; reconnecting");
                shared.stats.failures.fetch_add(1, Ordering::Relaxed);
                conn = None;
                replay_due = !recent.is_empty();
                connection_lost(shared, connected_at, &mut backoff);
            }
        }
    }
}

/// A spool that never empties (the collector keeps up with only part of the traffic) is only
/// truncated when everything in it is sent: once the sent part reaches `spool_bytes`, the
/// unsent lines are moved to a new file that replaces it, so the file stays within about
/// twice `spool_bytes`. The copy is made without the lock (the capture keeps appending);
/// only what was appended meanwhile is copied under it. The offset is set to 0 before the
/// new file takes the old one's place: a crash in between sends lines again (at least once),
/// never loses them.
fn compact(
    o: &SocketOptions,
    shared: &Shared,
    queue: &Path,
    offset_path: &Path,
    reader: &mut Option<BufReader<File>>,
) {
    let (from, to) = match &shared.lock().queue {
        Queue::Spool { size, read_at, .. } if *read_at >= o.spool_bytes.max(1) => (*read_at, *size),
        _ => return,
    };
    let mut tmp_name = queue.as_os_str().to_owned();
    tmp_name.push(".compact");
    let tmp = PathBuf::from(tmp_name);
    let copy = |from: u64, len: u64, out: &mut File| -> std::io::Result<()> {
        let mut src = File::open(queue)?;
        src.seek(SeekFrom::Start(from))?;
        let copied = std::io::copy(&mut src.take(len), out)?;
        if copied == len {
            Ok(())
        } else {
            Err(std::io::Error::other("the spool is shorter than expected"))
        }
    };
    let result = (|| -> std::io::Result<()> {
        // In append mode, as the spool is opened: writes go to the end after a truncation too.
        File::create(&tmp)?;
        let mut out = OpenOptions::new().read(true).append(true).open(&tmp)?;
        copy(from, to - from, &mut out)?;
        let mut st = shared.lock();
        let Queue::Spool {
            file,
            size,
            read_at,
            ..
        } = &mut st.queue
        else {
            return Ok(());
        };
        // Only this thread moves `read_at`; the capture may have appended since.
        copy(to, *size - to, &mut out)?;
        std::fs::write(offset_path, "0")?;
        std::fs::rename(&tmp, queue)?;
        *size -= *read_at;
        *read_at = 0;
        *file = out;
        *reader = File::open(queue).ok().map(BufReader::new);
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        tracing::warn!(spool = %queue.display(), error = %e, "cannot compact the spool");
    }
}

/// Waits `backoff` (±50 % jitter) unless the run is closing, then doubles it (10 s at most).
fn back_off(shared: &Shared, backoff: &mut Duration) {
    let jitter = 0.5 + fastrand::f64();
    let until = Instant::now() + backoff.mul_f64(jitter);
    // New events wake the condvar too: sleep out the whole backoff unless the run is closing.
    let mut st = shared.lock();
    while !st.closing && Instant::now() < until {
        let left = until.saturating_duration_since(Instant::now());
        st = shared
            .wake
            .wait_timeout(st, left)
            .map(|(g, _)| g)
            .unwrap_or_else(|p| p.into_inner().0);
    }
    drop(st);
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
}

/// The longest wait between attempts, and how long a connection must have lasted to count as
/// working again.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// A connection made at `connected_at` was lost (closed by the peer, a write failed). One
/// that had lasted resets the backoff and is made again at once; one lost soon after it was
/// made (a collector that accepts and closes every connection) waits out the backoff as a
/// failed connect does, instead of reconnecting and replaying as fast as it can.
fn connection_lost(shared: &Shared, connected_at: Instant, backoff: &mut Duration) {
    if connected_at.elapsed() >= MAX_BACKOFF {
        *backoff = Duration::from_millis(100);
    } else {
        back_off(shared, backoff);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::net::TcpListener;

    /// Every line a collector receives until the sender closes (or 5 s of silence).
    fn read_lines(c: TcpStream) -> Vec<String> {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = Vec::new();
        let mut r = BufReader::new(c);
        loop {
            let mut l = String::new();
            match r.read_line(&mut l) {
                Ok(0) | Err(_) => return got,
                Ok(_) => got.push(l),
            }
        }
    }

    /// A collector that closes the first connection after 10 lines (a restart), then reads
    /// everything on the second: with the in-memory queue, every event arrives at least once.
    #[test]
    fn memory_queue_delivers_everything_across_a_collector_restart() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let collector = std::thread::spawn(move || {
            let mut got = Vec::new();
            let (first, _) = listener.accept().unwrap();
            let mut r = BufReader::new(first);
            for _ in 0..10 {
                let mut l = String::new();
                r.read_line(&mut l).unwrap();
                got.push(l);
            }
            drop(r); // the restart: the connection closes
            let (second, _) = listener.accept().unwrap();
            got.extend(read_lines(second));
            got
        });
        let mut o = SocketOptions::new(Endpoint::Tcp(addr));
        o.flush_timeout = Duration::from_secs(10);
        let mut s = SocketSink::start(o).unwrap();
        for i in 0..200 {
            s.write(&json!({"event": {"id": format!("t-{i}")}}))
                .unwrap();
            if i % 20 == 0 {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        s.finish().unwrap();
        drop(s);
        let got = collector.join().unwrap();
        let ids: std::collections::BTreeSet<String> = got
            .iter()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["event"]["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        for i in 0..200 {
            assert!(
                ids.contains(&format!("t-{i}")),
                "t-{i} lost ({} distinct of {} lines)",
                ids.len(),
                got.len()
            );
        }
    }

    /// Regression (review): a spool ending in a line cut short by a crash does not glue it to
    /// the next event, and the sender does not spin on it.
    #[test]
    fn a_cut_spool_line_is_dropped_at_start() {
        let dir = std::env::temp_dir().join(format!("observer-spool-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("queue.ndjson"), b"{\"a\":1}\n{\"b\":").unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let collector = std::thread::spawn(move || {
            let (c, _) = listener.accept().unwrap();
            read_lines(c)
        });
        let mut o = SocketOptions::new(Endpoint::Tcp(addr));
        o.spool = Some(dir.clone());
        let mut s = SocketSink::start(o).unwrap();
        s.write(&json!({"new": 1})).unwrap();
        s.finish().unwrap();
        drop(s);
        let got = collector.join().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            got,
            vec!["{\"a\":1}\n".to_string(), "{\"new\":1}\n".to_string()]
        );
    }
}
