//! The trained model as the ONNX graph holds it: a linear layer (standardisation already folded
//! in) followed by a sigmoid (binary) or a softmax (multinomial), with its float32 forward pass
//! and its export to ONNX.
//!
//! The forward pass computes in f32, in the graph's order of operations, so the host can check
//! that tract's predictions match it. It does not train anything (see `train`) and it does not
//! run ONNX (the host does, with tract).

use wflow_onnx::{Dim, ModelBuilder, attr_int};

/// The graph input: float32 `[N, F]`, features in metadata order.
pub const INPUT: &str = "features";
/// The graph output: float32 `[N, 1]` (binary: P(class_labels\[1\])) or `[N, K]` (multinomial).
pub const OUTPUT: &str = "probabilities";
/// The linear layer's output, before the sigmoid or softmax.
pub const LOGITS: &str = "logits";
/// The batch dimension's symbolic name.
pub const BATCH_DIM: &str = "N";

/// How logits become probabilities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// One logit, the probability of the second class label.
    Sigmoid,
    /// One logit per class, normalised over the classes.
    Softmax,
}

/// A linear model over raw (unstandardised) features: `logits = x · Wᵀ + b`.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearModel {
    /// Number of input features, F.
    pub n_features: usize,
    /// Row-major `[outputs, F]` weights.
    pub weights: Vec<f32>,
    /// One bias per output.
    pub bias: Vec<f32>,
    /// Sigmoid (one output) or softmax (one output per class).
    pub link: Link,
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
    /// Class labels in probability order.
    pub class_labels: &'a [String],
    /// Further entries, written as `wflow.<key>` (hyperparameters, fit information).
    pub properties: &'a [(String, String)],
}

impl LinearModel {
    /// Number of outputs per row: 1 for a sigmoid, K for a softmax.
    pub fn n_outputs(&self) -> usize {
        self.bias.len()
    }

