//! One trait implementation per WIT interface the host provides to plugins.

pub mod inference;
pub mod model_builder;
pub mod preprocessing;
pub mod services;
pub mod types;
