//! Shared helpers for the end-to-end tests.

pub mod netns;
pub mod page;

use observer::config::Config;
use observer::pipeline::{Pipeline, RunSummary};
use observer::sink::MemorySink;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `../shared/corpus` beside the project, when present.
pub fn corpus_dir() -> Option<PathBuf> {
    let d = root().join("../shared/corpus");
    d.join("ORACLE.tsv").is_file().then_some(d)
}

/// The files of the corpus directory `dir` that `keep` accepts, sorted.
pub fn corpus_files(dir: &Path, keep: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("corpus readable")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| keep(p))
        .collect();
    files.sort();
    files
}

/// Every capture of the corpus directory `dir` (not its TSV tables, scripts and notes), sorted.
pub fn corpus_captures(dir: &Path) -> Vec<PathBuf> {
    corpus_files(dir, |p| {
        let n = p.to_string_lossy();
        !(n.ends_with(".tsv") || n.ends_with(".sh") || n.ends_with(".md"))
    })
}

/// Runs the library pipeline on files and returns the events and the summary.
pub fn run(files: &[PathBuf], cfg: &Config) -> (Vec<Value>, RunSummary) {
    run_on_threads(files, cfg, false)
}

/// [`run`], reading the inputs on a second thread when `second_thread` is set (as
/// `--threads 2` does).
pub fn run_on_threads(
    files: &[PathBuf],
    cfg: &Config,
    second_thread: bool,
) -> (Vec<Value>, RunSummary) {
    let mut sink = MemorySink::default();
    let mut p = Pipeline::new(cfg, &mut sink, files);
    p.set_read_ahead(second_thread);
    for f in files {
        p.run_file(f).expect("memory sink never fails");
    }
    let s = p.finish().expect("memory sink never fails");
    (sink.events, s)
}

/// The observer binary of the same profile as these tests, built on first use (a test crate
/// cannot depend on another package's binary, so it asks cargo once).
pub fn observer_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let mut dir = std::env::current_exe().expect("test binary path");
        dir.pop();
        if dir.ends_with("deps") {
            dir.pop();
        }
        let release = dir.ends_with("release");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = std::process::Command::new(cargo);
        cmd.current_dir(root())
            .args(["build", "--quiet", "-p", "observer", "--bin", "observer"]);
        if release {
            cmd.arg("--release");
        }
        let ok = cmd.status().map(|s| s.success()).unwrap_or(false);
        assert!(ok, "building the observer binary failed");
        dir.join("observer")
    })
    .clone()
}

/// Runs the observer binary with `args` from the workspace root.
pub fn observer(args: &[&str]) -> std::process::Output {
    std::process::Command::new(observer_bin())
        .current_dir(root())
        .args(args)
        .output()
        .expect("observer runs")
}

/// Parses NDJSON output.
pub fn ndjson(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The findings among events.
pub fn findings(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e["event"]["kind"] == "alert")
        .collect()
}

/// A counter of the summary event by its dotted `stats.` name.
pub fn stat(events: &[Value], dotted: &str) -> u64 {
    let summary = events.last().expect("a summary event");
    assert_eq!(summary["event"]["action"], "summary");
    let mut v = &summary["stats"];
    for part in dotted.split('.') {
        v = &v[part];
    }
    v.as_u64()
        .unwrap_or_else(|| panic!("stats.{dotted} missing in {summary}"))
}

/// Whether a command is on PATH.
pub fn have(cmd: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {cmd} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

/// Reads a TSV with a header line into rows of (column name → value).
pub fn read_tsv(path: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let text = std::fs::read_to_string(path).expect("tsv readable");
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split('\t')
        .map(str::to_string)
        .collect();
    lines
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            header
                .iter()
                .cloned()
                .zip(l.split('\t').map(str::to_string))
                .collect()
        })
        .collect()
}

/// Reads a fixtures `*.expected.txt` file: `[section]` headers, `key=value` lines, `#` comments.
pub fn expected_sections(
    name: &str,
) -> std::collections::HashMap<String, std::collections::HashMap<String, String>> {
    let path = root().join("fixtures").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out: std::collections::HashMap<String, std::collections::HashMap<String, String>> =
        Default::default();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            out.entry(section.clone())
                .or_default()
                .insert(k.to_string(), v.to_string());
        }
    }
    out
}

