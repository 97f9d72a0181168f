//! The public analytics tables and their columns, and the physical tables behind them. This is
//! the only place that knows table and column names; everything else speaks these enums.

use std::fmt;

/// One of the five public tables a query may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// `key_verifications_v1`: one row per verification.
    Raw,
    /// `key_verifications_per_minute_v1`
    PerMinute,
    /// `key_verifications_per_hour_v1`
    PerHour,
    /// `key_verifications_per_day_v1`
    PerDay,
    /// `key_verifications_per_month_v1`
    PerMonth,
}

impl Table {
    const ALL: [Table; 5] = [
        Table::Raw,
        Table::PerMinute,
        Table::PerHour,
        Table::PerDay,
        Table::PerMonth,
    ];

    /// Public names are matched exactly, as ClickHouse does (identifiers are case-sensitive).
    pub fn from_public_name(name: &str) -> Option<Table> {
        Self::ALL.into_iter().find(|t| t.public_name() == name)
    }

    pub fn public_name(self) -> &'static str {
        match self {
            Table::Raw => "key_verifications_v1",
            Table::PerMinute => "key_verifications_per_minute_v1",
            Table::PerHour => "key_verifications_per_hour_v1",
            Table::PerDay => "key_verifications_per_day_v1",
            Table::PerMonth => "key_verifications_per_month_v1",
        }
    }

    pub fn physical_name(self) -> &'static str {
        match self {
            Table::Raw => "analytics_verifications",
            Table::PerMinute => "analytics_verifications_per_minute",
            Table::PerHour => "analytics_verifications_per_hour",
            Table::PerDay => "analytics_verifications_per_day",
            Table::PerMonth => "analytics_verifications_per_month",
        }
    }

    /// The columns a query may name on this table, in the order `SELECT *` returns them.
    pub fn public_columns(self) -> &'static [Column] {
        use Column::*;
        match self {
            Table::Raw => &[
                RequestId,
                Time,
                WorkspaceId,
                KeySpaceId,
                IdentityId,
                ExternalId,
                KeyId,
                Outcome,
                Region,
                Tags,
                SpentCredits,
            ],
            _ => &[
                Time,
                WorkspaceId,
                KeySpaceId,
                IdentityId,
                ExternalId,
                KeyId,
                Outcome,
                Tags,
                Count,
                SpentCredits,
            ],
        }
    }

    /// `client_ip` is deliberately absent from every table: it is personal data that the
    /// analytics API does not expose.
    pub fn column(self, name: &str) -> Option<Column> {
        self.public_columns()
            .iter()
            .copied()
            .find(|c| c.name() == name)
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.public_name())
    }
}

/// A public column. Public and physical names are the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    RequestId,
    Time,
    WorkspaceId,
    KeySpaceId,
    IdentityId,
    ExternalId,
    KeyId,
    Outcome,
    Region,
    Tags,
    Count,
    SpentCredits,
}

/// What a column holds, for type checks and for telling the executor how to decode it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Integer,
    Text,
    NullableText,
    /// A JSON array of strings stored as text.
    Tags,
}

impl Column {
    pub fn name(self) -> &'static str {
        match self {
            Column::RequestId => "request_id",
            Column::Time => "time",
            Column::WorkspaceId => "workspace_id",
            Column::KeySpaceId => "key_space_id",
            Column::IdentityId => "identity_id",
            Column::ExternalId => "external_id",
            Column::KeyId => "key_id",
            Column::Outcome => "outcome",
            Column::Region => "region",
            Column::Tags => "tags",
            Column::Count => "count",
            Column::SpentCredits => "spent_credits",
        }
    }

    pub fn column_type(self) -> ColumnType {
        match self {
            Column::Time | Column::Count | Column::SpentCredits => ColumnType::Integer,
            Column::RequestId | Column::WorkspaceId | Column::KeySpaceId | Column::KeyId => {
                ColumnType::Text
            }
            Column::Outcome => ColumnType::Text,
            // A verification need not have an identity, and the region is only known when
            // the node is configured with one.
            Column::IdentityId | Column::ExternalId | Column::Region => ColumnType::NullableText,
            Column::Tags => ColumnType::Tags,
        }
    }
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
