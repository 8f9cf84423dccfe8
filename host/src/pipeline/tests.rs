//! Tests of deriving and applying pipelines, on a small churn-like table.

use super::*;

fn schema() -> Vec<(String, ColumnType)> {
    [
        ("id", ColumnType::Integer),
        ("age", ColumnType::Float),
        ("plan", ColumnType::Text),
        ("lines", ColumnType::Integer),
        ("churn", ColumnType::Text),
    ]
    .into_iter()
    .map(|(n, k)| (n.to_string(), k))
    .collect()
}

fn steps(unknown_is_error: bool) -> Vec<StepStages> {
    vec![
        StepStages {
            step: "split".into(),
            plugin: "train-test-split@0.1.0".into(),
            stages: vec![Stage::Rows],
        },
        StepStages {
            step: "impute".into(),
            plugin: "impute@0.1.0".into(),
            stages: vec![Stage::Impute {
                fills: vec![Fill {
                    column: "age".into(),
                    value: FillValue::Float(40.0),
                }],
            }],
        },
        StepStages {
            step: "encode".into(),
            plugin: "one-hot-encode@0.1.0".into(),
            stages: vec![Stage::OneHot {
                columns: vec![OneHotColumn {
                    column: "plan".into(),
                    categories: vec!["basic".into(), "pro".into()],
                    outputs: vec!["plan=basic".into(), "plan=pro".into()],
                }],
                unknown_is_error,
                drop_original: true,
            }],
        },
        StepStages {
            step: "scale".into(),
            plugin: "standard-scaler@0.1.0".into(),
            stages: vec![Stage::Standardize {
                scalings: vec![Scaling {
                    column: "age".into(),
                    center: 40.0,
                    scale: 10.0,
                }],
            }],
        },
    ]
}

fn features() -> Vec<String> {
    ["lines", "age", "plan=basic", "plan=pro"]
        .into_iter()
        .map(String::from)
        .collect()
}

fn pipeline(unknown_is_error: bool) -> Pipeline {
    Pipeline::derive(
        &schema(),
        steps(unknown_is_error),
        &features(),
        "churn",
        None,
    )
    .unwrap()
}

fn raw(age: Vec<Option<f64>>, plan: Vec<Option<&str>>, lines: Vec<i64>) -> Table {
    let valid: Vec<bool> = age.iter().map(Option::is_some).collect();
    let age = Column::with_validity(
        "age",
        Values::Float(age.into_iter().map(|a| a.unwrap_or(0.0)).collect()),
        valid,
    )
    .unwrap();
    let valid: Vec<bool> = plan.iter().map(Option::is_some).collect();
    let plan = Column::with_validity(
        "plan",
        Values::Text(
            plan.into_iter()
                .map(|p| p.unwrap_or("").to_string())
                .collect(),
        ),
        valid,
    )
    .unwrap();
    let lines = Column::new("lines", Values::Integer(lines));
    Table::new(vec![age, plan, lines]).unwrap()
}

#[test]
fn the_raw_inputs_are_the_columns_the_features_come_from() {
    let pipeline = pipeline(false);
    let inputs: Vec<(&str, ColumnType, bool)> = pipeline
        .inputs
        .iter()
        .map(|i| (i.name.as_str(), i.kind, i.nullable))
        .collect();
    // `id` feeds no feature and `churn` is the target; `age` is imputed and `plan` encoded, so
    // both may be null; `lines` goes to the model as it is.
    assert_eq!(
        inputs,
        vec![
            ("age", ColumnType::Float, true),
            ("plan", ColumnType::Text, true),
            ("lines", ColumnType::Integer, false),
        ]
    );
    assert!(pipeline.transforms());
}

#[test]
fn rows_are_preprocessed_as_training_did() {
    let pipeline = pipeline(false);
    let table = raw(
        vec![Some(50.0), None, Some(20.0)],
        vec![Some("pro"), None, Some("enterprise")],
        vec![1, 2, 3],
    );
    let matrix = pipeline.features(&table).unwrap();
    assert_eq!(
        matrix,
        vec![
            1.0, 1.0, 0.0, 1.0, // age (50 - 40) / 10, plan pro
            2.0, 0.0, 0.0, 0.0, // age imputed to 40; a null plan is all zeros
            3.0, -2.0, 0.0, 0.0, // an unseen plan is all zeros with handle_unknown = ignore
        ]
    );
}

