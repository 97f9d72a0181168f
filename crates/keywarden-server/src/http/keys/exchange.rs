//! `keys.exchangeToken` (a Keywarden extension): the body of `keys.verifyKey` plus an
//! optional `ttl` in milliseconds. The key is verified exactly as `keys.verifyKey` would
//! (so the exchange counts as a verification); a `VALID` outcome comes with a signed JWT,
//! any other outcome answers like verify, `valid: false` with the code and no token.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use keywarden_core::token::TokenPolicy;
use keywarden_core::verify::VerifyCode;
use serde::{Deserialize, Serialize};

use super::verify::{VerifyKeyBody, complete_site};
use crate::error::ApiError;
use crate::http::envelope::Data;
use crate::http::extract::{ApiJson, BrowserOrigin};
use crate::http::fields::Fields;
use crate::service::{Caller, TokenRequest, VerifyInput};
use crate::state::AppState;

/// The longest lifetime a request may name (30 days); the configured maximum caps it
/// further, without an error.
const MAX_REQUESTED_TTL_MS: i64 = 30 * 24 * 60 * 60 * 1000;

#[derive(Debug, Deserialize)]
pub struct ExchangeTokenBody {
    #[serde(flatten)]
    verify: VerifyKeyBody,
    ttl: Option<i64>,
}

impl TryFrom<ExchangeTokenBody> for TokenRequest {
    type Error = ApiError;

    fn try_from(body: ExchangeTokenBody) -> Result<Self, ApiError> {
        let mut f = Fields::new();
        let ttl_ms = body.ttl.and_then(|ttl| {
            f.range(
                "body.ttl",
                ttl,
                TokenPolicy::MIN_TTL_MS,
                MAX_REQUESTED_TTL_MS,
            )
        });
        let ttl_ok = body.ttl.is_none() || ttl_ms.is_some();
        f.finish(ttl_ok.then_some(()))?;
        let verify: VerifyInput = body.verify.try_into()?;
        Ok(Self { verify, ttl_ms })
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExchangeData<'a> {
    valid: bool,
    code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<&'a str>,
    /// The JWT, only for `VALID`.
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<&'a str>,
    /// When the token expires, in Unix milliseconds (whole seconds, as in its `exp`).
    #[serde(skip_serializing_if = "Option::is_none")]
    expires: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credits: Option<i64>,
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn exchange_token(
    State(state): State<AppState>,
    caller: Caller,
    BrowserOrigin(origin_header): BrowserOrigin,
    ApiJson(body): ApiJson<ExchangeTokenBody>,
) -> Result<Response, ApiError> {
    let mut request: TokenRequest = body.try_into()?;
    let origin = complete_site(&state, &mut request.verify, origin_header);
    let exchange = state
        .service
        .exchange_token(&caller, request, origin)
        .await?;
    let v = &exchange.verification;
    state.service.count_verification(v.code);
    Ok(Data(ExchangeData {
        valid: v.code == VerifyCode::Valid,
        code: v.code.as_str(),
        key_id: v.key.as_ref().map(|k| k.id.as_str()),
        token: exchange.token.as_ref().map(|t| t.jwt.as_str()),
        expires: exchange.token.as_ref().map(|t| t.expires.as_millis()),
        credits: v.credits,
    })
    .into_response())
}
