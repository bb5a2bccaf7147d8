#!/bin/sh
# The HTML pages of report --html and compress --report-html, rendered in headless Chromium (tests/check_report_page.py).
exec /usr/bin/python3 tests/check_report_page.py
