//! Hostile plugins: each misbehaviour fails its own call with a distinct reason, leaks nothing
//! from the host, and leaves the runtime able to run the next call.

use std::net::TcpListener;
use std::time::Duration;

use wflow::plugin::{Call, Capabilities, Execution, Failure, Limits, Output, Runtime};
use wflow::table::{Column, Table, Values};

use crate::support;

fn table() -> Table {
    Table::new(vec![Column::new("x", Values::Float(vec![1.0, 2.0, 3.0]))]).unwrap()
}

fn limits() -> Limits {
    Limits {
        memory: 64 << 20,
        timeout: Duration::from_secs(2),
        max_output: 16 << 20,
    }
}

fn behave(runtime: &Runtime, config: serde_json::Value) -> Execution {
    let plugin = support::load(runtime, "hostile");
    let call = Call::Validate {
        data: table(),
        config: config.to_string(),
    };
    support::block_on(runtime.call(&plugin, call, &limits(), &Capabilities::default()))
}

/// After any misbehaviour the same runtime still runs a well-behaved call.
fn assert_runtime_still_works(runtime: &Runtime) {
    let execution = behave(runtime, serde_json::json!({"behaviour": "ok"}));
    assert!(
        matches!(execution.outcome, Ok(Output::Report(_))),
        "{:?}",
        execution.outcome
    );
}

fn failure(execution: &Execution) -> &Failure {
    match &execution.outcome {
        Err(failure) => failure,
        Ok(output) => panic!("expected a failure, got {output:?}"),
    }
}

fn report_message(execution: &Execution) -> String {
    match &execution.outcome {
        Ok(Output::Report(report)) => report
            .findings
            .iter()
            .map(|f| f.message.clone())
            .collect::<Vec<_>>()
            .join("\n"),
        other => panic!("expected a report, got {other:?}"),
    }
}

#[test]
fn trap_fails_the_call_as_a_trap() {
    let (runtime, _dir) = support::runtime();
    let execution = behave(&runtime, serde_json::json!({"behaviour": "trap"}));
    assert!(
        matches!(failure(&execution), Failure::Trap(message) if message.contains("unreachable")),
        "{:?}",
        failure(&execution)
    );
    assert_runtime_still_works(&runtime);
}

#[test]
fn panic_is_reported_with_its_message() {
    let (runtime, _dir) = support::runtime();
    let execution = behave(&runtime, serde_json::json!({"behaviour": "panic"}));
    let Failure::Panic(message) = failure(&execution) else {
        panic!("{:?}", failure(&execution))
    };
    assert!(
        message.contains("src/lib.rs"),
        "the panic location is kept: {message}"
    );
    assert_eq!(failure(&execution).kind(), "panic");
    assert_runtime_still_works(&runtime);
}

#[test]
fn infinite_loop_times_out() {
    let (runtime, _dir) = support::runtime();
    let execution = behave(&runtime, serde_json::json!({"behaviour": "infinite-loop"}));
    assert_eq!(
        failure(&execution),
        &Failure::Timeout(Duration::from_secs(2))
    );
    assert!(
        execution.elapsed >= Duration::from_secs(2) && execution.elapsed < Duration::from_secs(10),
        "{:?}",
        execution.elapsed
    );
    assert_runtime_still_works(&runtime);
}

#[test]
fn sleeping_in_a_host_call_times_out() {
    let (runtime, _dir) = support::runtime();
    let execution = behave(&runtime, serde_json::json!({"behaviour": "sleep"}));
    assert_eq!(
        failure(&execution),
        &Failure::Timeout(Duration::from_secs(2))
    );
    assert!(
        execution.elapsed < Duration::from_secs(10),
        "{:?}",
        execution.elapsed
    );
    assert_runtime_still_works(&runtime);
}

#[test]
fn memory_bomb_hits_the_memory_cap() {
    let (runtime, _dir) = support::runtime();
    let execution = behave(&runtime, serde_json::json!({"behaviour": "memory-bomb"}));
    let Failure::MemoryLimit { limit, requested } = failure(&execution) else {
        panic!("{:?}", failure(&execution))
    };
    assert_eq!(*limit, 64 << 20);
    assert!(*requested > 64 << 20);
    assert_runtime_still_works(&runtime);
}

#[test]
fn stack_overflow_is_its_own_reason() {
    let (runtime, _dir) = support::runtime();
    let execution = behave(&runtime, serde_json::json!({"behaviour": "stack-overflow"}));
    assert_eq!(failure(&execution), &Failure::StackOverflow);
    assert_runtime_still_works(&runtime);
}

