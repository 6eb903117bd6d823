//! The kernel probe (`observer probe`, feature `probe`): observer's eBPF programs
//! (`observer-ebpf`, embedded in the binary) attached to the host's TCP stack and interfaces,
//! feeding the same decoder, flow table and analyzers as a capture file.
//!
//! What comes from the kernel:
//! - sampled packets from TC classifiers on the chosen interfaces (SYN/FIN/RST, the first
//!   payload packets of each direction, zero-window transitions, DNS, ICMP), handed to the
//!   pipeline as raw-IP frames;
//! - per-flow totals the kernel keeps for every packet it did not send (packets, bytes, data
//!   segments, payload), the host's own retransmissions (`tcp/tcp_retransmit_skb`) and smoothed
//!   RTT (`tcp/tcp_probe`), merged into the pipeline's flows by [`Probe::sweep`];
//! - socket events (`sock/inet_sock_set_state`, `tcp/tcp_send_reset`,
//!   `tcp/tcp_receive_reset`), counted in the summary.
//!
//! Call protocol: [`Probe::attach`] (checks privileges, tracefs and the tracepoint layout
//! first, then loads and attaches everything), then [`Probe::drop_privileges`]; loop on
//! [`Probe::wait`], [`Probe::drain`] and, a few times a second, [`Probe::sweep`]; at the end a
//! last drain and sweep and [`Probe::counters`]. Dropping the probe detaches everything (links
//! are owned by file descriptors, so even SIGKILL leaves nothing attached).

mod btf;
mod decode;
mod sys;
pub mod tracefs;

pub use decode::{Clock, KernelFlow, KernelRecord, PacketRecord};

use crate::source::{LinkType, Packet};
use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::{SchedClassifier, TcAttachType, TracePoint};
use aya::{Ebpf, EbpfLoader};
use observer_wire::{counter, tcp_state, tracepoints};
use std::os::fd::{AsFd as _, AsRawFd as _};
use std::path::Path;

/// The kernel programs, built by `build.rs` for `bpfel-unknown-none`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/observer-probe.o"));

/// How to attach.
#[derive(Clone, Debug)]
pub struct ProbeOptions {
    /// Interfaces to put the TC programs on; empty: every interface that is up.
    pub interfaces: Vec<String>,
    /// Packet ring size in bytes (a power of two, at least a page).
    pub ring_bytes: u32,
    /// Capacity of the kernel flow map.
    pub max_flows: u32,
    /// Wake userspace on every record (lower latency, higher cost per packet) instead of
    /// batching and polling.
    pub wakeup_each: bool,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            interfaces: Vec::new(),
            ring_bytes: observer_wire::PACKET_RING_BYTES,
            max_flows: observer_wire::MAX_FLOWS,
            wakeup_each: false,
        }
    }
}

/// Why the probe could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Missing privileges.
    #[error("{0}")]
    Privileges(String),
    /// tracefs missing, or the tracepoint layout differs.
    #[error("{0}")]
    Tracefs(String),
    /// An interface named on the command line is not usable.
    #[error("interface {name}: {reason}")]
    Interface {
        /// Interface name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A bad option value.
    #[error("{0}")]
    Option(String),
    /// Loading or attaching failed.
    #[error("{what}: {reason}")]
    Kernel {
        /// What was being done.
        what: String,
        /// The error, with the verifier's log when there is one.
        reason: String,
    },
}

fn kernel_err(what: impl Into<String>) -> impl FnOnce(String) -> ProbeError {
    let what = what.into();
    move |reason| ProbeError::Kernel { what, reason }
}

/// An interface the TC programs are attached to.
#[derive(Clone, Debug)]
pub struct Interface {
    /// Name.
    pub name: String,
    /// Index.
    pub ifindex: u32,
    /// Link-layer header bytes before the IP header (14 or 0: picks the TC program pair).
    pub l2_len: u32,
    /// Loopback: only egress is attached (every packet crosses both hooks once).
    pub loopback: bool,
}

