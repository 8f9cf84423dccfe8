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

/// The fewest characters a configured token may have.
pub const MIN_TOKEN_CHARS: usize = 16;

/// Refuses a token too short to resist guessing (a daemon makes 32 random hex digits).
pub fn check_strength(token: &str) -> Result<(), String> {
    let chars = token.chars().count();
    if chars < MIN_TOKEN_CHARS {
        return Err(format!(
            "the token has {chars} characters; use at least {MIN_TOKEN_CHARS} (for example 32 random hex digits: `openssl rand -hex 16`)"
        ));
    }
    Ok(())
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

    #[test]
    fn short_tokens_are_refused() {
        assert!(check_strength("x").is_err());
        assert!(check_strength("fifteen-chars!!").is_err());
        assert!(check_strength("sixteen-chars!!!").is_ok());
    }
}
