// Another service (here `GET /api/1/trips/me`) that accepts the tokens
// Gatehouse issues without sharing any secret with it: it verifies them
// offline against the public keys Gatehouse publishes at
// /.well-known/jwks.json (JWT_ALGORITHM EdDSA, ES256 or RS256; see
// docs/keys.md).
//
// What it cannot know: whether the token was revoked before it expires
// (logout, password change, role change). Where that matters, ask Gatehouse
// by calling auth.me with the token (see `checkWithGatehouse` below).
import http from 'node:http';
import { createRemoteJWKSet, jwtVerify } from 'jose';

/**
 * A verifier for tokens of the Gatehouse at `gatehouseUrl`.
 * createRemoteJWKSet caches the key set and refetches it when a token names
 * a `kid` it does not have (after a `gatehouse keys rotate`), at most once
 * per `cooldownDuration`.
 */
export function makeVerifier({ gatehouseUrl, issuer = 'gatehouse', algorithms = ['EdDSA'], cooldownMs = 1000 }) {
  const jwks = createRemoteJWKSet(new URL('/.well-known/jwks.json', gatehouseUrl), {
    cooldownDuration: cooldownMs,
  });
  return async (token) => {
    const { payload } = await jwtVerify(token, jwks, {
      issuer,
      algorithms,
      requiredClaims: ['sub', 'exp', 'nbf', 'iat'],
    });
    return payload;
  };
}

/** Asks Gatehouse whether the token still works right now (revocation). */
export async function checkWithGatehouse(gatehouseUrl, token) {
  const res = await fetch(new URL('/api/user/profile', gatehouseUrl), {
    headers: { authorization: `Bearer ${token}` },
  });
  return res.ok ? res.json() : null;
}

/** The service: `GET /api/1/trips/me` answers the caller's id and role. */
export function makeServer(verify) {
  return http.createServer(async (req, res) => {
    const send = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'GET' || req.url !== '/api/1/trips/me') {
      return send(404, { error: 'not found' });
    }
    const token = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    if (!token) return send(401, { error: 'missing bearer token' });
    try {
      const claims = await verify(token);
      return send(200, { userId: claims.sub, role: claims.role, trips: [] });
    } catch (error) {
      return send(401, { error: error.code ?? 'invalid token' });
    }
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const gatehouseUrl = process.env.GATEHOUSE_URL ?? 'http://127.0.0.1:3000';
  const verify = makeVerifier({
    gatehouseUrl,
    issuer: process.env.JWT_ISSUER ?? 'gatehouse',
    algorithms: [process.env.JWT_ALGORITHM ?? 'EdDSA'],
  });
  const port = Number(process.env.PORT ?? 4000);
  makeServer(verify).listen(port, '127.0.0.1', () => {
    console.log(`trips service on http://127.0.0.1:${port}, trusting ${gatehouseUrl}`);
  });
}
