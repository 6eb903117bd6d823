//! Review of defects known in the capture sources, topology and configuration: a pcapng file
//! may describe any number of interfaces (memory grows with the file), interface numbers that
//! restart in each pcapng section are taken as one link, an endpoint's `vanished_at` measured
//! from different moments for refused and unanswered attempts (and kept from an attempt that
//! turned out answered), durations below a nanosecond and `min_failed_attempts = 0` taken
//! silently, and an output that is a hard link to an input. Captures are built here (pcapng
//! byte by byte where the builder has no helper); expected values follow from the
//! construction, or from capinfos and tshark where named.

use observer::config::Config;
use observer_tests::tcp_flags::{ACK, RST, SYN};
use observer_tests::{
    PCAP_BUILDER_EPOCH, PcapBuilder, ScratchDir, ScratchFile, download, finding_to, have,
    many_servers, observer_outcome, run, stat, with_rule,
};
use serde_json::Value;
use std::path::Path;

/// The summary's record of the run's one input.
fn input(events: &[Value]) -> &Value {
    &events.last().expect("a summary")["observer"]["inputs"][0]
}

/// Seconds after the builder's epoch, as observer writes times.
fn at(t: f64) -> String {
    let ns = PCAP_BUILDER_EPOCH as i64 * 1_000_000_000 + (t * 1e6).round() as i64 * 1_000;
    observer::time::Timestamp(ns).rfc3339_micros()
}

/// The size of one interface description block as [`PcapBuilder::finish_pcapng`] writes it
/// (a link type, a reserved field and a snap length, no options), and of its section header.
const IDB_BYTES: usize = 20;
const SHB_BYTES: usize = 28;

/// Item 1. A section may describe interfaces up to a documented limit (65,536): a file of
/// exactly that many, with packets on the last, reads complete.
#[test]
fn a_section_with_the_most_interfaces_allowed_is_read() {
    let mut b = PcapBuilder::default();
    b.on_interface(65_535)
        .connection(0.0, ("10.0.0.1", 40000), ("10.0.1.1", 80));
    let f = ScratchFile::new("many-idbs.pcapng", &b.finish_pcapng());
    let (ev, _) = run(&[f.to_path_buf()], &Config::default());
    assert_eq!(input(&ev)["status"], "complete", "{:#}", input(&ev));
    assert_eq!(stat(&ev, "frames.total"), 6);
}

/// Item 1. One interface more than the limit: the reader used to keep every description
/// (about 1.2 bytes of memory per byte of a file of only descriptions). It now stops at the
/// block past the limit with an error naming the file and that block's offset, and what was
/// read before (a connection on interface 0) is analyzed.
#[test]
fn a_section_with_more_interfaces_than_the_limit_stops_at_the_block_past_it() {
    let mut b = PcapBuilder::default();
    b.on_interface(0)
        .connection(0.0, ("10.0.0.1", 40000), ("10.0.1.1", 80));
    // Interface 65,536 (the 65,537th) is described, so the builder writes 65,537 IDBs, all
    // before the packets: the one past the limit starts after the section header and 65,536.
    b.on_interface(65_536)
        .connection(1.0, ("10.0.0.1", 40001), ("10.0.1.1", 80));
    let bytes = b.finish_pcapng();
    let f = ScratchFile::new("too-many-idbs.pcapng", &bytes);
    let (ev, _) = run(&[f.to_path_buf()], &Config::default());
    let inp = input(&ev);
    assert_eq!(inp["status"], "partial", "{inp:#}");
    let err = inp["error"].as_str().expect("an error");
    let offset = SHB_BYTES + 65_536 * IDB_BYTES;
    assert!(
        err.contains(&format!("byte offset {offset}")) && err.contains("65,536"),
        "{err}"
    );
    assert!(err.contains("too-many-idbs.pcapng"), "{err}");
    // Nothing after the damage was read (the packets come after every description).
    assert_eq!(stat(&ev, "frames.total"), 0);

    // Descriptions come first here; with packets before the block past the limit, those
    // packets are analyzed.
    let mut head = PcapBuilder::default();
    head.connection(0.0, ("10.0.0.1", 40000), ("10.0.1.1", 80));
    let mut bytes = head.finish_pcapng();
    let packets_end = bytes.len();
    for _ in 0..65_536 {
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&(IDB_BYTES as u32).to_le_bytes());
        bytes.extend_from_slice(&1u16.to_le_bytes());
        bytes.extend_from_slice(&0u16.to_le_bytes());
        bytes.extend_from_slice(&65_535u32.to_le_bytes());
        bytes.extend_from_slice(&(IDB_BYTES as u32).to_le_bytes());
    }
    let f = ScratchFile::new("idbs-after-packets.pcapng", &bytes);
    let (ev, _) = run(&[f.to_path_buf()], &Config::default());
    let inp = input(&ev);
    assert_eq!(inp["status"], "partial", "{inp:#}");
    // The section already had one interface: the 65,536th appended block is the one too many.
    let offset = packets_end + 65_535 * IDB_BYTES;
    let err = inp["error"].as_str().expect("an error");
    assert!(err.contains(&format!("byte offset {offset}")), "{err}");
    assert_eq!(stat(&ev, "frames.total"), 6);
    assert_eq!(stat(&ev, "flows.tcp"), 1);
}

