/*!
 * switchboard.js — the browser client for the Switchboard hub.
 *
 * No build step and no dependencies: load it with
 *
 *     <script src="/switchboard.js"></script>
 *
 * and use the global `Switchboard` (in CommonJS it is also `module.exports`).
 * It speaks the JSON protocol described in docs/PROTOCOL.md.
 *
 * ── Connecting ────────────────────────────────────────────────────────────
 *
 *   const sb = new Switchboard(url?, options?)
 *
 *   url      ws:// or wss:// URL of the hub, or a path ("/ws"). Default:
 *            ws(s)://<location.host>/ws (wss when the page is https).
 *   options  urls        more hubs (nodes of one cluster), as an array of URLs
 *                        or paths: the client starts with `url` (or, without
 *                        one, the first of `urls`) and every reconnection
 *                        attempt goes to the next hub of the list, round it,
 *                        so that it fails over to another node
 *            acks        true: connect with ?acks=1 and acknowledge every
 *                        room message with history once the application's
 *                        listeners for it have run (see "History and
 *                        recovery" below; default false)
 *            name        initial name (sent as ?name=, re-applied on reconnect)
 *            token       access token for servers started with --ws-token or
 *                        with JWT (sent as ?token=); see sb.refresh()
 *            reconnect   {attempts: 3, minDelay: 250, maxDelay: 5000}, or false.
 *                        Attempt n waits min(maxDelay, minDelay * 2^(n-1)),
 *                        randomised to between half and all of it (jitter).
 *                        `attempts` counts failures in a row (Infinity allowed);
 *                        a successful connection resets the count.
 *            ackTimeout  ms before emitWithAck() rejects (default 10000)
 *            bufferSize  most messages kept while disconnected (default 100)
 *            autoConnect false: do not connect until sb.connect() (default
 *                        true); what is sent before that waits in the buffer
 *            WebSocket   constructor to use instead of the global one
 *
 * The same `options` object may be passed as the only argument.
 *
 * ── Sending ───────────────────────────────────────────────────────────────
 *
 *   sb.emit(event, data, {room, to, broadcast, echo})       → sb (chainable)
 *       room: to a room · to: to one connection id · broadcast: true: to all.
 *       At most one target. With none, the event goes to the server's own
 *       handlers (a plain `switchboard serve` has none and answers with an
 *       `unknown_event` error). echo: false leaves you out of your own
 *       room/broadcast message.
 *   sb.emitWithAck(event, data, {room, to, broadcast, echo, timeout})
 *       → Promise of the ack's `data` (e.g. {delivered: 2}). Rejects with an
 *       Error whose `code` is the server's error code (`unknown_target`, ...)
 *       or one of: `timeout`, `disconnected` (the connection dropped before
 *       the reply), `dropped` (pushed out of the offline buffer), `closed`
 *       (sb.close() was called, or the client is gone).
 *   sb.publish(path, values)        address message, e.g.
 *                                   sb.publish('/sensors/hall/motion', [1, 0.5])
 *
 * ── Rooms, name, subscriptions ────────────────────────────────────────────
 *
 * These are remembered and re-applied after every reconnect: the client
 * rejoins its rooms, resubscribes its patterns and takes its name back.
 * Each returns a Promise of the server's ack data. Ignoring it is fine: an
 * ignored rejection is not reported as unhandled.
 *
 *   sb.join(room)                   → {room, members}, and for a room with
 *                                     history {epoch, offset} (see below)
 *   sb.leave(room)                  → {room, members, was_member}
 *   sb.rename(name)                 → {name}
 *   sb.subscribe(pattern, handler?) → {pattern}; handler(path, values, msg)
 *                                     runs for address messages matching the
 *                                     pattern (`*`, `?`, final `**`)
 *   sb.unsubscribe(pattern)         → {pattern, existed} (drops its handlers)
 *   sb.users(room?)                 → [{id, name}] of a room, or of everyone
 *   sb.refresh(token)               → {expires, left}: a new JWT for this
 *                                     connection before its token expires
 *                                     (the server closes with 4001 when it
 *                                     does); also used for every later
 *                                     reconnection. Offline: {offline: true}
 *
 * Called while (re)connecting, join/subscribe/rename settle once the client
 * is back and the server has confirmed them; leave/unsubscribe settle at
 * once. Called while gone, they are remembered for the next sb.connect()
 * but their Promise rejects with `closed`.
 *
 * ── History and recovery ──────────────────────────────────────────────────
 *
 * Messages to a room the server keeps history for (serve --history) carry
 * `offset` (1, 2, 3, … in the room) and `epoch` (the name of the room's
 * history). For each room it is in, the client remembers the epoch and the
 * last offset received (from those messages and from the join's ack), and:
 *
 *   - rejoins after every reconnect with `since: {epoch, offset}`, so that
 *     the server (this node or another one) first replays what the room
 *     received meanwhile; the `recovered` or `recovery_failed` event says
 *     whether that worked;
 *   - drops, without firing any listener, a message whose offset it already
 *     had in the same epoch (so nothing reaches the application twice);
 *   - takes a message of another epoch (the server lost the room's
 *     history), starts counting from it, and fires `history_reset` before it.
 *
 * With `acks: true` the client also tells the server what the application
 * has processed: after a room message's listeners have run, its offset is
 * recorded, and {"event":"received","data":{room: offset, …}} goes out at
 * most every 100 ms, or at once when 100 messages wait for it, naming only
 * the rooms that moved on. The server keeps what was not acknowledged, and
 * the client rejoins from the last offset processed.
 *
 *   sb.history(room, {after, limit}) → {epoch, offset, oldest, messages}: a
 *                                     page of the room's stored messages,
 *                                     oldest first: `limit` (server default
 *                                     100, at most 1,000) after offset
 *                                     `after` (default 0: the oldest kept).
 *                                     The next page is after the last offset
 *                                     of this one; an empty page is the end.
 *                                     Rejects with `no_history` for a room
 *                                     without history.
 *
 * ── Receiving ─────────────────────────────────────────────────────────────
 *
 *   sb.on(event, fn) / sb.once(event, fn) / sb.off(event?, fn?)  chainable;
 *   listeners run with `this` set to sb.
 *
 *   Built-in events:
 *     status               (status)  'connecting' | 'connected' |
 *                                    'reconnecting' | 'gone'
 *     ready                ({id, name})  connected, rooms/patterns/name re-applied
 *     reconnecting         ({attempt, delay, url})  before each reconnection
 *                              attempt; url is the hub it goes to
 *     reconnection_failed  ()  attempts exhausted; status is 'gone'
 *                              (sb.connect() starts over)
 *     connection, reconnectionFail  the same as ready (fired just before
 *                              it) and reconnection_failed (just after it),
 *                              under the names websockets-raw's client uses
 *                              (docs/SEEDS.md)
 *     disconnect           ({code, reason})  the socket closed
 *     userlist             (users, room, msg)  [{id, name}] of a room you are in
 *     end                  ()  the server is shutting down; the client
 *                              reconnects (unless reconnect is false)
 *     error                ({code, message}, msg)  the server refused a message
 *                              that asked for no ack
 *     address              (path, values, msg)  every address message
 *     recovered            ({room, replayed})  a rejoin with `since` got every
 *                              message missed (`replayed` of them, delivered
 *                              before this event)
 *     recovery_failed      ({room, epoch, offset})  the server's history does
 *                              not reach back far enough (or was lost): what
 *                              was missed is not replayed, and the room goes
 *                              on from `offset`; sb.history(room) reads what
 *                              is still kept
 *     history_reset        ({room, epoch})  a message of a new epoch arrived
 *                              (fired just before it): the room's history was
 *                              lost and its offsets start again
 *     *                    (event, data, msg)  every event from the server,
 *                              built-ins included (but not `ready` or `ack`)
 *   Any other name: events relayed by the server, as fn(data, msg), where msg
 *   is the whole message ({event, data, from, from_name, room}, and
 *   {offset, epoch} in a room with history).
 *
 * ── State ─────────────────────────────────────────────────────────────────
 *
 *   sb.id, sb.name        this connection's id (new on every connection), name
 *   sb.url, sb.urls       the hub in use (or tried next), and all of them
 *   sb.status             see the `status` event
 *   sb.rooms, sb.patterns arrays of joined rooms and subscribed patterns
 *   sb.userlists          {room: [{id, name}]}, the latest list of each room
 *   sb.positions          {room: {epoch, offset}}, the last message received
 *                         in each room with history
 *   sb.buffered           messages waiting for the connection
 *   sb.connect(), sb.close()
 *
 * ── While disconnected ────────────────────────────────────────────────────
 *
 * Messages emitted while connecting or reconnecting are kept in order and
 * sent once the connection is back (after rooms, patterns and name have been
 * re-applied). At most `bufferSize` (100) are kept: when full, the OLDEST
 * message is dropped to make room for the new one (its emitWithAck Promise
 * rejects with `dropped`). After close(), or once reconnection has failed,
 * messages are not kept (emitWithAck rejects with `closed`).
 */
