// Drives the official Stream Chat JS SDK (npm `stream-chat`, version pinned in package.json) against
// chatstorm's mock server and asserts, at every step, what the SDK itself observed.
//
// Run by mock-server/tests/js_sdk.rs, which starts the mock on 127.0.0.1:<port> and passes:
//   CHATSTORM_MOCK_URL      http://127.0.0.1:<port>, or https:// for a TLS mock (trusted through
//                           NODE_EXTRA_CA_CERTS); never port 3030: the SDK rewrites that port
//   CHATSTORM_API_KEY       the mock app's API key
//   CHATSTORM_API_SECRET    the mock app's secret (server-side SDK instance)
//   CHATSTORM_FAULT_SECRET  the mock's fault-control secret (`X-Chatstorm-Secret`)
// Optional: CHATSTORM_JS_WAIT_MS (default 10000), the bound on every wait for an event;
// CHATSTORM_JS_STEP_MS (default 20000), the bound on one step; CHATSTORM_JS_ONLY=1,4 runs those steps.
//
// Each step is independent (own users, own channel), prints `ok N - ...` or `not ok N - ...` with
// the reason, and the process exits 0 only when every step passed.

import assert from 'node:assert/strict';
import { StreamChat } from 'stream-chat';

const BASE_URL = requireEnv('CHATSTORM_MOCK_URL');
const API_KEY = requireEnv('CHATSTORM_API_KEY');
const API_SECRET = requireEnv('CHATSTORM_API_SECRET');
const FAULT_SECRET = requireEnv('CHATSTORM_FAULT_SECRET');
const WAIT_MS = Number(process.env.CHATSTORM_JS_WAIT_MS ?? 10000);
// A step's bound: above the SDK's own 15 s connect timeout, so that its error is the one reported.
const STEP_MS = Number(process.env.CHATSTORM_JS_STEP_MS ?? 20000);

if (process.env.STREAM_LOCAL_TEST_RUN || process.env.STREAM_LOCAL_TEST_HOST) {
  // Either variable makes every StreamChat instance ignore `baseURL`.
  fail('STREAM_LOCAL_TEST_RUN / STREAM_LOCAL_TEST_HOST must be unset: the SDK would ignore baseURL');
}
if (new URL(BASE_URL).port === '3030') {
  fail('the mock must not listen on port 3030: the SDK rewrites it to 8800 (WS) and 8900 (long-poll)');
}

function requireEnv(name) {
  const value = process.env[name];
  if (!value) fail(`environment variable ${name} is required`);
  return value;
}

function fail(message) {
  console.error(`sdk_against_mock: ${message}`);
  process.exit(2);
}

// Exceptions thrown inside the SDK's socket handlers (for instance while it applies an event the
// mock shaped wrongly) do not reach any awaited promise; collect them and fail the step instead.
const asyncFaults = [];
process.on('uncaughtException', (err) => asyncFaults.push(err));
process.on('unhandledRejection', (err) => asyncFaults.push(err));

/** Every client created by a step, disconnected at the end of that step whatever happened. */
let stepClients = [];

/** The server-side SDK instance: it holds the secret, mints tokens and makes server-side calls. */
const server = new StreamChat(API_KEY, API_SECRET, { baseURL: BASE_URL, timeout: WAIT_MS });

/** A client-side SDK instance, as an app would create it (no secret). */
function newClient(options = {}) {
  const client = new StreamChat(API_KEY, {
    baseURL: BASE_URL,
    allowServerSideConnect: true,
    timeout: WAIT_MS,
    ...options,
  });
  stepClients.push(client);
  return client;
}

function withTimeout(promise, ms, message) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function nowSecs() {
  return Math.floor(Date.now() / 1000);
}

/**
 * Records every event a client dispatches (wire events and the SDK's local ones such as
 * `connection.changed` and `transport.changed`), so that a wait set up after an event arrived
 * still sees it.
 */
class EventLog {
  constructor(client, label) {
    this.label = label;
    this.events = [];
    this.waiters = new Set();
    client.on((event) => {
      this.events.push(event);
      for (const waiter of this.waiters) waiter(event);
    });
  }

  /** A position in the log; pass it as `since` to ignore everything recorded before. */
  mark() {
    return this.events.length;
  }

  /** Events recorded from `since` on that match `pred`. */
  since(since, pred) {
    return this.events.slice(since).filter(pred);
  }

  /** Resolves with the first event from `since` on matching `pred`, or rejects after WAIT_MS. */
  waitFor(what, pred, since = 0) {
    const found = this.events.slice(since).find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const waiter = (event) => {
        if (!pred(event)) return;
        clearTimeout(timer);
        this.waiters.delete(waiter);
        resolve(event);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        const seen = this.events.slice(since).map((e) => e.type).join(', ') || 'nothing';
        reject(new Error(`${this.label}: no ${what} within ${WAIT_MS} ms (saw: ${seen})`));
      }, WAIT_MS);
      this.waiters.add(waiter);
    });
  }
}

