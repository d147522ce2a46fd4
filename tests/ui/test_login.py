"""Logging in to the dashboard with a user token: each user sees only their own workspaces."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from loraforge import users
from loraforge.config import get_settings
from loraforge.stages.context import open_context
from tests.api.factories import make_dataset, make_workspace
from tests.ui.test_dashboard import APP


@pytest.fixture
def two_users(api_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The API (same process) requires a token; the dashboard's environment has none of its own."""
    monkeypatch.setenv("LORAFORGE_API_TOKEN", "admin-only")
    get_settings.cache_clear()
    get_settings()  # the API keeps these settings ...
    monkeypatch.delenv("LORAFORGE_API_TOKEN")  # ... while the dashboard reads no token from the environment
    ctx = open_context()
    tokens = {}
    with ctx.catalog.session() as session:
        for name in ("alice", "bob"):
            user, token = users.add_user(session, name)
            workspace = make_workspace(session, f"{name}-space")
            users.grant(session, workspace, user, "owner")
            make_dataset(session, workspace, f"{name}-data")
            tokens[name] = token
    return tokens


def _log_in(app: AppTest, token: str) -> AppTest:
    app.sidebar.text_input(key="login_token_input").input(token)
    next(button for button in app.sidebar.button if button.label == "Log in").click()
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def test_a_user_logs_in_sees_only_their_workspaces_and_logs_out(two_users: dict[str, str]) -> None:
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    assert not app.exception
    assert not app.sidebar.selectbox  # nothing to pick before logging in
    assert any("log in" in info.value.lower() for info in app.info)

    _log_in(app, two_users["alice"])
    workspaces = app.sidebar.selectbox(key="workspace_id")
    assert workspaces.options == ["alice-space"]
    assert app.title[0].value == "alice-data"

    next(button for button in app.sidebar.button if button.label == "Log out").click()
    app.run()
    assert not app.sidebar.selectbox

    _log_in(app, two_users["bob"])
    assert app.sidebar.selectbox(key="workspace_id").options == ["bob-space"]


def test_a_wrong_token_is_refused(two_users: dict[str, str]) -> None:
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    _log_in(app, "lfu_wrong")
    assert not app.sidebar.selectbox
    assert any("token" in warning.value.lower() for warning in app.sidebar.warning)
