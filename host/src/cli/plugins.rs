//! `wflow plugin ...`: inspect and list plugins; create and build plugin projects in Rust,
//! Python or JavaScript; push and pull them through OCI registries; sign and verify them.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;

use super::{Cli, output, runtime};
use crate::authoring::{self, Language};
use crate::engine;
use crate::oci::{self, Reference};
use crate::plugin::signing::{KeyPair, Signature, TrustStore};

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Show what a plugin is: kind, name, version, contract version, configuration schema,
    /// the capabilities it requests, and its signature.
    Inspect {
        /// A .wasm file, the name of a built-in plugin, or oci://HOST/REPO:TAG.
        plugin: String,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the built-in plugins.
    List {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create a plugin project: the WIT, a working example of the kind, a README and a test
    /// workflow.
    New {
        /// The plugin's name (lowercase letters, digits and `-`); also its directory.
        name: String,
        /// validator, transformer, trainer, evaluator, deployer or drift-check.
        #[arg(long)]
        kind: String,
        /// rust, python or js.
        #[arg(long, default_value = "rust")]
        lang: String,
        /// Where to create it [default: ./NAME].
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Build a plugin project into a component (cargo, componentize-py or componentize-js,
    /// installed into ~/.cache/wflow/tools when missing).
    Build {
        /// The project [default: the current directory].
        dir: Option<PathBuf>,
        /// The component to write [default: DIR/build/NAME.wasm].
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Push a component to an OCI registry, with its signature (FILE.wasm.sig) when there is one.
    Push {
        /// The component.
        file: PathBuf,
        /// oci://HOST/REPO:TAG
        reference: String,
        /// The signature to push with it [default: FILE.sig when it exists].
        #[arg(long, value_name = "FILE")]
        signature: Option<PathBuf>,
    },
    /// Pull a component from an OCI registry into the local plugin cache.
    Pull {
        /// oci://HOST/REPO:TAG or oci://HOST/REPO@sha256:DIGEST
        reference: String,
        /// Also write the component (and its signature, beside it) here.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Make an ed25519 key pair for signing plugins: NAME.key (secret) and NAME.pub.
    Keygen {
        /// The publisher's name, as signatures will show it.
        name: String,
        /// Where to write the keys [default: ~/.config/wflow/keys].
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Sign a component with a secret key, writing FILE.wasm.sig.
    Sign {
        file: PathBuf,
        /// The publisher's secret key (NAME.key).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Where to write the signature [default: FILE.sig].
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Verify a component's signature against the trust store.
    Verify {
        /// A .wasm file (its signature: FILE.sig) or an oci:// reference.
        plugin: String,
        /// The signature [default: FILE.sig].
        #[arg(long, value_name = "FILE")]
        signature: Option<PathBuf>,
    },
    /// Trust a publisher: add their public key (NAME.pub) to the trust store.
    Trust {
        /// The publisher's public key file.
        public_key: PathBuf,
    },
}

pub async fn dispatch(cli: &Cli, command: &PluginCommand) -> anyhow::Result<u8> {
    match command {
        PluginCommand::Inspect { plugin, json } => {
            let runtime = runtime(cli)?;
            let (bytes, signature) = component(&runtime, plugin).await?;
            let loaded = runtime
                .load(&bytes)
                .await
                .map_err(|err| anyhow::anyhow!("{plugin}: {err}"))?;
            let trust = match &signature {
                None if engine::plan::builtin::get(plugin).is_some() => {
                    "built into wflow".to_string()
                }
                None => "unsigned".to_string(),
                Some(signature) => match TrustStore::load(&runtime.sources().trust_dir)
                    .map_err(anyhow::Error::msg)?
                    .verify(&bytes, signature)
                {
                    Ok(publisher) => format!("signed by {publisher} (trusted)"),
                    Err(err) => format!("NOT VALID: {err}"),
                },
            };
            output::print_plugin(&loaded, *json, &trust);
            Ok(0)
        }
        PluginCommand::List { json } => {
            let runtime = runtime(cli)?;
            let mut plugins = Vec::new();
            for name in engine::plan::builtin::names() {
                plugins.push(engine::plan::load_plugin(&runtime, name).await?);
            }
            output::print_plugin_list(&plugins, *json);
            Ok(0)
        }
        PluginCommand::New {
            name,
            kind,
            lang,
            dir,
        } => {
            let language = Language::parse(lang).map_err(anyhow::Error::msg)?;
            let kind = authoring::parse_kind(kind).map_err(anyhow::Error::msg)?;
            let dir = dir.clone().unwrap_or_else(|| PathBuf::from(name));
            let files =
                authoring::new_project(&dir, name, kind, language).map_err(anyhow::Error::msg)?;
            outln!(
                "created {} ({} plugin in {}):",
                dir.display(),
                crate::plugin::kind_name(kind),
                language.name()
            );
            for file in files {
                outln!("  {}", file.display());
            }
            outln!(
                "next: wflow plugin build {0} && wflow run {0}/workflow.toml",
                dir.display()
            );
            Ok(0)
        }
        PluginCommand::Build { dir, output } => {
            let dir = dir.clone().unwrap_or_else(|| PathBuf::from("."));
            let built =
                authoring::build_project(&dir, output.as_deref(), &mut |line| errln!("{line}"))
                    .map_err(anyhow::Error::msg)?;
            // A component that does not load is not built: check it as a workflow would.
            let runtime = runtime(cli)?;
            let bytes = std::fs::read(&built.path)
                .with_context(|| format!("reading {}", built.path.display()))?;
            let plugin = runtime.load(&bytes).await.map_err(|err| {
                anyhow::anyhow!(
                    "{} was built but does not load: {err}",
                    built.path.display()
                )
            })?;
            outln!(
                "built {} ({} {} {}, {} KiB) in {:.1} s",
                built.path.display(),
                crate::plugin::kind_name(plugin.kind()),
                plugin.info.name,
                plugin.info.version,
                bytes.len() / 1024,
                built.elapsed.as_secs_f64()
            );
            Ok(0)
        }
        PluginCommand::Push {
            file,
            reference,
            signature,
        } => {
            let reference = Reference::parse(reference).map_err(anyhow::Error::msg)?;
            let runtime = runtime(cli)?;
            let wasm =
                std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            // Only a component that loads as a plugin is published.
            let plugin = runtime
                .load(&wasm)
                .await
                .map_err(|err| anyhow::anyhow!("{}: {err}", file.display()))?;
            let signature = match signature {
                Some(path) => Some(read_signature(path)?),
                None => {
                    let beside = engine::plan::signature_file(file);
                    beside
                        .exists()
                        .then(|| read_signature(&beside))
                        .transpose()?
                }
            };
            if let Some(signature) = &signature
                && signature.digest != crate::plugin::signing::component_digest(&wasm)
            {
                bail!(
                    "the signature is for {}, not for {} ({})",
                    signature.digest,
                    file.display(),
                    crate::plugin::signing::component_digest(&wasm)
                );
            }
            let annotations = [
                ("org.opencontainers.image.title", plugin.info.name.clone()),
                (
                    "org.opencontainers.image.version",
                    plugin.info.version.clone(),
                ),
                (
                    "org.opencontainers.image.description",
                    plugin.info.description.clone(),
                ),
                (
                    "dev.wflow.plugin.kind",
                    crate::plugin::kind_name(plugin.kind()).to_string(),
                ),
                ("dev.wflow.plugin.contract", plugin.contract.to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            let component = oci::artifact::ComponentInfo {
                exports: plugin.exports.clone(),
                imports: plugin.imports.clone(),
                target: None,
            };
            let title = file
                .file_name()
                .map_or("plugin.wasm".into(), |n| n.to_string_lossy().into_owned());
            let client = oci::Client::new();
            let digest = tokio::task::spawn_blocking({
                let reference = reference.clone();
                let signature = signature.clone();
                move || {
                    oci::push(
                        &reference,
                        &wasm,
                        &title,
                        component,
                        annotations,
                        signature.as_ref(),
                        &client,
                    )
                }
            })
            .await?
            .map_err(anyhow::Error::msg)?;
            outln!("pushed {}", reference.pinned(&digest));
            if let Some(signature) = signature {
                outln!("  with the signature of {}", signature.publisher);
            }
            Ok(0)
        }
        PluginCommand::Pull { reference, output } => {
            let reference = Reference::parse(reference).map_err(anyhow::Error::msg)?;
            let runtime = runtime(cli)?;
            let sources = runtime.sources().clone();
            let resolved = tokio::task::spawn_blocking(move || {
                oci::pull(&reference, &sources, &oci::Client::new())
            })
            .await?
            .map_err(anyhow::Error::msg)?;
            let plugin = runtime
                .load(&resolved.wasm)
                .await
                .map_err(|err| anyhow::anyhow!("{}: {err}", resolved.reference))?;
            outln!(
                "pulled {} ({} {} {})",
                resolved.reference,
                crate::plugin::kind_name(plugin.kind()),
                plugin.info.name,
                plugin.info.version
            );
            if let Some(output) = output {
                std::fs::write(output, &resolved.wasm)
                    .with_context(|| format!("writing {}", output.display()))?;
                if let Some(signature) = &resolved.signature {
                    let path = engine::plan::signature_file(output);
                    std::fs::write(&path, signature.to_json())
                        .with_context(|| format!("writing {}", path.display()))?;
                }
                outln!("  written to {}", output.display());
            }
            match &resolved.signature {
                Some(signature) => outln!("  signed by {}", signature.publisher),
                None => outln!("  unsigned"),
            }
            Ok(0)
        }
        PluginCommand::Keygen { name, dir } => {
            let dir = dir.clone().unwrap_or_else(default_key_dir);
            let pair = KeyPair::generate(name).map_err(anyhow::Error::msg)?;
            let (secret, public) = pair.write(&dir).map_err(anyhow::Error::msg)?;
            outln!("secret key: {} (keep it private)", secret.display());
            outln!(
                "public key: {} (give it to those who run your plugins: wflow plugin trust)",
                public.display()
            );
            Ok(0)
        }
        PluginCommand::Sign { file, key, output } => {
            let pair = KeyPair::read(key).map_err(anyhow::Error::msg)?;
            let wasm =
                std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            let signature = pair.sign(&wasm);
            let path = output
                .clone()
                .unwrap_or_else(|| engine::plan::signature_file(file));
            std::fs::write(&path, signature.to_json())
                .with_context(|| format!("writing {}", path.display()))?;
            outln!(
                "signed {} ({}) as {}: {}",
                file.display(),
                signature.digest,
                signature.publisher,
                path.display()
            );
            Ok(0)
        }
        PluginCommand::Verify { plugin, signature } => {
            let runtime = runtime(cli)?;
            let (bytes, found) = component(&runtime, plugin).await?;
            let signature = match signature {
                Some(path) => Some(read_signature(path)?),
                None => found,
            };
            let Some(signature) = signature else {
                errln!("{plugin}: not signed");
                return Ok(super::EXIT_FAILED);
            };
            let store =
                TrustStore::load(&runtime.sources().trust_dir).map_err(anyhow::Error::msg)?;
            match store.verify(&bytes, &signature) {
                Ok(publisher) => {
                    outln!(
                        "{plugin}: signed by {publisher} (key {}), trusted",
                        signature.key_id
                    );
                    Ok(0)
                }
                Err(err) => {
                    errln!("{plugin}: {err}");
                    Ok(super::EXIT_FAILED)
                }
            }
        }
        PluginCommand::Trust { public_key } => {
            let dir = TrustStore::default_dir();
            let (name, key_id) = TrustStore::add(&dir, public_key).map_err(anyhow::Error::msg)?;
            outln!("trusting {name} (key {key_id}) in {}", dir.display());
            Ok(0)
        }
    }
}

fn default_key_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".config")
        .join("wflow")
        .join("keys")
}

fn read_signature(path: &Path) -> anyhow::Result<Signature> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Signature::from_json(&text).map_err(|why| anyhow::anyhow!("{}: {why}", path.display()))
}

/// A plugin's bytes and signature: a built-in, a file (signature FILE.sig), or an OCI
/// reference (pulled into the cache).
async fn component(
    runtime: &crate::plugin::Runtime,
    plugin: &str,
) -> anyhow::Result<(Vec<u8>, Option<Signature>)> {
    if plugin.starts_with("oci://") {
        let reference = Reference::parse(plugin).map_err(anyhow::Error::msg)?;
        let sources = runtime.sources().clone();
        let resolved = tokio::task::spawn_blocking(move || {
            oci::pull(&reference, &sources, &oci::Client::new())
        })
        .await?
        .map_err(anyhow::Error::msg)?;
        return Ok((resolved.wasm, resolved.signature));
    }
    if let Some(bytes) = engine::plan::builtin::get(plugin)
        && !plugin.ends_with(".wasm")
    {
        return Ok((bytes.to_vec(), None));
    }
    let path = Path::new(plugin);
    let bytes = std::fs::read(path).with_context(|| {
        format!("{plugin}: not a built-in plugin, and cannot read it as a file")
    })?;
    let beside = engine::plan::signature_file(path);
    let signature = beside
        .exists()
        .then(|| read_signature(&beside))
        .transpose()?;
    Ok((bytes, signature))
}
