//! Capture reader tests on files built byte by byte here, so every expected value is known
//! from construction.

use super::*;
use std::io::Write as _;
use std::path::Path;

fn reader(bytes: Vec<u8>) -> Result<CaptureFile, SourceError> {
    CaptureFile::from_reader(
        Path::new("test.pcap"),
        Box::new(std::io::Cursor::new(bytes)),
    )
}

/// (ts, link, data, wire_len, interface)
type Rec = (i64, u16, Vec<u8>, u32, u32);

/// Reads every packet.
fn read_all(cf: &mut CaptureFile) -> (Vec<Rec>, Option<SourceError>) {
    let mut out = Vec::new();
    loop {
        match cf.next_packet() {
            Ok(Some(p)) => out.push((p.ts.0, p.link.0, p.data.to_vec(), p.wire_len, p.interface)),
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e)),
        }
    }
}

fn w32(v: &mut Vec<u8>, x: u32, be: bool) {
    v.extend_from_slice(&if be { x.to_be_bytes() } else { x.to_le_bytes() });
}

fn w16(v: &mut Vec<u8>, x: u16, be: bool) {
    v.extend_from_slice(&if be { x.to_be_bytes() } else { x.to_le_bytes() });
}

fn pcap(magic: u32, be: bool, link: u32, records: &[(u32, u32, &[u8], u32)]) -> Vec<u8> {
    let mut v = Vec::new();
    w32(&mut v, magic, be);
    w16(&mut v, 2, be);
    w16(&mut v, 4, be);
    w32(&mut v, 0, be);
    w32(&mut v, 0, be);
    w32(&mut v, 65535, be);
    w32(&mut v, link, be);
    for (s, frac, data, wire) in records {
        w32(&mut v, *s, be);
        w32(&mut v, *frac, be);
        w32(&mut v, data.len() as u32, be);
        w32(&mut v, *wire, be);
        v.extend_from_slice(data);
    }
    v
}

#[test]
fn pcap_little_and_big_endian_micro_and_nano() {
    let recs: &[(u32, u32, &[u8], u32)] = &[(100, 250_000, b"abcd", 60), (101, 5, b"xy", 2)];
    for be in [false, true] {
        let mut cf = reader(pcap(0xa1b2_c3d4, be, 1, recs)).unwrap();
        assert_eq!(cf.format().name(), "pcap");
        let (pkts, err) = read_all(&mut cf);
        assert!(err.is_none());
        assert_eq!(pkts.len(), 2);
        assert_eq!(pkts[0], (100_250_000_000, 1, b"abcd".to_vec(), 60, 0));
        assert_eq!(pkts[1].0, 101_000_005_000);
        let mut cf = reader(pcap(0xa1b2_3c4d, be, 101, recs)).unwrap();
        assert_eq!(cf.format().name(), "pcap-ns");
        let (pkts, _) = read_all(&mut cf);
        assert_eq!(pkts[0].0, 100_000_250_000);
        assert_eq!(pkts[0].1, 101);
        assert_eq!(pkts[1].0, 101_000_000_005);
    }
}

