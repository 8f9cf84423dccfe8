//! `wflow-learn`: pure-Rust helpers shared by trainer plugins.
//!
//! - [`rng`]: a seeded generator (xoshiro256** through SplitMix64), the same stream as the
//!   `train-test-split` plugin's, so a seed means the same thing in every plugin.
//! - [`folds`]: k-fold and stratified k-fold cross-validation splits.
//! - [`search`]: grid and random hyperparameter search over cross-validation folds, and the
//!   `search = { method, folds, trials, seed }` settings every trainer parses the same way.
//! - [`standardize`]: the `StandardScaler`-like standardisation the linear trainers fold into
//!   their models.
//! - [`features`]: choosing a trainer's feature columns from a table's schema.
//! - [`linalg`]: the dot product and `axpy` the trainers' fitting loops spend their time in.
//! - [`loss`]: the classifiers' log loss and its derivatives, summed with one logarithm.
//! - `testing` (feature `testing`): the example-data reader the trainers' tests share.
//! - [`inputs`]: choosing the input a fitted preprocessing step (`impute`, `standard-scaler`,
//!   `one-hot-encode`) fits on, and the name of its `fitted` output.
//!
//! Everything works on plain Rust data (row counts, labels, `Vec<f64>` columns) and is
//! deterministic. The crate fits no model itself and calls no host function: the trainers pass
//! their own fitting and scoring in as closures.

pub mod features;
pub mod folds;
pub mod inputs;
pub mod linalg;
pub mod loss;
pub mod rng;
pub mod search;
pub mod standardize;
#[cfg(feature = "testing")]
pub mod testing;

pub use features::{select_features, text_features_error};
pub use folds::{Fold, k_fold, stratified_k_fold};
pub use inputs::{DEFAULT_FIT_ON, FITTED, fit_index};
pub use loss::LogLoss;
pub use rng::Rng;
pub use search::{Params, Search, SearchMethod, SearchReport, SearchResult, Space, Trial, search};
pub use standardize::{STD_FLOOR, Standardizer};
