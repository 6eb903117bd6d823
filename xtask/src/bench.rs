//! Side-by-side benchmark: `observer analyze` against the libpcap read floor
//! (`tcpdump -r FILE -w /dev/null`), `ndpiReader -i FILE`, and optionally `tcptrace -l` and
//! `tshark -q`, on the same file in the same run, interleaved, each pinned to one core.
//! Also compares this project's capture reader with libpcap (the `pcap` crate) in-process.
//! Prints packets/s, MB/s, peak RSS and the ratios.

use anyhow::{Context as _, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Builds the release `observer` binary and returns its path.
pub(crate) fn build_observer(root: &Path) -> Result<PathBuf> {
    let ok = Command::new("cargo")
        .current_dir(root)
        .args(["build", "--release", "--quiet", "-p", "observer"])
        .status()?
        .success();
    if !ok {
        bail!("building observer failed");
    }
    Ok(target_dir(root).join("release/observer"))
}

/// Cargo's target directory: `CARGO_TARGET_DIR` when set (relative to the workspace root
/// when relative, as cargo takes it), else the workspace's `target/`.
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => root.join(d),
        _ => root.join("target"),
    }
}

/// One measured process run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Run {
    pub(crate) wall: f64,
    cpu: f64,
    pub(crate) max_rss_kib: i64,
    /// The program exited with status 0.
    pub(crate) succeeded: bool,
}

/// Runs `argv` pinned to CPU 0: wall time, CPU time and peak RSS.
pub(crate) fn run_measured(argv: &[String]) -> Result<Run> {
    run_measured_on(argv, "0")
}

