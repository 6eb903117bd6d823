//! Application-protocol parsers: pure functions over byte slices, each with its own tests.
//! They never allocate on the parse path and never panic on any input.

pub mod dns;
pub mod http1;
pub mod tls;

/// `b` as text of at most `max` bytes: the first `max` bytes, invalid UTF-8 replaced, then cut
/// back to a character boundary, since each replacement character takes 3 bytes where the
/// invalid byte took 1. For fields kept from hostile input (a server name, a Host, a path).
pub fn lossy_capped(b: &[u8], max: usize) -> String {
    let mut s = String::from_utf8_lossy(&b[..b.len().min(max)]).into_owned();
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::lossy_capped;

    #[test]
    fn lossy_capped_stays_within_its_limit_at_a_character_boundary() {
        // (input, limit, expected): built by hand; U+FFFD is 3 bytes.
        let cases: [(&[u8], usize, &str); 6] = [
            (b"example.com", 255, "example.com"),
            (b"example.com", 7, "example"),
            (b"ab\xffcd", 5, "ab\u{fffd}"),
            (b"ab\xff", 4, "ab"),
            (b"\xff\xff", 6, "\u{fffd}\u{fffd}"),
            ("h\u{e9}llo".as_bytes(), 2, "h"),
        ];
        for (input, max, want) in cases {
            let got = lossy_capped(input, max);
            assert_eq!(got, want, "{input:?} capped at {max}");
            assert!(got.len() <= max);
        }
    }
}
