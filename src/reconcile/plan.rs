//! Desired vs actual -> plan: what to create, update and delete. Pure; `claw diff` prints it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;

use crate::manifest::{Kind, Resource};
use crate::store::resources::Applied;

/// What to do with one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Delete,
    Create,
    Update,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub action: Action,
    pub kind: Kind,
    /// Shared with the resource's (or the applied map's) copy.
    pub name: Arc<str>,
}

/// Why deletes were held back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// Every manifest disappeared at once (unmounted volume, bad checkout).
    EverythingGone,
    /// A file cannot be parsed, so nobody can tell what it still declares.
    Unreadable(std::path::PathBuf),
}

/// The steps that converge actual state on desired state, deletes first.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Deletes not planned because of the prune guard, and why.
    pub held: Vec<Step>,
    pub hold: Option<Hold>,
}

/// What the planner may not do.
#[derive(Debug, Default)]
pub struct Guards<'a> {
    /// Kind/name pairs declared by invalid documents: never deleted.
    pub claimed: HashSet<(Kind, &'a str)>,
    /// Set when deletes must wait (see [`Hold`]).
    pub hold: Option<Hold>,
    /// The operator confirmed that an empty manifests dir really means "delete everything".
    pub prune_confirmed: bool,
}

/// What to do about one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Desired and actual agree.
    Nothing,
    /// This step converges them.
    Do(Step),
    /// A delete the prune guard holds back.
    Held(Step),
}

/// Decides one name: `desired` is the resource that takes part (if any), `actual` what was
/// applied, `claimed` whether an invalid document still names it, `hold` whether deletes must
/// wait. The Config is never deleted: without one the last applied stays.
pub fn decide(
    kind: Kind,
    name: &Arc<str>,
    desired: Option<&Resource>,
    actual: Option<&Applied>,
    claimed: bool,
    hold: bool,
) -> Decision {
    let step = |action| Step {
        action,
        kind,
        name: name.clone(),
    };
    match (desired, actual) {
        (Some(_), None) => Decision::Do(step(Action::Create)),
        (Some(r), Some(a)) if a.digest != r.digest => Decision::Do(step(Action::Update)),
        (Some(_), Some(_)) | (None, None) => Decision::Nothing,
        (None, Some(_)) if kind == Kind::Config || claimed => Decision::Nothing,
        (None, Some(_)) if hold => Decision::Held(step(Action::Delete)),
        (None, Some(_)) => Decision::Do(step(Action::Delete)),
    }
}

/// Computes the plan for a whole desired state (`claw diff`; the reconciler decides per name).
pub fn plan(
    desired: &HashMap<(Kind, &str), &Resource>,
    actual: &HashMap<(Kind, Arc<str>), Applied>,
    mut guards: Guards<'_>,
) -> Plan {
    let mut out = Plan::default();
    if desired.is_empty() && !actual.is_empty() && !guards.prune_confirmed {
        guards.hold.get_or_insert(Hold::EverythingGone);
    }
    let hold = guards.hold.is_some();
    let mut take = |decision| match decision {
        Decision::Do(step) => out.steps.push(step),
        Decision::Held(step) => out.held.push(step),
        Decision::Nothing => {}
    };
    for (&(kind, _), r) in desired {
        let name = &r.metadata.name;
        take(decide(
            kind,
            name,
            Some(r),
            actual.get(&(kind, name.clone())),
            false,
            hold,
        ));
    }
    for ((kind, name), a) in actual {
        if desired.contains_key(&(*kind, &**name)) {
            continue;
        }
        let claimed = guards.claimed.contains(&(*kind, &**name));
        take(decide(*kind, name, None, Some(a), claimed, hold));
    }
    if !out.held.is_empty() {
        out.hold = guards.hold;
    }
    out.steps
        .sort_by(|a, b| (a.action, a.kind, &a.name).cmp(&(b.action, b.kind, &b.name)));
    out.held
        .sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::load::parse_file;
    use crate::manifest::rules::Desired;
    use crate::manifest::ManifestSet;
    use std::path::Path;

    fn applied(digest: [u8; 32]) -> Applied {
        Applied {
            digest,
            revision: "r".into(),
        }
    }

    fn set_of(text: &str) -> ManifestSet {
        let mut s = ManifestSet::default();
        s.files.insert(
            Path::new("a.yaml").into(),
            parse_file(Path::new("a.yaml"), text),
        );
        s
    }

    const SKILLS: &str = "apiVersion: openclaw.dev/v1\nkind: Skill\nmetadata: {name: one}\nspec: {}\n---\napiVersion: openclaw.dev/v1\nkind: Skill\nmetadata: {name: two}\nspec: {}\n";

    #[test]
    fn creates_updates_and_deletes_deletes_first() {
        let set = set_of(SKILLS);
        let desired = Desired::of(&set, false);
        let mut actual = HashMap::new();
        actual.insert((Kind::Skill, "one".into()), applied([9; 32]));
        actual.insert((Kind::Skill, "gone".into()), applied([1; 32]));
        let p = plan(&desired.resources, &actual, Guards::default());
        let steps: Vec<_> = p.steps.iter().map(|s| (s.action, &*s.name)).collect();
        assert_eq!(
            steps,
            vec![
                (Action::Delete, "gone"),
                (Action::Create, "two"),
                (Action::Update, "one")
            ]
        );
    }

    #[test]
    fn an_emptied_dir_holds_every_delete_until_confirmed() {
        let set = ManifestSet::default();
        let desired = Desired::of(&set, false);
        let mut actual = HashMap::new();
        actual.insert((Kind::Token, "admin".into()), applied([1; 32]));
        let p = plan(&desired.resources, &actual, Guards::default());
        assert!(p.steps.is_empty());
        assert_eq!(p.held.len(), 1);
        assert_eq!(p.hold, Some(Hold::EverythingGone));
        let confirmed = Guards {
            prune_confirmed: true,
            ..Guards::default()
        };
        assert_eq!(plan(&desired.resources, &actual, confirmed).steps.len(), 1);
    }

    #[test]
    fn claimed_names_and_the_config_are_never_deleted() {
        let set = set_of(SKILLS);
        let desired = Desired::of(&set, false);
        let mut actual = HashMap::new();
        actual.insert((Kind::Token, "typo".into()), applied([1; 32]));
        actual.insert((Kind::Config, "default".into()), applied([1; 32]));
        let mut guards = Guards::default();
        guards.claimed.insert((Kind::Token, "typo"));
        let p = plan(&desired.resources, &actual, guards);
        assert!(
            p.steps.iter().all(|s| s.action != Action::Delete),
            "{:?}",
            p.steps
        );
    }
}
