//! Turning [`ApiError`] into the Unkey error envelope:
//! `{ "meta": { "requestId" }, "error": { "title", "detail", "status", "type", "errors"? } }`.
//! `errors` is present exactly on 400s, as the SDKs require.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keywarden_core::id::RequestId;
use serde::Serialize;

use super::context;
use super::envelope::json_response;
use crate::error::{ApiError, FieldError, Missing};

const DOCS: &str = "https://unkey.com/docs/errors";
const INTERNAL_DETAIL: &str =
    "Something went wrong on our side. The request id identifies it in the server's logs.";

#[derive(Serialize)]
struct ErrorBody<'a> {
    meta: Meta,
    error: Problem<'a>,
}

#[derive(Serialize)]
struct Meta {
    #[serde(rename = "requestId")]
    request_id: RequestId,
}

#[derive(Serialize)]
struct Problem<'a> {
    title: &'static str,
    detail: String,
    status: u16,
    #[serde(rename = "type")]
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [FieldError]>,
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::InvalidInput { .. }
            | Self::PermissionsQuerySyntax(_)
            | Self::InvalidAnalyticsQuery(_)
            | Self::MissingAuthorization
            | Self::MalformedAuthorization => StatusCode::BAD_REQUEST,
            Self::AnalyticsQueryTimedOut(_) | Self::AnalyticsRowsExceeded(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::UnknownRootKey | Self::PartnerSignature(_) => StatusCode::UNAUTHORIZED,
            Self::MissingPermission(_) => StatusCode::FORBIDDEN,
            Self::NotFound { .. } | Self::RouteNotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) | Self::IdentityExists(_) => StatusCode::CONFLICT,
            Self::PreconditionFailed(_) | Self::Protected(_) => StatusCode::PRECONDITION_FAILED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn title(&self) -> &'static str {
        match self {
            Self::InvalidInput { .. }
            | Self::PermissionsQuerySyntax(_)
            | Self::InvalidAnalyticsQuery(_)
            | Self::MissingAuthorization
            | Self::MalformedAuthorization => "Bad Request",
            Self::AnalyticsQueryTimedOut(_) | Self::AnalyticsRowsExceeded(_) => {
                "Unprocessable Entity"
            }
            Self::UnknownRootKey | Self::PartnerSignature(_) => "Unauthorized",
            Self::MissingPermission(_) => "Insufficient Permissions",
            Self::NotFound { .. } | Self::RouteNotFound(_) => "Not Found",
            Self::Conflict(_) | Self::IdentityExists(_) => "Conflicting Resource",
            Self::PreconditionFailed(_) | Self::Protected(_) => "Precondition Failed",
            Self::PayloadTooLarge { .. } => "Request Entity Too Large",
            Self::MethodNotAllowed(_) => "Method Not Allowed",
            Self::Internal(_) => "Internal Server Error",
            Self::Unavailable(_) => "Service Unavailable",
        }
    }

    fn type_path(&self) -> &'static str {
        match self {
            Self::InvalidInput { .. } => "unkey/application/invalid_input",
            Self::PermissionsQuerySyntax(_) => {
                "unkey/user/bad_request/permissions_query_syntax_error"
            }
            Self::InvalidAnalyticsQuery(_) => "user/bad_request/invalid_analytics_query",
            Self::AnalyticsQueryTimedOut(_) => "user/unprocessable_entity/query_execution_timeout",
            Self::AnalyticsRowsExceeded(_) => "user/unprocessable_entity/query_rows_limit_exceeded",
            Self::MissingAuthorization => "unkey/authentication/missing",
            Self::MalformedAuthorization => "unkey/authentication/malformed",
            Self::UnknownRootKey => "unkey/authentication/key_not_found",
            Self::PartnerSignature(_) => "keywarden/authentication/invalid_signature",
            Self::MissingPermission(_) => "unkey/authorization/insufficient_permissions",
            Self::NotFound {
                what: Missing::Key, ..
            } => "unkey/data/key_not_found",
            Self::NotFound {
                what: Missing::Api, ..
            } => "unkey/data/api_not_found",
            Self::NotFound {
                what: Missing::Identity,
                ..
            } => "unkey/data/identity_not_found",
            Self::NotFound {
                what: Missing::Namespace,
                ..
            } => "unkey/data/ratelimit_namespace_not_found",
            Self::NotFound {
                what: Missing::Override,
                ..
            } => "unkey/data/ratelimit_override_not_found",
            Self::NotFound {
                what: Missing::Permission,
                ..
            } => "unkey/data/permission_not_found",
            Self::NotFound {
                what: Missing::Role,
                ..
            } => "unkey/data/role_not_found",
            Self::NotFound {
                what: Missing::RootKey,
                ..
            } => "unkey/data/key_not_found",
            Self::NotFound {
                what: Missing::WebhookEndpoint,
                ..
            } => "unkey/data/webhook_endpoint_not_found",
            Self::Conflict(_) => "unkey/data/conflict",
            Self::IdentityExists(_) => "unkey/data/identity_already_exists",
            Self::PreconditionFailed(_) => "unkey/application/precondition_failed",
            Self::Protected(_) => "unkey/application/protected_resource",
            Self::PayloadTooLarge { .. } => "unkey/application/request_too_large",
            Self::RouteNotFound(_) | Self::MethodNotAllowed(_) => "unkey/application/not_found",
            Self::Internal(_) => "unkey/application/unexpected_error",
            Self::Unavailable(_) => "unkey/application/service_unavailable",
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::InvalidInput { detail, .. } => detail.clone(),
            Self::PermissionsQuerySyntax(problem) => {
                format!("The permissions query is not valid: {problem}.")
            }
            Self::InvalidAnalyticsQuery(problem) => {
                format!("The analytics query is not valid: {problem}.")
            }
            Self::AnalyticsQueryTimedOut(budget) => format!(
                "The analytics query did not finish within {} ms and was stopped; narrow it \
                 (a shorter time range, a rollup table such as key_verifications_per_hour_v1).",
                budget.as_millis()
            ),
            Self::AnalyticsRowsExceeded(max) => format!(
                "The analytics query returned more than {max} rows; aggregate it or add a LIMIT."
            ),
            Self::MissingAuthorization => {
                "Authorization header is required: send 'Authorization: Bearer <root key>'.".into()
            }
            Self::MalformedAuthorization => {
                "Authorization header must have the form 'Bearer <root key>'.".into()
            }
            Self::UnknownRootKey => "The provided root key is invalid or has been revoked.".into(),
            Self::PartnerSignature(why) => {
                format!("The secret scanning report was refused: {why}.")
            }
            Self::MissingPermission(p) => {
                format!("The root key lacks the permission to do this. Missing permission: {p}")
            }
            Self::NotFound { detail, .. } => detail.clone(),
            Self::Conflict(m)
            | Self::IdentityExists(m)
            | Self::PreconditionFailed(m)
            | Self::Protected(m) => m.clone(),
            Self::PayloadTooLarge { limit } => {
                format!("The request body exceeds the limit of {limit} bytes.")
            }
            Self::RouteNotFound(path) => format!("No endpoint exists at {path}."),
            Self::MethodNotAllowed(method) => {
                format!("Method {method} is not allowed on this endpoint; use POST.")
            }
            Self::Internal(_) => INTERNAL_DETAIL.into(),
            Self::Unavailable(_) => {
                "A backend this operation needs is unreachable; nothing was changed. Retry shortly."
                    .into()
            }
        }
    }
}