(function (root, factory) {
  'use strict';
  var Switchboard = factory();
  if (typeof module === 'object' && module.exports) {
    module.exports = Switchboard;
  } else if (root) {
    root.Switchboard = Switchboard;
  }
})(typeof globalThis !== 'undefined' ? globalThis : this, function () {
  'use strict';

  var RESERVED = ['ready', 'userlist', 'ack', 'error', 'end'];
  var BUILT_IN_REQUESTS = ['join', 'leave', 'rename', 'users', 'subscribe', 'unsubscribe', 'refresh', 'history'];
  var DEFAULT_RECONNECT = { attempts: 3, minDelay: 250, maxDelay: 5000 };
  // With `acks`, `received` goes out this long after the first message it
  // covers, or at once when this many messages are waiting for it.
  var ACK_INTERVAL = 100;
  var ACK_BATCH = 100;

  function SwitchboardError(code, message) {
    var error = new Error(message || code);
    error.name = 'SwitchboardError';
    error.code = code;
    return error;
  }

  function defaultUrl() {
    if (typeof location === 'undefined' || !location.host) {
      throw new TypeError('Switchboard: give a URL (there is no page location to default to)');
    }
    return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
  }

  function absoluteUrl(url) {
    if (/^wss?:\/\//i.test(url)) return url;
    if (/^https?:\/\//i.test(url)) return url.replace(/^http/i, 'ws');
    if (typeof location !== 'undefined' && location.host) {
      var base = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host;
      return base + (url.charAt(0) === '/' ? url : '/' + url);
    }
    throw new TypeError('Switchboard: not a WebSocket URL: ' + url);
  }

  /** The hub URLs to go round: `url` first, then `urls` (duplicates left out). */
  function hubUrls(url, urls) {
    var list = [];
    function add(u) {
      u = absoluteUrl(String(u));
      if (list.indexOf(u) === -1) list.push(u);
    }
    if (url) add(url);
    if (Array.isArray(urls)) urls.forEach(add);
    if (!list.length) list.push(defaultUrl());
    return list;
  }

  /**
   * Moves a room's position in `map` to `at` ({epoch, offset}) unless it is
   * already there or further in the same epoch.
   */
  function advance(map, room, at) {
    var known = map.get(room);
    if (!known || known.epoch !== at.epoch || known.offset < at.offset) map.set(room, at);
  }

  /** True if an address matches a subscription pattern (docs/PROTOCOL.md). */
  function matchPattern(pattern, path) {
    var ps = pattern.split('/').slice(1);
    var as = path.split('/').slice(1);
    for (var i = 0; i < ps.length; i++) {
      if (ps[i] === '**' && i === ps.length - 1) return true;
      if (i >= as.length || !matchSegment(ps[i], as[i])) return false;
    }
    return ps.length === as.length;
  }

  function matchSegment(pattern, text) {
    // Glob with `*` (any run) and `?` (one character), by backtracking.
    var p = Array.from(pattern);
    var t = Array.from(text);
    var pi = 0, ti = 0, star = -1, mark = 0;
    while (ti < t.length) {
      if (pi < p.length && (p[pi] === '?' || p[pi] === t[ti])) {
        pi++; ti++;
      } else if (pi < p.length && p[pi] === '*') {
        star = pi++; mark = ti;
      } else if (star !== -1) {
        pi = star + 1; ti = ++mark;
      } else {
        return false;
      }
    }
    while (pi < p.length && p[pi] === '*') pi++;
    return pi === p.length;
  }

  function Switchboard(url, options) {
    if (!(this instanceof Switchboard)) return new Switchboard(url, options);
    if (url && typeof url === 'object') {
      options = url;
      url = options.url;
    }
    options = options || {};
    this.urls = hubUrls(url, options.urls);
    this.url = this.urls[0];
    this._urlIndex = 0;
    var reconnect = options.reconnect === false ? false : Object.assign({}, DEFAULT_RECONNECT, options.reconnect || {});
    this.options = {
      token: options.token == null ? null : String(options.token),
      reconnect: reconnect,
      ackTimeout: options.ackTimeout > 0 ? options.ackTimeout : 10000,
      bufferSize: options.bufferSize >= 0 ? options.bufferSize : 100,
      acks: options.acks === true,
    };
    this._WebSocket = options.WebSocket || (typeof WebSocket !== 'undefined' ? WebSocket : null);
    if (!this._WebSocket) throw new TypeError('Switchboard: no WebSocket implementation');

    this.id = null;
    this.name = null;
    this.status = 'gone';
    this.userlists = {};
    this._wantedName = options.name == null ? null : String(options.name);
    this._rooms = new Set();
    this._patterns = new Map(); // pattern → array of handlers
    this._listeners = Object.create(null);
    this._socket = null;
    this._ready = false;
    this._buffer = []; // [{message, ack?}] waiting for a connection
    this._pending = new Map(); // ack id → {resolve, reject, timer, sent, message}
    this._waiters = new Map(); // "join:room" | "subscribe:pattern" | "rename" → [{resolve, reject}]
    this._nextAck = 1;
    this._attempt = 0;
    this._timer = null;
    this._closedByUser = false;
    this._dead = false; // closed, or reconnection failed: nothing is kept
    // Positions in rooms with history, room → {epoch, offset}:
    this._positions = new Map(); // the last message received (duplicates are dropped up to it)
    this._processed = new Map(); // acks: the last message whose listeners have run
    this._acked = new Map(); // acks: what this connection has told the server
    this._ackRooms = new Set(); // acks: rooms whose processed position moved since the last `received`
    this._ackDue = 0; // acks: messages processed since the last `received`
    this._ackTimer = null;

    if (options.autoConnect !== false) this.connect();
  }

  Switchboard.matchPattern = matchPattern;
  Switchboard.version = '1';

  var proto = Switchboard.prototype;

  Object.defineProperty(proto, 'rooms', {
    get: function () { return Array.from(this._rooms); },
  });
  Object.defineProperty(proto, 'patterns', {
    get: function () { return Array.from(this._patterns.keys()); },
  });
  Object.defineProperty(proto, 'buffered', {
    get: function () { return this._buffer.length; },
  });
  Object.defineProperty(proto, 'connected', {
    get: function () { return this.status === 'connected'; },
  });
  Object.defineProperty(proto, 'positions', {
    get: function () {
      var out = Object.create(null);
      this._positions.forEach(function (at, room) { out[room] = { epoch: at.epoch, offset: at.offset }; });
      return out;
    },
  });

  // ── listeners ──────────────────────────────────────────────────────────

  proto.on = function (event, fn) {
    if (typeof fn !== 'function') throw new TypeError('Switchboard.on: listener must be a function');
    (this._listeners[event] || (this._listeners[event] = [])).push(fn);
    return this;
  };

  proto.once = function (event, fn) {
    var self = this;
    function wrapper() {
      self.off(event, wrapper);
      return fn.apply(this, arguments);
    }
    wrapper.listener = fn;
    return this.on(event, wrapper);
  };

  proto.off = function (event, fn) {
    if (event === undefined) {
      this._listeners = Object.create(null);
    } else if (fn === undefined) {
      delete this._listeners[event];
    } else if (this._listeners[event]) {
      this._listeners[event] = this._listeners[event].filter(function (l) {
        return l !== fn && l.listener !== fn;
      });
    }
    return this;
  };

  proto._fire = function (event) {
    var listeners = this._listeners[event];
    if (!listeners) return;
    var args = Array.prototype.slice.call(arguments, 1);
    listeners.slice().forEach(function (fn) {
      try {
        fn.apply(this, args);
      } catch (error) {
        // One failing listener must not stop the others or the client.
        setTimeout(function () { throw error; });
      }
    }, this);
  };

  // ── connection ─────────────────────────────────────────────────────────

  proto._setStatus = function (status) {
    if (this.status === status) return;
    this.status = status;
    this._fire('status', status);
  };

  proto._connectUrl = function () {
    var params = [];
    var name = this._wantedName != null ? this._wantedName : this.name;
    if (name != null) params.push('name=' + encodeURIComponent(name));
    if (this.options.token != null) params.push('token=' + encodeURIComponent(this.options.token));
    if (this.options.acks) params.push('acks=1');
    if (!params.length) return this.url;
    return this.url + (this.url.indexOf('?') === -1 ? '?' : '&') + params.join('&');
  };

  /** Connects (again). Called by the constructor unless autoConnect is false. */
  proto.connect = function () {
    if (this._socket) return this;
    clearTimeout(this._timer);
    this._timer = null;
    this._closedByUser = false;
    this._dead = false;
    if (this.status === 'gone') {
      this._attempt = 0;
      this._setStatus('connecting');
    }
    var self = this;
    var socket;
    try {
      socket = new this._WebSocket(this._connectUrl());
    } catch (error) {
      // A malformed URL throws synchronously; treat it like a failed attempt.
      setTimeout(function () { self._onClose(null, 1006, String(error && error.message)); });
      return this;
    }
    this._socket = socket;
    this._ready = false;
    socket.onmessage = function (event) { self._onMessage(socket, event.data); };
    socket.onclose = function (event) { self._onClose(socket, event.code, event.reason); };
    socket.onerror = function () { /* a close event always follows */ };
    return this;
  };

  /** Closes for good: no reconnection; pending requests reject with `closed`. */
  proto.close = function (code, reason) {
    this._closedByUser = true;
    this._dead = true;
    clearTimeout(this._timer);
    this._timer = null;
    var socket = this._socket;
    this._socket = null;
    this._ready = false;
    this._resetAcks();
    if (socket) {
      socket.onmessage = null;
      socket.onclose = null;
      try { socket.close(code || 1000, reason || ''); } catch (e) { socket.close(); }
    }
    this._failEverything('closed', 'the client was closed');
    this._setStatus('gone');
    return this;
  };

  proto._onClose = function (socket, code, reason) {
    if (socket !== this._socket) return;
    var wasReady = this._ready;
    this._socket = null;
    this._ready = false;
    this._resetAcks();
    if (wasReady) {
      this._fire('disconnect', { code: code, reason: reason || '' });
      this._attempt = 0;
    }
    // Replies to what was sent on this connection can no longer arrive.
    this._pending.forEach(function (entry, ack) {
      if (entry.sent) {
        this._settle(ack, SwitchboardError('disconnected', 'the connection closed before the reply'));
      }
    }, this);
    if (this._closedByUser) return;
    this._scheduleReconnect();
  };

  proto._scheduleReconnect = function () {
    var rc = this.options.reconnect;
    if (!rc || this._attempt >= rc.attempts) {
      this._dead = true;
      this._failEverything('closed', 'could not reconnect');
      this._setStatus('gone');
      if (rc) {
        this._fire('reconnection_failed');
        this._fire('reconnectionFail'); // websockets-raw's name for it
      }
      return;
    }
    this._attempt += 1;
    var base = Math.min(rc.maxDelay, rc.minDelay * Math.pow(2, this._attempt - 1));
    var delay = Math.round(base / 2 + Math.random() * base / 2);
    // Every attempt goes to the next hub of `urls`, round the list.
    this._urlIndex = (this._urlIndex + 1) % this.urls.length;
    this.url = this.urls[this._urlIndex];
    this._setStatus('reconnecting');
    this._fire('reconnecting', { attempt: this._attempt, delay: delay, url: this.url });
    var self = this;
    this._timer = setTimeout(function () {
      self._timer = null;
      if (!self._closedByUser) self.connect();
    }, delay);
  };

  proto._failEverything = function (code, message) {
    var buffer = this._buffer;
    this._buffer = [];
    buffer.length = 0;
    this._pending.forEach(function (entry, ack) {
      this._settle(ack, SwitchboardError(code, message));
    }, this);
    this._waiters.forEach(function (list) {
      list.forEach(function (w) { w.reject(SwitchboardError(code, message)); });
    });
    this._waiters.clear();
  };

  // ── incoming ───────────────────────────────────────────────────────────

  proto._onMessage = function (socket, raw) {
    if (socket !== this._socket) return;
    if (typeof raw !== 'string') return; // JSON only; binary frames are not expected
    var msg;
    try {
      msg = JSON.parse(raw);
    } catch (e) {
      return;
    }
    if (!msg || typeof msg !== 'object') return;

    if (typeof msg.path === 'string' && msg.event === undefined) {
      var values = Array.isArray(msg.values) ? msg.values : [];
      this._patterns.forEach(function (handlers, pattern) {
        if (handlers.length && matchPattern(pattern, msg.path)) {
          handlers.slice().forEach(function (fn) {
            try { fn.call(this, msg.path, values, msg); } catch (error) { setTimeout(function () { throw error; }); }
          }, this);
        }
      }, this);
      this._fire('address', msg.path, values, msg);
      return;
    }

    var event = msg.event;
    var data = msg.data === undefined ? null : msg.data;
    switch (event) {
      case 'ack':
        if (this._pending.has(msg.ack)) {
          this._settle(msg.ack, msg.error ? SwitchboardError(msg.error.code, msg.error.message) : null, data);
        }
        return;
      case 'ready':
        this.id = data && data.id;
        this.name = data ? data.name : null;
        this._onReady();
        return;
      case 'userlist':
        if (msg.room != null) this.userlists[msg.room] = Array.isArray(data) ? data : [];
        this._fire('*', event, data, msg);
        this._fire('userlist', data, msg.room, msg);
        return;
      case 'error':
        this._fire('*', event, data, msg);
        this._fire('error', data, msg);
        return;
      case 'end':
        this._fire('*', event, data, msg);
        this._fire('end');
        return; // the close frame follows; _onClose reconnects
      default:
        if (typeof msg.room === 'string' && typeof msg.offset === 'number' && this._rooms.has(msg.room)) {
          this._onRoomMessage(event, data, msg);
          return;
        }
        this._fire('*', event, data, msg);
        this._fire(event, data, msg);
    }
  };

  /**
   * A numbered message of a room with history: dropped when its offset is
   * not past the room's position in the same epoch (it came already, before
   * a reconnect), else delivered, the position moved to it, and, with
   * `acks`, recorded as processed once the listeners have run.
   */
  proto._onRoomMessage = function (event, data, msg) {
    var room = msg.room;
    var at = { epoch: msg.epoch == null ? null : String(msg.epoch), offset: msg.offset };
    var known = this._positions.get(room);
    if (known && known.epoch === at.epoch && at.offset <= known.offset) return;
    this._positions.set(room, at);
    if (known && known.epoch !== at.epoch) this._fire('history_reset', { room: room, epoch: at.epoch });
    this._fire('*', event, data, msg);
    this._fire(event, data, msg);
    if (this.options.acks && this._rooms.has(room)) this._processedUpTo(room, at);
  };

  /**
   * A join's ack: a room with history gives its epoch and newest offset,
   * from which the client receives everything; after a join with `since`,
   * also whether the messages missed were replayed.
   */
  proto._onJoined = function (room, data) {
    if (!data || data.epoch == null || typeof data.offset !== 'number' || !this._rooms.has(room)) return;
    var at = { epoch: String(data.epoch), offset: data.offset };
    advance(this._positions, room, at);
    if (this.options.acks) {
      advance(this._processed, room, at);
      // The server counts what it replayed as unacknowledged until told;
      // after a fresh join or a failed recovery it waits for nothing older.
      if (data.recovered !== true) advance(this._acked, room, at);
    }
    if (data.recovered === true) {
      this._fire('recovered', { room: room, replayed: data.replayed || 0 });
    } else if (data.recovered === false) {
      this._fire('recovery_failed', { room: room, epoch: at.epoch, offset: at.offset });
    }
  };

  /** Forgets a room's positions (left, or its join refused). */
  proto._forgetRoom = function (room) {
    this._positions.delete(room);
    this._processed.delete(room);
    this._acked.delete(room);
    this._ackRooms.delete(room);
  };

  // ── acknowledgements (`acks`) ──────────────────────────────────────────

  proto._processedUpTo = function (room, at) {
    this._processed.set(room, at);
    if (!this._ready) return;
    this._ackRooms.add(room);
    this._ackDue += 1;
    if (this._ackDue >= ACK_BATCH) {
      this._flushAcks();
    } else if (!this._ackTimer) {
      var self = this;
      this._ackTimer = setTimeout(function () {
        self._ackTimer = null;
        self._flushAcks();
      }, ACK_INTERVAL);
    }
  };

  /** Sends `received` for every room whose processed position moved past what the server was told. */
  proto._flushAcks = function () {
    clearTimeout(this._ackTimer);
    this._ackTimer = null;
    this._ackDue = 0;
    if (!this._ready) return;
    var data = Object.create(null);
    var any = false;
    this._ackRooms.forEach(function (room) {
      var at = this._processed.get(room);
      var told = this._acked.get(room);
      if (!at || (told && told.epoch === at.epoch && told.offset >= at.offset)) return;
      data[room] = at.offset;
      this._acked.set(room, at);
      any = true;
    }, this);
    this._ackRooms.clear();
    if (any) this._send({ event: 'received', data: data });
  };

  /** A connection's acknowledgements end with it; the next one rejoins from what was processed. */
  proto._resetAcks = function () {
    clearTimeout(this._ackTimer);
    this._ackTimer = null;
    this._ackDue = 0;
    this._ackRooms.clear();
    this._acked.clear();
  };

  /** After `ready`: take the name back, rejoin, resubscribe, flush, announce. */
  proto._onReady = function () {
    var self = this;
    this._ready = true;
    this._attempt = 0;

    var wanted = this._wantedName;
    if (wanted != null && wanted !== this.name) {
      this._resync('rename', { event: 'rename', data: { name: wanted } }, function (error) {
        if (self._wantedName === wanted) self._wantedName = null;
        self._fire('error', { code: error.code, message: error.message }, null);
      });
    } else {
      this._wantedName = null;
      this._resolveWaiters('rename', { name: this.name });
    }
    this._rooms.forEach(function (room) {
      var message = { event: 'join', room: room };
      // Where the room's messages stopped: the server replays what came
      // after (with `acks`, what came after the last one processed).
      var since = (this.options.acks ? this._processed : this._positions).get(room);
      if (since) {
        message.since = { epoch: since.epoch, offset: since.offset };
        if (this.options.acks) this._acked.set(room, since);
      }
      this._resync('join:' + room, message, function (error) {
        if (error.code === 'history_unavailable' && self._socket) {
          // The node cannot reach its history store: keep the room and its
          // position, and come back (to this node or the next) to rejoin.
          try { self._socket.close(4000, 'history unavailable'); } catch (e) { self._socket.close(); }
          return;
        }
        self._rooms.delete(room);
        self._forgetRoom(room);
        self._fire('error', { code: error.code, message: error.message }, null);
      }, function (data) {
        self._onJoined(room, data);
      });
    }, this);
    this._patterns.forEach(function (handlers, pattern) {
      this._resync('subscribe:' + pattern, { event: 'subscribe', data: { pattern: pattern } }, function (error) {
        self._patterns.delete(pattern);
        self._fire('error', { code: error.code, message: error.message }, null);
      });
    }, this);

    var buffer = this._buffer;
    this._buffer = [];
    buffer.forEach(function (item) {
      if (item.ack != null) {
        var entry = this._pending.get(item.ack);
        if (!entry) return; // timed out while waiting
        entry.sent = true;
      }
      this._send(item.message);
    }, this);

    this._setStatus('connected');
    // websockets-raw fires `connection` just before `ready`.
    this._fire('connection', { id: this.id, name: this.name });
    this._fire('ready', { id: this.id, name: this.name });
  };

  /** Sends a state request on a fresh connection; settles its waiters. */
  proto._resync = function (key, message, onError, onData) {
    var self = this;
    this._request(message, 0, onData).then(
      function (data) {
        if (key === 'rename') self.name = data && data.name;
        self._resolveWaiters(key, data);
      },
      function (error) {
        if (error.code === 'disconnected' || error.code === 'closed') return; // retried or failed elsewhere
        onError(error);
        self._rejectWaiters(key, error);
      }
    );
  };

  proto._resolveWaiters = function (key, data) {
    var list = this._waiters.get(key);
    if (!list) return;
    this._waiters.delete(key);
    list.forEach(function (w) { w.resolve(data); });
  };

  proto._rejectWaiters = function (key, error) {
    var list = this._waiters.get(key);
    if (!list) return;
    this._waiters.delete(key);
    list.forEach(function (w) { w.reject(error); });
  };

  proto._wait = function (key) {
    var self = this;
    return quiet(new Promise(function (resolve, reject) {
      var list = self._waiters.get(key) || [];
      list.push({ resolve: resolve, reject: reject });
      self._waiters.set(key, list);
    }));
  };

  // ── outgoing ───────────────────────────────────────────────────────────

  proto._send = function (message) {
    this._socket.send(JSON.stringify(message));
  };

  /** Queues a message for the next connection, dropping the oldest when full. */
  proto._enqueue = function (message, ack) {
    var limit = this.options.bufferSize;
    if (limit === 0) {
      if (ack != null) this._settle(ack, SwitchboardError('dropped', 'the offline buffer is disabled'));
      return;
    }
    while (this._buffer.length >= limit) {
      var dropped = this._buffer.shift();
      if (dropped.ack != null) {
        this._settle(dropped.ack, SwitchboardError('dropped', 'dropped from the full offline buffer'));
      }
    }
    this._buffer.push({ message: message, ack: ack });
  };

  /** Sends now, or buffers while (re)connecting; false once the client is gone. */
  proto._post = function (message, ack) {
    if (this._ready) {
      if (ack != null) this._pending.get(ack).sent = true;
      this._send(message);
      return true;
    }
    if (this._dead) return false;
    this._enqueue(message, ack);
    return true;
  };

  /**
   * Sends `message` with a fresh ack id; resolves with the ack's data.
   * timeout 0 means none. `onData`, if given, runs with the data as the ack
   * arrives, before any later message is handled. Only to be called while
   * connected, or for messages that may wait in the offline buffer.
   */
  proto._request = function (message, timeout, onData) {
    var self = this;
    var ack = this._nextAck++;
    message = Object.assign({}, message, { ack: ack });
    var promise = new Promise(function (resolve, reject) {
      var entry = { resolve: resolve, reject: reject, timer: null, sent: false, onData: onData };
      if (timeout > 0) {
        entry.timer = setTimeout(function () {
          self._dropBuffered(ack);
          self._settle(ack, SwitchboardError('timeout', 'no reply within ' + timeout + ' ms'));
        }, timeout);
      }
      self._pending.set(ack, entry);
    });
    if (!this._post(message, ack)) {
      this._settle(ack, SwitchboardError('closed', 'the client is not connected'));
    }
    return promise;
  };

  proto._dropBuffered = function (ack) {
    this._buffer = this._buffer.filter(function (item) { return item.ack !== ack; });
  };

  proto._settle = function (ack, error, data) {
    var entry = this._pending.get(ack);
    if (!entry) return;
    this._pending.delete(ack);
    clearTimeout(entry.timer);
    if (error) {
      entry.reject(error);
      return;
    }
    if (entry.onData) entry.onData(data);
    entry.resolve(data);
  };

  function checkEvent(event) {
    if (typeof event !== 'string' || !event) {
      throw new TypeError('Switchboard: an event name is a non-empty string');
    }
    if (RESERVED.indexOf(event) !== -1) {
      throw new TypeError('Switchboard: "' + event + '" is reserved for the server');
    }
  }

  function eventMessage(event, data, opts) {
    checkEvent(event);
    opts = opts || {};
    var message = { event: event };
    if (data !== undefined) message.data = data;
    var targets = 0;
    if (opts.room != null) { message.room = String(opts.room); targets++; }
    if (opts.to != null) { message.to = String(opts.to); targets++; }
    if (opts.broadcast) { message.broadcast = true; targets++; }
    if (targets > 1) throw new TypeError('Switchboard: give at most one of room, to and broadcast');
    if (opts.echo === false) message.echo = false;
    return message;
  }

  /** Marks a promise as handled, so callers may ignore it; returns it. */
  function quiet(promise) {
    promise.catch(function () {});
    return promise;
  }

  proto.emit = function (event, data, opts) {
    this._post(eventMessage(event, data, opts));
    return this;
  };

  proto.emitWithAck = function (event, data, opts) {
    var message;
    try {
      message = eventMessage(event, data, opts);
    } catch (error) {
      return Promise.reject(error);
    }
    var timeout = opts && opts.timeout > 0 ? opts.timeout : this.options.ackTimeout;
    return this._request(message, timeout);
  };

  proto.publish = function (path, values) {
    if (typeof path !== 'string' || path.charAt(0) !== '/') {
      throw new TypeError('Switchboard.publish: an address starts with "/"');
    }
    this._post({ path: path, values: values === undefined ? [] : Array.isArray(values) ? values : [values] });
    return this;
  };

  /**
   * A state request (join, rename, subscribe): sent now when connected, and
   * in any case re-applied on the next connection.
   */
  proto._stateRequest = function (key, message, onError, onData) {
    var self = this;
    if (this._dead) {
      return quiet(Promise.reject(SwitchboardError('closed', 'the client is not connected')));
    }
    if (!this._ready) return this._wait(key); // settled by _onReady
    return quiet(this._request(message, this.options.ackTimeout, onData).catch(function (error) {
      if (error.code === 'disconnected') {
        if (self._dead) throw SwitchboardError('closed', 'the client is not connected');
        return self._wait(key); // re-applied on reconnect
      }
      if (error.code !== 'timeout') onError();
      throw error;
    }));
  };

  proto.join = function (room) {
    room = String(room);
    var self = this;
    var had = this._rooms.has(room);
    this._rooms.add(room);
    return this._stateRequest('join:' + room, { event: 'join', room: room }, function () {
      if (!had) {
        self._rooms.delete(room);
        self._forgetRoom(room);
      }
    }, function (data) {
      self._onJoined(room, data);
    });
  };

  proto.leave = function (room) {
    room = String(room);
    var was = this._rooms.delete(room);
    this._forgetRoom(room);
    delete this.userlists[room];
    this._rejectWaiters('join:' + room, SwitchboardError('left', 'left before the join was confirmed'));
    var offline = { room: room, was_member: was, offline: true };
    if (!this._ready) return Promise.resolve(offline);
    return quiet(this._request({ event: 'leave', room: room }, this.options.ackTimeout).catch(function (error) {
      if (error.code === 'disconnected') return offline; // the next connection is not in it
      throw error;
    }));
  };

  proto.rename = function (name) {
    name = String(name);
    var self = this;
    var previous = this._wantedName;
    this._wantedName = name;
    return quiet(this._stateRequest('rename', { event: 'rename', data: { name: name } }, function () {
      if (self._wantedName === name) self._wantedName = previous;
    }).then(function (data) {
      if (self._wantedName === name) self._wantedName = null;
      if (data && data.name != null) self.name = data.name;
      return data;
    }));
  };

  proto.subscribe = function (pattern, handler) {
    pattern = String(pattern);
    var self = this;
    var had = this._patterns.has(pattern);
    var handlers = this._patterns.get(pattern) || [];
    if (typeof handler === 'function') handlers.push(handler);
    this._patterns.set(pattern, handlers);
    return this._stateRequest('subscribe:' + pattern, { event: 'subscribe', data: { pattern: pattern } }, function () {
      if (!had) self._patterns.delete(pattern);
    });
  };

  proto.unsubscribe = function (pattern) {
    pattern = String(pattern);
    var existed = this._patterns.delete(pattern);
    this._rejectWaiters('subscribe:' + pattern, SwitchboardError('unsubscribed', 'unsubscribed before it was confirmed'));
    var offline = { pattern: pattern, existed: existed, offline: true };
    if (!this._ready) return Promise.resolve(offline);
    return quiet(this._request({ event: 'unsubscribe', data: { pattern: pattern } }, this.options.ackTimeout).catch(function (error) {
      if (error.code === 'disconnected') return offline;
      throw error;
    }));
  };

  proto.users = function (room) {
    var message = { event: 'users' };
    if (room != null) message.room = String(room);
    return quiet(this._request(message, this.options.ackTimeout));
  };

  /**
   * A page of a room's stored messages, oldest first: `limit` of them after
   * offset `after` (the server's defaults: from the oldest kept, 100).
   */
  proto.history = function (room, opts) {
    var data = {};
    if (opts && opts.after != null) data.after = opts.after;
    if (opts && opts.limit != null) data.limit = opts.limit;
    return quiet(this._request({ event: 'history', room: String(room), data: data }, this.options.ackTimeout));
  };

  proto.refresh = function (token) {
    token = String(token);
    // Kept for the next connection too: after a 4001 close the client
    // reconnects with the newest token it was given.
    this.options.token = token;
    if (!this._ready) return Promise.resolve({ offline: true });
    return quiet(this._request({ event: 'refresh', data: { token: token } }, this.options.ackTimeout));
  };

  Switchboard.RESERVED_EVENTS = RESERVED.slice();
  Switchboard.BUILT_IN_REQUESTS = BUILT_IN_REQUESTS.slice();

  return Switchboard;
});
