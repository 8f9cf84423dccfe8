//! Fuzz targets for every decoder of outside bytes: the Open Inference Protocol's JSON and
//! binary tensors, MLflow's `/invocations` bodies (JSON and CSV), CSV files, workflow and policy
//! TOML, cron expressions, plugin references, and ONNX models with their metadata.
//!
//! Each target mutates real inputs (flipped and inserted bytes, deleted and repeated ranges,
//! tokens that tend to break parsers) or makes random bytes, and checks that the decoder never
//! panics and that what it accepts costs memory in proportion to what was sent. The number of
//! cases per target is `WFLOW_FUZZ_CASES` (5,000 unless set), which CI runs with every
//! `cargo test`; a longer run is `WFLOW_FUZZ_CASES=100000 cargo test -p wflow
//! --test fuzz --release`. A failure prints the smallest input proptest found.

use std::cell::Cell;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use wflow::pipeline::RawInput;
use wflow::table::ColumnType;

/// Cases per target.
fn cases() -> u32 {
    std::env::var("WFLOW_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5000)
}

thread_local! {
    /// Whether a panic on this thread is expected and caught (inside tract, say), so the hook
    /// should not print it.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Panics caught on purpose are not printed; every other one is, as usual.
fn quiet_hook() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                default(info);
            }
        }));
    });
}

/// Runs `work` with the panics it catches itself kept quiet.
fn quietly<T>(work: impl FnOnce() -> T) -> T {
    QUIET.with(|q| q.set(true));
    let out = work();
    QUIET.with(|q| q.set(false));
    out
}

/// Strings that tend to break parsers, inserted at random places.
const TOKENS: &[&[u8]] = &[
    b"[",
    b"]",
    b"{",
    b"}",
    b"\"",
    b",",
    b":",
    b"\n",
    b"\r\n",
    b"\\",
    b"null",
    b"true",
    b"-1",
    b"0",
    b"1e308",
    b"-1e309",
    b"18446744073709551616",
    b"9223372036854775807",
    b"4294967296",
    b"NaN",
    b"\"\"",
    b"[[[[[[[[",
    b"]]]]",
    b"\xff\xfe",
    b"\x00",
    b"=",
    b"#",
    b"'''",
    b"\"\"\"",
    b"*",
    b"/",
    b"-",
    b"@",
    b"sun",
    b"7",
    b"60",
];

/// One change to an input.
#[derive(Clone, Debug)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Token(usize, usize),
    Delete(usize, usize),
    Repeat(usize, usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Edit::Flip(at, byte)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, bytes)| Edit::Insert(at, bytes)),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(at, token)| Edit::Token(at, token)),
        (any::<usize>(), 1usize..64).prop_map(|(at, len)| Edit::Delete(at, len)),
        (any::<usize>(), 1usize..32, 1usize..64)
            .prop_map(|(at, len, times)| Edit::Repeat(at, len, times)),
    ]
}

fn apply(seed: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for edit in edits {
        let at = |i: usize, len: usize| if len == 0 { 0 } else { i % (len + 1) };
        match edit {
            Edit::Flip(i, byte) if !bytes.is_empty() => {
                let i = i % bytes.len();
                bytes[i] ^= byte | 1;
            }
            Edit::Flip(..) => {}
            Edit::Insert(i, new) => {
                let i = at(*i, bytes.len());
                bytes.splice(i..i, new.iter().copied());
            }
            Edit::Token(i, token) => {
                let i = at(*i, bytes.len());
                bytes.splice(i..i, TOKENS[*token].iter().copied());
            }
            Edit::Delete(i, len) => {
                let i = at(*i, bytes.len());
                let end = (i + len).min(bytes.len());
                bytes.drain(i..end);
            }
            Edit::Repeat(i, len, times) => {
                let i = at(*i, bytes.len());
                let end = (i + len).min(bytes.len());
                let piece = bytes[i..end].to_vec();
                for _ in 0..*times {
                    bytes.splice(end..end, piece.iter().copied());
                }
            }
        }
    }
    bytes
}

/// Inputs made from `seeds`: mutated (mostly), or random bytes.
fn inputs(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let count = seeds.len();
    prop_oneof![
        8 => (0..count, prop::collection::vec(edit(), 0..6))
            .prop_map(move |(i, edits)| apply(&seeds[i], &edits)),
        1 => prop::collection::vec(any::<u8>(), 0..256),
    ]
}

/// Runs `check` on `cases()` inputs made from `seeds`; a failure names the smallest input.
fn fuzz(name: &str, seeds: Vec<Vec<u8>>, check: impl Fn(&[u8]) -> Result<(), String>) {
    quiet_hook();
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let outcome = runner.run(&inputs(seeds), |bytes| {
        check(&bytes).map_err(|why| {
            proptest::test_runner::TestCaseError::fail(format!(
                "{why}: input {:?}",
                String::from_utf8_lossy(&bytes)
            ))
        })
    });
    if let Err(err) = outcome {
        panic!("fuzz target {name}: {err}");
    }
}

