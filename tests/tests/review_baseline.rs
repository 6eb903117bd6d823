//! Review of `observer baseline create|check` (observer/src/baseline.rs and the `baseline`
//! command in observer/src/main.rs): what identifies "the same finding" from one run to the
//! next, a finding that got worse, and what a failed `create` leaves behind. Every capture is
//! built packet by packet, so which findings it holds, and whether two captures hold the same
//! problem, follows from the construction.

use observer_tests::tcp_flags::{ACK, RST, SYN};
use observer_tests::{
    PcapBuilder, ScratchFile, built_file, ndjson, observer_bin, observer_outcome,
};

const S: &str = "10.0.0.2";

/// `baseline create` of `pcap` into `file` (with `extra` arguments before the capture); the
/// number of findings the file holds.
fn create(file: &ScratchFile, extra: &[&str], pcap: &ScratchFile) -> usize {
    let mut args = vec!["baseline", "create", "--baseline", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.push(pcap.to_str().unwrap());
    let (code, _, err) = observer_outcome(&args);
    assert_eq!(code, Some(0), "create: {err}");
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&**file).unwrap())
        .unwrap_or_else(|e| panic!("baseline not JSON ({e})"));
    saved["findings"].as_array().unwrap().len()
}

/// `baseline check` of `pcap` against `file`: exit code, stdout, stderr.
fn check(file: &ScratchFile, extra: &[&str], pcap: &ScratchFile) -> (Option<i32>, String, String) {
    let mut args = vec!["baseline", "check", "--baseline", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.push(pcap.to_str().unwrap());
    observer_outcome(&args)
}

/// A SYN from `c` to `S:port` at `t`, answered by RST.
fn refused(b: &mut PcapBuilder, t: f64, c: (&str, u16), port: u16) {
    b.tcp(t, c, (S, port), 100, 0, SYN, &[])
        .tcp(t + 0.001, (S, port), c, 0, 101, RST | ACK, &[]);
}

#[test]
fn a_server_refusing_two_clients_is_the_same_finding_whichever_client_came_first() {
    // :81 refuses 10.0.0.1 and 10.0.0.3, half a second apart: one finding about the server
    // (one group, two clients). The next day the same two clients hit it in the other order.
    let day1 = built_file("order-1.pcap", |b| {
        refused(b, 0.0, ("10.0.0.1", 40000), 81);
        refused(b, 0.5, ("10.0.0.3", 40001), 81);
    });
    let day2 = built_file("order-2.pcap", |b| {
        refused(b, 86_400.0, ("10.0.0.3", 50000), 81);
        refused(b, 86_400.5, ("10.0.0.1", 50001), 81);
    });
    let file = ScratchFile::new("order-baseline.json", b"");
    assert_eq!(create(&file, &[], &day1), 1, "one finding: :81 refuses");
    let (code, out, err) = check(&file, &[], &day2);
    assert_eq!(code, Some(0), "the same problem: {err}");
    assert!(out.is_empty(), "no new finding: {out}");
    assert!(
        err.contains("0 new finding(s)") && err.contains("0 accepted not seen"),
        "{err}"
    );
}

/// An established connection `c` → `S:443` at `t`, then aborted by RST: by the client with
/// nothing in flight (a low finding: the client's choice) or by the server (medium).
fn aborted(b: &mut PcapBuilder, t: f64, c: (&str, u16), by_server: bool) {
    let s = (S, 443);
    b.tcp(t, c, s, 100, 0, SYN, &[])
        .tcp(t + 0.001, s, c, 500, 101, SYN | ACK, &[])
        .tcp(t + 0.002, c, s, 101, 501, ACK, &[]);
    if by_server {
        b.tcp(t + 0.010, s, c, 501, 101, RST | ACK, &[]);
    } else {
        b.tcp(t + 0.010, c, s, 101, 501, RST | ACK, &[]);
    }
}

#[test]
fn a_finding_that_got_more_severe_fails_the_check() {
    // Accepted: clients dropping their idle connections to :443 (low). Now the server resets
    // them: the same rule about the same service, at medium — a regression `--fail-on medium`
    // is there to catch.
    let before = built_file("severity-1.pcap", |b| {
        aborted(b, 0.0, ("10.0.0.1", 40000), false)
    });
    let after = built_file("severity-2.pcap", |b| {
        aborted(b, 0.0, ("10.0.0.1", 40000), true)
    });
    let file = ScratchFile::new("severity-baseline.json", b"");
    assert_eq!(create(&file, &[], &before), 1);
    let saved = std::fs::read_to_string(&*file).unwrap();
    assert!(
        saved.contains("tcp.connection.reset") && saved.contains("\"low\""),
        "{saved}"
    );

    let (code, out, err) = check(&file, &["--fail-on", "medium"], &after);
    assert_eq!(code, Some(1), "low became medium: {err}");
    let new = ndjson(out.as_bytes());
    assert_eq!(new.len(), 1, "{out}");
    assert_eq!(new[0]["rule"]["name"], "tcp.connection.reset");
    assert_eq!(new[0]["event"]["severity"], 2);
    assert!(err.contains("low"), "the accepted severity is named: {err}");

    // Below the gate it is listed, not failing.
    let (code, _, err) = check(&file, &["--fail-on", "high"], &after);
    assert_eq!(code, Some(0), "{err}");
    // The other way round (medium accepted, low seen) is no regression.
    let file2 = ScratchFile::new("severity-baseline-2.json", b"");
    assert_eq!(create(&file2, &[], &after), 1);
    let (code, out, err) = check(&file2, &[], &before);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.is_empty(), "{out}");
}

