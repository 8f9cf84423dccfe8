//! The `linear-regression` trainer: ridge regression (L2-penalised least squares) on standardised
//! features, solved exactly, exported as an ONNX model the host runs with tract.
//!
//! This file is the glue: it reads the configuration and the table, converts the columns to
//! plain floats (naming the column and row of anything that is not a number), chooses `alpha` by
//! cross-validation with [`cv`] when a `search` is configured, calls the pure fit in [`ridge`], exports with [`model`] (which writes the file with `wflow-onnx`) and reports to
//! the host. Everything between the host calls is in [`train_columns`], which runs natively, so
//! that everything that can go wrong in the numbers is tested without a host. It does not impute,
//! encode or scale data for other steps: text features must be one-hot encoded and nulls imputed
//! upstream.

pub mod cv;
pub mod model;
pub mod ridge;

pub use wflow_learn::select_features;
use wflow_learn::{SearchMethod, SearchResult, text_features_error};
use wflow_sdk::prelude::*;

use crate::cv::{Plan, Score};
use crate::model::OnnxMetadata;
use crate::ridge::{FitError, Fitted};

/// The step's configuration (`with = { ... }` in a workflow).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Feature columns, in order. Default: every column except the target.
    #[serde(default)]
    pub features: Option<Vec<String>>,
    /// Regularisation strength, as in scikit-learn's `Ridge` after a `StandardScaler`: the
    /// penalty is `alpha * ||w||²` on the standardised features' weights, added to the summed
    /// squared error; the intercept is not penalised. 0 is ordinary least squares.
    #[serde(default = "default_alpha")]
    #[schemars(range(min = 0))]
    pub alpha: f64,
    /// Choose `alpha` by cross-validation among these candidates, then train on all rows with
    /// the best; `alpha` is then ignored. Absent: train once with `alpha`.
    #[serde(default)]
    pub search: Option<SearchConfig>,
}

fn default_alpha() -> f64 {
    1.0
}

/// A hyperparameter search over `alpha` (`search = { ... }`).
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchConfig {
    /// Candidate values of `alpha`, each >= 0.
    pub alpha: Vec<f64>,
    /// Cross-validation folds (rows shuffled, then cut into folds of equal size).
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
    /// What picks the best `alpha`: the highest mean held-out `r2`, or the lowest `rmse`.
    #[serde(default)]
    pub metric: RegressionMetric,
}

/// What a search scores each fold by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RegressionMetric {
    /// Coefficient of determination on the held-out rows (maximised).
    #[default]
    R2,
    /// Root mean squared error on the held-out rows (minimised).
    Rmse,
}

impl SearchConfig {
    /// The search as the pure code takes it.
    pub fn plan(&self) -> Plan {
        let widen = |v: u32| usize::try_from(v).expect("a u32 fits in usize");
        Plan {
            alpha: self.alpha.clone(),
            folds: widen(self.folds),
            search: self.method.search(self.trials, self.seed),
            seed: self.seed,
            score: match self.metric {
                RegressionMetric::R2 => Score::R2,
                RegressionMetric::Rmse => Score::Rmse,
            },
        }
    }
}

/// The plugin.
pub struct LinearRegression;

impl Plugin for LinearRegression {
    type Config = Config;
    const DESCRIPTION: &'static str =
        "Trains a standardised ridge (L2) linear regression, solved exactly, and emits ONNX";
}

impl Trainer for LinearRegression {
    fn train(data: Table, target: String, config: Config) -> Result<Trained, StepError> {
        let schema: Vec<(String, ColumnType)> = data
            .schema()
            .into_iter()
            .map(|info| (info.name, info.kind))
            .collect();
        let features = select_features(&schema, &target, config.features.as_deref())?;
        let target_column = data.require(&target)?;
        let feature_columns = features
            .iter()
            .map(|name| data.require(name))
            .collect::<Result<Vec<_>, _>>()?;
        log::info(&format!(
            "training on {} rows and {} features (alpha {})",
            target_column.len(),
            features.len(),
            config.alpha
        ));
        let plan = config.search.as_ref().map(SearchConfig::plan);
        let training = train_columns_searched(
            &feature_columns,
            &target_column,
            config.alpha,
            plan.as_ref(),
            &mut |done, fits| {
                progress(
                    done as u64,
                    fits as u64,
                    &format!("cross-validation: fit {done} of {fits}"),
                );
            },
        )?;
        progress(1, 1, "solved the normal equations");
        for line in &training.trial_log {
            log::info(line);
        }
        for warning in &training.warnings {
            log::warn(warning);
        }
        Ok(training.trained)
    }
}

