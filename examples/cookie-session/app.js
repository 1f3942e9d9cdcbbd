// Cookie mode with plain fetch against the tRPC endpoint (the same works
// with @trpc/client: give httpLink a `fetch` that adds
// `credentials: "include"` and the `x-gatehouse-session: cookie` header).
const api = new URL(location.href).searchParams.get("api") ?? "http://localhost:4000";
const status = document.getElementById("status");
const log = document.getElementById("log");

/** One tRPC call; the cookie goes along because of `credentials: "include"`. */
async function call(kind, path, input) {
  const init = {
    credentials: "include",
    headers: { "x-gatehouse-session": "cookie" },
  };
  let url = `${api}/trpc/${path}`;
  if (kind === "query") {
    url += `?input=${encodeURIComponent(JSON.stringify({ json: input ?? null }))}`;
  } else {
    init.method = "POST";
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify({ json: input ?? null });
  }
  const response = await fetch(url, init);
  const body = await response.json();
  if (body.error) throw new Error(`${body.error.json.data.code}: ${body.error.json.message}`);
  return body.result.data.json;
}

async function refreshStatus() {
  try {
    const me = await call("query", "auth.me");
    status.textContent = `Signed in as ${me.email} (${me.firstName} ${me.lastName})`;
  } catch (e) {
    status.textContent = `Signed out (${e.message})`;
  }
}

document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  try {
    const answer = await call("mutation", "auth.login", {
      email: form.get("email"),
      password: form.get("password"),
    });
    log.textContent = `auth.login answered token=${JSON.stringify(answer.token)}, expiresIn=${answer.expiresIn}`;
  } catch (e) {
    log.textContent = `login failed: ${e.message}`;
  }
  await refreshStatus();
});

document.getElementById("rename").addEventListener("click", async () => {
  try {
    await call("mutation", "auth.updateProfile", { firstName: "Cookie" });
    log.textContent = "renamed";
  } catch (e) {
    log.textContent = `rename failed: ${e.message}`;
  }
  await refreshStatus();
});

document.getElementById("logout").addEventListener("click", async () => {
  await call("mutation", "auth.logout");
  log.textContent = "signed out";
  await refreshStatus();
});

refreshStatus();
