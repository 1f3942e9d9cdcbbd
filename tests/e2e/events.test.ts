// `auth.events` through the unmodified @trpc/client v11: splitLink sends
// subscriptions to httpSubscriptionLink (server-sent events, the `eventsource`
// package with a custom fetch for the bearer header, or connectionParams) and
// everything else to httpBatchLink, against the real gatehouse binary.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { after, before, describe, test } from "node:test";

import {
  createTRPCClient,
  httpBatchLink,
  httpSubscriptionLink,
  splitLink,
  TRPCClientError,
  type TRPCClient,
} from "@trpc/client";
import { EventSource } from "eventsource";
import superjson from "superjson";

import type { AppRouter, UserDetails } from "../../bindings";
import {
  ADMIN_EMAIL,
  ADMIN_PASSWORD,
  freshEmail,
  NEW_PASSWORD,
  PASSWORD,
  resetTokenFor,
  startServer,
  type Server,
} from "./server.ts";

type Client = TRPCClient<AppRouter>;
type ClientError = TRPCClientError<AppRouter>;

/** The contract's event union, spelled out; the bindings must produce exactly it. */
// The brief listed six reasons; the server also reports a replayed refresh
// token (`reused`) and an admin's role change (`roleChanged`), see docs/api.md.
type Reason =
  | "logout"
  | "logoutAll"
  | "revoked"
  | "reused"
  | "passwordChanged"
  | "passwordReset"
  | "roleChanged"
  | "deleted";
type ExpectedAccountEvent =
  | { type: "session.revoked"; sessionId: string; reason: Reason }
  | { type: "role.changed"; role: "ADMIN" | "OPERATOR" | "VIEWER" }
  | { type: "profile.updated"; user: UserDetails };

/** What `onData` receives for a tracked subscription. */
type Tracked = { id: string; data: ExpectedAccountEvent };
type AccountEvent = ExpectedAccountEvent;
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

/** Never called: type-level checks of the subscription's typing. */
function typeChecks(trpc: Client) {
  trpc.auth.events.subscribe(undefined, {
    onData(event) {
      // The inferred value is exactly the contract's, both ways.
      const exact: Same<typeof event, Tracked> = true;
      void exact;
      const id: string = event.id;
      void id;
      switch (event.data.type) {
        case "session.revoked": {
          const reason: Reason = event.data.reason;
          const sid: string = event.data.sessionId;
          void [reason, sid];
          // @ts-expect-error `role` belongs to role.changed only
          void event.data.role;
          break;
        }
        case "role.changed": {
          const role: "ADMIN" | "OPERATOR" | "VIEWER" = event.data.role;
          void role;
          break;
        }
        case "profile.updated": {
          const email: string = event.data.user.email;
          void email;
          break;
        }
        default: {
          const none: never = event.data;
          void none;
        }
      }
      // @ts-expect-error not narrowed yet: `user` is only on profile.updated
      void event.data.user;
      // @ts-expect-error no such event type
      if (event.data.type === "session.created") return;
    },
  });
  trpc.auth.events.subscribe({ lastEventId: "1" }, {});
  trpc.auth.events.subscribe({}, {});
  // @ts-expect-error lastEventId is a string
  trpc.auth.events.subscribe({ lastEventId: 1 }, {});
  // @ts-expect-error a subscription has no query()
  void trpc.auth.events.query;
}
void typeChecks;

// ---------------------------------------------------------------- clients

type Auth = { token: string | null; via: "header" | "connectionParams" };

/**
 * A client whose subscriptions go over SSE and whose other calls go through
 * httpBatchLink; the token (changeable through `auth`) is sent as a bearer
 * header on both, or as `connectionParams.token` on the SSE request.
 */