/// Marks a response that failed because the store failed, so the request middleware can
/// count store errors for `/metrics` without the error knowing about metrics.
#[derive(Debug, Clone, Copy)]
pub struct StoreFailure;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let store_failed = matches!(
            &self,
            Self::Internal(cause) | Self::Unavailable(cause)
                if cause.downcast_ref::<keywarden_core::store::StoreError>().is_some()
        );
        let mut response = self.render();
        if store_failed {
            response.extensions_mut().insert(StoreFailure);
        }
        response
    }
}

impl ApiError {
    fn render(self) -> Response {
        if let Self::Internal(cause) = &self {
            return internal_response(cause);
        }
        if let Self::Unavailable(cause) = &self {
            tracing::warn!(error = ?cause, "request failed: backend unavailable");
        }
        let context = context::current();
        let query_error: [FieldError; 1];
        let errors = match &self {
            Self::InvalidInput { errors, .. } => Some(errors.as_slice()),
            Self::PermissionsQuerySyntax(problem) => {
                query_error = [FieldError::new("body.permissions", problem.clone())];
                Some(&query_error[..])
            }
            Self::InvalidAnalyticsQuery(problem) => {
                query_error = [FieldError::new("body.query", problem.clone())];
                Some(&query_error[..])
            }
            Self::MissingAuthorization | Self::MalformedAuthorization => Some(&[][..]),
            _ => None,
        };
        let status = self.status();
        let body = ErrorBody {
            meta: Meta {
                request_id: context.request_id,
            },
            error: Problem {
                title: self.title(),
                detail: self.detail(),
                status: status.as_u16(),
                kind: format!("{DOCS}/{}", self.type_path()),
                errors,
            },
        };
        let content_type = if context.problem_json {
            "application/problem+json"
        } else {
            "application/json"
        };
        match serde_json::to_vec(&body) {
            Ok(bytes) => json_response(status, content_type, bytes),
            Err(e) => internal_response(&anyhow::Error::new(e)),
        }
    }
}

/// A 500 that says nothing about the cause; the cause goes to the log with the request id.
pub fn internal_response(cause: &anyhow::Error) -> Response {
    let context = context::current();
    tracing::error!(request_id = %context.request_id, error = ?cause, "request failed");
    let body = serde_json::json!({
        "meta": { "requestId": context.request_id.as_str() },
        "error": {
            "title": "Internal Server Error",
            "detail": INTERNAL_DETAIL,
            "status": 500,
            "type": format!("{DOCS}/unkey/application/unexpected_error"),
        }
    });
    json_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "application/json",
        body.to_string().into_bytes(),
    )
}
