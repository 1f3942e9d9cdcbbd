// The unmodified @trpc/client v11 (superjson) against the real gatehouse
// binary, once per link: httpLink, httpBatchLink, httpBatchStreamLink.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  createTRPCClient,
  httpBatchLink,
  httpBatchStreamLink,
  httpLink,
  TRPCClientError,
  type TRPCLink,
} from "@trpc/client";
import superjson from "superjson";

import type { AppRouter } from "../../bindings";
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

interface Recorded {
  method: string;
  url: URL;
}

/** A client whose bearer token can be swapped and whose requests are recorded. */
function makeClient(server: Server, linkName: LinkName) {
  const state: { token: string | null; requests: Recorded[] } = { token: null, requests: [] };
  const options = {
    url: server.trpcUrl,
    transformer: superjson,
    headers: () => (state.token ? { authorization: `Bearer ${state.token}` } : {}),
    fetch: (url: URL | RequestInfo, init?: RequestInit) => {
      state.requests.push({ method: init?.method ?? "GET", url: new URL(String(url)) });
      return fetch(url, init);
    },
  };
  const link: TRPCLink<AppRouter> =
    linkName === "httpLink"
      ? httpLink<AppRouter>(options)
      : linkName === "httpBatchLink"
        ? httpBatchLink<AppRouter>(options)
        : httpBatchStreamLink<AppRouter>(options);
  const trpc = createTRPCClient<AppRouter>({ links: [link] });
  return { trpc, state };
}

/** Awaits a call that must fail and returns its TRPCClientError. */
async function failure(promise: Promise<unknown>): Promise<TRPCClientError<AppRouter>> {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof TRPCClientError, `expected a TRPCClientError, got ${String(e)}`);
    return e as TRPCClientError<AppRouter>;
  }
  assert.fail("the call succeeded but should have failed");
}

async function expectCode(promise: Promise<unknown>, code: string, httpStatus: number) {
  const err = await failure(promise);
  assert.equal(err.data?.code, code, `code of: ${err.message}`);
  assert.equal(err.data?.httpStatus, httpStatus);
  return err;
}

type LinkName = "httpLink" | "httpBatchLink" | "httpBatchStreamLink";
const LINKS: LinkName[] = ["httpLink", "httpBatchLink", "httpBatchStreamLink"];

let server: Server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

