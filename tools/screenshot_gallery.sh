#!/bin/sh
# Take a headless screenshot of OUT/gallery.html, to look at the gallery as a person
# would. Not run by tests or CI. Needs chromium (Debian: apt-get install chromium).
#   tools/screenshot_gallery.sh [OUT] [PNG] [WIDTHxHEIGHT]
# Writes OUT/gallery.html from OUT/.batchgen/state.db first (with .venv's python).
set -eu
out=${1:-out/demo}
png=${2:-/tmp/gallery.png}
size=${3:-1280,900}
python=${PYTHON:-.venv/bin/python}
browser=${CHROMIUM:-chromium}

"$python" -c 'import sys; from pathlib import Path; from batchgen.report.gallery import write_gallery
out = Path(sys.argv[1]); print(write_gallery(out / ".batchgen" / "state.db", out))' "$out"

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
page="file://$(cd "$out" && pwd)/gallery.html"
"$browser" --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --user-data-dir="$profile" \
    --hide-scrollbars --virtual-time-budget=3000 \
    --screenshot="$png" --window-size="$size" "$page"
echo "$png"