/// Item 2. Two captures of different links concatenated (`cat a.pcapng b.pcapng`): each
/// section's first interface is numbered 0 in its own section, but they are two links. Each
/// download was alone on its link, so each has all of its link's bytes; before, the two were
/// added into one link (2 links expected, 1 counted; each share about 0.5).
#[test]
fn interfaces_of_two_pcapng_sections_are_two_links() {
    let mut a = PcapBuilder::default();
    let one = download(&mut a, 0.0, ("10.0.0.1", 40000), ("10.0.1.1", 80), 40);
    let mut b = PcapBuilder::default();
    let two = download(&mut b, 0.0, ("10.0.0.3", 40000), ("10.0.1.3", 80), 40);
    assert_eq!(one.0, two.0);
    let mut bytes = a.finish_pcapng();
    bytes.extend_from_slice(&b.finish_pcapng());
    let f = ScratchFile::new("two-sections.pcapng", &bytes);
    let mut cfg = Config::default();
    cfg.bandwidth.bulk_threshold_bytes = 10_000;
    let (ev, _) = run(&[f.to_path_buf()], &cfg);
    assert_eq!(stat(&ev, "bandwidth.links"), 2);
    for server in ["10.0.1.1", "10.0.1.3"] {
        let share =
            finding_to(&ev, "bandwidth.bulk_transfer", server)["fallacy"]["evidence"]["link_share"]
                .as_f64()
                .expect("a share");
        assert!((share - 1.0).abs() < 1e-9, "{server}: {share}");
    }
    // The oracle: capinfos counts the interfaces of the file across its sections.
    if have("capinfos") {
        let out = std::process::Command::new("capinfos")
            .arg(&*f)
            .output()
            .expect("capinfos runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("Number of interfaces in file: 2"),
            "capinfos: {text}"
        );
    }
}

