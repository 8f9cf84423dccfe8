//! End-to-end tests of the whole system: real plugin components built from source by the host's
//! build script, run by the real runtime, and the real `wflow` binary run in temporary directories.

mod authoring;
mod cli;
mod contract;
mod daemon;
mod hostile;
mod large;
mod onnx;
mod registry;
mod rollout;
mod serve;
mod served_pipeline;
mod store;
mod support;
mod workflows;