for (const linkName of LINKS) {
  describe(`@trpc/client v11 ${linkName}`, () => {
    test("register, me, login: outputs have the documented shape", async () => {
      const { trpc, state } = makeClient(server, linkName);
      const email = freshEmail(linkName);
      const reg = await trpc.auth.register.mutate({
        email: `  ${email.toUpperCase()} `,
        password: PASSWORD,
        firstName: "Ada",
        lastName: "Lovelace",
      });
      assert.equal(typeof reg.token, "string");
      assert.equal(reg.expiresIn, 86400);
      assert.equal(reg.user.email, email, "email is trimmed and lower-cased");
      assert.equal(reg.user.role, "VIEWER");
      assert.equal(reg.user.firstName, "Ada");

      state.token = reg.token;
      const me = await trpc.auth.me.query();
      assert.equal(me.id, reg.user.id);
      assert.equal(me.email, email);
      assert.equal(me.phone, null);
      assert.ok(!Number.isNaN(Date.parse(me.createdAt)), "createdAt is RFC 3339");

      state.token = null;
      const login = await trpc.auth.login.mutate({ email, password: PASSWORD });
      assert.equal(login.user.id, reg.user.id);
      assert.equal(login.user.role, "VIEWER");
    });

    test("a username: set at registration, shown by me, and a way to log in", async () => {
      const { trpc, state } = makeClient(server, linkName);
      const email = freshEmail(linkName);
      const username = `u${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
      const reg = await trpc.auth.register.mutate({
        email,
        password: PASSWORD,
        firstName: "Ada",
        lastName: "Lovelace",
        username: username.toUpperCase(),
      });
      assert.equal("username" in reg.user, false, "the login/register user has no username");
      state.token = reg.token;
      const me = await trpc.auth.me.query();
      assert.equal(me.username, username, "stored lower-case");

      state.token = null;
      const login = await trpc.auth.login.mutate({ username: ` ${username.toUpperCase()}`, password: PASSWORD });
      assert.equal(login.user.id, reg.user.id);
      const wrong = await expectCode(
        trpc.auth.login.mutate({ username, password: "not-the-password" }),
        "UNAUTHORIZED",
        401,
      );
      assert.equal(wrong.message, "Invalid email or password");
      await expectCode(
        trpc.auth.register.mutate({
          email: freshEmail(linkName),
          password: PASSWORD,
          firstName: "B",
          lastName: "C",
          username,
        }),
        "CONFLICT",
        409,
      );
    });

    test("a query goes out as GET and a mutation as POST", async () => {
      const { trpc, state } = makeClient(server, linkName);
      const email = freshEmail(linkName);
      const reg = await trpc.auth.register.mutate({
        email,
        password: PASSWORD,
        firstName: "Grace",
        lastName: "Hopper",
        phone: "+1 555 0100",
      });
      state.token = reg.token;
      state.requests.length = 0;
      const me = await trpc.auth.me.query();
      assert.equal(me.phone, "+1 555 0100");
      await trpc.auth.logout.mutate();
      assert.equal(state.requests.length, 2);
      const [query, mutation] = state.requests;
      assert.equal(query!.method, "GET");
      assert.equal(query!.url.pathname, "/trpc/auth.me");
      assert.equal(mutation!.method, "POST");
      assert.equal(mutation!.url.pathname, "/trpc/auth.logout");
      if (linkName !== "httpLink") {
        assert.equal(query!.url.searchParams.get("batch"), "1");
      }
    });

    test("errors carry the tRPC code and HTTP status", async () => {
      const { trpc, state } = makeClient(server, linkName);
      const email = freshEmail(linkName);
      await trpc.auth.register.mutate({ email, password: PASSWORD, firstName: "A", lastName: "B" });

      const wrong = await expectCode(
        trpc.auth.login.mutate({ email, password: "not-the-password" }),
        "UNAUTHORIZED",
        401,
      );
      assert.equal(wrong.message, "Invalid email or password");
      const unknown = await expectCode(
        trpc.auth.login.mutate({ email: freshEmail("nobody"), password: PASSWORD }),
        "UNAUTHORIZED",
        401,
      );
      assert.equal(unknown.message, wrong.message, "unknown email and wrong password look alike");

      await expectCode(
        trpc.auth.register.mutate({ email, password: PASSWORD, firstName: "A", lastName: "B" }),
        "CONFLICT",
        409,
      );
      const invalid = await expectCode(
        trpc.auth.register.mutate({ email: "not-an-email", password: PASSWORD, firstName: "A", lastName: "B" }),
        "BAD_REQUEST",
        400,
      );
      assert.equal(invalid.data?.path, "auth.register");
      // Each failing field is an issue (typed through AppErrorShape).
      const issues = invalid.data?.issues ?? [];
      assert.ok(
        issues.some((i) => i.path.join(".") === "email" && i.message.length > 0),
        `issues: ${JSON.stringify(issues)}`,
      );
      const weak = await expectCode(
        trpc.auth.register.mutate({ email: freshEmail("weak"), password: "short", firstName: "", lastName: "B" }),
        "BAD_REQUEST",
        400,
      );
      const weakFields = (weak.data?.issues ?? []).map((i) => i.path.join(".")).sort();
      assert.deepEqual(weakFields, ["firstName", "password"], JSON.stringify(weak.data?.issues));

      await expectCode(trpc.auth.me.query(), "UNAUTHORIZED", 401);
      state.token = "not.a.jwt";
      await expectCode(trpc.auth.me.query(), "UNAUTHORIZED", 401);
    });

    test("a batch with mixed results resolves each call on its own", async () => {
      const { trpc, state } = makeClient(server, linkName);
      const email = freshEmail(linkName);
      const reg = await trpc.auth.register.mutate({ email, password: PASSWORD, firstName: "M", lastName: "X" });
      state.token = reg.token;
      state.requests.length = 0;
      const [me, list, sessions] = await Promise.allSettled([
        trpc.auth.me.query(),
        trpc.users.list.query({}),
        trpc.auth.sessions.query(),
      ]);
      assert.equal(me.status, "fulfilled");
      assert.equal(me.status === "fulfilled" && me.value.email, email);
      assert.equal(list.status, "rejected");
      const err = (list as PromiseRejectedResult).reason;
      assert.ok(err instanceof TRPCClientError);
      assert.equal(err.data?.code, "FORBIDDEN");
      assert.equal(err.data?.httpStatus, 403);
      assert.equal(sessions.status, "fulfilled");
      if (sessions.status === "fulfilled") {
        assert.equal(sessions.value.filter((s) => s.current).length, 1);
      }
      if (linkName === "httpLink") {
        assert.equal(state.requests.length, 3);
      } else {
        assert.equal(state.requests.length, 1, "the three queries share one request");
        const only = state.requests[0]!;
        assert.equal(only.method, "GET");
        assert.equal(only.url.pathname, "/trpc/auth.me,users.list,auth.sessions");
        assert.equal(only.url.searchParams.get("batch"), "1");
      }
    });

    test("refresh rotates the token; logout revokes it", async () => {
      const { trpc, state } = makeClient(server, linkName);
      const email = freshEmail(linkName);
      const login = await trpc.auth.register.mutate({ email, password: PASSWORD, firstName: "R", lastName: "F" });
      state.token = login.token;
      const refreshed = await trpc.auth.refreshToken.mutate();
      assert.notEqual(refreshed.token, login.token);
      assert.equal(refreshed.user.email, email);
      state.token = refreshed.token;
      assert.equal((await trpc.auth.me.query()).email, email);
      const out = await trpc.auth.logout.mutate();
      assert.equal(out.success, true);
      await expectCode(trpc.auth.me.query(), "UNAUTHORIZED", 401);
      // Logging out without a token still succeeds.
      state.token = null;
      assert.deepEqual(await trpc.auth.logout.mutate(), { success: true });
    });

    test("password reset through the outbox mail", async () => {
      const { trpc, state } = makeClient(server, linkName);
      const email = freshEmail(linkName);
      const reg = await trpc.auth.register.mutate({ email, password: PASSWORD, firstName: "P", lastName: "W" });
      assert.deepEqual(await trpc.auth.requestPasswordReset.mutate({ email }), { success: true });
      // Same answer for an unknown address.
      assert.deepEqual(
        await trpc.auth.requestPasswordReset.mutate({ email: freshEmail("ghost") }),
        { success: true },
      );
      const token = await resetTokenFor(server.outboxDir, email);
      await expectCode(
        trpc.auth.resetPassword.mutate({ email, token: `${token}x`, password: NEW_PASSWORD }),
        "BAD_REQUEST",
        400,
      );
      assert.deepEqual(
        await trpc.auth.resetPassword.mutate({ email, token, password: NEW_PASSWORD }),
        { success: true },
      );
      // The old session is gone, the old password too, the token is single-use.
      state.token = reg.token;
      await expectCode(trpc.auth.me.query(), "UNAUTHORIZED", 401);
      state.token = null;
      await expectCode(trpc.auth.login.mutate({ email, password: PASSWORD }), "UNAUTHORIZED", 401);
      await expectCode(
        trpc.auth.resetPassword.mutate({ email, token, password: PASSWORD }),
        "BAD_REQUEST",
        400,
      );
      const login = await trpc.auth.login.mutate({ email, password: NEW_PASSWORD });
      assert.equal(login.user.email, email);
    });

    test("roles: a VIEWER is refused users.list, the ADMIN gets it", async () => {
      const { trpc, state } = makeClient(server, linkName);
      const email = freshEmail(linkName);
      const viewer = await trpc.auth.register.mutate({ email, password: PASSWORD, firstName: "V", lastName: "W" });
      state.token = viewer.token;
      await expectCode(trpc.users.list.query({}), "FORBIDDEN", 403);

      state.token = null;
      const admin = await trpc.auth.login.mutate({ email: ADMIN_EMAIL, password: ADMIN_PASSWORD });
      assert.equal(admin.user.role, "ADMIN");
      state.token = admin.token;
      const page = await trpc.users.list.query({ search: email, pageSize: 5 });
      assert.equal(page.total, 1);
      assert.equal(page.items.length, 1);
      assert.equal(page.items[0]!.email, email);
      assert.equal(page.pageSize, 5);
      const all = await trpc.users.list.query({ role: "ADMIN" });
      assert.ok(all.items.some((u) => u.email === ADMIN_EMAIL));
      assert.ok(all.items.every((u) => u.role === "ADMIN"));
      // The input may be left out (typed `ListUsersInput | undefined`): all defaults.
      const defaults = await trpc.users.list.query();
      assert.equal(defaults.page, 1);
      assert.equal(defaults.pageSize, 20);
    });
  });
}