const CAP_NET_ADMIN: u32 = 12;
const CAP_DAC_READ_SEARCH: u32 = 2;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Checks the capabilities the probe needs, naming the missing ones and how to grant them.
pub fn check_privileges() -> Result<(), ProbeError> {
    let eff = sys::effective_caps();
    let need = [
        (CAP_BPF, "CAP_BPF"),
        (CAP_PERFMON, "CAP_PERFMON"),
        (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
        (
            CAP_DAC_READ_SEARCH,
            "CAP_DAC_READ_SEARCH (read access to tracefs)",
        ),
    ];
    let missing: Vec<&str> = need
        .iter()
        .filter(|(bit, _)| eff & (1u64 << bit) == 0)
        .map(|&(_, name)| name)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "observer".into());
    Err(ProbeError::Privileges(format!(
        "observer probe loads eBPF programs and needs CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN and read access to tracefs (/sys/kernel/tracing: root or CAP_DAC_READ_SEARCH); missing: {}. Run it as root (sudo observer probe …), or grant the capabilities to the binary once: sudo setcap cap_bpf,cap_perfmon,cap_net_admin,cap_dac_read_search+ep {exe}",
        missing.join(", ")
    )))
}

fn read_sys(name: &str, file: &str) -> Option<String> {
    std::fs::read_to_string(Path::new("/sys/class/net").join(name).join(file))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Resolves interface names (empty: every interface that is up) to indices and link types.
pub fn resolve_interfaces(names: &[String]) -> Result<Vec<Interface>, ProbeError> {
    let chosen: Vec<String> = if names.is_empty() {
        let mut all: Vec<String> = std::fs::read_dir("/sys/class/net")
            .map_err(|e| {
                ProbeError::Option(format!("/sys/class/net: cannot list interfaces: {e}"))
            })?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .filter(|n| {
                read_sys(n, "flags")
                    .and_then(|f| u32::from_str_radix(f.trim_start_matches("0x"), 16).ok())
                    .is_some_and(|f| f & 1 != 0)
            })
            .collect();
        all.sort();
        all
    } else {
        // Named twice is attached once (twice would count every packet twice).
        let mut v: Vec<String> = Vec::new();
        for n in names {
            if !v.contains(n) {
                v.push(n.clone());
            }
        }
        v
    };
    let mut out = Vec::new();
    for name in chosen {
        let bad = |reason: String| ProbeError::Interface {
            name: name.clone(),
            reason,
        };
        let ifindex: u32 = read_sys(&name, "ifindex")
            .ok_or_else(|| bad("no such interface (see `ip link`)".into()))?
            .parse()
            .map_err(|_| bad("unreadable ifindex".into()))?;
        let arphrd: u32 = read_sys(&name, "type")
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        let (l2_len, loopback) = match arphrd {
            1 => (14, false),
            772 => (14, true),
            // ARPHRD_NONE (tun, WireGuard), ARPHRD_RAWIP.
            65534 | 519 => (0, false),
            other => {
                if names.is_empty() {
                    continue;
                }
                return Err(bad(format!(
                    "link type {other} is not supported (Ethernet, loopback and raw-IP devices are)"
                )));
            }
        };
        out.push(Interface {
            name,
            ifindex,
            l2_len,
            loopback,
        });
    }
    if out.is_empty() {
        return Err(ProbeError::Option(
            "no interface to attach to (none is up); name one with --interface".into(),
        ));
    }
    Ok(out)
}

/// Socket events seen, by kind.
#[derive(Clone, Copy, Debug, Default)]
pub struct EventCounts {
    /// Connections that left SYN_SENT for CLOSE: the host's connection attempt died.
    pub syn_sent_closed: u64,
    /// SYN_SENT → ESTABLISHED.
    pub connected: u64,
    /// SYN_RECV → CLOSE (a half-open server-side connection died).
    pub syn_recv_closed: u64,
    /// Any other → CLOSE.
    pub closed: u64,
    /// Resets the host sent.
    pub resets_sent: u64,
    /// Resets the host received.
    pub resets_received: u64,
    /// Records too short to decode.
    pub malformed: u64,
}

/// An attached probe.
pub struct Probe {
    ebpf: Ebpf,
    packets: RingBuf<MapData>,
    events: RingBuf<MapData>,
    clock: Clock,
    interfaces: Vec<Interface>,
    /// Packet records received.
    pub packets_received: u64,
    /// Kernel events received.
    pub events_received: u64,
    /// Socket events by kind.
    pub event_counts: EventCounts,
    flows_merged: u64,
    flows_deleted: u64,
    stale: Vec<[u8; decode::KEY_LEN]>,
    /// Per interface: it went away while attached (its TC programs went with it).
    lost: Vec<bool>,
}

/// How long a kernel flow entry the pipeline no longer holds may stay idle before it is
/// deleted from the map.
const STALE_AFTER_NS: u64 = 10_000_000_000;

impl Probe {
    /// Checks privileges and tracefs, verifies the tracepoint layout, loads the kernel
    /// programs and attaches them (tracepoints, then TC on every interface).
    pub fn attach(o: &ProbeOptions) -> Result<Probe, ProbeError> {
        check_privileges()?;
        if !o.ring_bytes.is_power_of_two() || o.ring_bytes < 4096 {
            return Err(ProbeError::Option(format!(
                "--ring-size {}: must be a power of two of at least 4096 bytes",
                o.ring_bytes
            )));
        }
        if o.max_flows == 0 {
            return Err(ProbeError::Option("--max-flows must be at least 1".into()));
        }
        let interfaces = resolve_interfaces(&o.interfaces)?;
        let tracefs = tracefs::ensure_mounted().map_err(ProbeError::Tracefs)?;
        tracefs::verify(&tracefs).map_err(ProbeError::Tracefs)?;

        let flags: u64 = if o.wakeup_each {
            0
        } else {
            u64::from(aya_no_wakeup())
        };
        let segs_off = btf::skb_gso_segs_offset();
        if segs_off == 0 {
            tracing::warn!(
                "no kernel BTF for sk_buff/tcp_skb_cb: each retransmitted skb counts as one segment (TcpRetransSegs counts every segment)"
            );
        }
        let mut ebpf = EbpfLoader::new()
            .override_global("WAKEUP_FLAGS", &flags, true)
            .override_global("SKB_GSO_SEGS_OFF", &segs_off, true)
            .map_max_entries("PACKETS", o.ring_bytes)
            .map_max_entries("FLOWS", o.max_flows)
            .load(OBJECT)
            .map_err(|e| kernel_err("loading the kernel programs")(format!("{e:#}")))?;
        for tp in tracepoints::ALL {
            let what = format!("attaching tracepoint {}/{}", tp.category, tp.name);
            let prog: &mut TracePoint = ebpf
                .program_mut(tp.name)
                .expect("every tracepoint has a program")
                .try_into()
                .map_err(|e: aya::programs::ProgramError| kernel_err(&what)(e.to_string()))?;
            prog.load().map_err(|e| kernel_err(&what)(verifier(&e)))?;
            prog.attach(tp.category, tp.name)
                .map_err(|e| kernel_err(&what)(e.to_string()))?;
        }
        // One program pair per link-header length (14: Ethernet, loopback; 0: raw IP).
        for (name, hook, raw) in [
            ("tc_ingress", TcAttachType::Ingress, false),
            ("tc_egress", TcAttachType::Egress, false),
            ("tc_ingress_raw", TcAttachType::Ingress, true),
            ("tc_egress_raw", TcAttachType::Egress, true),
        ] {
            let targets: Vec<&Interface> = interfaces
                .iter()
                .filter(|i| (i.l2_len == 0) == raw)
                .filter(|i| !(i.loopback && hook == TcAttachType::Ingress))
                .collect();
            if targets.is_empty() {
                continue;
            }
            let prog: &mut SchedClassifier = ebpf
                .program_mut(name)
                .expect("every TC program in the object")
                .try_into()
                .map_err(|e: aya::programs::ProgramError| kernel_err(name)(e.to_string()))?;
            prog.load()
                .map_err(|e| kernel_err(format!("loading {name}"))(verifier(&e)))?;
            for i in targets {
                prog.attach(&i.name, hook).map_err(|e| {
                    kernel_err(format!("attaching {name} to {}", i.name))(e.to_string())
                })?;
            }
        }
        let packets = RingBuf::try_from(ebpf.take_map("PACKETS").expect("PACKETS map"))
            .map_err(|e| kernel_err("PACKETS ring")(e.to_string()))?;
        let events = RingBuf::try_from(ebpf.take_map("EVENTS").expect("EVENTS map"))
            .map_err(|e| kernel_err("EVENTS ring")(e.to_string()))?;
        let clock = Clock {
            offset_ns: crate::source::wall_clock().0 - sys::monotonic_ns(),
        };
        Ok(Probe {
            ebpf,
            packets,
            events,
            clock,
            packets_received: 0,
            events_received: 0,
            event_counts: EventCounts::default(),
            flows_merged: 0,
            flows_deleted: 0,
            stale: Vec::new(),
            lost: vec![false; interfaces.len()],
            interfaces,
        })
    }

    /// Drops every capability: what is attached stays attached and readable through the file
    /// descriptors held.
    pub fn drop_privileges(&self) -> std::io::Result<()> {
        sys::drop_all_capabilities()
    }

    /// The interfaces the TC programs are on.
    pub fn interfaces(&self) -> &[Interface] {
        &self.interfaces
    }

    /// Waits up to `timeout_ms` for a record (with batched wake-ups the kernel rarely wakes
    /// us: the timeout is the poll interval).
    pub fn wait(&self, timeout_ms: i32) -> bool {
        sys::poll_readable(
            &[self.packets.as_raw_fd(), self.events.as_raw_fd()],
            timeout_ms,
        )
    }

    /// Hands every pending record over: packets to `on_packet` as raw-IP frames in capture
    /// time, kernel events to `on_event`. At most `max` packets per call, so a flood cannot
    /// starve the caller's other duties. Returns the number of packets handed over.
    pub fn drain<E>(
        &mut self,
        max: usize,
        mut on_packet: impl FnMut(&Packet<'_>) -> Result<(), E>,
        mut on_event: impl FnMut(&KernelRecord),
    ) -> Result<usize, E> {
        let mut n = 0;
        while n < max {
            let Some(item) = self.packets.next() else {
                break;
            };
            n += 1;
            self.packets_received += 1;
            let Some(r) = decode::packet(&item) else {
                self.event_counts.malformed += 1;
                continue;
            };
            let p = Packet {
                ts: self.clock.wall(r.ts_ns),
                link: LinkType::RAW,
                data: r.data,
                wire_len: r.ip_len.max(r.data.len() as u32),
                interface: r.ifindex,
                segments: r.gso_segs.max(1),
            };
            on_packet(&p)?;
        }
        while let Some(item) = self.events.next() {
            self.events_received += 1;
            let Some(ev) = decode::kernel_event(&item) else {
                self.event_counts.malformed += 1;
                continue;
            };
            count_event(&mut self.event_counts, &ev);
            on_event(&ev);
        }
        Ok(n)
    }
}

fn count_event(c: &mut EventCounts, ev: &KernelRecord) {
    match ev.kind {
        observer_wire::KEV_STATE => match (ev.a, ev.b) {
            (tcp_state::SYN_SENT, tcp_state::CLOSE) => c.syn_sent_closed += 1,
            (tcp_state::SYN_SENT, tcp_state::ESTABLISHED) => c.connected += 1,
            (tcp_state::SYN_RECV, tcp_state::CLOSE) => c.syn_recv_closed += 1,
            (_, tcp_state::CLOSE) => c.closed += 1,
            _ => {}
        },
        observer_wire::KEV_RESET_SENT => c.resets_sent += 1,
        observer_wire::KEV_RESET_RECEIVED => c.resets_received += 1,
        _ => c.malformed += 1,
    }
}

impl Probe {
    /// Reads the kernel flow map and hands every entry's totals to `merge` (which returns
    /// whether the pipeline still holds that flow). Entries idle for 10 s are deleted once
    /// merged if the pipeline no longer holds the flow, the TCP connection is closed (FIN both
    /// ways, or RST), or the flow is not TCP, so the map holds live flows only.
    pub fn sweep(&mut self, mut merge: impl FnMut(&KernelFlow) -> bool) -> Result<(), ProbeError> {
        let now_ns = sys::monotonic_ns() as u64;
        let clock = self.clock;
        let mut flows: BpfHashMap<_, [u8; decode::KEY_LEN], [u8; decode::STATE_LEN]> =
            BpfHashMap::try_from(self.ebpf.map_mut("FLOWS").expect("FLOWS map"))
                .map_err(|e| kernel_err("FLOWS map")(e.to_string()))?;
        self.stale.clear();
        for entry in flows.iter() {
            // An entry deleted by someone else between key and value lookups: skip it.
            let Ok((k, v)) = entry else { continue };
            let f = decode::flow(&k, &v, clock);
            let held = merge(&f);
            self.flows_merged += u64::from(held);
            // The pipeline keeps a closed connection for a while (late segments); the kernel
            // need not: once merged, a closed TCP flow's or an idle UDP flow's entry goes, so
            // connection churn does not fill the map. Open TCP flows stay while they are held.
            let (fin, rst) = (0x01, 0x04);
            let closed = f.totals.proto != 6
                || (f.flags[0] & fin != 0 && f.flags[1] & fin != 0)
                || (f.flags[0] | f.flags[1]) & rst != 0;
            if (!held || closed) && now_ns.saturating_sub(f.last_ns) > STALE_AFTER_NS {
                self.stale.push(k);
            }
        }
        for k in &self.stale {
            if flows.remove(k).is_ok() {
                self.flows_deleted += 1;
            }
        }
        self.check_interfaces();
        Ok(())
    }

    /// Notes, once each, the interfaces that went away (deleted, or replaced by another of
    /// the same name): the kernel detached their TC programs, so their traffic is no longer
    /// seen and the probe cannot attach again (its privileges are gone).
    fn check_interfaces(&mut self) {
        for (i, lost) in self.interfaces.iter().zip(self.lost.iter_mut()) {
            if *lost {
                continue;
            }
            let now = read_sys(&i.name, "ifindex").and_then(|s| s.parse::<u32>().ok());
            if now != Some(i.ifindex) {
                *lost = true;
                tracing::warn!(
                    interface = %i.name,
                    "interface {} went away: its TC programs are detached and its traffic is no longer seen (restart the probe to attach to it again)",
                    i.name
                );
            }
        }
    }

    /// The kernel's per-CPU counters summed, and the probe's own, as `probe.*` summary
    /// counters.
    pub fn counters(&self) -> Vec<(String, u64)> {
        let mut k = [0u64; counter::COUNT as usize];
        if let Some(m) = self.ebpf.map("COUNTERS") {
            if let Ok(arr) = PerCpuArray::<_, [u64; counter::COUNT as usize]>::try_from(m) {
                if let Ok(per_cpu) = arr.get(&0, 0) {
                    for cpu in per_cpu.iter() {
                        for (slot, v) in k.iter_mut().zip(cpu) {
                            *slot += v;
                        }
                    }
                }
            }
        }
        let e = &self.event_counts;
        let kv = |i: u32| k[i as usize];
        [
            ("probe.kernel.tc_packets", kv(counter::TC_PACKETS)),
            ("probe.kernel.tc_sampled", kv(counter::TC_SAMPLED)),
            ("probe.kernel.events", kv(counter::EVENTS)),
            ("probe.kernel.retransmits", kv(counter::RETRANSMITS)),
            (
                "probe.kernel.retransmits_not_sent",
                kv(counter::RETRANSMITS_NOT_SENT),
            ),
            ("probe.kernel.srtt_updates", kv(counter::PROBE_UPDATES)),
            ("probe.kernel.not_tracked", kv(counter::NOT_TRACKED)),
            ("probe.kernel.fragments", kv(counter::FRAGMENTS)),
            (
                "probe.dropped.packet_ring_full",
                kv(counter::PACKET_RING_FULL),
            ),
            (
                "probe.dropped.event_ring_full",
                kv(counter::EVENT_RING_FULL),
            ),
            ("probe.dropped.flow_map_full", kv(counter::FLOW_MAP_FULL)),
            (
                "probe.dropped.header_unreadable",
                kv(counter::HEADER_UNREADABLE),
            ),
            (
                "probe.dropped.retransmits_skipped",
                skipped_runs(&self.ebpf, &["tcp_retransmit_skb"]),
            ),
            (
                "probe.dropped.events_skipped",
                skipped_runs(
                    &self.ebpf,
                    &["inet_sock_set_state", "tcp_send_reset", "tcp_receive_reset"],
                ),
            ),
            (
                "probe.kernel.srtt_skipped",
                skipped_runs(&self.ebpf, &["tcp_probe"]),
            ),
            ("probe.truncated", kv(counter::TRUNCATED)),
            ("probe.received.packets", self.packets_received),
            ("probe.received.events", self.events_received),
            ("probe.received.malformed", e.malformed),
            ("probe.sockets.syn_sent_closed", e.syn_sent_closed),
            ("probe.sockets.syn_recv_closed", e.syn_recv_closed),
            ("probe.sockets.connected", e.connected),
            ("probe.sockets.closed", e.closed),
            ("probe.sockets.resets_sent", e.resets_sent),
            ("probe.sockets.resets_received", e.resets_received),
            ("probe.flows.merged", self.flows_merged),
            ("probe.flows.deleted", self.flows_deleted),
            ("probe.interfaces", self.interfaces.len() as u64),
            (
                "probe.interfaces_lost",
                self.lost.iter().filter(|&&l| l).count() as u64,
            ),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_string(), v))
        .collect()
    }
}

/// Runs of the tracepoint programs `names` the kernel skipped: a classic tracepoint's program
/// is not run while another tracing program or a BPF system call (a map lookup, as in the
/// probe's own sweeps) holds the CPU's BPF guard. The kernel counts each skip
/// (`recursion_misses` in the program's fdinfo); 0 when that cannot be read.
fn skipped_runs(ebpf: &Ebpf, names: &[&str]) -> u64 {
    names
        .iter()
        .filter_map(|name| ebpf.program(name)?.fd().ok())
        .filter_map(|fd| {
            let path = format!("/proc/self/fdinfo/{}", fd.as_fd().as_raw_fd());
            recursion_misses(&std::fs::read_to_string(path).ok()?)
        })
        .sum()
}

/// The `recursion_misses` line of a BPF program's fdinfo text.
fn recursion_misses(fdinfo: &str) -> Option<u64> {
    fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("recursion_misses:"))?
        .trim()
        .parse()
        .ok()
}

