//! Whole pipeline: capture reader → decode → flow table → every analyzer → MemorySink, with the
//! default configuration. Arbitrary capture bytes must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use observer::config::Config;
use observer::pipeline::Pipeline;
use observer::sink::MemorySink;
use observer::source::CaptureFile;
use std::io::Cursor;
use std::path::{Path, PathBuf};

/// Upper bound on records read from one input.
const MAX_PACKETS: usize = 100_000;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz");
    let Ok(mut file) = CaptureFile::from_reader(path, Box::new(Cursor::new(data.to_vec()))) else {
        return;
    };
    let cfg = Config::default();
    let mut sink = MemorySink::default();
    let mut p = Pipeline::new(&cfg, &mut sink, &[PathBuf::from(path)]);
    for _ in 0..MAX_PACKETS {
        match file.next_packet() {
            Ok(Some(pkt)) => {
                // MemorySink never fails; an error here would be a bug in the sink, not input.
                p.process(&pkt).expect("MemorySink write failed");
            }
            Ok(None) | Err(_) => break,
        }
    }
    let summary = p.finish().expect("MemorySink write failed");
    std::hint::black_box(summary.packets.frames);
    std::hint::black_box(sink.events.len());
});