/// Item 2. A capacity configured for interface 1 applies to the second section's interface
/// (the file's second interface, as capinfos numbers them), not to nothing: its download of
/// 400 kB in 2 s (1.7 Mbit/s) saturates a 1 Mbit/s link; the first section's link has no
/// capacity.
#[test]
fn a_capacity_for_the_second_interface_applies_to_the_second_section() {
    let mut a = PcapBuilder::default();
    download(&mut a, 0.0, ("10.0.0.1", 40000), ("10.0.1.1", 80), 400);
    let mut b = PcapBuilder::default();
    download(&mut b, 0.0, ("10.0.0.3", 40000), ("10.0.1.3", 80), 400);
    let mut bytes = a.finish_pcapng();
    bytes.extend_from_slice(&b.finish_pcapng());
    let f = ScratchFile::new("two-sections-cap.pcapng", &bytes);
    let cfg = Config::parse(
        Path::new("t.toml"),
        "[bandwidth.interface_capacity_mbps]\n\"1\" = 1\n",
    )
    .expect("config");
    let (ev, _) = run(&[f.to_path_buf()], &cfg);
    let sat = with_rule(&ev, "bandwidth.saturation");
    assert!(!sat.is_empty(), "a saturated link");
    for s in &sat {
        assert_eq!(s["fallacy"]["evidence"]["interface"], 1, "{s:#}");
        let talkers = s["fallacy"]["evidence"]["top_talkers"].to_string();
        assert!(
            talkers.contains("10.0.1.3") && !talkers.contains("10.0.1.1"),
            "{talkers}"
        );
    }
}

/// An endpoint at 10.0.1.1:80 that served one connection at 0 s (client 10.0.0.1).
fn served() -> PcapBuilder {
    let mut b = PcapBuilder::default();
    b.connection(0.0, ("10.0.0.1", 40000), ("10.0.1.1", 80));
    b
}

/// A connection attempt from port `port` with SYNs at each of `syns`, then (if `rst` is set)
/// the server's reset at that time.
fn attempt(b: &mut PcapBuilder, port: u16, syns: &[f64], rst: Option<f64>) {
    let (c, s) = (("10.0.0.1", port), ("10.0.1.1", 80));
    for &t in syns {
        b.tcp(t, c, s, 7, 0, SYN, &[]);
    }
    if let Some(t) = rst {
        b.tcp(t, s, c, 0, 8, RST | ACK, &[]);
    }
}

/// The one `endpoint.vanished` finding's evidence.
fn vanished(ev: &[Value]) -> &Value {
    let v = with_rule(ev, "endpoint.vanished");
    assert_eq!(v.len(), 1, "{v:#?}");
    &v[0]["fallacy"]["evidence"]
}

/// Item 3. `vanished_at` is the first failure, and an unanswered attempt fails at its first
/// SYN: a refused attempt must too. Here the first failed attempt's SYNs (10, 11, 13 s) went
/// unanswered until the server's reset at 13.001 s; it failed from 10 s, as an attempt
/// without the reset would have. It was reported vanished at 13.001 s.
#[test]
fn a_refused_attempt_fails_at_its_first_syn_as_an_unanswered_one() {
    let mut b = served();
    attempt(&mut b, 40001, &[10.0, 11.0, 13.0], Some(13.001));
    attempt(&mut b, 40002, &[20.0], Some(20.0005));
    b.udp(40.0, ("10.0.0.9", 5000), ("10.0.0.8", 5001), b"tick");
    let ev = observer_tests::analyze_built(&b, "refused-late.pcap");
    let e = vanished(&ev);
    assert_eq!(e["refused"], 2, "{e:#}");
    assert_eq!(e["unanswered"], 0, "{e:#}");
    assert_eq!(e["vanished_at"], at(10.0), "{e:#}");
    assert_eq!(e["last_failure_at"], at(20.0), "{e:#}");
}

/// Item 3. An attempt counted unanswered early (three SYNs at 10, 11, 13 s) whose client then
/// acknowledges a SYN/ACK the capture missed (13.5 s) was no failure: the outage started with
/// the next failed attempt (refused, SYN at 12 s), not at 10 s as it was reported.
#[test]
fn an_attempt_taken_back_does_not_keep_the_outage_start() {
    let mut b = served();
    let (c, s) = (("10.0.0.1", 40001), ("10.0.1.1", 80));
    b.tcp(10.0, c, s, 7, 0, SYN, &[])
        .tcp(11.0, c, s, 7, 0, SYN, &[]);
    attempt(&mut b, 40002, &[12.0], Some(12.0005));
    b.tcp(13.0, c, s, 7, 0, SYN, &[])
        .tcp(13.5, c, s, 8, 501, ACK, &[]);
    attempt(&mut b, 40003, &[30.0], Some(30.0005));
    b.udp(40.0, ("10.0.0.9", 5000), ("10.0.0.8", 5001), b"tick");
    let ev = observer_tests::analyze_built(&b, "taken-back.pcap");
    let e = vanished(&ev);
    assert_eq!(e["refused"], 2, "{e:#}");
    assert_eq!(e["unanswered"], 0, "{e:#}");
    assert_eq!(e["failed_attempts"], 2, "{e:#}");
    assert_eq!(e["vanished_at"], at(12.0), "{e:#}");
    assert_eq!(e["last_failure_at"], at(30.0), "{e:#}");
}

