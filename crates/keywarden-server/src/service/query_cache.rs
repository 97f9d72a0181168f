//! Compiled permission queries, so that verifications with a query the server has seen do
//! no parsing: clients send the same few queries again and again.

use std::sync::Arc;

use keywarden_core::permission_query::PermissionQuery;
use quick_cache::sync::Cache;

use crate::error::ApiError;

/// How many distinct queries are kept.
const CAPACITY: usize = 10_000;

pub struct QueryCache {
    compiled: Cache<String, Arc<PermissionQuery>>,
}

impl Default for QueryCache {
    fn default() -> Self {
        Self {
            compiled: Cache::new(CAPACITY),
        }
    }
}

impl QueryCache {
    /// The compiled form of `text`; a query that does not parse is a 400 (and not kept).
    pub fn compile(&self, text: &str) -> Result<Arc<PermissionQuery>, ApiError> {
        if let Some(query) = self.compiled.get(text) {
            return Ok(query);
        }
        let query = Arc::new(
            PermissionQuery::parse(text)
                .map_err(|e| ApiError::PermissionsQuerySyntax(e.to_string()))?,
        );
        self.compiled.insert(text.to_owned(), Arc::clone(&query));
        Ok(query)
    }
}