function makeClient(url: string, auth: Auth = { token: null, via: "header" }) {
  const bearer = (): Record<string, string> =>
    auth.token ? { authorization: `Bearer ${auth.token}` } : {};
  const trpc = createTRPCClient<AppRouter>({
    links: [
      splitLink({
        condition: (op) => op.type === "subscription",
        true: httpSubscriptionLink({
          url,
          transformer: superjson,
          EventSource,
          connectionParams: async () => (auth.via === "connectionParams" && auth.token ? { token: auth.token } : null),
          eventSourceOptions: () => ({
            fetch: (input, init) =>
              fetch(input, { ...init, headers: { ...init.headers, ...(auth.via === "header" ? bearer() : {}) } }),
          }),
        }),
        false: httpBatchLink({ url, transformer: superjson, headers: bearer }),
      }),
    ],
  });
  return { trpc, auth };
}

interface Received {
  at: number;
  id: string;
  data: AccountEvent;
}

/** One `auth.events` subscription and everything it received, timestamped. */
class Subscriber {
  readonly events: Received[] = [];
  error: ClientError | null = null;
  errorAt = 0;
  startedCount = 0;
  completed = false;
  private readonly waiters = new Set<() => void>();
  private readonly sub: { unsubscribe(): void };

  constructor(trpc: Client, input?: { lastEventId?: string }) {
    this.sub = trpc.auth.events.subscribe(input, {
      onStarted: () => {
        this.startedCount += 1;
        this.changed();
      },
      onData: (event) => {
        this.events.push({ at: performance.now(), id: event.id, data: event.data });
        this.changed();
      },
      onError: (err) => {
        this.errorAt = performance.now();
        this.error = err;
        this.changed();
      },
      onComplete: () => {
        this.completed = true;
        this.changed();
      },
    });
  }

  private changed() {
    for (const wake of this.waiters) wake();
  }

  /** Resolves when `ready()` holds, or fails after `ms`. */
  async until<T>(what: string, ready: () => T | undefined | null | false, ms = 5_000): Promise<T> {
    const deadline = performance.now() + ms;
    for (;;) {
      const value = ready();
      if (value) return value;
      const left = deadline - performance.now();
      if (left <= 0) {
        assert.fail(
          `timed out after ${ms} ms waiting for ${what}; events: ${JSON.stringify(this.events.map((e) => e.data))}, ` +
            `error: ${this.error?.message ?? "none"}`,
        );
      }
      await new Promise<void>((ok) => {
        const wake = () => {
          clearTimeout(timer);
          this.waiters.delete(wake);
          ok();
        };
        const timer = setTimeout(wake, left);
        this.waiters.add(wake);
      });
    }
  }

  started(ms = 5_000) {
    return this.until("the subscription to start", () => this.startedCount > 0 || this.error, ms);
  }

  failed(ms = 5_000): Promise<ClientError> {
    return this.until("onError", () => this.error, ms);
  }

  profileNames(): string[] {
    return this.events.flatMap((e) => (e.data.type === "profile.updated" ? [e.data.user.firstName] : []));
  }

  unsubscribe() {
    this.sub.unsubscribe();
  }
}

async function register(trpc: Client, tag: string) {
  const email = freshEmail(tag);
  const reg = await trpc.auth.register.mutate({ email, password: PASSWORD, firstName: "Ev", lastName: "Ents" });
  return { email, token: reg.token, user: reg.user };
}

/** The id of the session `token` belongs to. */
async function sessionIdOf(url: string, token: string): Promise<string> {
  const { trpc } = makeClient(url, { token, via: "header" });
  const current = (await trpc.auth.sessions.query()).find((s) => s.current);
  assert.ok(current, "auth.sessions lists the current session");
  return current.id;
}

const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

function assertUnauthorized(err: unknown) {
  assert.ok(err instanceof TRPCClientError, `expected a TRPCClientError, got ${String(err)}`);
  assert.equal((err as ClientError).data?.code, "UNAUTHORIZED", `code of: ${(err as ClientError).message}`);
}

/**
 * The subscriber's own session ends: its `session.revoked` arrives within 1 s
 * of `revoke()` starting, is the last event, and the stream then fails with
 * UNAUTHORIZED.
 */
