//! The WebSocket endpoints of `serve`: which path speaks which protocol,
//! and which subprotocols it answers.
//!
//! Two are always there unless their path is given another kind: the hub on
//! `/ws` and the echo on `/echo`. More come from `[[endpoint]]` tables in
//! the config file, or from `--endpoint PATH=KIND[,protocol=NAME…]`
//! (repeatable; the flags replace the file's list). The kinds:
//!
//! - `hub`: the hub protocol (docs/PROTOCOL.md);
//! - `is2`: the hub protocol as IS2 serves it: every connection receives
//!   every address message (it is subscribed to `/**` as it joins) and
//!   each message it sends is answered with `{"handshake":true}`;
//! - `echo`: every message comes back unchanged;
//! - `rooms`: the rooms protocol of Espruino's `ws` Node server example
//!   (plain text messages; see `serve::rooms`).
//!
//! Every path may be a WebSocket endpoint, `/` included: a request without
//! `Upgrade: websocket` still gets the page or route of that path.
//! docs/SEEDS.md shows the settings that run the seeds' programs as they are.

use serde::Deserialize;
use serde_json::Value;

/// What an endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointKind {
    /// The hub protocol.
    Hub,
    /// The hub protocol, every address message to everyone, IS2's answer.
    Is2,
    /// A raw echo.
    Echo,
    /// Espruino's rooms protocol.
    Rooms,
}

impl EndpointKind {
    const ALL: [(&'static str, EndpointKind); 4] = [
        ("hub", EndpointKind::Hub),
        ("is2", EndpointKind::Is2),
        ("echo", EndpointKind::Echo),
        ("rooms", EndpointKind::Rooms),
    ];

    /// The kind's name, as the settings spell it.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, kind)| *kind == self)
            .map_or("hub", |(name, _)| name)
    }

    fn parse(text: &str) -> Result<EndpointKind, String> {
        Self::ALL
            .iter()
            .find(|(name, _)| *name == text)
            .map(|(_, kind)| *kind)
            .ok_or_else(|| format!("unknown endpoint kind {text:?}: hub, is2, echo or rooms"))
    }

    /// The subprotocols an endpoint of this kind supports before the
    /// configured ones: the hub's encodings for the hub kinds.
    pub fn own_protocols(self) -> &'static [&'static str] {
        match self {
            EndpointKind::Hub | EndpointKind::Is2 => &[
                switchboard_hub::JSON_PROTOCOL,
                switchboard_hub::MSGPACK_PROTOCOL,
            ],
            EndpointKind::Echo | EndpointKind::Rooms => &[],
        }
    }
}

/// One WebSocket endpoint: in the config file a table `{path, kind,
/// protocols}` or the string `--endpoint` takes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Value")]
pub struct EndpointSpec {
    /// The request path (without query), e.g. `/` or `/my_websocket`.
    pub path: String,
    /// What it speaks.
    pub kind: EndpointKind,
    /// Subprotocols answered, in order of preference, after the kind's own:
    /// the first one of these the client offers is answered. An echo
    /// endpoint with none answers the first one offered. A request
    /// offering none of them is accepted without one (RFC 6455 §4.2.2).
    pub protocols: Vec<String>,
}

impl TryFrom<Value> for EndpointSpec {
    type Error = String;

    fn try_from(value: Value) -> Result<EndpointSpec, String> {
        let spec = match value {
            Value::String(text) => EndpointSpec::parse(&text)?,
            Value::Object(mut table) => {
                let mut text = |field: &str| match table.remove(field) {
                    Some(Value::String(text)) => Ok(text),
                    _ => Err(format!("an [[endpoint]] needs {field} = \"…\"")),
                };
                let (path, kind) = (text("path")?, text("kind")?);
                let protocols = match table.remove("protocols") {
                    None => Vec::new(),
                    Some(Value::Array(names)) => names
                        .into_iter()
                        .map(|name| match name {
                            Value::String(name) => Ok(name),
                            _ => Err("protocols is a list of names".to_owned()),
                        })
                        .collect::<Result<_, _>>()?,
                    Some(_) => return Err("protocols is a list of names".into()),
                };
                if let Some(field) = table.keys().next() {
                    return Err(format!(
                        "unknown field {field:?} in [[endpoint]] {path} (path, kind, protocols)"
                    ));
                }
                EndpointSpec {
                    path,
                    kind: EndpointKind::parse(&kind)?,
                    protocols,
                }
            }
            _ => return Err("an endpoint is \"PATH=KIND[,protocol=NAME…]\" or a table".into()),
        };
        spec.check()?;
        Ok(spec)
    }
}