/// A file in the system temp directory, unique to this process and call, removed when dropped
/// (tests leave nothing behind, even when several run at once).
pub struct ScratchFile(PathBuf);

impl ScratchFile {
    /// Writes `bytes` to a new scratch file whose name ends with `name`.
    pub fn new(name: &str, bytes: &[u8]) -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("observer-test-{}-{n}-{name}", std::process::id()));
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        Self(path)
    }
}

impl std::ops::Deref for ScratchFile {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A directory of its own under the system temp directory, unique to this process and call,
/// removed with what it holds when dropped.
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// A new empty directory whose name ends with `tag`.
    pub fn new(tag: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("observer-dir-{}-{n}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("creating {}: {e}", d.display()));
        Self(d)
    }
}

impl std::ops::Deref for ScratchDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `n` complete connections from one client, each to a server of its own (`10.9.x.y:80`),
/// 10 ms apart: each a flow of its own, so the run writes many events (enough, with a
/// thousand, that the outputs' 64 KiB buffers are written through during the run).
pub fn many_servers(n: u32) -> PcapBuilder {
    let mut b = PcapBuilder::default();
    for i in 0..n {
        let server = format!("10.9.{}.{}", i / 200, i % 200 + 1);
        b.connection(
            f64::from(i) * 0.01,
            ("10.0.0.1", 20_000 + i as u16),
            (&server, 80),
        );
    }
    b
}

/// A handshake at `t` (client ISN 100, server ISN 500), then `segments` segments of 1,000
/// bytes from the server, one every 5 ms from `t + 3 ms`, each acknowledged 0.5 ms later.
/// Returns (the flow's IP bytes so far, the time of the last data segment, the server's next
/// sequence number). Every packet is an IPv4 and TCP header (40 bytes) and its payload.
pub fn download(
    b: &mut PcapBuilder,
    t: f64,
    c: (&str, u16),
    s: (&str, u16),
    segments: u32,
) -> (u64, f64, u32) {
    use tcp_flags::{ACK, SYN};
    b.tcp(t, c, s, 100, 0, SYN, &[])
        .tcp(t + 0.001, s, c, 500, 101, SYN | ACK, &[])
        .tcp(t + 0.002, c, s, 101, 501, ACK, &[]);
    let mut seq = 501;
    let mut last = t;
    for i in 0..segments {
        last = t + 0.003 + f64::from(i) * 0.005;
        b.tcp(last, s, c, seq, 101, ACK, &[0x61; 1000]);
        seq += 1000;
        b.tcp(last + 0.0005, c, s, 101, seq, ACK, &[]);
    }
    (3 * 40 + u64::from(segments) * (40 + 1000 + 40), last, seq)
}

/// A capture built by `build`, written to a scratch file named `name`.
pub fn built_file(name: &str, build: impl FnOnce(&mut PcapBuilder)) -> ScratchFile {
    let mut b = PcapBuilder::default();
    build(&mut b);
    ScratchFile::new(name, &b.finish())
}

/// Runs the observer binary with `args`: its exit code, standard output and standard error.
pub fn observer_outcome(args: &[&str]) -> (Option<i32>, String, String) {
    let out = observer(args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The owners in a run's one `dependencies` inventory event (there must be exactly one).
pub fn inventory(ev: &[Value]) -> Vec<Value> {
    let inv: Vec<&Value> = ev
        .iter()
        .filter(|e| e["event"]["action"] == "dependencies")
        .collect();
    assert_eq!(inv.len(), 1, "one dependencies event");
    inv[0]["dependencies"].as_array().unwrap().clone()
}

/// tshark's `-T fields` output for `path` (relative to the project root, or absolute): one line
/// per frame matching the display filter (all frames when it is empty), tab-separated fields.
pub fn tshark_fields(path: &str, fields: &[&str], filter: &str) -> String {
    let mut cmd = std::process::Command::new("tshark");
    cmd.current_dir(root())
        .args(["-n", "-r", path, "-T", "fields"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    if !filter.is_empty() {
        cmd.args(["-Y", filter]);
    }
    let out = cmd.output().expect("tshark runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every event of analyzing the capture `b` built, written to a scratch file `name`, with the
/// default configuration.
pub fn analyze_built(b: &PcapBuilder, name: &str) -> Vec<Value> {
    let f = ScratchFile::new(name, &b.finish());
    run(&[f.to_path_buf()], &Config::default()).0
}

/// [`analyze_built`] with the configuration `toml`.
pub fn analyze_built_with(b: &PcapBuilder, name: &str, toml: &str) -> Vec<Value> {
    let cfg = Config::parse(Path::new("test.toml"), toml).expect("config");
    let f = ScratchFile::new(name, &b.finish());
    run(&[f.to_path_buf()], &cfg).0
}

/// The run-wide latency metric event of `metric` for `service` (`ip:port`): its `latency`.
pub fn run_latency<'a>(ev: &'a [Value], metric: &str, service: &str) -> &'a Value {
    ev.iter()
        .find(|e| {
            e["event"]["action"] == "latency"
                && e["latency"]["scope"] == "run"
                && e["latency"]["metric"] == metric
                && e["latency"]["service"] == service
        })
        .map(|e| &e["latency"])
        .unwrap_or_else(|| panic!("no run {metric} event for {service}"))
}

/// A DNS finding's evidence: how many queries, their transmissions, and the first sample.
pub fn dns_evidence(finding: &Value) -> (u64, u64, &str) {
    let e = &finding["fallacy"]["evidence"];
    (
        e["count"].as_u64().expect("count"),
        e["transmissions"].as_u64().expect("transmissions"),
        e["samples"][0].as_str().expect("a sample"),
    )
}

/// The kinds of credentials a security finding names (its evidence), in order.
pub fn credential_kinds(finding: &Value) -> Vec<String> {
    finding["fallacy"]["evidence"]["credentials"]
        .as_array()
        .expect("a credentials list")
        .iter()
        .map(|c| c.as_str().expect("a kind").to_string())
        .collect()
}

/// A finding's (or any event's) `message`.
pub fn message(event: &Value) -> &str {
    event["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no message in {event:#}"))
}

/// The findings of rule `name` among `events`.
pub fn with_rule<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["rule"]["name"] == name)
        .collect()
}

/// The one finding of rule `name` whose destination port is `port` (panics, showing the
/// events, if there is none).
pub fn finding_at_port<'a>(events: &'a [Value], name: &str, port: u16) -> &'a Value {
    with_rule(events, name)
        .into_iter()
        .find(|f| f["destination"]["port"] == port)
        .unwrap_or_else(|| panic!("no {name} finding for port {port}: {events:#?}"))
}

