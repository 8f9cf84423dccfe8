//! The `logistic-regression` trainer: standardised, L2-regularised logistic regression (binary
//! or multinomial) fitted with L-BFGS, exported as an ONNX model the host runs with tract.
//!
//! This file is the glue: it reads the configuration and the table, chooses `c` by
//! cross-validation with [`cv`] when a `search` is configured, calls the pure fit in [`train`],
//! exports with [`model`] (which writes the file with `wflow-onnx`), and reports progress through
//! the SDK. It deliberately computes nothing itself beyond assembling the search's report, so
//! that everything that can go wrong in the numbers is tested natively. It does not impute, encode or scale data
//! for other steps: text features must be one-hot encoded and nulls imputed upstream.

pub mod cv;
pub mod lbfgs;
pub mod model;
pub mod train;

pub use wflow_learn::select_features;
use wflow_learn::{SearchMethod, SearchResult};
use wflow_sdk::prelude::*;

use crate::cv::{Plan, Score};
use crate::model::OnnxMetadata;
use crate::train::{Fitted, Hyperparameters, TrainError};

/// How often (in iterations) the loss and progress are reported to the host.
const REPORT_EVERY: usize = 5;

/// The step's configuration (`with = { ... }` in a workflow).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Feature columns, in order. Default: every column except the target.
    #[serde(default)]
    pub features: Option<Vec<String>>,
    /// Inverse regularisation strength, as in scikit-learn: the penalty is `||w||² / (2c)`
    /// relative to the summed log loss. Smaller is stronger.
    #[serde(default = "default_c")]
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub c: f64,
    /// The most L-BFGS iterations.
    #[serde(default = "default_max_iter")]
    #[schemars(range(min = 1))]
    pub max_iter: u32,
    /// Stop when the largest gradient component of the mean penalised loss is at most this.
    #[serde(default = "default_tol")]
    #[schemars(range(min = 0))]
    pub tol: f64,
    /// Choose `c` by cross-validation among these candidates, then train on all rows with the
    /// best; `c` is then ignored. Absent: train once with `c`.
    #[serde(default)]
    pub search: Option<SearchConfig>,
}

/// A hyperparameter search over `c` (`search = { ... }`).
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchConfig {
    /// Candidate values of `c`, each > 0.
    pub c: Vec<f64>,
    /// Stratified cross-validation folds (each class spread evenly over them).
    #[serde(default = "wflow_learn::search::default_folds")]
    #[schemars(range(min = 2))]
    pub folds: u32,
    /// `grid` tries every candidate; `random` draws `trials` of them (with replacement).
    #[serde(default)]
    pub method: SearchMethod,
    /// How many candidates a random search draws; ignored by a grid search.
    #[serde(default = "wflow_learn::search::default_trials")]
    #[schemars(range(min = 1))]
    pub trials: u32,
    /// Seeds the folds' shuffle and the random draws.
    #[serde(default = "wflow_learn::search::default_search_seed")]
    pub seed: u64,
    /// What picks the best `c`: the highest mean held-out `accuracy`, or the lowest `log_loss`.
    #[serde(default)]
    pub metric: ClassificationMetric,
}

/// What a search scores each fold by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClassificationMetric {
    /// Share of held-out rows predicted right (maximised).
    #[default]
    Accuracy,
    /// Mean held-out log loss (minimised).
    LogLoss,
}

impl SearchConfig {
    /// The search as the pure code takes it.
    pub fn plan(&self) -> Plan {
        let widen = |v: u32| usize::try_from(v).expect("a u32 fits in usize");
        Plan {
            c: self.c.clone(),
            folds: widen(self.folds),
            search: self.method.search(self.trials, self.seed),
            seed: self.seed,
            score: match self.metric {
                ClassificationMetric::Accuracy => Score::Accuracy,
                ClassificationMetric::LogLoss => Score::LogLoss,
            },
        }
    }
}

fn default_c() -> f64 {
    Hyperparameters::default().c
}

fn default_max_iter() -> u32 {
    200
}

fn default_tol() -> f64 {
    Hyperparameters::default().tol
}

impl Config {
    pub fn hyperparameters(&self) -> Hyperparameters {
        Hyperparameters {
            c: self.c,
            max_iter: usize::try_from(self.max_iter).expect("a u32 fits in usize"),
            tol: self.tol,
        }
    }
}

