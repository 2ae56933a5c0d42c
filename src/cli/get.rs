//! `claw get [KIND]`: a running server's declared resources and their status, as a table or
//! (`-o json`) as the API's JSON items.

use std::process::ExitCode;

use serde_json::Value;

use crate::client::Client;

/// Flags of `claw get`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this kind (Config, Token, Skill, Webhook, McpServer).
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
    let items = match client.resources(args.kind.as_deref()).await {
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

/// Left-aligned columns, two spaces apart, with a header row.
fn table(items: &[Value]) -> String {
    const HEADER: [&str; 6] = ["KIND", "NAME", "READY", "REASON", "REVISION", "FILE"];
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let rows: Vec<[String; 6]> = items
        .iter()
        .map(|i| {
            [
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
    let mut widths = HEADER.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                l += cell;
            } else {
                l += &format!("{cell:<w$}  ");
            }
        }
        out += l.trim_end();
        out.push('\n');
    };
    line(&HEADER);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    out
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
}
