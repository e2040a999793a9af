//! Where a client's credentials are in an upgrade or HTTP request, read
//! one way for every check: `Authorization: Bearer`, a cookie, `?token=`.

use switchboard_proto::handshake::Request;

/// The token of `Authorization: Bearer TOKEN` (the scheme in any case).
pub fn bearer(request: &Request) -> Option<String> {
    let value = request.header("authorization")?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// The value of the cookie called `name`, from every `Cookie` header
/// (RFC 6265 §5.4: `a=1; b=2`, a value possibly in double quotes).
pub fn cookie(request: &Request, name: &str) -> Option<String> {
    request
        .headers()
        .iter()
        .filter(|header| header.name.eq_ignore_ascii_case("cookie"))
        .filter_map(|header| std::str::from_utf8(&header.value).ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"').to_owned())
}

/// A WebSocket client's token: the `Authorization` header, else the cookie
/// (when a name is given; browsers cannot set headers on a WebSocket, but
/// send cookies), else `?token=` (percent-decoded).
pub fn token(request: &Request, cookie_name: Option<&str>) -> Option<String> {
    bearer(request)
        .or_else(|| cookie_name.and_then(|name| cookie(request, name)))
        .or_else(|| request.query_param("token"))
}

/// Compares secrets without revealing, through timing, how much matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_proto::handshake::Header;

    fn request(target: &str, headers: &[(&str, &str)]) -> Request {
        let headers = headers
            .iter()
            .map(|(name, value)| Header {
                name: (*name).to_owned(),
                value: value.as_bytes().to_vec(),
            })
            .collect();
        Request::from_parts("GET", target, 1, headers)
    }

    #[test]
    fn header_then_cookie_then_query() {
        let all = request(
            "/ws?token=q%2Eq",
            &[
                ("Authorization", "Bearer h.h"),
                ("Cookie", "a=1; sb=\"c.c\""),
            ],
        );
        assert_eq!(token(&all, Some("sb")).as_deref(), Some("h.h"));
        let no_header = request("/ws?token=q%2Eq", &[("cookie", "a=1; sb=\"c.c\"")]);
        assert_eq!(token(&no_header, Some("sb")).as_deref(), Some("c.c"));
        assert_eq!(token(&no_header, None).as_deref(), Some("q.q"));
        let other_cookie = request("/ws", &[("Cookie", "sbx=1"), ("Cookie", "sb=2")]);
        assert_eq!(cookie(&other_cookie, "sb").as_deref(), Some("2"));
        assert_eq!(token(&request("/ws", &[]), Some("sb")), None);
    }

    #[test]
    fn bearer_needs_its_scheme() {
        let basic = request("/ws", &[("Authorization", "Basic abc")]);
        assert_eq!(bearer(&basic), None);
        let lower = request("/ws", &[("authorization", "bearer  abc ")]);
        assert_eq!(bearer(&lower).as_deref(), Some("abc"));
    }
}
