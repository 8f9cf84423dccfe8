//! Which input the parameters are fitted on, and the name of the extra `fitted` output.
//!
//! Works on input names only; reading tables is each plugin's glue's business. It lives here so
//! that `impute`, `standard-scaler` and `one-hot-encode` share one copy of the rules, and every
//! preprocessing step of a workflow fits on the same input without being told twice.

use wflow_sdk::StepError;

/// The name of the output table that holds the fitted parameters, one row per column.
pub const FITTED: &str = "fitted";

/// The input that parameters are fitted on when `fit_on` is not set and there are several.
pub const DEFAULT_FIT_ON: &str = "train";

/// The index of the input to fit on: the one named `fit_on` when set; otherwise the only input;
/// otherwise the one named `train`.
///
/// No input may be named [`FITTED`], because its output would collide with the fitted
/// parameters' table.
pub fn fit_index(names: &[&str], fit_on: Option<&str>) -> Result<usize, StepError> {
    if names.is_empty() {
        return Err(StepError::InvalidInput(
            "at least one input table is needed".to_string(),
        ));
    }
    if names.contains(&FITTED) {
        return Err(StepError::InvalidInput(format!(
            "an input may not be named `{FITTED}`: the output of that name holds the fitted parameters"
        )));
    }
    let listed = names.join(", ");
    match fit_on {
        Some(wanted) => names
            .iter()
            .position(|name| *name == wanted)
            .ok_or_else(|| {
                StepError::InvalidConfig(format!(
                    "field `fit_on`: no input is named `{wanted}` (inputs: {listed})"
                ))
            }),
        None if names.len() == 1 => Ok(0),
        None => names
            .iter()
            .position(|name| *name == DEFAULT_FIT_ON)
            .ok_or_else(|| {
                StepError::InvalidConfig(format!(
                    "field `fit_on`: not set, and no input is named `{DEFAULT_FIT_ON}` \
                     (inputs: {listed}); name the input to fit on"
                ))
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_input_is_fitted_on_whatever_its_name() {
        assert_eq!(fit_index(&["data"], None).unwrap(), 0);
    }

    #[test]
    fn several_inputs_fit_on_train_by_default() {
        assert_eq!(fit_index(&["test", "train"], None).unwrap(), 1);
    }

    #[test]
    fn fit_on_names_the_input() {
        assert_eq!(fit_index(&["train", "test"], Some("test")).unwrap(), 1);
        assert_eq!(fit_index(&["data"], Some("data")).unwrap(), 0);
    }

    #[test]
    fn a_missing_fit_input_is_a_config_error_listing_the_inputs() {
        let Err(StepError::InvalidConfig(message)) = fit_index(&["a", "b"], Some("train")) else {
            panic!("an unknown fit_on is a config error");
        };
        assert_eq!(
            message,
            "field `fit_on`: no input is named `train` (inputs: a, b)"
        );
        let Err(StepError::InvalidConfig(message)) = fit_index(&["a", "b"], None) else {
            panic!("several inputs without `train` need fit_on");
        };
        assert!(message.starts_with("field `fit_on`: not set"), "{message}");
        assert!(message.contains("(inputs: a, b)"), "{message}");
    }

    #[test]
    fn no_input_or_an_input_named_fitted_is_an_input_error() {
        assert!(matches!(
            fit_index(&[], None),
            Err(StepError::InvalidInput(_))
        ));
        let Err(StepError::InvalidInput(message)) = fit_index(&["train", "fitted"], None) else {
            panic!("`fitted` would collide with the parameters' output");
        };
        assert!(message.contains("`fitted`"), "{message}");
    }
}
