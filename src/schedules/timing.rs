//! When a Schedule's slots are: pure functions of a spec, an anchor and a time.
//!
//! `cron` expressions are parsed by `croner` (5 fields, Vixie-cron day-of-month / day-of-week
//! OR rule) and evaluated on *civil* (wall-clock) times; each matching wall-clock time is then
//! placed in the IANA zone with `jiff` and its bundled time-zone database. That split makes
//! the daylight-saving rules ours and explicit: a wall-clock time the zone skips (spring
//! forward) is no slot at all, and one it repeats (fall back) is one slot, at its first
//! occurrence. `every` slots are `anchor + k × every` (k ≥ 1); `at` is one slot.
//!
//! All instants are unix milliseconds.

use std::sync::LazyLock;

use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone, TimeZoneDatabase};
use jiff::Timestamp;
use serde_json::Value;

use crate::manifest::kinds::ScheduleSpec;

/// The IANA database compiled into the binary, so every replica (and a container without
/// `/usr/share/zoneinfo`) computes the same slots.
static TZDB: LazyLock<TimeZoneDatabase> = LazyLock::new(TimeZoneDatabase::bundled);

/// How many candidate wall-clock times one `next_after` looks at before giving up (a cron
/// expression such as `0 0 30 2 *` matches nothing; croner's own search is bounded too).
const MAX_CANDIDATES: usize = 1000;

/// Why a Schedule's timing fields cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    #[error("spec.cron: invalid cron expression: {0} (expected 5 fields: minute hour day-of-month month day-of-week, e.g. \"0 9 * * 1-5\")")]
    Cron(String),
    #[error("spec.timezone: unknown time zone \"{0}\" (expected an IANA name such as Europe/Berlin or UTC)")]
    TimeZone(String),
    #[error("spec.every: invalid duration: {0} (expected e.g. 30s, 15m, 1h or 1h30m)")]
    Every(String),
    #[error("spec: exactly one of cron, every or at must be set")]
    Shape,
}

impl TimingError {
    /// The JSON pointer of the field at fault, relative to the document.
    pub fn pointer(&self) -> &'static str {
        match self {
            TimingError::Cron(_) => "/spec/cron",
            TimingError::TimeZone(_) => "/spec/timezone",
            TimingError::Every(_) => "/spec/every",
            TimingError::Shape => "/spec",
        }
    }

    /// The message without the field prefix (a diagnostic names the field by its pointer).
    pub fn message(&self) -> String {
        let text = self.to_string();
        match text.split_once(": ") {
            Some((_, rest)) => rest.to_owned(),
            None => text,
        }
    }
}

/// A Schedule's timing, parsed.
#[derive(Debug, Clone)]
pub enum Timing {
    /// A cron expression in a zone.
    Cron { cron: Box<Cron>, zone: TimeZone },
    /// A fixed interval, in milliseconds, counted from an anchor.
    Every { every_ms: i64 },
    /// One instant.
    At { at_ms: i64 },
}

fn parse_cron(text: &str) -> Result<Cron, TimingError> {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(text)
        .map_err(|e| TimingError::Cron(e.to_string()))
}

fn parse_zone(name: &str) -> Result<TimeZone, TimingError> {
    TZDB.get(name)
        .map_err(|_| TimingError::TimeZone(name.to_owned()))
}

fn parse_every(text: &str) -> Result<i64, TimingError> {
    let d = humantime::parse_duration(text).map_err(|e| TimingError::Every(e.to_string()))?;
    let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    if ms <= 0 {
        return Err(TimingError::Every("must be positive".into()));
    }
    Ok(ms)
}

impl Timing {
    /// Parses the timing fields of a spec.
    pub fn of(spec: &ScheduleSpec) -> Result<Timing, TimingError> {
        match (&spec.cron, &spec.every, &spec.at) {
            (Some(cron), None, None) => Ok(Timing::Cron {
                cron: Box::new(parse_cron(cron)?),
                zone: parse_zone(spec.timezone.as_deref().unwrap_or("UTC"))?,
            }),
            (None, Some(every), None) => Ok(Timing::Every {
                every_ms: parse_every(every)?,
            }),
            (None, None, Some(at)) => Ok(Timing::At {
                at_ms: (at.unix_timestamp_nanos() / 1_000_000) as i64,
            }),
            _ => Err(TimingError::Shape),
        }
    }

