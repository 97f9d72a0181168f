//! Workspaces: the tenants. Every other object belongs to exactly one.

use crate::id::WorkspaceId;
use crate::text::Label;
use crate::time::UnixMillis;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    pub id: WorkspaceId,
    pub name: Label,
    pub created_at: UnixMillis,
}
