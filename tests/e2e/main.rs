//! End-to-end tests of the whole system: real plugin components built from source by the host's
//! build script, run by the real runtime, and the real `wflow` binary run in temporary directories.

mod attack;
mod authoring;
mod browser;
mod cli;
mod cluster;
mod contract;
mod cron;
mod daemon;
mod hostile;
mod large;
mod onnx;
#[path = "../../host/src/store/pg_server.rs"]
mod pg_server;
mod registry;
mod rollout;
mod serve;
mod served_pipeline;
mod store;
mod support;
mod workflows;
