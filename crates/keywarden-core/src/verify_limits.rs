//! Which rate limits one verification checks (§5.5 of the wire reference): every auto-applied
//! limit of the key and of its identity, plus those the request names or defines inline.

use crate::id::RatelimitId;
use crate::key::KeyRecord;
use crate::named_limit::NamedLimit;
use crate::ratelimit::{CounterKey, LimitCheck, WindowDuration};

/// A limit a verify request asks for by name (`{name, cost?}`) or defines inline
/// (`{name, limit, duration}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedLimit {
    pub name: String,
    pub cost: u64,
    /// An ad-hoc limit, checked against the key but not stored.
    pub inline: Option<(u64, WindowDuration)>,
}

/// One limit a verification checks, with the counter it counts against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedLimit {
    /// `None` for an inline limit.
    pub id: Option<RatelimitId>,
    pub name: String,
    pub limit: u64,
    pub duration: WindowDuration,
    pub auto_apply: bool,
    pub cost: u64,
    pub counter: CounterKey,
}

impl PlannedLimit {
    pub fn check(&self) -> LimitCheck {
        LimitCheck {
            counter: self.counter.clone(),
            limit: self.limit,
            duration: self.duration,
            cost: self.cost,
        }
    }
}

/// A request named a limit that neither the key nor its identity has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate limit '{0}' is defined on neither the key nor its identity")]
pub struct UnknownLimit(pub String);

/// Limits of a key count per key; limits of an identity count per identity, so all its keys
/// share them.
fn key_counter(key: &KeyRecord, name: &str) -> CounterKey {
    CounterKey::scoped(key.workspace_id.as_str(), &format!("key:{}:{name}", key.id))
}

fn planned(limit: &NamedLimit, cost: u64, counter: CounterKey) -> PlannedLimit {
    PlannedLimit {
        id: Some(limit.id.clone()),
        name: limit.name.as_str().to_owned(),
        limit: limit.limit,
        duration: limit.duration,
        auto_apply: limit.auto_apply,
        cost,
        counter,
    }
}

