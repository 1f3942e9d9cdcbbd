// Shared by the browser tests (examples/react-events, examples/cookie-session,
// tests/docs-page): the gatehouse binary on a fresh SQLite database, and a
// bounded run that always cleans up. Plain Node, no dependencies, so any package can import it.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** $GATEHOUSE_BIN, or the debug build of this checkout. */
export const GATEHOUSE_BIN = process.env.GATEHOUSE_BIN ?? join(repo, "target", "debug", "gatehouse");

/**
 * Starts the binary at a free port of 127.0.0.1 on a new SQLite database in a
 * temp dir (`name` names it), with `env` added, and resolves once it printed
 * where it listens. `stop()` ends it (SIGTERM, then SIGKILL after 5 s) and
 * removes the dir.
 */
export async function startGatehouse(name, env = {}) {
  const dir = mkdtempSync(join(tmpdir(), `gatehouse-${name}-db-`));
  const child = spawn(GATEHOUSE_BIN, [], {
    cwd: dir,
    env: {
      ...process.env,
      GATEHOUSE_ADDR: "127.0.0.1:0",
      DATABASE_URL: `sqlite://${join(dir, "gatehouse.db")}`,
      JWT_SECRET: `${name}-secret-`.repeat(4),
      BCRYPT_COST: "4",
      GATEHOUSE_OUTBOX_DIR: join(dir, "outbox"),
      RUST_LOG: process.env.RUST_LOG ?? "warn",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (chunk) => {
    stderr = (stderr + chunk).slice(-20_000);
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((ok) => child.once("exit", ok));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const origin = await new Promise((ok, fail) => {
      const timer = setTimeout(() => fail(new Error(`gatehouse did not start in 20 s:\n${stderr}`)), 20_000);
      createInterface({ input: child.stdout }).on("line", (line) => {
        const m = /^gatehouse listening on (http:\/\/\S+)$/.exec(line.trim());
        if (m) {
          clearTimeout(timer);
          ok(m[1].replace(/\/$/, ""));
        }
      });
      child.on("error", (e) => fail(new Error(`cannot start ${GATEHOUSE_BIN}: ${e.message}`)));
      child.on("exit", (code) => fail(new Error(`gatehouse exited with ${code}:\n${stderr}`)));
    });
    return { origin, stderr: () => stderr, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/**
 * Runs `main(cleanups)` within `limitMs`: past it, or when `main` throws, the
 * functions pushed on `cleanups` run (last first) and the process fails.
 */
export async function runBounded(name, limitMs, main) {
  const cleanups = [];
  const cleanup = async () => {
    while (cleanups.length) {
      try {
        await cleanups.pop()();
      } catch (e) {
        console.error(`cleanup: ${e}`);
      }
    }
  };
  const watchdog = setTimeout(async () => {
    console.error(`${name}: over ${limitMs / 1000} s, giving up`);
    await cleanup();
    process.exit(1);
  }, limitMs);
  try {
    await main(cleanups);
  } catch (e) {
    console.error(e);
    process.exitCode = 1;
  }
  await cleanup();
  clearTimeout(watchdog);
}

/**
 * Serves `files` (path → [content type, body]; `/` is `/index.html`) on
 * 127.0.0.1 at a free port, which it returns; closed by `cleanups`.
 */
export async function serveFiles(files, cleanups) {
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    const file = files[path === "/" ? "/index.html" : path];
    if (file) {
      res.writeHead(200, { "content-type": file[0] }).end(file[1]);
    } else {
      res.writeHead(404).end("not found");
    }
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  cleanups.push(
    () =>
      new Promise((ok) => {
        server.close(ok);
        server.closeAllConnections();
      }),
  );
  return server.address().port;
}
