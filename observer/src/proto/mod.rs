//! Application-protocol parsers: pure functions over byte slices, each with its own tests.
//! They never allocate on the parse path and never panic on any input.

pub mod dns;
pub mod http1;
pub mod tls;

/// Text of at most `N` bytes held in place (no allocation): a DNS name, an HTTP method.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct InlineText<const N: usize> {
    len: u16,
    bytes: [u8; N],
}

impl<const N: usize> InlineText<N> {
    /// No text.
    pub const EMPTY: Self = InlineText {
        len: 0,
        bytes: [0; N],
    };

    /// `s`, cut at `N` bytes (callers pass text that fits).
    pub fn new(s: &str) -> Self {
        let mut t = Self::EMPTY;
        let n = s.len().min(N);
        t.bytes[..n].copy_from_slice(&s.as_bytes()[..n]);
        t.len = n as u16;
        t
    }

    /// Appends a byte of ASCII; `None` when the text would grow past `N` bytes.
    pub fn push(&mut self, c: u8) -> Option<()> {
        *self.bytes.get_mut(usize::from(self.len))? = c;
        self.len += 1;
        Some(())
    }

    /// Empties it.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only whole UTF-8 text or ASCII is ever put in.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl<const N: usize> Default for InlineText<N> {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl<const N: usize> std::ops::Deref for InlineText<N> {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> std::hash::Hash for InlineText<N> {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.as_str().hash(h);
    }
}

impl<const N: usize> std::fmt::Debug for InlineText<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> std::fmt::Display for InlineText<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> PartialEq<&str> for InlineText<N> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

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
