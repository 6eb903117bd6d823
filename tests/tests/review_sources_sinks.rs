//! Review of the outputs (`--output` parsing, the fan-out to several outputs, files) and the
//! live source: what an operator sees when an output fails, is named twice or is mistyped, and
//! when the captured interface goes away.

use observer_tests::{ScratchDir, ScratchFile, findings, many_servers, ndjson, observer};
use serde_json::Value;

/// Events without the outputs' own counters (they differ between runs with other outputs).
fn without_output_counters(mut v: Vec<Value>) -> Vec<Value> {
    if let Some(st) = v.last_mut().and_then(|s| s["stats"].as_object_mut()) {
        st.remove("outputs");
    }
    v
}

/// Two outputs, one of them on a full disk (`/dev/full` fails every write with ENOSPC): the
/// healthy output still gets every event, the summary included, and the run fails naming the
/// output that failed.
#[test]
fn a_failing_output_does_not_cost_the_healthy_one_its_events() {
    let cap = ScratchFile::new("many-servers.pcap", &many_servers(1500).finish());
    let cap = cap.to_str().unwrap();
    let dir = ScratchDir::new("failing");
    let good = dir.join("good.ndjson");
    let good_spec = format!("file:{}", good.display());

    let alone = observer(&["analyze", "-q", cap]);
    assert_eq!(alone.status.code(), Some(0));
    assert!(
        alone.stdout.len() > 256 << 10,
        "the run writes more than the outputs' buffers hold ({} bytes)",
        alone.stdout.len()
    );
    let expected = ndjson(&alone.stdout);

    let o = observer(&[
        "analyze",
        "-q",
        "-o",
        "file:/dev/full",
        "-o",
        &good_spec,
        cap,
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("/dev/full"),
        "the failed output is named: {err}"
    );
    let got = ndjson(&std::fs::read(&good).unwrap());
    assert_eq!(
        got.last().map(|e| e["event"]["action"].clone()),
        Some(Value::from("summary")),
        "the healthy output ends with the summary ({} of {} events)",
        got.len(),
        expected.len()
    );
    assert_eq!(findings(&got).len(), findings(&expected).len());
    assert_eq!(
        without_output_counters(got),
        without_output_counters(expected)
    );
}

/// The same file named by two outputs would get every event twice (and two rotations fighting
/// over it): refused before anything is written, naming it.
#[test]
fn the_same_file_given_twice_is_refused() {
    let cap = ScratchFile::new("twice.pcap", &many_servers(3).finish());
    let dir = ScratchDir::new("twice");
    let f = dir.join("events.ndjson");
    let spec = format!("file:{}", f.display());
    // The same file spelled another way.
    let other = format!("file:{}/./events.ndjson", dir.display());
    for second in [&spec, &other] {
        let _ = std::fs::remove_file(&f);
        let o = observer(&[
            "analyze",
            "-q",
            "-o",
            &spec,
            "-o",
            second,
            cap.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{second}: {err}");
        assert!(err.contains("events.ndjson"), "{err}");
        let written = std::fs::read(&f).unwrap_or_default();
        assert!(
            written.is_empty(),
            "nothing written: {} bytes",
            written.len()
        );
    }
    // Two spool directories shared by two socket outputs would corrupt each other's queue.
    let spool = dir.join("spool");
    let a = format!("tcp:127.0.0.1:9,spool={}", spool.display());
    let b = format!("unix:{}/s.sock,spool={}", dir.display(), spool.display());
    let o = observer(&["analyze", "-q", "-o", &a, "-o", &b, cap.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("spool"), "{err}");
}

/// `--output` values that cannot work are refused at once, naming the value, instead of
/// running with an output that silently never delivers (a port beyond 65535, no port) or
/// with a rotation size that overflowed to "never rotate".
#[test]
fn impossible_output_values_are_refused_naming_them() {
    let cap = ScratchFile::new("bad-output.pcap", &many_servers(3).finish());
    let dir = ScratchDir::new("bad-output");
    let file = dir.join("x.ndjson");
    for spec in [
        "tcp:127.0.0.1:99999".to_string(),
        "tcp:127.0.0.1:".to_string(),
        "tcp:127.0.0.1:port".to_string(),
        // 2^34 GiB = 2^64 bytes: wraps to 0 (never rotate) when multiplied unchecked.
        format!("file:{},rotate=17179869184G", file.display()),
    ] {
        let t0 = std::time::Instant::now();
        let o = observer(&["analyze", "-q", "-o", &spec, cap.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{spec}: {err}");
        assert!(err.contains(&spec), "{spec}: {err}");
        assert!(o.stdout.is_empty(), "{spec}");
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(5),
            "{spec}: refused at once"
        );
    }
}

/// A collector that is down when the run ends: the sender keeps its backoff (100 ms doubling)
/// while `finish` waits, and does not spin once it gives up. Over the 10 s flush wait that is a
/// dozen attempts at most, each logged once — not thousands of "output unreachable" lines and
/// failures in the last half second.
#[test]
fn a_collector_down_at_the_end_is_retried_with_backoff_not_in_a_loop() {
    let cap = ScratchFile::new("down-collector.pcap", &many_servers(3).finish());
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let spec = format!("tcp:127.0.0.1:{port}");
    let o = observer(&["analyze", "-q", "-o", &spec, cap.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    let attempts = err.matches("output unreachable").count();
    // 100 ms × 2^k with ±50 % jitter: at most 0.05 + 0.1 + 0.2 + … fits about 12 attempts
    // into the 10 s wait, plus the one after it.
    assert!(
        (1..=15).contains(&attempts),
        "{attempts} connection attempts logged"
    );
    assert!(
        err.contains("not drained"),
        "{}",
        &err[err.len().saturating_sub(2000)..]
    );
}