    /// The first slot strictly after `after_ms`, or `None` when there is none (a past `at`,
    /// a cron expression that never matches). `anchor_ms` is where `every` counts from.
    pub fn next_after(&self, after_ms: i64, anchor_ms: i64) -> Option<i64> {
        match self {
            Timing::At { at_ms } => (*at_ms > after_ms).then_some(*at_ms),
            Timing::Every { every_ms } => {
                if after_ms < anchor_ms {
                    return anchor_ms.checked_add(*every_ms);
                }
                let k = (after_ms - anchor_ms) / every_ms + 1;
                anchor_ms.checked_add(k.checked_mul(*every_ms)?)
            }
            Timing::Cron { cron, zone } => cron_next_after(cron, zone, after_ms),
        }
    }

    /// The slots in `(after_ms, until_ms]`: how many there are (counting stops at `cap`) and
    /// the last one.
    pub fn slots_between(
        &self,
        after_ms: i64,
        until_ms: i64,
        anchor_ms: i64,
        cap: u64,
    ) -> (u64, Option<i64>) {
        if let Timing::Every { every_ms } = self {
            // Arithmetic: a week of a one-second interval is not 600,000 steps.
            let first = match self.next_after(after_ms, anchor_ms) {
                Some(f) if f <= until_ms => f,
                _ => return (0, None),
            };
            let n = (until_ms - first) / every_ms + 1;
            return (n as u64, Some(first + (n - 1) * every_ms));
        }
        let (mut count, mut last, mut t) = (0u64, None, after_ms);
        while count < cap {
            match self.next_after(t, anchor_ms) {
                Some(s) if s <= until_ms => {
                    count += 1;
                    last = Some(s);
                    t = s;
                }
                _ => break,
            }
        }
        (count, last)
    }

    /// Up to `n` slots after `after_ms`.
    pub fn upcoming(&self, after_ms: i64, anchor_ms: i64, n: usize) -> Vec<i64> {
        let mut out = Vec::with_capacity(n);
        let mut t = after_ms;
        while out.len() < n {
            match self.next_after(t, anchor_ms) {
                Some(s) => {
                    out.push(s);
                    t = s;
                }
                None => break,
            }
        }
        out
    }
}

/// The next instant after `after_ms` whose wall-clock time in `zone` matches `cron`; a
/// wall-clock time in a gap is skipped, one in a fold counts at its first occurrence.
fn cron_next_after(cron: &Cron, zone: &TimeZone, after_ms: i64) -> Option<i64> {
    let after = Timestamp::from_millisecond(after_ms).ok()?;
    // Whole minutes: a slot is never between two minutes.
    let mut civil: DateTime = after.to_zoned(zone.clone()).datetime();
    for _ in 0..MAX_CANDIDATES {
        let next = cron.find_next_occurrence(&civil, false).ok()?;
        civil = next;
        let offset = match zone.to_ambiguous_zoned(next).offset() {
            AmbiguousOffset::Unambiguous { offset } => offset,
            // Spring forward: this wall-clock time does not exist; no slot.
            AmbiguousOffset::Gap { .. } => continue,
            // Fall back: the time exists twice; the slot is the first.
            AmbiguousOffset::Fold { before, .. } => before,
        };
        let instant = offset.to_timestamp(next).ok()?.as_millisecond();
        // In the second half of a fold, wall-clock times before `after`'s repeat: their slot
        // (the first occurrence) has passed already.
        if instant > after_ms {
            return Some(instant);
        }
    }
    None
}

/// The checks of a Schedule spec the JSON Schema cannot make (a cron expression that parses,
/// a time zone that exists, a positive `every`): `(pointer, message)` per problem, for
/// `claw validate` and the loader. `spec` has passed the schema.
pub fn check(spec: &Value) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(cron) = spec.get("cron").and_then(Value::as_str) {
        if let Err(e) = parse_cron(cron) {
            out.push((e.pointer(), e.message()));
        }
    }
    if let Some(zone) = spec.get("timezone").and_then(Value::as_str) {
        if let Err(e) = parse_zone(zone) {
            out.push((e.pointer(), e.message()));
        }
    }
    if let Some(every) = spec.get("every").and_then(Value::as_str) {
        if let Err(e) = parse_every(every) {
            out.push((e.pointer(), e.message()));
        }
    }
    out
}