/// A download from `S:80` to `c` at `t`: 2,000 segments of 1,000 bytes, one per ms (8 Mbit/s
/// for 2 s), each acknowledged.
fn download(b: &mut PcapBuilder, t: f64, c: (&str, u16)) {
    let s = (S, 80);
    b.tcp(t, c, s, 100, 0, SYN, &[])
        .tcp(t + 0.001, s, c, 500, 101, SYN | ACK, &[])
        .tcp(t + 0.002, c, s, 101, 501, ACK, &[]);
    let mut seq = 501u32;
    for i in 0..2000u32 {
        let at = t + 0.003 + f64::from(i) * 0.001;
        b.tcp(at, s, c, seq, 101, ACK, &[0x61; 1000]);
        seq += 1000;
        b.tcp(at + 0.0005, c, s, 101, seq, ACK, &[]);
    }
}

#[test]
fn a_link_saturated_again_another_day_is_the_same_finding() {
    // A link of 1 Mbit/s carrying 8 Mbit/s for 2 s: one saturation episode. The same
    // download a day later saturates the same link the same way.
    let cfg = ScratchFile::new("saturation.toml", b"[bandwidth]\ncapacity_mbps = 1\n");
    let cfg = cfg.to_str().unwrap().to_string();
    let day1 = built_file("saturation-1.pcap", |b| {
        download(b, 0.0, ("10.0.0.1", 40000))
    });
    let day2 = built_file("saturation-2.pcap", |b| {
        download(b, 86_400.0, ("10.0.0.1", 50000))
    });
    let file = ScratchFile::new("saturation-baseline.json", b"");
    create(&file, &["--config", &cfg], &day1);
    let saved = std::fs::read_to_string(&*file).unwrap();
    assert!(saved.contains("\"bandwidth.saturation\""), "{saved}");
    let (code, out, err) = check(&file, &["--config", &cfg], &day2);
    assert_eq!(code, Some(0), "the same saturation: {err}");
    assert!(out.is_empty(), "no new finding: {out}");
    assert!(err.contains("0 accepted not seen"), "{err}");
}

/// 30 handshakes from 10.0.0.1 to `S:port`, one a second from `t`, each taking 250 ms
/// (the client's ACK 250 ms after its SYN): over the default 200 ms `tcp.handshake` budget.
fn slow_handshakes(b: &mut PcapBuilder, t: f64, port: u16) {
    for i in 0..30u16 {
        let at = t + f64::from(i);
        let (c, s) = (("10.0.0.1", 40_000 + i), (S, port));
        b.tcp(at, c, s, 100, 0, SYN, &[])
            .tcp(at + 0.001, s, c, 500, 101, SYN | ACK, &[])
            .tcp(at + 0.25, c, s, 101, 501, ACK, &[]);
    }
}

