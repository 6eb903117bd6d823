//! The mapped reader against the stream reader (differential): arbitrary bytes written to a
//! file and opened with `CaptureFile::open` (read in place, mapped; gzip is streamed) must give
//! the same frames, then the same end (`Ok(None)`, or the same error message but for the path
//! it names, byte offset included), as the same bytes read from a stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use observer::source::CaptureFile;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

#[path = "frames.rs"]
mod frames;
use frames::read;

/// This process's scratch file (tmpfs when there is one: mapping works there too).
fn scratch() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let dir = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        dir.join(format!("observer-fuzz-mapped-{}", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let path = scratch();
    if std::fs::write(path, data).is_err() {
        return;
    }
    let streamed = read(CaptureFile::from_reader(
        path,
        Box::new(Cursor::new(data.to_vec())),
    ));
    let mapped = read(CaptureFile::open(path));
    assert_eq!(streamed, mapped);
});
