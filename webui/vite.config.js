// Builds the chat UI into the Python package (llamaserve/webui_dist), which serves it at `/`.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// `npm run dev` proxies the API to a llamaserve started separately on this address.
const target = process.env.LLAMASERVE_URL || 'http://127.0.0.1:8080';
const apiPaths = ['/v1', '/props', '/slots', '/models', '/health'];

// The minified bundle drops license headers: ship the licenses of every bundled package beside it.
function thirdPartyLicenses() {
  return {
    name: 'third-party-licenses',
    apply: 'build',
    generateBundle(_options, bundle) {
      const dirs = new Set();
      for (const chunk of Object.values(bundle)) {
        if (chunk.type !== 'chunk') continue;
        for (const id of Object.keys(chunk.modules)) {
          const m = id.match(/^\0?(.*[\\/]node_modules[\\/](?:@[^\\/]+[\\/])?[^\\/]+)[\\/]/);
          if (m) dirs.add(m[1]);
        }
      }
      const parts = [...dirs].sort().map((dir) => {
        const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
        const file = fs.readdirSync(dir).find((f) => /^(licen[sc]e|copying)/i.test(f));
        const text = file ? fs.readFileSync(path.join(dir, file), 'utf8').trim() : `License: ${pkg.license}`;
        return `${pkg.name} ${pkg.version} (${pkg.license})\n\n${text}\n`;
      });
      this.emitFile({ type: 'asset', fileName: 'third-party-licenses.txt', source: parts.join('\n' + '-'.repeat(72) + '\n\n') });
    },
  };
}

// A digest of the sources, written beside the build: tests/api/test_webui.py recomputes it and so
// notices a change under webui/ that was committed without rebuilding llamaserve/webui_dist.
const ROOT = path.dirname(fileURLToPath(import.meta.url));
const SOURCES = ['index.html', 'package.json', 'package-lock.json', 'vite.config.js', 'src'];

function listFiles(rel) {
  const full = path.join(ROOT, rel);
  if (!fs.statSync(full).isDirectory()) return [rel];
  return fs.readdirSync(full).flatMap((name) => listFiles(`${rel}/${name}`));
}

function sourceDigest() {
  return {
    name: 'source-digest',
    apply: 'build',
    generateBundle() {
      const hash = crypto.createHash('sha256');
      for (const rel of SOURCES.flatMap(listFiles).sort()) {
        hash.update(rel + '\0');
        hash.update(fs.readFileSync(path.join(ROOT, rel)));
        hash.update('\0');
      }
      this.emitFile({ type: 'asset', fileName: 'source-digest.txt', source: hash.digest('hex') + '\n' });
    },
  };
}

export default defineConfig({
  // Relative asset and API URLs: the UI keeps working behind a reverse proxy under a path prefix.
  base: './',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  plugins: [thirdPartyLicenses(), sourceDigest()],
  build: {
    outDir: '../llamaserve/webui_dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    target: 'es2020',
    modulePreload: { polyfill: false },
  },
  server: { proxy: Object.fromEntries(apiPaths.map((p) => [p, target])) },
});
