//! The layout of a wasm component stored as an OCI artifact, as the wasm OCI tooling of the
//! ecosystem writes it (CNCF TAG Runtime's wasm artifact format, used by `wkg` and the
//! `oci-wasm` crate): an image manifest with one `application/wasm` layer and a config of
//! media type `application/vnd.wasm.config.v0+json` describing the component.
//!
//! Signatures travel as a second small artifact in the same repository, tagged
//! `sha256-<component hex>.sig` (the tag convention cosign uses), with one layer holding the
//! signature JSON, so registries without the referrers API store them too.

use serde::{Deserialize, Serialize};

pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";
pub const SIGNATURE_ARTIFACT_TYPE: &str = "application/vnd.wflow.signature.v1+json";
pub const SIGNATURE_LAYER_MEDIA_TYPE: &str = "application/vnd.wflow.signature.v1+json";
/// The config of artifacts that need none (the OCI "empty descriptor").
pub const EMPTY_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// The `component` part of the wasm config: what the component imports and exports.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ComponentInfo {
    pub exports: Vec<String>,
    pub imports: Vec<String>,
    #[serde(default)]
    pub target: Option<String>,
}

/// `application/vnd.wasm.config.v0+json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WasmConfig {
    pub created: String,
    #[serde(default)]
    pub author: Option<String>,
    pub architecture: String,
    pub os: String,
    #[serde(rename = "layerDigests")]
    pub layer_digests: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<ComponentInfo>,
}

fn descriptor(media_type: &str, bytes: &[u8]) -> Descriptor {
    Descriptor {
        media_type: media_type.into(),
        digest: super::client::digest_of(bytes),
        size: bytes.len() as u64,
        annotations: Default::default(),
    }
}

/// The blobs and manifest of a component artifact: (config bytes, manifest bytes).
/// `title` is the layer's file name (`org.opencontainers.image.title`, as `wkg oci push` writes).
pub fn component_manifest(
    wasm: &[u8],
    title: &str,
    component: ComponentInfo,
    annotations: std::collections::BTreeMap<String, String>,
) -> (Vec<u8>, Vec<u8>) {
    let mut layer = descriptor(WASM_LAYER_MEDIA_TYPE, wasm);
    layer
        .annotations
        .insert("org.opencontainers.image.title".into(), title.into());
    let config = WasmConfig {
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        author: None,
        architecture: "wasm".into(),
        os: "wasip2".into(),
        layer_digests: vec![layer.digest.clone()],
        component: Some(component),
    };
    let config_bytes = serde_json::to_vec(&config).expect("the config serialises");
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(MANIFEST_MEDIA_TYPE.into()),
        artifact_type: None,
        config: descriptor(WASM_CONFIG_MEDIA_TYPE, &config_bytes),
        layers: vec![layer],
        annotations,
    };
    let manifest_bytes = serde_json::to_vec(&manifest).expect("the manifest serialises");
    (config_bytes, manifest_bytes)
}

/// The manifest of a signature artifact holding `signature` (the empty config is `{}`).
pub fn signature_manifest(signature: &[u8]) -> Vec<u8> {
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(MANIFEST_MEDIA_TYPE.into()),
        artifact_type: Some(SIGNATURE_ARTIFACT_TYPE.into()),
        config: descriptor(EMPTY_CONFIG_MEDIA_TYPE, b"{}"),
        layers: vec![descriptor(SIGNATURE_LAYER_MEDIA_TYPE, signature)],
        annotations: Default::default(),
    };
    serde_json::to_vec(&manifest).expect("the manifest serialises")
}

/// The signature tag of a component: `sha256-<hex>.sig`.
pub fn signature_tag(component_digest: &str) -> String {
    format!("{}.sig", component_digest.replace(':', "-"))
}

/// The one wasm layer of a manifest, or why it is not a component artifact.
pub fn wasm_layer(manifest: &Manifest) -> Result<&Descriptor, String> {
    let wasm: Vec<&Descriptor> = manifest
        .layers
        .iter()
        .filter(|l| l.media_type == WASM_LAYER_MEDIA_TYPE)
        .collect();
    match wasm.as_slice() {
        [layer] => Ok(layer),
        [] => Err(format!(
            "not a wasm component artifact: no layer of media type {WASM_LAYER_MEDIA_TYPE} (layers: {})",
            manifest
                .layers
                .iter()
                .map(|l| l.media_type.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        _ => Err("more than one wasm layer: which one is the plugin is ambiguous".into()),
    }
}

/// Parses manifest bytes, with the error saying what is wrong.
pub fn parse_manifest(bytes: &[u8]) -> Result<Manifest, String> {
    let manifest: Manifest =
        serde_json::from_slice(bytes).map_err(|e| format!("not an OCI image manifest: {e}"))?;
    if manifest.schema_version != 2 {
        return Err(format!(
            "manifest schemaVersion {} (expected 2)",
            manifest.schema_version
        ));
    }
    Ok(manifest)
}
