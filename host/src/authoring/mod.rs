//! Writing plugins: `wflow plugin new` creates a ready project in Rust, Python or JavaScript,
//! and `wflow plugin build` turns one into a component.
//!
//! A project is a folder with `wflow-plugin.toml` (name, kind, language), the WIT of the
//! contract in `wit/`, the example source of its kind, a README, and `workflow.toml` running the
//! built plugin on `data/sample.csv` (the project's test: `wflow run workflow.toml`).
//!
//! Building uses each language's component tool: cargo (`wasm32-wasip2`, installed with rustup
//! when missing), componentize-py, componentize-js. The last two are installed at pinned
//! versions from the package indexes into `~/.cache/wflow/tools` (`WFLOW_TOOLS_DIR`) the first
//! time; an install goes to a temporary folder renamed into place, so concurrent builds never
//! see half a tool. When python3 or node is missing, the error says what to install.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::plugin::{StepKind, kind_name};

/// The componentize-py release `build` installs.
pub const COMPONENTIZE_PY: &str = "0.25.1";
/// The componentize-js release `build` installs.
pub const COMPONENTIZE_JS: &str = "0.23.0";

const WIT_TYPES: &str = include_str!("../../../wit/types.wit");
const WIT_WORLDS: &str = include_str!("../../../wit/worlds.wit");
const SAMPLE: &str = include_str!("../../../workflows/data/iris.csv");
const JS_BUILD: &str = include_str!("build.mjs");

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Rust,
    Python,
    #[serde(rename = "js")]
    JavaScript,
}

impl Language {
    pub fn parse(text: &str) -> Result<Language, String> {
        match text {
            "rust" | "rs" => Ok(Language::Rust),
            "python" | "py" => Ok(Language::Python),
            "js" | "javascript" => Ok(Language::JavaScript),
            other => Err(format!(
                "unknown language {other:?}: expected rust, python or js"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Language::Rust => "Rust",
            Language::Python => "Python",
            Language::JavaScript => "JavaScript",
        }
    }

    /// The example's source file in the project.
    fn source(self) -> &'static str {
        match self {
            Language::Rust => "src/lib.rs",
            Language::Python => "app.py",
            Language::JavaScript => "plugin.js",
        }
    }
}

pub fn parse_kind(text: &str) -> Result<StepKind, String> {
    KINDS
        .iter()
        .find(|(name, _)| *name == text)
        .map(|(_, kind)| *kind)
        .ok_or_else(|| {
            format!(
                "unknown kind {text:?}: expected {}",
                KINDS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            )
        })
}

const KINDS: &[(&str, StepKind)] = &[
    ("validator", StepKind::Validator),
    ("transformer", StepKind::Transformer),
    ("trainer", StepKind::Trainer),
    ("evaluator", StepKind::Evaluator),
    ("deployer", StepKind::Deployer),
    ("drift-check", StepKind::DriftCheck),
];

/// `wflow-plugin.toml`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub plugin: ManifestPlugin,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ManifestPlugin {
    pub name: String,
    /// The WIT world: the step kind.
    pub kind: String,
    pub language: Language,
    /// The source: the Python module's file, the JavaScript entry module (Rust: the crate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The folder of the WIT contract, relative to the project [default: wit].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wit: Option<String>,
}

/// The example source of a kind in a language, with placeholders.
fn template(kind: StepKind, language: Language) -> &'static str {
    use Language::*;
    use StepKind::*;
    match (language, kind) {
        (Python, Validator) => include_str!("templates/python/validator.py"),
        (Python, Transformer) => include_str!("templates/python/transformer.py"),
        (Python, Evaluator) => include_str!("templates/python/evaluator.py"),
        (Python, Deployer) => include_str!("templates/python/deployer.py"),
        (Python, DriftCheck) => include_str!("templates/python/drift-check.py"),
        (Python, Trainer) => include_str!("templates/python/trainer.py"),
        (JavaScript, Validator) => include_str!("templates/js/validator.js"),
        (JavaScript, Transformer) => include_str!("templates/js/transformer.js"),
        (JavaScript, Evaluator) => include_str!("templates/js/evaluator.js"),
        (JavaScript, Deployer) => include_str!("templates/js/deployer.js"),
        (JavaScript, DriftCheck) => include_str!("templates/js/drift-check.js"),
        (JavaScript, Trainer) => include_str!("templates/js/trainer.js"),
        (Rust, Validator) => include_str!("templates/rust/validator.rs"),
        (Rust, Transformer) => include_str!("templates/rust/transformer.rs"),
        (Rust, Evaluator) => include_str!("templates/rust/evaluator.rs"),
        (Rust, Deployer) => include_str!("templates/rust/deployer.rs"),
        (Rust, DriftCheck) => include_str!("templates/rust/drift-check.rs"),
        (Rust, Trainer) => include_str!("templates/rust/trainer.rs"),
    }
}

