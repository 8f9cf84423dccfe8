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

/// Runs CPU-heavy host work for a plugin (loading a model, predicting, building a graph) on a
/// blocking thread, so the step's timeout still fires while it runs, and under
/// `catch_unwind`, so a panic in it fails the work, not the process. When the call is dropped
/// (its timeout fired), the work is told through [`Abandoned`] and stops at its next check.
pub async fn off_thread<T: Send + 'static>(
    work: impl FnOnce(&Abandoned) -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let abandoned = Abandoned::default();
    let mut guard = SetOnDrop(abandoned.clone(), false);
    let outcome = tokio::task::spawn_blocking(move || {
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
