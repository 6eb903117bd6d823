//! Review of the kernel probe (`observer probe`): the eBPF programs and how userspace reads
//! them, run for real as root in network namespaces this test creates (a client and a server
//! joined by a veth pair, deleted on drop even when an assertion fails). Expected values come
//! from the construction (what the test's own programs did) or the kernel's own counters
//! (`nstat`), never from observer's output.
//!
//! Skipped, loudly, when not root. The tests run one at a time (tracepoints are host-wide).

use observer_tests::netns::{
    Lines, Netns, Proc, root_and_serial, signal_and_wait, spawn_streaming, start_probe, veth,
};
use observer_tests::{ScratchFile, ndjson, observer_bin, stat};
use serde_json::Value;
use std::sync::Mutex;
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

/// A client and a server namespace joined by `obrd0` (client, 10.97.41.1) and `obrd1`
/// (server, 10.97.41.2).
fn pair(tag: &str) -> (Netns, Netns) {
    let client = Netns::new("obsrd", &format!("{tag}c"));
    let server = Netns::new("obsrd", &format!("{tag}s"));
    veth(
        &client,
        "obrd0",
        "10.97.41.1/24",
        &server,
        "obrd1",
        "10.97.41.2/24",
    );
    (client, server)
}

/// SIGTERM, then every event the probe wrote (the summary last).
fn stop_probe(mut probe: Proc, lines: Lines) -> Vec<Value> {
    let status = signal_and_wait(&mut probe, "-TERM");
    assert!(status.success(), "SIGTERM is a clean stop: {status:?}");
    let text = lines
        .lock()
        .unwrap()
        .iter()
        .map(|(_, s)| s.clone())
        .collect::<Vec<_>>()
        .join("\n");
    let events = ndjson(text.as_bytes());
    assert_eq!(
        events.last().unwrap()["event"]["action"],
        "summary",
        "the summary comes last"
    );
    events
}

/// A dual-stack (AF_INET6) client socket talking to an IPv4 server: the packets on the wire
/// are IPv4, but the socket tracepoints give the addresses as IPv4-mapped IPv6
/// (`::ffff:10.97.41.2`, family AF_INET6). The kernel's retransmission count and smoothed RTT
/// must reach the IPv4 flow all the same, as they do for an AF_INET socket.
#[test]
fn a_dual_stack_sockets_retransmissions_reach_its_ipv4_flow() {
    let Some(_serial) = root_and_serial(&SERIAL, &["nstat", "nft", "python3"]) else {
        return;
    };
    let (client, server) = pair("m");
    // Loss on the server's input: the client's stack retransmits.
    server.run(
        "nft",
        &["table inet obsrd { chain input { type filter hook input priority 0; policy accept; tcp dport 5101 numgen random mod 10 0 drop; }; }"],
    );
    let mut sink = Proc(
        server
            .cmd(
                "python3",
                &["-c", "import socket\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('10.97.41.2',5101)); s.listen()\nc,_=s.accept()\nwhile c.recv(65536): pass\n"],
            )
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(300));
    let cfg = ScratchFile::new(
        "review-probe-mapped.toml",
        b"[tcp_health]\nreport_after_idle_secs = 0.5\n",
    );
    let (probe, lines) = start_probe(&client, &["-i", "obrd0", "--config", cfg.to_str().unwrap()]);
    let before = client.nstat("TcpRetransSegs");
    client.python("import socket\nc=socket.socket(socket.AF_INET6)\nc.connect(('::ffff:10.97.41.2',5101))\nfor i in range(128): c.sendall(b'x'*16384)\nc.close()\n",
    );
    let t0 = Instant::now();
    while sink.0.try_wait().unwrap().is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "bulk transfer stuck"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let kernel = client.nstat("TcpRetransSegs") - before;
    std::thread::sleep(Duration::from_millis(700));
    let events = stop_probe(probe, lines);
    assert!(
        kernel >= 10,
        "the loss made too few retransmissions: {kernel}"
    );
    let ex = events
        .iter()
        .find(|e| {
            e["rule"]["name"] == "tcp.retransmission.excessive" && e["destination"]["port"] == 5101
        })
        .unwrap_or_else(|| {
            panic!(
                "no retransmission finding for the dual-stack connection (nstat: {kernel} retransmitted segments); probe stats: {}",
                events.last().unwrap()["stats"]["probe"]
            )
        });
    let probe_count = ex["fallacy"]["evidence"]["client_to_server"]["retransmissions"]
        .as_u64()
        .unwrap();
    assert!(
        (probe_count as f64 - kernel as f64).abs() / kernel as f64 <= 0.05,
        "probe {probe_count} vs nstat {kernel}"
    );
    assert!(
        ex["fallacy"]["evidence"]["host_srtt_ms"]
            .as_f64()
            .is_some_and(|v| v > 0.0),
        "the host's smoothed RTT is in the evidence: {}",
        ex["fallacy"]["evidence"]
    );
}

