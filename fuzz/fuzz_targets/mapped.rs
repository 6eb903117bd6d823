//! The mapped reader against the stream reader (differential): arbitrary bytes written to a
//! file and opened with `CaptureFile::open` (read in place, mapped; gzip is streamed) must give
//! the same frames, then the same end (`Ok(None)`, or the same error message but for the path
//! it names, byte offset included), as the same bytes read from a stream. And so must the
//! mapped file walked on a second thread (`source::handoff`, as `--threads 2` reads it), each
//! frame the reader decoded decoding the same here.
#![no_main]

use libfuzzer_sys::fuzz_target;
use observer::source::CaptureFile;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

#[path = "frames.rs"]
mod frames;
use frames::{Frame, MAX_PACKETS, read};

/// The frames `source::handoff::read_frames` hands out on a second thread, then its end.
fn read_handed(path: &Path) -> Result<(Vec<Frame>, Option<String>), String> {
    let mut file = CaptureFile::open(path).map_err(|e| e.to_string())?;
    let mut frames = Vec::new();
    let ended = observer::source::handoff::read_frames(&mut file, true, |item| {
        if let observer::source::handoff::Item::Frame(p, decoded) = item {
            if let Some(d) = decoded {
                assert_eq!(
                    format!("{d:?}"),
                    format!("{:?}", observer::decode::decode(p))
                );
            }
            frames.push((p.ts.0, p.link.0, p.data.to_vec(), p.wire_len, p.interface));
            if frames.len() == MAX_PACKETS {
                return Err(());
            }
        }
        Ok(())
    });
    match ended {
        Ok(end) => Ok((frames, end.result.err().map(|e| e.to_string()))),
        Err(()) => Ok((frames, None)),
    }
}

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
    assert_eq!(mapped, read_handed(path));
});
