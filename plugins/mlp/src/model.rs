//! The trained network as the ONNX graph holds it: dense layers in float32 (the feature
//! standardisation folded into the first, the target's inverse standardisation into the last),
//! hidden activations, and a head (sigmoid, softmax or none); its float32 forward pass and its
//! export to ONNX with `wflow-onnx`.
//!
//! The forward pass computes in f32, in the graph's order of operations (each Gemm sums the
//! products left to right, then adds the bias), so the host can check tract's predictions
//! against it. This module does not train (see `train` and `net`) and does not run ONNX.

use serde::Deserialize;
use wflow_onnx::{Dim, ModelBuilder, attr_int};

/// The graph input: float32 `[N, F]`, features in metadata order.
pub const INPUT: &str = "features";
/// The classification output: `[N, 1]` (binary: P(class_labels\[1\])) or `[N, K]`.
pub const PROBABILITIES: &str = "probabilities";
/// The regression output: `[N, 1]`.
pub const PREDICTION: &str = "prediction";
/// The last dense layer's output in a classifier, before the sigmoid or softmax.
pub const LOGITS: &str = "logits";
/// The batch dimension's symbolic name.
pub const BATCH_DIM: &str = "N";

/// The hidden layers' non-linearity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// `max(0, x)`, with He initialisation.
    #[default]
    Relu,
    /// `tanh(x)`, with Xavier (Glorot) initialisation.
    Tanh,
}

impl Activation {
    /// The name used in the configuration and the model's properties.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
        }
    }

    /// The ONNX operator.
    fn op(self) -> &'static str {
        match self {
            Activation::Relu => "Relu",
            Activation::Tanh => "Tanh",
        }
    }
}

/// What follows the last dense layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Head {
    /// Binary classification: one logit, P(second class label).
    Sigmoid,
    /// Multiclass classification: one logit per class, normalised over the classes.
    Softmax,
    /// Regression: the value itself.
    Identity,
}

/// One fully connected layer: `y = x · Wᵀ + b`.
#[derive(Clone, Debug, PartialEq)]
pub struct Dense {
    /// Inputs per row.
    pub n_in: usize,
    /// Row-major `[n_out, n_in]` weights.
    pub weights: Vec<f32>,
    /// One bias per output.
    pub bias: Vec<f32>,
}

impl Dense {
    /// Outputs per row.
    pub fn n_out(&self) -> usize {
        self.bias.len()
    }
}

/// The exported network over raw (unstandardised) features.
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    /// Hidden layers then the output layer.
    pub layers: Vec<Dense>,
    /// The non-linearity after every layer but the last.
    pub activation: Activation,
    /// What follows the last layer.
    pub head: Head,
}

/// What the ONNX file says about the model besides its graph.
#[derive(Clone, Debug)]
pub struct OnnxMetadata<'a> {
    /// The tool that wrote the model, and its version.
    pub producer: (&'a str, &'a str),
    /// Feature names in input column order.
    pub features: &'a [String],
    /// The target column.
    pub target: &'a str,
    /// Class labels in probability order (empty for regression).
    pub class_labels: &'a [String],
    /// Further entries, written as `wflow.<key>` (hyperparameters, fitted preprocessing).
    pub properties: &'a [(String, String)],
}

impl Mlp {
    /// Input features per row.
    pub fn n_features(&self) -> usize {
        self.layers.first().map_or(0, |l| l.n_in)
    }

    /// Outputs per row: 1 for a sigmoid or a regression, K for a softmax.
    pub fn n_outputs(&self) -> usize {
        self.layers.last().map_or(0, Dense::n_out)
    }

    /// What the ONNX graph computes for row-major `rows` (`n × F`): row-major `n × outputs`
    /// probabilities or predictions. Panics when `rows` does not hold whole rows.
    pub fn forward(&self, rows: &[f32]) -> Vec<f32> {
        let f = self.n_features();
        assert!(f > 0, "a model has at least one feature");
        assert_eq!(rows.len() % f, 0, "rows hold whole rows of {f} features");
        let mut current = rows.to_vec();
        let last = self.layers.len() - 1;
        for (l, layer) in self.layers.iter().enumerate() {
            let mut next = Vec::with_capacity(current.len() / layer.n_in * layer.n_out());
            for row in current.chunks_exact(layer.n_in) {
                for (w, b) in layer.weights.chunks_exact(layer.n_in).zip(&layer.bias) {
                    let mut acc = 0.0f32;
                    for (x, w) in row.iter().zip(w) {
                        acc += x * w;
                    }
                    next.push(acc + b);
                }
            }
            if l < last {
                match self.activation {
                    Activation::Relu => next.iter_mut().for_each(|z| *z = z.max(0.0)),
                    Activation::Tanh => next.iter_mut().for_each(|z| *z = z.tanh()),
                }
            }
            current = next;
        }
        match self.head {
            Head::Identity => {}
            Head::Sigmoid => {
                for z in &mut current {
                    *z = 1.0 / (1.0 + (-*z).exp());
                }
            }
            Head::Softmax => {
                for logits in current.chunks_exact_mut(self.n_outputs()) {
                    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let mut sum = 0.0f32;
                    for z in logits.iter_mut() {
                        *z = (*z - max).exp();
                        sum += *z;
                    }
                    for z in logits.iter_mut() {
                        *z /= sum;
                    }
                }
            }
        }
        current
    }

