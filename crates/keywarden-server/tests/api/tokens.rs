//! Short-lived tokens (`keys.exchangeToken`, `/.well-known/jwks.json`): tokens verify with a
//! standard JWT library against the published keys, carry the key's facts, live as long as
//! asked within the caps, are refused for keys that do not verify, count as verifications,
//! and signing keys rotate with an overlap.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestClock, spawn_app};

const HOUR: i64 = 3_600_000;

async fn jwks(app: &TestApp) -> JwkSet {
    let response = app
        .client
        .get(format!("{}/.well-known/jwks.json", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn kids(set: &JwkSet) -> Vec<String> {
    set.keys
        .iter()
        .map(|k| k.common.key_id.clone().unwrap())
        .collect()
}

async fn exchange(app: &TestApp, body: Value) -> Value {
    app.call("keys.exchangeToken", body).await.ok().clone()
}

/// Checks the token's signature against the JWKS as any JWT library would and returns its
/// claims. The test clock is not the wall clock, so `exp` is checked by the tests.
pub async fn claims_of(app: &TestApp, token: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    let set = jwks(app).await;
    let jwk = set
        .find(header.kid.as_deref().unwrap())
        .expect("the token's kid is published");
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.validate_exp = false;
    validation.set_issuer(&["keywarden"]);
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .unwrap()
        .claims
}

#[tokio::test]
async fn an_exchanged_token_verifies_against_the_published_keys_and_carries_the_key() {
    let app = spawn_app().await;
    let api = app.create_api("tokens").await;
    app.call(
        "permissions.createRole",
        json!({ "name": "reader", "permissions": ["documents.read"] }),
    )
    .await
    .ok();
    let (key_id, key) = app
        .create_key(
            &api,
            json!({ "externalId": "cust_1", "permissions": ["documents.write"],
                    "roles": ["reader"] }),
        )
        .await;
    let data = exchange(&app, json!({ "key": key })).await;
    assert_eq!(data["valid"], true);
    assert_eq!(data["code"], "VALID");
    assert_eq!(data["keyId"], key_id.as_str());
    let token = data["token"].as_str().unwrap();
    let claims = claims_of(&app, token).await;
    assert_eq!(claims["sub"], key_id.as_str());
    assert_eq!(claims["iss"], "keywarden");
    assert_eq!(claims["api_id"], api.as_str());
    assert_eq!(claims["workspace_id"], app.workspace.as_str());
    assert_eq!(claims["external_id"], "cust_1");
    assert_eq!(
        claims["permissions"],
        json!(["documents.read", "documents.write"])
    );
    assert_eq!(claims["roles"], json!(["reader"]));
    let now_secs = TestClock::START / 1000;
    assert_eq!(claims["iat"], now_secs);
    assert_eq!(claims["exp"], now_secs + 300, "five minutes by default");
    assert_eq!(data["expires"], (now_secs + 300) * 1000);

    // The published key is an Ed25519 JWK for signatures.
    let published: Value = app
        .client
        .get(format!("{}/.well-known/jwks.json", app.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwk = &published["keys"][0];
    assert_eq!(
        (&jwk["kty"], &jwk["crv"], &jwk["alg"], &jwk["use"]),
        (
            &json!("OKP"),
            &json!("Ed25519"),
            &json!("EdDSA"),
            &json!("sig")
        )
    );
    assert!(jwk.get("d").is_none(), "no private part");

    // A token changed by one character does not verify.
    let mut tampered = token.to_owned();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let jwk = jwks(&app).await.keys[0].clone();
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.validate_exp = false;
    assert!(
        jsonwebtoken::decode::<Value>(
            &tampered,
            &DecodingKey::from_jwk(&jwk).unwrap(),
            &validation
        )
        .is_err()
    );
    app.stop().await;
}

#[tokio::test]
async fn the_lifetime_is_as_asked_within_the_cap_and_the_keys_own_expiry() {
    let app = spawn_app().await;
    let api = app.create_api("tokens").await;
    let (_, key) = app.create_key(&api, json!({})).await;
    let now_secs = TestClock::START / 1000;
    let exp = |data: &Value| data["expires"].as_i64().unwrap() / 1000 - now_secs;

    let data = exchange(&app, json!({ "key": key, "ttl": 60_000 })).await;
    assert_eq!(exp(&data), 60);
    assert_eq!(
        claims_of(&app, data["token"].as_str().unwrap()).await["exp"],
        now_secs + 60
    );
    let data = exchange(&app, json!({ "key": key, "ttl": 10 * HOUR })).await;
    assert_eq!(exp(&data), 3600, "capped by the configured maximum");

    let (_, expiring) = app
        .create_key(&api, json!({ "expires": TestClock::START + 90_000 }))
        .await;
    let data = exchange(&app, json!({ "key": expiring, "ttl": HOUR })).await;
    assert_eq!(exp(&data), 90, "capped by the key's expiry");

    let reply = app
        .call("keys.exchangeToken", json!({ "key": key, "ttl": 10 }))
        .await;
    reply.invalid_at("body.ttl");
    app.stop().await;
}

#[tokio::test]
async fn keys_that_do_not_verify_get_no_token() {
    let app = spawn_app().await;
    let api = app.create_api("tokens").await;
    let (key_id, disabled) = app.create_key(&api, json!({ "enabled": false })).await;
    let data = exchange(&app, json!({ "key": disabled })).await;
    assert_eq!(data["valid"], false);
    assert_eq!(data["code"], "DISABLED");
    assert_eq!(data["keyId"], key_id.as_str());
    assert!(data.get("token").is_none() && data.get("expires").is_none());

    let data = exchange(&app, json!({ "key": "kw_not_a_real_key" })).await;
    assert_eq!(data["code"], "NOT_FOUND");
    assert!(data.get("token").is_none());

    let (_, key) = app.create_key(&api, json!({})).await;
    let data = exchange(&app, json!({ "key": key, "permissions": "admin" })).await;
    assert_eq!(data["code"], "INSUFFICIENT_PERMISSIONS");
    assert!(data.get("token").is_none());

    // Exchanging needs the same permission as verifying.
    let reader = app.root_key_with(&["api.*.read_key"]).await;
    let reply = app
        .call_as(&reader, "keys.exchangeToken", json!({ "key": key }))
        .await;
    reply.err(403);
    app.stop().await;
}

#[tokio::test]
async fn restrictions_see_the_exchange_requests_client_as_verify_does() {
    let app = spawn_app().await;
    let api = app.create_api("tokens").await;
    let restricted = |restrictions: Value| json!({ "restrictions": restrictions });
    // The test client connects from 127.0.0.1.
    let (_, here) = app
        .create_key(&api, restricted(json!({ "allowedIps": ["127.0.0.1"] })))
        .await;
    let (_, elsewhere) = app
        .create_key(&api, restricted(json!({ "allowedIps": ["10.0.0.0/8"] })))
        .await;
    let (_, browser) = app
        .create_key(
            &api,
            restricted(json!({ "allowedOrigins": ["app.example.com"] })),
        )
        .await;

    let data = exchange(&app, json!({ "key": here })).await;
    assert_eq!(data["code"], "VALID", "{data}");
    assert!(data["token"].is_string());
    let data = exchange(&app, json!({ "key": elsewhere })).await;
    assert_eq!(data["code"], "FORBIDDEN");
    assert!(data.get("token").is_none());
    // The end client named in the body counts, as for keys.verifyKey.
    let data = exchange(&app, json!({ "key": elsewhere, "clientIp": "10.1.2.3" })).await;
    assert_eq!(data["code"], "VALID", "{data}");

    let from_page = |origin: &'static str| {
        app.client
            .post(format!("{}/v2/keys.exchangeToken", app.base_url))
            .bearer_auth(crate::helpers::ROOT_KEY)
            .header("Origin", origin)
            .json(&json!({ "key": browser }))
            .send()
    };
    let reply: Value = from_page("https://app.example.com")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reply["data"]["code"], "VALID", "{reply}");
    let reply: Value = from_page("https://evil.example.net")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reply["data"]["code"], "FORBIDDEN", "{reply}");
    assert!(reply["data"].get("token").is_none());
    app.stop().await;
}

#[tokio::test]
async fn an_exchange_counts_as_a_verification() {
    let app = spawn_app().await;
    let api = app.create_api("tokens").await;
    let (_, key) = app
        .create_key(&api, json!({ "credits": { "remaining": 2 } }))
        .await;
    let data = exchange(&app, json!({ "key": key })).await;
    assert_eq!(
        (data["code"].as_str(), data["credits"].as_i64()),
        (Some("VALID"), Some(1))
    );
    let data = exchange(&app, json!({ "key": key, "credits": { "cost": 1 } })).await;
    assert_eq!(data["credits"], 0);
    let data = exchange(&app, json!({ "key": key })).await;
    assert_eq!(data["code"], "USAGE_EXCEEDED");
    assert!(data.get("token").is_none());
    assert_eq!(app.verify(&key).await["code"], "USAGE_EXCEEDED");
    app.stop().await;
}

#[tokio::test]
async fn signing_keys_rotate_and_old_ones_stay_published_until_their_tokens_expired() {
    let app = spawn_app().await;
    let api = app.create_api("tokens").await;
    let (_, key) = app.create_key(&api, json!({})).await;
    let first = kids(&jwks(&app).await);
    assert_eq!(first.len(), 1);
    let old_token = exchange(&app, json!({ "key": key, "ttl": HOUR })).await["token"]
        .as_str()
        .unwrap()
        .to_owned();

    app.clock.advance(24 * HOUR);
    let token = exchange(&app, json!({ "key": key })).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
    assert_ne!(kid, first[0], "a day later a new key signs");
    assert_eq!(kids(&jwks(&app).await), vec![kid.clone(), first[0].clone()]);
    // Tokens of the old key still verify during the overlap.
    claims_of(&app, &old_token).await;

    // The overlap is the longest token lifetime plus a minute of grace.
    app.clock.advance(HOUR + 60_000 - 1);
    assert_eq!(jwks(&app).await.keys.len(), 2);
    app.clock.advance(1);
    assert_eq!(kids(&jwks(&app).await), vec![kid]);
    app.stop().await;
}
