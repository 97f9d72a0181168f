//! Reading the anomalies detection raised (`anomalies.list`).

use keywarden_core::anomaly::{AnomalyFilter, RecordedAnomaly};
use keywarden_core::root_key::ops;
use keywarden_core::store::{Page, PageRequest};

use super::{Caller, Keywarden};
use crate::error::ApiError;

impl Keywarden {
    /// A page of the caller's workspace's anomalies, newest first.
    pub async fn anomalies(
        &self,
        caller: &Caller,
        filter: &AnomalyFilter,
        page: PageRequest,
    ) -> Result<Page<RecordedAnomaly>, ApiError> {
        caller.require_everywhere(ops::READ_ANOMALIES)?;
        Ok(self
            .store
            .anomalies(caller.workspace(), filter, page)
            .await?)
    }
}
