//! No allocation per packet: the heap allocations made while a capture is read and analyzed
//! (a counting allocator, this test binary's own; the final report is not counted) grow with
//! the connections of a capture, not with its packets. Each case analyzes the same connections
//! twice, with ten times the packets the second time, and the difference in allocations is
//! divided by the difference in packets.
//!
//! The captures are built here: TCP connections carrying data both ways, HTTP/1.1 keep-alive
//! connections carrying many requests, and DNS queries with their answers.
// A global allocator can only be written with `unsafe`: the one here forwards every call to
// the system's unchanged.
#![allow(unsafe_code)]

use observer::config::Config;
use observer::pipeline::Pipeline;
use observer::sink::MemorySink;
use observer_tests::{PcapBuilder, ScratchFile, dns_a_query, dns_a_response, tcp_flags};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged, counting allocations.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on as it is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// One case at a time: the counter is the whole process's.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Allocations made while `bytes` is read and analyzed (reader, decoder, flows, analyzers,
/// the findings and metric events written meanwhile), and the frames read.
fn allocations(name: &str, bytes: &[u8], second_thread: bool) -> (u64, u64) {
    let file = ScratchFile::new(name, bytes);
    let files = [file.to_path_buf()];
    let cfg = Config::default();
    let mut sink = MemorySink::default();
    let mut p = Pipeline::new(&cfg, &mut sink, &files);
    p.set_read_ahead(second_thread);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    p.run_file(&files[0]).expect("memory sink");
    let made = ALLOCATIONS.load(Ordering::Relaxed) - before;
    let summary = p.finish().expect("memory sink");
    (made, summary.packets.frames)
}

/// Allocations per packet added: `build(n)` makes the same connections with `n` rounds of
/// traffic each.
fn per_added_packet(name: &str, build: impl Fn(u32) -> Vec<u8>, second_thread: bool) -> f64 {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (a_small, f_small) = allocations(&format!("{name}-10"), &build(10), second_thread);
    let (a_large, f_large) = allocations(&format!("{name}-100"), &build(100), second_thread);
    assert!(
        f_large > f_small * 5,
        "{name}: {f_small} then {f_large} frames"
    );
    let per = (a_large as f64 - a_small as f64) / (f_large - f_small) as f64;
    eprintln!(
        "{name}: {a_small} allocations for {f_small} frames, {a_large} for {f_large}: {per:.4} per added packet"
    );
    per
}

/// A connection from `c` to `s` opened at `t0`, carrying `rounds` exchanges `gap` seconds
/// apart, then closed. `exchange(b, t, client_seq, server_seq)` writes one and returns the
/// sequence numbers after it.
fn connection(
    b: &mut PcapBuilder,
    t0: f64,
    (c, s): ((&str, u16), (&str, u16)),
    (rounds, gap): (u32, f64),
    exchange: impl Fn(&mut PcapBuilder, f64, u32, u32) -> (u32, u32),
) {
    use tcp_flags::{ACK, FIN, SYN};
    b.tcp(t0, c, s, 100, 0, SYN, &[])
        .tcp(t0 + 0.001, s, c, 500, 101, SYN | ACK, &[])
        .tcp(t0 + 0.002, c, s, 101, 501, ACK, &[]);
    let (mut cs, mut ss) = (101u32, 501u32);
    for r in 0..rounds {
        (cs, ss) = exchange(b, t0 + 0.01 + f64::from(r) * gap, cs, ss);
    }
    let t = t0 + 0.02 + f64::from(rounds) * gap;
    b.tcp(t, c, s, cs, ss, FIN | ACK, &[])
        .tcp(t + 0.001, s, c, ss, cs + 1, FIN | ACK, &[])
        .tcp(t + 0.002, c, s, cs + 1, ss + 1, ACK, &[]);
}

