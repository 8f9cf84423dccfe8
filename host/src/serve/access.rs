//! How the server reaches the model registry. The daemon holds the store open for its whole
//! life and shares it; `wflow serve` beside runs and commands opens it only for the moment of a
//! read or an alias move, because the store is locked while a process has it open. A replica
//! of a cluster holds the shared store open (PostgreSQL has no such lock) and hears of alias
//! moves through its notifications.

use std::path::PathBuf;
use std::sync::Arc;

use crate::store::{Store, StoreError};

/// The registry, held open or opened on demand.
#[derive(Clone, Debug)]
pub enum StoreAccess {
    Shared(Arc<Store>),
    OnDemand(PathBuf),
}

impl StoreAccess {
    /// Runs `work` with the store (blocking: call it from a blocking thread).
    pub fn with<T>(
        &self,
        work: impl FnOnce(&Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match self {
            StoreAccess::Shared(store) => work(store),
            StoreAccess::OnDemand(dir) => work(&Store::open(dir)?),
        }
    }

    /// The alias stamp, which changes whenever an alias moves.
    pub fn alias_stamp(&self) -> Option<String> {
        match self {
            StoreAccess::Shared(store) => store.alias_version(),
            StoreAccess::OnDemand(dir) => {
                Store::alias_stamp(&std::path::absolute(dir).unwrap_or_else(|_| dir.clone()))
            }
        }
    }

    /// The notifications of a cluster (alias moves, events...) as they happen (a shared store
    /// only; elsewhere the stamp is polled).
    pub fn cluster_notifications(
        &self,
    ) -> Option<tokio::sync::broadcast::Receiver<crate::store::postgres::Notification>> {
        match self {
            StoreAccess::Shared(store) => store.postgres().map(|pg| pg.subscribe()),
            StoreAccess::OnDemand(_) => None,
        }
    }
}
