//! Review of live capture and the capture sources: what `observer live` reports when its
//! interface is deleted in the middle of a capture (a veth end in a network namespace made
//! here, removed even when an assertion fails). Skipped, loudly, when not root.

use observer_tests::netns::{Netns, is_root, spawn_streaming, veth};
use observer_tests::observer_bin;
use serde_json::Value;
use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The interface deleted under the capture: the run ends with an error naming it (exit 2), the
/// summary is still written, and it says the input did not end complete: the capture stopped
/// early, and the error is in the summary's input entry as it is for a damaged file.
#[test]
fn an_interface_deleted_during_capture_is_a_partial_input_in_the_summary() {
    if !is_root() {
        eprintln!("SKIPPED: live capture needs root (network namespace, CAP_NET_RAW)");
        return;
    }
    let peer = Netns::new("obsrm", "pe");
    let ns = Netns::new("obsrm", "ob");
    veth(&peer, "rmp0", "10.93.7.1/24", &ns, "rmo0", "10.93.7.2/24");
    let bin = observer_bin();
    let mut cmd = ns.cmd(bin.to_str().unwrap(), &["live", "-i", "rmo0", "-q"]);
    cmd.stderr(Stdio::piped());
    let (mut obs, lines) = spawn_streaming(cmd);
    // A few frames seen before the interface goes (UDP datagrams to the peer; ARP first).
    ns.python(
        "import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nfor i in range(3):\n    s.sendto(b'x', ('10.93.7.1', 9999))\n    time.sleep(0.2)\n",
    );
    std::thread::sleep(Duration::from_millis(300));
    ns.run("ip", &["link", "del", "rmo0"]);
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = obs.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "observer still running 20 s after its interface was deleted"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    obs.0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    // The reader thread may still hold the last line for a moment.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains("rmo0"),
        "error names the interface: {stderr}"
    );
    let events: Vec<Value> = lines
        .lock()
        .unwrap()
        .iter()
        .map(|(_, l)| serde_json::from_str(l).unwrap())
        .collect();
    let summary = events.last().expect("events");
    assert_eq!(summary["event"]["action"], "summary", "summary written");
    let input = &summary["observer"]["inputs"][0];
    assert_eq!(input["path"], "live:rmo0");
    assert!(input["packets"].as_u64().unwrap() >= 3, "{input}");
    assert_eq!(
        input["status"], "partial",
        "a capture cut short by its interface vanishing is not complete: {input}"
    );
    let error = input["error"].as_str().unwrap_or_default();
    assert!(error.contains("rmo0"), "{input}");
}

/// Standard input named twice (`analyze - -`) can only be read once: the second `-` found it
/// already at its end and was reported as "-: empty file (0 bytes): not a capture", after the
/// first had been analyzed and its events written. It is a usage error, refused before
/// anything is read or written, naming `-`.
#[test]
fn standard_input_given_twice_is_refused_before_reading() {
    let cap = observer_tests::ScratchFile::new(
        "review-stdin-twice.pcap",
        &observer_tests::many_servers(3).finish(),
    );
    let out = std::process::Command::new(observer_bin())
        .args(["analyze", "-q", "-", "-"])
        .stdin(std::fs::File::open(&*cap).unwrap())
        .output()
        .expect("observer runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("standard input") && err.contains('-'),
        "the refusal names standard input: {err}"
    );
    assert!(
        !err.contains("empty file"),
        "not reported as an empty capture: {err}"
    );
    assert!(
        out.stdout.is_empty(),
        "nothing analyzed or written: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A `.gz` capture cut in the middle (a copy or download that stopped): the records before the
/// cut are analyzed (as many as tshark reads from the same file) and the error says the
/// compressed stream is cut. Before, it blamed a pcap record "at byte offset N" where N counts
/// decompressed bytes, an offset well past the end of the file on disk, and said nothing of
/// gzip, so the capture looked damaged by its writer rather than cut in transit.
#[test]
fn a_gzip_capture_cut_mid_record_says_the_gzip_stream_is_cut() {
    use std::io::Write;
    let mut b = observer_tests::PcapBuilder::default();
    for i in 0..400u32 {
        let port = 40_000 + (i % 200) as u16;
        b.udp(
            f64::from(i) * 0.01,
            ("10.1.0.1", port),
            ("10.1.0.2", 53),
            &[i as u8; 120],
        );
    }
    let raw = b.finish();
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(&raw).unwrap();
    let gz = z.finish().unwrap();
    // Cut where the inflated bytes end inside a record (not at the end of the stream).
    let cut = observer_tests::ScratchFile::new("review-cut.pcap.gz", &gz[..gz.len() / 2]);
    let path = cut.to_str().unwrap();
    let o = observer_tests::observer(&["analyze", "-q", path]);
    let err = String::from_utf8_lossy(&o.stderr);
    let events = observer_tests::ndjson(&o.stdout);
    let input = &events.last().unwrap()["observer"]["inputs"][0];
    assert_eq!(input["status"], "partial", "{input}");
    if observer_tests::have("tshark") {
        let frames = std::process::Command::new("tshark")
            .args(["-r", path, "-T", "fields", "-e", "frame.number"])
            .output()
            .expect("tshark runs");
        let n = String::from_utf8_lossy(&frames.stdout).lines().count() as u64;
        assert!(n > 0 && n < 400, "tshark read {n} frames");
        assert_eq!(input["packets"], n, "{input}");
    }
    let error = input["error"].as_str().unwrap();
    for text in [error, &*err] {
        assert!(
            text.contains("gzip stream") && text.contains("cut"),
            "the error says the compressed stream is cut: {text}"
        );
    }
}
