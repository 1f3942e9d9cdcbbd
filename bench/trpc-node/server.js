// Reference implementation of Gatehouse's `auth.register`, `auth.login` and
// `auth.me` on @trpc/server v11, written the way the tRPC docs write a server
// (initTRPC + superjson, a `protectedProcedure` middleware, the standalone
// adapter). bench/run drives it with the same load as Gatehouse so the
// comparison answers "what would the same service cost in Node?".
//
// Settings mirror Gatehouse: HS256 JWT for 24 h with iss/sub/jti/sid claims,
// bcrypt at BCRYPT_COST, a session row per login that every guarded call
// checks (alive + token is the current one), then the user row is loaded.
//
// Env: GATEHOUSE_ADDR (host:port, port 0 = free port), DATABASE_URL
// (sqlite:///abs/path.db), JWT_SECRET, BCRYPT_COST. Prints
// `trpc-node listening on http://ip:port` on stdout once listening.
import http from 'node:http';
import { createSecretKey, randomUUID } from 'node:crypto';
import { initTRPC, TRPCError } from '@trpc/server';
import { createHTTPHandler } from '@trpc/server/adapters/standalone';
import superjson from 'superjson';
import { z } from 'zod';
import bcrypt from 'bcrypt';
import jwt from 'jsonwebtoken';
import Database from 'better-sqlite3';

const [host, port] = (process.env.GATEHOUSE_ADDR ?? '127.0.0.1:3000').split(/:(?=\d+$)/);
const dbPath = (process.env.DATABASE_URL ?? 'sqlite://./node-bench.db').replace(/^sqlite:\/\//, '');
const secretText = process.env.JWT_SECRET ?? '';
if (Buffer.byteLength(secretText) < 32) throw new Error('JWT_SECRET must be at least 32 bytes');
// A KeyObject, not the string: given a string, jsonwebtoken 9 first tries
// createPublicKey() on it and catches the failure, every call (~450 µs per
// verify instead of ~12 µs). Passing the string would make this reference
// look 40x slower than a careful Node developer's server.
const secret = createSecretKey(Buffer.from(secretText));
const cost = Number(process.env.BCRYPT_COST ?? 10);
const TTL = 86400;
const ISSUER = 'gatehouse';

const db = new Database(dbPath);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = NORMAL');
db.exec(`
  CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL,
    first_name TEXT NOT NULL, last_name TEXT NOT NULL, phone TEXT, role TEXT NOT NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    current_jti TEXT NOT NULL, created_at TEXT NOT NULL, last_used_at TEXT NOT NULL,
    revoked_at TEXT, user_agent TEXT, ip TEXT);
`);
const q = {
  userByEmail: db.prepare('SELECT * FROM users WHERE email = ?'),
  userById: db.prepare('SELECT * FROM users WHERE id = ?'),
  insertUser: db.prepare(`INSERT INTO users (id, email, password_hash, first_name, last_name, phone, role, created_at, updated_at)
    VALUES (@id, @email, @password_hash, @first_name, @last_name, @phone, @role, @created_at, @updated_at)`),
  insertSession: db.prepare(`INSERT INTO sessions (id, user_id, current_jti, created_at, last_used_at, user_agent, ip)
    VALUES (?, ?, ?, ?, ?, ?, ?)`),
  sessionById: db.prepare('SELECT * FROM sessions WHERE id = ?'),
};

const publicUser = (u) => ({ id: u.id, email: u.email, firstName: u.first_name, lastName: u.last_name, role: u.role });
const userDetails = (u) => ({ ...publicUser(u), phone: u.phone, createdAt: u.created_at, updatedAt: u.updated_at });

// A dummy hash so an unknown email costs one bcrypt verify, like a wrong password.
const dummyHash = bcrypt.hashSync('dummy-password-for-timing', cost);

function openSession(user, req) {
  const sid = randomUUID();
  const jti = randomUUID();
  const now = new Date().toISOString();
  q.insertSession.run(sid, user.id, jti, now, now, req.headers['user-agent'] ?? null, req.socket.remoteAddress ?? null);
  const token = jwt.sign(
    { id: user.id, email: user.email, role: user.role, firstName: user.first_name, lastName: user.last_name, sid },
    secret,
    { algorithm: 'HS256', expiresIn: TTL, notBefore: 0, issuer: ISSUER, subject: user.id, jwtid: jti },
  );
  return { token, expiresIn: TTL, user: publicUser(user) };
}

function createContext({ req }) {
  return { req };
}

const t = initTRPC.context().create({ transformer: superjson });

const protectedProcedure = t.procedure.use(({ ctx, next }) => {
  const header = ctx.req.headers.authorization ?? '';
  const [scheme, token] = header.split(' ');
  if (scheme?.toLowerCase() !== 'bearer' || !token) throw new TRPCError({ code: 'UNAUTHORIZED' });
  let claims;
  try {
    claims = jwt.verify(token, secret, { algorithms: ['HS256'], issuer: ISSUER });
  } catch {
    throw new TRPCError({ code: 'UNAUTHORIZED' });
  }
  const session = q.sessionById.get(claims.sid);
  if (!session || session.revoked_at || session.current_jti !== claims.jti) {
    throw new TRPCError({ code: 'UNAUTHORIZED' });
  }
  return next({ ctx: { claims } });
});

const appRouter = t.router({
  auth: t.router({
    register: t.procedure
      .input(z.object({
        email: z.string().trim().toLowerCase().email(),
        password: z.string().min(8).max(72),
        firstName: z.string().min(1),
        lastName: z.string().min(1),
        phone: z.string().optional(),
      }))
      .mutation(async ({ input, ctx }) => {
        if (q.userByEmail.get(input.email)) throw new TRPCError({ code: 'CONFLICT', message: 'Email already registered' });
        const now = new Date().toISOString();
        const user = {
          id: randomUUID(), email: input.email, password_hash: await bcrypt.hash(input.password, cost),
          first_name: input.firstName, last_name: input.lastName, phone: input.phone ?? null,
          role: 'VIEWER', created_at: now, updated_at: now,
        };
        q.insertUser.run(user);
        return openSession(user, ctx.req);
      }),
    login: t.procedure
      .input(z.object({ email: z.string().trim().toLowerCase(), password: z.string() }))
      .mutation(async ({ input, ctx }) => {
        const user = q.userByEmail.get(input.email);
        const ok = await bcrypt.compare(input.password, user?.password_hash ?? dummyHash);
        if (!user || !ok) throw new TRPCError({ code: 'UNAUTHORIZED', message: 'Invalid email or password' });
        return openSession(user, ctx.req);
      }),
    me: protectedProcedure.query(({ ctx }) => {
      const user = q.userById.get(ctx.claims.sub);
      if (!user) throw new TRPCError({ code: 'NOT_FOUND', message: 'User not found' });
      return userDetails(user);
    }),
  }),
});

const trpcHandler = createHTTPHandler({ router: appRouter, createContext, basePath: '/trpc/' });

const server = http.createServer((req, res) => {
  if (req.url === '/readyz' || req.url === '/healthz') {
    try {
      db.prepare('SELECT 1').get();
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    } catch {
      res.writeHead(503).end('not ready');
    }
    return;
  }
  trpcHandler(req, res);
});

server.listen(Number(port), host, () => {
  const a = server.address();
  console.log(`trpc-node listening on http://${a.address}:${a.port}`);
});

for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));