#[test]
fn gzip_is_read_transparently() {
    let raw = pcap(0xa1b2_c3d4, false, 1, &[(1, 0, b"hello", 5)]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    let mut cf = reader(gz.finish().unwrap()).unwrap();
    assert!(cf.is_gzip());
    let (pkts, err) = read_all(&mut cf);
    assert!(err.is_none());
    assert_eq!(pkts[0].2, b"hello");
}

fn block(v: &mut Vec<u8>, ty: u32, body: &[u8], be: bool) {
    let padded = (body.len() + 3) & !3;
    let total = 12 + padded as u32;
    w32(v, ty, be);
    w32(v, total, be);
    v.extend_from_slice(body);
    v.resize(v.len() + padded - body.len(), 0);
    w32(v, total, be);
}

fn shb(v: &mut Vec<u8>, be: bool) {
    let mut b = Vec::new();
    w32(&mut b, 0x1a2b_3c4d, be);
    w16(&mut b, 1, be);
    w16(&mut b, 0, be);
    b.extend_from_slice(&[0xff; 8]);
    block(v, 0x0a0d_0d0a, &b, be);
}

fn idb(v: &mut Vec<u8>, link: u16, tsresol: Option<u8>, be: bool) {
    let mut b = Vec::new();
    w16(&mut b, link, be);
    w16(&mut b, 0, be);
    w32(&mut b, 0, be);
    if let Some(r) = tsresol {
        w16(&mut b, 9, be);
        w16(&mut b, 1, be);
        b.extend_from_slice(&[r, 0, 0, 0]);
        w16(&mut b, 0, be);
        w16(&mut b, 0, be);
    }
    block(v, 1, &b, be);
}

fn epb(v: &mut Vec<u8>, iface: u32, ts: u64, data: &[u8], wire: u32, be: bool) {
    let mut b = Vec::new();
    w32(&mut b, iface, be);
    w32(&mut b, (ts >> 32) as u32, be);
    w32(&mut b, ts as u32, be);
    w32(&mut b, data.len() as u32, be);
    w32(&mut b, wire, be);
    b.extend_from_slice(data);
    block(v, 6, &b, be);
}

#[test]
fn pcapng_multiple_interfaces_with_their_own_link_type_and_resolution() {
    for be in [false, true] {
        let mut v = Vec::new();
        shb(&mut v, be);
        idb(&mut v, 1, None, be); // Ethernet, microseconds
        idb(&mut v, 113, Some(9), be); // Linux SLL, nanoseconds
        epb(&mut v, 0, 1_500_000, b"eth!", 64, be);
        block(&mut v, 4, &[0u8; 8], be); // name resolution block: skipped
        epb(&mut v, 1, 2_000_000_123, b"sll", 3, be);
        let mut sb = Vec::new();
        w32(&mut sb, 2, be);
        sb.extend_from_slice(b"sp");
        block(&mut v, 3, &sb, be); // simple packet block on interface 0
        let mut cf = reader(v).unwrap();
        assert_eq!(cf.format(), CaptureFormat::Pcapng);
        let (pkts, err) = read_all(&mut cf);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(pkts.len(), 3);
        assert_eq!(pkts[0], (1_500_000_000, 1, b"eth!".to_vec(), 64, 0));
        assert_eq!(pkts[1], (2_000_000_123, 113, b"sll".to_vec(), 3, 1));
        assert_eq!(pkts[2].2, b"sp");
        assert_eq!(cf.stats().skipped_blocks, 1);
    }
}

#[test]
fn pcapng_second_section_resets_interfaces_and_byte_order() {
    let mut v = Vec::new();
    shb(&mut v, false);
    idb(&mut v, 1, None, false);
    epb(&mut v, 0, 1, b"a", 1, false);
    shb(&mut v, true);
    idb(&mut v, 101, None, true);
    epb(&mut v, 0, 2, b"b", 1, true);
    let (pkts, err) = read_all(&mut reader(v).unwrap());
    assert!(err.is_none(), "{err:?}");
    assert_eq!(pkts.iter().map(|p| p.1).collect::<Vec<_>>(), vec![1, 101]);
}

#[test]
fn truncated_record_keeps_earlier_packets_and_names_the_offset() {
    let mut v = pcap(
        0xa1b2_c3d4,
        false,
        1,
        &[(1, 0, b"full", 4), (2, 0, b"cutcut", 6)],
    );
    v.truncate(v.len() - 3);
    let mut cf = reader(v).unwrap();
    let (pkts, err) = read_all(&mut cf);
    assert_eq!(pkts.len(), 1);
    let err = err.expect("truncation reported");
    assert!(err.is_partial());
    // header 24 + first record 16 + 4 = 44: the second record starts there.
    assert_eq!(
        err.to_string(),
        "test.pcap: truncated at byte offset 44: pcap record needs 22 bytes, only 19 left"
    );
}

#[test]
fn impossible_record_length_is_damage_not_a_huge_allocation() {
    let mut v = pcap(0xa1b2_c3d4, false, 1, &[(1, 0, b"ok", 2)]);
    // A record header claiming 2 GB.
    for x in [3u32, 0, 0x8000_0000, 0x8000_0000] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    let (pkts, err) = read_all(&mut reader(v).unwrap());
    assert_eq!(pkts.len(), 1);
    let msg = err.expect("damage reported").to_string();
    assert!(msg.contains("damaged at byte offset 42"), "{msg}");
}

#[test]
fn empty_short_and_foreign_files_are_named_errors() {
    assert!(matches!(reader(vec![]), Err(SourceError::Empty { .. })));
    let e = reader(b"<!DOCTYPE html>".to_vec()).unwrap_err();
    assert!(matches!(e, SourceError::NotCapture { .. }));
    assert!(e.to_string().contains("3c 21 44 4f"), "{e}");
    assert!(matches!(
        reader(vec![0xd4]),
        Err(SourceError::NotCapture { .. })
    ));
    // A pcap magic with a cut global header.
    let e = reader(vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0]).unwrap_err();
    assert!(matches!(e, SourceError::Truncated { .. }), "{e}");
}