/// The plugin.
pub struct LogisticRegression;

impl Plugin for LogisticRegression {
    type Config = Config;
    const DESCRIPTION: &'static str = "Trains a standardised, L2-regularised logistic regression classifier (binary or multinomial) and emits ONNX";
}

impl Trainer for LogisticRegression {
    fn train(data: Table, target: String, config: Config) -> Result<Trained, StepError> {
        let hyper = config.hyperparameters();
        hyper.validate().map_err(step_error)?;
        let schema: Vec<(String, ColumnType)> = data
            .schema()
            .into_iter()
            .map(|info| (info.name, info.kind))
            .collect();
        let features = select_features(&schema, &target, config.features.as_deref())?;
        let labels = data.labels(&target)?;
        let columns = features
            .iter()
            .map(|name| data.floats(name))
            .collect::<Result<Vec<_>, _>>()?;
        log::info(&format!(
            "training on {} rows and {} features",
            labels.len(),
            features.len()
        ));

        let total = u64::from(config.max_iter);
        let plan = config.search.as_ref().map(SearchConfig::plan);
        let training = train_columns_searched(
            &columns,
            features,
            target,
            &labels,
            &hyper,
            plan.as_ref(),
            &mut |done, fits| {
                progress(
                    done as u64,
                    fits as u64,
                    &format!("cross-validation: fit {done} of {fits}"),
                );
            },
            &mut |iteration, loss| {
                if iteration % REPORT_EVERY == 0 {
                    emit_metric("loss", loss);
                    progress(
                        iteration as u64,
                        total,
                        &format!("iteration {iteration}: loss {loss:.6}"),
                    );
                }
            },
        )?;
        emit_metric("loss", training.fitted.objective);
        progress(
            total,
            total,
            &format!("finished after {} iterations", training.fitted.iterations),
        );
        for line in &training.trial_log {
            log::info(line);
        }
        for warning in &training.warnings {
            log::warn(warning);
        }
        Ok(training.trained)
    }
}

/// Everything a training run produces: the step's result, the fit behind it (whose
/// `model.forward` computes what the ONNX graph computes) and warnings for the log.
#[derive(Debug)]
pub struct Training {
    /// The model (ONNX bytes and metadata) and the metrics, as the step returns them.
    pub trained: Trained,
    /// The fitted model and how the fit went.
    pub fitted: Fitted,
    /// Things worth a warning in the step's log (no convergence, precision lost in the export).
    pub warnings: Vec<String>,
    /// The cross-validation search that chose `c`, if one was configured.
    pub search: Option<SearchResult>,
    /// One JSON object per search trial, for the step's log (empty without a search).
    pub trial_log: Vec<String>,
}

/// Trains on plain columns (one per feature, in `features` order) and labels (the target
/// column as strings), and exports the model: the whole step without the table and the host,
/// so it runs natively. `on_iteration` receives each iteration's number and objective.
pub fn train_columns(
    columns: &[Vec<f64>],
    features: Vec<String>,
    target: String,
    labels: &[String],
    hyper: &Hyperparameters,
    on_iteration: &mut dyn FnMut(usize, f64),
) -> Result<Training, StepError> {
    train_columns_searched(
        columns,
        features,
        target,
        labels,
        hyper,
        None,
        &mut |_, _| {},
        on_iteration,
    )
}

