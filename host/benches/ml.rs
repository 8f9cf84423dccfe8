//! Prints what the sandbox costs the ML steps: training the logistic regression (with its
//! 5-fold search) on breast_cancer and the MLP on digits inside wasm against the same plugin
//! code built natively; the drift check (PSI + KS + Wasserstein) on 1,000,000 x 15 rows per side
//! through the host against natively; and the evaluator's predictions through the host's
//! inference import against an in-process tract call.
//!
//! Run with `cargo bench -p wflow --bench ml`. Figures to read and compare, not pass/fail
//! tests; the targets are wasm <= 1.5x native for training and <= 2 s for the drift check.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wflow::inference::Session;
use wflow::plugin::{Call, Capabilities, CompiledCache, Limits, Model, Output, Plugin, Runtime};
use wflow::table::{Column, Table, Values};

const REPEATS: usize = 5;

fn wasm(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("WFLOW_PLUGIN_ARTIFACTS")).join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()))
}

fn data(file: &str) -> Table {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../workflows/data")
        .join(file);
    wflow::table::csv::read(&path, &Default::default()).expect("a readable data set")
}

/// The median and the minimum of `REPEATS` timings of `run`.
fn time(mut run: impl FnMut()) -> (Duration, Duration) {
    let mut samples: Vec<Duration> = (0..REPEATS)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed()
        })
        .collect();
    samples.sort();
    (samples[REPEATS / 2], samples[0])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn row(what: &str, wasm: (Duration, Duration), native: (Duration, Duration), target: &str) {
    println!(
        "  {what:<34} wasm {:>8.1} ms (min {:>7.1})   native {:>8.1} ms (min {:>7.1})   ratio {:.2}x   {target}",
        ms(wasm.0),
        ms(wasm.1),
        ms(native.0),
        ms(native.1),
        wasm.0.as_secs_f64() / native.0.as_secs_f64()
    );
}

/// The host table's columns as the SDK's, for the natively built plugin code.
fn sdk_column(column: &Column) -> wflow_sdk::Column {
    match column.values() {
        Values::Float(v) => wflow_sdk::Column::floats(column.name(), v.clone()),
        Values::Integer(v) => wflow_sdk::Column::integers(column.name(), v.clone()),
        Values::Text(v) => wflow_sdk::Column::texts(column.name(), v.clone()),
        Values::Boolean(v) => wflow_sdk::Column::booleans(column.name(), v.clone()),
    }
}

fn floats(column: &Column) -> Vec<f64> {
    (0..column.len())
        .map(|row| column.f64_at(row).expect("no nulls"))
        .collect()
}

fn labels(column: &Column) -> Vec<String> {
    (0..column.len())
        .map(|row| column.text_at(row).expect("no nulls"))
        .collect()
}

struct Bench {
    tokio: tokio::runtime::Runtime,
    runtime: Runtime,
    limits: Limits,
}

impl Bench {
    fn load(&self, name: &str) -> std::sync::Arc<Plugin> {
        self.tokio
            .block_on(self.runtime.load(&wasm(name)))
            .expect("load")
    }

    fn call(&self, plugin: &Plugin, call: Call) -> Output {
        let execution = self.tokio.block_on(self.runtime.call(
            plugin,
            call,
            &self.limits,
            &Capabilities::default(),
        ));
        execution.outcome.expect("the step succeeds")
    }
}