#[test]
fn header_only_capture_is_valid_and_empty() {
    let v = pcap(0xa1b2_c3d4, false, 1, &[]);
    let (pkts, err) = read_all(&mut reader(v).unwrap());
    assert!(pkts.is_empty() && err.is_none());
}

#[test]
fn large_records_beyond_the_read_chunk_are_read_whole() {
    let big = vec![7u8; 200_000];
    let recs: Vec<(u32, u32, &[u8], u32)> = (0..30).map(|i| (i, 0, &big[..], 200_000)).collect();
    let v = pcap(0xa1b2_c3d4, false, 1, &recs);
    let (pkts, err) = read_all(&mut reader(v).unwrap());
    assert!(err.is_none());
    assert_eq!(pkts.len(), 30);
    assert!(pkts.iter().all(|p| p.2.len() == 200_000));
}

#[test]
fn cut_gzip_keeps_what_was_decompressed_and_reports_truncation() {
    let recs: Vec<(u32, u32, &[u8], u32)> =
        (0..200).map(|i| (i, 0, &b"0123456789"[..], 10)).collect();
    let raw = pcap(0xa1b2_c3d4, false, 1, &recs);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    let mut z = gz.finish().unwrap();
    z.truncate(z.len() - 12); // lose the trailer and the last deflate bytes
    let mut cf = reader(z).unwrap();
    let (pkts, err) = read_all(&mut cf);
    let err = err.expect("a cut gzip is reported");
    assert!(matches!(err, SourceError::Truncated { .. }), "{err}");
    assert!(
        !pkts.is_empty() && pkts.len() < 200,
        "{} packets",
        pkts.len()
    );
}

/// Reads `bytes` both ways — on this thread, and through the read-ahead thread with its real
/// chunk sizes — and checks that the frames and the error (its message, offset included) are
/// the same.
fn same_with_read_ahead(bytes: &[u8]) -> (usize, Option<String>) {
    same_with_chunks(bytes, super::ahead::CHUNK, super::ahead::PREFIX)
}

/// [`same_with_read_ahead`] with chunks of `chunk` bytes and `prefix` bytes of room.
fn same_with_chunks(bytes: &[u8], chunk: usize, prefix: usize) -> (usize, Option<String>) {
    let path = Path::new("test.pcap");
    let direct = reader(bytes.to_vec()).map(|mut cf| read_all(&mut cf));
    let cursor = Box::new(std::io::Cursor::new(bytes.to_vec()));
    let ahead =
        CaptureFile::from_reader_ahead(path, cursor, chunk, prefix).map(|mut cf| read_all(&mut cf));
    match (direct, ahead) {
        (Ok((a, ea)), Ok((b, eb))) => {
            assert_eq!(a.len(), b.len(), "frame count");
            assert!(a == b, "frames differ");
            let (ea, eb) = (ea.map(|e| e.to_string()), eb.map(|e| e.to_string()));
            assert_eq!(ea, eb);
            (a.len(), ea)
        }
        (Err(a), Err(b)) => {
            assert_eq!(a.to_string(), b.to_string());
            (0, Some(a.to_string()))
        }
        (a, b) => panic!(
            "one way failed to open: {:?} / {:?}",
            a.err().map(|e| e.to_string()),
            b.err().map(|e| e.to_string())
        ),
    }
}

/// Records of every size from 0 bytes to several read-ahead chunks (so records straddle chunk
/// boundaries, some longer than the room kept in front of a chunk, some longer than a chunk),
/// with contents that differ per record.
fn varied_capture(snaplen: u32, records: u32) -> Vec<u8> {
    let mut seed = 0x2545_f491_u32;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    let mut bodies = Vec::new();
    for i in 0..records {
        let len = match i % 1000 {
            999 => 1_500_000,
            500 => 600_000,
            _ => (next() % 2_000) as usize,
        };
        let body: Vec<u8> = (0..len).map(|j| (j as u32 ^ i) as u8).collect();
        bodies.push(body);
    }
    let recs: Vec<(u32, u32, &[u8], u32)> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| (i as u32, (i * 7) as u32 % 1_000_000, &b[..], b.len() as u32))
        .collect();
    let mut v = pcap(0xa1b2_c3d4, false, 1, &recs);
    v[16..20].copy_from_slice(&snaplen.to_le_bytes());
    v
}

