//! A small client of the OCI distribution protocol: manifests and blobs, pushed and pulled,
//! with the anonymous (or `WFLOW_REGISTRY_USERNAME`/`WFLOW_REGISTRY_PASSWORD`) bearer-token
//! flow public registries use.
//!
//! Credentials belong to the registries named in `WFLOW_REGISTRY_HOST` (comma-separated
//! `host[:port]`): they are sent only to those, only over HTTPS (or to loopback), and to a
//! token service only when it is one of those hosts too and is reached over HTTPS. A registry
//! elsewhere that asks for them is told they were not sent, and why. A bearer token a registry
//! gave is sent back only to that registry's own origin, never to a location on another host.
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
    credentials: Option<Credentials>,
}

/// A user name and password, and the registries they belong to.
#[derive(Clone)]
pub struct Credentials {
    pub user: String,
    pub password: String,
    /// `host[:port]` of each registry (or token service) they may be sent to.
    pub hosts: Vec<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// From `WFLOW_REGISTRY_USERNAME`, `WFLOW_REGISTRY_PASSWORD` and `WFLOW_REGISTRY_HOST`.
    pub fn from_env() -> Option<Credentials> {
        let user = std::env::var("WFLOW_REGISTRY_USERNAME").ok()?;
        let password = std::env::var("WFLOW_REGISTRY_PASSWORD").ok()?;
        let hosts = std::env::var("WFLOW_REGISTRY_HOST")
            .unwrap_or_default()
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        Some(Credentials {
            user,
            password,
            hosts,
        })
    }

    /// Whether they may go to `authority` (`host[:port]`) by `scheme`.
    fn may_go_to(&self, scheme: &str, authority: &str) -> bool {
        let authority = authority.to_ascii_lowercase();
        self.hosts.contains(&authority) && (scheme == "https" || is_loopback(&authority))
    }

    fn basic(&self) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", self.user, self.password))
        )
    }
}

