//! Every model a trainer plugin writes loads in tract and predicts what its graph computes,
//! within 1e-5. The trainers run as components through the runtime; the test decodes their ONNX
//! files and evaluates the graph itself in f32 (Gemm, Relu, Tanh, Sigmoid, Softmax: the operators
//! our trainers emit). Each trainer's unit tests check that this graph is its own forward pass.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use wflow::inference::Session;
use wflow::plugin::{Call, Capabilities, Limits, Model, Output};
use wflow::table::Table;
use wflow_onnx::proto::{ModelProto, TensorProto};

use crate::support;

fn read(name: &str) -> Table {
    let path = support::repo().join("workflows/data").join(name);
    wflow::table::csv::read(&path, &BTreeMap::new()).unwrap()
}

fn train(plugin: &str, data: &Table, target: &str, config: serde_json::Value) -> Model {
    let (runtime, _dir) = support::runtime();
    let plugin = support::block_on(wflow::engine::plan::load_plugin(&runtime, plugin)).unwrap();
    let call = Call::Train {
        data: data.clone(),
        target: target.into(),
        config: config.to_string(),
    };
    let limits = Limits {
        timeout: Duration::from_secs(120),
        ..Limits::default()
    };
    match support::block_on(runtime.call(&plugin, call, &limits, &Capabilities::default())).outcome
    {
        Ok(Output::Trained { model, .. }) => model,
        other => panic!("{other:?}"),
    }
}

/// A row-major matrix.
#[derive(Clone)]
struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

fn tensor(t: &TensorProto) -> Matrix {
    let data: Vec<f32> = if t.float_data.is_empty() {
        t.raw_data
            .chunks(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    } else {
        t.float_data.clone()
    };
    let (rows, cols) = match t.dims[..] {
        [r, c] => (r as usize, c as usize),
        [c] => (1, c as usize),
        _ => panic!("unexpected dims {:?}", t.dims),
    };
    Matrix { rows, cols, data }
}

/// Evaluates the model's graph on `input` in f32, the way the ONNX operators define it.
fn evaluate(model: &ModelProto, input: Matrix) -> Matrix {
    let graph = model.graph.as_ref().unwrap();
    let mut values: HashMap<String, Matrix> = graph
        .initializer
        .iter()
        .map(|t| (t.name.clone(), tensor(t)))
        .collect();
    values.insert(graph.input[0].name.clone(), input);
    for node in &graph.node {
        let arg = |i: usize| values[&node.input[i]].clone();
        let attr = |name: &str| {
            node.attribute
                .iter()
                .find(|a| a.name == name)
                .and_then(|a| a.i)
        };
        let out = match node.op_type.as_str() {
            "Gemm" => {
                let (x, w, b) = (arg(0), arg(1), arg(2));
                assert_eq!(
                    attr("transB"),
                    Some(1),
                    "our trainers store weights as [out, in]"
                );
                let mut data = vec![0f32; x.rows * w.rows];
                for r in 0..x.rows {
                    for o in 0..w.rows {
                        let mut acc = 0f32;
                        for k in 0..x.cols {
                            acc += x.data[r * x.cols + k] * w.data[o * w.cols + k];
                        }
                        data[r * w.rows + o] = acc + b.data[o % b.data.len()];
                    }
                }
                Matrix {
                    rows: x.rows,
                    cols: w.rows,
                    data,
                }
            }
            "Relu" | "Tanh" | "Sigmoid" => {
                let mut x = arg(0);
                for v in &mut x.data {
                    *v = match node.op_type.as_str() {
                        "Relu" => v.max(0.0),
                        "Tanh" => v.tanh(),
                        _ => 1.0 / (1.0 + (-*v).exp()),
                    };
                }
                x
            }
            "Softmax" => {
                let mut x = arg(0);
                for row in x.data.chunks_mut(x.cols) {
                    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
                    for v in row.iter_mut() {
                        *v = (*v - max).exp() / sum;
                    }
                }
                x
            }
            other => panic!("operator {other} is not one our trainers emit"),
        };
        values.insert(node.output[0].clone(), out);
    }
    values.remove(&graph.output[0].name).unwrap()
}

/// Loads the model in tract (from its own metadata only) and compares its scores with the
/// graph evaluated here.
fn assert_tract_agrees(model: &Model, table: &Table, what: &str) {
    let features = &model.metadata.features;
    let rows = table.row_count();
    let mut data = Vec::with_capacity(rows * features.len());
    for r in 0..rows {
        for f in features {
            data.push(table.column(f).unwrap().f64_at(r).unwrap() as f32);
        }
    }
    let decoded = wflow_onnx::decode(&model.onnx).unwrap();
    let expected = evaluate(
        &decoded,
        Matrix {
            rows,
            cols: features.len(),
            data: data.clone(),
        },
    );
    let session = Session::load(&model.onnx, None).unwrap_or_else(|err| panic!("{what}: {err}"));
    let scores = session.predict_matrix(rows, data).unwrap();
    let mut worst = 0f32;
    for (r, score) in scores.iter().enumerate() {
        // A binary classifier's graph gives P(class 1); the session gives [1 - p, p].
        let got = if expected.cols == 1 && score.len() == 2 {
            &score[1..]
        } else {
            &score[..]
        };
        for (k, value) in got.iter().enumerate() {
            // Probabilities are compared absolutely; regression outputs (diabetes: 25 to 346)
            // relatively, since f32 itself carries only about 7 significant digits.
            let want = expected.data[r * expected.cols + k];
            worst = worst.max((value - want).abs() / want.abs().max(1.0));
        }
    }
    assert!(
        worst <= 1e-5,
        "{what}: tract differs from the graph by {worst}"
    );
}

#[test]
fn trainer_models_run_in_tract_as_their_graphs_define() {
    let cancer = read("breast_cancer.csv");
    let iris = read("iris.csv");
    let diabetes = read("diabetes.csv");
    let cases = [
        (
            "logistic-regression",
            &cancer,
            "malignant",
            serde_json::json!({}),
        ),
        (
            "logistic-regression",
            &iris,
            "species",
            serde_json::json!({}),
        ),
        (
            "linear-regression",
            &diabetes,
            "progression",
            serde_json::json!({"alpha": 1.0}),
        ),
        (
            "mlp",
            &cancer,
            "malignant",
            serde_json::json!({"epochs": 20, "hidden": [16]}),
        ),
        (
            "mlp",
            &iris,
            "species",
            serde_json::json!({"epochs": 20, "hidden": [16, 8], "activation": "tanh"}),
        ),
        (
            "mlp",
            &diabetes,
            "progression",
            serde_json::json!({"epochs": 20, "task": "regression"}),
        ),
    ];
    for (plugin, table, target, config) in cases {
        let model = train(plugin, table, target, config);
        assert_tract_agrees(&model, table, &format!("{plugin} on {target}"));
    }
}
