//! The `Sec-WebSocket-Extensions` header (RFC 6455 §9.1).
//!
//! ```text
//! extension-list = 1#extension
//! extension      = token *( ";" param )
//! param          = token [ "=" ( token | quoted-string ) ]
//! ```

use std::fmt;

/// One extension offered (or accepted) with its parameters, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionOffer {
    /// The extension token, e.g. `permessage-deflate`.
    pub name: String,
    /// Its parameters, as sent.
    pub params: Vec<ExtensionParam>,
}

/// A parameter of an extension offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionParam {
    /// The parameter name.
    pub name: String,
    /// The value, unquoted, if one was given.
    pub value: Option<String>,
}

impl fmt::Display for ExtensionOffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        for param in &self.params {
            write!(f, "; {}", param.name)?;
            if let Some(value) = &param.value {
                write!(f, "={value}")?;
            }
        }
        Ok(())
    }
}

/// Parses every `Sec-WebSocket-Extensions` value, in order.
pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Vec<ExtensionOffer>, String> {
    let mut offers = Vec::new();
    for value in values {
        for item in split_outside_quotes(value, ',') {
            if item.trim().is_empty() {
                continue;
            }
            offers.push(parse_offer(item)?);
        }
    }
    Ok(offers)
}

fn parse_offer(item: &str) -> Result<ExtensionOffer, String> {
    let mut parts = split_outside_quotes(item, ';').into_iter();
    let name = parts.next().unwrap_or_default().trim();
    if !is_token(name) {
        return Err(format!("invalid extension name {name:?}"));
    }
    let mut params = Vec::new();
    for part in parts {
        let (key, value) = match part.split_once('=') {
            Some((key, value)) => (key.trim(), Some(parse_value(value.trim())?)),
            None => (part.trim(), None),
        };
        if !is_token(key) {
            return Err(format!("invalid parameter name {key:?} in {name}"));
        }
        params.push(ExtensionParam {
            name: key.to_owned(),
            value,
        });
    }
    Ok(ExtensionOffer {
        name: name.to_owned(),
        params,
    })
}

fn parse_value(raw: &str) -> Result<String, String> {
    let value = match raw.strip_prefix('"') {
        Some(rest) => rest
            .strip_suffix('"')
            .ok_or_else(|| format!("unterminated quoted value {raw:?}"))?
            .replace('\\', ""),
        None => raw.to_owned(),
    };
    // RFC 6455 §9.1: a quoted value must still be a token once unquoted.
    if !is_token(&value) {
        return Err(format!("invalid parameter value {raw:?}"));
    }
    Ok(value)
}

/// RFC 7230 §3.2.6 token characters.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn split_outside_quotes(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if c == separator && !quoted {
            parts.push(&text[start..i]);
            start = i + 1;
        }
    }
    parts.push(&text[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_several_offers_with_params() {
        let offers = parse([
            "permessage-deflate; client_max_window_bits, permessage-deflate; server_max_window_bits=\"10\"",
            "x-webkit-deflate-frame",
        ])
        .unwrap();
        assert_eq!(offers.len(), 3);
        assert_eq!(offers[0].params[0].name, "client_max_window_bits");
        assert_eq!(offers[0].params[0].value, None);
        assert_eq!(offers[1].params[0].value.as_deref(), Some("10"));
        assert_eq!(offers[2].name, "x-webkit-deflate-frame");
        assert_eq!(
            offers[1].to_string(),
            "permessage-deflate; server_max_window_bits=10"
        );
    }

    #[test]
    fn rejects_malformed() {
        assert!(parse(["permessage deflate"]).is_err());
        assert!(parse(["a; =1"]).is_err());
        assert!(parse(["a; b=\"1"]).is_err());
        assert!(parse(["a; b=\"x y\""]).is_err());
    }
}
