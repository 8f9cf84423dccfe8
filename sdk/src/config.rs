//! Step configuration: parsing the JSON text the host passes into the plugin's `Config` type,
//! and generating the JSON Schema that `describe()` advertises.
//!
//! A configuration that does not parse is a [`StepError::InvalidConfig`] whose message names the
//! field path (`field `thresholds.max`: invalid type...`), never a panic. This module does not
//! validate values beyond what serde checks: range checks belong to the plugin.

use schemars::JsonSchema;
use serde::de::DeserializeOwned;

use crate::StepError;

/// Parses a step's JSON configuration into `C`, as the export macros do before calling a plugin.
///
/// "No configuration" may arrive as a blank text, `null` or `{}`; these are interchangeable, so
/// a struct whose fields are all optional or defaulted, `()` and `Option<T>` all accept any of
/// them. Errors are [`StepError::InvalidConfig`] naming the field path.
///
/// ```
/// use wflow_sdk::{parse_config, StepError};
///
/// #[derive(serde::Deserialize)]
/// struct Config { bins: u32 }
///
/// let config: Config = parse_config(r#"{ "bins": 10 }"#).unwrap();
/// assert_eq!(config.bins, 10);
///
/// let Err(StepError::InvalidConfig(message)) = parse_config::<Config>(r#"{ "bins": "ten" }"#) else {
///     panic!("a string is not a u32");
/// };
/// assert!(message.starts_with("field `bins`"), "{message}");
///
/// parse_config::<()>("{}").unwrap();
/// ```
pub fn parse_config<C: DeserializeOwned>(text: &str) -> Result<C, StepError> {
    let trimmed = text.trim();
    let empty = trimmed.is_empty() || trimmed == "null" || is_empty_object(trimmed);
    if !empty {
        return parse_json(text);
    }
    // Which empty value a configuration type accepts depends on its shape (a struct wants `{}`,
    // `()` wants `null`), so both are tried; the error reported is the one for `{}`, which names
    // a missing required field.
    parse_json("{}").or_else(|error| parse_json("null").map_err(|_| error))
}

/// Whether `text` is a JSON object without members (`{}`, `{ }`...).
fn is_empty_object(text: &str) -> bool {
    text.strip_prefix('{')
        .and_then(|rest| rest.strip_suffix('}'))
        .is_some_and(|inside| inside.trim().is_empty())
}

/// Parses JSON text strictly (trailing characters are an error), naming the failing field.
fn parse_json<C: DeserializeOwned>(text: &str) -> Result<C, StepError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        StepError::InvalidConfig(if path == "." || path.is_empty() {
            format!("configuration: {inner}")
        } else {
            format!("field `{path}`: {inner}")
        })
    })?;
    deserializer
        .end()
        .map_err(|error| StepError::InvalidConfig(format!("configuration: {error}")))?;
    Ok(value)
}

