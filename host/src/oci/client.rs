//! A small client of the OCI distribution protocol: manifests and blobs, pushed and pulled,
//! with the anonymous (or `WFLOW_REGISTRY_USERNAME`/`WFLOW_REGISTRY_PASSWORD`) bearer-token
//! flow public registries use.
//!
//! Loopback registries (`localhost`, `127.*`, `[::1]`) and those listed in
//! `WFLOW_INSECURE_REGISTRIES` (comma-separated `host:port`) are spoken to over plain HTTP, as
//! other OCI tooling does; every other registry over HTTPS. Blocking: callers in async code run
//! it on a blocking thread. Bodies are capped (`MAX_BLOB`), and every blob read is checked
//! against its digest by the caller before it is used.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use sha2::{Digest, Sha256};
use ureq::http::{self, Method};

use super::reference::Reference;

/// The largest blob or manifest read from a registry (a Python component is ~40 MB).
pub const MAX_BLOB: u64 = 512 << 20;

/// What went wrong talking to a registry; each message names the registry and the object.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot reach the registry {registry}: {message}")]
    Unreachable { registry: String, message: String },
    #[error("{what}: the registry answered {status}: {body}")]
    Status {
        what: String,
        status: u16,
        body: String,
    },
    #[error("{0}")]
    Invalid(String),
}

/// `sha256:<hex>` of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

pub struct Client {
    agent: ureq::Agent,
    /// Bearer tokens by (registry, scope).
    tokens: Mutex<HashMap<(String, String), String>>,
    credentials: Option<(String, String)>,
}

impl Default for Client {
    fn default() -> Self {
        Client::new()
    }
}

