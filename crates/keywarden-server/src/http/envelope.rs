//! Success responses: `{ "meta": { "requestId" }, "data": … }`, plus `pagination` on lists.

use axum::body::Body;
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
                request_id: context::request_id(),
            },
        };
        match serde_json::to_vec(&body) {
            Ok(body) => json_response(StatusCode::OK, "application/json", body),
            Err(e) => super::error::internal_response(&anyhow::Error::new(e)),
        }
    }
}

pub fn json_response(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response {
    // Built directly: `(status, body).into_response()` would first set a content type of its
    // own for this one to replace.
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn envelope_response<T: Serialize>(data: &T, pagination: Option<&Pagination>) -> Response {
    let mut body = envelope_head();
    let written = serde_json::to_writer(&mut body, data).and_then(|()| match pagination {
        Some(pagination) => {
            body.extend_from_slice(b",\"pagination\":");
            serde_json::to_writer(&mut body, pagination)
        }
        None => Ok(()),
    });
    match written {
        Ok(()) => {
            body.push(b'}');
            json_response(StatusCode::OK, "application/json", body)
        }
        Err(e) => super::error::internal_response(&anyhow::Error::new(e)),
    }
}

/// A 200 response whose `data` is written as JSON by `write_data` (exactly one JSON value),
/// into the same buffer as the envelope.
pub fn data_json_response(write_data: impl FnOnce(&mut Vec<u8>)) -> Response {
    let mut body = envelope_head();
    write_data(&mut body);
    body.push(b'}');
    json_response(StatusCode::OK, "application/json", body)
}

/// A success body up to its `data`: `{"meta":{"requestId":"…"},"data":`. Written by hand
/// rather than serialized: the request id needs no escaping, and the data follows in the same
/// buffer.
fn envelope_head() -> Vec<u8> {
    let request_id = context::request_id();
    // Most responses fit; growing the buffer while serializing costs more than the slack.
    let mut body = Vec::with_capacity(512);
    body.extend_from_slice(b"{\"meta\":{\"requestId\":\"");
    // A `RequestId` holds only ASCII letters, digits and `_`: nothing to escape.
    body.extend_from_slice(request_id.as_str().as_bytes());
    body.extend_from_slice(b"\"},\"data\":");
    body
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
