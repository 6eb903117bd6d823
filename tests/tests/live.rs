//! `observer live` end to end, as root, in private network namespaces made here (a client and
//! a server namespace joined by a veth pair, observer on the server's end; and one namespace's
//! loopback for the rsyslog test): findings stream while the capture runs, SIGTERM stops it
//! cleanly, a TCP output survives a restart of a real rsyslog without losing an event, and a
//! link saturated and then silent has its saturation reported while the capture goes on.
//!
//! The namespaces, rsyslog and observer processes are removed even when an assertion fails
//! (guards below). Skipped, loudly, when not root.

use observer_tests::netns::{Lines, Netns, Proc, is_root, signal_and_wait, spawn_streaming, veth};
use observer_tests::{ndjson, observer_bin};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// RFC 3339 with microseconds (what observer writes) → seconds since the epoch.
fn epoch(ts: &str) -> f64 {
    let out = Command::new("date")
        .args(["-u", "-d", ts, "+%s.%N"])
        .output()
        .expect("date runs");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a time")
}

/// Starts `observer live` in `ns`, returning once it captures.
fn start_observer(ns: &Netns, iface: &str, args: &[&str]) -> (Proc, Lines) {
    let bin = observer_bin();
    let mut all = vec!["live", "-i", iface, "-q"];
    all.extend_from_slice(args);
    let mut cmd = ns.cmd(bin.to_str().unwrap(), &all);
    cmd.stderr(Stdio::piped());
    spawn_streaming(cmd)
}

/// A live capture between two namespaces made here: `obs{tag}-cl` (`10.93.{net}.1`, device
/// `{tag}c0`) and `obs{tag}-sv` (`10.93.{net}.2`, device `{tag}s0`) joined by a veth pair,
/// `observer live` capturing on the server's end with the configuration `toml`. Dropped in
/// field order: observer stopped, then its configuration, then the namespaces.
struct Observed {
    obs: Proc,
    lines: Lines,
    _cfg: observer_tests::ScratchFile,
    _server: Netns,
    client: Netns,
}

/// [`Observed`], or `None` (said loudly) when not root.
fn observed(tag: &str, net: u8, toml: &[u8]) -> Option<Observed> {
    if !is_root() {
        eprintln!("SKIPPED: live capture needs root (network namespace, CAP_NET_RAW)");
        return None;
    }
    let client = Netns::new(&format!("obs{tag}"), "cl");
    let server = Netns::new(&format!("obs{tag}"), "sv");
    let (cdev, sdev) = (format!("{tag}c0"), format!("{tag}s0"));
    veth(
        &client,
        &cdev,
        &format!("10.93.{net}.1/24"),
        &server,
        &sdev,
        &format!("10.93.{net}.2/24"),
    );
    let cfg = observer_tests::ScratchFile::new(&format!("{tag}.toml"), toml);
    let (obs, lines) = start_observer(&server, &sdev, &["--config", cfg.to_str().unwrap()]);
    Some(Observed {
        obs,
        lines,
        _cfg: cfg,
        _server: server,
        client,
    })
}

