//! A verified token's claims as a hub [`Grant`]: who, name, metadata,
//! rooms, deadline. The claims are documented in docs/PROTOCOL.md.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::Value;
use switchboard_hub::pattern::Pattern;
use switchboard_hub::{envelope, Access, Grant, Paths};

/// The claims the server reads; the verifier has checked `exp`, `nbf`,
/// `aud` and `iss` already. Others are ignored.
#[derive(Debug, Deserialize)]
pub struct Claims {
    /// Seconds since the Unix epoch; required (optional here only so that
    /// its absence is reported as such, not as a parse error).
    #[serde(default)]
    pub exp: Option<u64>,
    /// The subject: kept as the `user` metadata, fixed for the connection.
    #[serde(default)]
    pub sub: Option<String>,
    /// The connection's initial name.
    #[serde(default)]
    pub name: Option<String>,
    /// Metadata for the application: strings, or other JSON values as text.
    #[serde(default)]
    pub meta: BTreeMap<String, Value>,
    /// Rooms (with `*` wildcards) the connection may join; absent: any.
    #[serde(default)]
    pub rooms: Option<Vec<String>>,
    /// Rooms it may send to (`*` among them allows broadcasts); absent: any.
    #[serde(default)]
    pub publish: Option<Vec<String>>,
    /// Address patterns it may publish `{path, values}` to; absent: any.
    #[serde(default)]
    pub paths: Option<Vec<String>>,
}

/// The metadata key that holds `sub`.
pub const USER_KEY: &str = "user";

impl Claims {
    /// The grant for these claims; the deadline is `exp` plus `leeway`
    /// seconds, as the verifier counts it. An unusable claim (a name or
    /// room rule the hub would refuse) is an error: the token is refused
    /// rather than half used.
    pub fn into_grant(self, leeway: u64) -> Result<Grant, String> {
        let exp = self.exp.ok_or("the exp claim is required")?;
        let mut grant = Grant::default();
        for (key, value) in self.meta {
            let text = match value {
                Value::String(text) => text,
                Value::Null => continue,
                other => other.to_string(),
            };
            grant.meta.insert(key, text);
        }
        if let Some(sub) = &self.sub {
            grant.meta.insert(USER_KEY.to_owned(), sub.clone());
        }
        grant.subject = self.sub;
        grant.name = match self.name {
            Some(name) => Some(envelope::user_name(&name).map_err(|e| e.message)?),
            None => None,
        };
        grant.rooms = access("rooms", self.rooms)?;
        grant.publish = access("publish", self.publish)?;
        grant.paths = paths(self.paths)?;
        grant.expires = Some(UNIX_EPOCH + Duration::from_secs(exp.saturating_add(leeway)));
        Ok(grant)
    }
}

/// A list of room rules, each checked as a room name is.
fn access(claim: &str, rules: Option<Vec<String>>) -> Result<Access, String> {
    let Some(rules) = rules else {
        return Ok(Access::Any);
    };
    for rule in &rules {
        envelope::room_name(Some(rule)).map_err(|e| format!("claim {claim}: {}", e.message))?;
    }
    Ok(Access::Only(rules))
}

/// A list of address patterns, parsed as `subscribe` parses them.
fn paths(patterns: Option<Vec<String>>) -> Result<Paths, String> {
    let Some(patterns) = patterns else {
        return Ok(Paths::Any);
    };
    let parsed = patterns.iter().map(|text| Pattern::parse(text));
    let parsed: Result<Vec<Pattern>, String> = parsed.collect();
    parsed
        .map(Paths::Only)
        .map_err(|why| format!("claim paths: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(value: Value) -> Claims {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn every_claim_lands_in_the_grant() {
        let grant = claims(json!({
            "exp": 2_000_000_000u64,
            "sub": "u-42",
            "name": " Ann ",
            "meta": {"team": "red", "level": 3, "admin": false, "gone": null, "user": "spoof"},
            "rooms": ["lobby", "team-*"],
            "publish": ["team-*"],
            "paths": ["/lights/**"],
        }))
        .into_grant(5)
        .unwrap();
        assert_eq!(grant.subject.as_deref(), Some("u-42"));
        assert_eq!(grant.name.as_deref(), Some("Ann"));
        let meta: Vec<(&str, &str)> = grant
            .meta
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            meta,
            [
                ("admin", "false"),
                ("level", "3"),
                ("team", "red"),
                ("user", "u-42")
            ]
        );
        assert!(grant.rooms.allows("lobby") && grant.rooms.allows("team-blue"));
        assert!(!grant.rooms.allows("staff"));
        assert!(grant.publish.allows("team-x") && !grant.publish.allows("lobby"));
        assert!(!grant.publish.allows_all());
        assert!(grant.paths.allows("/lights/a") && !grant.paths.allows("/door"));
        assert_eq!(
            grant.expires,
            Some(UNIX_EPOCH + Duration::from_secs(2_000_000_005))
        );
    }

    #[test]
    fn absent_claims_allow_everything() {
        let grant = claims(json!({"exp": 1})).into_grant(0).unwrap();
        assert_eq!((grant.subject, grant.name), (None, None));
        assert!(grant.meta.is_empty());
        assert_eq!((grant.rooms, grant.publish), (Access::Any, Access::Any));
        assert_eq!(grant.paths, Paths::Any);
    }

    #[test]
    fn an_empty_list_allows_nothing() {
        let grant = claims(json!({"exp": 1, "rooms": [], "publish": []}))
            .into_grant(0)
            .unwrap();
        assert!(!grant.rooms.allows("lobby") && !grant.publish.allows_all());
    }

    #[test]
    fn unusable_claims_refuse_the_token() {
        for bad in [
            json!({"exp": 1, "name": ""}),
            json!({"exp": 1, "rooms": [""]}),
            json!({"exp": 1, "publish": ["x".repeat(65)]}),
            json!({"exp": 1, "paths": ["no-slash"]}),
        ] {
            assert!(claims(bad.clone()).into_grant(0).is_err(), "{bad}");
        }
        let no_exp = claims(json!({"sub": "no exp"})).into_grant(0);
        assert_eq!(no_exp.unwrap_err(), "the exp claim is required");
        for malformed in [
            json!({"exp": "soon"}),
            json!({"exp": 1, "rooms": "lobby"}),
            json!({"exp": 1, "meta": ["a"]}),
        ] {
            assert!(serde_json::from_value::<Claims>(malformed).is_err());
        }
    }
}
