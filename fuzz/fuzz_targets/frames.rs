//! What the differential reader targets compare: every frame a reader hands out, then how it
//! ended (included with `#[path]`, not a target of its own).

use observer::source::{CaptureFile, SourceError};

/// Upper bound on records read from one input (gzip can expand a small input a lot).
pub const MAX_PACKETS: usize = 20_000;

/// (timestamp, link type, bytes, length on the wire, interface)
pub type Frame = (i64, u16, Vec<u8>, u32, u32);

/// The frames of `opened`, then its error message if it ended with one; or the message of
/// the error that kept it from opening.
pub fn read(opened: Result<CaptureFile, SourceError>) -> Result<(Vec<Frame>, Option<String>), String> {
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
