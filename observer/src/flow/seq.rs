//! TCP sequence numbers: 32-bit values compared with wrapping (RFC 1982 serial) arithmetic.

use std::cmp::Ordering;

/// A TCP sequence or acknowledgment number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SeqNum(pub u32);

impl SeqNum {
    /// `self + n`, wrapping.
    pub fn plus(self, n: u32) -> SeqNum {
        SeqNum(self.0.wrapping_add(n))
    }

    /// Signed distance from `other` to `self` (positive if `self` is after `other`).
    pub fn diff(self, other: SeqNum) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }

    /// The later of two sequence numbers.
    pub fn max(self, other: SeqNum) -> SeqNum {
        if self.diff(other) >= 0 { self } else { other }
    }
}

impl PartialOrd for SeqNum {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.diff(*other).cmp(&0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparison_wraps_around_zero() {
        let before = SeqNum(0xffff_fff0);
        let after = before.plus(0x20);
        assert_eq!(after, SeqNum(0x10));
        assert!(after > before);
        assert!(before < after);
        assert_eq!(after.diff(before), 0x20);
        assert_eq!(before.diff(after), -0x20);
        assert_eq!(before.max(after), after);
    }

    #[test]
    fn equal_values_compare_equal() {
        assert_eq!(
            SeqNum(5).partial_cmp(&SeqNum(5)),
            Some(std::cmp::Ordering::Equal)
        );
    }
}
