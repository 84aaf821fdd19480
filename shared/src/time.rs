//! Wall-clock timestamps as the tools show them: RFC 3339 in UTC.
//!
//! A [`Timestamp`] is nanoseconds since the Unix epoch. It serializes as an
//! RFC 3339 string with millisecond precision (`2026-11-23T20:00:30.123Z`)
//! and parses any RFC 3339 time with a `Z` or `±HH:MM` offset.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// A point in time, in nanoseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }

    /// Nanoseconds since the epoch.
    pub fn as_nanos(self) -> i64 {
        self.0
    }

    /// Whole seconds since the epoch (rounded down).
    pub fn as_secs(self) -> i64 {
        self.0.div_euclid(1_000_000_000)
    }

    /// This time minus `d` (saturating).
    pub fn minus(self, d: Duration) -> Self {
        Timestamp(
            self.0
                .saturating_sub(d.as_nanos().min(i64::MAX as u128) as i64),
        )
    }

    /// RFC 3339 to the second: `2026-11-23T20:00:30Z`.
    pub fn to_rfc3339_secs(self) -> String {
        let (date, h, m, s, _) = self.parts();
        format!("{date}T{h:02}:{m:02}:{s:02}Z")
    }

    /// RFC 3339 to the millisecond: `2026-11-23T20:00:30.123Z`.
    pub fn to_rfc3339_millis(self) -> String {
        String::from_utf8(self.millis_digits().to_vec()).expect("ASCII digits")
    }

    /// [`Timestamp::to_rfc3339_millis`] written into 24 bytes without the
    /// formatting machinery (a listing writes three per session). Every
    /// timestamp's year has four digits: nanoseconds in an `i64` reach
    /// from 1677 to 2262.
    fn millis_digits(self) -> [u8; 24] {
        let secs = self.as_secs();
        let millis = self.0.rem_euclid(1_000_000_000) / 1_000_000;
        let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
        let rem = secs.rem_euclid(86_400);
        let mut buf = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut v: i64| {
            for i in (at..at + width).rev() {
                buf[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, y);
        put(5, 2, mo);
        put(8, 2, d);
        put(11, 2, rem / 3600);
        put(14, 2, rem % 3600 / 60);
        put(17, 2, rem % 60);
        put(20, 3, millis);
        buf
    }

    fn parts(self) -> (String, i64, i64, i64, i64) {
        let secs = self.as_secs();
        let nanos = self.0.rem_euclid(1_000_000_000);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (y, mo, d) = civil_from_days(days);
        (
            format!("{y:04}-{mo:02}-{d:02}"),
            rem / 3600,
            rem % 3600 / 60,
            rem % 60,
            nanos,
        )
    }

    /// Parses an RFC 3339 time such as `2026-11-23T20:00:30Z` or
    /// `2026-11-23T21:00:30.5+01:00` (a space may stand for the `T`).
    pub fn parse_rfc3339(s: &str) -> Result<Self> {
        let err = || Error::Parse {
            what: "time",
            input: s.to_string(),
            hint: "expected RFC 3339, like 2026-11-23T20:00:30Z",
        };
        let b = s.as_bytes();
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
            return Err(err());
        }
        if b[13] != b':' || b[16] != b':' {
            return Err(err());
        }
        let num = |r: std::ops::Range<usize>| -> Result<i64> {
            let part = s.get(r).ok_or_else(err)?;
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return Err(err());
            }
            part.parse().map_err(|_| err())
        };
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&mo)
            || !(1..=days_in_month(y, mo)).contains(&d)
            || h > 23
            || mi > 59
            || sec > 60
        {
            return Err(err());
        }
        let mut i = 19;
        let mut nanos = 0i64;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i == start {
                return Err(err());
            }
            let digits = &s[start..i.min(start + 9)];
            nanos = digits.parse::<i64>().map_err(|_| err())? * 10i64.pow(9 - digits.len() as u32);
        }
        let offset = match &s[i..] {
            "Z" | "z" => 0,
            tz if tz.len() == 6
                && matches!(tz.as_bytes()[0], b'+' | b'-')
                && tz.as_bytes()[3] == b':' =>
            {
                let oh = num(i + 1..i + 3)?;
                let om = num(i + 4..i + 6)?;
                // RFC 3339's time-numoffset: hours 00-23, minutes 00-59.
                if oh > 23 || om > 59 {
                    return Err(err());
                }
                let sign = if tz.starts_with('-') { -1 } else { 1 };
                sign * (oh * 3600 + om * 60)
            }
            _ => return Err(err()),
        };
        let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset;
        // Nanoseconds in an i64 span the years 1677 to 2262; outside them
        // the time is refused rather than wrapped into a wrong one.
        secs.checked_mul(1_000_000_000)
            .and_then(|n| n.checked_add(nanos))
            .map(Timestamp)
            .ok_or_else(err)
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp(d.as_nanos().min(i64::MAX as u128) as i64),
            Err(e) => Timestamp(-(e.duration().as_nanos().min(i64::MAX as u128) as i64)),
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339_millis())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(std::str::from_utf8(&self.millis_digits()).expect("ASCII digits"))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

