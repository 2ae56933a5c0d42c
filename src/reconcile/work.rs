//! The loop's side of slow work: which job runs for which resource, retries with backoff,
//! and the `reconcile` callers waiting for the jobs their pass started. The jobs themselves
//! run in the [`scheduler`](super::scheduler); their results come back to the loop, which
//! alone records them.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::controller::{Repaired, Report};
use super::handler::{Handler, Job, WorkResult};
use super::index::{Key, KeyMap};
use super::scheduler::{Done, Scheduler};
use super::Request;
use crate::manifest::Digest;

/// Slow jobs running at once (downloads, start-ups), across all resources.
const WORK_LIMIT: usize = 32;
/// Backoff of failed slow work: the first retry after this, doubling ...
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// ... up to this.
const RETRY_MAX: Duration = Duration::from_secs(300);

/// Why a slow job was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Apply,
    Resync,
    Delete,
}

/// What a slow job reports back: why it ran, for which spec, and how it ended.
pub type Finished = (Purpose, Option<Digest>, WorkResult);

/// A `reconcile` caller waiting for the slow work of its pass.
struct Waiter {
    outstanding: HashSet<u64>,
    report: Report,
    reply: oneshot::Sender<Report>,
}

/// Slow work in flight, failing, and waited for.
pub struct Work {
    scheduler: Scheduler<Key, Finished>,
    /// The job running or waiting per resource, by id.
    inflight: KeyMap<u64>,
    /// Resources whose slow work failed, with the attempts so far (for the backoff).
    retries: KeyMap<u32>,
    waiters: Vec<Waiter>,
    /// The loop's own mailbox, for retries when their backoff has passed.
    requests: mpsc::UnboundedSender<Request>,
}

impl Work {
    /// Bookkeeping for a loop whose mailbox is `requests`; results arrive on the receiver.
    pub fn new(
        requests: mpsc::UnboundedSender<Request>,
    ) -> (Work, mpsc::UnboundedReceiver<Done<Key, Finished>>) {
        let (scheduler, done) = Scheduler::new(WORK_LIMIT);
        let work = Work {
            scheduler,
            inflight: KeyMap::default(),
            retries: KeyMap::default(),
            waiters: Vec::new(),
            requests,
        };
        (work, done)
    }

    /// Hands `job` for `key` to the scheduler if its kind has slow work; returns the job's id.
    pub fn schedule(
        &mut self,
        handlers: &[Arc<dyn Handler>],
        key: &Key,
        job: Job,
        purpose: Purpose,
        generation: Option<Digest>,
    ) -> Option<u64> {
        let handler = handlers
            .iter()
            .find(|h| h.kind() == key.0 && h.has_work())?
            .clone();
        let id = self.scheduler.schedule(
            key.clone(),
            Box::new(move |cancel| {
                Box::pin(async move {
                    let result = match handler.work(job, cancel) {
                        Some(work) => work.await,
                        None => Ok(None),
                    };
                    (purpose, generation, result)
                })
            }),
        );
        self.inflight.insert(key.clone(), id);
        Some(id)
    }

    /// True while a job for `key` runs or waits.
    pub fn busy(&self, key: &Key) -> bool {
        self.inflight.contains_key(key)
    }

    /// True while `key`'s slow work is failing (and retried).
    pub fn failing(&self, key: &Key) -> bool {
        self.retries.contains_key(key)
    }

    /// `key`'s slow work succeeded, or the resource is gone: no more retries.
    pub fn settled(&mut self, key: &Key) {
        self.retries.remove(key);
    }

    /// Takes note that a job ended (however it ended), and what it repaired: the waiters that
    /// counted on it report that.
    pub fn ended<T>(&mut self, done: &Done<Key, T>, repaired: Option<Repaired>) {
        if self.inflight.get(&done.key) == Some(&done.id) {
            self.inflight.remove(&done.key);
        }
        for w in &mut self.waiters {
            if w.outstanding.remove(&done.id) {
                w.report.repaired.extend(repaired.clone());
            }
        }
    }

    /// Asks the loop to try `key` again after a backoff (1 s, doubling, at most 5 min), if its
    /// spec is still `generation` then.
    pub fn requeue(&mut self, key: Key, generation: Digest) {
        let attempts = self.retries.entry(key.clone()).or_insert(0);
        *attempts += 1;
        let delay = RETRY_FIRST
            .saturating_mul(1 << (*attempts - 1).min(16))
            .min(RETRY_MAX);
        let requests = self.requests.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = requests.send(Request::Retry { key, generation });
        });
    }

    /// Replies with `report` now, or (`wait`) once every job of `jobs` has ended (each is
    /// reported exactly once, superseded ones included, so none is waited for in vain).
    pub fn reply(
        &mut self,
        report: Report,
        jobs: Vec<u64>,
        wait: bool,
        reply: oneshot::Sender<Report>,
    ) {
        let outstanding: HashSet<u64> = jobs.into_iter().collect();
        if !wait || outstanding.is_empty() {
            let _ = reply.send(report);
        } else {
            self.waiters.push(Waiter {
                outstanding,
                report,
                reply,
            });
        }
    }

    /// Answers the waiters whose jobs have all ended, with the problems in force now.
    pub fn release(&mut self, errors: usize) {
        let mut i = 0;
        while i < self.waiters.len() {
            if self.waiters[i].outstanding.is_empty() {
                let mut w = self.waiters.swap_remove(i);
                w.report.errors = errors;
                let _ = w.reply.send(w.report);
            } else {
                i += 1;
            }
        }
    }

    /// Cancels every job (shutdown).
    pub fn cancel_all(&self) {
        self.scheduler.cancel_all();
    }
}
