//! One trait implementation per WIT interface the host provides to plugins, and the way host
//! work for a plugin runs: off the async threads, abandoned with its call.

pub mod inference;
pub mod model_builder;
pub mod preprocessing;
pub mod services;
pub mod types;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether the plugin call that asked for some host work was abandoned (timed out, cancelled,
/// failed): long work checks it between its stages and stops.
#[derive(Clone, Debug, Default)]
pub struct Abandoned(Arc<AtomicBool>);

impl Abandoned {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// `Err` once the call was abandoned, for `?` between stages.
    pub fn check(&self) -> Result<(), String> {
        if self.is_set() {
            Err("the step was stopped".into())
        } else {
            Ok(())
        }
    }
}

/// Sets the flag when the future awaiting the work is dropped before it finished.
struct SetOnDrop(Abandoned, bool);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        if !self.1 {
            self.0.0.store(true, Ordering::Relaxed);
        }
    }
}

/// Host work for plugins running at once, over every step of the process: a piece of work
/// that cannot stop between its checks (tract optimising a model) goes on after its call was
/// abandoned, so without a bound, steps timing out one after another would pile such work up
/// on the blocking threads.
fn host_work_slots() -> &'static Arc<tokio::sync::Semaphore> {
    static SLOTS: std::sync::OnceLock<Arc<tokio::sync::Semaphore>> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Arc::new(tokio::sync::Semaphore::new(cores))
    })
}

/// Runs CPU-heavy host work for a plugin (loading a model, predicting, building a graph) on a
/// blocking thread, so the step's timeout still fires while it runs, and under
/// `catch_unwind`, so a panic in it fails the work, not the process. When the call is dropped
/// (its timeout fired), the work is told through [`Abandoned`] and stops at its next check.
/// At most one piece of work per core runs at once, abandoned ones included; the others wait
/// for a slot (and their own timeouts still fire while they wait).
pub async fn off_thread<T: Send + 'static>(
    work: impl FnOnce(&Abandoned) -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let abandoned = Abandoned::default();
    let mut guard = SetOnDrop(abandoned.clone(), false);
    let slot = Arc::clone(host_work_slots())
        .acquire_owned()
        .await
        .map_err(|_| "the host is shutting down".to_string())?;
    let outcome = tokio::task::spawn_blocking(move || {
        // Held until the work is done, whether or not anyone still waits for it.
        let _slot = slot;
        abandoned.check()?;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&abandoned)))
            .unwrap_or_else(|_| Err("the host panicked doing it".into()))
    })
    .await
    .unwrap_or_else(|_| Err("the host's thread failed".into()));
    guard.1 = true;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn host_work_runs_one_piece_per_core_at_most_abandoned_or_not() {
        use std::sync::atomic::AtomicUsize;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (started, mut first_started) = tokio::sync::mpsc::unbounded_channel();
        let calls: Vec<_> = (0..cores * 4)
            .map(|_| {
                let (running, most, started) = (running.clone(), most.clone(), started.clone());
                tokio::spawn(off_thread(move |_| {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    let _ = started.send(());
                    // Work that does not look at whether it was abandoned.
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok(())
                }))
            })
            .collect();
        // Once work runs, half the calls give up: what of theirs started holds its slot.
        first_started.recv().await.unwrap();
        for call in calls.iter().step_by(2) {
            call.abort();
        }
        for call in calls {
            let _ = call.await;
        }
        while host_work_slots().available_permits() < cores {
            tokio::task::yield_now().await;
        }
        assert!(most.load(Ordering::SeqCst) <= cores, "{most:?} > {cores}");
    }

    #[tokio::test]
    async fn dropped_work_is_told_to_stop() {
        let (started, wait) = std::sync::mpsc::channel();
        let (seen, result) = std::sync::mpsc::channel();
        let work = off_thread(move |abandoned| {
            started.send(()).unwrap();
            // Spins until told: the call above gives up on it.
            while !abandoned.is_set() {
                std::thread::yield_now();
            }
            seen.send(abandoned.check()).unwrap();
            Ok(())
        });
        let waiting = tokio::spawn(work);
        tokio::task::spawn_blocking(move || wait.recv().unwrap())
            .await
            .unwrap();
        waiting.abort();
        let told = tokio::task::spawn_blocking(move || result.recv().unwrap())
            .await
            .unwrap();
        assert_eq!(told, Err("the step was stopped".to_string()));
        assert_eq!(
            off_thread(|_| -> Result<(), String> { panic!("inside") }).await,
            Err("the host panicked doing it".to_string())
        );
    }
}
