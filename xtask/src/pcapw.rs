//! Minimal pcap / pcapng writers for constructed captures.

use std::io::{self, Write};

/// A classic pcap writer (little-endian, microsecond timestamps).
pub struct PcapWriter<W: Write> {
    out: W,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the global header for `linktype`.
    pub fn new(mut out: W, linktype: u32) -> io::Result<Self> {
        out.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
        out.write_all(&2u16.to_le_bytes())?;
        out.write_all(&4u16.to_le_bytes())?;
        out.write_all(&[0; 8])?;
        out.write_all(&262_144u32.to_le_bytes())?;
        out.write_all(&linktype.to_le_bytes())?;
        Ok(PcapWriter { out })
    }

    /// Writes one record at `ts_us` microseconds since the epoch.
    pub fn packet(&mut self, ts_us: u64, data: &[u8]) -> io::Result<()> {
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&((ts_us / 1_000_000) as u32).to_le_bytes());
        h[4..8].copy_from_slice(&((ts_us % 1_000_000) as u32).to_le_bytes());
        h[8..12].copy_from_slice(&(data.len() as u32).to_le_bytes());
        h[12..16].copy_from_slice(&(data.len() as u32).to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(data)
    }

    /// Flushes and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// A pcapng writer (little-endian) with several interfaces.
pub struct PcapngWriter<W: Write> {
    out: W,
    /// Units per second per interface.
    units: Vec<u64>,
}

fn block(out: &mut impl Write, ty: u32, body: &[u8]) -> io::Result<()> {
    let padded = (body.len() + 3) & !3;
    let total = (12 + padded) as u32;
    out.write_all(&ty.to_le_bytes())?;
    out.write_all(&total.to_le_bytes())?;
    out.write_all(body)?;
    out.write_all(&vec![0u8; padded - body.len()])?;
    out.write_all(&total.to_le_bytes())
}

impl<W: Write> PcapngWriter<W> {
    /// Writes the section header and one interface block per (linktype, tsresol exponent of 10).
    pub fn new(mut out: W, interfaces: &[(u16, u8)]) -> io::Result<Self> {
        let mut shb = Vec::new();
        shb.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&u64::MAX.to_le_bytes());
        block(&mut out, 0x0a0d_0d0a, &shb)?;
        let mut units = Vec::new();
        for &(link, res) in interfaces {
            let mut b = Vec::new();
            b.extend_from_slice(&link.to_le_bytes());
            b.extend_from_slice(&0u16.to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes());
            b.extend_from_slice(&9u16.to_le_bytes());
            b.extend_from_slice(&1u16.to_le_bytes());
            b.extend_from_slice(&[res, 0, 0, 0]);
            b.extend_from_slice(&[0; 4]);
            block(&mut out, 1, &b)?;
            units.push(10u64.pow(u32::from(res)));
        }
        Ok(PcapngWriter { out, units })
    }

    /// Writes an enhanced packet block at `ts_ns` nanoseconds since the epoch.
    pub fn packet(&mut self, iface: u32, ts_ns: u64, data: &[u8]) -> io::Result<()> {
        let units = self.units[iface as usize];
        let t = (u128::from(ts_ns) * u128::from(units) / 1_000_000_000) as u64;
        let mut b = Vec::with_capacity(20 + data.len());
        b.extend_from_slice(&iface.to_le_bytes());
        b.extend_from_slice(&((t >> 32) as u32).to_le_bytes());
        b.extend_from_slice(&(t as u32).to_le_bytes());
        b.extend_from_slice(&(data.len() as u32).to_le_bytes());
        b.extend_from_slice(&(data.len() as u32).to_le_bytes());
        b.extend_from_slice(data);
        block(&mut self.out, 6, &b)
    }

    /// Flushes and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}
