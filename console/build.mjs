// Builds the console's script into crates/console/assets/console.js (embedded in the phat
// binary with the page and style from src/): bundled with the SDK by esbuild. `--check`
// builds in memory and fails when the committed script differs (`npm run build` refreshes it).
import { build } from "esbuild";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "../crates/console/assets");
const check = process.argv.includes("--check");

const bundled = await build({
  entryPoints: [join(here, "src/main.ts")],
  bundle: true,
  minify: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  legalComments: "none",
  write: false,
  logLevel: "error",
});
// index.html and console.css are embedded from src/ as they are (crates/console/src/lib.rs).
const files = {
  "console.js": Buffer.from(bundled.outputFiles[0].contents),
};

let stale = [];
for (const [name, bytes] of Object.entries(files)) {
  const path = join(out, name);
  if (check) {
    let committed;
    try {
      committed = readFileSync(path);
    } catch {
      committed = Buffer.alloc(0);
    }
    if (!committed.equals(bytes)) stale.push(name);
  } else {
    writeFileSync(path, bytes);
    console.log(`${path}: ${bytes.length} bytes`);
  }
}
if (stale.length) {
  console.error(`crates/console/assets is stale (${stale.join(", ")}): run \`npm run build\` in console/ and commit`);
  process.exit(1);
}