#[test]
fn read_ahead_gives_the_same_frames_and_errors() {
    let plain = varied_capture(2_000_000, 6_000);
    assert!(plain.len() > 8 * super::ahead::CHUNK);
    assert_eq!(same_with_read_ahead(&plain), (6_000, None));

    // Cut inside a record, and inside a record header.
    let (n, e) = same_with_read_ahead(&plain[..plain.len() * 2 / 3]);
    assert!(n > 1000 && e.is_some_and(|e| e.contains("truncated at byte offset")));
    same_with_read_ahead(&plain[..plain.len() - 1]);

    // Damage: a record longer than the snap length allows, a third of the way in.
    let small_snap = varied_capture(1_000_000, 6_000);
    let (n, e) = same_with_read_ahead(&small_snap);
    assert_eq!(n, 999, "the first 1.5 MB record is over the limit");
    assert!(e.is_some_and(|e| e.contains("damaged")));

    // gzip: whole, cut, and corrupt in the middle of the deflate stream.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    let z = gz.finish().unwrap();
    assert_eq!(same_with_read_ahead(&z), (6_000, None));
    let (n, e) = same_with_read_ahead(&z[..z.len() / 2]);
    assert!(n > 0 && n < 6_000 && e.is_some());
    let mut bad = z.clone();
    for b in &mut bad[z.len() / 2..z.len() / 2 + 64] {
        *b ^= 0x5a;
    }
    let (n, e) = same_with_read_ahead(&bad);
    assert!(n < 6_000 && e.is_some(), "{n} {e:?}");

    // pcapng, both byte orders.
    for be in [false, true] {
        let mut v = Vec::new();
        shb(&mut v, be);
        idb(&mut v, 1, None, be);
        for i in 0..40_000u32 {
            let body = vec![i as u8; (i % 1500) as usize];
            epb(&mut v, 0, u64::from(i) * 1000, &body, body.len() as u32, be);
        }
        assert_eq!(same_with_read_ahead(&v), (40_000, None));
    }
}

#[test]
fn read_ahead_with_tiny_chunks_crosses_every_kind_of_boundary() {
    // Chunks of a few bytes put chunk boundaries inside file headers, record headers and
    // frames; no room in front forces the growing path every time, some room only sometimes.
    let v = varied_capture(65_535, 300);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&v).unwrap();
    let z = gz.finish().unwrap();
    for (chunk, prefix) in [(1, 0), (7, 0), (61, 16), (1000, 300), (4096, 4096)] {
        assert_eq!(same_with_chunks(&v, chunk, prefix), (300, None));
        assert_eq!(same_with_chunks(&z, chunk, prefix), (300, None));
        let (n, e) = same_with_chunks(&v[..v.len() / 2], chunk, prefix);
        assert!(n > 0 && n < 300 && e.is_some());
        same_with_chunks(&v[..3], chunk, prefix);
        same_with_chunks(&[], chunk, prefix);
    }
}

#[test]
fn read_ahead_fuzz_regressions_read_the_same_both_ways() {
    // Inputs on which the differential fuzz target once found the two ways to differ; the
    // first byte picks the chunk size and room as `fuzz/fuzz_targets/read_ahead.rs` does.
    let inputs: [&[u8]; 1] = [include_bytes!(
        "../../../fuzz/regressions/read_ahead-gzip-error-granularity.bin"
    )];
    for data in inputs {
        let (&sizes, bytes) = data.split_first().unwrap();
        let chunk = usize::from(sizes & 0x3f) + 1;
        let room = usize::from(sizes >> 3) & 0x1f;
        same_with_chunks(bytes, chunk, room);
        same_with_read_ahead(bytes);
    }
}

/// A file of its own in the temporary directory, removed when dropped.
struct TempCapture(std::path::PathBuf);

/// Tests run side by side in one process and may name their captures alike ("cut" was two
/// tests' name, and one test read the file while the other rewrote it): each file is numbered.
static TEMP_CAPTURES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl TempCapture {
    fn new(name: &str, bytes: &[u8]) -> TempCapture {
        let n = TEMP_CAPTURES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("observer-{}-{n}-{name}", std::process::id()));
        std::fs::write(&p, bytes).unwrap();
        TempCapture(p)
    }
}

