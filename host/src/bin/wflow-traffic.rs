//! `wflow-traffic`: live traffic for a served model, for demos and tests of the closed loop.
//!
//! Sends the rows of a labelled CSV file (in a seeded random order) to a model over the Open
//! Inference Protocol, one row per request with an `id`, and sends each row's true label back
//! as feedback, as a production system whose ground truth arrives later would. A model that
//! takes one feature tensor gets the row's numbers; one served with its pipeline gets the row's
//! raw columns, one input each, as its metadata lists them (text, and nulls where the file has
//! them). Partway through (`--shift-after`), the traffic shifts: every numeric value is
//! multiplied by `--scale`, like sensors recalibrated upstream. Prints a line per `--every`
//! requests: which versions answered and how often they were right.
//!
//! ```sh
//! wflow-traffic --url http://127.0.0.1:8080 --model cancer-live \
//!     --data workflows/data/breast_cancer.csv --target malignant --requests 3000 --shift-after 600
//! ```

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "wflow-traffic",
    version,
    about = "Send live, shifting traffic with feedback to a served model"
)]
struct Args {
    /// The server (`wflow serve` or `wflow daemon`).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The served model's name.
    #[arg(long)]
    model: String,
    /// A labelled CSV file with the model's features and its target.
    #[arg(long)]
    data: PathBuf,
    /// The target column (sent back as feedback, not as a feature).
    #[arg(long)]
    target: String,
    /// Requests to send.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Requests before the traffic shifts (none: never).
    #[arg(long)]
    shift_after: Option<usize>,
    /// Factor every feature is multiplied by once the traffic has shifted.
    #[arg(long, default_value_t = 1.5)]
    scale: f64,
    /// Send no feedback.
    #[arg(long)]
    no_feedback: bool,
    /// Seed of the row order.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Requests per progress line.
    #[arg(long, default_value_t = 500)]
    every: usize,
    /// Requests per second at most (0: as fast as the server answers).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// A prefix for request ids, so several runs against one server do not collide.
    #[arg(long, default_value = "t")]
    id_prefix: String,
    /// The server's feedback token (or its admin token), sent with every request: feedback
    /// needs it, and only traffic that carries it counts toward rollouts and retraining.
    #[arg(long, env = "WFLOW_FEEDBACK_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A file holding the token (a daemon writes its own to `.wflow/feedback.token`).
    #[arg(long, conflicts_with = "token")]
    token_file: Option<PathBuf>,
}

/// One keep-alive HTTP/1.1 connection.
struct Connection {
    reader: BufReader<TcpStream>,
    host: String,
    /// The `authorization` header line, when a token is sent.
    authorization: String,
}

impl Connection {
    fn open(address: &str, token: Option<&str>) -> Result<Connection, String> {
        let stream = TcpStream::connect(address)
            .map_err(|err| format!("cannot connect to {address}: {err}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        Ok(Connection {
            reader: BufReader::new(stream),
            host: address.to_string(),
            authorization: token
                .map(|token| format!("authorization: Bearer {token}\r\n"))
                .unwrap_or_default(),
        })
    }

    fn post(&mut self, path: &str, body: &str) -> Result<(u16, serde_json::Value), String> {
        let request = format!(
            "POST {path} HTTP/1.1\r\nhost: {}\r\n{}content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            self.host,
            self.authorization,
            body.len()
        );
        self.reader
            .get_mut()
            .write_all(request.as_bytes())
            .map_err(|e| format!("sending: {e}"))?;
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .map_err(|e| format!("reading: {e}"))?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("no HTTP status in {line:?}"))?;
        let mut length = 0;
        loop {
            line.clear();
            self.reader
                .read_line(&mut line)
                .map_err(|e| format!("reading: {e}"))?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        self.reader
            .read_exact(&mut body)
            .map_err(|e| format!("reading: {e}"))?;
        Ok((status, serde_json::from_slice(&body).unwrap_or_default()))
    }
}

/// What the model takes, from its metadata.
enum Takes {
    /// One `[batch, width]` feature tensor of this name.
    Tensor { name: String, width: usize },
    /// One `[batch]` input per raw column: name and datatype.
    Columns(Vec<(String, String)>),
}

