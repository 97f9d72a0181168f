//! Success responses: `{ "meta": { "requestId" }, "data": … }`, plus `pagination` on lists.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use keywarden_core::id::RequestId;

use super::context;

#[derive(Serialize)]
struct Meta {
    #[serde(rename = "requestId")]
    request_id: RequestId,
}

#[derive(Serialize)]
struct Envelope<'a, T> {
    meta: Meta,
    data: &'a T,
    #[serde(skip_serializing_if = "Option::is_none")]
    pagination: Option<&'a Pagination>,
}

/// The pagination member of list responses. `cursor` is absent on the last page: the SDKs'
/// pagers stop only when it is.
#[derive(Debug, Serialize)]
pub struct Pagination {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    #[serde(rename = "hasMore")]
    pub has_more: bool,
}

impl Pagination {
    pub fn from_next(next: Option<String>) -> Self {
        Self {
            has_more: next.is_some(),
            cursor: next,
        }
    }
}

/// A 200 response with `data`.
pub struct Data<T>(pub T);

/// A 200 list response with `data` and `pagination`.
pub struct Paginated<T>(pub T, pub Pagination);

/// An empty `data: {}` response.
#[derive(Serialize)]
pub struct Empty {}

/// A 200 response with only `meta`, no `data` (`identities.deleteIdentity` answers so).
pub struct MetaOnly;

impl IntoResponse for MetaOnly {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body {
            meta: Meta,
        }
        let body = Body {
            meta: Meta {
                request_id: context::current().request_id,
            },
        };
        match serde_json::to_vec(&body) {
            Ok(body) => json_response(StatusCode::OK, "application/json", body),
            Err(e) => super::error::internal_response(&anyhow::Error::new(e)),
        }
    }
}

pub fn json_response(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn envelope_response<T: Serialize>(data: &T, pagination: Option<&Pagination>) -> Response {
    let envelope = Envelope {
        meta: Meta {
            request_id: context::current().request_id,
        },
        data,
        pagination,
    };
    // Most responses fit; growing the buffer while serializing costs more than the slack.
    let mut body = Vec::with_capacity(512);
    match serde_json::to_writer(&mut body, &envelope) {
        Ok(()) => json_response(StatusCode::OK, "application/json", body),
        Err(e) => super::error::internal_response(&anyhow::Error::new(e)),
    }
}

/// A 200 response whose `data` is written as JSON by `write_data` (exactly one JSON value),
/// into the same buffer as the envelope.
pub fn data_json_response(write_data: impl FnOnce(&mut Vec<u8>)) -> Response {
    let request_id = context::current().request_id;
    let mut body = Vec::with_capacity(512);
    body.extend_from_slice(b"{\"meta\":{\"requestId\":\"");
    // A `RequestId` holds only ASCII letters, digits and `_`: nothing to escape.
    body.extend_from_slice(request_id.as_str().as_bytes());
    body.extend_from_slice(b"\"},\"data\":");
    write_data(&mut body);
    body.push(b'}');
    json_response(StatusCode::OK, "application/json", body)
}

impl<T: Serialize> IntoResponse for Data<T> {
    fn into_response(self) -> Response {
        envelope_response(&self.0, None)
    }
}

impl<T: Serialize> IntoResponse for Paginated<T> {
    fn into_response(self) -> Response {
        envelope_response(&self.0, Some(&self.1))
    }
}
