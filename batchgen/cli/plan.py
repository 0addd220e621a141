"""``batchgen plan``: what a run would send, cost and take, before anything is paid.

Nothing is submitted. The store of OUT is read only; the account history is read (GETs)
only when OUT has no paid job of a model to learn its price from, and only with a key.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import anyio

from batchgen import errors
from batchgen.cli import keys, times
from batchgen.cli.output import say
from batchgen.cli.parsing import (
    non_negative_float,
    positive_float,
    positive_int,
    refuse_key_flags,
)
from batchgen.cli.run import add_api_flags, api_urls, out_dir
from batchgen.config import DEFAULT_MAX_EXPANSIONS
from batchgen.exits import EXIT_OK
from batchgen.manifest.reader import ManifestReader
from batchgen.prices import PriceModel, fit, observed
from batchgen.report import plan as planning
from batchgen.report.plan import Pricing
from batchgen.report.plan_text import describe_plan
from batchgen.store import lock
from batchgen.store.planning import PaidJob, PlanStore

# The newest paid jobs of OUT, and of the account history, a price is fitted to.
STORE_JOBS = 2000
HISTORY_JOBS = 500
SUMMARIES = 5


def register(sub: Any) -> None:
    plan = sub.add_parser(
        "plan", help="show what a run would send, cost and take; sends no submit",
        description="Show what `batchgen run MANIFEST -o OUT` would do: items new, done, "
        "failed, in flight and changed; requests and images to send; the credits expected "
        "and the time at the rate. Nothing is submitted.")
    add = plan.add_argument
    add("manifest", help="YAML or JSONL manifest")
    add("-o", "--out", help="the run's output directory (default: out/<manifest name>)")
    add("--rpm", type=positive_float, metavar="R", help="requests per minute the run would "
        "get (default: the last run's, else 50)")
    add("--rate-scope", choices=("submits", "all"), default="submits",
        help="which requests count against --rpm (all: polls and result GETs too)")
    add("--submit-for", metavar="DURATION", help="a night's submitting time (e.g. 8h): "
        "the time is also given in nights of it")
    add("--price", type=non_negative_float, metavar="P", help="credits per image, when "
        "neither OUT's finished jobs nor the account history tell the price")
    add("--retry-failed", action="store_true", help="plan as `run --retry-failed` would go")
    add("--keep-changed", action="store_true", help="plan as `run --keep-changed` would go")
    add("--max-expansions", type=positive_int, default=DEFAULT_MAX_EXPANSIONS, metavar="N",
        help="the most items one manifest entry may expand to, as for run")
    add("--allow-unknown-params", action="store_true",
        help="send parameters the model schema does not know")
    add("--json", action="store_true", help="print one JSON object")
    add_api_flags(plan)
    refuse_key_flags(plan)
    plan.set_defaults(handler=command)


def command(ns: argparse.Namespace) -> int:
    out = out_dir(ns)
    submit_for_s = times.parse_duration(ns.submit_for) if ns.submit_for else None
    key = _optional_key(ns.api_key_file, os.environ)
    reader = ManifestReader(ns.manifest, allow_unknown_params=ns.allow_unknown_params,
                            max_expansions=ns.max_expansions)
    state_dir = out / ".batchgen"
    with PlanStore(state_dir / "state.db") as store:
        tally = planning.tally(reader.items(), store, retry_failed=ns.retry_failed,
                               keep_changed=ns.keep_changed)
        if not reader.valid:
            problems = [p for p in reader.problems if p.severity == "error"]
            raise errors.ManifestError(problems, total=reader.errors)
        paid, summaries = store.paid_jobs(STORE_JOBS), store.summaries(SUMMARIES)
        empty = store.empty
    notes: list[str] = []
    if empty and (out / "results.jsonl").exists():
        notes.append(f"{out} has results but no checkpoint: a run first rebuilds it from "
                     "results.jsonl and the images (and pays for none of them); counted "
                     "here as new")
    base_url, history_url = api_urls(ns, os.environ)
    prices = _prices(tally.models(), paid, price=ns.price, key=key, base_url=base_url,
                     history_url=history_url, notes=notes)
    rate = planning.rate(rpm=ns.rpm, scope=ns.rate_scope, summaries=summaries)
    report = {
        "manifest": ns.manifest, "out": str(out),
        "live": state_dir.exists() and lock.is_held(state_dir), "notes": notes,
        "items": planning.items_figures(tally), "send": planning.send_figures(tally),
        "credits": planning.credits_figures(tally, prices),
        "time": planning.timing(tally, rate, submit_for_s),
    }
    say(json.dumps(report, indent=2) if ns.json else describe_plan(report))
    return EXIT_OK


def _optional_key(key_file: str | None, env: Mapping[str, str]) -> str | None:
    """The key when one is given (a bad one is a usage error, as for run), else None:
    the plan then does without the account history."""
    if key_file or env.get(keys.KEY_ENV, "").strip():
        return keys.api_key(key_file, env)
    return None


def _prices(models: list[str], paid: list[PaidJob], *, price: float | None,
            key: str | None, base_url: str, history_url: str,
            notes: list[str]) -> dict[str, Pricing | None]:
    """Each model's price: from OUT's paid jobs, else the account history, else --price."""
    found: dict[str, Pricing | None] = {}
    for model in models:
        jobs = [(j.model, j.params, j.cost) for j in paid if j.model == model]
        fitted = fit(observed(jobs))
        found[model] = None if fitted is None else Pricing("store", len(jobs), fitted)
    missing = [model for model, pricing in found.items() if pricing is None]
    if missing and key is None:
        notes.append(f"no API key ({keys.KEY_SOURCES}): the account history was not read")
    elif missing:
        assert key is not None
        today = datetime.now(UTC).date()
        try:
            found |= anyio.run(_from_history, missing, key, base_url, history_url, today)
        except (errors.ApiError, errors.FatalApiError) as exc:  # a refused key too
            notes.append(f"the account history could not be read: {exc}")
    for model, pricing in found.items():
        if pricing is None and price is not None:
            found[model] = Pricing("option", 0, PriceModel.flat(price))
    if price is not None and found and all(p is not None and p.source != "option"
                                           for p in found.values()):
        notes.append("--price is not used: the jobs already paid for tell the price")
    return found


async def _from_history(models: list[str], key: str, base_url: str, history_url: str,
                        today: date) -> dict[str, Pricing | None]:
    import aiohttp

    from batchgen.api.client import ApiClient
    from batchgen.api.paid import paid_requests

    found: dict[str, Pricing | None] = {}
    async with aiohttp.ClientSession() as session:
        client = ApiClient(session, base_url=base_url, api_key=key, history_url=history_url)
        for model in models:
            paid = await paid_requests(client, model=model, today=today, want=HISTORY_JOBS)
            fitted = fit(observed((model, p.params, p.cost) for p in paid))
            found[model] = None if fitted is None else Pricing("history", len(paid), fitted)
    return found
