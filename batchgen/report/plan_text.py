"""``batchgen plan`` for a person: the plan's JSON figures as a few lines."""

from __future__ import annotations

from typing import Any

from batchgen.prices import DESCRIPTIONS
from batchgen.report.eta import format_duration
from batchgen.report.plan import SOURCES


def _credits(value: float) -> str:
    return f"{value:.6g}"


def _price_line(model: str, price: dict[str, Any] | None) -> str:
    if price is None:
        return (f"price of {model}: unknown: no finished job in OUT, none in the account "
                "history; pass --price P (credits per image) or run a few items first "
                "(--max-items 5)")
    rate = (f"{_credits(price['per_reference_image'])} credits per 20-step 512x512 image, "
            f"{price['description']}")
    if price["source"] == "option":
        return f"price of {model}: {rate}, from --price"
    source = f"{SOURCES[price['source']]} ({price['jobs']} jobs)"
    if len(price["tied"]) == 1:
        return (f"price of {model}: {rate}, fitted to {source}: off by "
                f"{price['error'] * 100:.1f}% per job (RMS)")
    return (f"price of {model}: {source} fit " + ", ".join(DESCRIPTIONS[k] for k in
                                                          price["tied"])
            + " alike (their steps, sizes and samples do not vary enough to tell): planned "
            f"with the dearest for this manifest, {rate}")


def describe_plan(plan: dict[str, Any]) -> str:
    items, send, credits, time = plan["items"], plan["send"], plan["credits"], plan["time"]
    lines = [f"plan for {plan['manifest']} into {plan['out']}: nothing was sent"]
    if plan["live"]:
        lines.append("a run holds OUT now: these figures change as it goes")
    lines += plan["notes"]
    lines.append(f"items: {items['in_manifest']} in the manifest: {items['new']} new, "
                 f"{items['pending']} pending, {items['done']} done, {items['failed']} "
                 f"failed, {items['in_flight']} in flight")
    changed = (f"changed since they finished: {items['changed']} (generated again)"
               if items["changed"] else "changed since they finished: none")
    if items["changed_kept"]:
        changed += f", {items['changed_kept']} kept by --keep-changed"
    lines.append(changed)
    to_send = f"to send: {send['requests']} requests, {send['images']} images"
    if send["failed_left"]:
        to_send += (f"; {send['failed_left']} failed items stay failed (--retry-failed "
                    "sends them)")
    lines.append(to_send)
    if credits["expected"] is None:
        lines.append("credits: unknown (" + ", ".join(credits["unpriced_models"])
                     + " has no price)")
    else:
        text = (f"credits: {_credits(credits['expected'])} expected: "
                f"{_credits(credits['to_send'])} for the items to send")
        if send["jobs_in_flight_unpaid"]:
            text += (f", {_credits(credits['in_flight'])} for "
                     f"{send['jobs_in_flight_unpaid']} jobs in flight not billed yet")
        if credits["low"] < credits["expected"]:
            text += f" (as little as {_credits(credits['low'])} by the cheapest reading)"
        lines.append(text)
    lines += [_price_line(model, price) for model, price in credits["prices"].items()]
    counted = "requests" if time["rate_scope"] == "all" else "submits"
    rpm = f"{time['rpm']:.0f}" if time["rpm"] >= 10 else f"{time['rpm']:g}"
    text = (f"time: {time['requests']} {counted} at {rpm} RPM "
            f"({time['rpm_source']}): {format_duration(time['hours'] * 3600)} "
            f"({time['hours']:.2f} h)")
    if time["rate_scope"] == "all":
        text += (f"; polls count (--rate-scope all): status polls per job "
                 f"{time['polls_per_job']:g}, {time['polls_source']}")
    if time["nights"] is not None:
        text += (f"; {time['nights']:.2f} nights of {time['submit_for_h']:g} h "
                 f"(--submit-for): {time['nights_needed']} to run")
    lines.append(text)
    return "\n".join(lines)
