//! Review of how a kernel probe's per-flow totals are merged with its sampled packets
//! (`Pipeline::merge_totals`): the pipeline is fed as `observer probe` feeds it (a sampled
//! source, raw-IP packets in capture time, sweeps of the kernel's cumulative per-flow totals
//! between them, each followed by a heartbeat), the totals written as the kernel map would
//! hold them. Expected values come from the construction.

use observer::config::Config;
use observer::pipeline::{FlowTotals, Pipeline, SentTotals};
use observer::sink::MemorySink;
use observer::source::{LinkType, Packet};
use observer::time::Timestamp;
use observer_tests::tcp_flags::{ACK, FIN, SYN};
use observer_tests::{PCAP_BUILDER_EPOCH, stat};
use serde_json::Value;
use std::net::IpAddr;

const C: (&str, u16) = ("10.0.0.1", 40000);
const S: (&str, u16) = ("10.0.0.2", 80);

fn at(t: f64) -> Timestamp {
    Timestamp(PCAP_BUILDER_EPOCH as i64 * 1_000_000_000 + (t * 1e9).round() as i64)
}

/// A run fed as the probe feeds it.
struct Run {
    sink: MemorySink,
    steps: Vec<Step>,
}

enum Step {
    Packet(f64, Vec<u8>),
    /// A sweep at `t`: the kernel's totals of the flow, then the heartbeat.
    Sweep(f64, Box<FlowTotals>),
}

impl Run {
    fn new() -> Run {
        Run {
            sink: MemorySink::default(),
            steps: Vec::new(),
        }
    }

    /// A sampled TCP segment (raw IP) at `t`.
    #[allow(clippy::too_many_arguments)]
    fn tcp(
        &mut self,
        t: f64,
        src: (&str, u16),
        dst: (&str, u16),
        seq: u32,
        ack: u32,
        flags: u8,
        payload: &[u8],
    ) -> &mut Run {
        let a: std::net::Ipv4Addr = src.0.parse().unwrap();
        let b: std::net::Ipv4Addr = dst.0.parse().unwrap();
        let p = observer_tests::with_tcp_flags(
            etherparse::PacketBuilder::ipv4(a.octets(), b.octets(), 64)
                .tcp(src.1, dst.1, seq, 64240),
            ack,
            flags,
        );
        let mut frame = Vec::new();
        p.write(&mut frame, payload).unwrap();
        self.steps.push(Step::Packet(t, frame));
        self
    }

    fn sweep(&mut self, t: f64, totals: FlowTotals) -> &mut Run {
        self.steps.push(Step::Sweep(t, Box::new(totals)));
        self
    }

    /// Runs every step and returns the events (the summary last), and whether each sweep found
    /// its flow held (as in `observer probe`, the merge comes before the heartbeat).
    fn finish(mut self) -> (Vec<Value>, Vec<bool>) {
        let mut held = Vec::new();
        {
            let mut p = Pipeline::new(&Config::default(), &mut self.sink, &[]);
            p.set_sampled_source(true);
            for s in &self.steps {
                match s {
                    Step::Packet(t, frame) => p
                        .process(&Packet {
                            ts: at(*t),
                            link: LinkType::RAW,
                            data: frame,
                            wire_len: frame.len() as u32,
                            interface: 0,
                            segments: 1,
                        })
                        .unwrap(),
                    Step::Sweep(t, totals) => {
                        held.push(p.merge_totals(totals));
                        p.heartbeat(at(*t)).unwrap();
                    }
                }
            }
            p.finish().unwrap();
        }
        (self.sink.events, held)
    }
}

/// What one endpoint sent, as the kernel counts it: `data` segments of `size` payload bytes
/// (plus `other` segments without payload), `retransmissions` of them sent again.
fn sent(data: u64, size: u64, other: u64, retransmissions: u64) -> SentTotals {
    SentTotals {
        packets: data + other,
        bytes: (data + other) * 40 + data * size,
        data_segments: data,
        payload: data * size,
        retransmissions,
        retransmitted_bytes: retransmissions * size,
        ..SentTotals::default()
    }
}

fn add(a: SentTotals, b: SentTotals) -> SentTotals {
    SentTotals {
        packets: a.packets + b.packets,
        bytes: a.bytes + b.bytes,
        data_segments: a.data_segments + b.data_segments,
        payload: a.payload + b.payload,
        retransmissions: a.retransmissions + b.retransmissions,
        stalls: a.stalls + b.stalls,
        longest_stall: a.longest_stall.max(b.longest_stall),
        stalled: a.stalled + b.stalled,
        retransmitted_bytes: a.retransmitted_bytes + b.retransmitted_bytes,
    }
}

/// The kernel map's entry for C–S created at 0 s: its key puts the lower port first (the
/// server).
fn totals(server: SentTotals, client: SentTotals, last: f64) -> FlowTotals {
    totals_since(0.0, server, client, last)
}

/// The same, the entry created at `since`.
fn totals_since(since: f64, server: SentTotals, client: SentTotals, last: f64) -> FlowTotals {
    let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
    FlowTotals {
        proto: 6,
        ends: [(ip(S.0), S.1), (ip(C.0), C.1)],
        sent: [server, client],
        since: Some(at(since)),
        last: at(last),
        srtt: None,
    }
}

