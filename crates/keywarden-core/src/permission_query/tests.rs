use proptest::prelude::*;

use super::*;

fn p(s: &str) -> PermissionQuery {
    PermissionQuery::Permission(s.into())
}

fn parse(s: &str) -> PermissionQuery {
    PermissionQuery::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

fn error(s: &str) -> QuerySyntaxError {
    match PermissionQuery::parse(s) {
        Ok(q) => panic!("{s:?} parsed as {q}"),
        Err(e) => e,
    }
}

#[test]
fn the_references_examples_parse() {
    assert_eq!(parse("documents.read"), p("documents.read"));
    assert_eq!(
        parse("documents.read AND documents.write"),
        PermissionQuery::All(vec![p("documents.read"), p("documents.write")])
    );
    assert_eq!(
        parse("(documents.read OR documents.write) AND users.view"),
        PermissionQuery::All(vec![
            PermissionQuery::Any(vec![p("documents.read"), p("documents.write")]),
            p("users.view"),
        ])
    );
}

#[test]
fn and_binds_tighter_than_or() {
    assert_eq!(
        parse("a OR b AND c"),
        PermissionQuery::Any(vec![p("a"), PermissionQuery::All(vec![p("b"), p("c")])])
    );
    assert_eq!(
        parse("a AND b OR c"),
        PermissionQuery::Any(vec![PermissionQuery::All(vec![p("a"), p("b")]), p("c")])
    );
}

#[test]
fn operators_ignore_case_and_whitespace_is_free() {
    assert_eq!(parse(" a\tand\r\nb Or  c "), parse("a AND b OR c"),);
    assert_eq!(parse("(a)"), p("a"));
    assert_eq!(parse("((a and b))"), parse("a AND b"));
}

#[test]
fn groups_of_one_kind_flatten() {
    assert_eq!(
        parse("a AND (b AND c)"),
        PermissionQuery::All(vec![p("a"), p("b"), p("c")])
    );
    assert_eq!(parse("(a OR b) OR c").to_string(), "(a OR b OR c)");
}

#[test]
fn every_permission_character_is_accepted() {
    let slug = "api:v1/Keys.read_all-*";
    assert_eq!(parse(slug), p(slug));
    // A word that merely contains an operator is a permission.
    assert_eq!(
        parse("android OR orders"),
        PermissionQuery::Any(vec![p("android"), p("orders")])
    );
}

#[test]
fn matching_is_exact() {
    let held = ["documents.read", "api.*"];
    let has = |s: &str| held.contains(&s);
    assert!(parse("documents.read").is_satisfied_by(&has));
    assert!(!parse("documents.READ").is_satisfied_by(&has));
    assert!(!parse("documents").is_satisfied_by(&has));
    // `*` is a character: only a permission literally named `api.*` matches.
    assert!(parse("api.*").is_satisfied_by(&has));
    assert!(!parse("api.read").is_satisfied_by(&has));
    assert!(parse("nope OR documents.read").is_satisfied_by(&has));
    assert!(!parse("nope AND documents.read").is_satisfied_by(&has));
}

#[test]
fn an_empty_query_is_an_error() {
    for q in ["", "   ", "\n\t"] {
        let e = error(q);
        assert_eq!(e.position, 0);
        assert!(e.problem.contains("empty"), "{e}");
    }
}

#[test]
fn empty_parentheses_are_an_error() {
    let e = error("a AND ()");
    assert_eq!(e.position, 6);
    assert_eq!(e.problem, "empty parentheses");
    assert_eq!(
        e.to_string(),
        "empty parentheses at position 6; expected a permission or '('"
    );
}

#[test]
fn an_unclosed_parenthesis_is_an_error() {
    let e = error("(a OR b");
    assert_eq!(e.position, 7, "the end of the query");
    assert!(e.problem.contains("position 0"), "{e}");
    assert_eq!(e.expected, "')'");
}

#[test]
fn a_missing_operand_is_an_error() {
    let e = error("a AND");
    assert_eq!((e.position, e.expected), (5, OPERAND));
    assert!(e.problem.contains("ends too early"), "{e}");
    let e = error("AND a");
    assert_eq!((e.position, e.problem.as_str()), (0, "unexpected AND"));
    let e = error("a OR OR b");
    assert_eq!((e.position, e.problem.as_str()), (5, "unexpected OR"));
    let e = error("(OR a)");
    assert_eq!(e.position, 1);
}

#[test]
fn trailing_and_unexpected_tokens_are_errors() {
    let e = error("a b");
    assert_eq!(
        (e.position, e.problem.as_str(), e.expected),
        (2, "unexpected permission 'b'", OPERATOR)
    );
    let e = error("a)");
    assert_eq!((e.position, e.problem.as_str()), (1, "unexpected ')'"));
    let e = error("(a b)");
    assert_eq!((e.position, e.expected), (3, "AND, OR or ')'"));
    let e = error("a (b)");
    assert_eq!((e.position, e.problem.as_str()), (2, "unexpected '('"));
}

#[test]
fn an_invalid_character_is_an_error() {
    let e = error("a & b");
    assert_eq!(e.position, 2);
    assert_eq!(e.problem, "invalid character '&'");
    // Positions count characters, not bytes.
    let e = error("é AND a");
    assert_eq!(e.position, 0);
    let e = error("ab,c");
    assert_eq!(e.position, 2);
}

#[test]
fn nesting_is_bounded() {
    let deep = format!("{}a{}", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING));
    assert_eq!(parse(&deep), p("a"));
    let deeper = format!(
        "{}a{}",
        "(".repeat(MAX_NESTING + 1),
        ")".repeat(MAX_NESTING + 1)
    );
    let e = error(&deeper);
    assert_eq!(e.position, MAX_NESTING);
    assert!(e.problem.contains("nested deeper"), "{e}");
}

