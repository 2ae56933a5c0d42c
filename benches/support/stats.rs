//! Figures of the API bench: medians, the ratio of medians, and parsing `wrk`'s report.
//! Shared with the integration tests (`tests/it/main.rs` includes this file), which test it.

/// The median of `values` (the mean of the middle two for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// `median(numerator) / median(denominator)`: each side's median over the rounds first, so one
/// disturbed round moves neither much. `None` when a side is empty or the denominator is 0.
pub fn ratio_of_medians(numerator: &[f64], denominator: &[f64]) -> Option<f64> {
    let (n, d) = (median(numerator)?, median(denominator)?);
    (d > 0.0).then(|| n / d)
}

/// What one `wrk --latency` run reported.
#[derive(Debug, Clone, PartialEq)]
pub struct WrkRun {
    pub requests: u64,
    pub rps: f64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
    /// Responses outside 2xx/3xx ("Non-2xx or 3xx responses").
    pub non_2xx: u64,
    /// Connect/read/write errors and timeouts.
    pub socket_errors: u64,
}

/// Parses `wrk --latency` output; `Err` names what is missing.
pub fn parse_wrk(out: &str) -> Result<WrkRun, String> {
    let mut run = WrkRun {
        requests: 0,
        rps: f64::NAN,
        p99_ms: f64::NAN,
        non_2xx: 0,
        socket_errors: 0,
    };
    for line in out.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            run.rps = v.trim().parse().map_err(|_| format!("bad rate: {line}"))?;
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            run.non_2xx = v.trim().parse().map_err(|_| format!("bad count: {line}"))?;
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            run.socket_errors = v
                .split(',')
                .filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
        } else if let Some(v) = line.strip_prefix("99%") {
            run.p99_ms = duration_ms(v.trim()).ok_or_else(|| format!("bad latency: {line}"))?;
        } else if line.contains(" requests in ") {
            run.requests = line
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("bad total: {line}"))?;
        }
    }
    if run.rps.is_nan() {
        return Err("no `Requests/sec:` line".into());
    }
    if run.p99_ms.is_nan() {
        return Err("no `99%` latency line (run wrk with --latency)".into());
    }
    Ok(run)
}

/// `wrk`'s durations: `812.00us`, `1.23ms`, `2.00s`, `1.00m`.
fn duration_ms(s: &str) -> Option<f64> {
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = s.split_at(split);
    let n: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        "h" => n * 3_600_000.0,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts_ignores_order_and_non_finite_values() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN, 5.0]), Some(5.0));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn ratio_of_medians_is_not_the_median_of_ratios() {
        // Round-by-round: 50/100, 90/100, 10/20 -> median of ratios 0.5; of medians 50/100.
        let claw = [50.0, 90.0, 10.0];
        let bare = [100.0, 100.0, 20.0];
        assert_eq!(ratio_of_medians(&claw, &bare), Some(0.5));
        let claw = [70.0, 80.0, 75.0, 1.0];
        let bare = [100.0, 100.0, 100.0, 100.0];
        assert_eq!(ratio_of_medians(&claw, &bare), Some(0.725));
        assert_eq!(ratio_of_medians(&[1.0], &[0.0]), None);
        assert_eq!(ratio_of_medians(&[], &[1.0]), None);
    }

    const WRK: &str = "Running 2s test @ http://127.0.0.1:4000/api/v1/status
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   712.41us  301.22us  12.01ms   80.00%
    Req/Sec    45.10k     2.01k   49.00k    70.00%
  Latency Distribution
     50%  650.00us
     75%  801.00us
     90%    1.01ms
     99%    1.73ms
  179538 requests in 2.00s, 40.12MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 17
Requests/sec:  89712.33
Transfer/sec:     20.05MB
";

    #[test]
    fn parses_wrk_latency_output() {
        let run = parse_wrk(WRK).unwrap();
        assert_eq!(
            run,
            WrkRun {
                requests: 179538,
                rps: 89712.33,
                p99_ms: 1.73,
                non_2xx: 17,
                socket_errors: 3,
            }
        );
        let clean = WRK
            .lines()
            .filter(|l| !l.contains("Non-2xx") && !l.contains("Socket"))
            .collect::<Vec<_>>()
            .join("\n");
        let run = parse_wrk(&clean).unwrap();
        assert_eq!((run.non_2xx, run.socket_errors), (0, 0));
        assert_eq!(duration_ms("812.00us"), Some(0.812));
        assert_eq!(duration_ms("2.00s"), Some(2000.0));
        assert!(parse_wrk("nothing").is_err());
    }
}
