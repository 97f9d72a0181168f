//! `audit.listLogs` (a Keywarden extension in the Unkey RPC style): a page of the workspace's
//! audit log, newest first, with the Unkey pagination envelope.

use crate::http::wire::parse_time_window;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use keywarden_core::audit::{AuditAction, AuditFilter};
use keywarden_core::store::PageRequest;
use serde::Deserialize;

use super::envelope::{Paginated, Pagination};
use super::extract::ApiJson;
use super::fields::Fields;
use crate::error::ApiError;
use crate::service::Caller;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v2/audit.listLogs", post(list_logs))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListLogsBody {
    cursor: Option<String>,
    limit: Option<i64>,
    actor_id: Option<String>,
    action: Option<String>,
    target_id: Option<String>,
    /// Unix milliseconds, inclusive.
    since: Option<i64>,
    /// Unix milliseconds, inclusive.
    until: Option<i64>,
}

struct ListLogs {
    filter: AuditFilter,
    page: PageRequest,
}

impl TryFrom<ListLogsBody> for ListLogs {
    type Error = ApiError;

    fn try_from(body: ListLogsBody) -> Result<Self, ApiError> {
        let mut f = Fields::new();
        let limit = f.range("body.limit", body.limit.unwrap_or(100), 1, 100);
        if let Some(cursor) = &body.cursor {
            f.length("body.cursor", cursor, 1, 1024);
        }
        if let Some(actor) = &body.actor_id {
            f.length("body.actorId", actor, 1, 255);
        }
        if let Some(target) = &body.target_id {
            f.length("body.targetId", target, 1, 255);
        }
        let action = body.action.and_then(|a| {
            let parsed = AuditAction::parse(&a);
            if parsed.is_none() {
                f.error("body.action", format!("'{a}' is not an audit action"));
            }
            parsed
        });
        let (since, until) = parse_time_window(&mut f, body.since, body.until);
        f.finish(limit.map(|limit| ListLogs {
            filter: AuditFilter {
                actor: body.actor_id,
                action,
                target_id: body.target_id,
                since,
                until,
            },
            page: PageRequest {
                from: body.cursor,
                limit: usize::try_from(limit).unwrap_or(100),
            },
        }))
    }
}

#[tracing::instrument(level = "debug", skip_all)]
async fn list_logs(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ListLogsBody>,
) -> Result<Response, ApiError> {
    let request = ListLogs::try_from(body)?;
    let page = state
        .service
        .audit_logs(&caller, &request.filter, request.page)
        .await?;
    Ok(Paginated(page.items, Pagination::from_next(page.next)).into_response())
}
