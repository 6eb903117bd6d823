//! The report page: one HTML document with its stylesheet and SVG plots inline, no scripts, and
//! a Content-Security-Policy that forbids loading anything, so it opens the same offline, from
//! a CI artifact store or an e-mail attachment.
//!
//! Every text that came from the traffic (paths, names, messages) is escaped. The page is a
//! pure function of [`ReportData`]: the same capture gives the same bytes.

use super::svg::{Chart, Scale};
use super::{FlowRow, LatencyCurve, ReportData};
use crate::finding::Fallacy;
use crate::time::Timestamp;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// Escapes text for HTML and XML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const STYLE: &str = r#"
:root{--fg:#1d2430;--muted:#5b6576;--line:#d8dde5;--bg:#f6f7f9;--card:#fff;--ok:#2e7d4f;
--low:#4a6fa5;--medium:#b7791f;--high:#c2410c;--critical:#b91c1c}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header,main{max-width:1240px;margin:0 auto;padding:0 20px}
header{padding-top:18px}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:18px;margin:28px 0 10px;padding-top:8px;border-top:1px solid var(--line)}
h3{font-size:15px;margin:18px 0 6px}
nav{display:flex;flex-wrap:wrap;gap:4px 14px;margin:10px 0 0}
nav a{color:var(--low);text-decoration:none}
.muted{color:var(--muted)}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(280px,1fr));gap:12px}
.card{background:var(--card);border:1px solid var(--line);border-left:6px solid var(--ok);border-radius:6px;padding:10px 12px;color:inherit;text-decoration:none;display:block}
.card b{display:block}
.card .verdict{font-weight:600}
.card.sev-1{border-left-color:var(--low)}.card.sev-2{border-left-color:var(--medium)}
.card.sev-3{border-left-color:var(--high)}.card.sev-4{border-left-color:var(--critical)}
.card.sev-0 .verdict{color:var(--ok)}
.card.sev-na{border-left-color:#9aa4b2}.card.sev-na .verdict{color:var(--muted)}
td{overflow-wrap:anywhere}
td code{white-space:nowrap}
table{border-collapse:collapse;width:100%;background:var(--card);margin:6px 0 10px}
th,td{border:1px solid var(--line);padding:4px 6px;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.sev{display:inline-block;min-width:64px;text-align:center;border-radius:4px;color:#fff;font-size:12px;padding:1px 6px}
.sev.sev-1{background:var(--low)}.sev.sev-2{background:var(--medium)}
.sev.sev-3{background:var(--high)}.sev.sev-4{background:var(--critical)}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace}
pre{white-space:pre-wrap;word-break:break-all;margin:4px 0;font:12px ui-monospace,SFMono-Regular,Menlo,monospace}
tr:target{outline:2px solid var(--medium)}
.charts{display:flex;flex-wrap:wrap;gap:12px}
.chart{background:var(--card);border:1px solid var(--line);border-radius:6px;max-width:100%;height:auto}
figure.plot{margin:0 0 8px}
.legend{display:flex;flex-wrap:wrap;gap:2px 16px;color:var(--muted);font-size:12px;margin-top:2px}
.scroll{overflow-x:auto}
td code.cid{word-break:break-all;white-space:normal}
td.num{white-space:nowrap}
.chart text{font:11px system-ui,sans-serif;fill:var(--fg)}
.chart .title{font-weight:600}
.chart .grid{stroke:#e6e9ee}.chart .axis{stroke:#8892a2}
.chart path{fill:none;stroke-width:2}
.chart .band{fill:#c2410c;fill-opacity:.15}
.s0,.p0,.k0{stroke:#2563eb;fill:#2563eb}.s1,.p1,.k1{stroke:#d97706;fill:#d97706}
.s2,.p2,.k2{stroke:#059669;fill:#059669}.s3,.p3,.k3{stroke:#7c3aed;fill:#7c3aed}
.s4,.p4,.k4{stroke:#db2777;fill:#db2777}.s5,.p5,.k5{stroke:#0891b2;fill:#0891b2}
.s6,.p6,.k6{stroke:#65a30d;fill:#65a30d}.s7,.p7,.k7{stroke:#475569;fill:#475569}
.chart path.s0,.chart path.s1,.chart path.s2,.chart path.s3,.chart path.s4,.chart path.s5,.chart path.s6,.chart path.s7{fill:none}
.graph line{stroke:#9aa4b2;stroke-width:1.2}.graph line.failed{stroke:var(--critical)}
.graph rect{fill:#eef3fb;stroke:#7d93b8}.graph rect.failed{fill:#fdecec;stroke:var(--critical)}
footer{max-width:1240px;margin:30px auto;padding:0 20px;color:var(--muted)}
"#;

const SECTIONS: [(&str, &str); 11] = [
    ("verdict", "Verdict"),
    ("findings", "Findings"),
    ("latency", "Latency"),
    ("throughput", "Throughput"),
    ("retransmissions", "Retransmissions"),
    ("dependencies", "Dependencies"),
    ("cost", "Transport cost"),
    ("plaintext", "Plaintext"),
    ("versions", "Versions"),
    ("flows", "Flows"),
    ("run", "Run"),
];

fn sev_name(n: u64) -> &'static str {
    match n {
        1 => "low",
        2 => "medium",
        3 => "high",
        4 => "critical",
        _ => "none",
    }
}

/// `1.2 MB`-style size.
fn bytes(n: u64) -> String {
    let v = n as f64;
    match n {
        0..1_000 => format!("{n} B"),
        1_000..1_000_000 => format!("{:.1} kB", v / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", v / 1e6),
        _ => format!("{:.2} GB", v / 1e9),
    }
}

/// `850 µs`, `12.3 ms`, `1.2 s`.
fn micros(us: f64) -> String {
    if us < 1_000.0 {
        format!("{us:.0} µs")
    } else if us < 1_000_000.0 {
        format!("{} ms", trim_num(us / 1e3))
    } else {
        format!("{} s", trim_num(us / 1e6))
    }
}

/// A rate unit that keeps the axis numbers readable: (divisor from bit/s, name).
fn rate_unit(peak_bps: f64) -> (f64, &'static str) {
    if peak_bps >= 1e9 {
        (1e9, "Gbit/s")
    } else if peak_bps >= 1e6 {
        (1e6, "Mbit/s")
    } else if peak_bps >= 1e3 {
        (1e3, "kbit/s")
    } else {
        (1.0, "bit/s")
    }
}

/// A number cell carrying its exact value.
fn num_cell(v: u64, shown: &str) -> String {
    format!(r#"<td class="num" data-value="{v}">{}</td>"#, esc(shown))
}

fn str_of<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn endpoint(v: &Value, side: &str) -> Option<String> {
    let ip = v.get(side)?.get("ip")?.as_str()?;
    Some(match v[side]["port"].as_u64() {
        Some(p) if ip.contains(':') => format!("[{ip}]:{p}"),
        Some(p) => format!("{ip}:{p}"),
        None => ip.to_string(),
    })
}

fn list(v: &Value) -> String {
    match v {
        Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(", "),
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Every community ID a finding names (its own flow and any listed in its evidence).
fn community_ids(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("community_id", Value::String(s)) => out.push(s.clone()),
                    ("community_ids", Value::Array(a)) => {
                        out.extend(a.iter().filter_map(|s| s.as_str().map(str::to_string)))
                    }
                    _ => community_ids(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| community_ids(x, out)),
        _ => {}
    }
}

struct Page<'a> {
    d: &'a ReportData,
    out: String,
    /// Finding index → its anchor and the flows (row numbers) it links to.
    finding_flows: Vec<Vec<usize>>,
    /// Flow row → findings naming it.
    flow_findings: BTreeMap<usize, Vec<usize>>,
    /// The earliest packet: time 0 of the timelines.
    origin: Timestamp,
}

fn finding_anchor(f: &Value, i: usize) -> String {
    let id = str_of(f, &["event", "id"]);
    let id: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    if id.is_empty() {
        format!("finding-{i}")
    } else {
        format!("finding-{id}")
    }
}

/// Renders the whole page.
pub fn render(d: &ReportData) -> String {
    let mut cid_row = BTreeMap::new();
    for (i, f) in d.flows.iter().enumerate() {
        cid_row.entry(f.community_id()).or_insert(i);
    }
    // Aggregate findings (a saturated link) name their flows by endpoints instead.
    let mut pair_row: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (i, f) in d.flows.iter().enumerate() {
        let ep = |e: (std::net::IpAddr, u16)| format!("{}:{}", e.0, e.1);
        pair_row.entry((ep(f.client), ep(f.server))).or_insert(i);
    }
    let mut finding_flows = Vec::with_capacity(d.findings.len());
    let mut flow_findings: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, f) in d.findings.iter().enumerate() {
        let mut cids = Vec::new();
        community_ids(f, &mut cids);
        let mut rows: Vec<usize> = cids
            .iter()
            .filter_map(|c| cid_row.get(c).copied())
            .collect();
        for t in f["fallacy"]["evidence"]["top_talkers"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let key = (
                str_of(t, &["client"]).to_string(),
                str_of(t, &["server"]).to_string(),
            );
            rows.extend(pair_row.get(&key));
        }
        rows.sort_unstable();
        rows.dedup();
        for &r in &rows {
            flow_findings.entry(r).or_default().push(i);
        }
        finding_flows.push(rows);
    }
    let origin = d.timeline.first;
    let mut p = Page {
        d,
        out: String::with_capacity(256 * 1024),
        finding_flows,
        flow_findings,
        origin,
    };
    p.head();
    p.verdict();
    p.findings();
    p.latency();
    p.throughput();
    p.retransmissions();
    p.dependencies();
    p.cost();
    p.plaintext();
    p.versions();
    p.flows();
    p.run();
    p.out.push_str("</main>\n<footer>Generated by observer ");
    p.out.push_str(env!("CARGO_PKG_VERSION"));
    p.out
        .push_str(" from capture data only; every time shown is capture time (UTC).</footer>\n</body>\n</html>\n");
    p.out
}

impl Page<'_> {
    fn w(&mut self, s: &str) {
        self.out.push_str(s);
    }

    fn summary(&self) -> &Value {
        static NULL: Value = Value::Null;
        self.d.summary.as_ref().unwrap_or(&NULL)
    }

    fn head(&mut self) {
        let s = self.summary();
        let inputs: Vec<String> = s["observer"]["inputs"]
            .as_array()
            .map(|a| a.iter().map(|i| str_of(i, &["path"]).to_string()).collect())
            .unwrap_or_default();
        let title = match inputs.as_slice() {
            [one] => format!("observer report: {one}"),
            many => format!("observer report: {} inputs", many.len()),
        };
        // Without a packet the summary's start and end are the epoch: no capture time at all.
        let when = if s["network"]["packets"].as_u64().unwrap_or(0) == 0 {
            "no packets read".to_string()
        } else {
            format!(
                "{} to {} (UTC)",
                str_of(s, &["event", "start"]),
                str_of(s, &["event", "end"])
            )
        };
        let message = str_of(s, &["message"]).to_string();
        let _ = write!(
            self.out,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n\
             <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<header>\n<h1>{}</h1>\n\
             <div class=\"muted\">{} · {}</div>\n<nav>",
            esc(&title),
            esc(&title),
            esc(&when),
            esc(&message)
        );
        for (id, name) in SECTIONS {
            let _ = write!(self.out, "<a href=\"#{id}\">{name}</a>");
        }
        self.w("</nav>\n</header>\n<main>\n");
    }

    /// Findings of one fallacy, most severe first (emission order within a severity).
    fn of_fallacy(&self, fal: Fallacy) -> Vec<usize> {
        let mut v: Vec<usize> = (0..self.d.findings.len())
            .filter(|&i| self.d.findings[i]["fallacy"]["id"].as_u64() == Some(u64::from(fal.id())))
            .collect();
        v.sort_by_key(|&i| std::cmp::Reverse(self.d.findings[i]["event"]["severity"].as_u64()));
        v
    }

    fn verdict(&mut self) {
        self.w("<section id=\"verdict\">\n<h2>Verdict per fallacy</h2>\n<div class=\"cards\">\n");
        let stats = self.summary()["stats"]["findings"].clone();
        for fal in Fallacy::ALL {
            let idx = self.of_fallacy(fal);
            let count = stats[fal.slug()]
                .as_u64()
                .unwrap_or(idx.len() as u64)
                .max(idx.len() as u64);
            // The most severe finding kept, unless one left out (beyond MAX_FINDINGS) is worse.
            let kept = idx.first().map(|&i| {
                let f = &self.d.findings[i];
                (
                    f["event"]["severity"].as_u64().unwrap_or(0),
                    str_of(f, &["message"]),
                )
            });
            let omitted = self.d.omitted_worst[usize::from(fal.id() - 1)]
                .as_ref()
                .map(|(s, m)| (*s, m.as_str()));
            let top_finding = match (kept, omitted) {
                (Some(k), Some(o)) if o.0 > k.0 => Some(o),
                (Some(k), _) => Some(k),
                (None, o) => o,
            };
            let worst = top_finding.map_or(0, |t| t.0);
            let unassessed = fal == Fallacy::TransportCostIsZero
                && self.summary()["stats"]["cost"].is_null()
                && top_finding.is_none();
            let (verdict, top) = match top_finding {
                None if unassessed => (
                    "Not assessed".to_string(),
                    String::from(
                        "No zone map in the configuration ([[zone]] entries), so no bytes were priced.",
                    ),
                ),
                None => (
                    "No evidence in this traffic".to_string(),
                    String::from("Nothing flagged."),
                ),
                Some((_, message)) => (
                    format!("Hurting: {count} finding(s), worst {}", sev_name(worst)),
                    message.to_string(),
                ),
            };
            let _ = writeln!(
                self.out,
                "<a class=\"card sev-{}\" href=\"#fallacy-{id}\" data-fallacy=\"{id}\" data-findings=\"{count}\"><b>{id}. {}</b><span class=\"verdict\">{}</span><div class=\"muted\">{}</div></a>",
                if unassessed {
                    "na".to_string()
                } else {
                    worst.to_string()
                },
                esc(fal.title()),
                esc(&verdict),
                esc(&top),
                id = fal.id()
            );
        }
        self.w("</div>\n</section>\n");
    }

    fn flow_links(&self, i: usize) -> String {
        let f = &self.d.findings[i];
        let rows = &self.finding_flows[i];
        let mut s = String::new();
        for &r in rows.iter().take(8) {
            let _ = write!(s, "<a href=\"#flow-{r}\">flow {r}</a> ");
        }
        if rows.len() > 8 {
            let _ = write!(s, "and {} more", rows.len() - 8);
        }
        if rows.is_empty() {
            let mut cids = Vec::new();
            community_ids(f, &mut cids);
            if let Some(c) = cids.first() {
                let _ = write!(
                    s,
                    "<code class=\"cid\" title=\"not in this report's flow table\">{}</code>",
                    esc(c)
                );
            }
        }
        s
    }

    fn severity_cell(sev: u64) -> String {
        format!(
            "<td><span class=\"sev sev-{sev}\">{}</span></td>",
            sev_name(sev)
        )
    }

    fn findings(&mut self) {
        self.w("<section id=\"findings\">\n<h2>Findings</h2>\n");
        if self.d.findings_omitted > 0 {
            let _ = writeln!(
                self.out,
                "<p class=\"muted\">{} further finding(s) are in the NDJSON output only (the report keeps the first {}).</p>",
                self.d.findings_omitted,
                super::MAX_FINDINGS
            );
        }
        for fal in Fallacy::ALL {
            let idx = self.of_fallacy(fal);
            let _ = writeln!(
                self.out,
                "<h3 id=\"fallacy-{}\">{}. {}</h3>",
                fal.id(),
                fal.id(),
                esc(fal.title())
            );
            if idx.is_empty() {
                if self.d.omitted_worst[usize::from(fal.id() - 1)].is_some() {
                    let _ = writeln!(
                        self.out,
                        "<p class=\"muted\">Its findings came after the first {} and are in the NDJSON output only.</p>",
                        super::MAX_FINDINGS
                    );
                } else {
                    self.w("<p class=\"muted\">No findings.</p>\n");
                }
                continue;
            }
            self.w("<table><thead><tr><th>Severity</th><th>Rule</th><th>What happened</th><th>Where</th><th>Flows</th><th>Evidence</th></tr></thead><tbody>\n");
            for i in idx {
                let f = &self.d.findings[i];
                let sev = f["event"]["severity"].as_u64().unwrap_or(0);
                let place = match (endpoint(f, "source"), endpoint(f, "destination")) {
                    (Some(a), Some(b)) => format!("{a} → {b}"),
                    (None, Some(b)) => b,
                    (Some(a), None) => a,
                    (None, None) => String::new(),
                };
                let evidence =
                    serde_json::to_string_pretty(&f["fallacy"]["evidence"]).unwrap_or_default();
                let row = format!(
                    "<tr id=\"{}\">{}<td><code>{}</code></td><td class=\"wrap\">{}</td><td class=\"wrap\">{}</td><td>{}</td><td><details><summary>evidence</summary><pre>{}</pre></details></td></tr>\n",
                    finding_anchor(f, i),
                    Self::severity_cell(sev),
                    esc(str_of(f, &["rule", "name"])),
                    esc(str_of(f, &["message"])),
                    esc(&place),
                    self.flow_links(i),
                    esc(&evidence)
                );
                self.w(&row);
            }
            self.w("</tbody></table>\n");
        }
        self.w("</section>\n");
    }

    fn latency(&mut self) {
        self.w("<section id=\"latency\">\n<h2>Latency per service</h2>\n");
        if self.d.latency.is_empty() {
            self.w("<p class=\"muted\">No latency samples (no TCP handshakes, HTTP exchanges, DNS answers or TLS handshakes seen).</p>\n</section>\n");
            return;
        }
        self.w("<p class=\"muted\">Percentile plots: the horizontal axis stretches the tail (90, 99, 99.9 …), the vertical axis is logarithmic. One line per metric.</p>\n");
        let mut services: Vec<&str> = Vec::new();
        for c in &self.d.latency {
            if !services.contains(&c.service.as_str()) {
                services.push(&c.service);
            }
        }
        for svc in services {
            let curves: Vec<&LatencyCurve> =
                self.d.latency.iter().filter(|c| c.service == svc).collect();
            // A name that only repeats the address (a `Host: 10.0.0.2:8080`) adds nothing.
            let name = curves
                .iter()
                .find_map(|c| c.name.as_deref())
                .filter(|n| !svc.starts_with(n.trim_start_matches('[').trim_end_matches(']')));
            let heading = match name {
                Some(n) => format!("{svc} ({n})"),
                None => svc.to_string(),
            };
            let _ = writeln!(
                self.out,
                "<h3 data-service=\"{}\">{}</h3>",
                esc(svc),
                esc(&heading)
            );
            self.w(&latency_chart(&heading, &curves));
            self.w("<table><thead><tr><th>Metric</th><th class=\"num\">Samples</th><th class=\"num\">p50</th><th class=\"num\">p90</th><th class=\"num\">p99</th><th class=\"num\">p99.9</th><th class=\"num\">max</th></tr></thead><tbody>\n");
            for c in curves {
                let at = |p: f64| c.points.iter().find(|x| x.0 == p).map_or(0, |x| x.1);
                let mut row = format!("<tr><td><code>{}</code></td>", esc(c.metric));
                row.push_str(&num_cell(c.count, &c.count.to_string()));
                for p in [50.0, 90.0, 99.0, 99.9, 100.0] {
                    let v = at(p);
                    row.push_str(&num_cell(v, &micros(v as f64)));
                }
                row.push_str("</tr>\n");
                self.w(&row);
            }
            self.w("</tbody></table>\n");
        }
        if self.d.latency_services_omitted > 0 {
            let _ = writeln!(
                self.out,
                "<p class=\"muted\">{} quieter service(s) not plotted; their distributions are in the NDJSON <code>latency</code> events.</p>",
                self.d.latency_services_omitted
            );
        }
        self.w("</section>\n");
    }

    /// Seconds from the run's start to `t`.
    fn rel(&self, t: Timestamp) -> f64 {
        t.since(self.origin) as f64 / 1e9
    }

    /// Ticks for a time axis in seconds, labelled in the unit that suits its span, and its
    /// title.
    fn time_axis(&self, c: &Chart) -> (Vec<(f64, String)>, String) {
        let (div, unit) = time_unit(c.x.max - c.x.min);
        let ticks = Scale::linear(c.x.min / div, c.x.max / div)
            .ticks(6)
            .into_iter()
            .map(|v| (v * div, trim_num(v)))
            .collect();
        (ticks, format!("{unit} from the first packet"))
    }

    fn throughput(&mut self) {
        self.w("<section id=\"throughput\">\n<h2>Throughput per link</h2>\n");
        let tl = &self.d.timeline;
        if tl.buckets.is_empty() {
            self.w("<p class=\"muted\">No traffic.</p>\n</section>\n");
            return;
        }
        let width_s = tl.width as f64 / 1e9;
        let _ = writeln!(
            self.out,
            "<p class=\"muted\">Average rate over each {} bucket, from the first packet at {} (UTC). Shaded: saturation episodes the bandwidth analyzer found.</p>",
            duration(width_s),
            esc(&self.origin.to_string())
        );
        let mut table = String::from(
            "<table><thead><tr><th>Link</th><th class=\"num\">Bytes client → server</th><th class=\"num\">Bytes server → client</th><th class=\"num\">Peak bucket rate</th><th>Saturation episodes</th></tr></thead><tbody>\n",
        );
        for (slot, &iface) in tl.links.iter().enumerate() {
            let series: Vec<[f64; 3]> = tl
                .buckets
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    let x = self.rel(tl.bucket_start(i)) + width_s / 2.0;
                    let bps = |n: u64| n as f64 * 8.0 / width_s;
                    [x, bps(b.bytes[slot][0]), bps(b.bytes[slot][1])]
                })
                .collect();
            let peak_bps = series.iter().map(|s| s[1].max(s[2])).fold(0.0, f64::max);
            let (div, unit) = rate_unit(peak_bps);
            let series: Vec<[f64; 3]> = series
                .iter()
                .map(|s| [s[0], s[1] / div, s[2] / div])
                .collect();
            let peak = peak_bps / div;
            let xmax = self.rel(tl.bucket_start(tl.buckets.len()));
            let mut c = Chart::new(
                1180.0,
                260.0,
                Scale::linear(0.0, xmax),
                Scale::linear(0.0, peak * 1.1),
            );
            let (xt, xtitle) = self.time_axis(&c);
            let yt: Vec<(f64, String)> =
                c.y.ticks(4).into_iter().map(|v| (v, trim_num(v))).collect();
            c.axes(&xt, &yt, &xtitle, unit);
            let episodes = self.saturation(iface);
            for (a, b, t) in &episodes {
                c.band(*a, *b, t);
            }
            let up: Vec<(f64, f64)> = series.iter().map(|s| (s[0], s[1])).collect();
            let down: Vec<(f64, f64)> = series.iter().map(|s| (s[0], s[2])).collect();
            c.line(&up, 0, "client → server");
            c.line(&down, 1, "server → client");
            let label = format!("Throughput on link {iface}");
            let _ = writeln!(self.out, "<h3>Link {iface}</h3>");
            self.w(&c.finish(&label));
            let total: [u64; 2] = tl.buckets.iter().fold([0, 0], |t, b| {
                [t[0] + b.bytes[slot][0], t[1] + b.bytes[slot][1]]
            });
            let _ = writeln!(
                table,
                "<tr data-link=\"{iface}\"><td>{iface}</td>{}{}<td class=\"num\">{} {unit}</td><td>{}</td></tr>",
                num_cell(total[0], &bytes(total[0])),
                num_cell(total[1], &bytes(total[1])),
                trim_num(peak),
                episodes.len()
            );
        }
        table.push_str("</tbody></table>\n");
        self.w(&table);
        if tl.links_merged > 0 {
            let _ = writeln!(
                self.out,
                "<p class=\"muted\">{} packet(s) from further interfaces are counted in the last link.</p>",
                tl.links_merged
            );
        }
        self.w("</section>\n");
    }

    /// Saturation episodes on `iface`: (start s, end s, description).
    fn saturation(&self, iface: u32) -> Vec<(f64, f64, String)> {
        self.d
            .findings
            .iter()
            .filter(|f| str_of(f, &["rule", "name"]).starts_with("bandwidth.saturation"))
            .filter(|f| f["fallacy"]["evidence"]["interface"].as_u64() == Some(u64::from(iface)))
            .filter_map(|f| {
                let ev = &f["fallacy"]["evidence"];
                let start = Timestamp::parse_rfc3339(str_of(f, &["@timestamp"]))?;
                let secs = ev["duration_secs"]
                    .as_f64()
                    .or_else(|| ev["plateau_secs"].as_f64())?;
                let a = self.rel(start);
                Some((a, a + secs, str_of(f, &["message"]).to_string()))
            })
            .collect()
    }

    fn retransmissions(&mut self) {
        self.w("<section id=\"retransmissions\">\n<h2>TCP retransmissions over time</h2>\n");
        let tl = &self.d.timeline;
        let total = tl.total();
        if total.data_segments == 0 {
            self.w("<p class=\"muted\">No TCP segments with data, SYN or FIN.</p>\n</section>\n");
            return;
        }
        let width_s = tl.width as f64 / 1e9;
        let points: Vec<(f64, f64)> = tl
            .buckets
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let x = self.rel(tl.bucket_start(i)) + width_s / 2.0;
                let rate = if b.data_segments == 0 {
                    f64::NAN
                } else {
                    100.0 * b.retransmissions as f64 / b.data_segments as f64
                };
                (x, rate)
            })
            .collect();
        let peak = points
            .iter()
            .map(|p| p.1)
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max);
        let mut c = Chart::new(
            1180.0,
            240.0,
            Scale::linear(0.0, self.rel(tl.bucket_start(tl.buckets.len()))),
            Scale::linear(0.0, (peak * 1.1).max(1.0)),
        );
        let (xt, xtitle) = self.time_axis(&c);
        let yt: Vec<(f64, String)> =
            c.y.ticks(4)
                .into_iter()
                .map(|v| (v, format!("{} %", trim_num(v))))
                .collect();
        c.axes(&xt, &yt, &xtitle, "retransmitted");
        c.line(
            &points,
            2,
            "retransmitted segments / segments sent (data, SYN, FIN)",
        );
        self.w(&c.finish("TCP retransmission rate over time"));
        let _ = writeln!(
            self.out,
            "<table id=\"retransmission-totals\"><thead><tr><th class=\"num\">Segments (data, SYN, FIN)</th><th class=\"num\">Retransmissions</th><th class=\"num\">Rate</th><th class=\"num\">Worst bucket</th></tr></thead><tbody><tr>{}{}<td class=\"num\">{:.3} %</td><td class=\"num\">{:.2} %</td></tr></tbody></table>\n</section>",
            num_cell(total.data_segments, &total.data_segments.to_string()),
            num_cell(total.retransmissions, &total.retransmissions.to_string()),
            100.0 * total.retransmissions as f64 / total.data_segments as f64,
            peak
        );
    }

    fn dependencies(&mut self) {
        self.w("<section id=\"dependencies\">\n<h2>External dependencies</h2>\n");
        let deps: Vec<Value> = self
            .d
            .dependencies
            .as_ref()
            .and_then(|d| d["dependencies"].as_array().cloned())
            .unwrap_or_default();
        if deps.is_empty() {
            self.w("<p class=\"muted\">No traffic to parties outside the configured internal networks.</p>\n</section>\n");
            return;
        }
        let mut deps = deps;
        deps.sort_by_key(|d| std::cmp::Reverse(d["flows"].as_u64().unwrap_or(0)));
        self.w(&dependency_graph(&deps));
        self.w("<table><thead><tr><th>Owner</th><th>Names</th><th>Services</th><th>Clients</th><th class=\"num\">Flows</th><th class=\"num\">Failed flows</th><th>Failures</th><th class=\"num\">Sent</th><th class=\"num\">Received</th></tr></thead><tbody>\n");
        for d in &deps {
            let failures: Vec<String> = d["failures"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter(|(_, n)| n.as_u64().unwrap_or(0) > 0)
                        .map(|(k, n)| format!("{k}: {n}"))
                        .collect()
                })
                .unwrap_or_default();
            let (sent, recv) = (
                d["bytes_sent"].as_u64().unwrap_or(0),
                d["bytes_received"].as_u64().unwrap_or(0),
            );
            let (flows, failed) = (
                d["flows"].as_u64().unwrap_or(0),
                d["failed_flows"].as_u64().unwrap_or(0),
            );
            let row = format!(
                "<tr data-owner=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{}{}<td>{}</td>{}{}</tr>\n",
                esc(str_of(d, &["owner"])),
                esc(str_of(d, &["owner"])),
                esc(&list(&d["names"])),
                esc(&list(&d["services"])),
                esc(&list(&d["clients"])),
                num_cell(flows, &flows.to_string()),
                num_cell(failed, &failed.to_string()),
                esc(&failures.join(", ")),
                num_cell(sent, &bytes(sent)),
                num_cell(recv, &bytes(recv)),
            );
            self.w(&row);
        }
        self.w("</tbody></table>\n</section>\n");
    }

    fn rows_of(&self, pred: impl Fn(&Value) -> bool) -> Vec<usize> {
        let mut v: Vec<usize> = (0..self.d.findings.len())
            .filter(|&i| pred(&self.d.findings[i]))
            .collect();
        v.sort_by_key(|&i| std::cmp::Reverse(self.d.findings[i]["event"]["severity"].as_u64()));
        v
    }

    fn finding_link(&self, i: usize) -> String {
        format!(
            "<a href=\"#{}\">{}</a>",
            finding_anchor(&self.d.findings[i], i),
            esc(str_of(&self.d.findings[i], &["rule", "name"]))
        )
    }

    fn cost(&mut self) {
        self.w("<section id=\"cost\">\n<h2>Cross-zone and cross-region cost</h2>\n");
        let pairs = self.rows_of(|f| str_of(f, &["rule", "name"]) == "cost.zone_pair");
        if pairs.is_empty() {
            self.w("<p class=\"muted\">No cross-zone or inter-region bytes were priced: either none crossed, or the configuration maps no addresses to zones (<code>[[zone]]</code> entries, see the README's configuration section).</p>\n</section>\n");
            return;
        }
        let mut pairs = pairs;
        let month = |i: &usize| {
            self.d.findings[*i]["fallacy"]["evidence"]["usd_per_month"]
                .as_f64()
                .unwrap_or(0.0)
        };
        pairs.sort_by(|a, b| month(b).total_cmp(&month(a)));
        self.w("<table><thead><tr><th>From</th><th>To</th><th>Kind</th><th class=\"num\">Bytes</th><th class=\"num\">Flows</th><th class=\"num\">$/GB</th><th class=\"num\">Cost observed</th><th class=\"num\">$/month at this rate</th><th>Finding</th></tr></thead><tbody>\n");
        let mut total_month = 0.0;
        for i in pairs {
            let f = &self.d.findings[i];
            let ev = &f["fallacy"]["evidence"];
            let zone = |z: &str, r: &str| format!("{} ({})", str_of(ev, &[z]), str_of(ev, &[r]));
            let b = ev["bytes"].as_u64().unwrap_or(0);
            let flows = ev["flows"].as_u64().unwrap_or(0);
            let m = ev["usd_per_month"].as_f64().unwrap_or(0.0);
            total_month += m;
            let row = format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td>{}{}<td class=\"num\">{:.4}</td><td class=\"num\">${:.6}</td><td class=\"num\">${m:.2}</td><td>{}</td></tr>\n",
                esc(&zone("from_zone", "from_region")),
                esc(&zone("to_zone", "to_region")),
                esc(&str_of(ev, &["category"]).replace('_', "-")),
                num_cell(b, &bytes(b)),
                num_cell(flows, &flows.to_string()),
                ev["usd_per_gb"].as_f64().unwrap_or(0.0),
                ev["usd"].as_f64().unwrap_or(0.0),
                self.finding_link(i)
            );
            self.w(&row);
        }
        let _ = writeln!(
            self.out,
            "</tbody><tfoot><tr><th colspan=\"7\">Total</th><th class=\"num\">${total_month:.2}</th><th></th></tr></tfoot></table>"
        );
        let talkers = self.rows_of(|f| str_of(f, &["rule", "name"]) == "cost.top_talker");
        if !talkers.is_empty() {
            self.w("<h3>Top talkers</h3><ul>\n");
            for i in talkers {
                let line = format!(
                    "<li>{} {}</li>\n",
                    esc(str_of(&self.d.findings[i], &["message"])),
                    self.flow_links(i)
                );
                self.w(&line);
            }
            self.w("</ul>\n");
        }
        self.w("</section>\n");
    }

    fn plaintext(&mut self) {
        self.w("<section id=\"plaintext\">\n<h2>Plaintext flows</h2>\n");
        // The security analyzer's findings, not every fallacy-4 one (a `tcp.sweep` is not a
        // plaintext flow).
        let rows = self.rows_of(|f| str_of(f, &["rule", "name"]).starts_with("plaintext."));
        if rows.is_empty() {
            self.w("<p class=\"muted\">No plaintext application traffic or credentials in clear were found.</p>\n</section>\n");
            return;
        }
        self.w("<p class=\"muted\">Credentials are named by kind only; their values are never recorded.</p>\n<table><thead><tr><th>Severity</th><th>Client → server</th><th>Protocol</th><th class=\"num\">Connections</th><th class=\"num\">Bytes</th><th>Credentials in clear</th><th>Finding</th><th>Flows</th></tr></thead><tbody>\n");
        for i in rows {
            let f = &self.d.findings[i];
            let ev = &f["fallacy"]["evidence"];
            let place = format!(
                "{} → {}",
                list(&ev["clients"]),
                endpoint(f, "destination").unwrap_or_default()
            );
            let conns = ev["connections"].as_u64().unwrap_or(0);
            let b = ev["bytes"].as_u64().unwrap_or(0);
            let row = format!(
                "<tr>{}<td>{}</td><td>{}</td>{}{}<td>{}</td><td>{}</td><td>{}</td></tr>\n",
                Self::severity_cell(f["event"]["severity"].as_u64().unwrap_or(0)),
                esc(&place),
                esc(str_of(ev, &["protocol"])),
                num_cell(conns, &conns.to_string()),
                num_cell(b, &bytes(b)),
                esc(&list(&ev["credentials"])),
                self.finding_link(i),
                self.flow_links(i)
            );
            self.w(&row);
        }
        self.w("</tbody></table>\n</section>\n");
    }

    fn versions(&mut self) {
        self.w("<section id=\"versions\">\n<h2>Protocol versions</h2>\n");
        if let Some(inv) = self.d.inventory.as_ref().map(|i| i["inventory"].clone()) {
            self.w("<table><thead><tr><th>Seen on the wire</th><th>Versions</th></tr></thead><tbody>\n");
            for (k, label) in [
                ("tls_offered", "TLS offered by clients"),
                ("tls_negotiated", "TLS negotiated"),
                ("alpn", "ALPN negotiated"),
                ("http_request_versions", "HTTP request versions"),
            ] {
                let row = format!(
                    "<tr><td>{label}</td><td>{}</td></tr>\n",
                    esc(&list(&inv[k]))
                );
                self.w(&row);
            }
            self.w("</tbody></table>\n");
        }
        let rows = self.rows_of(|f| f["fallacy"]["id"].as_u64() == Some(8));
        if rows.is_empty() {
            self.w("<p class=\"muted\">No version mismatches found.</p>\n</section>\n");
            return;
        }
        self.w("<h3>Mismatches</h3><table><thead><tr><th>Severity</th><th>Rule</th><th>Server</th><th>Detail</th><th>Clients</th><th class=\"num\">Connections</th><th>Flows</th></tr></thead><tbody>\n");
        for i in rows {
            let f = &self.d.findings[i];
            let ev = &f["fallacy"]["evidence"];
            let conns = ev["connections"].as_u64().unwrap_or(0);
            let row = format!(
                "<tr>{}<td>{}</td><td>{}</td><td>{}</td><td>{}</td>{}<td>{}</td></tr>\n",
                Self::severity_cell(f["event"]["severity"].as_u64().unwrap_or(0)),
                self.finding_link(i),
                esc(&endpoint(f, "destination").unwrap_or_default()),
                esc(&list(&ev["detail"])),
                esc(&list(&ev["clients"])),
                num_cell(conns, &conns.to_string()),
                self.flow_links(i)
            );
            self.w(&row);
        }
        self.w("</tbody></table>\n</section>\n");
    }

    fn flows(&mut self) {
        self.w("<section id=\"flows\">\n<h2>Flows behind the findings</h2>\n");
        let _ = writeln!(
            self.out,
            "<p class=\"muted\">{} flow(s) named by findings, of {} recorded{}. The community ID is the one in the NDJSON <code>network.community_id</code> and in Zeek, Suricata and Wireshark.</p>",
            self.flow_findings.len(),
            self.d.flows.len(),
            if self.d.flows_omitted > 0 {
                format!(
                    " ({} later flow(s) not recorded: the report keeps the first {})",
                    self.d.flows_omitted,
                    super::MAX_FLOWS
                )
            } else {
                String::new()
            }
        );
        if self.flow_findings.is_empty() {
            self.w("</section>\n");
            return;
        }
        self.w("<div class=\"scroll\"><table><thead><tr><th>Flow</th><th>Client → server</th><th>Protocol</th><th>Start</th><th class=\"num\">Duration</th><th class=\"num\">Packets →/←</th><th class=\"num\">Bytes →/←</th><th class=\"num\">Retrans.</th><th>End</th><th>Findings</th></tr></thead><tbody>\n");
        let rows: Vec<(usize, Vec<usize>)> = self
            .flow_findings
            .iter()
            .map(|(r, f)| (*r, f.clone()))
            .collect();
        for (r, fs) in rows {
            let f: &FlowRow = &self.d.flows[r];
            let sa = std::net::SocketAddr::new(f.client.0, f.client.1);
            let sb = std::net::SocketAddr::new(f.server.0, f.server.1);
            let proto = match f.protocol {
                Some(p) => format!("{}/{p}", crate::finding::transport_name(f.proto)),
                None => crate::finding::transport_name(f.proto).to_string(),
            };
            let mut links = String::new();
            let mut seen = BTreeSet::new();
            for i in fs {
                if seen.insert(i) {
                    links.push_str(&self.finding_link(i));
                    links.push(' ');
                }
            }
            let cid = f.community_id();
            let row = format!(
                "<tr id=\"flow-{r}\" data-community-id=\"{}\"><td>{r}<br><code class=\"cid\">{}</code></td><td>{} → {}</td><td>{}</td><td>{}</td><td class=\"num\">{:.3} s</td><td class=\"num\">{} / {}</td><td class=\"num\">{} / {}</td>{}<td>{}</td><td>{}</td></tr>\n",
                esc(&cid),
                esc(&cid),
                sa,
                sb,
                esc(&proto),
                f.first,
                f.last.since(f.first) as f64 / 1e9,
                f.packets[0],
                f.packets[1],
                bytes(f.bytes[0]),
                bytes(f.bytes[1]),
                num_cell(f.retransmissions, &f.retransmissions.to_string()),
                esc(f.end),
                links
            );
            self.w(&row);
        }
        self.w("</tbody></table>\n</div>\n</section>\n");
    }

    fn run(&mut self) {
        self.w("<section id=\"run\">\n<h2>Run</h2>\n<table><thead><tr><th>Input</th><th>Format</th><th>Status</th><th class=\"num\">Packets</th><th>Note</th></tr></thead><tbody>\n");
        let inputs = self.summary()["observer"]["inputs"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for i in &inputs {
            let packets = i["packets"].as_u64().unwrap_or(0);
            let row = format!(
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td>{}<td>{}</td></tr>\n",
                esc(str_of(i, &["path"])),
                esc(str_of(i, &["format"])),
                esc(str_of(i, &["status"])),
                num_cell(packets, &packets.to_string()),
                esc(str_of(i, &["error"]))
            );
            self.w(&row);
        }
        self.w("</tbody></table>\n<table><thead><tr><th>Counter</th><th class=\"num\">Value</th></tr></thead><tbody>\n");
        let stats = self.summary()["stats"].clone();
        for (label, path) in [
            ("Frames", &["frames", "total"][..]),
            ("Frames not decodable", &["frames", "undecodable"]),
            ("TCP flows", &["flows", "tcp"]),
            ("UDP flows", &["flows", "udp"]),
            ("Flows evicted (table full)", &["flows", "evicted_capacity"]),
            ("Most flows at once", &["flows", "peak_active"]),
            (
                "Packets dropped by the kernel (live)",
                &["capture", "dropped_kernel"],
            ),
            ("Findings", &["findings", "total"]),
        ] {
            if let Some(v) = path
                .iter()
                .try_fold(&stats, |v, k| v.get(k))
                .and_then(Value::as_u64)
            {
                let row = format!("<tr><td>{label}</td>{}</tr>\n", num_cell(v, &v.to_string()));
                self.w(&row);
            }
        }
        self.w("</tbody></table>\n</section>\n");
    }
}

/// `3`, `2.5`, `0.0005` — about 3 significant digits, no trailing zeros.
fn trim_num(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return "0".into();
    }
    let decimals = (2 - v.abs().log10().floor() as i32).clamp(0, 12) as usize;
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    if s == "-0" { "0".into() } else { s.to_string() }
}

/// The unit a time span reads best in: (seconds per unit, name).
fn time_unit(span_secs: f64) -> (f64, &'static str) {
    if span_secs >= 2.0 * 86_400.0 {
        (86_400.0, "days")
    } else if span_secs >= 2.0 * 3_600.0 {
        (3_600.0, "hours")
    } else if span_secs >= 120.0 {
        (60.0, "minutes")
    } else {
        (1.0, "seconds")
    }
}

/// `100 ms`, `25.6 s`, `3.5 minutes`, `155 days`.
fn duration(secs: f64) -> String {
    match time_unit(secs) {
        (1.0, _) => micros(secs * 1e6),
        (div, unit) => format!("{} {unit}", trim_num(secs / div)),
    }
}

/// x position of a percentile on the "nines" axis: 0 → 0, 90 → 1, 99 → 2, 99.9 → 3 …
fn nines(p: f64) -> f64 {
    if p >= 100.0 {
        5.5
    } else {
        -(1.0 - p / 100.0).log10()
    }
}

fn latency_chart(heading: &str, curves: &[&LatencyCurve]) -> String {
    let lo = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.1))
        .min()
        .unwrap_or(1)
        .max(1) as f64;
    let hi = curves
        .iter()
        .flat_map(|c| c.points.iter().map(|p| p.1))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let mut c = Chart::new(580.0, 260.0, Scale::linear(0.0, 5.5), Scale::log(lo, hi));
    let xt: Vec<(f64, String)> = [
        (0.0, "0"),
        (1.0, "90"),
        (2.0, "99"),
        (3.0, "99.9"),
        (4.0, "99.99"),
        (5.0, "99.999"),
        (5.5, "max"),
    ]
    .iter()
    .map(|(x, l)| (*x, (*l).to_string()))
    .collect();
    let yt: Vec<(f64, String)> = c.y.ticks(0).into_iter().map(|v| (v, micros(v))).collect();
    c.axes(&xt, &yt, "percentile", "latency");
    for (s, cv) in curves.iter().enumerate() {
        let pts: Vec<(f64, f64)> = cv
            .points
            .iter()
            .map(|&(p, v)| (nines(p), v.max(1) as f64))
            .collect();
        c.line(&pts, s, &format!("{} ({} samples)", cv.metric, cv.count));
    }
    format!(
        "<div class=\"charts\">{}</div>\n",
        c.finish(&format!("Latency percentiles for {heading}"))
    )
}

