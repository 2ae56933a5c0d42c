//! `claw diff`: what `serve` would change, like `diff`: exit 0 no changes, 1 changes, 2 error.

use std::process::ExitCode;

use serde_json::json;

use crate::manifest::rules::Desired;
use crate::manifest::ManifestSet;
use crate::reconcile::plan::{self, Action, Guards, Hold};
use crate::store::{resources, Store};

/// Flags of `claw diff`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    manifests: super::ManifestsArg,
    #[command(flatten)]
    data: super::DataArg,
    #[arg(long, value_enum, default_value = "text")]
    format: super::Format,
}

/// Prints the plan.
pub async fn run(args: Args) -> ExitCode {
    let root = &args.manifests.manifests;
    let set = match ManifestSet::load(root) {
        Ok(set) => set,
        Err(e) => {
            eprintln!("claw diff: {}: {e}", root.display());
            return ExitCode::from(2);
        }
    };
    let desired = Desired::of(&set, true);
    let invalid: Vec<_> = set
        .file_diagnostics()
        .chain(desired.diagnostics.iter())
        .collect();
    if !invalid.is_empty() {
        for d in &invalid {
            eprintln!("{}", d.display_in(root));
        }
        eprintln!("claw diff: the manifests are invalid ({} error(s)); `serve` would keep the last good state for them", invalid.len());
        return ExitCode::from(2);
    }
    let actual =
        match Store::open_existing(&args.data.data, args.data.database_url.as_deref()).await {
            Ok(Some(store)) => match resources::load_all::<std::hash::RandomState>(&store).await {
                Ok(actual) => actual,
                Err(e) => {
                    eprintln!("claw diff: {e}");
                    return ExitCode::from(2);
                }
            },
            Ok(None) => Default::default(),
            Err(e) => {
                eprintln!("claw diff: {e}");
                return ExitCode::from(2);
            }
        };
    let mut guards = Guards::default();
    for (path, file) in &set.files {
        if file.unreadable && guards.hold.is_none() {
            guards.hold = Some(Hold::Unreadable(path.to_path_buf()));
        }
    }
    let plan = plan::plan(&desired.resources, &actual, guards);
    match args.format {
        super::Format::Json => {
            println!("{}", json!({ "changes": plan.steps, "held": plan.held }));
        }
        super::Format::Text => {
            for step in &plan.steps {
                let sign = match step.action {
                    Action::Create => '+',
                    Action::Update => '~',
                    Action::Delete => '-',
                };
                let file = desired
                    .resources
                    .get(&(step.kind, &*step.name))
                    .map(|r| format!("  ({})", root.join(&r.origin.file).display()))
                    .unwrap_or_default();
                println!("{sign} {}/{}{file}", step.kind, step.name);
            }
            for step in &plan.held {
                println!(
                    "! {}/{} (delete held by the prune guard)",
                    step.kind, step.name
                );
            }
            if plan.steps.is_empty() && plan.held.is_empty() {
                eprintln!("no changes");
            }
        }
    }
    if plan.steps.is_empty() && plan.held.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