#[test]
fn deep_recursion_in_linear_memory_is_a_stack_overflow() {
    let (runtime, _dir) = support::runtime();
    let execution = behave(&runtime, serde_json::json!({"behaviour": "deep-recursion"}));
    assert_eq!(failure(&execution), &Failure::StackOverflow);
    assert_runtime_still_works(&runtime);
}

#[test]
fn output_flood_hits_the_output_limit_and_keeps_a_bounded_log() {
    let (runtime, _dir) = support::runtime();
    let execution = behave(&runtime, serde_json::json!({"behaviour": "output-flood"}));
    assert_eq!(
        failure(&execution).kind(),
        "output-limit",
        "{:?}",
        failure(&execution)
    );
    let logged: usize = execution.log.iter().map(|line| line.message.len()).sum();
    assert!(
        logged <= wflow::plugin::MAX_LOG_BYTES as usize,
        "{logged} bytes of log kept"
    );
    assert!(!execution.log.is_empty(), "the start of the flood is kept");
    assert_runtime_still_works(&runtime);
}

#[test]
fn log_flood_hits_the_output_limit() {
    let (runtime, _dir) = support::runtime();
    let execution = behave(&runtime, serde_json::json!({"behaviour": "log-flood"}));
    assert_eq!(
        failure(&execution).kind(),
        "output-limit",
        "{:?}",
        failure(&execution)
    );
    assert_runtime_still_works(&runtime);
}

#[test]
fn progress_flood_hits_the_output_limit_and_shows_short_lines() {
    let (runtime, _dir) = support::runtime();
    let plugin = support::load(&runtime, "hostile");
    let shown = std::sync::Arc::new(std::sync::Mutex::new(Vec::<usize>::new()));
    let seen = shown.clone();
    let sink: wflow::plugin::ProgressSink =
        std::sync::Arc::new(move |_, _, message: &str| seen.lock().unwrap().push(message.len()));
    let call = Call::Validate {
        data: table(),
        config: serde_json::json!({"behaviour": "progress-flood"}).to_string(),
    };
    // A long timeout: the output limit must stop it well before.
    let limits = Limits {
        timeout: Duration::from_secs(60),
        ..limits()
    };
    let started = std::time::Instant::now();
    let execution = support::block_on(runtime.call_with_progress(
        &plugin,
        call,
        &limits,
        &Capabilities::default(),
        Some(sink),
    ));
    assert_eq!(
        failure(&execution).kind(),
        "output-limit",
        "{:?}",
        failure(&execution)
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    let shown = shown.lock().unwrap();
    assert!(!shown.is_empty(), "the first report is passed on");
    assert!(shown.iter().all(|&len| len <= 120), "{shown:?}");
    assert_runtime_still_works(&runtime);
}

#[test]
fn huge_tables_hit_the_output_limit() {
    let (runtime, _dir) = support::runtime();
    let plugin = support::load(&runtime, "hostile");
    let limits = Limits {
        memory: 512 << 20,
        timeout: Duration::from_secs(20),
        max_output: 16 << 20,
    };
    let call = Call::Validate {
        data: table(),
        config: serde_json::json!({"behaviour": "huge-output"}).to_string(),
    };
    let execution =
        support::block_on(runtime.call(&plugin, call, &limits, &Capabilities::default()));
    assert_eq!(
        failure(&execution).kind(),
        "output-limit",
        "{:?}",
        failure(&execution)
    );
    assert_runtime_still_works(&runtime);
}

#[test]
fn host_files_are_invisible() {
    let (runtime, dir) = support::runtime();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "the host's secret").unwrap();
    let execution = behave(
        &runtime,
        serde_json::json!({"behaviour": "read-host-file", "path": secret}),
    );
    let text = format!("{:?}", execution.outcome);
    assert!(matches!(failure(&execution), Failure::Failed(_)), "{text}");
    assert!(
        !text.contains("the host's secret") && !text.contains("root:"),
        "{text}"
    );
    assert_runtime_still_works(&runtime);
}

#[test]
fn the_environment_is_empty() {
    let (runtime, _dir) = support::runtime();
    // SAFETY: no other thread of this test reads or writes the environment at this point.
    unsafe { std::env::set_var("WFLOW_TEST_SECRET", "hunter2") };
    let execution = behave(&runtime, serde_json::json!({"behaviour": "read-env"}));
    let seen = report_message(&execution);
    assert!(
        !seen.contains("hunter2") && !seen.contains("PATH") && !seen.contains("HOME"),
        "the plugin saw: {seen}"
    );
}

