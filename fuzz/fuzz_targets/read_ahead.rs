//! The read-ahead thread against reading on the calling thread (differential): for arbitrary
//! bytes read in chunks of 1–64 bytes with 0–31 bytes of room in front (from the first byte),
//! both ways must give the same frames, then the same end (`Ok(None)`, or the same error
//! message, byte offset included).
#![no_main]

use libfuzzer_sys::fuzz_target;
use observer::source::{CaptureFile, SourceError};
use std::io::Cursor;
use std::path::Path;

/// Upper bound on records read from one input (gzip can expand a small input a lot).
const MAX_PACKETS: usize = 20_000;

type Frame = (i64, u16, Vec<u8>, u32, u32);

fn read(opened: Result<CaptureFile, SourceError>) -> Result<(Vec<Frame>, Option<String>), String> {
    let mut file = opened.map_err(|e| e.to_string())?;
    let mut frames = Vec::new();
    for _ in 0..MAX_PACKETS {
        match file.next_packet() {
            Ok(Some(p)) => {
                frames.push((p.ts.0, p.link.0, p.data.to_vec(), p.wire_len, p.interface))
            }
            Ok(None) => return Ok((frames, None)),
            Err(e) => return Ok((frames, Some(e.to_string()))),
        }
    }
    Ok((frames, None))
}

fuzz_target!(|data: &[u8]| {
    let Some((&sizes, bytes)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(sizes & 0x3f) + 1;
    let room = usize::from(sizes >> 3) & 0x1f;
    let path = Path::new("fuzz");
    let direct = read(CaptureFile::from_reader(
        path,
        Box::new(Cursor::new(bytes.to_vec())),
    ));
    let ahead = read(CaptureFile::from_reader_ahead(
        path,
        Box::new(Cursor::new(bytes.to_vec())),
        chunk,
        room,
    ));
    assert_eq!(direct, ahead, "chunk {chunk}, room {room}");
});
