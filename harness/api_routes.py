"""Print every (method, path) the Sahara API serves, as JSON: the rules of
the Flask app that Sahara's own router (RouterV2: the v1.0, v1.1 and v2
blueprints) builds when sahara_wsgi_entry loads our paste pipeline, with
path variables filled with a dummy value.

    SAHARA_CONFIG_FILES=... python -m harness.api_routes
"""

from __future__ import annotations

import json
import re

DUMMY = "00000000-0000-4000-8000-000000000000"


def routes() -> list[tuple[str, str]]:
    import sahara_wsgi_entry

    sahara_wsgi_entry.build_application()  # plugins loaded, paste pipeline built
    from sahara.api.middleware.sahara_middleware import RouterV2

    found = set()
    for rule in RouterV2.app.url_map.iter_rules():
        if rule.endpoint != "static":
            found.update((method, re.sub(r"<[^>]+>", DUMMY, rule.rule)) for method in rule.methods)
    return sorted(found)


if __name__ == "__main__":
    print(json.dumps(routes()))
