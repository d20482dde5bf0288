//! Calendar arithmetic on Unix times (UTC, proleptic Gregorian), without a clock.

/// `(year, month, day, hour, minute, second)` of a Unix time (Howard Hinnant's algorithm).
pub fn civil_from_unix(unix: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, (secs / 3600) as u32, ((secs % 3600) / 60) as u32, (secs % 60) as u32)
}

/// Days from 1970-01-01 to a civil date.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-11-25 19:30:00 UTC`.
pub fn utc_readable(unix: i64) -> String {
    let (y, mo, d, h, mi, s) = civil_from_unix(unix);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} UTC")
}

/// `20261125t193000z`, for identifiers.
pub fn utc_compact(unix: i64) -> String {
    let (y, mo, d, h, mi, s) = civil_from_unix(unix);
    format!("{y:04}{mo:02}{d:02}t{h:02}{mi:02}{s:02}z")
}

/// Seconds since the Unix epoch, now (0 if the clock is before 1970). The one
/// place that reads the clock for the binaries; the planner never calls it.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_known_dates() {
        assert_eq!(utc_compact(0), "19700101t000000z");
        assert_eq!(utc_readable(1_795_635_000), "2026-11-25 19:30:00 UTC");
        assert_eq!(civil_from_unix(951_782_400), (2000, 2, 29, 0, 0, 0));
        for days in [-1000, 0, 59, 365 * 30 + 7, 20_000] {
            let (y, m, d, ..) = civil_from_unix(days * 86_400);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