#[test]
fn sockets_are_refused() {
    let (runtime, _dir) = support::runtime();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let execution = behave(
        &runtime,
        serde_json::json!({"behaviour": "open-socket", "address": address}),
    );
    assert!(
        matches!(failure(&execution), Failure::Failed(_)),
        "{:?}",
        execution.outcome
    );
    // Nothing reached the listener: the call has returned, so any connection would be queued.
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
    assert_runtime_still_works(&runtime);
}

#[test]
fn invalid_input_from_the_plugin_is_not_retryable() {
    let (runtime, _dir) = support::runtime();
    let execution = behave(&runtime, serde_json::json!({"behaviour": "invalid-input"}));
    assert_eq!(failure(&execution).kind(), "invalid-input");
    assert!(!failure(&execution).is_retryable());
}

#[test]
fn a_bad_configuration_names_the_field() {
    let (runtime, _dir) = support::runtime();
    let execution = behave(&runtime, serde_json::json!({"behaviour": 42}));
    let Failure::InvalidConfig(message) = failure(&execution) else {
        panic!("{:?}", execution.outcome)
    };
    assert!(message.contains("behaviour"), "{message}");
}

#[test]
fn no_state_leaks_between_calls() {
    let (runtime, _dir) = support::runtime();
    // Each call gets a fresh instance: a counter kept in the plugin's memory starts over.
    for _ in 0..3 {
        let execution = behave(&runtime, serde_json::json!({"behaviour": "count-calls"}));
        assert_eq!(report_message(&execution), "call 1");
    }
}

#[test]
fn outputs_of_one_name_or_an_unusable_name_are_an_input_error_naming_them() {
    let (runtime, _dir) = support::runtime();
    let plugin = support::load(&runtime, "opaque-transform");
    let transform = |rename: &str, inputs: &[&str]| {
        let call = Call::Transform {
            inputs: inputs.iter().map(|n| (n.to_string(), table())).collect(),
            config: serde_json::json!({ "column": "x", "rename": rename }).to_string(),
        };
        support::block_on(runtime.call(&plugin, call, &limits(), &Capabilities::default()))
    };
    let twice = transform("train", &["train", "test"]);
    assert_eq!(
        failure(&twice),
        &Failure::InvalidInput("the plugin returned two outputs named `train`".into())
    );
    let escape = transform("../x", &["train"]);
    assert_eq!(
        failure(&escape),
        &Failure::InvalidInput(
            "the plugin returned an output named \"../x\": output names are 1 to 64 letters, digits, `_` or `-`".into()
        )
    );
    let reserved = transform("preprocessing", &["train"]);
    assert!(
        failure(&reserved)
            .to_string()
            .contains("the name its declared preprocessing is recorded under"),
        "{:?}",
        reserved.outcome
    );
    assert!(matches!(
        transform("renamed", &["train"]).outcome,
        Ok(Output::Tables { .. })
    ));
}

fn oversized(name: &str) -> Vec<u8> {
    std::fs::read(
        support::repo()
            .join("host/tests/data/onnx/oversized")
            .join(format!("{name}.onnx")),
    )
    .unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn issue_22_a_plugin_cannot_make_the_host_load_a_model_beyond_its_budget() {
    let (runtime, _dir) = support::runtime();
    // 119 bytes that would fold into 3.2 GB: refused, naming the node, inside the step.
    let execution = behave(
        &runtime,
        serde_json::json!({"behaviour": "load-model", "model_hex": hex(&oversized("constant_of_shape"))}),
    );
    let Failure::Failed(message) = failure(&execution) else {
        panic!("{:?}", execution.outcome)
    };
    assert!(
        message.contains("too large to load") && message.contains("node `y` (ConstantOfShape)"),
        "{message}"
    );
    assert_runtime_still_works(&runtime);
}

#[test]
fn issue_22_a_trained_model_the_host_cannot_load_fails_its_training_step() {
    let (runtime, _dir) = support::runtime();
    let plugin = support::load(&runtime, "hostile-trainer");
    for (bytes, expected) in [
        (b"not a model".to_vec(), "not valid ONNX"),
        (oversized("range"), "too large to load"),
    ] {
        let call = Call::Train {
            data: table(),
            target: "x".into(),
            config: serde_json::json!({ "model_hex": hex(&bytes) }).to_string(),
        };
        let execution =
            support::block_on(runtime.call(&plugin, call, &limits(), &Capabilities::default()));
        let Failure::Failed(message) = failure(&execution) else {
            panic!("{:?}", execution.outcome)
        };
        assert!(
            message.starts_with("the trainer returned a model the host cannot load")
                && message.contains(expected),
            "{message}"
        );
    }
}