/// Connection attempts from `ns` to closed ports of `ip`, `gap` apart; the wall time each was
/// refused (the RST), from the client itself.
fn refused_attempts(ns: &Netns, ip: &str, ports: &[u16], gap: f64) -> Vec<f64> {
    let list = ports
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let script = format!(
        "import socket, time\nfor p in [{list}]:\n    s = socket.socket()\n    try:\n        s.connect(('{ip}', p))\n    except ConnectionRefusedError:\n        print('%.6f' % time.time(), flush=True)\n    s.close()\n    time.sleep({gap})\n"
    );
    let out = ns
        .cmd("python3", &["-c", &script])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

#[test]
fn findings_stream_while_capturing_and_sigterm_stops_cleanly() {
    if !is_root() {
        eprintln!("SKIPPED: live capture needs root (network namespace, CAP_NET_RAW)");
        return;
    }
    // A client namespace and a server namespace joined by a veth pair; observer captures on
    // the server's end.
    let client = Netns::new("obslv", "cl");
    let ns = Netns::new("obslv", "sv");
    veth(&client, "lvc0", "10.93.1.1/24", &ns, "lvs0", "10.93.1.2/24");
    let cfg = observer_tests::ScratchFile::new(
        "live.toml",
        b"[tcp_health]\nreport_after_idle_secs = 0.5\n",
    );
    let report = observer_tests::ScratchFile::new("live-report.html", b"");
    let (mut obs, lines) = start_observer(
        &ns,
        "lvs0",
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
    );
    let ports = [20001u16, 20002, 20003];
    let refused_at = refused_attempts(&client, "10.93.1.2", &ports, 1.0);
    assert_eq!(refused_at.len(), 3);
    // Each finding must arrive while the capture is still running.
    let t0 = Instant::now();
    loop {
        let n = lines
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, l)| l.contains("tcp.handshake.refused"))
            .count();
        if n == 3 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "only {n} of 3 findings streamed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // A silently dropped SYN (nftables in the namespace): unanswered is decided after the
    // second retry, while the capture runs.
    let nft = "table inet obslv { chain input { type filter hook input priority 0; tcp dport 20100 drop; }; }";
    assert!(ns.cmd("nft", &[nft]).status().unwrap().success());
    let script = "import socket\ns = socket.socket()\ns.settimeout(3.5)\ntry:\n    s.connect(('10.93.1.2', 20100))\nexcept OSError:\n    pass\n";
    assert!(
        client
            .cmd("python3", &["-c", script])
            .status()
            .unwrap()
            .success()
    );
    let t0 = Instant::now();
    let (un_arrived, un_line) = loop {
        if let Some(x) = lines
            .lock()
            .unwrap()
            .iter()
            .find(|(_, l)| l.contains("tcp.handshake.unanswered"))
        {
            break x.clone();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no unanswered finding streamed"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let status = signal_and_wait(&mut obs, "-TERM");
    assert!(status.success(), "SIGTERM is a clean stop: {status:?}");
    let un: Value = serde_json::from_str(&un_line).unwrap();
    assert_eq!(un["destination"]["port"], 20100);
    assert_eq!(
        un["fallacy"]["evidence"]["syn_packets"], 3,
        "SYN and two retries"
    );
    // Decidable at the third SYN (the group's last activity).
    let third_syn = epoch(un["fallacy"]["evidence"]["last_seen"].as_str().unwrap());
    let un_latency = un_arrived - third_syn;
    eprintln!("live: third unanswered SYN → finding on the sink: {un_latency:.3} s");
    assert!((0.0..2.0).contains(&un_latency), "{un_latency}");
    let got = lines.lock().unwrap().clone();
    let events: Vec<Value> = got
        .iter()
        .map(|(_, l)| serde_json::from_str(l).unwrap())
        .collect();
    let summary = events.last().unwrap();
    assert_eq!(
        summary["event"]["action"], "summary",
        "summary flushed on SIGTERM"
    );
    assert_eq!(summary["observer"]["inputs"][0]["path"], "live:lvs0");
    // The HTML report is written at the stop, and counts what was streamed.
    let html = std::fs::read_to_string(&*report).unwrap();
    for id in 1..=8u64 {
        let n = events
            .iter()
            .filter(|e| e["event"]["kind"] == "alert" && e["fallacy"]["id"] == id)
            .count();
        assert!(
            html.contains(&format!("data-fallacy=\"{id}\" data-findings=\"{n}\"")),
            "the report's verdict {id} is not {n}"
        );
    }
    assert!(html.contains("live:lvs0"));
    assert_eq!(summary["stats"]["tcp"]["handshakes"]["refused"], 3);
    let mut latencies = Vec::new();
    for (port, rst) in ports.iter().zip(&refused_at) {
        let (arrived, line) = got
            .iter()
            .find(|(_, l)| {
                l.contains("tcp.handshake.refused") && l.contains(&format!("\"port\":{port}"))
            })
            .unwrap_or_else(|| panic!("finding for port {port}"));
        let f: Value = serde_json::from_str(line).unwrap();
        // The finding's time is the RST the client saw (same clock, same host).
        let ts = epoch(f["@timestamp"].as_str().unwrap());
        assert!(
            (ts - rst).abs() < 0.05,
            "finding time {ts} vs refusal {rst}"
        );
        latencies.push(arrived - rst);
    }
    eprintln!("live: refused → finding on the sink: {latencies:.3?} s");
    assert!(
        latencies.iter().all(|l| *l >= 0.0 && *l < 2.0),
        "{latencies:?}"
    );
}

fn rsyslog_conf(dir: &std::path::Path, port: u16) -> std::path::PathBuf {
    let conf = dir.join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            "global(workDirectory=\"{d}\" maxMessageSize=\"1m\")\nmodule(load=\"imtcp\")\ntemplate(name=\"raw\" type=\"string\" string=\"%rawmsg%\\n\")\ninput(type=\"imtcp\" port=\"{port}\" address=\"127.0.0.1\")\n*.* action(type=\"omfile\" file=\"{d}/received.ndjson\" template=\"raw\")\n",
            d = dir.display()
        ),
    )
    .unwrap();
    conf
}

