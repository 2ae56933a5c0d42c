//! Schedules: tasks that run on their own (SPEC §3 Schedule). The reconciler's Schedule
//! handler (`reconcile/handlers/schedule.rs`) stores each applied spec in the `schedules`
//! table (`store/schedules.rs`); [`runner`] fires their slots as tasks; [`timing`] says when
//! the slots are (cron in an IANA zone, every, at). The API (`api/schedules.rs`) writes
//! Schedule manifests back and reads the table for status, next runs and history.

pub mod runner;
pub mod timing;

pub use runner::Runner;
