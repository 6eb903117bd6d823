//! `observer baseline create|check`: a baseline made on one capture passes on the same traffic
//! (even at other times, from other client ports) and fails, naming it, on a capture with one
//! extra problem. Captures are built packet by packet, so the expected findings follow from
//! construction: a completed connection to :8080 and a refused one to :81; the second capture
//! adds a refused attempt to :82.

use observer_tests::tcp_flags::{ACK, RST, SYN};
use observer_tests::{PcapBuilder, ScratchFile, built_file, ndjson, observer_outcome};

const C: &str = "10.0.0.1";
const S: &str = "10.0.0.2";

fn refused(b: &mut PcapBuilder, t: f64, cport: u16, sport: u16) {
    b.tcp(t, (C, cport), (S, sport), 100, 0, SYN, &[]).tcp(
        t + 0.001,
        (S, sport),
        (C, cport),
        0,
        101,
        RST | ACK,
        &[],
    );
}

/// The known traffic, starting at `t0` with client ports from `cport`.
fn known(b: &mut PcapBuilder, t0: f64, cport: u16) {
    b.connection(t0, (C, cport), (S, 8080));
    refused(b, t0 + 1.0, cport + 1, 81);
}

#[test]
fn same_traffic_passes_and_one_extra_problem_fails_naming_it() {
    let a = built_file("baseline-a.pcap", |b| known(b, 0.0, 40000));
    // The same traffic an hour later, from other client ports.
    let later = built_file("baseline-a-later.pcap", |b| known(b, 3600.0, 50000));
    let extra = built_file("baseline-b.pcap", |b| {
        known(b, 0.0, 40000);
        refused(b, 2.0, 40010, 82);
    });
    let file = ScratchFile::new("baseline.json", b"");
    let bl = file.to_str().unwrap();

    let (code, _, err) =
        observer_outcome(&["baseline", "create", "--baseline", bl, a.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&*file).unwrap()).unwrap();
    let rules: Vec<&str> = saved["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&"tcp.handshake.refused"), "{rules:?}");

    for same in [&a, &later] {
        let (code, out, err) = observer_outcome(&[
            "baseline",
            "check",
            "--baseline",
            bl,
            same.to_str().unwrap(),
        ]);
        assert_eq!(code, Some(0), "{err}");
        assert!(out.is_empty(), "no new finding: {out}");
        assert!(err.contains("0 new finding(s)"), "{err}");
    }

    let (code, out, err) = observer_outcome(&[
        "baseline",
        "check",
        "--baseline",
        bl,
        extra.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{err}");
    let new = ndjson(out.as_bytes());
    assert_eq!(new.len(), 1, "exactly the extra problem: {out}");
    assert_eq!(new[0]["rule"]["name"], "tcp.handshake.refused");
    assert_eq!(new[0]["destination"]["port"], 82);
    assert!(
        err.contains("NEW finding") && err.contains("10.0.0.2:82"),
        "the new finding is named: {err}"
    );

    // A gate above the new finding's severity (medium) lets it through, still listed.
    let (code, _, err) = observer_outcome(&[
        "baseline",
        "check",
        "--baseline",
        bl,
        "--fail-on",
        "high",
        extra.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("new (below --fail-on)"), "{err}");
}

#[test]
fn a_bad_or_missing_baseline_is_named() {
    let a = built_file("baseline-c.pcap", |b| known(b, 0.0, 40000));
    let bad = ScratchFile::new("not-a-baseline.json", b"{\"findings\": 3}");
    let (code, out, err) = observer_outcome(&[
        "baseline",
        "check",
        "--baseline",
        bad.to_str().unwrap(),
        a.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2));
    assert!(out.is_empty());
    assert!(
        err.contains(bad.to_str().unwrap()) && err.contains("not an observer baseline"),
        "{err}"
    );
    let (code, _, err) = observer_outcome(&[
        "baseline",
        "check",
        "--baseline",
        "/nonexistent/baseline.json",
        a.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("/nonexistent/baseline.json"), "{err}");
}

/// A baseline whose fingerprints were edited into capitals (hex is case-blind to a reader)
/// still accepts its findings: the same capture passes, nothing listed as not seen.
#[test]
fn fingerprints_in_capitals_still_match() {
    let a = built_file("baseline-caps.pcap", |b| known(b, 0.0, 40000));
    let file = ScratchFile::new("baseline-caps.json", b"");
    let bl = file.to_str().unwrap();
    let (code, _, err) =
        observer_outcome(&["baseline", "create", "--baseline", bl, a.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let mut saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&*file).unwrap()).unwrap();
    let list = saved["findings"].as_array_mut().unwrap();
    assert!(!list.is_empty());
    for f in list.iter_mut() {
        let fp = f["fingerprint"].as_str().unwrap().to_ascii_uppercase();
        assert!(fp.bytes().any(|b| b.is_ascii_uppercase()), "{fp}");
        f["fingerprint"] = fp.into();
    }
    std::fs::write(&*file, serde_json::to_vec_pretty(&saved).unwrap()).unwrap();
    let (code, out, err) =
        observer_outcome(&["baseline", "check", "--baseline", bl, a.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.is_empty(), "no new finding: {out}");
    assert!(err.contains("0 accepted not seen"), "{err}");
}
