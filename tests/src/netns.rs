//! Root-only test plumbing: private network namespaces joined by veth pairs, and children
//! killed on drop, so a failing assertion never leaves a namespace or a process behind.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// True when running as root (the privileged tests skip themselves, loudly, otherwise).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Wall-clock seconds since the epoch.
pub fn wall() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A network namespace with its loopback up; deleted (with everything still in it) on drop.
pub struct Netns(pub String);

impl Netns {
    /// `<prefix>-<tag>-<pid>`, recreated if a previous run left it.
    pub fn new(prefix: &str, tag: &str) -> Netns {
        let name = format!("{prefix}-{tag}-{}", std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        assert!(
            Command::new("ip")
                .args(["netns", "add", &name])
                .status()
                .unwrap()
                .success()
        );
        let ns = Netns(name);
        ns.run("ip", &["link", "set", "lo", "up"]);
        ns
    }

    /// A command run inside the namespace (`ip netns exec`).
    pub fn cmd(&self, prog: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0, prog]).args(args);
        c
    }

    /// Runs a command inside the namespace and asserts it succeeded.
    pub fn run(&self, prog: &str, args: &[&str]) {
        let st = self.cmd(prog, args).status().unwrap();
        assert!(st.success(), "{prog} {args:?} in {}: {st}", self.0);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Kill what is left inside, wait (bounded) until it is gone, then delete: a namespace
        // still in use cannot be removed.
        for _ in 0..50 {
            let pids = Command::new("ip")
                .args(["netns", "pids", &self.0])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            if pids.trim().is_empty() {
                break;
            }
            for pid in pids.split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for _ in 0..10 {
            let ok = Command::new("ip")
                .args(["netns", "del", &self.0])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Joins `a` and `b` with a veth pair (`a_dev` in `a` with `a_addr`, `b_dev` in `b` with
/// `b_addr`, both up). The pair goes with the namespaces.
pub fn veth(a: &Netns, a_dev: &str, a_addr: &str, b: &Netns, b_dev: &str, b_addr: &str) {
    assert!(
        Command::new("ip")
            .args([
                "link", "add", a_dev, "netns", &a.0, "type", "veth", "peer", "name", b_dev,
                "netns", &b.0,
            ])
            .status()
            .unwrap()
            .success()
    );
    for (n, dev, addr) in [(a, a_dev, a_addr), (b, b_dev, b_addr)] {
        n.run("ip", &["addr", "add", addr, "dev", dev]);
        n.run("ip", &["link", "set", dev, "up"]);
    }
}

/// A child killed on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Stdout lines of a streaming observer, with their arrival (wall-clock) times.
pub type Lines = Arc<Mutex<Vec<(f64, String)>>>;

/// Spawns a streaming observer (`cmd`, stdout piped here); a thread records each stdout line
/// with its arrival time. Returns once the start event is out (the source is running), or
/// panics after 15 s or if the process exits first.
pub fn spawn_streaming(mut cmd: Command) -> (Proc, Lines) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("observer starts");
    let lines: Lines = Arc::new(Mutex::new(Vec::new()));
    let out = child.stdout.take().unwrap();
    let l2 = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            l2.lock().unwrap().push((wall(), line));
        }
    });
    let mut p = Proc(child);
    let t0 = Instant::now();
    while lines.lock().unwrap().is_empty() {
        if let Some(st) = p.0.try_wait().unwrap() {
            panic!("observer exited before its start event: {st}");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "no start event within 15 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (p, lines)
}

/// Sends `sig` (as `kill` spells it: `-TERM`, `-KILL`, `-INT`) to the child and waits, at most
/// 20 s, for it to exit. `ip netns exec` execs the program, so the child's pid is the program's.
pub fn signal_and_wait(p: &mut Proc, sig: &str) -> std::process::ExitStatus {
    let pid = p.0.id().to_string();
    assert!(
        Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success()
    );
    let t0 = Instant::now();
    loop {
        if let Some(s) = p.0.try_wait().unwrap() {
            return s;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "no exit on {sig}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Netns {
    /// One of the kernel's own counters in this namespace (`nstat -asz NAME`).
    pub fn nstat(&self, name: &str) -> u64 {
        let out = self.cmd("nstat", &["-asz", name]).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| {
                let mut f = l.split_whitespace();
                (f.next() == Some(name)).then(|| f.next().unwrap().parse().unwrap())
            })
            .unwrap_or_else(|| panic!("nstat prints {name}"))
    }

    /// Runs a python3 `script` in this namespace; it must succeed.
    pub fn python(&self, script: &str) {
        let out = self.cmd("python3", &["-c", script]).output().unwrap();
        assert!(
            out.status.success(),
            "python in {}: {}",
            self.0,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// As root with every tool in `tools` present: the lock `serial` that runs a file's kernel
/// probe tests one at a time. `None` (the test skips, loudly) when not root.
pub fn root_and_serial(
    serial: &'static Mutex<()>,
    tools: &[&str],
) -> Option<MutexGuard<'static, ()>> {
    if !is_root() {
        eprintln!("SKIPPED: the kernel probe needs root (CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN)");
        return None;
    }
    for tool in tools {
        assert!(
            crate::have(tool),
            "{tool} missing: scripts/setup-ebpf.sh installs it"
        );
    }
    Some(serial.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Starts `observer probe -q ARGS` in `ns`, its output streamed.
pub fn start_probe(ns: &Netns, args: &[&str]) -> (Proc, Lines) {
    let bin = crate::observer_bin();
    let mut all = vec!["probe", "-q"];
    all.extend_from_slice(args);
    spawn_streaming(ns.cmd(bin.to_str().unwrap(), &all))
}