/// The limits to check, in a stable order: the key's auto-applied limits, then its
/// identity's (where the key has no limit of the same name: the key's wins), then limits
/// only the request mentions. A request naming a limit already in the list changes its cost;
/// an inline limit replaces a stored one of the same name for this call.
pub fn plan_limits(
    key: &KeyRecord,
    requested: &[RequestedLimit],
) -> Result<Vec<PlannedLimit>, UnknownLimit> {
    let identity_limits = key.identity.as_ref().map(|i| i.ratelimits.as_slice());
    let identity_counter = |name: &str| {
        let id = key.identity.as_ref().map(|i| i.id.as_str()).unwrap_or("");
        CounterKey::scoped(key.workspace_id.as_str(), &format!("identity:{id}:{name}"))
    };
    let mut plan: Vec<PlannedLimit> = key
        .ratelimits
        .iter()
        .filter(|l| l.auto_apply)
        .map(|l| planned(l, 1, key_counter(key, l.name.as_str())))
        .collect();
    if let Some(limits) = identity_limits {
        for l in limits.iter().filter(|l| l.auto_apply) {
            if !key.ratelimits.iter().any(|k| k.name == l.name) {
                plan.push(planned(l, 1, identity_counter(l.name.as_str())));
            }
        }
    }
    for request in requested {
        let position = plan.iter().position(|p| p.name == request.name);
        let limit = match request.inline {
            Some((limit, duration)) => PlannedLimit {
                id: None,
                name: request.name.clone(),
                limit,
                duration,
                auto_apply: false,
                cost: request.cost,
                counter: key_counter(key, &request.name),
            },
            None => {
                if let Some(i) = position {
                    plan[i].cost = request.cost;
                    continue;
                }
                if let Some(l) = key
                    .ratelimits
                    .iter()
                    .find(|l| l.name.as_str() == request.name)
                {
                    planned(l, request.cost, key_counter(key, &request.name))
                } else if let Some(l) = identity_limits
                    .and_then(|limits| limits.iter().find(|l| l.name.as_str() == request.name))
                {
                    planned(l, request.cost, identity_counter(&request.name))
                } else {
                    return Err(UnknownLimit(request.name.clone()));
                }
            }
        };
        match position {
            Some(i) => plan[i] = limit,
            None => plan.push(limit),
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{ApiId, KeyId, WorkspaceId};
    use crate::identity::{ExternalId, Identity};
    use crate::key_format::{self, ByteLength};
    use crate::named_limit::LimitSpec;
    use crate::named_limit::replace_by_name;
    use crate::named_limit::test_support::{now, spec};

    fn key(key_limits: Vec<LimitSpec>, identity_limits: Option<Vec<LimitSpec>>) -> KeyRecord {
        let issued = key_format::generate(None, ByteLength::DEFAULT);
        let workspace_id = WorkspaceId::generate(now());
        KeyRecord {
            id: KeyId::generate(now()),
            workspace_id: workspace_id.clone(),
            api_id: ApiId::generate(now()),
            digest: issued.plaintext.digest(),
            start: issued.start,
            prefix: None,
            byte_length: ByteLength::DEFAULT,
            name: None,
            meta: None,
            enabled: true,
            expires: None,
            credits: None,
            identity: identity_limits.map(|limits| {
                Identity::new(
                    workspace_id,
                    ExternalId::parse("customer_1").unwrap(),
                    None,
                    limits,
                    now(),
                )
            }),
            ratelimits: replace_by_name(&[], key_limits, now()),
            permissions: Vec::new(),
            roles: Vec::new(),
            created_at: now(),
            updated_at: None,
            deleted_at: None,
            last_used: None,
            rotated_to: None,
            replaced_at: None,
            sealed: None,
            restrictions: None,
            api_restrictions: None,
        }
    }

    fn by_name(name: &str, cost: u64) -> RequestedLimit {
        RequestedLimit {
            name: name.into(),
            cost,
            inline: None,
        }
    }

    #[test]
    fn a_key_without_limits_checks_nothing() {
        assert!(plan_limits(&key(vec![], None), &[]).unwrap().is_empty());
    }

    #[test]
    fn auto_applied_limits_of_key_and_identity_are_checked_with_cost_one() {
        let k = key(
            vec![spec("requests", 10, true), spec("tokens", 5, false)],
            Some(vec![spec("daily", 1000, true), spec("burst", 3, false)]),
        );
        let plan = plan_limits(&k, &[]).unwrap();
        let names: Vec<_> = plan.iter().map(|p| (p.name.as_str(), p.cost)).collect();
        assert_eq!(names, [("requests", 1), ("daily", 1)]);
        assert_eq!(
            plan[0].counter.as_str(),
            format!("{}:key:{}:requests", k.workspace_id, k.id)
        );
        let identity = k.identity.as_ref().unwrap();
        assert_eq!(
            plan[1].counter.as_str(),
            format!("{}:identity:{}:daily", k.workspace_id, identity.id)
        );
        assert_eq!(plan[1].id.as_ref(), Some(&identity.ratelimits[0].id));
    }

    #[test]
    fn the_keys_limit_wins_over_the_identitys_of_the_same_name() {
        let k = key(
            vec![spec("requests", 10, true)],
            Some(vec![spec("requests", 99, true)]),
        );
        let plan = plan_limits(&k, &[]).unwrap();
        assert_eq!(plan.len(), 1);
        assert_eq!(plan[0].limit, 10);
        assert!(plan[0].counter.as_str().contains(":key:"));
        assert_eq!(plan[0].counter.scope(), k.workspace_id.as_str());
        // Also when the request names it.
        let k = key(
            vec![spec("requests", 10, false)],
            Some(vec![spec("requests", 99, false)]),
        );
        let plan = plan_limits(&k, &[by_name("requests", 2)]).unwrap();
        assert_eq!((plan[0].limit, plan[0].cost), (10, 2));
    }

    #[test]
    fn naming_a_limit_adds_it_or_changes_its_cost() {
        let k = key(
            vec![spec("requests", 10, true), spec("tokens", 5, false)],
            Some(vec![spec("burst", 3, false)]),
        );
        let plan = plan_limits(
            &k,
            &[
                by_name("requests", 4),
                by_name("tokens", 0),
                by_name("burst", 2),
            ],
        )
        .unwrap();
        let got: Vec<_> = plan
            .iter()
            .map(|p| (p.name.as_str(), p.limit, p.cost))
            .collect();
        assert_eq!(
            got,
            [("requests", 10, 4), ("tokens", 5, 0), ("burst", 3, 2)]
        );
        assert!(plan[2].counter.as_str().contains(":identity:"));
        assert_eq!(plan[2].counter.scope(), k.workspace_id.as_str());
    }

    #[test]
    fn naming_an_unknown_limit_fails() {
        let k = key(vec![spec("requests", 10, true)], None);
        assert_eq!(
            plan_limits(&k, &[by_name("missing", 1)]),
            Err(UnknownLimit("missing".into()))
        );
    }

    #[test]
    fn an_inline_limit_is_checked_against_the_key_and_replaces_a_stored_one() {
        let k = key(
            vec![spec("requests", 10, true)],
            Some(vec![spec("hourly", 7, true)]),
        );
        let inline = |name: &str, limit| RequestedLimit {
            name: name.into(),
            cost: 1,
            inline: Some((limit, WindowDuration::from_millis(1_000).unwrap())),
        };
        let plan = plan_limits(&k, &[inline("requests", 2), inline("adhoc", 1)]).unwrap();
        let got: Vec<_> = plan
            .iter()
            .map(|p| (p.name.as_str(), p.limit, p.id.is_some()))
            .collect();
        assert_eq!(
            got,
            [
                ("requests", 2, false),
                ("hourly", 7, true),
                ("adhoc", 1, false)
            ]
        );
        assert_eq!(
            plan[2].counter.as_str(),
            format!("{}:key:{}:adhoc", k.workspace_id, k.id)
        );
    }
}
