//! Capture-file reader (pcap, pcapng, gzip of either): arbitrary bytes must never panic, and
//! `next_packet` must end with `Ok(None)` or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use observer::source::CaptureFile;
use std::io::Cursor;
use std::path::Path;

/// Upper bound on records read from one input (gzip can expand a small input a lot).
const MAX_PACKETS: usize = 100_000;

fuzz_target!(|data: &[u8]| {
    let Ok(mut file) = CaptureFile::from_reader(Path::new("fuzz"), Box::new(Cursor::new(data.to_vec())))
    else {
        return;
    };
    for _ in 0..MAX_PACKETS {
        match file.next_packet() {
            Ok(Some(pkt)) => {
                // Touch the borrowed frame so the read is not optimized away.
                std::hint::black_box((pkt.ts, pkt.link, pkt.data.len(), pkt.wire_len, pkt.interface));
            }
            Ok(None) | Err(_) => break,
        }
    }
    std::hint::black_box((file.format(), file.is_gzip(), file.offset(), file.stats().packets));
});