/// With the kernel flow map full, a new flow's totals cannot be kept (counted in
/// `flow_map_full`), but its handshake and reset are still what the analyzers need: a
/// connection refused while the map is full must still be seen.
#[test]
fn a_full_flow_map_still_samples_handshakes_and_resets() {
    let Some(_serial) = root_and_serial(&SERIAL, &["nstat", "nft", "python3"]) else {
        return;
    };
    let (client, _server) = pair("f");
    let (probe, lines) = start_probe(&client, &["-i", "obrd0", "--max-flows", "1"]);
    // One UDP datagram takes the map's only entry (no listener: an ICMP error comes back,
    // which takes no entry); then one connection to a closed port: SYN, RST.
    client.python("import socket,time\nu=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nu.sendto(b'x', ('10.97.41.2', 9))\ntime.sleep(0.2)\ns=socket.socket()\ntry:\n    s.connect(('10.97.41.2',5199))\n    raise SystemExit('connected to a closed port')\nexcept ConnectionRefusedError:\n    pass\n",
    );
    std::thread::sleep(Duration::from_millis(700));
    let events = stop_probe(probe, lines);
    assert!(
        stat(&events, "probe.dropped.flow_map_full") > 0,
        "the map was full when the connection was made"
    );
    assert_eq!(
        stat(&events, "tcp.handshakes.refused"),
        1,
        "the refused connection is seen; probe stats: {}",
        events.last().unwrap()["stats"]["probe"]
    );
}

/// An interface the TC programs are on goes away while the probe runs (a container's veth
/// deleted, a VPN's tun closed): its programs are detached with it and its traffic is no
/// longer seen. That must be said (a warning naming it, `stats.probe.interfaces_lost`), not
/// left to look like a quiet network.
#[test]
fn an_interface_that_goes_away_is_reported() {
    let Some(_serial) = root_and_serial(&SERIAL, &["nstat", "nft", "python3"]) else {
        return;
    };
    let (client, _server) = pair("g");
    let bin = observer_bin();
    let mut cmd = client.cmd(bin.to_str().unwrap(), &["probe", "-q", "-i", "obrd0"]);
    cmd.stderr(std::process::Stdio::piped());
    let (mut probe, lines) = spawn_streaming(cmd);
    let mut stderr = probe.0.stderr.take().unwrap();
    let err_text = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).unwrap();
        s
    });
    std::thread::sleep(Duration::from_millis(300));
    client.run("ip", &["link", "del", "obrd0"]);
    std::thread::sleep(Duration::from_millis(1000));
    let events = stop_probe(probe, lines);
    let err_text = err_text.join().unwrap();
    assert_eq!(
        stat(&events, "probe.interfaces_lost"),
        1,
        "the deleted interface is counted; stderr: {err_text}"
    );
    assert!(
        err_text
            .lines()
            .any(|l| l.contains("obrd0") && l.contains("WARN")),
        "a warning names the interface: {err_text}"
    );
}

/// Two `observer probe`s on the same interface at once (two teams, or a probe left running
/// while another is started): each must see the traffic. The TC programs share the
/// interface's hook with every other program on it (another probe, a CNI's, a firewall's),
/// so they must hand each packet on to the next program, not end the chain.
#[test]
fn two_probes_on_one_interface_both_see_its_traffic() {
    let Some(_serial) = root_and_serial(&SERIAL, &["nstat", "nft", "python3"]) else {
        return;
    };
    let (client, _server) = pair("t");
    let (first, first_lines) = start_probe(&client, &["-i", "obrd0"]);
    let (second, second_lines) = start_probe(&client, &["-i", "obrd0"]);
    std::thread::sleep(Duration::from_millis(300));
    client.python("import socket\ns=socket.socket()\ntry:\n    s.connect(('10.97.41.2',5198))\n    raise SystemExit('connected to a closed port')\nexcept ConnectionRefusedError:\n    pass\n",
    );
    std::thread::sleep(Duration::from_millis(700));
    let second_events = stop_probe(second, second_lines);
    let first_events = stop_probe(first, first_lines);
    for (name, events) in [("first", &first_events), ("second", &second_events)] {
        assert_eq!(
            stat(events, "tcp.handshakes.refused"),
            1,
            "the {name} probe sees the refused connection; its probe stats: {}",
            events.last().unwrap()["stats"]["probe"]
        );
    }
}
