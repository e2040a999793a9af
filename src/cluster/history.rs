//! Room history in Redis: one stream and one hash per room, written and
//! read by Lua scripts so that numbering, storing, trimming and sending a
//! message are one atomic step.
//!
//! With the prefix `P`, a room R has (both in the hash slot of `{P:h:R}`,
//! so a Redis Cluster keeps them together):
//!
//! | name | kind | holds |
//! |---|---|---|
//! | `{P:h:R}:m` | hash | `e`: the room's epoch; `n`: its last offset |
//! | `{P:h:R}:s` | stream | the messages: id `N-0` for offset N, fields `t` (ms) and `m` (JSON) |
//! | `P:history` | channel | every stored message, to every node |
//!
//! A message on `P:history` is `sb1\nORIGIN\nh\nROOM\nEXCEPT\nOFFSET\nEPOCH\nJSON`.
//!
//! The append script publishes the message in the same step as it stores
//! it, so Redis sends a room's messages to every node in offset order, and
//! a message is never sent that is not stored. An epoch is made (by the
//! node, passed in) only when the hash is missing: the room is new, its
//! history expired whole, or Redis lost it.

use bytes::Bytes;
use switchboard_hub::{Append, HistoryRule, HistoryUnavailable, Page, Stored};

use super::wire::Keys;

/// Numbers, stores, trims and publishes one message. Entries older than
/// the rule's `ttl` are trimmed every 64th message (a read skips them
/// meanwhile): looking at the stream's head costs as much as the rest.
///
/// KEYS: hash, stream. ARGV: new epoch, size, ttl (ms), hash ttl (ms),
/// channel, wire head (up to the offset), JSON head (without its `}`).
/// Returns `{offset, epoch}`.
const APPEND: &str = r#"
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', epoch, 'n', 0)
end
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
local json = ARGV[7] .. ',"offset":' .. n .. ',"epoch":"' .. epoch .. '"}'
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], n .. '-0', 't', now, 'm', json)
local cutoff = now - tonumber(ARGV[3])
local head = n % 64 == 0 and redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)[1]
if head and tonumber(head[2][2]) < cutoff then
  local cut = nil
  for _, entry in ipairs(redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 64)) do
    if tonumber(entry[2][2]) < cutoff then cut = entry[1] else break end
  end
  redis.call('XTRIM', KEYS[2], 'MINID', (tonumber(string.match(cut, '^(%d+)')) + 1) .. '-0')
end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PUBLISH', ARGV[5], ARGV[6] .. n .. '\n' .. epoch .. '\n' .. json)
return {n, epoch}
"#;