impl EndpointSpec {
    fn new(path: &str, kind: EndpointKind) -> EndpointSpec {
        EndpointSpec {
            path: path.to_owned(),
            kind,
            protocols: Vec::new(),
        }
    }

    /// Parses `PATH=KIND[,protocol=NAME…]`, as `--endpoint` takes it.
    pub fn parse(text: &str) -> Result<EndpointSpec, String> {
        let (path, rest) = text
            .split_once('=')
            .ok_or_else(|| format!("{text:?}: an endpoint is PATH=KIND[,protocol=NAME…]"))?;
        let mut parts = rest.split(',').map(str::trim);
        let kind = EndpointKind::parse(parts.next().unwrap_or_default())?;
        let mut spec = EndpointSpec::new(path.trim(), kind);
        for option in parts {
            match option.split_once('=') {
                Some(("protocol", name)) => spec.protocols.push(name.trim().to_owned()),
                _ => {
                    return Err(format!(
                        "{text:?}: unknown option {option:?} (protocol=NAME)"
                    ))
                }
            }
        }
        spec.check()?;
        Ok(spec)
    }

    fn check(&self) -> Result<(), String> {
        let path = &self.path;
        if !path.starts_with('/') || path.contains(['?', '#']) || path.contains(char::is_whitespace)
        {
            return Err(format!(
                "endpoint path {path:?} must start with / and have no query, fragment or spaces"
            ));
        }
        for name in &self.protocols {
            // RFC 6455 §4.1: a subprotocol is an HTTP token.
            let token = |c: char| c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?={}".contains(c);
            if name.is_empty() || !name.chars().all(token) {
                return Err(format!("subprotocol {name:?} of {path} is not a token"));
            }
        }
        Ok(())
    }

    /// The subprotocol to answer a client that offers `offered` (in its
    /// order): the first of the kind's own and the configured ones that
    /// it offers; for an echo endpoint without configured ones, the first
    /// offered. None if nothing matches: the upgrade is still accepted.
    pub fn select_protocol<'a>(&'a self, offered: &'a [String]) -> Option<&'a str> {
        if self.kind == EndpointKind::Echo && self.protocols.is_empty() {
            return offered.first().map(String::as_str);
        }
        let supported = self
            .kind
            .own_protocols()
            .iter()
            .copied()
            .chain(self.protocols.iter().map(String::as_str));
        supported
            .into_iter()
            .find(|ours| offered.iter().any(|theirs| theirs == ours))
    }
}

