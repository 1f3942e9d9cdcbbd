// A plain REST client for Gatehouse, generated from bindings/openapi.json by
// @hey-api/openapi-ts (`npm run generate` writes src/client/): no tRPC, no
// envelope, just typed functions per route. Run against a started server:
//   GATEHOUSE_URL=http://127.0.0.1:3000 npm start
import assert from 'node:assert/strict';

import {
  authLogin,
  authLogout,
  authMe,
  authRegister,
  trpcAuthMe,
} from './client/index.js';
import { client } from './client/client.gen.js';

const baseUrl = process.env.GATEHOUSE_URL ?? 'http://127.0.0.1:3000';
// Guarded operations carry the `bearerAuth` scheme; the client asks this
// callback for the token and sends it as `authorization: Bearer …`.
let token: string | undefined;
client.setConfig({ baseUrl, auth: () => token });

const stamp = Date.now().toString(36);
const email = `rest-${stamp}@example.com`;
const username = `rest.${stamp}`;
const password = 'correct horse battery staple';

// Register: 201 with a token and the user.
const registered = await authRegister({
  body: { email, password, firstName: 'Ada', lastName: 'Lovelace', username },
});
assert.equal(registered.response.status, 201);
assert.ok(registered.data, `register failed: ${JSON.stringify(registered.error)}`);
assert.equal(registered.data.user.email, email);

// @ts-expect-error a misspelt key is a type error (the body type is exact)
await authRegister({ body: { emial: email, password, firstName: 'A', lastName: 'B' } }).catch(() => {});

// A wrong password: the typed error body in the REST shape.
const refused = await authLogin({ body: { email, password: 'not the password' } });
assert.equal(refused.response.status, 401);
assert.equal(refused.error?.code, 'UNAUTHORIZED');
assert.equal(refused.error?.path, '/api/auth/login');
console.log(`wrong password: ${refused.response.status} ${refused.error?.message}`);

// Log in by username (the body is `{email, password} | {username, password}`).
const login = await authLogin({ body: { username, password } });
assert.ok(login.data, `login failed: ${JSON.stringify(login.error)}`);
token = login.data.token;

// The profile: the same user, username included.
const me = await authMe();
assert.ok(me.data, `me failed: ${JSON.stringify(me.error)}`);
assert.equal(me.data.email, email);
assert.equal(me.data.username, username);
console.log(`me: ${me.data.firstName} ${me.data.lastName} <${me.data.email}> (${me.data.role})`);

// The same procedure through its tRPC endpoint, also in the document: the
// output arrives in its envelope.
const viaTrpc = await trpcAuthMe();
assert.equal(viaTrpc.data?.result.data.json.id, me.data.id);

// Log out: the session ends, and the token no longer works.
const logout = await authLogout();
assert.ok(logout.data?.success, `logout failed: ${JSON.stringify(logout.error)}`);
const after = await authMe();
assert.equal(after.response.status, 401);
assert.equal(after.error?.code, 'UNAUTHORIZED');
console.log('register → login → me → logout: ok (generated REST client)');