fn seeds(texts: &[&str]) -> Vec<Vec<u8>> {
    texts.iter().map(|t| t.as_bytes().to_vec()).collect()
}

#[test]
fn open_inference_protocol_requests() {
    let binary_header = r#"{"inputs":[{"name":"x","shape":[2],"datatype":"BYTES","parameters":{"binary_data_size":10}}]}"#;
    let mut binary = binary_header.as_bytes().to_vec();
    binary.extend_from_slice(&[1, 0, 0, 0, b'a', 1, 0, 0, 0, b'b']);
    let json = seeds(&[
        r#"{"id":"r1","inputs":[{"name":"features","shape":[2,2],"datatype":"FP32","data":[[1,2],[3,4.5]]}],"outputs":[{"name":"label","parameters":{"binary_data":true}}],"parameters":{"routing_key":"u1"}}"#,
        r#"{"inputs":[{"name":"c","shape":[3],"datatype":"BYTES","data":["a",null,"c"]},{"name":"n","shape":[3,1],"datatype":"INT64","data":[1,-2,9223372036854775807]}]}"#,
        r#"{"inputs":[{"name":"b","shape":[2],"datatype":"BOOL","data":[true,false]},{"name":"d","shape":[1],"datatype":"FP64","data":[1e300]}]}"#,
    ]);
    let header_length = binary_header.len().to_string();
    fuzz("oip-json", json, |body| check_request(None, body));
    fuzz("oip-binary", vec![binary], |body| {
        check_request(Some(&header_length), body)
    });
}

/// A decoded request holds no more elements than the body has bytes, and every tensor has as
/// many elements as its shape says.
fn check_request(header_length: Option<&str>, body: &[u8]) -> Result<(), String> {
    if let Ok((_, tensors)) = wflow::serve::protocol::decode_request(header_length, body) {
        let mut elements = 0usize;
        for tensor in &tensors {
            let expected = wflow::serve::protocol::element_count(&tensor.shape);
            if expected != Some(tensor.data.len()) {
                return Err(format!(
                    "tensor {} has shape {:?} and {} elements",
                    tensor.name,
                    tensor.shape,
                    tensor.data.len()
                ));
            }
            elements += tensor.data.len();
        }
        if elements > body.len() {
            return Err(format!("{elements} elements from {} bytes", body.len()));
        }
    }
    Ok(())
}

fn raw_inputs() -> Vec<RawInput> {
    vec![
        RawInput {
            name: "island".into(),
            kind: ColumnType::Text,
            nullable: true,
        },
        RawInput {
            name: "mass".into(),
            kind: ColumnType::Float,
            nullable: true,
        },
        RawInput {
            name: "rings".into(),
            kind: ColumnType::Integer,
            nullable: false,
        },
        RawInput {
            name: "flag".into(),
            kind: ColumnType::Boolean,
            nullable: true,
        },
    ]
}

/// A table read from `len` bytes has at most about one cell per byte.
fn check_cells(table: &wflow::table::Table, len: usize) -> Result<(), String> {
    let cells = table.row_count() * table.columns().len();
    if cells > 2 * len + 2 {
        return Err(format!("{cells} cells from {len} bytes"));
    }
    Ok(())
}

#[test]
fn mlflow_scoring_bodies() {
    let inputs = raw_inputs();
    let json = seeds(&[
        r#"{"dataframe_split":{"columns":["island","mass","rings","flag"],"data":[["Biscoe",4200,3,true],["Dream",null,4,null]]}}"#,
        r#"{"dataframe_records":[{"island":"Biscoe","mass":4200,"rings":3,"flag":true},{"island":"Dream","mass":null,"rings":4.0,"flag":false}]}"#,
        r#"{"inputs":{"island":["Biscoe"],"mass":[1.5],"rings":[2],"flag":[true]},"params":{"probabilities":true}}"#,
        r#"{"instances":[{"island":"Torgersen","mass":3800,"rings":1,"flag":null}]}"#,
    ]);
    fuzz(
        "invocations-json",
        json,
        |body| match wflow::serve::scoring::from_json(&inputs, body) {
            Ok((table, _)) => check_cells(&table, body.len()),
            Err(message) if message.is_empty() => Err("an empty message".into()),
            Err(_) => Ok(()),
        },
    );
    let csv = seeds(&["island,mass,rings,flag\nBiscoe,4200,3,true\n\"Dre\"\"am\",NA,4,\n"]);
    fuzz(
        "invocations-csv",
        csv,
        |body| match wflow::serve::scoring::from_csv(&inputs, body) {
            Ok((table, _)) => check_cells(&table, body.len()),
            Err(_) => Ok(()),
        },
    );
}