#[test]
fn a_second_service_over_its_latency_budget_fails_the_check() {
    // Accepted: :8443's handshakes are over budget. Now :9443's are too: a new finding.
    let before = built_file("budget-1.pcap", |b| slow_handshakes(b, 0.0, 8443));
    let after = built_file("budget-2.pcap", |b| {
        slow_handshakes(b, 0.0, 8443);
        slow_handshakes(b, 100.0, 9443);
    });
    let file = ScratchFile::new("budget-baseline.json", b"");
    assert_eq!(create(&file, &[], &before), 1, "one service over budget");
    let (code, out, err) = check(&file, &[], &after);
    assert_eq!(code, Some(1), "a new service over budget: {err}");
    let new = ndjson(out.as_bytes());
    assert_eq!(new.len(), 1, "{out}");
    assert_eq!(new[0]["rule"]["name"], "latency.budget.exceeded");
    assert!(
        new[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("10.0.0.2:9443 "),
        "{out}"
    );
}

#[test]
fn a_create_that_cannot_write_leaves_the_previous_baseline_whole() {
    // A baseline accepted earlier, then `create` again on a capture with more findings while
    // the disk cannot take them (a file size limit of 512 bytes, the write failing with EFBIG
    // as on a full disk): the accepted file must stay as it was, not be cut short.
    let small = built_file("write-1.pcap", |b| refused(b, 0.0, ("10.0.0.1", 40000), 81));
    let big = built_file("write-2.pcap", |b| {
        // Eight clients, each refused by its own port (no client sweeps).
        for i in 0..8u16 {
            let c = format!("10.0.0.{}", 10 + i);
            refused(b, f64::from(i), (&c, 40000), 81 + i);
        }
    });
    let file = ScratchFile::new("write-baseline.json", b"");
    assert_eq!(create(&file, &[], &small), 1);
    let accepted = std::fs::read(&*file).unwrap();
    assert!(accepted.len() < 512, "{}", accepted.len());

    let out = std::process::Command::new("sh")
        .args([
            "-c",
            "trap '' XFSZ; ulimit -f 1 && exec \"$0\" \"$@\"",
            observer_bin().to_str().unwrap(),
            "baseline",
            "create",
            "--baseline",
            file.to_str().unwrap(),
            big.to_str().unwrap(),
        ])
        .output()
        .expect("sh runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(file.to_str().unwrap()),
        "names the file: {err}"
    );
    assert_eq!(
        String::from_utf8_lossy(&std::fs::read(&*file).unwrap()),
        String::from_utf8_lossy(&accepted),
        "the accepted baseline is untouched"
    );
    // Nothing is left next to it.
    let dir = file.parent().unwrap();
    let name = file.file_name().unwrap().to_str().unwrap();
    let left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n != name && n.contains(name))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn create_refuses_fail_on_which_only_check_uses() {
    // `--fail-on` gates `check`; on `create` it was accepted and ignored, so a pipeline step
    // `baseline create --fail-on high` looked like a gate and never failed. A usage error
    // (exit 2) before anything is written.
    let pcap = built_file("create-fail-on.pcap", |b| {
        refused(b, 0.0, ("10.0.0.1", 40000), 81)
    });
    let file = ScratchFile::new("create-fail-on.json", b"");
    let (code, _, err) = observer_outcome(&[
        "baseline",
        "create",
        "--fail-on",
        "low",
        "--baseline",
        file.to_str().unwrap(),
        pcap.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--fail-on"), "names the argument: {err}");
    assert!(std::fs::read(&*file).unwrap().is_empty(), "nothing written");
}

#[test]
fn a_baseline_that_is_a_directory_is_named_once_as_one() {
    let pcap = built_file("dir.pcap", |b| refused(b, 0.0, ("10.0.0.1", 40000), 81));
    let dir =
        std::env::temp_dir().join(format!("observer-test-{}-baseline-dir", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let with_slash = format!("{}/", dir.display());
    let (check_code, _, check_err) = check_dir(&dir, &pcap);
    let (create_code, _, create_err) = observer_outcome(&[
        "baseline",
        "create",
        "--baseline",
        &with_slash,
        pcap.to_str().unwrap(),
    ]);
    let _ = std::fs::remove_dir(&dir);
    // `check` reads it: the reason once, not the error chain repeating it.
    assert_eq!(check_code, Some(2), "{check_err}");
    assert!(check_err.contains(dir.to_str().unwrap()), "{check_err}");
    assert_eq!(
        check_err.matches("Is a directory").count(),
        1,
        "said once: {check_err}"
    );
    // `create` into it (given with a trailing slash): it is a directory, not "not a directory".
    assert_eq!(create_code, Some(2), "{create_err}");
    assert!(create_err.contains(&with_slash), "{create_err}");
    assert_eq!(
        create_err.matches("Is a directory").count(),
        1,
        "said once: {create_err}"
    );
}

fn check_dir(dir: &std::path::Path, pcap: &ScratchFile) -> (Option<i32>, String, String) {
    observer_outcome(&[
        "baseline",
        "check",
        "--baseline",
        dir.to_str().unwrap(),
        pcap.to_str().unwrap(),
    ])
}
