//! Request extractors: the JSON body with Unkey-style 400s and 413s, and the authenticated
//! root key.

use axum::body::{Body, HttpBody as _};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, ORIGIN, REFERER};
use axum::http::request::Parts;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt as _;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::service::Caller;
use crate::state::AppState;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A JSON body deserialized into `T`. Type errors name the field that failed
/// (`body.credits.remaining`); unknown fields are ignored, as the SDKs send fields from newer
/// spec versions.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        // A declared length over the limit is refused before reading anything. The body knows
        // its declared `Content-Length` (hyper parsed it), so the header is not looked up again.
        if req.body().size_hint().lower() > MAX_BODY_BYTES as u64 {
            return Err(ApiError::PayloadTooLarge {
                limit: MAX_BODY_BYTES,
            });
        }
        let bytes = read_body(req.into_body()).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::invalid_field(
                "body",
                "the request body is empty; expected a JSON document",
            ));
        }
        // PostgreSQL text cannot hold NUL, and no identifier, name or key needs it: refused
        // here, alike on every store.
        if has_nul_escape(&bytes) {
            return Err(ApiError::invalid_field(
                "body",
                "text must not contain the NUL character (\\u0000)",
            ));
        }
        // The plain parser is the fast path; only a body that fails is parsed again with
        // path tracking, to name the field in the 400.
        let value = serde_json::from_slice(&bytes).map_err(|_| field_error::<T>(&bytes))?;
        Ok(Self(value))
    }
}

/// Parses `bytes` again, tracking the path, to report where and why it failed.
fn field_error<T: DeserializeOwned>(bytes: &[u8]) -> ApiError {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    let error = match result {
        Err(e) => {
            let path = e.path().to_string();
            let location = if path == "." || path == "?" {
                "body".to_owned()
            } else {
                format!("body.{path}")
            };
            return ApiError::invalid_field(location, without_values(&e.into_inner().to_string()));
        }
        Ok(_) => de.end().err(),
    };
    ApiError::invalid_field(
        "body",
        error.map_or_else(
            || "the request body is not valid JSON".to_owned(),
            |e| e.to_string(),
        ),
    )
}

/// A JSON error message without the values it quotes (`invalid type: string "…"`, `unknown
/// variant `…``): a misplaced key or root key must not come back in an error, nor reach a
/// log that records errors.
fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    loop {
        let string = rest
            .find("string \"")
            .map(|at| (at, "string \"", '"', "a string"));
        let variant = rest
            .find("variant `")
            .map(|at| (at, "variant `", '`', "variant"));
        let next = match (string, variant) {
            (Some(s), Some(v)) => Some(if s.0 < v.0 { s } else { v }),
            (s, v) => s.or(v),
        };
        let Some((at, opening, quote, replacement)) = next else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..at]);
        out.push_str(replacement);
        rest = skip_quoted(&rest[at + opening.len()..], quote);
    }
}

/// What follows the closing `quote` of a quoted value (escaped quotes skipped).
fn skip_quoted(s: &str, quote: char) -> &str {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            c if c == quote && !escaped => return &s[i + c.len_utf8()..],
            _ => escaped = false,
        }
    }
    ""
}

/// Whether a JSON document holds the escape `\u0000` (a raw NUL byte is not valid JSON, so
/// this is the only way one gets in): a `u0000` after an odd run of backslashes.
fn has_nul_escape(bytes: &[u8]) -> bool {
    // Most bodies have no escapes at all; `contains` finds that a word at a time.
    if !bytes.contains(&b'\\') {
        return false;
    }
    let mut i = 0;
    while let Some(offset) = bytes[i..].iter().position(|&b| b == b'\\') {
        let start = i + offset;
        let run = bytes[start..].iter().take_while(|&&b| b == b'\\').count();
        let after = start + run;
        if run % 2 == 1 && bytes[after..].starts_with(b"u0000") {
            return true;
        }
        i = after;
    }
    false
}

/// The whole body, refused once it passes [`MAX_BODY_BYTES`]. Trailers are ignored. A body
/// that arrives as one frame (nearly every request) is kept as it came: no list of frames to
/// allocate and collect, as `axum::body::to_bytes` does for every body.
async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    let mut body = body;
    let mut first = Bytes::new();
    // Only for a body of several frames.
    let mut joined: Option<BytesMut> = None;
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|_| ApiError::invalid_field("body", "the request body could not be read"))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        len += data.len();
        if len > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge {
                limit: MAX_BODY_BYTES,
            });
        }
        match &mut joined {
            Some(joined) => joined.extend_from_slice(&data),
            None if first.is_empty() => first = data,
            None => {
                let mut both = BytesMut::with_capacity(first.len() + data.len());
                both.extend_from_slice(&first);
                both.extend_from_slice(&data);
                joined = Some(both);
            }
        }
    }
    Ok(joined.map_or(first, BytesMut::freeze))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or(ApiError::MissingAuthorization)?;
        let token = header
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::MalformedAuthorization)?;
        let context = super::context::current();
        Ok(state
            .service
            .authenticate(token)?
            .with_request(context.request_id, context.client_ip))
    }
}

/// The request's `Origin` header, or else its `Referer`, unparsed: what browser-key
/// restrictions check. Taking the value is a reference-count increment; it is parsed only
/// for keys that have origin restrictions.
pub struct BrowserOrigin(pub Option<axum::http::HeaderValue>);

impl<S: Send + Sync> FromRequestParts<S> for BrowserOrigin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // One pass over the few headers a request has, rather than two map lookups that both
        // miss for the usual server-side caller. The first value of a name comes first, as
        // `HeaderMap::get` would return it.
        let mut referer = None;
        for (name, value) in &parts.headers {
            if name == ORIGIN {
                return Ok(Self(Some(value.clone())));
            }
            if name == REFERER && referer.is_none() {
                referer = Some(value);
            }
        }
        Ok(Self(referer.cloned()))
    }
}

#[cfg(test)]
mod tests {
    use super::{has_nul_escape, without_values};

    #[test]
    fn json_errors_lose_the_values_they_quote() {
        let err = serde_json::from_str::<bool>(r#""sk_secret\"quoted""#).unwrap_err();
        let shown = without_values(&err.to_string());
        assert!(
            !shown.contains("secret") && !shown.contains("quoted"),
            "{shown}"
        );
        assert!(
            shown.contains("invalid type: a string, expected a boolean"),
            "{shown}"
        );

        #[derive(Debug, serde::Deserialize)]
        #[serde(rename_all = "lowercase")]
        enum Op {
            Set,
        }
        let err = serde_json::from_str::<Op>(r#""sk_secret""#).unwrap_err();
        let shown = without_values(&err.to_string());
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("expected `set`"), "{shown}");
    }

    #[test]
    fn nul_escapes_are_found_and_escaped_backslashes_are_not() {
        assert!(has_nul_escape(br#"{"name":"a\u0000b"}"#));
        assert!(has_nul_escape(br#"{"name":"\\\u0000"}"#));
        assert!(!has_nul_escape(br#"{"name":"\\u0000"}"#));
        assert!(!has_nul_escape(br#"{"name":"\u0001 plain"}"#));
        assert!(!has_nul_escape(br#"{"name":"no escapes at all"}"#));
        assert!(!has_nul_escape(br#"{"name":"trailing \"}"#));
    }
}
