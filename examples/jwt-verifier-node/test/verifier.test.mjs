// The verifier against real `gatehouse` processes (GATEHOUSE_BIN, default
// target/debug/gatehouse) sharing one EdDSA key set in a SQLite file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { promisify } from 'node:util';
import { makeServer, makeVerifier, checkWithGatehouse } from '../src/server.mjs';

const BIN = process.env.GATEHOUSE_BIN ?? path.resolve(import.meta.dirname, '../../../target/debug/gatehouse');
const dir = mkdtempSync(path.join(tmpdir(), 'gh-verifier-'));
const children = [];
const env = (extra = {}) => ({
  PATH: process.env.PATH,
  RUST_LOG: 'error',
  BCRYPT_COST: '4',
  GATEHOUSE_ADDR: '127.0.0.1:0',
  GATEHOUSE_DATA_DIR: dir,
  DATABASE_URL: `sqlite://${dir}/gatehouse.db`,
  JWT_SECRET: 'verifier-example-secret-verifier-example',
  JWT_ALGORITHM: 'EdDSA',
  GATEHOUSE_KEYS_RELOAD: '1',
  ...extra,
});

/** Starts gatehouse and resolves with its base URL. */
function start(extra) {
  const child = spawn(BIN, [], { env: env(extra), stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('gatehouse did not start')), 30_000);
    readline.createInterface({ input: child.stdout }).once('line', (line) => {
      clearTimeout(timer);
      resolve(line.replace('gatehouse listening on ', '').trim());
    });
    child.once('exit', (code) => reject(new Error(`gatehouse exited with ${code}`)));
  });
}

async function call(base, method, route, body, token) {
  const res = await fetch(new URL(route, base), {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body && JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

const login = async (base) =>
  (await call(base, 'POST', '/api/auth/login', { email: 'trips@example.com', password: 'correct horse battery staple' }))
    .body.token;
const kid = (token) => JSON.parse(Buffer.from(token.split('.')[0], 'base64url')).kid;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('another service verifies Gatehouse tokens offline', { timeout: 90_000 }, async (t) => {
  t.after(() => {
    for (const child of children) child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });
  const gatehouse = await start();
  const verify = makeVerifier({ gatehouseUrl: gatehouse });
  const service = makeServer(verify);
  await new Promise((r) => service.listen(0, '127.0.0.1', r));
  t.after(() => service.close());
  const trips = `http://127.0.0.1:${service.address().port}/api/1/trips/me`;
  const tripsWith = async (token) => {
    const res = await fetch(trips, { headers: { authorization: `Bearer ${token}` } });
    return { status: res.status, body: await res.json() };
  };

  const registered = await call(gatehouse, 'POST', '/api/auth/register', {
    email: 'trips@example.com',
    password: 'correct horse battery staple',
    firstName: 'Tess',
    lastName: 'Trips',
  });
  assert.equal(registered.status, 201);
  const token = registered.body.token;
  const ok = await tripsWith(token);
  assert.equal(ok.status, 200);
  assert.equal(ok.body.userId, registered.body.user.id);
  assert.equal(ok.body.role, 'VIEWER');

  // A rotation: the new token names a key the verifier has not seen, so it
  // refetches the JWKS (after its cooldown) and accepts it.
  const { stdout } = await promisify(execFile)(BIN, ['keys', 'rotate'], { env: env() });
  const newKid = stdout.trim().split(' ').pop();
  assert.notEqual(newKid, kid(token));
  let rotated = await login(gatehouse);
  for (let i = 0; kid(rotated) !== newKid; i++) {
    assert.ok(i < 100, 'gatehouse never signed with the new key');
    await sleep(100);
    rotated = await login(gatehouse);
  }
  await sleep(1100);
  assert.equal((await tripsWith(rotated)).status, 200, 'token of the new key');
  assert.equal((await tripsWith(token)).status, 200, 'the old key still verifies');

  // A tampered payload (promoted to ADMIN), signature kept: refused.
  const [h, p, s] = rotated.split('.');
  const claims = JSON.parse(Buffer.from(p, 'base64url'));
  const tampered = [h, Buffer.from(JSON.stringify({ ...claims, role: 'ADMIN' })).toString('base64url'), s].join('.');
  const refused = await tripsWith(tampered);
  assert.equal(refused.status, 401);
  assert.equal(refused.body.error, 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED');

  // An expired token (an instance on the same key set, 1-second tokens).
  const shortLived = await start({ JWT_TTL: '1' });
  const expiring = await login(shortLived);
  assert.equal((await tripsWith(expiring)).status, 200);
  await sleep(2100);
  const expired = await tripsWith(expiring);
  assert.equal(expired.status, 401);
  assert.equal(expired.body.error, 'ERR_JWT_EXPIRED');

  // A token of another issuer, signed by the same keys: refused.
  const other = await start({ JWT_ISSUER: 'someone-else' });
  const foreign = await tripsWith(await login(other));
  assert.equal(foreign.status, 401);
  assert.equal(foreign.body.error, 'ERR_JWT_CLAIM_VALIDATION_FAILED');

  // What the signature cannot tell: a logged-out token still verifies
  // offline until it expires; Gatehouse itself knows it is dead.
  await call(gatehouse, 'POST', '/api/auth/logout', {}, token);
  assert.equal((await tripsWith(token)).status, 200);
  assert.equal(await checkWithGatehouse(gatehouse, token), null);
  assert.equal((await checkWithGatehouse(gatehouse, rotated)).email, 'trips@example.com');
});