wflow_sdk::export_trainer!(LinearRegression);

/// Everything a training run produces: the step's result, the fit behind it (whose
/// `model.forward` computes what the ONNX graph computes) and warnings for the log.
#[derive(Debug)]
pub struct Training {
    /// The model (ONNX bytes and metadata) and the metrics, as the step returns them.
    pub trained: Trained,
    /// The fitted model and its training scores.
    pub fitted: Fitted,
    /// Things worth a warning in the step's log (a constant target, precision lost in the export).
    pub warnings: Vec<String>,
    /// The cross-validation search that chose `alpha`, if one was configured.
    pub search: Option<SearchResult>,
    /// One JSON object per search trial, for the step's log (empty without a search).
    pub trial_log: Vec<String>,
}

/// Trains on whole feature columns (in model input order, named as the features) and the
/// target column, and exports the model: the whole step without the table and the host, so it
/// runs natively. Text columns and nulls are `InvalidInput` naming the column (and the row).
pub fn train_columns(
    feature_columns: &[Column],
    target_column: &Column,
    alpha: f64,
) -> Result<Training, StepError> {
    train_columns_searched(feature_columns, target_column, alpha, None, &mut |_, _| {})
}

/// [`train_columns`], after choosing `alpha` by cross-validation when `plan` is given: the final
/// model is trained on all rows with the best `alpha`, and the search's trials are added to the
/// metrics (`trial.<i>.alpha`, `trial.<i>.cv_<metric>`, `trial.<i>.cv_<metric>_std`,
/// `best.alpha`, `cv_score`, `trials`), the model's properties (`search_trials` and the search's
/// settings) and `trial_log`. `on_fit(done, total)` follows the search's fits.
pub fn train_columns_searched(
    feature_columns: &[Column],
    target_column: &Column,
    alpha: f64,
    plan: Option<&Plan>,
    on_fit: &mut dyn FnMut(usize, usize),
) -> Result<Training, StepError> {
    let features: Vec<String> = feature_columns.iter().map(|c| c.name.clone()).collect();
    let target = target_column.name.clone();
    if target_column.kind() == ColumnType::Text {
        return Err(StepError::InvalidInput(format!(
            "target `{target}` is text; a regression needs a numeric target (use a classifier for labels)"
        )));
    }
    let y = target_column.to_non_null_floats()?;
    let columns = feature_columns
        .iter()
        .map(|column| {
            if column.kind() == ColumnType::Text {
                Err(text_features_error(&[column.name.as_str()]))
            } else {
                column.to_non_null_floats()
            }
        })
        .collect::<Result<Vec<_>, _>>()?;

    let mut alpha = alpha;
    let mut search = None;
    let mut search_properties = Vec::new();
    let mut search_metrics = Vec::new();
    let mut trial_log = Vec::new();
    if let Some(plan) = plan {
        let result = cv::cross_validate(&columns, &features, &target, &y, plan, on_fit)?;
        alpha = result.best_trial().params["alpha"];
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

    let fitted = ridge::fit(&columns, &features, &target, &y, alpha).map_err(step_error)?;
    let mut warnings = Vec::new();
    if y.iter().all(|v| *v == y[0]) {
        warnings.push(format!(
            "target `{target}` has the same value ({}) in all {} rows: the model predicts that constant",
            y[0],
            y.len()
        ));
    }
    // Float32 keeps about seven digits, so deviations near 1e-7 of the target's magnitude are
    // rounding; only those that are also large against the model's own error are worth a word.
    let magnitude = y.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if fitted.f32_max_deviation > 1e-5 * magnitude
        && fitted.f32_max_deviation > 0.01 * fitted.train_rmse
    {
        warnings.push(format!(
            "the exported float32 model's predictions differ from the exact ones by up to {:.3e} \
             (training RMSE {:.3e}): some features have a mean far larger than their spread; \
             consider centring them upstream",
            fitted.f32_max_deviation, fitted.train_rmse
        ));
    }

    let mut properties = properties(alpha, &fitted);
    properties.extend(search_properties);
    let onnx = fitted
        .model
        .to_onnx(&OnnxMetadata {
            producer: ("wflow-linear-regression", env!("CARGO_PKG_VERSION")),
            features: &features,
            target: &target,
            properties: &properties,
        })
        .map_err(|e| StepError::Failed(format!("writing the ONNX model: {e}")))?;
    let mut metrics = metrics(&fitted, y.len(), features.len());
    metrics.extend(search_metrics);
    Ok(Training {
        trained: Trained {
            model: Model {
                onnx,
                metadata: ModelMetadata {
                    features,
                    target,
                    task: Task::Regression,
                    class_labels: Vec::new(),
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

pub(crate) fn step_error(error: FitError) -> StepError {
    match error {
        FitError::InvalidConfig(message) => StepError::InvalidConfig(message),
        FitError::InvalidInput(message) => StepError::InvalidInput(message),
    }
}

/// The hyperparameters and fitted preprocessing kept with the model (and as `wflow.<key>` in
/// the ONNX file).
pub fn properties(alpha: f64, fitted: &Fitted) -> Vec<(String, String)> {
    let json = |v: &[f64]| serde_json::to_string(v).expect("finite floats are JSON");
    vec![
        ("alpha".to_string(), alpha.to_string()),
        ("penalty".to_string(), "l2".to_string()),
        ("solver".to_string(), "cholesky".to_string()),
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
        metric("train_rmse", fitted.train_rmse),
        metric("train_mae", fitted.train_mae),
        metric("train_r2", fitted.train_r2),
        metric("rows", rows as f64),
        metric("features", features as f64),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use wflow_learn::testing::read_csv;
    use wflow_onnx::Dim;
    use wflow_sdk::{config_schema, parse_config};

    fn schema(columns: &[(&str, ColumnType)]) -> Vec<(String, ColumnType)> {
        columns.iter().map(|(n, k)| (n.to_string(), *k)).collect()
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn config_defaults_and_errors() {
        let config: Config = parse_config("").unwrap();
        assert_eq!(config.features, None);
        assert_eq!(config.alpha, 1.0);
        let config: Config = parse_config(r#"{"features": ["a"], "alpha": 0}"#).unwrap();
        assert_eq!(config.features, Some(strings(&["a"])));
        assert_eq!(config.alpha, 0.0);
        let Err(StepError::InvalidConfig(message)) = parse_config::<Config>(r#"{"c": 1}"#) else {
            panic!("unknown fields are rejected");
        };
        assert!(message.contains("unknown field `c`"), "{message}");
        let Err(StepError::InvalidConfig(message)) = parse_config::<Config>(r#"{"alpha": "x"}"#)
        else {
            panic!("a text alpha is rejected");
        };
        assert!(message.starts_with("field `alpha`"), "{message}");
    }

    #[test]
    fn search_config_defaults_and_errors() {
        let config: Config = parse_config(r#"{"search": {"alpha": [0, 1]}}"#).unwrap();
        assert_eq!(
            config.search.unwrap().plan(),
            Plan {
                alpha: vec![0.0, 1.0],
                folds: 5,
                search: wflow_learn::Search::Grid,
                seed: 42,
                score: Score::R2,
            }
        );
        let config: Config = parse_config(
            r#"{"search": {"alpha": [2], "folds": 3, "method": "random", "trials": 4, "seed": 1, "metric": "rmse"}}"#,
        )
        .unwrap();
        assert_eq!(
            config.search.unwrap().plan(),
            Plan {
                alpha: vec![2.0],
                folds: 3,
                search: wflow_learn::Search::Random { trials: 4, seed: 1 },
                seed: 1,
                score: Score::Rmse,
            }
        );
        for (bad, field) in [
            (r#"{"search": {}}"#, "search"),
            (r#"{"search": {"c": [1]}}"#, "search.c"),
            (
                r#"{"search": {"alpha": [1], "metric": "mae"}}"#,
                "search.metric",
            ),
        ] {
            let Err(StepError::InvalidConfig(message)) = parse_config::<Config>(bad) else {
                panic!("{bad} is rejected");
            };
            assert!(
                message.starts_with(&format!("field `{field}`")),
                "{bad}: {message}"
            );
        }
    }

    #[test]
    fn a_search_reports_every_trial_and_trains_with_the_best_alpha() {
        let data = read_csv("diabetes.csv");
        let (features, target) = columns_of(&data);
        let plan = Plan {
            alpha: vec![1e4, 1.0, 100.0],
            folds: 4,
            search: wflow_learn::Search::Grid,
            seed: 42,
            score: Score::Rmse,
        };
        let mut fits = 0;
        let training =
            train_columns_searched(&features, &target, 5.0, Some(&plan), &mut |done, _| {
                fits = done
            })
            .unwrap();
        assert_eq!(fits, 12);
        let value = |name: &str| {
            training
                .trained
                .metrics
                .iter()
                .find(|m| m.name == name)
                .unwrap_or_else(|| panic!("no metric {name}"))
                .value
        };
        for (i, alpha) in [1e4, 1.0, 100.0].iter().enumerate() {
            assert_eq!(value(&format!("trial.{i}.alpha")), *alpha);
            assert!(value(&format!("trial.{i}.cv_rmse")) > 40.0);
            assert!(value(&format!("trial.{i}.cv_rmse_std")) >= 0.0);
        }
        // A huge penalty predicts little more than the mean: its RMSE is the worst.
        assert!(value("trial.0.cv_rmse") > value("trial.1.cv_rmse") + 5.0);
        assert_ne!(value("best.alpha"), 1e4);
        assert_eq!(value("trials"), 3.0);
        let best = training.search.as_ref().unwrap().best;
        assert_eq!(value("cv_score"), value(&format!("trial.{best}.cv_rmse")));

        let plain = train_columns(&features, &target, value("best.alpha")).unwrap();
        assert_eq!(plain.fitted.model, training.fitted.model);
        let props = &training.trained.model.metadata.properties;
        let get = |k: &str| props.iter().find(|(key, _)| key == k).unwrap().1.clone();
        assert_eq!(get("alpha"), value("best.alpha").to_string());
        assert_eq!(get("search_metric"), "rmse");
        let trials: Vec<serde_json::Value> = serde_json::from_str(&get("search_trials")).unwrap();
        assert_eq!(trials.len(), 3);
        assert_eq!(trials[0]["alpha"], 1e4);
        assert_eq!(training.trial_log.len(), 3);
        let line: serde_json::Value = serde_json::from_str(&training.trial_log[1]).unwrap();
        assert_eq!(line, trials[1]);
    }

    #[test]
    fn a_negative_alpha_is_invalid_config() {
        let err = train_columns(
            &[Column::floats("x", vec![1.0, 2.0])],
            &Column::floats("y", vec![1.0, 2.0]),
            -0.5,
        )
        .unwrap_err();
        assert_eq!(
            err,
            StepError::InvalidConfig(
                "field `alpha`: must be a non-negative number, got -0.5".into()
            )
        );
    }

    #[test]
    fn config_schema_documents_ranges_and_defaults() {
        let schema: serde_json::Value = serde_json::from_str(&config_schema::<Config>()).unwrap();
        let props = &schema["properties"];
        assert_eq!(props["alpha"]["minimum"], 0);
        assert_eq!(props["alpha"]["default"], 1.0);
        assert_eq!(schema["additionalProperties"], false);
        assert!(
            props["features"]["description"]
                .as_str()
                .unwrap()
                .contains("except the target")
        );
    }

    #[test]
    fn features_default_to_every_column_but_the_target_and_are_checked() {
        let s = schema(&[
            ("a", ColumnType::Float),
            ("y", ColumnType::Float),
            ("b", ColumnType::Integer),
            ("c", ColumnType::Boolean),
        ]);
        assert_eq!(
            select_features(&s, "y", None).unwrap(),
            strings(&["a", "b", "c"])
        );
        let pick = |list: &[&str]| select_features(&s, "y", Some(&strings(list)));
        assert_eq!(pick(&["c", "a"]).unwrap(), strings(&["c", "a"]));
        assert_eq!(
            pick(&["a", "zz"]),
            Err(StepError::InvalidInput(
                "no column `zz` (columns: a, y, b, c)".to_string()
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
            select_features(&s, "price", None),
            Err(StepError::InvalidInput(
                "no column `price` (columns: a, y, b, c)".to_string()
            ))
        );
        assert_eq!(
            select_features(&schema(&[("y", ColumnType::Float)]), "y", None),
            Err(StepError::InvalidInput(
                "the table has no columns besides the target `y`".to_string()
            ))
        );
    }

    #[test]
    fn text_features_are_named_in_the_error() {
        let s = schema(&[
            ("city", ColumnType::Text),
            ("age", ColumnType::Float),
            ("name", ColumnType::Text),
            ("y", ColumnType::Float),
        ]);
        assert_eq!(
            select_features(&s, "y", None),
            Err(StepError::InvalidInput(
                "features `city`, `name` are text; one-hot encode text columns first (or leave them out with `features`)"
                    .to_string()
            ))
        );
        assert_eq!(
            select_features(&s, "y", Some(&strings(&["age"]))).unwrap(),
            strings(&["age"])
        );
        // The same check guards `train_columns`, which sees columns rather than a schema.
        let err = train_columns(
            &[
                Column::floats("age", vec![1.0, 2.0]),
                Column::texts("city", strings(&["Rome", "Oslo"])),
            ],
            &Column::floats("y", vec![1.0, 2.0]),
            1.0,
        )
        .unwrap_err();
        assert_eq!(
            err,
            StepError::InvalidInput(
                "feature `city` is text; one-hot encode text columns first (or leave them out with `features`)"
                    .to_string()
            )
        );
    }

    #[test]
    fn nulls_and_text_targets_are_invalid_input_naming_column_and_row() {
        let y = Column::floats("y", vec![1.0, 2.0, 3.0]);
        let err = train_columns(
            &[Column::float_options(
                "bmi",
                vec![Some(1.0), Some(2.0), None],
            )],
            &y,
            1.0,
        )
        .unwrap_err();
        assert_eq!(
            err,
            StepError::InvalidInput("column `bmi` has a null at row 2".to_string())
        );
        let err = train_columns(
            &[Column::floats("bmi", vec![1.0, 2.0, 3.0])],
            &Column::float_options("y", vec![Some(1.0), None, Some(3.0)]),
            1.0,
        )
        .unwrap_err();
        assert_eq!(
            err,
            StepError::InvalidInput("column `y` has a null at row 1".to_string())
        );
        let err = train_columns(
            &[Column::floats("bmi", vec![1.0, 2.0])],
            &Column::texts("y", strings(&["a", "b"])),
            1.0,
        )
        .unwrap_err();
        assert!(
            matches!(&err, StepError::InvalidInput(m) if m.starts_with("target `y` is text")),
            "{err:?}"
        );
        let err = train_columns(
            &[Column::floats("bmi", vec![1.0, f64::NAN])],
            &Column::floats("y", vec![1.0, 2.0]),
            1.0,
        )
        .unwrap_err();
        assert_eq!(
            err,
            StepError::InvalidInput("feature `bmi` has a non-finite value (NaN) at row 1".into())
        );
    }

    #[test]
    fn integer_and_boolean_columns_are_numbers() {
        // y = 3 n + 10 b + 1 exactly, so least squares recovers it.
        let n = vec![0i64, 1, 2, 3, 4, 5];
        let b = vec![true, false, true, false, false, true];
        let y: Vec<i64> = n
            .iter()
            .zip(&b)
            .map(|(n, b)| 3 * n + if *b { 10 } else { 0 } + 1)
            .collect();
        let training = train_columns(
            &[Column::integers("n", n), Column::booleans("b", b)],
            &Column::integers("y", y),
            0.0,
        )
        .unwrap();
        let w = &training.fitted.model.weights;
        assert!(
            (w[0] - 3.0).abs() < 1e-5 && (w[1] - 10.0).abs() < 1e-5,
            "{w:?}"
        );
        assert!((training.fitted.model.bias - 1.0).abs() < 1e-5);
        assert!(training.warnings.is_empty(), "{:?}", training.warnings);
    }

    #[test]
    fn a_constant_target_is_a_warning() {
        let training = train_columns(
            &[Column::floats("x", vec![1.0, 2.0, 3.0])],
            &Column::floats("y", vec![5.0; 3]),
            1.0,
        )
        .unwrap();
        assert_eq!(training.warnings.len(), 1);
        assert!(
            training.warnings[0].starts_with("target `y` has the same value (5) in all 3 rows"),
            "{}",
            training.warnings[0]
        );
    }

    fn columns_of(data: &wflow_learn::testing::DataSet) -> (Vec<Column>, Column) {
        let features = data
            .features
            .iter()
            .zip(&data.columns)
            .map(|(name, values)| Column::floats(name.clone(), values.clone()))
            .collect();
        (
            features,
            Column::floats(data.target.clone(), data.numeric_target()),
        )
    }

    fn metadata(model: &wflow_onnx::proto::ModelProto) -> Vec<(&str, &str)> {
        model
            .metadata_props
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str()))
            .collect()
    }

    #[test]
    fn diabetes_model_is_an_onnx_regressor() {
        let data = read_csv("diabetes.csv");
        let (features, target) = columns_of(&data);
        let training = train_columns(&features, &target, 1.0).unwrap();
        assert!(training.warnings.is_empty(), "{:?}", training.warnings);

        let model = wflow_onnx::decode(&training.trained.model.onnx).unwrap();
        assert_eq!((model.ir_version, model.opset_import[0].version), (8, 13));
        let graph = model.graph.as_ref().unwrap();
        let ops: Vec<&str> = graph.node.iter().map(|n| n.op_type.as_str()).collect();
        assert_eq!(ops, ["Gemm"]);
        assert_eq!(graph.input.len(), 1);
        assert_eq!(graph.input[0].name, "features");
        assert_eq!(
            graph.input[0].shape(),
            Some(vec![Dim::named("N"), Dim::Fixed(10)])
        );
        assert_eq!(graph.output.len(), 1);
        assert_eq!(graph.output[0].name, "prediction");
        assert_eq!(
            graph.output[0].shape(),
            Some(vec![Dim::named("N"), Dim::Fixed(1)])
        );

        let meta = &training.trained.model.metadata;
        assert_eq!(meta.target, "progression");
        assert_eq!(meta.task, Task::Regression);
        assert!(meta.class_labels.is_empty());
        assert_eq!(
            meta.features,
            strings(&[
                "age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"
            ])
        );
        let props = metadata(&model);
        let features_json = serde_json::to_string(&meta.features).unwrap();
        assert_eq!(
            &props[..3],
            [
                ("wflow.features", features_json.as_str()),
                ("wflow.target", "progression"),
                ("wflow.task", "regression"),
            ]
        );
        assert!(!props.iter().any(|(k, _)| *k == "wflow.class_labels"));
        assert!(props.contains(&("wflow.alpha", "1")));
        assert!(props.contains(&("wflow.solver", "cholesky")));
        let means: Vec<f64> =
            serde_json::from_str(model.metadata_value("wflow.feature_means").unwrap()).unwrap();
        let scales: Vec<f64> =
            serde_json::from_str(model.metadata_value("wflow.feature_scales").unwrap()).unwrap();
        assert_eq!(means.len(), 10);
        // The diabetes features are centred and scaled to unit norm: std = 1 / sqrt(442).
        assert!(means.iter().all(|m| m.abs() < 1e-6), "{means:?}");
        assert!(
            scales
                .iter()
                .all(|s| (s - 1.0 / 442f64.sqrt()).abs() < 1e-4),
            "{scales:?}"
        );
        assert_eq!(props.len(), 3 + meta.properties.len());

        let metric = |name: &str| {
            training
                .trained
                .metrics
                .iter()
                .find(|m| m.name == name)
                .unwrap()
                .value
        };
        // scikit-learn's LinearRegression on the whole data set: R² 0.5177, RMSE 53.48. Ridge
        // with alpha 1 on standardised features is barely different.
        assert!(
            (metric("train_r2") - 0.5177).abs() < 0.002,
            "{}",
            metric("train_r2")
        );
        assert!(
            (metric("train_rmse") - 53.48).abs() < 0.2,
            "{}",
            metric("train_rmse")
        );
        assert!(metric("train_mae") > 40.0 && metric("train_mae") < 46.0);
        assert_eq!(metric("rows"), 442.0);
        assert_eq!(metric("features"), 10.0);

        // The file holds exactly the model whose forward pass the host compares tract with.
        let rows: Vec<f32> = (0..442)
            .flat_map(|i| data.columns.iter().map(move |c| c[i] as f32))
            .collect();
        let from_file = model::LinearModel {
            weights: graph.initializer[0].float_data.clone(),
            bias: graph.initializer[1].float_data[0],
        };
        assert_eq!(from_file, training.fitted.model);
        assert_eq!(
            from_file.forward(&rows),
            training.fitted.model.forward(&rows)
        );
    }

    #[test]
    fn properties_and_metrics_are_named() {
        let training = train_columns(
            &[Column::floats("x", vec![0.0, 1.0, 2.0, 4.0])],
            &Column::floats("y", vec![1.0, 3.0, 5.0, 9.5]),
            0.25,
        )
        .unwrap();
        let props = &training.trained.model.metadata.properties;
        let get = |k: &str| props.iter().find(|(key, _)| key == k).unwrap().1.clone();
        assert_eq!(get("alpha"), "0.25");
        assert_eq!(get("penalty"), "l2");
        assert_eq!(get("feature_means"), "[1.75]");
        let names: Vec<&str> = training
            .trained
            .metrics
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(
            names,
            ["train_rmse", "train_mae", "train_r2", "rows", "features"]
        );
    }
}
