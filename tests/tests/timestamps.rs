//! A frame stamped far ahead of the frames around it (a corrupt record, a clock glitch) must not
//! stop the run's clock: it is analyzed at the capture's time and counted, while a real jump (a
//! silence, confirmed by the frames after it) moves the clock as before. Expected values come
//! from the construction.

use observer::config::Config;
use observer_tests::tcp_flags::{ACK, SYN};
use observer_tests::{PcapBuilder, ScratchFile, run, stat};
use serde_json::Value;

const C: (&str, u16) = ("10.0.0.1", 40_000);
const S: (&str, u16) = ("10.0.0.2", 80);
const DAY: f64 = 86_400.0;

/// A connection: handshake at `t0`, then one data segment per second from `t0 + 1` for `n`
/// seconds; the segments numbered in `late` (from 0) are stamped 10 days later than they were
/// sent.
fn connection(t0: f64, n: u32, late: &[u32]) -> Vec<u8> {
    let mut b = PcapBuilder::default();
    b.tcp(t0, C, S, 100, 0, SYN, &[])
        .tcp(t0 + 0.001, S, C, 500, 101, SYN | ACK, &[])
        .tcp(t0 + 0.002, C, S, 101, 501, ACK, &[]);
    let mut seq = 101u32;
    for i in 0..n {
        let skew = if late.contains(&i) { 10.0 * DAY } else { 0.0 };
        b.tcp(t0 + 1.0 + f64::from(i) + skew, C, S, seq, 501, ACK, b"ping");
        seq += 4;
    }
    b.finish()
}

fn summary(events: &[Value]) -> &Value {
    events.last().expect("a summary")
}

/// Seconds after the builder's epoch of a time the summary gives ("2026-01-DDTHH:MM:SS.ffffffZ",
/// within January 2026).
fn secs(v: &Value) -> f64 {
    let s = v.as_str().expect("a time");
    let day: f64 = s[8..10].parse().unwrap();
    let h: f64 = s[11..13].parse().unwrap();
    let m: f64 = s[14..16].parse().unwrap();
    let sec: f64 = s[17..s.len() - 1].parse().unwrap();
    (day - 1.0) * DAY + h * 3600.0 + m * 60.0 + sec
}

#[test]
fn frames_stamped_days_ahead_do_not_move_the_clock() {
    // 20 segments over 20 s, some stamped 10 days late: the 6th; the 6th and 7th (a corrupt
    // stretch of a file: the 8th, back on time, shows both for what they are); the last (the
    // likeliest to be corrupt in a capture cut off mid-write: nothing after it confirms its
    // jump, so it is analyzed at the time of the frame before it).
    let cases: [(&[u32], u64, f64); 3] = [(&[5], 1, 20.0), (&[5, 6], 2, 20.0), (&[19], 1, 19.0)];
    for (late, outliers, end) in cases {
        let f = ScratchFile::new("outlier.pcap", &connection(0.0, 20, late));
        let (events, _) = run(&[f.to_path_buf()], &Config::default());
        assert_eq!(
            stat(&events, "frames.timestamp_outliers"),
            outliers,
            "{late:?}"
        );
        assert_eq!(stat(&events, "frames.total"), 23, "{late:?}");
        // One connection throughout: the clock never jumped, so it never looked idle (with
        // the clock 10 days on, the 2-hour idle timeout would have ended it and the next
        // segment would have started a second, mid-stream one).
        assert_eq!(stat(&events, "flows.tcp"), 1, "{late:?}");
        assert_eq!(stat(&events, "tcp.connections.midstream"), 0, "{late:?}");
        let s = summary(&events);
        assert_eq!(secs(&s["event"]["start"]), 0.0, "{late:?}");
        assert_eq!(secs(&s["event"]["end"]), end, "{late:?}");
    }
}

#[test]
fn a_first_frame_stamped_days_ahead_is_an_outlier_too() {
    let mut b = PcapBuilder::default();
    b.tcp(10.0 * DAY, C, S, 100, 0, SYN, &[]);
    let rest = connection(1.0, 3, &[]);
    let mut bytes = b.finish();
    bytes.extend_from_slice(&rest[24..]); // the other records, after their file header
    let f = ScratchFile::new("first.pcap", &bytes);
    let (events, _) = run(&[f.to_path_buf()], &Config::default());
    assert_eq!(stat(&events, "frames.timestamp_outliers"), 1);
    let s = summary(&events);
    // Analyzed at the time of the frame after it.
    assert_eq!(secs(&s["event"]["start"]), 1.0);
    assert_eq!(secs(&s["event"]["end"]), 4.0);
}