/// The client of [`session`]'s connections.
pub const SESSION_CLIENT: &str = "10.0.0.1";
/// The server of [`session`]'s connections.
pub const SESSION_SERVER: &str = "10.0.0.2";

/// [`PcapBuilder::session`] from [`SESSION_CLIENT`]`:cport` to [`SESSION_SERVER`]`:sport`.
pub fn session(b: &mut PcapBuilder, t0: f64, cport: u16, sport: u16, steps: &[(bool, &[u8])]) {
    b.session(t0, (SESSION_CLIENT, cport), (SESSION_SERVER, sport), steps);
}

/// The `plaintext.internal` finding for server port `port` ([`finding_at_port`]).
pub fn internal(events: &[Value], port: u16) -> &Value {
    finding_at_port(events, "plaintext.internal", port)
}

/// Asserts that none of `secrets` (passwords, tokens a capture carried) appears anywhere in
/// the events.
pub fn never_written(events: &[Value], secrets: &[&str]) {
    let all: String = events.iter().map(Value::to_string).collect();
    for s in secrets {
        assert!(!all.contains(s), "{s} written in the output");
    }
}

/// The one finding of rule `name` whose destination address is `server` (panics, showing
/// them, if there is not exactly one).
pub fn finding_to<'a>(events: &'a [Value], name: &str, server: &str) -> &'a Value {
    let m: Vec<_> = with_rule(events, name)
        .into_iter()
        .filter(|f| f["destination"]["ip"] == server)
        .collect();
    assert_eq!(m.len(), 1, "one {name} to {server}: {m:#?}");
    m[0]
}

