// A React page that signs in through a mutation and listens to
// `auth.events` with @trpc/tanstack-react-query's useSubscription: the
// browser's own EventSource (httpSubscriptionLink) carries the token in
// `connectionParams`, since EventSource cannot set headers. When the
// session is revoked elsewhere, the page signs out.
//
// The API's URL comes from `?api=` (default: this origin's /trpc).
import { QueryClient, QueryClientProvider, skipToken, useMutation, useQuery } from "@tanstack/react-query";
import { createTRPCClient, httpBatchLink, httpSubscriptionLink, splitLink, TRPCClientError } from "@trpc/client";
import { createTRPCContext, useSubscription } from "@trpc/tanstack-react-query";
import { type FormEvent, StrictMode, useState } from "react";
import { createRoot } from "react-dom/client";
import superjson from "superjson";

import type { AccountEvent, AppRouter } from "@gatehouse/bindings";

const api = new URLSearchParams(location.search).get("api") ?? `${location.origin}/trpc`;

/** The bearer token of the signed-in session; read by both links on every request. */
let token: string | null = null;

const trpcClient = createTRPCClient<AppRouter>({
  links: [
    splitLink({
      condition: (op) => op.type === "subscription",
      true: httpSubscriptionLink({
        url: api,
        transformer: superjson,
        connectionParams: async () => (token ? { token } : null),
      }),
      false: httpBatchLink({
        url: api,
        transformer: superjson,
        headers: () => (token ? { authorization: `Bearer ${token}` } : {}),
      }),
    }),
  ],
});

const { TRPCProvider, useTRPC } = createTRPCContext<AppRouter>();

type Session = { email: string; token: string };

function describeEvent(data: AccountEvent): string {
  switch (data.type) {
    case "session.revoked":
      return `session ${data.sessionId.slice(0, 8)}… revoked (${data.reason})`;
    case "role.changed":
      return `role changed to ${data.role}`;
    case "profile.updated":
      return `profile updated: ${data.user.firstName} ${data.user.lastName}`;
  }
}

function App() {
  const trpc = useTRPC();
  const [session, setSession] = useState<Session | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [log, setLog] = useState<string[]>([]);

  const signOut = (why: string) => {
    token = null;
    setSession(null);
    setNotice(why);
  };

  const login = useMutation(
    trpc.auth.login.mutationOptions({
      onSuccess(payload) {
        token = payload.token;
        setNotice(null);
        setLog([]);
        setSession({ email: payload.user.email, token: payload.token });
      },
    }),
  );

  // Which session is ours, to tell its revocation from a sibling's.
  const sessions = useQuery(trpc.auth.sessions.queryOptions(session ? undefined : skipToken));
  const mySessionId = sessions.data?.find((s) => s.current)?.id;

  const events = useSubscription(
    trpc.auth.events.subscriptionOptions(session ? undefined : skipToken, {
      onData({ data }) {
        setLog((lines) => [...lines, describeEvent(data)]);
        if (data.type === "session.revoked" && data.sessionId === mySessionId) {
          signOut(`Session revoked: signed out (${data.reason})`);
        }
      },
      onError(err) {
        // The stream ends with UNAUTHORIZED right after our session.revoked;
        // on its own (e.g. the event was missed) it means the same.
        if (token && err instanceof TRPCClientError && err.data?.code === "UNAUTHORIZED") {
          signOut("Session revoked: signed out");
        }
      },
    }),
  );

  const onSubmit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    login.mutate({ email: String(form.get("email")), password: String(form.get("password")) });
  };

  return (
    <main>
      <h1>Gatehouse account events</h1>
      {notice && (
        <p className="notice" role="alert" data-testid="notice">
          {notice}
        </p>
      )}
      {session ? (
        <section className="card">
          <p data-testid="signed-in">Signed in as {session.email}</p>
          <p className="muted" data-testid="stream">
            {events.status === "pending"
              ? "Listening for account events (live)"
              : events.status === "connecting"
                ? "Connecting to account events…"
                : `Account events: ${events.status}`}
          </p>
          <p className="muted">Session {mySessionId ? `${mySessionId.slice(0, 8)}…` : "…"}</p>
          <ul data-testid="log">
            {log.map((line, i) => (
              <li key={i}>{line}</li>
            ))}
          </ul>
        </section>
      ) : (
        <form className="card" onSubmit={onSubmit}>
          <label>
            Email <input name="email" type="email" autoComplete="username" required />
          </label>
          <label>
            Password <input name="password" type="password" autoComplete="current-password" required />
          </label>
          <button type="submit" disabled={login.isPending}>
            {login.isPending ? "Signing in…" : "Sign in"}
          </button>
          {login.error && (
            <p className="error" data-testid="login-error">
              {login.error.message}
            </p>
          )}
        </form>
      )}
    </main>
  );
}

const queryClient = new QueryClient({ defaultOptions: { queries: { retry: false } } });

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <QueryClientProvider client={queryClient}>
      <TRPCProvider trpcClient={trpcClient} queryClient={queryClient}>
        <App />
      </TRPCProvider>
    </QueryClientProvider>
  </StrictMode>,
);
