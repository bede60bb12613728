//! The registry auth flow's pieces: `WWW-Authenticate` challenges, scopes, tokens.
//!
//! A request goes out anonymously the first time an endpoint is used; a 401 carries the
//! endpoint's challenge (`Basic realm=...` or `Bearer realm=...,service=...,scope=...`), which
//! the client keeps, so later requests with a new scope set fetch their token up front. Tokens
//! are cached per scope set (`repository:NAME:pull`, `repository:NAME:pull,push`, the `from`
//! repository of a mount, `registry:catalog:*`) until they expire.
use std::time::{Duration, Instant};

/// What credentials the caller gave (TS owns where they are stored).
#[derive(Clone, Default)]
pub enum Credentials {
    #[default]
    Anonymous,
    /// Username and password (sent as Basic to a Basic registry or to the token realm).
    Basic { username: String, password: String },
    /// An OAuth2 refresh token (`identitytoken` in Docker's config), exchanged at the realm.
    IdentityToken { username: String, token: String },
    /// A bearer token to use as is.
    RegistryToken(String),
}

impl std::fmt::Debug for Credentials {
    // Never print secrets, whatever logs a Debug of a client.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credentials::Anonymous => "Anonymous",
            Credentials::Basic { .. } => "Basic(..)",
            Credentials::IdentityToken { .. } => "IdentityToken(..)",
            Credentials::RegistryToken(_) => "RegistryToken(..)",
        })
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// `basic` or `bearer` (lowercase).
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Parses one `WWW-Authenticate` header value into its challenges (RFC 7235: a scheme, then
/// `key=value` or `key="quoted value"` pairs; several challenges may share a header).
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut out: Vec<Challenge> = Vec::new();
    let b = header.as_bytes();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && (b[*i] == b' ' || b[*i] == b'\t' || b[*i] == b',') {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        if i >= b.len() {
            break;
        }
        let start = i;
        while i < b.len() && !matches!(b[i], b' ' | b'\t' | b'=' | b',') {
            i += 1;
        }
        let token = &header[start..i];
        let mut j = i;
        while j < b.len() && (b[j] == b' ' || b[j] == b'\t') {
            j += 1;
        }
        if j < b.len() && b[j] == b'=' && !out.is_empty() {
            // key=value of the current challenge
            j += 1;
            while j < b.len() && (b[j] == b' ' || b[j] == b'\t') {
                j += 1;
            }
            let mut value = String::new();
            if j < b.len() && b[j] == b'"' {
                j += 1;
                while j < b.len() && b[j] != b'"' {
                    if b[j] == b'\\' && j + 1 < b.len() {
                        j += 1;
                    }
                    let ch_len = header[j..].chars().next().map_or(1, char::len_utf8);
                    value.push_str(&header[j..j + ch_len]);
                    j += ch_len;
                }
                j += 1;
            } else {
                let vs = j;
                while j < b.len() && b[j] != b',' {
                    j += 1;
                }
                value = header[vs..j].trim().to_string();
            }
            out.last_mut().expect("checked").params.push((token.to_ascii_lowercase(), value));
            i = j;
        } else {
            out.push(Challenge { scheme: token.to_ascii_lowercase(), params: Vec::new() });
        }
    }
    out
}

/// A canonical scope set: each resource once, its actions merged and sorted, resources sorted.
pub fn canonical_scopes<'a>(scopes: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut by_resource: Vec<(String, Vec<String>)> = Vec::new();
    for s in scopes {
        for one in s.split(' ').filter(|x| !x.is_empty()) {
            let (resource, actions) = match one.rfind(':') {
                Some(i) => (&one[..i], &one[i + 1..]),
                None => (one, ""),
            };
            let entry = match by_resource.iter_mut().find(|(r, _)| r == resource) {
                Some(e) => e,
                None => {
                    by_resource.push((resource.to_string(), Vec::new()));
                    by_resource.last_mut().expect("pushed")
                }
            };
            for a in actions.split(',').filter(|a| !a.is_empty()) {
                if !entry.1.iter().any(|x| x == a) {
                    entry.1.push(a.to_string());
                }
            }
        }
    }
    by_resource.sort();
    by_resource
        .into_iter()
        .map(|(r, mut a)| {
            a.sort();
            format!("{r}:{}", a.join(","))
        })
        .collect()
}

/// A bearer token and when to stop using it.
#[derive(Clone)]
pub struct Token {
    pub value: String,
    pub expires: Instant,
    /// A refresh token (Docker's `identitytoken`) the answer carried: the issuer hands one out
    /// for `offline_token=true` (GET) or `access_type=offline` (OAuth2 POST), and may rotate it
    /// when one is used.
    pub refresh: Option<String>,
}