#[test]
fn an_unseen_category_is_an_error_when_training_said_so() {
    let pipeline = pipeline(true);
    let table = raw(
        vec![Some(50.0), Some(1.0)],
        vec![Some("pro"), Some("enterprise")],
        vec![1, 2],
    );
    let err = pipeline.features(&table).unwrap_err();
    assert_eq!(err.column, "plan");
    assert_eq!(err.row, Some(1));
    assert!(
        err.to_string().starts_with(
            "column `plan`, row 1: the category \"enterprise\" was not seen in training"
        ),
        "{err}"
    );
}

#[test]
fn requests_must_give_exactly_the_raw_columns_with_their_types() {
    let pipeline = pipeline(false);
    let table = raw(vec![Some(1.0)], vec![Some("pro")], vec![1]);
    let extra = table
        .with_column(Column::new("zip", Values::Integer(vec![75001])))
        .unwrap();
    let err = pipeline.check(&extra).unwrap_err();
    assert_eq!(
        err.to_string(),
        "column `zip`: unknown column: the model takes `age`, `plan`, `lines`"
    );
    let missing = table.drop_columns(&["lines"]);
    assert_eq!(
        pipeline.check(&missing).unwrap_err().to_string(),
        "column `lines`: missing: the model takes `age`, `plan`, `lines`"
    );
    let wrong = table
        .with_column(Column::new("lines", Values::Text(vec!["two".into()])))
        .unwrap();
    assert_eq!(
        pipeline.check(&wrong).unwrap_err().to_string(),
        "column `lines`: is text; the model takes integer"
    );
    let null_lines = table
        .with_column(Column::with_validity("lines", Values::Integer(vec![0]), vec![false]).unwrap())
        .unwrap();
    assert_eq!(
        pipeline.check(&null_lines).unwrap_err().to_string(),
        "column `lines`, row 0: is null, and the pipeline does not fill this column"
    );
    // Integers are numbers: a float column takes them.
    let integral_age = table
        .with_column(Column::new("age", Values::Integer(vec![30])))
        .unwrap();
    assert!(pipeline.check(&integral_age).is_ok());
    // And whole floats are integers, once conformed.
    let float_lines = table
        .with_column(Column::new("lines", Values::Float(vec![2.0])))
        .unwrap();
    assert_eq!(pipeline.features(&float_lines).unwrap()[0], 2.0);
    let fraction = table
        .with_column(Column::new("lines", Values::Float(vec![2.5])))
        .unwrap();
    assert_eq!(
        pipeline.features(&fraction).unwrap_err().to_string(),
        "column `lines`, row 0: 2.5 is not a whole number; the column is integer"
    );
}

#[test]
fn a_chain_that_cannot_be_applied_is_refused_naming_the_step() {
    let mut bad = steps(false);
    bad[1].stages = vec![Stage::Unservable {
        reason: "it calls an external service".into(),
    }];
    let err = Pipeline::derive(&schema(), bad, &features(), "churn", None).unwrap_err();
    assert_eq!(
        err,
        "step `impute` (impute@0.1.0) cannot be applied to raw rows: its `unservable` stage: it calls an external service"
    );
    let mut wrong_column = steps(false);
    wrong_column[3].stages = vec![Stage::Standardize {
        scalings: vec![Scaling {
            column: "churn".into(),
            center: 0.0,
            scale: 1.0,
        }],
    }];
    let err = Pipeline::derive(&schema(), wrong_column, &features(), "churn", None).unwrap_err();
    assert!(err.contains("step `scale`"), "{err}");
    assert!(err.contains("column `churn` is text"), "{err}");
    let mut dropped = steps(false);
    dropped[3].stages = vec![Stage::Standardize {
        scalings: vec![Scaling {
            column: "plan".into(),
            center: 0.0,
            scale: 1.0,
        }],
    }];
    let err = Pipeline::derive(&schema(), dropped, &features(), "churn", None).unwrap_err();
    assert!(
        err.contains("it uses column `plan`, which the table does not have at that point"),
        "{err}"
    );
    let err = Pipeline::derive(
        &schema(),
        steps(false),
        &["tenure".to_string()],
        "churn",
        None,
    )
    .unwrap_err();
    assert!(
        err.starts_with("the model's feature `tenure` is not among"),
        "{err}"
    );
}

