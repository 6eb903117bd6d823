//! A reproducible large benchmark capture: a deterministic (seeded) mix of many short HTTP and
//! TLS-like connections, DNS over UDP, bulk transfers with some loss and retransmission,
//! refused and unanswered connection attempts, interleaved across a few hundred concurrent
//! flows. Same seed and size → byte-identical file.

use crate::packets::{fl, tcp_frame, udp_frame};
use crate::pcapw::PcapWriter;
use anyhow::Result;
use std::io::BufWriter;
use std::net::IpAddr;
use std::path::Path;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Http,
    Tls,
    Bulk,
    Dns,
    Refused,
    Unanswered,
}

struct Session {
    kind: Kind,
    client: (IpAddr, u16),
    server: (IpAddr, u16),
    step: u32,
    cseq: u32,
    sseq: u32,
    /// Response bytes still to send.
    remaining: u64,
    /// Request size.
    req: usize,
    unacked: u32,
}

const MSS: u64 = 1448;

/// Writes the capture; returns (packets, bytes).
/// `slowdown` multiplies every gap between events (1: the benchmark's ~650 Mbit/s; 300: a few
/// Mbit/s, so flows time out and the flow table reaches a steady state within minutes of
/// capture time).
pub fn generate(path: &Path, target_bytes: u64, seed: u64, slowdown: u64) -> Result<(u64, u64)> {
    let f = std::fs::File::create(path)?;
    let mut w = PcapWriter::new(BufWriter::with_capacity(1 << 20, f), 1)?;
    let mut rng = Rng(seed | 1);
    let mut filler = vec![0u8; 64 * 1024];
    for b in filler.iter_mut() {
        *b = (rng.next() >> 56) as u8;
    }
    let http_req = b"GET /api/orders/12345 HTTP/1.1\r\nHost: orders.svc.internal\r\nUser-Agent: synth/1\r\nAccept: */*\r\n\r\n";
    let mut t_us: u64 = 1_767_225_600_000_000;
    let mut sessions: Vec<Session> = Vec::new();
    let mut next_port: u16 = 20000;
    let mut packets = 0u64;
    let mut bytes = 24u64;
    let new_session = |rng: &mut Rng, next_port: &mut u16| -> Session {
        let r = rng.below(1000);
        let kind = match r {
            0..=549 => Kind::Http,
            550..=779 => Kind::Tls,
            780..=789 => Kind::Bulk,
            790..=969 => Kind::Dns,
            970..=989 => Kind::Refused,
            _ => Kind::Unanswered,
        };
        *next_port = if *next_port >= 60000 {
            20000
        } else {
            *next_port + 1
        };
        let c = rng.below(200) as u8;
        let s = rng.below(40) as u8;
        let client = (IpAddr::from([10, 10, 1 + c / 100, c]), *next_port);
        let sport = match kind {
            Kind::Http | Kind::Bulk => 8080,
            Kind::Tls => 443,
            Kind::Dns => 53,
            Kind::Refused => 81,
            Kind::Unanswered => 9999,
        };
        let server = (IpAddr::from([10, 20, 0, s]), sport);
        let remaining = match kind {
            Kind::Http => 500 + rng.below(30_000),
            Kind::Tls => 3000 + rng.below(60_000),
            Kind::Bulk => 2_000_000 + rng.below(18_000_000),
            _ => 0,
        };
        Session {
            kind,
            client,
            server,
            step: 0,
            cseq: rng.next() as u32,
            sseq: rng.next() as u32,
            remaining,
            req: if kind == Kind::Tls {
                517
            } else {
                http_req.len()
            },
            unacked: 0,
        }
    };
    while bytes < target_bytes {
        while sessions.len() < 300 {
            sessions.push(new_session(&mut rng, &mut next_port));
        }
        let i = rng.below(sessions.len() as u64) as usize;
        t_us += (1 + rng.below(40)) * slowdown.max(1);
        let s = &mut sessions[i];
        let (c, sv) = (s.client, s.server);
        let mut frames: Vec<Vec<u8>> = Vec::new();
        let mut done = false;
        match s.kind {
            Kind::Dns => {
                frames.push(udp_frame(true, c, sv, &filler[..40]));
                frames.push(udp_frame(true, sv, c, &filler[..120]));
                done = true;
            }
            Kind::Refused => {
                frames.push(tcp_frame(true, c, sv, s.cseq, 0, fl::SYN, 64240, &[]));
                frames.push(tcp_frame(
                    true,
                    sv,
                    c,
                    0,
                    s.cseq.wrapping_add(1),
                    fl::RST | fl::ACK,
                    0,
                    &[],
                ));
                done = true;
            }
            Kind::Unanswered => {
                frames.push(tcp_frame(true, c, sv, s.cseq, 0, fl::SYN, 64240, &[]));
                s.step += 1;
                done = s.step >= 3;
            }
            _ => match s.step {
                0 => {
                    frames.push(tcp_frame(true, c, sv, s.cseq, 0, fl::SYN, 64240, &[]));
                    frames.push(tcp_frame(
                        true,
                        sv,
                        c,
                        s.sseq,
                        s.cseq.wrapping_add(1),
                        fl::SYN | fl::ACK,
                        65160,
                        &[],
                    ));
                    s.cseq = s.cseq.wrapping_add(1);
                    s.sseq = s.sseq.wrapping_add(1);
                    frames.push(tcp_frame(true, c, sv, s.cseq, s.sseq, fl::ACK, 502, &[]));
                    s.step = 1;
                }
                1 => {
                    let req: &[u8] = if s.kind == Kind::Tls {
                        &filler[..s.req]
                    } else {
                        &http_req[..]
                    };
                    frames.push(tcp_frame(
                        true,
                        c,
                        sv,
                        s.cseq,
                        s.sseq,
                        fl::ACK | fl::PSH,
                        502,
                        req,
                    ));
                    s.cseq = s.cseq.wrapping_add(req.len() as u32);
                    s.step = 2;
                }
                2 => {
                    // Two segments of the response, then an ACK; sometimes one is lost and
                    // retransmitted (the capture sees both copies).
                    for _ in 0..2 {
                        if s.remaining == 0 {
                            break;
                        }
                        let n = s.remaining.min(MSS) as usize;
                        let frame =
                            tcp_frame(true, sv, c, s.sseq, s.cseq, fl::ACK, 509, &filler[..n]);
                        if s.kind == Kind::Bulk && rng.below(200) == 0 {
                            frames.push(frame.clone());
                        }
                        frames.push(frame);
                        s.sseq = s.sseq.wrapping_add(n as u32);
                        s.remaining -= n as u64;
                        s.unacked += 1;
                    }
                    frames.push(tcp_frame(true, c, sv, s.cseq, s.sseq, fl::ACK, 502, &[]));
                    s.unacked = 0;
                    if s.remaining == 0 {
                        s.step = 3;
                    }
                }
                _ => {
                    frames.push(tcp_frame(
                        true,
                        c,
                        sv,
                        s.cseq,
                        s.sseq,
                        fl::FIN | fl::ACK,
                        502,
                        &[],
                    ));
                    frames.push(tcp_frame(
                        true,
                        sv,
                        c,
                        s.sseq,
                        s.cseq.wrapping_add(1),
                        fl::FIN | fl::ACK,
                        509,
                        &[],
                    ));
                    frames.push(tcp_frame(
                        true,
                        c,
                        sv,
                        s.cseq.wrapping_add(1),
                        s.sseq.wrapping_add(1),
                        fl::ACK,
                        502,
                        &[],
                    ));
                    done = true;
                }
            },
        }
        for fr in frames {
            t_us += 1 + rng.below(8);
            w.packet(t_us, &fr)?;
            packets += 1;
            bytes += 16 + fr.len() as u64;
        }
        if done {
            sessions.swap_remove(i);
        }
    }
    w.finish()?;
    Ok((packets, bytes))
}