/// Item 4. A duration below a nanosecond (the program's resolution) became 0 and was taken
/// as given; it is refused naming the key, the value and the line. `report.active_group_secs`
/// allows 0 (off), but not a value that rounds to it.
#[test]
fn a_duration_below_a_nanosecond_is_refused() {
    for (section, key, value) in [
        ("flows", "closed_linger_secs", "1e-12"),
        ("flows", "tcp_idle_timeout_secs", "1e-10"),
        ("topology", "report_after_idle_secs", "5e-10"),
        ("report", "active_group_secs", "1e-12"),
    ] {
        let text = format!("# comment\n[{section}]\n{key} = {value}\n");
        let e = Config::parse(Path::new("c.toml"), &text)
            .map(|_| ())
            .expect_err(key)
            .to_string();
        assert!(
            e.contains(&format!("`{section}.{key}`")) && e.contains("line 3") && e.contains(value),
            "{key}: {e}"
        );
    }
    // One nanosecond is a duration.
    Config::parse(Path::new("c.toml"), "[flows]\nclosed_linger_secs = 1e-9\n").expect("1 ns");
}

/// Item 4. `min_failed_attempts = 0` behaved as 1 (an outage needs a failure): refused,
/// naming the key and the line.
#[test]
fn zero_failed_attempts_is_refused() {
    let e = Config::parse(
        Path::new("c.toml"),
        "[topology]\n\nmin_failed_attempts = 0\n",
    )
    .map(|_| ())
    .expect_err("0 refused")
    .to_string();
    assert!(
        e.contains("`topology.min_failed_attempts`") && e.contains("line 3"),
        "{e}"
    );
    Config::parse(Path::new("c.toml"), "[topology]\nmin_failed_attempts = 1\n").expect("1");
}

/// Item 5. An events file that is a hard link to the capture: the outputs-are-inputs check
/// compared paths only, so the events were appended to the capture being read. Refused,
/// naming the input, and the capture left as it was; two outputs that are one file through
/// a hard link are refused too.
#[test]
fn an_output_hard_linked_to_an_input_is_refused() {
    let dir = ScratchDir::new("hardlink");
    let cap = dir.join("in.pcap");
    let bytes = many_servers(3).finish();
    std::fs::write(&cap, &bytes).unwrap();
    let link = dir.join("events.ndjson");
    std::fs::hard_link(&cap, &link).unwrap();
    let spec = format!("file:{}", link.display());
    let (code, out, err) = observer_outcome(&["analyze", "-q", "-o", &spec, cap.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("in.pcap") && err.contains("input"), "{err}");
    assert!(out.is_empty(), "{out}");
    assert_eq!(std::fs::read(&cap).unwrap(), bytes, "the capture kept");

    let a = dir.join("a.ndjson");
    std::fs::write(&a, b"").unwrap();
    let b = dir.join("b.ndjson");
    std::fs::hard_link(&a, &b).unwrap();
    let (sa, sb) = (
        format!("file:{}", a.display()),
        format!("file:{}", b.display()),
    );
    let (code, _, err) =
        observer_outcome(&["analyze", "-q", "-o", &sa, "-o", &sb, cap.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("a.ndjson") && err.contains("b.ndjson"),
        "{err}"
    );
    assert_eq!(std::fs::read(&a).unwrap(), b"", "nothing written");
}
