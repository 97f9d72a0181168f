//! The permission query language of `keys.verifyKey` (§5.3 of the wire reference):
//! permission slugs joined by `AND` and `OR` with parentheses, e.g.
//! `(documents.read OR documents.write) AND users.view`.
//!
//! Operators are case-insensitive, `AND` binds tighter than `OR`, whitespace is ignored, and
//! a permission matches only a slug spelled exactly the same (`*` is a character, not a
//! wildcard). A query is parsed once into a [`PermissionQuery`] and evaluated many times.

use std::fmt;

/// How deeply parentheses may nest. A query is at most 1000 characters, so this only bounds
/// recursion for pathological input; no real query comes near it.
pub const MAX_NESTING: usize = 64;

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PermissionQuery {
    Permission(String),
    /// Every part must hold (two or more parts).
    All(Vec<PermissionQuery>),
    /// At least one part must hold (two or more parts).
    Any(Vec<PermissionQuery>),
}

/// What went wrong where: `position` counts characters from 0.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{problem} at position {position}; expected {expected}")]
pub struct QuerySyntaxError {
    pub position: usize,
    pub problem: String,
    pub expected: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TokenKind {
    Open,
    Close,
    And,
    Or,
    Permission(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    kind: TokenKind,
    /// Character offset of the token's first character.
    position: usize,
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Open => f.write_str("'('"),
            Self::Close => f.write_str("')'"),
            Self::And => f.write_str("AND"),
            Self::Or => f.write_str("OR"),
            Self::Permission(p) => write!(f, "permission '{p}'"),
        }
    }
}

fn is_permission_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '*' | '/')
}

const OPERAND: &str = "a permission or '('";
const OPERATOR: &str = "AND, OR, ')' or the end of the query";

fn tokenize(query: &str) -> Result<Vec<Token>, QuerySyntaxError> {
    let mut tokens = Vec::new();
    let mut chars = query.chars().enumerate().peekable();
    while let Some((position, c)) = chars.next() {
        let kind = match c {
            ' ' | '\t' | '\r' | '\n' => continue,
            '(' => TokenKind::Open,
            ')' => TokenKind::Close,
            c if is_permission_char(c) => {
                let mut word = String::from(c);
                while let Some(&(_, next)) = chars.peek() {
                    if !is_permission_char(next) {
                        break;
                    }
                    word.push(next);
                    chars.next();
                }
                if word.eq_ignore_ascii_case("and") {
                    TokenKind::And
                } else if word.eq_ignore_ascii_case("or") {
                    TokenKind::Or
                } else {
                    TokenKind::Permission(word)
                }
            }
            other => {
                return Err(QuerySyntaxError {
                    position,
                    problem: format!("invalid character {other:?}"),
                    expected: "letters, digits, '.', '_', '-', ':', '*', '/', parentheses or spaces",
                });
            }
        };
        tokens.push(Token { kind, position });
    }
    Ok(tokens)
}