/// The project's test workflow: the built plugin on the sample data, with the built-in steps
/// its kind needs around it.
fn test_workflow(name: &str, kind: StepKind, language: Language) -> String {
    let uses = format!("build/{name}.wasm");
    let head = format!(
        "# The test of {name}: `wflow plugin build` then `wflow run workflow.toml`.\n\
         [workflow]\nname = \"{name}-test\"\n\n[defaults]\nmemory = \"256MiB\"\ntimeout = \"1m\"\n\n\
         [datasets.sample]\npath = \"data/sample.csv\"\n\n"
    );
    let split = "[steps.split]\nuses = \"train-test-split\"\ninputs = { data = \"sample\" }\n\
                 with = { test_fraction = 0.3, seed = 7, stratify = \"species\" }\n\n";
    let train = "[steps.train]\nuses = \"logistic-regression\"\ninputs = { data = \"split.train\" }\n\
                 target = \"species\"\n\n";
    let body = match kind {
        StepKind::Validator => format!(
            "[steps.check]\nuses = \"{uses}\"\ninputs = {{ data = \"sample\" }}\n\
             with = {{ min_rows = 100, required = [\"species\"] }}\n"
        ),
        StepKind::Transformer => format!(
            "[steps.derive]\nuses = \"{uses}\"\ninputs = {{ data = \"sample\" }}\n\
             with = {{ left = \"petal_length_cm\", right = \"petal_width_cm\", name = \"petal_area\" }}\n\n\
             [steps.check]\nuses = \"schema-check\"\ninputs = {{ data = \"derive.data\" }}\n\
             with = {{ min_rows = 100 }}\n"
        ),
        StepKind::Evaluator => format!(
            "{split}{train}[steps.evaluate]\nuses = \"{uses}\"\n\
             inputs = {{ model = \"train.model\", data = \"split.test\" }}\nwith = {{ min_accuracy = 0.8 }}\n"
        ),
        StepKind::Deployer => format!(
            "{split}{train}[steps.evaluate]\nuses = \"classification-metrics\"\n\
             inputs = {{ model = \"train.model\", data = \"split.test\" }}\n\n\
             [steps.gate]\nuses = \"{uses}\"\ninputs = {{ candidate = \"evaluate.evaluation\" }}\n\
             with = {{ metric = \"accuracy\" }}\n"
        ),
        StepKind::DriftCheck => format!(
            "{split}[steps.drift]\nuses = \"{uses}\"\n\
             inputs = {{ reference = \"split.train\", current = \"split.test\" }}\nwith = {{ threshold = 0.5 }}\n"
        ),
        // The Python and JavaScript trainers classify the species; the Rust one predicts a width.
        StepKind::Trainer if language != Language::Rust => format!(
            "{split}[steps.train]\nuses = \"{uses}\"\ninputs = {{ data = \"split.train\" }}\ntarget = \"species\"\n\n\
             [steps.evaluate]\nuses = \"classification-metrics\"\n\
             inputs = {{ model = \"train.model\", data = \"split.test\" }}\n\
             with = {{ thresholds = {{ accuracy = 0.85 }} }}\n"
        ),
        StepKind::Trainer => format!(
            "[steps.split]\nuses = \"train-test-split\"\ninputs = {{ data = \"sample\" }}\n\
             with = {{ test_fraction = 0.3, seed = 7 }}\n\n\
             [steps.train]\nuses = \"{uses}\"\ninputs = {{ data = \"split.train\" }}\ntarget = \"petal_width_cm\"\n\n\
             [steps.evaluate]\nuses = \"classification-metrics\"\n\
             inputs = {{ model = \"train.model\", data = \"split.test\" }}\n"
        ),
    };
    head + &body
}