const byType = (type, userId) => (e) => e.type === type && (userId === undefined || e.user?.id === userId);

/** Captures the SDK's own log lines (its `logger` option), to assert on what it went through. */
function logCapture() {
  const lines = [];
  const logger = (level, message) => lines.push(`${level} ${message}`);
  return { lines, logger };
}

/** Calls the mock's fault-control API (`/_fault/...`, the fault secret in `X-Chatstorm-Secret`). */
async function fault(method, path, body) {
  const res = await fetch(`${BASE_URL}/_fault${path}`, {
    method,
    headers: { 'content-type': 'application/json', 'x-chatstorm-secret': FAULT_SECRET },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(WAIT_MS),
  });
  const text = await res.text();
  assert.ok(res.ok, `fault-control ${method} ${path} answered ${res.status}: ${text}`);
  return text ? JSON.parse(text) : null;
}

/** The mock's counters (`GET /_fault/stats`). */
function stats() {
  return fault('GET', '/stats');
}

/**
 * Polls the mock's counters until `pred` holds, within WAIT_MS: server-side bookkeeping of a
 * close runs after the client already returned.
 */
async function waitForStats(what, pred) {
  const deadline = Date.now() + WAIT_MS;
  let last;
  for (;;) {
    last = await stats();
    if (pred(last)) return last;
    if (Date.now() > deadline) throw new Error(`mock stats: no ${what} within ${WAIT_MS} ms: ${JSON.stringify(last)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Connects `id` over WebSocket with a server-minted token and returns [client, log, health]. */
async function connect(id, extra = {}, options = {}) {
  const client = newClient(options);
  const log = new EventLog(client, id);
  const health = await client.connectUser({ id, ...extra }, server.createToken(id));
  return [client, log, health];
}

/** Checks the first `health.check` the SDK resolved `connectUser` with. */
function assertHealthCheck(health, id) {
  assert.equal(health?.type, 'health.check', 'connectUser resolves with the first health.check');
  assert.ok(health.connection_id, 'the health.check carries a connection_id');
  assert.equal(health.me?.id, id, 'the health.check carries the own user as `me`');
  assert.ok(Array.isArray(health.me.mutes), '`me.mutes` is an array');
  assert.ok(Array.isArray(health.me.channel_mutes), '`me.channel_mutes` is an array');
}

// ---------------------------------------------------------------------------------------------
// The steps.

async function step1ConnectWithServerToken() {
  const id = 'js-step1';
  const client = newClient();
  const log = new EventLog(client, id);
  const token = server.createToken(id, nowSecs() + 3600);
  const health = await client.connectUser({ id, name: 'Step One', favourite: 'tea' }, token);
  assertHealthCheck(health, id);
  assert.equal(health.me.name, 'Step One', '`me` reflects user_details');
  assert.equal(health.me.favourite, 'tea', 'custom user fields are flattened into `me`');
  assert.ok(client.wsConnection?.isHealthy, 'the SDK reports its WebSocket healthy');
  assert.equal(client.wsConnection.connectionID, health.connection_id, 'the SDK keeps the connection_id');
  assert.equal(client.user?.id, id, 'the SDK took `me` as its user');
  await log.waitFor('connection.changed online:true', (e) => e.type === 'connection.changed' && e.online === true);
  return `connectUser resolved, connection_id ${health.connection_id}`;
}

async function step2ExpiredFirstTokenFromProvider() {
  const id = 'js-step2';
  const { lines, logger } = logCapture();
  const client = newClient({ logger });
  const before = await stats();
  let calls = 0;
  const provider = async () => {
    calls += 1;
    // The first token expired a minute ago; every later one is valid for an hour.
    const exp = calls === 1 ? nowSecs() - 60 : nowSecs() + 3600;
    return server.createToken(id, exp);
  };
  const health = await client.connectUser({ id }, provider);
  assertHealthCheck(health, id);
  assert.ok(calls >= 2, `the token provider was called again (called ${calls} time(s))`);
  assert.ok(
    lines.some((l) => l.includes('WS failed with code 40')),
    'the SDK received an error frame with code 40',
  );
  assert.ok(
    lines.some((l) => l.includes('WS failure due to expired token')),
    'the SDK treated the code 40 as an expired token to refresh',
  );
  assert.ok(client.wsConnection?.isHealthy, 'the SDK reports its WebSocket healthy after the refresh');
  const after = await stats();
  assert.ok(after.connect_rejected_total > before.connect_rejected_total, 'the mock counted the rejected connect');
  return `provider called ${calls} times, then connected`;
}

async function step3DisconnectUser() {
  const channelId = 'js-step3';
  // Earlier steps disconnected all their clients: the mock must count no connection now.
  await waitForStats('no open connection left by earlier steps', (s) => s.live_connections === 0 && s.longpoll_connections === 0);
  const [watcher, watcherLog] = await connect('js-step3-watcher');
  const [leaver] = await connect('js-step3-leaver');
  await waitForStats('two open WebSockets', (s) => s.live_connections === 2);
  // Presence events reach users that watch a channel with presence:true.
  const members = ['js-step3-watcher', 'js-step3-leaver'];
  await watcher.channel('messaging', channelId, { members }).watch({ presence: true });
  await leaver.channel('messaging', channelId, { members }).watch();
  const since = watcherLog.mark();

  await leaver.disconnectUser();
  assert.equal(leaver.wsConnection?.isHealthy ?? false, false, 'the SDK no longer reports a healthy socket');
  await watcherLog.waitFor(
    'user.presence.changed online:false for js-step3-leaver',
    (e) => e.type === 'user.presence.changed' && e.user?.id === 'js-step3-leaver' && e.user?.online === false,
    since,
  );
  await waitForStats('one open WebSocket after disconnectUser', (s) => s.live_connections === 1);
  return 'the watcher saw user.presence.changed online:false; the mock counts one socket less';
}

async function step4TypingAndReadThenPrivacyOff() {
  const channelId = 'js-step4';
  const sender = 'js-step4-sender';
  const receiver = 'js-step4-receiver';
  // Privacy explicitly on at connect (the connect upserts it), so that a rerun against a
  // long-lived mock starts from the same state.
  const on = { typing_indicators: { enabled: true }, read_receipts: { enabled: true } };
  const [a, aLog, aHealth] = await connect(sender, { privacy_settings: on });
  assert.equal(aHealth.me.privacy_settings?.typing_indicators?.enabled, true, '`me` has typing on');
  const [b, bLog] = await connect(receiver);
  const members = [sender, receiver];
  const aChannel = a.channel('messaging', channelId, { members });
  await aChannel.watch();
  const bChannel = b.channel('messaging', channelId, { members });
  await bChannel.watch();

  // Privacy on (the default): typing and read reach the other watcher.
  let since = bLog.mark();
  let aSince = aLog.mark();
  await aChannel.keystroke();
  await bLog.waitFor(`typing.start from ${sender}`, byType('typing.start', sender), since);
  await aLog.waitFor('typing.start echoed to the sender', byType('typing.start', sender), aSince);
  const readResponse = await aChannel.markRead();
  assert.ok(readResponse, 'the SDK sent the read (channel config and capabilities allow it)');
  await bLog.waitFor(`message.read from ${sender}`, byType('message.read', sender), since);

  // Privacy off for the sender, through the SDK's own partial update.
  const update = await a.partialUpdateUser({
    id: sender,
    set: { privacy_settings: { typing_indicators: { enabled: false }, read_receipts: { enabled: false } } },
  });
  const updated = update?.users?.[sender];
  assert.equal(updated?.privacy_settings?.typing_indicators?.enabled, false, 'the update returned typing off');
  assert.equal(updated?.privacy_settings?.read_receipts?.enabled, false, 'the update returned read receipts off');

  since = bLog.mark();
  aSince = aLog.mark();
  // keystroke() may now be a no-op on the client (it checks the own privacy settings), so send
  // the typing event directly: the server must suppress it.
  const typing = await aChannel.sendEvent({ type: 'typing.start' });
  assert.equal(typing?.event?.type, 'typing.start', 'the mock accepted the typing event');
  const read = await aChannel.markRead();
  assert.ok(read, 'the SDK sent the read');
  await aLog.waitFor('notification.mark_read on own connection', byType('notification.mark_read'), aSince);
  // Positive control: a message sent after the suppressed events arrives; events on one socket
  // arrive in order, so anything not seen by then was not sent.
  const text = `control after privacy off ${Date.now()}`;
  await aChannel.sendMessage({ text });
  await bLog.waitFor('the control message', (e) => e.type === 'message.new' && e.message?.text === text, since);
  await aLog.waitFor('the control message on own connection', (e) => e.type === 'message.new' && e.message?.text === text, aSince);
  assert.deepEqual(bLog.since(since, byType('typing.start')), [], 'no typing.start reached the other user');
  assert.deepEqual(bLog.since(since, byType('message.read')), [], 'no message.read reached the other user');
  assert.deepEqual(aLog.since(aSince, byType('typing.start')), [], 'no typing.start reached the sender either');

  // The reader's entry is also left out of the other user's read state.
  const state = await bChannel.query({ state: true });
  const readers = (state.read ?? []).map((r) => r.user?.id);
  assert.ok(!readers.includes(sender), `the receiver's read array leaves out ${sender}: ${readers}`);
  return 'typing and read delivered with privacy on, suppressed with it off (control message arrived)';
}

async function step5LongPollFallback() {
  const channelId = 'js-step5';
  const polled = 'js-step5-longpoll';
  const other = 'js-step5-websocket';
  const members = [polled, other];
  // The other user connects over WebSocket before upgrades are refused.
  const [b, bLog] = await connect(other);
  const bChannel = b.channel('messaging', channelId, { members });
  await bChannel.watch();

  await fault('POST', '/refuse-upgrades', { duration_ms: 60000, mode: '503' });
  try {
    const a = newClient({ enableWSFallback: true });
    const aLog = new EventLog(a, polled);
    const health = await a.connectUser({ id: polled }, server.createToken(polled));
    assertHealthCheck(health, polled);
    await aLog.waitFor('transport.changed mode:longpoll', (e) => e.type === 'transport.changed' && e.mode === 'longpoll');
    assert.ok(a.wsFallback, 'the SDK created its long-poll fallback');
    assert.equal(a.wsFallback.state, 'CONNECTED', 'the long-poll fallback is connected');
    assert.ok(a.wsFallback.isHealthy(), 'the long-poll fallback is healthy');
    assert.equal(a.wsFallback.connectionID, health.connection_id, 'the fallback keeps the connection_id');
    assert.equal(a.wsConnection?.isHealthy ?? false, false, 'no WebSocket is up');

    const aChannel = a.channel('messaging', channelId, { members });
    await aChannel.watch();
    const since = aLog.mark();
    const text = `over long-poll ${Date.now()}`;
    await bChannel.sendMessage({ text });
    const got = await aLog.waitFor('message.new over long-poll', (e) => e.type === 'message.new' && e.message?.text === text, since);
    assert.equal(got.user?.id, other, 'the message came from the WebSocket user');

    // And the other way: a message sent by the long-poll client reaches the WebSocket user.
    const bSince = bLog.mark();
    const reply = `reply from long-poll ${Date.now()}`;
    await aChannel.sendMessage({ text: reply });
    await bLog.waitFor('message.new from the long-poll user', (e) => e.type === 'message.new' && e.message?.text === reply, bSince);

    assert.equal((await stats()).longpoll_connections, 1, 'the mock counts one long-poll connection');
    await a.disconnectUser();
    await waitForStats('no long-poll connection after disconnectUser', (s) => s.longpoll_connections === 0);
  } finally {
    await fault('POST', '/refuse-upgrades', { duration_ms: 0 });
  }
  return 'connected over /longpoll after transport.changed, events flowed both ways';
}

// ---------------------------------------------------------------------------------------------
// The runner.

const steps = [
  ['connectUser with a token from the server SDK createToken', step1ConnectWithServerToken],
  ['tokenProvider whose first token is expired: code 40, provider called again', step2ExpiredFirstTokenFromProvider],
  ['disconnectUser: the connection goes away on the mock', step3DisconnectUser],
  ['typing and read arrive, then stop once privacy settings turn them off', step4TypingAndReadThenPrivacyOff],
  ['enableWSFallback while upgrades are refused: long-poll carries events', step5LongPollFallback],
];

let passed = 0;
let failed = 0;
const only = process.env.CHATSTORM_JS_ONLY?.split(',').map(Number);
for (const [index, [name, run]] of steps.entries()) {
  const n = index + 1;
  if (only && !only.includes(n)) continue;
  const started = Date.now();
  stepClients = [];
  asyncFaults.length = 0;
  try {
    const detail = await withTimeout(run(), STEP_MS, `step ${n} did not finish within ${STEP_MS} ms`);
    if (asyncFaults.length) throw asyncFaults[0];
    passed += 1;
    console.log(`ok ${n} - ${name} (${Date.now() - started} ms): ${detail}`);
  } catch (err) {
    failed += 1;
    console.log(`not ok ${n} - ${name} (${Date.now() - started} ms)`);
    console.log(`  ${String(err?.stack ?? err).split('\n').join('\n  ')}`);
  } finally {
    await Promise.allSettled(stepClients.map((c) => c.disconnectUser(500)));
  }
}
console.log(`${passed} passed, ${failed} failed`);
// The SDK keeps timers (e.g. its 5 s connection.changed delay) that would hold the process open.
process.exit(failed === 0 && passed > 0 ? 0 : 1);
