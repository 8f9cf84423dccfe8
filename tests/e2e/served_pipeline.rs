//! A trained pipeline served whole (issue 14): `workflows/penguins.toml` (text categories and
//! missing values) is run, and the holdout's raw rows are scored over HTTP (the Open Inference
//! Protocol with one input per raw column, and MLflow's `/invocations`) and by `wflow predict`;
//! every answer must match, row for row, what the workflow's own evaluation computed on the
//! encoded holdout. Bad requests get 400s naming the column and row, unseen categories follow
//! the encoder's `handle_unknown`, and drift is checked on the raw columns.

use std::path::Path;

use serde_json::{Value, json};
use wflow::engine::Value as StepValue;
use wflow::inference::Session;
use wflow::store::Store;
use wflow::store::codec::{ValueKind, load_value};
use wflow::store::registry::ModelRef;
use wflow::table::{ColumnType, Table};

use crate::serve::{TOKEN, client, python_client, serve};
use crate::support::{post_json, repo, stderr, stdout, wflow};

/// What the workflow's evaluation saw and computed on the holdout.
struct Holdout {
    /// The raw holdout rows (the split's `test` output, before imputation and encoding).
    raw: Table,
    /// The evaluator's predictions on the encoded holdout: labels and class probabilities.
    labels: Vec<String>,
    probabilities: Vec<Vec<f64>>,
    classes: Vec<String>,
    /// The registered version's holdout accuracy.
    accuracy: f64,
    /// The raw inputs the version takes: name and type.
    inputs: Vec<(String, ColumnType)>,
}

fn table_output(store: &Store, run: u64, step: &str, output: &str) -> Table {
    let steps = store.steps(run).unwrap();
    let record = steps.iter().find(|s| s.id == step).unwrap();
    let stored = &record
        .outputs
        .iter()
        .find(|o| o.name == output)
        .unwrap()
        .value;
    match load_value(store.artifacts(), ValueKind::Table, &stored.digest).unwrap() {
        StepValue::Table(table) => table,
        _ => panic!("{step}.{output} is not a table"),
    }
}

fn run_workflow(dir: &Path, file: &str) {
    let run = wflow(dir, &["run", file]);
    assert!(run.status.success(), "{}{}", stdout(&run), stderr(&run));
}

/// Runs the penguins workflow (and a copy whose encoder refuses unseen categories) in `dir`.
fn trained(dir: &Path) -> Holdout {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::copy(
        repo().join("workflows/data/penguins.csv"),
        dir.join("data/penguins.csv"),
    )
    .unwrap();
    let workflow = std::fs::read_to_string(repo().join("workflows/penguins.toml")).unwrap();
    std::fs::write(dir.join("penguins.toml"), &workflow).unwrap();
    let strict = workflow
        .replace("name = \"penguins\"", "name = \"penguins-strict\"")
        .replace("handle_unknown = \"ignore\"", "handle_unknown = \"error\"");
    assert_ne!(strict, workflow);
    std::fs::write(dir.join("strict.toml"), strict).unwrap();
    run_workflow(dir, "penguins.toml");
    run_workflow(dir, "strict.toml");

    let store = Store::open(dir.join(".wflow")).unwrap();
    let version = store
        .resolve_model(&ModelRef::parse("penguins@champion").unwrap())
        .unwrap();
    let pipeline = version
        .pipeline
        .clone()
        .expect("registered with its pipeline");
    let steps: Vec<&str> = pipeline.steps.iter().map(|s| s.step.as_str()).collect();
    assert_eq!(steps, ["split", "impute", "encode"]);
    let raw = table_output(&store, version.run, "split", "test");
    let encoded = table_output(&store, version.run, "encode", "test");
    // The evaluator's predictions: the host's inference session on the encoded holdout, as
    // the `classification-metrics` step ran it.
    let steps = store.steps(version.run).unwrap();
    let train = steps.iter().find(|s| s.id == "train").unwrap();
    let model_digest = &train.outputs[0].value.digest;
    let StepValue::Model(model) =
        load_value(store.artifacts(), ValueKind::Model, model_digest).unwrap()
    else {
        panic!("train.model is not a model");
    };
    let session = Session::load(
        &model.onnx,
        Some(wflow::plugin::model_info(&model.metadata)),
    )
    .unwrap();
    let predicted = session.predict(&encoded).unwrap();
    let classes = model.metadata.class_labels.clone();
    let labels = (0..predicted.row_count())
        .map(|r| predicted.column("label").unwrap().text_at(r).unwrap())
        .collect();
    let probabilities = (0..predicted.row_count())
        .map(|r| {
            classes
                .iter()
                .map(|c| {
                    predicted
                        .column(&format!("p_{c}"))
                        .unwrap()
                        .f64_at(r)
                        .unwrap()
                })
                .collect()
        })
        .collect();
    let accuracy = version
        .metrics
        .iter()
        .find(|(m, _)| m == "accuracy")
        .unwrap()
        .1;
    let inputs = pipeline
        .inputs
        .iter()
        .map(|i| (i.name.clone(), i.kind))
        .collect();
    Holdout {
        raw,
        labels,
        probabilities,
        classes,
        accuracy,
        inputs,
    }
}

