//! HTTP/1.x head parsers and the chunked transfer-coding decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use observer::proto::http1::{self, Chunked, Parse};

fuzz_target!(|data: &[u8]| {
    if let Parse::Complete(req) = http1::parse_request(data) {
        assert!(req.len <= data.len());
        std::hint::black_box(req.framing());
    }
    if let Parse::Complete(resp) = http1::parse_response(data) {
        assert!(resp.len <= data.len());
        std::hint::black_box(resp.framing(b"GET"));
        std::hint::black_box(resp.framing(b"HEAD"));
    }
    std::hint::black_box(http1::looks_like_request(data));
    std::hint::black_box(http1::looks_like_response(data));

    // Whole input at once.
    let mut whole = Chunked::default();
    let mut payload = 0usize;
    let progress = whole.feed(data, |d| payload += d.len());
    assert!(progress.consumed <= data.len());
    assert!(payload <= progress.consumed);

    // The same input split in two: the decoder is incremental and must not panic at any split.
    if !data.is_empty() {
        let split = usize::from(data[0]) % data.len();
        let mut parts = Chunked::default();
        let first = parts.feed(&data[..split], |_| {});
        assert!(first.consumed <= split);
        if !first.done && !first.error {
            let rest = &data[first.consumed..];
            let second = parts.feed(rest, |_| {});
            assert!(second.consumed <= rest.len());
        }
    }
});
