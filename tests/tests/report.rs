//! `observer analyze --report FILE`: the HTML report.
//!
//! * Structure: every section is present and filled for the bundled fixtures, every in-page
//!   link lands on an element, nothing is loaded from elsewhere, and the findings and verdicts
//!   on the page are exactly the NDJSON's of the same run.
//! * Numbers: the retransmission and throughput totals equal tshark's counts on the same
//!   captures (an independent oracle).
//! * Rendering: headless Chromium (`chromium --headless --no-sandbox`) loads the page with no
//!   console message at all (the page's Content-Security-Policy turns any attempt to load or run
//!   something into one), its DOM has every section, and the screenshot is kept as
//!   `target/test-artifacts/report.png`. A control page with one forbidden image proves the
//!   console check can fail. Chromium is installed by `scripts/test.sh`; without it the test
//!   fails unless `OBSERVER_SKIP_BROWSER_TEST=1` says to skip it.
//! * Failure: a report that cannot be written at the end is a clear error naming the path, and
//!   the NDJSON written before it is complete (a path that cannot be written at all is refused
//!   before anything is read: `tests/tests/cli.rs`).

use observer_tests::page::{attr_values, data_values, section};
use observer_tests::{ScratchFile, have, ndjson, observer, root, tshark_fields};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SECTIONS: [&str; 11] = [
    "verdict",
    "findings",
    "latency",
    "throughput",
    "retransmissions",
    "dependencies",
    "cost",
    "plaintext",
    "versions",
    "flows",
    "run",
];

fn fixtures() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root().join("fixtures"))
        .expect("fixtures/")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .map(|p| p.display().to_string())
        .collect();
    v.sort();
    v
}

/// Runs `observer analyze -q --report <scratch> ARGS…`: (NDJSON events, page).
fn report(args: &[&str]) -> (Vec<Value>, String) {
    let page = ScratchFile::new("report.html", b"");
    let mut all = vec!["analyze", "-q", "--report", page.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = observer(&all);
    assert!(
        out.status.success(),
        "observer {all:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = std::fs::read_to_string(&*page).expect("report written");
    (ndjson(&out.stdout), html)
}

/// The full fixture set with the zone map, so every section has something to show.
fn full_report() -> (Vec<Value>, String) {
    let files = fixtures();
    let mut args = vec!["--config", "fixtures/cost-zones.toml"];
    args.extend(files.iter().map(String::as_str));
    report(&args)
}

#[test]
fn every_section_is_filled_every_link_lands_and_nothing_is_loaded() {
    let (events, html) = full_report();
    for id in SECTIONS {
        let s = section(&html, id);
        assert!(
            !s.contains("class=\"muted\">No "),
            "section {id} is empty for the fixtures:\n{s}"
        );
    }
    // In-page links.
    let ids: BTreeSet<&str> = attr_values(&html, "id").into_iter().collect();
    let links: Vec<&str> = attr_values(&html, "href");
    assert!(links.len() > 100, "only {} links", links.len());
    for l in &links {
        let target = l
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("link leaves the page: {l}"));
        assert!(ids.contains(target), "link #{target} lands nowhere");
    }
    // Self-contained: no scripts, nothing fetched, a policy that forbids fetching.
    assert!(!html.contains("<script"), "the page has a script");
    for a in ["src", "href", "xlink:href"] {
        for v in attr_values(&html, a) {
            assert!(!v.contains("//"), "{a}={v} points elsewhere");
        }
    }
    assert!(!html.contains("url("), "CSS fetches something");
    assert!(html.contains("content=\"default-src 'none'"));

    // The findings on the page are the NDJSON's, one row each, and the verdicts count them.
    let alerts: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"]["kind"] == "alert")
        .collect();
    assert!(alerts.len() > 50);
    for a in &alerts {
        let id = a["event"]["id"].as_str().unwrap();
        assert!(
            html.contains(&format!("<tr id=\"finding-{id}\">")),
            "finding {id} ({}) has no row",
            a["rule"]["name"]
        );
    }
    assert_eq!(html.matches("<tr id=\"finding-").count(), alerts.len());
    let mut per_fallacy: BTreeMap<u64, u64> = BTreeMap::new();
    for a in &alerts {
        *per_fallacy
            .entry(a["fallacy"]["id"].as_u64().unwrap())
            .or_default() += 1;
    }
    for id in 1..=8u64 {
        let n = per_fallacy.get(&id).copied().unwrap_or(0);
        assert!(
            html.contains(&format!("data-fallacy=\"{id}\" data-findings=\"{n}\"")),
            "verdict {id} does not say {n} finding(s)"
        );
    }
    // A finding naming a flow links to that flow's row, which carries the same community ID.
    let flow_cids: HashMap<&str, &str> = {
        let rows = attr_values(&html, "data-community-id");
        let anchors: Vec<&str> = html
            .match_indices("<tr id=\"flow-")
            .map(|(i, _)| {
                let rest = &html[i + 8..];
                &rest[..rest.find('"').unwrap()]
            })
            .collect();
        assert_eq!(rows.len(), anchors.len());
        anchors.into_iter().zip(rows).collect()
    };
    let mut linked = 0;
    for a in &alerts {
        let Some(cid) = a["network"]["community_id"].as_str() else {
            continue;
        };
        let id = a["event"]["id"].as_str().unwrap();
        let row_start = html.find(&format!("<tr id=\"finding-{id}\">")).unwrap();
        let row = &html[row_start..row_start + html[row_start..].find("</tr>").unwrap()];
        for target in attr_values(row, "href") {
            if let Some(flow) = target.strip_prefix("#flow-") {
                let anchor = format!("flow-{flow}");
                let row_cid = flow_cids[anchor.as_str()];
                let mut named = Vec::new();
                collect_cids(a, &mut named);
                assert!(
                    named.iter().any(|c| c == row_cid),
                    "finding {id} links {anchor} ({row_cid}), which it does not name"
                );
                linked += usize::from(row_cid == cid);
            }
        }
    }
    assert!(linked > 20, "only {linked} findings link their own flow");

    // A saturated link names no flow by ID: it links the flows of its top talkers.
    let sat = alerts
        .iter()
        .find(|a| a["rule"]["name"] == "bandwidth.saturation.inferred")
        .expect("the bulk fixture saturates its link");
    let talker = &sat["fallacy"]["evidence"]["top_talkers"][0];
    let id = sat["event"]["id"].as_str().unwrap();
    let row_start = html.find(&format!("<tr id=\"finding-{id}\">")).unwrap();
    let row = &html[row_start..row_start + html[row_start..].find("</tr>").unwrap()];
    let flow = attr_values(row, "href")
        .into_iter()
        .find_map(|h| h.strip_prefix('#'))
        .expect("the saturation finding links a flow");
    let flow_row_start = html.find(&format!("<tr id=\"{flow}\"")).unwrap();
    let flow_row =
        &html[flow_row_start..flow_row_start + html[flow_row_start..].find("</tr>").unwrap()];
    let pair = format!(
        "{} → {}",
        talker["client"].as_str().unwrap(),
        talker["server"].as_str().unwrap()
    );
    assert!(flow_row.contains(&pair), "{flow} is not {pair}");
}

fn collect_cids(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("community_id", Value::String(s)) => out.push(s.clone()),
                    ("community_ids", Value::Array(a)) => {
                        out.extend(a.iter().filter_map(|s| s.as_str().map(str::to_string)))
                    }
                    _ => collect_cids(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_cids(x, out)),
        _ => {}
    }
}