fn aya_no_wakeup() -> u32 {
    // BPF_RB_NO_WAKEUP from the kernel's uapi (linux/bpf.h).
    1
}

/// A load error with the end of the verifier's log (where the reason is), not all of it.
fn verifier(e: &aya::programs::ProgramError) -> String {
    let full = format!("{e:#}");
    let lines: Vec<&str> = full.lines().collect();
    if lines.len() <= 24 {
        return full;
    }
    format!(
        "{}\n  … ({} lines of verifier log omitted) …\n{}",
        lines[0],
        lines.len() - 21,
        lines[lines.len() - 20..].join("\n")
    )
}

#[cfg(test)]
mod skipped_tests {
    use super::recursion_misses;

    #[test]
    fn recursion_misses_is_read_from_a_programs_fdinfo() {
        // As kernel 6.18 writes it for a tracepoint program (`/proc/<pid>/fdinfo/<fd>`).
        let info = "pos:\t0\nflags:\t02000002\nmnt_id:\t16\nino:\t2077\nprog_type:\t5\nprog_jited:\t1\nprog_tag:\t6f2b4e2bd8a1c2f0\nmemlock:\t4096\nprog_id:\t9351\nrun_time_ns:\t0\nrun_cnt:\t0\nrecursion_misses:\t17\nverified_insns:\t301\n";
        assert_eq!(recursion_misses(info), Some(17));
        assert_eq!(recursion_misses("prog_type:\t5\n"), None);
    }
}
