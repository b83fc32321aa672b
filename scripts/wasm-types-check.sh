#!/usr/bin/env bash
# Check the browser package's TypeScript declarations and README:
#   1. wasm-client/pkg/garou_wasm_client.d.ts compiles under `tsc --strict` WITHOUT
#      skipLibCheck, with lib ES2023 + DOM (what a strict TypeScript app uses), together
#      with a small program that uses the API (listeners by type, typed errors, options);
#   2. scripts/wasm-api-check.mjs: the README's API block and the .d.ts agree.
# Installs TypeScript once under tools/ts/ (npm, like binaryen in build-wasm.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
TS_VERSION=5.9.3
TSC=tools/ts/node_modules/.bin/tsc
command -v npm >/dev/null 2>&1 || { source scripts/lib.sh; apt_need nodejs npm; }
if ! { [ -x "$TSC" ] && grep -q "\"version\": \"$TS_VERSION\"" tools/ts/node_modules/typescript/package.json 2>/dev/null; }; then
  mkdir -p tools/ts
  npm install --prefix tools/ts --no-save --no-package-lock --no-audit --no-fund "typescript@$TS_VERSION"
fi

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cp wasm-client/pkg/*.d.ts "$dir/"
cat > "$dir/use.ts" <<'TS'
import init, { GarouClient, GarouError, type GarouErrorCode, type GarouEvent, type ConnectOptions } from "./garou_wasm_client";

export async function demo(): Promise<string> {
  await init();
  const options: ConnectOptions = { url: "http://127.0.0.1:8080", urls: ["http://127.0.0.1:8081"], nick: "ann",
    reconnect: true, certHashUrl: "http://127.0.0.1:8080/cert-hash", deadAfterMs: 3000, maxQueue: 10 };
  const c: GarouClient = await GarouClient.connect(options);
  c.on((ev: GarouEvent) => console.log(ev.type));
  c.on("message", (ev) => console.log(ev.room, ev.offset, ev.text.length));
  c.on("member_updated", (ev) => console.log(ev.role));
  c.once("reconnecting", (ev) => console.log(ev.attempt, ev.delayMs, ev.lastError.code));
  const onLost = (ev: { type: "disconnected"; reason: { code: GarouErrorCode }; willReconnect: boolean }) => console.log(ev.reason.code);
  c.on("disconnected", onLost);
  c.off("disconnected", onLost);
  const state: "connecting" | "connected" | "reconnecting" | "closed" = c.state;
  try {
    const sent = await c.send("general", "hi");
    return `${state} ${sent.id} ${c.queued} ${c.url}`;
  } catch (e) {
    if (e instanceof GarouError) {
      const code: GarouErrorCode = e.code;
      return `${code}: ${e.reason}`;
    }
    throw e;
  } finally {
    c.close();
    c.free();
  }
}
TS
"$TSC" --strict --noEmit --lib ES2023,DOM --target ES2022 --module ES2022 --moduleResolution bundler \
  "$dir/use.ts" "$dir/garou_wasm_client.d.ts" "$dir/garou_wasm_client_bg.wasm.d.ts"
echo "wasm package: garou_wasm_client.d.ts compiles under tsc --strict (lib ES2023, DOM; no skipLibCheck)"
node scripts/wasm-api-check.mjs