/// [`run_measured`] pinned to the CPU list `cpus` (taskset syntax: "0", "0,1").
#[expect(
    unsafe_code,
    reason = "wait4 is the only way to get one child's peak RSS and CPU time"
)]
pub(crate) fn run_measured_on(argv: &[String], cpus: &str) -> Result<Run> {
    let start = Instant::now();
    let child = Command::new("taskset")
        .args(["-c", cpus])
        .args(argv)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", argv[0]))?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child, status and ru are valid for writes.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let wall = start.elapsed().as_secs_f64();
    if r != pid {
        bail!("wait4 failed for {}", argv[0]);
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(Run {
        wall,
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
        max_rss_kib: ru.ru_maxrss,
        succeeded: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
    })
}

/// The median (upper for an even count; 0 for none).
pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

/// True if `cmd` is on PATH.
pub(crate) fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

fn ensure_tools(extra: &[(&str, &str)]) -> Result<()> {
    let mut missing: Vec<&str> = Vec::new();
    for (cmd, pkg) in [("tcpdump", "tcpdump"), ("ndpiReader", "libndpi-bin")]
        .iter()
        .chain(extra.iter())
    {
        if !have(cmd) {
            missing.push(pkg);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("installing {}", missing.join(" "));
    let ok = Command::new("sh")
        .args([
            "-c",
            &format!(
                "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq {}",
                missing.join(" ")
            ),
        ])
        .status()?
        .success();
    if !ok {
        bail!("could not install {}", missing.join(" "));
    }
    Ok(())
}

/// In-process read of every packet: this project's reader vs libpcap.
fn reader_comparison(path: &Path) -> Result<(f64, f64, u64)> {
    let t = Instant::now();
    let mut cf = observer::source::CaptureFile::open(path)?;
    let mut n = 0u64;
    let mut sum = 0u64;
    while let Some(p) = cf.next_packet()? {
        n += 1;
        sum += p.data.len() as u64 + u64::from(p.data.first().copied().unwrap_or(0));
    }
    let ours = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut cap = pcap::Capture::from_file(path)?;
    let mut m = 0u64;
    let mut sum2 = 0u64;
    while let Ok(p) = cap.next_packet() {
        m += 1;
        sum2 += p.data.len() as u64 + u64::from(p.data.first().copied().unwrap_or(0));
    }
    let libpcap = t.elapsed().as_secs_f64();
    if n != m || sum != sum2 {
        bail!("readers disagree: ours {n} packets, libpcap {m}");
    }
    Ok((ours, libpcap, n))
}

/// Drops `path` from the page cache and reads it back once, so that every tool then reads the
/// same cached pages in the sizes the kernel's read-ahead chooses, whoever wrote the file.
///
/// Why: how a file came into the page cache changes how fast it is read from there. A file
/// written by small writes (tcpdump, a download) stays cached in 4 KiB pages; read back from
/// disk it is cached in large folios (up to 2 MiB), and large `read()`s copy from those about
/// three times faster (on the reference capture, `dd bs=1M`: 43 ms against 19 ms). Tools that
/// read 4 KiB at a time (libpcap) barely notice. Returns the read-back's wall time and the
/// fraction of the file still cached after the drop (the advice can be ignored: tmpfs, pages
/// another process maps).
#[expect(
    unsafe_code,
    reason = "posix_fadvise is the only way to drop one file's cached pages"
)]
pub(crate) fn recache(path: &Path) -> Result<(f64, f64)> {
    use std::io::Read as _;
    use std::os::fd::AsRawFd as _;
    let mut f = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    // Dirty pages are not dropped: write them back first.
    f.sync_all()
        .with_context(|| format!("syncing {}", path.display()))?;
    // SAFETY: the descriptor is open for the duration of the call; the advice has no memory
    // effects on this process.
    let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if r != 0 {
        bail!(
            "dropping {} from the page cache: {}",
            path.display(),
            std::io::Error::from_raw_os_error(r)
        );
    }
    let still = cached_fraction(&f)?;
    let t = Instant::now();
    let mut buf = vec![0u8; 4 << 20];
    while f.read(&mut buf)? > 0 {}
    Ok((t.elapsed().as_secs_f64(), still))
}

/// The fraction of `f`'s pages in the page cache (`mincore` over a mapping of it).
#[expect(
    unsafe_code,
    reason = "mincore over a private read-only mapping is the only way to ask"
)]
fn cached_fraction(f: &std::fs::File) -> Result<f64> {
    use std::os::fd::AsRawFd as _;
    let len = usize::try_from(f.metadata()?.len())?;
    if len == 0 {
        return Ok(0.0);
    }
    // SAFETY: sysconf has no memory effects.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })?;
    // SAFETY: a fresh read-only mapping of an open file; nothing reads through it, and it is
    // unmapped below.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            f.as_raw_fd(),
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        bail!("mapping the capture: {}", std::io::Error::last_os_error());
    }
    let mut pages = vec![0u8; len.div_ceil(page)];
    // SAFETY: `addr..addr+len` is the mapping made above, `pages` has one byte per page.
    let r = unsafe { libc::mincore(addr, len, pages.as_mut_ptr()) };
    let err = std::io::Error::last_os_error();
    // SAFETY: the mapping made above, no longer used.
    unsafe { libc::munmap(addr, len) };
    if r != 0 {
        bail!("asking which pages of the capture are cached: {err}");
    }
    let cached = pages.iter().filter(|&&p| p & 1 == 1).count();
    Ok(cached as f64 / pages.len() as f64)
}

