//! `wflow predict NAME[@ALIAS|@VERSION] --data FILE.csv [-o OUT.csv]`: batch scoring of raw
//! rows through a registered version's pipeline and model, exactly as `wflow serve` answers
//! them, streamed a chunk at a time, with progress on a terminal.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;

use super::{Cli, open_store};
use crate::serve::batch::score_csv;
use crate::serve::model::ServedModel;
use crate::store::registry::ModelRef;

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// The registered model: NAME (its `champion`), NAME@ALIAS or NAME@VERSION.
    #[arg(value_name = "NAME[@ALIAS]")]
    model: String,
    /// The CSV file of raw rows (a header row; the columns the model takes, in any order; other
    /// columns are skipped).
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
    /// Where to write the predictions (CSV) [default: standard output].
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// An input column to copy into the output before the predictions (e.g. an id); repeatable.
    #[arg(long, value_name = "COLUMN")]
    keep: Vec<String>,
}

pub fn run(cli: &Cli, args: &PredictArgs) -> anyhow::Result<u8> {
    let reference = match ModelRef::parse(&args.model)? {
        ModelRef::Latest(name) => ModelRef::Alias(name, crate::serve::CHAMPION.into()),
        other => other,
    };
    // The store is held only while the version is read, so a daemon can take it back.
    let (version, onnx) = {
        let store = open_store(cli)?;
        let version = store.resolve_model(&reference)?;
        let onnx = store.artifacts().get(&version.onnx).with_context(|| {
            format!(
                "reading the ONNX file of {} v{}",
                version.name, version.version
            )
        })?;
        (version, onnx)
    };
    let model = ServedModel::from_version(
        &version,
        &onnx,
        format!("{} v{}", version.name, version.version),
    )
    .with_context(|| format!("loading {} v{}", version.name, version.version))?;
    let file = std::fs::File::open(&args.data)
        .with_context(|| format!("cannot read {}", args.data.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let input = std::io::BufReader::with_capacity(1 << 20, file);
    let output: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot write {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let started = Instant::now();
    let terminal = std::io::stderr().is_terminal();
    let mut shown = Instant::now();
    let progress = |rows: u64, bytes: u64| {
        if terminal && shown.elapsed() >= Duration::from_millis(200) {
            shown = Instant::now();
            let percent = (bytes * 100).checked_div(size).unwrap_or(100);
            err!(
                "\rscoring {}: {rows} rows ({percent}%)",
                args.data.display()
            );
        }
    };
    let scored = score_csv(&model, &args.data, input, output, &args.keep, progress)?;
    let took = started.elapsed();
    if terminal {
        err!("\r\x1b[2K");
    }
    let rate = scored.rows as f64 / took.as_secs_f64().max(1e-9);
    errln!(
        "scored {} rows of {} with {} v{}{} in {} ({:.0} rows/s){}",
        scored.rows,
        args.data.display(),
        version.name,
        version.version,
        if model.takes_raw {
            " (raw rows through its pipeline)"
        } else {
            ""
        },
        humantime::format_duration(Duration::from_millis(took.as_millis() as u64)),
        rate,
        args.output
            .as_ref()
            .map(|p| format!(" -> {}", p.display()))
            .unwrap_or_default()
    );
    Ok(0)
}