/// `observer analyze -q ARGS…` from the project root: its stdout, after asserting it succeeded.
pub fn analyze_raw(args: &[&str]) -> Vec<u8> {
    let mut all = vec!["analyze", "-q"];
    all.extend_from_slice(args);
    let out = observer(&all);
    assert!(
        out.status.success(),
        "observer failed on {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The events of `observer analyze -q PATH` (PATH relative to the project root, or absolute).
pub fn analyze(path: &str) -> Vec<Value> {
    ndjson(&analyze_raw(&[path]))
}

/// TCP flag bits for [`PcapBuilder::tcp`].
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// A pcap (Ethernet, µs) built packet by packet in a test, so the expected findings follow
/// from construction. Times are seconds after 2026-01-01T00:00:00Z.
#[derive(Default)]
pub struct PcapBuilder {
    records: Vec<u8>,
    /// The capture interface of each record ([`PcapBuilder::on_interface`]).
    interfaces: Vec<u32>,
    interface: u32,
    /// The IPv4 TTL of the packets added from now on ([`PcapBuilder::with_ttl`]; 64 unless set).
    ttl: Option<u8>,
}

/// 2026-01-01T00:00:00Z, seconds since the epoch.
pub const PCAP_BUILDER_EPOCH: u64 = 1_767_225_600;

impl PcapBuilder {
    fn record(&mut self, t: f64, frame: &[u8]) {
        let us = (t * 1e6).round() as u64;
        let secs = PCAP_BUILDER_EPOCH + us / 1_000_000;
        for v in [
            secs as u32,
            (us % 1_000_000) as u32,
            frame.len() as u32,
            frame.len() as u32,
        ] {
            self.records.extend_from_slice(&v.to_le_bytes());
        }
        self.records.extend_from_slice(frame);
        self.interfaces.push(self.interface);
    }

    /// An Ethernet frame built by the test itself, at `t` seconds.
    pub fn frame(&mut self, t: f64, frame: &[u8]) -> &mut Self {
        self.record(t, frame);
        self
    }

    /// The records added from now on were captured on interface `i` (kept by
    /// [`PcapBuilder::finish_pcapng`]; a pcap has one interface).
    pub fn on_interface(&mut self, i: u32) -> &mut Self {
        self.interface = i;
        self
    }

    /// The packets added from now on carry the IPv4 TTL `ttl` (64 until this is called).
    pub fn with_ttl(&mut self, ttl: u8) -> &mut Self {
        self.ttl = Some(ttl);
        self
    }

    fn ipv4(&self, src: &str, dst: &str) -> etherparse::PacketBuilderStep<etherparse::IpHeaders> {
        let a: std::net::Ipv4Addr = src.parse().expect("IPv4 literal");
        let b: std::net::Ipv4Addr = dst.parse().expect("IPv4 literal");
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]).ipv4(
            a.octets(),
            b.octets(),
            self.ttl.unwrap_or(64),
        )
    }

    /// The usual opening of a test connection: `c` sends its SYN (sequence 100) at 0 s, `s` its SYN/ACK
    /// (sequence 500) at 1 ms, `c` the ACK at 2 ms; data then starts at 101 and 501.
    pub fn handshake(&mut self, c: (&str, u16), s: (&str, u16)) -> &mut Self {
        self.tcp(0.0, c, s, 100, 0, tcp_flags::SYN, &[])
            .tcp(0.001, s, c, 500, 101, tcp_flags::SYN | tcp_flags::ACK, &[])
            .tcp(0.002, c, s, 101, 501, tcp_flags::ACK, &[])
    }

    /// A TCP segment `src:sport → dst:dport` at `t` seconds.
    #[allow(clippy::too_many_arguments)]
    pub fn tcp(
        &mut self,
        t: f64,
        src: (&str, u16),
        dst: (&str, u16),
        seq: u32,
        ack: u32,
        flags: u8,
        payload: &[u8],
    ) -> &mut Self {
        let b = with_tcp_flags(
            self.ipv4(src.0, dst.0).tcp(src.1, dst.1, seq, 64240),
            ack,
            flags,
        );
        let mut frame = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut frame, payload).expect("frame builds");
        self.record(t, &frame);
        self
    }

    /// A UDP datagram at `t` seconds.
    pub fn udp(&mut self, t: f64, src: (&str, u16), dst: (&str, u16), payload: &[u8]) -> &mut Self {
        let b = self.ipv4(src.0, dst.0).udp(src.1, dst.1);
        let mut frame = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut frame, payload).expect("frame builds");
        self.record(t, &frame);
        self
    }

    /// A complete handshake at `t` (1 ms per step) and a FIN exchange 2 ms later.
    pub fn connection(&mut self, t: f64, c: (&str, u16), s: (&str, u16)) -> &mut Self {
        use tcp_flags::{ACK, FIN, SYN};
        self.tcp(t, c, s, 100, 0, SYN, &[])
            .tcp(t + 0.001, s, c, 500, 101, SYN | ACK, &[])
            .tcp(t + 0.002, c, s, 101, 501, ACK, &[])
            .tcp(t + 0.003, c, s, 101, 501, FIN | ACK, &[])
            .tcp(t + 0.004, s, c, 501, 102, FIN | ACK, &[])
            .tcp(t + 0.005, c, s, 102, 502, ACK, &[])
    }

    /// One connection from `c` to `s` at `t0`: the handshake, then `steps` in order (`true`:
    /// from the client), each a segment of its own 1 ms after the previous, every one in
    /// sequence, then a FIN exchange.
    pub fn session(
        &mut self,
        t0: f64,
        c: (&str, u16),
        s: (&str, u16),
        steps: &[(bool, &[u8])],
    ) -> &mut Self {
        use tcp_flags::{ACK, FIN, SYN};
        let (mut cseq, mut sseq) = (101u32, 501u32);
        self.tcp(t0, c, s, 100, 0, SYN, &[])
            .tcp(t0 + 0.001, s, c, 500, 101, SYN | ACK, &[])
            .tcp(t0 + 0.002, c, s, 101, 501, ACK, &[]);
        let mut t = t0 + 0.002;
        for (from_client, payload) in steps {
            t += 0.001;
            if *from_client {
                self.tcp(t, c, s, cseq, sseq, ACK, payload);
                cseq += payload.len() as u32;
            } else {
                self.tcp(t, s, c, sseq, cseq, ACK, payload);
                sseq += payload.len() as u32;
            }
        }
        self.tcp(t + 0.001, c, s, cseq, sseq, FIN | ACK, &[])
            .tcp(t + 0.002, s, c, sseq, cseq + 1, FIN | ACK, &[])
            .tcp(t + 0.003, c, s, cseq + 1, sseq + 1, ACK, &[])
    }

    /// The pcap file's bytes.
    pub fn finish(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24 + self.records.len());
        out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&65_535u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&self.records);
        out
    }

    /// The same records as a pcapng file (little-endian, one section), with an Ethernet
    /// interface (µs timestamps) for every interface number up to the highest used.
    pub fn finish_pcapng(&self) -> Vec<u8> {
        fn block(out: &mut Vec<u8>, kind: u32, body: &[u8]) {
            let padded = body.len().div_ceil(4) * 4;
            let len = (12 + padded) as u32;
            out.extend_from_slice(&kind.to_le_bytes());
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(body);
            out.resize(out.len() + padded - body.len(), 0);
            out.extend_from_slice(&len.to_le_bytes());
        }
        let mut out = Vec::new();
        let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&(-1i64).to_le_bytes());
        block(&mut out, 0x0a0d_0d0a, &shb);
        let count = self.interfaces.iter().max().map_or(1, |m| m + 1);
        for _ in 0..count {
            let mut idb = 1u16.to_le_bytes().to_vec(); // Ethernet
            idb.extend_from_slice(&0u16.to_le_bytes());
            idb.extend_from_slice(&65_535u32.to_le_bytes());
            block(&mut out, 1, &idb);
        }
        let mut rec = &self.records[..];
        for &iface in &self.interfaces {
            let word = |i: usize| u32::from_le_bytes(rec[i * 4..i * 4 + 4].try_into().unwrap());
            let us = u64::from(word(0)) * 1_000_000 + u64::from(word(1));
            let (caplen, wire) = (word(2), word(3));
            let mut epb = iface.to_le_bytes().to_vec();
            epb.extend_from_slice(&((us >> 32) as u32).to_le_bytes());
            epb.extend_from_slice(&(us as u32).to_le_bytes());
            epb.extend_from_slice(&caplen.to_le_bytes());
            epb.extend_from_slice(&wire.to_le_bytes());
            epb.extend_from_slice(&rec[16..16 + caplen as usize]);
            block(&mut out, 6, &epb);
            rec = &rec[16 + caplen as usize..];
        }
        out
    }
}