/// A SYN flood: `n` SYNs to 10.0.0.2:80, each from its own client (addresses from 11.0.0.0,
/// 50,000 ports each), evenly spread over 10 s, so every flow is still open (unanswered) when
/// the last SYN arrives. Returns the bytes written.
pub fn syn_flood(path: &Path, n: u64) -> Result<u64> {
    syn_packets(path, n, false)
}

/// A scan: `n` SYNs from one client to distinct addresses (from 12.0.0.0, port 80) within
/// 10 s.
pub fn syn_scan(path: &Path, n: u64) -> Result<u64> {
    syn_packets(path, n, true)
}

fn syn_packets(path: &Path, n: u64, scan: bool) -> Result<u64> {
    let file = std::fs::File::create(path)?;
    let mut w = PcapWriter::new(BufWriter::with_capacity(1 << 20, file), 1)?;
    let server: (IpAddr, u16) = ("10.0.0.2".parse()?, 80);
    let t0: u64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z in µs
    let step = (10_000_000 / n.max(1)).max(1);
    let mut bytes = 24;
    for i in 0..n {
        let host = u32::from(std::net::Ipv4Addr::new(11, 0, 0, 0)) + (i / 50_000) as u32;
        let client: (IpAddr, u16) = (
            IpAddr::V4(std::net::Ipv4Addr::from(host)),
            10_000 + (i % 50_000) as u16,
        );
        let (client, server) = if scan {
            let dst = u32::from(std::net::Ipv4Addr::new(12, 0, 0, 0)) + i as u32;
            (
                ("10.0.0.1".parse()?, 40_000 + (i % 20_000) as u16),
                (IpAddr::V4(std::net::Ipv4Addr::from(dst)), 80),
            )
        } else {
            (client, server)
        };
        let f = tcp_frame(true, client, server, i as u32, 0, fl::SYN, 64_240, &[]);
        bytes += 16 + f.len() as u64;
        w.packet(t0 + i * step, &f)?;
    }
    w.finish()?;
    Ok(bytes)
}