fn readme(name: &str, kind: StepKind, language: Language) -> String {
    let source = language.source();
    let tool = match language {
        Language::Rust => {
            "cargo (target wasm32-wasip2, added with rustup when missing)".to_string()
        }
        Language::Python => format!(
            "componentize-py {COMPONENTIZE_PY} (installed into ~/.cache/wflow/tools the first time; needs python3 with pip)"
        ),
        Language::JavaScript => format!(
            "componentize-js {COMPONENTIZE_JS} (installed into ~/.cache/wflow/tools the first time; needs node and npm)"
        ),
    };
    format!(
        "# {name}\n\n\
         A wflow {kind} plugin in {lang}. The code is in `{source}`; `wit/` holds the plugin contract it\n\
         implements (the `{kind}` world of `wflow:plugin`).\n\n\
         ```sh\n\
         wflow plugin build            # -> build/{name}.wasm, with {tool}\n\
         wflow run workflow.toml       # its test: the plugin on data/sample.csv\n\
         wflow plugin inspect build/{name}.wasm\n\
         ```\n\n\
         Use it in a workflow with `uses = \"path/to/build/{name}.wasm\"`, or publish it:\n\
         `wflow plugin sign build/{name}.wasm --key KEY` and\n\
         `wflow plugin push build/{name}.wasm oci://HOST/REPO:0.1.0`.\n\n\
         `describe()` states the configuration's JSON Schema (the host checks every step's `with`\n\
         against it) and the capabilities the plugin needs (none: it sees only what it is given).\n",
        kind = kind_name(kind),
        lang = language.name(),
    )
}

/// Where the checkout's SDK is, for Rust projects: `WFLOW_SDK_PATH`, else the SDK of the source
/// tree this binary was built from.
fn sdk_path() -> Result<PathBuf, String> {
    let path = std::env::var_os("WFLOW_SDK_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk"));
    std::fs::canonicalize(&path).map_err(|_| {
        format!(
            "the Rust SDK (wflow-sdk) is not at {}: set WFLOW_SDK_PATH to the sdk/ folder of a wflow checkout",
            path.display()
        )
    })
}

