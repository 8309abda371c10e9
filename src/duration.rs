//! Durations as Go's `time.Duration` prints them (`1.5ms`, `2.5s`, `5m0s`,
//! `1h0m0s`): the form of the kubelet's and containerd's messages, which
//! podstart's events and the simulated runtime repeat word for word. Pure.
use std::time::Duration;

/// `d` as Go's `Duration.String` writes it.
pub fn go(d: Duration) -> String {
    const US: u128 = 1_000;
    const MS: u128 = 1_000_000;
    const S: u128 = 1_000_000_000;
    let n = d.as_nanos();
    if n == 0 {
        return "0s".to_owned();
    }
    if n < US {
        return format!("{n}ns");
    }
    if n < MS {
        return format!("{}µs", decimal(n, US));
    }
    if n < S {
        return format!("{}ms", decimal(n, MS));
    }
    let whole = n / S;
    let (h, m) = (whole / 3600, whole % 3600 / 60);
    let s = decimal(n % (60 * S), S);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// `d` rounded down to a multiple of `unit`, as Go's `Duration.Truncate`
/// (the kubelet truncates pull times to milliseconds before printing).
pub fn truncate(d: Duration, unit: Duration) -> Duration {
    let unit = unit.as_nanos();
    if unit == 0 {
        return d;
    }
    let n = d.as_nanos() / unit * unit;
    Duration::new(
        u64::try_from(n / 1_000_000_000).unwrap_or(u64::MAX),
        // Below one second, so it fits.
        (n % 1_000_000_000) as u32,
    )
}

/// `v / unit` with its fraction, trailing zeros dropped (`1500, 1000` →
/// `1.5`); `unit` is a power of ten.
fn decimal(v: u128, unit: u128) -> String {
    let (whole, frac) = (v / unit, v % unit);
    if frac == 0 {
        return whole.to_string();
    }
    let width = unit.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_like_go() {
        let cases: &[(Duration, &str)] = &[
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(1), "1ns"),
            (Duration::from_nanos(999), "999ns"),
            (Duration::from_micros(20), "20µs"),
            (Duration::from_nanos(1_100), "1.1µs"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_millis(512), "512ms"),
            (Duration::from_nanos(512_300_000), "512.3ms"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_millis(2500), "2.5s"),
            (Duration::from_millis(1204), "1.204s"),
            (Duration::from_nanos(1_000_000_001), "1.000000001s"),
            (Duration::from_secs(10), "10s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_millis(90_500), "1m30.5s"),
            (Duration::from_secs(300), "5m0s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_secs(3725), "1h2m5s"),
            (Duration::from_secs(100 * 3600), "100h0m0s"),
        ];
        for (d, want) in cases {
            assert_eq!(go(*d), *want, "{d:?}");
        }
    }

    #[test]
    fn truncates_to_a_unit() {
        let ms = Duration::from_millis(1);
        assert_eq!(
            truncate(Duration::from_nanos(1_204_999_999), ms),
            Duration::from_millis(1204)
        );
        assert_eq!(truncate(Duration::from_micros(999), ms), Duration::ZERO);
        assert_eq!(
            truncate(Duration::from_secs(7), Duration::from_secs(2)),
            Duration::from_secs(6)
        );
        assert_eq!(
            truncate(Duration::from_micros(5), Duration::ZERO),
            Duration::from_micros(5)
        );
        assert_eq!(
            go(truncate(Duration::from_nanos(2_500_700_000), ms)),
            "2.5s"
        );
    }
}