/// Whether `host[:port]` names this machine.
fn is_loopback(authority: &str) -> bool {
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(host, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                host
            } else {
                authority
            }
        });
    host.eq_ignore_ascii_case("localhost")
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The scheme and `host[:port]` of a URL.
fn origin_of(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    // Userinfo would make the authority ambiguous: a URL with it is no registry's.
    (!authority.contains('@')).then_some((scheme, authority))
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
        Client {
            agent,
            tokens: Mutex::new(HashMap::new()),
            credentials: Credentials::from_env(),
        }
    }

    /// A client with these credentials (instead of the environment's).
    pub fn with_credentials(credentials: Option<Credentials>) -> Client {
        Client {
            credentials,
            ..Client::new()
        }
    }

    fn base(registry: &str) -> String {
        let loopback = is_loopback(registry);
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
            // A token is the registry's: never sent to a location on another origin (an
            // upload's Location may point anywhere).
            if let Some(authorization) = &authorization
                && origin_of(url) == origin_of(&Client::base(&reference.registry))
            {
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
        let registry_url = Client::base(&reference.registry);
        let (registry_scheme, registry_host) =
            origin_of(&registry_url).expect("the registry's base URL has an origin");
        let not_sent = |to: &str| {
            RegistryError::Invalid(match &self.credentials {
                None => format!(
                    "{to} wants a user name and password: set WFLOW_REGISTRY_USERNAME and WFLOW_REGISTRY_PASSWORD, and WFLOW_REGISTRY_HOST={}",
                    reference.registry
                ),
                Some(credentials) => format!(
                    "{to} wants a user name and password, which were not sent: they go only to the hosts in WFLOW_REGISTRY_HOST ({}), over HTTPS or to loopback",
                    if credentials.hosts.is_empty() {
                        "none".to_string()
                    } else {
                        credentials.hosts.join(", ")
                    }
                ),
            })
        };
        if challenge.to_ascii_lowercase().starts_with("basic") {
            return match &self.credentials {
                Some(credentials) if credentials.may_go_to(registry_scheme, registry_host) => {
                    Ok(credentials.basic())
                }
                _ => Err(not_sent(&format!("the registry {}", reference.registry))),
            };
        }
        let params = parse_challenge(challenge);
        let realm = params.get("realm").ok_or_else(|| {
            RegistryError::Invalid(format!(
                "the registry {} refused access without saying how to authenticate ({challenge:?})",
                reference.registry
            ))
        })?;
        let Some((realm_scheme, realm_host)) = origin_of(realm) else {
            return Err(RegistryError::Invalid(format!(
                "the registry {} names a token service that is not a URL: {realm:?}",
                reference.registry
            )));
        };
        if !matches!(realm_scheme, "https" | "http") {
            return Err(RegistryError::Invalid(format!(
                "the registry {} names a token service that is not HTTP(S): {realm:?}",
                reference.registry
            )));
        }
        let mut url = format!("{realm}?scope={}", encode(scope));
        if let Some(service) = params.get("service") {
            url.push_str(&format!("&service={}", encode(service)));
        }
        let mut request = self.agent.get(&url);
        // Anonymous tokens need no credentials; the credentials go to the token service only
        // when it is one of their hosts (or the registry itself).
        let mut sent_credentials = false;
        if let Some(credentials) = &self.credentials
            && credentials.may_go_to(registry_scheme, registry_host)
            && (realm_host.eq_ignore_ascii_case(registry_host)
                || credentials.hosts.contains(&realm_host.to_ascii_lowercase()))
            && (realm_scheme == "https" || is_loopback(realm_host))
        {
            request = request.header("Authorization", &credentials.basic());
            sent_credentials = true;
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
        if status == 401 && !sent_credentials {
            return Err(not_sent(&format!("the token service {realm}")));
        }
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

    /// A server on `host` that records the `Authorization` header of every request and answers
    /// each with `answer(path)` (a status line and headers, without the blank line).
    fn recording_server(
        host: &str,
        answer: impl Fn(&str) -> String + Send + 'static,
    ) -> (String, std::sync::Arc<Mutex<Vec<String>>>) {
        use std::io::{BufRead, Write};
        let listener = std::net::TcpListener::bind((host, 0)).unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
        let recorded = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(value) = line.to_ascii_lowercase().strip_prefix("authorization:") {
                        recorded.lock().unwrap().push(value.trim().to_string());
                    }
                }
                let _ = write!(
                    stream,
                    "{}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    answer(&path)
                );
            }
        });
        (address, seen)
    }

    fn credentials(hosts: &[&str]) -> Option<Credentials> {
        Some(Credentials {
            user: "user".into(),
            password: "password".into(),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
        })
    }

    fn reference(registry: &str) -> Reference {
        Reference::parse(&format!("oci://{registry}/team/plugin:1")).unwrap()
    }

    #[test]
    fn credentials_go_only_to_their_own_registry() {
        // A registry that is not theirs asks for a password: it does not get it.
        let (registry, seen) = recording_server("127.0.0.1", |_| {
            "HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Basic realm=\"r\"".into()
        });
        let client = Client::with_credentials(credentials(&["registry.example"]));
        let err = client.manifest(&reference(&registry)).unwrap_err();
        assert!(err.to_string().contains("which were not sent"), "{err}");
        assert!(
            seen.lock().unwrap().is_empty(),
            "{:?}",
            seen.lock().unwrap()
        );
        // Their own registry does.
        let client = Client::with_credentials(credentials(&[&registry]));
        let _ = client.manifest(&reference(&registry));
        assert_eq!(
            seen.lock().unwrap().as_slice(),
            ["basic dxnlcjpwyxnzd29yza=="],
            "user:password, once"
        );
    }

    #[test]
    fn a_token_service_on_another_host_gets_no_credentials() {
        let (realm_host, realm_seen) =
            recording_server("127.0.0.2", |_| "HTTP/1.1 401 Unauthorized".into());
        let realm = format!("http://{realm_host}/token");
        let (registry, _) = recording_server("127.0.0.1", move |_| {
            format!(
                "HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Bearer realm=\"{realm}\",service=\"x\""
            )
        });
        let client = Client::with_credentials(credentials(&[&registry]));
        let err = client.manifest(&reference(&registry)).unwrap_err();
        assert!(err.to_string().contains("token service"), "{err}");
        assert!(realm_seen.lock().unwrap().is_empty());
        // Listed too, it gets them.
        let client = Client::with_credentials(credentials(&[&registry, &realm_host]));
        let _ = client.manifest(&reference(&registry));
        assert_eq!(realm_seen.lock().unwrap().len(), 1);
    }

    #[test]
    fn origins_are_read_without_userinfo_tricks() {
        assert_eq!(
            origin_of("https://reg.example:443/v2/x?y"),
            Some(("https", "reg.example:443"))
        );
        assert_eq!(origin_of("https://reg.example@evil.example/v2"), None);
        assert_eq!(origin_of("not a url"), None);
        assert!(is_loopback("127.0.0.1:5000") && is_loopback("localhost"));
        assert!(!is_loopback("127.example.com"));
    }

    #[test]
    fn loopback_registries_use_plain_http() {
        assert_eq!(Client::base("127.0.0.1:5000"), "http://127.0.0.1:5000/v2");
        assert_eq!(Client::base("localhost:5000"), "http://localhost:5000/v2");
        assert_eq!(Client::base("ghcr.io"), "https://ghcr.io/v2");
    }
}
