//! What handlers share.

use std::sync::Arc;

use crate::service::Keywarden;

#[derive(Clone)]
pub struct AppState {
    pub service: Arc<Keywarden>,
}