fn type_name(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Creates the project; returns the files written.
pub fn new_project(
    dir: &Path,
    name: &str,
    kind: StepKind,
    language: Language,
) -> Result<Vec<PathBuf>, String> {
    let valid = !name.is_empty()
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(format!(
            "invalid plugin name {name:?}: lowercase letters, digits and `-`, starting with a letter"
        ));
    }
    let source = template(kind, language);
    if dir.exists()
        && std::fs::read_dir(dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(format!("{} exists and is not empty", dir.display()));
    }
    let contract = crate::plugin::CONTRACT_VERSION;
    let fill = |text: &str| -> Result<String, String> {
        let mut text = text
            .replace("{{name}}", name)
            .replace("{{type}}", &type_name(name))
            .replace("{{contract}}", contract)
            .replace(
                "{{description}}",
                &format!("A wflow {} plugin", kind_name(kind)),
            );
        if text.contains("{{sdk}}") {
            text = text.replace(
                "{{sdk}}",
                &sdk_path()?.display().to_string().replace('\\', "/"),
            );
        }
        Ok(text)
    };
    let manifest = Manifest {
        plugin: ManifestPlugin {
            name: name.to_string(),
            kind: kind_name(kind).to_string(),
            language,
            source: (language != Language::Rust).then(|| language.source().to_string()),
            wit: None,
        },
    };
    let mut files: Vec<(PathBuf, String)> = vec![
        (
            "wflow-plugin.toml".into(),
            toml::to_string(&manifest).map_err(|e| e.to_string())?,
        ),
        ("wit/types.wit".into(), WIT_TYPES.to_string()),
        ("wit/worlds.wit".into(), WIT_WORLDS.to_string()),
        (language.source().into(), fill(source)?),
        ("README.md".into(), readme(name, kind, language)),
        ("workflow.toml".into(), test_workflow(name, kind, language)),
        ("data/sample.csv".into(), SAMPLE.to_string()),
        (
            ".gitignore".into(),
            "/build/\n/target/\n/.wflow/\n__pycache__/\n".into(),
        ),
    ];
    match language {
        Language::Rust => files.push((
            "Cargo.toml".into(),
            fill(include_str!("templates/rust/Cargo.toml"))?,
        )),
        Language::JavaScript => files.push((
            "common.js".into(),
            include_str!("templates/js/common.js").to_string(),
        )),
        Language::Python => {}
    }
    let mut written = Vec::new();
    for (relative, text) in files {
        let path = dir.join(&relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// A built component.
pub struct Built {
    pub path: PathBuf,
    pub elapsed: Duration,
}

/// Builds the project in `dir` into `output` (default `DIR/build/NAME.wasm`), reporting each
/// stage through `say`.
pub fn build_project(
    dir: &Path,
    output: Option<&Path>,
    say: &mut dyn FnMut(String),
) -> Result<Built, String> {
    let started = Instant::now();
    let manifest_path = dir.join("wflow-plugin.toml");
    let text = std::fs::read_to_string(&manifest_path).map_err(|e| {
        format!(
            "{}: {e} (a plugin project has one; create a project with `wflow plugin new`)",
            manifest_path.display()
        )
    })?;
    let manifest: Manifest =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", manifest_path.display()))?;
    let plugin = &manifest.plugin;
    parse_kind(&plugin.kind).map_err(|why| format!("{}: {why}", manifest_path.display()))?;
    let output = output
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.join("build").join(format!("{}.wasm", plugin.name)));
    if let Some(parent) = output.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let wit = dir.join(plugin.wit.as_deref().unwrap_or("wit"));
    match plugin.language {
        Language::Rust => build_rust(dir, &plugin.name, &output, say)?,
        Language::Python => {
            let tool = componentize_py(say)?;
            let source = plugin.source.as_deref().unwrap_or("app.py");
            let module = source.strip_suffix(".py").unwrap_or(source);
            say(format!(
                "componentize-py {COMPONENTIZE_PY}: {source} -> {}",
                output.display()
            ));
            let mut command = tool.command();
            command
                .arg("-d")
                .arg(&wit)
                .args(["-w", &plugin.kind, "componentize", module, "-p"])
                .arg(dir)
                .arg("-o")
                .arg(&output);
            run(command, "componentize-py")?;
        }
        Language::JavaScript => {
            let script = componentize_js(say)?;
            let source = plugin.source.as_deref().unwrap_or("plugin.js");
            say(format!(
                "componentize-js {COMPONENTIZE_JS}: {source} -> {}",
                output.display()
            ));
            let mut command = Command::new("node");
            command
                .arg(&script)
                .arg(dir.join(source))
                .arg(&wit)
                .arg(&plugin.kind)
                .arg(&output)
                .env(
                    "WFLOW_JS_TOOLS",
                    script.parent().expect("the script is in the tool's folder"),
                );
            run(command, "componentize-js")?;
        }
    }
    Ok(Built {
        path: output,
        elapsed: started.elapsed(),
    })
}

fn run(mut command: Command, what: &str) -> Result<(), String> {
    let out = command
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let tail: Vec<&str> = stderr.lines().chain(stdout.lines()).collect();
        let start = tail.len().saturating_sub(40);
        return Err(format!(
            "{what} failed ({}):\n{}",
            out.status,
            tail[start..].join("\n")
        ));
    }
    Ok(())
}

fn tools_dir() -> PathBuf {
    std::env::var_os("WFLOW_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            crate::files::user_cache_dir("tools")
                .unwrap_or_else(|| Path::new("wflow").join("tools"))
        })
}

/// Installs into `final_dir` through a temporary sibling renamed into place; another process
/// finishing first wins and this copy is dropped.
fn install_atomically(
    final_dir: &Path,
    install: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<(), String> {
    let parent = final_dir.parent().expect("a tool's folder has a parent");
    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".installing-")
        .tempdir_in(parent)
        .map_err(|e| format!("{}: {e}", parent.display()))?;
    install(staging.path())?;
    let staged = staging.keep();
    if std::fs::rename(&staged, final_dir).is_err() {
        // Someone else installed it meanwhile.
        let _ = std::fs::remove_dir_all(&staged);
        if !final_dir.exists() {
            return Err(format!("cannot move the tool into {}", final_dir.display()));
        }
    }
    Ok(())
}