/// The days in month `m` (1-12) of year `y`, proleptic Gregorian.
fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// (year, month, day) to days since 1970-01-01 (Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_times() {
        assert_eq!(Timestamp(0).to_rfc3339_secs(), "1970-01-01T00:00:00Z");
        let t = Timestamp(1_745_781_727_123_456_789);
        assert_eq!(t.to_rfc3339_secs(), "2025-04-27T19:22:07Z");
        assert_eq!(t.to_rfc3339_millis(), "2025-04-27T19:22:07.123Z");
        assert_eq!(
            Timestamp(951_782_400 * 1_000_000_000).to_rfc3339_secs(),
            "2000-02-29T00:00:00Z"
        );
    }

    /// The digit writer agrees with the formatter from the first
    /// timestamp to the last, at the edges of days and seconds.
    #[test]
    fn quick_millis_agree_with_the_formatter() {
        let slow = |t: Timestamp| {
            let (date, h, m, s, nanos) = t.parts();
            format!("{date}T{h:02}:{m:02}:{s:02}.{:03}Z", nanos / 1_000_000)
        };
        let day = 86_400 * 1_000_000_000_i64;
        let mut at = i64::MIN;
        loop {
            for t in [
                at,
                at.saturating_add(day - 1),
                at.saturating_add(43_261_999_999_999),
            ] {
                let t = Timestamp(t);
                assert_eq!(t.to_rfc3339_millis(), slow(t));
                assert_eq!(
                    serde_json::to_string(&t).unwrap(),
                    format!("\"{}\"", slow(t))
                );
            }
            match at.checked_add(day * 37) {
                Some(next) => at = next,
                None => break,
            }
        }
        let last = Timestamp(i64::MAX);
        assert_eq!(last.to_rfc3339_millis(), slow(last));
    }

    #[test]
    fn parses_what_it_formats_and_offsets() {
        for n in [
            0,
            1_745_781_727_123_000_000,
            4_102_444_800_000_000_000,
            951_782_400_000_000_000,
        ] {
            let t = Timestamp(n);
            assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339_millis()).unwrap(), t);
        }
        assert_eq!(
            Timestamp::parse_rfc3339("2025-04-27T21:22:07.5+02:00").unwrap(),
            Timestamp::parse_rfc3339("2025-04-27T19:22:07.500Z").unwrap()
        );
        for leap in [
            "2024-02-29T00:00:00Z",
            "2000-02-29T00:00:00Z",
            "2026-01-31T00:00:00-23:59",
        ] {
            assert!(Timestamp::parse_rfc3339(leap).is_ok(), "{leap}");
        }
        assert_eq!(
            Timestamp::parse_rfc3339("2025-04-27 19:22:07Z")
                .unwrap()
                .to_rfc3339_secs(),
            "2025-04-27T19:22:07Z"
        );
    }

    #[test]
    fn every_day_from_1700_to_2250_converts_both_ways() {
        // The calendar counted a day at a time, from 1970-01-01 each way.
        let next = |(y, m, d): (i64, i64, i64)| {
            if d < days_in_month(y, m) {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            }
        };
        let prev = |(y, m, d): (i64, i64, i64)| {
            if d > 1 {
                (y, m, d - 1)
            } else if m > 1 {
                (y, m - 1, days_in_month(y, m - 1))
            } else {
                (y - 1, 12, 31)
            }
        };
        for (step, limit) in [(1i64, 102_000i64), (-1, 98_000)] {
            let mut date = (1970, 1, 1);
            let mut days = 0i64;
            while days.abs() <= limit {
                assert_eq!(civil_from_days(days), date, "day {days}");
                assert_eq!(days_from_civil(date.0, date.1, date.2), days, "{date:?}");
                date = if step > 0 { next(date) } else { prev(date) };
                days += step;
            }
        }
        assert_eq!(civil_from_days(102_000), (2249, 4, 8)); // GNU date agrees
        assert_eq!(civil_from_days(-98_000), (1701, 9, 8));
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(1900, 2), 28);
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(2026, 2), 28);
        assert_eq!(days_in_month(2026, 6), 30);
    }

    #[test]
    fn every_second_of_a_day_formats_and_parses_back() {
        let day = Timestamp::parse_rfc3339("2026-11-23T00:00:00Z").unwrap();
        for sec in (0..86_400i64).step_by(7) {
            let t = Timestamp(day.0 + sec * 1_000_000_000 + 987_000_000);
            let text = t.to_rfc3339_millis();
            assert_eq!(
                text,
                format!(
                    "2026-11-23T{:02}:{:02}:{:02}.987Z",
                    sec / 3600,
                    sec / 60 % 60,
                    sec % 60
                )
            );
            assert_eq!(Timestamp::parse_rfc3339(&text).unwrap(), t, "{text}");
            assert_eq!(t.as_secs(), day.as_secs() + sec);
        }
        // Before the epoch, seconds round down.
        assert_eq!(Timestamp(-1).as_secs(), -1);
        assert_eq!(
            Timestamp(-1).to_rfc3339_millis(),
            "1969-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn now_minus_and_system_times() {
        let before = SystemTime::now();
        let now = Timestamp::now();
        assert!(now >= Timestamp::from(before));
        assert!(now.as_secs() > 1_700_000_000, "{now}");
        assert_eq!(now.minus(Duration::from_secs(2)).0, now.0 - 2_000_000_000);
        assert_eq!(Timestamp(5).minus(Duration::MAX), Timestamp(5 - i64::MAX));
        assert_eq!(now.as_nanos(), now.0);
        let early = UNIX_EPOCH - Duration::from_millis(1500);
        assert_eq!(Timestamp::from(early), Timestamp(-1_500_000_000));
        assert_eq!(now.to_string(), now.to_rfc3339_millis());
    }

    #[test]
    fn offsets_east_and_west_with_minutes_and_long_fractions() {
        let utc = Timestamp::parse_rfc3339("2025-04-27T19:22:07.5Z").unwrap();
        for local in [
            "2025-04-27T17:22:07.5-02:00",
            "2025-04-28T00:52:07.5+05:30",
            "2025-04-27T15:07:07.5-04:15",
            "2025-04-27T19:22:07.500000000000Z",
        ] {
            assert_eq!(Timestamp::parse_rfc3339(local).unwrap(), utc, "{local}");
        }
        assert_eq!(
            Timestamp::parse_rfc3339("2025-04-27T19:22:07.1234567891Z").unwrap(),
            Timestamp(1_745_781_727_123_456_789),
            "nanoseconds: the first nine digits"
        );
        for bad in [
            "2025-04-27T19:22:07+01x00",
            "2025-04-27T19:22:07*01:00",
            "2025-04-27T19:22:07+01:000",
        ] {
            assert!(Timestamp::parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_leap_second_and_the_last_minute_of_a_day_are_times() {
        for ok in [
            "2016-12-31T23:59:60Z",
            "2025-04-27T23:59:59Z",
            "2025-04-27T00:00:00.123456789Z",
        ] {
            assert!(Timestamp::parse_rfc3339(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_garbage() {
        for s in [
            "",
            "yesterday",
            "2025-04-27",
            "2025-13-01T00:00:00Z",
            "2025-04-27T19:22:07",
            "2025-04-27T19:22:07+2",
            "2025-04-27T19:22:07.Z",
            "2025-04-27T1é:22:07Z",
            // Found by fuzzing: outside 1677..2262 the nanoseconds overflowed.
            "1012-04-27T16:56:14.000Z",
            "9999-12-31T23:59:59Z",
            // Days a month does not have, and offsets no zone has.
            "2026-02-31T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2100-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-01-01T00:00:00+99:99",
            "2026-01-01T00:00:00+24:00",
            "2026-01-01T00:00:00-00:60",
            // One field or separator wrong at a time.
            "2025/04-27T19:22:07Z",
            "2025-04/27T19:22:07Z",
            "2025-04-27X19:22:07Z",
            "2025-04-27T19-22:07Z",
            "2025-04-27T19:22-07Z",
            "2025-04-27T24:00:00Z",
            "2025-04-27T23:60:00Z",
            "2025-04-27T23:59:61Z",
            "2025-04-27T19:22:07.123",
            "2025-04-27T19:22:07.1234567891",
        ] {
            assert!(Timestamp::parse_rfc3339(s).is_err(), "{s:?}");
        }
    }
}
