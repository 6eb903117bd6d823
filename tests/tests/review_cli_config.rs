//! Review of the command line and the configuration (observer/src/main.rs, observer/src/config.rs):
//! an output that is one of the inputs, `--duration` values that cannot be a duration, config
//! keys that are accepted but never applied, and error messages about the config file. The
//! captures are built here or are fixtures; what must be refused, and what must survive, follows
//! from the arguments given.

use observer::config::Config;
use observer_tests::{
    ScratchDir, ScratchFile, inventory, many_servers, ndjson, observer, observer_outcome,
};
use std::path::Path;

/// A capture of three complete connections, copied into `dir` under `name`; its bytes.
fn capture_in(dir: &Path, name: &str) -> (String, Vec<u8>) {
    let bytes = many_servers(3).finish();
    let p = dir.join(name);
    std::fs::write(&p, &bytes).unwrap();
    (p.display().to_string(), bytes)
}

/// An output (the report, an events file, the dependency graph, a new baseline) that names one
/// of the inputs would overwrite, or append events to, the capture being read: refused before
/// anything is read or written, naming both, and the capture left as it was.
#[test]
fn an_output_that_is_an_input_is_refused_and_the_capture_kept() {
    let dir = ScratchDir::new("out-is-in");
    // A capture named like a graph, so `--dependency-graph` accepts its extension.
    let (cap, bytes) = capture_in(&dir, "capture.dot");
    let other = format!("{}/./capture.dot", dir.display());
    let file_spec = format!("file:{other}");
    let cases: [Vec<&str>; 4] = [
        vec!["analyze", "-q", "--report", &other, &cap],
        vec!["analyze", "-q", "-o", &file_spec, &cap],
        vec!["analyze", "-q", "--dependency-graph", &other, &cap],
        vec!["baseline", "create", "--baseline", &other, &cap],
    ];
    for args in cases {
        let (code, out, err) = observer_outcome(&args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(
            err.contains("capture.dot") && err.contains("input"),
            "{args:?}: names the file and that it is an input: {err}"
        );
        assert!(out.is_empty(), "{args:?}: nothing analyzed: {out}");
        assert_eq!(
            std::fs::read(&cap).unwrap(),
            bytes,
            "{args:?}: the capture is left as it was"
        );
    }
}

/// The report and an events file on one path: the events are appended to it, then the report
/// is renamed over them, so the events are lost without a word. Refused, naming both flags.
#[test]
fn the_report_and_an_events_file_on_one_path_are_refused() {
    let dir = ScratchDir::new("report-is-output");
    let (cap, _) = capture_in(&dir, "in.pcap");
    let out = dir.join("out.html");
    let spec = format!("file:{}", out.display());
    let (code, stdout, err) = observer_outcome(&[
        "analyze",
        "-q",
        "-o",
        &spec,
        "--report",
        out.to_str().unwrap(),
        &cap,
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--report") && err.contains("out.html"),
        "names the flag and the file: {err}"
    );
    assert!(stdout.is_empty(), "{stdout}");
    assert!(!out.exists(), "nothing written");
}

/// `--duration` must be a number of seconds a run can last: `inf` or `1e30` made the live
/// capture panic (exit 101) once the interface was open, and `NaN` ended it at once, exit 0,
/// as though the capture had run. Each is a usage error naming the flag, before anything is
/// opened.
#[test]
fn a_duration_that_is_not_a_duration_is_a_usage_error() {
    for d in ["inf", "1e30", "NaN"] {
        let (code, out, err) = observer_outcome(&["live", "-i", "lo", "-q", "--duration", d]);
        assert_eq!(code, Some(2), "--duration {d}: {err}");
        assert!(!err.contains("panicked"), "--duration {d}: {err}");
        assert!(err.contains("--duration"), "--duration {d}: {err}");
        assert!(out.is_empty(), "--duration {d}: {out}");
    }
}

/// `[bandwidth.interface_capacity_mbps]` is looked up by the interface index written as a
/// number (`"1"`): a key such as `"01"` or `"+1"` passed the check (it parses as 1) and was
/// then never used, so the interface's capacity silently stayed unknown. It is refused naming
/// the key and its line.
#[test]
fn an_interface_capacity_key_that_would_never_match_is_refused() {
    for key in ["01", "+1"] {
        let text = format!("[bandwidth]\n[bandwidth.interface_capacity_mbps]\n\"{key}\" = 100\n");
        let e = Config::parse(Path::new("c.toml"), &text)
            .map(|_| ())
            .expect_err(key)
            .to_string();
        assert!(
            e.contains(&format!("interface_capacity_mbps.{key}")) && e.contains("line 3"),
            "{key}: {e}"
        );
    }
    let ok = Config::parse(
        Path::new("c.toml"),
        "[bandwidth.interface_capacity_mbps]\n\"1\" = 100\n",
    );
    assert!(ok.is_ok(), "{:?}", ok.err());
}

/// A config path that cannot be read says why once (the OS reason was printed twice: once in
/// the message, once as its cause).
#[test]
fn an_unreadable_config_gives_the_reason_once() {
    let dir = ScratchDir::new("config-dir");
    let cap = dir.join("in.pcap");
    std::fs::write(&cap, many_servers(1).finish()).unwrap();
    let o = observer(&[
        "analyze",
        "-q",
        "--config",
        dir.to_str().unwrap(),
        cap.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains(dir.to_str().unwrap()), "{err}");
    assert_eq!(err.matches("os error").count(), 1, "{err}");
}

/// A config file with a byte that is not UTF-8 (a Latin-1 comment) names the line of that byte,
/// as every other config error names its line.
#[test]
fn a_config_that_is_not_utf8_names_the_line() {
    let cfg = ScratchFile::new(
        "latin1.toml",
        b"[flows]\nmax_flows = 10\n# caf\xe9 network\nmax_memory_mb = 10\n",
    );
    let cap = ScratchFile::new("in.pcap", &many_servers(1).finish());
    let (code, out, err) = observer_outcome(&[
        "analyze",
        "-q",
        "--config",
        cfg.to_str().unwrap(),
        cap.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("latin1.toml") && err.contains("line 3"),
        "{err}"
    );
    assert!(err.contains("UTF-8"), "{err}");
    assert!(out.is_empty(), "{out}");
}

/// An owner's DNS suffix written as a fully qualified name (`payments.example.`, as in a zone
/// file) matches the names under it, as `payments.example` does; a suffix that is no name at
/// all (empty, or only dots) would match nothing and is refused naming the owner.
#[test]
fn owner_suffixes_with_a_trailing_dot_match_and_empty_ones_are_refused() {
    const CAPTURE: &str = "fixtures/dependencies.pcap";
    let cfg = ScratchFile::new(
        "fqdn.toml",
        b"[[owner]]\nname = \"Payments Inc\"\nsuffixes = [\"payments.example.\"]\n",
    );
    let o = observer(&["analyze", "-q", "--config", cfg.to_str().unwrap(), CAPTURE]);
    assert_eq!(o.status.code(), Some(0));
    let inv = inventory(&ndjson(&o.stdout));
    let p = inv
        .iter()
        .find(|o| o["owner"] == "Payments Inc")
        .unwrap_or_else(|| panic!("Payments Inc in {inv:#?}"));
    assert_eq!(p["owner_source"], "config");
    assert_eq!(p["names"], serde_json::json!(["api.payments.example"]));

    for bad in ["", "."] {
        let text =
            format!("[[owner]]\nname = \"Nobody\"\nsuffixes = [\"stripe.com\", \"{bad}\"]\n");
        let e = Config::parse(Path::new("c.toml"), &text)
            .map(|_| ())
            .expect_err(bad)
            .to_string();
        assert!(
            e.contains("owner[0].suffixes") && e.contains("line 1"),
            "{bad:?}: {e}"
        );
    }
}

/// `[cost]` thresholds given the wrong way round (medium above high) left medium severity
/// unreachable without a word: refused naming the key.
#[test]
fn cost_thresholds_the_wrong_way_round_are_refused() {
    let e = Config::parse(
        Path::new("c.toml"),
        "[cost]\nhigh_usd_per_month = 100\nmedium_usd_per_month = 1000\n",
    )
    .map(|_| ())
    .expect_err("medium above high")
    .to_string();
    assert!(
        e.contains("cost.medium_usd_per_month") && e.contains("line 3"),
        "{e}"
    );
    let equal = Config::parse(
        Path::new("c.toml"),
        "[cost]\nhigh_usd_per_month = 100\nmedium_usd_per_month = 100\n",
    );
    assert!(equal.is_ok(), "{:?}", equal.err());
}

/// `[tcp_health] sweep_destinations` was taken whatever its size: every watched client (up to
/// 10,000) keeps its distinct destinations until it has that many, searched one by one at each
/// failure, so a million made the memory and time unbounded; and 1 made every client with one
/// failed destination a "sweep". 0 (never) and 2 to 1000 are taken; others are refused naming
/// the key and its line.
#[test]
fn sweep_destinations_out_of_range_are_refused() {
    for bad in ["1", "1001", "1000000"] {
        let text = format!("[tcp_health]\n\nsweep_destinations = {bad}\n");
        let e = Config::parse(Path::new("c.toml"), &text)
            .map(|_| ())
            .expect_err(bad)
            .to_string();
        assert!(
            e.contains("tcp_health.sweep_destinations") && e.contains("line 3"),
            "{bad}: {e}"
        );
    }
    for good in ["0", "2", "64", "1000"] {
        let text = format!("[tcp_health]\nsweep_destinations = {good}\n");
        let c = Config::parse(Path::new("c.toml"), &text);
        assert!(c.is_ok(), "{good}: {:?}", c.err());
    }
}

/// The README's usage block lists every flag each command takes (`--help` is generated from
/// the code; the README is not): `analyze --log-format` was missing.
#[test]
fn the_readme_usage_lists_every_flag_of_each_command() {
    let readme = std::fs::read_to_string(observer_tests::root().join("README.md")).unwrap();
    let usage = readme
        .split("## Using it")
        .nth(1)
        .and_then(|s| s.split("```\n").nth(1))
        .expect("a usage block");
    for cmd in [
        "analyze",
        "live",
        "probe",
        "baseline create",
        "baseline check",
    ] {
        // The command's synopsis: its line and the indented lines continuing it.
        let mut synopsis = String::new();
        let mut inside = false;
        for line in usage.lines() {
            if line.starts_with("observer ") {
                inside = line.starts_with(&format!("observer {cmd} "));
            }
            if inside {
                synopsis.push_str(line);
                synopsis.push(' ');
            }
        }
        assert!(!synopsis.is_empty(), "{cmd} in the README usage");
        let mut args: Vec<&str> = cmd.split(' ').collect();
        args.push("--help");
        let help = String::from_utf8(observer(&args).stdout).unwrap();
        for line in help.lines().map(str::trim).filter(|l| l.starts_with('-')) {
            let names: Vec<&str> = line
                .split([' ', ','])
                .take_while(|w| w.starts_with('-') || w.is_empty())
                .filter(|w| !w.is_empty())
                .map(|w| w.split(['=', '<']).next().unwrap())
                .collect();
            if names.contains(&"--help") {
                continue;
            }
            assert!(
                names.iter().any(|n| synopsis.contains(&format!("[{n} "))
                    || synopsis.contains(&format!("[{n}]"))
                    || synopsis.contains(&format!(" {n} "))),
                "{cmd}: {names:?} is not in the README usage: {synopsis}"
            );
        }
    }
}

/// A negative `--snaplen` or one above libpcap's largest (262,144) was passed to libpcap,
/// which quietly used its own value: the usage error names the flag instead. 0 (tcpdump's
/// `-s 0`, "the whole frame") stays allowed.
#[test]
fn a_snap_length_out_of_range_is_a_usage_error() {
    for s in ["-1", "262145", "99999999999"] {
        let flag = format!("--snaplen={s}");
        let (code, out, err) =
            observer_outcome(&["live", "-i", "lo", "-q", "--duration", "1", &flag]);
        assert_eq!(code, Some(2), "--snaplen {s}: {err}");
        assert!(err.contains("--snaplen"), "--snaplen {s}: {err}");
        assert!(out.is_empty(), "--snaplen {s}: {out}");
    }
}

/// The whole line each clash between the files a run names prints, and which clash is named
/// when there are two: outputs against each other (a file twice, standard output twice, a
/// spool directory twice), an output on an input, the report on an events file; with both an
/// `--output` file given twice and the report on the capture, the report's clash (output on
/// input) is the one named. Each is exit 2 with nothing written to standard output.
#[test]
fn each_clash_of_files_prints_its_own_line() {
    let dir = ScratchDir::new("clash-lines");
    let (cap, _) = capture_in(&dir, "in.pcap");
    let d = dir.display().to_string();
    let twice = "(every event would be written twice to it, or a spool directory shared by two outputs): give each output its own";
    let (f, f2) = (format!("file:{d}/e.ndjson"), format!("file:{d}/./e.ndjson"));
    let (s1, s2) = (
        format!("tcp:127.0.0.1:9,spool={d}/spool"),
        format!("unix:{d}/s.sock,spool={d}/spool"),
    );
    let cap_out = format!("file:{cap}");
    let report = format!("{d}/e.ndjson");
    let cases: [(Vec<&str>, String); 6] = [
        (
            vec!["-o", &f, "-o", &f2, &cap],
            format!("--output {f2}: the same place as --output {f} {twice}"),
        ),
        (
            vec!["-o", "stdout", "-o", "-", &cap],
            format!("--output stdout: the same place as --output stdout {twice}"),
        ),
        (
            vec!["-o", &s1, "-o", &s2, &cap],
            format!("--output spool={d}/spool: the same place as --output spool={d}/spool {twice}"),
        ),
        (
            vec!["-o", &cap_out, &cap],
            format!(
                "--output {cap_out}: the same file as input {cap} (it would be written over, or into, while it is read): name another file"
            ),
        ),
        (
            vec!["-o", &f, "--report", &report, &cap],
            format!(
                "--report {report}: the same file as --output {f} (one would replace what the other wrote): name another file"
            ),
        ),
        (
            vec!["-o", &f, "-o", &f, "--report", &cap, &cap],
            format!(
                "--report {cap}: the same file as input {cap} (it would be written over, or into, while it is read): name another file"
            ),
        ),
    ];
    for (args, line) in cases {
        let mut all = vec!["analyze", "-q"];
        all.extend_from_slice(&args);
        let (code, out, err) = observer_outcome(&all);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert_eq!(err, format!("observer: error: {line}\n"), "{args:?}");
        assert!(out.is_empty(), "{args:?}: {out}");
    }
    assert!(!dir.join("e.ndjson").exists(), "nothing written");
}
