//! TLS record and handshake parsers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use observer::proto::tls;

fuzz_target!(|data: &[u8]| {
    if let Some(ch) = tls::client_hello(data) {
        std::hint::black_box(ch.max_version());
    }
    if let Some(sh) = tls::server_hello(data) {
        std::hint::black_box(sh.version());
    }
    std::hint::black_box(tls::alerts(data));
    std::hint::black_box(tls::first_message_complete(data));
    std::hint::black_box(tls::first_record_len(data));
    std::hint::black_box(tls::record(data));
    std::hint::black_box(tls::looks_like_tls(data));
    std::hint::black_box(tls::looks_like_sslv2_hello(data));
});