/// A raw cell as JSON: null for a null, the column's type otherwise.
fn cell(table: &Table, column: &str, row: usize) -> Value {
    let column = table.column(column).unwrap();
    if column.is_null(row) {
        return Value::Null;
    }
    match column.kind() {
        ColumnType::Text => json!(column.text_at(row).unwrap()),
        ColumnType::Integer => json!(column.f64_at(row).unwrap() as i64),
        ColumnType::Boolean => json!(column.f64_at(row).unwrap() == 1.0),
        ColumnType::Float => json!(column.f64_at(row).unwrap()),
    }
}

fn datatype(kind: ColumnType) -> &'static str {
    match kind {
        ColumnType::Float => "FP64",
        ColumnType::Integer => "INT64",
        ColumnType::Text => "BYTES",
        ColumnType::Boolean => "BOOL",
    }
}

/// The holdout as an Open Inference Protocol request: one `[N]` input per raw column.
fn oip_request(holdout: &Holdout) -> Value {
    let rows = holdout.raw.row_count();
    let inputs: Vec<Value> = holdout
        .inputs
        .iter()
        .map(|(name, kind)| {
            let data: Vec<Value> = (0..rows).map(|r| cell(&holdout.raw, name, r)).collect();
            json!({ "name": name, "datatype": datatype(*kind), "shape": [rows], "data": data })
        })
        .collect();
    json!({ "inputs": inputs })
}

/// The holdout as MLflow's `dataframe_split`.
fn split_request(holdout: &Holdout) -> Value {
    let columns: Vec<&str> = holdout.inputs.iter().map(|(n, _)| n.as_str()).collect();
    let data: Vec<Value> = (0..holdout.raw.row_count())
        .map(|r| Value::Array(columns.iter().map(|c| cell(&holdout.raw, c, r)).collect()))
        .collect();
    json!({ "dataframe_split": { "columns": columns, "data": data }, "params": { "probabilities": true } })
}

/// One raw holdout row as a record, with `change` applied.
fn record(
    holdout: &Holdout,
    row: usize,
    change: impl FnOnce(&mut serde_json::Map<String, Value>),
) -> Value {
    let mut record = serde_json::Map::new();
    for (name, _) in &holdout.inputs {
        record.insert(name.clone(), cell(&holdout.raw, name, row));
    }
    change(&mut record);
    Value::Object(record)
}

fn assert_close(ours: f64, theirs: f64, what: &str) {
    assert!(
        (ours - theirs).abs() <= 1e-5,
        "{what}: {ours} served, {theirs} in the workflow's evaluation"
    );
}

/// Writes the raw holdout as CSV, nulls as `NA`, with the target and an id.
fn write_csv(table: &Table, path: &Path) {
    let mut writer = csv::Writer::from_path(path).unwrap();
    let names = table.column_names();
    let mut header: Vec<&str> = vec!["id"];
    header.extend(names.iter().copied());
    writer.write_record(&header).unwrap();
    for row in 0..table.row_count() {
        let mut record = vec![format!("penguin-{row}")];
        for name in &names {
            let column = table.column(name).unwrap();
            record.push(column.text_at(row).unwrap_or_else(|| "NA".into()));
        }
        writer.write_record(&record).unwrap();
    }
    writer.flush().unwrap();
}

