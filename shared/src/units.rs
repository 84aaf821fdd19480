//! Durations (`90s`, `10m`, `1.5h`) and sizes (`10M`, `1GiB`) as users type
//! them, and sizes as people read them (`12.89 kB`).

use std::time::Duration;

use crate::error::{Error, Result};

/// Parses a duration: a number with an optional unit `ms`, `s`, `m`, `h` or
/// `d` (seconds when there is none), such as `500ms`, `90s`, `1.5h`.
pub fn parse_duration(input: &str) -> Result<Duration> {
    let err = || Error::Parse {
        what: "duration",
        input: input.to_string(),
        hint: "expected a number with an optional unit ms, s, m, h or d, like 90s or 10m",
    };
    let s = input.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value = parse_number(num).ok_or_else(err)?;
    let secs_per_unit = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 0.001,
        "m" | "min" | "mins" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        _ => return Err(err()),
    };
    Duration::try_from_secs_f64(value * secs_per_unit).map_err(|_| err())
}

/// Parses a size in bytes: a number with an optional unit, decimal (`k`,
/// `M`, `G`, `kB`, `MB`, `GB`: powers of 1000) or binary (`Ki`, `Mi`, `Gi`,
/// `KiB`, `MiB`, `GiB`: powers of 1024), such as `512k`, `10MiB`, `1G`.
pub fn parse_size(input: &str) -> Result<u64> {
    let err = || Error::Parse {
        what: "size",
        input: input.to_string(),
        hint: "expected a number of bytes with an optional unit, like 512k, 10M or 1GiB",
    };
    let s = input.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value = parse_number(num).ok_or_else(err)?;
    let unit = unit.trim();
    let unit = unit.strip_suffix('B').unwrap_or(unit);
    let factor: f64 = match unit.to_ascii_lowercase().as_str() {
        "" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        "t" => 1e12,
        "ki" => 1024.0,
        "mi" => 1024f64.powi(2),
        "gi" => 1024f64.powi(3),
        "ti" => 1024f64.powi(4),
        _ => return Err(err()),
    };
    let bytes = value * factor;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 || bytes.fract() != 0.0 && factor == 1.0 {
        return Err(err());
    }
    Ok(bytes as u64)
}

fn parse_number(s: &str) -> Option<f64> {
    if s.is_empty() || s.starts_with('.') || s.ends_with('.') {
        return None;
    }
    let v: f64 = s.parse().ok()?;
    v.is_finite().then_some(v)
}

/// A byte count as people read it, in decimal units: `0 B`, `999 B`,
/// `12.89 kB`, `1.19 MB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["kB", "MB", "GB", "TB", "PB", "EB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 999.995 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.2} {}", UNITS[unit])
}

/// A duration as people read it, in its two largest units: `850ms`,
/// `12s`, `3m12s`, `2h05m`, `3d04h`.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.subsec_millis()),
        1..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        let d = |s: u64| human_duration(Duration::from_secs(s));
        assert_eq!(human_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(d(12), "12s");
        assert_eq!(d(192), "3m12s");
        assert_eq!(d(7500), "2h05m");
        assert_eq!(d(3 * 86_400 + 4 * 3600), "3d04h");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(
            parse_duration("2d").unwrap(),
            Duration::from_secs(2 * 86_400)
        );
        for bad in [
            "", "s", "-1s", "1x", "1.s", ".5s", "1e3", "ten", "1 2s", "nan",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("100").unwrap(), 100);
        assert_eq!(parse_size("512k").unwrap(), 512_000);
        assert_eq!(parse_size("10M").unwrap(), 10_000_000);
        assert_eq!(parse_size("10MB").unwrap(), 10_000_000);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("1.5Ki").unwrap(), 1536);
        assert_eq!(parse_size("2G").unwrap(), 2_000_000_000);
        assert_eq!(parse_size("3T").unwrap(), 3_000_000_000_000);
        assert_eq!(parse_size("5MiB").unwrap(), 5 << 20);
        assert_eq!(parse_size("2Ti").unwrap(), 2 << 40);
        for bad in [
            "",
            "M",
            "-5",
            "1.5",
            "5X",
            "1e9",
            "99999999999999999999999T",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn human() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(1000), "1.00 kB");
        assert_eq!(human_size(u64::MAX), "18.45 EB");
        assert_eq!(human_size(12_890), "12.89 kB");
        assert_eq!(human_size(1_190_000), "1.19 MB");
        assert_eq!(human_size(999_999), "1.00 MB");
    }
}
