"""Bad input queued from the real frontend: the person sees the message of the table in
tests/server/test_bad_input.py on the page, for a refusal at queue time and one before sampling."""

from __future__ import annotations

import pytest

from tests.prompts import ralu_prompt
from tests.server.test_bad_input import BEFORE, CASES, QUEUE

from .frontend_js import ERROR_REPORTED, OPEN_ERROR_DETAILS, RUN_FINISHED, SUMMARY_TIMEOUT_MS
from .test_frontend import QUEUE_FROM_UI, RUN_TIMEOUT_MS, WATCH_EXECUTION
from .test_ksampler_ui import LOAD_API

SHOWN = "(text) => document.body.innerText.includes(text)"
ROWS = ["plan: stage ends not increasing", "mask: batch mismatch (3 masks, 2 images)"]


@pytest.mark.parametrize("row", ROWS)
def test_the_page_shows_the_message(page, comfy_host, test_models, row):
    case = CASES[row]
    prompt = ralu_prompt(test_models, seed=9191, size=128, prefix="ui_bad_input")
    case.edit(prompt, test_models)
    page.evaluate(LOAD_API, prompt)
    page.evaluate(WATCH_EXECUTION)
    page.evaluate(QUEUE_FROM_UI)  # returns once the frontend has the answer to its POST /prompt
    if case.outcome == BEFORE:
        page.wait_for_function(RUN_FINISHED, timeout=RUN_TIMEOUT_MS)
    page.wait_for_function(ERROR_REPORTED, arg=case.text.strip(), timeout=RUN_TIMEOUT_MS)
    # Frontend 1.49 first shows a summary; the message is in the error list that it opens.
    page.evaluate(OPEN_ERROR_DETAILS)
    page.wait_for_function(SHOWN, arg=case.text.strip(), timeout=SUMMARY_TIMEOUT_MS)
    events = page.evaluate("() => window.__raluRun.events")
    if case.outcome == QUEUE:
        assert not any(e["type"] == "execution_start" for e in events), events
    else:
        assert case.outcome == BEFORE
        [error] = [e for e in events if e["type"] == "execution_error"]
        assert case.text in error["error"]
    # The dialog is closed so the next row starts on a clear page.
    page.keyboard.press("Escape")