#[test]
fn retransmission_and_throughput_totals_equal_tshark() {
    assert!(
        have("tshark"),
        "tshark is needed (scripts/test.sh installs it)"
    );
    // Retransmissions and the segments they resend (data, SYN, FIN).
    let (_, html) = report(&["fixtures/reliability-loss.pcap"]);
    let totals = data_values(section(&html, "retransmissions"));
    let count = |filter: &str| {
        tshark_fields("fixtures/reliability-loss.pcap", &["frame.number"], filter)
            .lines()
            .count() as u64
    };
    let data = count("tcp.len > 0 || tcp.flags.syn == 1 || tcp.flags.fin == 1");
    let retrans = count(
        "tcp.analysis.retransmission || tcp.analysis.fast_retransmission || tcp.analysis.spurious_retransmission",
    );
    assert!(retrans > 10, "the capture has loss by construction");
    assert_eq!(totals[..2], [data, retrans]);

    // Bytes per direction: the client is whoever sent the SYN.
    let path = "fixtures/bandwidth-bulk.pcap";
    let (_, html) = report(&[path]);
    let shown = data_values(section(&html, "throughput"));
    let rows = tshark_fields(
        path,
        &[
            "ip.src",
            "tcp.srcport",
            "ip.dst",
            "tcp.dstport",
            "tcp.flags.syn",
            "tcp.flags.ack",
            "ip.len",
        ],
        "tcp",
    );
    let rows: Vec<Vec<&str>> = rows.lines().map(|l| l.split('\t').collect()).collect();
    let servers: BTreeSet<(&str, &str)> = rows
        .iter()
        .filter(|r| r[4] == "1" && r[5] == "0")
        .map(|r| (r[2], r[3]))
        .collect();
    let mut by_dir = [0u64; 2];
    for r in &rows {
        let to_server = servers.contains(&(r[2], r[3]));
        by_dir[usize::from(!to_server)] += r[6].parse::<u64>().unwrap();
    }
    assert!(by_dir[1] > 1_000_000, "a 1 MB download by construction");
    assert_eq!(shown[..2], by_dir);
}

