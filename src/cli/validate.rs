//! `claw validate`: check manifests without a server, for CI. Exit 0 valid, 1 invalid, 2 usage
//! or I/O error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::ValueEnum;

use crate::manifest::load::load_path;
use crate::manifest::rules::Desired;
use crate::manifest::{Diagnostic, ManifestSet};

/// Output formats of `validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `FILE:LINE:COL: KIND/NAME: message`
    Text,
    /// One JSON object per error, one per line.
    Json,
    /// GitHub Actions annotations.
    Github,
}

/// Flags of `claw validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or directories to check.
    #[arg(default_value = "manifests")]
    paths: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

/// Validates and prints every error found.
pub fn run(args: Args) -> ExitCode {
    let mut found: Vec<(PathBuf, Diagnostic)> = Vec::new();
    let (mut files, mut resources) = (0, 0);
    for path in &args.paths {
        let (root, set, whole_dir) = match load(path) {
            Ok(loaded) => loaded,
            Err(e) => {
                eprintln!("claw validate: {}: {e}", path.display());
                return ExitCode::from(2);
            }
        };
        files += set.files.len();
        resources += set.resources().count();
        let desired = Desired::of(&set, whole_dir);
        for d in set.file_diagnostics().cloned().chain(desired.diagnostics) {
            found.push((root.clone(), d));
        }
    }
    for (root, d) in &found {
        match args.format {
            Format::Text => println!("{}", d.display_in(root)),
            Format::Json => println!("{}", d.to_json_in(root)),
            Format::Github => println!("{}", d.to_github_in(root)),
        }
    }
    eprintln!(
        "{files} file(s), {resources} valid resource(s), {} error(s)",
        found.len()
    );
    if found.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// A directory is a whole manifests tree; a file is checked on its own (the rule that a tree
/// has one Config is left to the tree).
fn load(path: &Path) -> std::io::Result<(PathBuf, ManifestSet, bool)> {
    let meta = std::fs::metadata(path)?;
    if meta.is_dir() {
        return Ok((path.to_path_buf(), ManifestSet::load(path)?, true));
    }
    let mut set = ManifestSet::default();
    if let Some(load) = load_path(Path::new(""), path)? {
        set.files.insert(load.shared_path(path), load);
    }
    Ok((PathBuf::new(), set, false))
}
