#!/bin/sh
# The detect page as headless Chromium renders it (tests/check_detect_page.py).
exec /usr/bin/python3 tests/check_detect_page.py
