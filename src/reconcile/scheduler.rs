//! The keyed scheduler for slow work (skill downloads, MCP start-ups), in the manner of
//! kube-runtime's `scheduler` + `runner`.
//!
//! - One resource is never worked on twice at once: a job for a key whose previous job is still
//!   running waits for it to end, and the running one is cancelled (its result is reported as
//!   cancelled and the reconciler discards it).
//! - Repeated triggers coalesce: a key holds at most one pending job, the newest; a replaced
//!   pending job is reported as superseded at once.
//! - Different resources run side by side, at most `limit` at a time.
//! - Every scheduled job is reported exactly once on the `done` channel, so whoever waits for a
//!   set of jobs (an explicit `POST /api/v1/reconcile`) can count them off.
//!
//! The scheduler knows nothing of resources or handlers: a job is a key, an id and a future.
//! Requeue with backoff is the reconciler's decision (see `controller.rs`).

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

/// The future a job runs; it should stop soon after its token is cancelled.
pub type JobFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Makes a job's future once the job may start.
pub type MakeJob<T> = Box<dyn FnOnce(CancellationToken) -> JobFuture<T> + Send>;

/// How a job ended.
#[derive(Debug)]
pub enum Ended<T> {
    /// It ran to the end with this result.
    Finished(T),
    /// It was cancelled while running (a newer job for its key, or `cancel`).
    Cancelled,
    /// A newer job for its key replaced it before it started.
    Superseded,
}

/// A job's report.
#[derive(Debug)]
pub struct Done<K, T> {
    pub key: K,
    pub id: u64,
    pub ended: Ended<T>,
}

struct Pending<T> {
    id: u64,
    make: MakeJob<T>,
}

struct Slot<T> {
    running: Option<(u64, CancellationToken)>,
    pending: Option<Pending<T>>,
}

struct Inner<K, T> {
    slots: Mutex<HashMap<K, Slot<T>>>,
    permits: Arc<Semaphore>,
    done: mpsc::UnboundedSender<Done<K, T>>,
    next_id: std::sync::atomic::AtomicU64,
}

/// The scheduler handle; cheap to clone.
pub struct Scheduler<K, T> {
    inner: Arc<Inner<K, T>>,
}

impl<K, T> Clone for Scheduler<K, T> {
    fn clone(&self) -> Self {
        Scheduler {
            inner: self.inner.clone(),
        }
    }
}

impl<K, T> Scheduler<K, T>
where
    K: Clone + Eq + Hash + Send + 'static,
    T: Send + 'static,
{
    /// A scheduler running at most `limit` jobs at once, reporting on the returned channel.
    pub fn new(limit: usize) -> (Self, mpsc::UnboundedReceiver<Done<K, T>>) {
        let (done, rx) = mpsc::unbounded_channel();
        let inner = Inner {
            slots: Mutex::new(HashMap::new()),
            permits: Arc::new(Semaphore::new(limit.max(1))),
            done,
            next_id: std::sync::atomic::AtomicU64::new(1),
        };
        (
            Scheduler {
                inner: Arc::new(inner),
            },
            rx,
        )
    }

    /// Schedules `make` for `key` and returns the job's id. A running job of the same key is
    /// cancelled and this one starts when it has ended; a pending one is replaced.
    pub fn schedule(&self, key: K, make: MakeJob<T>) -> u64 {
        let id = self
            .inner
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut slots = lock(&self.inner.slots);
        let slot = slots.entry(key.clone()).or_insert(Slot {
            running: None,
            pending: None,
        });
        match &slot.running {
            Some((_, cancel)) => {
                cancel.cancel();
                if let Some(old) = slot.pending.replace(Pending { id, make }) {
                    let _ = self.inner.done.send(Done {
                        key,
                        id: old.id,
                        ended: Ended::Superseded,
                    });
                }
            }
            None => {
                let cancel = CancellationToken::new();
                slot.running = Some((id, cancel.clone()));
                drop(slots);
                Inner::start(self.inner.clone(), key, id, make, cancel);
            }
        }
        id
    }

    /// Cancels whatever runs or waits for `key`.
    pub fn cancel(&self, key: &K) {
        let mut slots = lock(&self.inner.slots);
        if let Some(slot) = slots.get_mut(key) {
            if let Some((_, cancel)) = &slot.running {
                cancel.cancel();
            }
            if let Some(old) = slot.pending.take() {
                let _ = self.inner.done.send(Done {
                    key: key.clone(),
                    id: old.id,
                    ended: Ended::Superseded,
                });
            }
        }
    }

    /// Cancels every job (shutdown).
    pub fn cancel_all(&self) {
        let keys: Vec<K> = lock(&self.inner.slots).keys().cloned().collect();
        for key in keys {
            self.cancel(&key);
        }
    }

    /// Keys with a job running or waiting.
    pub fn busy(&self) -> usize {
        lock(&self.inner.slots).len()
    }
}