impl Drop for TempCapture {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Reads `bytes` from a file (mapped) and as a stream; both must give the same frames and
/// the same error, but for the path it names.
fn same_mapped_and_streamed(name: &str, bytes: &[u8], mapped: bool) -> (usize, Option<String>) {
    let file = TempCapture::new(name, bytes);
    let path = file.0.display().to_string();
    let streamed = reader(bytes.to_vec()).map(|mut cf| read_all(&mut cf));
    let opened = CaptureFile::open(&file.0).map(|mut cf| {
        assert_eq!(cf.is_mapped(), mapped, "{name}: read in place");
        read_all(&mut cf)
    });
    let named = |e: SourceError| e.to_string().replace(&path, "test.pcap");
    match (streamed, opened) {
        (Ok((a, ea)), Ok((b, eb))) => {
            assert_eq!(a.len(), b.len(), "{name}: frame count");
            assert!(a == b, "{name}: frames differ");
            let (ea, eb) = (ea.map(|e| e.to_string()), eb.map(named));
            assert_eq!(ea, eb, "{name}");
            (a.len(), ea)
        }
        (Err(a), Err(b)) => {
            assert_eq!(a.to_string(), named(b), "{name}");
            (0, Some(a.to_string()))
        }
        (a, b) => panic!(
            "{name}: one way failed to open: {:?} / {:?}",
            a.err().map(|e| e.to_string()),
            b.err().map(named)
        ),
    }
}

#[test]
fn a_mapped_file_gives_the_same_frames_and_errors_as_a_stream() {
    let plain = varied_capture(2_000_000, 3_000);
    assert_eq!(
        same_mapped_and_streamed("plain", &plain, true),
        (3_000, None)
    );
    // Cut in a record, cut in a record header, a record claiming too much.
    let mut cut = plain.clone();
    cut.truncate(plain.len() - 100);
    let (n, e) = same_mapped_and_streamed("cut", &cut, true);
    assert!(n == 2_999 && e.is_some_and(|e| e.contains("truncated")));
    let mut damaged = pcap(0xa1b2_c3d4, false, 1, &[(1, 0, b"ok", 2)]);
    damaged.extend_from_slice(&[3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 0, 0x80]);
    let (n, e) = same_mapped_and_streamed("damaged", &damaged, true);
    assert!(n == 1 && e.is_some_and(|e| e.contains("damaged at byte offset 42")));
    let mut header_cut = plain[..40].to_vec();
    header_cut.truncate(30);
    assert_eq!(
        same_mapped_and_streamed("header-cut", &header_cut, true).0,
        0
    );
    // pcapng, and a file that is not a capture.
    let mut ng = Vec::new();
    shb(&mut ng, false);
    idb(&mut ng, 1, None, false);
    epb(&mut ng, 0, 5, b"frame", 5, false);
    assert_eq!(same_mapped_and_streamed("ng", &ng, true), (1, None));
    assert!(
        same_mapped_and_streamed("html", b"<!DOCTYPE html>", true)
            .1
            .is_some_and(|e| e.contains("not a pcap"))
    );
    // gzip is inflated from a stream, not read in place.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    assert_eq!(
        same_mapped_and_streamed("gz", &gz.finish().unwrap(), false),
        (3_000, None)
    );
}

/// `n` records of 1,000 bytes, each filled with its own index.
fn numbered_records(n: u32) -> Vec<u8> {
    let bodies: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; 1_000]).collect();
    let recs: Vec<(u32, u32, &[u8], u32)> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| (i as u32, 0, &b[..], 1_000))
        .collect();
    pcap(0xa1b2_c3d4, false, 1, &recs)
}

/// Appends records 50 to 79 of [`numbered_records`] to the 50 of `path`, the last one cut
/// 10 bytes short: a capture still being written.
fn append_cut_records(path: &Path) {
    let more = numbered_records(80);
    let mut tail = more[24 + 50 * 1_016..].to_vec();
    tail.truncate(tail.len() - 10);
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(&tail)
        .unwrap();
}

#[test]
fn a_file_that_shrinks_while_mapped_ends_with_an_error_not_a_crash() {
    // 24 + 10,000 × 1,016 bytes: about 10 MB, cut to its first 1 MB after 100 records.
    let file = TempCapture::new("shrinks", &numbered_records(10_000));
    let mut cf = CaptureFile::open(&file.0).unwrap();
    assert!(cf.is_mapped());
    for i in 0..100u32 {
        let p = cf.next_packet().unwrap().unwrap();
        assert_eq!(p.data[0], i as u8);
    }
    let keep = 1_000_000u64;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file.0)
        .unwrap()
        .set_len(keep)
        .unwrap();
    let (rest, err) = read_all(&mut cf);
    // Every record wholly inside what is left is read as it was; the one the cut went
    // through may come out with zeros for its lost bytes; nothing after it does.
    let whole = ((keep - 24) / 1_016) as usize;
    assert!(
        rest.len() >= whole - 100 && rest.len() <= whole - 100 + 1,
        "{}",
        rest.len()
    );
    for (k, r) in rest.iter().take(whole - 100).enumerate() {
        assert!(
            r.2.iter().all(|&b| b == (k + 100) as u8),
            "record {}",
            k + 100
        );
    }
    let err = err.expect("the shrinking is reported");
    assert!(err.is_partial());
    let msg = err.to_string();
    assert!(
        msg.contains("shrank to 1000000 bytes while being read"),
        "{msg}"
    );
}