struct PythonTool {
    dir: PathBuf,
}

impl PythonTool {
    fn command(&self) -> Command {
        let mut command = Command::new("python3");
        command.env("PYTHONPATH", &self.dir).args([
            "-c",
            "import sys; from componentize_py import script; sys.argv[0] = 'componentize-py'; sys.exit(script())",
        ]);
        command
    }
}

fn componentize_py(say: &mut dyn FnMut(String)) -> Result<PythonTool, String> {
    let dir = tools_dir().join(format!("componentize-py-{COMPONENTIZE_PY}"));
    if !dir.join("componentize_py").is_dir() {
        let python = Command::new("python3")
            .args(["-m", "pip", "--version"])
            .output();
        if !python.is_ok_and(|o| o.status.success()) {
            return Err(
                "building a Python plugin needs python3 with pip (Debian: apt-get install python3-pip), \
                 to install componentize-py"
                    .into(),
            );
        }
        say(format!(
            "installing componentize-py {COMPONENTIZE_PY} into {}",
            dir.display()
        ));
        install_atomically(&dir, |staging| {
            let mut command = Command::new("python3");
            command
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--target",
                ])
                .arg(staging)
                .arg(format!("componentize-py=={COMPONENTIZE_PY}"));
            run(command, "pip install componentize-py")
        })?;
    }
    Ok(PythonTool { dir })
}

/// The build script in the componentize-js tool folder (so its imports resolve there).
fn componentize_js(say: &mut dyn FnMut(String)) -> Result<PathBuf, String> {
    let dir = tools_dir().join(format!("componentize-js-{COMPONENTIZE_JS}"));
    let package = dir.join("node_modules/@bytecodealliance/componentize-js/package.json");
    if !package.is_file() {
        for tool in ["node", "npm"] {
            let found = Command::new(tool).arg("--version").output();
            if !found.is_ok_and(|o| o.status.success()) {
                return Err(format!(
                    "building a JavaScript plugin needs Node.js 20 or later with npm (`{tool}` is missing; Debian: apt-get install nodejs npm), to install componentize-js"
                ));
            }
        }
        say(format!(
            "installing componentize-js {COMPONENTIZE_JS} into {}",
            dir.display()
        ));
        install_atomically(&dir, |staging| {
            let mut command = Command::new("npm");
            command
                .args([
                    "install",
                    "--no-audit",
                    "--no-fund",
                    "--loglevel=error",
                    "--prefix",
                ])
                .arg(staging)
                .arg(format!(
                    "@bytecodealliance/componentize-js@{COMPONENTIZE_JS}"
                ));
            run(command, "npm install componentize-js")
        })?;
    }
    let script = dir.join("wflow-build.mjs");
    if std::fs::read_to_string(&script).ok().as_deref() != Some(JS_BUILD) {
        crate::files::write_atomic(&script, JS_BUILD.as_bytes())?;
    }
    Ok(script)
}

fn build_rust(
    dir: &Path,
    name: &str,
    output: &Path,
    say: &mut dyn FnMut(String),
) -> Result<(), String> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    let has_target = installed.as_ref().is_ok_and(|o| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .any(|l| l.trim() == "wasm32-wasip2")
    });
    if installed.is_ok() && !has_target {
        say("installing the wasm32-wasip2 target with rustup".into());
        let mut command = Command::new("rustup");
        command.args(["target", "add", "wasm32-wasip2"]);
        run(command, "rustup target add wasm32-wasip2")?;
    }
    say(format!(
        "cargo build --release --target wasm32-wasip2 in {}",
        dir.display()
    ));
    let mut command = Command::new("cargo");
    command
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(dir.join("Cargo.toml"))
        .env_remove("CARGO_TARGET_DIR")
        .env("CARGO_TARGET_DIR", dir.join("target"));
    run(command, "cargo build")?;
    let built = dir
        .join("target/wasm32-wasip2/release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    std::fs::copy(&built, output)
        .map_err(|e| format!("{} -> {}: {e}", built.display(), output.display()))?;
    Ok(())
}
