//! Checking request fields against the wire's bounds, collecting every problem so one 400
//! lists them all.

use std::fmt::Display;

use keywarden_core::text::check_length;

use crate::error::{ApiError, FieldError};

/// Collects field errors while a request body is converted into domain values.
#[derive(Debug, Default)]
pub struct Fields {
    errors: Vec<FieldError>,
}

impl Fields {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn error(&mut self, location: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError::new(location, message));
    }

    /// Records `result`'s error at `location`; yields the value when it is fine.
    ///
    /// Locations are `Display` so that callers can pass one that is only formatted when there
    /// is an error (see [`At`]): valid requests, the common case, build no location strings.
    pub fn check<T, E: Display>(
        &mut self,
        location: impl Display,
        result: Result<T, E>,
    ) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.error(location.to_string(), e.to_string());
                None
            }
        }
    }

    /// A required field: missing is an error.
    pub fn required<T>(&mut self, location: impl Display, value: Option<T>) -> Option<T> {
        if value.is_none() {
            self.errors.push(
                FieldError::new(location.to_string(), "is required")
                    .with_fix(format!("provide {location}")),
            );
        }
        value
    }

    /// A string with a length in characters.
    pub fn length(&mut self, location: impl Display, value: &str, min: usize, max: usize) -> bool {
        self.check(location, check_length(value, min, max))
            .is_some()
    }

    /// An integer within bounds.
    pub fn range(&mut self, location: impl Display, value: i64, min: i64, max: i64) -> Option<i64> {
        if (min..=max).contains(&value) {
            Some(value)
        } else {
            self.error(
                location.to_string(),
                format!("must be between {min} and {max}"),
            );
            None
        }
    }

    /// A field this server does not support yet: a clear 400 rather than a wrong answer.
    pub fn unsupported(&mut self, location: &str, feature: &str) {
        self.errors.push(
            FieldError::new(
                location,
                format!("is not supported by this server yet: {feature} are not implemented"),
            )
            .with_fix(format!("omit {location}")),
        );
    }

    /// An array of a feature this server does not support yet: empty is fine, items are not.
    pub fn unsupported_items<T>(&mut self, location: &str, items: Option<&[T]>, feature: &str) {
        if items.is_some_and(|items| !items.is_empty()) {
            self.unsupported(location, feature);
        }
    }

    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// `Ok(value)` when no error was recorded and the value is complete, else the 400.
    pub fn finish<T>(self, value: Option<T>) -> Result<T, ApiError> {
        match value {
            Some(v) if self.errors.is_empty() => Ok(v),
            _ => Err(ApiError::invalid(self.errors)),
        }
    }
}

/// The location of a field inside the object at a parent location (`body`, an [`Item`]),
/// formatted only when shown: valid requests build no location strings.
#[derive(Debug, Clone, Copy)]
pub struct At<P>(pub P, pub &'static str);

impl<P: Display> Display for At<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// The location of an item of the list at a location, e.g. `body.ratelimits[2]`.
#[derive(Debug, Clone, Copy)]
pub struct Item<'a>(pub &'a str, pub usize);

impl Display for Item<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]", self.0, self.1)
    }
}

/// A field that may be absent, `null`, or a value; for partial updates where `null` clears.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Nullable<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Nullable<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(d)? {
            None => Self::Null,
            Some(v) => Self::Value(v),
        })
    }
}