async function expectRevoked(sub: Subscriber, sessionId: string, reason: Reason, revoke: () => Promise<unknown>) {
  await sub.started();
  assert.equal(sub.error, null, `no error before revoking: ${sub.error?.message}`);
  const t0 = performance.now();
  await revoke();
  const own = await sub.until(`session.revoked for ${sessionId}`, () =>
    sub.events.find((e) => e.data.type === "session.revoked" && e.data.sessionId === sessionId),
  );
  const latency = own.at - t0;
  assert.ok(latency < 1000, `session.revoked arrived ${latency.toFixed(0)} ms after the call (limit 1000 ms)`);
  assert.deepEqual(own.data, { type: "session.revoked", sessionId, reason });
  const err = await sub.failed();
  assertUnauthorized(err);
  assert.equal(sub.events.at(-1), own, "session.revoked of its own session is the last event");
  assert.ok(sub.errorAt >= own.at, "the error comes after the event");
  for (const e of sub.events) {
    if (e.data.type === "session.revoked") assert.equal(e.data.reason, reason, JSON.stringify(e.data));
  }
  return latency;
}

// ---------------------------------------------------------------- SQLite

let server: Server;
before(async () => {
  server = await startServer({ GATEHOUSE_SSE_PING_MS: "500" });
});
after(async () => {
  await server?.stop();
});

