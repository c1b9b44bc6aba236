#!/usr/bin/env bash
# Refresh the vendored front-end assets of reviewer_ui from npm at the pinned versions.
#
# Production terminals have no internet (the plan), so every script the pages load is
# served by the service itself from reviewer_ui/static/vendor/<pkg>-<version>/: the
# minified dist files plus the package's licence, nothing else (no node_modules).
# Run it after changing a version below, then update reviewer_ui/assets.py to match and
# commit the new folder (and remove the old one).
set -euo pipefail
cd "$(dirname "$0")/.."
DEST="static/vendor"

# package@version  file-in-package... (paths relative to the package root)
PACKAGES=(
  "alpinejs@3.14.9 dist/cdn.min.js"
  "wavesurfer.js@7.12.12 dist/wavesurfer.min.js dist/plugins/regions.min.js dist/plugins/timeline.min.js LICENSE"
  "uplot@1.6.32 dist/uPlot.iife.min.js dist/uPlot.min.css LICENSE"
  "axe-core@4.10.3 axe.min.js LICENSE"
)

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
for entry in "${PACKAGES[@]}"; do
  read -r spec files <<<"$entry"
  name="${spec%@*}"
  version="${spec##*@}"
  (cd "$TMP" && npm pack --silent "$spec" >/dev/null)
  tarball="$(ls "$TMP"/*.tgz)"
  mkdir -p "$TMP/unpacked"
  tar -xzf "$tarball" -C "$TMP/unpacked"
  out="$DEST/${name}-${version}"
  rm -rf "$out"
  mkdir -p "$out"
  for f in $files; do
    cp "$TMP/unpacked/package/$f" "$out/$(basename "$f")"
  done
  # The package's own metadata (name, version, licence field) travels with the files.
  cp "$TMP/unpacked/package/package.json" "$out/package.json"
  if ! ls "$out"/LICENSE* >/dev/null 2>&1; then
    # alpinejs publishes no licence file in its npm package; its package.json says MIT and
    # the repository's LICENSE.md is the standard MIT text, written out here.
    node -e '
      const p = require(process.argv[1]);
      if (p.license !== "MIT") { console.error("no LICENSE file and not MIT: " + p.name); process.exit(1); }
      const who = typeof p.author === "string" ? p.author : (p.author && p.author.name) || p.name + " contributors";
      process.stdout.write(`MIT License (from ${p.name}@${p.version} package.json; the npm package ships no LICENSE file)

Copyright (c) ${who.includes("contributors") ? who : who + " and contributors"}

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated documentation files (the "Software"), to deal in the Software without restriction, including without limitation the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
`);' "$(realpath "$out/package.json")" > "$out/LICENSE"
  fi
  echo "$spec → $out ($(du -sh "$out" | cut -f1))"
  rm -rf "$TMP/unpacked" "$tarball"
done
