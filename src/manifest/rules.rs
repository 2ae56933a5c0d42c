//! Cross-resource rules: what no single document can be checked for alone.
//!
//! - a kind and name pair is declared once (later duplicates, in path order, are reported and
//!   left out of the desired state);
//! - exactly one Config, named `default`.
//!
//! The result is the desired state: the resources that take part in reconciliation.

use std::collections::HashMap;

use super::{Diagnostic, Kind, ManifestSet, Resource};

/// The name the one Config must have.
pub const CONFIG_NAME: &str = "default";

/// Resources that take part, keyed by kind and name, plus what the rules found.
#[derive(Debug, Default)]
pub struct Desired<'a> {
    pub resources: HashMap<(Kind, &'a str), &'a Resource>,
    pub diagnostics: Vec<Diagnostic>,
}

impl<'a> Desired<'a> {
    /// Applies the rules to every resource of `set`. `require_config` is false when only some
    /// files of a tree are checked (then a missing Config is somebody else's file).
    pub fn of(set: &'a ManifestSet, require_config: bool) -> Desired<'a> {
        let mut desired = Desired {
            resources: HashMap::with_capacity(set.files.values().map(|f| f.resources.len()).sum()),
            diagnostics: Vec::new(),
        };
        for r in set.resources() {
            desired.admit(r);
        }
        if require_config && !desired.resources.contains_key(&(Kind::Config, CONFIG_NAME)) {
            desired.diagnostics.push(missing_config());
        }
        desired
    }

    fn admit(&mut self, r: &'a Resource) {
        if let Some(d) = misnamed_config(r) {
            self.diagnostics.push(d);
            return;
        }
        match self.resources.entry((r.kind, r.name())) {
            std::collections::hash_map::Entry::Occupied(first) => {
                self.diagnostics.push(duplicate(r, first.get()));
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(r);
            }
        }
    }
}

/// The rules for one kind and name, given every resource declaring it in file order: the one
/// that takes part (the first) and the errors of the others. The reconciler applies this per
/// changed name; [`Desired::of`] applies the same rules to a whole set.
pub fn admit_one<'a>(
    declared: impl IntoIterator<Item = &'a Resource>,
) -> (Option<&'a Resource>, Vec<Diagnostic>) {
    let mut first: Option<&Resource> = None;
    let mut diagnostics = Vec::new();
    for r in declared {
        if let Some(d) = misnamed_config(r) {
            diagnostics.push(d);
            continue;
        }
        match first {
            Some(f) => diagnostics.push(duplicate(r, f)),
            None => first = Some(r),
        }
    }
    (first, diagnostics)
}

/// The message when no Config named `default` is declared.
pub fn missing_config() -> Diagnostic {
    Diagnostic::global(format!(
        "no Config named \"{CONFIG_NAME}\": add one (`claw init` writes it); the last applied config stays in force"
    ))
}

fn misnamed_config(r: &Resource) -> Option<Diagnostic> {
    (r.kind == Kind::Config && r.name() != CONFIG_NAME).then(|| {
        error_at(
            r,
            "/metadata/name",
            format!("the Config must be named \"{CONFIG_NAME}\""),
        )
    })
}

fn duplicate(r: &Resource, first: &Resource) -> Diagnostic {
    let o = &first.origin;
    error_at(
        r,
        "/metadata/name",
        format!(
            "duplicate {}: already declared at {}:{}:{}",
            r.display_name(),
            o.file.display(),
            o.line,
            o.column
        ),
    )
}

fn error_at(r: &Resource, pointer: &str, message: String) -> Diagnostic {
    Diagnostic {
        file: r.origin.file.to_path_buf(),
        line: r.origin.line,
        column: r.origin.column,
        kind: Some(r.kind),
        name: Some(r.name().to_owned()),
        pointer: pointer.to_owned(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::load::parse_file;
    use std::path::Path;

    fn set(files: &[(&str, &str)]) -> ManifestSet {
        let mut s = ManifestSet::default();
        for (path, text) in files {
            s.files
                .insert(Path::new(path).into(), parse_file(Path::new(path), text));
        }
        s
    }

    const CONFIG: &str = "apiVersion: openclaw.dev/v1\nkind: Config\nmetadata: {name: default}\n";

    #[test]
    fn duplicates_are_reported_at_the_later_file_and_left_out() {
        let skill = "apiVersion: openclaw.dev/v1\nkind: Skill\nmetadata: {name: git}\nspec: {}\n";
        let s = set(&[("a.yaml", CONFIG), ("b.yaml", skill), ("c.yaml", skill)]);
        let d = Desired::of(&s, true);
        assert_eq!(d.resources.len(), 2);
        assert_eq!(
            d.resources[&(Kind::Skill, "git")].origin.file.as_ref(),
            Path::new("b.yaml")
        );
        assert_eq!(d.diagnostics.len(), 1);
        assert_eq!(d.diagnostics[0].file, Path::new("c.yaml"));
        assert!(d.diagnostics[0]
            .message
            .contains("already declared at b.yaml:1:1"));
    }

    #[test]
    fn exactly_one_config_named_default() {
        let other = "apiVersion: openclaw.dev/v1\nkind: Config\nmetadata: {name: prod}\n";
        let s = set(&[("a.yaml", other)]);
        // The schema already pins the name; the rule then finds no Config at all.
        let file_errors: Vec<_> = s.file_diagnostics().map(|d| d.message.as_str()).collect();
        assert_eq!(file_errors, vec!["must be \"default\""]);
        let d = Desired::of(&s, true);
        let messages: Vec<_> = d.diagnostics.iter().map(|d| d.message.as_str()).collect();
        assert!(
            messages.iter().any(|m| m.starts_with("no Config named")),
            "{messages:?}"
        );
        assert!(Desired::of(&set(&[]), false).diagnostics.is_empty());
        let two = set(&[("a.yaml", CONFIG), ("b.yaml", CONFIG)]);
        assert_eq!(Desired::of(&two, true).diagnostics.len(), 1);
    }
}