/// The body of a TLS 1.2 ClientHello (one cipher suite) offering the ALPN protocols `alpn`;
/// the caller wraps it in a handshake message and a record.
pub fn client_hello_body(alpn: &[&str]) -> Vec<u8> {
    let mut list = Vec::new();
    for a in alpn {
        list.push(a.len() as u8);
        list.extend_from_slice(a.as_bytes());
    }
    let mut ext = 16u16.to_be_bytes().to_vec();
    ext.extend_from_slice(&((list.len() + 2) as u16).to_be_bytes());
    ext.extend_from_slice(&(list.len() as u16).to_be_bytes());
    ext.extend_from_slice(&list);
    let mut ch = vec![3, 3];
    ch.extend_from_slice(&[7; 32]);
    ch.extend_from_slice(&[0, 0, 2, 0xc0, 0x2f, 1, 0]);
    ch.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    ch.extend_from_slice(&ext);
    ch
}

/// The TCP segment being built in `b` with `flags` ([`tcp_flags`]: SYN, ACK acknowledging
/// `ack`, FIN, RST) set: for a test that builds its own frames (IPv6, tunnels, raw IP).
pub fn with_tcp_flags(
    mut b: etherparse::PacketBuilderStep<etherparse::TcpHeader>,
    ack: u32,
    flags: u8,
) -> etherparse::PacketBuilderStep<etherparse::TcpHeader> {
    if flags & tcp_flags::SYN != 0 {
        b = b.syn();
    }
    if flags & tcp_flags::ACK != 0 {
        b = b.ack(ack);
    }
    if flags & tcp_flags::FIN != 0 {
        b = b.fin();
    }
    if flags & tcp_flags::RST != 0 {
        b = b.rst();
    }
    b
}

