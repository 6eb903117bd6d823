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