/// Unix milliseconds as the stored timestamp form (RFC 3339 UTC, milliseconds, fixed width).
pub fn stamp(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    crate::tasks::service::timestamp(t)
}

/// A stored (or any RFC 3339) timestamp as unix milliseconds.
pub fn parse_stamp(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ms(s: &str) -> i64 {
        parse_stamp(s).unwrap()
    }

    fn cron(expr: &str, zone: &str) -> Timing {
        Timing::Cron {
            cron: Box::new(parse_cron(expr).unwrap()),
            zone: parse_zone(zone).unwrap(),
        }
    }

    fn stamps(v: Vec<i64>) -> Vec<String> {
        v.into_iter().map(stamp).collect()
    }

    #[test]
    fn spring_forward_skips_the_missing_wall_clock_time() {
        // Europe/Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
        let t = cron("30 2 * * *", "Europe/Berlin");
        let got = stamps(t.upcoming(ms("2026-03-27T12:00:00Z"), 0, 3));
        assert_eq!(
            got,
            [
                "2026-03-28T01:30:00.000Z", // 02:30 CET
                "2026-03-30T00:30:00.000Z", // 02:30 CEST; the 29th has none
                "2026-03-31T00:30:00.000Z",
            ]
        );
        // An hourly job just loses the hour that does not exist.
        let t = cron("15 * * * *", "Europe/Berlin");
        let got = stamps(t.upcoming(ms("2026-03-29T00:20:00Z"), 0, 2));
        assert_eq!(
            got,
            ["2026-03-29T01:15:00.000Z", "2026-03-29T02:15:00.000Z"]
        );
        // 03:15 CEST, then 04:15 CEST: 02:15 does not exist, and 03:15 fires once.
    }

    #[test]
    fn fall_back_fires_the_repeated_wall_clock_time_once() {
        // Europe/Berlin, 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 exists twice.
        let t = cron("30 2 * * *", "Europe/Berlin");
        let got = stamps(t.upcoming(ms("2026-10-24T12:00:00Z"), 0, 3));
        assert_eq!(
            got,
            [
                "2026-10-25T00:30:00.000Z", // the first 02:30 (CEST); the second never fires
                "2026-10-26T01:30:00.000Z",
                "2026-10-27T01:30:00.000Z",
            ]
        );
        // Counting from inside the repeated hour (its second half), the passed slot is not
        // fired again.
        let (n, last) = t.slots_between(
            ms("2026-10-25T01:10:00Z"), // 02:10 CET, the second pass
            ms("2026-10-26T01:30:00Z"),
            0,
            100,
        );
        assert_eq!(
            (n, last.map(stamp)),
            (1, Some("2026-10-26T01:30:00.000Z".into()))
        );
    }

    #[test]
    fn every_counts_from_its_anchor() {
        let t = Timing::Every { every_ms: 60_000 };
        assert_eq!(t.next_after(0, 0), Some(60_000));
        assert_eq!(t.next_after(59_999, 0), Some(60_000));
        assert_eq!(t.next_after(60_000, 0), Some(120_000));
        assert_eq!(t.slots_between(0, 600_000, 0, 10), (10, Some(600_000)));
        assert_eq!(t.slots_between(0, 59_000, 0, 10), (0, None));
        let at = Timing::At { at_ms: 500 };
        assert_eq!(at.slots_between(0, 1000, 0, 10), (1, Some(500)));
        assert_eq!(at.next_after(500, 0), None);
    }

    #[test]
    fn check_names_the_field() {
        let bad = check(&json!({"cron": "61 * * * *", "timezone": "Mars/Olympus", "every": "0s"}));
        let pointers: Vec<&str> = bad.iter().map(|(p, _)| *p).collect();
        assert_eq!(pointers, ["/spec/cron", "/spec/timezone", "/spec/every"]);
        assert!(bad[1].1.contains("Mars/Olympus"), "{bad:?}");
        assert!(
            check(&json!({"cron": "*/5 9-17 * * mon-fri", "timezone": "America/New_York"}))
                .is_empty()
        );
        assert!(
            !check(&json!({"cron": "* * * * * *"})).is_empty(),
            "6 fields"
        );
    }
}
