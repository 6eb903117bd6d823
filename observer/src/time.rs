//! Capture time. Every packet carries the timestamp its source gave it; nothing below `main`
//! reads the wall clock, so replaying a capture always gives the same output.

use std::fmt;

/// A point in capture time: nanoseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

/// A span of capture time in nanoseconds.
pub type Nanos = i64;

/// Nanoseconds in one second.
pub const NANOS_PER_SEC: i64 = 1_000_000_000;

impl Timestamp {
    /// Builds a timestamp from whole seconds and nanoseconds.
    pub const fn from_secs_nanos(secs: i64, nanos: i64) -> Self {
        Timestamp(secs.saturating_mul(NANOS_PER_SEC).saturating_add(nanos))
    }

    /// Whole seconds since the epoch (floor).
    pub const fn secs(self) -> i64 {
        self.0.div_euclid(NANOS_PER_SEC)
    }

    /// Nanoseconds within the second.
    pub const fn subsec_nanos(self) -> i64 {
        self.0.rem_euclid(NANOS_PER_SEC)
    }

    /// Time elapsed since `earlier` (negative if `earlier` is later).
    pub const fn since(self, earlier: Timestamp) -> Nanos {
        self.0.saturating_sub(earlier.0)
    }

    /// This timestamp moved forward by `d` nanoseconds.
    pub const fn plus(self, d: Nanos) -> Timestamp {
        Timestamp(self.0.saturating_add(d))
    }

    /// RFC 3339 in UTC with microsecond precision, as ECS `@timestamp` wants:
    /// `2026-11-28T07:30:37.123456Z`.
    pub fn rfc3339_micros(self) -> String {
        self.to_string()
    }
}

/// Converts days since 1970-01-01 into a proleptic Gregorian (year, month, day).
/// The algorithm is the well-known "civil from days" computation on 400-year eras.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.secs();
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
            sod / 3600,
            (sod / 60) % 60,
            sod % 60,
            self.subsec_nanos() / 1000
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_formats_as_1970() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn known_instant_formats_exactly() {
        // 2009-02-13T23:31:30Z is the well-known Unix time 1234567890.
        let t = Timestamp::from_secs_nanos(1_234_567_890, 123_456_789);
        assert_eq!(t.to_string(), "2009-02-13T23:31:30.123456Z");
    }

    #[test]
    fn leap_day_and_year_end() {
        // 2024-02-29T12:00:00Z = 1709208000; 1999-12-31T23:59:59Z = 946684799.
        assert_eq!(
            Timestamp::from_secs_nanos(1_709_208_000, 0).to_string(),
            "2024-02-29T12:00:00.000000Z"
        );
        assert_eq!(
            Timestamp::from_secs_nanos(946_684_799, 999_999_999).to_string(),
            "1999-12-31T23:59:59.999999Z"
        );
    }

    #[test]
    fn before_epoch_is_not_garbled() {
        // 1969-12-31T23:59:59.5Z
        assert_eq!(
            Timestamp(-500_000_000).to_string(),
            "1969-12-31T23:59:59.500000Z"
        );
    }
}