    /// The model as an ONNX file: `ai.onnx` opset 13, IR 8, input `features` float32 `[N, F]`;
    /// per layer `l` (from 0) a `Gemm(transB=1)` with initializers `layer<l>.weight` `[out, in]`
    /// and `layer<l>.bias` `[out]`; hidden layers write `dense<l>` then `Relu`/`Tanh` to
    /// `hidden<l>`. The last Gemm writes `logits` followed by `Sigmoid` (`[N, 1]`) or
    /// `Softmax(axis=1)` (`[N, K]`) to `probabilities`, or writes `prediction` (`[N, 1]`) for a
    /// regression. Metadata: `wflow.features`, `wflow.target`, `wflow.task`,
    /// `wflow.class_labels` (classification only) and `wflow.<key>` per property.
    pub fn to_onnx(&self, meta: &OnnxMetadata<'_>) -> Result<Vec<u8>, String> {
        let f = self.n_features();
        let k = self.n_outputs();
        if self.layers.is_empty() {
            return Err("a network needs at least one layer".to_string());
        }
        if meta.features.len() != f {
            return Err(format!(
                "{} feature names for a model of {f} features",
                meta.features.len()
            ));
        }
        for (l, layer) in self.layers.iter().enumerate() {
            if layer.weights.len() != layer.n_in * layer.n_out()
                || (l > 0 && layer.n_in != self.layers[l - 1].n_out())
            {
                return Err(format!("layer {l} does not fit its neighbours"));
            }
        }
        let expected_labels = match self.head {
            Head::Sigmoid if k == 1 => 2,
            Head::Softmax if k > 2 => k,
            Head::Identity if k == 1 => 0,
            _ => {
                return Err(format!("a {:?} head cannot follow {k} outputs", self.head));
            }
        };
        if meta.class_labels.len() != expected_labels {
            return Err(format!(
                "{} class labels for a {:?} head of {k} outputs",
                meta.class_labels.len(),
                self.head
            ));
        }
        let json = |v: &[String]| serde_json::to_string(v).expect("a list of strings is JSON");

        let mut builder = ModelBuilder::new("mlp")
            .producer(meta.producer.0, meta.producer.1)
            .doc("Multilayer perceptron with standardisation folded into the first layer");
        let batch = Dim::named(BATCH_DIM);
        builder.input_f32(INPUT, &[batch.clone(), Dim::from(f)]);
        let last = self.layers.len() - 1;
        let mut input = INPUT.to_string();
        for (l, layer) in self.layers.iter().enumerate() {
            let weight = format!("layer{l}.weight");
            let bias = format!("layer{l}.bias");
            builder
                .initializer_f32(&weight, &[layer.n_out(), layer.n_in], layer.weights.clone())
                .initializer_f32(&bias, &[layer.n_out()], layer.bias.clone());
            let output = if l < last {
                format!("dense{l}")
            } else if self.head == Head::Identity {
                PREDICTION.to_string()
            } else {
                LOGITS.to_string()
            };
            builder.node(
                "Gemm",
                &[&input, &weight, &bias],
                &[&output],
                vec![attr_int("transB", 1)],
            );
            input = output;
            if l < last {
                let hidden = format!("hidden{l}");
                builder.node(self.activation.op(), &[&input], &[&hidden], vec![]);
                input = hidden;
            }
        }
        let output = match self.head {
            Head::Sigmoid => {
                builder.node("Sigmoid", &[LOGITS], &[PROBABILITIES], vec![]);
                PROBABILITIES
            }
            Head::Softmax => {
                builder.node(
                    "Softmax",
                    &[LOGITS],
                    &[PROBABILITIES],
                    vec![attr_int("axis", 1)],
                );
                PROBABILITIES
            }
            Head::Identity => PREDICTION,
        };
        builder
            .output_f32(output, &[batch, Dim::from(k)])
            .metadata("wflow.features", &json(meta.features))
            .metadata("wflow.target", meta.target);
        if self.head == Head::Identity {
            builder.metadata("wflow.task", "regression");
        } else {
            builder
                .metadata("wflow.task", "classification")
                .metadata("wflow.class_labels", &json(meta.class_labels));
        }
        for (key, value) in meta.properties {
            builder.metadata(&format!("wflow.{key}"), value);
        }
        builder.to_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// Two inputs, two hidden units, one output.
    fn tiny(head: Head, activation: Activation) -> Mlp {
        Mlp {
            layers: vec![
                Dense {
                    n_in: 2,
                    weights: vec![1.0, -1.0, 0.5, 0.5],
                    bias: vec![0.0, -1.0],
                },
                Dense {
                    n_in: 2,
                    weights: vec![2.0, -3.0],
                    bias: vec![0.25],
                },
            ],
            activation,
            head,
        }
    }

    #[test]
    fn forward_applies_layers_activation_and_head() {
        // Row (1, 3): dense = (1 - 3, 0.5 + 1.5 - 1) = (-2, 1); relu = (0, 1); out = -3 + 0.25.
        let out = tiny(Head::Identity, Activation::Relu).forward(&[1.0, 3.0]);
        assert_eq!(out, [-2.75]);
        let out = tiny(Head::Identity, Activation::Tanh).forward(&[1.0, 3.0]);
        let expect = 2.0 * (-2.0f32).tanh() - 3.0 * 1.0f32.tanh() + 0.25;
        assert!((out[0] - expect).abs() < 1e-6);
        let p = tiny(Head::Sigmoid, Activation::Relu).forward(&[1.0, 3.0, 0.0, 0.0]);
        assert!((p[0] - 1.0 / (1.0 + 2.75f32.exp())).abs() < 1e-7);
        // Row (0, 0): dense = (0, -1); relu = (0, 0); out = 0.25.
        assert!((p[1] - 1.0 / (1.0 + (-0.25f32).exp())).abs() < 1e-7);
    }

    #[test]
    fn softmax_rows_sum_to_one_without_overflow() {
        let model = Mlp {
            layers: vec![Dense {
                n_in: 1,
                weights: vec![1.0, 0.0, -1.0],
                bias: vec![0.0; 3],
            }],
            activation: Activation::Relu,
            head: Head::Softmax,
        };
        let p = model.forward(&[0.0, 1000.0]);
        for &v in &p[..3] {
            assert!((v - 1.0 / 3.0).abs() < 1e-7);
        }
        assert_eq!(&p[3..], &[1.0, 0.0, 0.0]);
    }

    #[test]
    fn onnx_chains_gemms_and_activations() {
        let props = vec![("epochs".to_string(), "5".to_string())];
        let bytes = tiny(Head::Sigmoid, Activation::Tanh)
            .to_onnx(&OnnxMetadata {
                producer: ("wflow-mlp", "0.1.0"),
                features: &names(&["a", "b"]),
                target: "y",
                class_labels: &names(&["no", "yes"]),
                properties: &props,
            })
            .unwrap();
        let model = wflow_onnx::decode(&bytes).unwrap();
        assert_eq!((model.ir_version, model.opset_import[0].version), (8, 13));
        let graph = model.graph.as_ref().unwrap();
        let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(ops, ["Gemm", "Tanh", "Gemm", "Sigmoid"]);
        assert_eq!(
            graph.node[0].input,
            ["features", "layer0.weight", "layer0.bias"]
        );
        assert_eq!(
            graph.node[2].input,
            ["hidden0", "layer1.weight", "layer1.bias"]
        );
        assert_eq!(graph.node[3].output, ["probabilities"]);
        assert_eq!(graph.initializer[0].dims, [2, 2]);
        assert_eq!(graph.initializer[2].dims, [1, 2]);
        let meta: Vec<(&str, &str)> = model
            .metadata_props
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str()))
            .collect();
        assert_eq!(
            meta,
            [
                ("wflow.features", r#"["a","b"]"#),
                ("wflow.target", "y"),
                ("wflow.task", "classification"),
                ("wflow.class_labels", r#"["no","yes"]"#),
                ("wflow.epochs", "5"),
            ]
        );
    }

    #[test]
    fn regression_onnx_ends_in_prediction_without_labels() {
        let bytes = tiny(Head::Identity, Activation::Relu)
            .to_onnx(&OnnxMetadata {
                producer: ("p", "1"),
                features: &names(&["a", "b"]),
                target: "y",
                class_labels: &[],
                properties: &[],
            })
            .unwrap();
        let model = wflow_onnx::decode(&bytes).unwrap();
        let graph = model.graph.as_ref().unwrap();
        let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(ops, ["Gemm", "Relu", "Gemm"]);
        assert_eq!(graph.output[0].name, "prediction");
        assert_eq!(model.metadata_value("wflow.task"), Some("regression"));
        assert_eq!(model.metadata_value("wflow.class_labels"), None);
    }

    #[test]
    fn mismatches_are_errors() {
        let model = tiny(Head::Sigmoid, Activation::Relu);
        let meta = |features: &[String], labels: &[String]| {
            model.to_onnx(&OnnxMetadata {
                producer: ("p", "1"),
                features,
                target: "y",
                class_labels: labels,
                properties: &[],
            })
        };
        assert_eq!(
            meta(&names(&["a"]), &names(&["0", "1"])).unwrap_err(),
            "1 feature names for a model of 2 features"
        );
        assert!(
            meta(&names(&["a", "b"]), &names(&["0", "1", "2"]))
                .unwrap_err()
                .starts_with("3 class labels")
        );
    }
}
