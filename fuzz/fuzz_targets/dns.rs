//! DNS message parser and answer-address extraction.
#![no_main]

use libfuzzer_sys::fuzz_target;
use observer::proto::dns;

fuzz_target!(|data: &[u8]| {
    std::hint::black_box(dns::parse(data));
    std::hint::black_box(dns::answer_addresses(data));
});
