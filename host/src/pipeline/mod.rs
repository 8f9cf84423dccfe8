//! The preprocessing a registered model version applies to raw rows before its model: the
//! stages its workflow's transformers declared (contract 0.1.2, `preprocessing.declare`) between
//! the raw dataset and the trainer, recorded with the version by `register-model`.
//!
//! A [`Pipeline`] knows the raw columns a caller sends (name, type, whether a null is allowed),
//! the stages in order, and the model's features. [`Pipeline::derive`] checks at registration
//! that the stages apply to the raw schema and produce every feature; [`Pipeline::features`]
//! turns a raw table into the model's `[rows, features]` matrix exactly as training did (the
//! same fill values, categories, centres and scales, the same f64 arithmetic, then f32 for the
//! model). Every problem with a row names its column and row.
//!
//! This module is pure: tables in, tables out. It knows nothing of HTTP, wasm or the store;
//! `rows` builds raw tables from JSON values.

pub mod rows;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::table::{Column, ColumnType, Table, Values};

/// A fill value, typed as the column is once filled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FillValue {
    Float(f64),
    Integer(i64),
    Text(String),
    Boolean(bool),
}

impl FillValue {
    fn kind(&self) -> ColumnType {
        match self {
            FillValue::Float(_) => ColumnType::Float,
            FillValue::Integer(_) => ColumnType::Integer,
            FillValue::Text(_) => ColumnType::Text,
            FillValue::Boolean(_) => ColumnType::Boolean,
        }
    }
}

/// Nulls of `column` replaced by `value`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fill {
    pub column: String,
    pub value: FillValue,
}

/// A column encoded as one float 0/1 indicator column per category.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OneHotColumn {
    pub column: String,
    /// The categories as text (see [`category_label`]), in indicator order.
    pub categories: Vec<String>,
    /// The indicator columns' names, one per category.
    pub outputs: Vec<String>,
}

/// `(x - center) / scale`, nulls left null.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scaling {
    pub column: String,
    pub center: f64,
    pub scale: f64,
}

/// A text column `output` cut from the numeric `column` at `edges`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Buckets {
    pub column: String,
    pub output: String,
    pub edges: Vec<f64>,
    pub labels: Vec<String>,
}

/// One stage of preprocessing, as the contract's `preprocessing.stage` defines it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "kebab-case")]
pub enum Stage {
    /// Rows were chosen; a scored row passes unchanged.
    Rows,
    Impute {
        fills: Vec<Fill>,
    },
    OneHot {
        columns: Vec<OneHotColumn>,
        unknown_is_error: bool,
        drop_original: bool,
    },
    Standardize {
        scalings: Vec<Scaling>,
    },
    Bucketize(Buckets),
    DropColumns {
        columns: Vec<String>,
    },
    Unservable {
        reason: String,
    },
}

impl Stage {
    /// The stage's name, as the contract spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Stage::Rows => "rows",
            Stage::Impute { .. } => "impute",
            Stage::OneHot { .. } => "one-hot",
            Stage::Standardize { .. } => "standardize",
            Stage::Bucketize(_) => "bucketize",
            Stage::DropColumns { .. } => "drop-columns",
            Stage::Unservable { .. } => "unservable",
        }
    }
}

/// What one workflow step contributed to a pipeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepStages {
    /// The step's id in its workflow.
    pub step: String,
    /// `name@version` of its plugin.
    pub plugin: String,
    pub stages: Vec<Stage>,
}

/// A raw column a caller sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RawInput {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ColumnType,
    /// Whether a null is allowed: the pipeline fills it, or encodes it, before the model.
    pub nullable: bool,
}

/// The preprocessing of a model version: raw columns in, the model's features out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pipeline {
    /// The raw columns a request must give, in the dataset's order.
    pub inputs: Vec<RawInput>,
    /// The steps between the raw dataset and the trainer, in order.
    pub steps: Vec<StepStages>,
    /// The model's features, in its input order.
    pub features: Vec<String>,
    /// The digest of the raw training table (the rows the first fitted stage saw), the
    /// reference of drift checks on raw columns.
    #[serde(default)]
    pub reference: Option<String>,
}