/// The endpoint table: `/ws` (hub) and `/echo` (echo), then the configured
/// ones, a configured path replacing a built-in one.
pub fn resolve(configured: &[EndpointSpec]) -> Result<Vec<EndpointSpec>, String> {
    for (at, spec) in configured.iter().enumerate() {
        if configured[..at].iter().any(|other| other.path == spec.path) {
            return Err(format!("endpoint {} is given twice", spec.path));
        }
    }
    let mut table: Vec<EndpointSpec> = [
        EndpointSpec::new("/ws", EndpointKind::Hub),
        EndpointSpec::new("/echo", EndpointKind::Echo),
    ]
    .into_iter()
    .filter(|builtin| configured.iter().all(|spec| spec.path != builtin.path))
    .collect();
    table.extend(configured.iter().cloned());
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offers(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn flag_values() {
        let spec = EndpointSpec::parse("/my_websocket=rooms,protocol=protocolOne").unwrap();
        assert_eq!(spec.path, "/my_websocket");
        assert_eq!(spec.kind, EndpointKind::Rooms);
        assert_eq!(spec.protocols, ["protocolOne"]);
        assert_eq!(
            EndpointSpec::parse("/=is2").unwrap().kind,
            EndpointKind::Is2
        );
        for bad in [
            "/x",
            "/x=chat",
            "x=hub",
            "/a b=hub",
            "/x?y=hub",
            "/x=hub,proto=a",
            "/x=hub,protocol=",
            "/x=hub,protocol=a b",
        ] {
            assert!(EndpointSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn file_takes_tables_and_strings() {
        #[derive(Deserialize)]
        struct File {
            endpoint: Vec<EndpointSpec>,
        }
        let text = r#"
            [[endpoint]]
            path = "/"
            kind = "is2"
            [[endpoint]]
            path = "/my_websocket"
            kind = "rooms"
            protocols = ["protocolOne"]
        "#;
        let file: File = toml::from_str(text).unwrap();
        assert_eq!(file.endpoint[0], EndpointSpec::new("/", EndpointKind::Is2));
        assert_eq!(file.endpoint[1].protocols, ["protocolOne"]);
        let file: File = toml::from_str("endpoint = [\"/e=echo\"]").unwrap();
        assert_eq!(file.endpoint[0].kind, EndpointKind::Echo);
        let error = |text: &str| toml::from_str::<File>(text).err().unwrap().to_string();
        assert!(
            error("[[endpoint]]\npath = \"/\"\nkind = \"chat\"").contains("unknown endpoint kind")
        );
        assert!(error("[[endpoint]]\npath = \"/\"").contains("kind"));
        assert!(error("[[endpoint]]\npath = \"/\"\nkind = \"hub\"\nport = 1").contains("port"));
        assert!(toml::from_str::<File>("[[endpoint]]\npath = \"x\"\nkind = \"hub\"").is_err());
    }

    #[test]
    fn the_table_keeps_the_builtins_unless_replaced() {
        let paths = |table: Vec<EndpointSpec>| {
            table
                .into_iter()
                .map(|spec| (spec.path, spec.kind))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            paths(resolve(&[]).unwrap()),
            [
                ("/ws".to_owned(), EndpointKind::Hub),
                ("/echo".to_owned(), EndpointKind::Echo)
            ]
        );
        let configured = [
            EndpointSpec::parse("/=is2").unwrap(),
            EndpointSpec::parse("/echo=rooms").unwrap(),
        ];
        assert_eq!(
            paths(resolve(&configured).unwrap()),
            [
                ("/ws".to_owned(), EndpointKind::Hub),
                ("/".to_owned(), EndpointKind::Is2),
                ("/echo".to_owned(), EndpointKind::Rooms)
            ]
        );
        let twice = [
            EndpointSpec::parse("/a=hub").unwrap(),
            EndpointSpec::parse("/a=echo").unwrap(),
        ];
        assert!(resolve(&twice).is_err());
    }

    #[test]
    fn subprotocols_by_kind_and_setting() {
        let hub = EndpointSpec::parse("/ws=hub").unwrap();
        let offered = offers(&["x", "switchboard.msgpack", "switchboard.json"]);
        assert_eq!(hub.select_protocol(&offered), Some("switchboard.json"));
        assert_eq!(hub.select_protocol(&offers(&["x"])), None);
        let rooms = EndpointSpec::parse("/r=rooms,protocol=protocolOne,protocol=two").unwrap();
        assert_eq!(
            rooms.select_protocol(&offers(&["two", "protocolOne"])),
            Some("protocolOne"),
            "the server's order wins"
        );
        assert_eq!(rooms.select_protocol(&offers(&["three"])), None);
        assert_eq!(rooms.select_protocol(&[]), None);
        let echo = EndpointSpec::parse("/e=echo").unwrap();
        assert_eq!(echo.select_protocol(&offers(&["b", "a"])), Some("b"));
        assert_eq!(echo.select_protocol(&[]), None);
        let echo = EndpointSpec::parse("/e=echo,protocol=a").unwrap();
        assert_eq!(echo.select_protocol(&offers(&["b", "a"])), Some("a"));
        assert_eq!(echo.select_protocol(&offers(&["b"])), None);
    }
}