/// The sampled segments of a connection from C to S at `t` with the client's initial
/// sequence number `isn` (SYN, SYN/ACK, the first payload each way, FINs at `t + fin`).
fn sampled_connection(r: &mut Run, t: f64, isn: u32, fin: f64) {
    let sisn = isn.wrapping_add(7000);
    r.tcp(t, C, S, isn, 0, SYN, &[])
        .tcp(t + 0.001, S, C, sisn, isn + 1, SYN | ACK, &[])
        .tcp(t + 0.003, C, S, isn + 1, sisn + 1, ACK, &[7; 100])
        .tcp(t + 0.004, S, C, sisn + 1, isn + 101, ACK, &[8; 1000])
        .tcp(t + fin, C, S, isn + 101, sisn + 1001, FIN | ACK, &[])
        .tcp(
            t + fin + 0.001,
            S,
            C,
            sisn + 1001,
            isn + 102,
            FIN | ACK,
            &[],
        );
}

/// A connection closes and, within the kernel's 10 s before it deletes a closed flow's entry, a
/// new one reuses its ports: the kernel's entry for the 4-tuple keeps counting from the old
/// connection's totals. The new connection must be credited with its own packets only: the
/// old one's 3 retransmissions were already reported when it ended (port reuse), and must not
/// be reported again as the clean new connection's (doubling the run's count and flagging a
/// connection that lost nothing).
#[test]
fn port_reuse_does_not_inherit_the_old_connections_kernel_totals() {
    let mut r = Run::new();
    // The first connection: the client sent 25 data segments of 100 bytes (3 of them again)
    // and 3 without payload; the server 25 of 1000 bytes and 2 without.
    sampled_connection(&mut r, 0.0, 100, 1.0);
    let (c1, s1) = (sent(25, 100, 3, 3), sent(25, 1000, 2, 0));
    r.sweep(0.5, totals(sent(1, 1000, 1, 0), sent(10, 100, 2, 3), 0.4));
    r.sweep(1.25, totals(s1, c1, 1.001));
    // The new connection on the same ports 2 s later (another ISN): 5 data segments each way,
    // nothing sent again.
    sampled_connection(&mut r, 3.0, 900_000, 1.0);
    let (c2, s2) = (sent(5, 100, 3, 0), sent(5, 1000, 2, 0));
    r.sweep(
        3.25,
        totals(
            add(s1, sent(1, 1000, 1, 0)),
            add(c1, sent(1, 100, 1, 0)),
            3.004,
        ),
    );
    r.sweep(4.25, totals(add(s1, s2), add(c1, c2), 4.001));
    let (ev, held) = r.finish();
    assert_eq!(held, [true; 4]);
    assert_eq!(stat(&ev, "flows.port_reuse"), 1);
    assert_eq!(stat(&ev, "flows.tcp"), 2);
    // 3 retransmissions in the run, all the first connection's.
    assert_eq!(stat(&ev, "tcp.retransmissions"), 3);
    // Only the first connection lost enough to be flagged (3 of 27 segments).
    assert_eq!(stat(&ev, "tcp.flows_flagged.retransmission_rate"), 1);
}

/// The kernel's entry of a flow the pipeline still holds is deleted and created again (the
/// sweep deletes entries of closed or non-TCP flows idle for 10 s; an entry that counted an
/// earlier connection on the same ports keeps its FIN flags, so a new connection idle for 10 s
/// loses its entry): the totals start again from zero. A first connection (3 retransmissions),
/// then a new one on the same ports whose FINs are sampled 30 s after its start: 12 data
/// segments from the client before its silence, 4 sent again; after 12 s of silence a new
/// entry has counted `after` data segments each way, `resent_after` of the client's sent
/// again. Returns the run's events.
fn entry_created_again(after: u64, resent_after: u64) -> Vec<Value> {
    let mut r = Run::new();
    sampled_connection(&mut r, 0.0, 100, 1.0);
    let (c1, s1) = (sent(25, 100, 3, 3), sent(25, 1000, 2, 0));
    r.sweep(1.25, totals(s1, c1, 1.001));
    sampled_connection(&mut r, 3.0, 900_000, 30.0);
    let (c2, s2) = (sent(12, 100, 1, 4), sent(12, 1000, 1, 0));
    r.sweep(3.25, totals(add(s1, s2), add(c1, c2), 3.1));
    let (c3, s3) = (sent(after, 100, 1, resent_after), sent(after, 1000, 1, 0));
    r.sweep(33.25, totals_since(33.0, s3, c3, 33.001));
    let (ev, held) = r.finish();
    assert_eq!(held, [true; 3]);
    assert_eq!(stat(&ev, "flows.port_reuse"), 1);
    ev
}

/// What the new entry counts from then on is new and must be added, not taken as the maximum
/// of the old and new totals (which drops it).
#[test]
fn kernel_entry_created_again_adds_its_counts() {
    // 15 data segments, 2 sent again: the first connection's 3, the second's 4 before its
    // silence and 2 after.
    let ev = entry_created_again(15, 2);
    assert_eq!(stat(&ev, "tcp.retransmissions"), 3 + 4 + 2);
}

/// The new entry has counted more by the first sweep that reads it than the deleted one had (a
/// burst after the silence: 60 data segments against the 37 the deleted entry held): its totals
/// must still be taken as new ones (the entry's creation time says so), not as the growth of
/// the deleted entry's.
#[test]
fn kernel_entry_created_again_counting_more_adds_its_counts() {
    let ev = entry_created_again(60, 5);
    assert_eq!(stat(&ev, "tcp.retransmissions"), 3 + 4 + 5);
}
