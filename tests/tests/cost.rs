//! Transport cost (fallacy 7) on a capture of real transfers between three namespaces standing
//! for two zones of one region and a zone of another (fixtures/make-cost-capture.sh, zone map
//! fixtures/cost-zones.toml). Bytes per zone pair and direction are tshark's `ip.len` sums
//! (fixtures/cost.expected.txt); prices are the documented defaults, so every dollar figure
//! below is computed here from those two.

use observer_tests::{analyze_raw, findings, ndjson, stat};
use serde_json::Value;
use std::collections::HashMap;

const CROSS_ZONE_EACH_WAY: f64 = 0.01;
const INTER_REGION: f64 = 0.02;
const MONTH_SECS: f64 = 30.0 * 86_400.0;

fn expected() -> HashMap<String, String> {
    observer_tests::expected_sections("cost.expected.txt")
        .remove("")
        .expect("cost.expected.txt")
}

fn run() -> Vec<Value> {
    ndjson(&analyze_raw(&[
        "--config",
        "fixtures/cost-zones.toml",
        "fixtures/cost-zones.pcap",
    ]))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * b.abs().max(1e-9) + 1e-6
}

#[test]
fn bytes_per_zone_pair_equal_the_capture_and_are_priced() {
    let e = expected();
    let ev = run();
    let summary = ev.last().unwrap();
    let cost = &summary["stats"]["cost"];
    let pairs = cost["bytes"].as_array().expect("stats.cost.bytes");
    let duration: f64 = e["duration_s"].parse().unwrap();
    assert!(close(cost["observed_secs"].as_f64().unwrap(), duration));
    let zones = [
        ("use1-az1", "us-east-1"),
        ("use1-az2", "us-east-1"),
        ("usw2-az1", "us-west-2"),
    ];
    let mut total = 0.0;
    let mut seen = 0;
    for (a, ra) in zones {
        for (b, rb) in zones {
            let Some(want) = e.get(&format!("{a}_to_{b}_ip_bytes")) else {
                continue;
            };
            let want: u64 = want.parse().unwrap();
            let row = pairs
                .iter()
                .find(|p| p["from_zone"] == a && p["to_zone"] == b)
                .unwrap_or_else(|| panic!("{a} -> {b} in {pairs:#?}"));
            assert_eq!(row["bytes"], want, "{a} -> {b}");
            assert_eq!(row["from_region"], ra);
            assert_eq!(row["to_region"], rb);
            let (category, per_gb) = if ra == rb {
                ("cross_zone", 2.0 * CROSS_ZONE_EACH_WAY)
            } else {
                ("inter_region", INTER_REGION)
            };
            assert_eq!(row["category"], category, "{a} -> {b}");
            let usd = want as f64 / 1e9 * per_gb;
            assert!(
                close(row["usd"].as_f64().unwrap(), usd),
                "{a} -> {b}: {row}"
            );
            total += usd;
            seen += 1;
        }
    }
    assert_eq!(seen, 6, "six directed pairs in the expected file");
    assert_eq!(pairs.len(), 6, "no other pair: {pairs:#?}");
    // Packets per pair too (every packet is a TCP packet of one of the four transfers).
    let pk = |a: &str, b: &str| -> u64 {
        pairs
            .iter()
            .find(|p| p["from_zone"] == a && p["to_zone"] == b)
            .unwrap()["packets"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(
        pk("use1-az1", "use1-az2"),
        e["za_to_zb_packets"].parse::<u64>().unwrap()
    );
    assert_eq!(
        pk("usw2-az1", "use1-az1"),
        e["zc_to_za_packets"].parse::<u64>().unwrap()
    );
    assert!(close(cost["usd"].as_f64().unwrap(), total));
    assert!(close(
        cost["usd_per_month"].as_f64().unwrap(),
        total * MONTH_SECS / duration
    ));
    assert_eq!(
        stat(&ev, "frames.total"),
        e["packets"].parse::<u64>().unwrap()
    );

    // One finding per priced pair, the same figures.
    let f = findings(&ev);
    let zp: Vec<&&Value> = f
        .iter()
        .filter(|f| f["rule"]["name"] == "cost.zone_pair")
        .collect();
    assert_eq!(zp.len(), 6);
    for z in &zp {
        assert_eq!(z["fallacy"]["id"], 7);
        let ze = &z["fallacy"]["evidence"];
        let row = pairs
            .iter()
            .find(|p| p["from_zone"] == ze["from_zone"] && p["to_zone"] == ze["to_zone"])
            .unwrap();
        assert_eq!(ze["bytes"], row["bytes"]);
        assert!(close(
            ze["usd"].as_f64().unwrap(),
            row["usd"].as_f64().unwrap()
        ));
        let month = ze["usd"].as_f64().unwrap() * MONTH_SECS / duration;
        assert!(close(ze["usd_per_month"].as_f64().unwrap(), month), "{ze}");
    }
}

#[test]
fn top_talkers_are_the_costliest_host_pairs() {
    let e = expected();
    let ev = run();
    // One host per zone, so each host pair carries its zone pair's bytes; costs computed from
    // the expected bytes and the default prices.
    let hosts = [
        ("za", "10.99.1.1"),
        ("zb", "10.99.2.1"),
        ("zc", "10.99.3.1"),
    ];
    let mut want: Vec<(String, String, u64, f64)> = Vec::new();
    for (a, ha) in hosts {
        for (b, hb) in hosts {
            if let Some(bytes) = e.get(&format!("{a}_to_{b}_ip_bytes")) {
                let bytes: u64 = bytes.parse().unwrap();
                let same_region = a != "zc" && b != "zc";
                let per_gb = if same_region {
                    2.0 * CROSS_ZONE_EACH_WAY
                } else {
                    INTER_REGION
                };
                want.push((ha.into(), hb.into(), bytes, bytes as f64 / 1e9 * per_gb));
            }
        }
    }
    want.sort_by(|x, y| y.3.total_cmp(&x.3));
    let f = findings(&ev);
    let talkers: Vec<&&Value> = f
        .iter()
        .filter(|f| f["rule"]["name"] == "cost.top_talker")
        .collect();
    assert_eq!(talkers.len(), 5, "[cost] top_talkers defaults to 5");
    for (i, t) in talkers.iter().enumerate() {
        let te = &t["fallacy"]["evidence"];
        assert_eq!(te["rank"], i + 1);
        assert_eq!(te["bytes"], want[i].2, "rank {}", i + 1);
        assert!(close(te["usd"].as_f64().unwrap(), want[i].3));
        let msg = t["message"].as_str().unwrap();
        assert!(
            msg.contains(&format!("{} (", want[i].0))
                && msg.contains(&format!("to {} (", want[i].1)),
            "{msg}"
        );
    }
}

#[test]
fn without_a_zone_map_there_is_no_cost_output() {
    let ev = ndjson(&analyze_raw(&["fixtures/cost-zones.pcap"]));
    assert!(ev.last().unwrap()["stats"].get("cost").is_none());
    assert!(findings(&ev).iter().all(|f| f["fallacy"]["id"] != 7));
}

#[test]
fn zone_map_and_prices_are_validated_with_the_line() {
    for (text, key, line) in [
        (
            "[[zone]]\ncidr = \"10.0.0.0/8\"\nzone = \"a\"\nregion = \"\"\n",
            "zone[0]",
            1,
        ),
        (
            "[[zone]]\ncidr = \"10.0.0.0/24\"\nzone = \"a\"\nregion = \"r1\"\n\n[[zone]]\ncidr = \"10.0.1.0/24\"\nzone = \"a\"\nregion = \"r2\"\n",
            "zone[0].region",
            1,
        ),
        (
            "[pricing]\ncross_zone_usd_per_gb = -1\n",
            "pricing.cross_zone_usd_per_gb",
            2,
        ),
    ] {
        let cfg = observer_tests::ScratchFile::new("cost.toml", text.as_bytes());
        let out = observer_tests::observer(&[
            "analyze",
            "-q",
            "--config",
            cfg.to_str().unwrap(),
            "fixtures/cost-zones.pcap",
        ]);
        assert_eq!(out.status.code(), Some(2), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("line {line}: `{key}`")) && err.contains(cfg.to_str().unwrap()),
            "{err}"
        );
        assert!(out.stdout.is_empty(), "nothing analyzed with a bad config");
    }
    let cfg = observer_tests::ScratchFile::new(
        "cost.toml",
        b"[[zone]]\ncidr = \"10.0.0.0/33\"\nzone = \"a\"\nregion = \"r\"\n",
    );
    let out = observer_tests::observer(&[
        "analyze",
        "-q",
        "--config",
        cfg.to_str().unwrap(),
        "fixtures/cost-zones.pcap",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("10.0.0.0/33"));
}
