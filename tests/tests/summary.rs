//! The human summary's per-fallacy table keeps the most severe findings of each fallacy:
//! checked against the findings the run emitted, on every fixture.

use observer::config::Config;
use observer::finding::Fallacy;
use observer_tests::{root, run};

#[test]
fn top_findings_per_fallacy_are_the_most_severe() {
    let mut checked = 0;
    for entry in std::fs::read_dir(root().join("fixtures")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "pcap") {
            continue;
        }
        let (events, summary) = run(std::slice::from_ref(&path), &Config::default());
        for f in Fallacy::ALL {
            let i = usize::from(f.id() - 1);
            let mut sevs: Vec<u64> = events
                .iter()
                .filter(|e| e["event"]["kind"] == "alert" && e["fallacy"]["id"] == f.id())
                .map(|e| e["event"]["severity"].as_u64().unwrap())
                .collect();
            sevs.sort_unstable_by(|a, b| b.cmp(a));
            let top: Vec<u64> = summary.top[i].iter().map(|t| t.severity as u64).collect();
            assert_eq!(
                top.len(),
                sevs.len().min(3),
                "{} fallacy {}",
                path.display(),
                f.id()
            );
            assert_eq!(
                top,
                sevs[..top.len()],
                "{} fallacy {}",
                path.display(),
                f.id()
            );
            checked += top.len();
        }
    }
    assert!(checked > 10, "the fixtures have findings: {checked}");
}