/// The connection with 5 segments, then `n` more of it, one a second, 10 days later.
fn after_silence(n: u32) -> Vec<u8> {
    let mut bytes = connection(0.0, 5, &[]);
    let mut later = PcapBuilder::default();
    let mut seq = 101 + 5 * 4;
    for i in 0..n {
        later.tcp(10.0 * DAY + f64::from(i), C, S, seq, 501, ACK, b"ping");
        seq += 4;
    }
    bytes.extend_from_slice(&later.finish()[24..]);
    bytes
}

#[test]
fn a_real_silence_moves_the_clock() {
    // The same connection, but every segment from the 6th on comes 10 days later: the frames
    // after the jump confirm it. The connection was idle for 10 days, longer than the 2-hour
    // timeout: it ended, and the segments after the silence are a connection picked up
    // mid-stream. With 5 segments after the silence the fifth confirms the jump; with 3 the
    // input ends first (captures joined end to end), and three frames within seconds of each
    // other are a stretch of real time, not a corrupt record.
    for n in [5u32, 3] {
        let f = ScratchFile::new("silence.pcap", &after_silence(n));
        let (events, _) = run(&[f.to_path_buf()], &Config::default());
        assert_eq!(stat(&events, "frames.timestamp_outliers"), 0, "{n}");
        assert_eq!(stat(&events, "flows.tcp"), 2, "{n}");
        assert_eq!(stat(&events, "tcp.connections.midstream"), 1, "{n}");
        let s = summary(&events);
        assert_eq!(
            secs(&s["event"]["end"]),
            10.0 * DAY + f64::from(n - 1),
            "{n}"
        );
    }
}

/// A live source's frames fed one by one, with heartbeats (the wall clock) in between.
mod live {
    use observer::config::Config;
    use observer::pipeline::Pipeline;
    use observer::sink::MemorySink;
    use observer::source::{LinkType, Packet};
    use observer::time::Timestamp;
    use observer_tests::stat;

    const HOUR: i64 = 3_600_000_000_000;
    const SEC: i64 = 1_000_000_000;
    const T0: i64 = 1_767_225_600 * SEC;

    /// A UDP datagram 10.0.0.1:5000 → 10.0.0.2:6000 (Ethernet).
    fn frame() -> Vec<u8> {
        let mut v = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(5000, 6000)
            .write(&mut v, b"x")
            .unwrap();
        v
    }

    /// A run that starts with a heartbeat at `T0`, takes frames at `frames` (ns), then
    /// heartbeats at `beats`, and finishes; its events.
    fn run(frames: &[i64], beats: &[i64]) -> Vec<serde_json::Value> {
        let data = frame();
        let mut sink = MemorySink::default();
        let mut p = Pipeline::new(&Config::default(), &mut sink, &[]);
        p.heartbeat(Timestamp(T0)).unwrap();
        for &ts in frames {
            p.process(&Packet {
                ts: Timestamp(ts),
                link: LinkType::ETHERNET,
                data: &data,
                wire_len: data.len() as u32,
                interface: 0,
                segments: 1,
            })
            .unwrap();
        }
        for &ts in beats {
            p.heartbeat(Timestamp(ts)).unwrap();
        }
        p.finish().unwrap();
        sink.events
    }

    #[test]
    fn a_heartbeat_confirms_a_real_jump_of_the_host_clock() {
        // The host's clock jumps two hours ahead (NTP after a suspend, say); one frame is
        // stamped after the jump, and then the link is quiet: heartbeats carry the new time.
        let events = run(&[T0 + SEC, T0 + 2 * HOUR], &[T0 + 2 * HOUR + SEC]);
        assert_eq!(stat(&events, "frames.total"), 2);
        // Confirmed by the heartbeat: not an outlier (held to the end, it would have been
        // analyzed at the old time and counted as one).
        assert_eq!(stat(&events, "frames.timestamp_outliers"), 0);
        let summary = events.last().unwrap();
        assert_eq!(
            summary["event"]["end"],
            Timestamp(T0 + 2 * HOUR + SEC).rfc3339_micros()
        );
    }

    #[test]
    fn a_heartbeat_shows_a_frame_stamped_days_ahead_for_what_it_is() {
        let events = run(&[T0 + SEC, T0 + 240 * HOUR], &[T0 + 5 * SEC]);
        assert_eq!(stat(&events, "frames.total"), 2);
        assert_eq!(stat(&events, "frames.timestamp_outliers"), 1);
        let summary = events.last().unwrap();
        assert_eq!(
            summary["event"]["end"],
            Timestamp(T0 + 5 * SEC).rfc3339_micros()
        );
    }
}
