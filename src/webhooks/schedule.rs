//! The retry schedule: how long to wait before the next attempt of a failed delivery.
//!
//! Pure functions of the attempt number, `max_attempts` (Config), the receiver's `Retry-After`
//! and a random source (injected, so tests are deterministic).

use rand::Rng;

/// Delay before attempt `n` (index `n - 1`): immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
/// 10 h. Past the table the last delay repeats.
pub const DEFAULT_DELAYS_MS: [u64; 8] = [
    0,
    5_000,
    5 * 60_000,
    30 * 60_000,
    2 * 3_600_000,
    5 * 3_600_000,
    10 * 3_600_000,
    10 * 3_600_000,
];

/// Jitter applied to each delay: ± this fraction.
pub const JITTER: f64 = 0.2;

/// The longest `Retry-After` honoured; a receiver asking for more gets this.
pub const RETRY_AFTER_CAP_MS: u64 = 24 * 3_600_000;

/// The scheduled delay before attempt `attempt` (1-based), without jitter.
pub fn base_delay_ms(attempt: u32) -> u64 {
    let i = (attempt.max(1) - 1) as usize;
    DEFAULT_DELAYS_MS[i.min(DEFAULT_DELAYS_MS.len() - 1)]
}

/// `delay_ms` with ±20 % jitter drawn from `rng`.
pub fn jittered(delay_ms: u64, rng: &mut impl Rng) -> u64 {
    if delay_ms == 0 {
        return 0;
    }
    let factor = 1.0 + rng.random_range(-JITTER..=JITTER);
    (delay_ms as f64 * factor).round() as u64
}

/// What to do after attempt `attempt` (1-based) failed: `Some(delay)` before the next attempt,
/// or `None` when `max_attempts` are used up. The delay is at least `retry_after_ms` (capped
/// at 24 h).
pub fn after_failure(
    attempt: u32,
    max_attempts: u32,
    retry_after_ms: Option<u64>,
    rng: &mut impl Rng,
) -> Option<u64> {
    if attempt >= max_attempts.max(1) {
        return None;
    }
    let delay = jittered(base_delay_ms(attempt + 1), rng);
    let floor = retry_after_ms.map_or(0, |r| r.min(RETRY_AFTER_CAP_MS));
    Some(delay.max(floor))
}

/// Parses a `Retry-After` value (delta seconds or an HTTP date) into a delay from `now_ms`.
/// A date in the past is no delay; an unparseable value is ignored.
pub fn parse_retry_after(value: &str, now_ms: i64) -> Option<u64> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(secs.saturating_mul(1000));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let at_ms = at
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_millis()
        .min(i64::MAX as u128) as i64;
    Some(at_ms.saturating_sub(now_ms).max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn base_delays_follow_the_table_and_repeat_the_last() {
        let want = [
            0, 5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000,
        ];
        for (i, w) in want.iter().enumerate() {
            assert_eq!(base_delay_ms(i as u32 + 1), *w);
        }
        assert_eq!(base_delay_ms(8), 36_000_000);
        assert_eq!(base_delay_ms(20), 36_000_000);
        assert_eq!(base_delay_ms(0), 0);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut seen_low = false;
        let mut seen_high = false;
        for _ in 0..2000 {
            let d = jittered(300_000, &mut rng);
            assert!((240_000..=360_000).contains(&d), "{d}");
            seen_low |= d < 270_000;
            seen_high |= d > 330_000;
        }
        assert!(seen_low && seen_high, "jitter should spread both ways");
        assert_eq!(jittered(0, &mut rng), 0);
    }

    #[test]
    fn gives_up_after_max_attempts() {
        let mut rng = StdRng::seed_from_u64(2);
        let d = after_failure(1, 8, None, &mut rng).unwrap();
        assert!((4_000..=6_000).contains(&d));
        assert!(after_failure(7, 8, None, &mut rng).is_some());
        assert_eq!(after_failure(8, 8, None, &mut rng), None);
        assert_eq!(after_failure(1, 1, None, &mut rng), None);
        // Past the table: the last delay (10 h) repeats.
        let d = after_failure(12, 20, None, &mut rng).unwrap();
        assert!((28_800_000..=43_200_000).contains(&d));
    }

    #[test]
    fn retry_after_is_a_floor_capped_at_a_day() {
        let mut rng = StdRng::seed_from_u64(3);
        assert_eq!(after_failure(1, 8, Some(120_000), &mut rng), Some(120_000));
        // A shorter Retry-After does not shorten the schedule.
        let d = after_failure(2, 8, Some(1_000), &mut rng).unwrap();
        assert!(d >= 240_000);
        assert_eq!(
            after_failure(1, 8, Some(1_000 * 3600 * 100), &mut rng),
            Some(RETRY_AFTER_CAP_MS)
        );
    }

    #[test]
    fn retry_after_parses_seconds_and_http_dates() {
        assert_eq!(parse_retry_after("120", 0), Some(120_000));
        assert_eq!(parse_retry_after(" 7 ", 0), Some(7_000));
        // Sun, 06 Nov 1994 08:49:37 GMT = 784111777 s.
        let now = 784_111_777_000 - 30_000;
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(30_000)
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now + 60_000),
            Some(0)
        );
        assert_eq!(parse_retry_after("soon", 0), None);
        assert_eq!(parse_retry_after("-5", 0), None);
    }
}