/// Reads a page, making the room's epoch if it has none (so that a join
/// learns it before the first message).
///
/// KEYS: hash, stream. ARGV: new epoch, after, limit, ttl (ms), hash ttl
/// (ms). Returns `{epoch, latest, oldest, {offset, json, …}}`.
const READ: &str = r#"
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', epoch, 'n', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
end
local latest = tonumber(redis.call('HGET', KEYS[1], 'n'))
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local cutoff = now - tonumber(ARGV[4])
local oldest = 0
local start = '-'
for _ = 1, 8 do
  local batch = redis.call('XRANGE', KEYS[2], start, '+', 'COUNT', 128)
  if #batch == 0 then break end
  for _, entry in ipairs(batch) do
    if tonumber(entry[2][2]) >= cutoff then
      oldest = tonumber(string.match(entry[1], '^(%d+)'))
      break
    end
  end
  if oldest ~= 0 or #batch < 128 then break end
  start = '(' .. batch[#batch][1]
end
local messages = {}
local limit = tonumber(ARGV[3])
if limit > 0 then
  local from = math.max(tonumber(ARGV[2]) + 1, oldest)
  for _, entry in ipairs(redis.call('XRANGE', KEYS[2], from .. '-0', '+', 'COUNT', limit)) do
    if tonumber(entry[2][2]) >= cutoff then
      table.insert(messages, tonumber(string.match(entry[1], '^(%d+)')))
      table.insert(messages, entry[2][4])
    end
  end
end
return {epoch, latest, oldest, messages}
"#;

/// How long a room's hash outlives its last message, at least: a client
/// that comes back after a quiet while still finds its epoch.
const HASH_TTL_MS: u64 = 24 * 3600 * 1000;

/// The script call that appends `append` (from this node).
pub fn append_command(keys: &Keys, append: &Append) -> redis::Cmd {
    let ttl = append.rule.ttl.as_millis() as u64;
    let wire_head = format!(
        "sb1\n{}\nh\n{}\n{}\n",
        keys.node(),
        append.room,
        append.except.as_deref().unwrap_or("")
    );
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(APPEND)
        .arg(2)
        .arg(keys.history_hash(&append.room))
        .arg(keys.history_stream(&append.room))
        .arg(&append.new_epoch)
        .arg(append.rule.size)
        .arg(ttl.max(1))
        .arg(ttl.max(HASH_TTL_MS))
        .arg(keys.history_channel())
        .arg(wire_head)
        .arg(&append.head[..]);
    cmd
}

/// The offset and epoch an append returned.
pub fn stored(value: &redis::Value) -> Result<Stored, HistoryUnavailable> {
    let bad = || HistoryUnavailable(format!("unexpected answer from Redis: {value:?}"));
    let redis::Value::Array(fields) = value else {
        return Err(match value {
            redis::Value::ServerError(error) => HistoryUnavailable(format!("{error:?}")),
            _ => bad(),
        });
    };
    match fields.as_slice() {
        [redis::Value::Int(offset), epoch] => Ok(Stored {
            offset: u64::try_from(*offset).map_err(|_| bad())?,
            epoch: redis::from_redis_value(epoch).map_err(|_| bad())?,
        }),
        _ => Err(bad()),
    }
}

/// Reads up to `limit` messages of `room` after `after`.
pub async fn read(
    mut conn: redis::aio::ConnectionManager,
    keys: &Keys,
    room: &str,
    rule: &HistoryRule,
    after: u64,
    limit: usize,
) -> Result<Page, HistoryUnavailable> {
    let ttl = rule.ttl.as_millis() as u64;
    let (epoch, latest, oldest, flat): (String, u64, u64, Vec<redis::Value>) = redis::cmd("EVAL")
        .arg(READ)
        .arg(2)
        .arg(keys.history_hash(room))
        .arg(keys.history_stream(room))
        .arg(switchboard_hub::history::new_epoch())
        .arg(after)
        .arg(limit)
        .arg(ttl.max(1))
        .arg(ttl.max(HASH_TTL_MS))
        .query_async(&mut conn)
        .await
        .map_err(|e| HistoryUnavailable(e.to_string()))?;
    let mut messages = Vec::with_capacity(flat.len() / 2);
    for pair in flat.chunks_exact(2) {
        let offset: u64 =
            redis::from_redis_value(&pair[0]).map_err(|e| HistoryUnavailable(e.to_string()))?;
        let json: Vec<u8> =
            redis::from_redis_value(&pair[1]).map_err(|e| HistoryUnavailable(e.to_string()))?;
        messages.push((offset, Bytes::from(json)));
    }
    Ok(Page {
        epoch,
        latest,
        oldest,
        messages,
    })
}

/// A stored message as every node receives it.
#[derive(Debug, PartialEq, Eq)]
pub struct Published<'a> {
    pub room: &'a str,
    pub except: Option<&'a str>,
    pub offset: u64,
    pub epoch: &'a str,
    pub json: &'a [u8],
}

/// Reads a message of `P:history`; `None` if it is not one.
pub fn decode(bytes: &[u8]) -> Option<Published<'_>> {
    let mut fields = bytes.splitn(8, |&b| b == b'\n');
    if fields.next()? != b"sb1" {
        return None;
    }
    let _origin = fields.next()?;
    if fields.next()? != b"h" {
        return None;
    }
    let room = std::str::from_utf8(fields.next()?).ok()?;
    let except = std::str::from_utf8(fields.next()?).ok()?;
    let offset = std::str::from_utf8(fields.next()?).ok()?.parse().ok()?;
    let epoch = std::str::from_utf8(fields.next()?).ok()?;
    let json = fields.next()?;
    Some(Published {
        room,
        except: (!except.is_empty()).then_some(except),
        offset,
        epoch,
        json,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_messages_decode() {
        let bytes =
            b"sb1\nnode1\nh\nthe room\nabc\n42\nep0ch\n{\"event\":\"x\",\"data\":\"a\\nb\"}";
        let published = decode(bytes).unwrap();
        assert_eq!(
            published,
            Published {
                room: "the room",
                except: Some("abc"),
                offset: 42,
                epoch: "ep0ch",
                json: b"{\"event\":\"x\",\"data\":\"a\\nb\"}",
            }
        );
        assert!(decode(b"sb1\nnode1\nr\nroom\n\n{}").is_none());
        assert!(decode(b"sb1\nn\nh\nroom\n\nNaN\ne\n{}").is_none());
    }
}