/// The model's inputs, from the server's metadata.
fn inputs_of(connection: &mut Connection, model: &str) -> Result<Takes, String> {
    // Metadata is a GET; a POST-only client is enough for everything else.
    let request = format!(
        "GET /v2/models/{model} HTTP/1.1\r\nhost: {}\r\ncontent-length: 0\r\n\r\n",
        connection.host
    );
    connection
        .reader
        .get_mut()
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    connection
        .reader
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let ok = line.contains(" 200 ");
    let mut length = 0;
    loop {
        line.clear();
        connection
            .reader
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    connection
        .reader
        .read_exact(&mut body)
        .map_err(|e| e.to_string())?;
    let meta: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if !ok {
        return Err(format!("model `{model}` is not served: {meta}"));
    }
    let inputs = meta["inputs"].as_array().cloned().unwrap_or_default();
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    match inputs.as_slice() {
        [only] if only["shape"].as_array().is_some_and(|s| s.len() == 2) => Ok(Takes::Tensor {
            name: text(&only["name"]),
            width: only["shape"][1].as_i64().unwrap_or(0) as usize,
        }),
        _ => Ok(Takes::Columns(
            inputs
                .iter()
                .map(|i| (text(&i["name"]), text(&i["datatype"])))
                .collect(),
        )),
    }
}

/// A CSV cell as a JSON value of `datatype` (`null` for the null spellings of CSV files), with
/// numbers multiplied by `scale`.
fn cell(value: &str, datatype: &str, scale: f64) -> Result<serde_json::Value, String> {
    let value = value.trim();
    if wflow::table::csv::is_null(value) {
        return Ok(serde_json::Value::Null);
    }
    let number = || {
        value
            .parse::<f64>()
            .map_err(|_| format!("`{value}` is not a number"))
    };
    Ok(match datatype {
        "BYTES" => serde_json::json!(value),
        "BOOL" => serde_json::json!(value.eq_ignore_ascii_case("true")),
        "INT64" | "INT32" => serde_json::json!((number()? * scale).round() as i64),
        _ => serde_json::json!(number()? * scale),
    })
}

/// A seeded permutation (SplitMix64 + Fisher-Yates).
fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

fn run(args: &Args) -> Result<(), String> {
    let address = args
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut reader = csv::Reader::from_path(&args.data)
        .map_err(|err| format!("{}: {err}", args.data.display()))?;
    let header: Vec<String> = reader
        .headers()
        .map_err(|err| format!("{}: {err}", args.data.display()))?
        .iter()
        .map(str::to_string)
        .collect();
    let target = header
        .iter()
        .position(|c| *c == args.target)
        .ok_or_else(|| format!("{} has no column `{}`", args.data.display(), args.target))?;
    let token = match (&args.token, &args.token_file) {
        (Some(token), _) => Some(token.clone()),
        (None, Some(file)) => Some(
            std::fs::read_to_string(file)
                .map_err(|err| format!("cannot read the token file {}: {err}", file.display()))?
                .trim()
                .to_string(),
        ),
        (None, None) => None,
    };
    let mut connection = Connection::open(&address, token.as_deref())?;
    let takes = inputs_of(&mut connection, &args.model)?;
    // The file's columns each request sends, in the order the model lists them: every column
    // but the target for a feature tensor, the raw columns by name otherwise.
    let sent: Vec<(usize, String)> = match &takes {
        Takes::Tensor { .. } => (0..header.len())
            .filter(|&i| i != target)
            .map(|i| (i, "FP32".to_string()))
            .collect(),
        Takes::Columns(columns) => columns
            .iter()
            .map(|(name, datatype)| {
                header
                    .iter()
                    .position(|h| h == name)
                    .map(|i| (i, datatype.clone()))
                    .ok_or_else(|| {
                        format!(
                            "model `{}` takes column `{name}`, which {} does not have",
                            args.model,
                            args.data.display()
                        )
                    })
            })
            .collect::<Result<_, _>>()?,
    };
    let mut rows: Vec<(Vec<String>, String)> = Vec::new();
    for (line, record) in reader.records().enumerate() {
        let record = record.map_err(|err| format!("{}: {err}", args.data.display()))?;
        let cells: Vec<String> = sent.iter().map(|(i, _)| record[*i].to_string()).collect();
        // Every cell is checked once here, so a bad file stops before any request.
        for ((index, datatype), value) in sent.iter().zip(&cells) {
            cell(value, datatype, 1.0).map_err(|why| {
                format!(
                    "{} line {}: `{}`: {why}",
                    args.data.display(),
                    line + 2,
                    header[*index]
                )
            })?;
        }
        rows.push((cells, record[target].trim().to_string()));
    }
    if rows.is_empty() {
        return Err(format!("{} has no rows", args.data.display()));
    }
    if let Takes::Tensor { width, .. } = &takes
        && *width != sent.len()
    {
        return Err(format!(
            "model `{}` takes {width} features; {} has {}",
            args.model,
            args.data.display(),
            sent.len()
        ));
    }
    let infer = format!("/v2/models/{}/infer", args.model);
    let feedback = format!("/v2/models/{}/feedback", args.model);
    let mut order = Vec::new();
    while order.len() < args.requests {
        order.extend(shuffled(rows.len(), args.seed + order.len() as u64));
    }
    let started = Instant::now();
    let mut window: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut failed = 0u64;
    for (i, &row) in order.iter().take(args.requests).enumerate() {
        if args.rate > 0 {
            let due = started + Duration::from_secs_f64(i as f64 / args.rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let shifted = args.shift_after.is_some_and(|after| i >= after);
        let (cells, truth) = &rows[row];
        let scale = if shifted { args.scale } else { 1.0 };
        let values: Vec<serde_json::Value> = sent
            .iter()
            .zip(cells)
            .map(|((_, datatype), value)| cell(value, datatype, scale))
            .collect::<Result<_, _>>()?;
        let inputs = match &takes {
            Takes::Tensor { name, width } => serde_json::json!([
                { "name": name, "shape": [1, width], "datatype": "FP32", "data": values }
            ]),
            Takes::Columns(columns) => serde_json::Value::Array(
                columns
                    .iter()
                    .zip(values)
                    .map(|((name, datatype), value)| {
                        serde_json::json!({ "name": name, "shape": [1], "datatype": datatype, "data": [value] })
                    })
                    .collect(),
            ),
        };
        let id = format!("{}{i}", args.id_prefix);
        let body = serde_json::json!({
            "id": id,
            "inputs": inputs,
            "outputs": [{ "name": "label" }],
        });
        let (status, answer) = connection.post(&infer, &body.to_string())?;
        if status != 200 {
            failed += 1;
        } else {
            let version = answer["model_version"].as_str().unwrap_or("?").to_string();
            let label = answer["outputs"][0]["data"][0].as_str().unwrap_or_default();
            let entry = window.entry(version).or_default();
            entry.0 += 1;
            entry.1 += u64::from(label == truth);
            if !args.no_feedback {
                let (status, answer) = connection.post(
                    &feedback,
                    &serde_json::json!({ "id": id, "truth": [truth] }).to_string(),
                )?;
                if status != 200 && status != 404 {
                    return Err(format!("feedback refused ({status}): {answer}"));
                }
            }
        }
        if (i + 1) % args.every == 0 || i + 1 == args.requests {
            let versions: Vec<String> = window
                .iter()
                .map(|(v, (n, right))| {
                    format!("v{v} {n} ({:.0}% right)", *right as f64 * 100.0 / *n as f64)
                })
                .collect();
            println!(
                "{:>6} requests{} {:>6.1} s  {}{}",
                i + 1,
                if shifted { " (shifted)" } else { "          " },
                started.elapsed().as_secs_f64(),
                versions.join(", "),
                if failed > 0 {
                    format!(", {failed} failed")
                } else {
                    String::new()
                }
            );
            window.clear();
            failed = 0;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(2)
        }
    }
}
