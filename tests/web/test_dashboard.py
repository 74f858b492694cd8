"""``web/dashboard.py``: the page at ``/`` and its files, served as they are, under the
security headers, with nothing inline for the CSP to refuse (the page itself is driven in
Chromium by tests/system/test_dashboard.py)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.webapp import WebApp
from web.dashboard import ASSETS, DASHBOARD_DIR


async def test_the_page_is_served_at_the_root_with_the_page_headers(web: WebApp) -> None:
    r = await web.client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    policy = r.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy and r.headers["x-frame-options"] == "DENY"
    assert r.text == (DASHBOARD_DIR / "index.html").read_text()


async def test_every_file_the_page_names_is_served_with_its_type(web: WebApp) -> None:
    page = (DASHBOARD_DIR / "index.html").read_text()
    named = re.findall(r'(?:src|href)="(/dashboard/assets/[^"]+)"', page)
    assert any(n.endswith(".js") for n in named) and any(n.endswith(".css") for n in named)
    types = {".js": "javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    for path in named:
        r = await web.client.get(path)
        assert r.status_code == 200, path
        assert types[Path(path).suffix] in r.headers["content-type"], (path, r.headers)
    assert (await web.client.get(f"{ASSETS}/no-such-file.js")).status_code == 404


def test_nothing_inline_for_the_policy_to_refuse() -> None:
    for html in (DASHBOARD_DIR / "index.html", DASHBOARD_DIR.parent / "templates/status_page.html"):
        text = html.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), html  # no inline script
        assert "<style" not in text and " style=" not in text, html
        assert not re.search(r"\son[a-z]+=", text), html  # no inline event handler
        assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', ""), html
    for js in DASHBOARD_DIR.glob("*.js"):
        source = js.read_text()
        assert "eval(" not in source and "new Function" not in source, js
        assert "document.cookie" not in source, js  # the token lives in sessionStorage


def test_every_module_import_resolves_to_a_served_file() -> None:
    modules = {p.name for p in DASHBOARD_DIR.glob("*.js")}
    for js in DASHBOARD_DIR.glob("*.js"):
        for target in re.findall(r'^import .* from "\./([^"]+)";$', js.read_text(), re.M):
            assert target in modules, (js.name, target)