/// A recursive-descent parser over the tokens:
/// `expr := and (OR and)*`, `and := primary (AND primary)*`, `primary := PERMISSION | ( expr )`.
struct Parser {
    tokens: Vec<Token>,
    next: usize,
    /// Character count of the query, the position of "the end".
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next)
    }

    fn unexpected(&self, expected: &'static str) -> QuerySyntaxError {
        match self.peek() {
            Some(token) => QuerySyntaxError {
                position: token.position,
                problem: format!("unexpected {}", token.kind),
                expected,
            },
            None => QuerySyntaxError {
                position: self.end,
                problem: "the query ends too early".into(),
                expected,
            },
        }
    }

    fn expression(&mut self, depth: usize) -> Result<PermissionQuery, QuerySyntaxError> {
        let mut parts = vec![self.conjunction(depth)?];
        while self.peek().is_some_and(|t| t.kind == TokenKind::Or) {
            self.next += 1;
            parts.push(self.conjunction(depth)?);
        }
        Ok(combine(parts, Join::Any))
    }

    fn conjunction(&mut self, depth: usize) -> Result<PermissionQuery, QuerySyntaxError> {
        let mut parts = vec![self.primary(depth)?];
        while self.peek().is_some_and(|t| t.kind == TokenKind::And) {
            self.next += 1;
            parts.push(self.primary(depth)?);
        }
        Ok(combine(parts, Join::All))
    }

    fn primary(&mut self, depth: usize) -> Result<PermissionQuery, QuerySyntaxError> {
        let Some(token) = self.peek().cloned() else {
            return Err(self.unexpected(OPERAND));
        };
        match token.kind {
            TokenKind::Permission(permission) => {
                self.next += 1;
                Ok(PermissionQuery::Permission(permission))
            }
            TokenKind::Open => {
                if depth >= MAX_NESTING {
                    return Err(QuerySyntaxError {
                        position: token.position,
                        problem: format!("parentheses nested deeper than {MAX_NESTING}"),
                        expected: "a flatter query",
                    });
                }
                self.next += 1;
                if self.peek().is_some_and(|t| t.kind == TokenKind::Close) {
                    return Err(QuerySyntaxError {
                        position: token.position,
                        problem: "empty parentheses".into(),
                        expected: OPERAND,
                    });
                }
                let inner = self.expression(depth + 1)?;
                match self.peek() {
                    Some(t) if t.kind == TokenKind::Close => {
                        self.next += 1;
                        Ok(inner)
                    }
                    Some(_) => Err(self.unexpected("AND, OR or ')'")),
                    None => Err(QuerySyntaxError {
                        position: self.end,
                        problem: format!("the '(' at position {} is never closed", token.position),
                        expected: "')'",
                    }),
                }
            }
            TokenKind::Close | TokenKind::And | TokenKind::Or => Err(self.unexpected(OPERAND)),
        }
    }
}

/// How the parts of a group are joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Join {
    All,
    Any,
}

/// One part stays itself; several become a group, with nested groups of the same kind
/// flattened (`a AND (b AND c)` is `All[a, b, c]`), which evaluates the same.
fn combine(mut parts: Vec<PermissionQuery>, join: Join) -> PermissionQuery {
    if parts.len() == 1 {
        return parts.swap_remove(0);
    }
    let mut flat = Vec::with_capacity(parts.len());
    for part in parts {
        match (join, part) {
            (Join::All, PermissionQuery::All(inner)) | (Join::Any, PermissionQuery::Any(inner)) => {
                flat.extend(inner);
            }
            (_, part) => flat.push(part),
        }
    }
    match join {
        Join::All => PermissionQuery::All(flat),
        Join::Any => PermissionQuery::Any(flat),
    }
}

impl PermissionQuery {
    pub fn parse(query: &str) -> Result<Self, QuerySyntaxError> {
        let tokens = tokenize(query)?;
        let end = query.chars().count();
        if tokens.is_empty() {
            return Err(QuerySyntaxError {
                position: 0,
                problem: "the query is empty".into(),
                expected: OPERAND,
            });
        }
        let mut parser = Parser {
            tokens,
            next: 0,
            end,
        };
        let parsed = parser.expression(0)?;
        if parser.peek().is_some() {
            return Err(parser.unexpected(OPERATOR));
        }
        Ok(parsed)
    }

    /// Whether a key holding the permissions `has` answers yes to satisfies the query.
    pub fn is_satisfied_by(&self, has: &impl Fn(&str) -> bool) -> bool {
        match self {
            Self::Permission(p) => has(p),
            Self::All(parts) => parts.iter().all(|p| p.is_satisfied_by(has)),
            Self::Any(parts) => parts.iter().any(|p| p.is_satisfied_by(has)),
        }
    }
}

impl fmt::Display for PermissionQuery {
    /// The query in canonical form: operators upper-case, every group parenthesized.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (parts, operator) = match self {
            Self::Permission(p) => return f.write_str(p),
            Self::All(parts) => (parts, " AND "),
            Self::Any(parts) => (parts, " OR "),
        };
        f.write_str("(")?;
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                f.write_str(operator)?;
            }
            write!(f, "{part}")?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests;