/// 50 connections, each carrying `rounds` × (1,000 bytes from the client, its ACK, 1,400
/// bytes from the server, its ACK).
fn data_connections(rounds: u32) -> Vec<u8> {
    use tcp_flags::ACK;
    let mut b = PcapBuilder::default();
    let up = [b'u'; 1_000];
    let down = [b'd'; 1_400];
    for i in 0..50u32 {
        let client = format!("10.0.0.{}", i + 1);
        let (c, s) = ((client.as_str(), 40_000 + i as u16), ("10.1.0.1", 9_000));
        connection(
            &mut b,
            f64::from(i) * 0.01,
            (c, s),
            (rounds, 0.01),
            |b, t, cs, ss| {
                b.tcp(t, c, s, cs, ss, ACK, &up)
                    .tcp(t + 0.001, s, c, ss, cs + 1_000, ACK, &[])
                    .tcp(t + 0.002, s, c, ss, cs + 1_000, ACK, &down)
                    .tcp(t + 0.003, c, s, cs + 1_000, ss + 1_400, ACK, &[]);
                (cs + 1_000, ss + 1_400)
            },
        );
    }
    b.finish()
}

/// 20 keep-alive HTTP/1.1 connections, each carrying `rounds` requests (one segment each)
/// and their responses (one segment each, with ACKs).
fn http_connections(rounds: u32) -> Vec<u8> {
    use tcp_flags::ACK;
    let mut b = PcapBuilder::default();
    let req = b"GET /items?id=7 HTTP/1.1\r\nHost: shop.internal\r\nUser-Agent: t\r\n\r\n";
    let resp = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";
    let (rl, sl) = (req.len() as u32, resp.len() as u32);
    for i in 0..20u32 {
        let client = format!("10.0.1.{}", i + 1);
        let (c, s) = ((client.as_str(), 41_000 + i as u16), ("10.1.0.2", 80));
        connection(
            &mut b,
            f64::from(i) * 0.01,
            (c, s),
            (rounds, 0.05),
            |b, t, cs, ss| {
                b.tcp(t, c, s, cs, ss, ACK, req)
                    .tcp(t + 0.010, s, c, ss, cs + rl, ACK, resp)
                    .tcp(t + 0.011, c, s, cs + rl, ss + sl, ACK, &[]);
                (cs + rl, ss + sl)
            },
        );
    }
    b.finish()
}

/// 20 clients, each asking the resolver `rounds` times for the same name from one port (a
/// new query id each time), every query answered.
fn dns_exchanges(rounds: u32) -> Vec<u8> {
    let mut b = PcapBuilder::default();
    for r in 0..rounds {
        for i in 0..20u32 {
            let client = format!("10.0.2.{}", i + 1);
            let port = 30_000 + i as u16;
            let id = (r * 20 + i) as u16;
            let t = f64::from(r) * 0.02 + f64::from(i) * 0.0005;
            b.udp(
                t,
                (&client, port),
                ("10.0.0.53", 53),
                &dns_a_query(id, "api.example.com"),
            );
            b.udp(
                t + 0.002,
                ("10.0.0.53", 53),
                (&client, port),
                &dns_a_response(id, "api.example.com", 0, &[("10.1.0.9", 300)]),
            );
        }
    }
    b.finish()
}

// What does allocate as capture time passes (a metric event a second, a bandwidth bucket)
// stays far below one allocation in 20 packets here; one per message would be 0.5 or more.

#[test]
fn tcp_data_allocates_nothing_per_packet() {
    for second_thread in [false, true] {
        let per = per_added_packet("alloc-tcp", data_connections, second_thread);
        assert!(per < 0.05, "{per} allocations per packet");
    }
}

#[test]
fn dns_exchanges_allocate_nothing_per_packet() {
    for second_thread in [false, true] {
        let per = per_added_packet("alloc-dns", dns_exchanges, second_thread);
        assert!(per < 0.05, "{per} allocations per packet");
    }
}

#[test]
fn an_http_exchange_allocates_only_its_path() {
    // Three packets an exchange: the request, the response, the client's ACK. The request's
    // path is kept (shared by the request and response events and the pending queue): one
    // allocation; its method is held in place and its host shared with the connection's
    // earlier requests.
    for second_thread in [false, true] {
        let per = per_added_packet("alloc-http", http_connections, second_thread) * 3.0;
        assert!(per < 1.2, "{per} allocations per exchange");
    }
}