describe("auth.events (@trpc/client v11 httpSubscriptionLink, SQLite)", () => {
  for (const via of ["header", "connectionParams"] as const) {
    test(`auth.logout from another client: session.revoked within 1 s, then UNAUTHORIZED (token via ${via})`, async () => {
      const anon = makeClient(server.trpcUrl).trpc;
      const { token } = await register(anon, `logout-${via}`);
      const sessionId = await sessionIdOf(server.trpcUrl, token);
      const sub = new Subscriber(makeClient(server.trpcUrl, { token, via }).trpc);
      try {
        // Another connection, same session: its bearer token.
        const other = makeClient(server.trpcUrl, { token, via: "header" }).trpc;
        const ms = await expectRevoked(sub, sessionId, "logout", () => other.auth.logout.mutate());
        console.log(`    logout -> session.revoked: ${ms.toFixed(1)} ms`);
      } finally {
        sub.unsubscribe();
      }
    });
  }

  // The subscriber's session S1 ends through a call made on another session
  // S2 of the same user (or by the ADMIN), each with its reason. `prepare`
  // does what must come first and returns the call that is timed.
  type Revocation = {
    call: string;
    reason: Reason;
    prepare(ctx: {
      email: string;
      userId: string;
      sessionId: string;
      other: Client;
      admin: () => Promise<Client>;
    }): Promise<() => Promise<unknown>>;
  };
  const revocations: Revocation[] = [
    { call: "auth.logoutAll", reason: "logoutAll", prepare: async ({ other }) => () => other.auth.logoutAll.mutate() },
    {
      call: "auth.revokeSession",
      reason: "revoked",
      prepare: async ({ other, sessionId }) => () => other.auth.revokeSession.mutate({ id: sessionId }),
    },
    {
      call: "auth.changePassword",
      reason: "passwordChanged",
      prepare: async ({ other }) => () =>
        other.auth.changePassword.mutate({ currentPassword: PASSWORD, newPassword: NEW_PASSWORD }),
    },
    {
      call: "auth.resetPassword",
      reason: "passwordReset",
      async prepare({ other, email }) {
        await other.auth.requestPasswordReset.mutate({ email });
        const token = await resetTokenFor(server.outboxDir, email);
        return () => other.auth.resetPassword.mutate({ email, token, password: NEW_PASSWORD });
      },
    },
    {
      call: "users.delete (ADMIN)",
      reason: "deleted",
      async prepare({ admin, userId }) {
        const trpc = await admin();
        return () => trpc.users.delete.mutate({ id: userId });
      },
    },
  ];
  for (const { call, reason, prepare } of revocations) {
    test(`${call} from another session: session.revoked (${reason}) within 1 s, then UNAUTHORIZED`, async () => {
      const anon = makeClient(server.trpcUrl).trpc;
      const { email, token, user } = await register(anon, reason);
      const sessionId = await sessionIdOf(server.trpcUrl, token);
      const second = await anon.auth.login.mutate({ email, password: PASSWORD });
      const sub = new Subscriber(makeClient(server.trpcUrl, { token, via: "header" }).trpc);
      try {
        const timed = await prepare({
          email,
          userId: user.id,
          sessionId,
          other: makeClient(server.trpcUrl, { token: second.token, via: "header" }).trpc,
          admin: async () => {
            const login = await anon.auth.login.mutate({ email: ADMIN_EMAIL, password: ADMIN_PASSWORD });
            return makeClient(server.trpcUrl, { token: login.token, via: "header" }).trpc;
          },
        });
        const ms = await expectRevoked(sub, sessionId, reason, timed);
        console.log(`    ${call} -> session.revoked: ${ms.toFixed(1)} ms`);
      } finally {
        sub.unsubscribe();
      }
    });
  }

  test("resubscribing with lastEventId replays exactly the missed events, in order", async () => {
    const anon = makeClient(server.trpcUrl).trpc;
    const { token, user } = await register(anon, "resume");
    const me = makeClient(server.trpcUrl, { token, via: "header" }).trpc;

    const first = new Subscriber(me);
    await first.started();
    for (const name of ["One", "Two", "Three"]) await me.auth.updateProfile.mutate({ firstName: name });
    await first.until("three profile.updated", () => first.events.length >= 3);
    await sleep(200); // nothing else may arrive
    first.unsubscribe();
    assert.deepEqual(first.profileNames(), ["One", "Two", "Three"]);
    assert.equal(first.events.length, 3, JSON.stringify(first.events.map((e) => e.data)));
    for (const e of first.events) {
      assert.ok(e.data.type === "profile.updated");
      assert.equal(e.data.user.id, user.id);
      assert.equal(e.data.user.email, user.email);
    }
    const ids = first.events.map((e) => e.id);
    assert.equal(new Set(ids).size, 3, `ids are distinct: ${ids}`);
    const lastId = ids[2]!;

    for (const name of ["Four", "Five", "Six"]) await me.auth.updateProfile.mutate({ firstName: name });

    const second = new Subscriber(me, { lastEventId: lastId });
    await second.started();
    await second.until("the three missed events", () => second.events.length >= 3);
    // Live again after the replay: one more, and nothing twice.
    await me.auth.updateProfile.mutate({ firstName: "Seven" });
    await second.until("the live event", () => second.events.length >= 4);
    await sleep(300);
    second.unsubscribe();
    assert.deepEqual(second.profileNames(), ["Four", "Five", "Six", "Seven"]);
    assert.equal(second.events.length, 4, JSON.stringify(second.events.map((e) => e.data)));
    const allIds = [...ids, ...second.events.map((e) => e.id)];
    assert.equal(new Set(allIds).size, allIds.length, `no id twice: ${allIds}`);
    assert.equal(second.error, null);
  });

  test("a dropped connection: EventSource reconnects with Last-Event-ID, nothing lost or repeated", async () => {
    const anon = makeClient(server.trpcUrl).trpc;
    const { token } = await register(anon, "drop");
    const me = makeClient(server.trpcUrl, { token, via: "header" }).trpc;
    const proxy = await startProxy(server.origin);
    try {
      const sub = new Subscriber(makeClient(`${proxy.origin}/trpc`, { token, via: "header" }).trpc);
      try {
        await sub.started();
        await me.auth.updateProfile.mutate({ firstName: "Before" });
        await sub.until("the first event", () => sub.events.length >= 1);
        const connectionsBefore = proxy.connections;
        proxy.cutAll(); // as a network failure would: no `return`, no error event
        for (const name of ["While1", "While2"]) await me.auth.updateProfile.mutate({ firstName: name });
        // eventsource waits 3 s before it reconnects, then sends Last-Event-ID.
        await sub.until("the events sent while disconnected", () => sub.events.length >= 3, 10_000);
        assert.ok(proxy.connections > connectionsBefore, "the client connected again");
        await me.auth.updateProfile.mutate({ firstName: "After" });
        await sub.until("the live event after reconnecting", () => sub.events.length >= 4);
        await sleep(300);
        assert.deepEqual(sub.profileNames(), ["Before", "While1", "While2", "After"]);
        assert.equal(sub.events.length, 4, JSON.stringify(sub.events.map((e) => e.data)));
        assert.equal(sub.error, null, `no error: ${sub.error?.message}`);
      } finally {
        sub.unsubscribe();
      }
    } finally {
      await proxy.close();
    }
  });

  for (const [what, token] of [
    ["no token", null],
    ["a token that is not a JWT", "not.a.jwt"],
    ["a token signed with another key", forgedToken()],
  ] as const) {
    for (const via of ["header", "connectionParams"] as const) {
      test(`${what} (${via}): the guard's UNAUTHORIZED arrives as a TRPCClientError`, async () => {
        const sub = new Subscriber(makeClient(server.trpcUrl, { token, via }).trpc);
        try {
          const err = await sub.failed();
          assertUnauthorized(err);
          assert.equal(err.data?.path, "auth.events");
          assert.equal(sub.events.length, 0);
        } finally {
          sub.unsubscribe();
        }
      });
    }
  }

  test("a revoked session's token cannot subscribe", async () => {
    const anon = makeClient(server.trpcUrl).trpc;
    const { token } = await register(anon, "dead");
    await makeClient(server.trpcUrl, { token, via: "header" }).trpc.auth.logout.mutate();
    const sub = new Subscriber(makeClient(server.trpcUrl, { token, via: "connectionParams" }).trpc);
    try {
      assertUnauthorized(await sub.failed());
    } finally {
      sub.unsubscribe();
    }
  });

  test("ADMIN users.setRole: role.changed, then session.revoked (roleChanged), then UNAUTHORIZED", async () => {
    const anon = makeClient(server.trpcUrl).trpc;
    const { token, user } = await register(anon, "role");
    const sessionId = await sessionIdOf(server.trpcUrl, token);
    const admin = await anon.auth.login.mutate({ email: ADMIN_EMAIL, password: ADMIN_PASSWORD });
    const adminClient = makeClient(server.trpcUrl, { token: admin.token, via: "header" }).trpc;
    const sub = new Subscriber(makeClient(server.trpcUrl, { token, via: "connectionParams" }).trpc);
    try {
      let changedAt = 0;
      const ms = await expectRevoked(sub, sessionId, "roleChanged", async () => {
        const t0 = performance.now();
        await adminClient.users.setRole.mutate({ id: user.id, role: "OPERATOR" });
        const changed = await sub.until("role.changed", () => sub.events.find((e) => e.data.type === "role.changed"));
        changedAt = changed.at - t0;
      });
      assert.deepEqual(
        sub.events.map((e) => e.data.type),
        ["role.changed", "session.revoked"],
        "role.changed comes first, then the session ends",
      );
      assert.deepEqual(sub.events[0]!.data, { type: "role.changed", role: "OPERATOR" });
      assert.ok(changedAt < 1000, `role.changed after ${changedAt.toFixed(0)} ms`);
      console.log(`    users.setRole -> role.changed: ${changedAt.toFixed(1)} ms, session.revoked: ${ms.toFixed(1)} ms`);
    } finally {
      sub.unsubscribe();
    }
  });
});

