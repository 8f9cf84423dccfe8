//! What a request must look like before its body is read: sent by this site, not another
//! (a page on any site can make a browser send a request to a server on the operator's own
//! machine or network), and of a content type the endpoint reads.
//!
//! A browser adds `Origin` to every cross-origin request that changes something, and
//! `Sec-Fetch-Site` to every request; a request whose origin is not this server's (or `null`)
//! is refused whatever its route, before the handler runs. The content types a page may send
//! without asking first (`text/plain`, forms, multipart) are refused by every JSON endpoint, so
//! even a browser without those headers cannot send one. A body without a `Content-Type` is
//! read as JSON on the inference routes only, because Triton's own clients send none.

use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::routes::ApiError;

/// What an endpoint reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepts {
    /// JSON only (feedback, admin actions).
    Json,
    /// The Open Inference Protocol: JSON, or a JSON header and binary tensors.
    Infer,
    /// MLflow's scoring protocol: JSON or CSV.
    Scoring,
}

/// What a body was declared as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Json,
    Binary,
    Csv,
}

/// The kind of body a request declares, if the endpoint reads it; else a 415 that says what
/// it reads.
pub fn content_type(headers: &HeaderMap, accepts: Accepts) -> Result<Kind, ApiError> {
    if let Some(encoding) = headers.get(header::CONTENT_ENCODING)
        && encoding != "identity"
    {
        return Err(ApiError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Encoding {encoding:?} is not supported: send the body uncompressed"),
        ));
    }
    let declared = headers
        .get(header::CONTENT_TYPE)
        .map(|value| value.to_str().unwrap_or("(not text)"));
    let essence = declared.map(|text| {
        text.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    });
    let kind = match essence.as_deref() {
        None if accepts == Accepts::Infer => Some(Kind::Json),
        Some("application/json") => Some(Kind::Json),
        Some(other) if other.starts_with("application/") && other.ends_with("+json") => {
            Some(Kind::Json)
        }
        Some("application/octet-stream") if accepts == Accepts::Infer => Some(Kind::Binary),
        Some("text/csv") if accepts == Accepts::Scoring => Some(Kind::Csv),
        _ => None,
    };
    kind.ok_or_else(|| {
        let wanted = match accepts {
            Accepts::Json => "application/json",
            Accepts::Infer => "application/json, or application/octet-stream with binary tensors",
            Accepts::Scoring => "application/json or text/csv",
        };
        ApiError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            match declared {
                Some(declared) => format!(
                    "Content-Type `{}` is not read here: send {wanted}",
                    declared.chars().take(80).collect::<String>().escape_debug()
                ),
                None => format!("the request has no Content-Type: send {wanted}"),
            },
        )
    })
}

/// Whether a request comes from another site than this server's, by what its browser says.
fn cross_site(headers: &HeaderMap) -> Option<String> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Some(format!("Sec-Fetch-Site: {site}"));
    }
    let origin = headers.get(header::ORIGIN)?;
    let Ok(origin) = origin.to_str() else {
        return Some("an Origin that is not text".into());
    };
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match (authority, host) {
        (Some(authority), Some(host)) if authority.eq_ignore_ascii_case(host) => None,
        _ => Some(format!(
            "Origin {}",
            origin.chars().take(80).collect::<String>().escape_debug()
        )),
    }
}

/// Refuses every request that could change something (any method but GET, HEAD and OPTIONS)
/// when a browser says another site sent it.
pub async fn refuse_cross_site(request: Request, next: Next) -> Response {
    let reads = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if !reads && let Some(why) = cross_site(request.headers()) {
        return ApiError(
            StatusCode::FORBIDDEN,
            format!("cross-site requests are refused ({why})"),
        )
        .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn json_endpoints_refuse_what_a_page_may_send_without_asking() {
        for simple in [
            "text/plain",
            "text/plain;charset=UTF-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
        ] {
            for accepts in [Accepts::Json, Accepts::Infer, Accepts::Scoring] {
                let err = content_type(&headers(&[("content-type", simple)]), accepts).unwrap_err();
                assert_eq!(err.0, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{simple}");
            }
        }
        let json = headers(&[("content-type", "application/json; charset=utf-8")]);
        assert_eq!(content_type(&json, Accepts::Json).unwrap(), Kind::Json);
        assert!(content_type(&headers(&[]), Accepts::Json).is_err());
        assert_eq!(
            content_type(&headers(&[]), Accepts::Infer).unwrap(),
            Kind::Json
        );
        let csv = headers(&[("content-type", "text/csv")]);
        assert_eq!(content_type(&csv, Accepts::Scoring).unwrap(), Kind::Csv);
        assert!(content_type(&csv, Accepts::Infer).is_err());
        let gzip = headers(&[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ]);
        assert!(
            content_type(&gzip, Accepts::Json)
                .unwrap_err()
                .1
                .contains("uncompressed")
        );
    }

    #[test]
    fn only_this_servers_origin_passes() {
        let host = ("host", "127.0.0.1:8080");
        assert_eq!(cross_site(&headers(&[host])), None);
        assert_eq!(
            cross_site(&headers(&[host, ("origin", "http://127.0.0.1:8080")])),
            None
        );
        for origin in ["http://evil.example", "null", "http://127.0.0.1:9999"] {
            assert!(
                cross_site(&headers(&[host, ("origin", origin)])).is_some(),
                "{origin}"
            );
        }
        assert!(cross_site(&headers(&[host, ("sec-fetch-site", "cross-site")])).is_some());
        assert!(cross_site(&headers(&[host, ("sec-fetch-site", "same-site")])).is_some());
        assert_eq!(
            cross_site(&headers(&[host, ("sec-fetch-site", "same-origin")])),
            None
        );
    }
}
