//! Random bodies never make the server fail: every answer is a 2xx or 4xx envelope.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value, json};

use crate::helpers::spawn_app;

const OPERATIONS: &[&str] = &[
    "apis.createApi",
    "apis.getApi",
    "apis.listKeys",
    "apis.deleteApi",
    "keys.createKey",
    "keys.verifyKey",
    "keys.getKey",
    "keys.whoami",
    "keys.updateKey",
    "keys.deleteKey",
    "keys.rerollKey",
    "keys.updateCredits",
    "keys.migrateKeys",
    "identities.createIdentity",
    "identities.getIdentity",
    "identities.listIdentities",
    "identities.updateIdentity",
    "identities.deleteIdentity",
    "ratelimit.limit",
    "ratelimit.multiLimit",
    "ratelimit.setOverride",
    "ratelimit.getOverride",
    "ratelimit.listOverrides",
    "ratelimit.deleteOverride",
    "permissions.createPermission",
    "permissions.getPermission",
    "permissions.listPermissions",
    "permissions.deletePermission",
    "permissions.createRole",
    "permissions.getRole",
    "permissions.listRoles",
    "permissions.deleteRole",
    "permissions.setRolePermissions",
    "permissions.updatePermission",
    "permissions.updateRole",
    "keys.addPermissions",
    "keys.removePermissions",
    "keys.setPermissions",
    "keys.addRoles",
    "keys.removeRoles",
    "keys.setRoles",
    "rootKeys.createKey",
    "rootKeys.listKeys",
    "rootKeys.updateKey",
    "rootKeys.rerollKey",
    "rootKeys.deleteKey",
];

/// Field names the endpoints read, so random bodies often reach validation and beyond.
const FIELDS: &[&str] = &[
    "apiId",
    "keyId",
    "key",
    "name",
    "prefix",
    "byteLength",
    "meta",
    "expires",
    "credits",
    "remaining",
    "refill",
    "interval",
    "amount",
    "refillDay",
    "enabled",
    "recoverable",
    "cost",
    "tags",
    "limit",
    "cursor",
    "operation",
    "value",
    "expiration",
    "permanent",
    "keys",
    "hash",
    "migrationId",
    "keyspaces",
    "decrypt",
    "externalId",
    "roles",
    "permissions",
    "ratelimits",
    "identity",
    "search",
    "namespace",
    "identifier",
    "duration",
    "autoApply",
    "slug",
    "description",
    "permission",
    "role",
    "roleId",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop_oneof![
            Just(0i64),
            Just(1),
            Just(-1),
            Just(16),
            Just(255),
            Just(4_102_444_800_001)
        ]
        .prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        prop_oneof![
            Just("daily"),
            Just("monthly"),
            Just("set"),
            Just("increment"),
            Just("api_x")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(FIELDS), inner), 0..8).prop_map(|pairs| {
                Value::Object(
                    pairs
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

#[test]
fn random_bodies_never_cause_a_server_error() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = runtime.block_on(spawn_app());
    let api_id = runtime.block_on(app.create_api("fuzz-target"));
    let mut runner = TestRunner::new(Config {
        cases: 800,
        ..Config::default()
    });
    runner
        .run(
            &(
                prop::sample::select(OPERATIONS),
                json_value(),
                any::<bool>(),
            ),
            |(operation, mut body, use_real_api)| {
                if use_real_api && let Some(object) = body.as_object_mut() {
                    object.insert("apiId".into(), json!(api_id));
                }
                let reply = runtime.block_on(app.call(operation, body.clone()));
                prop_assert!(
                    reply.status < 500,
                    "{operation} {body} -> {} {}",
                    reply.status,
                    reply.body
                );
                prop_assert!(reply.body["meta"]["requestId"].is_string());
                Ok(())
            },
        )
        .unwrap();
}