// ---------------------------------------------------------------- PostgreSQL

const PG_URL = process.env.GATEHOUSE_TEST_POSTGRES_URL;
const PG_SKIP = PG_URL
  ? false
  : "GATEHOUSE_TEST_POSTGRES_URL is not set (tests/run sets it); skipping the two-process PostgreSQL test";
if (!PG_URL && process.env.GATEHOUSE_REQUIRE_POSTGRES === "1") {
  throw new Error("GATEHOUSE_REQUIRE_POSTGRES=1 but GATEHOUSE_TEST_POSTGRES_URL is not set");
}

describe("auth.events across two gatehouse processes on one PostgreSQL", { skip: PG_SKIP }, () => {
  let a: Server | undefined;
  let b: Server | undefined;
  let dbName = "";
  before(async () => {
    const created = createPgDatabase(PG_URL!);
    dbName = created.name;
    const env = { DATABASE_URL: created.url, GATEHOUSE_SSE_PING_MS: "500" };
    a = await startServer(env); // migrates first
    b = await startServer(env);
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
    if (dbName) dropPgDatabase(PG_URL!, dbName);
  });

  test("subscribed on A, logout on B: session.revoked on A within 1 s, then UNAUTHORIZED", async () => {
    const { token } = await register(makeClient(b!.trpcUrl).trpc, "pg");
    const sessionId = await sessionIdOf(a!.trpcUrl, token);
    const sub = new Subscriber(makeClient(a!.trpcUrl, { token, via: "header" }).trpc);
    try {
      const onB = makeClient(b!.trpcUrl, { token, via: "header" }).trpc;
      const ms = await expectRevoked(sub, sessionId, "logout", () => onB.auth.logout.mutate());
      console.log(`    logout on B -> session.revoked on A: ${ms.toFixed(1)} ms`);
    } finally {
      sub.unsubscribe();
    }
  });

  test("subscribed on A, updateProfile on B: profile.updated on A; resume on B after A's last id", async () => {
    const { token } = await register(makeClient(a!.trpcUrl).trpc, "pg-resume");
    const onA = makeClient(a!.trpcUrl, { token, via: "header" }).trpc;
    const onB = makeClient(b!.trpcUrl, { token, via: "header" }).trpc;
    const sub = new Subscriber(onA);
    await sub.started();
    const t0 = performance.now();
    await onB.auth.updateProfile.mutate({ firstName: "FromB" });
    const got = await sub.until("profile.updated from B", () => sub.events[0]);
    assert.ok(got.at - t0 < 1000, `profile.updated after ${(got.at - t0).toFixed(0)} ms`);
    sub.unsubscribe();
    await onA.auth.updateProfile.mutate({ firstName: "Missed" });
    const resumed = new Subscriber(onB, { lastEventId: got.id });
    try {
      await resumed.until("the missed event, on the other instance", () => resumed.events.length >= 1);
      await sleep(300);
      assert.deepEqual(resumed.profileNames(), ["Missed"]);
    } finally {
      resumed.unsubscribe();
    }
  });
});