#[test]
fn bucketize_and_drop_columns_apply_like_the_plugins() {
    let steps = vec![StepStages {
        step: "groups".into(),
        plugin: "bucketize@0.1.0".into(),
        stages: vec![
            Stage::Bucketize(Buckets {
                column: "age".into(),
                output: "band".into(),
                edges: vec![30.0, 60.0],
                labels: vec!["young".into(), "middle".into(), "old".into()],
            }),
            Stage::OneHot {
                columns: vec![OneHotColumn {
                    column: "band".into(),
                    categories: vec!["middle".into(), "old".into(), "young".into()],
                    outputs: vec!["band=middle".into(), "band=old".into(), "band=young".into()],
                }],
                unknown_is_error: false,
                drop_original: true,
            },
            Stage::DropColumns {
                columns: vec!["id".into()],
            },
        ],
    }];
    let features: Vec<String> = vec!["band=young".into(), "band=old".into()];
    let pipeline = Pipeline::derive(&schema(), steps, &features, "churn", None).unwrap();
    assert_eq!(
        pipeline
            .inputs
            .iter()
            .map(|i| i.name.as_str())
            .collect::<Vec<_>>(),
        vec!["age"]
    );
    assert!(pipeline.inputs[0].nullable, "a null age encodes as zeros");
    let table = Table::new(vec![Column::new(
        "age",
        Values::Float(vec![30.0, 30.5, 61.0]),
    )])
    .unwrap();
    assert_eq!(
        pipeline.features(&table).unwrap(),
        vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    );
}

#[test]
fn category_labels_are_written_as_the_encoder_fits_them() {
    let floats = Column::new("x", Values::Float(vec![-0.0, 1.5, 2.0]));
    let labels: Vec<String> = (0..3)
        .map(|r| category_label(&floats, r).unwrap().into_owned())
        .collect();
    assert_eq!(labels, vec!["0", "1.5", "2"]);
    let flags = Column::new("b", Values::Boolean(vec![true, false]));
    assert_eq!(category_label(&flags, 1).unwrap(), "false");
}

#[test]
fn a_pipeline_is_stored_as_readable_json() {
    let pipeline = pipeline(false);
    let json = serde_json::to_value(&pipeline).unwrap();
    assert_eq!(json["steps"][1]["stages"][0]["stage"], "impute");
    assert_eq!(
        json["steps"][1]["stages"][0]["fills"][0]["value"]["float"],
        40.0
    );
    assert_eq!(json["inputs"][0]["type"], "float");
    let back: Pipeline = serde_json::from_value(json).unwrap();
    assert_eq!(back, pipeline);
}

#[test]
fn stages_on_columns_the_features_do_not_come_from_are_left_out() {
    // The imputation also filled the target and `id`, and the scaler standardised `id`:
    // requests carry neither, so the served pipeline must not need them.
    let mut steps = steps(false);
    steps[1].stages = vec![Stage::Impute {
        fills: vec![
            Fill {
                column: "age".into(),
                value: FillValue::Float(40.0),
            },
            Fill {
                column: "churn".into(),
                value: FillValue::Text("no".into()),
            },
            Fill {
                column: "id".into(),
                value: FillValue::Integer(0),
            },
        ],
    }];
    steps[3].stages = vec![Stage::Standardize {
        scalings: vec![
            Scaling {
                column: "age".into(),
                center: 40.0,
                scale: 10.0,
            },
            Scaling {
                column: "id".into(),
                center: 500.0,
                scale: 100.0,
            },
        ],
    }];
    let pipeline = Pipeline::derive(&schema(), steps, &features(), "churn", None).unwrap();
    let Stage::Impute { fills } = &pipeline.steps[1].stages[0] else {
        panic!("{:?}", pipeline.steps[1]);
    };
    assert_eq!(fills.len(), 1);
    let table = raw(vec![None], vec![Some("pro")], vec![1]);
    assert_eq!(pipeline.features(&table).unwrap(), vec![1.0, 0.0, 0.0, 1.0]);
}

#[test]
fn requests_are_read_as_the_training_file_was() {
    let pipeline = pipeline(false);
    // `NA` in a text column and NaN in a float one are missing values, as in a CSV file.
    let table = raw(vec![Some(f64::NAN)], vec![Some("NA")], vec![1]);
    assert_eq!(pipeline.features(&table).unwrap(), vec![1.0, 0.0, 0.0, 0.0]);
    let infinite = raw(vec![Some(f64::INFINITY)], vec![Some("pro")], vec![1]);
    assert_eq!(
        pipeline.features(&infinite).unwrap_err().to_string(),
        "column `age`, row 0: inf is not a finite number"
    );
}
