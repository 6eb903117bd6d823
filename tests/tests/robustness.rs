//! No input makes the pipeline panic: every truncation of the fixtures, deterministic byte
//! mutations, and concatenations, through the whole pipeline in-process; and every corpus file
//! reads the same through the read-ahead thread. (Long fuzzing runs with cargo-fuzz belong to
//! the robustness issue; this is the always-on floor.)

use observer::config::Config;
use observer::pipeline::Pipeline;
use observer::sink::MemorySink;
use observer_tests::{corpus_dir, corpus_files, root};
use std::path::Path;

fn analyze_bytes(bytes: Vec<u8>) {
    let mut sink = MemorySink::default();
    let path = Path::new("mutant.pcap");
    let mut p = Pipeline::new(&Config::default(), &mut sink, &[path.to_path_buf()]);
    // Drive the reader directly on the bytes.
    let reader =
        observer::source::CaptureFile::from_reader(path, Box::new(std::io::Cursor::new(bytes)));
    let error = match reader {
        Ok(mut cf) => loop {
            match cf.next_packet() {
                Ok(Some(pkt)) => p.process(&pkt).expect("memory sink"),
                Ok(None) => break None,
                Err(e) => break Some(e.to_string()),
            }
        },
        Err(e) => Some(e.to_string()),
    };
    // Whatever could not be read is said with the input's name.
    if let Some(e) = error {
        assert!(
            e.contains("mutant.pcap"),
            "an error without the input's name: {e}"
        );
    }
    p.finish().expect("memory sink");
    assert_eq!(sink.events.last().unwrap()["event"]["action"], "summary");
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn mutate_all(name: &str, original: &[u8], mutations: usize) {
    let result = std::panic::catch_unwind(|| {
        for n in 0..original.len().min(6000) {
            analyze_bytes(original[..n].to_vec());
        }
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..mutations {
            let mut b = original.to_vec();
            for _ in 0..1 + rng.next() % 4 {
                let i = (rng.next() as usize) % b.len();
                b[i] ^= 1 << (rng.next() % 8);
            }
            analyze_bytes(b);
        }
        let mut twice = original.to_vec();
        twice.extend_from_slice(original);
        analyze_bytes(twice);
    });
    assert!(result.is_ok(), "panic on a mutation of {name}");
}

#[test]
fn fixtures_survive_truncation_and_bit_flips() {
    for f in [
        "fixtures/constructed-tcp-health.pcap",
        "fixtures/loopback-tcp-health.pcap",
    ] {
        let b = std::fs::read(root().join(f)).unwrap();
        mutate_all(f, &b, 3000);
    }
    // The pcapng variant, decompressed so that flips hit block structure, not deflate.
    let gz = std::fs::read(root().join("fixtures/constructed-tcp-health.pcapng.gz")).unwrap();
    let mut ng = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut ng).unwrap();
    mutate_all("constructed-tcp-health.pcapng", &ng, 3000);
}

#[test]
fn fuzz_regressions_stay_fixed() {
    // Inputs that once crashed a cargo-fuzz target (fuzz/regressions/, see fuzz/README.md).
    let dir = root().join("fuzz/regressions");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for e in entries.flatten() {
        let b = std::fs::read(e.path()).unwrap();
        let name = e.path().display().to_string();
        let r = std::panic::catch_unwind(|| analyze_bytes(b));
        assert!(r.is_ok(), "panic on {name}");
    }
}

#[test]
fn corpus_sample_survives_bit_flips() {
    let Some(dir) = corpus_dir() else {
        eprintln!("skipped: ../shared/corpus is not present");
        return;
    };
    let files = corpus_files(&dir, |p| {
        let n = p.to_string_lossy();
        (n.ends_with(".pcap") || n.ends_with(".pcapng"))
            && std::fs::metadata(p)
                .map(|m| m.len() < 20_000)
                .unwrap_or(false)
    });
    for p in files.iter().step_by(25) {
        let b = std::fs::read(p).unwrap();
        if b.is_empty() {
            continue;
        }
        mutate_all(&p.display().to_string(), &b, 200);
    }
}

