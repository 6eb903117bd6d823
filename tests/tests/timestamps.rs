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
/// seconds; the segment at `t0 + 1 + bad` (if any) is stamped `skew` seconds later than it
/// was sent.
fn connection(t0: f64, n: u32, bad: Option<(u32, f64)>) -> Vec<u8> {
    let mut b = PcapBuilder::default();
    b.tcp(t0, C, S, 100, 0, SYN, &[])
        .tcp(t0 + 0.001, S, C, 500, 101, SYN | ACK, &[])
        .tcp(t0 + 0.002, C, S, 101, 501, ACK, &[]);
    let mut seq = 101u32;
    for i in 0..n {
        let mut t = t0 + 1.0 + f64::from(i);
        if let Some((at, skew)) = bad {
            if at == i {
                t += skew;
            }
        }
        b.tcp(t, C, S, seq, 501, ACK, b"ping");
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
fn one_frame_stamped_days_ahead_does_not_move_the_clock() {
    // 20 segments over 20 s; the 6th is stamped 10 days late.
    let f = ScratchFile::new("outlier.pcap", &connection(0.0, 20, Some((5, 10.0 * DAY))));
    let (events, _) = run(&[f.to_path_buf()], &Config::default());
    assert_eq!(stat(&events, "frames.timestamp_outliers"), 1);
    assert_eq!(stat(&events, "frames.total"), 23);
    // One connection throughout: the clock never jumped, so it never looked idle (with the
    // clock 10 days on, the 2-hour idle timeout would have ended it and the next segment
    // would have started a second, mid-stream one).
    assert_eq!(stat(&events, "flows.tcp"), 1);
    assert_eq!(stat(&events, "tcp.connections.midstream"), 0);
    let s = summary(&events);
    assert_eq!(secs(&s["event"]["start"]), 0.0);
    assert_eq!(secs(&s["event"]["end"]), 20.0);
}

#[test]
fn a_first_frame_stamped_days_ahead_is_an_outlier_too() {
    let mut b = PcapBuilder::default();
    b.tcp(10.0 * DAY, C, S, 100, 0, SYN, &[]);
    let rest = connection(1.0, 3, None);
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

#[test]
fn a_real_silence_moves_the_clock() {
    // The same connection, but every segment from the 6th on comes 10 days later: the frames
    // after the jump confirm it. The connection was idle for 10 days, longer than the 2-hour
    // timeout: it ended, and the segments after the silence are a connection picked up mid-stream.
    let first = connection(0.0, 5, None);
    let mut later = PcapBuilder::default();
    let mut seq = 101 + 5 * 4;
    for i in 0..5u32 {
        later.tcp(10.0 * DAY + f64::from(i), C, S, seq, 501, ACK, b"ping");
        seq += 4;
    }
    let mut bytes = first;
    bytes.extend_from_slice(&later.finish()[24..]);
    let f = ScratchFile::new("silence.pcap", &bytes);
    let (events, _) = run(&[f.to_path_buf()], &Config::default());
    assert_eq!(stat(&events, "frames.timestamp_outliers"), 0);
    assert_eq!(stat(&events, "flows.tcp"), 2);
    assert_eq!(stat(&events, "tcp.connections.midstream"), 1);
    let s = summary(&events);
    assert_eq!(secs(&s["event"]["end"]), 10.0 * DAY + 4.0);
}

#[test]
fn a_last_frame_stamped_days_ahead_is_an_outlier() {
    // The last record of a capture cut off mid-write is the likeliest to be corrupt: nothing
    // after it confirms its jump, so it is analyzed at the time of the frame before it.
    let f = ScratchFile::new("last.pcap", &connection(0.0, 20, Some((19, 10.0 * DAY))));
    let (events, _) = run(&[f.to_path_buf()], &Config::default());
    assert_eq!(stat(&events, "frames.timestamp_outliers"), 1);
    assert_eq!(stat(&events, "flows.tcp"), 1);
    let s = summary(&events);
    assert_eq!(secs(&s["event"]["end"]), 19.0);
}
