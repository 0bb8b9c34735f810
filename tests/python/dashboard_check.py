"""The dashboard in a real headless browser (Debian's chromium, driven by Playwright).

Run by tests/tests/dashboard.rs against a live gateway with authentication on:
  AIGW_BASE_URL        the gateway's /v1 URL
  AIGW_ADMIN_KEY       the admin key
  AIGW_KEY             a virtual key granted the namespace AIGW_NAMESPACE
  AIGW_NAMESPACE       the namespace the conversation is written in
  AIGW_FAILING_ROUTE   a route whose first target always fails (503) and whose second serves
  AIGW_FAILING_TARGET  that first target's label
  AIGW_CHROMIUM        the browser (default /usr/bin/chromium)
Prints one `ok ...` line per check; any failure exits non-zero. Every wait is Playwright's own
(a DOM condition, bounded), never a fixed sleep.
"""

import json
import os
import sys
import tempfile
import urllib.error
import urllib.request

from playwright.sync_api import expect, sync_playwright

BASE = os.environ["AIGW_BASE_URL"].removesuffix("/v1")
ADMIN_KEY = os.environ["AIGW_ADMIN_KEY"]
KEY = os.environ["AIGW_KEY"]
NAMESPACE = os.environ["AIGW_NAMESPACE"]
FAILING_ROUTE = os.environ["AIGW_FAILING_ROUTE"]
FAILING_TARGET = os.environ["AIGW_FAILING_TARGET"]
CHROMIUM = os.environ.get("AIGW_CHROMIUM", "/usr/bin/chromium")
# Stored conversation text that would run if the page wrote it as markup.
HOSTILE = '<img src=x onerror="window.__xss = 1; alert(1)">'
WAIT_MS = 20_000


def call(method, path, key, body=None, namespace=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(BASE + path, data=data, method=method)
    request.add_header("Authorization", "Bearer " + key)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if namespace:
        request.add_header("x-aigw-namespace", namespace)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def chat(route):
    status, body = call(
        "POST",
        "/v1/chat/completions",
        KEY,
        {"model": route, "messages": [{"role": "user", "content": "hello dashboard"}]},
    )
    assert status == 200, (status, body)


def main():
    if not os.path.exists(CHROMIUM):
        sys.exit(
            f"{CHROMIUM} not found: install Debian's chromium (as root: apt-get install -y chromium)"
        )
    status, conversation = call(
        "POST",
        "/v1/conversations",
        KEY,
        {
            "metadata": {"title": "hostile"},
            "items": [
                {"type": "message", "role": "user", "content": HOSTILE},
                {"type": "message", "role": "assistant", "content": "plain answer"},
            ],
        },
        namespace=NAMESPACE,
    )
    assert status == 200, (status, conversation)

    with tempfile.TemporaryDirectory() as profile, sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page()
        dialogs = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))

        response = page.goto(BASE + "/admin/dashboard")
        assert response.status == 200, response.status
        headers = response.headers
        assert "default-src 'self'" in headers["content-security-policy"], headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"], headers
        assert headers["x-content-type-options"] == "nosniff", headers
        print("ok page served with its security headers")

        # A wrong key is refused and the board stays hidden.
        page.fill("#admin-key", "not-the-admin-key")
        page.click("#login-form button")
        expect(page.locator("#login-error")).not_to_be_empty(timeout=WAIT_MS)
        expect(page.locator("#board")).to_be_hidden()
        # A virtual key is not the admin key either.
        page.fill("#admin-key", KEY)
        page.click("#login-form button")
        expect(page.locator("#login-error")).to_contain_text("admin key", timeout=WAIT_MS)
        expect(page.locator("#board")).to_be_hidden()
        print("ok wrong keys refused")

        page.fill("#admin-key", ADMIN_KEY)
        page.click("#login-form button")
        expect(page.locator("#board")).to_be_visible(timeout=WAIT_MS)
        failing = page.locator(f'#targets tr[data-target="{FAILING_TARGET}"]')
        expect(failing).to_have_attribute("data-state", "closed", timeout=WAIT_MS)
        expect(page.locator("#targets tbody tr")).not_to_have_count(0)
        for row in page.locator("#targets tbody tr").all():
            expect(row).to_have_attribute("data-state", "closed")
        print("ok targets healthy")

        expect(page.locator("#plugins tr[data-plugin]")).not_to_have_count(0, timeout=WAIT_MS)
        print("ok plugins listed")

        expect(page.locator("#chart")).to_have_attribute("data-requests", "0", timeout=WAIT_MS)
        # The first target fails every time: its breaker opens; every request fails over.
        sent = 0
        while sent < 12 and failing.get_attribute("data-state") != "open":
            chat(FAILING_ROUTE)
            sent += 1
        expect(failing).to_have_attribute("data-state", "open", timeout=WAIT_MS)
        expect(failing.locator(".state")).to_have_text("open")
        expect(failing.locator(".recent li").first).to_contain_text("unavailable", timeout=WAIT_MS)
        print(f"ok target down on the page after {sent} requests")

        chart = page.locator("#chart")
        expect(chart).to_have_attribute("data-requests", str(sent), timeout=WAIT_MS)
        expect(chart.locator("svg rect.requests")).not_to_have_count(0)
        failovers = int(chart.get_attribute("data-failovers"))
        assert failovers >= 1, failovers
        expect(page.locator("#history-summary")).to_contain_text(f"{sent} requests")
        print("ok chart moved")

        # The key's usage: every request above was made with it (keys refresh every 10 s).
        key_row = page.locator("#keys tr[data-key]").first
        expect(key_row).to_be_visible(timeout=WAIT_MS)
        expect(key_row.locator("td").nth(1)).to_have_text("dashboard")
        expect(key_row.locator("td").nth(3)).to_have_text(str(sent), timeout=WAIT_MS)
        print("ok keys listed with their usage")

        page.click("#namespaces-reload")
        page.locator("#namespace").select_option(NAMESPACE, timeout=WAIT_MS)
        button = page.locator(f'#conversations button[data-conversation="{conversation["id"]}"]')
        button.click(timeout=WAIT_MS)
        texts = page.locator("#items .item pre")
        expect(texts).to_have_count(2, timeout=WAIT_MS)
        # The stored markup is shown as its text; no element was made of it, nothing ran.
        expect(texts.first).to_have_text(HOSTILE)
        expect(texts.nth(1)).to_have_text("plain answer")
        assert page.locator("#items img").count() == 0
        assert page.evaluate("window.__xss") is None
        assert not dialogs, dialogs
        print("ok conversation browsed, stored markup shown as text")

        assert not errors, errors
        browser.close()


if __name__ == "__main__":
    main()
