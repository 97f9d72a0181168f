//! Where a store lives, parsed from the `--database` URL.

use std::path::PathBuf;

/// A parsed database location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A SQLite file, created if missing.
    Sqlite(PathBuf),
}

/// Why a database URL is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreLocationError {
    #[error("the database URL is empty")]
    Empty,
    #[error(
        "database URL scheme '{0}' is not supported by this build; use a SQLite file path or sqlite://PATH"
    )]
    UnsupportedScheme(String),
}

impl StoreLocation {
    /// Accepts `sqlite://PATH`, `sqlite:PATH` or a bare file path. `sqlite://keywarden.db` is
    /// relative to the working directory; `sqlite:///var/lib/kw.db` is absolute.
    pub fn parse(url: &str) -> Result<Self, StoreLocationError> {
        let url = url.trim();
        if url.is_empty() {
            return Err(StoreLocationError::Empty);
        }
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            let path = path.split('?').next().unwrap_or(path);
            if path.is_empty() {
                return Err(StoreLocationError::Empty);
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if let Some((scheme, _)) = url.split_once("://") {
            return Err(StoreLocationError::UnsupportedScheme(scheme.to_owned()));
        }
        Ok(Self::Sqlite(PathBuf::from(url)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_forms() {
        let p = |s: &str| StoreLocation::parse(s);
        assert_eq!(
            p("keywarden.db"),
            Ok(StoreLocation::Sqlite("keywarden.db".into()))
        );
        assert_eq!(
            p("sqlite://keywarden.db"),
            Ok(StoreLocation::Sqlite("keywarden.db".into()))
        );
        assert_eq!(
            p("sqlite:///var/lib/kw.db?mode=rwc"),
            Ok(StoreLocation::Sqlite("/var/lib/kw.db".into()))
        );
        assert_eq!(
            p("sqlite:data/kw.db"),
            Ok(StoreLocation::Sqlite("data/kw.db".into()))
        );
    }

    #[test]
    fn other_schemes_are_refused_clearly() {
        assert_eq!(
            StoreLocation::parse("mysql://localhost/db"),
            Err(StoreLocationError::UnsupportedScheme("mysql".into()))
        );
        assert_eq!(StoreLocation::parse("  "), Err(StoreLocationError::Empty));
    }
}