#[test]
fn a_file_that_grows_after_it_was_mapped_is_read_to_its_new_end() {
    let file = TempCapture::new("grows", &numbered_records(50));
    let mut cf = CaptureFile::open(&file.0).unwrap();
    assert!(cf.is_mapped());
    for _ in 0..10 {
        cf.next_packet().unwrap().unwrap();
    }
    // 30 more records, the last one cut: a capture still being written.
    append_cut_records(&file.0);
    let (rest, err) = read_all(&mut cf);
    assert_eq!(rest.len(), 40 + 29);
    for (k, r) in rest.iter().enumerate() {
        assert!(
            r.2.iter().all(|&b| b == (k + 10) as u8),
            "record {}",
            k + 10
        );
    }
    let msg = err.expect("the cut record").to_string();
    assert!(msg.contains("truncated at byte offset"), "{msg}");
}

#[test]
fn a_pcapng_file_that_shrinks_while_mapped_ends_with_the_same_error() {
    let mut ng = Vec::new();
    shb(&mut ng, false);
    idb(&mut ng, 1, None, false);
    for i in 0..10_000u64 {
        epb(&mut ng, 0, i, &[i as u8; 1_000], 1_000, false);
    }
    let file = TempCapture::new("ng-shrinks", &ng);
    let mut cf = CaptureFile::open(&file.0).unwrap();
    assert!(cf.is_mapped());
    cf.next_packet().unwrap().unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file.0)
        .unwrap()
        .set_len(1_000_000)
        .unwrap();
    let (rest, err) = read_all(&mut cf);
    // 1,032 bytes a block after 28 + 20 bytes of headers: 968 blocks end before the cut.
    assert!(rest.len() == 967 || rest.len() == 968, "{}", rest.len());
    let msg = err.expect("the shrinking is reported").to_string();
    assert!(
        msg.contains("shrank to 1000000 bytes while being read"),
        "{msg}"
    );
}

/// What [`handoff::read_frames`] hands out: the frames, the progress points (frames, offset)
/// and how the reading ended (its error, the frames it counts and its offset).
type Handed = (Vec<Rec>, Vec<(u64, u64)>, Option<String>, (u64, u64));

