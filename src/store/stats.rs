//! Hourly aggregates for the dashboard's charts (`GET /api/v1/stats/hourly`): tasks finished
//! per hour by final status, and webhook delivery attempts per hour by outcome.
//!
//! Stored times are fixed-width RFC 3339 UTC (`2026-12-01T14:05:09.123Z`), so the first 13
//! characters are the hour and a text comparison is a time comparison; both queries read a
//! range of an index (`tasks_completed_at`, `delivery_attempts_at`), never the whole table.

use super::{Store, StoreError};

/// One (hour, label) count; `hour` is `YYYY-MM-DDTHH` (UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourCount {
    pub hour: String,
    pub label: String,
    pub count: i64,
}

/// Tasks that finished (`completed_at` set) at or after `since` (a stored timestamp), per hour
/// and final status.
pub async fn tasks_finished(store: &Store, since: &str) -> Result<Vec<HourCount>, StoreError> {
    let rows = with_pool!(store, pool => {
        sqlx::query_as(
            "SELECT substr(completed_at, 1, 13) AS hour, status, COUNT(*) FROM tasks
             WHERE completed_at >= $1 GROUP BY hour, status ORDER BY hour, status",
        )
        .bind(since)
        .fetch_all(pool)
        .await?
    });
    Ok(collect(rows))
}

/// Webhook delivery attempts made at or after `since`, per hour and outcome: `succeeded`
/// (a 2xx answer), `failed` (any other answer) or `error` (no answer: refused, timed out,
/// blocked by the network policy).
pub async fn delivery_attempts(store: &Store, since: &str) -> Result<Vec<HourCount>, StoreError> {
    let rows = with_pool!(store, pool => {
        sqlx::query_as(
            "SELECT substr(at, 1, 13) AS hour,
                    CASE WHEN status_code IS NULL THEN 'error'
                         WHEN status_code BETWEEN 200 AND 299 THEN 'succeeded'
                         ELSE 'failed' END AS outcome,
                    COUNT(*)
             FROM delivery_attempts WHERE at >= $1 GROUP BY hour, outcome ORDER BY hour, outcome",
        )
        .bind(since)
        .fetch_all(pool)
        .await?
    });
    Ok(collect(rows))
}

fn collect(rows: Vec<(String, String, i64)>) -> Vec<HourCount> {
    rows.into_iter()
        .map(|(hour, label, count)| HourCount { hour, label, count })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_sql;

    async fn task(store: &Store, id: &str, status: &str, completed_at: Option<&str>) {
        let completed_at = completed_at.map_or("NULL".to_owned(), |t| format!("'{t}'"));
        let sql = format!(
            "INSERT INTO tasks (id, status, prompt, options, model, max_tokens, timeout_seconds,
                                created_by, created_at, completed_at)
             VALUES ('{id}', '{status}', 'p', '{{}}', 'm', 1, 60, 'admin', '2026-12-01T00:00:00.000Z', {completed_at})"
        );
        test_sql::exec(store, &sql).await;
    }

    #[tokio::test]
    async fn finished_tasks_are_counted_per_hour_and_status_from_the_cut_off() {
        for (_dir, s) in test_sql::stores().await {
            task(&s, "t1", "completed", Some("2026-12-01T10:05:00.000Z")).await;
            task(&s, "t2", "completed", Some("2026-12-01T10:59:59.999Z")).await;
            task(&s, "t3", "failed", Some("2026-12-01T10:30:00.000Z")).await;
            task(&s, "t4", "cancelled", Some("2026-12-01T11:00:00.000Z")).await;
            task(&s, "t5", "completed", Some("2026-12-01T08:59:00.000Z")).await; // before the cut-off
            task(&s, "t6", "running", None).await;
            let got = tasks_finished(&s, "2026-12-01T09:00:00.000Z")
                .await
                .unwrap();
            let got: Vec<_> = got
                .iter()
                .map(|c| (c.hour.as_str(), c.label.as_str(), c.count))
                .collect();
            assert_eq!(
                got,
                [
                    ("2026-12-01T10", "completed", 2),
                    ("2026-12-01T10", "failed", 1),
                    ("2026-12-01T11", "cancelled", 1),
                ]
            );
        }
    }

    #[tokio::test]
    async fn delivery_attempts_are_classified_by_their_answer() {
        for (_dir, s) in test_sql::stores().await {
            for (i, (at, code)) in [
                ("2026-12-01T10:01:00.000Z", Some(200)),
                ("2026-12-01T10:02:00.000Z", Some(204)),
                ("2026-12-01T10:03:00.000Z", Some(500)),
                ("2026-12-01T10:04:00.000Z", None),
                ("2026-12-01T12:00:00.000Z", Some(410)),
                ("2026-12-01T07:00:00.000Z", Some(200)),
            ]
            .into_iter()
            .enumerate()
            {
                let code = code.map_or("NULL".to_owned(), |c: i64| c.to_string());
                let sql = format!(
                "INSERT INTO delivery_attempts (delivery_id, attempt, at, status_code, duration_ms)
                 VALUES ('dlv_{i}', 1, '{at}', {code}, 5)"
            );
                test_sql::exec(&s, &sql).await;
            }
            let got = delivery_attempts(&s, "2026-12-01T09:00:00.000Z")
                .await
                .unwrap();
            let got: Vec<_> = got
                .iter()
                .map(|c| (c.hour.as_str(), c.label.as_str(), c.count))
                .collect();
            assert_eq!(
                got,
                [
                    ("2026-12-01T10", "error", 1),
                    ("2026-12-01T10", "failed", 1),
                    ("2026-12-01T10", "succeeded", 2),
                    ("2026-12-01T12", "failed", 1),
                ]
            );
        }
    }
}
