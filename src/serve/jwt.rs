//! Signed tokens (JWT) for `/ws`: the upgrade's authorizer and the
//! refresher of open connections, as the hub's hooks.
//!
//! The algorithm is the configuration's, never the token's: HS256 with
//! `jwt_secret`, RS256 or ES256 (by the key's type) with `jwt_public_key`.
//! A token whose header names another algorithm (`none`, or HS256 signed
//! with the public key as its secret) is refused before any signature is
//! checked, and `jsonwebtoken` checks again. `exp` is required.
//!
//! This lives in the binary, not the hub: the hub takes any authorizer (a
//! [`Grant`]), and a library user should not pay for a crypto stack it
//! does not use, nor for this server's choice of where tokens are found.

use std::sync::Arc;

use anyhow::Context as _;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use switchboard_hub::{Grant, Hub, RequestError};
use switchboard_proto::handshake::Request;

use super::claims::Claims;
use super::credentials;
use crate::settings::ServeSettings;

/// Checks tokens with one key and one algorithm.
pub struct Verifier {
    algorithm: Algorithm,
    key: DecodingKey,
    validation: Validation,
    cookie: String,
}

/// The DER of the P-256 curve's OID (1.2.840.10045.3.1.7), as it appears
/// in an ES256 public key.
const P256_OID: &[u8] = &[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];

impl Verifier {
    /// The verifier the settings ask for, if any (the key file is read now,
    /// so that a bad one stops the server at startup).
    pub fn from_settings(settings: &ServeSettings) -> anyhow::Result<Option<Verifier>> {
        let (algorithm, key) = match (&settings.jwt_secret, &settings.jwt_public_key) {
            (Some(secret), None) => (
                Algorithm::HS256,
                DecodingKey::from_secret(secret.as_bytes()),
            ),
            (None, Some(path)) => {
                let pem = std::fs::read_to_string(path)
                    .with_context(|| format!("reading jwt_public_key {}", path.display()))?;
                public_key(&pem).with_context(|| format!("jwt_public_key {}", path.display()))?
            }
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => anyhow::bail!("give jwt_secret or jwt_public_key, not both"),
        };
        Ok(Some(Verifier::new(algorithm, key, settings)))
    }

    /// A verifier of `algorithm` with `key`, and the claim checks of the
    /// settings (audience, issuer, leeway, cookie).
    fn new(algorithm: Algorithm, key: DecodingKey, settings: &ServeSettings) -> Verifier {
        let mut validation = Validation::new(algorithm);
        validation.leeway = settings.jwt_leeway;
        validation.validate_nbf = true;
        // jsonwebtoken checks `aud` and `iss` only when a token has them:
        // a configured one is also made required, or leaving it out would
        // pass. A token with an `aud` is refused when none is configured
        // (RFC 7519 §4.1.3: this server cannot tell it is meant for it).
        let mut required = vec!["exp"];
        if let Some(audience) = &settings.jwt_audience {
            validation.set_audience(&[audience]);
            required.push("aud");
        }
        if let Some(issuer) = &settings.jwt_issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        Verifier {
            algorithm,
            key,
            validation,
            cookie: settings.jwt_cookie.clone(),
        }
    }

    /// Makes this the hub's authorizer of upgrades and refresher of tokens.
    pub fn install(self, hub: &Hub) {
        let verifier = Arc::new(self);
        let refresher = verifier.clone();
        hub.set_grant_authorizer(move |request| verifier.authorize(request));
        hub.set_refresher(move |token| {
            refresher
                .verify(token)
                .map_err(|why| RequestError::new("invalid_token", why))
        });
    }

    /// An upgrade: 401 without a token, 403 with one that does not verify;
    /// the reason goes in the response body.
    pub fn authorize(&self, request: &Request) -> Result<Grant, (u16, String)> {
        let token = credentials::token(request, Some(&self.cookie)).ok_or_else(|| {
            let how = format!(
                "a token is required (Authorization: Bearer, cookie {}, or ?token=)",
                self.cookie
            );
            (401, how)
        })?;
        self.verify(&token).map_err(|why| (403, why))
    }