/// Clients on the left, the parties they depend on on the right; failing parties in red.
fn dependency_graph(deps: &[Value]) -> String {
    const MAX_NODES: usize = 24;
    let mut owners: Vec<&Value> = deps.iter().collect();
    owners.sort_by_key(|d| std::cmp::Reverse(d["flows"].as_u64().unwrap_or(0)));
    owners.truncate(MAX_NODES);
    let mut clients: BTreeMap<String, usize> = BTreeMap::new();
    for d in &owners {
        for c in d["clients"].as_array().into_iter().flatten() {
            if let Some(c) = c.as_str() {
                *clients.entry(c.to_string()).or_default() += 1;
            }
        }
    }
    let mut clients: Vec<(String, usize)> = clients.into_iter().collect();
    clients.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    clients.truncate(MAX_NODES);
    let rows = owners.len().max(clients.len()).max(1);
    let h = 30.0 + rows as f64 * 30.0;
    let (w, lx, rx, bw) = (1180.0, 20.0, 700.0, 300.0);
    let y_of = |i: usize, n: usize| 20.0 + (i as f64 + 0.5) * (h - 30.0) / n.max(1) as f64;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart graph" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="Dependency graph"><title>Dependency graph: internal clients and the external parties they depend on</title>"#
    );
    for (oi, d) in owners.iter().enumerate() {
        let failed = d["failed_flows"].as_u64().unwrap_or(0) > 0;
        let oy = y_of(oi, owners.len());
        for c in d["clients"].as_array().into_iter().flatten() {
            if let Some(ci) = clients
                .iter()
                .position(|(n, _)| Some(n.as_str()) == c.as_str())
            {
                let cy = y_of(ci, clients.len());
                let _ = write!(
                    s,
                    r#"<line class="{}" x1="{:.1}" y1="{cy:.1}" x2="{rx:.1}" y2="{oy:.1}"/>"#,
                    if failed { "failed" } else { "ok" },
                    lx + 220.0
                );
            }
        }
    }
    for (ci, (name, _)) in clients.iter().enumerate() {
        let y = y_of(ci, clients.len());
        let _ = write!(
            s,
            r#"<rect x="{lx:.1}" y="{:.1}" width="220" height="22" rx="4"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            y - 11.0,
            lx + 8.0,
            y + 4.0,
            esc(name)
        );
    }
    for (oi, d) in owners.iter().enumerate() {
        let y = y_of(oi, owners.len());
        let failed = d["failed_flows"].as_u64().unwrap_or(0);
        let label = format!(
            "{} · {} flow(s){}",
            str_of(d, &["owner"]),
            d["flows"].as_u64().unwrap_or(0),
            if failed > 0 {
                format!(", {failed} failed")
            } else {
                String::new()
            }
        );
        let _ = write!(
            s,
            r#"<rect class="{}" x="{rx:.1}" y="{:.1}" width="{bw}" height="22" rx="4"><title>{}</title></rect><text x="{:.1}" y="{:.1}">{}</text>"#,
            if failed > 0 { "failed" } else { "ok" },
            y - 11.0,
            esc(&list(&d["names"])),
            rx + 8.0,
            y + 4.0,
            esc(&label)
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn hostile_text_from_the_traffic_stays_text() {
        let mut d = ReportData::default();
        d.on_event(&json!({
            "@timestamp": "2026-01-01T00:00:00.000000Z",
            "event": {"kind": "alert", "severity": 3, "id": "r-2\"><script>"},
            "rule": {"name": "http.chatty"},
            "message": "<script>alert(1)</script> GET /</td></tr>",
            "fallacy": {"id": 2, "evidence": {"shape": "<img src=x onerror=alert(1)>"}},
            "destination": {"ip": "10.0.0.1", "port": 80},
        }));
        let page = render(&d);
        assert!(!page.contains("<script"), "a script tag got through");
        assert!(!page.contains("<img"), "an img tag got through");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        // The anchor keeps only safe characters.
        assert!(page.contains("id=\"finding-r-2script\""));
    }

    #[test]
    fn findings_link_to_their_flows_and_back() {
        let mut d = ReportData::default();
        let row = FlowRow {
            client: ("10.0.0.1".parse().unwrap(), 40000),
            server: ("10.0.0.2".parse().unwrap(), 80),
            proto: 6,
            protocol: Some("http"),
            first: Timestamp(0),
            last: Timestamp(1_000_000_000),
            packets: [3, 2],
            bytes: [300, 200],
            retransmissions: 1,
            end: "reset",
        };
        let cid = row.community_id();
        d.flows.push(row);
        d.on_event(&json!({
            "@timestamp": "2026-01-01T00:00:00.000000Z",
            "event": {"kind": "alert", "severity": 2, "id": "r-7"},
            "rule": {"name": "tcp.connection.reset"},
            "message": "reset",
            "fallacy": {"id": 1, "evidence": {"community_ids": [cid, "1:unknown="]}},
        }));
        let page = render(&d);
        assert!(page.contains("<a href=\"#flow-0\">flow 0</a>"));
        assert!(page.contains("<tr id=\"flow-0\""));
        assert!(page.contains("<a href=\"#finding-r-7\">tcp.connection.reset</a>"));
        // The verdict counts it under fallacy 1.
        assert!(page.contains("data-fallacy=\"1\" data-findings=\"1\""));
        assert!(page.contains("data-fallacy=\"2\" data-findings=\"0\""));
    }

    #[test]
    fn units_read_naturally() {
        assert_eq!(micros(850.0), "850 µs");
        assert_eq!(micros(12_300.0), "12.3 ms");
        assert_eq!(micros(1_200_000.0), "1.2 s");
        assert_eq!(micros(100_000.0), "100 ms");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_044_143), "1.0 MB");
        assert_eq!(trim_num(2.5), "2.5");
        assert_eq!(trim_num(20.0), "20");
        assert_eq!(nines(99.0).round(), 2.0);
        assert_eq!(trim_num(0.0005), "0.0005");
        assert_eq!(trim_num(0.00125), "0.00125");
        assert_eq!(trim_num(1234.0), "1234");
        assert_eq!(duration(0.1), "100 ms");
        assert_eq!(duration(25.6), "25.6 s");
        assert_eq!(duration(13_421_772.8), "155 days");
    }
}