    /// The probabilities the ONNX graph computes for row-major `rows` (`n × F`), row-major
    /// `n × outputs`, in f32 and in the graph's order: Gemm (products summed left to right,
    /// then the bias), then Sigmoid or Softmax. Panics when `rows` does not hold whole rows.
    pub fn forward(&self, rows: &[f32]) -> Vec<f32> {
        let f = self.n_features;
        assert!(f > 0, "a model has at least one feature");
        assert_eq!(rows.len() % f, 0, "rows hold whole rows of {f} features");
        let mut out = Vec::with_capacity(rows.len() / f * self.n_outputs());
        for row in rows.chunks_exact(f) {
            let start = out.len();
            for (w, b) in self.weights.chunks_exact(f).zip(&self.bias) {
                let mut acc = 0.0f32;
                for (x, w) in row.iter().zip(w) {
                    acc += x * w;
                }
                out.push(acc + b);
            }
            let logits = &mut out[start..];
            match self.link {
                Link::Sigmoid => {
                    for z in logits.iter_mut() {
                        *z = 1.0 / (1.0 + (-*z).exp());
                    }
                }
                Link::Softmax => {
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
        out
    }

    /// The model as an ONNX file: `ai.onnx` opset 13, IR 8, input `features` float32 `[N, F]`,
    /// `Gemm(transB=1)` to `logits`, then `Sigmoid` (output `[N, 1]`) or `Softmax(axis=1)`
    /// (output `[N, K]`) to `probabilities`, with metadata `wflow.features`, `wflow.target`,
    /// `wflow.task`, `wflow.class_labels` and `wflow.<key>` per property.
    pub fn to_onnx(&self, meta: &OnnxMetadata<'_>) -> Result<Vec<u8>, String> {
        let f = self.n_features;
        let k = self.n_outputs();
        if meta.features.len() != f {
            return Err(format!(
                "{} feature names for a model of {f} features",
                meta.features.len()
            ));
        }
        let expected_labels = match self.link {
            Link::Sigmoid => 2,
            Link::Softmax => k,
        };
        if meta.class_labels.len() != expected_labels || self.weights.len() != k * f {
            return Err(format!(
                "{} class labels and {} weights for a model of {k} outputs over {f} features",
                meta.class_labels.len(),
                self.weights.len()
            ));
        }
        let json = |v: &[String]| serde_json::to_string(v).expect("a list of strings is JSON");

        let mut builder = ModelBuilder::new("logistic_regression")
            .producer(meta.producer.0, meta.producer.1)
            .doc("Logistic regression with standardisation folded into the linear layer");
        let batch = Dim::named(BATCH_DIM);
        builder
            .input_f32(INPUT, &[batch.clone(), Dim::from(f)])
            .initializer_f32("coefficients", &[k, f], self.weights.clone())
            .initializer_f32("intercepts", &[k], self.bias.clone())
            .node(
                "Gemm",
                &[INPUT, "coefficients", "intercepts"],
                &[LOGITS],
                vec![attr_int("transB", 1)],
            );
        match self.link {
            Link::Sigmoid => builder.node("Sigmoid", &[LOGITS], &[OUTPUT], vec![]),
            Link::Softmax => {
                builder.node("Softmax", &[LOGITS], &[OUTPUT], vec![attr_int("axis", 1)])
            }
        };
        builder
            .output_f32(OUTPUT, &[batch, Dim::from(k)])
            .metadata("wflow.features", &json(meta.features))
            .metadata("wflow.target", meta.target)
            .metadata("wflow.task", "classification")
            .metadata("wflow.class_labels", &json(meta.class_labels));
        for (key, value) in meta.properties {
            builder.metadata(&format!("wflow.{key}"), value);
        }
        builder.to_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wflow_onnx::Message as _;
    use wflow_onnx::proto::{ModelProto, type_proto};

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn binary() -> LinearModel {
        LinearModel {
            n_features: 2,
            weights: vec![2.0, -1.0],
            bias: vec![0.5],
            link: Link::Sigmoid,
        }
    }

    fn output_dims(model: &ModelProto) -> Vec<String> {
        let graph = model.graph.as_ref().unwrap();
        let Some(type_proto::Value::TensorType(t)) =
            &graph.output[0].r#type.as_ref().unwrap().value
        else {
            panic!("the output is a tensor");
        };
        t.shape
            .as_ref()
            .unwrap()
            .dim
            .iter()
            .map(|d| format!("{:?}", d.value.as_ref().unwrap()))
            .collect()
    }

    #[test]
    fn forward_applies_gemm_then_sigmoid() {
        let p = binary().forward(&[1.0, 1.0, 0.0, 0.5]);
        let expect = [1.5f32, 0.0];
        assert_eq!(p.len(), 2);
        for (p, z) in p.iter().zip(expect) {
            assert!((p - 1.0 / (1.0 + (-z).exp())).abs() < 1e-7);
        }
        assert!((p[1] - 0.5).abs() < 1e-7);
    }

    #[test]
    fn forward_applies_softmax_per_row() {
        let model = LinearModel {
            n_features: 1,
            weights: vec![1.0, 0.0, -1.0],
            bias: vec![0.0, 0.0, 0.0],
            link: Link::Softmax,
        };
        let p = model.forward(&[0.0, 1000.0]);
        assert_eq!(p.len(), 6);
        for &v in &p[..3] {
            assert!((v - 1.0 / 3.0).abs() < 1e-7);
        }
        // A huge logit must not overflow to NaN: the max is subtracted first.
        assert_eq!(&p[3..], &[1.0, 0.0, 0.0]);
    }

    #[test]
    fn binary_onnx_has_gemm_sigmoid_and_metadata() {
        let props = vec![("c".to_string(), "1".to_string())];
        let bytes = binary()
            .to_onnx(&OnnxMetadata {
                producer: ("wflow-logistic-regression", "0.1.0"),
                features: &names(&["a", "b\"quoted\""]),
                target: "y",
                class_labels: &names(&["no", "yes"]),
                properties: &props,
            })
            .unwrap();
        let model = ModelProto::decode(bytes.as_slice()).unwrap();
        assert_eq!(model.ir_version, 8);
        assert_eq!(model.opset_import[0].version, 13);
        let graph = model.graph.as_ref().unwrap();
        let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(ops, ["Gemm", "Sigmoid"]);
        assert_eq!(
            graph.node[0].input,
            ["features", "coefficients", "intercepts"]
        );
        assert_eq!(graph.node[1].output, ["probabilities"]);
        assert_eq!(graph.input[0].name, "features");
        assert_eq!(output_dims(&model), [r#"DimParam("N")"#, "DimValue(1)"]);
        assert_eq!(graph.initializer[0].dims, [1, 2]);
        assert_eq!(graph.initializer[0].float_data, [2.0, -1.0]);
        assert_eq!(graph.initializer[1].float_data, [0.5]);
        let meta: Vec<(&str, &str)> = model
            .metadata_props
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str()))
            .collect();
        assert_eq!(
            meta,
            [
                ("wflow.features", r#"["a","b\"quoted\""]"#),
                ("wflow.target", "y"),
                ("wflow.task", "classification"),
                ("wflow.class_labels", r#"["no","yes"]"#),
                ("wflow.c", "1"),
            ]
        );
    }

    #[test]
    fn multinomial_onnx_has_softmax_over_axis_one() {
        let model = LinearModel {
            n_features: 1,
            weights: vec![1.0, 0.0, -1.0],
            bias: vec![0.0, 0.1, 0.2],
            link: Link::Softmax,
        };
        let bytes = model
            .to_onnx(&OnnxMetadata {
                producer: ("p", "1"),
                features: &names(&["x"]),
                target: "y",
                class_labels: &names(&["a", "b", "c"]),
                properties: &[],
            })
            .unwrap();
        let decoded = ModelProto::decode(bytes.as_slice()).unwrap();
        let graph = decoded.graph.as_ref().unwrap();
        assert_eq!(graph.node[1].op_type, "Softmax");
        assert_eq!(graph.node[1].attribute[0].name, "axis");
        assert_eq!(graph.node[1].attribute[0].i, Some(1));
        assert_eq!(output_dims(&decoded), [r#"DimParam("N")"#, "DimValue(3)"]);
    }

    #[test]
    fn mismatched_metadata_is_an_error() {
        let err = binary()
            .to_onnx(&OnnxMetadata {
                producer: ("p", "1"),
                features: &names(&["only-one"]),
                target: "y",
                class_labels: &names(&["a", "b"]),
                properties: &[],
            })
            .unwrap_err();
        assert_eq!(err, "1 feature names for a model of 2 features");
        let err = binary()
            .to_onnx(&OnnxMetadata {
                producer: ("p", "1"),
                features: &names(&["a", "b"]),
                target: "y",
                class_labels: &names(&["a", "b", "c"]),
                properties: &[],
            })
            .unwrap_err();
        assert!(err.starts_with("3 class labels"), "{err}");
    }
}
