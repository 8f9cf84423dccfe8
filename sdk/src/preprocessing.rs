//! Declaring how a transformer's outputs derive from its inputs, so the host can apply the same
//! preprocessing to raw rows when a model trained downstream is served (contract 0.1.2).
//!
//! A transformer calls [`declare`] once per `transform` with the stages it applied to every
//! table it returns: filling nulls, one-hot encoding, standardising, bucketizing, dropping
//! columns, or choosing rows ([`Stage::Rows`]). A transformer that declares nothing cannot be
//! part of a served pipeline; one whose work the host cannot apply to a row says so with
//! [`Stage::Unservable`] and a reason. These functions call the host, so they only work inside a
//! component; the types are plain data and can be built in native tests.

use crate::bindings::preprocessing;

/// The stages and their parts, as the contract defines them.
///
/// ```
/// use wflow_sdk::preprocessing::{Fill, FillValue, Stage};
/// let stage = Stage::Impute(vec![Fill { column: "age".into(), value: FillValue::Float(41.5) }]);
/// assert!(matches!(stage, Stage::Impute(_)));
/// ```
pub use crate::bindings::preprocessing::{
    Buckets, Fill, FillValue, OneHot, OneHotColumn, Scaling, Stage,
};

/// Declares how this call's output tables derive from its input tables. Calls the host.
///
/// ```no_run
/// use wflow_sdk::preprocessing::{self, Scaling, Stage};
/// preprocessing::declare(&[Stage::Standardize(vec![Scaling {
///     column: "age".into(),
///     center: 41.5,
///     scale: 12.0,
/// }])]);
/// ```
pub fn declare(stages: &[Stage]) {
    preprocessing::declare(stages);
}
