//! Where a store lives, parsed from the `--database` URL.

use std::path::PathBuf;

/// A parsed database location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A SQLite file, created if missing.
    Sqlite(PathBuf),
    /// A PostgreSQL database, given as its `postgres://` (or `postgresql://`) URL.
    Postgres(String),
}

/// Why a database URL is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreLocationError {
    #[error("the database URL is empty")]
    Empty,
    #[error(
        "database URL scheme '{0}' is not supported; use a SQLite file path, sqlite://PATH or postgres://…"
    )]
    UnsupportedScheme(String),
}

impl StoreLocation {
    /// Accepts `postgres://…`, `postgresql://…`, `sqlite://PATH`, `sqlite:PATH` or a bare file
    /// path. `sqlite://keywarden.db` is
    /// relative to the working directory; `sqlite:///var/lib/kw.db` is absolute.
    pub fn parse(url: &str) -> Result<Self, StoreLocationError> {
        let url = url.trim();
        if url.is_empty() {
            return Err(StoreLocationError::Empty);
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_owned()));
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
    fn postgres_urls_are_kept_whole() {
        let url = "postgres://kw@db.internal:5432/keywarden?sslmode=disable";
        assert_eq!(
            StoreLocation::parse(url),
            Ok(StoreLocation::Postgres(url.into()))
        );
        assert_eq!(
            StoreLocation::parse("postgresql://localhost/kw"),
            Ok(StoreLocation::Postgres("postgresql://localhost/kw".into()))
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
