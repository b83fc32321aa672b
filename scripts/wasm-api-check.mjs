#!/usr/bin/env node
// The browser package's README and its TypeScript declarations must agree.
//
//   node scripts/wasm-api-check.mjs [README] [D_TS]
//     (default wasm-client/README.md and wasm-client/pkg/garou_wasm_client.d.ts)
//
// Compares, both ways: the members of `GarouClient` (methods, getters, `on`/`once`/`off`)
// listed in the README's `## API` block with those the .d.ts declares (its class and the
// interface merged into it); the event `type`s of `GarouEvent`; the fields of
// `ConnectOptions`; the codes of `GarouErrorCode`. Prints every difference and exits 1 if
// there is one. Node only, no dependencies.
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const readmePath = process.argv[2] || path.join(root, "wasm-client/README.md");
const dtsPath = process.argv[3] || path.join(root, "wasm-client/pkg/garou_wasm_client.d.ts");
const readme = readFileSync(readmePath, "utf8");
const dts = readFileSync(dtsPath, "utf8");

/** The text of the block opened by the first line matching `head` (to its closing brace). */
function block(text, head, what) {
  const m = head.exec(text);
  if (!m) throw new Error(`${what}: no ${head}`);
  let depth = 0;
  for (let i = text.indexOf("{", m.index); i < text.length; i++) {
    if (text[i] === "{") depth++;
    else if (text[i] === "}" && --depth === 0) return text.slice(m.index, i + 1);
  }
  throw new Error(`${what}: unclosed ${head}`);
}

/** Member names declared directly in a `{ ... }` block (one per line, nested blocks skipped). */
function members(body) {
  const names = new Set();
  let depth = 0;
  for (const line of body.split("\n")) {
    if (depth === 1) {
      const m = /^\s*(?:static\s+)?(?:readonly\s+)?(?:get\s+|set\s+)?([A-Za-z_$][\w$]*)\??\s*[(<:]/.exec(line);
      if (m && m[1] !== "constructor") names.add(m[1]);
    }
    for (const c of line.replace(/\/\/.*$/, "").replace(/\/\*.*?\*\//g, "")) {
      if (c === "{") depth++;
      else if (c === "}") depth--;
    }
  }
  return names;
}

/** The string literals of `type: "a" | "b"` in a union. */
function eventTypes(text) {
  const out = new Set();
  for (const m of text.matchAll(/type:\s*((?:"[a-z_]+"\s*\|\s*)*"[a-z_]+")/g)) {
    for (const t of m[1].matchAll(/"([a-z_]+)"/g)) out.add(t[1]);
  }
  return out;
}

/** The text of `type GarouEvent = ...;`. */
function unionText(text, what) {
  const start = text.indexOf("type GarouEvent =");
  if (start < 0) throw new Error(`${what}: no type GarouEvent`);
  return text.slice(start, text.indexOf(";\n", start));
}

function union(text, name, what) {
  const m = new RegExp(`type ${name}\\s*=([^;]*);`).exec(text);
  if (!m) throw new Error(`${what}: no type ${name}`);
  return new Set([...m[1].matchAll(/"([A-Za-z_]+)"/g)].map((x) => x[1]));
}

const api = (() => {
  const start = readme.indexOf("\n## API");
  if (start < 0) throw new Error(`${readmePath}: no "## API" section`);
  const end = readme.indexOf("\n## ", start + 1);
  return readme.slice(start, end < 0 ? undefined : end);
})();

const checks = [
  [
    "GarouClient members",
    members(block(api, /class GarouClient\s*\{/, "README")),
    new Set([
      ...members(block(dts, /export class GarouClient\s*\{/, ".d.ts")),
      ...members(block(dts, /export interface GarouClient\s*\{/, ".d.ts")),
    ]),
  ],
  ["GarouEvent types", eventTypes(unionText(api, "README")), eventTypes(unionText(dts, ".d.ts"))],
  ["ConnectOptions fields", members(block(api, /interface ConnectOptions\s*\{/, "README")), members(block(dts, /export interface ConnectOptions\s*\{/, ".d.ts"))],
  ["GarouErrorCode codes", union(api, "GarouErrorCode", "README"), union(dts, "GarouErrorCode", ".d.ts")],
];

let bad = 0;
for (const [what, doc, decl] of checks) {
  const onlyDoc = [...doc].filter((x) => !decl.has(x)).sort();
  const onlyDecl = [...decl].filter((x) => !doc.has(x)).sort();
  if (onlyDoc.length) console.error(`${what}: in the README but not in the .d.ts: ${onlyDoc.join(", ")}`);
  if (onlyDecl.length) console.error(`${what}: in the .d.ts but not in the README: ${onlyDecl.join(", ")}`);
  if (onlyDoc.length || onlyDecl.length) bad++;
  else console.log(`${what}: ${doc.size} agree`);
}
if (bad) {
  console.error(`error: ${path.relative(root, readmePath)} and ${path.relative(root, dtsPath)} disagree (${bad} of ${checks.length} checks)`);
  process.exit(1);
}
