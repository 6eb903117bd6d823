//! Frames handed from a reading thread to the analysing one, for a capture read in place
//! (mapped), with `--threads 2`: the reading thread walks the records and decodes each frame
//! (the first touch of each page of the file and of each frame's headers), and hands out
//! batches of where each frame's bytes lie in the mapping with what they decode to; the
//! analysing thread takes the flows, the TCP state and the analyzers from there, reading the
//! bytes in place. Measured on this project's 2-core machine (`cargo xtask bench`, real-program
//! capture, four runs): 1.01–1.15× one thread when the file sits in the page cache in 4 KiB
//! pages (as written by a capturing program), 0.88–0.95× when it was read back from disk in
//! large folios (walking the records is then cheap, and handing frames from one core to the
//! other costs more than it saves).
//!
//! The frames, their order and the error that ends the input are the reader's own, so the
//! analysis sees exactly what it sees when it reads the file itself, and the output is the same
//! byte for byte. Memory is bounded: at most [`DEPTH`] + 2 batches exist, each of at most
//! [`BATCH`] frames, and pages of the file are given back only behind the last batch the
//! analysis has finished with.
//!
//! A frame that does not lie in the mapping (the file grew while being read, and its end is
//! read with `read(2)`) is copied into its batch, undecoded; a batch holding [`ARENA_MAX`]
//! bytes of such copies is handed out early. A file cut by another program while it is read
//! ends where it was cut, as when it is read on one thread: a record the reader handed out
//! before the cut that starts past the new end is not analyzed, the one the cut went through
//! is (with zeros for its lost bytes), and the input ends with the same error at the same
//! offset, counting the frames analyzed (not those read ahead). Not the same: a page of the
//! file the storage fails to deliver (an I/O error) ends the input on one thread at the next
//! record; here the analysis goes on through the frames already handed out, with zeros for
//! that page's bytes, until the reader reaches its next record.

use super::mapped::Mapped;
use super::{CaptureFile, LinkType, Packet, SourceError};
use crate::decode::{self, Frame};
use crate::time::Timestamp;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// Frames in a batch.
const BATCH: usize = 512;
/// Batches handed out ahead of the analysis.
const DEPTH: usize = 4;
/// Bytes of copied frames in a batch before it is handed out.
const ARENA_MAX: usize = 4 << 20;
/// A progress point every this many frames (`frames & PROGRESS_MASK == 0`).
const PROGRESS_MASK: u64 = 0xffff;

/// Where one frame's bytes lie, and what else its record said.
#[derive(Clone, Copy, Debug)]
struct Rec<'m> {
    /// The frame decoded by the reader, for a frame in the mapping (the others lie in the
    /// batch's copies, undecoded).
    frame: Option<Frame<'m>>,
    ts: Timestamp,
    link: LinkType,
    wire_len: u32,
    interface: u32,
    segments: u16,
    /// Stream offset of the frame's record (its header).
    record_at: u64,
    start: usize,
    len: usize,
}

/// A position to report progress at: after frame `after` of the batch, the reader had read
/// `frames` frames and was at stream offset `offset`.
#[derive(Clone, Copy, Debug)]
struct ProgressPoint {
    after: usize,
    offset: u64,
    frames: u64,
}

/// What the analysing thread is handed, in the order the reader read it.
#[derive(Debug)]
pub enum Item<'a, 'p> {
    /// A frame, and what it decodes to when the reader decoded it.
    Frame(&'a Packet<'p>, Option<&'a Frame<'p>>),
    /// After every 65,536th frame: the frames read so far, and the stream offset after them.
    Progress {
        /// Frames read.
        frames: u64,
        /// Stream offset.
        offset: u64,
    },
}

/// Frames handed over together.
#[derive(Debug, Default)]
struct Batch<'m> {
    recs: Vec<Rec<'m>>,
    copies: Vec<u8>,
    progress: Vec<ProgressPoint>,
    /// The mapping's offset after the batch's last mapped frame.
    map_end: usize,
    /// Set on the last batch of frames: how the reading ended (`Ok` at a clean end).
    end: Option<Result<(), SourceError>>,
    /// Set on the batch after it, which has no frames: the stream offset the reading ended at.
    end_offset: Option<u64>,
}

