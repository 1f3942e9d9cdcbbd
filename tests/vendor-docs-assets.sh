#!/usr/bin/env bash
# Downloads swagger-ui-dist from npm and copies the files the API reference
# page (GET /docs, src/docs/) serves into src/docs/swagger-ui/, then sets the
# version in src/docs/mod.rs (it is part of the assets' URLs, which are cached
# as immutable). `npm pack` checks the tarball against the registry's
# integrity hash. The files are copied byte for byte.
#
#   tests/vendor-docs-assets.sh            re-vendor the pinned version
#   tests/vendor-docs-assets.sh 5.36.0     move to another version
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODULE="$ROOT/src/docs/mod.rs"
DEST="$ROOT/src/docs/swagger-ui"
CURRENT="$(sed -n 's/^pub const SWAGGER_UI_VERSION: &str = "\(.*\)";$/\1/p' "$MODULE")"
VERSION="${1:-$CURRENT}"
[[ "$VERSION" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "not an exact version: '$VERSION'" >&2; exit 1; }

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && npm pack --silent "swagger-ui-dist@$VERSION" >/dev/null)
tar -xzf "$WORK/swagger-ui-dist-$VERSION.tgz" -C "$WORK"

mkdir -p "$DEST"
for file in swagger-ui-bundle.js swagger-ui.css LICENSE NOTICE; do
  cp "$WORK/package/$file" "$DEST/$file"
done
(cd "$DEST" && sha256sum swagger-ui-bundle.js swagger-ui.css LICENSE NOTICE >SHA256SUMS)
sed -i "s/^pub const SWAGGER_UI_VERSION: &str = \".*\";$/pub const SWAGGER_UI_VERSION: \&str = \"$VERSION\";/" "$MODULE"
echo "swagger-ui-dist $VERSION in $DEST ($(du -cb "$DEST"/swagger-ui-bundle.js "$DEST"/swagger-ui.css | tail -n 1 | cut -f 1) bytes served)"
