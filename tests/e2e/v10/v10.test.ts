// The tRPC v10 client (10.45, superjson 1.x on the client as v10 apps used
// it) against the gatehouse binary: httpLink and httpBatchLink.
// The v10 client cannot use the v11 AppRouter type, so calls go through an
// untyped proxy; the wire behaviour is what is under test here.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { createTRPCProxyClient, httpBatchLink, httpLink, TRPCClientError } from "@trpc/client";
import superjson from "superjson";

import {
  ADMIN_EMAIL,
  ADMIN_PASSWORD,
  freshEmail,
  NEW_PASSWORD,
  PASSWORD,
  resetTokenFor,
  startServer,
  type Server,
} from "../server.ts";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Untyped = any;

function makeClient(server: Server, linkName: "httpLink" | "httpBatchLink") {
  const state: { token: string | null; methods: string[]; paths: string[] } = {
    token: null,
    methods: [],
    paths: [],
  };
  const options = {
    url: server.trpcUrl,
    headers: () => (state.token ? { authorization: `Bearer ${state.token}` } : {}),
    fetch: (url: Untyped, init: Untyped) => {
      state.methods.push(init?.method ?? "GET");
      state.paths.push(new URL(String(url)).pathname);
      return fetch(url, init);
    },
  };
  const link = linkName === "httpLink" ? httpLink(options) : httpBatchLink(options);
  const trpc: Untyped = createTRPCProxyClient<Untyped>({ transformer: superjson, links: [link] });
  return { trpc, state };
}

async function expectCode(promise: Promise<unknown>, code: string, httpStatus: number) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof TRPCClientError, `expected a TRPCClientError, got ${String(e)}`);
    const data = (e as Untyped).data;
    assert.equal(data?.code, code, `code of: ${(e as Error).message}`);
    assert.equal(data?.httpStatus, httpStatus);
    return;
  }
  assert.fail("the call succeeded but should have failed");
}

let server: Server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

for (const linkName of ["httpLink", "httpBatchLink"] as const) {
  describe(`@trpc/client v10 ${linkName}`, () => {
    test("register, me, refresh, logout, then me is refused", async () => {
      const { trpc, state } = makeClient(server, linkName);
      const email = freshEmail(`v10-${linkName}`);
      const reg = await trpc.auth.register.mutate({ email, password: PASSWORD, firstName: "T", lastName: "V" });
      assert.equal(reg.user.email, email);
      assert.equal(reg.user.role, "VIEWER");
      assert.equal(reg.expiresIn, 86400);
      state.token = reg.token;
      state.methods.length = 0;
      const me = await trpc.auth.me.query();
      assert.equal(me.email, email);
      assert.deepEqual(state.methods, ["GET"]);
      const refreshed = await trpc.auth.refreshToken.mutate();
      assert.notEqual(refreshed.token, reg.token);
      assert.equal(state.methods[1], "POST");
      state.token = refreshed.token;
      assert.deepEqual(await trpc.auth.logout.mutate(), { success: true });
      await expectCode(trpc.auth.me.query(), "UNAUTHORIZED", 401);
      state.token = null;
      await expectCode(trpc.auth.login.mutate({ email, password: "wrong-password" }), "UNAUTHORIZED", 401);
      await expectCode(
        trpc.auth.register.mutate({ email, password: PASSWORD, firstName: "T", lastName: "V" }),
        "CONFLICT",
        409,
      );
    });

    test("a batch with mixed results", async () => {
      const { trpc, state } = makeClient(server, linkName);
      const email = freshEmail(`v10-${linkName}`);
      const reg = await trpc.auth.register.mutate({ email, password: PASSWORD, firstName: "B", lastName: "M" });
      state.token = reg.token;
      state.paths.length = 0;
      const [me, list] = await Promise.allSettled([trpc.auth.me.query(), trpc.users.list.query({})]);
      assert.equal(me.status, "fulfilled");
      assert.equal(list.status, "rejected");
      assert.equal(((list as PromiseRejectedResult).reason as Untyped).data?.code, "FORBIDDEN");
      if (linkName === "httpBatchLink") {
        assert.deepEqual(state.paths, ["/trpc/auth.me,users.list"]);
      }
    });

    test("password reset, and the ADMIN lists users", async () => {
      const { trpc, state } = makeClient(server, linkName);
      const email = freshEmail(`v10-${linkName}`);
      await trpc.auth.register.mutate({ email, password: PASSWORD, firstName: "R", lastName: "P" });
      assert.deepEqual(await trpc.auth.requestPasswordReset.mutate({ email }), { success: true });
      const token = await resetTokenFor(server.outboxDir, email);
      assert.deepEqual(
        await trpc.auth.resetPassword.mutate({ email, token, password: NEW_PASSWORD }),
        { success: true },
      );
      await trpc.auth.login.mutate({ email, password: NEW_PASSWORD });

      const admin = await trpc.auth.login.mutate({ email: ADMIN_EMAIL, password: ADMIN_PASSWORD });
      state.token = admin.token;
      const page = await trpc.users.list.query({ search: email });
      assert.equal(page.total, 1);
      assert.equal(page.items[0].email, email);
    });
  });
}