/// Peak resident memory of this process, from `/proc/self/status` (`VmHWM`, KiB).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn every_corpus_file_survives_truncation_bit_flips_and_concatenation() {
    let Some(dir) = corpus_dir() else {
        eprintln!("skipped: ../shared/corpus is not present");
        return;
    };
    let files = corpus_files(&dir, |p| {
        !p.extension()
            .is_some_and(|x| x == "tsv" || x == "md" || x == "sh")
    });
    assert!(files.len() > 1_600, "{} corpus files", files.len());
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut variants = 0;
    for p in &files {
        let original = std::fs::read(p).unwrap();
        let name = p.display().to_string();
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        // Cut at a third, two thirds, and one byte short.
        for cut in [
            original.len() / 3,
            original.len() * 2 / 3,
            original.len().saturating_sub(1),
        ] {
            inputs.push(original[..cut].to_vec());
        }
        // Four copies with one to four bits flipped, in the first 4 KiB (headers, first
        // records) for two of them and anywhere for the others.
        for k in 0..4 {
            let mut b = original.clone();
            if b.is_empty() {
                break;
            }
            let span = if k < 2 { b.len().min(4096) } else { b.len() };
            for _ in 0..1 + rng.next() % 4 {
                let i = (rng.next() as usize) % span;
                b[i] ^= 1 << (rng.next() % 8);
            }
            inputs.push(b);
        }
        // The file twice in one stream.
        let mut twice = original.clone();
        twice.extend_from_slice(&original);
        inputs.push(twice);
        for b in inputs {
            variants += 1;
            let r = std::panic::catch_unwind(|| analyze_bytes(b));
            assert!(r.is_ok(), "panic on a variant of {name}");
        }
    }
    // 58 MB of captures, each variant analyzed and dropped in turn: memory stays bounded.
    let peak = peak_rss_kib();
    eprintln!(
        "{variants} variants of {} files, peak RSS {peak} KiB",
        files.len()
    );
    assert!(peak < 1024 * 1024, "peak RSS {peak} KiB");
}

/// Every frame (time, link, bytes, wire length, interface) and the end (`None`, or the error's
/// message) of reading `bytes` one way.
type Read = (Vec<(i64, u16, Vec<u8>, u32, u32)>, Option<String>);

fn read_whole(cf: Result<observer::source::CaptureFile, observer::source::SourceError>) -> Read {
    let mut cf = match cf {
        Ok(cf) => cf,
        Err(e) => return (Vec::new(), Some(e.to_string())),
    };
    let mut frames = Vec::new();
    loop {
        match cf.next_packet() {
            Ok(Some(p)) => {
                frames.push((p.ts.0, p.link.0, p.data.to_vec(), p.wire_len, p.interface))
            }
            Ok(None) => return (frames, None),
            Err(e) => return (frames, Some(e.to_string())),
        }
    }
}

#[test]
fn corpus_reads_the_same_through_the_read_ahead_thread() {
    // Every corpus file (the malformed tcpdump captures, gzip'd ones and pcapng among them),
    // whole and cut one byte short, read by the calling thread and through the read-ahead
    // thread in small chunks (so boundaries fall inside headers and frames): the same frames
    // and the same end.
    let Some(dir) = corpus_dir() else {
        eprintln!("skipped: ../shared/corpus is not present");
        return;
    };
    let files = corpus_files(&dir, |p| {
        let n = p.to_string_lossy();
        !(n.ends_with(".tsv") || n.ends_with(".sh") || n.ends_with(".md"))
    });
    assert!(files.len() > 1000, "{} corpus files", files.len());
    let path = Path::new("corpus-file");
    let mut compared = 0;
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        for input in [&bytes[..], &bytes[..bytes.len().saturating_sub(1)]] {
            let cursor = || Box::new(std::io::Cursor::new(input.to_vec()));
            let direct = read_whole(observer::source::CaptureFile::from_reader(path, cursor()));
            for (chunk, room) in [(1000, 200), (4096, 0)] {
                let ahead = read_whole(observer::source::CaptureFile::from_reader_ahead(
                    path,
                    cursor(),
                    chunk,
                    room,
                ));
                assert!(
                    direct == ahead,
                    "{} ({} bytes, chunks of {chunk}, room {room}): {:?} vs {:?}",
                    f.display(),
                    input.len(),
                    (direct.0.len(), &direct.1),
                    (ahead.0.len(), &ahead.1)
                );
                compared += 1;
            }
        }
    }
    assert_eq!(compared, files.len() * 4);
}