/// [`train_columns`], after choosing `c` by cross-validation when `plan` is given: the final
/// model is trained on all rows with the best `c`, and the search's trials are added to the
/// metrics (`trial.<i>.c`, `trial.<i>.cv_<metric>`, `trial.<i>.cv_<metric>_std`, `best.c`,
/// `cv_score`, `trials`), the model's properties (`search_trials` and the search's settings)
/// and `trial_log`. `on_fit(done, total)` follows the search's fits; `on_iteration` only the
/// final one's iterations.
#[allow(clippy::too_many_arguments)]
pub fn train_columns_searched(
    columns: &[Vec<f64>],
    features: Vec<String>,
    target: String,
    labels: &[String],
    hyper: &Hyperparameters,
    plan: Option<&Plan>,
    on_fit: &mut dyn FnMut(usize, usize),
    on_iteration: &mut dyn FnMut(usize, f64),
) -> Result<Training, StepError> {
    let mut hyper = hyper.clone();
    let mut search = None;
    let mut search_properties = Vec::new();
    let mut search_metrics = Vec::new();
    let mut trial_log = Vec::new();
    if let Some(plan) = plan {
        let result = cv::cross_validate(columns, &features, &target, labels, &hyper, plan, on_fit)?;
        hyper.c = result.best_trial().params["c"];
        let (name, negated) = (plan.score.name(), plan.score.minimised());
        let report = result.report(name, negated, plan.folds, &plan.search);
        trial_log = report.trial_log;
        search_metrics = report
            .metrics
            .into_iter()
            .map(|(metric_name, value)| metric(&metric_name, value))
            .collect();
        search_properties = report.properties;
        search = Some(result);
    }
    let hyper = &hyper;
    let encoded = train::encode_target(&target, labels).map_err(step_error)?;
    let fitted =
        train::fit(columns, &features, &encoded, hyper, on_iteration).map_err(step_error)?;

    let mut warnings = Vec::new();
    if !fitted.converged {
        warnings.push(format!(
            "did not converge in {} iterations (largest gradient component {:.3e}, tol {}); \
             raise `max_iter`, or lower `c` for a smoother problem",
            fitted.iterations, fitted.grad_max, hyper.tol
        ));
    }
    if fitted.f32_max_deviation > 1e-4 {
        warnings.push(format!(
            "the exported float32 model's probabilities differ from the exact ones by up to {:.2e}: \
             some features have a mean far larger than their spread; consider centring them upstream",
            fitted.f32_max_deviation
        ));
    }

    let mut properties = properties(hyper, &fitted);
    properties.extend(search_properties);
    let onnx = fitted
        .model
        .to_onnx(&OnnxMetadata {
            producer: ("wflow-logistic-regression", env!("CARGO_PKG_VERSION")),
            features: &features,
            target: &target,
            class_labels: &encoded.classes,
            properties: &properties,
        })
        .map_err(|e| StepError::Failed(format!("writing the ONNX model: {e}")))?;
    let mut metrics = metrics(&fitted, labels.len(), features.len());
    metrics.extend(search_metrics);
    Ok(Training {
        trained: Trained {
            model: Model {
                onnx,
                metadata: ModelMetadata {
                    features,
                    target,
                    task: Task::Classification,
                    class_labels: encoded.classes,
                    properties,
                },
            },
            metrics,
        },
        fitted,
        warnings,
        search,
        trial_log,
    })
}

wflow_sdk::export_trainer!(LogisticRegression);

pub(crate) fn step_error(error: TrainError) -> StepError {
    match error {
        TrainError::InvalidConfig(message) => StepError::InvalidConfig(message),
        TrainError::InvalidInput(message) => StepError::InvalidInput(message),
    }
}

/// The hyperparameters and fit details kept with the model (and as `wflow.<key>` in the ONNX file).
pub fn properties(hyper: &Hyperparameters, fitted: &Fitted) -> Vec<(String, String)> {
    let json = |v: &[f64]| serde_json::to_string(v).expect("finite floats are JSON");
    vec![
        ("c".to_string(), hyper.c.to_string()),
        ("max_iter".to_string(), hyper.max_iter.to_string()),
        ("tol".to_string(), hyper.tol.to_string()),
        ("penalty".to_string(), "l2".to_string()),
        ("solver".to_string(), "lbfgs".to_string()),
        ("iterations".to_string(), fitted.iterations.to_string()),
        ("converged".to_string(), fitted.converged.to_string()),
        ("feature_means".to_string(), json(&fitted.standardizer.mean)),
        (
            "feature_scales".to_string(),
            json(&fitted.standardizer.scale),
        ),
    ]
}

