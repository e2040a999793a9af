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
        let mut validation = Validation::new(algorithm);
        validation.leeway = settings.jwt_leeway;
        validation.validate_nbf = true;
        validation.validate_aud = settings.jwt_audience.is_some();
        if let Some(audience) = &settings.jwt_audience {
            validation.set_audience(&[audience]);
        }
        if let Some(issuer) = &settings.jwt_issuer {
            validation.set_issuer(&[issuer]);
        }
        Ok(Some(Verifier {
            algorithm,
            key,
            validation,
            cookie: settings.jwt_cookie.clone(),
        }))
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
