// `npm run build` (vite build) bundles this app into dist/; `npx vite` serves it for
// development. The package ships its own .wasm, which Vite's dependency pre-bundling would
// separate from its loader: leave it out of pre-bundling.
import { defineConfig } from "vite";

export default defineConfig({
  optimizeDeps: { exclude: ["garou-wasm-client"] },
  build: { target: "es2022" },
});
