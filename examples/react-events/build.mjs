// Bundles src/main.tsx for the browser with esbuild.
//   node build.mjs            writes dist/app.js (and dist/index.html)
//   import { bundle } from "./build.mjs"   the bundle's text, in memory
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));

const options = {
  entryPoints: [join(here, "src", "main.tsx")],
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  jsx: "automatic",
  minify: true,
  sourcemap: false,
  define: { "process.env.NODE_ENV": '"production"' },
  logLevel: "warning",
};

/** The browser bundle as a string. */
export async function bundle() {
  const result = await esbuild.build({ ...options, write: false, outfile: "app.js" });
  return result.outputFiles[0].text;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = join(here, "dist");
  mkdirSync(out, { recursive: true });
  await esbuild.build({ ...options, outfile: join(out, "app.js") });
  copyFileSync(join(here, "index.html"), join(out, "index.html"));
  console.log(`wrote ${out}/app.js and index.html`);
}
