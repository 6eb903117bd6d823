//! A bounded time series for the report: traffic per link and direction, TCP segments sent
//! (data, SYN, FIN) and retransmissions, in equal buckets covering the whole run.
//!
//! The series never holds more than [`MAX_BUCKETS`] buckets: it starts at
//! [`INITIAL_WIDTH`] per bucket and doubles the bucket width (merging neighbours) whenever the run outgrows it, so a
//! week-long capture costs the same memory as a minute. Timestamps earlier than the first one
//! (inputs given out of order) extend it backwards the same way.

use crate::time::{NANOS_PER_SEC, Nanos, Timestamp};

/// Width of a bucket until the run outgrows [`MAX_BUCKETS`] of them (the bandwidth analyzer's
/// bucket).
pub const INITIAL_WIDTH: Nanos = NANOS_PER_SEC / 10;
/// Most buckets kept.
pub const MAX_BUCKETS: usize = 512;
/// Links (capture interfaces) told apart; traffic of further interfaces is added to the last.
pub const MAX_LINKS: usize = 8;

/// One bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    /// IP bytes per link slot and direction (0: client → server, 1: server → client).
    pub bytes: [[u64; 2]; MAX_LINKS],
    /// TCP segments carrying data, a SYN or a FIN (what a retransmission resends).
    pub data_segments: u64,
    /// Of those, retransmissions (plain, fast or spurious).
    pub retransmissions: u64,
}

impl Bucket {
    fn add(&mut self, o: &Bucket) {
        for (a, b) in self.bytes.iter_mut().zip(&o.bytes) {
            a[0] += b[0];
            a[1] += b[1];
        }
        self.data_segments += o.data_segments;
        self.retransmissions += o.retransmissions;
    }
}

/// The series.
#[derive(Clone, Debug)]
pub struct Timeline {
    /// Start of bucket 0.
    pub origin: Timestamp,
    /// Width of every bucket.
    pub width: Nanos,
    /// The buckets, oldest first.
    pub buckets: Vec<Bucket>,
    /// The interface behind each link slot, in order of first appearance.
    pub links: Vec<u32>,
    /// Packets whose interface went to the last slot because every slot was taken.
    pub links_merged: u64,
    /// The earliest packet time counted.
    pub first: Timestamp,
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline {
            origin: Timestamp(0),
            width: INITIAL_WIDTH,
            buckets: Vec::new(),
            links: Vec::new(),
            links_merged: 0,
            first: Timestamp(0),
        }
    }
}

impl Timeline {
    /// The bucket for `ts`, growing or coarsening the series as needed.
    fn slot(&mut self, ts: Timestamp) -> usize {
        if self.buckets.is_empty() {
            self.origin = Timestamp(ts.0 - ts.0.rem_euclid(self.width));
            self.buckets.push(Bucket::default());
            self.first = ts;
        }
        self.first = self.first.min(ts);
        if ts < self.origin {
            // Extend backwards by whole buckets, coarsening first if that would not fit.
            loop {
                let gap = self.origin.0.saturating_sub(ts.0);
                let need = gap / self.width + i64::from(gap % self.width != 0);
                let need = usize::try_from(need).unwrap_or(usize::MAX);
                if need.saturating_add(self.buckets.len()) <= MAX_BUCKETS {
                    let front = vec![Bucket::default(); need];
                    self.buckets.splice(0..0, front);
                    self.origin = Timestamp(
                        self.origin
                            .0
                            .saturating_sub((need as i64).saturating_mul(self.width)),
                    );
                    break;
                }
                self.coarsen();
            }
        }
        loop {
            let idx = usize::try_from(ts.since(self.origin) / self.width).unwrap_or(usize::MAX);
            if idx < MAX_BUCKETS {
                if idx >= self.buckets.len() {
                    self.buckets.resize(idx + 1, Bucket::default());
                }
                return idx;
            }
            self.coarsen();
        }
    }

    /// Doubles the bucket width: bucket `i` becomes old buckets `2i` and `2i + 1`. The origin
    /// moves back to a multiple of the new width so the buckets stay aligned.
    fn coarsen(&mut self) {
        let width = self.width.saturating_mul(2);
        let aligned = Timestamp(self.origin.0 - self.origin.0.rem_euclid(width));
        let shift = usize::from(aligned != self.origin);
        let mut merged = vec![Bucket::default(); (self.buckets.len() + shift).div_ceil(2)];
        for (i, b) in self.buckets.iter().enumerate() {
            merged[(i + shift) / 2].add(b);
        }
        self.buckets = merged;
        self.origin = aligned;
        self.width = width;
    }