#[test]
fn csv_files() {
    let files = seeds(&[
        "a,b,c,d\n1,1.5,x,true\n2,,y,false\nNA,3,,TRUE\n",
        "id,text\n1,\"quoted, with \"\"quotes\"\"\nand a line\"\n2,plain\n",
        "only\n",
    ]);
    fuzz("csv", files, |body| {
        match wflow::table::csv::read_from(
            std::path::Path::new("fuzz.csv"),
            body,
            &Default::default(),
        ) {
            Ok(table) => check_cells(&table, body.len()),
            Err(err) if err.to_string().starts_with("fuzz.csv") => Ok(()),
            Err(err) => Err(format!("an error that does not name the file: {err}")),
        }
    });
}

#[test]
fn workflow_files() {
    let mut files = Vec::new();
    for dir in [
        "../workflows",
        "tests/data/workflow/valid",
        "tests/data/workflow/invalid",
    ] {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                files.push(std::fs::read(path).unwrap());
            }
        }
    }
    assert!(files.len() > 10);
    fuzz("workflow-toml", files, |bytes| {
        let text = String::from_utf8_lossy(bytes);
        match wflow::workflow::parse(std::path::Path::new("fuzz.toml"), &text) {
            Ok(_) => Ok(()),
            Err(diagnostics) if diagnostics.to_string().is_empty() => {
                Err("refused without a diagnostic".into())
            }
            Err(_) => Ok(()),
        }
    });
}

#[test]
fn rollout_policies_cron_expressions_and_plugin_references() {
    fuzz(
        "policy-toml",
        seeds(&[
            "[rollout]\nstrategy = \"canary\"\ncanary_steps = [10, 50]\nmin_duration = \"1m\"\n[rollback]\nmin_requests = 20\n[monitor]\ndrift = { primary = \"ks\" }\n[models.bc.rollout]\nstrategy = \"ab\"\n",
        ]),
        |bytes| {
            let _ = wflow::serve::policy::Policy::parse(&String::from_utf8_lossy(bytes));
            Ok(())
        },
    );
    let zone: chrono_tz::Tz = "Europe/Paris".parse().unwrap();
    let after = chrono::DateTime::parse_from_rfc3339("2025-03-30T00:30:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    fuzz(
        "cron",
        seeds(&[
            "30 2 * * 1-5",
            "*/15 9-17 1,15 jan-jun mon-fri",
            "0 0 * * fri-sun",
            "@weekly",
            "*/5 * * * * *",
        ]),
        |bytes| {
            if let Ok(cron) = wflow::workflow::cron::parse(&String::from_utf8_lossy(bytes)) {
                // An accepted schedule's next slot is found, or none within its horizon.
                if let Some(next) = cron.next_after(after, zone)
                    && next <= after
                {
                    return Err(format!("{next} is not after {after}"));
                }
            }
            Ok(())
        },
    );
    fuzz(
        "plugin-reference",
        seeds(&[
            "oci://registry.example:5000/team/plugin:1.2@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "oci://localhost/plugin",
        ]),
        |bytes| {
            let _ = wflow::oci::reference::Reference::parse(&String::from_utf8_lossy(bytes));
            Ok(())
        },
    );
}

#[test]
fn onnx_models_and_their_metadata() {
    use wflow_onnx::{Dim, ModelBuilder};
    let mut builder = ModelBuilder::new("fuzz");
    builder
        .input_f32("features", &[Dim::named("N"), Dim::from(2)])
        .output_f32("probabilities", &[Dim::named("N"), Dim::from(1)])
        .initializer_f32("w", &[2, 1], vec![1.0, -1.0])
        .node("MatMul", &["features", "w"], &["z"], Vec::new())
        .node("Sigmoid", &["z"], &["probabilities"], Vec::new())
        .metadata("wflow.features", r#"["a","b"]"#)
        .metadata("wflow.class_labels", r#"["0","1"]"#)
        .metadata("wflow.task", "classification");
    let mut models = vec![builder.to_bytes().unwrap()];
    let oversized =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/onnx/oversized");
    for name in ["constant_of_shape", "broadcast_add", "concat_repeated_60"] {
        models.push(std::fs::read(oversized.join(format!("{name}.onnx"))).unwrap());
    }
    let limits = wflow::inference::budget::Limits::within(16 << 20);
    fuzz("onnx", models, |bytes| {
        // Loading never panics out of the host (tract's own panics are caught and reported),
        // and never allocates beyond the limits (this test would run out of memory).
        quietly(|| {
            let _ = wflow::inference::Session::load_within(bytes, None, limits);
            let _ = wflow::serve::model::ServedModel::load("m", "1", "fuzz".into(), bytes);
        });
        if let Ok((_, proto)) = wflow::inference::parse(bytes, &limits) {
            let _ = wflow::inference::read_metadata(&proto);
        }
        Ok(())
    });
}
