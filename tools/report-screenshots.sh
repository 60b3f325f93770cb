#!/usr/bin/env bash
# The README's screenshots of the committed reports, as headless Chromium shows them at 1,400 px:
# docs/screenshots/index.png (the leaderboard) and docs/screenshots/camvid-controlled.png (Table 3's page).
# Run from the project's root after `bench report`.
set -euo pipefail
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome)
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
shot() {  # page, output, height in px
  "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$profile" \
    --window-size=1400,"$3" --virtual-time-budget=3000 --screenshot="$2" "file://$PWD/$1" 2>/dev/null
}
mkdir -p docs/screenshots
shot reports/index.html docs/screenshots/index.png 1150
shot reports/camvid-controlled/index.html docs/screenshots/camvid-controlled.png 1500