/// The step's metrics.
pub fn metrics(fitted: &Fitted, rows: usize, features: usize) -> Vec<Metric> {
    vec![
        metric("train_accuracy", fitted.train_accuracy),
        metric("train_log_loss", fitted.train_log_loss),
        metric("iterations", fitted.iterations as f64),
        metric("rows", rows as f64),
        metric("features", features as f64),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use wflow_learn::testing::read_csv;
    use wflow_onnx::Message as _;
    use wflow_onnx::proto::{ModelProto, type_proto};
    use wflow_sdk::{config_schema, parse_config};

    fn schema(columns: &[(&str, ColumnType)]) -> Vec<(String, ColumnType)> {
        columns.iter().map(|(n, k)| (n.to_string(), *k)).collect()
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn config_defaults_match_scikit_learn() {
        let config: Config = parse_config("").unwrap();
        assert_eq!(config.features, None);
        assert_eq!(config.hyperparameters(), Hyperparameters::default());
        assert_eq!(config.c, 1.0);
        assert_eq!(config.max_iter, 200);
        assert_eq!(config.tol, 1e-6);
        let config: Config =
            parse_config(r#"{"features": ["a"], "c": 0.5, "max_iter": 10, "tol": 0.001}"#).unwrap();
        assert_eq!(config.features, Some(strings(&["a"])));
        assert_eq!(config.hyperparameters().max_iter, 10);
    }

    #[test]
    fn config_errors_name_the_field() {
        let Err(StepError::InvalidConfig(message)) = parse_config::<Config>(r#"{"C": 1}"#) else {
            panic!("unknown fields are rejected");
        };
        assert!(message.contains("unknown field `C`"), "{message}");
        let Err(StepError::InvalidConfig(message)) = parse_config::<Config>(r#"{"max_iter": -1}"#)
        else {
            panic!("a negative max_iter is rejected");
        };
        assert!(message.starts_with("field `max_iter`"), "{message}");
        let config: Config = parse_config(r#"{"c": -1}"#).unwrap();
        assert_eq!(
            config.hyperparameters().validate().map_err(step_error),
            Err(StepError::InvalidConfig(
                "field `c`: must be a positive number, got -1".to_string()
            ))
        );
    }

    #[test]
    fn search_config_defaults_and_errors() {
        let config: Config = parse_config(r#"{"search": {"c": [0.1, 1]}}"#).unwrap();
        let search = config.search.unwrap();
        assert_eq!(
            search.plan(),
            Plan {
                c: vec![0.1, 1.0],
                folds: 5,
                search: wflow_learn::Search::Grid,
                seed: 42,
                score: Score::Accuracy,
            }
        );
        let config: Config = parse_config(
            r#"{"search": {"c": [2], "folds": 3, "method": "random", "trials": 4, "seed": 1, "metric": "log_loss"}}"#,
        )
        .unwrap();
        assert_eq!(
            config.search.unwrap().plan(),
            Plan {
                c: vec![2.0],
                folds: 3,
                search: wflow_learn::Search::Random { trials: 4, seed: 1 },
                seed: 1,
                score: Score::LogLoss,
            }
        );
        for (bad, field) in [
            (r#"{"search": {}}"#, "search"),
            (r#"{"search": {"c": [1], "k": 3}}"#, "search.k"),
            (
                r#"{"search": {"c": [1], "method": "bayes"}}"#,
                "search.method",
            ),
            (r#"{"search": {"c": [1], "metric": "f1"}}"#, "search.metric"),
        ] {
            let Err(StepError::InvalidConfig(message)) = parse_config::<Config>(bad) else {
                panic!("{bad} is rejected");
            };
            assert!(
                message.starts_with(&format!("field `{field}`")),
                "{bad}: {message}"
            );
        }
        let schema: serde_json::Value = serde_json::from_str(&config_schema::<Config>()).unwrap();
        assert!(schema.to_string().contains("log_loss"));
    }

    #[test]
    fn a_search_reports_every_trial_and_trains_with_the_best_c() {
        let data = read_csv("breast_cancer.csv");
        let plan = SearchConfig {
            c: vec![0.01, 0.1, 1.0, 10.0],
            folds: 5,
            method: SearchMethod::Grid,
            trials: 10,
            seed: 42,
            metric: ClassificationMetric::Accuracy,
        }
        .plan();
        let mut fits = 0;
        let training = train_columns_searched(
            &data.columns,
            data.features.clone(),
            data.target.clone(),
            &data.labels,
            &Hyperparameters::default(),
            Some(&plan),
            &mut |done, _| fits = done,
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!(fits, 20);
        let value = |name: &str| {
            training
                .trained
                .metrics
                .iter()
                .find(|m| m.name == name)
                .unwrap_or_else(|| panic!("no metric {name}"))
                .value
        };
        for (i, c) in [0.01, 0.1, 1.0, 10.0].iter().enumerate() {
            assert_eq!(value(&format!("trial.{i}.c")), *c);
            let mean = value(&format!("trial.{i}.cv_accuracy"));
            assert!(mean > 0.9 && mean <= 1.0, "{i}: {mean}");
            assert!(value(&format!("trial.{i}.cv_accuracy_std")) >= 0.0);
        }
        let best = value("best.c");
        assert_eq!(value("trials"), 4.0);
        assert!(value("cv_score") > 0.965, "{}", value("cv_score"));
        assert_eq!(value("train_accuracy"), training.fitted.train_accuracy);

        // The final model is the one an unsearched run with the best c gives.
        let plain = train_columns(
            &data.columns,
            data.features.clone(),
            data.target.clone(),
            &data.labels,
            &Hyperparameters {
                c: best,
                ..Default::default()
            },
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!(plain.fitted.model, training.fitted.model);
        assert!(plain.search.is_none() && plain.trial_log.is_empty());

        let props = &training.trained.model.metadata.properties;
        let get = |k: &str| props.iter().find(|(key, _)| key == k).unwrap().1.clone();
        assert_eq!(get("c"), best.to_string());
        assert_eq!(get("search_metric"), "accuracy");
        assert_eq!(get("search_folds"), "5");
        assert_eq!(get("search_method"), "grid");
        let trials: Vec<serde_json::Value> = serde_json::from_str(&get("search_trials")).unwrap();
        assert_eq!(trials.len(), 4);
        assert_eq!(trials[2]["c"], 1.0);
        assert_eq!(trials[2]["fold_scores"].as_array().unwrap().len(), 5);
        assert_eq!(training.trial_log.len(), 4);
        let line: serde_json::Value = serde_json::from_str(&training.trial_log[3]).unwrap();
        assert_eq!(line, trials[3]);
        assert_eq!(line["trial"], 3);
        let onnx = ModelProto::decode(training.trained.model.onnx.as_slice()).unwrap();
        assert!(
            metadata(&onnx)
                .iter()
                .any(|(k, _)| *k == "wflow.search_trials")
        );
    }

    #[test]
    fn config_schema_documents_ranges_and_defaults() {
        let schema: serde_json::Value = serde_json::from_str(&config_schema::<Config>()).unwrap();
        let props = &schema["properties"];
        assert_eq!(props["c"]["exclusiveMinimum"], 0);
        assert_eq!(props["c"]["default"], 1.0);
        assert_eq!(props["max_iter"]["minimum"], 1);
        assert_eq!(props["max_iter"]["default"], 200);
        assert_eq!(props["tol"]["minimum"], 0);
        assert_eq!(schema["additionalProperties"], false);
        assert!(
            props["features"]["description"]
                .as_str()
                .unwrap()
                .contains("except the target")
        );
    }

    #[test]
    fn default_features_are_every_column_but_the_target() {
        let s = schema(&[
            ("a", ColumnType::Float),
            ("y", ColumnType::Text),
            ("b", ColumnType::Integer),
            ("c", ColumnType::Boolean),
        ]);
        assert_eq!(
            select_features(&s, "y", None).unwrap(),
            strings(&["a", "b", "c"])
        );
        let only_target = schema(&[("y", ColumnType::Integer)]);
        assert_eq!(
            select_features(&only_target, "y", None),
            Err(StepError::InvalidInput(
                "the table has no columns besides the target `y`".to_string()
            ))
        );
    }

    #[test]
    fn configured_features_keep_their_order_and_are_checked() {
        let s = schema(&[
            ("a", ColumnType::Float),
            ("b", ColumnType::Float),
            ("y", ColumnType::Integer),
        ]);
        let pick = |list: &[&str]| select_features(&s, "y", Some(&strings(list)));
        assert_eq!(pick(&["b", "a"]).unwrap(), strings(&["b", "a"]));
        assert_eq!(
            pick(&["a", "zz"]),
            Err(StepError::InvalidInput(
                "no column `zz` (columns: a, b, y)".to_string()
            ))
        );
        assert!(
            matches!(pick(&[]), Err(StepError::InvalidConfig(m)) if m.contains("at least one"))
        );
        assert!(
            matches!(pick(&["y"]), Err(StepError::InvalidConfig(m)) if m.contains("is the target"))
        );
        assert!(
            matches!(pick(&["a", "a"]), Err(StepError::InvalidConfig(m)) if m.contains("twice"))
        );
        assert_eq!(
            select_features(&s, "missing", None),
            Err(StepError::InvalidInput(
                "no column `missing` (columns: a, b, y)".to_string()
            ))
        );
    }

    #[test]
    fn text_features_must_be_encoded_first() {
        let s = schema(&[
            ("city", ColumnType::Text),
            ("age", ColumnType::Float),
            ("name", ColumnType::Text),
            ("y", ColumnType::Boolean),
        ]);
        assert_eq!(
            select_features(&s, "y", None),
            Err(StepError::InvalidInput(
                "features `city`, `name` are text; one-hot encode text columns first (or leave them out with `features`)"
                    .to_string()
            ))
        );
        assert_eq!(
            select_features(&s, "y", Some(&strings(&["age", "city"]))),
            Err(StepError::InvalidInput(
                "feature `city` is text; one-hot encode text columns first (or leave them out with `features`)"
                    .to_string()
            ))
        );
        assert_eq!(
            select_features(&s, "y", Some(&strings(&["age"]))).unwrap(),
            strings(&["age"])
        );
    }

    #[test]
    fn properties_and_metrics_describe_the_fit() {
        let target = train::encode_target("y", &strings(&["0", "1", "0", "1"])).unwrap();
        let hyper = Hyperparameters::default();
        let fitted = train::fit(
            &[vec![0.0, 1.0, 0.2, 0.9]],
            &strings(&["x"]),
            &target,
            &hyper,
            &mut |_, _| {},
        )
        .unwrap();
        let props = properties(&hyper, &fitted);
        let get = |k: &str| props.iter().find(|(key, _)| key == k).unwrap().1.clone();
        assert_eq!(get("c"), "1");
        assert_eq!(get("max_iter"), "200");
        assert_eq!(get("tol"), "0.000001");
        assert_eq!(get("converged"), "true");
        assert_eq!(get("feature_means"), "[0.525]");
        let names: Vec<String> = metrics(&fitted, 4, 1).into_iter().map(|m| m.name).collect();
        assert_eq!(
            names,
            strings(&[
                "train_accuracy",
                "train_log_loss",
                "iterations",
                "rows",
                "features"
            ])
        );
    }

    /// Trains on a whole example data set and decodes the ONNX bytes it returns.
    fn train_file(file: &str) -> (Training, ModelProto, Vec<f32>) {
        let data = read_csv(file);
        let mut iterations = 0;
        let training = train_columns(
            &data.columns,
            data.features.clone(),
            data.target.clone(),
            &data.labels,
            &Hyperparameters::default(),
            &mut |i, _| iterations = i,
        )
        .unwrap();
        assert_eq!(iterations, training.fitted.iterations);
        assert!(training.warnings.is_empty(), "{:?}", training.warnings);
        let decoded = ModelProto::decode(training.trained.model.onnx.as_slice()).unwrap();
        let n = data.labels.len();
        let rows: Vec<f32> = (0..n)
            .flat_map(|i| data.columns.iter().map(move |c| c[i] as f32))
            .collect();
        (training, decoded, rows)
    }

    fn metadata(model: &ModelProto) -> Vec<(&str, &str)> {
        model
            .metadata_props
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str()))
            .collect()
    }

    fn shape(value: &wflow_onnx::proto::ValueInfoProto) -> Vec<String> {
        let Some(type_proto::Value::TensorType(t)) = &value.r#type.as_ref().unwrap().value else {
            panic!("a tensor");
        };
        assert_eq!(t.elem_type, 1, "float32");
        t.shape
            .as_ref()
            .unwrap()
            .dim
            .iter()
            .map(|d| match d.value.as_ref().unwrap() {
                wflow_onnx::proto::tensor_shape_proto::dimension::Value::DimValue(v) => {
                    v.to_string()
                }
                wflow_onnx::proto::tensor_shape_proto::dimension::Value::DimParam(p) => p.clone(),
            })
            .collect()
    }

    /// Recomputes the probabilities from the decoded initializers, to prove the file holds
    /// exactly the model whose forward pass the host compares tract with.
    fn forward_from_onnx(model: &ModelProto, rows: &[f32]) -> Vec<f32> {
        let graph = model.graph.as_ref().unwrap();
        let weights = &graph.initializer[0];
        let link = match graph.node[1].op_type.as_str() {
            "Sigmoid" => model::Link::Sigmoid,
            "Softmax" => model::Link::Softmax,
            other => panic!("unexpected {other}"),
        };
        model::LinearModel {
            n_features: weights.dims[1] as usize,
            weights: weights.float_data.clone(),
            bias: graph.initializer[1].float_data.clone(),
            link,
        }
        .forward(rows)
    }

    #[test]
    fn breast_cancer_model_is_a_binary_onnx_classifier() {
        let (training, model, rows) = train_file("breast_cancer.csv");
        let graph = model.graph.as_ref().unwrap();
        let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(ops, ["Gemm", "Sigmoid"]);
        assert_eq!(graph.input.len(), 1);
        assert_eq!(graph.input[0].name, "features");
        assert_eq!(shape(&graph.input[0]), ["N", "30"]);
        assert_eq!(graph.output[0].name, "probabilities");
        assert_eq!(shape(&graph.output[0]), ["N", "1"]);
        assert_eq!((model.ir_version, model.opset_import[0].version), (8, 13));

        let meta = training.trained.model.metadata.clone();
        assert_eq!(meta.target, "malignant");
        assert_eq!(meta.class_labels, strings(&["0", "1"]));
        assert_eq!(meta.features.len(), 30);
        assert_eq!(meta.features[0], "mean_radius");
        let props = metadata(&model);
        let features_json = serde_json::to_string(&meta.features).unwrap();
        assert!(props.contains(&("wflow.features", features_json.as_str())));
        assert!(props.contains(&("wflow.target", "malignant")));
        assert!(props.contains(&("wflow.task", "classification")));
        assert!(props.contains(&("wflow.class_labels", r#"["0","1"]"#)));
        assert!(props.contains(&("wflow.c", "1")));
        assert!(props.contains(&("wflow.solver", "lbfgs")));
        assert_eq!(props.len(), 4 + meta.properties.len());

        let metric = |name: &str| {
            training
                .trained
                .metrics
                .iter()
                .find(|m| m.name == name)
                .unwrap()
                .value
        };
        // scikit-learn (StandardScaler + LogisticRegression, C = 1) reaches 0.9877 on the
        // whole data set.
        assert!(
            metric("train_accuracy") > 0.98,
            "{}",
            metric("train_accuracy")
        );
        assert!(
            metric("train_log_loss") < 0.07,
            "{}",
            metric("train_log_loss")
        );
        assert_eq!(metric("rows"), 569.0);
        assert_eq!(metric("features"), 30.0);
        assert!(metric("iterations") >= 1.0 && metric("iterations") <= 200.0);

        let expected = training.fitted.model.forward(&rows);
        assert_eq!(expected.len(), 569);
        assert_eq!(forward_from_onnx(&model, &rows), expected);
    }

    #[test]
    fn iris_model_is_a_multinomial_onnx_classifier() {
        let (training, model, rows) = train_file("iris.csv");
        let graph = model.graph.as_ref().unwrap();
        let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(ops, ["Gemm", "Softmax"]);
        assert_eq!(shape(&graph.input[0]), ["N", "4"]);
        assert_eq!(shape(&graph.output[0]), ["N", "3"]);
        assert_eq!(
            training.trained.model.metadata.class_labels,
            strings(&["setosa", "versicolor", "virginica"])
        );
        assert!(metadata(&model).contains(&(
            "wflow.class_labels",
            r#"["setosa","versicolor","virginica"]"#
        )));
        let expected = training.fitted.model.forward(&rows);
        assert_eq!(expected.len(), 150 * 3);
        for row in expected.chunks_exact(3) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
        assert_eq!(forward_from_onnx(&model, &rows), expected);
    }

    #[test]
    fn a_constant_target_is_invalid_input() {
        let err = train_columns(
            &[vec![1.0, 2.0]],
            strings(&["x"]),
            "y".to_string(),
            &strings(&["a", "a"]),
            &Hyperparameters::default(),
            &mut |_, _| {},
        )
        .unwrap_err();
        assert!(
            matches!(&err, StepError::InvalidInput(m) if m.contains("single value")),
            "{err:?}"
        );
    }

    #[test]
    fn hitting_max_iter_is_a_warning_not_an_error() {
        let data = read_csv("wine.csv");
        let training = train_columns(
            &data.columns,
            data.features,
            data.target,
            &data.labels,
            &Hyperparameters {
                max_iter: 2,
                ..Default::default()
            },
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!(training.warnings.len(), 1);
        assert!(
            training.warnings[0].starts_with("did not converge in 2 iterations"),
            "{}",
            training.warnings[0]
        );
    }
}