/// The OAuth2 client id sent to token issuers: Docker's (`registry.AuthClientID`). Issuers may
/// bind a refresh token to the client it was issued to (RFC 6749 §6), so strata presents
/// itself as Docker does: an identity token `docker login` stored works for strata, and one
/// `strata login` stored works for docker.
pub const CLIENT_ID: &str = "docker";

/// Tokens live at least this long (the distribution spec's default `expires_in`).
pub const MIN_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// A token is refreshed this long before it expires, so it does not expire in flight.
pub const TOKEN_SLACK: Duration = Duration::from_secs(5);

/// Reads a token endpoint's answer: `token` or `access_token`, `expires_in` seconds, and a
/// `refresh_token` if there is one.
pub fn parse_token_response(body: &[u8], now: Instant) -> Option<Token> {
    #[derive(serde::Deserialize)]
    struct T {
        token: Option<String>,
        access_token: Option<String>,
        expires_in: Option<u64>,
        refresh_token: Option<String>,
    }
    let t: T = serde_json::from_slice(body).ok()?;
    let value = t.token.filter(|s| !s.is_empty()).or(t.access_token.filter(|s| !s.is_empty()))?;
    let clean = |s: &str| !s.bytes().any(|c| c.is_ascii_control() || c == b' ');
    if !clean(&value) {
        return None;
    }
    let refresh = match t.refresh_token.filter(|s| !s.is_empty()) {
        Some(r) if !clean(&r) => return None,
        r => r,
    };
    let life = t.expires_in.map(Duration::from_secs).unwrap_or(MIN_TOKEN_LIFETIME);
    Some(Token { value, expires: now + life, refresh })
}

/// Whether a token endpoint's refusal is an OAuth2 error about the grant or the client
/// (RFC 6749 §5.2: `invalid_grant`, `invalid_client`, `unauthorized_client`): a refresh token
/// or password the issuer does not accept, which is `Unauthorized` whatever the status (400).
pub fn is_oauth_refusal(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct E {
        error: Option<String>,
    }
    serde_json::from_slice::<E>(body)
        .ok()
        .and_then(|e| e.error)
        .is_some_and(|e| matches!(e.as_str(), "invalid_grant" | "invalid_client" | "unauthorized_client"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_and_basic_challenges() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.example/token"));
        assert_eq!(c[0].param("scope"), Some("repository:a/b:pull,push"));
        let c = parse_challenges(r#"Basic realm="Registry Realm", Bearer realm="x\"y""#);
        assert_eq!(c.iter().map(|c| c.scheme.as_str()).collect::<Vec<_>>(), ["basic", "bearer"]);
        assert_eq!(c[1].param("realm"), Some("x\"y"));
        assert!(parse_challenges("").is_empty());
    }

    #[test]
    fn scope_sets_are_canonical() {
        assert_eq!(
            canonical_scopes(["repository:b:push", "repository:a:pull", "repository:b:pull"]),
            ["repository:a:pull", "repository:b:pull,push"]
        );
        assert_eq!(canonical_scopes(["registry:catalog:*"]), ["registry:catalog:*"]);
    }

    #[test]
    fn token_responses() {
        let now = Instant::now();
        let t = parse_token_response(br#"{"token":"abc","expires_in":300}"#, now).unwrap();
        assert_eq!(t.value, "abc");
        assert_eq!(t.expires, now + Duration::from_secs(300));
        assert_eq!(parse_token_response(br#"{"access_token":"x"}"#, now).unwrap().expires, now + MIN_TOKEN_LIFETIME);
        assert_eq!(t.refresh, None);
        let r = parse_token_response(br#"{"access_token":"x","refresh_token":"r-1"}"#, now).unwrap();
        assert_eq!(r.refresh.as_deref(), Some("r-1"));
        assert!(parse_token_response(br#"{"token":"x","refresh_token":"a b"}"#, now).is_none());
        assert!(is_oauth_refusal(br#"{"error":"invalid_grant","error_description":"x"}"#));
        assert!(!is_oauth_refusal(br#"{"error":"server_error"}"#));
        assert!(!is_oauth_refusal(b"<html>"));
        assert!(parse_token_response(b"<html>", now).is_none());
        assert!(parse_token_response(br#"{"token":""}"#, now).is_none());
        assert!(parse_token_response(br#"{"token":"a\nb"}"#, now).is_none());
    }
}