/// The test's own model of a query: a binary tree evaluated the obvious way, rendered with
/// the parentheses precedence needs (and sometimes more), in random case and spacing.
#[derive(Debug, Clone)]
enum Model {
    Leaf(u8),
    And(Box<Model>, Box<Model>),
    Or(Box<Model>, Box<Model>),
}

impl Model {
    fn eval(&self, held: &[bool; 6]) -> bool {
        match self {
            Self::Leaf(i) => held[usize::from(*i)],
            Self::And(a, b) => a.eval(held) && b.eval(held),
            Self::Or(a, b) => a.eval(held) || b.eval(held),
        }
    }

    fn render(&self, style: &mut impl Iterator<Item = u8>, out: &mut String) {
        match self {
            Self::Leaf(i) => out.push_str(&format!("perm.{i}")),
            Self::And(a, b) | Self::Or(a, b) => {
                let is_and = matches!(self, Self::And(..));
                let extra_parens = take(style).is_multiple_of(4);
                if extra_parens {
                    out.push('(');
                }
                for (k, side) in [a, b].into_iter().enumerate() {
                    if k == 1 {
                        let spaces = [" ", "  ", "\t", "\n "][usize::from(take(style) % 4)];
                        let op = match (is_and, take(style) % 3) {
                            (true, 0) => "AND",
                            (true, 1) => "and",
                            (true, _) => "aNd",
                            (false, 0) => "OR",
                            (false, 1) => "or",
                            (false, _) => "Or",
                        };
                        out.push_str(spaces);
                        out.push_str(op);
                        out.push_str(spaces);
                    }
                    // An OR under an AND needs parentheses; so does an AND or OR on the right of
                    // a left-associative chain of different precedence. Parenthesize every
                    // compound right operand to keep the model's tree.
                    let needs = matches!(**side, Self::Or(..)) && is_and
                        || (k == 1 && !matches!(**side, Self::Leaf(_)));
                    if needs {
                        out.push('(');
                    }
                    side.render(style, out);
                    if needs {
                        out.push(')');
                    }
                }
                if extra_parens {
                    out.push(')');
                }
            }
        }
    }
}

fn take(style: &mut impl Iterator<Item = u8>) -> u8 {
    style.next().unwrap_or(0)
}

fn model() -> impl Strategy<Value = Model> {
    (0u8..6)
        .prop_map(Model::Leaf)
        .prop_recursive(5, 40, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| Model::And(Box::new(a), Box::new(b))),
                (inner.clone(), inner).prop_map(|(a, b)| Model::Or(Box::new(a), Box::new(b))),
            ]
        })
}

proptest! {
    #[test]
    fn parsed_queries_evaluate_like_the_model(
        m in model(),
        style in prop::collection::vec(any::<u8>(), 64),
        held in any::<[bool; 6]>(),
    ) {
        let mut text = String::new();
        m.render(&mut style.into_iter(), &mut text);
        let parsed = PermissionQuery::parse(&text)
            .map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        let has = |s: &str| {
            s.strip_prefix("perm.")
                .and_then(|i| i.parse::<usize>().ok())
                .is_some_and(|i| held[i])
        };
        prop_assert_eq!(parsed.is_satisfied_by(&has), m.eval(&held), "{}", text);
        // The canonical form parses back to the same query.
        prop_assert_eq!(PermissionQuery::parse(&parsed.to_string()).unwrap(), parsed);
    }

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,64}") {
        let _ = PermissionQuery::parse(&text);
    }
}
