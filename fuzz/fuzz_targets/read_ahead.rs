//! The read-ahead thread against reading on the calling thread (differential): for arbitrary
//! bytes read in chunks of 1–64 bytes with 0–31 bytes of room in front (from the first byte),
//! both ways must give the same frames, then the same end (`Ok(None)`, or the same error
//! message, byte offset included).
#![no_main]

use libfuzzer_sys::fuzz_target;
use observer::source::CaptureFile;
use std::io::Cursor;
use std::path::Path;

#[path = "frames.rs"]
mod frames;
use frames::read;

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
