//! The content types an endpoint reads, checked before its body is.
//!
//! The types a web page may send without asking first (`text/plain`, forms, multipart) are
//! refused by every JSON endpoint, so a page elsewhere cannot post to the server even through a
//! browser that sends no `Origin` (the HTTP layer refuses cross-site requests that do). A body
//! without a `Content-Type` is read as JSON on the inference routes only, because Triton's own
//! clients send none.

use axum::http::{HeaderMap, StatusCode, header};

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
                    crate::excerpt::excerpt(declared, 80)
                ),
                None => format!("the request has no Content-Type: send {wanted}"),
            },
        )
    })
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
}
