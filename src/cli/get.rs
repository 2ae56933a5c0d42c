//! `claw get [KIND]`: a running server's declared resources and their status, as a table or
//! (`-o json`) as the API's JSON items. `claw get schedules` shows the schedules' own view
//! (`GET /api/v1/schedules`: next run, last run and its outcome, skipped slots).

use std::process::ExitCode;

use serde_json::Value;

use crate::client::Client;

/// Flags of `claw get`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this kind (Config, Token, Skill, Webhook, McpServer, Schedule; any case, singular
    /// or plural).
    kind: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    output: super::Format,
    /// Server URL (default `CLAW_URL` or http://127.0.0.1:3000).
    #[arg(long)]
    url: Option<String>,
}

/// Fetches and prints the resources.
pub async fn run(args: Args) -> ExitCode {
    let client = match Client::from_env(args.url) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("claw get: {e}");
            return ExitCode::from(2);
        }
    };
    let kind = args.kind.as_deref().map(|k| {
        crate::manifest::Kind::ALL
            .into_iter()
            .find(|kind| {
                k.eq_ignore_ascii_case(kind.as_str()) || k.eq_ignore_ascii_case(kind.plural())
            })
            .map_or_else(|| k.to_owned(), |kind| kind.as_str().to_owned())
    });
    if kind.as_deref() == Some("Schedule") {
        return schedules(&client, args.output).await;
    }
    let items = match client.resources(kind.as_deref()).await {
        Ok(items) => items,
        Err(e) => {
            eprintln!("claw get: {e}");
            return ExitCode::from(1);
        }
    };
    if args.output == super::Format::Json {
        println!("{}", Value::Array(items));
    } else {
        print!("{}", table(&items));
    }
    ExitCode::SUCCESS
}

/// `claw get schedules`: every schedule with its timing, next and last run.
async fn schedules(client: &Client, output: super::Format) -> ExitCode {
    let mut items: Vec<Value> = Vec::new();
    loop {
        let path = format!("/api/v1/schedules?limit=100&offset={}", items.len());
        let page = match client.get(&path).await {
            Ok(page) => page,
            Err(e) => {
                eprintln!("claw get: {e}");
                return ExitCode::from(1);
            }
        };
        let got = page["items"].as_array().cloned().unwrap_or_default();
        let total = page["total"].as_u64().unwrap_or(0) as usize;
        let empty = got.is_empty();
        items.extend(got);
        if empty || items.len() >= total {
            break;
        }
    }
    if output == super::Format::Json {
        println!("{}", Value::Array(items));
    } else {
        print!("{}", schedule_table(&items));
    }
    ExitCode::SUCCESS
}

/// The schedules table: NAME, WHEN, SUSPEND, NEXT RUN, LAST RUN, OUTCOME, SKIPPED.
fn schedule_table(items: &[Value]) -> String {
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            let spec = &i["spec"];
            let when = if let Some(cron) = spec["cron"].as_str() {
                format!(
                    "cron {cron} ({})",
                    spec["timezone"].as_str().unwrap_or("UTC")
                )
            } else if let Some(every) = spec["every"].as_str() {
                format!("every {every}")
            } else {
                format!("at {}", text(&spec["at"]))
            };
            let last = &i["status"]["last_runs"][0];
            vec![
                text(&i["name"]),
                when,
                if i["status"]["suspended"].as_bool() == Some(true) {
                    "True".into()
                } else {
                    "False".into()
                },
                text(&i["status"]["next_runs"][0]),
                text(&last["fired_at"]),
                text(&last["outcome"]),
                i["status"]["skipped"].to_string(),
            ]
        })
        .collect();
    columns(
        &[
            "NAME", "WHEN", "SUSPEND", "NEXT RUN", "LAST RUN", "OUTCOME", "SKIPPED",
        ],
        &rows,
    )
}

/// Left-aligned columns, two spaces apart, with a header row.
fn columns(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                l += cell;
            } else {
                l += &format!("{cell:<w$}  ");
            }
        }
        out += l.trim_end();
        out.push('\n');
    };
    line(header);
    for row in rows {
        line(&row.iter().map(String::as_str).collect::<Vec<_>>());
    }
    out
}

/// Left-aligned columns, two spaces apart, with a header row.
fn table(items: &[Value]) -> String {
    const HEADER: [&str; 6] = ["KIND", "NAME", "READY", "REASON", "REVISION", "FILE"];
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            vec![
                text(&i["kind"]),
                text(&i["name"]),
                if i["ready"].as_bool() == Some(true) {
                    "True".into()
                } else {
                    "False".into()
                },
                text(&i["reason"]),
                short_revision(i["applied_revision"].as_str().unwrap_or("-")),
                format!("{}:{}", text(&i["file"]), i["line"]),
            ]
        })
        .collect();
    columns(&HEADER, &rows)
}

/// A commit id cut to 12 digits (its `-dirty` marker kept); digests as they are.
fn short_revision(revision: &str) -> String {
    let (id, dirty) = match revision.strip_suffix(crate::gitops::git::DIRTY) {
        Some(id) => (id, crate::gitops::git::DIRTY),
        None => (revision, ""),
    };
    if id.len() == 40 && id.chars().all(|c| c.is_ascii_hexdigit()) {
        format!("{}{dirty}", &id[..12])
    } else {
        revision.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns_and_shortens_commits() {
        let items = vec![serde_json::json!({
            "kind": "Token", "name": "admin", "ready": true, "reason": "Applied",
            "applied_revision": format!("{}-dirty", "a".repeat(40)),
            "file": "tokens/admin.yaml", "line": 1
        })];
        assert_eq!(
            table(&items),
            "KIND   NAME   READY  REASON   REVISION            FILE\n\
             Token  admin  True   Applied  aaaaaaaaaaaa-dirty  tokens/admin.yaml:1\n"
        );
    }

    #[test]
    fn schedule_table_shows_timing_next_and_last_run() {
        let items = vec![serde_json::json!({
            "name": "nightly",
            "spec": {"cron": "30 2 * * *", "timezone": "Europe/Berlin", "prompt": "p"},
            "status": {"suspended": false, "next_runs": ["2026-03-30T00:30:00.000Z"],
                       "last_runs": [{"fired_at": "2026-03-28T01:30:00.000Z", "outcome": "completed"}],
                       "skipped": 2}
        })];
        assert_eq!(
            schedule_table(&items),
            "NAME     WHEN                             SUSPEND  NEXT RUN                  LAST RUN                  OUTCOME    SKIPPED\n\
             nightly  cron 30 2 * * * (Europe/Berlin)  False    2026-03-30T00:30:00.000Z  2026-03-28T01:30:00.000Z  completed  2\n"
        );
    }
}
