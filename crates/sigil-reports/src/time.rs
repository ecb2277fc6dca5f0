//! Wall-clock helpers: Unix milliseconds, RFC 3339 formatting and parsing
//! (UTC only), kept here to avoid a date-time dependency for three
//! functions.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for Unix milliseconds.
pub fn rfc3339_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's
/// algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
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

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm, the inverse of `civil_from_days`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix milliseconds of `YYYY-MM-DD` (midnight UTC) or
/// `YYYY-MM-DDTHH:MM:SS[.mmm]Z`; the error says what was expected.
pub fn parse_utc_ms(s: &str) -> Result<i64, String> {
    let bad = || format!("{s:?} is not a UTC date or time: use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ");
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t.strip_suffix('Z').ok_or_else(bad)?)),
        None => (s, None),
    };
    let num = |t: &str, len: usize| -> Result<u32, String> {
        if t.len() != len || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        t.parse().map_err(|_| bad())
    };
    let parts: Vec<&str> = date.split('-').collect();
    let [y, m, d] = parts[..] else {
        return Err(bad());
    };
    let (y, m, d) = (num(y, 4)?, num(m, 2)?, num(d, 2)?);
    if !(1..=12).contains(&m) || d == 0 || d > 31 {
        return Err(bad());
    }
    let days = days_from_civil(i64::from(y), m, d);
    if civil_from_days(days) != (i64::from(y), m, d) {
        return Err(bad()); // e.g. February 30th
    }
    let mut ms = days * 86_400_000;
    if let Some(t) = time {
        let (hms, frac) = t.split_once('.').unwrap_or((t, ""));
        let hms: Vec<&str> = hms.split(':').collect();
        let [h, mi, sec] = hms[..] else {
            return Err(bad());
        };
        let (h, mi, sec) = (num(h, 2)?, num(mi, 2)?, num(sec, 2)?);
        if h > 23 || mi > 59 || sec > 59 {
            return Err(bad());
        }
        let millis = if frac.is_empty() { 0 } else { num(frac, 3)? };
        ms += i64::from(h * 3600 + mi * 60 + sec) * 1000 + i64::from(millis);
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339_ms(1_795_867_200_000), "2026-11-28T12:00:00.000Z");
    }

    #[test]
    fn parses_what_it_formats() {
        for ms in [0, 951_782_400_123, 1_795_867_200_000, -86_400_000] {
            assert_eq!(parse_utc_ms(&rfc3339_ms(ms)), Ok(ms));
        }
        assert_eq!(parse_utc_ms("2000-02-29"), Ok(951_782_400_000));
        for bad in [
            "2001-02-29",
            "2026-13-01",
            "26-01-01",
            "2026-01-01T25:00:00Z",
            "x",
        ] {
            let e = parse_utc_ms(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }
}
