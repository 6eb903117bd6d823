//! Baselines for CI: the findings a project has accepted, by stable fingerprint, so a check
//! fails only on findings that are new.
//!
//! A fingerprint is computed from a finding event as written (the public NDJSON contract), from
//! what the finding is about — never when it happened or how often:
//! `rule.name`, `network.transport`, `network.protocol`, `source.ip`, `destination.ip`,
//! `destination.port` (the client's ephemeral port is left out). A finding about a server and
//! the clients it failed (a `clients` list in its evidence) leaves `source.ip` out too: it is
//! only whichever client came first, not what the finding is about. A finding without a
//! destination (a zone pair, an owner, a service-wide group) is identified by its evidence's
//! text fields instead, except times (`*_seen`, `*_at`, `*_time`, or any value written as an
//! RFC 3339 time, such as a saturation's `start`), and by its capture `interface`. The hash is
//! SHA-1, first 16 hex digits, over those fields joined with NUL.
//!
//! The file is JSON: `{"observer_baseline": 1, "findings": [{"fingerprint", "rule",
//! "severity", "message"}, …]}`, sorted by fingerprint, so it diffs well in review. A finding
//! is accepted at the severity the file gives it: seen more severe, it is a new finding.

use crate::finding::Severity;
use serde_json::{Value, json};
use sha1::{Digest as _, Sha1};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Format version written in the file.
pub const VERSION: u64 = 1;

/// Why a baseline file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// Read or write failed (the I/O error is in the message, not chained after it again).
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// Not a baseline this version reads.
    #[error(
        "{path}: not an observer baseline ({reason}); create one with `observer baseline create`"
    )]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// One accepted finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// `rule.name`.
    pub rule: String,
    /// `event.severity` name.
    pub severity: String,
    /// The finding's message when the baseline was made (for people reading the file).
    pub message: String,
}

/// Accepted findings by fingerprint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Baseline {
    /// Fingerprint → entry.
    pub findings: BTreeMap<String, Entry>,
}

fn is_finding(ev: &Value) -> bool {
    ev["event"]["kind"] == "alert"
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Whether `s` is a time as findings write them (RFC 3339, `2026-01-01T00:00:00.000000Z`):
/// when something happened is never what it is about.
fn is_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
}

/// The stable fingerprint of a finding event; `None` for other events.
pub fn fingerprint(ev: &Value) -> Option<String> {
    if !is_finding(ev) {
        return None;
    }
    // A group across clients names its first client in `source`: another day another
    // client may come first, the same problem.
    let per_client = !ev["fallacy"]["evidence"]["clients"].is_array();
    let mut parts = vec![
        text(&ev["rule"]["name"]),
        text(&ev["network"]["transport"]),
        text(&ev["network"]["protocol"]),
        if per_client {
            text(&ev["source"]["ip"])
        } else {
            String::new()
        },
        text(&ev["destination"]["ip"]),
        text(&ev["destination"]["port"]),
    ];
    if ev["destination"].is_null() {
        if let Some(evidence) = ev["fallacy"]["evidence"].as_object() {
            // serde_json's map is ordered by key: the same evidence gives the same order.
            for (k, v) in evidence {
                let timeish = k.ends_with("_seen") || k.ends_with("_at") || k.ends_with("_time");
                match v {
                    Value::String(s) if !timeish && !is_time(s) => parts.push(format!("{k}={s}")),
                    // The link a saturation is on: two links are two problems.
                    Value::Number(n) if k == "interface" => parts.push(format!("{k}={n}")),
                    _ => {}
                }
            }
        }
    }
    let mut h = Sha1::new();
    for p in &parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    let digest = h.finalize();
    Some(digest[..8].iter().map(|b| format!("{b:02x}")).collect())
}

impl Baseline {
    /// The findings among `events`.
    pub fn from_events(events: &[Value]) -> Baseline {
        let mut findings: BTreeMap<String, (Option<Severity>, Entry)> = BTreeMap::new();
        for ev in events {
            if let Some(fp) = fingerprint(ev) {
                let sev = severity_of(ev);
                let entry = || Entry {
                    rule: text(&ev["rule"]["name"]),
                    severity: sev.map_or_else(String::new, |s| s.name().to_string()),
                    message: text(&ev["message"]),
                };
                // One finding reported several times (a long run) is accepted at its worst.
                match findings.get_mut(&fp) {
                    Some(have) if sev > have.0 => *have = (sev, entry()),
                    Some(_) => {}
                    None => {
                        findings.insert(fp, (sev, entry()));
                    }
                }
            }
        }
        Baseline {
            findings: findings.into_iter().map(|(fp, (_, e))| (fp, e)).collect(),
        }
    }

