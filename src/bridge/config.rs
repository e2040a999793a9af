//! Which bridges `serve` opens: the `[bridge]` table of the config file,
//! whose lists the `--zmq-*` / `--osc-*` flags replace (see
//! `ServeSettings::resolve`).
//!
//! Every entry is an endpoint and, for outputs, an optional address pattern
//! and, for ZeroMQ outputs, the key the values are written under (`values`,
//! or `value` as IS2 writes them). On the command line all fit in one
//! value, `ENDPOINT[=PATTERN][;key=value]`; in the file an entry is either
//! that same string or a table `{ endpoint = "...", pattern = "...",
//! key = "value" }`. Nothing is opened unless listed.

use anyhow::Context as _;
use serde::Deserialize;
use switchboard_hub::pattern::Pattern;

use super::endpoint;
use super::kind::Kind;
use super::link::ValuesKey;

/// One configured endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RouteSpec")]
pub struct Route {
    /// Where: `tcp://HOST:PORT` (with an optional `@` bind / `>` connect
    /// prefix) for ZeroMQ, `HOST:PORT` for OSC.
    pub endpoint: String,
    /// Which addresses an output sends; `None` sends every one.
    pub pattern: Option<String>,
    /// ZeroMQ outputs: `"values"` (the default) or `"value"` (IS2's).
    pub key: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RouteSpec {
    Text(String),
    Table(RouteTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteTable {
    endpoint: String,
    pattern: Option<String>,
    key: Option<String>,
}

impl TryFrom<RouteSpec> for Route {
    type Error = String;

    fn try_from(spec: RouteSpec) -> Result<Route, String> {
        match spec {
            RouteSpec::Text(text) => Route::parse(&text),
            RouteSpec::Table(table) => Ok(Route {
                endpoint: table.endpoint,
                pattern: table.pattern,
                key: table.key,
            }),
        }
    }
}

impl Route {
    /// Parses `ENDPOINT[=PATTERN][;key=KEY]` (an endpoint never contains
    /// `=`, an address never `;`).
    pub fn parse(text: &str) -> Result<Route, String> {
        let (text, key) = match text.split_once(';') {
            Some((text, option)) => match option.trim().split_once('=') {
                Some(("key", key)) => (text, Some(key.trim().to_owned())),
                _ => return Err(format!("unknown option {option:?} (key=value)")),
            },
            None => (text, None),
        };
        let (endpoint, pattern) = match text.split_once('=') {
            Some((endpoint, pattern)) => (endpoint, Some(pattern.to_owned())),
            None => (text, None),
        };
        Ok(Route {
            endpoint: endpoint.trim().to_owned(),
            pattern,
            key,
        })
    }

    /// The key a ZeroMQ output writes the values under.
    pub fn values_key(&self) -> Result<ValuesKey, String> {
        self.key
            .as_deref()
            .map_or(Ok(ValuesKey::default()), ValuesKey::parse)
    }

    /// The parsed pattern, if any.
    pub fn pattern(&self) -> Result<Option<Pattern>, String> {
        self.pattern.as_deref().map(Pattern::parse).transpose()
    }
}

/// The `[bridge]` table: lists of endpoints by kind, all empty by default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BridgeSettings {
    /// ZeroMQ PUSH sockets that address messages are sent to.
    pub zmq_push: Vec<Route>,
    /// ZeroMQ PUB sockets that address messages are sent to.
    pub zmq_pub: Vec<Route>,
    /// ZeroMQ PULL sockets whose messages are published into the hub.
    pub zmq_pull: Vec<Route>,
    /// ZeroMQ SUB sockets whose messages are published into the hub.
    pub zmq_sub: Vec<Route>,
    /// UDP addresses where OSC packets are received.
    pub osc_listen: Vec<Route>,
    /// UDP addresses that address messages are sent to as OSC.
    pub osc_send: Vec<Route>,
}

impl BridgeSettings {
    /// Every entry with its kind, in a fixed order.
    pub fn entries(&self) -> impl Iterator<Item = (Kind, &Route)> {
        [
            (Kind::ZmqPush, &self.zmq_push),
            (Kind::ZmqPub, &self.zmq_pub),
            (Kind::ZmqPull, &self.zmq_pull),
            (Kind::ZmqSub, &self.zmq_sub),
            (Kind::OscListen, &self.osc_listen),
            (Kind::OscSend, &self.osc_send),
        ]
        .into_iter()
        .flat_map(|(kind, routes)| routes.iter().map(move |route| (kind, route)))
    }

    /// Replaces the list of one kind with the entries a flag (or its
    /// variable) gives, each `ENDPOINT[=PATTERN]`; `flag` names it in errors.
    pub fn replace(
        &mut self,
        kind: Kind,
        given: &[String],
        flag: &'static str,
    ) -> anyhow::Result<()> {
        let list = match kind {
            Kind::ZmqPush => &mut self.zmq_push,
            Kind::ZmqPub => &mut self.zmq_pub,
            Kind::ZmqPull => &mut self.zmq_pull,
            Kind::ZmqSub => &mut self.zmq_sub,
            Kind::OscListen => &mut self.osc_listen,
            Kind::OscSend => &mut self.osc_send,
        };
        *list = given
            .iter()
            .map(|text| Route::parse(text))
            .collect::<Result<_, _>>()
            .map_err(anyhow::Error::msg)
            .context(flag)?;
        Ok(())
    }

    /// Checks every endpoint and pattern.
    pub fn validate(&self) -> anyhow::Result<()> {
        for (kind, route) in self.entries() {
            route.check(kind)?;
        }
        Ok(())
    }
}

impl Route {
    /// Checks the endpoint and pattern for an endpoint of this kind.
    fn check(&self, kind: Kind) -> anyhow::Result<()> {
        let what = || format!("bridge.{} {:?}", kind.name(), self.endpoint);
        endpoint::check(kind, &self.endpoint)
            .map_err(anyhow::Error::msg)
            .with_context(what)?;
        if self.pattern.is_some() && !kind.is_output() {
            anyhow::bail!("{}: a pattern filters outputs only", what());
        }
        if self.key.is_some() && !matches!(kind, Kind::ZmqPush | Kind::ZmqPub) {
            anyhow::bail!("{}: key is an option of ZeroMQ outputs only", what());
        }
        self.values_key()
            .map_err(anyhow::Error::msg)
            .with_context(what)?;
        self.pattern()
            .map_err(anyhow::Error::msg)
            .with_context(what)?;
        Ok(())
    }
}

/// The body of `POST /api/bridges`: an entry of the `[bridge]` table with
/// its kind, `{"kind": "zmq_push", "endpoint": "tcp://...", "pattern":
/// "/a/**"}` (or `"endpoint": "ENDPOINT=PATTERN"`, as on the command
/// line), and optionally the `name` it will be known by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBridge {
    /// The kind of endpoint.
    pub kind: Kind,
    /// The endpoint and pattern.
    pub route: Route,
    /// Its id instead of `KIND:ENDPOINT`.
    pub name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewBridgeSpec {
    kind: String,
    endpoint: String,
    pattern: Option<String>,
    key: Option<String>,
    name: Option<String>,
}

/// The longest bridge name.
const MAX_NAME_LEN: usize = 64;

impl NewBridge {
    /// Reads and checks a request body; the error says what is wrong.
    pub fn from_json(body: &[u8]) -> Result<NewBridge, String> {
        let spec: NewBridgeSpec = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let kind = Kind::from_name(&spec.kind).ok_or_else(|| {
            format!(
                "unknown kind {:?}: zmq_push, zmq_pub, zmq_pull, zmq_sub, osc_listen or osc_send",
                spec.kind
            )
        })?;
        let mut route = match spec.pattern {
            Some(pattern) => Route {
                endpoint: spec.endpoint.trim().to_owned(),
                pattern: Some(pattern),
                key: None,
            },
            None => Route::parse(&spec.endpoint)?,
        };
        if spec.key.is_some() {
            route.key = spec.key;
        }
        route.check(kind).map_err(|error| format!("{error:#}"))?;
        if let Some(name) = &spec.name {
            let valid = (1..=MAX_NAME_LEN).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            if !valid {
                return Err(format!(
                    "a name is 1 to {MAX_NAME_LEN} letters, digits, '.', '_' or '-', not {name:?}"
                ));
            }
        }
        Ok(NewBridge {
            kind,
            route,
            name: spec.name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_values() {
        assert_eq!(
            Route::parse("tcp://127.0.0.1:10080=/sensors/**").unwrap(),
            Route {
                endpoint: "tcp://127.0.0.1:10080".into(),
                pattern: Some("/sensors/**".into()),
                key: None,
            }
        );
        let is2 = Route::parse("tcp://127.0.0.1:10080;key=value").unwrap();
        assert_eq!(is2.pattern, None);
        assert_eq!(is2.values_key(), Ok(ValuesKey::Value));
        let is2 = Route::parse("tcp://127.0.0.1:10080=/a/**;key=value").unwrap();
        assert_eq!(is2.pattern.as_deref(), Some("/a/**"));
        assert_eq!(is2.key.as_deref(), Some("value"));
        assert!(Route::parse("tcp://127.0.0.1:1;format=value").is_err());
        assert_eq!(Route::parse("127.0.0.1:57121").unwrap().pattern, None);
    }

    #[test]
    fn file_accepts_strings_and_tables() {
        let text = r#"
            zmq_push = ["tcp://127.0.0.1:1=/a/**"]
            osc_listen = ["127.0.0.1:57120"]
            [[zmq_pub]]
            endpoint = "tcp://127.0.0.1:2"
            pattern = "/b/*"
            key = "value"
        "#;
        let settings: BridgeSettings = toml::from_str(text).unwrap();
        settings.validate().unwrap();
        assert_eq!(settings.zmq_pub[0].values_key(), Ok(ValuesKey::Value));
        assert_eq!(settings.zmq_push[0].values_key(), Ok(ValuesKey::Values));
        assert_eq!(settings.zmq_push[0].pattern.as_deref(), Some("/a/**"));
        assert_eq!(settings.zmq_pub[0].endpoint, "tcp://127.0.0.1:2");
        assert_eq!(settings.entries().count(), 3);
        assert_eq!(BridgeSettings::default().entries().count(), 0);
        assert!(
            toml::from_str::<BridgeSettings>("zmq_pull = [{ endpoint = \"x\", port = 1 }]")
                .is_err()
        );
    }

    #[test]
    fn api_bodies() {
        let body = br#"{"kind":"zmq_push","endpoint":"tcp://127.0.0.1:1","pattern":"/a/**"}"#;
        let new = NewBridge::from_json(body).unwrap();
        assert_eq!(new.kind, Kind::ZmqPush);
        assert_eq!(new.route.pattern.as_deref(), Some("/a/**"));
        let body = br#"{"kind":"osc_send","endpoint":"127.0.0.1:1=/b/*","name":"lights-1"}"#;
        let new = NewBridge::from_json(body).unwrap();
        assert_eq!(new.route.endpoint, "127.0.0.1:1");
        assert_eq!(new.name.as_deref(), Some("lights-1"));
        let bad = |body: &str| NewBridge::from_json(body.as_bytes()).unwrap_err();
        assert!(bad(r#"{"kind":"zmq_rep","endpoint":"tcp://127.0.0.1:1"}"#).contains("kind"));
        assert!(
            bad(r#"{"kind":"zmq_pull","endpoint":"tcp://127.0.0.1:1=/a"}"#)
                .contains("outputs only")
        );
        assert!(bad(r#"{"kind":"osc_send","endpoint":"x"}"#).contains("HOST:PORT"));
        assert!(
            bad(r#"{"kind":"osc_send","endpoint":"127.0.0.1:1","port":2}"#)
                .contains("unknown field")
        );
        assert!(
            bad(r#"{"kind":"osc_send","endpoint":"127.0.0.1:1","name":"a:b"}"#).contains("name")
        );
        assert!(!bad("[]").is_empty());
        assert!(!bad("{").is_empty());
    }

    #[test]
    fn bad_entries_are_errors() {
        let bad = |kind: &str, entry: &str| {
            let text = format!("{kind} = [{entry:?}]");
            let settings: BridgeSettings = toml::from_str(&text).unwrap();
            settings.validate().unwrap_err().to_string()
        };
        assert!(bad("zmq_push", "127.0.0.1:1").contains("zmq_push"));
        assert!(bad("zmq_push", "udp://127.0.0.1:1").contains("zmq_push"));
        assert!(bad("zmq_push", "tcp://127.0.0.1:1=sensors").contains("zmq_push"));
        assert!(bad("zmq_pull", "tcp://127.0.0.1:1=/a").contains("outputs only"));
        assert!(bad("osc_send", "tcp://127.0.0.1:1").contains("osc_send"));
        assert!(bad("osc_listen", "127.0.0.1").contains("osc_listen"));
        assert!(bad("zmq_pull", "tcp://127.0.0.1:1;key=value").contains("ZeroMQ outputs"));
        assert!(bad("osc_send", "127.0.0.1:1;key=value").contains("ZeroMQ outputs"));
        assert!(bad("zmq_push", "tcp://127.0.0.1:1;key=vals").contains("zmq_push"));
    }
}