/// Runs the benchmark; `keep_cache` skips [`recache`].
pub fn run(
    root: &Path,
    capture: Option<PathBuf>,
    size_mb: u64,
    runs: usize,
    slow: bool,
    keep_cache: bool,
) -> Result<()> {
    let extra: Vec<(&str, &str)> = if slow {
        vec![("tshark", "tshark"), ("tcptrace", "tcptrace")]
    } else {
        vec![]
    };
    ensure_tools(&extra)?;
    let observer = build_observer(root)?;
    let path = match capture {
        Some(p) => p,
        None => {
            let dir = target_dir(root).join("bench");
            std::fs::create_dir_all(&dir)?;
            let p = dir.join(format!("synthetic-{size_mb}mb.pcap"));
            if !p.exists() {
                eprintln!("generating {} (seeded, reproducible)", p.display());
                crate::synth::generate(&p, size_mb * 1_000_000, 42, 1)?;
            }
            p
        }
    };
    let bytes = std::fs::metadata(&path)
        .with_context(|| format!("{}", path.display()))?
        .len();
    let cache_note = if keep_cache {
        "page cache as found (--keep-cache)".to_string()
    } else {
        let (secs, still) = recache(&path)?;
        if still > 0.05 {
            format!(
                "page cache: as found: dropping the capture from it did not take ({:.0} % still cached; tmpfs, or mapped by another process)",
                still * 100.0
            )
        } else {
            format!(
                "page cache: the capture was dropped from it and read back once ({:.2} s, {:.0} MB/s), so every tool reads the same cached pages",
                secs,
                bytes as f64 / 1e6 / secs
            )
        }
    };
    // Warm the page cache (a first pass), then keep the best of three passes each.
    let (_, _, packets) = reader_comparison(&path)?;
    let mut ours_best = f64::MAX;
    let mut libpcap_best = f64::MAX;
    for _ in 0..3 {
        let (o, l, _) = reader_comparison(&path)?;
        ours_best = ours_best.min(o);
        libpcap_best = libpcap_best.min(l);
    }
    let file = path.display().to_string();
    let observer_run = |threads: &str| {
        vec![
            observer.display().to_string(),
            "analyze".into(),
            "-q".into(),
            "--threads".into(),
            threads.into(),
            file.clone(),
        ]
    };
    let mut tools: Vec<(&str, Vec<String>)> = vec![
        ("observer analyze --threads 1", observer_run("1")),
        (
            "tcpdump -r -w /dev/null (read floor)",
            vec![
                "tcpdump".into(),
                "-r".into(),
                file.clone(),
                "-w".into(),
                "/dev/null".into(),
            ],
        ),
        (
            "ndpiReader -i",
            vec!["ndpiReader".into(), "-i".into(), file.clone()],
        ),
    ];
    if slow {
        tools.push((
            "tcptrace -l",
            vec!["tcptrace".into(), "-l".into(), file.clone()],
        ));
        tools.push((
            "tshark -q -z io,stat,0",
            vec![
                "tshark".into(),
                "-r".into(),
                file.clone(),
                "-q".into(),
                "-z".into(),
                "io,stat,0".into(),
            ],
        ));
    }
    // The two-thread run gets CPUs 0 and 1; everything else runs on CPU 0 alone.
    let two_cpus = std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
    let two_threads = two_cpus.then(|| {
        tools.push(("observer analyze --threads 2 (CPUs 0,1)", observer_run("2")));
        tools.len() - 1
    });
    let mut results: Vec<Vec<Run>> = vec![Vec::new(); tools.len()];
    for r in 0..runs {
        for (i, (name, argv)) in tools.iter().enumerate() {
            let cpus = if Some(i) == two_threads { "0,1" } else { "0" };
            let m = run_measured_on(argv, cpus)?;
            eprintln!(
                "run {}/{runs} {name}: {:.3} s, {} MiB",
                r + 1,
                m.wall,
                m.max_rss_kib / 1024
            );
            results[i].push(m);
        }
    }
    println!();
    println!(
        "capture: {} ({:.1} MB, {} packets); {runs} interleaved runs each, pinned to CPU 0 (the two-thread run to CPUs 0,1); medians",
        path.display(),
        bytes as f64 / 1e6,
        packets
    );
    println!("{cache_note}");
    println!(
        "{:<40} {:>8} {:>8} {:>12} {:>8} {:>9}",
        "tool", "wall s", "cpu s", "packets/s", "MB/s", "peak MiB"
    );
    let mut med = Vec::new();
    for (i, (name, _)) in tools.iter().enumerate() {
        let wall = median(results[i].iter().map(|r| r.wall).collect());
        let cpu = median(results[i].iter().map(|r| r.cpu).collect());
        let rss = median(results[i].iter().map(|r| r.max_rss_kib as f64).collect()) / 1024.0;
        println!(
            "{:<40} {:>8.3} {:>8.3} {:>12.0} {:>8.0} {:>9.1}",
            name,
            wall,
            cpu,
            packets as f64 / wall,
            bytes as f64 / 1e6 / wall,
            rss
        );
        med.push((wall, rss));
    }
    println!();
    let (obs, floor, ndpi) = (med[0], med[1], med[2]);
    println!("ratios (same run; observer on one core unless said):");
    println!(
        "  observer throughput vs ndpiReader: {:.2}x   (target >= 2.0)",
        ndpi.0 / obs.0
    );
    if let Some(t) = two_threads {
        let two = med[t];
        println!(
            "  observer --threads 2 (two cores) vs ndpiReader: {:.2}x; scaling 1 -> 2 threads: {:.2}x; peak memory {:.1} vs {:.1} MiB",
            ndpi.0 / two.0,
            obs.0 / two.0,
            two.1,
            obs.1
        );
    }
    println!(
        "  observer time vs libpcap read floor: {:.2}x   (target <= 2.0)",
        obs.0 / floor.0
    );
    println!(
        "  observer peak memory vs ndpiReader: {:.2}x   (target < 1.0)",
        obs.1 / ndpi.1
    );
    if slow {
        println!(
            "  observer throughput vs tshark: {:.1}x   (target >= 20)",
            med[4].0 / obs.0
        );
    }
    println!(
        "  packets/s: observer {:.2} M (target >= 1 M on one core)",
        packets as f64 / obs.0 / 1e6
    );
    println!(
        "reader only, in-process (best of 3 warm passes): this project's reader {:.3} s, libpcap (pcap crate) {:.3} s: ours is {:.2}x faster",
        ours_best,
        libpcap_best,
        libpcap_best / ours_best
    );
    Ok(())
}