    /// The grant of a valid token, or why it is not one.
    pub fn verify(&self, token: &str) -> Result<Grant, String> {
        self.check_algorithm(token)?;
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|error| self.explain(error.kind()))?;
        data.claims
            .into_grant(self.validation.leeway)
            .map_err(|why| format!("invalid token: {why}"))
    }

    /// The header's `alg` must be the configured one, read before anything
    /// else of the token is trusted.
    fn check_algorithm(&self, token: &str) -> Result<(), String> {
        let expected = algorithm_name(self.algorithm);
        let header = token
            .split('.')
            .next()
            .and_then(|part| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(part)
                    .ok()
            })
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .ok_or_else(|| String::from("invalid token: malformed header"))?;
        match header.get("alg").and_then(|alg| alg.as_str()) {
            Some(alg) if alg == expected => Ok(()),
            Some(alg) => Err(format!(
                "invalid token: algorithm {alg} is not accepted (this server verifies {expected})"
            )),
            None => Err(String::from("invalid token: no algorithm in the header")),
        }
    }

    fn explain(&self, kind: &ErrorKind) -> String {
        let why = match kind {
            ErrorKind::ExpiredSignature => "expired",
            ErrorKind::ImmatureSignature => "not yet valid (nbf)",
            ErrorKind::InvalidSignature => "bad signature",
            ErrorKind::InvalidAlgorithm => "algorithm not accepted",
            ErrorKind::InvalidAudience => "wrong audience",
            ErrorKind::InvalidIssuer => "wrong issuer",
            ErrorKind::MissingRequiredClaim(claim) => {
                return format!("invalid token: the {claim} claim is required")
            }
            ErrorKind::Json(error) => return format!("invalid token: claims: {error}"),
            _ => "malformed",
        };
        format!("invalid token: {why}")
    }
}

/// An RS256 or ES256 (P-256) public key from PEM, by its type.
fn public_key(pem: &str) -> anyhow::Result<(Algorithm, DecodingKey)> {
    anyhow::ensure!(
        !pem.contains("PRIVATE KEY"),
        "this is a private key; give the public key (-----BEGIN PUBLIC KEY-----)"
    );
    if let Ok(key) = DecodingKey::from_rsa_pem(pem.as_bytes()) {
        return Ok((Algorithm::RS256, key));
    }
    let key = DecodingKey::from_ec_pem(pem.as_bytes())
        .map_err(|_| anyhow::anyhow!("not an RSA or EC public key in PEM"))?;
    anyhow::ensure!(
        pem_der(pem).is_some_and(|der| der.windows(P256_OID.len()).any(|w| w == P256_OID)),
        "an EC key must be on P-256 (ES256)"
    );
    Ok((Algorithm::ES256, key))
}

/// The DER inside a PEM block.
fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .ok()
}

fn algorithm_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::HS256 => "HS256",
        Algorithm::RS256 => "RS256",
        Algorithm::ES256 => "ES256",
        _ => "another algorithm",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    const SECRET: &str = "a-test-secret-of-at-least-32-bytes!";
    const RSA_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAvz7Ot6RLuY4KP1hoRCDx
OSLG7OHU9PD+YCsNNpcripRAnvLqgprcpyBc6eTyJ5p2LkA3Md8EBvmOGvY5+kUW
ZGd6ikxMO1f3yLL8aC1+yrcrnzBCx3Vb9i8TnGXCwOLeI5ipQHAPy5xEv6vX6hRU
90qmCD4taJF+PjwIWYJTMhHezfAcgMjjouqg2JoX7tDOoK0Q0AiithAJ60d3e0XV
JMpNyt0go1xK2R/ri5I8Cqsh9SN6WfaffZadm22xuq6vV4UBx+2wa58zL2jBuX2I
21cFO3Jt4XYu7YvXS7H7gc+sNOSVhVhICxBXC4CZj22yBvO6bReBd+BLGqq9nsxO
iwIDAQAB
-----END PUBLIC KEY-----
";
    const P256_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE43Q30QgAiDyMpH029Y4lV/JPdnvn
9WTe+A9XkrJb9dWGRorCvauyOUBsyzcBwCCk2tD/J9UKb8vlVfNDev8Ecg==
-----END PUBLIC KEY-----
";
    const P384_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEB4ZKqSJZktZ+H8TFqi8XMOWWRinqJ2ei