fn main() {
    let cache = tempfile::tempdir().expect("temporary directory");
    let bench = Bench {
        tokio: tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio"),
        runtime: Runtime::new(Some(CompiledCache::new(cache.path()))).expect("runtime"),
        limits: Limits {
            memory: 2 << 30,
            timeout: Duration::from_secs(300),
            max_output: 1 << 30,
        },
    };
    println!("training, {REPEATS} runs each (median, min):");

    // Logistic regression with the breast-cancer workflow's 5-fold search over four values of c.
    let cancer = data("breast_cancer.csv");
    let config = r#"{"search": {"c": [0.01, 0.1, 1.0, 10.0], "folds": 5}}"#;
    let plugin = bench.load("logistic_regression");
    let mut model = None;
    let in_wasm = time(|| {
        if let Output::Trained { model: m, .. } = bench.call(
            &plugin,
            Call::Train {
                data: cancer.clone(),
                target: "malignant".into(),
                config: config.into(),
            },
        ) {
            model = Some(m);
        }
    });
    let parsed: logistic_regression::Config = wflow_sdk::parse_config(config).expect("config");
    let features: Vec<String> = cancer
        .column_names()
        .into_iter()
        .filter(|n| *n != "malignant")
        .map(str::to_string)
        .collect();
    let columns: Vec<Vec<f64>> = features
        .iter()
        .map(|f| floats(cancer.column(f).expect("feature")))
        .collect();
    let targets = labels(cancer.column("malignant").expect("target"));
    let plan = parsed.search.as_ref().map(|s| s.plan());
    let native = time(|| {
        logistic_regression::train_columns_searched(
            &columns,
            features.clone(),
            "malignant".into(),
            &targets,
            &parsed.hyperparameters(),
            plan.as_ref(),
            &mut |_, _| {},
            &mut |_, _| {},
        )
        .expect("trains");
    });
    row(
        "logistic regression, breast_cancer",
        in_wasm,
        native,
        "(target <= 1.5x)",
    );

    // The MLP of the digits workflow.
    let digits = data("digits.csv");
    let config = r#"{"task": "classification", "hidden": [64], "epochs": 60, "seed": 7}"#;
    let plugin = bench.load("mlp");
    let in_wasm = time(|| {
        bench.call(
            &plugin,
            Call::Train {
                data: digits.clone(),
                target: "digit".into(),
                config: config.into(),
            },
        );
    });
    let parsed: mlp::Config = wflow_sdk::parse_config(config).expect("config");
    let feature_columns: Vec<wflow_sdk::Column> = digits
        .columns()
        .iter()
        .filter(|c| c.name() != "digit")
        .map(|c| sdk_column(c))
        .collect();
    let target = sdk_column(digits.column("digit").expect("target"));
    let native = time(|| {
        mlp::train_columns(
            &feature_columns,
            &target,
            parsed.task,
            &parsed.hyperparameters(),
            &mut |_, _| {},
        )
        .expect("trains");
    });
    row(
        "MLP (64 hidden), digits",
        in_wasm,
        native,
        "(target <= 1.5x)",
    );

    // Drift on 1,000,000 x 15 per side, a third of the features shifted by half a sigma.
    let (reference, current) = drift_tables(1_000_000, 15);
    let plugin = bench.load("psi_drift");
    let config = r#"{"methods": ["psi", "ks", "wasserstein"]}"#;
    let mut samples = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        bench.call(
            &plugin,
            Call::Check {
                reference: reference.clone(),
                current: current.clone(),
                config: config.into(),
            },
        );
        samples.push(start.elapsed());
    }
    samples.sort();
    let through_host = (samples[1], samples[0]);
    let parsed: psi_drift::Config = wflow_sdk::parse_config(config).expect("config");
    let mut samples = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        native_drift(&reference, &current, &parsed);
        samples.push(start.elapsed());
    }
    samples.sort();
    println!("drift check, PSI + KS + Wasserstein, 1,000,000 x 15 rows per side (3 runs):");
    row(
        "through the host (copy + compute)",
        through_host,
        (samples[1], samples[0]),
        "(target <= 2 s through the host)",
    );

    // Inference: the evaluator's predictions through the host import against in-process tract.
    let model = model.expect("a trained model");
    let evaluator = bench.load("classification_metrics");
    let holdout = cancer.clone();
    let evaluate = time(|| {
        bench.call(
            &evaluator,
            Call::Evaluate {
                model: model.clone(),
                data: holdout.clone(),
                config: "{}".into(),
            },
        );
    });
    let in_process = time(|| predict_in_process(&model, &holdout));
    println!("inference on breast_cancer (569 rows), {REPEATS} runs each:");
    row(
        "evaluator step (import) vs tract",
        evaluate,
        in_process,
        "(the step also computes every metric)",
    );
}

fn predict_in_process(model: &Model, table: &Table) {
    let session = Session::load(&model.onnx, None).expect("the model loads");
    let features: Vec<&str> = model.metadata.features.iter().map(String::as_str).collect();
    session
        .predict(&table.select(&features).expect("features"))
        .expect("predicts");
}

/// Columns of a 64-bit LCG's approximately normal values (Irwin-Hall, 4 terms).
fn drift_tables(rows: usize, features: usize) -> (Table, Table) {
    let mut state = 42u64;
    let mut normal = move || {
        (0..4)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 11) as f64 * 2f64.powi(-53)
            })
            .sum::<f64>()
            - 2.0
    };
    let mut reference = Vec::new();
    let mut current = Vec::new();
    for f in 0..features {
        let shift = if f % 3 == 0 { 0.5 } else { 0.0 };
        reference.push(Column::new(
            format!("f{f}"),
            Values::Float((0..rows).map(|_| normal()).collect()),
        ));
        current.push(Column::new(
            format!("f{f}"),
            Values::Float((0..rows).map(|_| normal() + shift).collect()),
        ));
    }
    (
        Table::new(reference).expect("table"),
        Table::new(current).expect("table"),
    )
}

/// The same statistics with the plugin's code built natively (its columns already in memory).
fn native_drift(reference: &Table, current: &Table, config: &psi_drift::Config) {
    use psi_drift::drift::{self, Feature, Sample};
    use psi_drift::stats;
    let features: Vec<Feature> = reference
        .columns()
        .iter()
        .map(|column| {
            let name = column.name();
            let values = |table: &Table| match table.column(name).expect("column").values() {
                Values::Float(v) => v.clone(),
                _ => unreachable!("float columns"),
            };
            let (reference, missing_reference) = stats::sorted_finite(values(reference));
            let (current, missing_current) = stats::sorted_finite(values(current));
            Feature::score(
                name.to_string(),
                &Sample::Numeric { reference, current },
                (missing_reference, missing_current),
                &config.methods,
            )
        })
        .collect();
    drift::assess(&features, &[], config);
}