    /// Reads a baseline file.
    pub fn load(path: &Path) -> Result<Baseline, BaselineError> {
        let bytes = std::fs::read(path).map_err(|error| BaselineError::Io {
            path: path.to_path_buf(),
            error,
        })?;
        let bad = |reason: String| BaselineError::Format {
            path: path.to_path_buf(),
            reason,
        };
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| bad(format!("not JSON: {e}")))?;
        match v["observer_baseline"].as_u64() {
            Some(VERSION) => {}
            Some(other) => return Err(bad(format!("version {other}, this build reads {VERSION}"))),
            None => return Err(bad("no `observer_baseline` version field".into())),
        }
        let list = v["findings"]
            .as_array()
            .ok_or_else(|| bad("no `findings` list".into()))?;
        let mut findings = BTreeMap::new();
        for (i, f) in list.iter().enumerate() {
            let fp = f["fingerprint"]
                .as_str()
                .filter(|s| s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit()))
                .ok_or_else(|| bad(format!("findings[{i}] has no 16-hex-digit fingerprint")))?;
            // Fingerprints are written in lowercase; one edited into capitals is the same.
            findings.insert(
                fp.to_ascii_lowercase(),
                Entry {
                    rule: text(&f["rule"]),
                    severity: text(&f["severity"]),
                    message: text(&f["message"]),
                },
            );
        }
        Ok(Baseline { findings })
    }

    /// The file's JSON.
    pub fn to_json(&self) -> Value {
        let findings: Vec<Value> = self
            .findings
            .iter()
            .map(|(fp, e)| {
                json!({"fingerprint": fp, "rule": e.rule, "severity": e.severity, "message": e.message})
            })
            .collect();
        json!({"observer_baseline": VERSION, "findings": findings})
    }

    /// Writes the file (pretty, one finding per few lines, for review diffs): next to it under
    /// a temporary name, then renamed over it, so a write that fails (a full disk) leaves the
    /// file as it was, never cut short.
    pub fn save(&self, path: &Path) -> Result<(), BaselineError> {
        let mut text = serde_json::to_string_pretty(&self.to_json()).unwrap_or_default();
        text.push('\n');
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(path.file_name().unwrap_or_else(|| "baseline".as_ref()));
        tmp_name.push(".tmp");
        let io = |error| BaselineError::Io {
            path: path.to_path_buf(),
            error,
        };
        // A directory (`DIR/` too, whose temporary would go beside DIR) is said to be one.
        if path.is_dir() {
            let kind = std::io::ErrorKind::IsADirectory;
            return Err(io(std::io::Error::new(kind, "Is a directory")));
        }
        let tmp = path.with_file_name(tmp_name);
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|error| {
                let _ = std::fs::remove_file(&tmp);
                io(error)
            })
    }

    /// Findings among `events` not in the baseline or more severe than it accepted them (in
    /// event order; with the accepted entry when more severe), and baseline entries no finding
    /// matched (fixed since).
    #[allow(clippy::type_complexity)]
    pub fn compare<'a>(
        &'a self,
        events: &'a [Value],
    ) -> (
        Vec<(&'a Value, Option<&'a Entry>)>,
        Vec<(&'a str, &'a Entry)>,
    ) {
        let mut seen = std::collections::BTreeSet::new();
        let mut new = Vec::new();
        for ev in events {
            if let Some(fp) = fingerprint(ev) {
                match self.findings.get(&fp) {
                    Some(e) => {
                        // Accepted at a lower severity: a regression, not the known problem.
                        let accepted = e.severity.parse::<Severity>().ok();
                        if accepted.is_some_and(|a| severity_of(ev).is_some_and(|s| s > a)) {
                            new.push((ev, Some(e)));
                        }
                        seen.insert(fp);
                    }
                    None => new.push((ev, None)),
                }
            }
        }
        let gone = self
            .findings
            .iter()
            .filter(|(fp, _)| !seen.contains(*fp))
            .map(|(fp, e)| (fp.as_str(), e))
            .collect();
        (new, gone)
    }
}

