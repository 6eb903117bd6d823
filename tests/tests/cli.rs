//! The command-line contract: exit codes, messages that name the input, nothing already
//! computed lost on bad input.

use observer_tests::{ScratchFile, findings, ndjson, observer, root, stat};

const FIXTURE: &str = "fixtures/constructed-tcp-health.pcap";

fn tmp(name: &str, bytes: &[u8]) -> ScratchFile {
    ScratchFile::new(name, bytes)
}

fn fixture_bytes() -> Vec<u8> {
    std::fs::read(root().join(FIXTURE)).unwrap()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn clean_run_exits_zero_with_start_findings_summary() {
    let o = observer(&["analyze", FIXTURE]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let ev = ndjson(&o.stdout);
    assert_eq!(ev[0]["event"]["action"], "start");
    assert_eq!(ev.last().unwrap()["event"]["action"], "summary");
    assert_eq!(findings(&ev).len(), 3);
    let err = stderr(&o);
    assert!(err.contains("33 packets"), "{err}");
    assert!(err.contains("findings: 3"), "{err}");
}

#[test]
fn fail_on_gates_by_severity() {
    // The fixture's worst finding is high (unanswered SYNs).
    let o = observer(&["analyze", "-q", "--fail-on", "high", FIXTURE]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--fail-on high"));
    let o = observer(&["analyze", "-q", "--fail-on", "critical", FIXTURE]);
    assert_eq!(o.status.code(), Some(0));
    let o = observer(&["analyze", "-q", "--fail-on", "severe", FIXTURE]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("severe"));
}

#[test]
fn usage_errors_exit_two() {
    assert_eq!(observer(&["analyze"]).status.code(), Some(2));
    assert_eq!(observer(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(observer(&["--version"]).status.code(), Some(0));
}

#[test]
fn unreadable_inputs_are_named_and_exit_two() {
    let empty = tmp("empty.pcap", b"");
    let text = tmp("notes.pcap", b"these are not packets\n");
    let cases = [
        ("/nonexistent/capture.pcap".to_string(), "cannot read"),
        (empty.display().to_string(), "empty file"),
        (text.display().to_string(), "not a pcap or pcapng capture"),
        (std::env::temp_dir().display().to_string(), "is a directory"),
    ];
    for (path, what) in cases {
        let o = observer(&["analyze", "-q", &path]);
        assert_eq!(o.status.code(), Some(2), "{path}");
        let err = stderr(&o);
        assert!(err.contains(&path) && err.contains(what), "{path}: {err}");
        // The run still ends with its summary event.
        let ev = ndjson(&o.stdout);
        assert_eq!(ev.last().unwrap()["event"]["action"], "summary");
        assert_eq!(stat(&ev, "inputs.failed"), 1);
    }
}

#[test]
fn a_bad_input_does_not_lose_the_good_ones() {
    let text = tmp("bad.pcap", b"GIF89a....");
    let o = observer(&["analyze", "-q", FIXTURE, text.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let ev = ndjson(&o.stdout);
    assert_eq!(findings(&ev).len(), 3);
    assert_eq!(stat(&ev, "inputs.files"), 2);
    assert_eq!(stat(&ev, "inputs.failed"), 1);
}

#[test]
fn truncated_capture_keeps_findings_warns_with_offset_and_exits_zero() {
    let mut b = fixture_bytes();
    let full = b.len();
    b.truncate(full - 20); // inside the last record (the UDP reply)
    let p = tmp("cut.pcap", &b);
    let o = observer(&["analyze", "-q", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("truncated at byte offset"), "{err}");
    assert!(err.contains(p.to_str().unwrap()), "{err}");
    let ev = ndjson(&o.stdout);
    assert_eq!(stat(&ev, "frames.total"), 32);
    assert_eq!(stat(&ev, "inputs.partial"), 1);
    assert_eq!(findings(&ev).len(), 3);
}

#[test]
fn damaged_record_keeps_what_came_before_and_exits_two() {
    let mut b = fixture_bytes();
    // A record header claiming a 1 GB frame after the real records.
    for x in [1_767_225_700u32, 0, 1 << 30, 1 << 30] {
        b.extend_from_slice(&x.to_le_bytes());
    }
    let p = tmp("damaged.pcap", &b);
    let o = observer(&["analyze", "-q", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("damaged at byte offset {}", b.len() - 16)),
        "{err}"
    );
    let ev = ndjson(&o.stdout);
    assert_eq!(findings(&ev).len(), 3);
}

#[test]
fn unsupported_link_type_is_counted_and_reported() {
    let mut b = Vec::new();
    b.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&4u16.to_le_bytes());
    for w in [0u32, 0, 65535, 147] {
        b.extend_from_slice(&w.to_le_bytes());
    }
    for i in 0..2u32 {
        for w in [100 + i, 0, 4, 4] {
            b.extend_from_slice(&w.to_le_bytes());
        }
        b.extend_from_slice(b"\xde\xad\xbe\xef");
    }
    let p = tmp("user0.pcap", &b);
    let o = observer(&["analyze", "-q", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("LINKTYPE(147)"), "{}", stderr(&o));
    let ev = ndjson(&o.stdout);
    assert_eq!(stat(&ev, "frames.unsupported_link"), 2);
    assert_eq!(
        ev.last().unwrap()["observer"]["inputs"][0]["unsupported_link_types"]["LINKTYPE(147)"],
        2
    );
}

#[test]
fn config_errors_name_the_key_and_line() {
    let cfg = tmp("bad.toml", b"[flows]\nmax_flows = 10\nidle = 3\n");
    let o = observer(&["analyze", "--config", cfg.to_str().unwrap(), FIXTURE]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("idle") && err.contains("line 3"), "{err}");
    assert!(
        o.stdout.is_empty(),
        "nothing is analyzed with a bad configuration"
    );
    let good = tmp("good.toml", b"[tcp_health]\nreport_after_idle_secs = 5\n");
    let o = observer(&["analyze", "-q", "--config", good.to_str().unwrap(), FIXTURE]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn closed_stdout_is_not_an_error() {
    use std::io::Read as _;
    let mut child = std::process::Command::new(observer_tests::observer_bin())
        .current_dir(root())
        .args(["analyze", "-q", FIXTURE, FIXTURE, FIXTURE])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
}

/// The configuration block in the README is a valid file and documents the real defaults (its
/// `[[owner]]` and `[[zone]]` tables are examples: there are none by default).
#[test]
fn readme_configuration_is_valid_and_shows_the_defaults() {
    let readme = std::fs::read_to_string(observer_tests::root().join("README.md")).unwrap();
    let section = readme
        .split("## Configuration")
        .nth(1)
        .expect("README has a Configuration section");
    let block = section
        .split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a toml block");
    let mut cfg = observer::config::Config::parse(std::path::Path::new("README.md"), block)
        .unwrap_or_else(|e| panic!("README configuration: {e}"));
    assert_eq!(cfg.owners.len(), 1);
    assert_eq!(cfg.zones.len(), 1);
    cfg.owners.clear();
    cfg.zones.clear();
    assert_eq!(
        format!("{cfg:?}"),
        format!("{:?}", observer::config::Config::default())
    );
}

/// `--output file:` gets exactly what stdout would, and two outputs get the same events.
#[test]
fn file_output_equals_stdout() {
    let dir = std::env::temp_dir().join(format!("observer-out-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("events.ndjson");
    let spec = format!("file:{}", f.display());
    let cap = "fixtures/loopback-tcp-health.pcap";
    let plain = observer_tests::analyze_raw(&[cap]);
    let both = observer_tests::analyze_raw(&["-o", "stdout", "-o", &spec, cap]);
    let file = std::fs::read(&f).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let strip = |b: &[u8]| -> Vec<serde_json::Value> {
        // The summary differs only by the outputs' own counters.
        let mut v = observer_tests::ndjson(b);
        if let Some(s) = v.last_mut() {
            if let Some(st) = s["stats"].as_object_mut() {
                st.remove("outputs");
            }
        }
        v
    };
    assert_eq!(both, file, "stdout and the file get the same bytes");
    assert_eq!(strip(&plain), strip(&file));
}

/// Bad outputs and interfaces are named in the error, exit 2.
#[test]
fn bad_outputs_and_interfaces_are_named() {
    for (args, needle) in [
        (
            vec![
                "analyze",
                "-o",
                "tcp:nohost",
                "fixtures/loopback-tcp-health.pcap",
            ],
            "tcp:nohost",
        ),
        (
            vec![
                "analyze",
                "-o",
                "file:/nonexistent-dir/x.ndjson",
                "fixtures/loopback-tcp-health.pcap",
            ],
            "/nonexistent-dir/x.ndjson",
        ),
        (
            vec!["live", "-i", "nonexist0", "--duration", "1"],
            "nonexist0",
        ),
    ] {
        let out = observer(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

/// The files written only at the end of a run (the report, the dependency graph, a new
/// baseline) are checked before anything is read: a directory that does not exist, or a path
/// that is a directory, is refused at once (exit 2, the flag and path named, "nothing was
/// read", no event written), not after the whole capture was analyzed. A mistyped path on a
/// long capture must not cost the analysis's time only to fail at its end.
#[test]
fn end_of_run_files_that_cannot_be_written_are_refused_before_reading() {
    let tmp = std::env::temp_dir().display().to_string();
    let cap = "fixtures/dependencies.pcap";
    for (args, needle) in [
        (
            vec!["analyze", "--report", "/nonexistent-dir/r.html", cap],
            "--report /nonexistent-dir/r.html",
        ),
        (
            vec![
                "analyze",
                "--dependency-graph",
                "/nonexistent-dir/g.dot",
                cap,
            ],
            "--dependency-graph /nonexistent-dir/g.dot",
        ),
        (
            vec!["analyze", "--report", tmp.as_str(), cap],
            "Is a directory",
        ),
        (
            vec!["analyze", "--report", "/nonexistent-dir/", cap],
            "Is a directory",
        ),
        (
            vec![
                "baseline",
                "create",
                "--baseline",
                "/nonexistent-dir/b.json",
                cap,
            ],
            "--baseline /nonexistent-dir/b.json",
        ),
        (
            vec![
                "live",
                "-i",
                "nonexist0",
                "--duration",
                "1",
                "--report",
                "/nonexistent-dir/r.html",
            ],
            "--report /nonexistent-dir/r.html",
        ),
    ] {
        let out = observer(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(err.contains("nothing was read"), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn completions_and_man_pages_come_from_the_command_line_definition() {
    for shell in ["bash", "zsh", "fish"] {
        let out = observer_tests::observer(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8_lossy(&out.stdout);
        for cmd in [
            "analyze",
            "live",
            "probe",
            "baseline",
            "--fail-on",
            "--dependency-graph",
        ] {
            assert!(text.contains(cmd), "{shell} completion lacks {cmd}");
        }
    }
    let out = observer_tests::observer(&["completions", "tcsh"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );

    let out = observer_tests::observer(&["manpage"]);
    assert!(out.status.success());
    let roff = String::from_utf8_lossy(&out.stdout);
    assert!(roff.contains(".TH observer 1"), "{roff}");
    assert!(roff.contains("baseline"), "subcommands listed");
    let dir = std::env::temp_dir().join(format!("obs-man-{}", std::process::id()));
    let out = observer_tests::observer(&["manpage", "--dir", dir.to_str().unwrap()]);
    assert!(out.status.success());
    for page in [
        "observer.1",
        "observer-analyze.1",
        "observer-probe.1",
        "observer-baseline-check.1",
    ] {
        let text = std::fs::read_to_string(dir.join(page)).unwrap_or_default();
        assert!(text.contains(".TH"), "{page} written");
    }
    let check = std::fs::read_to_string(dir.join("observer-baseline-check.1")).unwrap_or_default();
    assert!(
        check.contains("fail\\-on"),
        "flags documented in the command's page"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