/// A problem applying a pipeline to rows, with the column and row it is about.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct RowError {
    pub column: String,
    /// The row, from 0, when the problem is one row's.
    pub row: Option<usize>,
    pub message: String,
}

impl RowError {
    fn new(column: &str, row: Option<usize>, message: impl Into<String>) -> RowError {
        RowError {
            column: column.to_string(),
            row,
            message: message.into(),
        }
    }

    fn describe(&self) -> String {
        match (self.column.is_empty(), self.row) {
            (false, Some(row)) => format!("column `{}`, row {row}: {}", self.column, self.message),
            (false, None) => format!("column `{}`: {}", self.column, self.message),
            (true, Some(row)) => format!("row {row}: {}", self.message),
            (true, None) => self.message.clone(),
        }
    }

    /// The same problem, `offset` rows further on (for a chunk of a longer file).
    pub fn offset(mut self, offset: usize) -> RowError {
        self.row = self.row.map(|row| row + offset);
        self
    }
}

/// A raw row value as one-hot categories are written: text as it is, integers in decimal,
/// floats as `Display` writes them with `-0` as `0`, booleans `true` / `false` (what the
/// `one-hot-encode` plugin fits, so categories match). `None` for a null.
pub fn category_label(column: &Column, row: usize) -> Option<std::borrow::Cow<'_, str>> {
    use std::borrow::Cow;
    if column.is_null(row) {
        return None;
    }
    Some(match column.values() {
        Values::Text(values) => Cow::Borrowed(values[row].as_str()),
        // Adding zero turns -0.0 into 0.0.
        Values::Float(values) => Cow::Owned((values[row] + 0.0).to_string()),
        Values::Integer(values) => Cow::Owned(values[row].to_string()),
        Values::Boolean(values) => Cow::Borrowed(if values[row] { "true" } else { "false" }),
    })
}

/// Names quoted for messages: `` `a`, `b` ``.
pub fn quoted<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names
        .into_iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

type Schema = Vec<(String, ColumnType)>;

fn position(schema: &Schema, name: &str) -> Option<usize> {
    schema.iter().position(|(n, _)| n == name)
}

fn numeric(kind: ColumnType) -> bool {
    matches!(
        kind,
        ColumnType::Float | ColumnType::Integer | ColumnType::Boolean
    )
}