1hExbncpnhK0tiO95xNgjN68UO3Ou1kFjtcY+gVmrntQiC8/HDmHdbxSrbzE3NrE
u6oTgg6JB2JSSVkCQb0fCDFF/wEsKj7/
-----END PUBLIC KEY-----
";

    fn hs256_verifier(leeway: u64) -> Verifier {
        let settings = ServeSettings {
            jwt_leeway: leeway,
            ..ServeSettings::default()
        };
        let key = DecodingKey::from_secret(SECRET.as_bytes());
        Verifier::new(Algorithm::HS256, key, &settings)
    }

    fn hs256(claims: serde_json::Value, secret: &[u8]) -> String {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    #[test]
    fn a_valid_token_gives_its_grant_and_leeway_moves_the_deadline() {
        let exp = now() - 10;
        let token = hs256(
            json!({"exp": exp, "sub": "u1", "name": "Ann"}),
            SECRET.as_bytes(),
        );
        assert_eq!(
            hs256_verifier(0).verify(&token).unwrap_err(),
            "invalid token: expired"
        );
        let grant = hs256_verifier(30).verify(&token).unwrap();
        assert_eq!(grant.name.as_deref(), Some("Ann"));
        assert_eq!(grant.meta["user"], "u1");
        let deadline = std::time::UNIX_EPOCH + std::time::Duration::from_secs(exp + 30);
        assert_eq!(grant.expires, Some(deadline));
    }

    #[test]
    fn wrong_signatures_and_algorithms_are_refused() {
        let verifier = hs256_verifier(0);
        let claims = json!({"exp": now() + 60});
        let other = hs256(claims.clone(), b"another-secret-of-at-least-32-bytes");
        assert_eq!(
            verifier.verify(&other).unwrap_err(),
            "invalid token: bad signature"
        );
        let b64 = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let none = format!("{}.{}.", b64(json!({"alg": "none"})), b64(claims.clone()));
        assert!(verifier
            .verify(&none)
            .unwrap_err()
            .contains("algorithm none"));
        assert!(verifier.verify("").unwrap_err().contains("malformed"));
    }

    #[test]
    fn an_hs256_token_made_with_the_public_key_is_refused_by_rs256() {
        let (algorithm, key) = public_key(RSA_PUBLIC).unwrap();
        assert_eq!(algorithm, Algorithm::RS256);
        let verifier = Verifier::new(algorithm, key, &ServeSettings::default());
        let forged = hs256(json!({"exp": now() + 60}), RSA_PUBLIC.as_bytes());
        let why = verifier.verify(&forged).unwrap_err();
        assert!(why.contains("algorithm HS256 is not accepted"), "{why}");
    }

    #[test]
    fn a_configured_audience_and_issuer_are_required() {
        let settings = ServeSettings {
            jwt_audience: Some("sb".into()),
            jwt_issuer: Some("auth".into()),
            ..ServeSettings::default()
        };
        let key = DecodingKey::from_secret(SECRET.as_bytes());
        let verifier = Verifier::new(Algorithm::HS256, key, &settings);
        let exp = now() + 60;
        let token = |claims| hs256(claims, SECRET.as_bytes());
        assert!(verifier
            .verify(&token(json!({"exp": exp, "aud": "sb", "iss": "auth"})))
            .is_ok());
        for (claims, why) in [
            (
                json!({"exp": exp, "iss": "auth"}),
                "the aud claim is required",
            ),
            (
                json!({"exp": exp, "aud": "sb"}),
                "the iss claim is required",
            ),
            (
                json!({"exp": exp, "aud": "x", "iss": "auth"}),
                "wrong audience",
            ),
            (json!({"exp": exp, "aud": "sb", "iss": "x"}), "wrong issuer"),
        ] {
            let refusal = verifier.verify(&token(claims)).unwrap_err();
            assert!(refusal.contains(why), "{refusal}");
        }
        let token_with_aud = token(json!({"exp": exp, "aud": "sb"}));
        let refusal = hs256_verifier(0).verify(&token_with_aud).unwrap_err();
        assert!(refusal.contains("wrong audience"), "{refusal}");
    }

    #[test]
    fn the_key_type_picks_the_algorithm() {
        let refusal = |pem: &str| public_key(pem).err().map(|e| e.to_string());
        assert_eq!(public_key(P256_PUBLIC).unwrap().0, Algorithm::ES256);
        let p384 = refusal(P384_PUBLIC).unwrap();
        assert!(p384.contains("P-256"), "{p384}");
        let private = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(refusal(private).unwrap().contains("private key"));
        assert!(refusal("not a key").is_some());
    }
}
