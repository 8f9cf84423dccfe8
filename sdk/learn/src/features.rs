//! Choosing a trainer's feature columns from a table's schema: the configured list (checked), or
//! every column but the target; text columns are refused with a message saying what to do.
//!
//! It sees names and column types only, never values: nulls and non-finite numbers are the
//! trainers' to report, with the row.

use wflow_sdk::{ColumnType, StepError, missing_column};

/// The feature columns to train on, from the table's schema: the configured list, or every
/// column but the target. Text columns cannot be features.
///
/// ```
/// use wflow_sdk::ColumnType;
/// let schema = [("x".to_string(), ColumnType::Float), ("y".to_string(), ColumnType::Integer)];
/// assert_eq!(wflow_learn::select_features(&schema, "y", None).unwrap(), ["x"]);
/// ```
pub fn select_features(
    schema: &[(String, ColumnType)],
    target: &str,
    configured: Option<&[String]>,
) -> Result<Vec<String>, StepError> {
    let names: Vec<String> = schema.iter().map(|(name, _)| name.clone()).collect();
    if !names.iter().any(|name| name == target) {
        return Err(missing_column(target, &names));
    }
    let features: Vec<String> = match configured {
        Some(list) => {
            if list.is_empty() {
                return Err(StepError::InvalidConfig(
                    "field `features`: must name at least one column".to_string(),
                ));
            }
            for (i, name) in list.iter().enumerate() {
                if name == target {
                    return Err(StepError::InvalidConfig(format!(
                        "field `features`: `{name}` is the target; a model cannot use it as a feature"
                    )));
                }
                if list[..i].contains(name) {
                    return Err(StepError::InvalidConfig(format!(
                        "field `features`: `{name}` is listed twice"
                    )));
                }
                if !names.contains(name) {
                    return Err(missing_column(name, &names));
                }
            }
            list.to_vec()
        }
        None => {
            let all: Vec<String> = names.into_iter().filter(|name| name != target).collect();
            if all.is_empty() {
                return Err(StepError::InvalidInput(format!(
                    "the table has no columns besides the target `{target}`"
                )));
            }
            all
        }
    };
    let text: Vec<&str> = features
        .iter()
        .filter(|name| {
            schema
                .iter()
                .any(|(n, kind)| n == *name && *kind == ColumnType::Text)
        })
        .map(String::as_str)
        .collect();
    if !text.is_empty() {
        return Err(text_features_error(&text));
    }
    Ok(features)
}

/// The error for text feature columns, naming them all.
///
/// ```
/// let err = wflow_learn::text_features_error(&["city"]);
/// assert!(matches!(err, wflow_sdk::StepError::InvalidInput(m) if m.starts_with("feature `city` is text")));
/// ```
pub fn text_features_error(names: &[&str]) -> StepError {
    let quoted: Vec<String> = names.iter().map(|name| format!("`{name}`")).collect();
    StepError::InvalidInput(format!(
        "feature{} {} {} text; one-hot encode text columns first (or leave them out with `features`)",
        if names.len() == 1 { "" } else { "s" },
        quoted.join(", "),
        if names.len() == 1 { "is" } else { "are" },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(columns: &[(&str, ColumnType)]) -> Vec<(String, ColumnType)> {
        columns.iter().map(|(n, k)| (n.to_string(), *k)).collect()
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults_to_every_column_but_the_target() {
        let s = schema(&[
            ("a", ColumnType::Float),
            ("y", ColumnType::Text),
            ("b", ColumnType::Integer),
        ]);
        assert_eq!(
            select_features(&s, "y", None).unwrap(),
            strings(&["a", "b"])
        );
        assert_eq!(
            select_features(&schema(&[("y", ColumnType::Float)]), "y", None),
            Err(StepError::InvalidInput(
                "the table has no columns besides the target `y`".to_string()
            ))
        );
    }

    #[test]
    fn configured_lists_are_checked() {
        let s = schema(&[
            ("a", ColumnType::Float),
            ("b", ColumnType::Float),
            ("t", ColumnType::Text),
            ("y", ColumnType::Integer),
        ]);
        let pick = |list: &[&str]| select_features(&s, "y", Some(&strings(list)));
        assert_eq!(pick(&["b", "a"]).unwrap(), strings(&["b", "a"]));
        assert_eq!(
            pick(&["zz"]),
            Err(StepError::InvalidInput(
                "no column `zz` (columns: a, b, t, y)".to_string()
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
            pick(&["a", "t"]),
            Err(StepError::InvalidInput(
                "feature `t` is text; one-hot encode text columns first (or leave them out with `features`)"
                    .to_string()
            ))
        );
        assert!(matches!(
            select_features(&s, "missing", None),
            Err(StepError::InvalidInput(m)) if m.starts_with("no column `missing`")
        ));
    }
}
