//! `oci://HOST[:PORT]/REPOSITORY[:TAG][@sha256:DIGEST]`: where a plugin lives in an OCI
//! registry. Parsing only, no IO, so workflows can hold references and check them statically.

use std::fmt;

/// A parsed OCI reference. Without a tag or a digest the tag is `latest`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// `host` or `host:port`.
    pub registry: String,
    /// `team/plugin`.
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<64 hex>`, the manifest's digest.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses `oci://...`; the error says which part is wrong.
    pub fn parse(text: &str) -> Result<Reference, String> {
        let rest = text.strip_prefix("oci://").ok_or_else(|| {
            format!("{text:?} is not an OCI reference: it must start with oci://")
        })?;
        let (rest, digest) = match rest.split_once('@') {
            Some((rest, digest)) => {
                check_digest(digest).map_err(|why| format!("{text:?}: {why}"))?;
                (rest, Some(digest.to_string()))
            }
            None => (rest, None),
        };
        let (registry, path) = rest
            .split_once('/')
            .ok_or_else(|| format!("{text:?}: expected oci://HOST/REPOSITORY[:TAG]"))?;
        if registry.is_empty()
            || !registry
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        {
            return Err(format!("{text:?}: invalid registry host {registry:?}"));
        }
        // A tag follows the last `:` of the last path segment (the registry may carry a port).
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repository, tag)) if !tag.contains('/') => (repository, Some(tag.to_string())),
            _ => (path, None),
        };
        let valid_segment = |s: &str| {
            !s.is_empty()
                && s.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
                })
                && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        };
        if !repository.split('/').all(valid_segment) {
            return Err(format!(
                "{text:?}: invalid repository {repository:?} (lowercase letters, digits, `.`, `_`, `-`, segments separated by `/`)"
            ));
        }
        if let Some(tag) = &tag {
            let valid = !tag.is_empty()
                && tag.len() <= 128
                && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                && tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !valid {
                return Err(format!("{text:?}: invalid tag {tag:?}"));
            }
        }
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_string())
        } else {
            tag
        };
        Ok(Reference {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag,
            digest,
        })
    }

    /// What to ask the registry for: the digest when there is one, else the tag.
    pub fn manifest_reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The same repository, pinned to `digest`.
    pub fn pinned(&self, digest: &str) -> Reference {
        Reference {
            digest: Some(digest.to_string()),
            ..self.clone()
        }
    }

    /// The same repository at another tag, without a digest.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "oci://{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// `sha256:` and 64 lowercase hex digits.
pub fn check_digest(digest: &str) -> Result<(), String> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64
                && hex
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "invalid digest {digest:?}: expected sha256: and 64 lowercase hex digits"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tags_digests_ports_and_nested_repositories() {
        let r = Reference::parse("oci://127.0.0.1:5000/team/rules:1.2.0").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "team/rules");
        assert_eq!(r.tag.as_deref(), Some("1.2.0"));
        assert_eq!(r.digest, None);
        assert_eq!(r.to_string(), "oci://127.0.0.1:5000/team/rules:1.2.0");

        let digest = format!("sha256:{}", "ab".repeat(32));
        let r = Reference::parse(&format!("oci://ghcr.io/a/b@{digest}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.manifest_reference(), digest);

        let r = Reference::parse("oci://localhost:5000/plain").unwrap();
        assert_eq!(r.tag.as_deref(), Some("latest"));
    }

    #[test]
    fn says_which_part_is_wrong() {
        for (text, expected) in [
            ("https://x/y", "must start with oci://"),
            ("oci://host", "expected oci://HOST/REPOSITORY"),
            ("oci://host/Upper:1", "invalid repository"),
            ("oci://host/a:b c", "invalid tag"),
            ("oci://host/a@sha256:12", "invalid digest"),
            ("oci:///a", "invalid registry host"),
        ] {
            let err = Reference::parse(text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }
}