/// One TCP connection built segment by segment: the handshake at `t` (client sequence 100,
/// server 500), then data each way in sequence.
pub struct Conn {
    /// The client's address and port.
    pub c: (&'static str, u16),
    /// The server's address and port.
    pub s: (&'static str, u16),
    /// The client's next sequence number.
    pub cseq: u32,
    /// The server's next sequence number.
    pub sseq: u32,
}

impl Conn {
    /// The handshake at `t` (SYN/ACK 1 ms later, ACK 1 ms after that).
    pub fn open(
        b: &mut PcapBuilder,
        t: f64,
        c: (&'static str, u16),
        s: (&'static str, u16),
    ) -> Self {
        b.tcp(t, c, s, 100, 0, tcp_flags::SYN, &[])
            .tcp(
                t + 0.001,
                s,
                c,
                500,
                101,
                tcp_flags::SYN | tcp_flags::ACK,
                &[],
            )
            .tcp(t + 0.002, c, s, 101, 501, tcp_flags::ACK, &[]);
        Conn {
            c,
            s,
            cseq: 101,
            sseq: 501,
        }
    }

    /// The client sends `data` at `t`.
    pub fn client(&mut self, b: &mut PcapBuilder, t: f64, data: &[u8]) -> &mut Self {
        b.tcp(
            t,
            self.c,
            self.s,
            self.cseq,
            self.sseq,
            tcp_flags::ACK,
            data,
        );
        self.cseq += data.len() as u32;
        self
    }

    /// The server sends `data` at `t`.
    pub fn server(&mut self, b: &mut PcapBuilder, t: f64, data: &[u8]) -> &mut Self {
        b.tcp(
            t,
            self.s,
            self.c,
            self.sseq,
            self.cseq,
            tcp_flags::ACK,
            data,
        );
        self.sseq += data.len() as u32;
        self
    }

    /// A request `req` at `t`, answered with `resp` at `t_resp`.
    pub fn call(&mut self, b: &mut PcapBuilder, t: f64, req: &[u8], t_resp: f64, resp: &[u8]) {
        self.client(b, t, req);
        self.server(b, t_resp, resp);
    }

    /// The client closes at `t`, the server 1 ms later, the client acknowledges.
    pub fn close(&mut self, b: &mut PcapBuilder, t: f64) {
        b.tcp(
            t,
            self.c,
            self.s,
            self.cseq,
            self.sseq,
            tcp_flags::FIN | tcp_flags::ACK,
            &[],
        )
        .tcp(
            t + 0.001,
            self.s,
            self.c,
            self.sseq,
            self.cseq + 1,
            tcp_flags::FIN | tcp_flags::ACK,
            &[],
        )
        .tcp(
            t + 0.002,
            self.c,
            self.s,
            self.cseq + 1,
            self.sseq + 1,
            tcp_flags::ACK,
            &[],
        );
    }
}

/// An Ethernet header (locally administered addresses) for an IPv4 packet.
pub const ETHERNET_IPV4: [u8; 14] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];

/// The fragment of IPv4 packet `ip` (20-byte header) carrying its payload bytes
/// `from..to`, with identification `id`, as an Ethernet frame ([`ETHERNET_IPV4`]). `more`: more fragments follow.
pub fn ipv4_fragment(ip: &[u8], id: u16, from: usize, to: usize, more: bool) -> Vec<u8> {
    assert_eq!(from % 8, 0, "fragment offsets are in 8-byte units");
    let mut h = ip[..20].to_vec();
    h[2..4].copy_from_slice(&((20 + to - from) as u16).to_be_bytes());
    h[4..6].copy_from_slice(&id.to_be_bytes());
    let off = (from / 8) as u16 | if more { 0x2000 } else { 0 };
    h[6..8].copy_from_slice(&off.to_be_bytes());
    let mut f = ETHERNET_IPV4.to_vec();
    f.extend_from_slice(&h);
    f.extend_from_slice(&ip[20 + from..20 + to]);
    f
}

/// A TLS record of content type `ty` holding `body`.
pub fn tls_record(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut r = vec![ty, 3, 3];
    r.extend_from_slice(&(body.len() as u16).to_be_bytes());
    r.extend_from_slice(body);
    r
}

/// A handshake record holding one message of type `ty`.
pub fn tls_handshake_record(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![ty];
    m.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    m.extend_from_slice(body);
    tls_record(22, &m)
}

/// The sorted destination ports of rule `rule`'s findings.
pub fn finding_ports(ev: &[Value], rule: &str) -> Vec<u64> {
    let mut v: Vec<_> = with_rule(ev, rule)
        .iter()
        .map(|f| f["destination"]["port"].as_u64().expect("a port"))
        .collect();
    v.sort_unstable();
    v
}

/// A port unreachable from `from` about the UDP packet `quoted` (src, dst) carrying
/// `payload`: the packet's IP header and first 8 bytes quoted, as a host sends it.
pub fn port_unreachable(
    from: [u8; 4],
    quoted: ((&str, u16), (&str, u16)),
    payload: &[u8],
) -> Vec<u8> {
    use etherparse::{Icmpv4Type, PacketBuilder, icmpv4::DestUnreachableHeader};
    let ip = |a: &str| {
        a.parse::<std::net::Ipv4Addr>()
            .expect("IPv4 literal")
            .octets()
    };
    let ((src, sport), (dst, dport)) = quoted;
    let mut q = Vec::new();
    PacketBuilder::ipv4(ip(src), ip(dst), 64)
        .udp(sport, dport)
        .write(&mut q, payload)
        .expect("quoted packet builds");
    q.truncate(28);
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(from, ip(src), 64)
        .icmpv4(Icmpv4Type::DestinationUnreachable(
            DestUnreachableHeader::Port,
        ))
        .write(&mut v, &q)
        .expect("ICMP error builds");
    v
}

/// A DNS query (type A, recursion desired) for `name` with `id`.
pub fn dns_a_query(id: u16, name: &str) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for l in name.split('.') {
        m.push(l.len() as u8);
        m.extend_from_slice(l.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    m
}

/// A DNS response for `name` (type A): id, rcode and (address, TTL) answers, as a server sends
/// it (the question repeated, answers pointing at it).
pub fn dns_a_response(id: u16, name: &str, rcode: u8, answers: &[(&str, u32)]) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&(0x8180u16 | u16::from(rcode)).to_be_bytes());
    for n in [1u16, answers.len() as u16, 0, 0] {
        m.extend_from_slice(&n.to_be_bytes());
    }
    for l in name.split('.') {
        m.push(l.len() as u8);
        m.extend_from_slice(l.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    for (a, ttl) in answers {
        let a: std::net::Ipv4Addr = a.parse().expect("IPv4 literal");
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        m.extend_from_slice(&ttl.to_be_bytes());
        m.extend_from_slice(&[0, 4]);
        m.extend_from_slice(&a.octets());
    }
    m
}