/// How reading an input ended.
#[derive(Debug)]
pub struct Ended {
    /// `Ok` at a clean end, else the error that ended it (after the frames before it).
    pub result: Result<(), SourceError>,
    /// Frames handed to the analysis.
    pub frames: u64,
    /// Stream offset where the reading ended.
    pub offset: u64,
}

/// Reads `file` and calls `each` for every frame in order, and for a progress point after
/// every 65,536th: on a second thread when `second_thread` is set and the file is mapped
/// (and a thread can be started), else on this one. Returns how the reading ended, the same
/// either way, or the first error `each` returned (the reading then stops).
pub fn read_frames<E>(
    file: &mut CaptureFile,
    second_thread: bool,
    mut each: impl FnMut(Item<'_, '_>) -> Result<(), E>,
) -> Result<Ended, E> {
    let consumed = Arc::new(AtomicUsize::new(0));
    let map = match second_thread {
        true => file.share_map(Arc::clone(&consumed)),
        false => None,
    };
    let Some(map) = map else {
        return read_here(file, each);
    };
    let path = file.path().to_path_buf();
    let sized = file.mapped_file();
    std::thread::scope(|s| {
        let (tx, rx) = sync_channel::<Batch<'_>>(DEPTH);
        let (give_back, spare) = sync_channel::<Batch<'_>>(DEPTH + 2);
        // The file goes to the thread once it runs: if it cannot be started, it is read here.
        let (give_file, take_file) = sync_channel::<&mut CaptureFile>(1);
        let mapping: &Mapped = &map;
        let reader = std::thread::Builder::new()
            .name("observer-read".into())
            .spawn_scoped(s, move || {
                if let Ok(file) = take_file.recv() {
                    read_loop(file, mapping, &tx, &spare);
                    // What the reading ended at, once every frame was handed out.
                    let _ = tx.send(Batch {
                        end_offset: Some(file.offset()),
                        ..Batch::default()
                    });
                }
            });
        let reader = match reader {
            Ok(r) => r,
            Err(_) => {
                // Read here, giving pages back behind this thread again.
                file.unshare_map();
                return read_here(file, each);
            }
        };
        let _ = give_file.send(file);
        let result = analyse(rx, give_back, &map, sized, &consumed, path, &mut each);
        // The channels are gone, so the reader has stopped or stops at its next batch: wait
        // for its thread to end, thread-local destructors and all, so that nothing of it
        // outlives this call (the scope alone waits only for its closure). A panic there is
        // passed on, as the scope would.
        if let Err(panic) = reader.join() {
            std::panic::resume_unwind(panic);
        }
        result
    })
}

/// The analysing side of [`read_frames`]: takes the reader's batches from `rx` and calls
/// `each` for their frames, in order, until the reading ends; batches go back through
/// `give_back` to be filled again.
fn analyse<'m, E>(
    rx: Receiver<Batch<'m>>,
    give_back: SyncSender<Batch<'m>>,
    map: &'m Mapped,
    sized: Option<std::fs::File>,
    consumed: &AtomicUsize,
    path: std::path::PathBuf,
    each: &mut impl FnMut(Item<'_, '_>) -> Result<(), E>,
) -> Result<Ended, E> {
    let shared = map.bytes();
    let mapped_len = shared.len() as u64;
    // Another program may have cut the file after the reader handed frames out: what lies
    // past its new end reads as zeros (see `super::mapped`) and is not analyzed. Its size
    // is asked once a batch, and again after a fault on the mapping (a page past the end)
    // or at a record header of zeros (the last page reads zeros past the end without a
    // fault). As on one thread, a record that starts before the new end is analyzed (the
    // one the cut went through, with zeros for its lost bytes), and the input ends at the
    // first record past it.
    let size_now = || {
        sized
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map(|m| m.len())
            .filter(|&n| n < mapped_len)
    };
    let mut frames = 0u64;
    let mut ended = None;
    loop {
        let Ok(mut batch) = rx.recv() else {
            // Only a panic ends the reading thread without its last batches; `read_frames`
            // passes it on once the thread has ended.
            let source = std::io::Error::other("the reading thread stopped unexpectedly");
            return Ok(Ended {
                result: Err(SourceError::Io { path, source }),
                frames,
                offset: 0,
            });
        };
        if let Some(offset) = batch.end_offset {
            let result = ended.take().unwrap_or(Ok(()));
            return Ok(Ended {
                result,
                frames,
                offset,
            });
        }
        let mut cut = size_now();
        let mut asked_after_fault = false;
        let mut points = batch.progress.iter().peekable();
        for (i, r) in batch.recs.iter().enumerate() {
            let mapped = r.frame.is_some();
            if mapped && cut.is_none() {
                let header = &shared[r.record_at as usize..r.start];
                if (!asked_after_fault && map.shrank()) || header.iter().all(|&b| b == 0) {
                    cut = size_now();
                    asked_after_fault = map.shrank();
                }
            }
            if let Some(now) = cut.filter(|&now| mapped && r.record_at >= now) {
                return Ok(Ended {
                    result: Err(SourceError::Damaged {
                        path,
                        offset: r.record_at,
                        reason: super::capture_file::shrank_reason(Some(now), mapped_len),
                    }),
                    frames,
                    offset: r.record_at,
                });
            }
            let data = if mapped {
                &shared[r.start..r.start + r.len]
            } else {
                &batch.copies[r.start..r.start + r.len]
            };
            let pkt = Packet {
                ts: r.ts,
                link: r.link,
                data,
                wire_len: r.wire_len,
                interface: r.interface,
                segments: r.segments,
            };
            each(Item::Frame(&pkt, r.frame.as_ref()))?;
            frames += 1;
            if let Some(p) = points.next_if(|p| p.after == i) {
                each(Item::Progress {
                    frames: p.frames,
                    offset: p.offset,
                })?;
            }
        }
        consumed.store(batch.map_end, Ordering::Release);
        if let Some(end) = batch.end.take() {
            // The reader's offset follows in a batch of its own.
            ended = Some(end);
            continue;
        }
        let _ = give_back.try_send(batch);
    }
}

