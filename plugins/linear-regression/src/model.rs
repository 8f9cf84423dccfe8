//! The trained model as the ONNX graph holds it: one linear layer over the raw features (the
//! standardisation already folded in), with its float32 forward pass and its export to ONNX.
//!
//! The forward pass computes in f32, in the graph's order of operations, so that the host can
//! check that tract's predictions match it. It does not train anything (see `ridge`) and it does
//! not run ONNX (the host does, with tract).

use wflow_onnx::{Dim, ModelBuilder, attr_int};

/// The graph input: float32 `[N, F]`, features in metadata order.
pub const INPUT: &str = "features";
/// The graph output: float32 `[N, 1]`, one prediction per row.
pub const OUTPUT: &str = "prediction";
/// The batch dimension's symbolic name.
pub const BATCH_DIM: &str = "N";

/// A linear model over raw (unstandardised) features: `prediction = x · w + b`.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearModel {
    /// One weight per feature, in feature order.
    pub weights: Vec<f32>,
    /// The bias.
    pub bias: f32,
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
    /// Further entries, written as `wflow.<key>` (hyperparameters, fitted preprocessing).
    pub properties: &'a [(String, String)],
}

impl LinearModel {
    /// Number of input features, F.
    pub fn n_features(&self) -> usize {
        self.weights.len()
    }

    /// The predictions the ONNX graph computes for row-major `rows` (`n × F`), one per row, in
    /// f32 and in the graph's order: the products summed left to right, then the bias (Gemm).
    /// Panics when `rows` does not hold whole rows.
    pub fn forward(&self, rows: &[f32]) -> Vec<f32> {
        let f = self.n_features();
        assert!(f > 0, "a model has at least one feature");
        assert_eq!(rows.len() % f, 0, "rows hold whole rows of {f} features");
        rows.chunks_exact(f)
            .map(|row| {
                let mut acc = 0.0f32;
                for (x, w) in row.iter().zip(&self.weights) {
                    acc += x * w;
                }
                acc + self.bias
            })
            .collect()
    }

    /// The model as an ONNX file: `ai.onnx` opset 13, IR 8, input `features` float32 `[N, F]`,
    /// one `Gemm(transB=1)` with `coefficients` `[1, F]` and `intercept` `[1]` to `prediction`
    /// `[N, 1]`, and metadata `wflow.features`, `wflow.target`, `wflow.task` (`regression`) and
    /// `wflow.<key>` per property.
    pub fn to_onnx(&self, meta: &OnnxMetadata<'_>) -> Result<Vec<u8>, String> {
        let f = self.n_features();
        if meta.features.len() != f {
            return Err(format!(
                "{} feature names for a model of {f} features",
                meta.features.len()
            ));
        }
        let json = serde_json::to_string(meta.features).expect("a list of strings is JSON");

        let mut builder = ModelBuilder::new("linear_regression")
            .producer(meta.producer.0, meta.producer.1)
            .doc("Ridge regression with standardisation folded into the linear layer");
        let batch = Dim::named(BATCH_DIM);
        builder
            .input_f32(INPUT, &[batch.clone(), Dim::from(f)])
            .initializer_f32("coefficients", &[1, f], self.weights.clone())
            .initializer_f32("intercept", &[1], vec![self.bias])
            .node(
                "Gemm",
                &[INPUT, "coefficients", "intercept"],
                &[OUTPUT],
                vec![attr_int("transB", 1)],
            )
            .output_f32(OUTPUT, &[batch, Dim::from(1)])
            .metadata("wflow.features", &json)
            .metadata("wflow.target", meta.target)
            .metadata("wflow.task", "regression");
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

    fn model() -> LinearModel {
        LinearModel {
            weights: vec![2.0, -1.0],
            bias: 0.5,
        }
    }

    #[test]
    fn forward_is_a_dot_product_plus_bias() {
        assert_eq!(
            model().forward(&[1.0, 1.0, 0.0, 0.5, -2.0, 3.0]),
            [1.5, 0.0, -6.5]
        );
        assert!(model().forward(&[]).is_empty());
    }

    #[test]
    #[should_panic(expected = "whole rows")]
    fn forward_refuses_partial_rows() {
        model().forward(&[1.0, 2.0, 3.0]);
    }

    #[test]
    fn onnx_is_one_gemm_to_prediction_with_metadata() {
        let props = vec![("alpha".to_string(), "1".to_string())];
        let bytes = model()
            .to_onnx(&OnnxMetadata {
                producer: ("wflow-linear-regression", "0.1.0"),
                features: &names(&["a", "b\"quoted\""]),
                target: "y",
                properties: &props,
            })
            .unwrap();
        let model = wflow_onnx::decode(&bytes).unwrap();
        assert_eq!((model.ir_version, model.opset_import[0].version), (8, 13));
        assert_eq!(model.producer_name, "wflow-linear-regression");
        let graph = model.graph.as_ref().unwrap();
        assert_eq!(graph.node.len(), 1);
        let gemm = &graph.node[0];
        assert_eq!(gemm.op_type, "Gemm");
        assert_eq!(gemm.input, ["features", "coefficients", "intercept"]);
        assert_eq!(gemm.output, ["prediction"]);
        assert_eq!(gemm.attribute.len(), 1);
        assert_eq!(
            (gemm.attribute[0].name.as_str(), gemm.attribute[0].i),
            ("transB", Some(1))
        );
        assert_eq!(graph.input[0].name, "features");
        assert_eq!(
            graph.input[0].shape(),
            Some(vec![Dim::named("N"), Dim::Fixed(2)])
        );
        assert_eq!(graph.output[0].name, "prediction");
        assert_eq!(
            graph.output[0].shape(),
            Some(vec![Dim::named("N"), Dim::Fixed(1)])
        );
        assert_eq!(graph.output[0].elem_type(), Some(1));
        assert_eq!(graph.initializer[0].dims, [1, 2]);
        assert_eq!(graph.initializer[0].float_data, [2.0, -1.0]);
        assert_eq!(graph.initializer[1].dims, [1]);
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
                ("wflow.task", "regression"),
                ("wflow.alpha", "1"),
            ]
        );
    }

    #[test]
    fn mismatched_feature_names_are_an_error() {
        let err = model()
            .to_onnx(&OnnxMetadata {
                producer: ("p", "1"),
                features: &names(&["only-one"]),
                target: "y",
                properties: &[],
            })
            .unwrap_err();
        assert_eq!(err, "1 feature names for a model of 2 features");
    }
}