/// What `stage` makes of a table with `schema`: the same changes of names and types the
/// stage's application makes, or why it does not apply.
fn apply_to_schema(stage: &Stage, schema: &mut Schema) -> Result<(), String> {
    let need = |schema: &Schema, name: &str| {
        position(schema, name).ok_or_else(|| {
            format!(
                "it uses column `{name}`, which the table does not have at that point (columns: {})",
                schema
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    };
    match stage {
        Stage::Rows => {}
        Stage::Impute { fills } => {
            for fill in fills {
                let at = need(schema, &fill.column)?;
                let (kind, fill_kind) = (schema[at].1, fill.value.kind());
                if kind != fill_kind
                    && (kind, fill_kind) != (ColumnType::Integer, ColumnType::Float)
                {
                    return Err(format!(
                        "column `{}` is {kind}, but its fill value is {fill_kind}",
                        fill.column
                    ));
                }
                schema[at].1 = fill_kind;
            }
        }
        Stage::OneHot {
            columns,
            drop_original,
            ..
        } => {
            for encoded in columns {
                need(schema, &encoded.column)?;
                if encoded.categories.len() != encoded.outputs.len() {
                    return Err(format!(
                        "column `{}` has {} categories but {} indicator columns",
                        encoded.column,
                        encoded.categories.len(),
                        encoded.outputs.len()
                    ));
                }
            }
            if *drop_original {
                schema.retain(|(name, _)| !columns.iter().any(|c| &c.column == name));
            }
            for output in columns.iter().flat_map(|c| &c.outputs) {
                match position(schema, output) {
                    Some(at) => schema[at].1 = ColumnType::Float,
                    None => schema.push((output.clone(), ColumnType::Float)),
                }
            }
        }
        Stage::Standardize { scalings } => {
            for scaling in scalings {
                let at = need(schema, &scaling.column)?;
                if !numeric(schema[at].1) {
                    return Err(format!(
                        "column `{}` is {}; only numbers can be standardised",
                        scaling.column, schema[at].1
                    ));
                }
                if !(scaling.scale.is_finite()
                    && scaling.scale != 0.0
                    && scaling.center.is_finite())
                {
                    return Err(format!(
                        "column `{}` has centre {} and scale {}: both must be finite and the scale not 0",
                        scaling.column, scaling.center, scaling.scale
                    ));
                }
                schema[at].1 = ColumnType::Float;
            }
        }
        Stage::Bucketize(buckets) => {
            let at = need(schema, &buckets.column)?;
            if !numeric(schema[at].1) {
                return Err(format!(
                    "column `{}` is {}; only numbers can be cut into ranges",
                    buckets.column, schema[at].1
                ));
            }
            if buckets.labels.len() != buckets.edges.len() + 1 {
                return Err(format!(
                    "{} cut points need {} labels, not {}",
                    buckets.edges.len(),
                    buckets.edges.len() + 1,
                    buckets.labels.len()
                ));
            }
            match position(schema, &buckets.output) {
                Some(at) => schema[at].1 = ColumnType::Text,
                None => schema.push((buckets.output.clone(), ColumnType::Text)),
            }
        }
        Stage::DropColumns { columns } => {
            schema.retain(|(name, _)| !columns.contains(name));
        }
        Stage::Unservable { reason } => return Err(reason.clone()),
    }
    Ok(())
}

/// The columns `stage` reads to make `wanted`: what must be there before it.
fn needed_before(stage: &Stage, wanted: &mut BTreeSet<String>) {
    match stage {
        Stage::OneHot { columns, .. } => {
            for encoded in columns {
                let used = encoded.outputs.iter().filter(|o| wanted.remove(*o)).count();
                if used > 0 {
                    wanted.insert(encoded.column.clone());
                }
            }
        }
        Stage::Bucketize(buckets) => {
            if wanted.remove(&buckets.output) {
                wanted.insert(buckets.column.clone());
            }
        }
        Stage::Rows
        | Stage::Impute { .. }
        | Stage::Standardize { .. }
        | Stage::DropColumns { .. }
        | Stage::Unservable { .. } => {}
    }
}

/// `stage` without what makes no column of `wanted` (the columns needed after it): a fill of
/// the target, the scaling of an id, the encoding of a column the trainer left out. Serving
/// requests carry only the columns the features come from, so those parts would have nothing
/// to apply to.
/// Returns whether anything of the stage is left.
fn prune(stage: &mut Stage, wanted: &BTreeSet<String>) -> bool {
    match stage {
        Stage::Impute { fills } => {
            fills.retain(|f| wanted.contains(&f.column));
            !fills.is_empty()
        }
        Stage::Standardize { scalings } => {
            scalings.retain(|s| wanted.contains(&s.column));
            !scalings.is_empty()
        }
        Stage::OneHot { columns, .. } => {
            columns.retain(|c| c.outputs.iter().any(|o| wanted.contains(o)));
            !columns.is_empty()
        }
        Stage::Bucketize(buckets) => wanted.contains(&buckets.output),
        Stage::Rows | Stage::DropColumns { .. } | Stage::Unservable { .. } => true,
    }
}

/// Whether a null in `column` can still be null after `stage`, given which columns may be null
/// before it (`nullable`), updated in place.
fn propagate_nulls(stage: &Stage, nullable: &mut HashMap<String, bool>) {
    match stage {
        Stage::Impute { fills } => {
            for fill in fills {
                nullable.insert(fill.column.clone(), false);
            }
        }
        Stage::OneHot { columns, .. } => {
            for output in columns.iter().flat_map(|c| &c.outputs) {
                nullable.insert(output.clone(), false);
            }
        }
        Stage::Bucketize(buckets) => {
            let from = nullable.get(&buckets.column).copied().unwrap_or(false);
            nullable.insert(buckets.output.clone(), from);
        }
        Stage::Rows
        | Stage::Standardize { .. }
        | Stage::DropColumns { .. }
        | Stage::Unservable { .. } => {}
    }
}

impl Pipeline {
    /// Checks that `steps` apply, in order, to a raw table with `schema` and produce every one
    /// of `features` as a number; works out which raw columns a request must give (those the
    /// features derive from, never `target`) and which of them may be null.
    pub fn derive(
        schema: &[(String, ColumnType)],
        steps: Vec<StepStages>,
        features: &[String],
        target: &str,
        reference: Option<String>,
    ) -> Result<Pipeline, String> {
        let mut current: Schema = schema.to_vec();
        for step in &steps {
            for stage in &step.stages {
                apply_to_schema(stage, &mut current).map_err(|why| {
                    format!(
                        "step `{}` ({}) cannot be applied to raw rows: its `{}` stage: {why}",
                        step.step,
                        step.plugin,
                        stage.name()
                    )
                })?;
            }
        }
        for feature in features {
            match position(&current, feature) {
                None => {
                    return Err(format!(
                        "the model's feature `{feature}` is not among the columns the pipeline makes from the raw data ({})",
                        current
                            .iter()
                            .map(|(n, _)| n.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                Some(at) if !numeric(current[at].1) => {
                    return Err(format!(
                        "the model's feature `{feature}` is {} after preprocessing; the model takes numbers",
                        current[at].1
                    ));
                }
                Some(_) => {}
            }
        }
        let mut steps = steps;
        let mut wanted: BTreeSet<String> = features.iter().cloned().collect();
        for step in steps.iter_mut().rev() {
            let mut kept = Vec::with_capacity(step.stages.len());
            for mut stage in std::mem::take(&mut step.stages).into_iter().rev() {
                if prune(&mut stage, &wanted) {
                    needed_before(&stage, &mut wanted);
                    kept.push(stage);
                }
            }
            kept.reverse();
            step.stages = kept;
        }
        let mut inputs = Vec::new();
        for (name, kind) in schema {
            if name == target || !wanted.contains(name) {
                continue;
            }
            // A null in this column alone: can it reach a feature?
            let mut nullable: HashMap<String, bool> =
                schema.iter().map(|(n, _)| (n.clone(), n == name)).collect();
            for stage in steps.iter().flat_map(|s| &s.stages) {
                propagate_nulls(stage, &mut nullable);
            }
            let reaches = features
                .iter()
                .any(|f| nullable.get(f).copied().unwrap_or(false));
            inputs.push(RawInput {
                name: name.clone(),
                kind: *kind,
                nullable: !reaches,
            });
        }
        Ok(Pipeline {
            inputs,
            steps,
            features: features.to_vec(),
            reference,
        })
    }

    /// For people: `7 columns (island, ..., year) through `split` -> `impute` -> `encode``.
    pub fn summary(&self) -> String {
        let names: Vec<&str> = self.inputs.iter().map(|i| i.name.as_str()).collect();
        let steps: Vec<String> = self.steps.iter().map(|s| format!("`{}`", s.step)).collect();
        format!(
            "{} columns ({}) through {}",
            names.len(),
            names.join(", "),
            steps.join(" -> ")
        )
    }

    /// No preprocessing: a model's own features, given by name as floats, taken as they are.
    pub fn identity(features: &[String]) -> Pipeline {
        Pipeline {
            inputs: features
                .iter()
                .map(|name| RawInput {
                    name: name.clone(),
                    kind: ColumnType::Float,
                    nullable: false,
                })
                .collect(),
            steps: Vec::new(),
            features: features.to_vec(),
            reference: None,
        }
    }

    /// Every stage, in order.
    fn stages(&self) -> impl Iterator<Item = &Stage> {
        self.steps.iter().flat_map(|s| &s.stages)
    }

    /// Whether any stage does more than choose rows.
    pub fn transforms(&self) -> bool {
        self.stages().any(|s| *s != Stage::Rows)
    }

    /// The raw input named `name`.
    pub fn input(&self, name: &str) -> Option<&RawInput> {
        self.inputs.iter().find(|i| i.name == name)
    }

    /// `table` as the training data was read: numeric columns in their inputs' types (integers
    /// for a float column, whole numbers for an integer column; a fraction is an error naming
    /// the row), NaN as a null and an infinity an error, and in text columns the null spellings
    /// of CSV files (`NA`, `null`, an empty string...) as nulls, since training read them so.
    /// Other columns are left for [`Pipeline::check`] to judge.
    pub fn conform(&self, table: &Table) -> Result<Table, RowError> {
        let mut conformed = table.clone();
        for column in table.columns() {
            let Some(input) = self.input(column.name()) else {
                continue;
            };
            let mut valid = column
                .validity()
                .map_or_else(|| vec![true; column.len()], <[bool]>::to_vec);
            let floats = |v: &[f64], valid: &mut [bool]| -> Result<Vec<f64>, RowError> {
                for (row, &x) in v.iter().enumerate() {
                    if x.is_nan() {
                        valid[row] = false;
                    } else if x.is_infinite() && valid[row] {
                        return Err(RowError::new(
                            column.name(),
                            Some(row),
                            format!("{x} is not a finite number"),
                        ));
                    }
                }
                Ok(v.to_vec())
            };
            let values = match (column.values(), input.kind) {
                (Values::Integer(v), ColumnType::Float) => {
                    Values::Float(v.iter().map(|&x| x as f64).collect())
                }
                (Values::Float(v), ColumnType::Float) => {
                    if v.iter().all(|x| x.is_finite()) {
                        continue;
                    }
                    Values::Float(floats(v, &mut valid)?)
                }
                (Values::Float(v), ColumnType::Integer) => {
                    let v = floats(v, &mut valid)?;
                    let mut whole = Vec::with_capacity(v.len());
                    for (row, &x) in v.iter().enumerate() {
                        if !valid[row] {
                            whole.push(0);
                        } else if let Some(i) = whole_number(x) {
                            whole.push(i);
                        } else {
                            return Err(RowError::new(
                                column.name(),
                                Some(row),
                                format!("{x} is not a whole number; the column is integer"),
                            ));
                        }
                    }
                    Values::Integer(whole)
                }
                (Values::Text(v), ColumnType::Text) => {
                    if !v.iter().any(|s| crate::table::csv::is_null(s)) {
                        continue;
                    }
                    for (row, text) in v.iter().enumerate() {
                        if crate::table::csv::is_null(text) {
                            valid[row] = false;
                        }
                    }
                    Values::Text(v.clone())
                }
                _ => continue,
            };
            let converted = Column::with_validity(column.name(), values, valid)
                .expect("one validity flag per value");
            conformed = replace(&conformed, converted)?;
        }
        Ok(conformed)
    }

    /// Checks that `table` holds exactly the raw inputs, each of its type (integers are
    /// accepted for float columns) and without nulls where none is allowed.
    pub fn check(&self, table: &Table) -> Result<(), RowError> {
        for column in table.columns() {
            if self.input(column.name()).is_none() {
                return Err(RowError::new(
                    column.name(),
                    None,
                    format!("unknown column: the model takes {}", self.input_names()),
                ));
            }
        }
        for input in &self.inputs {
            let Some(column) = table.column(&input.name) else {
                return Err(RowError::new(
                    &input.name,
                    None,
                    format!("missing: the model takes {}", self.input_names()),
                ));
            };
            let kind = column.kind();
            if kind != input.kind && (kind, input.kind) != (ColumnType::Integer, ColumnType::Float)
            {
                return Err(RowError::new(
                    &input.name,
                    None,
                    format!("is {kind}; the model takes {}", input.kind),
                ));
            }
            if !input.nullable
                && let Some(row) = (0..column.len()).find(|&row| column.is_null(row))
            {
                return Err(RowError::new(
                    &input.name,
                    Some(row),
                    "is null, and the pipeline does not fill this column",
                ));
            }
        }
        Ok(())
    }

    /// The raw inputs' names, quoted, for messages: `` `a`, `b` ``.
    pub fn input_names(&self) -> String {
        quoted(self.inputs.iter().map(|i| i.name.as_str()))
    }

    /// The raw table after every stage.
    pub fn apply(&self, table: &Table) -> Result<Table, RowError> {
        let mut table = table.clone();
        for stage in self.stages() {
            table = apply_stage(stage, &table)?;
        }
        Ok(table)
    }

    /// The model's `[rows, features]` input (row-major, f32) for a raw table: checked, then
    /// preprocessed (numbers of either kind are taken for numeric columns, see
    /// [`Pipeline::conform`]).
    pub fn features(&self, table: &Table) -> Result<Vec<f32>, RowError> {
        let table = self.conform(table)?;
        self.check(&table)?;
        let table = self.apply(&table)?;
        features_matrix(&table, &self.features)
    }
}

/// `x` as an integer when it is a whole number that f64 holds exactly.
pub fn whole_number(x: f64) -> Option<i64> {
    (x.fract() == 0.0 && x.abs() <= 9_007_199_254_740_992.0).then_some(x as i64)
}

/// `table`'s `features` as a row-major f32 matrix; a null or text value is an error naming the
/// column and row.
pub fn features_matrix(table: &Table, features: &[String]) -> Result<Vec<f32>, RowError> {
    let rows = table.row_count();
    let width = features.len();
    let mut data = vec![0f32; rows * width];
    for (j, feature) in features.iter().enumerate() {
        let column = table
            .column(feature)
            .ok_or_else(|| RowError::new(feature, None, "missing after preprocessing"))?;
        for row in 0..rows {
            let value = column.f64_at(row).ok_or_else(|| {
                let why = if column.is_null(row) {
                    "is null after preprocessing; the model takes no missing values"
                } else {
                    "is text after preprocessing; the model takes numbers"
                };
                RowError::new(feature, Some(row), why)
            })?;
            data[row * width + j] = value as f32;
        }
    }
    Ok(data)
}

fn column_of<'a>(table: &'a Table, name: &str) -> Result<&'a Arc<Column>, RowError> {
    table
        .column(name)
        .ok_or_else(|| RowError::new(name, None, "missing"))
}

fn replace(table: &Table, column: Column) -> Result<Table, RowError> {
    let name = column.name().to_string();
    table
        .with_column(column)
        .map_err(|err| RowError::new(&name, None, err.to_string()))
}

/// The column's values as optional f64 (booleans as 0/1), or an error for text.
fn numbers(column: &Column) -> Result<Vec<Option<f64>>, RowError> {
    if column.kind() == ColumnType::Text {
        return Err(RowError::new(
            column.name(),
            None,
            "is text; the pipeline takes numbers here",
        ));
    }
    Ok((0..column.len()).map(|row| column.f64_at(row)).collect())
}

fn float_column(name: &str, values: Vec<Option<f64>>) -> Column {
    let valid: Vec<bool> = values.iter().map(Option::is_some).collect();
    let values = values.into_iter().map(|v| v.unwrap_or(0.0)).collect();
    Column::with_validity(name, Values::Float(values), valid).expect("one validity flag per value")
}

fn apply_stage(stage: &Stage, table: &Table) -> Result<Table, RowError> {
    match stage {
        Stage::Rows => Ok(table.clone()),
        Stage::Impute { fills } => {
            let mut table = table.clone();
            for fill in fills {
                let column = column_of(&table, &fill.column)?;
                let filled = impute(column, &fill.value)?;
                table = replace(&table, filled)?;
            }
            Ok(table)
        }
        Stage::OneHot {
            columns,
            unknown_is_error,
            drop_original,
        } => {
            let originals: Vec<&str> = columns.iter().map(|c| c.column.as_str()).collect();
            let mut out = if *drop_original {
                table.drop_columns(&originals)
            } else {
                table.clone()
            };
            for encoded in columns {
                let column = column_of(table, &encoded.column)?;
                // A few categories are found faster by looking than by hashing (and a request
                // of one row would pay for building the map).
                let index: Option<HashMap<&str, usize>> =
                    (encoded.categories.len() > 16).then(|| {
                        encoded
                            .categories
                            .iter()
                            .enumerate()
                            .map(|(i, c)| (c.as_str(), i))
                            .collect()
                    });
                let find = |label: &str| match &index {
                    Some(index) => index.get(label).copied(),
                    None => encoded.categories.iter().position(|c| c == label),
                };
                // Each row's category (none for a null or an ignored unknown), then one
                // indicator column per category.
                let mut codes = Vec::with_capacity(column.len());
                for row in 0..column.len() {
                    let Some(label) = category_label(column, row) else {
                        codes.push(None);
                        continue;
                    };
                    match find(label.as_ref()) {
                        Some(code) => codes.push(Some(code)),
                        None if *unknown_is_error => {
                            return Err(RowError::new(
                                &encoded.column,
                                Some(row),
                                format!(
                                    "the category {:?} was not seen in training (known: {}; handle_unknown = \"error\")",
                                    label.as_ref(),
                                    encoded.categories.join(", ")
                                ),
                            ));
                        }
                        None => codes.push(None),
                    }
                }
                for (code, output) in encoded.outputs.iter().enumerate() {
                    let values = codes
                        .iter()
                        .map(|&c| if c == Some(code) { 1.0 } else { 0.0 })
                        .collect();
                    out = replace(&out, Column::new(output.clone(), Values::Float(values)))?;
                }
            }
            Ok(out)
        }
        Stage::Standardize { scalings } => {
            let mut table = table.clone();
            for scaling in scalings {
                let column = column_of(&table, &scaling.column)?;
                let values = numbers(column)?
                    .into_iter()
                    .map(|v| v.map(|x| (x - scaling.center) / scaling.scale))
                    .collect();
                let scaled = float_column(&scaling.column, values);
                table = replace(&table, scaled)?;
            }
            Ok(table)
        }
        Stage::Bucketize(buckets) => {
            let column = column_of(table, &buckets.column)?;
            let groups: Vec<Option<String>> = numbers(column)?
                .into_iter()
                .map(|v| {
                    v.map(|v| {
                        let range = buckets
                            .edges
                            .iter()
                            .position(|edge| v <= *edge)
                            .unwrap_or(buckets.edges.len());
                        buckets.labels[range].clone()
                    })
                })
                .collect();
            let valid: Vec<bool> = groups.iter().map(Option::is_some).collect();
            let values = groups.into_iter().map(Option::unwrap_or_default).collect();
            let derived =
                Column::with_validity(buckets.output.clone(), Values::Text(values), valid)
                    .expect("one validity flag per value");
            replace(table, derived)
        }
        Stage::DropColumns { columns } => Ok(table.drop_columns(columns)),
        Stage::Unservable { reason } => Err(RowError::new("", None, reason.clone())),
    }
}

/// `column` with its nulls replaced by `fill`; an integer column filled with a float becomes a
/// float column.
fn impute(column: &Column, fill: &FillValue) -> Result<Column, RowError> {
    let name = column.name();
    fn filled<T: Clone>(column: &Column, values: &[T], fill: T) -> Vec<T> {
        values
            .iter()
            .enumerate()
            .map(|(row, v)| {
                if column.is_null(row) {
                    fill.clone()
                } else {
                    v.clone()
                }
            })
            .collect()
    }
    let values = match (column.values(), fill) {
        (Values::Float(v), FillValue::Float(f)) => Values::Float(filled(column, v, *f)),
        (Values::Integer(v), FillValue::Float(f)) => {
            let v: Vec<f64> = v.iter().map(|&x| x as f64).collect();
            Values::Float(filled(column, &v, *f))
        }
        (Values::Integer(v), FillValue::Integer(f)) => Values::Integer(filled(column, v, *f)),
        (Values::Text(v), FillValue::Text(f)) => Values::Text(filled(column, v, f.clone())),
        (Values::Boolean(v), FillValue::Boolean(f)) => Values::Boolean(filled(column, v, *f)),
        (values, fill) => {
            return Err(RowError::new(
                name,
                None,
                format!(
                    "is {}, but its fill value is {}",
                    values.kind(),
                    fill.kind()
                ),
            ));
        }
    };
    Ok(Column::new(name, values))
}

#[cfg(test)]
mod tests;