    fn link_slot(&mut self, interface: u32) -> usize {
        if let Some(i) = self.links.iter().position(|&l| l == interface) {
            return i;
        }
        if self.links.len() < MAX_LINKS {
            self.links.push(interface);
            return self.links.len() - 1;
        }
        self.links_merged += 1;
        MAX_LINKS - 1
    }

    /// Counts one packet: `bytes` IP bytes on `interface`, `to_server` for client → server,
    /// and whether it was a TCP data segment and a retransmission.
    pub fn add(
        &mut self,
        ts: Timestamp,
        interface: u32,
        to_server: bool,
        bytes: u64,
        data: bool,
        retransmission: bool,
    ) {
        let link = self.link_slot(interface);
        let i = self.slot(ts);
        let b = &mut self.buckets[i];
        b.bytes[link][usize::from(!to_server)] += bytes;
        b.data_segments += u64::from(data);
        b.retransmissions += u64::from(retransmission);
    }

    /// Start time of bucket `i`.
    pub fn bucket_start(&self, i: usize) -> Timestamp {
        self.origin.plus(self.width * i as i64)
    }

    /// Totals over every bucket.
    pub fn total(&self) -> Bucket {
        let mut t = Bucket::default();
        for b in &self.buckets {
            t.add(b);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: f64) -> Timestamp {
        Timestamp((secs * 1e9) as i64)
    }

    #[test]
    fn fine_buckets_until_full() {
        let mut tl = Timeline::default();
        tl.add(t(100.21), 0, true, 10, true, false);
        tl.add(t(100.25), 0, false, 20, true, true);
        tl.add(t(103.55), 0, true, 30, false, false);
        assert_eq!(tl.width, INITIAL_WIDTH);
        assert_eq!(tl.origin, t(100.2));
        // 100.2 … 103.6 in 100 ms buckets.
        assert_eq!(tl.buckets.len(), 34);
        assert_eq!(tl.buckets[0].bytes[0], [10, 20]);
        assert_eq!(tl.buckets[0].data_segments, 2);
        assert_eq!(tl.buckets[0].retransmissions, 1);
        assert_eq!(tl.buckets[33].bytes[0], [30, 0]);
    }

    #[test]
    fn a_long_run_coarsens_and_keeps_every_byte() {
        let mut tl = Timeline::default();
        // One packet per second for 10,000 s: far more than MAX_BUCKETS one-second buckets.
        for s in 0..10_000u64 {
            tl.add(t(1_000.0 + s as f64), 1, s % 2 == 0, s, true, s % 10 == 0);
        }
        assert!(tl.buckets.len() <= MAX_BUCKETS);
        // 10,000 s in at most 512 buckets needs at least 19.5 s a bucket: 100 ms doubled 8
        // times is 25.6 s.
        assert_eq!(tl.width, 25_600_000_000);
        let total = tl.total();
        let expected_to_server: u64 = (0..10_000u64).filter(|s| s % 2 == 0).sum();
        let expected_to_client: u64 = (0..10_000u64).filter(|s| s % 2 == 1).sum();
        assert_eq!(total.bytes[0], [expected_to_server, expected_to_client]);
        assert_eq!(total.data_segments, 10_000);
        assert_eq!(total.retransmissions, 1_000);
        // Every bucket covers the times that were counted in it.
        let first = tl.bucket_start(0);
        assert!(first <= t(1_000.0) && t(1_000.0) < first.plus(tl.width));
        let last = tl.bucket_start(tl.buckets.len() - 1);
        assert!(last <= t(10_999.0) && t(10_999.0) < last.plus(tl.width));
    }

    #[test]
    fn earlier_input_extends_backwards() {
        let mut tl = Timeline::default();
        tl.add(t(5_000.0), 0, true, 1, false, false);
        tl.add(t(4_990.5), 0, true, 2, false, false);
        assert_eq!(tl.origin, t(4_990.5));
        assert_eq!(tl.first, t(4_990.5));
        assert_eq!(tl.buckets[0].bytes[0][0], 2);
        assert_eq!(tl.buckets[95].bytes[0][0], 1);
        // A day earlier: coarsened, nothing lost.
        tl.add(t(5_000.0 - 86_400.0), 0, true, 4, false, false);
        assert!(tl.buckets.len() <= MAX_BUCKETS);
        assert_eq!(tl.total().bytes[0][0], 7);
        assert!(tl.origin <= t(5_000.0 - 86_400.0));
    }

    #[test]
    fn extra_interfaces_share_the_last_slot() {
        let mut tl = Timeline::default();
        for i in 0..(MAX_LINKS as u32 + 3) {
            tl.add(t(1.0), i, true, 1, false, false);
        }
        assert_eq!(tl.links.len(), MAX_LINKS);
        assert_eq!(tl.links_merged, 3);
        assert_eq!(tl.buckets[0].bytes[MAX_LINKS - 1][0], 4);
    }
}
