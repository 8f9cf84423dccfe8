//! The admin token as every HTTP surface checks it (the server's admin routes, the daemon's
//! API, the web UI): given as `Authorization: Bearer ...`, compared without an early exit so
//! that the time taken says nothing about the token.

use axum::http::{HeaderMap, header};

/// The bearer token a request carries, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// Equal, compared without an early exit.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Whether the request carries `token` as its bearer token.
pub fn carries(headers: &HeaderMap, token: &str) -> bool {
    bearer(headers).is_some_and(|given| same(given, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_as_a_bearer_is_accepted() {
        let mut headers = HeaderMap::new();
        assert!(!carries(&headers, "secret"));
        headers.insert(header::AUTHORIZATION, "Bearer secret".parse().unwrap());
        assert!(carries(&headers, "secret"));
        assert!(!carries(&headers, "secre"));
        assert!(!carries(&headers, "secrets"));
        headers.insert(header::AUTHORIZATION, "Basic secret".parse().unwrap());
        assert!(!carries(&headers, "secret"));
    }
}
