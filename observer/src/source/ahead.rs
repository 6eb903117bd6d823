//! Read-ahead: a second thread reads (and inflates) a capture file into chunks while the calling
//! thread analyzes the chunk before. The analysis sees the same bytes in the same order as when
//! it reads them itself, so the output does not depend on whether this thread is used.
//!
//! Chunks are recycled (at most [`DEPTH`] + 2 exist), so memory is bounded, and a chunk is handed
//! over whole: frames are still borrowed from it without a copy. A record that straddles two
//! chunks has its first part copied into the room reserved in front of the next chunk
//! ([`PREFIX`]).

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// Bytes read into one chunk.
pub(super) const CHUNK: usize = 1 << 20;
/// Room kept in front of each chunk for the unread tail of the one before.
pub(super) const PREFIX: usize = 256 << 10;
/// Chunks read ahead of the analysis.
const DEPTH: usize = 4;

/// What the reading thread hands over.
pub(super) enum Msg {
    /// A chunk: its bytes are `chunk[prefix..end]`.
    Data(Vec<u8>, usize),
    /// The stream ended.
    End,
    /// Reading failed; nothing follows.
    Failed(io::Error),
}

/// The calling thread's end.
pub(super) struct ReadAhead {
    rx: Option<Receiver<Msg>>,
    recycle: SyncSender<Vec<u8>>,
    thread: Option<JoinHandle<()>>,
    prefix: usize,
}

impl ReadAhead {
    /// Starts reading `inner` on a new thread, `chunk` bytes at a time into chunks with
    /// `prefix` bytes of room in front ([`CHUNK`] and [`PREFIX`] but in tests).
    pub(super) fn start(
        inner: Box<dyn Read + Send>,
        chunk: usize,
        prefix: usize,
    ) -> io::Result<ReadAhead> {
        let (tx, rx) = sync_channel(DEPTH);
        let (recycle, spare) = sync_channel(DEPTH + 2);
        let chunk = chunk.max(1);
        let thread = std::thread::Builder::new()
            .name("observer-read".into())
            .spawn(move || read_loop(inner, chunk, prefix, &tx, &spare))?;
        Ok(ReadAhead {
            rx: Some(rx),
            recycle,
            thread: Some(thread),
            prefix,
        })
    }

    /// The room in front of every chunk.
    pub(super) fn prefix(&self) -> usize {
        self.prefix
    }

    /// The next message (blocks until the reading thread has one).
    pub(super) fn next(&mut self) -> Msg {
        self.rx
            .as_ref()
            .and_then(|rx| rx.recv().ok())
            .unwrap_or_else(|| {
                Msg::Failed(io::Error::other("the reading thread stopped unexpectedly"))
            })
    }

    /// Gives a used chunk back for reuse (dropped if the thread has enough).
    pub(super) fn give_back(&mut self, chunk: Vec<u8>) {
        let _ = self.recycle.try_send(chunk);
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        // A thread blocked handing over a chunk sees the receiver gone and stops; one in the
        // middle of a read stops after it. Waiting for it means no reader outlives its file.
        drop(self.rx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_loop(
    mut inner: Box<dyn Read + Send>,
    size: usize,
    prefix: usize,
    tx: &SyncSender<Msg>,
    spare: &Receiver<Vec<u8>>,
) {
    loop {
        let mut chunk = spare.try_recv().unwrap_or_default();
        chunk.resize(prefix + size, 0);
        let mut end = prefix;
        let mut failed = None;
        let mut eof = false;
        while end < chunk.len() {
            match inner.read(&mut chunk[end..]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(k) => end += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if end > prefix && tx.send(Msg::Data(chunk, end)).is_err() {
            return;
        }
        if let Some(e) = failed {
            let _ = tx.send(Msg::Failed(e));
            return;
        }
        if eof {
            let _ = tx.send(Msg::End);
            return;
        }
    }
}