/// A finding event's severity (`event.severity`, 1–4).
pub fn severity_of(ev: &Value) -> Option<Severity> {
    match ev["event"]["severity"].as_u64()? {
        1 => Some(Severity::Low),
        2 => Some(Severity::Medium),
        3 => Some(Severity::High),
        4 => Some(Severity::Critical),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(rule: &str, dst: &str, port: u16, ts: &str, count: u64) -> Value {
        json!({
            "@timestamp": ts,
            "event": {"kind": "alert", "severity": 2},
            "rule": {"name": rule},
            "message": format!("{count} attempts"),
            "network": {"transport": "tcp"},
            "source": {"ip": "10.0.0.1", "port": 40000 + count},
            "destination": {"ip": dst, "port": port},
            "fallacy": {"evidence": {"attempts": count, "first_seen": ts}},
        })
    }

    #[test]
    fn fingerprint_ignores_times_counts_and_client_ports_but_not_what_it_is_about() {
        let a = finding(
            "tcp.handshake.refused",
            "10.0.0.2",
            81,
            "2026-01-01T00:00:00Z",
            1,
        );
        let b = finding(
            "tcp.handshake.refused",
            "10.0.0.2",
            81,
            "2026-06-01T00:00:00Z",
            7,
        );
        assert_eq!(fingerprint(&a), fingerprint(&b));
        for other in [
            finding(
                "tcp.handshake.unanswered",
                "10.0.0.2",
                81,
                "2026-01-01T00:00:00Z",
                1,
            ),
            finding(
                "tcp.handshake.refused",
                "10.0.0.3",
                81,
                "2026-01-01T00:00:00Z",
                1,
            ),
            finding(
                "tcp.handshake.refused",
                "10.0.0.2",
                82,
                "2026-01-01T00:00:00Z",
                1,
            ),
        ] {
            assert_ne!(fingerprint(&a), fingerprint(&other));
        }
        assert_eq!(fingerprint(&json!({"event": {"kind": "metric"}})), None);
    }

    #[test]
    fn findings_without_a_destination_are_told_apart_by_their_evidence_text() {
        let pair = |from: &str, seen: &str| {
            json!({
                "event": {"kind": "alert", "severity": 2},
                "rule": {"name": "cost.zone_pair"},
                "fallacy": {"evidence": {"from_zone": from, "to_zone": "b", "usd": 3.5, "last_seen": seen}},
            })
        };
        assert_eq!(fingerprint(&pair("a", "x")), fingerprint(&pair("a", "y")));
        assert_ne!(fingerprint(&pair("a", "x")), fingerprint(&pair("c", "x")));
    }

    #[test]
    fn a_saturation_is_told_apart_by_its_link_not_its_start() {
        let sat = |interface: u32, start: &str| {
            json!({
                "event": {"kind": "alert", "severity": 2},
                "rule": {"name": "bandwidth.saturation"},
                "fallacy": {"evidence": {"interface": interface, "direction": "server_to_client", "start": start}},
            })
        };
        let a = sat(0, "2026-01-01T00:00:00.000000Z");
        assert_eq!(
            fingerprint(&a),
            fingerprint(&sat(0, "2026-01-02T10:00:00.000000Z"))
        );
        assert_ne!(
            fingerprint(&a),
            fingerprint(&sat(1, "2026-01-01T00:00:00.000000Z"))
        );
    }

    #[test]
    fn round_trip_and_compare() {
        let a = finding(
            "tcp.handshake.refused",
            "10.0.0.2",
            81,
            "2026-01-01T00:00:00Z",
            1,
        );
        let b = finding(
            "tcp.handshake.refused",
            "10.0.0.2",
            82,
            "2026-01-01T00:00:00Z",
            1,
        );
        let base = Baseline::from_events(std::slice::from_ref(&a));
        let path = std::env::temp_dir().join(format!("obs-baseline-{}.json", std::process::id()));
        base.save(&path).unwrap();
        let back = Baseline::load(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(back, base);
        assert_eq!(back.findings.values().next().unwrap().severity, "medium");
        let events = [a, b];
        let (new, gone) = back.compare(&events);
        assert_eq!(new.len(), 1);
        assert_eq!(new[0].0["destination"]["port"], 82);
        assert!(new[0].1.is_none());
        assert!(gone.is_empty());
    }
}
