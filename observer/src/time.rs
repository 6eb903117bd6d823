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

/// Days since 1970-01-01 of a proleptic Gregorian date (the inverse of `civil_from_days`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl Timestamp {
    /// Parses the UTC form this type prints (`2026-11-28T07:30:37.123456Z`, any number of
    /// fraction digits up to 9, or none). `None` for anything else.
    pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
        let b = s.as_bytes();
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
            return None;
        }
        if b[16] != b':' || *b.last()? != b'Z' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let t = s.get(r)?;
            t.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| t.parse().ok())?
        };
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
            return None;
        }
        let frac = &s[19..s.len() - 1];
        let nanos = match frac.strip_prefix('.') {
            None if frac.is_empty() => 0,
            Some(f) if (1..=9).contains(&f.len()) && f.bytes().all(|c| c.is_ascii_digit()) => {
                f.parse::<i64>().ok()? * 10i64.pow(9 - f.len() as u32)
            }
            _ => return None,
        };
        let days = days_from_civil(y, mo as u32, d as u32);
        Some(Timestamp::from_secs_nanos(
            days * 86_400 + h * 3600 + mi * 60 + sec,
            nanos,
        ))
    }
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
    fn parses_what_it_prints() {
        for t in [
            Timestamp(0),
            Timestamp::from_secs_nanos(1_234_567_890, 123_456_000),
            Timestamp::from_secs_nanos(1_709_208_000, 0),
            Timestamp::from_secs_nanos(946_684_799, 999_999_000),
            Timestamp(-500_000_000),
        ] {
            assert_eq!(Timestamp::parse_rfc3339(&t.to_string()), Some(t));
        }
        assert_eq!(
            Timestamp::parse_rfc3339("2009-02-13T23:31:30Z"),
            Some(Timestamp::from_secs_nanos(1_234_567_890, 0))
        );
        for bad in [
            "",
            "2009-02-13 23:31:30Z",
            "2009-13-13T23:31:30Z",
            "2009-02-13T23:31:30.Z",
        ] {
            assert_eq!(Timestamp::parse_rfc3339(bad), None, "{bad}");
        }
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
