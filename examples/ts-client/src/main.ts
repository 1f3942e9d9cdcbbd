// A typed Gatehouse client: the unmodified @trpc/client v11 with superjson
// and the generated AppRouter type. Run against a server:
//   GATEHOUSE_URL=http://127.0.0.1:3000 npm start
import { createTRPCClient, httpBatchLink, TRPCClientError } from "@trpc/client";
import superjson from "superjson";

import type { AppRouter } from "@gatehouse/bindings";

const baseUrl = process.env.GATEHOUSE_URL ?? "http://127.0.0.1:3000";
let token: string | null = null;

const trpc = createTRPCClient<AppRouter>({
  links: [
    httpBatchLink({
      url: `${baseUrl}/trpc`,
      transformer: superjson,
      headers: () => (token ? { authorization: `Bearer ${token}` } : {}),
    }),
  ],
});

async function main(): Promise<void> {
  const email = `ts-client-${Date.now()}@example.com`;
  const password = "Correct-Horse-Battery-9";

  const registered = await trpc.auth.register.mutate({
    email,
    password,
    firstName: "Ada",
    lastName: "Lovelace",
  });
  console.log(`registered ${registered.user.email} as ${registered.user.role}`);

  const session = await trpc.auth.login.mutate({ email, password });
  // Signing in by username works the same way (this account has none).
  const byName: Parameters<typeof trpc.auth.login.mutate>[0] = { username: "ada", password };
  void byName;
  token = session.token;
  console.log(`logged in; the token expires in ${session.expiresIn} s`);

  const me = await trpc.auth.me.query();
  console.log(`auth.me: ${me.firstName} ${me.lastName} <${me.email}>, created ${me.createdAt}`);

  const refreshed = await trpc.auth.refreshToken.mutate();
  token = refreshed.token;
  console.log("refreshed the token");

  const out = await trpc.auth.logout.mutate();
  console.log(`logged out: ${out.success}`);

  try {
    await trpc.auth.me.query();
    throw new Error("auth.me still worked after logout");
  } catch (e) {
    if (!(e instanceof TRPCClientError) || e.data?.code !== "UNAUTHORIZED") throw e;
    console.log(`after logout auth.me fails: ${e.data.code} (${e.data.httpStatus})`);
  }
}

// Mistakes the compiler catches (each line must stay an error, or tsc fails):
export async function typeErrors(): Promise<void> {
  // @ts-expect-error misspelt input field (`emial`)
  await trpc.auth.login.mutate({ emial: "a@example.com", password: "x" });
  // @ts-expect-error missing required field (`password`)
  await trpc.auth.login.mutate({ email: "a@example.com" });
  // @ts-expect-error misspelt identifier (`user` is neither `email` nor `username`)
  await trpc.auth.login.mutate({ user: "ada", password: "x" });
  // @ts-expect-error both identifiers at once (exactly one of `email`, `username`)
  await trpc.auth.login.mutate({ email: "a@example.com", username: "ada", password: "x" });
  const me = await trpc.auth.me.query();
  // @ts-expect-error wrong output property (`nickname` does not exist)
  console.log(me.nickname);
  // @ts-expect-error calling a query as a mutation
  await trpc.auth.me.mutate();
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