/// [`read_frames`] on this thread.
fn read_here<E>(
    file: &mut CaptureFile,
    mut each: impl FnMut(Item<'_, '_>) -> Result<(), E>,
) -> Result<Ended, E> {
    let result = loop {
        match file.next_packet() {
            Ok(Some(pkt)) => {
                each(Item::Frame(&pkt, None))?;
                let frames = file.stats().packets;
                if frames & PROGRESS_MASK == 0 {
                    each(Item::Progress {
                        frames,
                        offset: file.offset(),
                    })?;
                }
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    Ok(Ended {
        result,
        frames: file.stats().packets,
        offset: file.offset(),
    })
}

/// The reading thread: batches of frames until the file ends, the analysis stops taking them,
/// or reading fails.
fn read_loop<'m>(
    file: &mut CaptureFile,
    map: &'m Mapped,
    tx: &SyncSender<Batch<'m>>,
    spare: &Receiver<Batch<'m>>,
) {
    let bytes = map.bytes();
    let base = bytes.as_ptr() as usize;
    let len = bytes.len();
    let mut map_end = 0;
    loop {
        let mut batch = spare.try_recv().unwrap_or_default();
        batch.recs.clear();
        batch.copies.clear();
        batch.progress.clear();
        batch.end = None;
        while batch.recs.len() < BATCH && batch.copies.len() < ARENA_MAX {
            let record_at = file.offset();
            let pkt = match file.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => {
                    batch.end = Some(Ok(()));
                    break;
                }
                Err(e) => {
                    batch.end = Some(Err(e));
                    break;
                }
            };
            let at = (pkt.data.as_ptr() as usize).wrapping_sub(base);
            let mapped = at <= len && pkt.data.len() <= len - at;
            let (start, frame) = if mapped {
                map_end = at + pkt.data.len();
                let data = &bytes[at..at + pkt.data.len()];
                (at, Some(decode::decode(&Packet { data, ..pkt })))
            } else {
                batch.copies.extend_from_slice(pkt.data);
                (batch.copies.len() - pkt.data.len(), None)
            };
            batch.recs.push(Rec {
                frame,
                ts: pkt.ts,
                link: pkt.link,
                wire_len: pkt.wire_len,
                interface: pkt.interface,
                segments: pkt.segments,
                record_at,
                start,
                len: pkt.data.len(),
            });
            let frames = file.stats().packets;
            if frames & PROGRESS_MASK == 0 {
                batch.progress.push(ProgressPoint {
                    after: batch.recs.len() - 1,
                    offset: file.offset(),
                    frames,
                });
            }
        }
        batch.map_end = map_end;
        let last = batch.end.is_some();
        if tx.send(batch).is_err() || last {
            return;
        }
    }
}