/// A report that fails to be written at the end (here: the file size limit of `ulimit -f`,
/// 16 KiB, under the page's size, with SIGXFSZ ignored so that the write fails with EFBIG as a
/// full disk's would): a clear error naming the path, the NDJSON written before it complete,
/// and no half-written page left behind (the page is written beside its name, then renamed).
#[test]
fn a_report_that_cannot_be_written_at_the_end_is_a_clear_error_and_the_findings_are_complete() {
    let dir =
        std::env::temp_dir().join(format!("observer-test-{}-report-efbig", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("report.html");
    let out = Command::new("sh")
        .args(["-c", "trap '' XFSZ; ulimit -f 16; exec \"$0\" \"$@\""])
        .arg(observer_tests::observer_bin())
        .args(["analyze", "-q", "--report"])
        .arg(&page)
        .arg(root().join("fixtures/reliability-loss.pcap"))
        .output()
        .unwrap();
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("--report {}", page.display())) && err.contains("complete"),
        "{err}"
    );
    assert!(left.is_empty(), "nothing left behind: {left:?}");
    let events = ndjson(&out.stdout);
    assert_eq!(
        events.last().unwrap()["event"]["action"],
        "summary",
        "the NDJSON ends with its summary"
    );
}

/// Runs `cmd` for at most 90 s, reading its output as it comes (a full pipe would stall it).
fn run_bounded(mut cmd: Command) -> (bool, String, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let drain = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            String::from_utf8_lossy(&v).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (
        status.success(),
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    )
}

struct Browser {
    bin: String,
    profile: PathBuf,
}

impl Browser {
    fn cmd(&self, page: &Path, extra: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,4000",
        ])
        .arg(format!("--user-data-dir={}", self.profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()));
        c
    }

    /// Console messages the page produced while loading.
    fn console(&self, page: &Path, screenshot: &Path) -> (bool, Vec<String>) {
        let (ok, _, err) =
            run_bounded(self.cmd(page, &[&format!("--screenshot={}", screenshot.display())]));
        let lines = err
            .lines()
            .filter(|l| l.contains(":CONSOLE"))
            .map(str::to_string)
            .collect();
        (ok, lines)
    }
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&bytes[16..20]), be(&bytes[20..24]))
}

#[test]
fn the_report_renders_in_headless_chromium_without_console_errors() {
    let bin = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| have(b));
    let Some(bin) = bin else {
        if std::env::var_os("OBSERVER_SKIP_BROWSER_TEST").is_some() {
            eprintln!("skipped: no chromium and OBSERVER_SKIP_BROWSER_TEST is set");
            return;
        }
        panic!(
            "chromium is needed for this test (scripts/test.sh installs it with apt-get); set OBSERVER_SKIP_BROWSER_TEST=1 to skip it"
        );
    };
    let artifacts = root().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let profile = std::env::temp_dir().join(format!("observer-chromium-{}", std::process::id()));
    let browser = Browser {
        bin: bin.to_string(),
        profile: profile.clone(),
    };
    let (_, html) = full_report();
    let page = artifacts.join("report.html");
    std::fs::write(&page, &html).unwrap();

    // The control: the same page with one image from elsewhere must be reported.
    let control = artifacts.join("report-control.html");
    std::fs::write(
        &control,
        html.replacen(
            "<main>",
            "<main><img alt=\"\" src=\"https://example.invalid/x.png\">",
            1,
        ),
    )
    .unwrap();
    let (_, control_console) = browser.console(&control, &artifacts.join("report-control.png"));
    assert!(
        !control_console.is_empty(),
        "the console check saw nothing on a page that loads a forbidden image: it cannot work"
    );

    let shot = artifacts.join("report.png");
    let _ = std::fs::remove_file(&shot);
    let (ok, console) = browser.console(&page, &shot);
    assert!(ok, "chromium failed on the report");
    assert!(
        console.is_empty(),
        "console messages:\n{}",
        console.join("\n")
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert_eq!(png_size(&png), (1280, 4000));
    assert!(
        png.len() > 100_000,
        "a {}-byte screenshot is blank",
        png.len()
    );

    // The DOM the browser built has every section, the charts and the graph.
    let (_, dom, _) = run_bounded(browser.cmd(&page, &["--dump-dom"]));
    for id in SECTIONS {
        assert!(
            dom.contains(&format!("<section id=\"{id}\">")),
            "DOM lacks {id}"
        );
    }
    assert!(
        dom.matches("<svg").count() > 10,
        "charts missing from the DOM"
    );
    assert!(dom.contains("aria-label=\"Dependency graph\""));
    let _ = std::fs::remove_dir_all(&profile);
    let _ = std::fs::remove_file(&control);
    let _ = std::fs::remove_file(artifacts.join("report-control.png"));
}