impl Client {
    pub fn new() -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(Duration::from_secs(300)))
            .user_agent(concat!("wflow/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let credentials = match (
            std::env::var("WFLOW_REGISTRY_USERNAME"),
            std::env::var("WFLOW_REGISTRY_PASSWORD"),
        ) {
            (Ok(user), Ok(password)) => Some((user, password)),
            _ => None,
        };
        Client {
            agent,
            tokens: Mutex::new(HashMap::new()),
            credentials,
        }
    }

    fn base(registry: &str) -> String {
        let host = registry.rsplit_once(':').map_or(registry, |(host, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                host
            } else {
                registry
            }
        });
        let loopback = host == "localhost" || host.starts_with("127.") || host == "[::1]";
        let insecure = std::env::var("WFLOW_INSECURE_REGISTRIES")
            .is_ok_and(|list| list.split(',').any(|entry| entry.trim() == registry));
        let scheme = if loopback || insecure {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{registry}/v2")
    }

    /// One exchange, with the token dance on a 401: returns (status, headers, body).
    fn exchange(
        &self,
        reference: &Reference,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        push: bool,
    ) -> Result<(u16, http::HeaderMap, Vec<u8>), RegistryError> {
        let scope = format!(
            "repository:{}:{}",
            reference.repository,
            if push { "pull,push" } else { "pull" }
        );
        let key = (reference.registry.clone(), scope.clone());
        let mut authorization = self
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .map(|token| format!("Bearer {token}"));
        for attempt in 0..2 {
            let mut builder = http::Request::builder().method(method.clone()).uri(url);
            for (name, value) in headers {
                builder = builder.header(*name, *value);
            }
            if let Some(authorization) = &authorization {
                builder = builder.header("Authorization", authorization);
            }
            let unreachable = |message: String| RegistryError::Unreachable {
                registry: reference.registry.clone(),
                message,
            };
            let sent = match body {
                None => builder
                    .body(())
                    .map_err(|e| unreachable(e.to_string()))
                    .and_then(|r| self.agent.run(r).map_err(|e| unreachable(e.to_string()))),
                Some(bytes) => builder
                    .body(bytes)
                    .map_err(|e| unreachable(e.to_string()))
                    .and_then(|r| self.agent.run(r).map_err(|e| unreachable(e.to_string()))),
            };
            let mut response = sent?;
            let status = response.status().as_u16();
            let response_headers = response.headers().clone();
            let bytes = if method == Method::HEAD {
                Vec::new()
            } else {
                response
                    .body_mut()
                    .with_config()
                    .limit(MAX_BLOB)
                    .read_to_vec()
                    .map_err(|e| unreachable(format!("reading {url}: {e}")))?
            };
            if status == 401 && attempt == 0 {
                let challenge = response_headers
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                authorization = Some(self.authorize(reference, &challenge, &scope)?);
                if let Some(token) = authorization
                    .as_deref()
                    .and_then(|a| a.strip_prefix("Bearer "))
                {
                    self.tokens
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(key.clone(), token.to_string());
                }
                continue;
            }
            return Ok((status, response_headers, bytes));
        }
        unreachable!("the loop returns on its second attempt")
    }

    /// The `Authorization` value answering a registry's challenge.
    fn authorize(
        &self,
        reference: &Reference,
        challenge: &str,
        scope: &str,
    ) -> Result<String, RegistryError> {
        let basic = || {
            self.credentials.as_ref().map(|(user, password)| {
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
                )
            })
        };
        if challenge.to_ascii_lowercase().starts_with("basic") {
            return basic().ok_or_else(|| {
                RegistryError::Invalid(format!(
                    "the registry {} wants a user name and password: set WFLOW_REGISTRY_USERNAME and WFLOW_REGISTRY_PASSWORD",
                    reference.registry
                ))
            });
        }
        let params = parse_challenge(challenge);
        let realm = params.get("realm").ok_or_else(|| {
            RegistryError::Invalid(format!(
                "the registry {} refused access without saying how to authenticate ({challenge:?})",
                reference.registry
            ))
        })?;
        let mut url = format!("{realm}?scope={}", encode(scope));
        if let Some(service) = params.get("service") {
            url.push_str(&format!("&service={}", encode(service)));
        }
        let mut request = self.agent.get(&url);
        if let Some(basic) = basic() {
            request = request.header("Authorization", &basic);
        }
        let mut response = request.call().map_err(|e| RegistryError::Unreachable {
            registry: reference.registry.clone(),
            message: format!("token service {realm}: {e}"),
        })?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()
            .unwrap_or_default();
        if status != 200 {
            return Err(RegistryError::Status {
                what: format!("token for {scope} from {realm}"),
                status,
                body: String::from_utf8_lossy(&body).chars().take(300).collect(),
            });
        }
        let answer: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| RegistryError::Invalid(format!("token service {realm}: not JSON: {e}")))?;
        let token = answer
            .get("token")
            .or_else(|| answer.get("access_token"))
            .and_then(|t| t.as_str())
            .ok_or_else(|| RegistryError::Invalid(format!("token service {realm}: no token")))?;
        Ok(format!("Bearer {token}"))
    }

    fn expect(
        what: impl FnOnce() -> String,
        status: u16,
        ok: &[u16],
        body: &[u8],
    ) -> Result<(), RegistryError> {
        if ok.contains(&status) {
            return Ok(());
        }
        Err(RegistryError::Status {
            what: what(),
            status,
            body: String::from_utf8_lossy(body).chars().take(500).collect(),
        })
    }

    /// The manifest `reference` names: (its bytes, its media type). The bytes are returned as
    /// served; the caller checks their digest.
    pub fn manifest(&self, reference: &Reference) -> Result<(Vec<u8>, String), RegistryError> {
        let url = format!(
            "{}/{}/manifests/{}",
            Client::base(&reference.registry),
            reference.repository,
            reference.manifest_reference()
        );
        let accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
        let (status, headers, body) = self.exchange(
            reference,
            Method::GET,
            &url,
            &[("Accept", accept)],
            None,
            false,
        )?;
        if status == 404 {
            return Err(RegistryError::Invalid(format!(
                "{reference}: not found in the registry"
            )));
        }
        Client::expect(|| format!("manifest of {reference}"), status, &[200], &body)?;
        let media_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        Ok((body, media_type))
    }

    /// The blob `digest` of the repository, as served (the caller checks the digest).
    pub fn blob(&self, reference: &Reference, digest: &str) -> Result<Vec<u8>, RegistryError> {
        let url = format!(
            "{}/{}/blobs/{digest}",
            Client::base(&reference.registry),
            reference.repository
        );
        let (status, _, body) = self.exchange(reference, Method::GET, &url, &[], None, false)?;
        Client::expect(
            || format!("blob {digest} of {reference}"),
            status,
            &[200],
            &body,
        )?;
        Ok(body)
    }

    /// Uploads `bytes` as a blob (monolithically) unless the registry has it already; returns
    /// its digest.
    pub fn push_blob(&self, reference: &Reference, bytes: &[u8]) -> Result<String, RegistryError> {
        let digest = digest_of(bytes);
        let base = Client::base(&reference.registry);
        let head = format!("{base}/{}/blobs/{digest}", reference.repository);
        let (status, _, _) = self.exchange(reference, Method::HEAD, &head, &[], None, true)?;
        if status == 200 {
            return Ok(digest);
        }
        let start = format!("{base}/{}/blobs/uploads/", reference.repository);
        let (status, headers, body) =
            self.exchange(reference, Method::POST, &start, &[], Some(&[]), true)?;
        Client::expect(
            || format!("starting an upload to {reference}"),
            status,
            &[202],
            &body,
        )?;
        let location = headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                RegistryError::Invalid(format!("{reference}: the upload has no Location"))
            })?;
        // The location may be relative to the registry.
        let mut url = if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            format!("{}{location}", base.trim_end_matches("/v2"))
        };
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&format!("digest={}", encode(&digest)));
        let (status, _, body) = self.exchange(
            reference,
            Method::PUT,
            &url,
            &[("Content-Type", "application/octet-stream")],
            Some(bytes),
            true,
        )?;
        Client::expect(
            || format!("uploading {digest} to {reference}"),
            status,
            &[201],
            &body,
        )?;
        Ok(digest)
    }

    /// Puts a manifest under `tag`; returns its digest.
    pub fn push_manifest(
        &self,
        reference: &Reference,
        tag: &str,
        manifest: &[u8],
        media_type: &str,
    ) -> Result<String, RegistryError> {
        let url = format!(
            "{}/{}/manifests/{tag}",
            Client::base(&reference.registry),
            reference.repository
        );
        let (status, _, body) = self.exchange(
            reference,
            Method::PUT,
            &url,
            &[("Content-Type", media_type)],
            Some(manifest),
            true,
        )?;
        Client::expect(
            || format!("the manifest of {reference}"),
            status,
            &[201],
            &body,
        )?;
        Ok(digest_of(manifest))
    }
}

/// `Bearer realm="...",service="...",scope="..."` -> its parameters.
fn parse_challenge(challenge: &str) -> HashMap<String, String> {
    let rest = challenge.split_once(' ').map_or("", |(_, rest)| rest);
    let mut params = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            for c in chars.by_ref() {
                if c == '"' {
                    break;
                }
                value.push(c);
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect();
        }
        params.insert(key, value);
    }
    params
}

/// Percent-encoding of a query value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bearer_challenges() {
        let params = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#,
        );
        assert_eq!(params["realm"], "https://auth.example/token");
        assert_eq!(params["service"], "registry.example");
        assert_eq!(params["scope"], "repository:a/b:pull");
    }

    #[test]
    fn loopback_registries_use_plain_http() {
        assert_eq!(Client::base("127.0.0.1:5000"), "http://127.0.0.1:5000/v2");
        assert_eq!(Client::base("localhost:5000"), "http://localhost:5000/v2");
        assert_eq!(Client::base("ghcr.io"), "https://ghcr.io/v2");
    }
}
