//! Constructed fixtures: captures whose every packet is written here, so the expected findings
//! follow from construction (see fixtures/README.md for the facts each one must produce).

use crate::packets::{fl, tcp_frame, udp_frame};
use crate::pcapw::{PcapWriter, PcapngWriter};
use anyhow::Result;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::Path;

/// 2026-01-01T00:00:00Z in microseconds.
const BASE_US: u64 = 1_767_225_600_000_000;

/// One packet of a scenario: time offset (µs), whether it is IPv6 (goes to interface 1 in
/// the pcapng variant), and the frame builder inputs.
struct Pkt {
    t_us: u64,
    v6: bool,
    eth: Vec<u8>,
    raw: Vec<u8>,
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("valid literal")
}

struct Scenario {
    pkts: Vec<Pkt>,
}

impl Scenario {
    #[allow(clippy::too_many_arguments)]
    fn tcp(
        &mut self,
        t_us: u64,
        src: (IpAddr, u16),
        dst: (IpAddr, u16),
        seq: u32,
        ack: u32,
        flags: u8,
        payload: &[u8],
    ) {
        self.pkts.push(Pkt {
            t_us,
            v6: src.0.is_ipv6(),
            eth: tcp_frame(true, src, dst, seq, ack, flags, 64240, payload),
            raw: tcp_frame(false, src, dst, seq, ack, flags, 64240, payload),
        });
    }

    /// Handshake at `t`, 1 ms per step; returns the sequence numbers after it.
    fn handshake(&mut self, t: u64, c: (IpAddr, u16), s: (IpAddr, u16)) -> (u32, u32) {
        let (ci, si) = (1000u32, 5000u32);
        self.tcp(t, c, s, ci, 0, fl::SYN, &[]);
        self.tcp(t + 1000, s, c, si, ci + 1, fl::SYN | fl::ACK, &[]);
        self.tcp(t + 2000, c, s, ci + 1, si + 1, fl::ACK, &[]);
        (ci + 1, si + 1)
    }
}

/// The TCP connection health scenario (facts in fixtures/README.md).
fn tcp_health() -> Scenario {
    let mut sc = Scenario { pkts: Vec::new() };
    let client = ip("10.0.0.1");
    let web = ip("10.0.0.2");
    let s = 1_000_000u64;
    // 1. A completed exchange with orderly close.
    {
        let c = (client, 40001);
        let sv = (web, 80);
        let (cs, ss) = sc.handshake(0, c, sv);
        sc.tcp(3000, c, sv, cs, ss, fl::ACK | fl::PSH, &[b'G'; 100]);
        sc.tcp(4000, sv, c, ss, cs + 100, fl::ACK, &[]);
        sc.tcp(5000, sv, c, ss, cs + 100, fl::ACK | fl::PSH, &[b'R'; 1000]);
        sc.tcp(6000, c, sv, cs + 100, ss + 1000, fl::ACK, &[]);
        sc.tcp(7000, c, sv, cs + 100, ss + 1000, fl::FIN | fl::ACK, &[]);
        sc.tcp(8000, sv, c, ss + 1000, cs + 101, fl::FIN | fl::ACK, &[]);
        sc.tcp(9000, c, sv, cs + 101, ss + 1001, fl::ACK, &[]);
    }
    // 2. Three attempts refused by 10.0.0.2:81.
    for (i, port) in [40002u16, 40003, 40004].into_iter().enumerate() {
        let t = s + i as u64 * 100_000;
        sc.tcp(t, (client, port), (web, 81), 7000, 0, fl::SYN, &[]);
        sc.tcp(
            t + 1000,
            (web, 81),
            (client, port),
            0,
            7001,
            fl::RST | fl::ACK,
            &[],
        );
    }
    // 3. One attempt to 10.0.0.3:8080 never answered: SYN and two retries.
    for t in [2 * s, 3 * s, 5 * s] {
        sc.tcp(
            t,
            (client, 40010),
            (ip("10.0.0.3"), 8080),
            9000,
            0,
            fl::SYN,
            &[],
        );
    }
    // 4. An established connection reset by the server in the middle of a response.
    {
        let c = (client, 40020);
        let sv = (web, 80);
        let t = 6 * s;
        let (cs, ss) = sc.handshake(t, c, sv);
        sc.tcp(t + 3000, c, sv, cs, ss, fl::ACK | fl::PSH, &[b'G'; 80]);
        sc.tcp(
            t + 4000,
            sv,
            c,
            ss,
            cs + 80,
            fl::ACK | fl::PSH,
            &[b'R'; 500],
        );
        sc.tcp(t + 5000, sv, c, ss + 500, cs + 80, fl::RST | fl::ACK, &[]);
    }
    // 5. A completed IPv6 connection.
    {
        let c = (ip("fd00::1"), 40030);
        let sv = (ip("fd00::2"), 443);
        let t = 7 * s;
        let (cs, ss) = sc.handshake(t, c, sv);
        sc.tcp(t + 3000, c, sv, cs, ss, fl::FIN | fl::ACK, &[]);
        sc.tcp(t + 4000, sv, c, ss, cs + 1, fl::FIN | fl::ACK, &[]);
        sc.tcp(t + 5000, c, sv, cs + 1, ss + 1, fl::ACK, &[]);
    }
    // 6. One DNS-like UDP exchange.
    {
        let c = (client, 5353);
        let d = (ip("10.0.0.53"), 53);
        for (t, src, dst, len) in [(8 * s, c, d, 30usize), (8 * s + 500, d, c, 60)] {
            sc.pkts.push(Pkt {
                t_us: t,
                v6: false,
                eth: udp_frame(true, src, dst, &vec![0u8; len]),
                raw: udp_frame(false, src, dst, &vec![0u8; len]),
            });
        }
    }
    sc.pkts.sort_by_key(|p| p.t_us);
    sc
}

/// Writes every constructed fixture into `dir`.
pub fn write_all(dir: &Path) -> Result<()> {
    let sc = tcp_health();
    let f = std::fs::File::create(dir.join("constructed-tcp-health.pcap"))?;
    let mut w = PcapWriter::new(std::io::BufWriter::new(f), 1)?;
    for p in &sc.pkts {
        w.packet(BASE_US + p.t_us, &p.eth)?;
    }
    w.finish()?;
    // Same traffic as pcapng, gzip-compressed: IPv4 on an Ethernet interface with
    // microseconds, IPv6 on a raw-IP interface with nanoseconds.
    let f = std::fs::File::create(dir.join("constructed-tcp-health.pcapng.gz"))?;
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::best());
    let mut w = PcapngWriter::new(gz, &[(1, 6), (101, 9)])?;
    for p in &sc.pkts {
        let (iface, data) = if p.v6 { (1, &p.raw) } else { (0, &p.eth) };
        w.packet(iface, (BASE_US + p.t_us) * 1000, data)?;
    }
    w.finish()?.finish()?.flush()?;
    println!(
        "wrote {} packets to {}/constructed-tcp-health.{{pcap,pcapng.gz}}",
        sc.pkts.len(),
        dir.display()
    );
    Ok(())
}
