//! `claw skill pack DIR --registry REG [--version V]`: adds a skill directory to a directory
//! registry (see [`crate::skills::pack`]).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

/// The `skill` verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Pack a skill directory (with a SKILL.md) into a registry directory.
    #[command(disable_version_flag = true)]
    Pack(PackArgs),
}

/// Arguments of `claw skill pack`.
#[derive(Debug, clap::Args)]
pub struct PackArgs {
    /// The skill directory (holding SKILL.md).
    dir: PathBuf,
    /// The registry directory to add it to (created if missing).
    #[arg(long)]
    registry: PathBuf,
    /// The version; defaults to `version` in the SKILL.md front matter.
    #[arg(long)]
    version: Option<String>,
}

/// Runs a `skill` verb.
pub fn run(command: Command) -> ExitCode {
    match command {
        Command::Pack(args) => {
            match crate::skills::pack::pack(&args.dir, &args.registry, args.version.as_deref()) {
                Ok(p) => {
                    if p.added {
                        eprintln!(
                            "added {} {} to {}",
                            p.name,
                            p.version,
                            args.registry.display()
                        );
                    } else {
                        eprintln!(
                            "{} {} is already in {} with the same content",
                            p.name,
                            p.version,
                            args.registry.display()
                        );
                    }
                    println!("{} sha256:{}", p.archive.display(), p.sha256);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("claw skill pack: {e}");
                    ExitCode::from(if matches!(e, crate::skills::SkillError::Io { .. }) {
                        2
                    } else {
                        1
                    })
                }
            }
        }
    }
}
