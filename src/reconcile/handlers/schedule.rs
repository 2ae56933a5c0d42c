//! The Schedule handler: its fast part stores the applied spec in the `schedules` table (a
//! changed spec restarts the schedule's clock) and wakes the schedule runner
//! (`schedules::runner`), which fires the slots. Nothing slow: a Schedule is Ready as soon
//! as it is stored.

use std::sync::Arc;

use crate::store::Tx;
use async_trait::async_trait;

use crate::live::Live;
use crate::manifest::{Kind, Resource, Spec};
use crate::reconcile::handler::{ApplyError, Handler, Outcome};
use crate::schedules::timing::Timing;
use crate::store;

/// Stores Schedule specs for the runner.
pub struct ScheduleHandler {
    live: Arc<Live>,
}

impl ScheduleHandler {
    /// A handler waking the runner through `live`.
    pub fn new(live: Arc<Live>) -> Self {
        ScheduleHandler { live }
    }
}

#[async_trait]
impl Handler for ScheduleHandler {
    fn kind(&self) -> Kind {
        Kind::Schedule
    }

    async fn apply(&self, tx: &mut Tx, r: &Resource) -> Result<Outcome, ApplyError> {
        let Spec::Schedule(spec) = &r.spec else {
            return Err(ApplyError::new("WrongKind", "not a Schedule"));
        };
        // The loader checked these already; a spec that still fails is refused, not stored.
        let timing =
            Timing::of(spec).map_err(|e| ApplyError::new("InvalidTiming", e.to_string()))?;
        let json = serde_json::to_string(spec)
            .map_err(|e| ApplyError::new("InvalidSpec", e.to_string()))?;
        let now = crate::tasks::service::timestamp(time::OffsetDateTime::now_utc());
        store::schedules::upsert(tx, r.name(), &json, &now).await?;
        let when = match (&timing, spec) {
            (Timing::Cron { .. }, s) => format!(
                "cron \"{}\" in {}",
                s.cron.as_deref().unwrap_or_default(),
                s.timezone.as_deref().unwrap_or("UTC")
            ),
            (Timing::Every { .. }, s) => {
                format!("every {}", s.every.as_deref().unwrap_or_default())
            }
            (Timing::At { .. }, _) => "once".to_owned(),
        };
        Ok(if spec.suspend {
            Outcome {
                reason: "Suspended",
                message: format!("{when}; suspend: true, no slot fires (POST /run still does)"),
            }
        } else {
            Outcome {
                reason: "Scheduled",
                message: when,
            }
        })
    }

    async fn delete(&self, tx: &mut Tx, name: &str) -> Result<(), ApplyError> {
        store::schedules::delete(tx, name).await?;
        Ok(())
    }

    fn publish(&self) {
        self.live.schedules.notify_one();
    }
}
