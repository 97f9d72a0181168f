//! The one error type of the server: every failure a request can meet, each mapped to the
//! Unkey error envelope (status, title, detail, type URL) in `http::response`.

use keywarden_core::store::StoreError;

/// A problem with one request field, reported in the 400 envelope's `errors[]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// Where the problem is, e.g. `body.credits.refill.amount`.
    pub location: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl FieldError {
    pub fn new(location: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            location: location.into(),
            message: message.into(),
            fix: None,
        }
    }

    pub fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

/// What kind of object was not found; each has its own error type URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    Key,
    Api,
    Identity,
    Namespace,
    Override,
    Permission,
    Role,
    RootKey,
    WebhookEndpoint,
}

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not valid JSON, has wrong types, or breaks a bound.
    #[error("{detail}")]
    InvalidInput {
        detail: String,
        errors: Vec<FieldError>,
    },
    /// A `permissions` query of `keys.verifyKey` that does not parse.
    #[error("{0}")]
    PermissionsQuerySyntax(String),
    /// An analytics query that does not parse or leaves the supported subset.
    #[error("{0}")]
    InvalidAnalyticsQuery(String),
    /// An analytics query stopped after its time budget.
    #[error("the analytics query did not finish within {0:?}")]
    AnalyticsQueryTimedOut(std::time::Duration),
    /// An analytics query that produced more rows than one answer may hold.
    #[error("the analytics query returned more than {0} rows")]
    AnalyticsRowsExceeded(usize),
    #[error("the Authorization header is missing")]
    MissingAuthorization,
    #[error("the Authorization header is malformed")]
    MalformedAuthorization,
    #[error("the root key is unknown or revoked")]
    UnknownRootKey,
    /// A secret scanning partner request whose signature is missing or does not verify.
    #[error("partner report refused: {0}")]
    PartnerSignature(String),
    /// The root key holds no permission for the operation, anywhere.
    #[error("missing permission: {0}")]
    MissingPermission(String),
    #[error("{detail}")]
    NotFound { what: Missing, detail: String },
    #[error("{0}")]
    Conflict(String),
    /// `identities.createIdentity` with an external id already in use.
    #[error("{0}")]
    IdentityExists(String),
    #[error("{0}")]
    PreconditionFailed(String),
    /// The object is protected against this change (e.g. delete protection); also a 412.
    #[error("{0}")]
    Protected(String),
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("no route for {0}")]
    RouteNotFound(String),
    /// A backend the operation needs is unreachable; the cause is for logs.
    #[error("a backend is unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(String),
    /// Anything that is the server's fault. The cause is logged, never sent.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// A 400 for one field.
    pub fn invalid_field(location: impl Into<String>, message: impl Into<String>) -> Self {
        Self::invalid(vec![FieldError::new(location, message)])
    }

    pub fn invalid(errors: Vec<FieldError>) -> Self {
        Self::InvalidInput {
            detail: "One or more fields failed validation".into(),
            errors,
        }
    }

    pub fn key_not_found() -> Self {
        Self::NotFound {
            what: Missing::Key,
            detail: "The requested key was not found.".into(),
        }
    }

    /// The 404 of endpoints that take an API to put keys into, as Unkey words it.
    pub fn specified_api_not_found() -> Self {
        Self::NotFound {
            what: Missing::Api,
            detail: "The specified API was not found.".into(),
        }
    }

    pub fn identity_not_found() -> Self {
        Self::NotFound {
            what: Missing::Identity,
            detail: "The requested identity was not found.".into(),
        }
    }

    pub fn namespace_not_found() -> Self {
        Self::NotFound {
            what: Missing::Namespace,
            detail: "The requested rate-limit namespace was not found.".into(),
        }
    }

    pub fn override_not_found() -> Self {
        Self::NotFound {
            what: Missing::Override,
            detail: "No override exists for this identifier in this namespace.".into(),
        }
    }

    pub fn root_key_not_found() -> Self {
        Self::NotFound {
            what: Missing::RootKey,
            detail: "The requested root key was not found.".into(),
        }
    }

    pub fn permission_not_found() -> Self {
        Self::NotFound {
            what: Missing::Permission,
            detail: "The requested permission was not found.".into(),
        }
    }

    /// A role named in a request does not exist (Unkey's wording).
    pub fn role_not_found(name: &str) -> Self {
        Self::NotFound {
            what: Missing::Role,
            detail: format!("Role '{name}' was not found."),
        }
    }

    pub fn webhook_endpoint_not_found() -> Self {
        Self::NotFound {
            what: Missing::WebhookEndpoint,
            detail: "The requested webhook endpoint was not found.".into(),
        }
    }

    pub fn api_not_found() -> Self {
        Self::NotFound {
            what: Missing::Api,
            detail: "The requested API was not found.".into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => Self::Conflict(format!("{what} already exists")),
            e @ StoreError::Unavailable(_) => Self::Unavailable(anyhow::Error::new(e)),
            e @ StoreError::Backend(_) => Self::Internal(anyhow::Error::new(e)),
        }
    }
}
