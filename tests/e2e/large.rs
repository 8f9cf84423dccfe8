//! Large tables: plugins see host tables through resource handles and copy in only the columns
//! they read, so a 1,000,000 x 20 table is processed under a 512 MiB memory cap and reading 2
//! of its 20 columns costs 2 columns of memory.

use std::time::Duration;

use wflow::plugin::{Call, Capabilities, Failure, Limits, Output};
use wflow::table::{Column, Table, Values};

use crate::support;

const ROWS: usize = 1_000_000;
const COLUMNS: usize = 20;

fn wide_table(shift: f64) -> Table {
    let columns = (0..COLUMNS)
        .map(|j| {
            let values = (0..ROWS)
                .map(|i| ((i * (j + 7)) % 1009) as f64 + shift)
                .collect();
            Column::new(format!("f{j}"), Values::Float(values))
        })
        .collect();
    Table::new(columns).unwrap()
}

fn drift_check(config: serde_json::Value, memory: u64, shift: f64) -> Result<Output, Failure> {
    let (runtime, _dir) = support::runtime();
    let plugin =
        support::block_on(wflow::engine::plan::load_plugin(&runtime, "psi-drift")).unwrap();
    let call = Call::Check {
        reference: wide_table(0.0),
        current: wide_table(shift),
        config: config.to_string(),
    };
    let limits = Limits {
        memory,
        timeout: Duration::from_secs(300),
        max_output: 64 << 20,
    };
    support::block_on(runtime.call(&plugin, call, &limits, &Capabilities::default())).outcome
}

#[test]
fn a_million_by_twenty_table_is_processed_under_512_mib() {
    // 20 columns of 1,000,000 floats are 160 MB per table, 320 MB for both: more than fits
    // beside the plugin's own work if they were copied in whole.
    let outcome = drift_check(serde_json::json!({}), 512 << 20, 500.0);
    let Ok(Output::Drift(drift)) = outcome else {
        panic!("{outcome:?}")
    };
    let features: std::collections::BTreeSet<_> =
        drift.features.iter().map(|f| f.feature.clone()).collect();
    assert_eq!(features.len(), COLUMNS);
    assert!(drift.drifted, "a shift of half the range is drift");
}

#[test]
fn reading_two_columns_costs_two_columns() {
    // Two columns of both tables are 32 MB; all twenty would be 320 MB, far over the 96 MiB cap.
    let config = serde_json::json!({ "features": ["f3", "f17"] });
    let outcome = drift_check(config, 96 << 20, 0.0);
    let Ok(Output::Drift(drift)) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        drift
            .features
            .iter()
            .all(|f| f.feature == "f3" || f.feature == "f17")
    );
    assert!(!drift.drifted);
}
