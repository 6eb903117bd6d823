//! `cargo xtask bench-probe`: what the kernel probe costs the host, measured side by side in
//! one run (root; everything happens on the loopback of a network namespace made here).
//!
//! 1. Loopback bulk throughput with and without `observer probe -i lo`, interleaved rounds,
//!    medians and the ratio.
//! 2. The probe's own cost per event from the kernel's BPF statistics
//!    (`kernel.bpf_stats_enabled`, `run_time_ns / run_cnt` per program as bpftool reports it)
//!    over a bulk run plus a connection churn.
//! 3. N short connections with the probe attached: records the kernel programs submitted vs
//!    records userspace received, every drop counter, and connections the probe saw established
//!    vs the kernel's own `TcpActiveOpens`.

use crate::bench::{have, median};
use anyhow::{Context as _, Result, bail, ensure};
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `xtask loopback-bulk SECS`: one TCP connection on 127.0.0.1 pushing 128 KiB writes for SECS
/// seconds; prints Gbit/s.
pub fn loopback_bulk(secs: f64) -> Result<()> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let addr = l.local_addr()?;
    let rx = std::thread::spawn(move || -> std::io::Result<u64> {
        let (mut c, _) = l.accept()?;
        let mut buf = vec![0u8; 1 << 17];
        let mut n = 0u64;
        loop {
            match c.read(&mut buf)? {
                0 => return Ok(n),
                k => n += k as u64,
            }
        }
    });
    let mut c = TcpStream::connect(addr)?;
    let buf = vec![0x5au8; 1 << 17];
    let t0 = Instant::now();
    let end = Duration::from_secs_f64(secs);
    while t0.elapsed() < end {
        c.write_all(&buf)?;
    }
    drop(c);
    let n = rx.join().expect("receiver thread")?;
    let el = t0.elapsed().as_secs_f64();
    println!("{:.3}", n as f64 * 8.0 / el / 1e9);
    Ok(())
}

/// `xtask churn N`: N sequential short connections (connect, 1 byte each way, close) on
/// 127.0.0.1; prints the seconds taken.
pub fn churn(n: usize) -> Result<()> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let addr = l.local_addr()?;
    let srv = std::thread::spawn(move || -> std::io::Result<()> {
        for _ in 0..n {
            let (mut c, _) = l.accept()?;
            let mut b = [0u8; 1];
            c.read_exact(&mut b)?;
            c.write_all(&b)?;
        }
        Ok(())
    });
    let t0 = Instant::now();
    for _ in 0..n {
        let mut c = TcpStream::connect(addr)?;
        c.write_all(b"x")?;
        let mut b = [0u8; 1];
        c.read_exact(&mut b)?;
    }
    srv.join().expect("server thread")?;
    println!("{:.3}", t0.elapsed().as_secs_f64());
    Ok(())
}

struct Ns(String);

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

struct Probe(Child, PathBuf);

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_file(&self.1);
    }
}

fn in_ns(ns: &Ns, argv: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .args(argv)
        .output()
        .with_context(|| format!("running {argv:?}"))?;
    ensure!(
        out.status.success(),
        "{argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn nstat(ns: &Ns, name: &str) -> Result<u64> {
    let out = in_ns(ns, &["nstat", "-asz", name])?;
    out.lines()
        .find_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some(name)).then(|| f.next().and_then(|v| v.parse().ok()))?
        })
        .with_context(|| format!("nstat has no {name}"))
}

fn start_probe(ns: &Ns, observer: &Path, tag: &str) -> Result<Probe> {
    let out = std::env::temp_dir().join(format!(
        "obs-bench-probe-{tag}-{}.ndjson",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&out);
    let spec = format!("file:{}", out.display());
    let child = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(observer)
        .args(["probe", "-i", "lo", "-q", "-o", &spec])
        .stderr(Stdio::null())
        .spawn()?;
    let p = Probe(child, out);
    let t0 = Instant::now();
    // Attached once the start event is written.
    while std::fs::metadata(&p.1).map_or(0, |m| m.len()) == 0 {
        ensure!(
            t0.elapsed() < Duration::from_secs(15),
            "the probe did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(p)
}

/// Stops the probe with SIGTERM and returns its summary event.
fn stop_probe(mut p: Probe) -> Result<serde_json::Value> {
    let pid = p.0.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status()?;
    let st = p.0.wait()?;
    ensure!(st.success(), "observer probe exited with {st}");
    let text = std::fs::read_to_string(&p.1)?;
    let last = text.lines().last().context("no summary")?;
    Ok(serde_json::from_str(last)?)
}

/// (name, run_time_ns, run_cnt) of the probe's programs, from bpftool.
fn bpf_stats() -> Result<Vec<(String, u64, u64)>> {
    let out = Command::new("bpftool")
        .args(["-j", "prog", "show"])
        .output()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let name = p["name"].as_str()?;
            observer_wire::PROGRAMS.contains(&name).then(|| {
                (
                    name.to_string(),
                    p["run_time_ns"].as_u64().unwrap_or(0),
                    p["run_cnt"].as_u64().unwrap_or(0),
                )
            })
        })
        .collect())
}

fn stat(summary: &serde_json::Value, dotted: &str) -> u64 {
    dotted
        .split('.')
        .fold(&summary["stats"], |v, k| &v[k])
        .as_u64()
        .unwrap_or(0)
}

