//! Step four of a pass, *apply*: the planned steps in one short database transaction, through
//! the kind handlers' fast parts (see [`super::handler`]), with the `resources` rows that say
//! what is applied. Nothing here waits on the network or a process: the handlers' slow parts
//! run afterwards, in the scheduler.
//!
//! With replicas the rows (`resources`, tokens, webhook endpoints, schedules) are one picture
//! written by the leader alone (SPEC §6, single duties): a replica that does not lead runs the
//! same transaction, so its handlers stage the same runtime state (tokens, Config, …), then
//! rolls it back instead of committing, and publishes what its handlers staged.

use std::sync::Arc;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::handler::{ApplyError, Handler, Outcome};
use super::plan::{Action, Step};
use crate::manifest::Resource;
use crate::store::resources::{self, Applied};
use crate::store::Store;

/// What one step came to.
pub struct StepResult {
    pub step: Step,
    pub result: Result<Outcome, ApplyError>,
    /// What a create or update applies (the reconciler records it when the step succeeded).
    pub applied: Option<Applied>,
}

/// Applies `steps` (each with its desired resource for create / update) in one transaction;
/// publishes the handlers' staged changes when it commits, discards them when it does not.
/// Unless `writes_rows` (a replica that does not lead), the transaction is rolled back once
/// every step succeeded in it: the staged changes are published, the rows left to the leader.
pub async fn apply(
    store: &Store,
    handlers: &[Arc<dyn Handler>],
    steps: Vec<(Step, Option<&Resource>)>,
    revision: &Arc<str>,
    now: OffsetDateTime,
    writes_rows: bool,
) -> Vec<StepResult> {
    let mut tx = match store.begin().await {
        Ok(tx) => tx,
        Err(e) => {
            return steps
                .into_iter()
                .map(|(step, _)| StepResult {
                    step,
                    result: Err(ApplyError::new("StoreError", e.to_string())),
                    applied: None,
                })
                .collect()
        }
    };
    let handler = |step: &Step| {
        handlers
            .iter()
            .find(|h| h.kind() == step.kind)
            .unwrap_or(&handlers[0])
            .clone()
    };
    let mut results = Vec::with_capacity(steps.len());
    let mut rows = Vec::new();
    let mut i = 0;
    while i < steps.len() {
        let (step, desired) = &steps[i];
        let h = handler(step);
        let Some(r) = (*desired).filter(|_| step.action != Action::Delete) else {
            let mut result = h
                .delete(&mut tx, &step.name)
                .await
                .map(|()| Outcome::applied("deleted"));
            if result.is_ok() {
                if let Err(e) = resources::delete(&mut tx, step.kind, &step.name).await {
                    result = Err(e.into());
                }
            }
            results.push((result, None));
            i += 1;
            continue;
        };
        // Creates and updates of one kind go to the handler together (steps are sorted by
        // action and kind), so it can batch its rows.
        let mut batch = vec![r];
        let mut end = i + 1;
        while let Some((next, Some(d))) = steps.get(end) {
            if next.action == Action::Delete || next.kind != step.kind {
                break;
            }
            batch.push(*d);
            end += 1;
        }
        let outcomes = h.apply_many(&mut tx, &batch).await;
        for (r, result) in batch.into_iter().zip(outcomes) {
            if result.is_ok() {
                rows.push(resources::Row {
                    kind: r.kind,
                    name: r.name(),
                    digest: r.digest,
                    spec: serde_json::to_string(&r.spec).unwrap_or_default(),
                });
            }
            let applied = Applied {
                digest: r.digest,
                revision: revision.clone(),
            };
            results.push((result, Some(applied)));
        }
        i = end;
    }
    let applied_at = now.format(&Rfc3339).unwrap_or_default();
    // One multi-row statement per chunk: at start-up this is thousands of rows.
    let recorded = resources::upsert_many(&mut tx, &rows, revision, &applied_at).await;
    drop(rows);
    let committed = match recorded {
        Ok(()) if writes_rows => tx.commit().await,
        Ok(()) => tx.rollback().await,
        Err(e) => Err(e),
    };
    match &committed {
        Ok(()) => handlers.iter().for_each(|h| h.publish()),
        Err(_) => handlers.iter().for_each(|h| h.discard()),
    }
    steps
        .into_iter()
        .zip(results)
        .map(|((step, _), (mut result, applied))| {
            if let (Err(e), Ok(_)) = (&committed, &result) {
                result = Err(ApplyError::new("StoreError", e.to_string()));
            }
            StepResult {
                step,
                result,
                applied,
            }
        })
        .collect()
}