#[test]
fn issue_14_raw_rows_are_served_as_the_workflow_evaluated_them() {
    let dir = tempfile::tempdir().unwrap();
    let holdout = trained(dir.path());
    let rows = holdout.raw.row_count();
    assert!(rows > 50, "a holdout of {rows} rows");
    let nulls: usize = holdout.raw.columns().iter().map(|c| c.null_count()).sum();
    assert!(nulls > 0, "the holdout has missing values to fill");

    let served = serve(dir.path(), &["--registry", "penguins"]);
    let address = &served.address;

    // The metadata lists the raw columns with their types.
    let metadata = crate::support::get(address, "/v2/models/penguins").json();
    let listed: Vec<(String, String)> = metadata["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_string(),
                i["datatype"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = holdout
        .inputs
        .iter()
        .map(|(n, k)| (n.clone(), datatype(*k).to_string()))
        .collect();
    assert_eq!(listed, expected);
    assert!(listed.iter().any(|(n, t)| n == "island" && t == "BYTES"));

    // The Open Inference Protocol, one input per raw column, nulls included.
    let answer = post_json(
        address,
        "/v2/models/penguins/infer",
        &[],
        &oip_request(&holdout),
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    let outputs = answer.json()["outputs"].clone();
    let output = |name: &str| -> Value {
        outputs
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == name)
            .unwrap_or_else(|| panic!("no output {name}: {outputs}"))["data"]
            .clone()
    };
    let labels: Vec<String> = serde_json::from_value(output("label")).unwrap();
    assert_eq!(labels, holdout.labels, "OIP labels");
    let scores: Vec<f64> = serde_json::from_value(output("probabilities")).unwrap();
    let width = holdout.classes.len();
    for (row, expected) in holdout.probabilities.iter().enumerate() {
        for (k, p) in expected.iter().enumerate() {
            assert_close(
                scores[row * width + k],
                *p,
                &format!("OIP row {row} class {k}"),
            );
        }
    }
    // The served labels score the holdout exactly as the workflow's evaluation did.
    let truth = holdout.raw.column("species").unwrap();
    let correct = (0..rows)
        .filter(|&r| truth.text_at(r).unwrap() == labels[r])
        .count();
    assert_close(correct as f64 / rows as f64, holdout.accuracy, "accuracy");

    // Triton's own client, with binary tensors (BYTES included), on the rows without nulls
    // (numpy arrays have no nulls).
    python_client();
    let complete: Vec<usize> = (0..rows)
        .filter(|&r| holdout.raw.columns().iter().all(|c| !c.is_null(r)))
        .collect();
    let columns: Vec<Value> = holdout
        .inputs
        .iter()
        .map(|(name, kind)| {
            let data: Vec<Value> = complete
                .iter()
                .map(|&r| cell(&holdout.raw, name, r))
                .collect();
            json!({ "name": name, "datatype": datatype(*kind), "data": data })
        })
        .collect();
    client(
        "raw",
        address,
        &json!({
            "model": "penguins",
            "columns": columns,
            "labels": complete.iter().map(|&r| &holdout.labels[r]).collect::<Vec<_>>(),
            "probabilities": complete.iter().map(|&r| &holdout.probabilities[r]).collect::<Vec<_>>(),
        }),
        dir.path(),
    );

    // MLflow's scoring protocol, `dataframe_split` with probabilities.
    let answer = post_json(address, "/invocations", &[], &split_request(&holdout));
    assert_eq!(answer.status, 200, "{}", answer.text());
    let predictions = answer.json()["predictions"].clone();
    for (row, prediction) in predictions.as_array().unwrap().iter().enumerate() {
        assert_eq!(
            prediction["label"], holdout.labels[row],
            "invocations row {row}"
        );
        for (k, class) in holdout.classes.iter().enumerate() {
            let p = prediction[format!("p_{class}")].as_f64().unwrap();
            assert_close(
                p,
                holdout.probabilities[row][k],
                &format!("invocations row {row}"),
            );
        }
    }
    // `dataframe_records` at the named route: labels, as an MLflow classifier answers.
    let records: Vec<Value> = (0..rows).map(|r| record(&holdout, r, |_| {})).collect();
    let answer = post_json(
        address,
        "/v2/models/penguins/invocations",
        &[],
        &json!({ "dataframe_records": records }),
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    let labels: Vec<String> = serde_json::from_value(answer.json()["predictions"].clone()).unwrap();
    assert_eq!(labels, holdout.labels, "invocations labels");

    // `wflow predict`: the same rows from a CSV file, in process, beside the running server.
    write_csv(&holdout.raw, &dir.path().join("holdout.csv"));
    let predict = wflow(
        dir.path(),
        &[
            "predict",
            "penguins",
            "--data",
            "holdout.csv",
            "-o",
            "scored.csv",
            "--keep",
            "id",
        ],
    );
    assert!(predict.status.success(), "{}", stderr(&predict));
    assert!(
        stderr(&predict).contains(&format!("scored {rows} rows")),
        "{}",
        stderr(&predict)
    );
    let mut scored = csv::Reader::from_path(dir.path().join("scored.csv")).unwrap();
    let header: Vec<String> = scored
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    let mut expected_header = vec!["id".to_string(), "label".to_string()];
    expected_header.extend(holdout.classes.iter().map(|c| format!("p_{c}")));
    assert_eq!(header, expected_header);
    let mut count = 0;
    for (row, line) in scored.records().enumerate() {
        let line = line.unwrap();
        assert_eq!(&line[0], format!("penguin-{row}"));
        assert_eq!(&line[1], holdout.labels[row], "predict row {row}");
        for k in 0..holdout.classes.len() {
            let p: f64 = line[2 + k].parse().unwrap();
            assert_close(
                p,
                holdout.probabilities[row][k],
                &format!("predict row {row}"),
            );
        }
        count += 1;
    }
    assert_eq!(count, rows);

    // Drift on the served version's window compares raw columns, text ones included.
    let checked = post_json(
        address,
        "/v2/models/penguins/drift",
        &[("authorization", &format!("Bearer {TOKEN}"))],
        &json!({}),
    );
    assert_eq!(checked.status, 200, "{}", checked.text());
    let report = checked.json()["versions"]["1"].clone();
    let features = report["features"]
        .as_array()
        .unwrap_or_else(|| panic!("{report}"));
    let methods = |feature: &str| -> Vec<String> {
        features
            .iter()
            .filter(|f| f["feature"] == feature)
            .map(|f| f["method"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(
        methods("island").contains(&"chi-square".to_string()),
        "{report}"
    );
    assert!(
        methods("sex").contains(&"jensen-shannon".to_string()),
        "{report}"
    );
    assert!(
        methods("bill_length_mm").contains(&"psi".to_string()),
        "{report}"
    );
    assert!(
        methods("island=Biscoe").is_empty(),
        "encoded columns are not what is watched"
    );

    // The closed loop's traffic generator speaks raw columns to such a model, nulls included,
    // and the truth it sends back makes live quality.
    let traffic = std::process::Command::new(env!("CARGO_BIN_EXE_wflow-traffic"))
        .args(["--url", &format!("http://{address}"), "--model", "penguins"])
        .args(["--data", "data/penguins.csv", "--target", "species"])
        .args(["--requests", "120", "--every", "120"])
        .args(["--token", crate::serve::TOKEN])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&traffic.stdout);
    assert!(traffic.status.success(), "{said}{}", stderr(&traffic));
    assert!(said.contains("120 requests"), "{said}");
    assert!(!said.contains("failed"), "{said}");
    let quality = crate::support::get(address, "/v2/models/penguins/quality").json();
    assert_eq!(quality["versions"]["1"]["rows"], 120, "{quality}");
    assert!(
        quality["versions"]["1"]["accuracy"].as_f64().unwrap() > 0.9,
        "{quality}"
    );
}

#[test]
fn issue_14_bad_raw_rows_get_a_400_naming_the_column_and_row() {
    let dir = tempfile::tempdir().unwrap();
    let holdout = trained(dir.path());
    let served = serve(
        dir.path(),
        &["--registry", "penguins", "--registry", "penguins-strict"],
    );
    let address = &served.address;
    let post = |path: &str, records: Vec<Value>| {
        post_json(address, path, &[], &json!({ "dataframe_records": records }))
    };
    let error = |answer: crate::support::Answer| -> String {
        assert_eq!(answer.status, 400, "{}", answer.text());
        answer.json()["error"].as_str().unwrap().to_string()
    };
    let lenient = "/v2/models/penguins/invocations";
    let strict = "/v2/models/penguins-strict/invocations";
    let good = |row: usize| record(&holdout, row, |_| {});

    let unknown = record(&holdout, 1, |r| {
        r.insert("zip".into(), json!(75001));
    });
    let message = error(post(lenient, vec![good(0), unknown.clone(), good(2)]));
    assert!(
        message.starts_with("column `zip`, row 1: is in this record but not in the first one"),
        "{message}"
    );
    let message = error(post(lenient, vec![unknown]));
    assert!(
        message.starts_with("column `zip`: unknown column: the model takes `island`"),
        "{message}"
    );

    let missing = record(&holdout, 0, |r| {
        r.remove("body_mass_g");
    });
    let message = error(post(lenient, vec![missing]));
    assert!(
        message.starts_with("column `body_mass_g`: missing"),
        "{message}"
    );

    let wrong = record(&holdout, 3, |r| {
        r.insert("bill_length_mm".into(), json!("long"));
    });
    let message = error(post(lenient, vec![good(0), good(1), good(2), wrong]));
    assert_eq!(
        message,
        "column `bill_length_mm`, row 3: \"long\" is not a number"
    );

    let null_year = record(&holdout, 0, |r| {
        r.insert("year".into(), Value::Null);
    });
    let message = error(post(lenient, vec![null_year]));
    assert_eq!(
        message,
        "column `year`, row 0: is null, and the pipeline does not fill this column"
    );

    // An island the encoder never saw: all zeros where it ignores unknowns, a 400 where it
    // refuses them.
    let atlantis = |row| {
        record(&holdout, row, |r| {
            r.insert("island".into(), json!("Atlantis"));
        })
    };
    let answer = post(lenient, vec![good(0), atlantis(1)]);
    assert_eq!(answer.status, 200, "{}", answer.text());
    let message = error(post(strict, vec![good(0), atlantis(1)]));
    assert!(
        message.starts_with(
            "column `island`, row 1: the category \"Atlantis\" was not seen in training"
        ),
        "{message}"
    );

    // The same checks on the Open Inference Protocol: a wrong datatype is named.
    let mut request = oip_request(&holdout);
    request["inputs"][0]["datatype"] = json!("FP64");
    let message = error(post_json(
        address,
        "/v2/models/penguins/infer",
        &[],
        &request,
    ));
    assert!(
        message.starts_with("input `island`: element 0"),
        "{message}"
    );
    let zeros = vec![0.0; 10];
    let features = json!({ "inputs": [{ "name": "features", "datatype": "FP32", "shape": [1, 10], "data": zeros }] });
    let message = error(post_json(
        address,
        "/v2/models/penguins/infer",
        &[],
        &features,
    ));
    assert!(message.contains("send its raw columns"), "{message}");

    // Two models served: `/invocations` asks which one.
    let message = error(post("/invocations", vec![good(0)]));
    assert!(
        message.contains("post to /v2/models/NAME/invocations"),
        "{message}"
    );
}

#[test]
fn issue_14_a_chain_that_cannot_be_served_is_refused_at_registration_naming_the_step() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::copy(
        repo().join("workflows/data/penguins.csv"),
        dir.path().join("data/penguins.csv"),
    )
    .unwrap();
    // A transformer that never declares its preprocessing, between the encoder and the trainer.
    let opaque = crate::support::wasm_path("opaque-transform");
    let workflow = std::fs::read_to_string(repo().join("workflows/penguins.toml"))
        .unwrap()
        .replace(
            "inputs = { data = \"encode.train\" }",
            "inputs = { data = \"square.train\" }",
        )
        .replace("data = \"encode.test\" }", "data = \"square.test\" }")
        + &format!(
            "\n[steps.square]\nuses = \"{}\"\ninputs = {{ train = \"encode.train\", test = \"encode.test\" }}\nwith = {{ column = \"body_mass_g\" }}\n",
            opaque.display()
        );
    std::fs::write(dir.path().join("opaque.toml"), &workflow).unwrap();
    let run = wflow(dir.path(), &["run", "opaque.toml"]);
    assert_eq!(
        run.status.code(),
        Some(1),
        "{}{}",
        stdout(&run),
        stderr(&run)
    );
    let text = stdout(&run);
    assert!(
        text.contains("step `square` (opaque-transform@0.1.0) is between the raw data and the trainer but declared no preprocessing"),
        "{text}"
    );
    for step in ["train", "evaluate"] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(step) && l.contains(" ok ")),
            "{step} ran: {text}"
        );
    }
    // Told to serve the features as they are, the registration goes through without a pipeline.
    let features_only = workflow.replace(
        "with = { aliases = { always = \"champion\" } }",
        "with = { aliases = { always = \"champion\" }, pipeline = [] }",
    );
    assert_ne!(features_only, workflow);
    std::fs::write(dir.path().join("opaque.toml"), &features_only).unwrap();
    run_workflow(dir.path(), "opaque.toml");
    let store = Store::open(dir.path().join(".wflow")).unwrap();
    let version = store
        .resolve_model(&ModelRef::parse("penguins@champion").unwrap())
        .unwrap();
    assert!(version.pipeline.is_none());
    assert!(version.features.iter().any(|f| f == "body_mass_g_squared"));
    drop(store);

    // A pipeline naming a step the workflow does not have is refused before anything runs.
    let misnamed = workflow.replace(
        "with = { aliases = { always = \"champion\" } }",
        "with = { aliases = { always = \"champion\" }, pipeline = [\"impute\", \"encoder\"] }",
    );
    std::fs::write(dir.path().join("opaque.toml"), &misnamed).unwrap();
    let check = wflow(dir.path(), &["validate", "opaque.toml"]);
    assert_eq!(check.status.code(), Some(2), "{}", stderr(&check));
    assert!(
        stderr(&check).contains("`pipeline` names `encoder`, which is no step of the workflow"),
        "{}",
        stderr(&check)
    );
}
