//! Review of the outputs (sinks) and of how a run ends: the HTML report when an output fails
//! or standard output closes early, what a failed output on its own thread loses and counts,
//! how often the socket output reconnects to a collector that closes every connection, and
//! how errors read.

use observer::sink::detached::Detached;
use observer::sink::socket::{Endpoint, SocketOptions, SocketSink};
use observer::sink::{Counters, Sink, SinkError};
use observer_tests::{ScratchDir, ScratchFile, many_servers, ndjson, observer, observer_bin};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Two outputs, one on a full disk (`/dev/full`), and `--report`: the analysis finished and the
/// healthy output got everything, so the HTML page is written too; the run still fails (exit
/// 2) naming the output that failed.
#[test]
fn a_failing_output_among_several_does_not_cost_the_report() {
    let cap = ScratchFile::new("outputs-report.pcap", &many_servers(50).finish());
    let dir = ScratchDir::new("report");
    let ok = dir.join("ok.ndjson");
    let page = dir.join("report.html");
    let out = observer(&[
        "analyze",
        cap.to_str().unwrap(),
        "-o",
        "file:/dev/full",
        "-o",
        &format!("file:{}", ok.display()),
        "--report",
        page.to_str().unwrap(),
        "--quiet",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("/dev/full"), "{stderr}");
    let events = ndjson(&std::fs::read(&ok).unwrap());
    assert_eq!(
        events.last().unwrap()["event"]["action"],
        "summary",
        "the healthy output is complete"
    );
    let html = std::fs::read_to_string(&page)
        .unwrap_or_else(|e| panic!("no report at {} ({e}); stderr: {stderr}", page.display()));
    assert!(html.contains("</html>"), "a whole page");
}

/// `observer analyze … --report r.html | head -1`: the reader of standard output goes away
/// after one line (a normal end, exit 0), but the report asked for is still written, of the
/// whole capture.
#[test]
fn closing_standard_output_early_still_writes_the_report() {
    // Far more than the pipe (64 KiB) and the output buffer (64 KiB) hold, so the run is still
    // writing when the reader goes away.
    let bytes = many_servers(3000).finish();
    let frames = pcap_records(&bytes);
    let cap = ScratchFile::new("outputs-head.pcap", &bytes);
    let dir = ScratchDir::new("head");
    let page = dir.join("report.html");
    let mut child = Command::new(observer_bin())
        .args([
            "analyze",
            cap.to_str().unwrap(),
            "--report",
            page.to_str().unwrap(),
            "--quiet",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    let mut r = BufReader::new(child.stdout.take().unwrap());
    r.read_line(&mut first).unwrap();
    assert!(first.contains("\"start\""), "{first}");
    drop(r); // `head -1` exits
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("observer did not end after its reader went away");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{status:?}: {stderr}");
    let html = std::fs::read_to_string(&page)
        .unwrap_or_else(|e| panic!("no report at {} ({e}); stderr: {stderr}", page.display()));
    assert!(html.contains("</html>"), "a whole page");
    // Of the whole capture: its Run table counts every frame of the input, not only those
    // analyzed before the reader left.
    let cell = format!(r#"data-value="{frames}">{frames}</td>"#);
    assert!(
        html.contains(&cell),
        "the input's {frames} frames in the report"
    );
}

/// The records of a classic pcap file (24-byte header, then a 16-byte header and the captured
/// bytes per record).
fn pcap_records(b: &[u8]) -> u64 {
    let (mut at, mut n) = (24, 0);
    while at + 16 <= b.len() {
        let incl = u32::from_le_bytes(b[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16 + incl;
        n += 1;
    }
    n
}

/// A sink that takes `ok` events, then fails like a full disk.
struct FailsAfter {
    ok: u64,
    written: Arc<AtomicU64>,
}

impl Sink for FailsAfter {
    fn write(&mut self, _: &Value) -> Result<(), SinkError> {
        if self.written.load(Ordering::Relaxed) >= self.ok {
            return Err(SinkError::Io {
                target: "disk".into(),
                error: std::io::Error::from_raw_os_error(28),
            });
        }
        self.written.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// An output on its own thread (live runs) that fails: every event it accepted is either
/// written or counted as dropped — the ones queued behind the failure are not lost silently.
#[test]
fn a_detached_output_that_fails_counts_what_it_loses() {
    let written = Arc::new(AtomicU64::new(0));
    let inner = FailsAfter {
        ok: 3,
        written: Arc::clone(&written),
    };
    let mut d = Detached::new(Box::new(inner), 1000, "file").unwrap();
    let mut accepted = 0u64;
    for i in 0..200 {
        if d.write(&json!({ "n": i })).is_ok() {
            accepted += 1;
        }
    }
    assert!(d.finish().is_err(), "the failure is reported");
    let mut c = Counters::new();
    d.counters("o", &mut c);
    let dropped = c.iter().find(|(k, _)| k == "o.dropped").unwrap().1;
    assert_eq!(written.load(Ordering::Relaxed), 3);
    assert_eq!(
        3 + dropped,
        accepted,
        "every accepted event written or counted as dropped ({accepted} accepted)"
    );
}

/// A collector that accepts every connection and closes it at once (a proxy whose backend is
/// down, a collector refusing the client): the sender backs off between attempts as it does
/// when connecting fails, instead of reconnecting (and replaying) as fast as it can.
#[test]
fn a_collector_closing_every_connection_is_retried_with_backoff() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let accepts = Arc::new(AtomicU64::new(0));
    let collector = {
        let (stop, accepts) = (Arc::clone(&stop), Arc::clone(&accepts));
        std::thread::spawn(move || {
            // Bounded: the test stops it, and it gives up after 60 s in any case.
            let end = Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                match listener.accept() {
                    Ok((c, _)) => {
                        accepts.fetch_add(1, Ordering::Relaxed);
                        drop(c);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        })
    };
    let mut o = SocketOptions::new(Endpoint::Tcp(addr));
    o.flush_timeout = Duration::from_secs(1);
    let mut s = SocketSink::start(o).unwrap();
    // 2 s of events, one every 10 ms (a live run's steady trickle).
    let started = Instant::now();
    for i in 0..200 {
        s.write(&json!({"event": {"id": format!("t-{i}")}}))
            .unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    s.finish().unwrap();
    drop(s);
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    collector.join().unwrap();
    let n = accepts.load(Ordering::Relaxed);
    // Backoff from 100 ms doubling (±50 % jitter) over about 3.5 s: a handful of attempts.
    assert!(
        n <= 15,
        "{n} connections in {elapsed:.1} s to a collector that closes each at once"
    );
}

/// An output that fails (a full disk): the message names it and gives the OS's reason once,
/// not the same text twice.
#[test]
fn an_output_error_gives_the_os_reason_once() {
    let cap = ScratchFile::new("outputs-full.pcap", &many_servers(5).finish());
    let out = observer(&[
        "analyze",
        cap.to_str().unwrap(),
        "-o",
        "file:/dev/full",
        "--quiet",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("/dev/full"), "{stderr}");
    let reason = std::io::Error::from_raw_os_error(28).to_string();
    assert_eq!(
        stderr.matches(reason.as_str()).count(),
        1,
        "`{reason}` once: {stderr}"
    );
}

/// A socket output with a spool whose queue never quite empties (a collector that keeps up
/// with only part of the traffic: the spool always holds lines): the spool file stays within
/// a small multiple of `spool_bytes` instead of growing by everything ever sent through it.
#[test]
fn a_spool_that_never_empties_stays_bounded() {
    use std::io::Read;
    use std::os::unix::net::UnixListener;
    let dir = ScratchDir::new("spool");
    let sock = dir.join("collector.sock");
    let spool = dir.join("spool");
    let listener = UnixListener::bind(&sock).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let collector = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            // Reads about 4 MB/s, until told to stop (bounded: 30 s at most).
            let (mut c, _) = listener.accept().unwrap();
            c.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let end = Instant::now() + Duration::from_secs(30);
            let mut buf = [0u8; 4096];
            let mut got = Vec::new();
            while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                if let Ok(n) = c.read(&mut buf) {
                    got.extend_from_slice(&buf[..n]);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            got
        })
    };
    let spool_bytes = 64 << 10;
    let mut o = SocketOptions::new(Endpoint::Unix(sock));
    o.spool = Some(spool.clone());
    o.spool_bytes = spool_bytes;
    o.flush_timeout = Duration::from_millis(200);
    let mut s = SocketSink::start(o).unwrap();
    let queue = spool.join("queue.ndjson");
    let pad = "x".repeat(100);
    let mut largest = 0;
    let started = Instant::now();
    let mut i = 0u64;
    while started.elapsed() < Duration::from_millis(1500) {
        s.write(&json!({"n": i, "pad": pad})).unwrap();
        i += 1;
        if i.is_multiple_of(64) {
            largest = largest.max(std::fs::metadata(&queue).map_or(0, |m| m.len()));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let received = collector.join().unwrap();
    s.finish().unwrap();
    drop(s);
    let got = received.len() as u64;
    assert!(got > 4 * spool_bytes, "the collector read {got} bytes");
    // What arrived is whole events (the last line may be cut by the stop), none damaged by
    // the spool's upkeep.
    let text = String::from_utf8(received).unwrap();
    let mut lines: Vec<&str> = text.split('\n').collect();
    lines.pop();
    for l in lines {
        let v: Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("a damaged line ({e}): {l:?}"));
        assert_eq!(v["pad"].as_str(), Some(pad.as_str()));
    }
    assert!(
        largest <= 3 * spool_bytes,
        "the spool file reached {largest} bytes for spool_bytes={spool_bytes} (the collector read {got})"
    );
}

/// A sink that takes `ok` events, then fails like a full disk, counting every attempt (and
/// every flush, which succeeds).
struct FailsCounting {
    ok: u64,
    attempts: Arc<AtomicU64>,
}

impl Sink for FailsCounting {
    fn write(&mut self, _: &Value) -> Result<(), SinkError> {
        if self.attempts.fetch_add(1, Ordering::Relaxed) >= self.ok {
            return Err(SinkError::Io {
                target: "disk".into(),
                error: std::io::Error::from_raw_os_error(28),
            });
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// An output that failed (no report being collected) is not written to again while the run
/// ends: the first error is the run's, and the summary still covers the whole capture.
#[test]
fn a_failed_output_is_not_written_to_again_at_the_end_of_the_run() {
    let cap = ScratchFile::new("outputs-fail-once.pcap", &many_servers(50).finish());
    let attempts = Arc::new(AtomicU64::new(0));
    let mut sink = FailsCounting {
        ok: 2,
        attempts: Arc::clone(&attempts),
    };
    let cfg = observer::config::Config::default();
    let files = [cap.to_path_buf()];
    let mut p = observer::pipeline::Pipeline::new(&cfg, &mut sink, &files);
    let read = p.run_file(&files[0]);
    let (summary, written) = p.finish_all();
    assert!(read.is_err() || written.is_err(), "the failure is reported");
    assert_eq!(
        attempts.load(Ordering::Relaxed),
        3,
        "two events written, one failed, none tried after it"
    );
    // The analysis is whole all the same: the 50 connections built.
    assert_eq!(summary.flows_tcp, 50);
}

/// The two ways a run stops writing to an output that failed, at the library's level, batch
/// and streaming. Without a report, the error is returned where it happened (the `start`
/// event, written at the first packet) and the end of the run neither writes again nor
/// returns an error of its own (the sink's finish succeeds); with a report, the error is kept,
/// the capture is read to its end for the report, and the end of the run returns it. Either
/// way the failed write is the only call the sink gets (no flush after it either).
#[test]
fn a_failed_output_stops_the_writing_with_or_without_a_report() {
    let cap = ScratchFile::new("outputs-stop.pcap", &many_servers(50).finish());
    let cfg = observer::config::Config::default();
    let files = [cap.to_path_buf()];
    for (report, streaming) in [(false, false), (false, true), (true, false), (true, true)] {
        let calls = Arc::new(AtomicU64::new(0));
        let mut sink = FailsCounting {
            ok: 0,
            attempts: Arc::clone(&calls),
        };
        let mut p = observer::pipeline::Pipeline::new(&cfg, &mut sink, &files);
        if report {
            p.enable_report();
        }
        p.set_streaming(streaming);
        let read = p.run_file(&files[0]);
        let (summary, written) = p.finish_all();
        let case = format!("report {report}, streaming {streaming}");
        assert_eq!(calls.load(Ordering::Relaxed), 1, "{case}");
        if report {
            assert!(read.is_ok(), "{case}: {read:?}");
            assert!(
                matches!(written, Err(SinkError::Io { .. })),
                "{case}: {written:?}"
            );
            assert!(summary.report.is_some(), "{case}");
            assert_eq!(summary.flows_tcp, 50, "{case}");
        } else {
            assert!(
                matches!(read, Err(SinkError::Io { .. })),
                "{case}: {read:?}"
            );
            assert!(written.is_ok(), "{case}: {written:?}");
        }
    }
}