/// The JSON Schema (as JSON text) of a configuration type, as `describe()` reports it.
///
/// Doc comments on the configuration's fields become `description`s, and serde attributes
/// (`deny_unknown_fields`, `default`, `rename`...) are reflected in the schema. A type whose
/// schema only accepts `null` (such as `()`) is widened to also accept an empty object, because
/// a workflow step without options passes `{}` and [`parse_config`] accepts both.
///
/// ```
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// #[serde(deny_unknown_fields)]
/// struct Config {
///     /// Number of histogram bins.
///     bins: u32,
/// }
///
/// let schema: serde_json::Value = serde_json::from_str(&wflow_sdk::config_schema::<Config>()).unwrap();
/// assert_eq!(schema["properties"]["bins"]["description"], "Number of histogram bins.");
/// assert_eq!(schema["additionalProperties"], false);
/// ```
pub fn config_schema<C: JsonSchema>() -> String {
    let mut schema = schemars::schema_for!(C);
    if schema.get("type") == Some(&serde_json::Value::from("null")) {
        schema.insert("type".to_string(), serde_json::json!(["object", "null"]));
        schema.insert("maxProperties".to_string(), serde_json::json!(0));
    }
    // A schemars schema is a JSON value with string keys, which always serialises.
    serde_json::to_string(&schema).expect("a JSON Schema value always serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Thresholds {
        max: f64,
    }

    #[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Config {
        /// Fewest rows.
        min_rows: Option<u64>,
        thresholds: Vec<Thresholds>,
    }

    #[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Empty {}

    #[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
    struct AllOptional {
        min_rows: Option<u64>,
    }

    fn invalid_config<C: DeserializeOwned + std::fmt::Debug>(text: &str) -> String {
        match parse_config::<C>(text) {
            Err(StepError::InvalidConfig(message)) => message,
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }

    #[test]
    fn parses_a_valid_configuration() {
        let config: Config =
            parse_config(r#"{"min_rows": 3, "thresholds": [{"max": 0.5}]}"#).unwrap();
        assert_eq!(config.min_rows, Some(3));
        assert_eq!(config.thresholds[0].max, 0.5);
    }

    #[test]
    fn a_wrong_type_names_the_nested_field_path() {
        let message = invalid_config::<Config>(r#"{"thresholds": [{"max": "high"}]}"#);
        assert!(
            message.starts_with("field `thresholds[0].max`: invalid type"),
            "{message}"
        );
    }

    #[test]
    fn an_unknown_field_is_named() {
        let message = invalid_config::<Config>(r#"{"thresholds": [], "min_row": 1}"#);
        assert!(message.contains("unknown field `min_row`"), "{message}");
    }

    #[test]
    fn a_missing_field_is_named() {
        let message = invalid_config::<Config>(r#"{"min_rows": 1}"#);
        assert!(message.contains("missing field `thresholds`"), "{message}");
    }

    #[test]
    fn malformed_json_and_trailing_text_are_invalid_config() {
        let message = invalid_config::<Config>(r#"{"thresholds": ["#);
        assert!(message.starts_with("field `thresholds`"), "{message}");
        let message = invalid_config::<Config>(r#"{"thresholds": []} x"#);
        assert!(
            message.starts_with("configuration: trailing characters"),
            "{message}"
        );
        let message = invalid_config::<Config>(r#""thresholds""#);
        assert!(
            message.starts_with("configuration: invalid type"),
            "{message}"
        );
    }

    #[test]
    fn blank_null_and_empty_object_configurations_fit_empty_and_unit_types() {
        for text in ["", " ", "null", "{}", "{ }", " {\n} "] {
            parse_config::<Empty>(text).unwrap();
            parse_config::<()>(text).unwrap();
            assert_eq!(parse_config::<Option<u32>>(text).unwrap(), None, "{text:?}");
        }
        assert!(parse_config::<()>(r#"{"a": 1}"#).is_err());
        assert!(!is_empty_object("{\"a\": 1}"));
        assert_eq!(parse_config::<AllOptional>("{}").unwrap().min_rows, None);
        // A blank configuration for a type with required fields still names what is missing.
        let message = invalid_config::<Config>("");
        assert!(message.contains("missing field `thresholds`"), "{message}");
    }

    #[test]
    fn the_schema_describes_fields_and_forbids_unknown_ones() {
        let schema: serde_json::Value = serde_json::from_str(&config_schema::<Config>()).unwrap();
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(
            schema["properties"]["min_rows"]["description"],
            "Fewest rows."
        );
        assert_eq!(schema["required"], serde_json::json!(["thresholds"]));
        let empty: serde_json::Value = serde_json::from_str(&config_schema::<Empty>()).unwrap();
        assert_eq!(empty["type"], "object");
    }

    #[test]
    fn the_schema_of_unit_accepts_an_empty_object_or_null() {
        let schema: serde_json::Value = serde_json::from_str(&config_schema::<()>()).unwrap();
        assert_eq!(schema["type"], serde_json::json!(["object", "null"]));
        assert_eq!(schema["maxProperties"], 0);
    }
}