fn read_handed(cf: &mut CaptureFile, second_thread: bool) -> Handed {
    let (mut frames, mut points) = (Vec::new(), Vec::new());
    let ended = handoff::read_frames::<()>(cf, second_thread, |item| {
        match item {
            handoff::Item::Frame(p, decoded) => {
                // A frame the reader decoded is the frame decoded here.
                if let Some(d) = decoded {
                    assert_eq!(format!("{d:?}"), format!("{:?}", crate::decode::decode(p)));
                }
                frames.push((p.ts.0, p.link.0, p.data.to_vec(), p.wire_len, p.interface));
            }
            handoff::Item::Progress { frames, offset } => points.push((frames, offset)),
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(ended.frames, frames.len() as u64);
    (
        frames,
        points,
        ended.result.err().map(|e| e.to_string()),
        (ended.frames, ended.offset),
    )
}

/// Reads `bytes` from a file both ways ([`handoff::read_frames`] on one thread and on two);
/// both must hand out the same frames, progress points and error.
fn same_handed(name: &str, bytes: &[u8]) -> Handed {
    let file = TempCapture::new(name, bytes);
    let mut here = CaptureFile::open(&file.0).unwrap();
    let mut there = CaptureFile::open(&file.0).unwrap();
    assert!(there.is_mapped(), "{name}");
    let a = read_handed(&mut here, false);
    let b = read_handed(&mut there, true);
    assert_eq!(a.0.len(), b.0.len(), "{name}: frame count");
    assert!(a.0 == b.0, "{name}: frames differ");
    assert_eq!((&a.1, &a.2, &a.3), (&b.1, &b.2, &b.3), "{name}");
    b
}

#[test]
fn frames_walked_on_a_second_thread_are_the_same_frames_progress_and_errors() {
    // 140,000 records of 20 bytes: progress after frames 65,536 and 131,072, each at the
    // offset after its record (24 + k × 36 bytes).
    let bodies: Vec<[u8; 20]> = (0..140_000u32)
        .map(|i| {
            let mut b = [0u8; 20];
            b[..4].copy_from_slice(&i.to_le_bytes());
            b
        })
        .collect();
    let recs: Vec<(u32, u32, &[u8], u32)> = bodies.iter().map(|b| (1, 0, &b[..], 20)).collect();
    let small = pcap(0xa1b2_c3d4, false, 1, &recs);
    let (frames, points, err, _) = same_handed("small", &small);
    assert_eq!(frames.len(), 140_000);
    assert!(
        frames
            .iter()
            .enumerate()
            .all(|(i, f)| f.2[..4] == (i as u32).to_le_bytes())
    );
    assert_eq!(
        points,
        [(65_536, 24 + 65_536 * 36), (131_072, 24 + 131_072 * 36)]
    );
    assert_eq!(err, None);
    // Records of up to 1.5 MB, cut in a record, a record claiming too much.
    let plain = varied_capture(2_000_000, 3_000);
    assert_eq!(same_handed("varied", &plain).0.len(), 3_000);
    let (frames, _, err, _) = same_handed("cut", &plain[..plain.len() - 100]);
    assert!(frames.len() == 2_999 && err.is_some_and(|e| e.contains("truncated")));
    let mut damaged = pcap(0xa1b2_c3d4, false, 1, &[(1, 0, b"ok", 2)]);
    damaged.extend_from_slice(&[3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 0, 0x80]);
    let (frames, _, err, _) = same_handed("damaged", &damaged);
    assert!(frames.len() == 1 && err.is_some_and(|e| e.contains("damaged at byte offset 42")));
    // pcapng: two interfaces with their own link types.
    let mut ng = Vec::new();
    shb(&mut ng, false);
    idb(&mut ng, 1, None, false);
    idb(&mut ng, 101, None, false);
    for i in 0..3_000u32 {
        epb(&mut ng, i % 2, u64::from(i), &[i as u8; 60], 60, false);
    }
    let (frames, _, err, _) = same_handed("ng", &ng);
    assert_eq!(frames.len(), 3_000);
    assert!(
        frames
            .iter()
            .enumerate()
            .all(|(i, f)| f.4 == i as u32 % 2 && f.1 == [1, 101][i % 2] && f.2 == [i as u8; 60])
    );
    assert_eq!(err, None);
}

#[test]
fn the_second_thread_stops_when_the_analysis_stops() {
    // 10 MB; the analysis gives up after 100 frames (its sink failed): the reading stops
    // with it instead of walking on, and the call returns.
    let file = TempCapture::new("stops", &numbered_records(10_000));
    let mut cf = CaptureFile::open(&file.0).unwrap();
    let mut seen = 0;
    let r = handoff::read_frames(&mut cf, true, |item| {
        if let handoff::Item::Frame(p, _) = item {
            assert_eq!(p.data[0], seen as u8);
            seen += 1;
            if seen == 100 {
                return Err("sink failed");
            }
        }
        Ok(())
    });
    assert_eq!(r.err(), Some("sink failed"));
    assert_eq!(seen, 100);
    // Handed out ahead of the analysis: at most 6 batches of 512 frames.
    assert!(
        cf.stats().packets <= 100 + 6 * 512,
        "{}",
        cf.stats().packets
    );
}

#[test]
fn a_file_that_grows_while_walked_on_a_second_thread_is_read_to_its_new_end() {
    let file = TempCapture::new("grows-handed", &numbered_records(50));
    let mut cf = CaptureFile::open(&file.0).unwrap();
    assert!(cf.is_mapped());
    // 30 more records, the last one cut, written after the file was mapped: they are read
    // with read(2) and handed over as copies.
    append_cut_records(&file.0);
    let (frames, _, err, _) = read_handed(&mut cf, true);
    assert_eq!(frames.len(), 79);
    for (k, r) in frames.iter().enumerate() {
        assert!(
            r.2.len() == 1_000 && r.2.iter().all(|&b| b == k as u8),
            "record {k}"
        );
    }
    let msg = err.expect("the cut record");
    assert!(msg.contains("truncated at byte offset"), "{msg}");
}

#[test]
fn a_file_cut_while_walked_on_a_second_thread_hands_out_no_lost_bytes() {
    // 10 MB cut to its first 1 MB once the analysis has seen 100 frames; by then the reader
    // may have handed out frames past the cut, whose bytes are gone.
    let file = TempCapture::new("shrinks-handed", &numbered_records(10_000));
    let mut cf = CaptureFile::open(&file.0).unwrap();
    let keep = 1_000_000u64;
    let mut seen: Vec<u8> = Vec::new();
    let r = handoff::read_frames::<()>(&mut cf, true, |item| {
        if let handoff::Item::Frame(p, _) = item {
            if seen.len() == 100 {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&file.0)
                    .unwrap()
                    .set_len(keep)
                    .unwrap();
            }
            // A record either whole, or the one the cut went through.
            assert!(
                p.data.iter().all(|&b| b == seen.len() as u8) || {
                    let whole = ((keep - 24) / 1_016) as usize;
                    seen.len() == whole
                }
            );
            seen.push(p.data[0]);
        }
        Ok(())
    })
    .unwrap();
    // As on one thread: every record whose header is whole is analyzed (984 whole ones and
    // the one the cut went through), and the input ends at the record after them, at byte
    // 24 + 985 × 1,016, where the reading counts 985 frames (not the ones read ahead).
    let whole = ((keep - 24) / 1_016) as usize;
    assert_eq!(seen.len(), whole + 1);
    assert_eq!((r.frames, r.offset), (985, 24 + 985 * 1_016));
    let msg = r.result.expect_err("the cut is reported").to_string();
    assert!(
        msg.contains("damaged at byte offset 1000784")
            && msg.contains("shrank to 1000000 bytes while being read"),
        "{msg}"
    );
}

#[test]
fn a_file_cut_before_it_is_walked_ends_the_same_on_two_threads() {
    // Mapped, then cut to 1 MB before any record is read: one thread and two must analyze
    // the same frames and end with the same error, at the same offset. The last page reads
    // zeros past the new end without a fault: the records there are found by their headers.
    for keep in [1_000_000u64, 1_000_784, 1_000_790, 1_003_000] {
        let file = TempCapture::new("cut-before", &numbered_records(10_000));
        let mut here = CaptureFile::open(&file.0).unwrap();
        let mut there = CaptureFile::open(&file.0).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file.0)
            .unwrap()
            .set_len(keep)
            .unwrap();
        let a = read_handed(&mut here, false);
        let b = read_handed(&mut there, true);
        assert_eq!(a.0.len(), b.0.len(), "cut at {keep}");
        assert!(a.0 == b.0, "cut at {keep}: frames differ");
        assert_eq!((&a.2, &a.3), (&b.2, &b.3), "cut at {keep}");
        assert!(b.2.is_some_and(|e| e.contains("shrank")), "cut at {keep}");
    }
}

/// Resident bytes of the mapping that holds `addr`, from `/proc/self/smaps` (`None` where there
/// is no such file).
fn resident_kib_of_mapping(addr: usize) -> Option<u64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let mut inside = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((lo, hi)) = first.split_once('-') {
            if let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
            {
                inside = (lo..hi).contains(&addr);
                continue;
            }
        }
        if inside {
            if let Some(kib) = line.strip_prefix("Rss:") {
                return kib.trim().trim_end_matches("kB").trim().parse().ok();
            }
        }
    }
    None
}

