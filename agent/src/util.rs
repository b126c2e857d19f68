//! Small helpers shared across modules: serde adapters and durations.

use std::fmt::Display;

/// Serialize any `Display` value as its string form (addresses, prefixes).
pub fn ser_display<T: Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// Serialize an optional `Display` value as a string or null.
pub fn ser_opt_display<T: Display, S: serde::Serializer>(
    v: &Option<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

/// `1h2m3s`-style rendering for uptimes in tables.
pub fn human_duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d{h}h{m}m")
    } else if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_duration_picks_the_two_or_three_largest_units() {
        assert_eq!(super::human_duration(5), "5s");
        assert_eq!(super::human_duration(65), "1m5s");
        assert_eq!(super::human_duration(3725), "1h2m5s");
        assert_eq!(super::human_duration(90061), "1d1h1m");
    }
}
