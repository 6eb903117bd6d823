//! `cargo xtask compare-builds`: two or more `observer` binaries (builds of different commits or
//! settings) on one capture, in alternating pinned runs, so that a change of a few per cent can
//! be told from the machine's noise. Says first whether every build writes the same output.

use crate::bench::{recache, run_measured};
use anyhow::{Context as _, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The first, second and third quartiles of `v` (nearest rank; `None` for no value).
pub(crate) fn quartiles(mut v: Vec<f64>) -> Option<[f64; 3]> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let rank = |q: f64| {
        let r = (q * v.len() as f64).ceil() as usize;
        v[r.clamp(1, v.len()) - 1]
    };
    Some([rank(0.25), rank(0.5), rank(0.75)])
}

/// What `bin analyze -q capture` writes on standard output.
fn findings(bin: &Path, capture: &Path) -> Result<Vec<u8>> {
    let out = Command::new(bin)
        .args(["analyze", "-q"])
        .arg(capture)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "{} analyze {}: {}\n{}",
            bin.display(),
            capture.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    Ok(out.stdout)
}

/// Runs the comparison: `runs` rounds, each running every build once (the order rotating from
/// round to round), pinned to CPU 0; medians and quartiles of wall time, and each build's
/// median against the first's.
pub fn run(capture: &Path, bins: &[PathBuf], runs: usize, keep_cache: bool) -> Result<()> {
    if bins.len() < 2 {
        bail!("compare-builds needs at least two observer binaries");
    }
    // Absolute, so that a bare name is not looked up on PATH instead.
    let bins = bins
        .iter()
        .map(|b| {
            let p = std::fs::canonicalize(b)
                .with_context(|| format!("{} (an observer binary)", b.display()))?;
            if !p.is_file() {
                bail!("{}: not a file (an observer binary)", b.display());
            }
            Ok(p)
        })
        .collect::<Result<Vec<_>>>()?;
    // (Builds that write different output are timed all the same: a change may alter a
    // counter on purpose. It is said here and again under the times.)
    let first = findings(&bins[0], capture)?;
    let mut differ = Vec::new();
    for b in &bins[1..] {
        let other = findings(b, capture)?;
        if other == first {
            println!("{}: the same output as {}", b.display(), bins[0].display());
        } else {
            println!(
                "{}: OUTPUT DIFFERS from {}'s ({} against {} bytes)",
                b.display(),
                bins[0].display(),
                other.len(),
                first.len()
            );
            differ.push(b.display().to_string());
        }
    }
    if !keep_cache {
        let (secs, still) = recache(capture)?;
        println!(
            "page cache: {} dropped ({:.0} % stayed) and read back in {secs:.2} s",
            capture.display(),
            still * 100.0
        );
    }
    let argv = |b: &Path| {
        vec![
            b.display().to_string(),
            "analyze".to_string(),
            "-q".to_string(),
            capture.display().to_string(),
        ]
    };
    let mut walls = vec![Vec::with_capacity(runs); bins.len()];
    for round in 0..runs {
        for k in 0..bins.len() {
            let i = (round + k) % bins.len();
            let run = run_measured(&argv(&bins[i]))?;
            if !run.succeeded {
                bail!(
                    "{} failed in round {} (it succeeded before the timed rounds)",
                    bins[i].display(),
                    round + 1
                );
            }
            walls[i].push(run.wall);
        }
    }
    println!(
        "{runs} rounds, every build once a round (order rotating), pinned to CPU 0; wall seconds"
    );
    println!(
        "{:<50} {:>8} {:>8} {:>8} {:>8} {:>9}",
        "build", "q1", "median", "q3", "min", "vs first"
    );
    let mut base = None;
    for (b, w) in bins.iter().zip(walls) {
        let min = w.iter().copied().fold(f64::INFINITY, f64::min);
        let [q1, med, q3] = quartiles(w).context("no run")?;
        let base = *base.get_or_insert(med);
        println!(
            "{:<50} {q1:>8.4} {med:>8.4} {q3:>8.4} {min:>8.4} {:>8.3}x",
            b.display(),
            med / base
        );
    }
    println!(
        "(a ratio below 1 is faster than the first build; trust a difference only well outside \
         the quartiles' spread, and again in a second run)"
    );
    if !differ.is_empty() {
        println!(
            "output differs from the first build's: {} (not the same work)",
            differ.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::quartiles;

    #[test]
    fn quartiles_by_nearest_rank() {
        // 1..=8: ranks ceil(2) = 2, ceil(4) = 4, ceil(6) = 6.
        let v: Vec<f64> = (1..=8).rev().map(f64::from).collect();
        assert_eq!(quartiles(v), Some([2.0, 4.0, 6.0]));
        // Five values: ranks ceil(1.25) = 2, ceil(2.5) = 3, ceil(3.75) = 4.
        assert_eq!(
            quartiles(vec![0.5, 0.1, 0.4, 0.2, 0.3]),
            Some([0.2, 0.3, 0.4])
        );
        assert_eq!(quartiles(vec![7.0]), Some([7.0, 7.0, 7.0]));
        assert_eq!(quartiles(Vec::new()), None);
    }
}