#[test]
fn records_longer_than_what_is_mapped_ahead_keep_the_mapping_small() {
    // 24 records of 2 MiB + 100 bytes each (snaplen 16 MiB): every record takes the reader past
    // the MiB the reader maps ahead of itself. What it has passed must not stay mapped: the
    // mapping holds a record, the step by which pages are given back, and what is mapped ahead.
    const N: u32 = 24;
    const LEN: usize = (2 << 20) + 100;
    let bodies: Vec<Vec<u8>> = (0..N).map(|i| vec![i as u8; LEN]).collect();
    let recs: Vec<(u32, u32, &[u8], u32)> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| (i as u32, 0, &b[..], LEN as u32))
        .collect();
    let mut bytes = pcap(0xa1b2_c3d4, false, 1, &recs);
    bytes[16..20].copy_from_slice(&(16u32 << 20).to_le_bytes());
    drop(bodies);
    let file = TempCapture::new("long-records", &bytes);
    drop(bytes);
    let mut cf = CaptureFile::open(&file.0).unwrap();
    assert!(cf.is_mapped());
    let mut most = 0;
    let mut n = 0;
    while let Some(p) = cf.next_packet().unwrap() {
        assert_eq!((p.data.len(), p.data[LEN - 1]), (LEN, n as u8));
        n += 1;
        let Some(kib) = resident_kib_of_mapping(p.data.as_ptr() as usize) else {
            return;
        };
        most = most.max(kib);
    }
    assert_eq!(n, N);
    // A record (2 MiB), the release step (2 MiB), a page-rounded MiB ahead, and slack: 8 MiB.
    // Without the fix the mapping grew a MiB a record: 24 MiB and more by the end.
    assert!(most <= 8 << 10, "the mapping held {most} KiB");
}