/// Memory against capture length: the same seeded traffic mix, slowed down so flows time out
/// (a few Mbit/s), as a 200 MB and a 2 GB capture; `observer analyze` on each (three runs,
/// the lowest peak RSS kept) and the ratio. Steady state means the longer capture's peak stays
/// within 20 % of the shorter one's.
pub fn memory_scaling(root: &Path) -> Result<()> {
    let observer = build_observer(root)?;
    let dir = target_dir(root).join("bench");
    std::fs::create_dir_all(&dir)?;
    let mut peaks = Vec::new();
    for mb in [200u64, 2000] {
        let p = dir.join(format!("steady-{mb}mb.pcap"));
        if !p.exists() {
            eprintln!("generating {} (seeded, reproducible)", p.display());
            crate::synth::generate(&p, mb * 1_000_000, 42, 300)?;
        }
        let argv = vec![
            observer.display().to_string(),
            "analyze".into(),
            "-q".into(),
            p.display().to_string(),
        ];
        let runs: Vec<Run> = (0..3).map(|_| run_measured(&argv)).collect::<Result<_>>()?;
        let rss = runs.iter().map(|r| r.max_rss_kib).min().unwrap_or(0);
        let wall = median(runs.iter().map(|r| r.wall).collect());
        println!(
            "{:>5} MB capture: peak RSS {:>7.1} MiB, {:.2} s",
            mb,
            rss as f64 / 1024.0,
            wall
        );
        peaks.push(rss);
    }
    let ratio = peaks[1] as f64 / peaks[0].max(1) as f64;
    println!(
        "2 GB / 200 MB peak RSS: {ratio:.3} ({})",
        if ratio <= 1.2 {
            "within 20 %"
        } else {
            "GROWS with length"
        }
    );
    Ok(())
}
