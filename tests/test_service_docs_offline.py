"""``/docs`` and ``/redoc`` work without internet: every asset they name is served by memledger
itself (issue 14), and the OpenAPI document they render is the one generated clients rely on."""

from __future__ import annotations

import re

from tests.service_support import make_service

_URL = re.compile(r"""(?:src|href)=["']([^"']+)["']""")
_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


def _asset_urls(html: str) -> list[str]:
    return _URL.findall(html)


def test_docs_pages_name_no_external_url_and_their_assets_load(tmp_path):
    svc = make_service(tmp_path, names=())
    for page in ("/docs", "/redoc"):
        r = svc.client.get(page)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert not re.search(r"(?i)\b(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", r.text), f"{page} names an external URL"
        assert "/openapi.json" in r.text
        urls = _asset_urls(r.text)
        assert any(u.endswith(".js") for u in urls), f"{page} loads no script: {urls}"
        for url in urls:
            assert url.startswith("/") and not url.startswith("//"), url
            asset = svc.client.get(url)
            assert asset.status_code == 200, url
            assert len(asset.content) > 1000, url  # the real bundle, not a placeholder
            suffix = url[url.rfind(".") :]
            assert _TYPES[suffix] in asset.headers["content-type"], (url, asset.headers["content-type"])
    assert "SwaggerUIBundle" in svc.client.get("/docs/assets/swagger-ui-bundle.js").text
    assert "Redoc" in svc.client.get("/docs/assets/redoc.standalone.js").text
    assert svc.client.get("/docs/oauth2-redirect").status_code == 200


def test_docs_routes_stay_out_of_the_openapi_document(tmp_path):
    svc = make_service(tmp_path, names=())
    paths = svc.client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/docs") or p.startswith("/redoc")]
    assert "/v1/memories" in paths and "/v1/search" in paths