/// Runs the three measurements and prints them.
pub fn run(root: &Path, rounds: usize, secs: f64, conns: usize) -> Result<()> {
    if !Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
    {
        bail!("bench-probe needs root (it loads eBPF programs and makes a network namespace)");
    }
    for tool in ["bpftool", "nstat"] {
        ensure!(have(tool), "{tool} missing: run scripts/setup-ebpf.sh");
    }
    let st = Command::new(env!("CARGO"))
        .current_dir(root)
        .args(["build", "--release", "--quiet", "-p", "observer"])
        .status()?;
    ensure!(st.success(), "building observer failed");
    let observer = crate::bench::target_dir(root).join("release/observer");
    let me = std::env::current_exe()?;
    let me = me.to_str().context("xtask path")?;
    let ns = Ns(format!("obsbench-{}", std::process::id()));
    let _ = Command::new("ip").args(["netns", "del", &ns.0]).status();
    ensure!(
        Command::new("ip")
            .args(["netns", "add", &ns.0])
            .status()?
            .success()
    );
    in_ns(&ns, &["ip", "link", "set", "lo", "up"])?;
    let secs_s = format!("{secs}");

    // 1. Throughput, interleaved (the order flips each round so drift hits both sides).
    println!(
        "loopback bulk throughput, {rounds} rounds of {secs} s each side, one connection, 128 KiB writes:"
    );
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        for with_probe in if r % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        } {
            let probe = if with_probe {
                Some(start_probe(&ns, &observer, "tput")?)
            } else {
                None
            };
            let g: f64 = in_ns(&ns, &[me, "loopback-bulk", &secs_s])?.parse()?;
            if let Some(p) = probe {
                stop_probe(p)?;
            }
            println!(
                "  round {r}: {} {g:.2} Gbit/s",
                if with_probe { "probe   " } else { "no probe" }
            );
            if with_probe { on.push(g) } else { off.push(g) }
        }
    }
    let (m_off, m_on) = (median(off), median(on));
    println!(
        "  median: no probe {m_off:.2} Gbit/s, probe {m_on:.2} Gbit/s: ratio {:.3} ({:+.1} %)",
        m_on / m_off,
        (m_on / m_off - 1.0) * 100.0
    );

    // 2 and 3. Per-event cost (BPF stats on only here) and the churn with delivery counts.
    let churn_off: f64 = in_ns(&ns, &[me, "churn", &conns.to_string()])?.parse()?;
    let stats_was =
        std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled").unwrap_or_default();
    std::fs::write("/proc/sys/kernel/bpf_stats_enabled", "1").context("enabling BPF stats")?;
    let result = (|| -> Result<()> {
        let p = start_probe(&ns, &observer, "churn")?;
        let at_start = bpf_stats()?;
        let opens0 = nstat(&ns, "TcpActiveOpens")?;
        let churn_on: f64 = in_ns(&ns, &[me, "churn", &conns.to_string()])?.parse()?;
        let opens = nstat(&ns, "TcpActiveOpens")? - opens0;
        std::thread::sleep(Duration::from_millis(300));
        let after_churn = bpf_stats()?;
        in_ns(&ns, &[me, "loopback-bulk", &secs_s])?;
        std::thread::sleep(Duration::from_millis(300));
        let after_bulk = bpf_stats()?;
        let s = stop_probe(p)?;
        for (what, from, to) in [
            (
                format!("{conns} short connections (many packets sampled)"),
                &at_start,
                &after_churn,
            ),
            (
                format!("a {secs} s bulk transfer (counted, rarely sampled)"),
                &after_churn,
                &after_bulk,
            ),
        ] {
            println!("\nper-event cost over {what} (kernel BPF stats: run_time_ns / run_cnt):");
            for (name, t1, c1) in to {
                let (t0, c0) = from
                    .iter()
                    .find(|(n, _, _)| n == name)
                    .map_or((0, 0), |(_, t, c)| (*t, *c));
                let cnt = c1 - c0;
                if cnt > 0 {
                    println!(
                        "  {name:<20} {:>8.0} ns/event over {cnt} events",
                        (t1 - t0) as f64 / cnt as f64
                    );
                }
            }
        }
        println!("\n{conns} short connections (connect, 1 byte each way, close) on loopback:");
        println!(
            "  time: no probe {churn_off:.3} s, probe {churn_on:.3} s (ratio {:.2})",
            churn_on / churn_off
        );
        println!(
            "  connections established: kernel TcpActiveOpens {opens}, probe saw {} (SYN_SENT→ESTABLISHED)",
            stat(&s, "probe.sockets.connected")
        );
        println!(
            "  packet records: kernel submitted {}, userspace received {} (TC ran on {} packets)",
            stat(&s, "probe.kernel.tc_sampled"),
            stat(&s, "probe.received.packets"),
            stat(&s, "probe.kernel.tc_packets")
        );
        println!(
            "  socket events: kernel submitted {}, userspace received {}",
            stat(&s, "probe.kernel.events"),
            stat(&s, "probe.received.events")
        );
        println!(
            "  lost: packet ring full {}, event ring full {}, flow map full {}, headers unreadable {}",
            stat(&s, "probe.dropped.packet_ring_full"),
            stat(&s, "probe.dropped.event_ring_full"),
            stat(&s, "probe.dropped.flow_map_full"),
            stat(&s, "probe.dropped.header_unreadable")
        );
        Ok(())
    })();
    let _ = std::fs::write(
        "/proc/sys/kernel/bpf_stats_enabled",
        if stats_was.trim().is_empty() {
            "0"
        } else {
            stats_was.trim()
        },
    );
    result
}