fn start_rsyslog(ns: &Netns, dir: &std::path::Path, conf: &std::path::Path, port: u16) -> Proc {
    let child = ns
        .cmd(
            "rsyslogd",
            &[
                "-n",
                "-C",
                "-f",
                conf.to_str().unwrap(),
                "-i",
                dir.join("rsyslog.pid").to_str().unwrap(),
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rsyslogd starts (apt-get install rsyslog)");
    let t0 = Instant::now();
    while !ns
        .cmd("ss", &["-Hltn", &format!("sport = :{port}")])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false)
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "rsyslog did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Proc(child)
}

#[test]
fn a_tcp_output_loses_nothing_when_the_collector_restarts() {
    if !is_root() {
        eprintln!("SKIPPED: live capture needs root (network namespace, CAP_NET_RAW)");
        return;
    }
    if Command::new("rsyslogd").arg("-v").output().is_err() {
        panic!("rsyslogd missing: scripts/test.sh installs it (apt-get install rsyslog)");
    }
    let ns = Netns::new("obslv", "rsyslog");
    let dir = std::env::temp_dir().join(format!("observer-rsyslog-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    struct RmDir(std::path::PathBuf);
    impl Drop for RmDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _rm = RmDir(dir.clone());
    let port = 15140;
    let conf = rsyslog_conf(&dir, port);
    let mut rs = start_rsyslog(&ns, &dir, &conf, port);
    let cfg = observer_tests::ScratchFile::new(
        "live.toml",
        b"[tcp_health]\nreport_after_idle_secs = 0.3\n",
    );
    let reference = dir.join("written.ndjson");
    let spool = dir.join("spool");
    let out_file = format!("file:{}", reference.display());
    let out_tcp = format!("tcp:127.0.0.1:{port},spool={}", spool.display());
    let (mut obs, _lines) = start_observer(
        &ns,
        "lo",
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--filter",
            &format!("not port {port}"),
            "-o",
            "stdout",
            "-o",
            &out_file,
            "-o",
            &out_tcp,
        ],
    );
    // 40 refused connections, one per port (40 findings), while rsyslog is restarted in the
    // middle.
    let ports: Vec<u16> = (21000..21040).collect();
    let ns_ref = &ns;
    let refusals = std::thread::scope(|s| {
        let h = s.spawn(|| refused_attempts(ns_ref, "127.0.0.1", &ports, 0.1));
        std::thread::sleep(Duration::from_millis(1800));
        signal_and_wait(&mut rs, "-TERM");
        std::thread::sleep(Duration::from_millis(700));
        rs = start_rsyslog(ns_ref, &dir, &conf, port);
        h.join().unwrap()
    });
    assert_eq!(refusals.len(), 40);
    std::thread::sleep(Duration::from_millis(1500));
    let status = signal_and_wait(&mut obs, "-TERM");
    assert!(status.success(), "{status:?}");
    signal_and_wait(&mut rs, "-TERM");

    let written = ndjson(&std::fs::read(&reference).unwrap());
    let received_text = std::fs::read_to_string(dir.join("received.ndjson")).unwrap();
    let received: Vec<Value> = received_text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let ids = |v: &[Value]| -> std::collections::BTreeSet<String> {
        v.iter()
            .map(|e| e["event"]["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (w, r) = (ids(&written), ids(&received));
    let refused = written
        .iter()
        .filter(|e| e["rule"]["name"] == "tcp.handshake.refused")
        .count();
    assert_eq!(refused, 40, "every refusal found");
    let missing: Vec<&String> = w.difference(&r).collect();
    let summary = written.last().unwrap();
    let tcp = &summary["stats"]["outputs"]["tcp_2"];
    eprintln!(
        "rsyslog restart: {} events written, {} lines received ({} distinct), missing {}; output counters {tcp}",
        w.len(),
        received.len(),
        r.len(),
        missing.len()
    );
    // The summary itself is written after its own counters were taken; everything up to it
    // must have arrived.
    assert!(missing.is_empty(), "lost with the spool on: {missing:?}");
    assert!(
        tcp["connects"].as_u64().unwrap() >= 2,
        "it reconnected: {tcp}"
    );
    assert_eq!(tcp["dropped"], 0);
}

/// A failure that does not stop — a port refusing every connection, 5 attempts a second for
/// 8 s — is reported while it goes on (`[report] active_group_secs`, here 2 s), although its
/// group never goes quiet for `report_after_idle_secs` (60 s here).
#[test]
fn a_lasting_failure_is_reported_while_it_lasts() {
    let Some(mut o) = observed(
        "la",
        3,
        b"[tcp_health]\nreport_after_idle_secs = 60\n\n[report]\nactive_group_secs = 2\n",
    ) else {
        return;
    };
    let refused_at = refused_attempts(&o.client, "10.93.3.2", &[20201; 40], 0.2);
    assert_eq!(refused_at.len(), 40);
    let last_attempt = *refused_at.last().unwrap();
    let got = o.lines.lock().unwrap().clone();
    let status = signal_and_wait(&mut o.obs, "-TERM");
    assert!(status.success(), "SIGTERM is a clean stop: {status:?}");
    let during: Vec<Value> = got
        .iter()
        .filter(|(at, l)| *at < last_attempt && l.contains("tcp.handshake.refused"))
        .map(|(_, l)| serde_json::from_str(l).unwrap())
        .collect();
    // 8 s of refusals in stretches of about 2 s: three reported before the last attempt.
    assert!(
        during.len() >= 3,
        "{} streamed during the failure",
        during.len()
    );
    for f in &during {
        assert_eq!(f["destination"]["port"], 20201);
        let secs = f["fallacy"]["evidence"]["duration_secs"].as_f64().unwrap();
        assert!(secs <= 3.0, "a stretch of {secs} s");
    }
}

/// A link saturated for 2 s and then silent, in a live capture: 1,500 datagrams of 1,400
/// bytes a second (about 17 Mbit/s) against a configured capacity of 8 Mbit/s, sent by the
/// client namespace, then nothing. The saturation must be reported while the capture goes on,
/// once the link has been quiet for 2 s; before the fix it came only at SIGTERM (a link gone
/// silent kept its episode open until its next packet).
#[test]
fn a_saturation_is_reported_live_once_the_link_goes_quiet() {
    let Some(mut o) = observed(
        "bw",
        4,
        b"[bandwidth]\ncapacity_mbps = 8\nsaturation_threshold = 0.85\nmin_saturation_secs = 0.5\n",
    ) else {
        return;
    };
    // 3,000 datagrams paced over 2 s; prints the wall time of the last one.
    let script = "import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
                  p = b'x' * 1400\nt0 = time.time()\nfor i in range(3000):\n\
                  \x20   while time.time() < t0 + i / 1500.0:\n        pass\n\
                  \x20   s.sendto(p, ('10.93.4.2', 9))\nprint('%.6f' % time.time(), flush=True)\n";
    let out = o
        .client
        .cmd("python3", &["-c", script])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent_until: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    // Quiet from here: reported within about 2 s of quiet plus a tick (1 s); 10 s at most.
    let deadline = Instant::now() + Duration::from_secs(10);
    let found = loop {
        let seen = o
            .lines
            .lock()
            .unwrap()
            .iter()
            .find(|(_, l)| l.contains("\"bandwidth.saturation\""))
            .cloned();
        if seen.is_some() || Instant::now() > deadline {
            break seen;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let status = signal_and_wait(&mut o.obs, "-TERM");
    assert!(status.success(), "SIGTERM is a clean stop: {status:?}");
    let (at, line) = found.expect("the saturation streamed before SIGTERM");
    assert!(
        at > sent_until,
        "reported at {at}, traffic until {sent_until}"
    );
    let f: Value = serde_json::from_str(&line).unwrap();
    let secs = f["fallacy"]["evidence"]["duration_secs"].as_f64().unwrap();
    assert!((1.5..=5.0).contains(&secs), "an episode of {secs} s: {f:#}");
}