impl<K, T> Inner<K, T>
where
    K: Clone + Eq + Hash + Send + 'static,
    T: Send + 'static,
{
    fn start(this: Arc<Self>, key: K, id: u64, make: MakeJob<T>, cancel: CancellationToken) {
        tokio::spawn(async move {
            let ended = {
                let _permit = tokio::select! {
                    permit = this.permits.clone().acquire_owned() => permit.ok(),
                    _ = cancel.cancelled() => None,
                };
                if cancel.is_cancelled() {
                    Ended::Cancelled
                } else {
                    let result = make(cancel.clone()).await;
                    if cancel.is_cancelled() {
                        Ended::Cancelled
                    } else {
                        Ended::Finished(result)
                    }
                }
            };
            let _ = this.done.send(Done {
                key: key.clone(),
                id,
                ended,
            });
            let next = {
                let mut slots = lock(&this.slots);
                let Some(slot) = slots.get_mut(&key) else {
                    return;
                };
                match slot.pending.take() {
                    Some(next) => {
                        let cancel = CancellationToken::new();
                        slot.running = Some((next.id, cancel.clone()));
                        Some((next, cancel))
                    }
                    None => {
                        slots.remove(&key);
                        None
                    }
                }
            };
            if let Some((next, cancel)) = next {
                Inner::start(this, key, next.id, next.make, cancel);
            }
        });
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn job(started: Arc<AtomicUsize>, gate: Arc<tokio::sync::Notify>, value: u32) -> MakeJob<u32> {
        Box::new(move |cancel: CancellationToken| {
            Box::pin(async move {
                started.fetch_add(1, Ordering::SeqCst);
                tokio::select! {
                    _ = gate.notified() => value,
                    _ = cancel.cancelled() => 0,
                }
            })
        })
    }

    async fn next(
        rx: &mut mpsc::UnboundedReceiver<Done<&'static str, u32>>,
    ) -> Done<&'static str, u32> {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a report within 5 s")
            .expect("the scheduler is alive")
    }

    #[tokio::test]
    async fn a_newer_job_cancels_the_running_one_and_replaces_the_pending_one() {
        let (s, mut rx) = Scheduler::new(4);
        let started = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Notify::new());
        let first = s.schedule("a", job(started.clone(), gate.clone(), 1));
        while started.load(Ordering::SeqCst) < 1 {
            tokio::task::yield_now().await;
        }
        let second = s.schedule("a", job(started.clone(), gate.clone(), 2));
        let third = s.schedule("a", job(started.clone(), gate.clone(), 3));
        // The second never starts: the third replaced it while the first was running.
        let mut seen = HashMap::new();
        for _ in 0..2 {
            let d = next(&mut rx).await;
            seen.insert(d.id, d.ended);
        }
        assert!(matches!(seen[&second], Ended::Superseded));
        assert!(matches!(seen[&first], Ended::Cancelled));
        // Only now does the third start; release it.
        while started.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        gate.notify_one();
        let d = next(&mut rx).await;
        assert_eq!(d.id, third);
        assert!(matches!(d.ended, Ended::Finished(3)));
        assert_eq!(started.load(Ordering::SeqCst), 2);
        assert_eq!(s.busy(), 0);
    }

    #[tokio::test]
    async fn different_keys_run_side_by_side_within_the_limit() {
        let (s, mut rx) = Scheduler::new(2);
        let started = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Notify::new());
        for key in ["a", "b", "c"] {
            s.schedule(key, job(started.clone(), gate.clone(), 7));
        }
        while started.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        // The third waits for a permit.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(started.load(Ordering::SeqCst), 2);
        for _ in 0..3 {
            gate.notify_one();
            let d = next(&mut rx).await;
            assert!(matches!(d.ended, Ended::Finished(7)));
        }
    }
}
