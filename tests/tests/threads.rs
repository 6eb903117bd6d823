//! `--threads 1` and `--threads 2` give byte-identical output: on a capture built here (with a
//! mix that produces findings of several kinds and time-based decisions), plain (mapped and read
//! in place either way) and gzip-compressed (larger than the 1 MiB from which a second thread
//! reads and inflates it ahead), and on a capture cut in the middle of a record (the error and
//! everything before it the same). And on every file of the public corpus (when present),
//! malformed ones included: the same events and the same outcome for the input.

use observer_tests::{
    PcapBuilder, ScratchFile, corpus_captures, corpus_dir, dns_a_response, findings, ndjson,
    observer, run_on_threads, tcp_flags,
};
use std::io::Write as _;

/// 24,000 connections over 400 s: most complete, every 7th never answered, every 11th
/// refused; an HTTP exchange on every 5th; a DNS answer every 50th.
fn mixed_capture() -> Vec<u8> {
    use tcp_flags::{ACK, RST, SYN};
    let mut b = PcapBuilder::default();
    for i in 0..24_000u32 {
        let t = f64::from(i) * 400.0 / 24_000.0;
        let client = format!("10.0.{}.{}", i / 250 % 250, i % 250 + 1);
        let c = (client.as_str(), 20_000 + (i % 40_000) as u16);
        let server = format!("10.1.0.{}", i % 40 + 1);
        let s = (server.as_str(), if i % 3 == 0 { 443 } else { 80 });
        if i % 7 == 0 {
            b.tcp(t, c, s, 100, 0, SYN, &[]);
            b.tcp(t + 1.0, c, s, 100, 0, SYN, &[]);
        } else if i % 11 == 0 {
            b.tcp(t, c, s, 100, 0, SYN, &[]);
            b.tcp(t + 0.001, s, c, 0, 101, RST | ACK, &[]);
        } else if i % 5 == 0 {
            let req = b"GET /items?id=1 HTTP/1.1\r\nHost: shop\r\n\r\n";
            let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
            let rl = req.len() as u32;
            let sl = resp.len() as u32;
            b.tcp(t, c, s, 100, 0, SYN, &[])
                .tcp(t + 0.001, s, c, 500, 101, SYN | ACK, &[])
                .tcp(t + 0.002, c, s, 101, 501, ACK, &[])
                .tcp(t + 0.003, c, s, 101, 501, ACK, req)
                .tcp(t + 0.030, s, c, 501, 101 + rl, ACK, resp)
                .tcp(t + 0.031, c, s, 101 + rl, 501 + sl, ACK, &[]);
        } else {
            b.connection(t, c, s);
        }
        if i % 50 == 0 {
            let answer =
                dns_a_response((i % 65_536) as u16, "api.example.com", 0, &[(&server, 60)]);
            b.udp(t, ("10.2.0.53", 53), (&client, 5353), &answer);
        }
    }
    b.finish()
}

fn run(path: &std::path::Path, threads: &str) -> (bool, Vec<u8>, String) {
    let out = observer(&[
        "analyze",
        "-q",
        "--threads",
        threads,
        &path.to_string_lossy(),
    ]);
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn one_and_two_threads_write_the_same_bytes() {
    let bytes = mixed_capture();
    assert!(
        bytes.len() > 8 << 20,
        "{} bytes: big enough to read ahead",
        bytes.len()
    );
    let plain = ScratchFile::new("threads.pcap", &bytes);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&bytes).expect("gzip");
    let gz = gz.finish().expect("gzip");
    // Over the 1 MiB from which a gzip file is read (and inflated) ahead.
    assert!(gz.len() > 1 << 20, "{} bytes compressed", gz.len());
    let zipped = ScratchFile::new("threads.pcap.gz", &gz);
    for input in [&plain, &zipped] {
        let (ok1, out1, err1) = run(input, "1");
        let (ok2, out2, err2) = run(input, "2");
        assert!(ok1 && ok2, "{err1}\n{err2}");
        let events = ndjson(&out1);
        let rules: std::collections::BTreeSet<&str> = findings(&events)
            .iter()
            .filter_map(|f| f["rule"]["name"].as_str())
            .collect();
        assert!(rules.len() >= 3, "a mix of findings: {rules:?}");
        assert!(
            out1 == out2,
            "output differs between 1 and 2 threads for {}",
            input.display()
        );
        assert_eq!(err1, err2);
    }

    // Cut in the middle of a record: the same partial result and the same error.
    let cut = ScratchFile::new("threads-cut.pcap", &bytes[..bytes.len() * 3 / 5 + 7]);
    let (_, out1, err1) = run(&cut, "1");
    let (_, out2, err2) = run(&cut, "2");
    assert!(err1.contains("truncated at byte offset"), "{err1}");
    assert!(out1 == out2 && err1 == err2);

    // Only 1 and 2 are accepted.
    let out = observer(&["analyze", "--threads", "3", &plain.to_string_lossy()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--threads"));
}

#[test]
fn every_corpus_file_gives_the_same_events_on_one_thread_and_two() {
    let Some(dir) = corpus_dir() else {
        eprintln!("skipped: ../shared/corpus is not present");
        return;
    };
    let cfg = observer::config::Config::default();
    let mut differ = Vec::new();
    let files = corpus_captures(&dir);
    for path in &files {
        let one = run_on_threads(std::slice::from_ref(path), &cfg, false);
        let two = run_on_threads(std::slice::from_ref(path), &cfg, true);
        let outcome = |s: &observer::pipeline::RunSummary| {
            s.inputs
                .iter()
                .map(|i| format!("{} {:?}", i.packets, i.status))
                .collect::<Vec<_>>()
        };
        if one.0 != two.0 || outcome(&one.1) != outcome(&two.1) {
            differ.push(path.display().to_string());
        }
    }
    assert!(files.len() > 1000, "{} files", files.len());
    assert!(differ.is_empty(), "differ: {differ:?}");
}