// ---------------------------------------------------------------- helpers

/** A JWT-shaped token with a signature the server never made. */
function forgedToken(): string {
  const part = (v: object) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  return `${part({ alg: "HS256", typ: "JWT" })}.${part({ sub: "u", sid: "s", jti: "j", role: "ADMIN", iat: now, exp: now + 600 })}.${Buffer.from("forged-signature").toString("base64url")}`;
}

/** A TCP relay in front of the server whose connections can be cut at once. */
async function startProxy(target: string) {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  let connections = 0;
  const relay = createServer((client) => {
    connections += 1;
    const upstream = connect(Number(port), hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {});
    }
    client.pipe(upstream).pipe(client);
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  await new Promise<void>((ok) => relay.listen(0, "127.0.0.1", ok));
  const address = relay.address();
  assert.ok(address && typeof address === "object");
  return {
    origin: `http://127.0.0.1:${address.port}`,
    get connections() {
      return connections;
    },
    cutAll() {
      for (const s of sockets) s.resetAndDestroy();
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((ok) => relay.close(ok));
    },
  };
}

function psql(): string {
  for (const dir of ["/usr/bin", "/usr/local/bin"]) if (existsSync(`${dir}/psql`)) return `${dir}/psql`;
  try {
    for (const v of readdirSync("/usr/lib/postgresql")) {
      const p = `/usr/lib/postgresql/${v}/bin/psql`;
      if (existsSync(p)) return p;
    }
  } catch {
    // no server packages
  }
  return "psql";
}

/** A fresh database on the test PostgreSQL (created with psql), and its URL. */
function createPgDatabase(adminUrl: string): { name: string; url: string } {
  const name = `gatehouse_events_e2e_${process.pid}_${Date.now()}`;
  execFileSync(psql(), [adminUrl, "-v", "ON_ERROR_STOP=1", "-qc", `CREATE DATABASE "${name}"`], { stdio: "pipe" });
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return { name, url: url.toString() };
}

function dropPgDatabase(adminUrl: string, name: string) {
  try {
    execFileSync(psql(), [adminUrl, "-qc", `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`], { stdio: "pipe" });
  } catch (e) {
    console.warn(`could not drop ${name}: ${String(e)}`);
  }
}
